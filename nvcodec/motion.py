"""Coarse coded motion: estimation against decoded keyframes, and the motion floor (FORMAT.md section 14).

The **motion floor** of a frame is its two decoded keyframes, each warped by the
frame's decoded motion towards it, fused (1 - t, t) with t its position between
them.  The decoder computes it from the file alone, so it is integer arithmetic
in numpy, specified in FORMAT.md 14.3 and bit-exact on every machine:

- coarse vectors are q * step_qpel quarter pixels; per pixel they become 1/64
  pixels, either the cell's vector (``nearest``) or bilinear between cell
  centres with integer weights (``bilinear``), rounded half up;
- each keyframe is sampled bilinearly at p + v (6 fractional bits per axis,
  coordinates clamped to the frame: border replication), kept at 12
  fractional bits;
- the fusion weights the two warps by (e - i) and (i - s) and rounds half up
  to 8 bits.

Estimation (encoder only, any method would do; the file holds the integers):
block matching on luma over whole frames (``estimate_field``: a full search at half
resolution, candidates refined at full resolution, then the step lattice with the
decoder's own interpolator), each in-between frame against its clip's *decoded*
keyframes, the previous frame's motion offered as a linear-motion prior; then, given the
price of a bit, each field moved on its lattice where that lowers the floor's own squared
error + lambda x bits (``refine_clip``).
``choose_motion`` picks a video's grid and step among ``MOTION_CANDIDATES`` by measured
rate (the coded bytes of nvcodec.bitstream.motion) + lambda x distortion on a sample of
its clips; the encoder's lambda is the price of a keyframe bit, measured
(``nvcodec.rate.allocate_motion``).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nvcodec.bitstream.motion import (INTERP_BILINEAR, INTERP_NAMES, INTERP_NEAREST, MAX_ABS_Q, MAX_GRID, MAX_STEP_QPEL,
                               MIN_GRID, VideoMotion, clip_inbetween_counts, encode_clip, motion_grid)
from nvcodec.corpus import clip_layout

PIX_FRAC_BITS = 6  # per-pixel vectors in 1/64 pixel
SAMPLE_FRAC_BITS = 2 * PIX_FRAC_BITS  # a warped sample carries 12 fractional bits
_PIX_ONE = 1 << PIX_FRAC_BITS
_QPEL_TO_PIX = _PIX_ONE // 4  # quarter pixels -> 1/64 pixels
INTERP_CODES = {name: code for code, name in INTERP_NAMES.items()}


@dataclass(frozen=True)
class MotionConfig:
    """Encoder choices for coded motion; grid, step and interpolation are recorded in the file."""

    grid: int = 32            # cell side in pixels
    step_qpel: int = 4        # vector step in quarter pixels (4 = whole pixels, 2 = half, 1 = quarter)
    search_px: int = 16       # search range, +- pixels from zero (encoder only)
    interp: str = "bilinear"  # 'nearest' | 'bilinear': how cell vectors become per-pixel motion

    def __post_init__(self):
        for name, lo, hi in (("grid", MIN_GRID, MAX_GRID), ("step_qpel", 1, MAX_STEP_QPEL), ("search_px", 0, 1024)):
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:
                raise ValueError(f"MotionConfig.{name} must be an int {lo}..{hi}, got {v!r}")
        if self.interp not in INTERP_CODES:
            raise ValueError(f"MotionConfig.interp must be one of {sorted(INTERP_CODES)}, got {self.interp!r}")


# --- the decoder's arithmetic (FORMAT.md 14.3) ----------------------------------------------


def _axis_weights(n: int, grid: int, n_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel along one axis: lower cell, upper cell, weight of the upper one in units of 1/(2 grid).
    Pixel centre 2p+1 and cell centre 2 c grid + grid in doubled coordinates; clamped at the edges."""
    u = 2 * np.arange(n, dtype=np.int64) + 1 - grid
    c0 = np.floor_divide(u, 2 * grid)
    w1 = u - 2 * grid * c0
    edge = (c0 < 0) | (c0 >= n_cells - 1)
    c0 = np.clip(c0, 0, n_cells - 1)
    w1 = np.where(edge, 0, w1)
    return c0, np.minimum(c0 + 1, n_cells - 1), w1


