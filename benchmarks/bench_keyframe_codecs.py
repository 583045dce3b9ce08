"""The keyframe-track codec, measured: BD-rate and encode time of each candidate against today's default.

The tracks are what nvcodec codes: every ``--interval``-th frame of each corpus video plus
its last (``nvcodec.corpus.keyframe_positions``), of the first ``--max-frames`` frames read
at the coding size with ``nvcodec.media.read_frames``. Each candidate is a
``nvcodec.keyframes.KeyframeCodec``: one track per video is coded with
``encode_keyframes`` and decoded with ``decode_keyframes`` (the bytes and pixels an
``.nvc`` holds). Rate: bpp of the keyframe bytes over all frames of the videos (as in the
``.nvc``'s rate); quality: mean RGB PSNR over all keyframes (``nvcodec.metrics``). BD-rate
(``benchmarks.bd``, pchip) is against the baseline, SVT-AV1 preset 5 at a quality
ladder around its default, at equal keyframe PSNR (the baseline is nvcodec's earlier
setting; the default is now preset 2, chosen from these figures).
Encode time: the CPU seconds of the ffmpeg children (user + sys, from ``getrusage``; the
encoders are single-threaded, so this is robust to a loaded machine), with wall seconds
beside it.

    nice -n 10 python -m benchmarks.bench_keyframe_codecs --corpus ../shared/corpus --size 160x128 \\
        --out benchmarks/results/keyframe-codecs

Points are cached under ``OUT/cache`` (never committed), so a run resumes; results go to
``OUT/<size>.json`` and ``OUT/<size>.md``. libaom's ``-tune psnr`` is not a separate
candidate: it is libaom's default tune, and the bytes are identical (measured, one
40-frame 160x128 track, crf 44, cpu-used 6: same MD5 with and without ``-tune psnr``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks import report
from benchmarks.bd import bd_compare
from nvcodec.corpus import keyframe_positions, scan
from nvcodec.keyframes import KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.media import ffmpeg_codecs, ffmpeg_exe, read_frames
from nvcodec.metrics import bits_per_pixel, psnr_per_frame

BASELINE = "svt p5 (old default)"     # the earlier KeyframeCodec() default: SVT-AV1 preset 5, 32 per segment
AV1_Q, HEVC_Q, VVC_Q = (36, 42, 48, 54), (22, 26, 30, 34), (28, 33, 38, 43)


def _svt(speed):
    return lambda q: KeyframeCodec("av1", "inter", quality=q, speed=speed, encoder="libsvtav1")


def _aom(speed):
    return lambda q: KeyframeCodec("av1", "inter", quality=q, speed=speed, encoder="libaom-av1")


# label -> (codec factory over quality, quality ladder).
CANDIDATES = {
    BASELINE: (_svt(5), AV1_Q),
    "svt p2 (default)": (_svt(2), AV1_Q),
    "svt p3": (_svt(3), AV1_Q),
    "svt p4": (_svt(4), AV1_Q),
    "svt p6": (_svt(6), AV1_Q),
    "svt p8": (_svt(8), AV1_Q),
    **{f"aom c{s}": (_aom(s), AV1_Q) for s in range(7)},
    "x265 medium": (lambda q: KeyframeCodec("hevc", "inter", quality=q, speed=4), HEVC_Q),
    "x265 slower": (lambda q: KeyframeCodec("hevc", "inter", quality=q, speed=2), HEVC_Q),
    "vvc intra faster": (lambda q: KeyframeCodec("vvc", "intra", quality=q, speed=4), VVC_Q),
    "vvc intra medium": (lambda q: KeyframeCodec("vvc", "intra", quality=q, speed=2), VVC_Q),
}


def load_tracks(corpus: Path, size: tuple[int, int], interval: int, max_frames: int, cache: Path,
                videos: list[str] | None = None) -> tuple[list[str], list[np.ndarray], list[int]]:
    """(names, keyframe tracks (n_kf, H, W, 3) uint8, n_frames) per video (all, or ``videos``); cached as npz."""
    sources = scan([corpus], warn=lambda msg: None)
    if videos:
        missing = set(videos) - {s.name for s in sources}
        if missing:
            raise SystemExit(f"--videos: not in {corpus}: {sorted(missing)}")
        sources = [s for s in sources if s.name in videos]
    key = json.dumps([[s.name, s.path.stat().st_size] for s in sources] + [list(size), interval, max_frames])
    path = cache / f"tracks-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as z:
            names = [str(n) for n in z["names"]]
            return names, [z[f"v{i}"] for i in range(len(names))], [int(n) for n in z["n_frames"]]
    names, tracks, counts = [], [], []
    for s in sources:
        frames = np.stack(list(read_frames(s.path, size=size, max_frames=max_frames)))
        names.append(s.name)
        tracks.append(frames[keyframe_positions(len(frames), interval)])
        counts.append(len(frames))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(names), n_frames=np.array(counts), **{f"v{i}": t for i, t in enumerate(tracks)})
    os.replace(tmp, path)
    return names, tracks, counts


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure_point(codec: KeyframeCodec, tracks: list[np.ndarray], n_pixels: int) -> dict:
    """Code every track with ``codec`` and decode it back: bytes, keyframe PSNR, encode time."""
    n_bytes, psnrs, enc_cpu, enc_wall = 0, [], 0.0, 0.0
    for track in tracks:
        height, width = track.shape[1:3]
        cpu0, wall0 = _children_cpu_s(), time.perf_counter()
        segments = encode_keyframes(track, codec)
        enc_cpu += _children_cpu_s() - cpu0
        enc_wall += time.perf_counter() - wall0
        decoded = np.concatenate([decode_keyframes(data, codec, width, height, n) for _, n, data in segments])
        n_bytes += sum(len(data) for *_, data in segments)
        psnrs.append(psnr_per_frame(track, decoded))
    return {"codec": codec.to_json(), "quality": codec.quality, "n_bytes": n_bytes,
            "bpp": bits_per_pixel(n_bytes, n_pixels), "psnr": float(np.mean(np.concatenate(psnrs))),
            "encode_cpu_s": enc_cpu, "encode_wall_s": enc_wall}


def summarize(points: dict[str, list[dict]]) -> dict[str, dict]:
    """Per candidate: BD-rate/BD-PSNR against the baseline and encode time relative to it."""
    base = points[BASELINE]
    base_cpu = sum(p["encode_cpu_s"] for p in base)
    out = {}
    for label, pts in points.items():
        bd = bd_compare([p["bpp"] for p in base], [p["psnr"] for p in base],
                        [p["bpp"] for p in pts], [p["psnr"] for p in pts])
        cpu = sum(p["encode_cpu_s"] for p in pts)
        out[label] = {"bd_rate_percent": bd["bd_rate_percent"], "bd_psnr_db": bd["bd_psnr_db"],
                      "bd_note": bd["note"], "psnr_interval_db": bd["psnr_interval_db"],
                      "encode_cpu_s": cpu, "encode_time_vs_baseline": cpu / base_cpu if base_cpu else None}
    return out


def _signed(value, digits: int, sign: str = "+") -> str:
    return "" if value is None else f"{value:{sign}.{digits}f}"


def markdown(result: dict) -> str:
    lines = [f"# Keyframe-track codecs at {result['size']}", "",
             f"- date (UTC): {result['date_utc']}; {result['n_videos']} videos, {result['n_frames']} frames, "
             f"{result['n_keyframes']} keyframes (every {result['interval']}th + last of the first "
             f"{result['max_frames']})",
             f"- baseline: `{BASELINE}` = SVT-AV1 preset 5, 32 keyframes per segment (KeyframeCodec()'s "
             f"earlier default) at quality {list(CANDIDATES[BASELINE][1])}",
             f"- command: `{result['command']}`",
             "- rate: keyframe bytes over all frames' pixels; quality: mean RGB PSNR of the keyframes; "
             "encode: CPU s of the single-threaded ffmpeg encoders, summed over the ladder", "",
             "| candidate | BD-rate % | BD-PSNR dB | encode CPU s | x baseline time | points (quality: bpp / dB) |",
             "|---|---:|---:|---:|---:|---|"]
    for label, s in result["summary"].items():
        pts = "; ".join(f"{p['quality']}: {p['bpp']:.4f} / {p['psnr']:.2f}" for p in result["points"][label])
        lines.append(f"| {label} | {_signed(s['bd_rate_percent'], 1)} | {_signed(s['bd_psnr_db'], 2)} | "
                     f"{s['encode_cpu_s']:.1f} | {_signed(s['encode_time_vs_baseline'], 2, sign='')} | {pts} |"
                     + (f" {s['bd_note']}" if s["bd_note"] else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_keyframe_codecs",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True, help="folder of videos (e.g. ../shared/corpus)")
    ap.add_argument("--size", default="160x128")
    ap.add_argument("--interval", type=int, default=8)
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--only", default="", help="comma list of candidate labels (default: all)")
    ap.add_argument("--videos", default="", help="comma list of corpus file names (default: all)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    labels = [x.strip() for x in args.only.split(",") if x.strip()] or list(CANDIDATES)
    unknown = set(labels) - set(CANDIDATES)
    if unknown:
        raise SystemExit(f"unknown candidates {sorted(unknown)}; known: {list(CANDIDATES)}")
    if BASELINE not in labels:
        labels.insert(0, BASELINE)
    cache = args.out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / ".gitignore").write_text("# keyframe tracks and per-point caches: never committed\n*\n")
    names, tracks, counts = load_tracks(args.corpus, (width, height), args.interval, args.max_frames, cache,
                                        [v.strip() for v in args.videos.split(",") if v.strip()])
    n_pixels = sum(counts) * width * height
    tracks_sha = hashlib.sha256(b"".join(t.tobytes() for t in tracks)).hexdigest()
    print(f"{len(names)} videos, {sum(counts)} frames, {sum(len(t) for t in tracks)} keyframes at {args.size}")
    default_exe, points = ffmpeg_exe(), {}
    for label in labels:
        make, ladder = CANDIDATES[label]
        encoder = make(ladder[0]).encoder
        if encoder not in ffmpeg_codecs(default_exe):      # vvc: imageio-ffmpeg's 9.x build
            import imageio_ffmpeg

            os.environ["NVCODEC_FFMPEG"] = imageio_ffmpeg.get_ffmpeg_exe()
        try:
            pts = []
            for q in ladder:
                codec = make(q)
                key = hashlib.sha256(json.dumps([codec.to_json(), tracks_sha]).encode()).hexdigest()[:20]
                path = cache / f"point-{key}.json"
                if path.exists():
                    point = json.loads(path.read_text())
                else:
                    point = measure_point(codec, tracks, n_pixels)
                    report.write_json(path, point)
                pts.append(point)
                print(f"{label:18s} q{q:2d}: {point['bpp']:.4f} bpp {point['psnr']:.2f} dB "
                      f"encode {point['encode_cpu_s']:.1f} CPU s", flush=True)
        finally:
            os.environ.pop("NVCODEC_FFMPEG", None)
        points[label] = pts
        result = {"size": args.size, "interval": args.interval, "max_frames": args.max_frames,
                  "n_videos": len(names), "n_frames": sum(counts), "n_keyframes": sum(len(t) for t in tracks),
                  "videos": names, "tracks_sha256": tracks_sha,
                  "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                  "command": shlex.join(["python", "-m", "benchmarks.bench_keyframe_codecs",
                                         *(sys.argv[1:] if argv is None else argv)]),
                  "ffmpeg": {"default": default_exe}, "summary": summarize(points), "points": points}
        # rewritten after each candidate, so a long run has its finished candidates on disk
        report.write_json(args.out / f"{args.size}.json", result)
        report.write_atomic(args.out / f"{args.size}.md", markdown(result).encode())
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
