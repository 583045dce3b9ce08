"""A network that consumes coded motion (``ModelConfig.motion``, FORMAT.md 14.4): inputs, network, file, decode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import nvcodec
from nvcodec.bitstream import NvcReader, VideoMotion
from nvcodec.bitstream.motion import INTERP_NEAREST, clip_inbetween_counts, motion_grid
from nvcodec.cli.main import main as cli
from nvcodec.config import ModelConfig, count_parameters
from nvcodec.corpus import build_clipset, split_tiles
from nvcodec.errors import NvcInputError
from nvcodec.info import describe, format_text
from nvcodec.media import read_frames
from nvcodec.metrics import psnr_per_frame
from nvcodec.model import DNeRV
from nvcodec.motion import SAMPLE_FRAC_BITS, floor_clip, warp, pixel_field, warped_clip, warped_video
from nvcodec.presets import build_config
from tests.test_codec import moving_pattern, write_video

TINY = dict(tile_h=32, tile_w=32, c0=4, enc_width=8, embed_levels=8, mlp_width=16, min_width=8)


def _random_motion(rng, n_frames: int, interval: int, h: int, w: int, grid: int = 8, step: int = 2) -> VideoMotion:
    rows, cols = motion_grid(h, w, grid)
    clips = tuple(rng.integers(-6, 7, (n, 2, 2, rows, cols)).astype(np.int32)
                  for n in clip_inbetween_counts(n_frames, interval))
    return VideoMotion(grid, step, INTERP_NEAREST, rows, cols, clips)


def test_warped_clip_holds_the_rounded_floor_warps_and_plain_keyframes_elsewhere():
    """Slot 1 + j holds frame j's two warps rounded half up to 8 bits; slot 0 and the slots after the
    in-between frames hold the keyframes; and fusing the unrounded warps is the floor."""
    rng = np.random.default_rng(0)
    kf_start, kf_end = (rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(2))
    motion = _random_motion(rng, 5, 8, 20, 28)          # one short clip: 3 in-between frames, then the end
    q = motion.clips[0]
    out = warped_clip(kf_start, kf_end, q, motion, 8)
    assert out.shape == (8, 2, 20, 28, 3) and out.dtype == np.uint8
    for slot in (0, 4, 5, 6, 7):
        assert (out[slot, 0] == kf_start).all() and (out[slot, 1] == kf_end).all()
    for j in range(3):
        for k, kf in enumerate((kf_start, kf_end)):
            exact = warp(kf, pixel_field(q[j, k], motion.step_qpel, motion.grid, motion.interp, 20, 28))
            assert (out[1 + j, k] == (exact + (1 << (SAMPLE_FRAC_BITS - 1))) >> SAMPLE_FRAC_BITS).all()
    floor = floor_clip(kf_start, kf_end, q, motion).astype(int)
    fused = (3 - np.arange(3))[:, None, None, None] * out[1:4, 0].astype(int) \
        + (1 + np.arange(3))[:, None, None, None] * out[1:4, 1].astype(int)
    assert np.abs(floor - fused / 4).max() <= 1                            # the 8-bit rounding, nothing else


def test_clipset_tiles_the_warped_pair_like_the_frames():
    """Clip c, tile j of the ClipSet holds tile j of clip c's warped pair (clip-major, tile-minor)."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (10, 40, 50, 3), dtype=np.uint8)
    keyframes = frames[[0, 8, 9]]
    motion = _random_motion(rng, 10, 8, 40, 50)
    warped = warped_video(keyframes, motion, 10, 8)
    assert warped.shape == (2, 8, 2, 40, 50, 3)
    clips = build_clipset([(frames, keyframes, 10)], 8, 32, 32, warped=[warped])
    assert clips.warped.shape == (clips.n_clips, 8, 2, 3, 32, 32)
    for i in range(clips.n_clips):
        c, j = clips.first_frame[i] // 8, clips.tile[i]
        for k in range(2):
            assert (clips.warped[i, :, k] == split_tiles(warped[c, :, k], 32, 32)[:, j]).all()
    assert (clips.subset(np.array([3])).warped == clips.warped[3:4]).all()


