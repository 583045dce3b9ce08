"""Fitting one D-NeRV network to every clip of a corpus, and running it to decode.

The recipe is the paper's (DESIGN.md, "training"): AdamW without weight decay, the
learning rate warmed up linearly from ``warmup_start * lr`` over ``warmup_frac`` of the
steps, then a cosine to 0; each step takes a batch of clips drawn across all tile-videos.
The per-frame latent table (one row per clip-tile, so as large as the corpus) is stepped by
``nvcodec.row_adam.RowAdam``: the same AdamW, applied lazily to the batch's rows only.
The loss is ``l1 * L1 + mse * MSE + ssim * (1 - SSIM)`` over real frames only (padding
excluded, and pasted keyframes excluded when the model pastes them).

Reproducible: on CPU, a fit is a function of (configs, clips, seed, world size). The
learning rate is a pure function of the step and each epoch's clip order is a pure
function of (seed, epoch), so a checkpoint (model, optimizer, RNG state, step) is all a
resumed fit needs to land on the very same weights.

Checkpoints are our own files in the work folder (``torch.save``, written atomically);
.nvc content never goes through pickle.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim
from torch import Tensor

from nvcodec import distributed, runtime
from nvcodec.clipset import ClipSet
from nvcodec.config import LATENTS, FitConfig, ModelConfig
from nvcodec.metrics import psnr_from_mse
from nvcodec.model import DNeRV
from nvcodec.qat import laplace_bits
from nvcodec.row_adam import RowAdam
from nvcodec.runtime import Batcher, as_device, lr_factor, predict, to_device, trainable_mask

CHECKPOINT_NAME = "fit_checkpoint.pt"
CHECKPOINT_VERSION = 1


@dataclass
class FitResult:
    state_dict: dict[str, Tensor]          # float32 CPU tensors of the fitted DNeRV
    blend_psnr: float                      # the floor: (1-t)*start + t*end of the decoded keyframes, on
                                           # frames padded to whole tiles (the file's fit.blend_psnr; the
                                           # whole-frame one is nvcodec.metrics.blend_psnr)
    psnr: float                            # the fitted network's, same frames, same metric: mean
                                           # over real frames of the PSNR of the frame's tiles pooled
    history: list[dict] = field(default_factory=list)   # {"step", "loss", "psnr", "lr", "seconds"}
    seconds: float = 0.0                   # fitting wall-clock (all sessions of a resumed fit)
    steps: int = 0


def total_steps_of(fit_cfg: FitConfig, n_clips: int) -> int:
    """Optimizer steps of a fit over ``n_clips`` clips."""
    steps = fit_cfg.epochs * math.ceil(n_clips / fit_cfg.batch_size)
    return min(steps, fit_cfg.max_steps) if fit_cfg.max_steps else steps


def blend_frames(clips: ClipSet, index: np.ndarray | slice) -> np.ndarray:
    """The floor's prediction: uint8 (n, T, 3, h, w) = round((1-t)*start + t*end)."""
    t = clips.t_local[index][:, :, None, None, None]
    start = clips.keyframes[clips.start_kf[index]][:, None].astype(np.float32)
    end = clips.keyframes[clips.end_kf[index]][:, None].astype(np.float32)
    return np.clip(np.rint((1 - t) * start + t * end), 0, 255).astype(np.uint8)


def _ssim_window(tile_h: int, tile_w: int) -> int:
    """pytorch-msssim's 11-tap window, shrunk to the largest odd size that fits a small tile."""
    side = min(11, tile_h, tile_w)
    return side if side % 2 else side - 1


def _loss(pred: Tensor, target: Tensor, fit_cfg: FitConfig, win: int) -> tuple[Tensor, Tensor]:
    """pred, target: (n, 3, h, w) float32 in [0, 1] -> (loss, mse)."""
    mse = F.mse_loss(pred, target)
    loss = fit_cfg.mse_weight * mse
    if fit_cfg.l1_weight:
        loss = loss + fit_cfg.l1_weight * F.l1_loss(pred, target)
    if fit_cfg.ssim_weight:
        loss = loss + fit_cfg.ssim_weight * (1 - ssim(pred, target, data_range=1.0, win_size=win))
    return loss, mse


