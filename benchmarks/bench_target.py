"""``--target-bpp`` accuracy: the rate reached by ``nvcodec.encode(..., build_config(PRESET, target_bpp=T))`` over a sweep.

    nice python -m benchmarks.bench_target --corpus DIR --size 160x128 --max-frames 32 \
        --preset fast --epochs 20 --targets 0.1,0.2,0.4,0.8 --out benchmarks/results/target-bpp

Each target runs the users' path, ``nvcodec.encode([DIR], OUT/cache/target-T.nvc, build_config(PRESET, target_bpp=T))``
(pilot fits, full fit, rate-aware fine-tune), then reads the written file back with
``nvcodec.open``: the rate is that file's size (the report's bpp), the bytes by part come from
its chunks, the keyframe quality, C0 and fit info from its metadata. The planned split (keyframe
and weight bpp) is the encoder's own "rate plan" log line. A finished target is cached as
OUT/cache/target-T.json (gitignored), so an interrupted sweep resumes; an interrupted encode
resumes from its work folder. Writes OUT/results.json and OUT/results.md.

``--neighbours -3,3`` encodes each target again with the keyframes pinned 3 quality steps finer and
coarser than the plan chose (``--keyframe-quality``), the weights given the rest: the split's neighbours.

Codec at c18b500 (keyframes and weights at one price of a bit, coded motion), 2026-12-02, same corpus
and settings, load 2-4: target 0.1 -> 0.0965 bpp (-3.5 %) at keyframe quality 47, 27.95 dB; its
neighbours q44 27.66 dB and q50 27.60 dB at 0.0965 / 0.0962 bpp; target 0.2 -> 0.1963 (-1.9 %), q26,
29.95 dB, neighbours q23 29.92 and q29 29.87 dB. 375-994 s per encode (q23: 251 s, resumed from the
checkpoint of a run that was stopped). (benchmarks/results/target-bpp, network-vs-floor.md beside it.)

Measurements (2026-11-26, the shared 2-core box, AMD EPYC, no GPU, ``--threads 1`` under ``nice``, load
average 3-5 from another user): 4 corpus clips (cotracker_bear, cotracker_cat, sam2_01_dog, sam2_03_blocks,
symlinked into one folder), ``--size 160x128 --max-frames 32 --preset fast --epochs 20`` (128 frames,
2.62 Mpixels, 96 tile-clips, 480 fit steps, 96-step pilots, 48-step fine-tune); about 19 min per sweep.
The floor (keyframes at quality 63 plus the 2048-byte overhead bound) is 0.017 bpp.

Codec at f96e77b (rate-aware weights spend the whole byte budget), 1118 s:

    target  reached  error    PSNR   kf PSNR  kf q  C0 (params)   kf / weights bpp: planned -> written
    0.1     0.0962   -3.8 %   26.68  31.25    43    1 (29,740)    0.0602 / 0.0336 -> 0.0602 / 0.0315
    0.2     0.1965   -1.8 %   28.19  34.88    27    4 (55,414)    0.1227 / 0.0711 -> 0.1227 / 0.0692
    0.4     0.3959   -1.0 %   29.00  37.86     9   10 (122,362)   0.2474 / 0.1463 -> 0.2474 / 0.1439
    0.8     0.7947   -0.7 %   29.50  39.16     4   23 (355,344)   0.3635 / 0.4303 -> 0.3635 / 0.4266

  -> every target within +-4 %, all under. The keyframes are as planned (measured bytes); the weight
     chunks (payload + 12 bytes of framing per tensor, 50 tensors) land 15-600 bytes under their
     budget; most of the rest is the overhead bound: metadata + non-weight framing are about 905
     bytes against OVERHEAD_BYTES = 2048, i.e. ~1.1 kB (0.0035 bpp here) left unspent at every target.

Codec at e5ca085 (before that change; Lagrangian allocation only), 1104 s: 0.1 -> 0.0960 (-4.0 %),
0.2 -> 0.1907 (-4.6 %), 0.4 -> 0.3756 (-6.1 %), 0.8 -> 0.6400 (-20.0 %, a miss), same keyframes,
C0 and PSNR within 0.03 dB. The 0.8 miss was the weights (0.2719 of 0.4303 bpp written, 99 % of the
shortfall): the lambda bisection stopped at its floor (1e-9) with every group at the coarsest step of
negligible distortion rise, 2.0 bits/weight where the network was sized for 3.0. Spending the rest
(up to k = 20 for some groups) bought +0.01 dB at 0.8 and 0.00 dB at 0.4: on this short fit the
extra weight bytes hit the target but not the quality.
Aside: SVT-AV1 quality 0 codes exactly like quality 35 (ffmpeg's libsvtav1 treats crf 0 as unset):
the 0.8 plan's third candidate got "quality 0 (0.0885 bpp)"; it lost the pilot.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.rd import machine_info, parse_size
from benchmarks.report import write_atomic, write_json

TOLERANCE = 0.10          # the acceptance: reached bpp within +-10 % of the target
PLAN = re.compile(r"rate plan for .* \(([\d.]+) bpp\), weights ([-\d.]+) bpp")
KEPT_LOG = ("rate plan", "  pilot", "  keyframe quality", "  coded motion", "rate-aware quantization", "weights:",
            "network:", "keyframes:")


def code_version() -> str:
    """The last commit that touched the codec (nvcodec/, bitstream/); "+dirty" when they differ from it."""
    def git(*cmd):
        return subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent), *cmd],
                              capture_output=True, text=True)
    last = git("log", "-1", "--format=%h", "--", "nvcodec", "bitstream").stdout.strip() or "unknown"
    return last + ("+dirty" if git("diff", "--quiet", "HEAD", "--", "nvcodec", "bitstream").returncode else "")


def record(target: float, report: dict, metadata: dict, n_bytes: int, encode_s: float, log: list[str]) -> dict:
    """One target's row: the report's measurements and what the written file says was chosen."""
    plan = next((m.groups() for m in map(PLAN.search, log) if m), (None, None))
    by_part = report["bytes_by_part"]
    if n_bytes != report["n_bytes"] or sum(by_part.values()) != n_bytes:
        raise ValueError(f"target {target}: the file holds {n_bytes} bytes, the report says {report['n_bytes']} "
                         f"({by_part})")
    px = report["n_pixels"]
    return {
        "target_bpp": target, "bpp": report["bpp"], "rel_error": report["bpp"] / target - 1.0,
        "psnr": report["psnr"], "keyframe_psnr": report["keyframe_psnr"], "blend_psnr": report["blend_psnr"],
        "n_bytes": n_bytes, "n_pixels": px, "n_frames": report["n_frames"], "bytes_by_part": by_part,
        "bpp_by_part": {k: 8.0 * v / px for k, v in by_part.items()},
        "planned_bpp": {"keyframes": None if plan[0] is None else float(plan[0]),
                        "weights": None if plan[1] is None else float(plan[1])},
        "keyframe_codec": metadata["keyframe_codec"],
        "keyframe_quality": metadata["keyframe_codec"]["params"]["quality"],
        "c0": metadata["model"]["c0"], "n_params": report["n_params"],
        "bits_per_weight": 8.0 * by_part["weights"] / report["n_params"], "fit": metadata["fit"],
        "encode_s": encode_s, "log": [line for line in log if line.startswith(KEPT_LOG)],
    }


def run_target(args, target: float, cache: Path, settings: dict, keyframe_quality: int | None = None) -> dict:
    """One encode at ``target``: the rate plan's own choice, or (``keyframe_quality``) the keyframes pinned
    there and the weights given the rest, which is how the chosen split's neighbours are measured."""
    import nvcodec

    name = f"target-{target:g}" + ("" if keyframe_quality is None else f"-q{keyframe_quality}")
    path = cache / f"{name}.json"
    if path.exists() and json.loads(path.read_text()).get("settings") == settings:
        row = json.loads(path.read_text())
        print(f"{name}: cached ({row['bpp']:.4f} bpp)", flush=True)
        return row
    out, log = cache / f"{name}.nvc", []
    started = time.perf_counter()
    report = nvcodec.encode([args.corpus], out,
                            nvcodec.build_config(args.preset, target_bpp=target, seed=0, keyframe_quality=keyframe_quality,
                                                 **({"epochs": args.epochs} if args.epochs is not None else {})),
                            size=args.size, max_frames=args.max_frames, force=True, resume=True,
                            workdir=cache / f"{name}.work", device=args.device,
                            log=lambda msg: (log.append(msg), print(msg, flush=True)))
    encode_s = time.perf_counter() - started
    with nvcodec.open(out) as nvc:          # what was chosen, read back from the written file
        metadata, n_bytes = nvc.metadata, nvc.n_bytes
    row = {**record(target, report.to_json(), metadata, n_bytes, encode_s, log), "settings": settings}
    write_json(path, row)
    return row