REFINER = dict(refine_width=8, refine_layers=3)
COARSE = dict(refine_width=8, refine_layers=4, refine_coarse=6)       # middle layers at half resolution
NO_TRUNK = dict(c0=0, refine_width=8, refine_layers=3)


@pytest.mark.parametrize("refiner", [{}, REFINER, COARSE, NO_TRUNK, {**COARSE, "c0": 0}],
                         ids=["small-head", "refiner", "coarse-refiner", "no-trunk", "no-trunk-coarse"])
def test_untrained_motion_network_outputs_the_fused_warps(refiner):
    """Zero-initialised flow corrections, visibility logits and residual head (or refiner): the motion floor (float)."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, "motion": True, **refiner})
    net = DNeRV(cfg).eval()
    b, t = 2, 8
    kf = torch.rand(b, 3, 32, 32)
    t_local = torch.linspace(0, 1, t).repeat(b, 1)
    warped = torch.rand(b, t, 2, 3, 32, 32)
    with torch.no_grad():
        out = net(kf, kf, torch.rand(b, t), t_local, warped)
    tt = t_local[..., None, None, None]
    floor = (1 - tt) * warped[:, :, 0] + tt * warped[:, :, 1]
    assert torch.allclose(out[:, 1:-1], floor[:, 1:-1], atol=1e-5)


def test_motion_network_trains_its_visibility_and_flow_heads_and_refuses_the_wrong_inputs():
    cfg = ModelConfig(**TINY, motion=True)
    net = DNeRV(cfg)
    assert count_parameters(cfg) == sum(p.numel() for p in net.parameters())
    assert count_parameters(cfg) > count_parameters(dataclasses.replace(cfg, motion=False))
    assert net.head_flow.conv2.out_channels == 5 and all(blk.flow.conv2.out_channels == 5 for blk in net.blocks)
    kf, tv, tl = torch.rand(1, 3, 32, 32), torch.rand(1, 8), torch.linspace(0, 1, 8)[None]
    net(kf, kf, tv, tl, torch.rand(1, 8, 2, 3, 32, 32)).mean().backward()
    assert net.head_flow.conv2.weight.grad.abs()[4].sum() > 0          # the visibility logit learns
    with pytest.raises(ValueError, match="consumes coded motion: pass the warped keyframes"):
        net(kf, kf, tv, tl)
    with pytest.raises(ValueError, match="does not consume coded motion"):
        DNeRV(ModelConfig(**TINY))(kf, kf, tv, tl, torch.rand(1, 8, 2, 3, 32, 32))


def test_the_refiner_replaces_the_small_head_counts_exactly_and_learns_each_output():
    """A refiner network has no small head; count_parameters is its exact size; the flow corrections, the
    visibility logit and the residual each get a gradient."""
    cfg = ModelConfig(**TINY, motion=True, **REFINER)
    net = DNeRV(cfg)
    assert count_parameters(cfg) == sum(p.numel() for p in net.parameters())
    assert not hasattr(net, "head") and not hasattr(net, "head_flow") and len(net.refiner.convs) == 2
    kf, tv, tl = torch.rand(1, 3, 32, 32), torch.rand(1, 8), torch.linspace(0, 1, 8)[None]
    (net(kf, kf, tv, tl, torch.rand(1, 8, 2, 3, 32, 32)) - 0.3).square().mean().backward()
    grad = net.refiner.out.weight.grad.abs().sum(dim=(1, 2, 3))
    assert (grad > 0).all(), grad                                        # 4 flow, 1 visibility, 3 residual


@pytest.mark.parametrize("shape", [COARSE, NO_TRUNK, {**COARSE, "c0": 0}], ids=["coarse", "no-trunk", "both"])
def test_a_coarse_refiner_and_a_network_without_a_trunk_count_exactly_and_learn_every_layer(shape):
    """The half-resolution branch (down, middle layers, up, fuse) and the trunk-less network: count_parameters
    is exact; every refiner parameter gets a gradient once the output layer has moved off zero; without a
    trunk the network holds nothing but the refiner."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, "motion": True, **shape})
    net = DNeRV(cfg)
    assert count_parameters(cfg) == sum(p.numel() for p in net.parameters())
    if cfg.c0 == 0:
        assert {name.split(".")[0] for name, _ in net.named_parameters()} == {"refiner"}
        assert count_parameters(cfg) < count_parameters(dataclasses.replace(cfg, c0=1))
    if cfg.refine_coarse:
        assert len(net.refiner.mids) == cfg.refine_layers - 2 and net.refiner.down.stride == (2, 2)
    torch.nn.init.normal_(net.refiner.out.weight, std=0.1)
    kf, tv, tl = torch.rand(1, 3, 32, 32), torch.rand(1, 8), torch.linspace(0, 1, 8)[None]
    (net(kf, kf, tv, tl, torch.rand(1, 8, 2, 3, 32, 32)) - 0.3).square().mean().backward()
    silent = [name for name, p in net.refiner.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent


def test_a_fitted_refiner_learns_which_keyframe_is_visible():
    """The frames between are the start picture alone (the end one is occluded): the fixed (1-t, t) fusion
    errs; a few steps teach the refiner's visibility to prefer the start, and the error falls by over half."""
    torch.manual_seed(0)
    net = DNeRV(ModelConfig(**TINY, motion=True, **REFINER))
    warped = torch.rand(2, 8, 2, 3, 32, 32)
    target = warped[:, :, 0]
    kf, tv, tl = warped[:, 0, 0], torch.rand(2, 8), torch.linspace(0, 1, 8).repeat(2, 1)

    def error() -> float:
        with torch.no_grad():
            return (net(kf, kf, tv, tl, warped) - target)[:, 1:-1].square().mean().item()

    before = error()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        loss = (net(kf, kf, tv, tl, warped) - target)[:, 1:-1].square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert error() < 0.5 * before, (before, error())


def test_refiner_config_is_checked_and_recorded_only_when_set():
    """refine_width/refine_layers: absent from the metadata at 0; a refiner needs coded motion and the residual
    head, at least two layers, and no layers without a width."""
    assert "refine_width" not in ModelConfig(**TINY, motion=True).to_json()
    d = ModelConfig(**TINY, motion=True, **REFINER).to_json()
    assert (d["refine_width"], d["refine_layers"]) == (8, 3) and ModelConfig.from_json(d) == ModelConfig(
        **TINY, motion=True, **REFINER)
    with pytest.raises(NvcInputError, match="the refiner is the output head of a residual network with coded"):
        ModelConfig(**TINY, **REFINER)
    with pytest.raises(NvcInputError, match="the refiner is the output head"):
        ModelConfig(**TINY, motion=True, head="paper", **REFINER)
    with pytest.raises(NvcInputError, match=r"ModelConfig.refine_layers: 1 outside \[2, 16\]"):
        ModelConfig(**TINY, motion=True, refine_width=8, refine_layers=1)
    with pytest.raises(NvcInputError, match="ModelConfig.refine_layers: 3 without a refiner"):
        ModelConfig(**TINY, motion=True, refine_layers=3)
    assert "refine_coarse" not in ModelConfig(**TINY, motion=True, **REFINER).to_json()
    d = ModelConfig(**TINY, motion=True, **COARSE).to_json()
    assert d["refine_coarse"] == 6 and ModelConfig.from_json(d) == ModelConfig(**TINY, motion=True, **COARSE)
    with pytest.raises(NvcInputError, match="ModelConfig.refine_coarse: 6 without a refiner"):
        ModelConfig(**TINY, motion=True, refine_coarse=6)
    with pytest.raises(NvcInputError, match=r"ModelConfig.c0: 0 \(no trunk\) needs a refiner"):
        ModelConfig(**{**TINY, "c0": 0}, motion=True)
    with pytest.raises(NvcInputError, match=r"ModelConfig.c0: -1 outside \[0, 4096\]"):
        ModelConfig(**{**TINY, "c0": -1}, motion=True, **REFINER)


def test_model_json_carries_motion_only_when_true():
    assert "motion" not in ModelConfig(**TINY).to_json()
    d = ModelConfig(**TINY, motion=True).to_json()
    assert d["motion"] is True and ModelConfig.from_json(d).motion is True
    with pytest.raises(NvcInputError, match="ModelConfig.motion: expected bool"):
        ModelConfig(**TINY, motion=1)


def test_cli_motion_flag_and_its_contradiction_with_no_network(tmp_path):
    ctx = cli.commands["encode"].make_context("encode", [str(tmp_path), "o.nvc", "--motion"])
    assert ctx.params["motion"] is True
    assert build_config("tiny", motion=True).preset.motion
    with pytest.raises(NvcInputError, match="--no-motion contradicts it"):
        build_config("tiny", network="none", motion=False)


# --- end to end ---------------------------------------------------------------------------------

VIDEOS = {
    "moving_64x48.mp4": moving_pattern(18, 48, 64, seed=3),
    "static_40x24.mp4": np.repeat(moving_pattern(1, 24, 40, seed=4), 11, axis=0),
    "one_frame_24x16.mp4": moving_pattern(1, 16, 24, seed=5),
}


@pytest.fixture(scope="module")
def refine_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine_corpus")
    for name, frames in VIDEOS.items():
        write_video(root / name, frames, (25, 1))
    out = tmp_path_factory.mktemp("refine") / "r.nvc"
    # tiny's weight rate cannot pay for its network on these few pixels: a higher one makes it fit one
    report = nvcodec.encode(root, out, build_config("tiny", motion=True, epochs=3, weight_bpp=64.0), quiet=True)
    return root, out, report


def test_motion_network_file_holds_motion_weights_and_decodes_to_what_the_encoder_measured(refine_file):
    """A static video, a one-frame video and one smaller than a motion cell included: the file decodes,
    a frame range gives the full decode's pixels, and the decoded PSNR is the encoder's."""
    root, out, report = refine_file
    with NvcReader(out) as r:
        types = [t for t, *_ in r.chunks()]
        assert r.version == (1, 1) and r.metadata["model"]["motion"] is True
        assert types.count("MOTN") == 3 and "TENS" in types
    assert report.bytes_by_part["motion"] > 0 and report.bytes_by_part["weights"] > 0
    assert report.motion_psnr is not None and report.n_params > 0
    scores = []
    with nvcodec.open(out, device="cpu") as nvc:
        for v in nvc.videos:
            frames = nvc.read(v.name)
            scores.append(psnr_per_frame(np.stack(list(read_frames(root / v.name))), frames))
            for lo, hi in ((2, 9), (8, 10)):
                if hi <= v.n_frames:
                    assert (nvc.read(v.name, slice(lo, hi)) == frames[lo:hi]).all()
    assert np.mean(np.concatenate(scores)) == pytest.approx(report.psnr, abs=1e-9)


@pytest.mark.parametrize("shape", [REFINER, {**COARSE, "c0_min": 0, "c0_max": 0}], ids=["refiner", "no-trunk-coarse"])
def test_a_refiner_network_file_decodes_to_what_the_encoder_measured(tmp_path, shape):
    """The refiner's keys (and C0 0 for a network without a trunk) travel in the file's model; the decoder
    rebuilds it, and a frame range gives the full decode's pixels."""
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "a.mp4", VIDEOS["moving_64x48.mp4"], (25, 1))
    out = tmp_path / "a.nvc"
    report = nvcodec.encode(src, out, build_config("tiny", motion=True, epochs=2, weight_bpp=64.0, **shape),
                            quiet=True)
    with NvcReader(out) as r:
        model = r.metadata["model"]
        for key in ("refine_width", "refine_layers", "refine_coarse"):
            assert model.get(key, 0) == shape.get(key, 0)
        assert model["c0"] == shape.get("c0_min", 8)
    reference = np.stack(list(read_frames(src / "a.mp4")))
    with nvcodec.open(out, device="cpu") as nvc:
        frames = nvc.read(0)
        assert (nvc.read(0, slice(3, 11)) == frames[3:11]).all()
    assert psnr_per_frame(reference, frames).mean() == pytest.approx(report.psnr, abs=1e-9)


