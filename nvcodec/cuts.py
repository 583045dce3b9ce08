"""Scene-cut detection on decoded RGB frames: where a new shot starts.

Pure numpy, no ffmpeg and no torch: the encoder runs it on the frames it has read (the
same frames it codes), so the cuts depend only on those pixels. The cuts themselves are not
stored: the encoder turns them into keyframe positions (``nvcodec.corpus.keyframe_positions``),
which the file lists (FORMAT.md section 15).

The test compares each frame with the one before it on two cheap features:

- ``hist``: total-variation distance (0..1) between the frames' Y, Cb and Cr histograms
  (``N_BINS`` bins each, BT.601 via :func:`nvcodec.color.rgb_to_ycbcr444`): a new shot has
  other colours;
- ``sad``: mean absolute difference (0..1) of the luma after averaging ``BLOCK``x``BLOCK``
  blocks, normalised by 255: a new shot has another layout, while the block mean keeps
  noise and small motion out.

The score of a transition is ``hist * sad`` (both must jump: a pan keeps the colours, a
lighting change keeps the layout). A transition is a cut when its score is above
``threshold`` and at least ``ratio`` times the median score of the ``window`` transitions
on each side (so steady fast motion, whose every transition scores high, is not a cut),
or above ``sure_threshold`` whatever its neighbours; neighbours above ``sure_threshold`` are
left out of the median (in a run of one-frame shots every transition is a cut, and a cut
between two similar shots there must not be judged against its neighbouring cuts). Defaults were chosen on a generated corpus
(``benchmarks/make_cut_corpus.py --seed 0``) and measured on another (``--seed 1``) and on
the plain corpus clips: ``benchmarks/bench_cuts.py`` (figures in its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nvcodec.color import rgb_to_ycbcr444

N_BINS = 16       # histogram bins per Y/Cb/Cr channel
BLOCK = 8         # luma block size for the SAD feature (pixels)


@dataclass(frozen=True)
class CutDetector:
    """The detector's settings (see the module docstring for what each one does)."""
    threshold: float = 0.025
    ratio: float = 4.0
    window: int = 4
    sure_threshold: float = 0.08

    def __post_init__(self) -> None:
        for name in ("threshold", "ratio", "sure_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"CutDetector: {name} must be a number > 0, got {value!r}")
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
            raise ValueError(f"CutDetector: window must be an int >= 1, got {self.window!r}")
        if self.sure_threshold < self.threshold:
            raise ValueError(f"CutDetector: sure_threshold ({self.sure_threshold}) must be >= threshold "
                             f"({self.threshold})")


def frame_features(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(histogram (3 * N_BINS,) float64 summing to 3, block-mean luma (h', w') float64) of one
    (H, W, 3) uint8 RGB frame; frames smaller than a block use one block."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or min(frame.shape[:2]) < 1:
        raise ValueError(f"frame: expected uint8 (H >= 1, W >= 1, 3), got {frame.dtype} {frame.shape}")
    planes = rgb_to_ycbcr444(frame)
    n_px = frame.shape[0] * frame.shape[1]
    hist = np.concatenate([np.bincount(p.ravel() // (256 // N_BINS), minlength=N_BINS) / n_px
                           for p in planes])
    y = planes[0].astype(np.float64)
    bh, bw = max(1, y.shape[0] // BLOCK), max(1, y.shape[1] // BLOCK)
    sh, sw = y.shape[0] // bh, y.shape[1] // bw          # block size (covers all but a remainder)
    blocks = y[:bh * sh, :bw * sw].reshape(bh, sh, bw, sw).mean(axis=(1, 3))     # (bh, bw)
    return hist, blocks


def transition_scores(frames) -> np.ndarray:
    """Score of each transition i-1 -> i, for i = 1..N-1: float64 (N-1,), see the module docstring.

    ``frames``: an (N, H, W, 3) uint8 array or any iterable of (H, W, 3) frames of one size
    (a generator keeps memory at one frame)."""
    scores, prev, shape = [], None, None
    for i, frame in enumerate(frames):
        hist, blocks = frame_features(frame)
        if shape is None:
            shape = np.shape(frame)
        elif np.shape(frame) != shape:
            raise ValueError(f"frame {i}: shape {np.shape(frame)} differs from frame 0's {shape}")
        if prev is not None:
            h = 0.5 * np.abs(hist - prev[0]).sum() / 3          # total variation, mean of 3 channels
            sad = np.abs(blocks - prev[1]).mean() / 255
            scores.append(h * sad)
        prev = (hist, blocks)
    return np.asarray(scores, np.float64)


def cuts_from_scores(scores: np.ndarray, detector: CutDetector = CutDetector()) -> list[int]:
    """Frame indices (1..N-1, rising) that start a new shot, from ``transition_scores``."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores: expected a 1-D array, got shape {scores.shape}")
    out = []
    for i, s in enumerate(scores):
        if s <= detector.threshold:
            continue
        neighbours = np.concatenate([scores[max(0, i - detector.window):i], scores[i + 1:i + 1 + detector.window]])
        neighbours = neighbours[neighbours <= detector.sure_threshold]      # sure cuts are not motion
        local = float(np.median(neighbours)) if neighbours.size else 0.0
        if s > detector.sure_threshold or s > detector.ratio * local:
            out.append(i + 1)
    return out


def detect_cuts(frames, detector: CutDetector = CutDetector()) -> list[int]:
    """Frame indices that start a new shot (never 0: the first frame starts the video anyway)."""
    return cuts_from_scores(transition_scores(frames), detector)
