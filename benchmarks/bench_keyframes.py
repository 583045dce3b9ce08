"""Keyframe codec choice by measurement: bpp and keyframe PSNR per codec / mode / quality.

Superseded for the inter track by benchmarks/bench_keyframe_codecs.py (BD-rate against
the old default on the whole corpus; the default is now SVT-AV1 preset 2); the table below is
the earlier measurement, which chose preset 5.

Corpus clips are read at a small coding size (default 160x128), keyframes taken every
K frames plus the last (nvcodec.corpus.keyframe_positions), coded with each
configuration, decoded back with nvcodec.keyframes.decode_keyframes, and compared with
the source keyframes (nvcodec.metrics.psnr_per_frame, averaged over all keyframes).

bpp spreads the keyframe bytes over ALL frames of the videos, as in the .nvc rate:
bpp = 8 * keyframe bytes / (sum of n_frames * W * H). Encode seconds are wall time of
encode_keyframes (one ffmpeg process per video and configuration; encoders
single-threaded, as nvcodec runs them); decode seconds decode each video's segments
concatenated, in one process.

    nice -n 10 python -m benchmarks.bench_keyframes            # ~3-4 min of CPU

Measured 2026-11-25 (shared 2-core VM, loaded; ffmpeg 5.1 /usr/bin/ffmpeg, vvc with imageio's
9.0.2): 5 clips (mmaction2_test, cotracker_bear, moviepy_chaplin, openh264 foreman CIF,
sam2_bedroom), 1123 frames, 147 keyframes at 160x128, K=8. bpp over all frames.

    config                    q    bpp   kf PSNR  enc s | bpp @ 31 dB
    av1 aom intra s6         36  0.0949   32.62   7.9  | 0.0716
                             44  0.0581   29.79   9.1  |
    hevc x265 intra medium   26  0.0809   31.27   5.1  | 0.0770
    vvc vvenc intra faster   34  0.0709   30.64  12.5  | 0.0751
    av1 aom inter32 s6       44  0.0337   31.11  10.2  | 0.0329
    av1 aom inter32 s4       44  0.0274   30.70  21.0  | 0.0291
    av1 svt inter32 p8       44  0.0323   31.03   2.9  | 0.0321
    av1 svt inter32 p5       44  0.0324   31.52   5.7  | 0.0289   <- default
    av1 svt inter16 p8       44  0.0339   31.03   2.7  | 0.0337
    hevc x265 inter32 medium 26  0.0467   31.77   3.6  | 0.0398

An inter-coded track costs ~40 % of all-intra at equal quality; SVT-AV1 preset 5 matches
libaom cpu-used 4 at a quarter of its encode time; 16-keyframe segments cost ~5 % more
than 32. HEVC and VVC (vvenc 'faster', intra only) do not beat AV1 here.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

from nvcodec.corpus import keyframe_positions
from nvcodec.keyframes import KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.media import ffmpeg_codecs, ffmpeg_exe, read_frames
from nvcodec.metrics import psnr_per_frame

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DEFAULT_CLIPS = ("mmaction2_test.mp4", "cotracker_bear.mp4", "moviepy_chaplin.mp4",
                 "openh264_test_cif_P_CABAC_slice.264", "sam2_bedroom.mp4")

# (label, codec factory over quality, qualities)
CONFIGS = [
    ("av1 aom intra s6", lambda q: KeyframeCodec("av1", "intra", quality=q, speed=6), (36, 44, 52)),
    ("av1 aom inter32 s6", lambda q: KeyframeCodec("av1", "inter", quality=q, speed=6), (36, 44, 52)),
    ("av1 aom inter32 s4", lambda q: KeyframeCodec("av1", "inter", quality=q, speed=4), (40, 44, 48)),
    ("av1 svt inter32 p8", lambda q: KeyframeCodec("av1", "inter", quality=q, speed=8, encoder="libsvtav1"),
     (36, 44, 52)),
    ("av1 svt inter32 p5", lambda q: KeyframeCodec("av1", "inter", quality=q, speed=5, encoder="libsvtav1"),
     (40, 44, 48)),
    ("av1 svt inter16 p8", lambda q: KeyframeCodec("av1", "inter", quality=q, speed=8, encoder="libsvtav1",
                                                   segment_length=16), (40, 44, 48)),
    ("hevc x265 intra medium", lambda q: KeyframeCodec("hevc", "intra", quality=q, speed=4), (22, 26, 30)),
    ("hevc x265 inter32 medium", lambda q: KeyframeCodec("hevc", "inter", quality=q, speed=4), (22, 26, 30)),
    ("vvc vvenc intra faster", lambda q: KeyframeCodec("vvc", "intra", quality=q, speed=4), (28, 34, 40)),
]


def load(clips, size, interval):
    """Per clip: (source keyframes (n_kf, H, W, 3) uint8, n_frames); streaming, keyframes kept only."""
    out = []
    for name in clips:
        frames, n = {}, 0
        for i, frame in enumerate(read_frames(CORPUS / name, size=size)):
            frames[i] = frame.copy() if i % interval == 0 else None
            last, n = frame.copy(), i + 1
        pos = keyframe_positions(n, interval)
        out.append((np.stack([frames[p] if frames[p] is not None else last for p in pos]), n))
    return out


def bpp_at_psnr(points, target):
    """bpp at a target PSNR by linear interpolation of log(bpp) between measured points (None outside)."""
    pts = sorted((p, b) for b, p in points)
    for (p0, b0), (p1, b1) in zip(pts, pts[1:]):
        if p0 <= target <= p1 and p1 > p0:
            w = (target - p0) / (p1 - p0)
            return math.exp(math.log(b0) + w * (math.log(b1) - math.log(b0)))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", default=list(DEFAULT_CLIPS))
    ap.add_argument("--size", default="160x128")
    ap.add_argument("--interval", type=int, default=8)
    ap.add_argument("--target-psnr", type=float, default=31.0)
    ap.add_argument("--only", default="", help="substring filter on configuration labels")
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    data = load(args.clips, (width, height), args.interval)
    n_pixels = sum(n for _, n in data) * width * height
    n_kf = sum(len(k) for k, _ in data)
    print(f"# {len(data)} clips, {sum(n for _, n in data)} frames, {n_kf} keyframes at {width}x{height}, "
          f"K={args.interval}; ffmpeg {ffmpeg_exe()}")
    print(f"{'config':26s} {'q':>3s} {'bytes':>8s} {'bpp':>7s} {'kf PSNR':>8s} {'enc s':>7s} {'dec s':>6s}")
    default_exe = ffmpeg_exe()
    summary = []
    for label, make, qualities in CONFIGS:
        if args.only and args.only not in label:
            continue
        codec0 = make(qualities[0])
        if codec0.encoder not in ffmpeg_codecs(default_exe):
            import imageio_ffmpeg
            os.environ["NVCODEC_FFMPEG"] = imageio_ffmpeg.get_ffmpeg_exe()
        points = []
        for q in qualities:
            codec = make(q)
            n_bytes, enc_s, dec_s, psnrs = 0, 0.0, 0.0, []
            for kf, _ in data:
                t0 = time.perf_counter()
                segments = encode_keyframes(kf, codec)
                t1 = time.perf_counter()
                # segments concatenate into a valid stream: one decoder process per video
                dec = decode_keyframes(b"".join(d for *_, d in segments), codec, width, height, len(kf))
                dec_s += time.perf_counter() - t1
                enc_s += t1 - t0
                n_bytes += sum(len(d) for *_, d in segments)
                psnrs.append(psnr_per_frame(kf, dec))
            bpp = 8 * n_bytes / n_pixels
            psnr = float(np.mean(np.concatenate(psnrs)))
            points.append((bpp, psnr))
            print(f"{label:26s} {q:3d} {n_bytes:8d} {bpp:7.4f} {psnr:8.2f} {enc_s:7.2f} {dec_s:6.2f}", flush=True)
        os.environ.pop("NVCODEC_FFMPEG", None) if codec0.encoder not in ffmpeg_codecs(default_exe) else None
        summary.append((label, bpp_at_psnr(points, args.target_psnr)))
    print(f"\n# bpp needed for {args.target_psnr} dB keyframe PSNR (log-linear interpolation)")
    for label, bpp in summary:
        print(f"{label:26s} {'n/a (outside measured range)' if bpp is None else f'{bpp:.4f}'}")


if __name__ == "__main__":
    main()
