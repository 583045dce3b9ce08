"""The cut detector (nvcodec.cuts): shots of synthetic frames, edge cases, settings."""

import numpy as np
import pytest

from nvcodec.cuts import CutDetector, cuts_from_scores, detect_cuts, frame_features, transition_scores


def shot(seed: int, n: int, height: int = 32, width: int = 48, speed: int = 1) -> np.ndarray:
    """A textured scene of one random colour scheme, panning ``speed`` pixels per frame, with noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, 3)
    texture = rng.normal(0, 40, (height, width * 4, 3))
    texture = np.cumsum(np.cumsum(texture, 0), 1) / 30       # smooth large blobs
    frames = []
    for t in range(n):
        view = texture[:, t * speed:t * speed + width]
        frames.append(base + view + rng.normal(0, 3, view.shape))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_cuts_between_shots_are_found_frame_exactly():
    """Four shots of 10, 7, 1 and 12 frames: cuts at 10, 17 and 18, nothing else."""
    frames = np.concatenate([shot(1, 10), shot(2, 7), shot(3, 1), shot(4, 12)])
    assert detect_cuts(frames) == [10, 17, 18]


def test_a_steady_pan_or_noise_is_not_a_cut():
    """One shot panning 2 px a frame with sensor noise: no cut."""
    assert detect_cuts(shot(5, 30, speed=2)) == []


def test_edge_cases_all_cuts_first_and_last_frame_and_one_frame():
    """Every frame a new shot; a cut at frame 1; a cut at the last frame; a one-frame video."""
    all_cuts = np.concatenate([shot(10 + k, 1) for k in range(8)])
    assert detect_cuts(all_cuts) == list(range(1, 8))
    assert detect_cuts(np.concatenate([shot(20, 1), shot(21, 9)])) == [1]
    assert detect_cuts(np.concatenate([shot(22, 9), shot(23, 1)])) == [9]
    assert detect_cuts(shot(24, 1)) == []
    assert transition_scores(shot(24, 1)).shape == (0,)


def test_frames_may_come_from_a_generator_and_must_share_a_size():
    """Streaming input gives the scores of the array; a frame of another size is refused with its index."""
    frames = np.concatenate([shot(1, 5), shot(2, 5)])
    assert np.array_equal(transition_scores(iter(frames)), transition_scores(frames))
    with pytest.raises(ValueError, match="frame 1: shape"):
        transition_scores([frames[0], frames[1][:16]])


def test_features_of_a_tiny_frame_and_bad_input():
    """A 1x1 frame has a histogram summing to 3 (one per channel) and one block; float frames are refused."""
    hist, blocks = frame_features(np.full((1, 1, 3), 200, np.uint8))
    assert hist.sum() == pytest.approx(3.0) and blocks.shape == (1, 1)
    with pytest.raises(ValueError, match="expected uint8"):
        frame_features(np.zeros((4, 4, 3), np.float32))


def test_the_ratio_test_rejects_a_jump_inside_steady_high_scores():
    """A score above threshold but less than ratio x its neighbours' median is not a cut; above
    sure_threshold it is, whatever the neighbours."""
    det = CutDetector(threshold=0.01, ratio=4.0, window=2, sure_threshold=0.5)
    assert cuts_from_scores([0.02, 0.02, 0.03, 0.02, 0.02], det) == []
    assert cuts_from_scores([0.001, 0.001, 0.03, 0.001, 0.001], det) == [3]
    assert cuts_from_scores([0.6, 0.6, 0.6], det) == [1, 2, 3]


def test_detector_settings_are_validated_by_name():
    """Bad settings name the field."""
    with pytest.raises(ValueError, match="threshold"):
        CutDetector(threshold=0)
    with pytest.raises(ValueError, match="window"):
        CutDetector(window=0)
    with pytest.raises(ValueError, match="sure_threshold"):
        CutDetector(threshold=0.1, sure_threshold=0.05)
