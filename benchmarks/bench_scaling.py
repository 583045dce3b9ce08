"""The shared network's economics as the corpus grows: one network for 10, 20 and 40 real clips.

    nice -n 10 python -m benchmarks.bench_scaling --corpus ../shared/corpus --work /tmp/bench_scaling \\
        --clips 10 --clips 20 --clips 40 --frames 16 --epochs 1 --weight-bpp 0.5 --quant-bits 8 \
        --out benchmarks/results/scaling

The clips are distinct segments of the corpus videos, cut by ``bench_store.make_corpus`` with
``stride`` = the clip length and no looping: segment p of every source long enough to hold it,
p = 0, 1, ... in turn (so the first clips come from as many different videos as possible), read at
192x160, a 160x128 window at a seeded offset, mirrored on odd segments, x264 CRF 18. The first 10
and 20 clips are the smaller sets (folders of links).

Each set is encoded by ``nvcodec.encode`` at one configuration: preset ``PRESET`` with C0 pinned
(``--c0``: the same network whatever the corpus, so the weights' cost per pixel falls as clips are
added only if one network really serves them) and the same epochs, so the fit's work per frame is
constant. ``--quant-bits`` replaces the preset's rate-aware quantization by plain post-training
quantization (no fine-tune: its fixed cost per encode would weigh on the smaller sets' time per
frame). ``--weight-bpp`` replaces the preset's weight budget, which here only decides whether
the corpus may pay for a network at all (``Preset.affords_network``; below it ``fast`` writes the
motion floor): it must admit the smallest set. Printed per set: bpp, PSNR (and the motion floor's
and blend's), the weights', keyframes' and motion's shares of the file, bits per weight, weight
bits per pixel and the encode's wall time per frame (``EncodeReport.seconds``: everything from
the scan to the measuring decode).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from benchmarks import report
from benchmarks.bench_store import make_corpus, subset_folder

PRESET = "fast"               # coded motion, 64x64 tiles: the CPU preset of the README
CLIP_SIZE = (160, 128)        # (width, height): bench_store's clips


def encode_config(c0: int, weight_bpp: float, epochs: int, quant_bits: int | None = None):
    from nvcodec.presets import build_config

    return build_config(PRESET, c0=c0, weight_bpp=weight_bpp, epochs=epochs, quant_bits=quant_bits)


def encode_set(folder: Path, output: Path, config, n_clips: int) -> dict:
    """One encode of ``folder``; the row of figures the benchmark prints."""
    import nvcodec

    started = time.strftime("%H:%M:%S")
    shutil.rmtree(output.with_name(output.name + ".work"), ignore_errors=True)   # an interrupted run's: start afresh
    got = nvcodec.encode([folder], output, config, size=CLIP_SIZE, device="cpu", force=True, quiet=False,
                         log=lambda m: print(f"  [{n_clips} clips] {m}", flush=True))
    parts = got.bytes_by_part
    return {"n_clips": n_clips, "n_videos": got.n_videos, "n_frames": got.n_frames, "n_pixels": got.n_pixels,
            "started": started, "n_params": got.n_params, "n_bytes": got.n_bytes, "bytes_by_part": parts,
            "bpp": got.bpp, "psnr": got.psnr, "motion_psnr": got.motion_psnr, "blend_psnr": got.blend_psnr,
            "keyframe_psnr": got.keyframe_psnr,
            "share": {k: parts[k] / got.n_bytes for k in ("weights", "keyframes", "motion")},
            "weight_bpp": 8 * parts["weights"] / got.n_pixels,
            "bits_per_weight": 8 * parts["weights"] / got.n_params if got.n_params else None,
            "seconds": got.seconds, "seconds_per_frame": got.seconds / got.n_frames}


def table(rows: list[dict]) -> str:
    head = ("| clips | frames | params | bpp | PSNR | motion floor | weights | keyframes | motion | bits/weight "
            "| weight bpp | s/frame |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['n_clips']} | {r['n_frames']} | {r['n_params']:,} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
        f"{r['motion_psnr']:.2f} | {100 * r['share']['weights']:.1f} % | {100 * r['share']['keyframes']:.1f} % | "
        f"{100 * r['share']['motion']:.1f} % | {r['bits_per_weight']:.2f} | {r['weight_bpp']:.4f} | "
        f"{r['seconds_per_frame']:.3f} |\n" for r in rows)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="where the generated clips and outputs go")
    ap.add_argument("--clips", type=int, action="append", help="corpus sizes (repeatable; default 10, 20, 40)")
    ap.add_argument("--frames", type=int, default=64, help="frames per clip")
    ap.add_argument("--epochs", type=int, default=2, help="fit epochs of every encode")
    ap.add_argument("--c0", type=int, default=12, help=f"the network's C0, pinned (preset {PRESET!r}'s range)")
    ap.add_argument("--weight-bpp", type=float, default=0.1,
                    help="the weight budget that admits a network (Preset.affords_network)")
    ap.add_argument("--quant-bits", type=int,
                    help="plain post-training quantization at these bits (default: the preset's rate-aware)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    sizes = sorted(args.clips or [10, 20, 40])
    config = encode_config(args.c0, args.weight_bpp, args.epochs, args.quant_bits)
    clip_dir = args.work / f"cuts_{args.frames}f"
    paths = make_corpus(args.corpus, clip_dir, sizes[-1], args.frames, args.seed, stride=args.frames, loop=False)
    result = {"command": shlex.join(["python", "-m", "benchmarks.bench_scaling", *argv]), "preset": PRESET,
              "c0": args.c0, "weight_bpp_gate": args.weight_bpp, "epochs": args.epochs,
              "quantization": f"{args.quant_bits}-bit post-training" if args.quant_bits else "the preset's rate-aware",
              "clip_size": list(CLIP_SIZE), "frames_per_clip": args.frames, "encodes": []}
    for n in sizes:
        folder = subset_folder(paths, n, args.work / f"set_{args.frames}f_{n}")
        row = encode_set(folder, args.work / f"set_{n}.nvc", config, n)
        result["encodes"].append(row)
        print(table([row]).splitlines()[-1], flush=True)
        if args.out is not None:                  # written after every set: a long run keeps what it measured
            report.write_json(args.out / f"scaling_{args.frames}f.json", result)
    print(table(result["encodes"]))
    return result


if __name__ == "__main__":
    main()
