"""``nvcodec.encode``: a folder of videos in, one ``.nvc`` file out (DESIGN.md, "The data flow").

scan -> read frames -> code keyframes (and decode them back: the network is fed
what the decoder will have) -> tile and clip -> fit one network -> quantize ->
write the container atomically -> decode the written file and measure it.

Every figure in the report comes from the written file: the rate is its size,
the quality is that of its decoded frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from nvcodec import __version__
from nvcodec.bitstream import KeyframeSegment, VideoRecord, tensor_chunk_n_bytes, write_nvc
from nvcodec.config import count_parameters
from nvcodec.corpus import SourceVideo, build_clipset, clip_layout, keyframe_positions, scan
from nvcodec.errors import NvcInputError
from nvcodec.keyframes import CODECS, KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.media import read_frames
from nvcodec.quant import quantize_state
from nvcodec.rate import OVERHEAD_BYTES, plan_rate

WORKDIR_SUFFIX = ".work"
DEFAULT_KEYFRAME_INTERVAL = 8         # DESIGN.md: every 8th frame plus the last
DEFAULT_KEYFRAME_CODEC = "av1"        # an inter-coded AV1 track: see benchmarks/bench_keyframes.py
# --target-bpp: keyframe shares of the budget tried, the pilot fit's share of the steps, and the bits
# per weight rate-aware quantization costs, which sizes the network: benchmarks/results/quant/results.md
# measured 3.95 / 3.38 / 2.48 bits per weight at lambda 1e-3 / 3e-3 / 1e-2 (fast, one fit); 3.0 lies
# between the presets' lambda (3e-3) and the coarsest measured.
KEYFRAME_SHARES = (0.35, 0.5, 0.65)
PILOT_FRACTION = 0.2
RATE_AWARE_BITS_PER_WEIGHT = 3.0


@dataclass(frozen=True)
class EncodeReport:
    """What an encode produced, measured on the written file."""

    output: str
    n_videos: int
    n_frames: int
    n_pixels: int                 # sum of frames x width x height as coded
    n_bytes: int                  # size of the .nvc file
    bytes_by_part: dict[str, int]  # keyframes, weights, metadata, container
    bpp: float                    # 8 * n_bytes / n_pixels
    psnr: float                   # RGB PSNR of the decoded file, mean over all frames
    blend_psnr: float             # the floor: linear blend of the decoded keyframes, whole frames
    keyframe_psnr: float          # decoded keyframes vs their source frames
    n_params: int
    preset: str
    seconds: float
    videos: list[dict] = field(default_factory=list)   # per video: name, size, n_frames, psnr

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Video:
    """A source video read for coding: its frames as coded, and the record the file will hold."""

    source: SourceVideo
    frames: np.ndarray            # (L, H, W, 3) uint8, as coded
    fps_num: int
    fps_den: int

    def record(self) -> VideoRecord:
        n_frames, height, width = (int(n) for n in self.frames.shape[:3])
        return VideoRecord(name=self.source.name, source_width=self.source.info.width,
                           source_height=self.source.info.height, width=width, height=height,
                           fps_num=self.fps_num, fps_den=self.fps_den, n_frames=n_frames)


def _coded_fps(source: SourceVideo, fps: Fraction | None) -> tuple[int, int]:
    if fps is None:
        return source.info.fps_num, source.info.fps_den
    return fps.numerator, fps.denominator


def _read_videos(sources: Sequence[SourceVideo], size, fps, max_frames, log) -> list[_Video]:
    videos = []
    for source in sources:
        frames = list(read_frames(source.path, size=size, fps=fps, max_frames=max_frames))
        if not frames:
            raise NvcInputError(f"{source.name}: no frames left to code (after --fps/--max-frames)")
        frames = np.stack(frames)
        fps_num, fps_den = _coded_fps(source, fps)
        log(f"  {source.name}: {source.info.width}x{source.info.height} -> "
            f"{frames.shape[2]}x{frames.shape[1]}, {frames.shape[0]} frames at {fps_num}/{fps_den} fps")
        videos.append(_Video(source, frames, fps_num, fps_den))
    return videos


def _settings_digest(settings: dict, sources: Sequence[SourceVideo]) -> str:
    """Identifies an encode, so that --resume refuses a workdir left by a different one."""
    ident = {
        "settings": settings,
        "inputs": [[s.name, str(s.path), os.path.getsize(s.path), int(os.path.getmtime(s.path))] for s in sources],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _prepare_workdir(workdir: Path, digest: str, resume: bool) -> None:
    stamp = workdir / "encode.json"
    if workdir.exists() and any(workdir.iterdir()):
        if not resume:
            raise NvcInputError(f"work folder {workdir} is not empty: pass --resume to continue "
                             f"that encode, or remove the folder")
        if not stamp.exists() or json.loads(stamp.read_text()).get("digest") != digest:
            raise NvcInputError(f"work folder {workdir} holds a different encode "
                             f"(other inputs or settings); cannot resume it")
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"digest": digest, "encoder": f"nvcodec {__version__}"}))
    os.replace(tmp, stamp)


def _code_keyframes(videos: Sequence[_Video], interval: int, codec: KeyframeCodec,
                    cache: Path | None) -> tuple[list[KeyframeSegment], list[np.ndarray]]:
    """Keyframe segments and the decoded keyframes of each video.

    With ``cache`` (rank 0's work folder) the coded bytes are kept for --resume;
    other ranks code them again in memory (the encoder is deterministic).
    """
    if cache is not None:
        cache.mkdir(exist_ok=True)
    segments: list[KeyframeSegment] = []
    decoded: list[np.ndarray] = []
    for v, video in enumerate(videos):
        n_frames, height, width = video.frames.shape[:3]
        index_path = cache / f"{v}.json" if cache is not None else None
        if index_path is not None and index_path.exists():
            index = json.loads(index_path.read_text())
            coded = [(first, n, (cache / f"{v}_{i}.bin").read_bytes()) for i, (first, n) in enumerate(index)]
        else:
            coded = encode_keyframes(video.frames[keyframe_positions(n_frames, interval)], codec)
        if index_path is not None and not index_path.exists():
            for i, (_, _, data) in enumerate(coded):
                (cache / f"{v}_{i}.bin").write_bytes(data)
            tmp = index_path.with_suffix(".tmp")
            tmp.write_text(json.dumps([[first, n] for first, n, _ in coded]))
            os.replace(tmp, index_path)
        segments += [KeyframeSegment(video=v, first_keyframe=first, n_keyframes=n, data=data)
                     for first, n, data in coded]
        # Segments concatenate into one valid stream: one ffmpeg process per video.
        decoded.append(decode_keyframes(b"".join(data for _, _, data in coded), codec, width, height,
                                        sum(n for _, n, _ in coded)))
    return segments, decoded


def _metadata(videos: Sequence[_Video], interval: int, codec: KeyframeCodec, model_json: dict,
              tile_hw: tuple[int, int], fit_info: dict) -> dict:
    return {
        "encoder": f"nvcodec {__version__}",
        "videos": [v.record().to_json() for v in videos],
        "keyframe_interval": interval,
        "tile": {"height": tile_hw[0], "width": tile_hw[1]},
        "keyframe_codec": codec.to_json(),
        "model": model_json,
        "fit": fit_info,
    }


def encode(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    output: str | os.PathLike,
    *,
    preset: str = "fast",
    size: tuple[int, int] | None = None,
    fps: Fraction | None = None,
    max_frames: int | None = None,
    keyframe_interval: int | None = None,
    keyframe_codec: str | None = None,
    keyframe_quality: int | None = None,
    quant_bits: int | None = None,
    epochs: int | None = None,
    device: str | None = None,
    workdir: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    force: bool = False,
    skip_broken: bool = False,
    quiet: bool = False,
    target_bpp: float | None = None,
    rate_lambda: float | None = None,
    log: Callable[[str], None] | None = None,
) -> EncodeReport | None:
    """Fit one network to every video under ``inputs`` and write ``output`` (.nvc).

    The weights are quantized rate-aware (``nvcodec.qat``) at ``rate_lambda`` (default:
    the preset's), or plainly at ``quant_bits`` bits when that is given (or the preset
    has no lambda). ``target_bpp``: choose the keyframe quality, the network size and
    the weights' steps jointly so that the file lands near this rate (``nvcodec.rate``);
    the report gives the rate reached. Returns the report (measured on the written
    file), or ``None`` on ranks other than 0 under torchrun, where only rank 0 writes.
    """
    from nvcodec import distributed
    from nvcodec.decoder import measure_file
    from nvcodec.runtime import resolve_device
    from nvcodec.fit import fit
    from nvcodec.info import record_quality
    from nvcodec.presets import resolve

    started = time.monotonic()
    device = resolve_device(device)
    ctx = distributed.setup(device.split(":")[0])
    main = ctx.is_main                                         # under torchrun, rank 0 alone talks and writes
    say = (lambda _msg: None) if quiet or not main else (log or print)
    output = Path(output)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if output.exists() and not force:
        raise NvcInputError(f"{output} exists; pass --force to overwrite it")
    if output.is_dir():
        raise NvcInputError(f"{output} is a folder; give a file name such as out.nvc")
    if not output.parent.is_dir():      # checked now, not after minutes of fitting
        raise NvcInputError(f"the folder of {output} does not exist")
    if fps is not None:
        fps = Fraction(fps)
        if fps <= 0:
            raise NvcInputError(f"fps must be positive, got {fps}")

    if target_bpp is not None and keyframe_quality is not None:
        raise NvcInputError("give either --target-bpp or --keyframe-quality: the rate control chooses the quality")
    if sum(x is not None for x in (target_bpp, rate_lambda, quant_bits)) > 1:
        raise NvcInputError("give at most one of --target-bpp, --lambda and --quant-bits: each sets how the weights "
                         "are quantized")
    overrides = {"seed": seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    if quant_bits is not None:
        overrides.update(quant_bits=quant_bits, rate_lambda=None)
    if rate_lambda is not None:
        overrides["rate_lambda"] = rate_lambda
    chosen = resolve(preset, **overrides)
    interval = keyframe_interval or DEFAULT_KEYFRAME_INTERVAL
    kf_codec = KeyframeCodec(codec=keyframe_codec or DEFAULT_KEYFRAME_CODEC,
                             quality=chosen.keyframe_quality if keyframe_quality is None else keyframe_quality)

    sources = scan(inputs, skip_broken=skip_broken, warn=say)
    say(f"nvcodec {__version__}: {len(sources)} video(s), preset {preset!r}")
    videos = _read_videos(sources, size, fps, max_frames, say)
    n_pixels = sum(int(np.prod(v.frames.shape[:3])) for v in videos)
    n_bits = chosen.quant_bits
    settings = {
        "preset": preset, "size": size, "fps": str(fps) if fps else None, "max_frames": max_frames,
        "interval": interval, "keyframe_codec": kf_codec.to_json(), "quant_bits": n_bits,
        "rate_lambda": chosen.rate_lambda, "epochs": epochs, "seed": seed, "target_bpp": target_bpp,
    }
    workdir = Path(workdir) if workdir is not None else output.with_name(output.name + WORKDIR_SUFFIX)
    if main:
        _prepare_workdir(workdir, _settings_digest(settings, sources), resume)

    budget_bytes = None
    if target_bpp is not None:
        kf_codec, chosen, budget_bytes = _plan_target(videos, interval, kf_codec, chosen, target_bpp, n_pixels,
                                                      device, workdir, ctx, say)
    say(f"keyframes: {kf_codec.codec} ({kf_codec.encoder}) {kf_codec.mode}, quality {kf_codec.quality}, "
        f"one every {interval} frames")
    segments, decoded_kf = _code_keyframes(videos, interval, kf_codec, workdir / "keyframes" if main else None)
    model_cfg, fit_cfg = chosen.model_config(n_pixels, clip_length=interval), chosen.fit
    clips = build_clipset([(v.frames, kf, len(v.frames)) for v, kf in zip(videos, decoded_kf)],
                          interval, model_cfg.tile_h, model_cfg.tile_w)
    say(f"network: C0={model_cfg.c0}, tile {model_cfg.tile_w}x{model_cfg.tile_h}, "
        f"{count_parameters(model_cfg)} parameters; {clips.n_clips} clips of {interval} frames")
    result = fit(model_cfg, fit_cfg, clips, device=device, workdir=workdir, resume=resume, progress=not quiet)
    if not main:
        distributed.teardown(ctx)                              # rank 0 alone writes
        return None

    fit_info = {"preset": preset, "epochs": fit_cfg.epochs, "seed": seed,
                "fit_psnr": round(result.psnr, 4), "blend_psnr": round(result.blend_psnr, 4)}
    if chosen.rate_lambda is None and budget_bytes is None:
        tensors = quantize_state({name: t.numpy() for name, t in result.state_dict.items()}, n_bits)
        fit_info["quant_bits"] = n_bits
    else:
        from nvcodec.qat import rate_aware_quantize

        qat_steps = round(chosen.qat_fraction * result.steps)
        choice = rate_aware_quantize(model_cfg, result.state_dict, clips, n_pixels=n_pixels,
                                     lam=None if budget_bytes is not None else chosen.rate_lambda,
                                     budget_bytes=budget_bytes, qat_steps=qat_steps, lr=0.1 * fit_cfg.lr,
                                     batch_size=fit_cfg.batch_size, seed=seed, device=device, log=say,
                                     progress=not quiet)
        tensors = choice.tensors
        fit_info.update(quantization="rate-aware", rate_lambda=float(f"{choice.lam:.6g}"), qat_steps=qat_steps)
    metadata = _metadata(videos, interval, kf_codec, model_cfg.to_json(), (model_cfg.tile_h, model_cfg.tile_w), fit_info)
    n_bytes = write_nvc(output, metadata, segments, tensors)

    measured = measure_file(output, {v.source.name: v.frames for v in videos}, device=device)
    kf_psnr = _keyframe_psnr(videos, decoded_kf, interval)
    blend_psnr = _blend_psnr(videos, decoded_kf, interval)
    # The measured quality goes into the file (an ancillary chunk), for `nvcodec info`.
    n_bytes = record_quality(output, {"psnr": measured.psnr, "blend_psnr": blend_psnr, "keyframe_psnr": kf_psnr,
                                      "n_frames": sum(len(v.frames) for v in videos),
                                      "n_keyframes": sum(len(kf) for kf in decoded_kf)})
    bytes_by_part = dict(measured.bytes_by_part)
    bytes_by_part["container"] += n_bytes - sum(bytes_by_part.values())
    shutil.rmtree(workdir, ignore_errors=True)
    report = EncodeReport(
        output=str(output), n_videos=len(videos), n_frames=sum(len(v.frames) for v in videos),
        n_pixels=n_pixels, n_bytes=n_bytes, bytes_by_part=bytes_by_part,
        bpp=8.0 * n_bytes / n_pixels, psnr=measured.psnr, blend_psnr=blend_psnr,
        keyframe_psnr=kf_psnr, n_params=sum(int(t.q.size) for t in tensors), preset=preset,
        seconds=time.monotonic() - started, videos=measured.videos,
    )
    distributed.teardown(ctx)
    return report


def _plan_target(videos: Sequence[_Video], interval: int, kf_codec: KeyframeCodec, chosen, target_bpp: float,
                 n_pixels: int, device: str, workdir: Path, ctx, say: Callable[[str], None]):
    """Keyframe quality, network and weight budget for ``target_bpp``, chosen jointly.

    Each share of ``KEYFRAME_SHARES`` gives a keyframe quality (measured bytes) and a
    network sized for what is left; each distinct candidate gets a pilot fit of
    ``PILOT_FRACTION`` of the steps, its weights are quantized rate-aware to exactly
    the bytes left, and the candidate whose whole corpus decodes best wins. Returns
    (keyframe codec, preset, weight budget in bytes). The choice is kept in the work
    folder, so --resume does not run the pilots again.
    """
    import torch

    from nvcodec import distributed
    from nvcodec.fit import clips_psnr, fit, total_steps_of
    from nvcodec.model import DNeRV
    from nvcodec.qat import rate_aware_quantize

    kf_cache: dict[int, int] = {}

    def kf_bytes(q: int) -> int:
        if q not in kf_cache:
            kf_cache[q] = _keyframe_bytes(videos, interval, replace(kf_codec, quality=q))
        return kf_cache[q]

    candidates, seen = [], set()
    for share in KEYFRAME_SHARES:
        plan = plan_rate(target_bpp, n_pixels, kf_bytes, (kf_codec.min_quality, CODECS[kf_codec.codec].max_quality),
                         keyframe_share=share)
        # the network is sized for what rate-aware quantization costs per weight, not for plain quant_bits
        weight_bpp = min(max(plan.weight_bpp, 1e-6) * chosen.quant_bits / RATE_AWARE_BITS_PER_WEIGHT, 64.0)
        preset = replace(chosen, weight_bpp=weight_bpp, c0_min=1)
        key = (plan.keyframe_quality, preset.model_config(n_pixels, interval).c0)
        if key not in seen:
            seen.add(key)
            candidates.append((plan, preset, target_bpp * n_pixels / 8 - plan.keyframe_bytes - OVERHEAD_BYTES))

    choice_path = workdir / "rate_choice.json"
    main = ctx.is_main

    def from_rank0(value: int) -> int:          # every rank must take the same path (the pilots are collective)
        return int(distributed.all_reduce_sum([float(value if ctx.is_main else 0)], ctx, torch.device(device))[0])

    kept = from_rank0(json.loads(choice_path.read_text())["candidate"] if main and choice_path.exists() else -1)
    if len(candidates) == 1:
        best = 0
    elif kept >= 0:
        best = kept
    else:
        scores = []
        for plan, preset, budget in candidates:
            codec = replace(kf_codec, quality=plan.keyframe_quality)
            _, decoded_kf = _code_keyframes(videos, interval, codec, None)
            model_cfg = preset.model_config(n_pixels, clip_length=interval)
            clips = build_clipset([(v.frames, kf, len(v.frames)) for v, kf in zip(videos, decoded_kf)],
                                  interval, model_cfg.tile_h, model_cfg.tile_w)
            steps = max(1, round(PILOT_FRACTION * total_steps_of(preset.fit, clips.n_clips)))
            result = fit(model_cfg, replace(preset.fit, max_steps=steps), clips, device=device, progress=False)
            psnr = float("-inf")
            if main:
                q = rate_aware_quantize(model_cfg, result.state_dict, clips, n_pixels=n_pixels,
                                        budget_bytes=max(budget, 0.0), device=device, log=lambda _msg: None)
                model = DNeRV(model_cfg)
                model.load_state_dict({t.name: torch.from_numpy(t.dequantize()) for t in q.tensors})
                psnr = clips_psnr(model, clips, device=device)
                say(f"  candidate: keyframe quality {plan.keyframe_quality} "
                    f"({8 * plan.keyframe_bytes / n_pixels:.4f} bpp), C0={model_cfg.c0}, pilot of {steps} steps: "
                    f"{psnr:.2f} dB with {8 * sum(tensor_chunk_n_bytes(t) for t in q.tensors) / n_pixels:.4f} bpp of weights")
            scores.append(psnr)
        best = int(np.argmax(scores)) if main else 0
        if main:
            tmp = choice_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"candidate": best, "psnr": scores}))
            os.replace(tmp, choice_path)
    best = from_rank0(best)                     # rank 0 decides
    plan, preset, budget = candidates[best]
    say(f"rate plan for {target_bpp} bpp: keyframe quality {plan.keyframe_quality} "
        f"({8 * plan.keyframe_bytes / n_pixels:.4f} bpp), weights {8 * budget / n_pixels:.4f} bpp")
    return replace(kf_codec, quality=plan.keyframe_quality), preset, max(budget, 0.0)


def _keyframe_bytes(videos: Sequence[_Video], interval: int, codec: KeyframeCodec) -> int:
    """Bytes of every video's keyframes coded with ``codec`` (the rate plan's measurement)."""
    return sum(len(data) for v in videos
               for _, _, data in encode_keyframes(v.frames[keyframe_positions(len(v.frames), interval)], codec))


def _blend_psnr(videos: Sequence[_Video], decoded_kf: Sequence[np.ndarray], interval: int) -> float:
    """The floor every network must beat: (1-t)*start + t*end of the decoded keyframes, on whole frames."""
    from nvcodec.metrics import psnr_per_frame

    scores = []
    for video, kf in zip(videos, decoded_kf):
        _, start_kf, end_kf, frame, mask, _, t_local = clip_layout(len(video.frames), interval)
        for c in range(len(start_kf)):
            t = t_local[c, mask[c], None, None, None]
            blend = (1 - t) * kf[start_kf[c]].astype(np.float32) + t * kf[end_kf[c]].astype(np.float32)
            blend = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
            scores.append(psnr_per_frame(video.frames[frame[c, mask[c]]], blend))
    return float(np.mean(np.concatenate(scores)))


def _keyframe_psnr(videos: Sequence[_Video], decoded_kf: Sequence[np.ndarray], interval: int) -> float:
    from nvcodec.metrics import psnr_per_frame

    scores = [psnr_per_frame(v.frames[keyframe_positions(len(v.frames), interval)], kf)
              for v, kf in zip(videos, decoded_kf)]
    return float(np.mean(np.concatenate(scores)))
