"""What nvcodec does on a CUDA machine, measured in one short run (runs on CPU too, at toy sizes).

    python -m benchmarks.cuda_bench --out bench.json --budget 150 --corpus .corpus \\
        --size 160x128 --max-frames 300 --frames-cache RD_OUT/cache --presets medium --samples samples
    python -m benchmarks.cuda_bench plan --bench bench.json --presets medium --point-seconds 90 \\
        --seconds-left 300          # -> 'medium:epochs=E' for the RD harness

Parts, run in this order, each skipped with a note once ``--budget`` seconds are spent and
each recording its traceback instead of stopping the run (the JSON is rewritten after each):

``env``     torch, CUDA device, driver, cuDNN, the ffmpeg nvcodec uses and its AV1 codecs.
``fit``     fitting throughput of each ``--presets`` network, sized by the preset's rule for the
            whole RD corpus (read with ``benchmarks.rd.read_corpus``, cached where the RD harness
            will look), on the corpus's real clips (raw keyframes: throughput does not depend
            on their content): steady steps/s after a warm-up, pixel-steps/s (clips per step x
            frames per clip x tile pixels per second, as bench_fit.py counts), peak CUDA memory,
            with the bf16 autocast that nvcodec.runtime gives the fit on CUDA, then fp32. fp32 cannot be chosen
            through nvcodec's API, so for that measurement this script replaces
            ``nvcodec.runtime.autocast`` by a no-op context (fp32 for the fit and its evaluation;
            cuDNN may still use TF32 for convolutions, torch's default).
``encode``  ``nvcodec.encode`` of ``--samples`` end to end (``--e2e-preset``, default fast):
            wall time, rate and PSNR from its report.
``decode``  the .nvc written by ``encode``: ``nvcodec.decode`` and ``nvcodec.open().read()``
            frames/s on CUDA and on CPU, and how far apart the two decodes are (CUDA decodes
            under bf16 autocast, CPU in fp32): max/mean absolute difference, share of differing
            samples, PSNR between them, and each one's PSNR against the source frames.

``plan`` turns the measured throughput into rate points for ``benchmarks.rd``: a spec
without ``epochs=`` gets the epochs that fill ``--point-seconds`` of fitting (at 90 % of the
measured rate, the preset's rate-aware fine-tune included), fewer when ``--seconds-left``
cannot hold every point and its overhead (POINT_OVERHEAD_S each).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

INTERVAL = 8                  # nvcodec.presets.DEFAULT_KEYFRAME_INTERVAL
WARMUP_STEPS = 5              # steps left out of the steady rate (allocation, cuDNN choices)
PLAN_RATE_FACTOR = 0.9        # plan at 90 % of the measured steady rate
POINT_OVERHEAD_S = 90.0       # per RD point besides fitting: read (~15 s on 16 cores), keyframes (17 s
                              # for the 525 of the 160x128 corpus, SVT-AV1 single-threaded), weight
                              # coding, two decodes, metrics (~40 s): measured pieces, plus margin
FALLBACK_EPOCHS = 3           # when no throughput was measured for a preset


# ------------------------------------------------------------------ bookkeeping

class Run:
    """The JSON being built: parts in order, each timed, guarded by the budget and its own try."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.budget_s, self.started = out, budget_s, time.perf_counter()
        self.result: dict = {"budget_s": budget_s, "parts": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def part(self, name: str, fn, *args, **kwargs):
        if self.left() <= 0:
            self.result["parts"][name] = {"skipped": f"budget of {self.budget_s:.0f} s spent "
                                                     f"({self.elapsed():.0f} s elapsed)"}
            print(f"[{name}] skipped: budget spent", flush=True)
            self.save()
            return None
        print(f"[{name}] starting at {self.elapsed():.1f} s", flush=True)
        t0 = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
            entry = {"ok": True, **value}
        except Exception:  # noqa: BLE001 - a part's failure is a finding; the next part still runs
            value = None
            entry = {"ok": False, "traceback": traceback.format_exc()}
            print(f"[{name}] FAILED:\n{entry['traceback']}", flush=True)
        entry["wall_s"] = round(time.perf_counter() - t0, 3)
        self.result["parts"][name] = entry
        self.save()
        print(f"[{name}] done in {entry['wall_s']:.1f} s", flush=True)
        return value

    def save(self) -> None:
        self.result["elapsed_s"] = round(self.elapsed(), 3)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n")
        os.replace(tmp, self.out)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------ env

def part_env() -> dict:
    import torch

    from nvcodec import __version__, media

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "n_cpus": os.cpu_count(),
           "torch": torch.__version__, "torch_cuda": torch.version.cuda, "nvcodec": __version__,
           "cuda_available": torch.cuda.is_available(),
           "git_commit": os.environ.get("NVC_GIT_COMMIT", "unknown")}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update({"device_name": props.name, "capability": f"{props.major}.{props.minor}",
                    "multiprocessors": props.multi_processor_count,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "cudnn": torch.backends.cudnn.version(),
                    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                    "tf32_cudnn": torch.backends.cudnn.allow_tf32})
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            out["nvidia_smi"] = f"unavailable: {exc}"
    exe = media.ffmpeg_exe()
    version = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL).stdout.splitlines()
    codecs = media.ffmpeg_codecs(exe)
    out["ffmpeg"] = {"exe": exe, "version": version[0] if version else "unknown",
                     "has": {c: c in codecs for c in ("libsvtav1", "libaom-av1", "libdav1d", "libx264", "libx265")}}
    for key, value in out.items():
        print(f"  {key}: {value}")
    return out


