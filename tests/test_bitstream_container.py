"""The .nvc container: round trips, writer checks, and every reader refusal with its message."""
from __future__ import annotations

import io
import json
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import zstandard

from nvcodec.bitstream import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    KeyframeSegment,
    NvcFormatError,
    NvcReader,
    QuantizedTensor,
    check_video_name,
    keyframe_count,
    tensor_chunk_n_bytes,
    write_nvc,
)
from nvcodec.bitstream.chunks import HEADER_N_BYTES, chunk_n_bytes
from nvcodec.bitstream.metadata import MetadataError


def make_metadata(n_frames=(10, 3), interval=4, **extra) -> dict:
    md = {
        "encoder": "nvcodec-test",
        "videos": [
            {"name": f"dir/clip{i}.mp4", "source_width": 64, "source_height": 48, "width": 32, "height": 24,
             "fps_num": 30000, "fps_den": 1001, "n_frames": n}
            for i, n in enumerate(n_frames)
        ],
        "keyframe_interval": interval,
        "tile": {"width": 16, "height": 8},
        "keyframe_codec": {"codec": "av1", "mode": "inter", "params": {"crf": 40, "preset": "8", "fast": True}},
        "model": {"c0": 8, "strides": [2, 2], "mean": [0.5, 0.25, 0.125], "residual": None},
        "fit": {"preset": "tiny", "psnr": 31.25},
    }
    md.update(extra)
    return md


def make_segments() -> list[KeyframeSegment]:
    # video 0: 10 frames, K=4 -> keyframes 0, 4, 8, 9 (4); video 1: 3 frames -> 0, 2 (2)
    return [
        KeyframeSegment(0, 0, 3, b"\x00seg0" * 3),
        KeyframeSegment(0, 3, 1, b"seg1"),
        KeyframeSegment(1, 0, 2, b"video1"),
    ]


def make_tensors() -> list[QuantizedTensor]:
    rng = np.random.default_rng(1)
    w = np.clip(np.round(rng.laplace(0, 6, (4, 3, 3, 3))), -128, 127).astype(np.int16)
    return [
        QuantizedTensor("enc.conv.weight", w, np.array([0.01, 0.02, 0.5, 3.0], np.float32), 0, 8),
        QuantizedTensor("enc.conv.bias", np.array([3, -2, 0, 7]), np.array([0.125], np.float32), None, 4),
        QuantizedTensor("empty", np.zeros((0, 5), np.int32), np.zeros(5, np.float32), 1, 6),
    ]


def write_sample(path, **kw) -> bytes:
    write_nvc(path, kw.get("metadata", make_metadata()), kw.get("segments", make_segments()), kw.get("tensors", make_tensors()))
    return path.read_bytes()


