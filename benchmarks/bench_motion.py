"""The motion floor, measured: decoded keyframes + coded coarse motion, warped and fused, no network.

Reads the corpus like ``benchmarks.rd`` (native frame rate, the coding size, the first
``--max-frames`` of each video), codes keyframes (every K-th frame + the last) with
nvcodec.keyframes at its default track codec (SVT-AV1 inter) for each ``--qualities``,
decodes them back, then per motion configuration (grid / step / interpolation):

- estimates every in-between frame's motion towards its clip's decoded keyframes
  (nvcodec.motion.estimate_video), codes it as the 'MOTN' payloads of
  nvcodec.bitstream.motion (real bytes, + 16 bytes of chunk framing per video), decodes
  the payloads back and builds the motion floor from what was read;
- the blend floor is the same integer fusion with zero motion;
- with ``--allocate``, the encoder's own choice as well (``nvcodec.rate.allocate_motion``: each
  video's grid and step among ``nvcodec.motion.MOTION_CANDIDATES`` at the measured price of a
  keyframe bit), compared with the upper envelope of every fixed configuration measured at
  every quality: an allocation near the optimum sits on that envelope or above it.

PSNR is per frame on 8-bit RGB (nvcodec.metrics), mean over all frames, keyframes
included; bpp = 8 x (keyframe bytes + motion bytes) / all pixels.  x264-medium codes the
same frames (benchmarks.anchors, one stream per video, CRF ladder ``--crfs``).

    nice -n 10 python -m benchmarks.bench_motion --max-frames 32 --out benchmarks/results/motion-floor
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks import rd
from benchmarks.bd import bd_compare
from benchmarks.report import rate_at
from nvcodec import metrics
from nvcodec.bitstream.motion import INTERP_NAMES, PRED_NAMES, encode_clip_report, read_motion, write_motion
from nvcodec.corpus import keyframe_positions
from nvcodec.keyframes import KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.motion import MOTION_CANDIDATES, MotionConfig, estimate_video, floor_video
from nvcodec.rate import SLOPE_PROBE_STEP, allocate_motion, probe_quality

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CHUNK_OVERHEAD_BYTES = 16  # type, length, CRC of the 'MOTN' chunk (FORMAT.md section 3)


def parse_config(text: str) -> MotionConfig:
    """GRIDxSTEP[:interp], STEP in quarter pixels: '32x4' = 32-pixel cells, whole-pixel vectors, bilinear."""
    head, _, interp = text.partition(":")
    grid, step = (int(v) for v in head.split("x"))
    return MotionConfig(grid=grid, step_qpel=step, interp=interp or "bilinear")


def code_keyframes(corpus: rd.Corpus, codec: KeyframeCodec, interval: int,
                   per_video: dict | None = None) -> tuple[dict, int, float]:
    """name -> decoded keyframes, total keyframe bytes, mean keyframe PSNR; ``per_video`` gets each name's bytes."""
    decoded, n_bytes, psnrs = {}, 0, []
    for name in corpus.names:
        kf, video_bytes, decoded[name] = code_video_keyframes(corpus.frames[name], codec, interval)
        n_bytes += video_bytes
        if per_video is not None:
            per_video[name] = video_bytes
        psnrs.append(metrics.psnr_per_frame(kf, decoded[name]))
    return decoded, n_bytes, float(np.mean(np.concatenate(psnrs)))


def code_video_keyframes(frames: np.ndarray, codec: KeyframeCodec, interval: int) -> tuple[np.ndarray, int, np.ndarray]:
    """(keyframes, coded bytes, decoded keyframes) of one video's regular keyframes, one stream."""
    kf = frames[keyframe_positions(len(frames), interval)]
    data = b"".join(d for *_, d in encode_keyframes(kf, codec))
    return kf, len(data), decode_keyframes(data, codec, kf.shape[2], kf.shape[1], len(kf))


