"""Corpus bookkeeping: scanning, keyframe positions, tiling and clips (nvcodec.corpus)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec import corpus
from nvcodec.media import MediaError, ffmpeg_exe


def make_video(path: Path, n_frames: int, width: int = 32, height: int = 24) -> Path:
    """A small synthetic H.264 mp4 (ffmpeg's testsrc2)."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={width}x{height}:rate=25", "-frames:v", str(n_frames),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


# ---------------------------------------------------------------- keyframe positions and clips

@given(st.integers(1, 100), st.integers(1, 16))
def test_keyframe_positions_follow_the_contract(n_frames, interval):
    """0, K, 2K, ... (< L) plus L-1 when (L-1) % K != 0; count as in FORMAT.md section 5."""
    pos = corpus.keyframe_positions(n_frames, interval)
    n_kf = len(range(0, n_frames, interval)) + (1 if (n_frames - 1) % interval else 0)
    assert pos.dtype == np.int64 and len(pos) == n_kf
    assert pos[0] == 0 and pos[-1] == n_frames - 1
    assert np.all(np.diff(pos) > 0) and np.all(np.diff(pos) <= interval)


def test_keyframe_positions_reject_bad_calls():
    """Non-positive lengths or intervals are a ValueError."""
    with pytest.raises(ValueError, match="n_frames >= 1"):
        corpus.keyframe_positions(0, 8)
    with pytest.raises(ValueError, match="interval >= 1"):
        corpus.keyframe_positions(5, 0)


@settings(max_examples=200)
@given(st.integers(1, 100), st.integers(1, 16))
def test_clip_layout_covers_every_frame_once_with_shared_keyframes(n_frames, interval):
    """ceil(L/K) clips; real slots are frames 0..L-1 once each; start cK, end min((c+1)K, L-1); times defined."""
    first, start_kf, end_kf, frame, mask, t_video, t_local = corpus.clip_layout(n_frames, interval)
    pos = corpus.keyframe_positions(n_frames, interval)
    n_clips = math.ceil(n_frames / interval)
    assert len(first) == n_clips and frame.shape == mask.shape == (n_clips, interval)
    assert sorted(frame[mask].tolist()) == list(range(n_frames))
    assert np.array_equal(pos[start_kf], first)
    assert np.array_equal(pos[end_kf], np.minimum(first + interval, n_frames - 1))
    assert np.all(end_kf[:-1] == start_kf[1:])                   # neighbours share a keyframe
    assert not mask[:-1].any() or mask[:-1].all()                # only the last clip is short
    assert t_video.dtype == t_local.dtype == np.float32
    assert np.all((t_video >= 0) & (t_video <= 1)) and np.all((t_local >= 0) & (t_local <= 1))
    if n_frames == 1:
        assert np.all(t_video == 0) and np.all(t_local == 0)
    else:
        np.testing.assert_allclose(t_video[mask], frame[mask] / (n_frames - 1), rtol=1e-6)


# ---------------------------------------------------------------- tiles

@settings(max_examples=100, deadline=None)
@given(st.integers(1, 100), st.integers(1, 70), st.integers(1, 70), st.integers(8, 32), st.integers(8, 32))
def test_pad_tile_untile_crop_is_identity(n, height, width, tile_h, tile_w):
    """merge_tiles(split_tiles(x)) == x for any frame size, tile size and length."""
    rng = np.random.default_rng(n * 7919 + height * 71 + width)
    frames = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    tiles = corpus.split_tiles(frames, tile_h, tile_w)
    rows, cols = math.ceil(height / tile_h), math.ceil(width / tile_w)
    assert tiles.shape == (n, rows * cols, 3, tile_h, tile_w)
    assert np.array_equal(corpus.merge_tiles(tiles, height, width), frames)


def test_split_tiles_pads_by_repeating_the_edge():
    """Padding copies the last row/column (edge mode), tiles are row-major."""
    frames = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(1, 3, 5, 3)
    tiles = corpus.split_tiles(frames, 2, 4)                      # 2x2 grid
    assert tiles.shape == (1, 4, 3, 2, 4)
    assert np.array_equal(tiles[0, 1, :, 0, 0], frames[0, 0, 4])  # top-right tile starts at column 4
    assert np.array_equal(tiles[0, 3, :, 1, 3], frames[0, 2, 4])  # bottom-right padding = corner pixel


def test_merge_tiles_rejects_a_wrong_tile_count():
    """A tile count that cannot cover the frame is a ValueError naming both."""
    with pytest.raises(ValueError, match="cannot cover"):
        corpus.merge_tiles(np.zeros((1, 3, 3, 8, 8), np.uint8), 16, 16)


# ---------------------------------------------------------------- ClipSet

def test_build_clipset_matches_the_source_frames_and_keyframes():
    """Clip frames are the tiles of the source frames; start/end keyframes are the right tiles."""
    rng = np.random.default_rng(1)
    K, th, tw = 4, 8, 8
    vids = []
    for n_frames, h, w in ((10, 12, 20), (1, 8, 8), (4, 16, 9)):
        frames = rng.integers(0, 256, (n_frames, h, w, 3), dtype=np.uint8)
        kf = frames[corpus.keyframe_positions(n_frames, K)] // 2 + 1    # "decoded" keyframes differ
        vids.append((frames, kf, n_frames))
    cs = corpus.build_clipset(vids, K, th, tw)
    assert cs.clip_length == K and cs.tile_size == (th, tw)
    for i in range(cs.n_clips):
        frames, kf, n_frames = vids[cs.video[i]]
        ft = corpus.split_tiles(frames, th, tw)
        kt = corpus.split_tiles(kf, th, tw)
        first, tile = cs.first_frame[i], cs.tile[i]
        for s in range(K):
            idx = min(first + s, n_frames - 1)
            assert cs.mask[i, s] == (first + s < n_frames)
            assert np.array_equal(cs.frames[i, s], ft[idx, tile])
        c = first // K
        pos = corpus.keyframe_positions(n_frames, K)
        end = int(np.searchsorted(pos, min(first + K, n_frames - 1)))
        assert np.array_equal(cs.keyframes[cs.start_kf[i]], kt[c, tile])
        assert np.array_equal(cs.keyframes[cs.end_kf[i]], kt[end, tile])
    n_expected = sum(math.ceil(L / K) * math.ceil(f.shape[1] / th) * math.ceil(f.shape[2] / tw) for f, _, L in vids)
    assert cs.n_clips == n_expected


def test_build_clipset_without_frames_for_decoding():
    """With frames=None (decoding) the ClipSet carries no frames but the same layout."""
    kf = np.zeros((3, 8, 8, 3), np.uint8)
    cs = corpus.build_clipset([(None, kf, 10)], 8, 8, 8)
    assert cs.frames is None and cs.n_clips == 2 and list(cs.end_kf) == [1, 2]


def test_build_clipset_rejects_a_wrong_keyframe_count():
    """The keyframe array must hold exactly keyframe_positions(L, K) frames."""
    with pytest.raises(ValueError, match="expected 3 keyframes"):
        corpus.build_clipset([(None, np.zeros((2, 8, 8, 3), np.uint8), 10)], 8, 8, 8)


# ---------------------------------------------------------------- scan

def test_scan_walks_folders_in_stable_order_with_relative_names(tmp_path):
    """Names are relative POSIX paths in sorted order; other files are skipped with a warning."""
    (tmp_path / "b").mkdir()
    make_video(tmp_path / "b" / "z.mp4", 3)
    make_video(tmp_path / "a.mkv", 2)
    (tmp_path / "notes.txt").write_text("not a video")
    warnings = []
    videos = corpus.scan([tmp_path], warn=warnings.append)
    assert [v.name for v in videos] == ["a.mkv", "b/z.mp4"]
    assert [v.info.n_frames for v in videos] == [2, 3]
    assert len(warnings) == 1 and "notes.txt" in warnings[0]
    assert [v.name for v in corpus.scan([tmp_path / "b" / "z.mp4"])] == ["z.mp4"]


def test_scan_refuses_a_broken_video_unless_skipping(tmp_path):
    """A text file named .mp4 is a MediaError naming it; skip_broken turns it into a warning."""
    make_video(tmp_path / "good.mp4", 2)
    (tmp_path / "bad.mp4").write_text("hello, I am not a video\n" * 20)
    with pytest.raises(MediaError, match="bad.mp4"):
        corpus.scan([tmp_path], warn=lambda s: None)
    warnings = []
    videos = corpus.scan([tmp_path], skip_broken=True, warn=warnings.append)
    assert [v.name for v in videos] == ["good.mp4"]
    assert any("bad.mp4" in w for w in warnings)


def test_scan_of_nothing_decodable_is_a_value_error(tmp_path):
    """An empty folder, or one with only skipped files, is a clear ValueError."""
    with pytest.raises(ValueError, match="no decodable video"):
        corpus.scan([tmp_path], warn=lambda s: None)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="no decodable video"):
        corpus.scan([tmp_path], warn=lambda s: None)
    with pytest.raises(ValueError, match="no such file"):
        corpus.scan([tmp_path / "missing"], warn=lambda s: None)


def test_scan_skips_audio_only_files_with_a_warning(tmp_path):
    """A media file without a video stream is skipped (warned), not an error."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.2",
                    "-c:a", "aac", str(tmp_path / "audio.mp4")], check=True)
    make_video(tmp_path / "v.mp4", 1)
    warnings = []
    assert [v.name for v in corpus.scan([tmp_path], warn=warnings.append)] == ["v.mp4"]
    assert any("audio.mp4" in w and "no video stream" in w for w in warnings)


def test_scan_rejects_duplicate_names(tmp_path):
    """Two inputs giving the same name cannot both go in one .nvc."""
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        make_video(tmp_path / d / "same.mp4", 1)
    with pytest.raises(ValueError, match="same.mp4"):
        corpus.scan([tmp_path / "x", tmp_path / "y"])


def test_keyframe_positions_agree_with_the_container_rule():
    """The corpus's keyframe positions and the format's keyframe count (FORMAT.md 5) are one rule."""
    from nvcodec.bitstream import keyframe_count

    for interval in (1, 2, 7, 8, 16):
        for n_frames in range(1, 60):
            assert len(corpus.keyframe_positions(n_frames, interval)) == keyframe_count(n_frames, interval)
