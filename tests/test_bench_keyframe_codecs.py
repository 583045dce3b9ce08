"""benchmarks.bench_keyframe_codecs: BD-rate and encode time against the baseline."""

import pytest

from benchmarks.bench_keyframe_codecs import BASELINE, CANDIDATES, markdown, summarize
from nvcodec.keyframes import KeyframeCodec


def _points(scale, cpu):
    return [{"quality": q, "bpp": b * scale, "psnr": p, "encode_cpu_s": cpu}
            for q, b, p in ((36, 0.04, 33.5), (42, 0.03, 32.2), (48, 0.023, 30.8), (54, 0.017, 29.4))]


def test_summary_gives_bd_rate_and_time_against_the_baseline():
    """Same PSNR at 80 % of the bytes: BD-rate -20 %; twice the CPU time: 2.0 x; the baseline is 0."""
    summary = summarize({BASELINE: _points(1.0, 10.0), "other": _points(0.8, 20.0)})
    assert summary[BASELINE]["bd_rate_percent"] == pytest.approx(0.0, abs=1e-9)
    assert summary["other"]["bd_rate_percent"] == pytest.approx(-20.0, abs=1e-6)
    assert summary["other"]["encode_time_vs_baseline"] == pytest.approx(2.0)


def test_baseline_is_the_old_default_and_todays_default_is_a_candidate():
    """The baseline is SVT-AV1 preset 5 (the earlier default); KeyframeCodec() today is the
    candidate labelled default; every candidate builds at its ladder."""
    make, ladder = CANDIDATES[BASELINE]
    assert make(44) == KeyframeCodec("av1", "inter", quality=44, speed=5, encoder="libsvtav1", segment_length=32)
    defaults = [label for label, (make, _) in CANDIDATES.items() if make(KeyframeCodec().quality) == KeyframeCodec()]
    assert defaults == ["svt p2 (default)"]
    for label, (make, ladder) in CANDIDATES.items():
        assert [make(q).quality for q in ladder] == list(ladder), label


def test_markdown_lists_every_candidate():
    pts = {BASELINE: _points(1.0, 10.0), "other": _points(0.8, 20.0)}
    result = {"size": "16x16", "date_utc": "d", "n_videos": 1, "n_frames": 9, "n_keyframes": 2, "interval": 8,
              "max_frames": 9, "command": "c", "summary": summarize(pts), "points": pts}
    text = markdown(result)
    assert "| other | -20.0 | " in text and f"| {BASELINE} | +0.0 |" in text