# ------------------------------------------------------------------ fit throughput

@contextmanager
def _precision(name: str):
    """'as_shipped': nvcodec.runtime untouched (bf16 autocast on CUDA); 'fp32': its autocast replaced by a no-op."""
    import nvcodec.runtime as runtime_module

    if name == "as_shipped":
        yield
        return
    saved = runtime_module.autocast
    runtime_module.autocast = lambda device: nullcontext()
    try:
        yield
    finally:
        runtime_module.autocast = saved


def timed_fit(model_cfg, fit_cfg, clips, device: str, n_steps: int, precision: str) -> dict:
    """Fit ``n_steps`` steps; the steady rate leaves out the first WARMUP_STEPS steps."""
    import torch

    from nvcodec.fit import fit

    per_epoch = math.ceil(clips.n_clips / fit_cfg.batch_size)
    cfg = dataclasses.replace(fit_cfg, epochs=math.ceil(n_steps / per_epoch) + 1, max_steps=n_steps,
                              checkpoint_every=0)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with _precision(precision):
        result = fit(model_cfg, cfg, clips, device=device, progress=False)
    _sync(device)
    wall = time.perf_counter() - t0
    seconds = [h["seconds"] for h in result.history]
    skip = min(WARMUP_STEPS, len(seconds) - 2) if len(seconds) > 2 else 0
    steady_steps = len(seconds) - skip
    steady_s = seconds[-1] - (seconds[skip - 1] if skip else 0.0)
    steps_per_s = steady_steps / steady_s if steady_s > 0 else float("nan")
    pixels_per_step = fit_cfg.batch_size * model_cfg.clip_length * model_cfg.tile_h * model_cfg.tile_w
    label = {"as_shipped": "bf16 autocast (as shipped)", "fp32": "fp32 (nvcodec.runtime.autocast replaced)"}[precision]
    out = {"precision": label if device == "cuda" else "fp32 (CPU: nvcodec uses no autocast there)",
           "steps": result.steps, "steady_steps": steady_steps, "steady_s": round(steady_s, 4),
           "steps_per_s": round(steps_per_s, 3),
           "mpixel_steps_per_s": round(steps_per_s * pixels_per_step / 1e6, 3),
           "first_steps_s": round(seconds[skip - 1], 4) if skip else 0.0,
           "fit_loop_s": round(result.seconds, 3), "fit_call_wall_s": round(wall, 3),
           "final_train_psnr": round(result.history[-1]["psnr"], 3) if result.history else None}
    if device == "cuda":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = f", peak {out['peak_cuda_mib']} MiB" if device == "cuda" else ""
    print(f"    {out['precision']}: {result.steps} steps, {out['steps_per_s']} steps/s steady, "
          f"{out['mpixel_steps_per_s']} Mpix*step/s{peak}", flush=True)
    return out


def load_corpus(args):
    """The RD corpus (benchmarks.rd.Corpus), read exactly as benchmarks.rd reads it, cached where rd looks."""
    from benchmarks.rd import read_corpus

    cache = Path(args.frames_cache) if args.frames_cache else None
    return read_corpus(Path(args.corpus), "native", args.size, args.max_frames, cache,
                       log=lambda msg: print(msg, flush=True))


