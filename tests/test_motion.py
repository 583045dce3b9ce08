"""Coded motion (nvcodec.motion): the motion floor's integer arithmetic, estimation, and the odd inputs."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nvcodec.bitstream.motion import INTERP_BILINEAR, INTERP_NEAREST, VideoMotion, read_motion, write_motion
from nvcodec.metrics import psnr_per_frame
from nvcodec.motion import (
    MotionConfig,
    choose_motion,
    estimate_field,
    estimate_video,
    floor_video,
    fuse,
    motion_n_bytes,
    pixel_field,
    refine_clip,
    sample_clips,
    warp,
)
from nvcodec.rate import SlopeProbe, allocate_motion, keyframe_lambda, keyframe_slope


def texture(rng, height, width) -> np.ndarray:
    """A smooth random RGB texture, uint8 (block matching needs structure, not white noise)."""
    x = rng.integers(0, 256, (height, width, 3)).astype(np.float64)
    for _ in range(4):
        x = (x + np.roll(x, 1, 0) + np.roll(x, 1, 1) + np.roll(x, (1, 1), (0, 1))) / 4
    return np.clip((x - x.mean()) * 5 + 128, 0, 255).astype(np.uint8)


def panning(n_frames=9, height=48, width=64, dy=1, dx=2, seed=0) -> np.ndarray:
    """Frames of a camera pan: frame i is the texture moved by (i dy, i dx)."""
    big = texture(np.random.default_rng(seed), height + 80, width + 80)
    return np.stack([big[40 + i * dy:40 + i * dy + height, 40 + i * dx:40 + i * dx + width] for i in range(n_frames)])


def test_floor_is_bit_exact():
    """The motion floor of fixed inputs is a fixed byte string (integer arithmetic only; FORMAT.md 14.3)."""
    rng = np.random.default_rng(3)
    kf = rng.integers(0, 256, (2, 20, 28, 3)).astype(np.uint8)
    q = rng.integers(-9, 10, (7, 2, 2, 3, 4)).astype(np.int32)
    for interp, expected in ((INTERP_NEAREST, "31636849334047d1fe5af4eb55398f52"),
                             (INTERP_BILINEAR, "e26d8c8c40d9915900a63b2a839102a1")):
        m = VideoMotion(8, 3, interp, 3, 4, (q, np.zeros((0, 2, 2, 3, 4), np.int32)))
        out = floor_video(kf, m, 9, 8)
        digest = hashlib.md5(out.tobytes()).hexdigest()
        assert digest == expected, digest


def reference_floor_pixel(kf_s, kf_e, q_s, q_e, grid, step_qpel, interp, y, x, w_s, w_e):
    """One pixel of the motion floor in plain Python integers, written from FORMAT.md 14.3."""
    h, w = kf_s.shape[:2]
    rows, cols = q_s.shape[1:]

    def axis(p, n_cells):  # (lower cell, upper cell, weight of the upper in 1/(2 grid))
        u = 2 * p + 1 - grid
        c0 = u // (2 * grid)
        if c0 < 0 or c0 >= n_cells - 1:
            c = min(max(c0, 0), n_cells - 1)
            return c, c, 0
        return c0, c0 + 1, u - 2 * grid * c0

    def vector(q, comp):  # 1/64 pixel
        if interp == INTERP_NEAREST:
            return q[comp][min(y // grid, rows - 1)][min(x // grid, cols - 1)] * step_qpel * 16
        y0, y1, wy = axis(y, rows)
        x0, x1, wx = axis(x, cols)
        g2 = 2 * grid
        v = lambda r, c: int(q[comp][r][c]) * step_qpel * 16  # noqa: E731
        acc = ((g2 - wy) * (g2 - wx) * v(y0, x0) + (g2 - wy) * wx * v(y0, x1)
               + wy * (g2 - wx) * v(y1, x0) + wy * wx * v(y1, x1))
        return (acc + g2 * g2 // 2) // (g2 * g2)

    def sample(kf, q, ch):
        sy, sx = 64 * y + vector(q, 0), 64 * x + vector(q, 1)
        iy, fy, ix, fx = sy >> 6, sy & 63, sx >> 6, sx & 63
        at = lambda yy, xx: int(kf[min(max(yy, 0), h - 1)][min(max(xx, 0), w - 1)][ch])  # noqa: E731
        top = (64 - fx) * at(iy, ix) + fx * at(iy, ix + 1)
        bottom = (64 - fx) * at(iy + 1, ix) + fx * at(iy + 1, ix + 1)
        return (64 - fy) * top + fy * bottom

    den = (w_s + w_e) * 4096
    return [(w_s * sample(kf_s, q_s, ch) + w_e * sample(kf_e, q_e, ch) + den // 2) // den for ch in range(3)]


@pytest.mark.parametrize("interp", [INTERP_NEAREST, INTERP_BILINEAR])
def test_floor_matches_a_scalar_reading_of_the_spec(interp):
    """Every pixel of the numpy floor equals a plain-integer implementation of FORMAT.md 14.3."""
    rng = np.random.default_rng(8)
    kf = rng.integers(0, 256, (2, 11, 13, 3)).astype(np.uint8)
    q = rng.integers(-40, 41, (3, 2, 2, 3, 4)).astype(np.int32)
    m = VideoMotion(4, 3, interp, 3, 4, (q, np.zeros((0, 2, 2, 3, 4), np.int32)))
    out = floor_video(kf, m, 5, 4)
    for j in range(3):
        for y in range(11):
            for x in range(13):
                want = reference_floor_pixel(kf[0], kf[1], q[j, 0], q[j, 1], 4, 3, interp, y, x, 3 - j, j + 1)
                assert out[j + 1, y, x].tolist() == want, (j, y, x)


def test_zero_motion_is_the_integer_blend():
    """With zero motion the floor is round-half-up of ((e-i) start + (i-s) end) / (e-s), keyframes as they are."""
    rng = np.random.default_rng(4)
    kf = rng.integers(0, 256, (2, 6, 5, 3)).astype(np.uint8)
    out = floor_video(kf, None, 9, 8)
    a, b = kf.astype(np.int64)
    for i in range(9):
        assert np.array_equal(out[i], ((8 - i) * a + i * b + 4) // 8)


def test_warp_by_whole_pixels_is_a_shift():
    """A whole-pixel vector samples ref at p + v exactly (x 4096), clamped at the border."""
    ref = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    field = np.zeros((2, 5, 6), np.int64)
    field[0], field[1] = 64, -128  # dy = +1, dx = -2 pixels
    out = warp(ref, field)
    yy = np.clip(np.arange(5)[:, None] + 1, 0, 4)
    xx = np.clip(np.arange(6)[None, :] - 2, 0, 5)
    assert np.array_equal(out, ref[yy, xx].astype(np.int64) << 12)
    assert np.array_equal(fuse(out, out, 3, 5), ref[yy, xx])


def test_pixel_field_of_a_uniform_field_is_uniform_and_a_ramp_stays_between_its_ends():
    """Per-pixel motion: a uniform coarse field stays uniform; bilinear interpolation is monotone between cells."""
    q = np.full((2, 3, 4), -5)
    for interp in (INTERP_NEAREST, INTERP_BILINEAR):
        assert np.all(pixel_field(q, 2, 8, interp, 21, 30) == -5 * 2 * 16)
    ramp = np.zeros((2, 1, 4), np.int64)
    ramp[1, 0] = [0, 4, 8, 12]
    f = pixel_field(ramp, 4, 8, INTERP_BILINEAR, 8, 32)[1, 0]
    assert f[0] == 0 and f[-1] == 12 * 4 * 16 and np.all(np.diff(f) >= 0) and len(set(f.tolist())) > 4


@pytest.mark.parametrize("config", [MotionConfig(16, 4), MotionConfig(8, 4, search_px=12), MotionConfig(16, 2)])
def test_a_pan_is_recovered(config):
    """Block matching against the keyframes finds a camera pan exactly where the content is inside both
    keyframes, and the floor is near-lossless there while the blend is not."""
    frames = panning(height=64, width=80, dy=1, dx=1)
    kf = frames[[0, 8]]
    m = estimate_video(frames, kf, 8, config)
    inner = m.clips[0][:, :, :, 1:-1, 1:-1] * config.step_qpel // 4  # (7, 2, 2, rows - 2, cols - 2) in pixels
    for j in range(7):
        i = j + 1
        assert np.all(inner[j, 0] == i) and np.all(inner[j, 1] == i - 8)
    g = config.grid + config.grid // 2  # pixels whose bilinear vectors come from inner cells only
    crop = (slice(1, 8), slice(g, -g), slice(g, -g))
    floor = floor_video(kf, m, 9, 8)
    blend = floor_video(kf, None, 9, 8)
    assert psnr_per_frame(frames[crop], floor[crop]).min() > 60 > psnr_per_frame(frames[crop], blend[crop]).max()


def test_static_video_has_zero_motion_and_the_floor_is_exact():
    """A still video gives all-zero motion, a few bytes of it, and a floor equal to the frames."""
    frames = np.repeat(texture(np.random.default_rng(1), 24, 40)[None], 10, axis=0)
    kf = frames[[0, 8, 9]]
    m = estimate_video(frames, kf, 8, MotionConfig(8, 4))
    assert all(not q.any() for q in m.clips)
    assert motion_n_bytes(m) <= 8
    assert np.array_equal(floor_video(kf, m, 10, 8), frames)


def test_frame_smaller_than_one_cell_and_one_frame_video():
    """A 5x7 frame with 32-pixel cells has one cell; a one-frame video has no motion; both round-trip."""
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (9, 5, 7, 3)).astype(np.uint8)
    kf = frames[[0, 8]]
    m = estimate_video(frames, kf, 8, MotionConfig(32, 4))
    assert (m.rows, m.cols) == (1, 1) and m.clips[0].shape == (7, 2, 2, 1, 1)
    assert read_motion(write_motion(0, m), [(5, 7, 9)], 8)[1] == m
    assert floor_video(kf, m, 9, 8).shape == frames.shape
    one = frames[:1]
    m1 = estimate_video(one, one, 8, MotionConfig(32, 4))
    assert [q.shape[0] for q in m1.clips] == [0]
    assert read_motion(write_motion(0, m1), [(5, 7, 1)], 8)[1] == m1
    assert np.array_equal(floor_video(one, m1, 1, 8), one)


def test_scene_cut_inside_a_clip_gives_valid_motion():
    """A cut inside a clip (the estimator cannot match) still yields bounded motion that codes and decodes."""
    a, b = panning(seed=1), panning(seed=2, dx=-1)
    frames = np.concatenate([a[:4], b[4:]])
    kf = frames[[0, 8]]
    m = estimate_video(frames, kf, 8, MotionConfig(16, 4))
    assert max(int(np.abs(q).max()) for q in m.clips if q.size) <= 8 * (16 + 1)  # priors scale at most x interval
    assert read_motion(write_motion(0, m), [(48, 64, 9)], 8)[1] == m
    floor = floor_video(kf, m, 9, 8)
    assert floor.dtype == np.uint8 and floor.shape == frames.shape


def test_priors_recover_what_the_search_range_misses():
    """A neighbour's (scaled) motion offered as a prior is used where the searched range cannot reach."""
    frames = panning(n_frames=2, dy=0, dx=7)
    config = MotionConfig(16, 4, search_px=3)
    prior = np.zeros((2, 3, 4), np.int64)
    prior[1] = -6  # frame 0 at p is frame 1 at p - 7
    without = estimate_field(frames[0], frames[1], config)
    with_prior = estimate_field(frames[0], frames[1], config, [prior])
    assert np.all(with_prior[1, :, 1:] == -7) and np.all(with_prior[0] == 0)
    assert not np.any(without[1, :, 1:] == -7)


