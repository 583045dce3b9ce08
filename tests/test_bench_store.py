"""The store benchmark's clip generator: which source and segment each generated clip comes from."""

from __future__ import annotations

import pytest

from benchmarks.bench_store import clip_plan


def test_looping_plan_takes_every_source_in_turn():
    """With looping every source serves every pass: clip i is (i mod n_sources, i // n_sources)."""
    assert clip_plan([10, 100, 30], 7, 20, 3, True) == [(i % 3, i // 3) for i in range(7)]


def test_cut_plan_takes_only_whole_distinct_segments():
    """Without looping a source serves pass p only if frames stride*p .. stride*p + n_frames - 1 exist."""
    plan = clip_plan([10, 100, 45], 6, 20, 20, False)
    assert plan == [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (1, 3)]
    assert len(set(plan)) == len(plan)


def test_cut_plan_refuses_more_clips_than_the_corpus_holds():
    """Asking for more distinct segments than exist is one clear error, not a loop."""
    with pytest.raises(SystemExit, match="only 2 distinct clips of 20 frames"):
        clip_plan([10, 40], 3, 20, 20, False)
