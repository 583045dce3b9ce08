"""nvcodec.metrics: the one metric code path, checked on synthetic frames with known errors."""

import numpy as np
import pytest
import torch

from nvcodec import metrics


def _frames(n=3, h=16, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_psnr_of_a_known_mse():
    """A frame off by +4 in every sample (MSE 16) scores 10·log10(255²/16)."""
    ref = np.full((2, 8, 8, 3), 100, np.uint8)
    dist = ref + np.uint8(4)
    expected = 10 * np.log10(255.0 ** 2 / 16.0)
    np.testing.assert_allclose(metrics.psnr_per_frame(ref, dist), [expected, expected], rtol=1e-12)


def test_psnr_is_per_frame_and_mixed_errors_average_per_frame():
    """Each frame gets its own MSE: frame 0 exact (capped), frame 1 one sample off by 255."""
    ref = np.zeros((2, 4, 5, 3), np.uint8)
    dist = ref.copy()
    dist[1, 0, 0, 0] = 255
    psnr = metrics.psnr_per_frame(ref, dist)
    assert psnr[0] == metrics.PSNR_CAP_DB == 100.0
    np.testing.assert_allclose(psnr[1], 10 * np.log10(4 * 5 * 3))     # MSE = 255²/60


def test_identical_frames_are_capped_not_infinite():
    """MSE 0 gives the 100 dB cap; a single ±1 sample in 160x128 stays below it (96 dB)."""
    ref = _frames(1, 128, 160)
    assert metrics.psnr_per_frame(ref, ref)[0] == 100.0
    dist = ref.copy()
    dist[0, 0, 0, 0] ^= 1
    assert 95.9 < metrics.psnr_per_frame(ref, dist)[0] < 96.1


def test_psnr_accepts_a_single_frame_and_rejects_bad_inputs():
    """(H, W, 3) is one frame; float input, shape mismatch and non-RGB are refused."""
    ref = _frames(1)[0]
    assert metrics.psnr_per_frame(ref, ref).shape == (1,)
    with pytest.raises(TypeError, match="uint8"):
        metrics.psnr_per_frame(ref.astype(np.float32), ref)
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr_per_frame(ref, ref[:-1])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        metrics.psnr_per_frame(ref[..., :2], ref[..., :2])


def test_y_psnr_of_a_grey_offset_uses_limited_range_luma():
    """Grey +4 in R, G and B moves BT.601 limited-range Y by 4·219/255; chroma does not move."""
    ref = np.full((1, 8, 8, 3), 90, np.uint8)
    dist = ref + np.uint8(4)
    dy = 4 * 219 / 255
    np.testing.assert_allclose(metrics.y_psnr_per_frame(ref, dist), 10 * np.log10(255 ** 2 / dy ** 2))
    # Cb, Cr unchanged (capped at 100 dB): 6:1:1 = (6·Y + 100 + 100) / 8
    expected = (6 * 10 * np.log10(255 ** 2 / dy ** 2) + 200) / 8
    np.testing.assert_allclose(metrics.yuv_psnr_per_frame(ref, dist), expected)


def test_ycbcr_of_primaries_matches_bt601_limited_range():
    """White -> (235, 128, 128), black -> (16, 128, 128), pure blue -> Cb 240."""
    rgb = np.array([[[[255, 255, 255], [0, 0, 0], [0, 0, 255]]]], np.uint8)
    ycc = metrics.rgb_to_ycbcr_float(rgb)[0, 0]
    np.testing.assert_allclose(ycc[0], [235, 128, 128], atol=1e-9)
    np.testing.assert_allclose(ycc[1], [16, 128, 128], atol=1e-9)
    np.testing.assert_allclose(ycc[2, 1], 240, atol=1e-9)


@pytest.mark.parametrize("h, w, scales", [(161, 170, 5), (160, 200, 4), (128, 160, 4), (81, 90, 4),
                                          (80, 90, 3), (21, 30, 2), (20, 30, 1), (5, 7, 1)])
def test_ms_ssim_scale_count_follows_the_smaller_side(h, w, scales):
    """Five scales need a side > 160; each halving of the side drops one scale."""
    assert metrics.ms_ssim_scales(h, w) == scales


def test_ms_ssim_equals_pytorch_msssim_at_five_scales():
    """For frames large enough for 5 scales the score is pytorch_msssim.ms_ssim's."""
    import pytorch_msssim

    ref = _frames(2, 168, 171, seed=1)
    noise = np.random.default_rng(2).integers(-20, 21, ref.shape)
    dist = np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(a).permute(0, 3, 1, 2).float() for a in (ref, dist))
    expected = pytorch_msssim.ms_ssim(x, y, data_range=255, size_average=False).numpy()
    np.testing.assert_allclose(metrics.ms_ssim_per_frame(ref, dist), expected, atol=1e-5)


def test_ms_ssim_of_tiny_frames_is_pytorch_msssim_ssim():
    """Smaller side <= 20: one scale, i.e. plain SSIM as pytorch_msssim.ssim computes it."""
    import pytorch_msssim

    ref = _frames(2, 16, 24, seed=3)
    dist = np.clip(ref.astype(int) + 9, 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(a).permute(0, 3, 1, 2).float() for a in (ref, dist))
    expected = pytorch_msssim.ssim(x, y, data_range=255, size_average=False).numpy()
    np.testing.assert_allclose(metrics.ms_ssim_per_frame(ref, dist), expected, atol=1e-5)


def test_ms_ssim_is_one_for_identical_frames_at_any_size():
    """Identical frames score 1, also at 128x160 (4 scales) and below the 11-px window."""
    for h, w in [(128, 160), (6, 9), (1, 1)]:
        ref = _frames(2, h, w)
        np.testing.assert_allclose(metrics.ms_ssim_per_frame(ref, ref), 1.0, atol=1e-6)


def test_bits_per_pixel_is_pooled_bytes_over_pixels():
    """1000 bytes over 2 frames of 160x128 = 8000 / 40960 bpp; bad counts are refused."""
    assert metrics.bits_per_pixel(1000, 2 * 160 * 128) == pytest.approx(8000 / 40960)
    assert metrics.bits_per_pixel(0, 1) == 0.0
    with pytest.raises(ValueError, match="n_pixels"):
        metrics.bits_per_pixel(10, 0)
    with pytest.raises(ValueError, match="n_bytes"):
        metrics.bits_per_pixel(-1, 10)