def neighbours(args, row: dict, cache: Path, settings: dict, steps: list[int]) -> list[dict]:
    """The same target with the keyframes pinned ``steps`` quality steps from the plan's choice (the
    weights take what they leave): the split's neighbours. Steps off the codec's scale are left out."""
    from nvcodec.keyframes import CODECS, KeyframeCodec

    codec = row["keyframe_codec"]["codec"]
    lo, hi = KeyframeCodec(codec=codec).min_quality, CODECS[codec].max_quality
    out = []
    for step in steps:
        q = row["keyframe_quality"] + step
        if lo <= q <= hi:
            try:
                out.append({"step": step, **run_target(args, row["target_bpp"], cache, settings, keyframe_quality=q)})
            except ValueError as exc:               # keyframes too dear for the target: no weights left
                out.append({"step": step, "keyframe_quality": q, "refused": str(exc)})
    return out


def optimum_lines(rows: list[dict]) -> list[str]:
    """The bit-budget check: at each target, the PSNR of the plan's split beside its neighbours at the same
    target (keyframes pinned, weights the rest); the plan is near the optimum when no neighbour beats it."""
    if not any(r.get("neighbours") for r in rows):
        return []
    lines = ["", "## Is the plan's split the best? Its neighbours at the same target", "",
             "Each neighbour pins the keyframes some quality steps away from the plan's choice (`--target-bpp T "
             "--keyframe-quality Q`) and gives the weights what they leave. The plan sits near the optimum when no "
             "neighbour decodes better.", "",
             "| target bpp | keyframe quality | step | bpp | keyframes / motion / weights bpp | PSNR dB | vs plan dB |",
             "|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        for n in sorted([{"step": 0, **r}] + r.get("neighbours", []), key=lambda n: n["step"]):
            if "refused" in n:
                lines.append(f"| {r['target_bpp']:g} | {n['keyframe_quality']} | {n['step']:+d} | refused: "
                             f"{n['refused']} | | | |")
                continue
            pb = n["bpp_by_part"]
            lines.append(f"| {r['target_bpp']:g} | {n['keyframe_quality']} | {n['step']:+d} | {n['bpp']:.4f} | "
                         f"{pb['keyframes']:.4f} / {pb.get('motion', 0.0):.4f} / {pb['weights']:.4f} | "
                         f"{n['psnr']:.2f} | {n['psnr'] - r['psnr']:+.2f} |")
        worse = [n for n in r.get("neighbours", []) if "psnr" in n]
        if worse:
            best = max(worse, key=lambda n: n["psnr"])
            lines.append(f"| {r['target_bpp']:g} | | | | **{'the plan is best' if best['psnr'] <= r['psnr'] else 'a neighbour is better'}"
                         f"** (best neighbour {best['psnr'] - r['psnr']:+.2f} dB at step {best['step']:+d}) | | |")
    return lines


def markdown(result: dict) -> str:
    lines = [f"# `--target-bpp` accuracy: {len(result['rows'])} targets, tolerance +-{100 * TOLERANCE:.0f} %", "",
             f"- date (UTC): {result['date_utc']}; machine: {result['machine']}",
             f"- corpus: {result['corpus']}; {result['n_frames']} frames, {result['n_pixels']} pixels",
             f"- settings: {result['settings']} (codec code at commit {result['settings']['code']})",
             f"- command: `{result['command']}`",
             f"- wall time: {result['wall_s']:.0f} s this invocation; {result['encode_s_total']:.0f} s of encodes",
             f"- max |error|: {100 * result['max_abs_error']:.2f} %: "
             + ("every target within tolerance" if result["all_within"] else
                "MISSED: " + ", ".join(f"{r['target_bpp']:g}" for r in result["rows"]
                                       if abs(r["rel_error"]) > TOLERANCE)), "",
             "| target bpp | reached bpp | error | PSNR dB | kf PSNR dB | kf quality | C0 (params) | "
             "keyframes B | weights B (bits/weight) | metadata B | container B | planned kf / weights bpp | "
             "reached kf / weights bpp | encode s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        b, p, pb = r["bytes_by_part"], r["planned_bpp"], r["bpp_by_part"]
        planned = "n/a" if p["keyframes"] is None else f"{p['keyframes']:.4f} / {p['weights']:.4f}"
        lines.append(f"| {r['target_bpp']:g} | {r['bpp']:.4f} | {100 * r['rel_error']:+.2f} % | {r['psnr']:.2f} | "
                     f"{r['keyframe_psnr']:.2f} | {r['keyframe_quality']} | {r['c0']} ({r['n_params']}) | "
                     f"{b['keyframes']} | {b['weights']} ({r['bits_per_weight']:.2f}) | {b['metadata']} | "
                     f"{b['container']} | {planned} | {pb['keyframes']:.4f} / {pb['weights']:.4f} | "
                     f"{r['encode_s']:.0f} |")
    return "\n".join(lines + optimum_lines(result["rows"])) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--size", type=parse_size, default=None, help="coding size WxH (default: native)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    ap.add_argument("--targets", default="0.1,0.2,0.4,0.8", help="comma-separated target bpp")
    ap.add_argument("--out", default="benchmarks/results/target-bpp")
    ap.add_argument("--neighbours", default="", help="comma-separated keyframe quality steps (e.g. -2,2): each "
                    "target again with the keyframes pinned that far from the plan's choice")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out, cache = Path(args.out), Path(args.out) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    write_atomic(cache / ".gitignore", b"# encoded files, work folders and per-target caches: never committed\n*\n")
    settings = {"corpus": str(Path(args.corpus).resolve()), "size": list(args.size) if args.size else None,
                "max_frames": args.max_frames, "preset": args.preset, "epochs": args.epochs, "seed": 0,
                "code": code_version()}       # a cached target is reused only for the same codec code
    steps = [int(k) for k in args.neighbours.split(",") if k.strip()]
    rows = [run_target(args, float(t), cache, settings) for t in args.targets.split(",")]
    for row in rows:
        row["neighbours"] = neighbours(args, row, cache, settings, steps)
    errors = [abs(r["rel_error"]) for r in rows]
    result = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info()["summary"],
        "command": "python -m benchmarks.bench_target " + " ".join(sys.argv[1:] if argv is None else argv),
        "corpus": f"{args.corpus}: " + ", ".join(sorted(p.name for p in Path(args.corpus).iterdir())),
        "n_frames": rows[0]["n_frames"], "n_pixels": rows[0]["n_pixels"], "settings": settings, "threads": args.threads,
        "wall_s": time.perf_counter() - started, "encode_s_total": sum(r["encode_s"] for r in rows),
        "tolerance": TOLERANCE, "max_abs_error": max(errors), "all_within": max(errors) <= TOLERANCE, "rows": rows,
    }
    write_json(out / "results.json", result)
    write_atomic(out / "results.md", markdown(result).encode())
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