def parse_chunks(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(12-byte header, [(type, payload)]) of a file, for tests that re-serialise edited chunks."""
    head, pos, out = data[:12], 12, []
    while pos < len(data):
        ctype, n = struct.unpack_from("<4sQ", data, pos)
        out.append((ctype, data[pos + 12 : pos + 12 + n]))
        pos += 16 + n
    return head, out


def build(head: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Serialise chunks with valid lengths and CRCs."""
    parts = [head]
    for ctype, payload in chunks:
        parts += [struct.pack("<4sQ", ctype, len(payload)), payload, struct.pack("<I", zlib.crc32(ctype + payload))]
    return b"".join(parts)


def read_all(data: bytes):
    """Everything a decoder would read from a file given as bytes."""
    with NvcReader(io.BytesIO(data)) as r:
        r.verify()
        segs = {v: [(s, r.read_segment(v, i)) for i, s in enumerate(r.segments(v))] for v in range(len(r.metadata["videos"]))}
        return r.metadata, segs, r.read_tensors()


def replace_meta(data: bytes, md_json: bytes) -> bytes:
    head, chunks = parse_chunks(data)
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(md_json)
    return build(head, [(b"META", frame) if t == b"META" else (t, p) for t, p in chunks])


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "s.nvc"
    return path, write_sample(path)


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_returns_what_was_written(sample):
    """metadata, segments (per video, in order) and tensors come back exactly."""
    path, data = sample
    with NvcReader(path) as r:
        assert r.metadata == make_metadata()
        assert r.version == (FORMAT_MAJOR, FORMAT_MINOR)
        assert r.n_bytes == len(data) == path.stat().st_size
        assert r.segments(0) == [(0, 3), (3, 1)] and r.segments(1) == [(0, 2)]
        assert r.read_segment(0, 1) == b"seg1" and r.read_segment(1, 0) == b"video1"
        tensors = r.read_tensors()
        assert tensors == make_tensors()
        assert [t.name for t in tensors] == ["enc.conv.weight", "enc.conv.bias", "empty"]
        assert tensors[0].q.dtype == np.int32 and tensors[0].scale.dtype == np.float32
        r.verify()


def test_write_returns_file_size_and_segments_may_come_unsorted(tmp_path):
    """write_nvc sorts segments by (video, first_keyframe) and returns the byte count."""
    n = write_nvc(tmp_path / "a.nvc", make_metadata(), make_segments()[::-1], make_tensors())
    assert n == (tmp_path / "a.nvc").stat().st_size
    assert (tmp_path / "a.nvc").read_bytes() == write_sample(tmp_path / "b.nvc")


def test_chunks_and_byte_breakdown_account_for_every_byte(sample):
    """chunks() tiles the file after the 12-byte header; byte_breakdown() sums to n_bytes."""
    path, data = sample
    with NvcReader(path) as r:
        chunks = r.chunks()
        assert [c[0] for c in chunks] == ["META", "KIDX", "KSEG", "KSEG", "KSEG", "TENS", "TENS", "TENS", "FEND"]
        assert chunks[0][1] == 12 and sum(c[2] for c in chunks) == len(data) - 12
        for (_, off, n), (_, nxt, _) in zip(chunks, chunks[1:]):
            assert off + n == nxt
        parts = r.byte_breakdown()
        assert set(parts) == {"keyframes", "motion", "weights", "metadata", "container"} and sum(parts.values()) == len(data)
        assert parts["keyframes"] == sum(len(s.data) for s in make_segments())


def test_predicted_chunk_sizes_add_up_to_the_written_file(tmp_path):
    """Header + chunk_n_bytes of every payload = the file size; tensor_chunk_n_bytes = each TENS chunk."""
    tensors = make_tensors()
    path = tmp_path / "p.nvc"
    data = write_sample(path, tensors=tensors)
    _, parsed = parse_chunks(data)
    assert HEADER_N_BYTES + sum(chunk_n_bytes(len(p)) for _, p in parsed) == len(data)
    with NvcReader(path) as r:
        tens = [n for ctype, _, n in r.chunks() if ctype == "TENS"]
    assert tens == [tensor_chunk_n_bytes(t) for t in tensors]
    assert tensor_chunk_n_bytes(tensors[1]) == 16 + len([p for t, p in parsed if t == b"TENS"][1])


def test_read_segment_reads_only_that_chunk(sample):
    """Random access: reading one segment touches only its own bytes."""
    path, data = sample
    with NvcReader(path) as r:
        _, off, n = [c for c in r.chunks() if c[0] == "KSEG"][2]
        reads = []
        f = r._f
        real_read = f.read

        class Spy:
            def seek(self, *a):
                return f.seek(*a)

            def read(self, k):
                reads.append((f.tell(), k))
                return real_read(k)

        r._f = Spy()
        assert r.read_segment(1, 0) == b"video1"
        r._f = f
    assert all(off <= pos and pos + k <= off + n for pos, k in reads)


def test_dequantize_is_float32_product_along_axis():
    """dequantize() = float32(q) * scale broadcast along axis."""
    t = QuantizedTensor("t", np.array([[1, -2, 3], [4, 5, -6]]), np.array([0.5, 2.0, 0.1], np.float32), 1, 4)
    expected = np.array([[1, -2, 3], [4, 5, -6]], np.float32) * np.array([[0.5, 2.0, 0.1]], np.float32)
    out = t.dequantize()
    assert out.dtype == np.float32 and np.array_equal(out, expected)
    t2 = QuantizedTensor("t", np.array([1, -2]), np.array([0.25], np.float32), None, 2)
    assert np.array_equal(t2.dequantize(), np.array([0.25, -0.5], np.float32))


def test_keyframe_count_rule():
    """n_kf = len(range(0, L, K)) + (1 if (L-1) % K else 0)."""
    assert [keyframe_count(n, 4) for n in (1, 2, 4, 5, 9, 10)] == [1, 2, 2, 2, 3, 4]
    assert keyframe_count(8, 8) == 2 and keyframe_count(9, 8) == 2 and keyframe_count(17, 8) == 3


# --- atomic write ----------------------------------------------------------------------------


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    """A crash while writing leaves neither the final name nor a temporary file behind."""
    import nvcodec.bitstream.container as container

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(container, "write_tensor", boom)
    with pytest.raises(OSError, match="disk full"):
        write_nvc(tmp_path / "out.nvc", make_metadata(), make_segments(), make_tensors())
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_the_old_file_atomically(tmp_path):
    """Writing over an existing file replaces it; no temporary remains."""
    path = tmp_path / "out.nvc"
    path.write_bytes(b"old")
    write_sample(path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nvc"]
    with NvcReader(path) as r:
        assert r.metadata["encoder"] == "nvcodec-test"


# --- writer refuses bad calls with ValueError / TypeError ------------------------------------


@pytest.mark.parametrize(
    "segments, match",
    [
        (make_segments()[:2], r"video 1 keyframes 0..1 and any later videos have no segment"),
        (make_segments()[1:], r"segment 0 starts at video 0 keyframe 3, expected video 0 keyframe 0"),
        ([KeyframeSegment(0, 0, 5, b"")] + make_segments()[2:], r"keyframes 0..4 are not within its 4 keyframes"),
        (make_segments() + [KeyframeSegment(2, 0, 1, b"")], r"segment 3 starts at video 2 keyframe 0, expected video 1 keyframe 2"),
    ],
)
def test_writer_refuses_segments_that_do_not_cover_keyframes(tmp_path, segments, match):
    """Gaps, overlaps and unknown videos in the segments are a ValueError."""
    with pytest.raises(ValueError, match=match):
        write_nvc(tmp_path / "x.nvc", make_metadata(), segments, make_tensors())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda md: md.pop("tile"), r"metadata: missing key 'tile'"),
        (lambda md: md["videos"][0].update(width=16385), r"metadata.videos\[0\].width: 16385 is outside 1..16384"),
        (lambda md: md["videos"][1].update(name="dir/clip0.mp4"), r"used by an earlier video"),
        (lambda md: md.update(keyframe_interval=True), r"keyframe_interval: must be an integer, got bool"),
        (lambda md: md["model"].update(strides=(2, 2)), r"metadata.model.strides: tuple is not a JSON type"),
        (lambda md: md["fit"].update(psnr=np.float32(1.0)), r"metadata.fit.psnr: float32 is not a JSON type"),
        (lambda md: md["fit"].update(psnr=float("nan")), r"metadata.fit.psnr: nan is not a finite number"),
        (lambda md: md["keyframe_codec"].update(mode="bidir"), r"mode: must be 'intra' or 'inter', got 'bidir'"),
        (lambda md: md.update(videos=[]), r"metadata.videos: must be a list of 1..65536 videos"),
    ],
)
def test_writer_refuses_metadata_outside_the_schema(tmp_path, edit, match):
    """The writer applies the FORMAT.md section 5 schema and names the field."""
    md = make_metadata()
    edit(md)
    with pytest.raises(ValueError, match=match):
        write_nvc(tmp_path / "x.nvc", md, make_segments(), make_tensors())


