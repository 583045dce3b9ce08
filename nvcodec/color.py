"""Our own fixed RGB <-> Y'CbCr conversions: pure numpy, integer arithmetic only.

Keyframes are coded as 4:2:0 YUV by a classical codec; ffmpeg decodes them back to
the exact same YUV on every machine (the codec standards are bit-exact), and this
module turns that YUV into RGB. Because it uses only integer arithmetic with
constants fixed here, the decoded keyframe pixels are identical on every machine
and with every ffmpeg build, which ffmpeg's own swscale does not promise.

Conventions (stated once, here):
- matrix: BT.601 (Kr = 0.299, Kb = 0.114), for both ranges;
- range: ``full_range=True`` is JFIF/JPEG full range (Y, Cb, Cr in 0..255, neutral
  chroma 128) and is what keyframes use (more code values, less rounding loss);
  ``full_range=False`` is limited range (Y 16..235, C 16..240), used by our y4m;
- coefficients are the exact matrix rounded to 16 fractional bits, row sums fixed
  to be exact, so grey stays grey and R = G = B survives a round trip;
- 4:2:0 chroma siting is *centre* (JPEG / MPEG-1 / H.261 style: each chroma sample
  sits at the centre of its 2x2 luma block). Downsampling is the mean of the 2x2
  block's chroma (computed from the block's RGB); upsampling is bilinear for that
  siting: weights 9/16, 3/16, 3/16, 1/16 from the four nearest chroma samples,
  replicating the edge. Both ends are ours, so the codec never sees the siting.
All functions round half up (add half, shift) and clip to 0..255.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

_KR, _KB = Fraction(299, 1000), Fraction(114, 1000)
_KG = 1 - _KR - _KB
_SHIFT = 16
_ONE = 1 << _SHIFT


def _fixed_row(coeffs: list[Fraction], total: Fraction) -> np.ndarray:
    """Round coefficients to 16-bit fixed point, nudging the largest so the row sums exactly."""
    ints = [round(c * _ONE) for c in coeffs]
    want = round(total * _ONE)
    ints[max(range(len(ints)), key=lambda i: abs(coeffs[i]))] += want - sum(ints)
    return np.array(ints, np.int64)


def _forward(full_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    y_scale = Fraction(1) if full_range else Fraction(219, 255)
    c_scale = Fraction(1) if full_range else Fraction(224, 255)
    y_row = [_KR * y_scale, _KG * y_scale, _KB * y_scale]
    cb_row = [x * c_scale for x in (-_KR / (2 * (1 - _KB)), -_KG / (2 * (1 - _KB)), Fraction(1, 2))]
    cr_row = [x * c_scale for x in (Fraction(1, 2), -_KG / (2 * (1 - _KR)), -_KB / (2 * (1 - _KR)))]
    return (_fixed_row(y_row, y_scale), _fixed_row(cb_row, Fraction(0)),
            _fixed_row(cr_row, Fraction(0)), 0 if full_range else 16)


def _inverse(full_range: bool) -> dict[str, int]:
    y_gain = Fraction(1) if full_range else Fraction(255, 219)
    c_gain = Fraction(1) if full_range else Fraction(255, 224)
    return {
        "y": round(y_gain * _ONE),
        "r_cr": round(2 * (1 - _KR) * c_gain * _ONE),
        "g_cb": round(2 * _KB * (1 - _KB) / _KG * c_gain * _ONE),
        "g_cr": round(2 * _KR * (1 - _KR) / _KG * c_gain * _ONE),
        "b_cb": round(2 * (1 - _KB) * c_gain * _ONE),
        "y_off": 0 if full_range else 16,
    }


_FWD = {fr: _forward(fr) for fr in (True, False)}
_INV = {fr: _inverse(fr) for fr in (True, False)}


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")


def _to_u8(x: np.ndarray, shift: int) -> np.ndarray:
    return np.clip((x + (1 << (shift - 1))) >> shift, 0, 255).astype(np.uint8)


def rgb_to_ycbcr444(rgb: np.ndarray, *, full_range: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> Y, Cb, Cr planes (H, W) uint8, BT.601, no subsampling."""
    _check_rgb(rgb)
    y_row, cb_row, cr_row, y_off = _FWD[full_range]
    x = rgb.astype(np.int64)
    y = _to_u8(x @ y_row + (y_off << _SHIFT), _SHIFT)
    cb = _to_u8(x @ cb_row + (128 << _SHIFT), _SHIFT)
    cr = _to_u8(x @ cr_row + (128 << _SHIFT), _SHIFT)
    return y, cb, cr


