"""Keyframe positions: the clip rule (KeyframeLayout), cut placement, and the 'KPOS' chunk (FORMAT.md 13, 15)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from nvcodec.bitstream import KeyframeLayout, KeyframeSegment, NvcFormatError, NvcReader, regular_keyframes, write_nvc
from nvcodec.bitstream.entropy import encode_ints
from nvcodec.bitstream.motion import VideoMotion, clip_inbetween_counts
from nvcodec.bitstream.positions import GAP_N_BITS, MAX_LISTED_KEYFRAMES
from nvcodec.corpus import clip_layout, keyframe_positions
from tests.nvc_craft import chunk, split_chunks

K = 8


def _explicit(n_frames: int, interval: int, positions) -> KeyframeLayout:
    """A layout that takes the listed-positions path even for the regular list (the writer would
    canonicalise that to None), so the two branches of the one rule can be compared."""
    lay = KeyframeLayout(n_frames, interval)
    object.__setattr__(lay, "positions", np.asarray(positions, np.int64))
    return lay


def _check_rule(lay: KeyframeLayout) -> None:
    """Section 13's invariants: clips tile the frames, hold 1..K frames, clip j starts at keyframe j,
    and every in-between frame lies strictly between its clip's two keyframes."""
    first, last, start_kf, end_kf, end_frame = lay.clips()
    pos = lay.keyframe_frames()
    assert first[0] == 0 and last[-1] == lay.n_frames - 1
    assert np.array_equal(first[1:], last[:-1] + 1)
    assert ((last - first + 1 >= 1) & (last - first + 1 <= lay.interval)).all()
    assert np.array_equal(start_kf, np.arange(lay.n_clips)) and np.array_equal(pos[start_kf], first)
    assert np.array_equal(pos[end_kf], end_frame) and (end_kf - start_kf <= 1).all()
    assert sum(lay.inbetween_counts()) == lay.n_inbetween == lay.n_frames - len(pos)
    for f in range(lay.n_frames):
        c = lay.clip_of_frame(f)
        assert first[c] <= f <= last[c]


