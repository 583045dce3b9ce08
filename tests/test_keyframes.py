"""The keyframe codec (nvcodec.keyframes): segments, exact decoding across ffmpeg builds, config."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nvcodec.keyframes import KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.media import MediaError, ffmpeg_codecs


def _binaries() -> list[str]:
    """Distinct ffmpeg builds on this machine: system (5.1 here) and imageio-ffmpeg's (9.x)."""
    found = [shutil.which("ffmpeg")]
    try:
        import imageio_ffmpeg
        found.append(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # noqa: BLE001
        pass
    out = []
    for exe in found:
        if exe and Path(exe).resolve() not in [Path(e).resolve() for e in out]:
            out.append(exe)
    return out


BINARIES = _binaries()


def keyframes(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth moving gradients with a little texture: codable at decent quality."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for t in range(n):
        base = np.stack([xx * 4 + t * 9, yy * 5 + 40, 180 - xx * 2 + yy + t * 3], axis=2)
        out.append(base + rng.normal(0, 4, base.shape))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


CASES = [
    KeyframeCodec("av1", "intra", quality=30),
    KeyframeCodec("av1", "inter", quality=30, segment_length=3),
    KeyframeCodec("hevc", "intra", quality=24),
    KeyframeCodec("hevc", "inter", quality=24, segment_length=3),
]


@pytest.mark.parametrize("codec", CASES, ids=lambda c: f"{c.codec}-{c.mode}")
def test_segments_cover_all_keyframes_and_each_decodes_alone(codec):
    """Odd-sized keyframes: segments cover 0..n-1 in order, each decodes alone to the right pixels."""
    frames = keyframes(7, 21, 35)
    segments = encode_keyframes(frames, codec)
    expected_len = 1 if codec.mode == "intra" else 3
    assert [(f, n) for f, n, _ in segments] == [(i, min(expected_len, 7 - i)) for i in range(0, 7, expected_len)]
    decoded = np.concatenate([decode_keyframes(data, codec, 35, 21, n) for _, n, data in segments])
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert psnr(frames, decoded) > 30
    whole = decode_keyframes(b"".join(d for *_, d in segments), codec, 35, 21, 7)
    assert np.array_equal(whole, decoded)          # a segment decoded alone == decoded in the stream


@pytest.mark.parametrize("codec", [CASES[1], CASES[2]], ids=lambda c: f"{c.codec}-{c.mode}")
def test_keyframe_bytes_decode_to_identical_pixels_twice_and_with_every_ffmpeg_build(codec, monkeypatch):
    """Decoding is exact: the same bytes give the same RGB, again, and with ffmpeg 5.1 and 9.x."""
    frames = keyframes(4, 18, 30, seed=1)
    segments = encode_keyframes(frames, codec)
    n, data = 4, b"".join(d for *_, d in segments)       # segments concatenate into one stream
    results = []
    for exe in BINARIES:
        monkeypatch.setenv("NVCODEC_FFMPEG", exe)
        results.append(decode_keyframes(data, codec, 30, 18, n))
        results.append(decode_keyframes(data, codec, 30, 18, n))
    for other in results[1:]:
        assert np.array_equal(results[0], other)
    if len(BINARIES) < 2:
        pytest.skip("only one ffmpeg build on this machine: the cross-build half was not exercised")


@pytest.mark.parametrize("codec", [CASES[1], CASES[3]], ids=lambda c: f"{c.codec}-{c.mode}")
def test_encoding_is_deterministic(codec):
    """Fixed single-threaded encoder options: the same frames give the same bytes."""
    frames = keyframes(4, 16, 24, seed=2)
    assert encode_keyframes(frames, codec) == encode_keyframes(frames, codec)


def test_tiny_and_single_keyframes():
    """A single 1x1 keyframe and a 3x5 one are padded to the coded size and cropped back."""
    codec = KeyframeCodec("av1", "inter", quality=10)
    for h, w in ((1, 1), (3, 5)):
        frames = keyframes(1, h, w)
        (first, n, data), = encode_keyframes(frames, codec)
        out = decode_keyframes(data, codec, w, h, 1)
        assert (first, n) == (0, 1) and out.shape == (1, h, w, 3)
        assert np.abs(out.astype(int) - frames).max() < 40


def test_vvc_is_refused_clearly_where_ffmpeg_lacks_it(monkeypatch):
    """Where the ffmpeg has no libvvenc the message says so; where it has one, intra VVC works."""
    codec = KeyframeCodec("vvc", "intra", quality=30, speed=4)
    frames = keyframes(2, 16, 16)
    for exe in BINARIES:
        monkeypatch.setenv("NVCODEC_FFMPEG", exe)
        if "libvvenc" in ffmpeg_codecs(exe) and "vvc" in ffmpeg_codecs(exe):
            segments = encode_keyframes(frames, codec)
            out = np.concatenate([decode_keyframes(d, codec, 16, 16, n) for _, n, d in segments])
            assert psnr(frames, out) > 28
        else:
            with pytest.raises(MediaError, match="no libvvenc encoder"):
                encode_keyframes(frames, codec)


def test_corrupt_segment_bytes_are_a_media_error():
    """Garbage instead of a segment: MediaError, never silently wrong frames."""
    codec = KeyframeCodec("av1", "intra")
    with pytest.raises(MediaError, match="keyframe segment"):
        decode_keyframes(b"\x12\x00garbage" * 10, codec, 16, 16, 1)
    (_, _, data), = encode_keyframes(keyframes(1, 16, 16), codec)
    with pytest.raises(MediaError, match=r"holds 1 keyframe\(s\), 2 declared"):
        decode_keyframes(data, codec, 16, 16, 2)


def test_codec_json_round_trip_and_rejections():
    """to_json/from_json round-trip; unknown codec, mode, params or bad values are ValueErrors."""
    for codec in CASES + [KeyframeCodec()]:
        assert KeyframeCodec.from_json(codec.to_json()) == codec
    assert KeyframeCodec().to_json()["codec"] == "av1"
    good = KeyframeCodec().to_json()
    with pytest.raises(ValueError, match="unknown codec"):
        KeyframeCodec.from_json({**good, "codec": "mpeg2"})
    with pytest.raises(ValueError, match="mode"):
        KeyframeCodec.from_json({**good, "mode": "both"})
    with pytest.raises(ValueError, match="unknown params"):
        KeyframeCodec.from_json({**good, "params": {**good["params"], "tune": "psnr"}})
    with pytest.raises(ValueError, match="quality"):
        KeyframeCodec.from_json({**good, "params": {**good["params"], "quality": 99}})
    with pytest.raises(ValueError, match="encoder"):
        KeyframeCodec("hevc", encoder="libaom-av1")
    with pytest.raises(ValueError, match="only mode='intra'"):
        KeyframeCodec("vvc", "inter")
    with pytest.raises(ValueError, match="intra-only frames"):
        KeyframeCodec("av1", "intra", encoder="libsvtav1")
    with pytest.raises(ValueError, match="segment_length"):
        KeyframeCodec("av1", "intra", segment_length=4)
    assert KeyframeCodec("av1", "intra").encoder == "libaom-av1"
    with pytest.raises(ValueError, match="expected uint8"):
        encode_keyframes(np.zeros((2, 8, 8), np.uint8), KeyframeCodec())


def test_svt_av1_pads_small_frames_to_its_minimum_and_is_deterministic():
    """SVT-AV1 refuses sizes below 64: small keyframes are padded, cropped back, and coded reproducibly."""
    codec = KeyframeCodec("av1", "inter", quality=36, speed=8, encoder="libsvtav1", segment_length=2)
    frames = keyframes(3, 18, 30, seed=3)
    segments = encode_keyframes(frames, codec)
    assert segments == encode_keyframes(frames, codec)
    assert [(f, n) for f, n, _ in segments] == [(0, 2), (2, 1)]
    out = np.concatenate([decode_keyframes(d, codec, 30, 18, n) for _, n, d in segments])
    assert psnr(frames, out) > 30


def test_svtav1_refuses_crf_0_which_ffmpeg_codes_like_its_default():
    """ffmpeg's libsvtav1 wrapper reads crf 0 as 'unset' (same bytes as crf 35, measured): refuse to code it,
    and let the rate plan search from 1; libaom honours crf 0."""
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    svt = KeyframeCodec(codec="av1", quality=0, encoder="libsvtav1")
    assert svt.min_quality == 1 and KeyframeCodec(codec="av1", encoder="libaom-av1").min_quality == 0
    with pytest.raises(ValueError, match="quality must be 1..63"):
        encode_keyframes(frames, svt)