def test_writer_refuses_duplicate_tensor_names(tmp_path):
    t = make_tensors()
    with pytest.raises(ValueError, match=r"tensor name 'enc.conv.bias' is used twice"):
        write_nvc(tmp_path / "x.nvc", make_metadata(), make_segments(), t + t[1:2])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(q=np.array([8]), n_bits=4), ValueError, r"q spans 8..8, outside -8..7"),
        (dict(q=np.array([1.0])), TypeError, r"q must be an integer array"),
        (dict(scale=np.array([1.0])), TypeError, r"scale must be float32"),
        (dict(scale=np.array([np.inf], np.float32)), ValueError, r"scales must be finite"),
        (dict(scale=np.array([3e38], np.float32)), ValueError, r"magnitude <= 65536"),
        (dict(axis=1), ValueError, r"axis must be None or 0..0"),
        (dict(n_bits=17), ValueError, r"n_bits must be an int 2..16"),
        (dict(name="a\nb"), ValueError, r"printable ASCII"),
        (dict(q=np.int32(3)), ValueError, r"1..8 dimensions"),
    ],
)
def test_quantized_tensor_refuses_bad_fields(kwargs, exc, match):
    args = dict(name="t", q=np.array([1, 2]), scale=np.array([1.0], np.float32), axis=None, n_bits=4)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        QuantizedTensor(**args)


