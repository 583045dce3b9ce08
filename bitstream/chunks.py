"""Chunk framing of an .nvc file: signature, version, chunk header + CRC (FORMAT.md sections 2-4).

Also the little binary helpers every chunk payload uses: a ``Record`` (one
description of fixed-width fields that drives both packing and unpacking) and a
bounds-checked ``PayloadReader`` whose every failure is an NvcFormatError naming
the chunk and its byte offset.
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from .errors import NvcFormatError, at_chunk

# --- FORMAT.md section 2: the file header --------------------------------------------------
#: PNG-style signature: a high-bit byte (catches 7-bit transfers), the letters, CR LF
#: (catches CR LF <-> LF conversion), ^Z (stops DOS `type`), LF (catches LF -> CR LF).
SIGNATURE = b"\x8bNVC\r\n\x1a\n"
FORMAT_MAJOR = 1  # incompatible changes; a reader refuses any other major
FORMAT_MINOR = 0  # compatible additions (new ancillary chunks, new metadata keys); a reader reads newer minors
MOTION_MINOR = 1  # section 14.1: the minor version of a file holding 'MOTN' chunks (files without stay 1.0)
POSITIONS_MINOR = 2  # section 15.1: the minor version of a file holding a 'KPOS' chunk (with or without motion)
_VERSION = struct.Struct("<HH")  # major, minor
HEADER_N_BYTES = len(SIGNATURE) + _VERSION.size  # 12

# --- FORMAT.md section 3: chunk framing ----------------------------------------------------
_CHUNK_HEAD = struct.Struct("<4sQ")  # type, payload length
_CRC = struct.Struct("<I")  # CRC-32 (zlib / ISO-HDLC) of type + payload
CHUNK_OVERHEAD_BYTES = _CHUNK_HEAD.size + _CRC.size  # 16
MAX_CHUNKS = 1 << 20  # a file with more chunks is refused (bounds the reader's index)

# --- FORMAT.md section 4: chunk types (critical = upper-case first letter) -----------------
META = "META"  # section 5: zstd-compressed JSON metadata; first critical chunk, exactly once
KPOS = "KPOS"  # section 15: listed keyframe positions; none, or one right after META (version 1.2)
KIDX = "KIDX"  # section 6: keyframe segment index; exactly once, after META (and KPOS)
KSEG = "KSEG"  # section 6: one keyframe segment's bytes; as many as KIDX lists, in its order
MOTN = "MOTN"  # section 14: one video's coded motion; none, or one per video in video order, after the KSEGs
TENS = "TENS"  # section 7: one quantized, entropy-coded tensor; zero or more, after the KSEGs
FEND = "FEND"  # section 8: end of file; empty payload, last bytes of the file
# FORMAT.md section 4's table: the critical chunks in file order, and how many of each a file holds
# ("one"; "optional": none or one; "index": exactly as many as KIDX lists; "video": none, or one per
# video; "any": zero or more). The writer writes in this order and the reader checks against it, so
# the two cannot drift.
ONE, OPTIONAL, AS_INDEXED, PER_VIDEO, ANY = "one", "optional", "index", "video", "any"
CHUNK_ORDER: tuple[tuple[str, str], ...] = ((META, ONE), (KPOS, OPTIONAL), (KIDX, ONE), (KSEG, AS_INDEXED),
                                            (MOTN, PER_VIDEO), (TENS, ANY), (FEND, ONE))
KNOWN_CRITICAL = tuple(ctype for ctype, _ in CHUNK_ORDER)


def chunk_n_bytes(n_payload_bytes: int) -> int:
    """Bytes a chunk with an ``n_payload_bytes`` payload takes in the file (section 3: head, payload, CRC)."""
    return CHUNK_OVERHEAD_BYTES + n_payload_bytes
QUAL = "qual"  # section 8.1 (ancillary): the quality the encoder measured on the decoded file, JSON


def is_critical(chunk_type: str) -> bool:
    """Critical chunks must be understood; ancillary ones (lower-case first letter) may be skipped."""
    return chunk_type[0].isupper()


def crc32(chunk_type: str, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(chunk_type.encode("ascii")))


def write_header(f: BinaryIO, major: int = FORMAT_MAJOR, minor: int = FORMAT_MINOR) -> int:
    data = SIGNATURE + _VERSION.pack(major, minor)
    f.write(data)
    return len(data)


def read_header(head: bytes) -> tuple[int, int]:
    """Check signature and version of the first HEADER_N_BYTES bytes; return (major, minor)."""
    if len(head) < len(SIGNATURE):
        raise NvcFormatError(f"file is {len(head)} bytes, too short for the {len(SIGNATURE)}-byte .nvc signature")
    sig = head[: len(SIGNATURE)]
    if sig != SIGNATURE:
        hint = ""
        if sig[1:4] == b"NVC":
            hint = " (the file looks damaged by a text-mode transfer: line endings or the high bit changed)"
        raise NvcFormatError(f"byte 0: not an .nvc file: signature {sig.hex()} != {SIGNATURE.hex()}{hint}")
    if len(head) < HEADER_N_BYTES:
        raise NvcFormatError(f"byte {len(SIGNATURE)}: file ends inside the version field")
    major, minor = _VERSION.unpack(head[len(SIGNATURE) : HEADER_N_BYTES])
    if major != FORMAT_MAJOR:
        raise NvcFormatError(
            f"byte {len(SIGNATURE)}: format version {major}.{minor} is not supported "
            f"(this reader reads major version {FORMAT_MAJOR})"
        )
    return major, minor


def write_chunk(f: BinaryIO, chunk_type: str, payload: bytes) -> int:
    """Write one chunk (FORMAT.md section 3); return its size in bytes, header and CRC included."""
    check_type(chunk_type)
    f.write(_CHUNK_HEAD.pack(chunk_type.encode("ascii"), len(payload)))
    f.write(payload)
    f.write(_CRC.pack(crc32(chunk_type, payload)))
    return CHUNK_OVERHEAD_BYTES + len(payload)


def check_type(chunk_type: str) -> None:
    if not (len(chunk_type) == 4 and chunk_type.isascii() and chunk_type.isalpha()):
        raise ValueError(f"chunk type must be 4 ASCII letters, got {chunk_type!r}")


def read_chunk_head(f: BinaryIO, offset_bytes: int, file_n_bytes: int) -> tuple[str, int]:
    """Read the 12-byte chunk header at ``offset_bytes``; return (type, payload length).

    The length is checked against the bytes left in the file before anything is
    allocated, so a length of 2**63 is refused here.
    """
    left = file_n_bytes - offset_bytes
    if left < _CHUNK_HEAD.size:
        raise NvcFormatError(f"byte {offset_bytes}: file ends inside a chunk header ({left} of 12 bytes)")
    f.seek(offset_bytes)
    raw_type, n_payload = _CHUNK_HEAD.unpack(f.read(_CHUNK_HEAD.size))
    if not all(0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A for b in raw_type):
        raise NvcFormatError(f"byte {offset_bytes}: chunk type {raw_type!r} is not 4 ASCII letters")
    chunk_type = raw_type.decode("ascii")
    if n_payload > left - CHUNK_OVERHEAD_BYTES:
        raise at_chunk(
            chunk_type,
            offset_bytes,
            f"length {n_payload} exceeds the {max(left - CHUNK_OVERHEAD_BYTES, 0)} bytes left in the file",
        )
    return chunk_type, n_payload


def read_chunk_payload(f: BinaryIO, chunk_type: str, offset_bytes: int, n_payload: int) -> bytes:
    """Read a chunk's payload and CRC (header already read by read_chunk_head); check the CRC."""
    f.seek(offset_bytes + _CHUNK_HEAD.size)
    payload = f.read(n_payload)
    raw_crc = f.read(_CRC.size)
    if len(payload) != n_payload or len(raw_crc) != _CRC.size:
        raise at_chunk(chunk_type, offset_bytes, "file changed or ended while reading the chunk")
    (stored,) = _CRC.unpack(raw_crc)
    computed = crc32(chunk_type, payload)
    if stored != computed:
        raise at_chunk(chunk_type, offset_bytes, f"CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})")
    return payload