def test_choose_motion_trades_rate_against_distortion():
    """lambda 0 picks the least distortion; a huge lambda picks the fewest motion bytes; the motion
    returned is the chosen candidate's, as a whole-video estimate gives it."""
    top, bottom = panning(height=64, dx=1, seed=3), panning(height=64, dx=-1, seed=4)
    frames = np.concatenate([top[:, :32], bottom[:, 32:]], axis=1)  # two motions: one vector cannot serve both
    kf = frames[[0, 8]]
    candidates = [MotionConfig(64, 4), MotionConfig(8, 4)]
    m0, best0, all0 = choose_motion(frames, kf, 8, candidates, lam=0.0)
    assert best0.sse == min(r.sse for r in all0)
    m_big, best_big, all_big = choose_motion(frames, kf, 8, candidates, lam=1e6)
    assert best_big.n_bytes == min(r.n_bytes for r in all_big)
    assert best0.config.grid == 8 and best_big.config.grid == 64
    for m, best in ((m0, best0), (m_big, best_big)):
        assert (m.grid, m.step_qpel) == (best.config.grid, best.config.step_qpel)
        refined = estimate_video(frames, kf, 8, best.config, lam=0.0 if m is m0 else 1e6)
        np.testing.assert_array_equal(m.clips[0], refined.clips[0])