def pixel_field(q: np.ndarray, step_qpel: int, grid: int, interp: int, height: int, width: int) -> np.ndarray:
    """Coarse field q (2, rows, cols) in step_qpel / 4 pixels -> per-pixel (2, height, width) int64 in 1/64 pixel."""
    v = np.asarray(q, dtype=np.int64) * (step_qpel * _QPEL_TO_PIX)  # (2, rows, cols) in 1/64 pixel
    rows, cols = v.shape[1:]
    if interp == INTERP_NEAREST:
        ry = np.minimum(np.arange(height) // grid, rows - 1)
        rx = np.minimum(np.arange(width) // grid, cols - 1)
        return v[:, ry][:, :, rx]
    if interp != INTERP_BILINEAR:
        raise ValueError(f"unknown interpolation code {interp}")
    y0, y1, wy = _axis_weights(height, grid, rows)
    x0, x1, wx = _axis_weights(width, grid, cols)
    g2 = 2 * grid
    # separable, the same integers as the four-term sum of FORMAT.md 14.3 (distributivity), fewer products
    vx = (g2 - wx) * v[:, :, x0] + wx * v[:, :, x1]                           # (2, rows, width)
    acc = (g2 - wy)[:, None] * vx[:, y0] + wy[:, None] * vx[:, y1]            # (2, height, width)
    return np.floor_divide(acc + g2 * g2 // 2, g2 * g2)


def warp(ref: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Bilinear backward warp of ref (H, W[, C]) uint8 by field (2, H, W) in 1/64 pixel, border-clamped:
    int32 samples with 12 fractional bits (out[p] ~ 4096 ref[p + v]; at most 4096 x 255, and a per-pixel
    vector, at most MAX_ABS_Q x 16 x 16, keeps every coordinate within int32)."""
    h, w = ref.shape[:2]
    sy = (np.arange(h, dtype=np.int32) << PIX_FRAC_BITS)[:, None] + field[0].astype(np.int32)
    sx = (np.arange(w, dtype=np.int32) << PIX_FRAC_BITS)[None, :] + field[1].astype(np.int32)
    iy, fy = sy >> PIX_FRAC_BITS, sy & (_PIX_ONE - 1)
    ix, fx = sx >> PIX_FRAC_BITS, sx & (_PIX_ONE - 1)
    row0, row1 = np.clip(iy, 0, h - 1) * w, np.clip(iy + 1, 0, h - 1) * w
    x0, x1 = np.clip(ix, 0, w - 1), np.clip(ix + 1, 0, w - 1)
    flat = ref.reshape(h * w, -1) if ref.ndim == 3 else ref.reshape(h * w)   # gathers of flat indices, uint8
    if ref.ndim == 3:
        fy, fx = fy[..., None], fx[..., None]
    gx = _PIX_ONE - fx
    top = gx * flat[row0 + x0] + fx * flat[row0 + x1]
    bottom = gx * flat[row1 + x0] + fx * flat[row1 + x1]
    top *= _PIX_ONE - fy
    bottom *= fy
    top += bottom
    return top


def fuse(warp_start: np.ndarray, warp_end: np.ndarray, w_start: int, w_end: int) -> np.ndarray:
    """(w_start warp_start + w_end warp_end) / (w_start + w_end), 12 fractional bits -> uint8, half up."""
    den = (w_start + w_end) << SAMPLE_FRAC_BITS
    return ((w_start * warp_start + w_end * warp_end + den // 2) // den).astype(np.uint8)


# Frames of a clip warped at once: numpy releases the GIL in the gathers and the arithmetic, so two threads
# decode the floor 1.76x faster on two cores (7 frames at 320x240: 30.8 -> 17.5 ms a frame); each frame is
# computed alone, so the pixels do not depend on the thread count.
WARP_THREADS = min(2, os.cpu_count() or 1)


def _clip_warps(kf_start: np.ndarray, kf_end: np.ndarray, q: np.ndarray, motion, each) -> None:
    """For every in-between frame j of a clip, ``each(j, start warp, end warp)``: its two keyframes warped
    by its motion, 12 fractional bits each (``warp``); WARP_THREADS frames at a time."""
    h, w = kf_start.shape[:2]

    def one(j: int) -> None:
        each(j, *(warp(kf, pixel_field(q[j, k], motion.step_qpel, motion.grid, motion.interp, h, w))
                  for k, kf in enumerate((kf_start, kf_end))))

    if WARP_THREADS > 1 and q.shape[0] > 1:
        with ThreadPoolExecutor(WARP_THREADS) as pool:
            list(pool.map(one, range(q.shape[0])))
    else:
        for j in range(q.shape[0]):
            one(j)


def floor_clip(kf_start: np.ndarray, kf_end: np.ndarray, q: np.ndarray, motion: VideoMotion) -> np.ndarray:
    """The motion floor of one clip's in-between frames: (n, H, W, 3) uint8 from (H, W, 3) keyframes
    and q (n, 2, 2, rows, cols); frame j of n sits at t = (j + 1) / (n + 1)."""
    n = q.shape[0]
    out = np.empty((n,) + kf_start.shape, dtype=np.uint8)

    def each(j: int, warp_start: np.ndarray, warp_end: np.ndarray) -> None:
        out[j] = fuse(warp_start, warp_end, n - j, j + 1)

    _clip_warps(kf_start, kf_end, q, motion, each)
    return out


def warped_clip(kf_start: np.ndarray, kf_end: np.ndarray, q: np.ndarray, motion, clip_length: int) -> np.ndarray:
    """What a motion-consuming network sees of one clip (FORMAT.md 14.4): (clip_length, 2, H, W, 3) uint8,
    each slot's start and end keyframes warped by that frame's decoded motion (``warp``, rounded half up
    to 8 bits).  Slot 0 (the start keyframe), the slots after the q.shape[0] in-between frames (the end
    keyframe, and the padding of a short last clip) hold the keyframes themselves."""
    out = np.empty((clip_length, 2) + kf_start.shape, dtype=np.uint8)
    out[:, 0], out[:, 1] = kf_start, kf_end
    half = 1 << (SAMPLE_FRAC_BITS - 1)

    def each(j: int, warp_start: np.ndarray, warp_end: np.ndarray) -> None:
        out[1 + j, 0] = (warp_start + half) >> SAMPLE_FRAC_BITS
        out[1 + j, 1] = (warp_end + half) >> SAMPLE_FRAC_BITS

    _clip_warps(kf_start, kf_end, q, motion, each)
    return out


def warped_video(dec_keyframes: np.ndarray, motion, n_frames: int, interval: int,
                 keyframes: np.ndarray | None = None) -> np.ndarray:
    """``warped_clip`` of every clip of a video: (n_clips, interval, 2, H, W, 3) uint8. ``keyframes``: their
    frames (None: the regular ones)."""
    _, start_kf, end_kf, *_ = clip_layout(n_frames, interval, keyframes=keyframes)
    return np.stack([warped_clip(dec_keyframes[start_kf[c]], dec_keyframes[end_kf[c]], motion.clips[c], motion,
                                 interval) for c in range(len(start_kf))])


def floor_video(dec_keyframes: np.ndarray, motion: VideoMotion | None, n_frames: int, interval: int,
                keyframes: np.ndarray | None = None) -> np.ndarray:
    """Every frame of a video from its decoded keyframes (n_kf, H, W, 3) and decoded motion:
    keyframes as they are, in-between frames the motion floor.  motion None: the blend floor
    (zero motion, the same integer fusion). ``keyframes``: their frames (None: the regular ones)."""
    first, start_kf, end_kf, _, mask, *_ = clip_layout(n_frames, interval, keyframes=keyframes)
    counts = clip_inbetween_counts(n_frames, interval, keyframes)
    h, w = dec_keyframes.shape[1:3]
    if motion is None:
        grid = min(max(h, w, MIN_GRID), MAX_GRID)
        rows, cols = motion_grid(h, w, grid)
        motion = VideoMotion(grid, 4, INTERP_NEAREST, rows, cols,
                             tuple(np.zeros((n, 2, 2, rows, cols), np.int32) for n in counts))
    if (motion.rows, motion.cols) != motion_grid(h, w, motion.grid) or [q.shape[0] for q in motion.clips] != counts:
        raise ValueError(f"motion of {len(motion.clips)} clips on {motion.rows}x{motion.cols} cells does not fit a "
                         f"{w}x{h} video of {n_frames} frames at interval {interval}")
    out = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    for c in range(len(counts)):
        s = int(first[c])
        clip = floor_clip_frames(dec_keyframes[start_kf[c]], dec_keyframes[end_kf[c]], motion.clips[c], motion,
                                 int(mask[c].sum()))
        out[s:s + len(clip)] = clip
    return out


def floor_clip_frames(kf_start: np.ndarray, kf_end: np.ndarray, q: np.ndarray, motion, n_clip_frames: int) -> np.ndarray:
    """Every frame of one clip, (n_clip_frames, H, W, 3) uint8: its start keyframe, the motion floor of its
    q.shape[0] in-between frames, and its end keyframe where the clip holds it (a short last clip).
    ``motion``: anything with grid, step_qpel and interp (a VideoMotion or a bitstream MotionReader)."""
    n = q.shape[0]
    out = np.empty((n_clip_frames,) + kf_start.shape, dtype=np.uint8)
    out[0] = kf_start
    out[1:1 + n] = floor_clip(kf_start, kf_end, q, motion)
    if n + 1 < n_clip_frames:
        out[n + 1] = kf_end
    return out


# --- estimation (encoder only) --------------------------------------------------------------


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Integer luma approximation (BT.601 weights / 256), int32."""
    rgb = rgb.astype(np.int32)
    return (77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8


def _half(img: np.ndarray) -> np.ndarray:
    """2x2 mean (edge-padded to even size)."""
    h, w = img.shape
    img = np.pad(img, ((0, h % 2), (0, w % 2)), mode="edge")
    return (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2] + 2) >> 2


def _cell_sums(x: np.ndarray, grid: int, rows: int, cols: int) -> np.ndarray:
    """Sum of x (H, W) over each grid x grid cell (zero-padded), (rows, cols)."""
    h, w = x.shape
    x = np.pad(x, ((0, rows * grid - h), (0, cols * grid - w)))
    return x.reshape(rows, grid, cols, grid).sum(axis=(1, 3))


def _int_costs(cur: np.ndarray, ref: np.ndarray, vec: np.ndarray, grid: int, rows: int, cols: int) -> np.ndarray:
    """Per-cell SAD of cur against ref shifted by each cell's integer vector vec (2, rows, cols)."""
    h, w = cur.shape
    ry = np.minimum(np.arange(h) // grid, rows - 1)
    rx = np.minimum(np.arange(w) // grid, cols - 1)
    dy, dx = vec[0][ry][:, rx], vec[1][ry][:, rx]
    yy = np.clip(np.arange(h)[:, None] + dy, 0, h - 1)
    xx = np.clip(np.arange(w)[None, :] + dx, 0, w - 1)
    return _cell_sums(np.abs(cur - ref[yy, xx]), grid, rows, cols)


def _search(cost_of, vec: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per cell, the vec + offset of least cost (ties: the offset listed first)."""
    best_cost, best = None, vec
    for oy, ox in offsets:
        cand = vec + np.array([oy, ox])[:, None, None]
        cost = cost_of(cand)
        if best_cost is None:
            best_cost, best = cost, cand
        else:
            better = cost < best_cost
            best_cost = np.where(better, cost, best_cost)
            best = np.where(better[None], cand, best)
    return best


def _square(r: int) -> list[tuple[int, int]]:
    """Offsets of the square of radius r, nearest to zero first (so ties keep small vectors)."""
    return sorted(((y, x) for y in range(-r, r + 1) for x in range(-r, r + 1)), key=lambda o: (abs(o[0]) + abs(o[1]), o))


def _select(cost_of, candidates: Sequence[np.ndarray]) -> np.ndarray:
    """Per cell, the candidate field (2, rows, cols) of least cost (ties: the one listed first)."""
    costs = np.stack([cost_of(c) for c in candidates])           # (n, rows, cols)
    best = np.argmin(costs, axis=0)
    return np.take_along_axis(np.stack(candidates), best[None, None], axis=0)[0]


def _full_search(cur: np.ndarray, ref: np.ndarray, radius: int, grid: int, rows: int, cols: int) -> np.ndarray:
    """Per cell, the whole-pixel vector within +-radius of least SAD (ties: nearer zero), (2, rows, cols).
    Every candidate is one shift of the whole edge-padded ref, so each costs a slice, not a gather."""
    h, w = cur.shape
    ref_pad = np.pad(ref, radius, mode="edge")
    diff = np.zeros((rows * grid, cols * grid), dtype=np.int32)  # zero outside the frame
    best_cost, best = None, np.zeros((2, rows, cols), dtype=np.int64)
    for oy, ox in _square(radius):
        np.subtract(cur, ref_pad[radius + oy:radius + oy + h, radius + ox:radius + ox + w], out=diff[:h, :w])
        np.abs(diff, out=diff)
        cost = diff.reshape(rows, grid, cols, grid).sum(axis=(1, 3))
        if best_cost is None:
            best_cost = cost
            best[0], best[1] = oy, ox
        else:
            better = cost < best_cost
            best_cost = np.where(better, cost, best_cost)
            best[0][better], best[1][better] = oy, ox
    return best


def estimate_field(frame: np.ndarray, ref: np.ndarray, config: MotionConfig,
                   priors: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Block-matched motion of frame towards ref (both (H, W, 3) uint8): (2, rows, cols) int32 in
    units of config.step_qpel quarter pixels.

    A full search of +-search_px at half resolution (at full resolution for cells under 8
    pixels), then per cell the best of: that vector, a full +-2 pixel search at full
    resolution (small motion, fine texture), and ``priors`` (whole-pixel fields such as a
    neighbouring frame's motion, scaled); refined +-1 pixel; then, for a step other than one
    pixel, refined on the step lattice with the decoder's own interpolator."""
    h, w = frame.shape[:2]
    rows, cols = motion_grid(h, w, config.grid)
    cur, ref_l = _luma(frame), _luma(ref)
    half = config.grid >= 8 and config.search_px > 2 and min(h, w) >= 8
    if half:
        vec = 2 * _full_search(_half(cur), _half(ref_l), -(-config.search_px // 2), config.grid // 2, rows, cols)
    else:
        vec = _full_search(cur, ref_l, config.search_px, config.grid, rows, cols)

    def cost_of(v):
        return _int_costs(cur, ref_l, v, config.grid, rows, cols)

    candidates = [vec, *(np.asarray(p, np.int64) for p in priors)]
    if half:
        candidates.append(_full_search(cur, ref_l, min(2, config.search_px), config.grid, rows, cols))
    vec = _search(cost_of, _select(cost_of, candidates) if len(candidates) > 1 else vec, _square(1))
    # on the step lattice, with the decoder's interpolator (block-constant vectors)
    step = config.step_qpel
    q = np.floor_divide(vec * 4 + step // 2, step)

    def exact_costs(qq):
        pred = warp(ref_l, pixel_field(qq, step, config.grid, INTERP_NEAREST, h, w))
        return _cell_sums(np.abs((cur << SAMPLE_FRAC_BITS) - pred), config.grid, rows, cols)

    if step != 4:  # +-1/2 pixel around the whole-pixel match, or one step of a coarser lattice
        q = _search(exact_costs, q, _square(max(1, 2 // step)))
    return np.clip(q, -MAX_ABS_Q, MAX_ABS_Q).astype(np.int32)


def _fused_choice(frame: np.ndarray, kf_start: np.ndarray, kf_end: np.ndarray, q: np.ndarray, w_start: int,
                  w_end: int, config: MotionConfig) -> np.ndarray:
    """Per cell, the pair of fields (2, 2, rows, cols) whose *fused* prediction (the decoder's interpolation,
    warp and fusion) errs least, among the two estimates, zero motion, and either estimate with the other
    field zero.  Each field was matched on its own keyframe; where content is flat, noisy or occluded,
    the fusion of two such matches can be worse than the blend, and a zero field costs fewer bits."""
    h, w = frame.shape[:2]
    rows, cols = q.shape[-2:]
    interp = INTERP_CODES[config.interp]
    zero = np.zeros_like(q[0])
    warps = {}

    def warped(k: int, field: np.ndarray, key) -> np.ndarray:
        if (k, key) not in warps:
            warps[k, key] = warp((kf_start, kf_end)[k], pixel_field(field, config.step_qpel, config.grid, interp, h, w))
        return warps[k, key]

    target = frame.astype(np.int64)
    candidates = [(q[0], q[1], "e", "e"), (zero, zero, "0", "0"), (q[0], zero, "e", "0"), (zero, q[1], "0", "e")]
    costs, pairs = [], []
    for f_start, f_end, k_start, k_end in candidates:
        fused = fuse(warped(0, f_start, k_start), warped(1, f_end, k_end), w_start, w_end)
        costs.append(_cell_sums(((fused - target) ** 2).sum(axis=2), config.grid, rows, cols))
        pairs.append(np.stack([f_start, f_end]))
    best = np.argmin(np.stack(costs), axis=0)                     # ties: the estimates, listed first
    return np.take_along_axis(np.stack(pairs), best[None, None, None], axis=0)[0]


def _estimate_clip(frames: Sequence[np.ndarray], kf_start: np.ndarray, kf_end: np.ndarray, first: int, n: int,
                   config: MotionConfig) -> np.ndarray:
    """Motion (n, 2, 2, rows, cols) of one clip's n in-between frames (frames[first + 1 + j]) towards
    its decoded start and end keyframes; each frame's match offered the previous one's as a prior."""
    h, w = kf_start.shape[:2]
    rows, cols = motion_grid(h, w, config.grid)
    q = np.zeros((n, 2, 2, rows, cols), dtype=np.int32)
    px = np.zeros((2, 2, rows, cols), dtype=np.int64)  # the previous frame's fields, whole pixels
    for j in range(n):
        frame = frames[first + 1 + j]
        # linear-motion priors: the start field grows as (j+1), the end field shrinks as (n-j)
        prior_start = [px[0] * (j + 1) // max(j, 1), -px[1] * (j + 1) // max(n - j + 1, 1)] if j else []
        q[j, 0] = estimate_field(frame, kf_start, config, prior_start)
        now_start = q[j, 0].astype(np.int64) * config.step_qpel // 4
        prior_end = [-now_start * (n - j) // (j + 1)] + ([px[1] * (n - j) // (n - j + 1)] if j else [])
        q[j, 1] = estimate_field(frame, kf_end, config, prior_end)
        q[j] = _fused_choice(frame, kf_start, kf_end, q[j], n - j, j + 1, config)
        px = np.stack([now_start, q[j, 1].astype(np.int64) * config.step_qpel // 4])
    return q


# --- rate-distortion refinement of the estimated fields (encoder only) ---------------------------

# Passes of ``refine_clip`` over a frame's cells (it stops early when a pass changes nothing); more passes
# kept lowering the error on the corpus clips tried. With 3, on the corpus's first 32 frames per video at
# keyframe quality 36 and lambda 1300 (benchmarks/results/motion-floor/refine-32f): 32x4 +0.50 dB of floor
# for 7.2 % more motion bytes, 16x2 +0.49 dB for 7.0 % fewer; about 5x block matching's time.
REFINE_PASSES = 3
# Lattice moves tried per cell and pass: one step along each axis.
_REFINE_MOVES = ((0, 1), (0, -1), (1, 1), (1, -1))


def _parity_cells(n: int, grid: int, cells: int, parity: int) -> tuple[np.ndarray, np.ndarray]:
    """The cells parity, parity + 2, ... of one axis, and the first pixel each owns: the pixels nearest to
    its centre among those cells. Under bilinear interpolation a cell's vector reaches only the pixels
    between its neighbours' centres, so cells of one parity (along both axes) never share a pixel and a
    change at them is the sum of one change per owned block of pixels."""
    if parity >= cells:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    centre = (np.arange(n) + 0.5) / grid - 0.5
    last = parity + 2 * ((cells - 1 - parity) // 2)
    owner = np.clip(parity + 2 * np.floor((centre - parity) / 2 + 0.5), parity, last).astype(np.int64)
    listed, starts = np.unique(owner, return_index=True)        # owner is non-decreasing along the axis
    return listed, starts


def _interp_matrix(n: int, grid: int, cells: int) -> np.ndarray:
    """(n, cells) float32: the bilinear weights of ``pixel_field`` along one axis (each row sums to 1)."""
    c0, c1, w1 = _axis_weights(n, grid, cells)
    m = np.zeros((n, cells), np.float32)
    np.add.at(m, (np.arange(n), c0), (2 * grid - w1) / (2 * grid))
    np.add.at(m, (np.arange(n), c1), w1 / (2 * grid))
    return m


class FloatWarp:
    """The decoder's warp of one video's frames (``pixel_field`` then ``warp``, bilinear cells) in float
    torch, differentiable in the fields: the cell interpolation as one matrix per axis, the sampling by
    grid_sample with border padding. It agrees with the integers up to their rounding (vectors in 1/64
    pixel, samples to 12 bits). Encoder only: ``refine_clip`` scores lattice moves with it, and
    ``nvcodec.motion_fit`` takes its gradient through the network."""

    def __init__(self, height: int, width: int, grid: int, rows: int, cols: int, step_qpel: int) -> None:
        import torch

        self.mat_y = torch.from_numpy(_interp_matrix(height, grid, rows))
        self.mat_x = torch.from_numpy(_interp_matrix(width, grid, cols))
        self.unit = step_qpel / 4.0                                   # pixels per lattice step
        self.base_y = torch.arange(height, dtype=torch.float32)[:, None]
        self.base_x = torch.arange(width, dtype=torch.float32)[None, :]
        # grid_sample's normalised coordinates (align_corners): -1 and 1 at the first and last pixel
        self.scale_y = 2.0 / (height - 1) if height > 1 else 0.0
        self.scale_x = 2.0 / (width - 1) if width > 1 else 0.0
        self.shift_y, self.shift_x = (1.0 if height > 1 else 0.0), (1.0 if width > 1 else 0.0)

    def __call__(self, ref, fields):
        """ref (B, 3, H, W) float, warped by fields (B, 2, rows, cols) float in lattice steps: (B, 3, H, W)."""
        import torch
        import torch.nn.functional as F

        dev = fields.device
        pix = self.mat_y.to(dev) @ (fields * self.unit) @ self.mat_x.to(dev).T        # (B, 2, H, W) pixels
        sample = torch.stack([(self.base_x.to(dev) + pix[:, 1]) * self.scale_x - self.shift_x,
                              (self.base_y.to(dev) + pix[:, 0]) * self.scale_y - self.shift_y], dim=-1)
        return F.grid_sample(ref, sample, mode="bilinear", padding_mode="border", align_corners=True)


class _BitCosts:
    """Approximate bits of a time residual (q[j] - q[j-1]): -log2 of its frequency in the clip's initial
    estimate, half a count added to every value within 64 of the range (an unseen value costs most)."""

    def __init__(self, q: np.ndarray):
        res = np.diff(q, axis=0, prepend=np.zeros_like(q[:1])).ravel()
        self.lo = int(res.min()) - 64
        counts = np.bincount(res - self.lo, minlength=int(res.max()) + 64 - self.lo + 1).astype(np.float64)
        self.cost = -np.log2((counts + 0.5) / (res.size + 0.5 * counts.size))

    def __call__(self, res: np.ndarray) -> np.ndarray:
        return self.cost[np.clip(res - self.lo, 0, self.cost.size - 1)]


def refine_clip(frames: np.ndarray, kf_start: np.ndarray, kf_end: np.ndarray, q: np.ndarray, config: MotionConfig,
                lam: float, passes: int = REFINE_PASSES) -> np.ndarray:
    """A clip's estimated fields q (n, 2, 2, rows, cols), moved on the step lattice to lower the motion
    floor's squared error (8-bit RGB, the decoder's interpolation, warp and fusion) + ``lam`` x bits.

    Block matching chooses each cell's vector for the cell alone, with block-constant motion on luma;
    the decoder interpolates the vectors between cell centres, warps RGB and fuses two keyframes. Here,
    frame by frame, each field's cells (one parity class at a time, so their effects do not overlap:
    ``_parity_cells``) try one step along each axis, and a cell keeps a move that lowers its owned
    pixels' fused squared error by more than ``lam`` x the change in the bits of its time residuals
    (``_BitCosts``: the current and the next frame's). Moves are scored with torch's float warp
    (grid_sample, 8x faster than the decoder's integers here), which agrees with the integer floor up
    to its rounding; the integers decide the file's pictures. Encoder only: the decoder reads whatever
    integers the file holds."""
    import torch

    q = np.array(q, dtype=np.int64)
    n = q.shape[0]
    if not n or config.interp != "bilinear":
        return q.astype(np.int32)
    h, w = kf_start.shape[:2]
    rows, cols = q.shape[-2:]
    bits = _BitCosts(q)
    float_warp = FloatWarp(h, w, config.grid, rows, cols, config.step_qpel)
    keyframes = [torch.from_numpy(np.ascontiguousarray(k)).permute(2, 0, 1)[None].float() for k in (kf_start, kf_end)]
    classes = [(_parity_cells(h, config.grid, rows, a), _parity_cells(w, config.grid, cols, b))
               for a in (0, 1) for b in (0, 1)]

    def warped(k: int, fields: np.ndarray) -> torch.Tensor:
        """keyframe k warped by each of fields (B, 2, rows, cols): (B, 3, H, W) float."""
        return float_warp(keyframes[k].expand(len(fields), -1, -1, -1), torch.from_numpy(fields).float())

    for j in range(n):
        target = torch.from_numpy(np.ascontiguousarray(frames[j])).permute(2, 0, 1)[None].float()
        weights = (n - j, j + 1)                                    # start, end: (e - i), (i - s)
        warps = [warped(k, q[j, k][None]) for k in (0, 1)]

        def error(start: torch.Tensor, end: torch.Tensor) -> np.ndarray:
            fused = (weights[0] * start + weights[1] * end) / (n + 1)
            return ((fused - target) ** 2).sum(dim=1).double().numpy()   # (B, H, W)

        err = error(*warps)[0]
        for _ in range(passes):
            moved = False
            for k in (0, 1):
                for (ry, sy), (rx, sx) in classes:
                    if not ry.size or not rx.size:
                        continue
                    cells = np.ix_(ry, rx)
                    cands = np.repeat(q[j, k][None], len(_REFINE_MOVES), axis=0)
                    for b, (d, s) in enumerate(_REFINE_MOVES):
                        cands[b, d][cells] = np.clip(cands[b, d][cells] + s, -MAX_ABS_Q, MAX_ABS_Q)
                    w_k = warped(k, cands)
                    e = error(w_k, warps[1]) if k == 0 else error(warps[0], w_k)
                    delta = np.add.reduceat(np.add.reduceat(e - err, sy, axis=1), sx, axis=2)
                    prev = q[j - 1, k] if j else np.zeros_like(q[j, k])
                    rate = bits(cands - prev) - bits(q[j, k] - prev)[None]
                    if j + 1 < n:
                        rate = rate + bits(q[j + 1, k] - cands) - bits(q[j + 1, k] - q[j, k])[None]
                    gain = -(delta + lam * rate[:, :, ry][:, :, :, rx].sum(axis=1))   # (moves, |ry|, |rx|)
                    best = np.argmax(gain, axis=0)
                    take = np.take_along_axis(gain, best[None], axis=0)[0] > 0
                    if not take.any():
                        continue
                    moved = True
                    chosen = np.take_along_axis(cands[:, :, ry][:, :, :, rx], best[None, None], axis=0)[0]
                    block = q[j, k][:, ry][:, :, rx]
                    q[j, k][np.ix_([0, 1], ry, rx)] = np.where(take[None], chosen, block)
                    warps[k] = warped(k, q[j, k][None])
                    err = error(*warps)[0]
            if not moved:
                break
    return q.astype(np.int32)


def estimate_clips(frames: Sequence[np.ndarray], dec_keyframes: np.ndarray, interval: int, config: MotionConfig,
                   keyframes: np.ndarray | None = None, clips: Sequence[int] | None = None,
                   lam: float | None = None) -> dict[int, np.ndarray]:
    """{clip: its motion (n_inbetween, 2, 2, rows, cols) int32} for the clips ``clips`` of a video (None:
    all); each clip is estimated on its own, so any subset gives the same arrays as the whole video.
    ``lam``: then refined at that price of a bit (``refine_clip``); None: block matching alone."""
    first, start_kf, end_kf, *_ = clip_layout(len(frames), interval, keyframes=keyframes)
    counts = clip_inbetween_counts(len(frames), interval, keyframes)
    out = {c: _estimate_clip(frames, dec_keyframes[start_kf[c]], dec_keyframes[end_kf[c]], int(first[c]), counts[c],
                             config)
           for c in (range(len(counts)) if clips is None else clips)}
    return out if lam is None else refine_clips(frames, dec_keyframes, interval, config, out, lam, keyframes)


def refine_clips(frames: Sequence[np.ndarray], dec_keyframes: np.ndarray, interval: int, config: MotionConfig,
                 clips: dict[int, np.ndarray], lam: float, keyframes: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """``refine_clip`` of each of ``clips`` ({clip: fields} as ``estimate_clips`` gives them)."""
    first, start_kf, end_kf, *_ = clip_layout(len(frames), interval, keyframes=keyframes)
    return {c: refine_clip(_clip_targets(frames, int(first[c]), q.shape[0]), dec_keyframes[start_kf[c]],
                           dec_keyframes[end_kf[c]], q, config, lam) for c, q in clips.items()}


def _clip_targets(frames: Sequence[np.ndarray], first: int, n: int) -> list[np.ndarray]:
    """The n in-between frames of the clip starting at frame ``first``."""
    return [frames[first + 1 + j] for j in range(n)]


def video_motion(config: MotionConfig, height: int, width: int, clips: dict[int, np.ndarray]) -> VideoMotion:
    """The VideoMotion of a video whose every clip's fields ``clips`` holds (``estimate_clips``)."""
    rows, cols = motion_grid(height, width, config.grid)
    return VideoMotion(config.grid, config.step_qpel, INTERP_CODES[config.interp], rows, cols,
                       tuple(clips[c] for c in range(len(clips))))


def estimate_video(frames: Sequence[np.ndarray], dec_keyframes: np.ndarray, interval: int,
                   config: MotionConfig, keyframes: np.ndarray | None = None, lam: float | None = None) -> VideoMotion:
    """Motion of every in-between frame of a video (frames: the source frames, (H, W, 3) uint8 each,
    indexable by frame number) towards its clip's decoded start and end keyframes (at frames
    ``keyframes``; None: the regular ones); ``lam``: refined at that price of a bit (``refine_clip``)."""
    h, w = dec_keyframes.shape[1:3]
    return video_motion(config, h, w, estimate_clips(frames, dec_keyframes, interval, config, keyframes, lam=lam))


def motion_n_bytes(motion: VideoMotion) -> int:
    """Coded bytes of a video's motion, clip payloads only (the chunk adds its 16-byte header, 6 per clip and 16 of framing)."""
    return sum(len(encode_clip(q)[2]) for q in motion.clips)


# What the encoder chooses among, per video, by rate + lambda x distortion (``choose_motion``): whole and
# half-pixel steps on 32- and 16-pixel cells. On the README demo at keyframe quality 20 they gave 35.13 /
# 35.27 / 35.64 / 35.75 dB of floor for 1190 / 1586 / 4558 / 5958 bytes of motion (benchmarks/results/refine),
# the keyframes 0.07-0.14 dB per kB there: which pays depends on the video and on the keyframes' slope.
MOTION_CANDIDATES = (MotionConfig(32, 4), MotionConfig(32, 2), MotionConfig(16, 4), MotionConfig(16, 2))
# Clips of a video on which the candidates are compared (evenly spaced; all of a shorter video); the winner
# keeps their fields and is estimated on the other clips, so a long video costs one estimate plus this sample.
SAMPLE_CLIPS = 6


def sample_clips(counts: Sequence[int], n: int = SAMPLE_CLIPS) -> list[int]:
    """``n`` evenly spaced clips, ascending, among those with in-between frames (``counts``: each clip's
    count, ``clip_inbetween_counts``); all of them when there are no more. A clip with nothing between its
    keyframes (two keyframes side by side, on a cut) has no motion to measure and takes no slot."""
    moving = [c for c, k in enumerate(counts) if k]
    if len(moving) <= n:
        return moving
    picks = sorted({round(i * (len(moving) - 1) / (n - 1)) for i in range(n)}) if n > 1 else [len(moving) // 2]
    return [moving[i] for i in picks]


def clips_floor_sse(frames: Sequence[np.ndarray], dec_keyframes: np.ndarray, interval: int, config: MotionConfig,
                    clips: dict[int, np.ndarray], keyframes: np.ndarray | None = None) -> int:
    """Squared error (8-bit RGB, summed) of the motion floor on the in-between frames of ``clips``
    ({clip: fields}, ``estimate_clips``) against ``frames``: the decoder's own integers."""
    first, start_kf, end_kf, *_ = clip_layout(len(frames), interval, keyframes=keyframes)
    coded = video_motion(config, *dec_keyframes.shape[1:3], {})  # grid, step and interpolation as the file has them
    sse = 0
    for c, q in clips.items():
        if not q.shape[0]:
            continue
        pred = floor_clip(dec_keyframes[start_kf[c]], dec_keyframes[end_kf[c]], q, coded)
        target = np.stack(_clip_targets(frames, int(first[c]), q.shape[0]))
        sse += int(np.sum((pred.astype(np.int64) - target) ** 2))
    return sse


@dataclass(frozen=True)
class MotionChoice:
    config: MotionConfig
    n_bytes: int        # coded motion bytes of the compared clips (clip payloads)
    sse: int            # the floor's squared error on their in-between frames (8-bit RGB, summed)
    cost: float         # sse + lam * 8 * n_bytes


def choose_motion(frames: Sequence[np.ndarray], dec_keyframes: np.ndarray, interval: int,
                  candidates: Sequence[MotionConfig], lam: float, keyframes: np.ndarray | None = None,
                  n_sample: int = SAMPLE_CLIPS, known: dict[MotionConfig, dict[int, np.ndarray]] | None = None
                  ) -> tuple[VideoMotion, MotionChoice, list[MotionChoice]]:
    """A video's motion with the candidate of least sse + lam x bits on ``sample_clips`` of its clips:
    the rate is the coded bytes (nvcodec.bitstream.motion), the distortion the motion floor's squared
    error on those clips' in-between frames (8-bit RGB), so ``lam`` is squared error per bit, the price
    of a bit elsewhere in the file (``nvcodec.rate.keyframe_slope``).  ``known``: fields already
    estimated on the sample, by config.  The winner's fields are then refined at ``lam``
    (``refine_clip``) on every clip.  Returns (the whole video's motion, best, every candidate): the
    candidates' costs are those of block matching alone."""
    if not candidates:
        raise ValueError("choose_motion: no candidates")
    h, w = dec_keyframes.shape[1:3]
    counts = clip_inbetween_counts(len(frames), interval, keyframes)
    n_clips = len(counts)
    sample = sample_clips(counts, n_sample)
    estimated = {}
    results = []
    for config in candidates:
        clips = dict((known or {}).get(config) or {})
        missing = [c for c in sample if c not in clips]
        clips.update(estimate_clips(frames, dec_keyframes, interval, config, keyframes, missing))
        estimated[config] = clips
        n_bytes = sum(len(encode_clip(clips[c])[2]) for c in sample)
        sse = clips_floor_sse(frames, dec_keyframes, interval, config, {c: clips[c] for c in sample}, keyframes)
        results.append(MotionChoice(config, n_bytes, sse, sse + lam * 8 * n_bytes))
    best = min(results, key=lambda r: r.cost)                     # ties: the candidate listed first
    clips = refine_clips(frames, dec_keyframes, interval, best.config, estimated[best.config], lam, keyframes)
    clips.update(estimate_clips(frames, dec_keyframes, interval, best.config, keyframes,
                                [c for c in range(n_clips) if c not in clips], lam=lam))
    return video_motion(best.config, h, w, clips), best, results
