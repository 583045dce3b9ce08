"""Coded motion: one video's coarse motion fields <-> the 'MOTN' chunk payload (FORMAT.md section 14).

Every in-between frame of a clip (strictly between its start and end keyframe)
carries one field towards each of the two keyframes: integers q of shape
(n_inbetween, 2 keyframes, 2 components (dy, dx), rows, cols), in units of
``step_qpel`` quarter pixels.  A clip's fields are predicted from their
neighbour in time and/or space (the encoder keeps the cheapest prediction,
recorded per clip) and the residuals are coded with ``encode_ints`` (section 9).
A per-clip table of byte counts lets a reader decode one clip without decoding
the others.  How the decoder turns the integers into pictures is
``nvcodec.motion`` (section 14.3); this module only moves integers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .chunks import MOTN, PayloadReader, Record
from .entropy import decode_ints, encode_ints
from .errors import NvcFormatError
from .positions import KeyframeLayout

# MOTN (chunks.py) is critical: decoding without the motion would give other pictures (section 14.1).

# Wire codes (section 14.2).  Explicit tables; never renumber.
INTERP_NEAREST = 0  # a cell's vector for every pixel of the cell
INTERP_BILINEAR = 1  # vectors bilinear between cell centres (clamped at the frame edge)
INTERP_NAMES = {INTERP_NEAREST: "nearest", INTERP_BILINEAR: "bilinear"}
PRED_NONE = 0  # residual = q
PRED_TIME = 1  # residual = q[i] - q[i-1] (frame axis; q[-1] = 0)
PRED_SPACE = 2  # residual = q - left neighbour (first column: upper neighbour; the first cell: 0)
PRED_TIME_SPACE = 3  # PRED_SPACE applied to the PRED_TIME residual
PRED_NAMES = {PRED_NONE: "none", PRED_TIME: "time", PRED_SPACE: "space", PRED_TIME_SPACE: "time+space"}

MIN_GRID, MAX_GRID = 4, 1024  # motion cell side in pixels
MAX_STEP_QPEL = 16  # vector step, 1/4 .. 4 pixels
MAX_ABS_Q = (1 << 13) - 1  # |q| bound: every residual of every prediction fits 16 signed bits
MAX_VALUES = 1 << 24  # integers per chunk (64 MiB as int32); a reader refuses more
MAX_DIM = 16384  # frame width/height (section 5)

_HEAD = Record(("video", "I"), ("grid", "H"), ("step_qpel", "B"), ("interp", "B"),
               ("rows", "H"), ("cols", "H"), ("n_clips", "I"))
_ENTRY = Record(("pred", "B"), ("n_bits", "B"), ("n_coded_bytes", "I"))


def motion_grid(height: int, width: int, grid: int) -> tuple[int, int]:
    """(rows, cols) of grid x grid cells covering a height x width frame (a partial last cell counts)."""
    return math.ceil(height / grid), math.ceil(width / grid)


def clip_inbetween_counts(n_frames: int, interval: int, keyframes=None) -> list[int]:
    """Frames strictly between each clip's start and end keyframe (FORMAT.md section 13's clips), for
    the regular keyframes or the listed ``keyframes`` (frame numbers, section 15)."""
    if n_frames < 1 or interval < 1:
        raise ValueError(f"need n_frames >= 1 and interval >= 1, got {n_frames}, {interval}")
    return KeyframeLayout(n_frames, interval, keyframes).inbetween_counts()


@dataclass(frozen=True)
class VideoMotion:
    """One video's motion: per clip an int32 array (n_inbetween, 2, 2, rows, cols) in step_qpel / 4 pixels.

    Axis 1 is the keyframe (0 start, 1 end), axis 2 the component (0 dy, 1 dx);
    a vector v of frame i towards keyframe k means pixel p of frame i is
    predicted by keyframe k at p + v.
    """

    grid: int
    step_qpel: int
    interp: int
    rows: int
    cols: int
    clips: tuple[np.ndarray, ...]

    def __post_init__(self):
        for name, lo, hi in (("grid", MIN_GRID, MAX_GRID), ("step_qpel", 1, MAX_STEP_QPEL),
                             ("rows", 1, MAX_DIM), ("cols", 1, MAX_DIM)):
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:
                raise ValueError(f"VideoMotion.{name} must be an int {lo}..{hi}, got {v!r}")
        if self.interp not in INTERP_NAMES:
            raise ValueError(f"VideoMotion.interp must be one of {sorted(INTERP_NAMES)}, got {self.interp!r}")
        clips = []
        for c, q in enumerate(self.clips):
            q = np.asarray(q)
            if q.dtype.kind not in "iu" or q.ndim != 5 or q.shape[1:] != (2, 2, self.rows, self.cols):
                raise ValueError(f"VideoMotion clip {c}: expected integers (n, 2, 2, {self.rows}, {self.cols}), "
                                 f"got {q.dtype} {q.shape}")
            if q.size and int(np.abs(q.astype(np.int64)).max()) > MAX_ABS_Q:
                raise ValueError(f"VideoMotion clip {c}: |q| exceeds {MAX_ABS_Q}")
            q = np.array(q, dtype=np.int32)
            q.flags.writeable = False
            clips.append(q)
        object.__setattr__(self, "clips", tuple(clips))

    def __eq__(self, other):
        if not isinstance(other, VideoMotion):
            return NotImplemented
        head = ("grid", "step_qpel", "interp", "rows", "cols")
        return (all(getattr(self, f) == getattr(other, f) for f in head) and len(self.clips) == len(other.clips)
                and all(np.array_equal(a, b) and a.shape == b.shape for a, b in zip(self.clips, other.clips)))

    __hash__ = None


def check_motion_fits(video: int, motion: VideoMotion, height: int, width: int, n_frames: int, interval: int,
                      keyframes=None) -> None:
    """The writer's side of MotionReader's geometry checks (section 14.2): ValueError unless ``motion``
    is exactly what a height x width video of n_frames frames at keyframe interval ``interval`` carries
    (keyframes: the regular ones, or the listed frame numbers)."""
    if not isinstance(motion, VideoMotion):
        raise TypeError(f"motion of video {video} must be a VideoMotion, got {type(motion).__name__}")
    rows, cols = motion_grid(height, width, motion.grid)
    if (motion.rows, motion.cols) != (rows, cols):
        raise ValueError(f"motion of video {video} has {motion.rows}x{motion.cols} cells, but {motion.grid}-pixel "
                         f"cells over {width}x{height} make {rows}x{cols}")
    counts = clip_inbetween_counts(n_frames, interval, keyframes)
    got = [q.shape[0] for q in motion.clips]
    if got != counts:
        raise ValueError(f"motion of video {video} has in-between frames {got} per clip, its {n_frames} frames at "
                         f"interval {interval} make {counts}")
    n_values = sum(counts) * 4 * rows * cols
    if n_values > MAX_VALUES:
        raise ValueError(f"motion of video {video} holds {n_values} integers, more than the {MAX_VALUES} a chunk may")


# --- prediction: q <-> residual (section 14.2) ----------------------------------------------


def _space_residual(x: np.ndarray) -> np.ndarray:
    res = x.copy()
    res[..., 1:] -= x[..., :-1]
    res[..., 1:, 0] -= x[..., :-1, 0]
    return res


def _space_restore(res: np.ndarray) -> np.ndarray:
    x = res.copy()
    x[..., :, 0] = np.cumsum(res[..., :, 0], axis=-1)
    return np.cumsum(x, axis=-1)


def predict(q: np.ndarray, pred: int) -> np.ndarray:
    """The residual (int64) of fields q (n, 2, 2, rows, cols) under prediction mode ``pred``."""
    x = np.asarray(q, dtype=np.int64)
    if pred in (PRED_TIME, PRED_TIME_SPACE):
        x = np.diff(x, axis=0, prepend=np.zeros_like(x[:1]))
    if pred in (PRED_SPACE, PRED_TIME_SPACE):
        x = _space_residual(x)
    return x


def unpredict(res: np.ndarray, pred: int) -> np.ndarray:
    """Inverse of predict (int64)."""
    x = np.asarray(res, dtype=np.int64)
    if pred in (PRED_SPACE, PRED_TIME_SPACE):
        x = _space_restore(x)
    if pred in (PRED_TIME, PRED_TIME_SPACE):
        x = np.cumsum(x, axis=0)
    return x


def _n_bits(res: np.ndarray) -> int:
    """Fewest signed bits (2..16) that hold every residual."""
    if not res.size:
        return 2
    peak = max(int(res.max()), -int(res.min()) - 1, 1)
    return max(2, peak.bit_length() + 1)


def encode_clip(q: np.ndarray, preds: Sequence[int] = tuple(PRED_NAMES)) -> tuple[int, int, bytes]:
    """(pred, n_bits, coded bytes) of one clip's fields: the shortest over ``preds`` (ties: smaller id).
    A clip without in-between frames codes as (PRED_NONE, 2, b'')."""
    q = np.asarray(q)
    if not q.size:
        return PRED_NONE, 2, b""
    best = None
    for pred in preds:
        res = predict(q, pred)
        n_bits = _n_bits(res)
        coded = encode_ints(res, n_bits)
        if best is None or len(coded) < len(best[2]):
            best = (pred, n_bits, coded)
    return best


def encode_clip_report(q: np.ndarray) -> dict[str, int]:
    """{prediction name: coded bytes} of one clip under every prediction mode (benchmarks)."""
    return {PRED_NAMES[p]: len(encode_clip(q, (p,))[2]) for p in PRED_NAMES}


# --- the chunk payload: write_motion / read_motion ------------------------------------------


def write_motion(video: int, motion: VideoMotion) -> bytes:
    """One video's motion -> 'MOTN' payload (fields in the order read_motion checks them)."""
    if type(video) is not int or not 0 <= video < 1 << 32:
        raise ValueError(f"video must be an int 0..2**32-1, got {video!r}")
    coded = [encode_clip(q) for q in motion.clips]
    head = _HEAD.pack({"video": video, "grid": motion.grid, "step_qpel": motion.step_qpel,
                       "interp": motion.interp, "rows": motion.rows, "cols": motion.cols,
                       "n_clips": len(motion.clips)})
    entries = [_ENTRY.pack({"pred": p, "n_bits": b, "n_coded_bytes": len(d)}) for p, b, d in coded]
    return b"".join([head, *entries, *(d for *_, d in coded)])


