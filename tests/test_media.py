"""The media layer: ffmpeg choice, runner, probe, read and write (nvcodec.media, nvcodec.color)."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nvcodec import color, media
from nvcodec.media import MediaError, VideoWriter, ffmpeg_exe, probe, read_frames

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

# file, width, height, fps_num, fps_den, n_frames (SOURCES.md; stream #0 of type video)
CORPUS_EXPECTED = [
    ("cotracker_bear.mp4", 854, 480, 30, 1, 82),
    ("cotracker_cat.mp4", 368, 480, 20, 1, 87),
    ("cotracker_paragliding-launch.mp4", 854, 480, 30, 1, 80),
    ("decord_flipping_a_pancake.mkv", 426, 240, 30, 1, 310),
    ("imageio_cockatoo_yuv420.mp4", 1280, 720, 20, 1, 280),
    ("imageio_realshort.mp4", 320, 240, 1501, 50, 36),                    # 30.02 fps
    ("mmaction2_demo_skeleton.mp4", 1920, 1080, 30, 1, 72),               # nominal 30, avg 28.05
    ("mmaction2_test.avi", 320, 240, 25, 1, 164),
    ("mmaction2_test.mp4", 340, 256, 30, 1, 300),
    ("mmaction2_test_video_structuralize.mp4", 426, 240, 30000, 1001, 300),
    ("moviepy_chaplin.mp4", 640, 360, 25, 1, 241),
    ("openh264_CVFC1_Sony_C.264", 300, 168, 25, 1, 50),                  # no timing: nominal 25
    ("openh264_VID_1280x720_cabac_temporal_direct.264", 1280, 720, 30, 1, 300),
    ("openh264_VID_1920x1080_cabac_temporal_direct.264", 1920, 1080, 25, 1, 54),
    ("openh264_Zhling_1280x720.264", 1280, 720, 25, 1, 19),
    ("openh264_test_cif_P_CABAC_slice.264", 352, 288, 25, 1, 300),
    ("sam2_01_dog.mp4", 1280, 720, 30000, 1001, 289),
    ("sam2_03_blocks.mp4", 1280, 720, 30000, 1001, 292),
    ("sam2_bedroom.mp4", 960, 540, 30, 1, 200),
    ("torchcodec_nasa_13013.mp4", 320, 180, 25, 1, 325),                  # 2nd video stream ignored
    ("trackanything_test-sample4.mp4", 800, 360, 30000, 1001, 227),
]

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS} (shared/ beside the clone)")


def make_video(path: Path, n_frames: int, width: int = 32, height: int = 24, rate: int = 25,
               extra: tuple[str, ...] = ()) -> Path:
    """A small synthetic H.264 video (ffmpeg's testsrc2)."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={width}x{height}:rate={rate}", "-frames:v", str(n_frames), *extra,
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


# ---------------------------------------------------------------- binary choice

def test_ffmpeg_exe_honours_the_environment_variable(monkeypatch):
    """NVCODEC_FFMPEG wins over PATH."""
    monkeypatch.setenv("NVCODEC_FFMPEG", "/opt/some/ffmpeg")
    assert ffmpeg_exe() == "/opt/some/ffmpeg"


def test_missing_binary_is_a_media_error(monkeypatch, tmp_path):
    """A binary that cannot start gives a MediaError naming it, not an OSError."""
    monkeypatch.setenv("NVCODEC_FFMPEG", str(tmp_path / "no-ffmpeg"))
    with pytest.raises(MediaError, match="cannot start"):
        probe(make_video_safe(tmp_path))


def make_video_safe(tmp_path: Path) -> Path:
    p = tmp_path / "v.mp4"
    p.write_bytes(b"\x00" * 16)
    return p


# ---------------------------------------------------------------- probe

@needs_corpus
@pytest.mark.slow
def test_every_corpus_clip_probes_with_its_size_fps_and_frame_count():
    """All 21 clips: size, rational fps and exact frame count of stream #0 of type video (~15 s)."""
    wrong = []
    for name, width, height, fps_num, fps_den, n_frames in CORPUS_EXPECTED:
        info = probe(CORPUS / name)
        got = (info.width, info.height, info.fps_num, info.fps_den, info.n_frames)
        if got != (width, height, fps_num, fps_den, n_frames):
            wrong.append(f"{name}: expected {(width, height, fps_num, fps_den, n_frames)}, got {got}")
    assert not wrong, "\n".join(wrong)


@needs_corpus
def test_probe_reports_colour_tags_and_full_range():
    """The 1080p raw stream is full range (yuvj420p); torchcodec_nasa_13013 is tagged BT.709 limited."""
    info = probe(CORPUS / "openh264_VID_1920x1080_cabac_temporal_direct.264")
    assert info.pix_fmt == "yuvj420p" and info.color_range == "pc"
    assert media.source_color(info.color_space, info.color_range, info.pix_fmt, info.height) == ("bt709", "pc")
    info = probe(CORPUS / "torchcodec_nasa_13013.mp4")
    assert (info.color_range, info.color_space) == ("tv", "bt709")
    assert info.duration_s == pytest.approx(16.57, abs=0.01)


def test_source_color_rules():
    """Tagged matrices win; untagged: BT.709 from 720 lines up, BT.601 below; yuvj is full range."""
    assert media.source_color("unknown", "unknown", "yuv420p", 480) == ("bt601", "tv")
    assert media.source_color("unknown", "unknown", "yuv420p", 720) == ("bt709", "tv")
    assert media.source_color("bt470bg", "tv", "yuv420p", 1080) == ("bt601", "tv")
    assert media.source_color("unknown", "unknown", "yuvj420p", 240) == ("bt601", "pc")


def test_one_and_seven_frame_videos_probe_and_read_exactly(tmp_path):
    """Short videos: the exact frame count, and read_frames yields exactly that many frames."""
    for n in (1, 7):
        path = make_video(tmp_path / f"v{n}.mp4", n, 34, 22)
        info = probe(path)
        assert (info.width, info.height, info.n_frames, info.fps_num, info.fps_den) == (34, 22, n, 25, 1)
        frames = list(read_frames(path))
        assert len(frames) == n and frames[0].shape == (22, 34, 3) and frames[0].dtype == np.uint8


def test_zero_byte_file_is_a_media_error_naming_it(tmp_path):
    """A 0-byte .mp4 fails with the file name in the message."""
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4.*empty file"):
        probe(path)


def test_text_file_named_mp4_is_a_one_line_media_error_with_stderr_tail(tmp_path):
    """A text file is not a video: a one-line MediaError naming the file; ffmpeg's words kept aside."""
    path = tmp_path / "readme.mp4"
    path.write_text("just some text\n" * 50)
    with pytest.raises(MediaError, match=r"readme\.mp4") as err:
        list(read_frames(path))
    assert "\n" not in str(err.value) and "Invalid data" in err.value.stderr_tail


def test_corrupted_file_is_a_media_error(tmp_path):
    """A truncated mp4 (moov atom at the end, cut off) cannot be read: MediaError."""
    path = make_video(tmp_path / "full.mp4", 20, 64, 48)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MediaError, match=r"cut\.mp4"):
        probe(cut)


