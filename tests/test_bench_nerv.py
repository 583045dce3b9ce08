"""benchmarks.nerv: the NeRV baseline's shapes, quantisation, real coded size, and a tiny fit."""

import dataclasses

import numpy as np
import pytest
import torch

from benchmarks import nerv


def test_positional_encoding_is_sin_cos_at_powers_of_1_25():
    """t -> [sin(1.25^l·π·t)..., cos(1.25^l·π·t)...]; t = 0 gives zeros then ones."""
    t = torch.tensor([0.0, 0.5])
    pe = nerv.positional_encoding(t, 3)
    assert pe.shape == (2, 6)
    assert torch.equal(pe[0], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    assert pe[1, 1].item() == pytest.approx(np.sin(1.25 * np.pi * 0.5))


def test_network_outputs_frames_of_the_coding_size():
    """The upsampling blocks reach exactly H x W (here 48x64 from a 3x4 grid), values in [0, 1]."""
    arch = nerv.choose_arch(48, 64, n_frames=10, target_bpp=0.5, min_channels=4)
    assert arch.grid == (3, 4) and arch.strides == (2, 2, 2, 2)
    y = nerv.NeRV(arch)(torch.rand(5))
    assert y.shape == (5, 3, 48, 64) and 0 <= y.min() and y.max() <= 1


def test_model_size_follows_the_target_bpp():
    """A 4x larger bit budget buys a wider network whose 8-bit weights still fit it."""
    small = nerv.choose_arch(128, 160, 300, 0.02, 4)
    big = nerv.choose_arch(128, 160, 300, 0.08, 4)
    assert big.c0 > small.c0
    assert nerv.n_params(big) * 8 <= 0.08 * 300 * 128 * 160


def test_quantisation_is_8_bit_per_channel_within_half_a_step():
    """Integers in [-127, 127]; dequantised weights within half a step of the floats."""
    state = {"w": torch.randn(6, 3, 3, 3), "b": torch.randn(6)}
    q = nerv.quantize(state)
    for name, (ints, step) in q.items():
        assert ints.dtype == np.int32 and np.abs(ints).max() <= 127
        shape = (-1, 1, 1, 1) if ints.ndim == 4 else (1,)
        err = np.abs(ints * step.reshape(shape) - state[name].numpy())
        assert np.all(err <= step.reshape(shape) / 2 + 1e-7)
    assert q["w"][1].shape == (6,) and q["b"][1].shape == (1,)


def test_tiny_fit_learns_and_the_rate_is_real_coded_bytes():
    """60 epochs on 6 frames of a moving gradient: > 20 dB (grey is 10.7); bytes from encode_ints."""
    torch.set_num_threads(1)
    yy, xx = np.mgrid[0:16, 0:32]
    frames = np.stack([np.stack([8 * xx, 16 * yy, 255 - 8 * xx - 10 * i], -1) for i in range(6)])
    frames = frames.clip(0, 255).astype(np.uint8)                 # (6, 16, 32, 3) moving gradient
    cfg = nerv.NervConfig(target_bpp=2.0, epochs=60, batch_size=1)
    n_bytes, decoded, arch, encode_s, decode_s = nerv.code_video(frames, cfg)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    from nvcodec.metrics import psnr_per_frame
    assert psnr_per_frame(frames, decoded).mean() > 20
    qstate = nerv.quantize(nerv.fit(frames, arch, cfg))
    assert n_bytes == nerv.coded_bytes(qstate, arch)
    n_steps = sum(step.size for _, step in qstate.values())
    # at most: 8 bits per weight + float32 steps + the JSON arch + coder side information
    assert n_bytes <= nerv.n_params(arch) + 4 * n_steps + 200 + 64 * len(qstate)


def test_match_ladder_gives_one_config_per_nvcodec_bpp():
    """'match' turns each nvcodec point's bpp into a target; named entries pass through."""
    entries = nerv.ladder(["match", "quick"], matched_bpps=[0.05, 0.1])
    assert [c.target_bpp for c, _ in entries] == [0.05, 0.1, nerv.LADDER["quick"].target_bpp]
    assert entries[0][0].epochs == nerv.LADDER["mid"].epochs
    assert all(modes == ("per-video", "corpus") for _, modes in entries)


def test_ladder_entries_take_overrides():
    """NAME:KEY=VALUE overrides a schedule; 'match' keeps the matched bpp over any target_bpp;
    mode= picks one of the two modes."""
    (cfg, modes), (quick, quick_modes) = nerv.ladder(
        ["match:epochs=30:batch_size=8:target_bpp=9", "quick:lr=0.001:mode=corpus"], matched_bpps=[0.05])
    assert (cfg.target_bpp, cfg.epochs, cfg.batch_size, cfg.lr) == (0.05, 30, 8, nerv.LADDER["mid"].lr)
    assert modes == ("per-video", "corpus")
    assert quick == dataclasses.replace(nerv.LADDER["quick"], lr=0.001) and quick_modes == ("corpus",)
    for bad in ("quick:epochs", "quick:depth=3", "quick:epochs=many", "quick:epochs=0", "quick:mode=both"):
        with pytest.raises(ValueError):
            nerv.ladder([bad])


def test_unknown_ladder_names_and_bad_configs_are_refused():
    """Ladder names are checked, and so is the config."""
    with pytest.raises(ValueError, match="unknown NeRV ladder"):
        nerv.ladder(["huge"])
    with pytest.raises(ValueError, match="target_bpp"):
        nerv.NervConfig(target_bpp=0)
