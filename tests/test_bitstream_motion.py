"""Coded motion ('MOTN' payload, FORMAT.md section 14): exact round trips, prediction, and refusal of bad bytes."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from nvcodec.bitstream import KeyframeSegment, NvcFormatError, NvcReader, motion_chunk_n_bytes, write_nvc
from nvcodec.bitstream.motion import (
    INTERP_BILINEAR,
    INTERP_NEAREST,
    MAX_ABS_Q,
    PRED_NAMES,
    PRED_NONE,
    PRED_SPACE,
    PRED_TIME,
    MotionReader,
    VideoMotion,
    clip_inbetween_counts,
    encode_clip,
    motion_grid,
    predict,
    read_motion,
    unpredict,
    write_motion,
)
from nvcodec.bitstream.chunks import PayloadReader
from nvcodec.corpus import clip_layout

HEAD_N_BYTES = 16  # video u32, grid u16, step u8, interp u8, rows u16, cols u16, n_clips u32
ENTRY_N_BYTES = 6


def random_motion(rng, height, width, n_frames, interval, grid=None, spread=None) -> VideoMotion:
    grid = grid or int(rng.choice([4, 8, 16, 32, 64]))
    rows, cols = motion_grid(height, width, grid)
    spread = spread if spread is not None else int(rng.choice([0, 1, 3, 20, 300]))
    clips = tuple(rng.integers(-spread, spread + 1, size=(n, 2, 2, rows, cols)).astype(np.int32)
                  for n in clip_inbetween_counts(n_frames, interval))
    return VideoMotion(grid, int(rng.integers(1, 17)), int(rng.choice([INTERP_NEAREST, INTERP_BILINEAR])),
                       rows, cols, clips)


def test_inbetween_counts_match_the_clip_layout():
    """clip_inbetween_counts is the frames strictly between each clip's keyframes of nvcodec.corpus.clip_layout."""
    for n_frames in (1, 2, 3, 8, 9, 10, 16, 17, 30):
        for interval in (1, 2, 8):
            first, start_kf, end_kf, *_ = clip_layout(n_frames, interval)
            end_frame = np.minimum(first + interval, n_frames - 1)
            assert clip_inbetween_counts(n_frames, interval) == np.maximum(end_frame - first - 1, 0).tolist()


def test_round_trip_is_exact_over_many_seeded_fields():
    """read_motion(write_motion(m)) == m for random grids, steps, spreads and video lengths (incl. 1 frame)."""
    rng = np.random.default_rng(13)
    for _ in range(40):
        height, width = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        n_frames, interval = int(rng.integers(1, 30)), int(rng.choice([1, 2, 4, 8]))
        m = random_motion(rng, height, width, n_frames, interval)
        video = int(rng.integers(0, 3))
        geometry = [(height, width, n_frames)] * 3
        assert read_motion(write_motion(video, m), geometry, interval) == (video, m)
    wide = VideoMotion(16, 1, INTERP_NEAREST, 1, 2, (np.array([MAX_ABS_Q, -MAX_ABS_Q] * 28, np.int32).reshape(7, 2, 2, 1, 2), np.zeros((0, 2, 2, 1, 2), np.int32)))
    assert read_motion(write_motion(0, wide), [(9, 17, 9)], 8) == (0, wide)


def test_empty_and_one_element_fields_round_trip():
    """A one-frame video (no in-between frame), a 2-frame clip, and a 1x1-cell field of one frame."""
    for n_frames, interval, height, width in ((1, 8, 5, 5), (2, 8, 3, 3), (3, 8, 3, 3), (3, 2, 4, 4)):
        m = random_motion(np.random.default_rng(n_frames), height, width, n_frames, interval, grid=8, spread=5)
        assert read_motion(write_motion(0, m), [(height, width, n_frames)], interval)[1] == m
    m = VideoMotion(8, 4, INTERP_BILINEAR, 1, 1, (np.array([[[[[3]], [[-2]]], [[[0]], [[7]]]]], np.int32),))
    assert m.clips[0].size == 4
    assert read_motion(write_motion(0, m), [(8, 8, 3)], 8)[1] == m


