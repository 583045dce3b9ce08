"""Coded motion refined through the fitted network (``nvcodec.motion_fit``) and its float warp."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import nvcodec
from nvcodec import motion_fit
from nvcodec.bitstream import NvcReader
from nvcodec.bitstream.motion import INTERP_BILINEAR, INTERP_NEAREST, clip_inbetween_counts, motion_grid
from nvcodec.config import ModelConfig
from nvcodec.errors import NvcInputError
from nvcodec.info import describe, format_text
from nvcodec.media import read_frames
from nvcodec.metrics import psnr_per_frame
from nvcodec.model import DNeRV
from nvcodec.motion import FloatWarp, MotionConfig, floor_video, pixel_field, video_motion, warp
from nvcodec.motion_fit import refine_video
from nvcodec.presets import build_config
from tests.test_codec import write_video
from tests.test_motion import panning, texture
from tests.test_refine import VIDEOS

# the refiner alone (no trunk), untrained: its output is the fused warped pair, the motion floor
NET = ModelConfig(tile_h=32, tile_w=32, c0=0, enc_width=4, embed_levels=4, mlp_width=8, min_width=4, clip_length=8,
                  motion=True, refine_width=8, refine_layers=3)


def _zero_motion(frames: np.ndarray, grid: int = 16, step_qpel: int = 4):
    h, w = frames.shape[1:3]
    rows, cols = motion_grid(h, w, grid)
    config = MotionConfig(grid, step_qpel)
    counts = clip_inbetween_counts(len(frames), 8)    # keyframes 0, 8 and the last
    return video_motion(config, h, w, {c: np.zeros((n, 2, 2, rows, cols), np.int32) for c, n in enumerate(counts)})


def test_float_warp_is_the_decoders_warp_up_to_its_rounding():
    """FloatWarp (grid_sample on the cell interpolation as matrices) against pixel_field + warp: the same
    pictures within the integers' rounding, and a gradient in the fields."""
    rng = np.random.default_rng(2)
    h, w, grid, step = 37, 53, 16, 2
    rows, cols = motion_grid(h, w, grid)
    ref = texture(rng, h, w)
    q = rng.integers(-12, 13, (2, rows, cols))
    exact = warp(ref, pixel_field(q, step, grid, INTERP_BILINEAR, h, w)) / 4096.0          # (H, W, 3)
    fields = torch.tensor(q[None], dtype=torch.float32, requires_grad=True)
    out = FloatWarp(h, w, grid, rows, cols, step)(torch.from_numpy(ref).permute(2, 0, 1)[None].float(), fields)
    diff = np.abs(out[0].permute(1, 2, 0).detach().numpy() - exact)
    assert diff.mean() < 0.3 and diff.max() < 2.0      # half a lattice step off: a mean of 26 levels
    out.sum().backward()
    assert fields.grad is not None and fields.grad.abs().sum() > 0


def test_refinement_through_the_network_finds_motion_the_file_lacks(monkeypatch):
    """A pan coded with zero motion: through an untrained refiner (which outputs the floor) the fields move
    towards the pan, so the network's in-between frames and the decoder's own integer floor both gain,
    clips change, and the stats add up. The network run one tile at a time gives the same fields."""
    frames = panning(n_frames=15, height=48, width=64, dy=0, dx=1)
    dec_kf = frames[[0, 8, 14]]
    keyframes = np.array([0, 8, 14])
    motion = _zero_motion(frames)
    torch.manual_seed(0)
    model = DNeRV(NET)
    refined, stats = refine_video(model, frames, dec_kf, motion, 8, lam=1.0, iters=40, keyframes=keyframes)
    assert stats.clips == 2 and stats.changed >= 1 and stats.values == 12 * 48 * 64 * 3
    assert stats.psnr_after > stats.psnr_before + 3.0
    assert stats.bits_after > stats.bits_before                  # zero fields cost least; the gain paid for them
    assert any(not np.array_equal(a, b) for a, b in zip(refined.clips, motion.clips))
    assert all(q.dtype == np.int32 and q.shape == p.shape for q, p in zip(refined.clips, motion.clips))
    between = np.setdiff1d(np.arange(15), keyframes)

    def floor(m) -> float:                            # the in-between frames' PSNR of the file's own floor
        return psnr_per_frame(frames[between], floor_video(dec_kf, m, 15, 8, keyframes)[between]).mean()

    assert floor(refined) > floor(motion) + 3.0
    assert [p.requires_grad for p in model.parameters()] == [True] * len(list(model.parameters()))
    monkeypatch.setattr(motion_fit, "CHUNK_PIXELS", 1)
    one_tile, _ = refine_video(model, frames, dec_kf, motion, 8, lam=1.0, iters=40, keyframes=keyframes)
    assert all(np.array_equal(a, b) for a, b in zip(one_tile.clips, refined.clips))


