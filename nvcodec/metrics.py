"""The one metric code path for every codec (nvcodec, x264/x265 anchors, NeRV).

Inputs are 8-bit RGB frames as numpy arrays, ``(N, H, W, 3)`` uint8 (a single
``(H, W, 3)`` frame is accepted as ``N = 1``); outputs are float64 arrays with
one value per frame. Pure functions: nothing is mutated, nothing is cached.

Definitions (stated once, here, and tested):

- **PSNR** (primary): per frame, MSE over all H·W·3 RGB samples, peak 255,
  ``10·log10(255² / MSE)``. An identical frame (MSE = 0) scores
  :data:`PSNR_CAP_DB` = 100 dB, and every score is capped there, so means stay
  finite. (One sample off by one in a 160×128 frame is 96.0 dB, below the cap.)
  Corpus PSNR is the mean of the per-frame values over all frames.
- **Y-PSNR / YUV 6:1:1 PSNR**: Y, Cb, Cr are computed in float64 (no
  rounding) from the RGB samples with the **BT.601** matrix, **limited range**
  (Y in 16..235, Cb/Cr in 16..240; the matrix and range the anchors are coded
  in and that y4m output uses), at full resolution (4:4:4, no chroma
  subsampling). Peak 255, capped like PSNR. YUV 6:1:1 PSNR is
  ``(6·PSNR_Y + PSNR_Cb + PSNR_Cr) / 8`` per frame.
- **MS-SSIM**: pytorch-msssim's definition (Gaussian window 11, σ 1.5, K =
  (0.01, 0.03), data range 255, 'valid' filtering) on RGB, mean over the three
  channels, with the standard five scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
  Five scales need the smaller side > 160 (the window must fit after four 2×
  downsamplings). Smaller frames use the largest number of scales ``k`` with
  smaller side > 10·2^(k-1) (128 px → 4 scales, 80 → 3, ...), the first ``k``
  weights renormalised to sum 1; ``k = 1`` is plain SSIM. Below 11 px the
  window shrinks to the largest odd size that fits. :func:`ms_ssim_scales`
  reports the scale count used. The arithmetic is re-expressed here (a
  separable unfold+matmul filter instead of pytorch-msssim's grouped 1×11
  conv2d, which is ~8× slower on CPU); the tests check it equals
  ``pytorch_msssim.ms_ssim`` / ``ssim`` to 1e-5.
- **Blend floor** (``blend_psnr``): the PSNR above of round((1-t)·start + t·end) of
  the two decoded keyframes around each in-between frame, on whole frames as coded,
  mean over the frames of the clips (a clip's keyframes included). This is the report's
  ``blend_psnr``. The .nvc's ``fit.blend_psnr`` (and ``fit.fit_psnr``) is the fit's own
  measure of the same blend: per frame, but on the frame padded to whole tiles (a frame's
  tiles pooled, ``nvcodec.fit``), so it differs from the report's by the padding only.
"""

from __future__ import annotations

import numpy as np

from nvcodec.corpus import clip_layout, keyframe_positions

PSNR_CAP_DB = 100.0          # score of an identical frame; every PSNR is capped here
PEAK = 255.0                 # 8-bit peak
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)   # Wang et al. 2003, 5 scales
SSIM_WIN_SIZE = 11
SSIM_WIN_SIGMA = 1.5
MS_SSIM_BATCH = 64           # frames per torch call (bounds memory)

# BT.601 luma coefficients and limited-range scaling (ITU-R BT.601, as in y4m/x264 SD output)
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB
Y_SCALE, C_SCALE = 219.0 / 255.0, 224.0 / 255.0


def _pair(ref, dist) -> tuple[np.ndarray, np.ndarray]:
    """Check and normalise a (ref, dist) pair to (N, H, W, 3) uint8."""
    ref, dist = np.asarray(ref), np.asarray(dist)
    if ref.dtype != np.uint8 or dist.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {ref.dtype} and {dist.dtype}")
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: ref {ref.shape} vs dist {dist.shape}")
    if ref.ndim == 3:
        ref, dist = ref[None], dist[None]
    if ref.ndim != 4 or ref.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) or (H, W, 3), got {ref.shape}")
    if 0 in ref.shape[1:3]:
        raise ValueError(f"frames must be at least 1x1, got {ref.shape}")
    return ref, dist


