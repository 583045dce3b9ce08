"""Memory and throughput of the frame store (``nvcodec.store``): the encoder reads frames from disk.

    nice -n 10 python -m benchmarks.bench_store --corpus ../shared/corpus --work /tmp/bench_store \\
        --clips 10 --clips 40 --out benchmarks/results/store
    nice -n 10 python -m benchmarks.bench_store --corpus ../shared/corpus --work /tmp/bench_store1k \\
        --clips 1000 --frames 8 --max-steps 20 --no-fit --out benchmarks/results/store    # 1 000 short clips

1. A corpus made from the corpus clips (nothing committed but this generator, ``make_corpus``):
   clip i takes source ``i mod n_sources`` (sorted names), read at ``SOURCE_SIZE``, from frame
   ``3 * (i // n_sources)`` on (looping a short source back and forth), a 160x128 window at a
   seeded offset, mirrored on odd passes, ``--frames`` frames, x264 CRF 18. The first N clips
   of the largest set are the smaller sets (folders of links). ``benchmarks/bench_scaling.py``
   uses the same generator to cut distinct segments (``stride`` = the clip length, no looping).
2. Peak RSS of an encode of each set: a child process runs ``nvcodec.encode`` (what
   ``nvcodec encode`` calls) with the ``tiny`` preset, ``--max-steps`` fit steps and the fastest
   SVT-AV1 preset for the keyframes (the memory, not the rate, is measured); a wrapper process
   reports ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: the largest resident set of the
   encoder and of every ffmpeg it ran. ``--warped store`` / ``--warped memory``: ``tiny`` with
   ``motion=True`` (a network that consumes coded motion), its warped keyframes read from the
   frame store or, for comparison, held in memory as before they moved there.
3. Fit steps/s on the smallest set, the same fit (same clips, seed and steps) with the frames
   in memory (numpy arrays) and read on demand from the store, alternated ``--rounds`` times;
   the store's page cache is dropped (``posix_fadvise DONTNEED``) before each store run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import report
from nvcodec.corpus import scan

SOURCE_SIZE = (192, 160)      # sources are read a little larger than the clips, then cropped
CLIP_SIZE = (160, 128)        # (width, height)
KEYFRAME_SPEED = 8            # SVT-AV1's fastest preset: keyframe coding time is not what is measured


def _source_frames(path: Path, n_frames: int, first: int) -> np.ndarray:
    """``n_frames`` frames from ``first`` on at SOURCE_SIZE, a short source looped back and forth."""
    from nvcodec.media import read_frames

    frames = np.stack(list(read_frames(path, size=SOURCE_SIZE, max_frames=first + n_frames)))
    bounce = np.concatenate([frames, frames[::-1]]) if len(frames) > 1 else frames
    index = (first + np.arange(n_frames)) % len(bounce)
    return bounce[index]


def clip_plan(lengths: list[int], n_clips: int, n_frames: int, stride: int, loop: bool) -> list[tuple[int, int]]:
    """(source, pass) of each clip: pass p of every source in turn (pass p starts at frame
    ``stride * p``). With ``loop`` every source serves every pass (a short one is looped back and
    forth), so clip i is (i mod n_sources, i // n_sources); without it a source serves only the
    passes its ``lengths`` hold whole: distinct segments cut from the longer videos."""
    plan, p = [], 0
    while len(plan) < n_clips:
        eligible = [s for s, n in enumerate(lengths) if loop or stride * p + n_frames <= n]
        if not eligible:
            raise SystemExit(f"the corpus holds only {len(plan)} distinct clips of {n_frames} frames")
        plan += [(s, p) for s in eligible]
        p += 1
    return plan[:n_clips]


def make_corpus(corpus: Path, out: Path, n_clips: int, n_frames: int, seed: int, *, stride: int = 3,
                loop: bool = True) -> list[Path]:
    """Write ``n_clips`` clips of ``n_frames`` frames at CLIP_SIZE under ``out`` (kept if present),
    as ``clip_plan`` assigns them; a clip on an odd pass is mirrored."""
    from nvcodec.media import VideoWriter

    scanned = scan([corpus], warn=lambda _m: None)
    sources = [s.path for s in scanned]
    plan = clip_plan([s.info.n_frames for s in scanned], n_clips, n_frames, stride, loop)
    rng = np.random.default_rng(seed)
    offsets = [(int(rng.integers(0, SOURCE_SIZE[0] - CLIP_SIZE[0] + 1)),
                int(rng.integers(0, SOURCE_SIZE[1] - CLIP_SIZE[1] + 1))) for _ in range(n_clips)]
    paths = [out / f"clip_{i:05d}.mp4" for i in range(n_clips)]
    out.mkdir(parents=True, exist_ok=True)
    for s, source in enumerate(sources):                  # one read of each source for all its clips
        mine = [i for i, (source_i, _) in enumerate(plan) if source_i == s and not paths[i].exists()]
        if not mine:
            continue
        passes = max(plan[i][1] for i in mine)
        frames = _source_frames(source, n_frames + stride * passes, 0)
        for i in mine:
            p = plan[i][1]
            (x, y), clip = offsets[i], frames[stride * p:stride * p + n_frames]
            clip = clip[:, y:y + CLIP_SIZE[1], x:x + CLIP_SIZE[0]]
            if p % 2:
                clip = clip[:, :, ::-1]
            with VideoWriter(paths[i], "mp4", CLIP_SIZE[0], CLIP_SIZE[1], 25, 1, crf=18) as writer:   # atomic
                for frame in clip:
                    writer.write(np.ascontiguousarray(frame))
    return paths


def subset_folder(paths: list[Path], n: int, folder: Path) -> Path:
    """A folder of links to the first ``n`` clips."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths[:n]:
        link = folder / p.name
        if not link.exists():
            link.symlink_to(p.resolve())
    return folder


# How a motion network's warped keyframes are held (``--warped``): in the frame store (the encoder's
# path) or in memory (``FrameStore.hold_warped`` bypassed: the path before they moved to the store).
WARPED_HOLDING = ("store", "memory")


def encode_config(max_steps: int, motion: bool = False):
    from nvcodec.presets import build_config

    config = build_config("tiny", epochs=1, max_steps=max_steps, motion=motion)
    return dataclasses.replace(config, keyframe_codec=dataclasses.replace(config.keyframe_codec,
                                                                          speed=KEYFRAME_SPEED))


def _child_encode(folder: str, output: str, max_steps: int, warped: str | None) -> None:
    """The measured process: one encode, its report as JSON on stdout. ``warped`` (WARPED_HOLDING):
    a network that consumes coded motion, its warped keyframes held there; None: no motion."""
    import nvcodec
    from nvcodec.store import FrameStore

    if warped == "memory":
        FrameStore.hold_warped = lambda _self, _v, array: array
    report_ = nvcodec.encode([folder], output, encode_config(max_steps, motion=warped is not None),
                             size=CLIP_SIZE, device="cpu",
                             force=True, quiet=True)
    print(json.dumps(report_.to_json()))


def _child_rss(cmd: list[str]) -> None:
    """The wrapper: run ``cmd``, then print its stdout and the largest RSS of its process tree (KiB)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(proc.returncode)
    print(json.dumps({"stdout": proc.stdout, "max_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


def measure_encode(folder: Path, output: Path, max_steps: int, warped: str | None = None) -> dict:
    encode = [sys.executable, "-m", "benchmarks.bench_store", "_encode", str(folder), str(output), str(max_steps),
              warped or "-"]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_store", "_rss", "--", *encode],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"encode of {folder} failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout)
    encoded = json.loads(got["stdout"])
    return {"n_videos": encoded["n_videos"], "n_frames": encoded["n_frames"], "max_rss_mib": got["max_rss_kib"] / 1024,
            "seconds": round(time.monotonic() - started, 1), "bpp": encoded["bpp"], "psnr": encoded["psnr"]}


def _drop_cache(paths) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def fit_throughput(folder: Path, store_dir: Path, preset_name: str, steps: int, rounds: int) -> dict:
    """Steps/s of one fit with frames in memory and from the store (keyframes: the source frames at
    the keyframe positions; the read cost, not the quality, is measured)."""
    import torch

    from nvcodec.corpus import build_clipset, keyframe_positions
    from nvcodec.fit import fit
    from nvcodec.presets import build_config
    from nvcodec.store import open_store

    torch.set_num_threads(1)
    config = build_config(preset_name)
    store = open_store(store_dir, scan([folder], warn=lambda _m: None), size=CLIP_SIZE, log=lambda _m: None)
    interval = config.keyframe_interval
    n_pixels = sum(int(np.prod(v.shape[:3])) for v in store.videos)
    model_cfg = config.preset.model_config(n_pixels, clip_length=interval)
    fit_cfg = dataclasses.replace(config.preset.fit, epochs=1, max_steps=steps, checkpoint_every=0)

    def clips(frames_of):
        return build_clipset([(frames_of(v), v[keyframe_positions(len(v), interval)], len(v)) for v in store.videos],
                             interval, model_cfg.tile_h, model_cfg.tile_w)

    in_memory, on_disk = clips(lambda v: v.read()), clips(lambda v: v)
    runs = {"memory": [], "store": []}
    for _ in range(rounds):
        for name, clipset in (("memory", in_memory), ("store", on_disk)):
            if name == "store":
                _drop_cache(v.path for v in store.videos)
            result = fit(model_cfg, fit_cfg, clipset, device="cpu", progress=False)
            runs[name].append(result.steps / result.seconds)
    best = {name: max(values) for name, values in runs.items()}
    return {"preset": preset_name, "n_clips": in_memory.n_clips, "steps": steps, "batch_size": fit_cfg.batch_size,
            "steps_per_s": runs, "best_steps_per_s": best, "store_over_memory": best["store"] / best["memory"]}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_encode"]:
        return _child_encode(argv[1], argv[2], int(argv[3]), None if argv[4] == "-" else argv[4])
    if argv[:1] == ["_rss"]:
        return _child_rss(argv[2:])
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_store", description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="where the generated clips and outputs go")
    ap.add_argument("--clips", type=int, action="append", help="corpus sizes (repeatable; default 10 and 40)")
    ap.add_argument("--frames", type=int, default=150, help="frames per clip")
    ap.add_argument("--max-steps", type=int, default=100, help="fit steps of each measured encode")
    ap.add_argument("--fit-steps", type=int, default=60, help="steps of each throughput fit")
    ap.add_argument("--fit-preset", action="append", help="presets of the throughput fit (default: tiny, fast)")
    ap.add_argument("--no-fit", action="store_true", help="measure the encodes only (no throughput fit)")
    ap.add_argument("--warped", action="append", choices=WARPED_HOLDING,
                    help="encode with a network that consumes coded motion, its warped keyframes held in the "
                         "store or in memory (repeatable: each set is encoded once per choice)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    sizes = sorted(args.clips or [10, 40])
    clip_dir = args.work / f"clips_{args.frames}f"
    paths = make_corpus(args.corpus, clip_dir, sizes[-1], args.frames, args.seed)
    result = {"command": shlex.join(["python", "-m", "benchmarks.bench_store", *argv]),
              "clip_size": list(CLIP_SIZE), "frames_per_clip": args.frames,
              "store_bytes_per_frame": CLIP_SIZE[0] * CLIP_SIZE[1] * 3, "encodes": [], "fit": []}
    for n in sizes:
        folder = subset_folder(paths, n, args.work / f"set_{args.frames}f_{n}")
        for warped in args.warped or [None]:
            row = {"n_clips": n, "warped": warped,
                   **measure_encode(folder, args.work / f"set_{n}.nvc", args.max_steps, warped)}
            result["encodes"].append(row)
            print(f"{n} clips x {args.frames} frames{f', warped in {warped}' if warped else ''}: "
                  f"peak RSS {row['max_rss_mib']:.0f} MiB, {row['seconds']} s", flush=True)
    for warped in (args.warped or [None]) if len(sizes) > 1 else []:
        rows = [r for r in result["encodes"] if r["warped"] == warped]
        growth = rows[-1]["max_rss_mib"] - rows[0]["max_rss_mib"]
        result.setdefault("rss_growth_mib", {})[warped or "no motion"] = growth
        print(f"peak RSS grows {growth:.0f} MiB from {sizes[0]} to {sizes[-1]} clips"
              f"{f' (warped in {warped})' if warped else ''}; goal: at most 150 MB")
    for preset in [] if args.no_fit else args.fit_preset or ["tiny", "fast"]:
        folder = subset_folder(paths, sizes[0], args.work / f"set_{args.frames}f_{sizes[0]}")
        row = fit_throughput(folder, args.work / f"fit_store_{preset}", preset, args.fit_steps, args.rounds)
        result["fit"].append(row)
        print(f"fit ({preset}, {row['n_clips']} clips, batch {row['batch_size']}): "
              f"{row['best_steps_per_s']['memory']:.2f} steps/s in memory, "
              f"{row['best_steps_per_s']['store']:.2f} from the store (x{row['store_over_memory']:.3f})", flush=True)
    if args.out is not None:
        report.write_json(args.out / f"store_{args.frames}f.json", result)
    return result


if __name__ == "__main__":
    main()