def test_refinement_keeps_a_clip_that_would_cost_more_than_it_gains(monkeypatch):
    """At a price of a bit no gain repays, every clip keeps its fields; without steps or with nearest cells
    (no encoder default) the motion comes back as it was; a gradient that is not finite stops the descent
    before a step (a NaN field would crash grid_sample's backward) and the clip keeps its fields."""
    frames = panning(n_frames=15, height=48, width=64, dy=0, dx=1)
    dec_kf = frames[[0, 8, 14]]
    motion = _zero_motion(frames)
    model = DNeRV(NET)
    kept, stats = refine_video(model, frames, dec_kf, motion, 8, lam=1e12, iters=10)
    assert stats.changed == 0 and stats.sse_after == stats.sse_before and stats.bits_after == stats.bits_before
    assert all(np.array_equal(a, b) for a, b in zip(kept.clips, motion.clips))
    monkeypatch.setattr(motion_fit, "laplace_bits", lambda x, mean, b: x * float("nan"))
    kept, stats = refine_video(model, frames, dec_kf, motion, 8, lam=1.0, iters=5)
    assert stats.changed == 0 and all(np.array_equal(a, b) for a, b in zip(kept.clips, motion.clips))
    with pytest.raises(ValueError, match="does not fit"):
        refine_video(model, frames[:12], dec_kf, motion, 8, lam=1.0, iters=1)
    assert refine_video(model, frames, dec_kf, motion, 8, lam=1.0, iters=0)[0] is motion
    nearest = dataclasses.replace(motion, interp=INTERP_NEAREST)
    assert refine_video(model, frames, dec_kf, nearest, 8, lam=1.0, iters=10)[0] is nearest


def test_motion_iters_is_checked():
    assert build_config("fast").preset.motion_iters > 0
    for bad in (-1, 1.5, 10_001):
        with pytest.raises(NvcInputError, match="motion_iters"):
            build_config("tiny", motion=True, motion_iters=bad)


def test_an_encode_refines_its_motion_through_the_network_and_decodes_to_what_it_measured(tmp_path):
    """With motion_iters the encoder refines the coded motion after the fit (a static video, a one-frame
    video and one smaller than a cell included), says so, and the file decodes to its measured PSNR."""
    src = tmp_path / "in"
    for name, frames in VIDEOS.items():
        write_video(src / name, frames, (25, 1))
    lines = []
    report = nvcodec.encode(src, tmp_path / "a.nvc", build_config("tiny", motion=True, epochs=2, weight_bpp=64.0,
                                                                  motion_iters=3), log=lines.append)
    said = [line for line in lines if line.startswith("motion refined through the network")]
    assert len(said) == 1 and "of 4 clips changed" in said[0]
    changed = int(said[0].split(": ")[1].split(" of ")[0])
    with NvcReader(tmp_path / "a.nvc") as r:                    # the fit info records it; nvcodec info shows it
        assert r.metadata["fit"]["motion_iters"] == 3 and r.metadata["fit"]["motion_clips_changed"] == changed
    assert "motion_iters=3" in format_text(describe(tmp_path / "a.nvc"))
    with nvcodec.open(tmp_path / "a.nvc", device="cpu") as nvc:
        scores = [psnr_per_frame(np.stack(list(read_frames(src / v.name))), nvc.read(v.name)) for v in nvc.videos]
    assert np.mean(np.concatenate(scores)) == pytest.approx(report.psnr, abs=1e-9)


def test_cli_motion_iters_reaches_the_preset_and_is_checked(tmp_path, monkeypatch):
    """`nvcodec encode --motion-iters N` is the preset's motion_iters; a negative count is a usage error."""
    from click.testing import CliRunner

    from nvcodec.cli.main import main as cli

    seen = []
    monkeypatch.setattr(nvcodec, "encode", lambda inputs, output, config, **kw: seen.append(config) or None)
    runner = CliRunner()
    result = runner.invoke(cli, ["encode", str(tmp_path), str(tmp_path / "a.nvc"), "--motion-iters", "0"])
    assert result.exit_code == 0 and seen[0].preset.motion_iters == 0
    result = runner.invoke(cli, ["encode", str(tmp_path), str(tmp_path / "a.nvc"), "--motion-iters", "-1"])
    assert result.exit_code == 2 and "--motion-iters" in result.output