def test_choose_motion_on_a_sample_of_clips_gives_the_whole_video_estimate():
    """A long video's candidates are compared on a few clips; the winner's fields on every clip, those
    compared included, equal a whole-video estimate, and fields passed as known are not estimated again."""
    frames = panning(n_frames=40, height=32, width=48, dy=1, dx=1, seed=5)     # 5 clips, the last of 7
    kf = frames[[0, 8, 16, 24, 32, 39]]
    candidates = [MotionConfig(16, 4), MotionConfig(16, 2)]
    assert sample_clips([7] * 5, 2) == [0, 4] and sample_clips([7] * 3, 6) == [0, 1, 2]
    assert sample_clips([7] * 9, 3) == [0, 4, 8]
    # clips with nothing between their keyframes take no slot: the sample spreads over the others
    assert sample_clips([7, 0, 7, 0, 0, 7, 7], 3) == [0, 5, 6] and sample_clips([0, 0, 3], 6) == [2]
    assert sample_clips([0, 0], 2) == []
    m, best, results = choose_motion(frames, kf, 8, candidates, lam=0.0, n_sample=2)
    whole = estimate_video(frames, kf, 8, best.config, lam=0.0)
    assert len(m.clips) == 5
    for a, b in zip(m.clips, whole.clips):
        np.testing.assert_array_equal(a, b)
    # known fields are taken as given: poisoned ones change the comparison's distortion
    poisoned = {c: np.full_like(estimate_video(frames, kf, 8, best.config).clips[c], 3) for c in (0, 4)}
    _, _, with_known = choose_motion(frames, kf, 8, [MotionConfig(16, 4)], lam=0.0, n_sample=2,
                                     known={MotionConfig(16, 4): poisoned})
    assert with_known[0].sse > [r for r in results if r.config == MotionConfig(16, 4)][0].sse