def part_fit(run: Run, args) -> dict:
    import torch

    from benchmarks.rd import parse_rate_point
    from nvcodec.corpus import build_clipset, keyframe_positions
    from nvcodec.config import count_parameters
    from nvcodec.presets import resolve

    device = _device()
    t0 = time.perf_counter()
    corpus = load_corpus(args)
    read_s = time.perf_counter() - t0
    out = {"device": device, "corpus": {"path": str(corpus.path), "n_videos": len(corpus.names),
                                        "n_frames": corpus.n_frames, "n_pixels": corpus.n_pixels,
                                        "frames_sha256": corpus.sha256, "read_s": round(read_s, 2)},
           "presets": []}
    if args.expect_sha:
        out["corpus"]["expected_sha256"] = args.expect_sha
        out["corpus"]["matches_expected"] = corpus.sha256 == args.expect_sha
        print(f"  frames sha256 {corpus.sha256[:16]}: "
              + ("matches the committed table's" if corpus.sha256 == args.expect_sha
                 else f"DIFFERS from the committed table's {args.expect_sha[:16]}"), flush=True)
    videos = [(f, f[keyframe_positions(len(f), INTERVAL)], len(f)) for f in corpus.frames.values()]
    specs = args.presets
    for i, spec in enumerate(specs):
        preset_name, settings = parse_rate_point(spec)
        entry: dict = {"spec": spec}
        out["presets"].append(entry)
        try:
            overrides = {k: settings[k] for k in ("quant_bits", "rate_lambda") if k in settings}
            preset = resolve(preset_name, **overrides)
            model_cfg = preset.model_config(corpus.n_pixels, clip_length=INTERVAL)
            clips = build_clipset(videos, INTERVAL, model_cfg.tile_h, model_cfg.tile_w)
            fit_cfg = preset.fit
            per_epoch = math.ceil(clips.n_clips / fit_cfg.batch_size)
            total = fit_cfg.epochs * per_epoch
            entry.update({"c0": model_cfg.c0, "tile": [model_cfg.tile_h, model_cfg.tile_w],
                          "n_params": count_parameters(model_cfg), "batch_size": fit_cfg.batch_size,
                          "n_clips": clips.n_clips, "steps_per_epoch": per_epoch,
                          "preset_epochs": fit_cfg.epochs, "preset_max_steps": fit_cfg.max_steps,
                          "preset_total_steps": min(total, fit_cfg.max_steps) if fit_cfg.max_steps else total,
                          "qat_fraction": getattr(preset, "qat_fraction", 0.0)})
            print(f"  {spec}: C0={model_cfg.c0}, {entry['n_params']} params, tile {model_cfg.tile_w}x"
                  f"{model_cfg.tile_h}, {clips.n_clips} clips ({per_epoch} steps/epoch)", flush=True)
            sub = clips.subset(np.arange(min(clips.n_clips, args.fit_clips)))
            share = run.left() / (len(specs) - i) - args.reserve_s / len(specs)
            cap = args.max_fit_steps or 10**6
            probe = timed_fit(model_cfg, fit_cfg, sub, device, min(cap, 20), "as_shipped")
            entry["probe"] = probe
            rate = probe["steps_per_s"]
            main_s = max(2.0, min(args.fit_seconds, 0.5 * share))
            entry["as_shipped"] = timed_fit(model_cfg, fit_cfg, sub, device,
                                      min(cap, int(max(WARMUP_STEPS + 5, rate * main_s))), "as_shipped")
            rate = entry["as_shipped"]["steps_per_s"]
            if device == "cuda" and run.left() > args.reserve_s:
                fp32_s = max(2.0, min(args.fit_seconds / 2, 0.25 * share))
                entry["fp32"] = timed_fit(model_cfg, fit_cfg, sub, device,
                                          min(cap, int(max(WARMUP_STEPS + 5, rate * fp32_s))), "fp32")
                entry["as_shipped_speedup_over_fp32"] = round(rate / entry["fp32"]["steps_per_s"], 3)
            entry["steps_per_s"] = rate
        except Exception:  # noqa: BLE001 - record and go on with the next preset
            entry["traceback"] = traceback.format_exc()
            print(f"  {spec} FAILED:\n{entry['traceback']}", flush=True)
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
    return out


# ------------------------------------------------------------------ end-to-end encode

