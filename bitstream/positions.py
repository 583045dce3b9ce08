"""Where a video's keyframes are, its clips, and the 'KPOS' chunk that lists them (FORMAT.md sections 5, 13, 15).

A video of L frames at interval K has a sorted list of keyframe frame numbers: the
first is 0, the last L-1 (when L > 1), consecutive ones at most K apart. The
*regular* list is 0, K, 2K, ... plus L-1; an encoder may choose any other (nvcodec
puts keyframes on scene cuts), and then the file lists it in a 'KPOS' chunk.

``KeyframeLayout`` is the one description of a video's keyframes and clips that the
container, the motion payload, the codec's clip layout and the decoder's random access
all read. A regular layout is never materialized: its clips are arithmetic, so a file
that declares 2^31 frames costs nothing until frames are decoded.

The clip rule (section 13): clip j runs from keyframe j up to the frame before
keyframe j+1, which is its end keyframe; the last frame L-1 joins the last clip
when that clip then holds at most K frames, and forms a clip of its own otherwise
(both its keyframes are then keyframe n_kf-1). For the regular list this is clip c =
frames cK .. min(cK+K, L)-1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .chunks import PayloadReader, Record
from .entropy import decode_ints, encode_ints
from .errors import NvcFormatError
from .metadata import keyframe_count

GAP_N_BITS = 12  # gaps are 1..K <= 1024, coded as signed 12-bit integers (section 15)
MAX_LISTED_KEYFRAMES = 1 << 22  # keyframes a 'KPOS' chunk may list, all videos together

_HEAD = Record(("n_videos", "I"))
_ENTRY = Record(("n_keyframes", "I"), ("n_coded_bytes", "I"))


def regular_keyframes(n_frames: int, interval: int) -> np.ndarray:
    """The regular keyframe frames, int64: 0, K, 2K, ... (< L), plus L-1 if (L-1) % K != 0."""
    if n_frames < 1 or interval < 1:
        raise ValueError(f"need n_frames >= 1 and interval >= 1, got {n_frames}, {interval}")
    pos = np.arange(0, n_frames, interval, dtype=np.int64)
    if (n_frames - 1) % interval:
        pos = np.append(pos, np.int64(n_frames - 1))
    return pos


def keyframes_problem(positions, n_frames: int, interval: int) -> str | None:
    """Why ``positions`` is not a valid keyframe list of an L-frame video at interval K, or None."""
    p = np.asarray(positions)
    if p.ndim != 1 or p.size == 0 or p.dtype.kind not in "iu":
        return f"keyframes must be a non-empty 1-D list of integers, got {p.dtype} {p.shape}"
    p = p.astype(np.int64)
    if p[0] != 0:
        return f"the first keyframe is frame {int(p[0])}, not 0"
    if p[-1] != n_frames - 1:
        return f"the last keyframe is frame {int(p[-1])}, not the last frame {n_frames - 1}"
    gaps = np.diff(p)
    if gaps.size and (bad := np.flatnonzero((gaps < 1) | (gaps > interval))).size:
        i = int(bad[0])
        return (f"keyframes {i} and {i + 1} are frames {int(p[i])} and {int(p[i + 1])}: consecutive keyframes "
                f"must rise by 1..{interval} frames")
    return None


@dataclass(frozen=True, eq=False)
class KeyframeLayout:
    """One video's keyframes and clips. ``positions`` None: the regular list (never materialized)."""

    n_frames: int
    interval: int
    positions: np.ndarray | None = None

    def __post_init__(self):
        for name in ("n_frames", "interval"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"KeyframeLayout.{name} must be an int >= 1, got {v!r}")
        object.__setattr__(self, "n_frames", int(self.n_frames))
        object.__setattr__(self, "interval", int(self.interval))
        if self.positions is not None:
            why = keyframes_problem(self.positions, self.n_frames, self.interval)
            if why:
                raise ValueError(f"keyframes of a {self.n_frames}-frame video at interval {self.interval}: {why}")
            p = np.array(self.positions, dtype=np.int64)
            if np.array_equal(p, regular_keyframes(self.n_frames, self.interval)):
                p = None                                  # one spelling of the regular list
            else:
                p.flags.writeable = False
            object.__setattr__(self, "positions", p)

    @property
    def is_regular(self) -> bool:
        return self.positions is None

    @property
    def n_keyframes(self) -> int:
        return keyframe_count(self.n_frames, self.interval) if self.positions is None else len(self.positions)

    @property
    def n_clips(self) -> int:
        if self.positions is None:
            return -(-self.n_frames // self.interval)
        n = len(self.positions)
        return 1 if n == 1 else n - (1 if self.positions[-1] - self.positions[-2] < self.interval else 0)

    @property
    def n_inbetween(self) -> int:
        """Frames that are not keyframes: each lies strictly between its clip's two keyframes."""
        return self.n_frames - self.n_keyframes

    def keyframe_frames(self) -> np.ndarray:
        """Every keyframe's frame number, int64 (n_kf,)."""
        return regular_keyframes(self.n_frames, self.interval) if self.positions is None else self.positions.copy()

    def clips(self, first_clip: int = 0, stop_clip: int | None = None) -> tuple[np.ndarray, ...]:
        """(first_frame, last_frame, start_kf, end_kf, end_frame) int64 (n,) of clips first_clip..stop_clip-1:
        the frames a clip covers (inclusive), its keyframe indices and its end keyframe's frame."""
        n_clips = self.n_clips
        stop_clip = n_clips if stop_clip is None else stop_clip
        if not 0 <= first_clip <= stop_clip <= n_clips:
            raise ValueError(f"clips {first_clip}..{stop_clip} outside 0..{n_clips}")
        c = np.arange(first_clip, stop_clip, dtype=np.int64)
        L, K = self.n_frames, self.interval
        if self.positions is None:
            n_kf = keyframe_count(L, K)
            first = c * K
            return first, np.minimum(first + K, L) - 1, c, np.minimum(c + 1, n_kf - 1), np.minimum(first + K, L - 1)
        p = self.positions
        n_kf = len(p)
        first = p[c]
        end_kf = np.minimum(c + 1, n_kf - 1)
        end_frame = p[end_kf]
        # a clip stops before its end keyframe; the last clip ends at L-1 (joined to it, or L-1's own clip)
        last = np.where(c == n_clips - 1, L - 1, end_frame - 1)
        return first, last, c, end_kf, end_frame

    def inbetween_counts(self) -> list[int]:
        """Frames strictly between each clip's start and end keyframe (the motion each clip carries)."""
        first, _, _, _, end_frame = self.clips()
        return np.maximum(end_frame - first - 1, 0).tolist()

    def clip_of_frame(self, frame: int) -> int:
        """The clip holding frame ``frame`` (0 <= frame < L)."""
        if not 0 <= frame < self.n_frames:
            raise ValueError(f"frame {frame} outside 0..{self.n_frames - 1}")
        if self.positions is None:
            return frame // self.interval
        return min(int(np.searchsorted(self.positions, frame, side="right")) - 1, self.n_clips - 1)


def layouts_of(metadata: dict, positions: Sequence[np.ndarray | None] | None = None) -> list[KeyframeLayout]:
    """Every video's layout from a validated metadata dict and optional per-video positions."""
    videos, k = metadata["videos"], metadata["keyframe_interval"]
    if positions is None:
        positions = [None] * len(videos)
    if len(positions) != len(videos):
        raise ValueError(f"keyframes must hold one entry per video: {len(positions)} for {len(videos)} videos")
    return [KeyframeLayout(v["n_frames"], k, p) for v, p in zip(videos, positions)]


# --- the chunk payload: write_positions / read_positions ----------------------------------


def write_positions(layouts: Sequence[KeyframeLayout]) -> bytes:
    """'KPOS' payload of every video's layout (a regular video is the entry (0, 0), no bytes)."""
    coded = [b"" if lay.positions is None else encode_ints(np.diff(lay.positions), GAP_N_BITS) for lay in layouts]
    n_listed = sum(lay.n_keyframes for lay in layouts if lay.positions is not None)
    if n_listed > MAX_LISTED_KEYFRAMES:
        raise ValueError(f"{n_listed} listed keyframes, more than the {MAX_LISTED_KEYFRAMES} a file may list")
    entries = [_ENTRY.pack({"n_keyframes": 0 if lay.positions is None else lay.n_keyframes,
                            "n_coded_bytes": len(data)}) for lay, data in zip(layouts, coded)]
    return b"".join([_HEAD.pack({"n_videos": len(layouts)}), *entries, *coded])


def read_positions(r: PayloadReader, metadata: dict) -> list[KeyframeLayout]:
    """A checked 'KPOS' payload -> every video's layout; NvcFormatError naming the chunk, offset and video."""
    videos, k = metadata["videos"], metadata["keyframe_interval"]
    n_videos = r.record(_HEAD, "the video count")["n_videos"]
    if n_videos != len(videos):
        raise r.error(f"keyframe positions for {n_videos} videos, the file has {len(videos)}")
    if r.n_left < n_videos * _ENTRY.size:
        raise r.error(f"payload ends inside the table of {n_videos} videos")
    entries = [r.record(_ENTRY, f"video {v}'s entry") for v in range(n_videos)]
    n_listed = 0
    for v, (e, video) in enumerate(zip(entries, videos)):
        n_kf, n_frames = e["n_keyframes"], video["n_frames"]
        if n_kf == 0:
            if e["n_coded_bytes"]:
                raise r.error(f"video {v}: a regular video (0 keyframes listed) has {e['n_coded_bytes']} coded bytes")
            continue
        least = 1 + -(-(n_frames - 1) // k)
        if not least <= n_kf <= n_frames:
            raise r.error(f"video {v}: {n_kf} keyframes listed, a {n_frames}-frame video at interval {k} has "
                          f"{least}..{n_frames}")
        n_listed += n_kf
        if n_listed > MAX_LISTED_KEYFRAMES:
            raise r.error(f"more than {MAX_LISTED_KEYFRAMES} keyframes listed")
    total = sum(e["n_coded_bytes"] for e in entries)
    if total != r.n_left:
        raise r.error(f"the videos' coded bytes sum to {total}, the payload has {r.n_left} left")
    layouts = []
    for v, (e, video) in enumerate(zip(entries, videos)):
        data = r.take(e["n_coded_bytes"], f"video {v}'s keyframe gaps")
        if e["n_keyframes"] == 0:
            layouts.append(KeyframeLayout(video["n_frames"], k))
            continue
        try:
            gaps = decode_ints(data, e["n_keyframes"] - 1, GAP_N_BITS).astype(np.int64)
        except NvcFormatError as err:
            raise r.error(f"video {v}: keyframe gaps: {err}") from None
        positions = np.concatenate([[0], np.cumsum(gaps)])
        why = keyframes_problem(positions, video["n_frames"], k)
        if why:
            raise r.error(f"video {v}: {why}")
        layouts.append(KeyframeLayout(video["n_frames"], k, positions))
    return layouts