def test_keyframe_slope_prices_a_bit_by_what_coarser_keyframes_lose():
    """Noisier keyframes for fewer bytes: the floor's squared error grows, so a bit has a positive price;
    the in-between error is counted on a sample and scaled, the keyframes' own error exactly; a finer
    probe (both deltas negative) gives the same price."""
    frames = panning(n_frames=17, height=32, width=48, dy=0, dx=1, seed=6)
    positions = np.array([0, 8, 16])
    kf = frames[positions]
    noisy = np.clip(kf.astype(np.int16) + np.random.default_rng(0).integers(-6, 7, kf.shape), 0, 255).astype(np.uint8)
    probe, clips = keyframe_slope(frames, 8, None, kf, noisy, 1000, 600, MotionConfig(16, 4))
    # clip 2 (the last keyframe alone) has nothing to measure: the sample is the two others
    assert sorted(clips) == [0, 1] and probe.bits_delta == 3200
    own = int(np.sum((noisy.astype(np.int64) - kf) ** 2))
    assert probe.sse_delta > own > 0
    lam = keyframe_lambda([probe])
    assert lam == pytest.approx(probe.sse_delta / 3200)
    finer = SlopeProbe(-probe.sse_delta, -probe.bits_delta)
    assert keyframe_lambda([finer]) == pytest.approx(lam)
    assert keyframe_lambda([probe, SlopeProbe(0.0, 3200)]) == pytest.approx(lam / 2)   # pooled
    assert keyframe_lambda([SlopeProbe(5.0, 0)]) == 0.0


