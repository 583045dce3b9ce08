"""Corrupt a small valid .nvc on purpose: every mutation is refused or decodes to identical content.

NVCODEC_MUTATIONS=N raises the random-mutation count (default 6 000, plus every single-bit flip).
"""
from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest

import nvc_craft as nc

from nvcodec.bitstream import KeyframeSegment, NvcFormatError, NvcReader, QuantizedTensor, write_nvc

N_RANDOM = int(os.environ.get("NVCODEC_MUTATIONS", "6000"))
MAX_SECONDS_PER_CASE = 1.0


def small_file(tmp_path) -> bytes:
    md = {
        "encoder": "mut",
        "videos": [
            {"name": "a.mp4", "source_width": 8, "source_height": 8, "width": 8, "height": 8, "fps_num": 25, "fps_den": 1, "n_frames": 9},
            {"name": "b/c.mp4", "source_width": 8, "source_height": 8, "width": 8, "height": 8, "fps_num": 25, "fps_den": 1, "n_frames": 2},
        ],
        "keyframe_interval": 8,
        "tile": {"width": 8, "height": 8},
        "keyframe_codec": {"codec": "av1", "mode": "intra", "params": {"crf": 30}},
        "model": {"c0": 4},
    }
    segments = [KeyframeSegment(0, 0, 1, b"k0"), KeyframeSegment(0, 1, 1, b"k1"), KeyframeSegment(1, 0, 2, b"k23")]
    rng = np.random.default_rng(0)
    tensors = [
        QuantizedTensor("w", np.clip(np.round(rng.laplace(0, 3, (4, 6))), -8, 7).astype(np.int32), np.full(4, 0.1, np.float32), 0, 4),
        QuantizedTensor("b", np.array([1, -1, 0]), np.array([0.5], np.float32), None, 2),
    ]
    write_nvc(tmp_path / "m.nvc", md, segments, tensors)
    return (tmp_path / "m.nvc").read_bytes()


def content(data: bytes):
    """Everything a decoder reads; raises NvcFormatError on bad bytes."""
    with NvcReader(io.BytesIO(data)) as r:
        r.verify()
        segs = [[r.read_segment(v, i) for i in range(len(r.segments(v)))] for v in range(len(r.metadata["videos"]))]
        tensors = r.read_tensors()
        return r.metadata, [r.segments(v) for v in range(len(segs))], segs, [(t.name, t.q.tolist(), t.scale.tobytes(), t.axis, t.n_bits) for t in tensors]


def check(data: bytes, original, tally: dict) -> None:
    t0 = time.perf_counter()
    try:
        got = content(data)
    except NvcFormatError:
        tally["rejected"] += 1
    else:
        if got != original:
            raise AssertionError(f"mutation decoded to different content: {data.hex()}")
        tally["identical"] += 1
    tally["max_seconds"] = max(tally["max_seconds"], time.perf_counter() - t0)


def test_single_bit_flips_and_byte_mutations_are_refused_or_harmless(tmp_path):
    """Every bit flip plus N random byte mutations: NvcFormatError or identical content, never another exception."""
    data = small_file(tmp_path)
    original = content(data)
    tally = {"rejected": 0, "identical": 0, "max_seconds": 0.0}
    for pos in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            check(bytes(bad), original, tally)
    rng = np.random.default_rng(1)
    for _ in range(N_RANDOM):
        bad = bytearray(data)
        pos = int(rng.integers(len(data)))
        bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        check(bytes(bad), original, tally)
    n = tally["rejected"] + tally["identical"]
    print(f"\n{n} mutations of a {len(data)}-byte file: {tally['rejected']} rejected, {tally['identical']} identical "
          f"(version bytes), slowest {1000 * tally['max_seconds']:.1f} ms")
    assert n >= 10_000 and tally["max_seconds"] < MAX_SECONDS_PER_CASE
    assert tally["identical"] < 0.02 * n  # only the minor-version bytes are outside every CRC


def _build(head: bytes, chunks) -> bytes:
    return head + b"".join(nc.chunk(t, p) for t, p in chunks)


@pytest.mark.parametrize("ctype", [b"META", b"KIDX", b"KSEG", b"TENS"])
def test_payload_mutations_with_valid_crc_raise_only_format_errors(tmp_path, ctype):
    """Mutations behind a recomputed CRC reach the payload checks: NvcFormatError or a clean read."""
    data = small_file(tmp_path)
    chunks = nc.split_chunks(data)
    rng = np.random.default_rng(int.from_bytes(ctype, "little"))
    idx = [i for i, (t, _) in enumerate(chunks) if t == ctype]
    n_rejected = n_read = 0
    t_max = 0.0
    for _ in range(400):
        i = idx[int(rng.integers(len(idx)))]
        payload = bytearray(chunks[i][1])
        for _ in range(int(rng.integers(1, 3))):
            pos = int(rng.integers(len(payload)))
            payload[pos] = int(rng.integers(256)) if rng.random() < 0.5 else payload[pos] ^ (1 << int(rng.integers(8)))
        edited = list(chunks)
        edited[i] = (ctype, bytes(payload))
        t0 = time.perf_counter()
        try:
            content(_build(data[:12], edited))
            n_read += 1
        except NvcFormatError:
            n_rejected += 1
        t_max = max(t_max, time.perf_counter() - t0)
    assert t_max < MAX_SECONDS_PER_CASE
    if ctype == b"KSEG":  # segment bytes are opaque to the container: any value reads back
        assert n_read == 400
    else:
        assert n_rejected > 0


def test_mutations_stay_under_a_memory_cap(tmp_path):
    """The payload mutations, replayed in a child limited to 512 MiB of address space: no MemoryError."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import resource, sys, pathlib\n"
        "resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_bitstream_mutations as m\n"
        "for ctype in (b'META', b'KIDX', b'KSEG', b'TENS'):\n"
        f"    m.test_payload_mutations_with_valid_crc_raise_only_format_errors(pathlib.Path({str(tmp_path)!r}), ctype)\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