def test_info_shows_the_motion_floor_the_encoder_measured(refine_file):
    _, out, report = refine_file
    summary = describe(out)
    assert summary["quality"]["motion_psnr"] == round(report.motion_psnr, 4)
    assert f"motion floor {report.motion_psnr:.2f} dB, keyframe blend" in format_text(summary)


def test_a_motion_preset_writes_the_motion_floor_when_the_corpus_cannot_pay_for_its_smallest_network(tmp_path):
    """fast carries coded motion; its network needs about 6.3 M pixels at its weight rate, so a small
    corpus gets the floor (no weights, the same file as --network none) and the log says why."""
    from nvcodec.presets import PRESETS

    fast = PRESETS["fast"]
    assert fast.motion and not fast.affords_network(10**6) and fast.affords_network(10**8)
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "a.mp4", VIDEOS["moving_64x48.mp4"], (25, 1))
    lines = []
    report = nvcodec.encode(src, tmp_path / "a.nvc", build_config("fast"), log=lines.append)
    assert report.n_params == 0 and report.motion_psnr == report.psnr
    assert any("too small to pay for preset 'fast'" in line for line in lines)
    with NvcReader(tmp_path / "a.nvc") as r:
        assert r.metadata["model"] == {} and r.has_motion


def test_the_measuring_decode_shows_a_bar_over_the_files_frames(refine_file, monkeypatch):
    """measure_file(progress=True) asks runtime.progress_bar for one bar over every frame of the file and
    advances it once a frame; without progress the bar is disabled."""
    from nvcodec import runtime
    from nvcodec.decoder import measure_file

    root, out, _ = refine_file
    bars = []
    real = runtime.progress_bar

    def recording(total, desc, **kw):
        bar = real(total, desc, **kw)               # off a terminal tqdm counts nothing: count the updates here
        updates = []
        bar.update = lambda k=1: updates.append(k)
        bars.append((total, desc, kw.get("enabled"), updates))
        return bar

    monkeypatch.setattr(runtime, "progress_bar", recording)
    reference = {p.name: np.stack(list(read_frames(p))) for p in sorted(root.iterdir())}
    measure_file(out, reference, device="cpu", progress=True)
    measure_file(out, reference, device="cpu")
    n_frames = sum(len(f) for f in reference.values())
    assert [(t, d, e) for t, d, e, _ in bars] == [(n_frames, "measuring decode", True),
                                                   (n_frames, "measuring decode", False)]
    assert sum(bars[0][3]) == n_frames


def test_a_motion_network_follows_keyframes_listed_on_cuts(tmp_path):
    """Three shots (cuts at 7 and 16): the refining network's file lists the keyframes, decodes every frame,
    and any frame range decodes to the full decode's pixels (warped pairs built from the listed layout)."""
    from tests.test_cut_placement import CUTS, SHOTS

    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "shots.mp4", SHOTS, (25, 1))
    out = tmp_path / "shots.nvc"
    nvcodec.encode(src, out, build_config("tiny", motion=True, epochs=1, weight_bpp=64.0), quiet=True)
    with NvcReader(out) as r:
        assert r.metadata["model"]["motion"] is True
        listed = r.keyframe_layout(0).keyframe_frames().tolist()
    assert all(c in listed and c - 1 in listed for c in CUTS)
    with nvcodec.open(out, device="cpu") as nvc:
        frames = nvc.read(0)
        assert frames.shape[0] == len(SHOTS)
        for lo, hi in ((5, 9), (15, 17), (20, 21)):
            assert (nvc.read(0, slice(lo, hi)) == frames[lo:hi]).all()
