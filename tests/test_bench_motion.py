"""benchmarks/bench_motion.py: configuration parsing, the floor measurement on tiny frames, the report."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_motion, rd
from nvcodec.motion import MotionConfig


def test_parse_config_reads_grid_step_and_interpolation():
    """'32x4' is 32-pixel cells of whole-pixel vectors, bilinear; ':nearest' switches the interpolation."""
    assert bench_motion.parse_config("32x4") == MotionConfig(grid=32, step_qpel=4, interp="bilinear")
    assert bench_motion.parse_config("16x2:nearest") == MotionConfig(grid=16, step_qpel=2, interp="nearest")
    with pytest.raises(ValueError):
        bench_motion.parse_config("32")


def tiny_corpus() -> rd.Corpus:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)
    frames = {"pan": np.stack([big[i:i + 24, 2 * i:2 * i + 32] for i in range(10)]),
              "still": np.repeat(big[None, :16, :16], 3, axis=0)}
    return rd.Corpus(Path("."), list(frames), frames, {n: Fraction(25) for n in frames}, "x")


def test_floor_point_measures_real_bytes_and_beats_the_blend_on_a_pan():
    """The motion floor is built from decoded payloads; its bytes are counted; on a pan it beats the blend."""
    corpus = tiny_corpus()
    dec_kf = {n: f[[0, 8, 9]] if len(f) == 10 else f[[0, 2]] for n, f in corpus.frames.items()}
    blend = bench_motion.floor_point(corpus, dec_kf, 8, None)
    motion = bench_motion.floor_point(corpus, dec_kf, 8, MotionConfig(8, 4))
    assert blend["motion_bytes"] == 0 and motion["motion_bytes"] > 2 * bench_motion.CHUNK_OVERHEAD_BYTES
    assert motion["psnr"] > blend["psnr"] + 3
    assert sum(motion["bytes_by_prediction"].values()) > 0


def test_report_renders_every_point():
    """results.md lists every floor point, every x264 point and the BD-rate lines."""
    point = {"keyframe_quality": 40, "keyframe_psnr": 31.0, "motion_bytes": 0, "motion_bpp": 0.0, "bpp": 0.03,
             "psnr": 26.5, "seconds": 1.0, "kind": "blend"}
    motion = dict(point, kind="motion", grid=32, step_qpel=4, interp="bilinear", psnr=28.0, motion_bytes=500,
                  bytes_by_prediction={"none": 900, "time": 700, "space": 600, "time+space": 500})
    result = {"n_videos": 2, "corpus": "c", "n_frames": 64, "max_frames": 32, "size": [160, 128], "interval": 8,
              "command": "python -m benchmarks.bench_motion", "machine": "m", "seconds": 5.0,
              "points": [point, motion], "x264_medium": [{"crf": 36, "psnr": 28.1, "bpp": 0.04}],
              "bd_rate_vs_x264_medium": {"motion": {"bd_rate_percent": -3.0, "note": ""}}}
    text = bench_motion.report(result)
    assert "| 40 | 31.00 | motion | 32 x 4 : bilinear | 28.00 | +1.50 | 500 |" in text
    assert "| 36 | 28.10 | 0.0400 |" in text and "motion floor: BD-rate -3.0 %" in text


def test_floor_point_takes_each_videos_motion_and_the_report_compares_the_choice_with_the_envelope():
    """Given motion (the encoder's choice), the floor is built from it, bytes counted; results.md prices
    the allocated point against the upper envelope of the fixed configurations."""
    from nvcodec.motion import estimate_video

    corpus = tiny_corpus()
    dec_kf = {n: f[[0, 8, 9]] if len(f) == 10 else f[[0, 2]] for n, f in corpus.frames.items()}
    motions = {n: estimate_video(corpus.frames[n], dec_kf[n], 8, MotionConfig(8, 4)) for n in corpus.names}
    given = bench_motion.floor_point(corpus, dec_kf, 8, None, motions)
    fixed = bench_motion.floor_point(corpus, dec_kf, 8, MotionConfig(8, 4))
    assert given["psnr"] == fixed["psnr"] and given["motion_bytes"] == fixed["motion_bytes"]

    base = {"keyframe_psnr": 31.0, "motion_bpp": 0.001, "seconds": 1.0, "motion_bytes": 100,
            "bytes_by_prediction": {"none": 1, "time": 1, "space": 1, "time+space": 1}}
    fixed_points = [dict(base, kind="motion", keyframe_quality=q, grid=32, step_qpel=4, interp="bilinear",
                         bpp=bpp, psnr=psnr) for q, bpp, psnr in ((40, 0.04, 28.0), (30, 0.08, 30.0))]
    blends = [dict(base, kind="blend", keyframe_quality=q, bpp=0.03, psnr=26.0) for q in (40, 30)]
    alloc = dict(base, kind="allocated", keyframe_quality=40, lam=123.4, chosen={"16x2": 2}, bpp=0.05, psnr=29.0)
    result = {"n_videos": 2, "corpus": "c", "n_frames": 64, "max_frames": 32, "size": [160, 128], "interval": 8,
              "command": "python -m benchmarks.bench_motion", "machine": "m", "seconds": 5.0,
              "points": blends + fixed_points + [alloc], "x264_medium": [{"crf": 36, "psnr": 28.1, "bpp": 0.04}],
              "bd_rate_vs_x264_medium": {}, "bd_rate_allocated_vs_main_config": None}
    text = bench_motion.report(result)
    assert "| 40 | 31.00 | allocated | per video: 16x2 x2 | 29.00 | +3.00 |" in text
    # the envelope needs exp(mean(log 0.04, log 0.08)) = 0.0566 bpp for 29 dB: the choice saves 11.6 %
    assert "| 40 | 123 | 29.00 | 0.0500 | 0.0566 | +11.6 % |" in text


def test_refined_point_is_measured_beside_block_matching_and_reported():
    """--refine-lambda: the same config's fields refined (nvcodec.motion.refine_clip) give a floor at least
    as good at lambda 0, and the report's refinement table pairs each refined point with its plain one."""
    corpus = tiny_corpus()
    dec_kf = {n: f[[0, 8, 9]] if len(f) == 10 else f[[0, 2]] for n, f in corpus.frames.items()}
    plain = bench_motion.floor_point(corpus, dec_kf, 8, MotionConfig(8, 2))
    refined = bench_motion.floor_point(corpus, dec_kf, 8, MotionConfig(8, 2), lam=0.0)
    assert refined["refine_lambda"] == 0.0 and plain["refine_lambda"] is None
    assert refined["psnr"] >= plain["psnr"]
    common = {"keyframe_quality": 40, "keyframe_psnr": 31.0, "bpp": 0.05, "motion_bpp": 0.01, "seconds": 2.0}
    blend = dict(common, kind="blend", psnr=20.0, motion_bytes=0)
    points = [blend, dict(plain, kind="motion", **common), dict(refined, kind="refined", **common)]
    result = {"n_videos": 2, "corpus": "c", "n_frames": 13, "max_frames": 10, "size": [32, 24], "interval": 8,
              "command": "python -m benchmarks.bench_motion", "machine": "m", "seconds": 5.0, "points": points,
              "x264_medium": [], "bd_rate_vs_x264_medium": {}}
    text = bench_motion.report(result)
    assert "8 x 2 : bilinear, refined at lambda 0 |" in text
    assert (f"| 40 | 8 x 2 | 0 | {plain['psnr']:.2f} -> {refined['psnr']:.2f} "
            f"({refined['psnr'] - plain['psnr']:+.2f}) | {plain['motion_bytes']} -> {refined['motion_bytes']}") in text
