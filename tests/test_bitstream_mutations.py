"""Corrupt a small valid .nvc on purpose: every mutation is refused or decodes to identical content.

NVCODEC_MUTATIONS=N raises the random-mutation count (default 6 000, plus every single-bit flip).
"""
from __future__ import annotations

import io
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest

import nvc_craft as nc
from nvc_craft import Pieces, chunk, constant_words, motion_payload, split_chunks

from nvcodec.bitstream import KeyframeSegment, NvcFormatError, NvcReader, QuantizedTensor, VideoMotion, write_nvc
from nvcodec.bitstream.entropy import MODEL_CONTEXT
from nvcodec.bitstream.motion import INTERP_BILINEAR, PRED_NONE, PRED_TIME

N_RANDOM = int(os.environ.get("NVCODEC_MUTATIONS", "6000"))
MAX_SECONDS_PER_CASE = 1.0


def small_file(tmp_path, motion: bool = False, context: bool = False) -> bytes:
    """A two-video file; ``motion``: with MOTN chunks; ``context``: one more tensor coded with the context model."""
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
    if context:  # columns on or off across the 4 rows: the context model codes it (FORMAT.md 9, model 5)
        active = np.broadcast_to(rng.random((1, 64)) < 0.25, (4, 64))
        tensors.append(QuantizedTensor("ctx", np.where(active, rng.choice([-1, 1], (4, 64)), 0), np.ones(1, np.float32), None, 2))
    fields = None
    if motion:  # grid 4 on 8x8 frames: 2x2 cells; clips of 7 and 0 in-between frames, and 0
        fields = [VideoMotion(4, 2, INTERP_BILINEAR, 2, 2, (rng.integers(-3, 4, (7, 2, 2, 2, 2)), np.zeros((0, 2, 2, 2, 2), np.int32))),
                  VideoMotion(4, 4, INTERP_BILINEAR, 2, 2, (np.zeros((0, 2, 2, 2, 2), np.int32),))]
    write_nvc(tmp_path / "m.nvc", md, segments, tensors, motion=fields)
    return (tmp_path / "m.nvc").read_bytes()


def content(data: bytes):
    """Everything a decoder reads; raises NvcFormatError on bad bytes."""
    with NvcReader(io.BytesIO(data)) as r:
        r.verify()
        segs = [[r.read_segment(v, i) for i in range(len(r.segments(v)))] for v in range(len(r.metadata["videos"]))]
        tensors = r.read_tensors()
        motion = [r.motion(v) and r.motion(v).read_all() for v in range(len(segs))]
        return (r.metadata, [r.segments(v) for v in range(len(segs))], segs,
                [(t.name, t.q.tolist(), t.scale.tobytes(), t.axis, t.n_bits) for t in tensors],
                [m and (m.grid, m.step_qpel, m.interp, [q.tolist() for q in m.clips]) for m in motion])


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


@pytest.mark.parametrize("motion, context", [(False, False), (True, False), (False, True)],
                         ids=["v1.0", "v1.1-motion", "context-model"])
def test_single_bit_flips_and_byte_mutations_are_refused_or_harmless(tmp_path, motion, context):
    """Every bit flip plus N random byte mutations: NvcFormatError or identical content, never another exception."""
    data = small_file(tmp_path, motion, context)
    if context:
        with NvcReader(io.BytesIO(data)) as r:
            assert [(h.name, h.coded[0]) for h in r.tensor_headers()][-1] == ("ctx", MODEL_CONTEXT)
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


@pytest.mark.parametrize("ctype", [b"META", b"KIDX", b"KSEG", b"MOTN", b"TENS"])
def test_payload_mutations_with_valid_crc_raise_only_format_errors(tmp_path, ctype):
    """Mutations behind a recomputed CRC reach the payload checks: NvcFormatError or a clean read."""
    data = small_file(tmp_path, motion=True, context=True)
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
        "for ctype in (b'META', b'KIDX', b'KSEG', b'MOTN', b'TENS'):\n"
        f"    m.test_payload_mutations_with_valid_crc_raise_only_format_errors(pathlib.Path({str(tmp_path)!r}), ctype)\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# --- hostile motion chunks (FORMAT.md section 14), crafted from the conformance file's pieces -----------
# The conformance file: 2 videos of 48x40, 9 frames, keyframe interval 8 -> clips of 7 and 0 in-between
# frames; 16-pixel cells make 3x3. Each case must fail cleanly, with little memory and at once.

MAX_TRACED_BYTES = 32 << 20


def motion_of(video: int, grid: int = 16, rows: int = 3, cols: int = 3, **kw) -> bytes:
    """A valid-by-the-spec MOTN payload: every vector of video ``video`` is (video + 1) whole pixels."""
    return motion_payload(video, grid, 4, INTERP_BILINEAR, rows, cols,
                          [(PRED_NONE, 4, constant_words(video + 1)), (PRED_NONE, 2, b"")], **kw)


def crafted(tmp_path, motion: list[bytes], minor: int = 1, edit=None) -> bytes:
    pieces = Pieces()
    pieces.tensors = pieces.tensors[:2]
    pieces.motion, pieces.minor = motion, minor
    if edit:
        edit(pieces)
    return pieces.write(tmp_path / "crafted.nvc").read_bytes()