@pytest.mark.parametrize("interval", [1, 2, 3, 8])
def test_regular_clips_are_the_listed_rule_applied_to_the_regular_list(interval):
    """The arithmetic regular layout equals section 13's rule run on the list 0, K, 2K, ..., L-1."""
    for n_frames in range(1, 40):
        regular = KeyframeLayout(n_frames, interval)
        explicit = _explicit(n_frames, interval, regular_keyframes(n_frames, interval))
        assert regular.n_clips == explicit.n_clips == -(-n_frames // interval)
        for a, b in zip(regular.clips(), explicit.clips()):
            assert np.array_equal(a, b), (n_frames, interval)
        _check_rule(regular)


def test_random_lists_follow_the_clip_rule():
    """Any valid list (gaps 1..K, 0 first, L-1 last) gives clips that tile the video."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        interval = int(rng.integers(1, 10))
        gaps = rng.integers(1, interval + 1, size=int(rng.integers(0, 12)))
        pos = np.concatenate([[0], np.cumsum(gaps)])
        _check_rule(KeyframeLayout(int(pos[-1]) + 1, interval, pos))


def test_a_cut_makes_its_frame_and_the_frame_before_keyframes():
    """Each shot gets the regular rule: a cut at 5 in 20 frames gives 0, 4 | 5, 13, 19."""
    assert keyframe_positions(20, K, [5]).tolist() == [0, 4, 5, 13, 19]
    assert keyframe_positions(20, K).tolist() == keyframe_positions(20, K, [0]).tolist() == [0, 8, 16, 19]
    first, start_kf, end_kf, frame, mask, _, t_local = clip_layout(20, K, keyframes=keyframe_positions(20, K, [5]))
    assert first.tolist() == [0, 4, 5, 13] and end_kf.tolist() == [1, 2, 3, 4]
    assert mask.sum(axis=1).tolist() == [4, 1, 8, 7]          # 0..3 | 4 | 5..12 | 13..19
    assert frame[0].tolist() == [0, 1, 2, 3, 3, 3, 3, 3]      # a short clip repeats its last frame
    assert t_local[0, :4].tolist() == [0, 0.25, 0.5, 0.75]    # towards frame 4, its own shot's last frame


def test_edge_case_cuts():
    """All cuts, a cut on the first and on the last frame, a one-frame video."""
    assert keyframe_positions(6, K, range(1, 6)).tolist() == [0, 1, 2, 3, 4, 5]
    assert clip_inbetween_counts(6, K, keyframe_positions(6, K, range(1, 6))) == [0, 0, 0, 0, 0]
    assert keyframe_positions(12, K, [1]).tolist() == [0, 1, 9, 11]
    assert keyframe_positions(12, K, [11]).tolist() == [0, 8, 10, 11]
    assert keyframe_positions(1, K, [0]).tolist() == [0]
    for pos, n in [(keyframe_positions(12, K, [1]), 12), (keyframe_positions(12, K, [11]), 12),
                   (keyframe_positions(40, 3, range(0, 40, 7)), 40)]:
        _check_rule(KeyframeLayout(n, 3 if n == 40 else K, pos))
    with pytest.raises(ValueError, match=r"cuts must be frames 0..11, got 1..12"):
        keyframe_positions(12, K, [1, 12])


def test_build_clipset_follows_the_listed_keyframes():
    """The fit's clips: per tile, clips start at the listed keyframes and index that video's keyframe tiles."""
    from nvcodec.corpus import build_clipset

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (20, 8, 16, 3), dtype=np.uint8)          # two 8x8 tiles
    pos = keyframe_positions(20, K, [5])                                     # 0, 4 | 5, 13, 19
    other = rng.integers(0, 256, (9, 8, 16, 3), dtype=np.uint8)              # a regular video after it
    clips = build_clipset([(frames, frames[pos], 20), (other, other[[0, 8]], 9)], K, 8, 8, [pos, None])
    assert clips.first_frame.tolist() == [0, 0, 4, 4, 5, 5, 13, 13, 0, 0, 8, 8]
    assert clips.start_kf.tolist()[:8] == [0, 1, 2, 3, 4, 5, 6, 7] and clips.end_kf.tolist()[:8] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert clips.start_kf.tolist()[8:] == [10, 11, 12, 13]                   # video 1's keyframes follow video 0's 5
    assert clips.mask.sum(axis=1).tolist() == [4, 4, 1, 1, 8, 8, 7, 7, 8, 8, 1, 1]
    assert np.array_equal(clips.keyframes[clips.start_kf[2]], frames[4, :, :8].transpose(2, 0, 1))
    with pytest.raises(ValueError, match=r"video 0: expected 5 keyframes"):
        build_clipset([(frames, frames[[0, 8, 16, 19]], 20)], K, 8, 8, [pos])


@pytest.mark.parametrize("positions, message", [
    ([1, 5, 9], r"the first keyframe is frame 1, not 0"),
    ([0, 5], r"the last keyframe is frame 5, not the last frame 9"),
    ([0, 5, 5, 9], r"keyframes 1 and 2 are frames 5 and 5: consecutive keyframes must rise by 1..8 frames"),
    ([0, 9], r"keyframes 0 and 1 are frames 0 and 9: consecutive keyframes must rise by 1..8 frames"),
    ([], r"non-empty 1-D list of integers"),
])
def test_a_bad_list_is_refused_by_the_writer_side(positions, message):
    """KeyframeLayout (what write_nvc builds) refuses lists that break section 5's rule."""
    with pytest.raises(ValueError, match=message):
        KeyframeLayout(10, K, np.asarray(positions, np.int64))


# --- the file -----------------------------------------------------------------------------

VIDEO_FRAMES = (20, 1, 9)          # video 0 has a cut at 5; videos 1 and 2 are regular
LISTED = keyframe_positions(20, K, [5])


def _metadata() -> dict:
    videos = [{"name": f"v{i}", "source_width": 8, "source_height": 8, "width": 8, "height": 8,
               "fps_num": 25, "fps_den": 1, "n_frames": n} for i, n in enumerate(VIDEO_FRAMES)]
    return {"encoder": "test", "videos": videos, "keyframe_interval": K, "tile": {"width": 8, "height": 8},
            "keyframe_codec": {"codec": "raw", "mode": "intra", "params": {}}, "model": {}}


def _write(path, keyframes, motion=None):
    md = _metadata()
    layouts = [KeyframeLayout(n, K, None if keyframes is None else keyframes[i]) for i, n in enumerate(VIDEO_FRAMES)]
    segments = [KeyframeSegment(v, 0, lay.n_keyframes, bytes([v]) * 3) for v, lay in enumerate(layouts)]
    if motion:
        motion = [VideoMotion(8, 4, 0, 1, 1, tuple(np.zeros((n, 2, 2, 1, 1), np.int32) for n in lay.inbetween_counts()))
                  for lay in layouts]
    return write_nvc(path, md, segments, [], motion=motion, keyframes=keyframes)


def test_listed_keyframes_round_trip_in_a_version_1_2_file(tmp_path):
    """A file with non-regular keyframes holds KPOS right after META, says 1.2, and reads back the lists."""
    path = tmp_path / "listed.nvc"
    _write(path, [LISTED, None, regular_keyframes(9, K)], motion=True)
    with NvcReader(path) as r:
        assert r.version == (1, 2)
        assert [t for t, _, _ in r.chunks()][:3] == ["META", "KPOS", "KIDX"]
        assert r.keyframe_layout(0).keyframe_frames().tolist() == LISTED.tolist()
        assert r.keyframe_layout(1).is_regular and r.keyframe_layout(2).is_regular
        assert [q.shape[0] for q in r.motion(0).read_all().clips] == [3, 0, 7, 5]
        r.verify()


def test_regular_keyframes_write_no_kpos_and_the_same_bytes(tmp_path):
    """Listing the regular keyframes changes nothing: no KPOS, version 1.0 (1.1 with motion), same bytes."""
    a, b = tmp_path / "a.nvc", tmp_path / "b.nvc"
    _write(a, None)
    _write(b, [regular_keyframes(n, K) for n in VIDEO_FRAMES])
    assert a.read_bytes() == b.read_bytes()
    with NvcReader(a) as r:
        assert r.version == (1, 0) and "KPOS" not in [t for t, _, _ in r.chunks()]
    _write(b, None, motion=True)
    with NvcReader(b) as r:
        assert r.version == (1, 1)


def test_segments_and_motion_must_follow_the_listed_keyframes(tmp_path):
    """The writer checks segments and motion against the listed layout, not the regular one."""
    md = _metadata()
    segments = [KeyframeSegment(0, 0, 4, b"x"), KeyframeSegment(1, 0, 1, b"y"), KeyframeSegment(2, 0, 2, b"z")]
    with pytest.raises(ValueError, match=r"video 0 keyframes 4..4 and any later videos have no segment|"
                                         r"segment 1 starts at video 1 keyframe 0, expected video 0 keyframe 4"):
        write_nvc(tmp_path / "x.nvc", md, segments, [], keyframes=[LISTED, None, None])


def _listed_file(tmp_path) -> bytes:
    path = tmp_path / "listed.nvc"
    _write(path, [LISTED, None, None])
    return path.read_bytes()


def _regular_segments(tmp_path) -> bytes:
    path = tmp_path / "regular.nvc"
    _write(path, None)
    return path.read_bytes()


def _with_kpos(data: bytes, payload: bytes, version: int = 2) -> bytes:
    """The file re-serialised with another KPOS payload (valid CRC) and minor version."""
    parts = [chunk(t, payload if t == b"KPOS" else p) for t, p in split_chunks(data)]
    return data[:8] + struct.pack("<HH", 1, version) + b"".join(parts)


def _kpos(data: bytes) -> bytes:
    return next(p for t, p in split_chunks(data) if t == b"KPOS")


def _payload(entries, coded) -> bytes:
    return struct.pack("<I", len(entries)) + b"".join(struct.pack("<II", *e) for e in entries) + b"".join(coded)


def _gaps(positions) -> bytes:
    return encode_ints(np.diff(np.asarray(positions)), GAP_N_BITS)


def _read(tmp_path, data: bytes):
    path = tmp_path / "hostile.nvc"
    path.write_bytes(data)
    with NvcReader(path) as r:
        r.verify()


@pytest.mark.parametrize("make, message", [
    (lambda: _payload([(5, len(_gaps(LISTED))), (0, 0)], [_gaps(LISTED)]),
     r"keyframe positions for 2 videos, the file has 3"),
    (lambda: struct.pack("<I", 3) + b"\0" * 10, r"payload ends inside the table of 3 videos"),
    (lambda: _payload([(2, 3), (0, 0), (0, 0)], [b"\0" * 3]),
     r"video 0: 2 keyframes listed, a 20-frame video at interval 8 has 4..20"),
    (lambda: _payload([(21, 3), (0, 0), (0, 0)], [b"\0" * 3]), r"video 0: 21 keyframes listed"),
    (lambda: _payload([(0xFFFFFFFF, 3), (0, 0), (0, 0)], [b"\0" * 3]), r"video 0: 4294967295 keyframes listed"),
    (lambda: _payload([(0, 0), (0, 4), (0, 0)], [b"\0" * 4]), r"video 1: a regular video .* has 4 coded bytes"),
    (lambda: _payload([(5, len(_gaps(LISTED)) + 1), (0, 0), (0, 0)], [_gaps(LISTED)]),
     r"the videos' coded bytes sum to \d+, the payload has \d+ left"),
    (lambda: _payload([(5, len(_gaps([0, 4, 5, 14, 19]))), (0, 0), (0, 0)], [_gaps([0, 4, 5, 14, 19])]),
     r"video 0: keyframes 2 and 3 are frames 5 and 14: consecutive keyframes must rise by 1..8 frames"),
    (lambda: _payload([(5, len(_gaps([0, 4, 5, 13, 18]))), (0, 0), (0, 0)], [_gaps([0, 4, 5, 13, 18])]),
     r"video 0: the last keyframe is frame 18, not the last frame 19"),
    (lambda: _payload([(5, len(_gaps([0, 4, 4, 12, 19]))), (0, 0), (0, 0)], [_gaps([0, 4, 4, 12, 19])]),
     r"video 0: keyframes 1 and 2 are frames 4 and 4"),
    (lambda: _payload([(5, 2), (0, 0), (0, 0)], [b"\x07\x00"]), r"video 0: keyframe gaps: "),
])
def test_a_hostile_positions_chunk_is_one_clean_format_error(tmp_path, make, message):
    """Each broken KPOS field (valid CRC) is refused with its own message naming chunk and offset."""
    data = _with_kpos(_listed_file(tmp_path), make())
    with pytest.raises(NvcFormatError, match=r"^chunk 'KPOS' at byte \d+: " + message):
        _read(tmp_path, data)


def test_kpos_needs_version_1_2_and_its_place(tmp_path):
    """KPOS in a 1.1 file, a second KPOS, or KPOS after KIDX are refused."""
    data = _listed_file(tmp_path)
    with pytest.raises(NvcFormatError, match=r"chunk 'KPOS' at byte \d+: keyframe positions in a version 1.1 file "
                                             r"\(they need version 1.2\)"):
        _read(tmp_path, _with_kpos(data, _kpos(data), version=1))
    parts = split_chunks(data)
    twice = parts[:2] + [parts[1]] + parts[2:]
    with pytest.raises(NvcFormatError, match=r"chunk 'KPOS' at byte \d+: duplicate chunk"):
        _read(tmp_path, data[:12] + b"".join(chunk(t, p) for t, p in twice))
    late = [parts[0], parts[2], parts[1]] + parts[3:]          # KIDX is then checked against the regular counts
    with pytest.raises(NvcFormatError, match=r"chunk 'KIDX' at byte \d+: segment 0: video 0 keyframes 0..4 are not "
                                             r"within its 4 keyframes"):
        _read(tmp_path, data[:12] + b"".join(chunk(t, p) for t, p in late))
    regular_file = _regular_segments(tmp_path)                 # counts agree: the order check speaks
    meta, kidx, *rest = split_chunks(regular_file)
    late = [meta, kidx, (b"KPOS", _payload([(0, 0)] * 3, []))] + rest
    with pytest.raises(NvcFormatError, match=r"chunk 'KPOS' at byte \d+: chunk out of order: expected 'KSEG' #0"):
        _read(tmp_path, regular_file[:8] + struct.pack("<HH", 1, 2) + b"".join(chunk(t, p) for t, p in late))


def test_every_byte_flip_of_kpos_reads_or_is_a_format_error(tmp_path):
    """Mutation sweep: any single-byte change of the KPOS payload (CRC recomputed) either reads as
    a valid layout or raises NvcFormatError, never another exception."""
    data = _listed_file(tmp_path)
    payload = _kpos(data)
    refused = 0
    for i in range(len(payload)):
        for flip in (0x01, 0x80, 0xFF):
            mutated = bytearray(payload)
            mutated[i] ^= flip
            try:
                _read(tmp_path, _with_kpos(data, bytes(mutated)))
            except NvcFormatError:
                refused += 1
    assert refused >= 2 * len(payload)


def test_a_list_longer_than_the_limit_is_refused_before_decoding(tmp_path):
    """A KPOS that lists more than MAX_LISTED_KEYFRAMES keyframes is refused from its table alone."""
    from nvcodec.bitstream.metadata import write_meta

    data = _listed_file(tmp_path)
    md = _metadata()
    md["videos"][0]["n_frames"] = MAX_LISTED_KEYFRAMES + 10
    parts = [(t, write_meta(md) if t == b"META" else p) for t, p in split_chunks(data)]
    data = data[:12] + b"".join(chunk(t, p) for t, p in parts)
    hostile = _payload([(MAX_LISTED_KEYFRAMES + 1, 5), (0, 0), (0, 0)], [b"\0" * 5])
    with pytest.raises(NvcFormatError, match=rf"chunk 'KPOS' at byte \d+: more than {MAX_LISTED_KEYFRAMES} keyframes"):
        _read(tmp_path, _with_kpos(data, hostile))