def test_allocate_motion_follows_the_price_of_a_keyframe_bit():
    """Keyframes that lose much for one byte saved make bits dear: every video takes its cheapest motion;
    keyframes that lose nothing make bits free: every video takes its least-error motion. The motion
    returned is the chosen config's, and each video's frames are read through its own reader."""
    top, bottom = panning(height=64, dx=1, seed=3), panning(height=64, dx=-1, seed=4)
    split = np.concatenate([top[:, :32], bottom[:, 32:]], axis=1)       # as in the choose_motion test above
    videos = [split, panning(height=32, width=32, dy=1, dx=2, seed=7)]
    decoded = [v[[0, 8]] for v in videos]
    candidates = [MotionConfig(64, 4), MotionConfig(8, 2)]
    reads = []

    def reader(v):
        def read():
            reads.append(v)
            return videos[v]
        return read

    def run(probe):
        return allocate_motion([(reader(v), None) for v in range(2)], 8, decoded, [5000, 5000], probe, 44,
                               candidates)

    noisy = [np.clip(k.astype(np.int16) + 40 * (np.indices(k.shape).sum(0) % 2), 0, 255).astype(np.uint8)
             for k in decoded]
    dear = run(lambda v: (4999, noisy[v]))
    free = run(lambda v: (1000, decoded[v]))
    assert dear.lam > 1e4 and free.lam == 0.0 and sorted(set(reads)) == [0, 1]
    for v, video in enumerate(videos):
        results = {r.config: r for r in choose_motion(video, decoded[v], 8, candidates, 0.0)[2]}
        assert dear.chosen[v] == min(results, key=lambda c: results[c].n_bytes)
        assert free.chosen[v] == min(results, key=lambda c: results[c].sse)
        for alloc in (dear, free):
            assert (alloc.motion[v].grid, alloc.motion[v].step_qpel) == (alloc.chosen[v].grid, alloc.chosen[v].step_qpel)
    assert dear.chosen != free.chosen


def test_config_refuses_bad_values():
    """MotionConfig names the bad field."""
    with pytest.raises(ValueError, match="MotionConfig.grid must be an int 4..1024"):
        MotionConfig(grid=2)
    with pytest.raises(ValueError, match="MotionConfig.interp must be one of"):
        MotionConfig(interp="cubic")


def test_fused_choice_never_fuses_worse_than_zero_motion_or_the_raw_estimates():
    """Still content under fresh noise in every frame: each field matched on its own finds spurious vectors;
    choosing per cell by the *fused* error (nearest cells: the choice is exact per cell) is never worse
    than zero motion or than the two raw estimates, and strictly better than the raw estimates here."""
    from nvcodec.motion import _fused_choice

    rng = np.random.default_rng(7)
    still = np.full((32, 48, 3), 120, np.int16)
    frames = np.clip(still[None] + rng.integers(-12, 13, (9, 32, 48, 3)), 0, 255).astype(np.uint8)
    kf_start, kf_end = frames[0], frames[8]
    config = MotionConfig(grid=8, step_qpel=4, search_px=4, interp="nearest")

    def floor_sse(q, j):
        warps = [warp(kf, pixel_field(q[k], 4, 8, INTERP_NEAREST, 32, 48)) for k, kf in enumerate((kf_start, kf_end))]
        return float(((fuse(*warps, 8 - (j + 1), j + 1).astype(np.int64) - frames[j + 1]) ** 2).sum())

    gained = 0.0
    for j in range(7):
        raw = np.stack([estimate_field(frames[j + 1], kf_start, config), estimate_field(frames[j + 1], kf_end, config)])
        chosen = _fused_choice(frames[j + 1], kf_start, kf_end, raw, 8 - (j + 1), j + 1, config)
        zero = np.zeros_like(raw)
        assert floor_sse(chosen, j) <= min(floor_sse(raw, j), floor_sse(zero, j))
        gained += floor_sse(raw, j) - floor_sse(chosen, j)
    assert gained > 0


