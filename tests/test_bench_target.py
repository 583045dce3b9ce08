"""benchmarks.bench_target: a row from a fake encode report and file metadata, and the table."""

import pytest

from benchmarks.bench_target import markdown, optimum_lines, record

REPORT = {"n_bytes": 3000, "n_pixels": 200_000, "n_frames": 10, "bpp": 0.12, "psnr": 30.5, "keyframe_psnr": 33.0,
          "blend_psnr": 28.0, "n_params": 4000,
          "bytes_by_part": {"keyframes": 1000, "weights": 1500, "metadata": 400, "container": 100}}
METADATA = {"keyframe_codec": {"codec": "av1", "mode": "inter", "params": {"quality": 41}},
            "model": {"c0": 3}, "fit": {"epochs": 20, "rate_lambda": 0.01}}
LOG = ["  keyframe quality 41: 0.0400 bpp, a bit costs 812.5 of squared error; weights at that price 0.0600 bpp",
       "rate plan for 0.125 bpp: keyframe quality 41 (0.0400 bpp), weights 0.0768 bpp (C0=3)", "fit: 30 dB", "other"]


def test_record_reads_the_plan_the_file_and_the_error():
    row = record(0.125, REPORT, METADATA, 3000, 12.5, LOG)
    assert row["rel_error"] == pytest.approx(0.12 / 0.125 - 1)
    assert (row["keyframe_quality"], row["c0"], row["bits_per_weight"]) == (41, 3, 3.0)
    assert row["planned_bpp"] == {"keyframes": 0.04, "weights": 0.0768}
    assert row["bpp_by_part"]["weights"] == pytest.approx(0.06)
    assert row["log"] == LOG[:2]
    with pytest.raises(ValueError, match="the file holds"):
        record(0.125, REPORT, METADATA, 2999, 12.5, LOG)


def test_markdown_flags_a_target_outside_the_tolerance():
    rows = [record(t, REPORT, METADATA, 3000, 1.0, LOG) for t in (0.125, 0.2)]
    errors = [abs(r["rel_error"]) for r in rows]
    result = {"rows": rows, "date_utc": "d", "machine": "m", "corpus": "c", "n_frames": 10, "n_pixels": 200_000,
              "settings": {"code": "abc"}, "command": "cmd", "wall_s": 2.0, "encode_s_total": 2.0, "max_abs_error": max(errors),
              "all_within": max(errors) <= 0.1}
    text = markdown(result)
    assert "MISSED: 0.2" in text and "| 0.125 | 0.1200 | -4.00 % |" in text and "0.0400 / 0.0768" in text


def test_optimum_lines_set_the_plan_beside_its_neighbours_and_say_which_wins():
    plan = record(0.125, REPORT, METADATA, 3000, 1.0, LOG)
    finer = {**plan, "step": -2, "keyframe_quality": 39, "psnr": 30.3}
    coarser = {**plan, "step": 2, "keyframe_quality": 43, "psnr": 30.6}
    refused = {"step": -4, "keyframe_quality": 37, "refused": "too low"}
    text = "\n".join(optimum_lines([{**plan, "neighbours": [finer, coarser, refused]}]))
    assert "| 0.125 | 39 | -2 | 0.1200 |" in text and "| 30.30 | -0.20 |" in text
    assert "| 0.125 | 37 | -4 | refused: too low |" in text
    assert "a neighbour is better** (best neighbour +0.10 dB at step +2)" in text
    text = "\n".join(optimum_lines([{**plan, "neighbours": [finer]}]))
    assert "the plan is best** (best neighbour -0.20 dB at step -2)" in text
    assert optimum_lines([plan]) == []