def part_encode(args, work: Path) -> dict:
    import nvcodec

    device = _device()
    nvc = work / "e2e.nvc"
    kwargs = {"epochs": args.e2e_epochs} if args.e2e_epochs else {}
    t0 = time.perf_counter()
    rep = nvcodec.encode([args.samples], nvc, nvcodec.build_config(args.e2e_preset, **kwargs), device=device, quiet=True,
                         force=True, workdir=work / "e2e.work")
    wall = time.perf_counter() - t0
    r = rep.to_json()
    out = {"device": device, "preset": args.e2e_preset, "nvc": str(nvc), "wall_s": round(wall, 2),
           **{k: r[k] for k in ("n_videos", "n_frames", "n_pixels", "n_bytes", "bpp", "psnr", "blend_psnr",
                                "keyframe_psnr", "n_params", "seconds", "bytes_by_part")}}
    if kwargs:
        out["epochs"] = args.e2e_epochs
    print(f"  {out['n_frames']} frames, {out['n_params']} params: {out['bpp']:.4f} bpp, {out['psnr']:.2f} dB "
          f"(floor {out['blend_psnr']:.2f}), {wall:.1f} s", flush=True)
    return out


# ------------------------------------------------------------------ decode CUDA vs CPU

def _source_frames(samples: Path, names) -> dict:
    from nvcodec.corpus import scan
    from nvcodec.media import read_frames

    paths = {s.name: s.path for s in scan([samples], warn=lambda msg: None)}
    return {n: np.stack(list(read_frames(paths[n]))) for n in names}


def part_decode(args, nvc_path: Path, work: Path) -> dict:
    import nvcodec
    from nvcodec.metrics import psnr_per_frame

    devices = ["cuda", "cpu"] if _device() == "cuda" else ["cpu"]
    out: dict = {"nvc": str(nvc_path), "devices": {}}
    decoded: dict[str, dict] = {}
    for dev in devices:
        with nvcodec.open(nvc_path, device=dev) as nvc:          # warm-up: network build, CUDA/cuDNN init
            nvc.read(nvc.videos[0].name, frames=slice(0, INTERVAL))
        t0 = time.perf_counter()
        rep = nvcodec.decode(nvc_path, work / f"decoded-{dev}", device=dev)
        decode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with nvcodec.open(nvc_path, device=dev) as nvc:
            decoded[dev] = {v.name: nvc.read(v.name) for v in nvc.videos}
        read_s = time.perf_counter() - t0
        n = sum(len(f) for f in decoded[dev].values())
        out["devices"][dev] = {"decode_to_y4m_fps": round(rep.n_frames / decode_s, 2), "decode_s": round(decode_s, 3),
                               "read_fps": round(n / read_s, 2), "read_s": round(read_s, 3), "n_frames": n}
        print(f"  {dev}: nvcodec.decode {rep.n_frames / decode_s:.1f} frames/s, open().read {n / read_s:.1f} frames/s",
              flush=True)
    names = list(decoded[devices[0]])
    source = _source_frames(Path(args.samples), names)
    for dev in devices:
        scores = np.concatenate([psnr_per_frame(source[n], decoded[dev][n]) for n in names])
        out["devices"][dev]["psnr_vs_source"] = round(float(scores.mean()), 4)
    if len(devices) == 2:
        a = np.concatenate([decoded["cuda"][n].reshape(-1) for n in names]).astype(np.int16)
        b = np.concatenate([decoded["cpu"][n].reshape(-1) for n in names]).astype(np.int16)
        diff = np.abs(a - b)
        between = np.concatenate([psnr_per_frame(decoded["cpu"][n], decoded["cuda"][n]) for n in names])
        out["cuda_vs_cpu"] = {"identical": bool(diff.max() == 0), "max_abs_diff": int(diff.max()),
                              "mean_abs_diff": round(float(diff.mean()), 5),
                              "share_of_samples_differing": round(float((diff > 0).mean()), 6),
                              "psnr_between_mean_db": round(float(between.mean()), 3),
                              "psnr_between_min_db": round(float(between.min()), 3),
                              "psnr_vs_source_delta_db": round(out["devices"]["cuda"]["psnr_vs_source"]
                                                               - out["devices"]["cpu"]["psnr_vs_source"], 4)}
        print(f"  CUDA vs CPU: {out['cuda_vs_cpu']}", flush=True)
    return out


# ------------------------------------------------------------------ plan

