"""Decode speed: frames per second of ``nvcodec.decode`` to y4m, per stage, on the CPU and on CUDA.

The speed of a decode depends on the network's shape and the frame size, not on how
long it was fitted: the benchmark file is a short fit (``--epochs 1``) of two corpus
clips at 320x240 with the ``fast`` preset (plain 8-bit weights), made once and kept in
``--workdir``; ``--kind`` chooses what fast writes for them (``KINDS``: the motion floor, as these
two clips cannot pay for a network), its refining network, or its network without coded motion. Each decode writes y4m files to a temporary folder; stages are timed by
wrapping the decoder's own steps (no copy of its code):

    keyframes   ffmpeg decode of the keyframe segments + YUV -> RGB (nvcodec.keyframes)
    weights     entropy decoding of the weights, building the network
    clips       cutting decoded keyframes into tiles and clips
    network     the D-NeRV forward passes (nvcodec.runtime.predict)
    untile      stitching tiles into frames
    warp        the network's inputs: keyframes warped by the coded motion (FORMAT.md 14.4)
    floor       a file without a network: the motion floor's integer warp and fusion (14.3)
    write       RGB -> YCbCr 4:4:4 and the y4m file

fps = decoded frames / wall seconds of the whole decode (the median of ``--repeat``
runs); ``cpu s`` is the process's CPU time, which a loaded machine inflates less than
the wall time. The machine's load average is printed beside: on a shared machine,
compare figures from one run (ratios), not across runs.

    nice -n 10 python -m benchmarks.bench_decode                     # CPU, torch's default threads
    nice -n 10 python -m benchmarks.bench_decode --threads 1 --threads 2
    python -m benchmarks.bench_decode --device cuda                  # where CUDA is present
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch

import nvcodec
from nvcodec import decoder as decoder_module
from nvcodec import media as media_module
from nvcodec import motion as motion_module
from nvcodec import runtime as runtime_module

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
CLIPS = ("sam2_01_dog.mp4", "cotracker_bear.mp4")
SIZE = (320, 240)
STAGES = ("keyframes", "weights", "warp", "clips", "network", "untile", "floor", "write")
# The files measured: what ``fast`` writes for these two clips (too few pixels for its network: the
# motion floor), fast's network that refines coded motion (the refiner alone, no trunk, paid for by a
# weight rate override), and fast's network without coded motion (the smallest trunk, C0 1, with the small head).
KINDS = {"fast": {}, "fast-refine": {"weight_bpp": 1.0},
         "fast-no-motion": {"motion": False, "weight_bpp": 1.0}}


def make_file(path: Path, max_frames: int, kind: str = "fast") -> Path:
    """The benchmark file: two corpus clips at 320x240, fast preset (``KINDS``), one epoch, 8-bit weights."""
    if not path.exists():
        from nvcodec.presets import build_config

        nvcodec.encode([CORPUS / name for name in CLIPS], path,
                       build_config("fast", epochs=1, quant_bits=8, **KINDS[kind]),
                       size=SIZE, max_frames=max_frames, quiet=True)
    return path


@contextlib.contextmanager
def stage_timers():
    """Wrap the decoder's steps with timers; yields the dict of seconds per stage."""
    seconds = dict.fromkeys(STAGES, 0.0)

    def timed(stage, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - start
        return wrapper

    def timed_iter(stage, fn):
        def wrapper(*args, **kwargs):
            it = fn(*args, **kwargs)
            try:
                while True:
                    start = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        seconds[stage] += time.perf_counter() - start
                    yield item
            finally:
                it.close()              # the decoder closes a stream early: pass it on (ffmpeg exits)
        return wrapper

    patches = [(decoder_module, "iter_keyframes", timed_iter("keyframes", decoder_module.iter_keyframes)),
               (decoder_module, "_build_network", timed("weights", decoder_module._build_network)),
               (decoder_module, "build_clip_range", timed("clips", decoder_module.build_clip_range)),
               (decoder_module, "merge_tiles", timed("untile", decoder_module.merge_tiles)),
               (decoder_module, "_warped_clips", timed("warp", decoder_module._warped_clips)),
               (motion_module, "floor_clip_frames", timed("floor", motion_module.floor_clip_frames)),
               (runtime_module, "predict", timed_iter("network", runtime_module.predict)),
               (media_module.VideoWriter, "write", timed("write", media_module.VideoWriter.write))]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, new in patches:
            setattr(obj, name, new)
        yield seconds
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


def flops_per_tile_frame(nvc) -> float:
    """Multiply-adds x 2 of one forward pass per tile-frame (convolutions and matmuls; torch's counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = nvc.network()
    cfg = model.cfg
    kf = torch.zeros(2, 3, cfg.tile_h, cfg.tile_w)
    t = torch.linspace(0, 1, cfg.clip_length).repeat(2, 1)
    warped = torch.zeros(2, cfg.clip_length, 2, 3, cfg.tile_h, cfg.tile_w) if cfg.motion else None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(kf, kf, t, t, warped)
    return counter.get_total_flops() / (2 * cfg.clip_length)


def bench(path: Path, device: str, repeat: int, frames: slice) -> dict:
    """Decode ``frames`` of every video of ``path`` ``repeat`` times; the median run's wall and CPU
    seconds and its stages."""
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out, stage_timers() as seconds:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            report = nvcodec.decode(path, out, device=device, frames=frames)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            runs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                         "n_frames": report.n_frames, "stages": dict(seconds)})
    runs.sort(key=lambda r: r["wall_s"])
    median = runs[len(runs) // 2]
    median["wall_all_s"] = [round(r["wall_s"], 2) for r in runs]
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", type=Path, help="an .nvc to decode (default: make the 320x240 one)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nvcodec-bench-decode")
    parser.add_argument("--max-frames", type=int, default=32, help="frames per clip of the made file")
    parser.add_argument("--device", action="append", help="cpu, cuda (repeatable; default: cpu, and cuda if present)")
    parser.add_argument("--threads", type=int, action="append", help="CPU threads (repeatable; default: torch's)")
    parser.add_argument("--kind", choices=sorted(KINDS), default="fast",
                        help="which file to make (KINDS; ignored with FILE)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", default=":", help="decode only frames A:B of every video (default: all)")
    args = parser.parse_args()
    start, _, stop = args.frames.partition(":")
    frames = slice(int(start) if start else None, int(stop) if stop else None)

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.file or make_file(args.workdir / f"{args.kind}_{SIZE[0]}x{SIZE[1]}_{args.max_frames}f.nvc",
                                  args.max_frames, args.kind)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    with nvcodec.open(path) as nvc:
        md = nvc.metadata
        sizes = sorted({f"{v.width}x{v.height}" for v in nvc.videos})
        network = (f"tile {md['tile']['width']}x{md['tile']['height']}, C0={md['model']['c0']}"
                   f"{', coded motion' if md['model'].get('motion') else ''}; "
                   f"{flops_per_tile_frame(nvc) / 1e6:.1f} MFLOP per tile-frame") if md["model"] else \
            "no network: the motion floor (keyframes + coded motion)"
        print(f"{path}: {len(nvc.videos)} video(s) {', '.join(sizes)}, {sum(v.n_frames for v in nvc.videos)} frames; "
              f"preset {md.get('fit', {}).get('preset', '?')}; {network}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'device':<8} {'threads':>7} {'frames':>6} {'wall s':>7} {'fps':>6} {'cpu s':>7}  "
          + " ".join(f"{s:>9}" for s in STAGES) + "   (stage seconds; all runs' wall s)")
    default_threads = torch.get_num_threads()
    for device in devices:
        for threads in (args.threads or [default_threads]) if device == "cpu" else [default_threads]:
            torch.set_num_threads(threads)
            r = bench(path, device, args.repeat, frames)
            name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
            print(f"{device:<8} {threads:>7} {r['n_frames']:>6} {r['wall_s']:>7.2f} {r['n_frames'] / r['wall_s']:>6.1f} "
                  f"{r['cpu_s']:>7.2f}  " + " ".join(f"{r['stages'][s]:>9.2f}" for s in STAGES)
                  + f"   {r['wall_all_s']}  {name if name != 'cpu' else ''}".rstrip())
    torch.set_num_threads(default_threads)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