def allocated_motion(corpus: rd.Corpus, codec: KeyframeCodec, dec_kf: dict, kf_bytes: dict, interval: int) -> dict:
    """name -> VideoMotion as the encoder chooses it (``nvcodec.rate.allocate_motion``), and its price."""
    probe_q = probe_quality(codec)
    probe_codec = replace(codec, quality=probe_q)

    def probe(v: int):
        _, n_bytes, decoded = code_video_keyframes(corpus.frames[corpus.names[v]], probe_codec, interval)
        return n_bytes, decoded

    alloc = allocate_motion([((lambda n=name: corpus.frames[n]), None) for name in corpus.names], interval,
                            [dec_kf[n] for n in corpus.names], [kf_bytes[n] for n in corpus.names], probe, probe_q)
    return {"motion": dict(zip(corpus.names, alloc.motion)), "lam": alloc.lam, "probe_quality": probe_q,
            "chosen": {f"{c.grid}x{c.step_qpel}": alloc.chosen.count(c) for c in MOTION_CANDIDATES if c in alloc.chosen}}


def floor_point(corpus: rd.Corpus, dec_kf: dict, interval: int, config: MotionConfig | None,
                motions: dict | None = None, lam: float | None = None) -> dict:
    """PSNR and motion bytes of the motion floor (config None: the blend floor, unless ``motions`` gives
    each video's motion) over the corpus; ``lam``: config's fields refined at that price of a bit
    (``nvcodec.motion.refine_clip``), None: block matching alone."""
    psnrs, n_bytes, pred_bytes, t0 = [], 0, {p: 0 for p in PRED_NAMES.values()}, time.perf_counter()
    for v, name in enumerate(corpus.names):
        frames = corpus.frames[name]
        motion = None
        if config is not None or motions is not None:
            enc_motion = (motions[name] if motions is not None
                          else estimate_video(frames, dec_kf[name], interval, config, lam=lam))
            payload = write_motion(v, enc_motion)
            n_bytes += len(payload) + CHUNK_OVERHEAD_BYTES
            _, motion = read_motion(payload, [f.shape[1:3] + (len(f),) for f in corpus.frames.values()], interval)
            if motion != enc_motion:
                raise AssertionError(f"{name}: motion did not survive its round trip")
            for q in motion.clips:
                if q.size:
                    for pred, b in encode_clip_report(q).items():
                        pred_bytes[pred] += b
        floor = floor_video(dec_kf[name], motion, len(frames), interval)
        psnrs.append(metrics.psnr_per_frame(frames, floor))
    out = {"psnr": float(np.mean(np.concatenate(psnrs))), "motion_bytes": n_bytes,
           "seconds": round(time.perf_counter() - t0, 1)}
    if config is not None:
        out.update(grid=config.grid, step_qpel=config.step_qpel, interp=config.interp,
                   search_px=config.search_px, bytes_by_prediction=pred_bytes, refine_lambda=lam)
    return out


