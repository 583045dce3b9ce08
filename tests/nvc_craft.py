"""The tests' own small .nvc writer, written from FORMAT.md (not nvcodec's encoder or writer).

It takes the real pieces of the committed conformance file (its metadata, keyframe segments and
tensor payloads, read back chunk by chunk) and reassembles them with edits, so that a test can
build files that are *valid by the spec* yet hostile to a decoder: lying frame counts, huge
frames, networks larger than their weights, colliding names, hostile motion chunks.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import zstandard

CONFORMANCE = Path(__file__).parent / "data" / "conformance" / "tiny.nvc"
SIGNATURE = b"\x8bNVC\r\n\x1a\n"


def chunk(ctype: bytes, payload: bytes) -> bytes:
    """FORMAT.md section 3: type, u64 length, payload, CRC-32 of type + payload."""
    return struct.pack("<4sQ", ctype, len(payload)) + payload + struct.pack("<I", zlib.crc32(ctype + payload))


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 12, []
    while pos < len(data):
        ctype, n = struct.unpack_from("<4sQ", data, pos)
        out.append((ctype, data[pos + 12:pos + 12 + n]))
        pos += 16 + n
    return out


def n_keyframes(n_frames: int, interval: int) -> int:
    """FORMAT.md section 5, "Keyframes of a video"."""
    return len(range(0, n_frames, interval)) + (1 if (n_frames - 1) % interval else 0)


def constant_tensor(name: str, shape: tuple[int, ...], value: int = 0, n_bits: int = 8,
                    scale: float = 0.0) -> bytes:
    """A TENS payload (section 7) whose integers are all ``value``: the 5-byte constant model (section 9)."""
    raw = name.encode("ascii")
    return (struct.pack("<H", len(raw)) + raw + struct.pack("<BBB", n_bits, len(shape), 255)
            + b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<I", 1) + struct.pack("<f", scale)
            + struct.pack("<Q", 5) + b"\x00" + struct.pack("<i", value))


def tensor_payload_with_scale(payload: bytes, scale: float) -> bytes:
    """A TENS payload with every scale replaced by ``scale`` (the coded integers unchanged)."""
    (n_name,) = struct.unpack_from("<H", payload, 0)
    pos = 2 + n_name
    _, ndim, _ = struct.unpack_from("<BBB", payload, pos)
    pos += 3 + 8 * ndim
    (n_scales,) = struct.unpack_from("<I", payload, pos)
    pos += 4
    return payload[:pos] + struct.pack("<f", scale) * n_scales + payload[pos + 4 * n_scales:]


def constant_words(value: int) -> bytes:
    """Section 9's constant model: every integer of the array is ``value`` (5 bytes, no words)."""
    return b"\x00" + struct.pack("<i", value)


def motion_payload(video: int, grid: int, step_qpel: int, interp: int, rows: int, cols: int,
                   clips: list[tuple[int, int, bytes]], n_clips: int | None = None) -> bytes:
    """A MOTN payload (section 14.2): 16-byte header, the clip table, the clips' coded bytes.
    ``clips``: (pred, n_bits, coded bytes) per clip; ``n_clips`` overrides the count written."""
    head = struct.pack("<IHBBHHI", video, grid, step_qpel, interp, rows, cols,
                       len(clips) if n_clips is None else n_clips)
    table = b"".join(struct.pack("<BBI", pred, n_bits, len(data)) for pred, n_bits, data in clips)
    return head + table + b"".join(data for *_, data in clips)


class Pieces:
    """The conformance file taken apart: edit ``metadata``, ``segments`` and ``tensors``, then ``write``."""

    def __init__(self, source: Path = CONFORMANCE) -> None:
        parts = split_chunks(source.read_bytes())
        self.metadata = json.loads(zstandard.ZstdDecompressor().decompress(dict(parts)[b"META"]))
        kidx = dict(parts)[b"KIDX"]
        entries = [struct.unpack_from("<IIIQ", kidx, 4 + 20 * i) for i in range(struct.unpack_from("<I", kidx)[0])]
        kseg = [p for t, p in parts if t == b"KSEG"]
        # [video, first_keyframe, n_keyframes, bytes]; n_bytes follows the bytes
        self.segments = [[v, first, n, data] for (v, first, n, _), data in zip(entries, kseg)]
        self.tensors = [p for t, p in parts if t == b"TENS"]
        self.motion: list[bytes] = []  # MOTN payloads, written after the KSEGs (section 14.1)
        self.minor = 0  # the header's minor version (1 for a file with motion)

    def set_frames(self, video: int, n_frames: int) -> None:
        """Declare ``n_frames`` for a video; its last segment's keyframe count follows, its bytes do not."""
        self.metadata["videos"][video]["n_frames"] = n_frames
        total = n_keyframes(n_frames, self.metadata["keyframe_interval"])
        mine = [s for s in self.segments if s[0] == video]
        mine[-1][2] = total - mine[-1][1]

    def write(self, path: Path) -> Path:
        meta = zstandard.ZstdCompressor(write_content_size=True).compress(
            json.dumps(self.metadata, separators=(",", ":")).encode("utf-8"))
        kidx = struct.pack("<I", len(self.segments)) + b"".join(
            struct.pack("<IIIQ", v, first, n, len(data)) for v, first, n, data in self.segments)
        body = [chunk(b"META", meta), chunk(b"KIDX", kidx)]
        body += [chunk(b"KSEG", data) for *_, data in self.segments]
        body += [chunk(b"MOTN", m) for m in self.motion]
        body += [chunk(b"TENS", t) for t in self.tensors]
        body.append(chunk(b"FEND", b""))
        path.write_bytes(SIGNATURE + struct.pack("<HH", 1, self.minor) + b"".join(body))
        return path


def tiny_network_tensors(model: dict) -> list[bytes]:
    """Constant-coded TENS payloads for every parameter of the network ``model`` describes
    (shapes from a meta-device build: nothing is allocated)."""
    import torch

    from nvcodec.config import ModelConfig
    from nvcodec.model import DNeRV

    with torch.device("meta"):
        net = DNeRV(ModelConfig.from_json(model))
    return [constant_tensor(name, tuple(p.shape)) for name, p in net.named_parameters()]