@contextmanager
def _catch_signals():
    """Turn SIGINT/SIGTERM into a flag checked between steps (a second signal stops at once)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame):
        if caught:
            raise KeyboardInterrupt
        caught.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _fingerprint(model_cfg: ModelConfig, fit_cfg: FitConfig, clips: ClipSet, world_size: int) -> dict:
    fit = fit_cfg.to_json()
    fit.pop("checkpoint_every")
    fit.pop("compile")
    return {"model": model_cfg.to_json(), "fit": fit, "n_clips": clips.n_clips,
            "tile": list(clips.tile_size), "clip_length": clips.clip_length, "world_size": world_size}


def _save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, expected: dict) -> dict:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')!r}, expected {CHECKPOINT_VERSION}")
    for key, value in expected.items():
        if payload["fingerprint"].get(key) != value:
            raise ValueError(f"{path}: checkpoint was made with a different {key} "
                             f"({payload['fingerprint'].get(key)!r} != {value!r}); cannot resume")
    return payload


def fit(model_cfg: ModelConfig, fit_cfg: FitConfig, clips: ClipSet, *,
        device: str | torch.device | None = None, workdir: str | Path | None = None,
        resume: bool = False, progress: bool = True, stop_after: int | None = None) -> FitResult:
    """Fit a DNeRV to ``clips`` (which must carry ``frames``); under torchrun, with DDP.

    ``workdir``: where checkpoints go (every ``checkpoint_every`` steps and on SIGINT/SIGTERM,
    after which KeyboardInterrupt / SystemExit(143) is raised). ``resume``: continue from the
    checkpoint there (ValueError if it belongs to another fit; a fresh start if there is none).
    ``stop_after``: stop (checkpointing first) once this many steps are done; the schedule still
    spans the whole fit, so a later resume reaches the uninterrupted result.
    ``progress``: a tqdm bar on a terminal (rank 0) and the floor/result lines on stderr.
    Under torchrun the process group stays joined for the caller's collectives; the caller leaves it
    (``nvcodec.distributed.teardown``), as the encoder does.
    """
    _check_clips(model_cfg, clips)
    device = as_device(device)
    ctx = distributed.setup(device.type)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress and ctx.is_main else (lambda msg: None)

    torch.manual_seed(fit_cfg.seed)
    raw_model = DNeRV(model_cfg).to(device)
    if device.type == "cuda":
        raw_model = raw_model.to(memory_format=torch.channels_last)
    # the latent table, one row per clip-tile, is stepped by its batch's rows alone (nvcodec.row_adam)
    rows_opt = RowAdam(raw_model.latents) if model_cfg.latent_channels else None
    optimizer = torch.optim.AdamW([p for name, p in raw_model.named_parameters() if name != LATENTS],
                                  lr=fit_cfg.lr, weight_decay=0.0, fused=device.type == "cuda")
    batcher = Batcher(clips, fit_cfg, ctx, device)
    total_steps = total_steps_of(fit_cfg, clips.n_clips)
    fingerprint = _fingerprint(model_cfg, fit_cfg, clips, ctx.world_size)
    ckpt_path = Path(workdir) / CHECKPOINT_NAME if workdir is not None else None
    if ckpt_path is not None and ctx.is_main:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)

    step, history, elapsed_before = 0, [], 0.0
    if resume and ckpt_path is not None and ckpt_path.exists():
        step, history, elapsed_before = _restore(ckpt_path, fingerprint, raw_model, optimizer, rows_opt)
        say(f"resuming from {ckpt_path} at step {step}/{total_steps}")
    model = _wrap(raw_model, fit_cfg, ctx, device)

    blend_psnr = _blend_psnr(clips, ctx, device)
    say(f"floor (keyframe blend): {blend_psnr:.2f} dB over {int(clips.mask.sum())} frames, "
        f"{clips.n_clips} clips; fitting {sum(p.numel() for p in raw_model.parameters()) / 1e6:.3f} M "
        f"parameters for {total_steps} steps on {device}" + (f" x {ctx.world_size} ranks" if ctx.active else ""))

    def checkpoint(at_step: int, seconds: float) -> None:
        if ckpt_path is None or not ctx.is_main:
            return
        _save_checkpoint(ckpt_path, {
            "version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "step": at_step,
            "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(), "history": history, "seconds": seconds}
            | ({"latent_optimizer": rows_opt.state_dict()} if rows_opt is not None else {}))

    bar = runtime.progress_bar(total_steps, "fit", enabled=progress and ctx.is_main, initial=step)
    win = _ssim_window(model_cfg.tile_h, model_cfg.tile_w)
    t0 = time.perf_counter()
    model.train()
    try:
        with _catch_signals() as caught:
            while step < total_steps:
                lr = fit_cfg.lr * lr_factor(step, total_steps, fit_cfg.warmup_frac, fit_cfg.warmup_start)
                loss_value, psnr = _train_step(model, optimizer, rows_opt, batcher, clips, model_cfg, fit_cfg, step,
                                               lr, win, ctx, device)
                step += 1
                seconds = elapsed_before + time.perf_counter() - t0
                history.append({"step": step, "loss": loss_value, "psnr": psnr, "lr": lr, "seconds": seconds})
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", psnr=f"{psnr:.2f}", refresh=False)
                if caught or (stop_after is not None and step >= stop_after):
                    checkpoint(step, seconds)
                    if caught:
                        say(f"interrupted at step {step}; checkpoint in {ckpt_path}")
                        if caught[0] == signal.SIGINT:
                            raise KeyboardInterrupt
                        raise SystemExit(128 + caught[0])
                    break
                if fit_cfg.checkpoint_every and step % fit_cfg.checkpoint_every == 0:
                    checkpoint(step, seconds)
    finally:
        bar.close()
    seconds = elapsed_before + time.perf_counter() - t0
    if step >= total_steps:
        checkpoint(step, seconds)
    if rows_opt is not None:        # every row as dense AdamW would leave it (after the checkpoint: resuming is exact)
        rows_opt.flush()

    raw_model.eval()
    psnr = _fit_psnr(raw_model, clips, ctx, device)
    say(f"fit: {psnr:.2f} dB (floor {blend_psnr:.2f} dB) after {step} steps, {seconds:.1f} s")
    state = {k: v.detach().float().cpu().clone() for k, v in raw_model.state_dict().items()}
    return FitResult(state_dict=state, blend_psnr=blend_psnr, psnr=psnr, history=history,
                     seconds=seconds, steps=step)


def _restore(ckpt_path: Path, fingerprint: dict, raw_model: DNeRV, optimizer: torch.optim.Optimizer,
             rows_opt: RowAdam | None) -> tuple[int, list[dict], float]:
    """Load a checkpoint of this fit into the model, the optimizers and torch's RNG:
    (step, history, seconds already spent)."""
    payload = _load_checkpoint(ckpt_path, fingerprint)
    if rows_opt is not None and "latent_optimizer" not in payload:
        raise ValueError(f"{ckpt_path}: checkpoint from before the latent table's own optimizer (nvcodec.row_adam); "
                         "cannot resume: delete it to fit again")
    raw_model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if rows_opt is not None:
        rows_opt.load_state_dict(payload["latent_optimizer"])
    torch.set_rng_state(payload["rng"])
    return payload["step"], payload["history"], payload["seconds"]


def _wrap(raw_model: DNeRV, fit_cfg: FitConfig, ctx: distributed.DistContext, device: torch.device):
    """The module the steps call: DDP under torchrun, compiled when the fit asks for it."""
    model = raw_model
    if ctx.active:
        # the latent table is no DDP parameter: its rows' gradients are gathered by hand (_train_step). DDP
        # spells a top-level parameter both ways: "latents" in its parameter list, ".latents" in its reducer's.
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            raw_model, [LATENTS, f".{LATENTS}"])
        model = torch.nn.parallel.DistributedDataParallel(
            raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    if fit_cfg.compile:
        model = torch.compile(model)
    return model


def _check_clips(model_cfg: ModelConfig, clips: ClipSet) -> None:
    if clips.frames is None:
        raise ValueError("fit needs clips with frames (got a decode-only ClipSet)")
    if clips.n_clips == 0:
        raise ValueError("fit needs at least one clip")
    if clips.tile_size != (model_cfg.tile_h, model_cfg.tile_w) or clips.clip_length != model_cfg.clip_length:
        raise ValueError(f"clips are {clips.clip_length} x {clips.tile_size}, the model expects "
                         f"{model_cfg.clip_length} x {(model_cfg.tile_h, model_cfg.tile_w)}")


def _train_step(model, optimizer: torch.optim.Optimizer, rows_opt: RowAdam | None, batcher: Batcher,
                clips: ClipSet, model_cfg: ModelConfig, fit_cfg: FitConfig, step: int, lr: float, win: int,
                ctx: distributed.DistContext, device: torch.device) -> tuple[float, float]:
    """One optimizer step on this rank's batch for ``step`` at learning rate ``lr``: (loss, batch PSNR).
    With latents, the batch's rows are read up to date from ``rows_opt`` and stepped there with the
    gradient every rank's rows got, averaged over the ranks as DDP averages the weights'."""
    index = batcher.indices(step)
    inputs = batcher.tensors(index)
    mask = torch.from_numpy(trainable_mask(model_cfg, clips, index)).to(device)
    target = to_device(clips.frames[index], device)           # (b, T, 3, h, w)
    for group in optimizer.param_groups:
        group["lr"] = lr
    values = None
    with runtime.autocast(device):
        if rows_opt is not None:
            *inputs, rows = inputs
            values = rows_opt.current(rows).requires_grad_()
            pred = model(*inputs, latent_values=values, latent_noise=True)
        else:
            pred = model(*inputs)
    if mask.any():
        loss, mse = _loss(pred[mask].float(), target[mask], fit_cfg, win)
        if values is not None and fit_cfg.latent_price:
            n_values = int(mask.sum()) * 3 * model_cfg.tile_h * model_cfg.tile_w
            loss = loss + fit_cfg.latent_price * latent_bits(values) / (255.0 ** 2 * n_values)
    else:   # nothing to learn in this shard; keep DDP's collective calls in step
        loss = mse = pred.sum() * 0.0
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if rows_opt is not None:
        grad = values.grad if values.grad is not None else torch.zeros_like(values)
        all_rows, all_grad = distributed.all_gather(rows, ctx), distributed.all_gather(grad, ctx)
        rows_opt.step(all_rows, all_grad / ctx.world_size, lr * fit_cfg.latent_lr / fit_cfg.lr)
    return loss.item(), 10 * math.log10(1.0 / max(mse.item(), 1e-10))


def latent_bits(y: Tensor) -> Tensor:
    """The rate term of latents ``y`` (..., K, C, h, w) in the fit: the Laplace bits (``qat.laplace_bits``) of
    each value plus uniform noise of one step, smooth for the gradient. As in the file's context model
    (FORMAT.md section 9), a value's cost depends on its causal neighbours: its scale is the mean |y| of the
    values whose previous frame slot, upper and left cells hold as many non-zeros (0, 1, 2 or more; rounded
    values, no gradient), floored at 0.2 as the motion's. A value next to non-zeros is cheaper than one alone."""
    noisy = y + (torch.rand_like(y) - 0.5)
    magnitude = y.detach().abs()
    nz = (magnitude >= 0.5).to(y.dtype)
    context = torch.zeros_like(nz)
    context[..., 1:, :, :, :] += nz[..., :-1, :, :, :]        # the previous frame slot
    context[..., 1:, :] += nz[..., :-1, :]                    # the cell above
    context[..., 1:] += nz[..., :-1]                          # the cell to the left
    total = y.new_zeros(())
    for c in range(3):
        chosen = context.clamp(max=2) == c
        if chosen.any():
            b = float(magnitude[chosen].mean().clamp_min(0.2))
            total = total + laplace_bits(noisy[chosen], 0.0, b).sum()
    return total


