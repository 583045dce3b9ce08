"""The ``nvcodec`` command: encode, decode, info.

Thin by design: each command parses (validation lives in click types), calls
one public function, and prints. Errors the user caused (``nvcodec.errors.NvcError``:
a bad file, video, option) become one line ``nvcodec: error: ...`` and exit status 1
(usage errors exit 2, as click does). Any other exception is a bug in nvcodec: it is
said so, with a hint how to report it, and exit status 70 (BSD's EX_SOFTWARE).
``--debug`` shows the traceback instead, for both.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager
from fractions import Fraction

import click

from nvcodec import __version__
from nvcodec.encoder import KEYFRAME_PLACEMENTS
from nvcodec.keyframes import CODECS as KEYFRAME_CODECS
from nvcodec.presets import NETWORKS, PRESETS
from nvcodec.media import MP4_CRF

EXIT_ERROR = 1
EXIT_BUG = 70
EXIT_INTERRUPTED = 130


class SizeType(click.ParamType):
    """WIDTHxHEIGHT, e.g. 160x128."""

    name = "WxH"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            w, h = (int(p) for p in value.lower().split("x"))
        except ValueError:
            self.fail(f"{value!r} is not WIDTHxHEIGHT, e.g. 160x128", param, ctx)
        if not (1 <= w <= 16384 and 1 <= h <= 16384):
            self.fail(f"{value!r}: width and height must lie in 1..16384", param, ctx)
        return (w, h)


class FractionType(click.ParamType):
    """A positive rational: 2, 29.97 or 30000/1001."""

    name = "RATE"

    def convert(self, value, param, ctx):
        if isinstance(value, Fraction):
            return value
        try:
            rate = Fraction(value)
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number such as 2, 29.97 or 30000/1001", param, ctx)
        if rate <= 0:
            self.fail(f"{value!r} must be positive", param, ctx)
        return rate


class FrameRangeType(click.ParamType):
    """A:B (0-based, B excluded, either may be left out), like a Python slice."""

    name = "A:B"

    def convert(self, value, param, ctx):
        if isinstance(value, slice):
            return value
        parts = value.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start, stop = (int(p) if p.strip() else None for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not A:B, e.g. 0:16 or 8:", param, ctx)
        if (start is not None and start < 0) or (stop is not None and stop < 0):
            self.fail(f"{value!r}: frame numbers are 0-based and non-negative", param, ctx)
        return slice(start, stop)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


@contextmanager
def progress_bar(*, disable: bool, file=None):
    """A frame bar with a total and an ETA (on stderr); yields the decoder's ``progress`` callback."""
    from tqdm import tqdm

    with tqdm(unit="frame", disable=disable, leave=False, file=file or sys.stderr, dynamic_ncols=True) as bar:
        shown = [None]

        def progress(name: str, n_done: int, n_total: int) -> None:
            bar.total = n_total
            if shown[0] != name:
                shown[0] = name
                bar.n = n_done
                bar.set_description(name)           # refreshes: a new video shows at once
            else:
                bar.update(n_done - bar.n)          # redraws when tqdm's interval has passed

        yield progress


def _run(ctx: click.Context, fn, *args, on_interrupt: str = "", **kwargs):
    """Call the API; map its errors to one line and an exit status (traceback with --debug).

    User errors (``NvcError``) are one line; anything else is a bug and says so. SIGTERM
    becomes SystemExit(143) (the fitter checkpoints on it first) and is reported in one
    ``nvcodec:`` line like Ctrl-C; ffmpeg's stderr tail is shown only with --debug.
    """
    from nvcodec.errors import NvcError

    debug = ctx.find_root().params.get("debug", False)
    in_main = threading.current_thread() is threading.main_thread()     # signals are main-thread only
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        if debug:
            raise
        click.echo(f"nvcodec: interrupted{on_interrupt}", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            click.echo(f"nvcodec: terminated (SIGTERM){on_interrupt}", err=True)
        raise
    except NvcError as exc:
        if debug:
            tail = getattr(exc, "stderr_tail", "")
            if tail:
                click.echo("--- ffmpeg stderr (tail) ---\n" + tail, err=True)
            raise
        message = str(exc).strip().splitlines()
        click.echo(f"nvcodec: error: {message[0] if message else type(exc).__name__}", err=True)
        for line in message[1:]:
            click.echo(f"  {line}", err=True)
        ctx.exit(EXIT_ERROR)
    except Exception as exc:
        if debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"nvcodec: internal error (a bug in nvcodec {__version__}, not in your input): "
                   f"{type(exc).__name__}: {first}", err=True)
        click.echo("  run the same command with --debug for the traceback, and report it with the "
                   "command line and that traceback", err=True)
        ctx.exit(EXIT_BUG)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