# --- video names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, match",
    [
        ("../x", r"empty, '\.' or '\.\.' path component"),
        ("a/../b", r"'\.\.' path component"),
        ("./a", r"'\.' or"),
        ("a//b", r"empty"),
        ("a/", r"empty"),
        ("/abs", r"absolute path"),
        ("C:evil", r"absolute path"),
        ("a\\b", r"backslash"),
        ("a\x00b", r"control character '\\x00'"),
        ("a\nb", r"control character"),
        ("a\x85b", r"control character"),
        ("", r"1..1024 bytes"),
        ("x" * 1025, r"1..1024 bytes"),
        ("\ud800", r"lone surrogate"),
    ],
)
def test_unsafe_video_names_are_refused_by_reader(tmp_path, name, match):
    """A name from the file never escapes the output folder: the reader refuses it."""
    data = write_sample(tmp_path / "s.nvc")
    md = make_metadata()
    md["videos"][0]["name"] = name
    text = json.dumps(md).encode("utf-8", "surrogatepass")
    with pytest.raises(NvcFormatError, match=r"chunk 'META' at byte 12: metadata.videos\[0\].name: .*" + match):
        read_all(replace_meta(data, text))
    with pytest.raises(MetadataError, match=match):
        check_video_name(name)


def test_ordinary_video_names_are_accepted():
    for name in ("a.mp4", "dir/sub/x y.mkv", "ünï/cödé.mp4", "...", "a..b/c"):
        assert check_video_name(name) == name


# --- reader refusals ---------------------------------------------------------------------------


def test_every_truncation_is_refused(sample):
    """Every prefix of a valid file raises NvcFormatError (never another exception)."""
    _, data = sample
    for n in range(len(data)):
        with pytest.raises(NvcFormatError, match=r"byte \d+|too short"):
            read_all(data[:n])


def test_truncated_file_reports_chunk_and_offset(sample):
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^byte 12: file ends inside a chunk header \(5 of 12 bytes\)$"):
        read_all(data[:17])
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte 12: length \d+ exceeds the \d+ bytes left in the file$"):
        read_all(data[:40])
    with pytest.raises(NvcFormatError, match=r"file ends without a 'FEND' chunk \(truncated\?\)"):
        read_all(data[:-16])


def test_crc_mismatch_names_both_checksums(sample):
    _, data = sample
    bad = bytearray(data)
    bad[12 + 12 + 3] ^= 0x01  # a byte of the META payload
    stored = struct.unpack_from("<I", data, 12 + 12 + struct.unpack_from("<Q", data, 16)[0])[0]
    with pytest.raises(NvcFormatError, match=rf"^chunk 'META' at byte 12: CRC mismatch \(stored 0x{stored:08x}, computed 0x[0-9a-f]{{8}}\)$"):
        read_all(bytes(bad))


def test_length_field_of_2_pow_63_is_refused_before_allocation(sample):
    _, data = sample
    bad = data[:16] + struct.pack("<Q", 1 << 63) + data[24:]
    with pytest.raises(NvcFormatError, match=rf"^chunk 'META' at byte 12: length {1 << 63} exceeds the \d+ bytes left in the file$"):
        read_all(bad)