def psnr_from_mse(mse: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """``10·log10(peak² / mse)`` capped at PSNR_CAP_DB (mse 0 -> the cap)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(peak * peak / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


def mse_per_frame(ref, dist) -> np.ndarray:
    """Mean squared error per frame over all RGB samples, exact (integer sums)."""
    ref, dist = _pair(ref, dist)
    n = ref.shape[0]
    diff = ref.reshape(n, -1).astype(np.int32) - dist.reshape(n, -1)
    sse = np.einsum("ij,ij->i", diff, diff, dtype=np.int64)
    return sse / float(diff.shape[1])


def psnr_per_frame(ref, dist) -> np.ndarray:
    """RGB PSNR per frame, peak 255, identical frames capped at 100 dB -> float64 (N,)."""
    return psnr_from_mse(mse_per_frame(ref, dist))


# rows: Y, Cb, Cr as linear functions of (R, G, B), limited-range scaling included
_YCC_MATRIX = np.array([
    [Y_SCALE * KR, Y_SCALE * KG, Y_SCALE * KB],
    [C_SCALE * -KR / (2 * (1 - KB)), C_SCALE * -KG / (2 * (1 - KB)), C_SCALE * (1 - KB) / (2 * (1 - KB))],
    [C_SCALE * (1 - KR) / (2 * (1 - KR)), C_SCALE * -KG / (2 * (1 - KR)), C_SCALE * -KB / (2 * (1 - KR))],
])


def rgb_to_ycbcr_float(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W, 3) float64 Y, Cb, Cr: BT.601 limited range, unrounded."""
    rgb = np.asarray(frames, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = KR * r + KG * g + KB * b                         # 0..255
    cb = (b - y) / (2.0 * (1.0 - KB))                    # -127.5..127.5
    cr = (r - y) / (2.0 * (1.0 - KR))
    return np.stack([16.0 + Y_SCALE * y, 128.0 + C_SCALE * cb, 128.0 + C_SCALE * cr], axis=-1)


def _plane_psnr(ref, dist) -> np.ndarray:
    """(N, H, W, 3) -> (N, 3): PSNR of Y, Cb, Cr planes.

    The conversion is affine, so the plane differences are the matrix applied to the RGB
    differences (the offsets cancel): computed that way, in float64."""
    ref, dist = _pair(ref, dist)
    n = ref.shape[0]
    diff = (ref.reshape(n, -1, 3).astype(np.int16) - dist.reshape(n, -1, 3)).astype(np.float64)
    mse = np.empty((n, 3))
    for i, row in enumerate(_YCC_MATRIX):
        d = diff @ row                                   # (N, H·W)
        mse[:, i] = np.einsum("ij,ij->i", d, d) / d.shape[1]
    return psnr_from_mse(mse)


def y_psnr_per_frame(ref, dist) -> np.ndarray:
    """PSNR of BT.601 limited-range luma computed from RGB (float, unrounded) -> float64 (N,)."""
    return _plane_psnr(ref, dist)[:, 0]


def yuv_psnr_per_frame(ref, dist) -> np.ndarray:
    """YUV 6:1:1 PSNR per frame: (6·Y + Cb + Cr) / 8, planes as in :func:`y_psnr_per_frame`."""
    p = _plane_psnr(ref, dist)
    return (6.0 * p[:, 0] + p[:, 1] + p[:, 2]) / 8.0


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales used for this frame size (5 when the smaller side > 160)."""
    side = min(height, width)
    k = 1
    while k < len(MS_SSIM_WEIGHTS) and side > (SSIM_WIN_SIZE - 1) * 2 ** k:
        k += 1
    return k


def _gaussian_window(win_size: int):
    """pytorch-msssim's window: 1-D Gaussian, σ 1.5, normalised (float64, (win_size,))."""
    import torch

    coords = torch.arange(win_size, dtype=torch.float64) - win_size // 2
    g = torch.exp(-(coords ** 2) / (2 * SSIM_WIN_SIGMA ** 2))
    return g / g.sum()


def _blur(maps, win):
    """Separable 'valid' Gaussian filter of (M, H, W) maps -> (M, H-w+1, W-w+1).

    unfold + matmul: the same arithmetic as pytorch-msssim's grouped conv2d, several
    times faster on CPU (a 1×11 conv2d is a slow path in torch)."""
    maps = maps.unfold(2, win.shape[0], 1) @ win              # along W
    return maps.unfold(1, win.shape[0], 1) @ win              # along H


def _ssim_and_cs(x, y, win):
    """Mean SSIM and contrast-structure term per map of (M, H, W) float maps in 0..255 -> (M,), (M,)."""
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mu_x, mu_y = _blur(x, win), _blur(y, win)
    sigma_x = _blur(x * x, win) - mu_x * mu_x
    sigma_y = _blur(y * y, win) - mu_y * mu_y
    sigma_xy = _blur(x * y, win) - mu_x * mu_y
    cs_map = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs_map
    return ssim_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


def _ms_ssim_batch(x, y, n_scales: int, win_size: int):
    """MS-SSIM of (B, 3, H, W) float tensors in 0..255 -> (B,).

    pytorch-msssim's ``ms_ssim`` computation (relu of each factor, 2×2 average pooling
    with odd-size padding, product of factors to the weights, mean over channels),
    with the channels folded into the batch: (B, 3, H, W) -> (3B, H, W)."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    x, y = x.reshape(b * 3, *x.shape[2:]), y.reshape(b * 3, *y.shape[2:])
    win = _gaussian_window(win_size).to(x.dtype)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:n_scales], dtype=x.dtype)
    weights = weights / weights.sum()
    factors = []
    for i in range(n_scales):
        ssim_m, cs_m = _ssim_and_cs(x, y, win)                                      # (3B,) each
        if i < n_scales - 1:
            factors.append(torch.relu(cs_m))
            pad = [s % 2 for s in x.shape[1:]]
            x = F.avg_pool2d(x[:, None], kernel_size=2, padding=pad)[:, 0]
            y = F.avg_pool2d(y[:, None], kernel_size=2, padding=pad)[:, 0]
    factors.append(torch.relu(ssim_m))
    stacked = torch.stack(factors, dim=0).reshape(n_scales, b, 3)                   # (k, B, 3)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)         # (B,)


def ms_ssim_per_frame(ref, dist) -> np.ndarray:
    """MS-SSIM per frame on RGB (scales reduced for small frames, see module doc) -> float64 (N,)."""
    import torch

    ref, dist = _pair(ref, dist)
    n, h, w, _ = ref.shape
    n_scales = ms_ssim_scales(h, w)
    side = min(h, w)
    win_size = SSIM_WIN_SIZE if side >= SSIM_WIN_SIZE else (side if side % 2 else side - 1)
    out = np.empty(n, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, n, MS_SSIM_BATCH):
            sl = slice(start, start + MS_SSIM_BATCH)
            # (B, H, W, 3) uint8 -> (B, 3, H, W) float32
            x = torch.from_numpy(np.ascontiguousarray(ref[sl])).permute(0, 3, 1, 2).float()
            y = torch.from_numpy(np.ascontiguousarray(dist[sl])).permute(0, 3, 1, 2).float()
            out[sl] = _ms_ssim_batch(x, y, n_scales, win_size).numpy()
    return out


def bits_per_pixel(n_bytes: int, n_pixels: int) -> float:
    """8·n_bytes / n_pixels, n_pixels = Σ frames × width × height as coded (pooled bpp)."""
    if n_bytes < 0:
        raise ValueError(f"n_bytes must be >= 0, got {n_bytes}")
    if n_pixels <= 0:
        raise ValueError(f"n_pixels must be > 0, got {n_pixels}")
    return 8.0 * n_bytes / n_pixels


__all__ = ["PSNR_CAP_DB", "bits_per_pixel", "ms_ssim_per_frame", "ms_ssim_scales", "mse_per_frame",
           "psnr_from_mse", "psnr_per_frame", "rgb_to_ycbcr_float", "y_psnr_per_frame",
           "yuv_psnr_per_frame"]


def blend_psnr(frames, decoded_keyframes, interval: int, keyframes=None) -> float:
    """The blend floor over videos (DESIGN.md: what every network must beat): the mean over all
    frames of the per-frame PSNR of round((1-t)*start + t*end) of the decoded keyframes.

    ``frames``: each video's (L, H, W, 3) uint8 frames as coded, arrays or array-likes indexed by
    frame index arrays (the frame store's ``StoredVideo``: one clip's frames are read at a time);
    ``decoded_keyframes``: each video's decoded keyframes; ``keyframes``: per video their frames
    (None, or None for a video: the regular ones, keyframe_positions(L, interval)); clips as
    ``corpus.clip_layout``. Per-frame scores are kept (8 bytes a frame), never the frames."""
    scores = []
    for video, kf, pos in zip(frames, decoded_keyframes, keyframes or [None] * len(frames)):
        _, start_kf, end_kf, frame, mask, _, t_local = clip_layout(len(video), interval, keyframes=pos)
        for c in range(len(start_kf)):
            t = t_local[c, mask[c], None, None, None]
            blend = (1 - t) * kf[start_kf[c]].astype(np.float32) + t * kf[end_kf[c]].astype(np.float32)
            blend = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
            scores.append(psnr_per_frame(video[frame[c, mask[c]]], blend))
    return float(np.mean(np.concatenate(scores)))


def keyframe_psnr(frames, decoded_keyframes, interval: int, keyframes=None) -> float:
    """Mean per-frame PSNR of the decoded keyframes against their source frames, over all videos
    (``frames`` as in :func:`blend_psnr`: only each video's keyframe positions are read; ``keyframes``:
    per video their frames, as for ``blend_psnr``)."""
    scores = [psnr_per_frame(video[keyframe_positions(len(video), interval) if pos is None else pos], kf)
              for video, kf, pos in zip(frames, decoded_keyframes, keyframes or [None] * len(frames))]
    return float(np.mean(np.concatenate(scores)))