def test_audio_only_file_has_no_video_stream(tmp_path):
    """An audio-only file: MediaError 'no video stream' (scan turns it into a warning)."""
    path = tmp_path / "sound.m4a"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.2",
                    "-c:a", "aac", str(path)], check=True)
    with pytest.raises(MediaError, match="no video stream") as err:
        probe(path)
    assert err.value.what == "no video stream"


# ---------------------------------------------------------------- read

def test_read_frames_resizes_resamples_and_limits(tmp_path):
    """size=(w, h), fps resampling (50 frames at 25 fps -> 4 at 2 fps) and max_frames."""
    path = make_video(tmp_path / "v.mp4", 50, 64, 48)
    frames = list(read_frames(path, size=(20, 10), fps=Fraction(2)))
    assert len(frames) == 4 and frames[0].shape == (10, 20, 3)
    assert len(list(read_frames(path, max_frames=3))) == 3
    with pytest.raises(ValueError, match="max_frames"):
        list(read_frames(path, max_frames=0))


@needs_corpus
def test_read_honours_the_second_video_stream_rule():
    """torchcodec_nasa_13013.mp4: frames come from stream #0 (320x180), not the 480x270 one."""
    frames = list(read_frames(CORPUS / "torchcodec_nasa_13013.mp4", max_frames=2))
    assert len(frames) == 2 and frames[0].shape == (180, 320, 3)