def test_every_prediction_inverts_exactly():
    """unpredict(predict(q)) == q for every prediction mode, including at the |q| bound."""
    rng = np.random.default_rng(1)
    for shape in ((0, 2, 2, 3, 4), (1, 2, 2, 1, 1), (5, 2, 2, 3, 7)):
        q = rng.integers(-MAX_ABS_Q, MAX_ABS_Q + 1, size=shape)
        for pred in PRED_NAMES:
            res = predict(q, pred)
            assert res.size == 0 or np.abs(res).max() < 1 << 15  # fits the 16-bit coder
            assert np.array_equal(unpredict(res, pred), q)


def test_smooth_motion_codes_smaller_with_prediction():
    """Motion that grows linearly in time and is uniform in space codes far smaller predicted than raw."""
    t = np.arange(1, 8)[:, None, None, None, None]
    q = np.broadcast_to(t * np.array([1, 2])[None, None, :, None, None], (7, 2, 2, 4, 5)).astype(np.int32)
    sizes = {PRED_NAMES[p]: len(encode_clip(q, (p,))[2]) for p in PRED_NAMES}
    pred, _, coded = encode_clip(q)
    assert pred != PRED_NONE and len(coded) == min(sizes.values()) < sizes["none"] / 2


def test_one_clip_decodes_without_the_others():
    """MotionReader.clip(c) reads clip c's bytes only: corrupting another clip's words does not affect it."""
    rng = np.random.default_rng(5)
    m = random_motion(rng, 64, 64, 25, 8, grid=16, spread=3)
    payload = bytearray(write_motion(0, m))
    table_end = HEAD_N_BYTES + ENTRY_N_BYTES * len(m.clips)
    payload[table_end + 2] ^= 0xFF  # inside clip 0's coded bytes
    reader = MotionReader(PayloadReader(bytes(payload), "MOTN", 100), [(64, 64, 25)], 8)
    assert np.array_equal(reader.clip(2), m.clips[2])
    with pytest.raises(NvcFormatError, match=r"chunk 'MOTN' at byte 100: video 0 clip 0: motion"):
        reader.clip(0)


def test_writer_refuses_bad_calls():
    """Bad calls raise ValueError, not NvcFormatError."""
    with pytest.raises(ValueError, match="grid must be an int 4..1024"):
        VideoMotion(2, 4, INTERP_BILINEAR, 1, 1, ())
    with pytest.raises(ValueError, match=r"\|q\| exceeds"):
        VideoMotion(8, 4, INTERP_BILINEAR, 1, 1, (np.full((1, 2, 2, 1, 1), MAX_ABS_Q + 1),))
    with pytest.raises(ValueError, match=r"expected integers \(n, 2, 2, 1, 1\)"):
        VideoMotion(8, 4, INTERP_BILINEAR, 1, 1, (np.zeros((1, 2, 2, 1, 2), np.int32),))
    with pytest.raises(ValueError, match="video must be an int"):
        write_motion(-1, VideoMotion(8, 4, INTERP_BILINEAR, 1, 1, ()))


# --- truncate and corrupt ---------------------------------------------------------------------

GEOMETRY = [(40, 48, 17)]  # height, width, n_frames: 3 clips (7, 7, 0 in-between frames) at K = 8


def sample_payload() -> tuple[VideoMotion, bytes]:
    m = random_motion(np.random.default_rng(2), 40, 48, 17, 8, grid=16, spread=4)
    return m, write_motion(0, m)