def report(result: dict) -> str:
    """results.md: the floor table, x264-medium on the same frames, BD-rate, bytes per prediction mode."""
    lines = [f"# The motion floor vs the blend floor and x264-medium", "",
             f"{result['n_videos']} videos of `{result['corpus']}`, {result['n_frames']} frames "
             f"(first {result['max_frames']} per video) at {result['size'][0]}x{result['size'][1]}, native frame "
             f"rate, keyframes every {result['interval']}th frame + the last (SVT-AV1 inter track, "
             f"nvcodec.keyframes defaults but the quality). PSNR per frame on 8-bit RGB, mean over all frames; "
             f"bpp = 8 x (keyframe + motion bytes) / all pixels; motion bytes are the real `MOTN` payloads + "
             f"16 bytes of chunk framing per video, decoded back before the floor is built.", "",
             f"    {result['command']}", "",
             f"Machine: {result['machine']} (2 shared cores); {result['seconds']:.0f} s in all.", "",
             "| keyframe crf | kf PSNR | floor | grid x step (1/4 px) : interp | PSNR dB | vs blend | motion bytes "
             "| motion bpp | total bpp | seconds (estimate, code, floor) |", "|---|---|---|---|---|---|---|---|---|---|"]
    blend = {p["keyframe_quality"]: p["psnr"] for p in result["points"] if p["kind"] == "blend"}
    for p in result["points"]:
        cfg = {"blend": "-", "allocated": "per video: " + ", ".join(f"{k} x{n}" for k, n in p.get("chosen", {}).items())
               }.get(p["kind"]) or f"{p['grid']} x {p['step_qpel']} : {p['interp']}"
        if p["kind"] == "refined":
            cfg += f", refined at lambda {p['refine_lambda']:g}"
        delta = "" if p["kind"] == "blend" else f"{p['psnr'] - blend[p['keyframe_quality']]:+.2f}"
        lines.append(f"| {p['keyframe_quality']} | {p['keyframe_psnr']:.2f} | {p['kind']} | {cfg} | {p['psnr']:.2f} "
                     f"| {delta} | {p['motion_bytes']} | {p['motion_bpp']:.4f} | {p['bpp']:.4f} | {p['seconds']:.0f} |")
    lines += ["", "x264-medium (tune psnr, yuv420p, one stream per video) on the same frames:", "",
              "| crf | PSNR dB | bpp |", "|---|---|---|"]
    lines += [f"| {a['crf']} | {a['psnr']:.2f} | {a['bpp']:.4f} |" for a in result["x264_medium"]]
    lines += ["", "BD-rate against x264-medium (negative: fewer bits at equal PSNR), over the overlapping range:", ""]
    for name, bd in result["bd_rate_vs_x264_medium"].items():
        rate = "n/a" if bd["bd_rate_percent"] is None else f"{bd['bd_rate_percent']:+.1f} %"
        lines.append(f"- {name} floor: BD-rate {rate} ({bd['note'] or 'ok'})")
    vs_main = result.get("bd_rate_allocated_vs_main_config")
    if vs_main:
        rate = "n/a" if vs_main["bd_rate_percent"] is None else f"{vs_main['bd_rate_percent']:+.1f} %"
        lines.append(f"- allocated against the fixed main configuration: BD-rate {rate} ({vs_main['note'] or 'ok'})")
    refined = [p for p in result["points"] if p["kind"] == "refined"]
    if refined:
        lines += ["", "Refinement (`nvcodec.motion.refine_clip`: each vector moved on its lattice where the floor's "
                  "squared error + lambda x bits falls) against block matching alone, same config and keyframes:", "",
                  "| keyframe crf | grid x step | lambda | PSNR dB | motion bytes | seconds |",
                  "|---|---|---|---|---|---|"]
        plain = {(p["keyframe_quality"], p["grid"], p["step_qpel"], p["interp"]): p
                 for p in result["points"] if p["kind"] == "motion"}
        for p in refined:
            b = plain[p["keyframe_quality"], p["grid"], p["step_qpel"], p["interp"]]
            lines.append(f"| {p['keyframe_quality']} | {p['grid']} x {p['step_qpel']} | {p['refine_lambda']:g} | "
                         f"{b['psnr']:.2f} -> {p['psnr']:.2f} ({p['psnr'] - b['psnr']:+.2f}) | {b['motion_bytes']} -> "
                         f"{p['motion_bytes']} ({100 * (p['motion_bytes'] / b['motion_bytes'] - 1):+.1f} %) | "
                         f"{b['seconds']:.0f} -> {p['seconds']:.0f} |")
    allocated = [p for p in result["points"] if p["kind"] == "allocated"]
    if allocated:
        fixed = [p for p in result["points"] if p["kind"] == "motion"]
        lines += ["", "The encoder's choice (`nvcodec.rate.allocate_motion`: each video's grid and step among "
                  "`MOTION_CANDIDATES` at the price of a keyframe bit, measured against the keyframes "
                  f"{SLOPE_PROBE_STEP} quality steps coarser) against the upper envelope of every fixed "
                  "configuration above at every keyframe quality: the bpp that envelope needs for the same PSNR. "
                  "A choice near the optimum needs no more.", "",
                  "| keyframe crf | price (sq. error / bit) | PSNR dB | bpp | fixed envelope's bpp | saving |",
                  "|---|---|---|---|---|---|"]
        for p in allocated:
            need = rate_at(fixed, p["psnr"])
            saving = "outside the envelope" if need is None else f"{100 * (1 - p['bpp'] / need):+.1f} %"
            lines.append(f"| {p['keyframe_quality']} | {p['lam']:.0f} | {p['psnr']:.2f} | {p['bpp']:.4f} | "
                         f"{'-' if need is None else f'{need:.4f}'} | {saving} |")
    lines += ["", "Motion bytes per prediction mode (every clip coded each way; the coder keeps the smallest):", "",
              "| keyframe crf | grid x step : interp | " + " | ".join(PRED_NAMES.values()) + " |",
              "|---|---|" + "---|" * len(PRED_NAMES)]
    for p in result["points"]:
        if p["kind"] == "motion":
            lines.append(f"| {p['keyframe_quality']} | {p['grid']} x {p['step_qpel']} : {p['interp']} | "
                         + " | ".join(str(p["bytes_by_prediction"][n]) for n in PRED_NAMES.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--size", type=rd.parse_size, default=(160, 128))
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--interval", type=int, default=8)
    ap.add_argument("--qualities", type=lambda s: [int(v) for v in s.split(",")], default=[40, 45])
    ap.add_argument("--configs", type=lambda s: [parse_config(v) for v in s.split(",")],
                    default=[parse_config(v) for v in ("64x4", "32x4", "32x2", "32x8", "32x4:nearest", "16x4")])
    ap.add_argument("--sweep-quality", type=int, default=None,
                    help="keyframe quality at which every config is measured (others: --main-config only); "
                         "0: every config at every quality")
    ap.add_argument("--main-config", type=parse_config, default=parse_config("32x4"))
    ap.add_argument("--allocate", action="store_true",
                    help="also the encoder's per-video choice at the keyframes' measured price, at every quality")
    ap.add_argument("--refine-lambda", type=float, default=None,
                    help="also each measured config refined at this price of a bit (squared error per bit)")
    ap.add_argument("--crfs", type=lambda s: [int(v) for v in s.split(",")], default=[30, 33, 36, 39, 42, 45])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report-only", action="store_true", help="rewrite OUT/results.md from OUT/results.json")
    args = ap.parse_args(argv)
    if args.report_only:
        result = json.loads((args.out / "results.json").read_text())
        result.setdefault("max_frames", args.max_frames)
        (args.out / "results.md").write_text(report(result))
        return result
    sweep_q = args.sweep_quality if args.sweep_quality is not None else args.qualities[0]
    t_start = time.perf_counter()
    corpus = rd.read_corpus(args.corpus, "native", args.size, args.max_frames, Path("/tmp/nvcodec-bench-motion-cache"))
    n_pixels = corpus.n_pixels
    print(f"# {len(corpus.names)} videos, {corpus.n_frames} frames at {args.size[0]}x{args.size[1]}, "
          f"K={args.interval}", flush=True)
    points = []
    for quality in args.qualities:
        codec = KeyframeCodec(quality=quality)
        per_video: dict = {}
        dec_kf, kf_bytes, kf_psnr = code_keyframes(corpus, codec, args.interval, per_video)
        configs = args.configs if quality == sweep_q or args.sweep_quality == 0 else [args.main_config]
        refined = [("refined", c) for c in configs] if args.refine_lambda is not None else []
        for config in [None, *configs, *refined] + (["allocated"] if args.allocate else []):
            if isinstance(config, tuple):                 # block matching then refine_clip at --refine-lambda
                p = floor_point(corpus, dec_kf, args.interval, config[1], lam=args.refine_lambda)
                p.update(kind="refined", keyframe_codec=codec.to_json(), keyframe_quality=quality,
                         keyframe_bytes=kf_bytes, keyframe_psnr=kf_psnr,
                         bpp=metrics.bits_per_pixel(kf_bytes + p["motion_bytes"], n_pixels),
                         motion_bpp=metrics.bits_per_pixel(p["motion_bytes"], n_pixels))
                points.append(p)
                print(f"q{quality} refined {config[1].grid}x{config[1].step_qpel} {p['psnr']:6.2f} dB  bpp {p['bpp']:.4f} "
                      f"(motion {p['motion_bpp']:.4f}) {p['seconds']:.0f} s", flush=True)
                continue
            if config == "allocated":
                t0 = time.perf_counter()
                alloc = allocated_motion(corpus, codec, dec_kf, per_video, args.interval)
                p = floor_point(corpus, dec_kf, args.interval, None, alloc.pop("motion"))
                p.update(kind="allocated", **alloc, seconds=round(time.perf_counter() - t0, 1))
                config = None
            else:
                p = floor_point(corpus, dec_kf, args.interval, config)
                p.update(kind="blend" if config is None else "motion")
            p.update(keyframe_codec=codec.to_json(),
                     keyframe_quality=quality, keyframe_bytes=kf_bytes, keyframe_psnr=kf_psnr,
                     bpp=metrics.bits_per_pixel(kf_bytes + p["motion_bytes"], n_pixels),
                     motion_bpp=metrics.bits_per_pixel(p["motion_bytes"], n_pixels))
            points.append(p)
            label = p["kind"] if config is None else f"{config.grid}x{config.step_qpel}:{config.interp}"
            print(f"q{quality} {label:16s} {p['psnr']:6.2f} dB  bpp {p['bpp']:.4f} (motion {p['motion_bpp']:.4f}) "
                  f"{p['seconds']:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="nvcodec-bench-motion-") as work:
        anchors = [rd.anchor_point(corpus, "x264-medium", crf, Path(work), ms_ssim_stride=0) for crf in args.crfs]
    for crf, a in zip(args.crfs, anchors):
        print(f"x264-medium crf {crf}: {a['psnr']:6.2f} dB  bpp {a['bpp']:.4f}", flush=True)
    anchors = [{"crf": crf, "bpp": a["bpp"], "psnr": a["psnr"], "n_bytes": a["n_bytes"]} for crf, a in zip(args.crfs, anchors)]
    x264 = [(a["bpp"], a["psnr"]) for a in anchors]
    main_key = (args.main_config.grid, args.main_config.step_qpel, args.main_config.interp)
    curves = {"blend": [(p["bpp"], p["psnr"]) for p in points if p["kind"] == "blend"],
              "motion": [(p["bpp"], p["psnr"]) for p in points
                         if p["kind"] == "motion" and (p["grid"], p["step_qpel"], p["interp"]) == main_key],
              "allocated": [(p["bpp"], p["psnr"]) for p in points if p["kind"] == "allocated"]}
    bd = {name: bd_compare(*zip(*x264), *zip(*curve)) for name, curve in curves.items() if len(curve) >= 2}
    vs_main = (bd_compare(*zip(*curves["motion"]), *zip(*curves["allocated"]))
               if len(curves["motion"]) >= 2 and len(curves["allocated"]) >= 2 else None)
    result = {"command": "python -m benchmarks.bench_motion " + " ".join(argv or __import__("sys").argv[1:]),
              "corpus": str(args.corpus), "n_videos": len(corpus.names), "n_frames": corpus.n_frames,
              "size": list(args.size), "max_frames": args.max_frames, "interval": args.interval, "frames_sha256": corpus.sha256,
              "points": points, "x264_medium": anchors, "bd_rate_vs_x264_medium": bd,
              "bd_rate_allocated_vs_main_config": vs_main,
              "machine": platform.platform(), "seconds": round(time.perf_counter() - t_start, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "results.md").write_text(report(result))
    return result


if __name__ == "__main__":
    main()