def test_zstd_bomb_is_refused_before_decompressing(sample):
    """A 10 KiB META frame that inflates to 100 MiB is refused from its header; nothing is decompressed."""
    _, data = sample
    head, chunks = parse_chunks(data)
    bomb = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(b" " * (100 << 20))
    assert len(bomb) < 10 << 10
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte 12: decompressed size 104857600 exceeds the 67108864-byte limit$"):
        read_all(build(head, [(b"META", bomb)] + chunks[1:]))


def test_zstd_frame_lying_about_its_size_is_refused(sample):
    """A frame whose header under-states its output is stopped at the declared size."""
    _, data = sample
    head, chunks = parse_chunks(data)
    frame = bytearray(zstandard.ZstdCompressor(level=3, write_content_size=True).compress(b" " * (1 << 20)))
    params = zstandard.get_frame_parameters(bytes(frame))
    assert params.content_size == 1 << 20
    # Frame_Header_Descriptor 0x80 | ... : content size in 4 bytes after the window descriptor
    fhd = frame[4]
    assert fhd >> 6 == 2  # 4-byte Frame_Content_Size, after the window descriptor unless single-segment
    struct.pack_into("<I", frame, 5 if fhd & 0x20 else 6, 1000)
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte 12: (zstd data is corrupt \(.*\)|zstd frame holds more than its declared 1000 bytes, or bytes follow it)$"):
        read_all(build(head, [(b"META", bytes(frame))] + chunks[1:]))


def test_zstd_frame_without_content_size_is_refused(sample):
    _, data = sample
    head, chunks = parse_chunks(data)
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"{}")
    with pytest.raises(NvcFormatError, match=r"zstd frame does not record its decompressed size"):
        read_all(build(head, [(b"META", frame)] + chunks[1:]))


def test_bytes_after_the_zstd_frame_are_refused(sample):
    _, data = sample
    head, chunks = parse_chunks(data)
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte 12: zstd frame holds more than its declared \d+ bytes, or bytes follow it$"):
        read_all(build(head, [(b"META", chunks[0][1] + b"\0")] + chunks[1:]))


@pytest.mark.parametrize(
    "text, match",
    [
        (b"\xff{}", r"JSON is not valid UTF-8 \(byte 0\)"),
        (b"{\"a\": 1,}", r"invalid JSON"),
        (b"[" * 100000 + b"]" * 100000, r"JSON is nested too deeply|metadata.*nested deeper than 32 levels"),
        (b"{\"encoder\": NaN}", r"JSON contains NaN"),
        (b"{\"a\": 1, \"a\": 2}", r"JSON object has key 'a' twice"),
        (b"1" * 5000, r"invalid JSON"),
        (b"[]", r"metadata: must be an object, got list"),
        (b'{"x":' + b"[" * 40 + b"]" * 40 + b"}", r"metadata.x(\[0\]){32}: nested deeper than 32 levels"),
    ],
    ids=["utf8", "syntax", "deep", "nan", "dup-key", "long-int", "not-object", "depth-40"],
)
def test_bad_json_is_refused(sample, text, match):
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte 12: (?:" + match + ")"):
        read_all(replace_meta(data, text))


def test_metadata_checks_behind_the_crc(sample):
    """A re-serialised META with a valid CRC but a bad value reaches the schema checks."""
    _, data = sample
    md = make_metadata()
    md["videos"][1]["n_frames"] = 0
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte 12: metadata.videos\[1\].n_frames: 0 is outside 1..2147483647$"):
        read_all(replace_meta(data, json.dumps(md).encode()))
    md = make_metadata(n_frames=(10, 7))  # video 1 now has 3 keyframes, the index covers 2
    with pytest.raises(NvcFormatError, match=r"^chunk 'KIDX' at byte \d+: video 1 keyframes 2..2 and any later videos have no segment$"):
        read_all(replace_meta(data, json.dumps(md).encode()))