def _my_clips(clips: ClipSet, ctx: distributed.DistContext) -> np.ndarray:
    """This rank's clips for evaluation: whole frames (all tiles of a clip position) per rank."""
    key = clips.video * (int(clips.first_frame.max(initial=0)) + 1) + clips.first_frame
    _, group = np.unique(key, return_inverse=True)
    return np.flatnonzero(group % ctx.world_size == ctx.rank)


def _mean_frame_psnr(clips: ClipSet, index: np.ndarray, sse: np.ndarray, ctx: distributed.DistContext,
                     device: torch.device) -> float:
    """Mean over real frames of the frame's PSNR, from per-tile squared-error sums ``sse``
    (len(index), T): a frame's tiles are pooled (one MSE per frame, tile padding included)
    rather than averaging per-tile PSNRs, which would overstate quality."""
    if len(index):
        key = clips.video[index] * (int(clips.first_frame.max()) + 1) + clips.first_frame[index]
        _, group = np.unique(key, return_inverse=True)
        frame_sse = np.zeros((group.max() + 1, clips.clip_length))
        np.add.at(frame_sse, group, sse)
        n_tiles = np.bincount(group).astype(np.float64)[:, None]
        mse = frame_sse / (n_tiles * 3 * clips.tile_size[0] * clips.tile_size[1])
        psnr = psnr_from_mse(mse)
        mask = np.zeros(frame_sse.shape, bool)
        mask[group] = clips.mask[index]
        total, count = float(psnr[mask].sum()), float(mask.sum())
    else:
        total, count = 0.0, 0.0
    total, count = distributed.all_reduce_sum([total, count], ctx, device)
    return total / max(count, 1.0)