def test_streaming_read_of_a_large_file_stays_under_a_memory_bound(tmp_path):
    """400 frames of 320x240 (92 MB as RGB) are read holding only a few frames (< 8 MB peak)."""
    path = make_video(tmp_path / "big.mp4", 400, 320, 240)
    tracemalloc.start()
    try:
        n, checksum = 0, 0
        for frame in read_frames(path):
            n += 1
            checksum += int(frame[0, 0, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 400
    assert peak < 8 * 2 ** 20, f"peak traced memory {peak / 2 ** 20:.1f} MiB"


def _ffmpeg_children() -> list[int]:
    """Pids of this process's children named ffmpeg*, zombies included (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if int(rest[1]) == os.getpid() and comm.startswith("ffmpeg"):
            found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc to list child processes")
def test_stopping_a_read_early_leaves_no_ffmpeg_running(tmp_path):
    """Closing the generator kills and reaps ffmpeg (no orphan or zombie process, no hang)."""
    path = make_video(tmp_path / "v.mp4", 100, 64, 48)
    gen = read_frames(path)
    next(gen)
    running = _ffmpeg_children()
    assert len(running) == 1, f"expected the one ffmpeg reading {path.name}, found {running}"
    gen.close()
    assert _ffmpeg_children() == []


def test_runner_drains_a_very_chatty_stderr():
    """showinfo logs every frame (> 128 KiB of stderr, 2x a pipe buffer) while we stream stdout: no deadlock."""
    args = [ffmpeg_exe(), "-nostdin", "-v", "debug", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
            "-vf", "showinfo", "-frames:v", "600", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    result = {}

    def work():
        proc = media.FfmpegProcess(args, "<lavfi>", "chatty")
        n = 0
        while proc.read_exact(64 * 48 * 3) is not None:
            n += 1
        result["n"], result["stderr"] = n, proc.finish()

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "runner deadlocked on stderr"
    assert result["n"] == 600 and len(result["stderr"]) > 128 * 1024


# ---------------------------------------------------------------- write

def test_y4m_to_a_file_object_is_read_by_ffmpeg_from_a_pipe():
    """y4m (C444, BT.601 limited) written to a binary stream decodes with `ffmpeg -i -`."""
    rng = np.random.default_rng(3)
    frames = [np.clip(rng.normal(128, 40, (24, 34, 3)), 0, 255).astype(np.uint8) for _ in range(3)]
    frames = [np.repeat(np.repeat(f[::2, ::2], 2, 0), 2, 1) for f in frames]
    proc = subprocess.Popen([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", "-", "-vf",
                             "scale=in_range=tv:in_color_matrix=bt601:flags=accurate_rnd+full_chroma_int",
                             "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = {}
    reader = threading.Thread(target=lambda: out.setdefault("b", proc.stdout.read()))
    reader.start()
    with VideoWriter(proc.stdin, "y4m", 34, 24, 25, 1) as w:
        for f in frames:
            w.write(f)
    proc.stdin.close()
    reader.join(30)
    assert proc.wait(30) == 0
    back = np.frombuffer(out["b"], np.uint8).reshape(3, 24, 34, 3)
    assert psnr(np.stack(frames), back) > 38


def test_y4m_header_states_the_format(tmp_path):
    """The y4m header names size, rate, C444 and limited range; frames follow as planes."""
    buf = io.BytesIO()
    with VideoWriter(buf, "y4m", 4, 2, 30000, 1001) as w:
        w.write(np.zeros((2, 4, 3), np.uint8))
    data = buf.getvalue()
    assert data.startswith(b"YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1 C444 XCOLORRANGE=LIMITED\n")
    assert data.endswith(b"FRAME\n" + bytes([16] * 8 + [128] * 16))


def test_lossless_mp4_round_trips_exactly_and_atomically(tmp_path):
    """lossless=True: libx264rgb -qp 0 gives back the exact RGB; no temporary file is left."""
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (5, 24, 34, 3), dtype=np.uint8)
    dest = tmp_path / "out" / "x.mp4"
    with VideoWriter(dest, "mp4", 34, 24, 25, 1, lossless=True) as w:
        for f in frames:
            w.write(f)
    assert np.array_equal(np.stack(list(read_frames(dest))), frames)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["x.mp4"]


def test_crf_mp4_is_close_and_tagged_bt709(tmp_path):
    """crf mp4: yuv420p BT.709 limited range, close to the source when read back."""
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([xx * 3 + 20 + 10 * t, yy * 4 + 30, 200 - xx * 2], axis=2)
                       for t in range(4)]).clip(0, 255).astype(np.uint8)   # smooth: a matrix mismatch shows
    dest = tmp_path / "q.mp4"
    with VideoWriter(dest, "mp4", 64, 48, 25, 1, crf=10) as w:
        for f in frames:
            w.write(f)
    info = probe(dest)
    assert (info.n_frames, info.pix_fmt, info.color_space, info.color_range) == (4, "yuv420p", "bt709", "tv")
    assert psnr(frames, np.stack(list(read_frames(dest)))) > 40


def test_default_mp4_is_yuv420p_high_profile_that_players_open(tmp_path):
    """No options: H.264 yuv420p (not RGB 4:4:4) at MP4_CRF, BT.709 tagged, close to the source."""
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([xx * 3 + 20 + 10 * t, yy * 4 + 30, 200 - xx * 2], axis=2)
                       for t in range(4)]).clip(0, 255).astype(np.uint8)
    dest = tmp_path / "d.mp4"
    with VideoWriter(dest, "mp4", 64, 48, 25, 1) as w:
        for f in frames:
            w.write(f)
    info = probe(dest)
    assert (info.n_frames, info.pix_fmt, info.color_space) == (4, "yuv420p", "bt709")
    assert f"crf={media.MP4_CRF}.0" in dest.read_bytes().decode("latin-1")      # x264's settings string
    assert psnr(frames, np.stack(list(read_frames(dest)))) > 38


def test_default_mp4_pads_odd_sizes_by_repeating_the_last_row_and_column(tmp_path):
    """yuv420p needs even sizes: 7x5 is written as 8x6, the extra column and row copies of the last."""
    frame = np.zeros((5, 7, 3), np.uint8)
    frame[:, -1] = 200                                   # a bright last column, a dark rest
    dest = tmp_path / "odd.mp4"
    with VideoWriter(dest, "mp4", 7, 5, 25, 1) as w:
        w.write(frame)
    back = next(read_frames(dest))
    assert back.shape == (6, 8, 3)
    assert back[:, -2:].mean() > 150 and back[:, :4].mean() < 50


def test_png_folder_holds_one_exact_file_per_frame(tmp_path):
    """png: frame_000000.png ... in a folder created atomically, pixels exact."""
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (3, 10, 12, 3), dtype=np.uint8)
    dest = tmp_path / "frames"
    with VideoWriter(dest, "png", 12, 10, 25, 1) as w:
        for f in frames:
            w.write(f)
    assert sorted(p.name for p in dest.iterdir()) == [f"frame_{i:06d}.png" for i in (0, 1, 2)]
    assert np.array_equal(next(read_frames(dest / "frame_000001.png")), frames[1])


def test_png_files_are_numbered_from_first_index(tmp_path):
    """first_index=10: the files are frame_000010.png, frame_000011.png (the frames' own indices)."""
    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    dest = tmp_path / "frames"
    with VideoWriter(dest, "png", 6, 4, 25, 1, first_index=10) as w:
        for f in frames:
            w.write(f)
    assert sorted(p.name for p in dest.iterdir()) == ["frame_000010.png", "frame_000011.png"]
    assert np.array_equal(next(read_frames(dest / "frame_000011.png")), frames[1])


@pytest.mark.parametrize("fmt", ["y4m", "mp4", "png"])
def test_existing_output_is_refused_unless_overwrite(tmp_path, fmt):
    """An existing dest is kept unless overwrite=True; then it is replaced whole (png: no stale files)."""
    dest = tmp_path / f"x.{fmt}"
    frame = np.full((8, 8, 3), 7, np.uint8)
    for _ in range(2):
        with pytest.raises(ValueError, match="exists"):
            if fmt == "png":
                dest.mkdir(exist_ok=True)
                (dest / "frame_000099.png").write_bytes(b"old")
            else:
                dest.write_bytes(b"old")
            VideoWriter(dest, fmt, 8, 8, 25, 1)
    with VideoWriter(dest, fmt, 8, 8, 25, 1, overwrite=True) as w:
        w.write(frame)
    if fmt == "png":
        assert sorted(p.name for p in dest.iterdir()) == ["frame_000000.png"]
    assert np.array_equal(next(read_frames(dest / "frame_000000.png" if fmt == "png" else dest)), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_failed_write_leaves_no_output(tmp_path):
    """An exception inside the with-block removes the temporary file; dest never appears."""
    dest = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(dest, "mp4", 8, 8, 25, 1) as w:
            w.write(np.zeros((8, 8, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_calls(tmp_path):
    """Wrong format, wrong frame shape, file object for mp4: ValueError/TypeError."""
    with pytest.raises(ValueError, match="fmt"):
        VideoWriter(tmp_path / "x", "avi", 8, 8, 25, 1)
    with pytest.raises(TypeError, match="file objects only for y4m"):
        VideoWriter(io.BytesIO(), "mp4", 8, 8, 25, 1)
    with VideoWriter(io.BytesIO(), "y4m", 8, 8, 25, 1) as w:
        with pytest.raises(ValueError, match="expected uint8"):
            w.write(np.zeros((8, 9, 3), np.uint8))


# ---------------------------------------------------------------- colour

def test_grey_survives_the_yuv420_round_trip_exactly():
    """R = G = B for all 256 levels comes back unchanged (row sums are exact)."""
    for full_range in (True, False):
        grey = np.repeat(np.arange(256, dtype=np.uint8), 4).reshape(32, 32, 1).repeat(3, axis=2)
        if full_range:
            assert np.array_equal(color.yuv420_to_rgb(*color.rgb_to_yuv420(grey)), grey)
        y, cb, cr = color.rgb_to_ycbcr444(grey, full_range=full_range)
        assert np.all(cb == 128) and np.all(cr == 128)


def test_yuv420_conversion_of_known_colours():
    """BT.601 full range: white (255, 128, 128), black (0, 128, 128), red's Cr = 255."""
    rgb = np.array([[[255, 255, 255], [255, 255, 255]], [[0, 0, 0], [0, 0, 0]]], np.uint8)
    y, cb, cr = color.rgb_to_yuv420(rgb)
    assert y.tolist() == [[255, 255], [0, 0]] and cb.tolist() == [[128]] and cr.tolist() == [[128]]
    _, _, cr = color.rgb_to_yuv420(np.full((2, 2, 3), (255, 0, 0), np.uint8))
    assert cr.tolist() == [[255]]


def test_smooth_images_round_trip_through_yuv420_closely():
    """Chroma subsampling loses little on smooth content (> 40 dB)."""
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=2).clip(0, 255).astype(np.uint8)
    assert psnr(rgb, color.yuv420_to_rgb(*color.rgb_to_yuv420(rgb))) > 40
