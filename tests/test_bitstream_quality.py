"""The ancillary ``qual`` chunk: appended after the encoder's measuring decode, read back by ``info``."""
from __future__ import annotations

import json

import pytest

from nvcodec.bitstream import NvcFormatError, NvcReader
from nvcodec.bitstream.chunks import QUAL
from nvcodec.bitstream.container import add_chunk_before_end
from nvcodec.bitstream.quality import read_quality, write_quality

from test_bitstream_container import build, parse_chunks, read_all, write_sample

QUALITY = {"psnr": 35.18123, "blend_psnr": 32.79, "keyframe_psnr": 33.5, "n_frames": 96, "n_keyframes": 15}


def test_quality_chunk_round_trips_and_leaves_the_rest_unchanged(tmp_path):
    """add_chunk_before_end inserts the chunk before FEND; everything else reads back identically."""
    path = tmp_path / "q.nvc"
    before = write_sample(path)
    n_bytes = add_chunk_before_end(path, QUAL, write_quality(QUALITY))
    after = path.read_bytes()
    assert n_bytes == len(after) == len(before) + 16 + len(write_quality(QUALITY))
    assert read_all(after) == read_all(before)
    with NvcReader(path) as reader:
        assert [t for t, _, _ in reader.chunks()][-2:] == [QUAL, "FEND"]
        offset, payload = reader.ancillary(QUAL)
        assert read_quality(payload, QUAL, offset) == {**QUALITY, "psnr": 35.1812}
        assert reader.byte_breakdown()["container"] == sum(reader.byte_breakdown().values()) - sum(
            v for k, v in reader.byte_breakdown().items() if k != "container")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.nvc"]          # no temporary left


def test_file_without_quality_chunk_has_none(tmp_path):
    """Files written before the chunk existed stay valid: ancillary() answers None."""
    path = tmp_path / "old.nvc"
    write_sample(path)
    with NvcReader(path) as reader:
        assert reader.ancillary(QUAL) is None


def test_adding_refuses_critical_types_and_a_second_quality_chunk(tmp_path):
    path = tmp_path / "q.nvc"
    write_sample(path)
    with pytest.raises(ValueError, match="critical"):
        add_chunk_before_end(path, "QUAL", b"{}")
    add_chunk_before_end(path, QUAL, write_quality(QUALITY))
    with pytest.raises(ValueError, match="already holds a 'qual' chunk"):
        add_chunk_before_end(path, QUAL, write_quality(QUALITY))


def test_optional_motion_floor_round_trips_and_may_be_absent():
    """motion_psnr is read when present; a record without it (files before it) reads as before."""
    with_motion = {**QUALITY, "motion_psnr": 34.00004}
    assert read_quality(write_quality(with_motion), QUAL, 0) == {**QUALITY, "psnr": 35.1812, "motion_psnr": 34.0}
    assert "motion_psnr" not in read_quality(write_quality(QUALITY), QUAL, 0)


@pytest.mark.parametrize("edit, match", [
    (lambda q: {k: v for k, v in q.items() if k != "psnr"}, "expected the keys"),
    (lambda q: {**q, "sharpness": 1.0}, "expected the keys"),
    (lambda q: {**q, "motion_psnr": float("nan")}, "quality.motion_psnr: expected a finite number"),
    (lambda q: {**q, "n_frames": -1}, "quality.n_frames"),
    (lambda q: {**q, "psnr": float("inf")}, "quality.psnr: expected a finite number"),
])
def test_writer_refuses_bad_quality(edit, match):
    with pytest.raises(ValueError, match=match):
        write_quality(edit(QUALITY))


@pytest.mark.parametrize("payload, match", [
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (json.dumps({**QUALITY, "psnr": "high"}).encode(), "field 'psnr': expected a finite number"),
    (json.dumps({**QUALITY, "psnr": None}).encode(), "field 'psnr'"),
    (b'{"psnr": NaN, "blend_psnr": 1, "keyframe_psnr": 1, "n_frames": 1, "n_keyframes": 1}', "field 'psnr'"),
    (json.dumps({**QUALITY, "n_frames": 9.5}).encode(), "field 'n_frames': expected a non-negative int"),
    (json.dumps({k: v for k, v in QUALITY.items() if k != "n_keyframes"}).encode(), "field 'n_keyframes' missing"),
    (b" " * (1 << 17), "more than the 65536"),
    (json.dumps({**QUALITY, "motion_psnr": "low"}).encode(), "field 'motion_psnr': expected a finite number"),
])
def test_hostile_quality_chunk_raises_format_error_naming_chunk_and_offset(tmp_path, payload, match):
    """A qual chunk with a valid CRC but bad content: NvcFormatError with chunk and byte offset."""
    path = tmp_path / "q.nvc"
    head, chunks = parse_chunks(write_sample(path))
    data = build(head, chunks[:-1] + [(b"qual", payload)] + chunks[-1:])
    offset = len(data) - 16 - (16 + len(payload))
    path.write_bytes(data)
    with NvcReader(path) as reader:
        found_offset, found = reader.ancillary(QUAL)
        assert found_offset == offset
        with pytest.raises(NvcFormatError, match=rf"chunk 'qual' at byte {offset}: .*{match}"):
            read_quality(found, QUAL, found_offset)
