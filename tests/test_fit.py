"""The fitting engine: schedule, loss masking, determinism, checkpoint/resume, predict."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from nvcodec.clipset import ClipSet
from nvcodec.config import FitConfig
from nvcodec.fit import blend_frames, fit
from nvcodec.metrics import psnr_from_mse
from nvcodec.model import DNeRV, ModelConfig
from nvcodec.runtime import lr_factor, predict


def synthetic_clips(n_videos: int = 3, n_frames: int = 16, size: tuple[int, int] = (64, 64),
                    interval: int = 8, seed: int = 0) -> ClipSet:
    """Videos of a smooth random texture panning at a per-video speed, cut the corpus way:
    keyframes at 0, K, 2K, .. plus the last frame; clip c = frames cK..; padded last clip."""
    rng = np.random.default_rng(seed)
    h, w = size
    kf_all, rows = [], []
    for v in range(n_videos):
        big = rng.random((3, h // 8 + 4, w // 8 + 4)).astype(np.float32)
        big = torch.nn.functional.interpolate(torch.from_numpy(big)[None], scale_factor=8, mode="bicubic",
                                              align_corners=False)[0].clamp(0, 1).numpy()
        dx, dy = rng.integers(-2, 3, size=2)
        video = np.stack([np.roll(big, (i * dy, i * dx), axis=(1, 2))[:, :h, :w] for i in range(n_frames)])
        video = (video * 255).round().astype(np.uint8)                      # (L, 3, h, w)
        positions = list(range(0, n_frames, interval)) + ([n_frames - 1] if (n_frames - 1) % interval else [])
        kf_base = sum(len(k) for k in kf_all)
        kf_all.append(video[positions])
        for c in range(math.ceil(n_frames / interval)):
            s, e = c * interval, min((c + 1) * interval, n_frames - 1)
            rows.append((v, c, s, e, kf_base + positions.index(s), kf_base + positions.index(e), video))
    n, t = len(rows), interval
    frames = np.zeros((n, t, 3, h, w), np.uint8)
    mask = np.zeros((n, t), bool)
    t_video = np.zeros((n, t), np.float32)
    t_local = np.zeros((n, t), np.float32)
    for j, (v, c, s, e, ks, ke, video) in enumerate(rows):
        for k in range(t):
            i = s + k
            if i < n_frames:
                frames[j, k], mask[j, k] = video[i], True
                t_video[j, k] = i / (n_frames - 1) if n_frames > 1 else 0.0
                t_local[j, k] = (i - s) / (e - s) if e != s else 0.0
    return ClipSet(mask=mask, t_video=t_video, t_local=t_local, keyframes=np.concatenate(kf_all),
                   start_kf=np.array([r[4] for r in rows], np.int64), end_kf=np.array([r[5] for r in rows], np.int64),
                   video=np.array([r[0] for r in rows], np.int64), tile=np.zeros(n, np.int64),
                   first_frame=np.array([r[2] for r in rows], np.int64), frames=frames)


TINY_MODEL = ModelConfig(tile_h=32, tile_w=32, c0=8, enc_width=8, embed_levels=8, mlp_width=32, min_width=8)
TINY_FIT = FitConfig(epochs=6, batch_size=2, lr=5e-3, checkpoint_every=0)


def latent_clips(**kwargs) -> ClipSet:
    """``synthetic_clips`` at 32x32 for a refiner with per-frame latents: each frame's "warped" pair is its
    two keyframes as they are, and each clip its own latent row."""
    c = synthetic_clips(size=(32, 32), **kwargs)
    pair = np.stack((c.keyframes[c.start_kf], c.keyframes[c.end_kf]), axis=1)          # (n, 2, 3, h, w)
    warped = np.repeat(pair[:, None], c.clip_length, axis=1)
    return dataclasses.replace(c, warped=warped, row=np.arange(c.n_clips))


def latent_model(n_rows: int) -> ModelConfig:
    return ModelConfig(tile_h=32, tile_w=32, c0=0, enc_width=8, embed_levels=8, mlp_width=16, min_width=8,
                       motion=True, refine_width=8, refine_layers=3, latent_channels=2, latent_cell=8,
                       latent_rows=n_rows)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_schedule_warms_up_from_a_tenth_then_cosines_to_zero():
    """lr factor: 0.1 at step 0, 1 at the end of the 20 % warm-up, ~0 at the last step."""
    assert lr_factor(0, 100, 0.2, 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 100, 0.2, 0.1) == pytest.approx(0.55)
    assert lr_factor(20, 100, 0.2, 0.1) == pytest.approx(1.0)
    assert lr_factor(99, 100, 0.2, 0.1) < 0.001
    assert lr_factor(0, 10, 0.0, 0.1) == pytest.approx(1.0)


@pytest.mark.parametrize("edit, field", [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"batch_size": 2.0}, "batch_size"),
                                         ({"warmup_frac": 1.5}, "warmup_frac"), ({"compile": "yes"}, "compile")])
def test_fit_config_names_the_bad_field(edit, field):
    with pytest.raises(ValueError, match=f"FitConfig.{field}"):
        FitConfig(**edit)


def test_floor_and_psnr_helpers():
    """Blend of identical keyframes is exact."""
    clips = synthetic_clips(n_videos=1, size=(32, 32))
    blend = blend_frames(clips, slice(None))
    assert blend.shape == clips.frames.shape
    assert np.array_equal(blend[0, 0], clips.keyframes[clips.start_kf[0]])


@pytest.fixture(scope="module")
def clips() -> ClipSet:
    return synthetic_clips(size=(32, 32))


def test_fit_beats_the_keyframe_blend_floor(clips):
    """A short fit on panning textures ends above the blend floor and its loss falls."""
    result = fit(TINY_MODEL, dataclasses.replace(TINY_FIT, epochs=20), clips, device="cpu", progress=False)
    assert 25 < result.blend_psnr < 40
    assert result.psnr > result.blend_psnr + 1.0
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert all(v.dtype == torch.float32 and v.device.type == "cpu" for v in result.state_dict.values())
    model = DNeRV(TINY_MODEL)
    model.load_state_dict(result.state_dict)
    decoded = np.concatenate([f for _, f in predict(model, clips, device="cpu", batch_size=4)])
    mse = ((clips.frames.astype(np.float64) - decoded) ** 2).mean(axis=(-3, -2, -1))   # (n_clips, T)
    psnr = psnr_from_mse(mse)[clips.mask].mean()
    assert psnr == pytest.approx(result.psnr, abs=1e-4)   # one tile per frame: tile PSNR = frame PSNR


def test_fit_is_deterministic_given_the_seed(clips):
    """Same configs, clips and seed on CPU -> bit-identical weights; another seed differs."""
    a = fit(TINY_MODEL, TINY_FIT, clips, device="cpu", progress=False).state_dict
    b = fit(TINY_MODEL, TINY_FIT, clips, device="cpu", progress=False).state_dict
    c = fit(TINY_MODEL, dataclasses.replace(TINY_FIT, seed=1), clips, device="cpu", progress=False).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_padding_frames_do_not_influence_the_fit(clips):
    """Only real frames are fitted: scribbling on the padded frames changes nothing."""
    short = synthetic_clips(n_videos=2, n_frames=13, size=(32, 32))
    assert not short.mask.all()
    scribbled = short.frames.copy()
    scribbled[~short.mask] = 255
    other = dataclasses.replace(short, frames=scribbled)
    a = fit(TINY_MODEL, TINY_FIT, short, device="cpu", progress=False)
    b = fit(TINY_MODEL, TINY_FIT, other, device="cpu", progress=False)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.psnr == b.psnr and a.blend_psnr == b.blend_psnr


def test_resume_reaches_the_uninterrupted_result(clips, tmp_path):
    """Stop after 7 of 18 steps, resume from the checkpoint: same weights as one straight run."""
    cfg = dataclasses.replace(TINY_FIT, checkpoint_every=5)
    straight = fit(TINY_MODEL, cfg, clips, device="cpu", progress=False)
    part = fit(TINY_MODEL, cfg, clips, device="cpu", progress=False, workdir=tmp_path, stop_after=7)
    assert part.steps == 7
    resumed = fit(TINY_MODEL, cfg, clips, device="cpu", progress=False, workdir=tmp_path, resume=True)
    assert resumed.steps == straight.steps == 18
    assert all(torch.equal(straight.state_dict[k], resumed.state_dict[k]) for k in straight.state_dict)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_resume_with_latents_reaches_the_uninterrupted_result(tmp_path):
    """The latent table's own optimizer (nvcodec.row_adam) goes into the checkpoint: stopped after 5 of 18
    steps and resumed, the table and the weights are those of one straight run; the latents did move."""
    clips = latent_clips()
    model_cfg = latent_model(clips.n_clips)
    cfg = dataclasses.replace(TINY_FIT, checkpoint_every=4, latent_price=50.0)
    straight = fit(model_cfg, cfg, clips, device="cpu", progress=False)
    fit(model_cfg, cfg, clips, device="cpu", progress=False, workdir=tmp_path, stop_after=5)
    resumed = fit(model_cfg, cfg, clips, device="cpu", progress=False, workdir=tmp_path, resume=True)
    assert resumed.steps == straight.steps == 18
    assert all(torch.equal(straight.state_dict[k], resumed.state_dict[k]) for k in straight.state_dict)
    assert straight.state_dict["latents"].abs().max() > 0.1


def test_resume_refuses_a_latent_checkpoint_without_the_latent_optimizer(tmp_path):
    """A checkpoint written before the latent table had its own optimizer cannot resume: a clear ValueError."""
    clips = latent_clips()
    model_cfg = latent_model(clips.n_clips)
    fit(model_cfg, TINY_FIT, clips, device="cpu", progress=False, workdir=tmp_path, stop_after=2)
    path = tmp_path / "fit_checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    del payload["latent_optimizer"]
    torch.save(payload, path)
    with pytest.raises(ValueError, match="latent table's own optimizer"):
        fit(model_cfg, TINY_FIT, clips, device="cpu", progress=False, workdir=tmp_path, resume=True)


def test_resume_refuses_a_checkpoint_of_another_fit(clips, tmp_path):
    fit(TINY_MODEL, TINY_FIT, clips, device="cpu", progress=False, workdir=tmp_path, stop_after=2)
    with pytest.raises(ValueError, match="different fit"):
        fit(TINY_MODEL, dataclasses.replace(TINY_FIT, lr=1e-3), clips, device="cpu", progress=False,
            workdir=tmp_path, resume=True)


def test_sigint_checkpoints_then_stops(clips, tmp_path, monkeypatch):
    """Ctrl-C mid-fit: the step finishes, a checkpoint is written, KeyboardInterrupt propagates."""
    import os
    import signal

    from nvcodec import fit as fit_module
    from nvcodec.runtime import Batcher
    original = Batcher.indices

    def indices(self, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, step)

    def before(signum, frame):      # whatever handler was inherited (SIG_IGN in a background job), fit restores it
        raise AssertionError("fit's own handler should have caught this")

    monkeypatch.setattr(Batcher, "indices", indices)
    inherited = signal.signal(signal.SIGINT, before)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(TINY_MODEL, TINY_FIT, clips, device="cpu", progress=False, workdir=tmp_path)
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, inherited)
    payload = torch.load(tmp_path / fit_module.CHECKPOINT_NAME, weights_only=True)
    assert payload["step"] == 4


def test_fit_refuses_mismatched_or_frameless_clips(clips):
    with pytest.raises(ValueError, match="model expects"):
        fit(dataclasses.replace(TINY_MODEL, tile_h=64, tile_w=64), TINY_FIT, clips, device="cpu", progress=False)
    with pytest.raises(ValueError, match="frames"):
        fit(TINY_MODEL, TINY_FIT, dataclasses.replace(clips, frames=None), device="cpu", progress=False)


def test_max_steps_caps_the_fit(clips):
    """max_steps bounds a fit whatever the epochs; the schedule ends at the cap."""
    result = fit(TINY_MODEL, dataclasses.replace(TINY_FIT, epochs=1000, max_steps=5), clips, device="cpu",
                 progress=False)
    assert result.steps == 5 and result.history[-1]["lr"] < 0.2 * TINY_FIT.lr
