"""benchmarks.make_cut_corpus and benchmarks.bench_cuts: shot plans and frame-exact scoring."""

import numpy as np

from benchmarks.bench_cuts import evaluate, margin
from benchmarks.make_cut_corpus import SAME_SOURCE_GAP, cuts_of, edge_cases, plan_video
from nvcodec.cuts import CutDetector


def test_shot_plans_fit_their_sources_and_every_cut_changes_source_or_jumps_far():
    """Random shots lie inside their source; consecutive shots differ in source or are far apart."""
    rng = np.random.default_rng(3)
    lengths = {"a": 300, "b": 80, "c": 5}
    for _ in range(20):
        shots = plan_video(rng, lengths, 8)
        assert len(shots) == 8
        for (src, first, n), (src2, first2, n2) in zip(shots, shots[1:]):
            assert src != src2 or abs(first2 - first) >= SAME_SOURCE_GAP + n
        assert all(0 <= f and f + n <= lengths[s] and n >= 1 for s, f, n in shots)
    assert cuts_of([("a", 0, 3), ("b", 9, 1), ("a", 200, 4)]) == [3, 4]
    assert cuts_of([("a", 0, 1)]) == []


def test_edge_cases_hold_all_cuts_first_last_and_one_frame():
    """The edge-case videos: every frame a shot; cut at 1; cut at the last frame; one frame."""
    lengths = {f"v{i}": 50 for i in range(14)}
    cases = edge_cases(np.random.default_rng(0), lengths)
    assert cuts_of(cases["all_cuts"]) == list(range(1, 12))
    assert cuts_of(cases["cut_at_1"]) == [1]
    assert cuts_of(cases["cut_at_last"]) == [39]
    assert cuts_of(cases["one_frame"]) == [] and sum(n for *_, n in cases["one_frame"]) == 1


def test_evaluation_is_frame_exact_and_counts_misses_and_false_alarms():
    """A detection one frame late is a miss plus a false alarm; the margin brackets the scores."""
    scores = {"v": np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0]), "w": np.array([0.0, 0.0])}
    truth = {"v": [2], "w": [1]}
    ev = evaluate(truth, scores, CutDetector())
    assert (ev["n_cuts"], ev["n_missed"], ev["n_false_alarms"]) == (2, 1, 0)
    assert ev["videos"]["w"]["missed"] == [1] and ev["videos"]["v"]["detected"] == [2]
    late = evaluate({"v": [3]}, scores, CutDetector())
    assert (late["n_missed"], late["n_false_alarms"]) == (1, 1)
    assert margin(truth, scores) == {"min_at_cut": 0.0, "max_elsewhere": 0.0, "n_at_cut": 2, "n_elsewhere": 6}
    assert margin({"v": [2]}, {"v": scores["v"]})["min_at_cut"] == 0.5
