"""Writing and reading whole .nvc files (FORMAT.md sections 3-8: chunk order and limits).

File = signature + version, then META, an optional KPOS (listed keyframe positions,
section 15; the file is then version 1.2), KIDX, one KSEG per segment, none or one
MOTN per video (section 14; the file is then version 1.1, or 1.2 with KPOS), one TENS
per tensor, FEND; ancillary chunks (lower-case first letter) may sit anywhere between the
header and FEND and are skipped by this reader.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from . import chunks
from .chunks import FEND, KIDX, KPOS, KSEG, META, MOTN, TENS, PayloadReader
from .errors import NvcFormatError, at_chunk
from .metadata import MetadataError, meta_error, read_meta, validate_metadata, write_meta
from .motion import MotionReader, VideoMotion, check_motion_fits, motion_video, write_motion
from .positions import KeyframeLayout, layouts_of, read_positions, write_positions
from .segments import KeyframeSegment, check_coverage, read_index, write_index
from .tensors import (MAX_ELEMENTS, QuantizedTensor, TensorHeader, decode_tensor, read_tensor_header,
                      write_tensor)

MAX_TENSORS = 1 << 16


def _ordered_segments(layouts: Sequence[KeyframeLayout], segments: Sequence[KeyframeSegment]) -> list[KeyframeSegment]:
    for s in segments:
        if not isinstance(s, KeyframeSegment):
            raise TypeError(f"segments must be KeyframeSegment, got {type(s).__name__}")
    ordered = sorted(segments, key=lambda s: (s.video, s.first_keyframe))
    why = check_coverage([(s.video, s.first_keyframe, s.n_keyframes) for s in ordered],
                         [lay.n_keyframes for lay in layouts])
    if why:
        raise ValueError(f"keyframe segments do not cover the videos' keyframes: {why}")
    return ordered


def _check_tensors(tensors: Sequence[QuantizedTensor]) -> None:
    if len(tensors) > MAX_TENSORS:
        raise ValueError(f"{len(tensors)} tensors, more than the {MAX_TENSORS} a file may hold")
    names = set()
    n_elements = 0
    for t in tensors:
        if not isinstance(t, QuantizedTensor):
            raise TypeError(f"tensors must be QuantizedTensor, got {type(t).__name__}")
        if t.name in names:
            raise ValueError(f"tensor name {t.name!r} is used twice")
        names.add(t.name)
        n_elements += t.q.size
    if n_elements > MAX_ELEMENTS:
        raise ValueError(f"tensors hold {n_elements} elements, more than the {MAX_ELEMENTS} a file may hold")


def tensor_chunk_n_bytes(t: QuantizedTensor) -> int:
    """Bytes ``t`` takes in the file: its TENS chunk (section 7 payload, section 3 framing).

    The rate control and the rate-aware quantizer count weights with this, so their
    budgets are in the bytes the writer will produce.
    """
    return chunks.chunk_n_bytes(len(write_tensor(t)))


def motion_chunk_n_bytes(video: int, motion: VideoMotion) -> int:
    """Bytes video ``video``'s ``motion`` takes in the file: its MOTN chunk (section 14.2 payload,
    section 3 framing), so a rate plan can count motion in the bytes the writer will produce."""
    return chunks.chunk_n_bytes(len(write_motion(video, motion)))


def _motion_payloads(metadata: dict, layouts: Sequence[KeyframeLayout],
                     motion: Sequence[VideoMotion] | None) -> list[bytes]:
    """One MOTN payload per video (section 14), or none when ``motion`` is None."""
    if motion is None:
        return []
    motion = list(motion)
    videos = metadata["videos"]
    if len(motion) != len(videos):
        raise ValueError(f"motion must hold one VideoMotion per video: {len(motion)} for {len(videos)} videos")
    for v, (m, entry, lay) in enumerate(zip(motion, videos, layouts)):
        check_motion_fits(v, m, entry["height"], entry["width"], entry["n_frames"], metadata["keyframe_interval"],
                          lay.positions)
    return [write_motion(v, m) for v, m in enumerate(motion)]


def write_nvc(
    path, metadata: dict, segments: Sequence[KeyframeSegment], tensors: Sequence[QuantizedTensor],
    motion: Sequence[VideoMotion] | None = None, keyframes: Sequence | None = None,
) -> int:
    """Write an .nvc file atomically (temporary file in the destination folder, then os.replace).

    Segments may come in any order; they are stored sorted by (video, first_keyframe)
    and must cover each video's keyframes 0..n_kf-1 without gap or overlap.
    ``motion``: None (a version 1.0 file, byte for byte what nvcodec 0.1 writes) or one
    VideoMotion per video, in video order (a version 1.1 file with one MOTN per video).
    ``keyframes``: None (every video's keyframes are the regular ones) or, per video, None or its
    keyframe frame numbers (section 15); a file where any video's differ from the regular list
    holds a KPOS chunk and is version 1.2.
    Returns the file size in bytes.  Bad arguments raise ValueError / TypeError.
    """
    try:
        validate_metadata(metadata)
    except MetadataError as e:
        raise ValueError(str(e)) from None
    layouts = layouts_of(metadata, keyframes)
    listed = any(not lay.is_regular for lay in layouts)
    ordered = _ordered_segments(layouts, segments)
    tensors = list(tensors)
    _check_tensors(tensors)
    motion_payloads = _motion_payloads(metadata, layouts, motion)
    payloads = {META: [write_meta(metadata)], KPOS: [write_positions(layouts)] if listed else [],
                KIDX: [write_index(ordered)], KSEG: [s.data for s in ordered],
                MOTN: motion_payloads, TENS: [write_tensor(t) for t in tensors], FEND: [b""]}
    minor = (chunks.POSITIONS_MINOR if listed else chunks.MOTION_MINOR if motion_payloads
             else chunks.FORMAT_MINOR)

    def write(f) -> int:
        n_bytes = chunks.write_header(f, minor=minor)
        for ctype, _ in chunks.CHUNK_ORDER:
            for payload in payloads[ctype]:
                n_bytes += chunks.write_chunk(f, ctype, payload)
        return n_bytes

    return _write_atomically(Path(path), write)


def _write_atomically(path: Path, write) -> int:
    """``write(f)`` into a temporary file beside ``path``, fsync, rename it into place; its return value.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            n_bytes = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return n_bytes


def add_chunk_before_end(path, chunk_type: str, payload: bytes) -> int:
    """Rewrite the .nvc at ``path`` with one ancillary chunk inserted before ``FEND``; return the new size.

    Atomic like ``write_nvc`` (a temporary copy renamed into place); the file is checked
    first (``NvcReader``), and a chunk of the same type already there is refused.
    """
    chunks.check_type(chunk_type)
    if chunks.is_critical(chunk_type):
        raise ValueError(f"chunk type {chunk_type!r} is critical; only ancillary chunks can be added")
    path = Path(path)
    with NvcReader(path) as reader:
        if any(t == chunk_type for t, _, _ in reader.chunks()):
            raise ValueError(f"{path} already holds a {chunk_type!r} chunk")
        end_offset = reader.chunks()[-1][1]             # FEND, the last chunk (the reader checked)

    def write(f) -> int:
        with open(path, "rb") as src:
            n_left = end_offset
            while n_left:
                block = src.read(min(n_left, 1 << 20))
                if not block:
                    raise ValueError(f"{path} changed while it was being copied")
                f.write(block)
                n_left -= len(block)
        return end_offset + chunks.write_chunk(f, chunk_type, payload) + chunks.write_chunk(f, FEND, b"")

    return _write_atomically(path, write)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NvcReader:
    """An open .nvc file (context manager).

    Opening checks the header, walks every chunk header (lengths against the file
    size), checks chunk order, counts, the version a MOTN or KPOS chunk needs and the
    FEND chunk, and reads + CRC-checks META, KPOS and KIDX.  Segment, motion and tensor payloads
    are read (and CRC-checked) only when asked for.  Every failure is an NvcFormatError naming chunk and byte offset.
    """

    def __init__(self, path):
        """``path``: a file path, or an open seekable binary file (not closed by close())."""
        self._owns_file = not (hasattr(path, "read") and hasattr(path, "seek"))
        self._f = open(path, "rb") if self._owns_file else path
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        f = self._f
        self.n_bytes = f.seek(0, os.SEEK_END)
        f.seek(0)
        self.version = chunks.read_header(f.read(chunks.HEADER_N_BYTES))
        self._chunks: list[tuple[str, int, int]] = []  # (type, offset, payload length)
        self._segment_chunks: list[int] = []  # index into self._chunks, file order
        self._motion_chunks: list[int] = []  # video v's MOTN is the v-th (section 14.1: video order)
        self._tensor_chunks: list[int] = []
        self.metadata: dict = {}
        self._layouts: list[KeyframeLayout] = []
        index: list[dict] = []
        seen: dict[str, int] = {}
        offset = chunks.HEADER_N_BYTES
        while True:
            if len(self._chunks) >= chunks.MAX_CHUNKS:
                raise NvcFormatError(f"byte {offset}: more than {chunks.MAX_CHUNKS} chunks")
            if offset == self.n_bytes:
                raise NvcFormatError(f"byte {offset}: file ends without a {FEND!r} chunk (truncated?)")
            ctype, n_payload = chunks.read_chunk_head(f, offset, self.n_bytes)
            self._chunks.append((ctype, offset, n_payload))
            if not chunks.is_critical(ctype):
                pass  # ancillary: skipped (FORMAT.md section 4)
            elif ctype not in chunks.KNOWN_CRITICAL:
                raise at_chunk(ctype, offset, "unknown critical chunk type (written by a newer, incompatible encoder?)")
            elif ctype in (META, KPOS, KIDX, FEND) and ctype in seen:
                raise at_chunk(ctype, offset, f"duplicate chunk (the first is at byte {seen[ctype]})")
            elif ctype == MOTN and self.version < (chunks.FORMAT_MAJOR, chunks.MOTION_MINOR):
                raise at_chunk(ctype, offset, f"coded motion in a version {self.version[0]}.{self.version[1]} file "
                                              f"(it needs version {chunks.FORMAT_MAJOR}.{chunks.MOTION_MINOR})")
            elif ctype == KPOS and self.version < (chunks.FORMAT_MAJOR, chunks.POSITIONS_MINOR):
                raise at_chunk(ctype, offset, f"keyframe positions in a version {self.version[0]}.{self.version[1]} "
                                              f"file (they need version {chunks.FORMAT_MAJOR}.{chunks.POSITIONS_MINOR})")
            else:
                self._check_order(ctype, offset, seen, index)
                if ctype == META:
                    payload = chunks.read_chunk_payload(f, ctype, offset, n_payload)
                    try:
                        self.metadata = read_meta(payload)
                    except MetadataError as e:
                        raise meta_error(e, offset) from None
                    self._layouts = layouts_of(self.metadata)
                elif ctype == KPOS:
                    payload = chunks.read_chunk_payload(f, ctype, offset, n_payload)
                    self._layouts = read_positions(PayloadReader(payload, ctype, offset), self.metadata)
                elif ctype == KIDX:
                    payload = chunks.read_chunk_payload(f, ctype, offset, n_payload)
                    index = read_index(PayloadReader(payload, ctype, offset))
                    why = check_coverage(
                        [(e["video"], e["first_keyframe"], e["n_keyframes"]) for e in index],
                        [lay.n_keyframes for lay in self._layouts],
                    )
                    if why:
                        raise at_chunk(ctype, offset, why)
                elif ctype == KSEG:
                    entry = index[len(self._segment_chunks)]
                    if n_payload != entry["n_bytes"]:
                        raise at_chunk(
                            ctype, offset, f"segment {len(self._segment_chunks)} is {n_payload} bytes, the index says {entry['n_bytes']}"
                        )
                    self._segment_chunks.append(len(self._chunks) - 1)
                elif ctype == MOTN:
                    self._motion_chunks.append(len(self._chunks) - 1)
                elif ctype == TENS:
                    if len(self._tensor_chunks) >= MAX_TENSORS:
                        raise at_chunk(ctype, offset, f"more than {MAX_TENSORS} tensors")
                    self._tensor_chunks.append(len(self._chunks) - 1)
                elif ctype == FEND:
                    chunks.read_chunk_payload(f, ctype, offset, n_payload)
                    if n_payload:
                        raise at_chunk(ctype, offset, f"end chunk has a {n_payload}-byte payload, expected 0")
                    end = offset + chunks.CHUNK_OVERHEAD_BYTES
                    if end != self.n_bytes:
                        raise at_chunk(ctype, offset, f"{self.n_bytes - end} bytes of trailing data after the end chunk")
                    break
                seen.setdefault(ctype, offset)
            offset += chunks.CHUNK_OVERHEAD_BYTES + n_payload
        self._index = index
        self._geometry = [(v["height"], v["width"], v["n_frames"]) for v in self.metadata["videos"]]
        self._by_video: list[list[int]] = [[] for _ in self.metadata["videos"]]
        for i, e in enumerate(index):
            self._by_video[e["video"]].append(i)

    def _check_order(self, ctype: str, offset: int, seen: dict, index: list) -> None:
        """Critical chunk order, from chunks.CHUNK_ORDER: every earlier type complete (one seen;
        KSEG: as many as the index lists; MOTN: none or one per video), this type not yet full,
        no later type seen."""
        n_segments, n_motion = len(self._segment_chunks), len(self._motion_chunks)
        n_videos = len(self.metadata.get("videos", ()))

        def complete(t: str, count: str) -> bool:
            return {chunks.ONE: t in seen, chunks.OPTIONAL: True, chunks.AS_INDEXED: n_segments == len(index),
                    chunks.PER_VIDEO: n_motion in (0, n_videos), chunks.ANY: True}[count]

        rank = chunks.KNOWN_CRITICAL.index(ctype)
        earlier, count = chunks.CHUNK_ORDER[:rank], chunks.CHUNK_ORDER[rank][1]
        full = ((count == chunks.AS_INDEXED and n_segments >= len(index))     # ONE: duplicates are caught before
                or (count == chunks.PER_VIDEO and n_motion >= n_videos))
        later_seen = [t for t in chunks.KNOWN_CRITICAL[rank + 1:] if t in seen]
        early = all(complete(t, c) for t, c in earlier)
        if early and not full and not later_seen:
            return
        if ctype == MOTN and early:
            why = (f"a 'MOTN' after {later_seen[0]!r}" if later_seen else
                   f"'MOTN' #{n_motion} but the file has {n_videos} videos (one 'MOTN' per video)")
            raise at_chunk(ctype, offset, f"chunk out of order: {why}")
        first_open = next((i for i, (t, c) in enumerate(chunks.CHUNK_ORDER) if not complete(t, c)), None)
        open_type = chunks.CHUNK_ORDER[first_open][0] if first_open is not None else None
        if first_open == 0:
            want = f"{open_type!r} first"
        elif open_type == KSEG:
            want = f"{KSEG!r} #{n_segments} of the {len(index)} the index lists"
        elif open_type == MOTN:
            want = f"{MOTN!r} for video {n_motion} (a file with motion has one per video)"
        elif open_type is not None and open_type != FEND:
            before = [t for t in chunks.KNOWN_CRITICAL[:first_open] if t in seen] or [chunks.KNOWN_CRITICAL[0]]
            want = f"{open_type!r} after {before[-1]!r}"
        else:
            want = f"{TENS!r} or {FEND!r} ({KSEG!r} chunks beyond the index's {len(index)})"
        raise at_chunk(ctype, offset, f"chunk out of order: expected {want}")

    # --- queries -----------------------------------------------------------------------

    def keyframe_layout(self, video: int) -> KeyframeLayout:
        """One video's keyframes and clips (section 15's list, or the regular rule), checked at open."""
        self._video(video)
        return self._layouts[video]

    def segments(self, video: int) -> list[tuple[int, int]]:
        """(first_keyframe, n_keyframes) of each segment of a video, in order."""
        return [(self._index[i]["first_keyframe"], self._index[i]["n_keyframes"]) for i in self._video(video)]

    def read_segment(self, video: int, index: int) -> bytes:
        """The bytes of one segment of one video; reads only that chunk and checks its CRC."""
        ids = self._video(video)
        if type(index) is not int or not 0 <= index < len(ids):
            raise ValueError(f"video {video} has segments 0..{len(ids) - 1}, got {index!r}")
        ctype, offset, n_payload = self._chunks[self._segment_chunks[ids[index]]]
        return chunks.read_chunk_payload(self._f, ctype, offset, n_payload)

    @property
    def has_motion(self) -> bool:
        """Whether the file carries coded motion (one MOTN per video, version 1.1)."""
        return bool(self._motion_chunks)

    def motion(self, video: int) -> MotionReader | None:
        """One video's coded motion (section 14), or None for a file without motion.

        Reads that video's MOTN chunk only and checks its CRC, then every header and
        clip-table field against the metadata's geometry of the video before anything is
        decoded; ``clip(c)`` of the result decodes one clip."""
        self._video(video)
        if not self._motion_chunks:
            return None
        ctype, offset, n_payload = self._chunks[self._motion_chunks[video]]
        payload = chunks.read_chunk_payload(self._f, ctype, offset, n_payload)
        named = motion_video(payload)
        if named not in (-1, video):
            raise at_chunk(ctype, offset, f"the file's 'MOTN' #{video} names video {named} "
                                          f"(one per video, in video order)")
        return MotionReader(PayloadReader(payload, ctype, offset), self._geometry, self.metadata["keyframe_interval"],
                            self._layouts)

    def tensor_headers(self) -> list[TensorHeader]:
        """Every tensor's manifest entry (name, shape, n_bits, axis, scales) in write order, CRC-checked
        and validated but not decoded: a decoder compares it with its network before allocating."""
        return [h for h, _ in self._tensor_payloads()]

    def iter_tensors(self):
        """Yield the tensors one at a time, in write order, bit-exact (constant-coded ones as broadcasts)."""
        for header, r in self._tensor_payloads():
            yield decode_tensor(header, r)

    def read_tensors(self) -> list[QuantizedTensor]:
        """All tensors in write order, bit-exact."""
        return list(self.iter_tensors())

    def _tensor_payloads(self):
        """(header, payload reader) per TENS chunk; names unique, element total within MAX_ELEMENTS."""
        names: dict[str, int] = {}
        elements_left = MAX_ELEMENTS
        for i in self._tensor_chunks:
            ctype, offset, n_payload = self._chunks[i]
            payload = chunks.read_chunk_payload(self._f, ctype, offset, n_payload)
            r = PayloadReader(payload, ctype, offset)
            header = read_tensor_header(r, elements_left)
            if header.name in names:
                raise at_chunk(ctype, offset, f"tensor name {header.name!r} repeats the tensor at byte {names[header.name]}")
            names[header.name] = offset
            elements_left -= header.n_elements
            yield header, r

    def ancillary(self, chunk_type: str) -> tuple[int, bytes] | None:
        """(offset, CRC-checked payload) of the first ancillary chunk of this type, or None."""
        for ctype, offset, n_payload in self._chunks:
            if ctype == chunk_type and not chunks.is_critical(ctype):
                return offset, chunks.read_chunk_payload(self._f, ctype, offset, n_payload)
        return None

    def chunks(self) -> list[tuple[str, int, int]]:
        """(type, offset_bytes, n_bytes including header and CRC) of every chunk, in file order."""
        return [(t, o, n + chunks.CHUNK_OVERHEAD_BYTES) for t, o, n in self._chunks]

    def byte_breakdown(self) -> dict[str, int]:
        """Payload bytes of KSEG ("keyframes"), MOTN ("motion"), TENS ("weights"), META and KPOS ("metadata");
        the rest (signature, version, chunk headers and CRCs, KIDX, FEND, ancillary chunks) is "container"."""
        parts = {"keyframes": 0, "motion": 0, "weights": 0, "metadata": 0}
        for ctype, _, n_payload in self._chunks:
            key = {KSEG: "keyframes", MOTN: "motion", TENS: "weights", META: "metadata", KPOS: "metadata"}.get(ctype)
            if key:
                parts[key] += n_payload
        parts["container"] = self.n_bytes - sum(parts.values())
        return parts

    def verify(self) -> None:
        """Read and check everything: every chunk's CRC (ancillary too), every segment, every video's
        motion (one clip in memory at a time), every tensor."""
        for ctype, offset, n_payload in self._chunks:
            chunks.read_chunk_payload(self._f, ctype, offset, n_payload)
        if self._motion_chunks:
            for video in range(len(self._by_video)):
                m = self.motion(video)
                for c in range(m.n_clips):
                    m.clip(c)
        for _ in self.iter_tensors():      # one tensor in memory at a time
            pass

    def _video(self, video: int) -> list[int]:
        if type(video) is not int or not 0 <= video < len(self._by_video):
            raise ValueError(f"video must be an int 0..{len(self._by_video) - 1}, got {video!r}")
        return self._by_video[video]

    def close(self) -> None:
        if self._owns_file:
            self._f.close()

    def __enter__(self) -> "NvcReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