def _sse(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    diff = ref.astype(np.float32) - dist.astype(np.float32)
    return np.sum(diff * diff, axis=(-3, -2, -1), dtype=np.float64)


def _blend_psnr(clips: ClipSet, ctx: distributed.DistContext, device: torch.device) -> float:
    mine = _my_clips(clips, ctx)
    sse = np.concatenate([_sse(clips.frames[mine[i:i + 64]], blend_frames(clips, mine[i:i + 64]))
                          for i in range(0, len(mine), 64)] or [np.zeros((0, clips.clip_length))])
    return _mean_frame_psnr(clips, mine, sse, ctx, device)


def _fit_psnr(model: DNeRV, clips: ClipSet, ctx: distributed.DistContext, device: torch.device) -> float:
    mine = _my_clips(clips, ctx)
    sub = clips.subset(mine)
    sse = np.zeros((len(mine), clips.clip_length))
    for index, frames in predict(model, sub, device=device, batch_size=8):
        sse[index] = _sse(sub.frames[index], frames)
    return _mean_frame_psnr(clips, mine, sse, ctx, device)


def clips_psnr(model: DNeRV, clips: ClipSet, *, device: str | torch.device | None = None) -> float:
    """Mean over real frames of the RGB PSNR of ``model`` on ``clips`` (a frame's tiles pooled),
    in one process: how the encoder scores a candidate network or a set of quantized weights."""
    device = as_device(device)
    return _fit_psnr(model, clips, distributed.DistContext(), device)