class Record:
    """A fixed sequence of little-endian fields; one description drives pack() and unpack().

    ``Record(("video", "I"), ("n_bytes", "Q"))`` packs a dict / unpacks to a dict.
    """

    def __init__(self, *fields: tuple[str, str]):
        self.names = tuple(name for name, _ in fields)
        self.struct = struct.Struct("<" + "".join(code for _, code in fields))
        self.size = self.struct.size

    def pack(self, values: dict) -> bytes:
        return self.struct.pack(*(values[name] for name in self.names))

    def unpack(self, data: bytes) -> dict:
        return dict(zip(self.names, self.struct.unpack(data)))


class PayloadReader:
    """Bounds-checked reads from one chunk payload; errors name the chunk and its file offset."""

    def __init__(self, payload: bytes, chunk_type: str, offset_bytes: int):
        self.payload = payload
        self.chunk_type = chunk_type
        self.offset_bytes = offset_bytes
        self.pos = 0

    def error(self, what: str) -> NvcFormatError:
        return at_chunk(self.chunk_type, self.offset_bytes, what)

    @property
    def n_left(self) -> int:
        return len(self.payload) - self.pos

    def take(self, n_bytes: int, what: str) -> bytes:
        if n_bytes < 0 or n_bytes > self.n_left:
            raise self.error(
                f"payload ends inside {what} (needs {n_bytes} bytes at payload byte {self.pos}, {self.n_left} left)"
            )
        data = self.payload[self.pos : self.pos + n_bytes]
        self.pos += n_bytes
        return data

    def record(self, rec: Record, what: str) -> dict:
        return rec.unpack(self.take(rec.size, what))

    def rest(self) -> bytes:
        return self.take(self.n_left, "")

    def expect_end(self) -> None:
        if self.n_left:
            raise self.error(f"{self.n_left} unexpected bytes after the payload's last field")