def test_unknown_metadata_keys_are_preserved(sample):
    """Keys a newer minor version may add are carried along, at any level."""
    _, data = sample
    md = make_metadata(future={"x": [1, 2]})
    md["videos"][0]["rotation"] = 90
    assert read_all(replace_meta(data, json.dumps(md).encode()))[0] == md


def _edit(data: bytes, ctype: bytes, fn, nth: int = 0) -> bytes:
    head, chunks = parse_chunks(data)
    seen = -1
    out = []
    for t, p in chunks:
        if t == ctype:
            seen += 1
            if seen == nth:
                p = fn(p)
        out.append((t, p))
    return build(head, out)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda p: p[:4] + struct.pack("<I", 7) + p[8:], r"^chunk 'KIDX' at byte \d+: segment 0 starts at video 7 keyframe 0, expected video 0 keyframe 0$"),
        (lambda p: struct.pack("<I", 4) + p[4:], r"index lists 4 segments, which needs 80 bytes of entries; the payload has 60"),
        (lambda p: struct.pack("<I", 0) + p[4:], r"index lists 0 segments"),
        (lambda p: p[:12] + struct.pack("<I", 0) + p[16:], r"segment 0: video 0 keyframes 0..-1 are not within its 4 keyframes"),
        (lambda p: p[:16] + struct.pack("<Q", 99) + p[24:], r"^chunk 'KSEG' at byte \d+: segment 0 is 15 bytes, the index says 99$"),
    ],
)
def test_index_checks_behind_the_crc(sample, edit, match):
    _, data = sample
    with pytest.raises(NvcFormatError, match=match):
        read_all(_edit(data, b"KIDX", edit))


def _tens_field_offsets(payload: bytes) -> dict:
    n_name = struct.unpack_from("<H", payload)[0]
    quant = 2 + n_name
    ndim = payload[quant + 1]
    n_scales = quant + 3 + 8 * ndim
    k = struct.unpack_from("<I", payload, n_scales)[0]
    return {"quant": quant, "dims": quant + 3, "n_scales": n_scales, "scales": n_scales + 4, "n_coded": n_scales + 4 + 4 * k}


def _tens_set(field: str, fmt: str, value, delta: int = 0):
    def fn(p):
        o = _tens_field_offsets(p)[field] + delta
        return p[:o] + struct.pack(fmt, value) + p[o + struct.calcsize(fmt) :]
    return fn


@pytest.mark.parametrize(
    "edit, match",
    [
        (_tens_set("quant", "<B", 1), r"tensor 'enc.conv.weight': n_bits 1 is not 2..16"),
        (_tens_set("quant", "<B", 9, 1), r"ndim 9 is not 1..8"),
        (_tens_set("quant", "<B", 4, 2), r"axis 4 is not < ndim 4"),
        (_tens_set("dims", "<Q", 1 << 40), r"exceeds the file's limit of 134217728 elements"),
        (_tens_set("dims", "<Q", 5), r"5 scales|expected 5"),
        (_tens_set("dims", "<Q", 3 << 20, 8), r"laplace model: 17 words cannot hold 113246208 symbols"),
        (_tens_set("n_scales", "<I", 3), r"3 scales, expected 4 for shape \(4, 3, 3, 3\), axis 0"),
        (_tens_set("scales", "<f", float("nan")), r"a scale is not finite"),
        (_tens_set("scales", "<f", 3e38), r"exceeds 65536 in magnitude"),
        (_tens_set("n_coded", "<Q", 1 << 62), r"payload ends inside the coded integers"),
        (lambda p: p + b"\0", r"payload ends inside|1 unexpected bytes"),
        (lambda p: p[:2] + b"\xff" + p[3:], r"tensor name b'\\xffnc.conv.weight' is not 1..256 printable ASCII"),
        (lambda p: p[:-1] + bytes([p[-1] ^ 1]), r"tensor 'enc.conv.weight': .*(corrupt|do not match)"),
    ],
)
def test_tensor_checks_behind_the_crc(sample, edit, match):
    """TENS payloads re-serialised with a valid CRC still hit every manifest check."""
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^chunk 'TENS' at byte \d+: .*(?:" + match + ")"):
        read_all(_edit(data, b"TENS", edit))