def read_everything(data: bytes):
    """Open, verify, and decode every video's motion; return the motion, bounded in time and memory."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with NvcReader(io.BytesIO(data)) as r:
            r.verify()
            return [r.motion(v).read_all() for v in range(len(r.metadata["videos"]))]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.perf_counter() - t0 < MAX_SECONDS_PER_CASE and peak < MAX_TRACED_BYTES, peak


def test_crafted_motion_file_reads_back(tmp_path):
    """The valid crafted file the hostile cases below edit reads back to its constant vectors."""
    got = read_everything(crafted(tmp_path, [motion_of(0), motion_of(1)]))
    assert [int(m.clips[0].min()) for m in got] == [1, 2] and [int(m.clips[0].max()) for m in got] == [1, 2]
    assert [m.clips[0].shape for m in got] == [(7, 2, 2, 3, 3)] * 2 and [m.clips[1].size for m in got] == [0, 0]


def _huge_frames(pieces) -> None:
    pieces.metadata["videos"][0].update(width=16384, height=16384)


def _lying_byte_count(payload: bytes) -> bytes:
    return payload[:18] + struct.pack("<I", 0xFFFFFFFF) + payload[22:]


def _uniform_words_too_short(video: int) -> bytes:
    """Clip 0 coded as uniform over -8..7 with one 32-bit word for 252 integers: decoding would run past the end."""
    words = b"\x01" + struct.pack("<ii", -8, 7) + b"\x12\x34\x56\x78"
    return motion_payload(video, 16, 4, INTERP_BILINEAR, 3, 3, [(PRED_TIME, 4, words), (PRED_NONE, 2, b"")])


@pytest.mark.parametrize("motion, minor, edit, match", [
    ([motion_of(0, n_clips=0xFFFFFFFF), motion_of(1)], 1, None,
     r"^chunk 'MOTN' at byte \d+: video 0: motion lists 4294967295 clips, the video has 2$"),
    ([motion_of(0, grid=4, rows=4096, cols=4096), motion_of(1)], 1, _huge_frames,
     r"^chunk 'MOTN' at byte \d+: video 0: 469762048 motion integers exceed the limit of 16777216$"),
    ([_lying_byte_count(motion_of(0)), motion_of(1)], 1, None,
     r"^chunk 'MOTN' at byte \d+: video 0: the clips' coded bytes sum to 4294967295, the payload has 5 left$"),
    ([motion_of(0), motion_of(1, grid=0)], 1, None, r"^chunk 'MOTN' at byte \d+: video 1: motion grid 0 is not 4..1024$"),
    ([motion_of(0, grid=4096, rows=1, cols=1), motion_of(1)], 1, None, r"video 0: motion grid 4096 is not 4..1024$"),
    ([motion_of(0, rows=4), motion_of(1)], 1, None,
     r"video 0: motion has 4x3 cells, but 16-pixel cells over 48x40 make 3x3$"),
    ([motion_of(0), _uniform_words_too_short(1)], 1, None,
     r"^chunk 'MOTN' at byte \d+: video 1 clip 0: motion: uniform model: 1 words cannot hold 252 symbols"),
    ([motion_of(0), motion_of(1)], 0, None,
     r"^chunk 'MOTN' at byte \d+: coded motion in a version 1.0 file \(it needs version 1.1\)$"),
    ([motion_of(0)], 1, None,
     r"^chunk 'TENS' at byte \d+: chunk out of order: expected 'MOTN' for video 1 \(a file with motion has one per video\)$"),
    ([motion_of(0), motion_of(0)], 1, None,
     r"^chunk 'MOTN' at byte \d+: the file's 'MOTN' #1 names video 0 \(one per video, in video order\)$"),
    ([motion_of(0), motion_of(1), motion_of(1)], 1, None,
     r"^chunk 'MOTN' at byte \d+: chunk out of order: 'MOTN' #2 but the file has 2 videos \(one 'MOTN' per video\)$"),
], ids=["huge-clip-count", "huge-grid", "huge-byte-count", "grid-0", "grid-4096", "rows-mismatch",
        "words-past-the-end", "motion-in-1.0", "one-video-missing", "second-for-video-0", "one-too-many"])
def test_hostile_motion_chunks_are_refused_cleanly(tmp_path, motion, minor, edit, match):
    """Each hostile MOTN gives its own NvcFormatError, with bounded memory and time."""
    data = crafted(tmp_path, motion, minor, edit)
    with pytest.raises(NvcFormatError, match=match):
        read_everything(data)


def test_motion_out_of_order_is_refused(tmp_path):
    """A MOTN before the last KSEG, or after a TENS, is refused when the walk reaches it."""
    data = crafted(tmp_path, [motion_of(0), motion_of(1)])
    parts = split_chunks(data)
    types = [t for t, _ in parts]
    kseg, motn, tens = types.index(b"KSEG"), types.index(b"MOTN"), types.index(b"TENS")

    def rebuilt(order: list[int]) -> bytes:
        return data[:12] + b"".join(chunk(*parts[i]) for i in order)

    early = [0, 1, kseg, motn, kseg + 1, motn + 1, *range(tens, len(parts))]
    with pytest.raises(NvcFormatError, match=r"^chunk 'MOTN' at byte \d+: chunk out of order: expected 'KSEG' #1 of the 2"):
        read_everything(rebuilt(early))
    late = [*range(motn), tens, motn, motn + 1, *range(tens + 1, len(parts))]
    with pytest.raises(NvcFormatError, match=r"^chunk 'MOTN' at byte \d+: chunk out of order: a 'MOTN' after 'TENS'$"):
        read_everything(rebuilt(late))