def motion_video(payload: bytes) -> int:
    """The video index a 'MOTN' payload names (first field), or -1 if the payload is too short for it."""
    return int.from_bytes(payload[:4], "little") if len(payload) >= 4 else -1


class MotionReader:
    """A checked 'MOTN' payload; ``clip(c)`` decodes one clip's fields without decoding the others.

    Everything but the range-coded words is checked on construction, against the
    geometry the metadata gives (height, width, n_frames, interval of the video
    the chunk names): grid, step, interpolation, rows/cols, clip count, every
    entry, the integer count and the byte counts, before any decoding.
    """

    def __init__(self, r: PayloadReader, geometry: Sequence[tuple[int, int, int]], interval: int,
                 layouts: Sequence[KeyframeLayout] | None = None):
        head = r.record(_HEAD, "the motion header")
        video, grid, step, interp = head["video"], head["grid"], head["step_qpel"], head["interp"]
        if video >= len(geometry):
            raise r.error(f"motion names video {video}, but the file has {len(geometry)} videos")
        height, width, n_frames = geometry[video]
        if not MIN_GRID <= grid <= MAX_GRID:
            raise r.error(f"video {video}: motion grid {grid} is not {MIN_GRID}..{MAX_GRID}")
        if not 1 <= step <= MAX_STEP_QPEL:
            raise r.error(f"video {video}: motion step {step}/4 pixel is not 1..{MAX_STEP_QPEL} quarter pixels")
        if interp not in INTERP_NAMES:
            raise r.error(f"video {video}: unknown motion interpolation {interp}")
        rows, cols = motion_grid(height, width, grid)
        if (head["rows"], head["cols"]) != (rows, cols):
            raise r.error(f"video {video}: motion has {head['rows']}x{head['cols']} cells, but {grid}-pixel cells "
                          f"over {width}x{height} make {rows}x{cols}")
        layout = KeyframeLayout(n_frames, interval) if layouts is None else layouts[video]
        if head["n_clips"] != layout.n_clips:
            raise r.error(f"video {video}: motion lists {head['n_clips']} clips, the video has {layout.n_clips}")
        n_values = layout.n_inbetween * 4 * rows * cols
        if n_values > MAX_VALUES:
            raise r.error(f"video {video}: {n_values} motion integers exceed the limit of {MAX_VALUES}")
        if r.n_left < layout.n_clips * _ENTRY.size:      # before the per-clip counts: memory follows the payload
            raise r.error(f"video {video}: payload ends inside the table of {layout.n_clips} clips")
        counts = layout.inbetween_counts()
        entries = [r.record(_ENTRY, f"clip {c}'s entry") for c in range(len(counts))]
        for c, (e, n) in enumerate(zip(entries, counts)):
            if e["pred"] not in PRED_NAMES:
                raise r.error(f"video {video} clip {c}: unknown motion prediction {e['pred']}")
            if not 2 <= e["n_bits"] <= 16:
                raise r.error(f"video {video} clip {c}: n_bits {e['n_bits']} is not 2..16")
            if n == 0 and (e["pred"], e["n_bits"], e["n_coded_bytes"]) != (PRED_NONE, 2, 0):
                raise r.error(f"video {video} clip {c}: a clip without in-between frames must be (pred 0, "
                              f"n_bits 2, 0 bytes), got ({e['pred']}, {e['n_bits']}, {e['n_coded_bytes']})")
        total = sum(e["n_coded_bytes"] for e in entries)
        if total != r.n_left:
            raise r.error(f"video {video}: the clips' coded bytes sum to {total}, the payload has {r.n_left} left")
        self.video, self.n_frames, self.interval = video, n_frames, interval
        self.grid, self.step_qpel, self.interp, self.rows, self.cols = grid, step, interp, rows, cols
        self.counts = counts
        self._r = r
        self._entries = entries
        self._starts = np.cumsum([r.pos] + [e["n_coded_bytes"] for e in entries]).tolist()

    @property
    def n_clips(self) -> int:
        return len(self.counts)

    def clip(self, c: int) -> np.ndarray:
        """Clip c's fields, int32 (n_inbetween, 2, 2, rows, cols); NvcFormatError on bad words or values."""
        if not 0 <= c < self.n_clips:
            raise IndexError(f"clip {c} of {self.n_clips}")
        shape = (self.counts[c], 2, 2, self.rows, self.cols)
        e = self._entries[c]
        if not self.counts[c]:
            return np.zeros(shape, dtype=np.int32)
        data = self._r.payload[self._starts[c]:self._starts[c + 1]]
        try:
            res = decode_ints(data, math.prod(shape), e["n_bits"]).reshape(shape)
        except NvcFormatError as err:
            raise self._r.error(f"video {self.video} clip {c}: motion: {err}") from None
        q = unpredict(res, e["pred"])
        if int(np.abs(q).max()) > MAX_ABS_Q:
            raise self._r.error(f"video {self.video} clip {c}: a motion vector exceeds |q| <= {MAX_ABS_Q}")
        return q.astype(np.int32)

    def read_all(self) -> VideoMotion:
        return VideoMotion(self.grid, self.step_qpel, self.interp, self.rows, self.cols,
                           tuple(self.clip(c) for c in range(self.n_clips)))


def read_motion(payload: bytes, geometry: Sequence[tuple[int, int, int]], interval: int,
                offset_bytes: int = 0, layouts: Sequence[KeyframeLayout] | None = None) -> tuple[int, VideoMotion]:
    """'MOTN' payload -> (video, VideoMotion), every clip decoded; geometry is (height, width, n_frames)
    per video of the file, offset_bytes the chunk's position (for messages), layouts the videos'
    keyframes (None: regular)."""
    m = MotionReader(PayloadReader(payload, MOTN, offset_bytes), geometry, interval, layouts)
    return m.video, m.read_all()
