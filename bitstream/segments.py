"""Keyframe segments and the 'KIDX' index chunk (FORMAT.md section 6).

The index lists every segment (video, first keyframe, keyframe count, byte
count) in file order; the 'KSEG' chunks that follow it carry the bytes, one
chunk per segment, in the same order.  A reader learns where every segment is
from the (CRC-checked) index plus the chunk headers, and reads one segment
without touching the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .chunks import MAX_CHUNKS, PayloadReader, Record

MAX_SEGMENTS = MAX_CHUNKS - 4  # META, KIDX, FEND and at least nothing else
_COUNT = Record(("n_segments", "I"))
_ENTRY = Record(("video", "I"), ("first_keyframe", "I"), ("n_keyframes", "I"), ("n_bytes", "Q"))


@dataclass(frozen=True)
class KeyframeSegment:
    """An independently decodable piece of one video's keyframe track."""

    video: int  # index into metadata["videos"]
    first_keyframe: int  # index in that video's keyframe list
    n_keyframes: int
    data: bytes

    def __post_init__(self):
        for field in ("video", "first_keyframe", "n_keyframes"):
            v = getattr(self, field)
            if type(v) is not int or not 0 <= v < 1 << 32:
                raise ValueError(f"KeyframeSegment.{field} must be an int 0..2**32-1, got {v!r}")
        if self.n_keyframes < 1:
            raise ValueError(f"KeyframeSegment.n_keyframes must be >= 1, got {self.n_keyframes}")
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise TypeError(f"KeyframeSegment.data must be bytes, got {type(self.data).__name__}")
        object.__setattr__(self, "data", bytes(self.data))


def check_coverage(entries: Sequence[tuple[int, int, int]], n_keyframes_per_video: Sequence[int]) -> str | None:
    """Why (video, first_keyframe, n_keyframes) entries, in file order, do not tile every video's
    keyframes 0..n_kf-1 contiguously in (video, first_keyframe) order; None when they do."""
    n_kf = n_keyframes_per_video
    video, kf = 0, 0  # the next keyframe that needs a segment
    for i, (seg_video, first, n) in enumerate(entries):
        if kf == n_kf[video] and video + 1 < len(n_kf):
            video, kf = video + 1, 0
        if (seg_video, first) != (video, kf):
            return f"segment {i} starts at video {seg_video} keyframe {first}, expected video {video} keyframe {kf}"
        if n < 1 or first + n > n_kf[video]:
            return f"segment {i}: video {video} keyframes {first}..{first + n - 1} are not within its {n_kf[video]} keyframes"
        kf += n
    if kf == n_kf[video] and video + 1 < len(n_kf):
        video, kf = video + 1, 0
    if video != len(n_kf) - 1 or kf != n_kf[video]:
        return f"video {video} keyframes {kf}..{n_kf[video] - 1} and any later videos have no segment"
    return None


def write_index(segments: Sequence[KeyframeSegment]) -> bytes:
    """Segments (already in file order) -> 'KIDX' payload."""
    return _COUNT.pack({"n_segments": len(segments)}) + b"".join(
        _ENTRY.pack({"video": s.video, "first_keyframe": s.first_keyframe, "n_keyframes": s.n_keyframes, "n_bytes": len(s.data)})
        for s in segments
    )


def read_index(r: PayloadReader) -> list[dict]:
    """'KIDX' payload -> entries {video, first_keyframe, n_keyframes, n_bytes}; counts checked first."""
    n = r.record(_COUNT, "the segment count")["n_segments"]
    if not 1 <= n <= MAX_SEGMENTS or r.n_left != n * _ENTRY.size:
        raise r.error(
            f"index lists {n} segments, which needs {n * _ENTRY.size} bytes of entries; "
            f"the payload has {r.n_left} (and 1..{MAX_SEGMENTS} segments are allowed)"
        )
    return [r.record(_ENTRY, f"segment {i}") for i in range(n)]