def zooming(n_frames=9, height=64, width=80, seed=7) -> np.ndarray:
    """Frames of a slow zoom into a texture: the motion varies smoothly inside every cell, which
    block-constant matching misses and the decoder's bilinear vectors can follow."""
    big = texture(np.random.default_rng(seed), 2 * height, 2 * width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for i in range(n_frames):
        z = 1.0 + 0.02 * i
        sy = np.clip(((yy - height / 2) / z + height).round().astype(int), 0, 2 * height - 1)
        sx = np.clip(((xx - width / 2) / z + width).round().astype(int), 0, 2 * width - 1)
        frames.append(big[sy, sx])
    return np.stack(frames)


def _floor_sse(frames, kf, q, config) -> int:
    m = VideoMotion(config.grid, config.step_qpel, INTERP_BILINEAR, q.shape[-2], q.shape[-1],
                    (q, np.zeros((0,) + q.shape[1:], np.int32)))
    out = floor_video(kf, m, len(frames), 8)
    return int(np.sum((out[1:-1].astype(np.int64) - frames[1:-1]) ** 2))


def test_refinement_lowers_the_floors_error_and_prices_bits():
    """Refining block-matched fields against the decoder's own floor: at lambda 0 the exact integer floor's
    squared error falls; at a high price of a bit the refined fields cost fewer bytes than block
    matching's and less error + lambda x bits, with the real coder's bytes."""
    frames = zooming()
    kf = frames[[0, 8]]
    config = MotionConfig(16, 2)
    q = estimate_video(frames, kf, 8, config).clips[0]
    free = refine_clip(frames[1:8], kf[0], kf[1], q, config, lam=0.0)
    assert free.dtype == np.int32 and free.shape == q.shape and not np.array_equal(free, q)
    assert _floor_sse(frames, kf, free, config) < 0.9 * _floor_sse(frames, kf, q, config)
    bytes_of = lambda fields: motion_n_bytes(VideoMotion(16, 2, INTERP_BILINEAR, 4, 5, (fields,)))
    dear = refine_clip(frames[1:8], kf[0], kf[1], q, config, lam=1e7)
    assert bytes_of(dear) < bytes_of(q) < bytes_of(free)      # dear bits: some error traded for fewer bytes
    cost = lambda fields: _floor_sse(frames, kf, fields, config) + 1e7 * 8 * bytes_of(fields)
    assert cost(dear) < cost(q)
    # estimate_video with a price is block matching then this refinement, clip by clip
    np.testing.assert_array_equal(estimate_video(frames, kf, 8, config, lam=0.0).clips[0], free)


def test_refinement_parity_cells_own_disjoint_pixels():
    """A move of one parity class's cells changes only the pixels each of them owns (the premise of scoring
    the cells of a class by one warp): checked against the decoder's pixel_field, edges and a partial
    last cell included."""
    from nvcodec.motion import _parity_cells

    h, w, grid = 45, 61, 8                                  # 6 x 8 cells, the last ones partial
    rows, cols = 6, 8
    rng = np.random.default_rng(1)
    base = rng.integers(-20, 20, (2, rows, cols))
    before = pixel_field(base, 4, grid, INTERP_BILINEAR, h, w)
    for a in (0, 1):
        for b in (0, 1):
            (ry, sy), (rx, sx) = _parity_cells(h, grid, rows, a), _parity_cells(w, grid, cols, b)
            assert sy[0] == 0 and sx[0] == 0 and list(ry) == list(range(a, rows, 2)) and list(rx) == list(range(b, cols, 2))
            owner_y = np.repeat(ry, np.diff(np.append(sy, h)))
            owner_x = np.repeat(rx, np.diff(np.append(sx, w)))
            for cy in ry:
                for cx in rx:
                    moved = base.copy()
                    moved[1, cy, cx] += 5
                    changed = np.any(pixel_field(moved, 4, grid, INTERP_BILINEAR, h, w) != before, axis=0)
                    ys, xs = np.nonzero(changed)
                    assert ys.size and np.all(owner_y[ys] == cy) and np.all(owner_x[xs] == cx)
    assert _parity_cells(10, 16, 1, 1)[0].size == 0          # a one-cell axis has no odd class


def test_refinement_of_odd_fields():
    """No in-between frame, nearest interpolation (not refined: the move scores assume bilinear vectors), a
    frame smaller than one cell, and a static clip (zero motion stays zero)."""
    frames = panning(n_frames=9, height=12, width=10)
    kf = frames[[0, 8]]
    empty = np.zeros((0, 2, 2, 1, 1), np.int32)
    assert refine_clip(frames[1:1], kf[0], kf[1], empty, MotionConfig(16, 4), 100.0).shape == empty.shape
    q = estimate_video(frames, kf, 8, MotionConfig(16, 4)).clips[0]
    near = MotionConfig(16, 4, interp="nearest")
    np.testing.assert_array_equal(refine_clip(frames[1:8], kf[0], kf[1], q, near, 0.0), q)
    small = refine_clip(frames[1:8], kf[0], kf[1], q, MotionConfig(16, 4), 0.0)
    assert small.shape == q.shape
    still = np.repeat(frames[:1], 9, axis=0)
    zero = np.zeros((7, 2, 2, 1, 1), np.int32)
    np.testing.assert_array_equal(refine_clip(still[1:8], still[0], still[8], zero, MotionConfig(16, 4), 0.0), zero)