def rgb_to_yuv420(rgb: np.ndarray, *, full_range: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB, H and W even -> Y (H, W), Cb and Cr (H/2, W/2) uint8; BT.601.

    Chroma of a 2x2 block = chroma of the block's mean RGB (centre siting)."""
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"rgb_to_yuv420 needs even sizes, got {w}x{h}")
    y_row, cb_row, cr_row, y_off = _FWD[full_range]
    x = rgb.astype(np.int64)
    y = _to_u8(x @ y_row + (y_off << _SHIFT), _SHIFT)
    block_sum = x.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))     # (H/2, W/2, 3), 4x the mean
    cb = _to_u8(block_sum @ cb_row + (128 << (_SHIFT + 2)), _SHIFT + 2)
    cr = _to_u8(block_sum @ cr_row + (128 << (_SHIFT + 2)), _SHIFT + 2)
    return y, cb, cr


def _upsample2(c: np.ndarray) -> np.ndarray:
    """(h, w) chroma -> (2h, 2w) int64 scaled by 16: bilinear, centre siting, edge replicated."""
    c = c.astype(np.int64)
    up = np.concatenate([c[:1], c[:-1]], axis=0)
    down = np.concatenate([c[1:], c[-1:]], axis=0)
    rows = np.empty((2 * c.shape[0], c.shape[1]), np.int64)
    rows[0::2] = 3 * c + up
    rows[1::2] = 3 * c + down
    left = np.concatenate([rows[:, :1], rows[:, :-1]], axis=1)
    right = np.concatenate([rows[:, 1:], rows[:, -1:]], axis=1)
    out = np.empty((rows.shape[0], 2 * c.shape[1]), np.int64)
    out[:, 0::2] = 3 * rows + left
    out[:, 1::2] = 3 * rows + right
    return out


def yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, *, full_range: bool = True) -> np.ndarray:
    """Y (H, W), Cb and Cr (H/2, W/2) uint8 -> (H, W, 3) uint8 RGB; inverse of rgb_to_yuv420."""
    h, w = y.shape
    if h % 2 or w % 2 or cb.shape != (h // 2, w // 2) or cr.shape != (h // 2, w // 2):
        raise ValueError(f"yuv420: bad plane shapes {y.shape}, {cb.shape}, {cr.shape}")
    k = _INV[full_range]
    shift = _SHIFT + 4                                    # chroma carries 4 extra bits from upsampling
    luma = ((y.astype(np.int64) - k["y_off"]) * k["y"]) << 4
    cbs = _upsample2(cb) - (128 << 4)
    crs = _upsample2(cr) - (128 << 4)
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[..., 0] = _to_u8(luma + k["r_cr"] * crs, shift)
    rgb[..., 1] = _to_u8(luma - k["g_cb"] * cbs - k["g_cr"] * crs, shift)
    rgb[..., 2] = _to_u8(luma + k["b_cb"] * cbs, shift)
    return rgb


def yuv420_from_bytes(buf: bytes, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split one raw yuv420p frame (ffmpeg ``-pix_fmt yuv420p``, even sizes) into its planes."""
    n_y, n_c = width * height, (width // 2) * (height // 2)
    if len(buf) != n_y + 2 * n_c:
        raise ValueError(f"yuv420p {width}x{height}: expected {n_y + 2 * n_c} bytes, got {len(buf)}")
    a = np.frombuffer(buf, np.uint8)
    return (a[:n_y].reshape(height, width), a[n_y:n_y + n_c].reshape(height // 2, width // 2),
            a[n_y + n_c:].reshape(height // 2, width // 2))