def test_duplicate_tensor_names_are_refused(sample):
    _, data = sample
    head, chunks = parse_chunks(data)
    tens = [c for c in chunks if c[0] == b"TENS"]
    with pytest.raises(NvcFormatError, match=r"^chunk 'TENS' at byte \d+: tensor name 'enc.conv.weight' repeats the tensor at byte \d+$"):
        read_all(build(head, chunks[:-1] + tens[:1] + chunks[-1:]))


def test_duplicate_and_looping_chunks_are_refused(sample):
    """A second META / KIDX / FEND, or the chunk sequence repeated, is refused with the first offset."""
    _, data = sample
    head, chunks = parse_chunks(data)
    with pytest.raises(NvcFormatError, match=r"^chunk 'META' at byte \d+: duplicate chunk \(the first is at byte 12\)$"):
        read_all(build(head, chunks[:1] + chunks))
    with pytest.raises(NvcFormatError, match=r"^chunk 'KIDX' at byte \d+: duplicate chunk \(the first is at byte \d+\)$"):
        read_all(build(head, chunks[:2] + chunks[1:]))
    with pytest.raises(NvcFormatError, match=r"chunk 'KSEG' at byte \d+: chunk out of order: expected 'TENS' or 'FEND'"):
        read_all(build(head, chunks[:5] + chunks[2:]))
    with pytest.raises(NvcFormatError, match=r"chunk 'META' at byte \d+: duplicate chunk"):
        read_all(build(head, chunks[:-1] + chunks))


def test_chunk_order_is_enforced(sample):
    _, data = sample
    head, chunks = parse_chunks(data)
    with pytest.raises(NvcFormatError, match=r"^chunk 'KIDX' at byte 12: chunk out of order: expected 'META' first$"):
        read_all(build(head, chunks[1:]))
    with pytest.raises(NvcFormatError, match=r"chunk 'TENS' at byte \d+: chunk out of order: expected 'KSEG' #2 of the 3 the index lists"):
        read_all(build(head, chunks[:4] + chunks[5:]))
    with pytest.raises(NvcFormatError, match=r"^chunk 'KSEG' at byte \d+: chunk out of order: expected 'KIDX' after 'META'$"):
        read_all(build(head, chunks[:1] + chunks[2:]))


def test_too_many_chunks_are_refused(sample, monkeypatch):
    import nvcodec.bitstream.chunks as chunks_mod

    _, data = sample
    monkeypatch.setattr(chunks_mod, "MAX_CHUNKS", 4)
    with pytest.raises(NvcFormatError, match=r"^byte \d+: more than 4 chunks$"):
        read_all(data)


def test_unknown_critical_chunk_is_refused(sample):
    _, data = sample
    head, chunks = parse_chunks(data)
    with pytest.raises(NvcFormatError, match=r"^chunk 'XTRA' at byte \d+: unknown critical chunk type \(written by a newer, incompatible encoder\?\)$"):
        read_all(build(head, chunks[:-1] + [(b"XTRA", b"??")] + chunks[-1:]))


def test_unknown_ancillary_chunk_is_skipped(sample):
    """Lower-case chunks anywhere before FEND are skipped; content is unchanged."""
    _, data = sample
    head, chunks = parse_chunks(data)
    extra = [(b"xtra", b"hello")]
    edited = build(head, extra + chunks[:3] + extra + chunks[3:-1] + extra + chunks[-1:])
    assert read_all(edited) == read_all(data)
    with NvcReader(io.BytesIO(edited)) as r:
        assert [c[0] for c in r.chunks()].count("xtra") == 3
        with NvcReader(io.BytesIO(data)) as plain:
            assert r.byte_breakdown()["container"] == plain.byte_breakdown()["container"] + 3 * (16 + 5)