class _Group(click.Group):
    """Ctrl-C outside ``_run`` (while a command imports torch, say) exits 130 with our one line,
    not click's ``Aborted!`` and status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if ctx.params.get("debug", False):
                raise
            click.echo("nvcodec: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nvcodec")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(debug: bool) -> None:
    """nvcodec: a neural video codec for collections of videos."""


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--preset", default="fast", show_default=True,
              type=click.Choice(list(PRESETS)), help="Model size and schedule.")
@click.option("--network", type=click.Choice(NETWORKS), default="dnerv", show_default=True,
              help="'none': no network, the file is the motion floor (keyframes + coded motion); seconds to encode. "
                   "'auto': fit the network, code the motion floor at its file's rate, keep whichever decodes better.")
@click.option("--motion/--no-motion", default=None,
              help="Code each frame's motion in the file and fit a network that refines it (FORMAT.md 14.4); "
                   "default: the preset's.")
@click.option("--motion-iters", type=click.IntRange(0, 10_000),
              help="Gradient steps per clip moving the coded motion through the fitted network after the fit, "
                   "where the network's error + lambda x bits falls (0: keep the motion as estimated; default: "
                   "the preset's).")
@click.option("--latents", type=click.IntRange(0, 64),
              help="Per-frame side information: each frame gets a coded latent of this many channels on 16-pixel "
                   "cells (the preset's cell where it has one) that the refiner decodes (FORMAT.md 14.4; 0: none; "
                   "default: the preset's).")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True),
              help="Rate control: choose keyframe quality and network size, the keyframes and weights spent "
                   "at one price of a bit (with --network none: keyframe quality and motion), to land near this "
                   "bpp. With --keyframe-quality the keyframes are pinned and the weights take the rest.")
@click.option("--size", type=SizeType(), help="Coding size WxH (default: each video's own size).")
@click.option("--fps", type=FractionType(), help="Resample to this frame rate (the paper's protocol: 2).")
@click.option("--max-frames", type=click.IntRange(min=1), help="Keep at most this many frames per video.")
@click.option("--keyframe-interval", type=click.IntRange(1, 64), help="Frames per clip (a keyframe every N).")
@click.option("--keyframe-codec", type=click.Choice(sorted(KEYFRAME_CODECS)),
              help="Classical codec for keyframes (default: av1, an inter-coded track).")
@click.option("--keyframe-quality", type=click.IntRange(0, 63), help="Keyframe CRF/QP (lower is better).")
@click.option("--keyframes", type=click.Choice(KEYFRAME_PLACEMENTS), default="cuts", show_default=True,
              help="'cuts': also a keyframe on every detected scene cut and the frame before it (clips never "
                   "span a cut); 'regular': every N frames whatever the content.")
@click.option("--lambda", "rate_lambda", type=click.FloatRange(min=0),
              help="Rate-aware weights: minimise MSE + LAMBDA x weight bpp (default: the preset's; "
                   "MSE of RGB in [0, 1], so 0.001 trades 0.001 of MSE for 1 bpp).")
@click.option("--quant-bits", type=click.IntRange(2, 16),
              help="Plain post-training quantization at this many bits per weight instead of rate-aware.")
@click.option("--epochs", type=click.IntRange(min=1), help="Fitting epochs (default: the preset's).")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Work folder (default: OUTPUT.work).")
@click.option("--resume", is_flag=True, help="Continue an interrupted encode from its work folder.")
@click.option("--store", type=click.Path(file_okay=False),
              help="Frame store folder: every video's frames as coded, decoded once (default: WORKDIR/store).")
@click.option("--keep-store", is_flag=True, help="Keep the frame store after a successful encode (for the next one).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--skip-broken", is_flag=True, help="Skip videos that fail to decode instead of stopping.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def encode(ctx: click.Context, inputs, output, as_json, preset, network, motion, motion_iters, latents, target_bpp,
           keyframe_interval, keyframe_codec, keyframe_quality, rate_lambda, quant_bits, epochs, seed,
           **settings) -> None:
    """Fit one network to every video in INPUTS (folders or files) and write OUTPUT (.nvc); with
    --network none, code keyframes and motion only (the motion floor)."""
    import nvcodec
    from nvcodec.presets import build_config

    fit_overrides = {"seed": seed, **({"epochs": epochs} if epochs is not None else {}),
                     **({"motion": motion} if motion is not None else {}),
                     **({"motion_iters": motion_iters} if motion_iters is not None else {}),
                     **({"latent_channels": latents} if latents is not None else {})}
    config = _run(ctx, build_config, preset, keyframe_interval=keyframe_interval, keyframe_codec=keyframe_codec,
                  keyframe_quality=keyframe_quality, quant_bits=quant_bits, rate_lambda=rate_lambda,
                  target_bpp=target_bpp, network=network, **fit_overrides)
    # Progress lines go to stderr, so stdout holds the summary (or, with --json, the JSON) alone.
    report = _run(ctx, nvcodec.encode, list(inputs), output, config, **settings,
                  log=lambda msg: click.echo(msg, err=True),
                  on_interrupt="; the work folder is kept: run the same command with --resume to continue")
    if report is None:          # a torchrun rank other than 0: rank 0 reports
        return
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    parts = ", ".join(f"{k} {v}" for k, v in report.bytes_by_part.items())
    click.echo(f"wrote {report.output}: {report.n_videos} video(s), {report.n_frames} frames, "
               f"{report.n_params} weights")
    click.echo(f"  size  {report.n_bytes} bytes ({parts})")
    click.echo(f"  rate  {report.bpp:.4f} bpp")
    click.echo(f"  PSNR  {report.psnr:.2f} dB decoded, mean over the {report.n_frames} frames "
               f"(floors on the same frames: {_motion_floor_words(report)}keyframe blend "
               f"{report.blend_psnr:.2f} dB; keyframes alone {report.keyframe_psnr:.2f} dB)")
    click.echo(f"  time  {report.seconds:.1f} s")


def _motion_floor_words(report) -> str:
    if report.motion_psnr is None:
        return ""
    if report.n_params == 0:
        return "this file is the motion floor; "
    return f"motion floor {report.motion_psnr:.2f} dB, "


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("outdir", type=click.Path(file_okay=False, allow_dash=True))
@click.option("--video", "videos", multiple=True, help="Decode only this video (repeatable).")
@click.option("--frames", type=FrameRangeType(), default=":", help="Frame range A:B (0-based, B excluded).")
@click.option("--format", "fmt", type=click.Choice(["y4m", "mp4", "png"]), default="y4m", show_default=True,
              help="y4m: 4:4:4 8-bit; mp4: H.264 yuv420p that every player opens; png: one file per frame, "
                   "named by its 0-based index.")
@click.option("--crf", type=click.IntRange(0, 51), help=f"mp4 only: x264 CRF (default: {MP4_CRF}, near-lossless).")
@click.option("--lossless", is_flag=True, help="mp4 only: lossless RGB H.264 (High 4:4:4; many players refuse it).")
@click.option("--device", help="cpu, cuda ... (default: CUDA when present).")
@click.option("--force", is_flag=True, help="Overwrite outputs that exist.")
@click.option("--quiet", "-q", is_flag=True)
@click.pass_context
def decode(ctx: click.Context, file, outdir, videos, frames, fmt, crf, lossless, device, force, quiet) -> None:
    """Decode FILE into OUTDIR (each video under its stored name), or '-' for y4m on stdout."""
    import nvcodec

    if (crf is not None or lossless) and fmt != "mp4":
        raise click.UsageError("--crf and --lossless apply to --format mp4 only")
    if crf is not None and lossless:
        raise click.UsageError("give either --crf or --lossless")
    with progress_bar(disable=quiet or not sys.stderr.isatty()) as progress:
        report = _run(ctx, nvcodec.decode, file, outdir, videos=list(videos) or None, frames=frames,
                      fmt=fmt, crf=crf, lossless=lossless, force=force, device=device,
                      stdout=sys.stdout.buffer, progress=progress)
    if not quiet and outdir != "-":
        click.echo(f"decoded {report.n_frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps)")
        for out in report.outputs:
            click.echo(f"  {out}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def info(ctx: click.Context, file, as_json) -> None:
    """Describe an .nvc file, like ffprobe: videos, settings, bytes by part, bpp."""
    from nvcodec.info import describe, format_text

    summary = _run(ctx, describe, file)
    click.echo(json.dumps(summary, indent=2) if as_json else format_text(summary))


if __name__ == "__main__":
    main()
