"""The torch runtime shared by the fit, the rate-aware fine-tune and the decoder.

One home for what every stage that runs the network needs: the device choice
(CUDA when present, overridable), the autocast context (bf16 on CUDA, none on CPU;
DESIGN.md, "Where the GPU and the cluster come in"), moving numpy batches to the
device, the epoch-ordered batches of clips, the mask of frames that count in a loss,
the learning-rate schedule, ``predict``, which decodes clips in batches, and the
progress bar every long stage shows on a terminal.

Device and precision are chosen here, at the edge, and passed down; the model
constructor takes no device.
"""

from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from nvcodec import distributed
from nvcodec.clipset import ClipSet
from nvcodec.config import FitConfig, ModelConfig


def resolve_device(device: str | None) -> str:
    """``device`` as given, else CUDA when present, else CPU."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_device() -> torch.device:
    return torch.device(resolve_device(None))


def as_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device; ``None``: the default one."""
    return torch.device(device) if device is not None else default_device()


def autocast(device: torch.device):
    """The precision context of a forward pass: bf16 autocast on CUDA, fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_device(a: np.ndarray, device: torch.device) -> Tensor:
    """A numpy array on ``device``; uint8 becomes float in [0, 1] (channels-last images on CUDA)."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    if t.dtype == torch.uint8:
        t = t.float().div_(255.0)
        if t.ndim == 4 and device.type == "cuda":
            t = t.contiguous(memory_format=torch.channels_last)
    return t


def progress_bar(total: int, desc: str, *, enabled: bool = True, initial: int = 0, unit: str = "step"):
    """A tqdm bar with rate and ETA on stderr when ``enabled`` and stderr is a terminal; otherwise a
    disabled bar (updates cost nothing), and the stage says what it did in one log line when done."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not (enabled and sys.stderr.isatty()), unit=unit,
                dynamic_ncols=True, file=sys.stderr, desc=desc)


def lr_factor(step: int, total_steps: int, warmup_frac: float, warmup_start: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then cosine to 0."""
    warmup = int(round(warmup_frac * total_steps))
    if step < warmup:
        return warmup_start + (1.0 - warmup_start) * step / warmup
    progress = (step - warmup) / max(total_steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def trainable_mask(model_cfg: ModelConfig, clips: ClipSet, index: np.ndarray) -> np.ndarray:
    """(len(index), T) bool: the frames a loss counts (padding out; pasted keyframes out when pasted)."""
    mask = clips.mask[index].copy()
    if model_cfg.paste_keyframes:
        t = clips.t_local[index]
        mask &= (t != 0) & (t != 1)
    return mask


def clip_inputs(clips: ClipSet, index: np.ndarray, device: torch.device) -> tuple[Tensor, ...]:
    """The network's inputs for clips ``index``: (start keyframe, end keyframe, t_video, t_local), the
    motion-warped keyframes when the clips carry them (a network that consumes coded motion), then the
    clips' latent rows when they carry them (a network with per-frame latents, which consumes motion)."""
    c = clips
    arrays = (c.keyframes[c.start_kf[index]], c.keyframes[c.end_kf[index]], c.t_video[index], c.t_local[index])
    if c.warped is not None:
        arrays += (c.warped[index],)
    if c.row is not None:
        arrays += (c.row[index],)
    return tuple(to_device(a, device) for a in arrays)


class Batcher:
    """Clip indices and device tensors for each step: epoch order from (seed, epoch) alone."""

    def __init__(self, clips: ClipSet, fit_cfg: FitConfig, ctx: distributed.DistContext,
                 device: torch.device) -> None:
        self.clips, self.cfg, self.ctx, self.device = clips, fit_cfg, ctx, device
        self.steps_per_epoch = math.ceil(clips.n_clips / fit_cfg.batch_size)
        self._epoch, self._order = -1, np.empty(0, np.int64)

    def indices(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.clips.n_clips, generator=gen).numpy()
        chunk = self._order[i * self.cfg.batch_size:(i + 1) * self.cfg.batch_size]
        world = self.ctx.world_size
        if len(chunk) % world:       # every rank needs a non-empty share: wrap around
            chunk = np.resize(chunk, math.ceil(len(chunk) / world) * world)
        return np.sort(chunk[self.ctx.rank::world])

    def tensors(self, index: np.ndarray) -> tuple[Tensor, ...]:
        return clip_inputs(self.clips, index, self.device)


@torch.no_grad()
def predict(model: torch.nn.Module, clips: ClipSet, *, device: str | torch.device | None = None,
            batch_size: int = 8) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Decode ``clips`` in batches: yields (clip indices, uint8 (b, T, 3, h, w)).

    The model is used as given (moved to ``device`` and put in eval mode; weights untouched).
    """
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    model = getattr(model, "module", model)
    device = as_device(device)
    model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    for first in range(0, clips.n_clips, batch_size):
        index = np.arange(first, min(first + batch_size, clips.n_clips))
        with autocast(device):
            out = model(*clip_inputs(clips, index, device))
        frames = out.float().mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
        yield index, frames