def test_ancillary_chunk_crc_is_checked_by_verify(sample):
    _, data = sample
    head, chunks = parse_chunks(data)
    edited = bytearray(build(head, [(b"xtra", b"hello")] + chunks))
    edited[12 + 12] ^= 1
    with NvcReader(io.BytesIO(bytes(edited))) as r:
        with pytest.raises(NvcFormatError, match=r"^chunk 'xtra' at byte 12: CRC mismatch"):
            r.verify()


def test_bad_chunk_type_bytes_are_refused(sample):
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^byte 12: chunk type b'ME1A' is not 4 ASCII letters$"):
        read_all(data[:14] + b"1" + data[15:])


def test_wrong_major_version_is_refused(sample):
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^byte 8: format version 2.0 is not supported \(this reader reads major version 1\)$"):
        read_all(data[:8] + struct.pack("<HH", 2, 0) + data[12:])
    with pytest.raises(NvcFormatError, match=r"format version 0.7 is not supported"):
        read_all(data[:8] + struct.pack("<HH", 0, 7) + data[12:])


def test_newer_minor_version_is_read(sample):
    _, data = sample
    newer = data[:8] + struct.pack("<HH", 1, 9) + data[12:]
    assert read_all(newer) == read_all(data)
    with NvcReader(io.BytesIO(newer)) as r:
        assert r.version == (1, 9)


def test_bad_signature_is_refused_with_a_hint(sample):
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^byte 0: not an .nvc file: signature .* \(the file looks damaged by a text-mode transfer"):
        read_all(data.replace(b"\r\n", b"\n", 1))
    with pytest.raises(NvcFormatError, match=r"^byte 0: not an .nvc file: signature 89504e470d0a1a0a != 8b4e56430d0a1a0a$"):
        read_all(b"\x89PNG\r\n\x1a\n" + data[8:])
    with pytest.raises(NvcFormatError, match=r"file is 0 bytes, too short"):
        read_all(b"")


def test_trailing_data_and_fend_payload_are_refused(sample):
    _, data = sample
    with pytest.raises(NvcFormatError, match=r"^chunk 'FEND' at byte \d+: 3 bytes of trailing data after the end chunk$"):
        read_all(data + b"abc")
    head, chunks = parse_chunks(data)
    with pytest.raises(NvcFormatError, match=r"^chunk 'FEND' at byte \d+: end chunk has a 1-byte payload, expected 0$"):
        read_all(build(head, chunks[:-1] + [(b"FEND", b"x")]))


def test_reader_api_refuses_bad_calls(sample):
    path, _ = sample
    with NvcReader(path) as r:
        with pytest.raises(ValueError, match=r"video must be an int 0..1, got 2"):
            r.segments(2)
        with pytest.raises(ValueError, match=r"video 0 has segments 0..1, got 2"):
            r.read_segment(0, 2)


def test_reader_closes_file_when_open_fails(tmp_path):
    path = tmp_path / "bad.nvc"
    path.write_bytes(b"garbage")
    with pytest.raises(NvcFormatError):
        NvcReader(path)
    os.remove(path)  # would fail on Windows if the handle leaked; on POSIX at least exercises the path


def test_video_record_round_trips_and_drives_the_schema():
    """VideoRecord.to_json / from_json are inverse; the writer's schema check is the record's own."""
    from nvcodec.bitstream import VideoRecord

    md = make_metadata()
    records = [VideoRecord.from_json(v, f"metadata.videos[{i}]") for i, v in enumerate(md["videos"])]
    assert [r.to_json() for r in records] == md["videos"]
    assert list(records[0].to_json()) == list(md["videos"][0])          # the key order the writer uses
    assert records[0].fps == Fraction(30000, 1001) and records[0].n_pixels == 10 * 32 * 24
    with pytest.raises(MetadataError, match=r"^video\.height: 0 is outside 1\.\.16384$"):
        VideoRecord("a.mp4", 64, 48, 32, 0, 25, 1, 10).to_json()
    bad = make_metadata()
    bad["videos"][1]["fps_den"] = "1"
    with pytest.raises(ValueError, match=r"metadata\.videos\[1\]\.fps_den: must be an integer, got str"):
        write_nvc(Path("unused.nvc"), bad, make_segments(), [])