def patched(payload: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(payload)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_every_truncation_is_refused():
    """Cutting the payload at any byte gives one NvcFormatError naming the chunk, never another exception."""
    _, payload = sample_payload()
    for n in range(len(payload)):
        with pytest.raises(NvcFormatError, match=r"^chunk 'MOTN' at byte 7: "):
            read_motion(payload[:n], GEOMETRY, 8, offset_bytes=7)


def test_every_single_byte_flip_is_refused_or_harmless():
    """Flipping any byte either raises NvcFormatError or decodes valid motion (the chunk CRC catches the rest)."""
    m, payload = sample_payload()
    rng = np.random.default_rng(9)
    for i in range(len(payload)):
        bad = bytearray(payload)
        bad[i] ^= int(rng.integers(1, 256))
        try:
            _, got = read_motion(bytes(bad), GEOMETRY, 8)
        except NvcFormatError as e:
            assert str(e).startswith("chunk 'MOTN' at byte 0: ")
        else:
            assert got.rows == m.rows and len(got.clips) == len(m.clips)


@pytest.mark.parametrize("offset, fmt, value, message", [
    (0, "<I", 5, r"names video 5, but the file has 1 videos"),
    (4, "<H", 3, r"motion grid 3 is not 4..1024"),
    (4, "<H", 65535, r"motion grid 65535 is not 4..1024"),
    (6, "<B", 0, r"motion step 0/4 pixel is not 1..16"),
    (7, "<B", 9, r"unknown motion interpolation 9"),
    (8, "<H", 65535, r"motion has 65535x3 cells, but 16-pixel cells over 48x40 make 3x3"),
    (12, "<I", 0xFFFFFFFF, r"motion lists 4294967295 clips, the video has 3"),
    (16, "<B", 4, r"clip 0: unknown motion prediction 4"),
    (17, "<B", 17, r"clip 0: n_bits 17 is not 2..16"),
    (18, "<I", 1 << 31, r"the clips' coded bytes sum to"),
    (30, "<I", 1, r"clip 2: a clip without in-between frames must be"),
])
def test_header_fields_are_checked_before_decoding(offset, fmt, value, message):
    """Each header/table field out of range gives its own precise message."""
    _, payload = sample_payload()
    with pytest.raises(NvcFormatError, match=message):
        read_motion(patched(payload, offset, fmt, value), GEOMETRY, 8)


def test_huge_geometry_is_refused_before_allocating():
    """A video whose motion would need more than MAX_VALUES integers is refused from the header alone."""
    payload = write_motion(0, VideoMotion(4, 4, INTERP_NEAREST, 4096, 4096, ()))
    payload = patched(payload, 12, "<I", 2)
    with pytest.raises(NvcFormatError, match=r"motion integers exceed the limit"):
        read_motion(payload, [(16384, 16384, 16)], 8)


def test_vectors_beyond_the_bound_are_refused():
    """Residuals that restore to |q| > MAX_ABS_Q (possible only in a forged file) are refused."""
    rows, cols = motion_grid(8, 8, 8)
    q = np.full((6, 2, 2, rows, cols), MAX_ABS_Q, np.int64)
    from nvcodec.bitstream.entropy import encode_ints

    res = predict(q, PRED_NONE)
    res[:] = MAX_ABS_Q  # PRED_TIME cumulates these to 6 * MAX_ABS_Q
    coded = encode_ints(res, 15)
    head = struct.pack("<IHBBHHI", 0, 8, 4, INTERP_NEAREST, rows, cols, 1)
    payload = head + struct.pack("<BBI", PRED_TIME, 15, len(coded)) + coded
    with pytest.raises(NvcFormatError, match=r"clip 0: a motion vector exceeds"):
        read_motion(payload, [(8, 8, 8)], 8)
    # the same residuals with PRED_SPACE but one row/col cumulate to MAX_ABS_Q only: accepted
    payload = head + struct.pack("<BBI", PRED_SPACE, 15, len(coded)) + coded
    assert read_motion(payload, [(8, 8, 8)], 8)[1].clips[0].max() == MAX_ABS_Q


# --- in the container (FORMAT.md 14.1) ---------------------------------------------------------

CONFORMANCE = Path(__file__).parent / "data" / "conformance" / "tiny.nvc"


def conformance_inputs():
    """The committed conformance file's metadata, segments and tensors, read back."""
    with NvcReader(CONFORMANCE) as r:
        segments = [KeyframeSegment(v, f, n, r.read_segment(v, i))
                    for v in range(len(r.metadata["videos"])) for i, (f, n) in enumerate(r.segments(v))]
        return r.metadata, segments, r.read_tensors()


def conformance_motion(metadata, seed: int = 3) -> list[VideoMotion]:
    rng = np.random.default_rng(seed)
    return [random_motion(rng, v["height"], v["width"], v["n_frames"], metadata["keyframe_interval"])
            for v in metadata["videos"]]


def test_file_without_motion_is_version_1_0_byte_for_byte(tmp_path):
    """Rewriting the conformance file's content without motion gives its exact bytes (version 1.0)."""
    metadata, segments, tensors = conformance_inputs()
    write_nvc(tmp_path / "same.nvc", metadata, segments, tensors)
    write_nvc(tmp_path / "none.nvc", metadata, segments, tensors, motion=None)
    assert (tmp_path / "same.nvc").read_bytes() == (tmp_path / "none.nvc").read_bytes() == CONFORMANCE.read_bytes()
    with NvcReader(CONFORMANCE) as r:
        assert r.version == (1, 0) and not r.has_motion and r.motion(1) is None
        assert r.byte_breakdown()["motion"] == 0


def test_motion_round_trips_through_the_container_as_version_1_1(tmp_path):
    """write_nvc(motion=...) -> one MOTN per video after the KSEGs, header 1.1; motion(v) reads it back exactly."""
    metadata, segments, tensors = conformance_inputs()
    motion = conformance_motion(metadata)
    n_bytes = write_nvc(tmp_path / "m.nvc", metadata, segments, tensors, motion=motion)
    data = (tmp_path / "m.nvc").read_bytes()
    assert data[8:12] == struct.pack("<HH", 1, 1) and n_bytes == len(data)
    with NvcReader(tmp_path / "m.nvc") as r:
        r.verify()
        types = [t for t, *_ in r.chunks()]
        assert types == ["META", "KIDX"] + ["KSEG"] * len(segments) + ["MOTN"] * 2 + ["TENS"] * len(tensors) + ["FEND"]
        assert r.version == (1, 1) and r.has_motion
        assert [r.motion(v).read_all() for v in range(2)] == motion
        assert r.read_tensors() == tensors and r.metadata == metadata
        motn = [n for t, _, n in r.chunks() if t == "MOTN"]
        assert motn == [motion_chunk_n_bytes(v, m) for v, m in enumerate(motion)]
        assert r.byte_breakdown()["motion"] == sum(motn) - 16 * len(motn)


def test_one_video_motion_reads_only_its_chunk(tmp_path):
    """A damaged MOTN of video 0 does not stop video 1's motion being read; video 0's names the CRC."""
    metadata, segments, _ = conformance_inputs()
    motion = conformance_motion(metadata, seed=4)
    write_nvc(tmp_path / "m.nvc", metadata, segments, [], motion=motion)
    data = bytearray((tmp_path / "m.nvc").read_bytes())
    with NvcReader(tmp_path / "m.nvc") as r:
        offset = next(o for t, o, _ in r.chunks() if t == "MOTN")
    data[offset + 12 + 20] ^= 0x40  # inside video 0's payload
    with NvcReader(io.BytesIO(bytes(data))) as r:
        assert r.motion(1).read_all() == motion[1]
        with pytest.raises(NvcFormatError, match=rf"^chunk 'MOTN' at byte {offset}: CRC mismatch"):
            r.motion(0)


@pytest.mark.parametrize("edit, exc, match", [
    (lambda ms: ms[:1], ValueError, r"motion must hold one VideoMotion per video: 1 for 2 videos"),
    (lambda ms: [ms[0], "motion"], TypeError, r"motion of video 1 must be a VideoMotion, got str"),
    (lambda ms: [ms[0], VideoMotion(16, 4, INTERP_NEAREST, 3, 3, ())], ValueError,
     r"motion of video 1 has in-between frames \[\] per clip, its 9 frames at interval 8 make \[7, 0\]"),
    (lambda ms: [VideoMotion(16, 4, INTERP_NEAREST, 2, 3, ()), ms[1]], ValueError,
     r"motion of video 0 has 2x3 cells, but 16-pixel cells over 48x40 make 3x3"),
])
def test_writer_refuses_motion_that_does_not_fit_the_videos(tmp_path, edit, exc, match):
    """Motion of the wrong count, type or geometry is a bad call (ValueError / TypeError), and no file is written."""
    metadata, segments, _ = conformance_inputs()
    with pytest.raises(exc, match=match):
        write_nvc(tmp_path / "bad.nvc", metadata, segments, [], motion=edit(conformance_motion(metadata)))
    assert not list(tmp_path.iterdir())