def plan(bench: dict, specs: list[str], point_seconds: float, seconds_left: float, log=print) -> list[str]:
    """RD rate points with epochs that fit the time: see the module docstring."""
    from benchmarks.rd import parse_rate_point

    fit = (bench.get("parts", {}).get("fit") or {})
    measured = {e["spec"]: e for e in fit.get("presets", []) if e.get("steps_per_s")}
    todo = [s for s in specs if s]
    fit_s = min(point_seconds, seconds_left / max(len(todo), 1) - POINT_OVERHEAD_S)
    out = []
    for spec in todo:
        _, settings = parse_rate_point(spec)
        if "epochs" in settings:
            out.append(spec)
            log(f"{spec}: kept as given")
            continue
        entry = measured.get(spec)
        if entry is None:
            log(f"{spec}: no throughput measured: epochs={FALLBACK_EPOCHS} (a guess)")
            out.append(f"{spec}:epochs={FALLBACK_EPOCHS}")
            continue
        if fit_s < 10:
            log(f"{spec}: dropped, {seconds_left:.0f} s left cannot hold its overhead ({POINT_OVERHEAD_S:.0f} s) "
                f"and 10 s of fitting")
            continue
        # a rate-aware quantization fine-tune (nvcodec.qat) adds qat_fraction x the fit's steps
        steps = PLAN_RATE_FACTOR * entry["steps_per_s"] * fit_s / (1 + entry.get("qat_fraction", 0.0))
        epochs = max(1, int(steps // entry["steps_per_epoch"]))
        if epochs >= entry["preset_epochs"] and entry["preset_total_steps"] <= steps:
            log(f"{spec}: the preset's own schedule ({entry['preset_total_steps']} steps) fits in {fit_s:.0f} s")
            out.append(spec)
            continue
        log(f"{spec}: {entry['steps_per_s']:.2f} steps/s x {fit_s:.0f} s x {PLAN_RATE_FACTOR} -> epochs={epochs} "
            f"({epochs * entry['steps_per_epoch']} steps)")
        out.append(f"{spec}:epochs={epochs}")
    return out


# ------------------------------------------------------------------ main

def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.rd import parse_size

    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON written here (after every part)")
    p.add_argument("--budget", type=float, default=150.0, help="seconds for all parts together")
    p.add_argument("--parts", type=_csv, default=["env", "fit", "encode", "decode"])
    p.add_argument("--corpus", default=".corpus", help="the RD corpus folder (fit part)")
    p.add_argument("--size", type=parse_size, default=(160, 128))
    p.add_argument("--max-frames", type=int, default=300)
    p.add_argument("--frames-cache", default=None, help="benchmarks.rd's OUT/cache, to read the corpus once")
    p.add_argument("--expect-sha", default=None, help="frames sha256 of the committed RD table, to compare")
    p.add_argument("--presets", type=_csv, default=["medium"], help="rate point specs whose network to time")
    p.add_argument("--fit-seconds", type=float, default=15.0, help="target seconds of each bf16 timing")
    p.add_argument("--fit-clips", type=int, default=256, help="clips of the corpus the timing fits draw from")
    p.add_argument("--max-fit-steps", type=int, default=0, help="cap on each timing's steps (0: none)")
    p.add_argument("--reserve-s", type=float, default=60.0, help="seconds kept for the encode and decode parts")
    p.add_argument("--samples", default="samples", help="folder for the end-to-end encode")
    p.add_argument("--e2e-preset", default="fast")
    p.add_argument("--e2e-epochs", type=int, default=0, help="epochs override for the encode part (0: preset's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def build_plan_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda_bench plan")
    p.add_argument("--bench", required=True, help="JSON written by the bench")
    p.add_argument("--presets", type=_csv, required=True)
    p.add_argument("--point-seconds", type=float, default=90.0, help="fitting seconds per rate point")
    p.add_argument("--seconds-left", type=float, required=True, help="seconds the RD run may take in all")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plan"]:
        a = build_plan_parser().parse_args(argv[1:])
        path = Path(a.bench)
        bench = json.loads(path.read_text()) if path.exists() else {}
        specs = plan(bench, a.presets, a.point_seconds, a.seconds_left,
                     log=lambda msg: print(f"plan: {msg}", file=sys.stderr))
        print(",".join(specs))
        return 0
    args = build_parser().parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    run = Run(Path(args.out), args.budget)
    run.result["argv"] = argv
    with tempfile.TemporaryDirectory(prefix="cuda_bench-") as tmp:
        work = Path(tmp)
        for name in args.parts:
            if name == "env":
                run.part("env", part_env)
            elif name == "fit":
                run.part("fit", part_fit, run, args)
            elif name == "encode":
                run.part("encode", part_encode, args, work)
            elif name == "decode":
                nvc = work / "e2e.nvc"
                if nvc.exists():
                    run.part("decode", part_decode, args, nvc, work)
                else:
                    run.result["parts"]["decode"] = {"skipped": "no .nvc: the encode part did not write one"}
                    run.save()
            else:
                raise SystemExit(f"unknown part {name!r}; known: env, fit, encode, decode")
    print(f"wrote {args.out} after {run.elapsed():.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
