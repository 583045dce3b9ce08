"""Coded motion refined through the fitted network (encoder only; DESIGN.md, "Coded motion").

Block matching and ``nvcodec.motion.refine_clip`` choose each frame's fields for the *motion floor*:
the two warped keyframes fused (1 - t, t). A network that consumes coded motion does more with the
warped pair (it corrects the flow, weighs the two pictures, adds a residual), so the fields that serve
it best are not those that serve the floor best. After the fit, ``refine_video`` moves every clip's
fields by gradient through the network:

- the fields are continuous parameters, initialised at the coded integers; the decoder's warp is
  ``motion.FloatWarp`` (float, differentiable), the warped pair is tiled as the fit tiles it, and the
  fitted network (frozen) predicts the clip's in-between frames;
- the loss is their squared error (8-bit RGB) + ``lam`` x bits, the bits a discretised Laplace fitted
  to the clip's initial time residuals (``qat.laplace_bits``, the weights' smooth rate term) of the
  fields' differences from one frame to the next;
- ``iters`` Adam steps of ``REFINE_LR`` lattice steps, then the fields are rounded to the lattice;
- the clip keeps its new integers only where that lowers its *measured* cost: the network's squared
  error on the decoder's integer warps + ``lam`` x the clip's coded bits (``bitstream.motion.encode_clip``).
  A clip never gets worse at ``lam``.

The encoder then fine-tunes the network on the new warps (rate-aware quantization's fine-tune runs on
them), so fields and weights are fitted in alternation: the fields against the fitted network, the
network against the refined fields. Without that fine-tune (plain quantization) the network is used as
fitted.

Why not on the lattice during the fit: a straight-through rounding of the fields (forward on the
integers, gradient at them) made every measured clip worse, by 0.1 to 0.8 dB on the in-between frames:
the image gradient at a lattice point does not predict a whole step's change. Optimised continuous, then
rounded once, the same clips gained (benchmarks/results/refine, "Motion refined through the network").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.bitstream.motion import MAX_ABS_Q, VideoMotion, clip_inbetween_counts, encode_clip
from nvcodec.corpus import build_clip_range, clip_layout, latent_row_bases, merge_tiles, split_tiles, tile_grid
from nvcodec.metrics import psnr_from_mse
from nvcodec.model import DNeRV
from nvcodec.motion import INTERP_CODES, FloatWarp, warped_clip
from nvcodec.qat import laplace_bits
from nvcodec.runtime import autocast, clip_inputs, predict

REFINE_LR = 0.1          # Adam's step, in lattice steps (measured over 30 steps: 0.02 -> +0.015 dB, 0.1 -> +0.095 dB)
CHUNK_PIXELS = 1 << 19   # tile pixels x clip frames through the network at once (fast at 160x128: one chunk)


@dataclass
class RefineStats:
    """What ``refine_video`` did: clips seen and changed, the network's squared error on their in-between
    frames and their coded motion bits, before and after (8-bit RGB, summed)."""

    clips: int = 0
    changed: int = 0
    sse_before: float = 0.0
    sse_after: float = 0.0
    bits_before: int = 0
    bits_after: int = 0
    values: int = 0                  # in-between samples (frames x pixels x 3) the sums cover

    @property
    def psnr_before(self) -> float:
        """The network's PSNR on the in-between frames (pooled) with the motion as it came."""
        return float(psnr_from_mse(self.sse_before / max(self.values, 1)))

    @property
    def psnr_after(self) -> float:
        return float(psnr_from_mse(self.sse_after / max(self.values, 1)))

    def add(self, other: "RefineStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def clip_bits(q: np.ndarray) -> int:
    """A clip's fields' coded bits (``bitstream.motion.encode_clip``'s words)."""
    return 8 * len(encode_clip(np.asarray(q, dtype=np.int32))[2])


def to_lattice(u: np.ndarray) -> np.ndarray:
    """Continuous fields (lattice steps) rounded to the nearest lattice point the format allows, int64."""
    return np.clip(np.round(u), -MAX_ABS_Q, MAX_ABS_Q).astype(np.int64)


def _tiles_of(pairs: torch.Tensor, rows: int, cols: int, th: int, tw: int) -> torch.Tensor:
    """(n, 2, 3, H, W) frame-level warped pairs -> (rows * cols, n, 2, 3, th, tw), edge-padded to whole tiles
    (``corpus.tile_warped``)."""
    n, _, _, h, w = pairs.shape
    padded = F.pad(pairs.reshape(n * 2, 3, h, w), (0, cols * tw - w, 0, rows * th - h), mode="replicate")
    tiles = padded.view(n, 2, 3, rows, th, cols, tw).permute(3, 5, 0, 1, 2, 4, 6)
    return tiles.reshape(rows * cols, n, 2, 3, th, tw)


def refine_video(model: DNeRV, frames, dec_keyframes: np.ndarray, motion: VideoMotion, interval: int, lam: float,
                 iters: int, *, keyframes: np.ndarray | None = None, device: torch.device | None = None,
                 on_clip: Callable[[RefineStats], None] | None = None,
                 first_row: int | None = None) -> tuple[VideoMotion, RefineStats]:
    """One video's coded ``motion`` refined through ``model`` (its fitted network, not changed) at ``lam``,
    the price of a bit in squared error (module docstring): (the new motion, what changed).

    ``frames`` (L, H, W, 3) uint8 the video as coded, ``dec_keyframes`` (n_kf, H, W, 3) its decoded
    keyframes, ``keyframes`` their frame numbers (None: the regular ones). One clip at a time: memory is
    one clip's frames, tiles and activations. ``on_clip`` is called with each clip's own stats (progress).
    ``first_row``: the video's first latent row (``corpus.latent_row_bases``), for a network with latents.
    Motion interpolated ``nearest`` (no encoder default) is returned as it is."""
    device = device or torch.device("cpu")
    stats = RefineStats()
    if iters < 1 or motion.interp != INTERP_CODES["bilinear"]:
        return motion, stats
    cfg = model.cfg
    th, tw = cfg.tile_h, cfg.tile_w
    n_frames, (h, w) = len(frames), dec_keyframes.shape[1:3]
    rows, cols = tile_grid(h, w, th, tw)
    first, start_kf, end_kf, *_ = clip_layout(n_frames, interval, keyframes=keyframes)
    if [q.shape[0] for q in motion.clips] != clip_inbetween_counts(n_frames, interval, keyframes):
        raise ValueError(f"motion of {len(motion.clips)} clips does not fit a video of {n_frames} frames at "
                         f"interval {interval}")
    float_warp = FloatWarp(h, w, motion.grid, motion.rows, motion.cols, motion.step_qpel)
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    new_clips = list(motion.clips)
    try:
        for c, q0 in enumerate(motion.clips):
            n = q0.shape[0]
            if not n:
                continue
            s, e, f0 = int(start_kf[c]), int(end_kf[c]), int(first[c])
            target = np.asarray(frames[f0 + 1:f0 + 1 + n])
            kf_pair = (dec_keyframes[s], dec_keyframes[e])

            def exact(q: np.ndarray):
                """The network's squared error on the decoder's integer warps by q, and the clip's inputs."""
                clips = build_clip_range(dec_keyframes[s:e + 1], s, n_frames, interval, th, tw, c, c + 1,
                                         positions=keyframes, warped=warped_clip(*kf_pair, q, motion, interval)[None],
                                         first_row=None if first_row is None else first_row + c * rows * cols)
                out = np.empty((clips.n_clips, interval, 3, th, tw), np.uint8)
                for index, pred in predict(model, clips, device=device, batch_size=clips.n_clips):
                    out[index] = pred
                pred = merge_tiles(out.transpose(1, 0, 2, 3, 4), h, w)[1:1 + n]        # (n, H, W, 3)
                diff = pred.astype(np.float64) - target
                return float(np.sum(diff * diff)), clips

            sse0, clips = exact(q0)
            bits0 = clip_bits(q0)
            u = _descend(model, clips, q0, kf_pair, target, float_warp, lam, iters, rows, cols, device)
            q1 = q0 if u is None else to_lattice(u)
            one = RefineStats(clips=1, sse_before=sse0, bits_before=bits0, values=target.size)
            if not np.array_equal(q1, q0):
                sse1, _ = exact(q1)
                bits1 = clip_bits(q1)
                if sse1 + lam * bits1 < sse0 + lam * bits0:
                    new_clips[c] = q1.astype(np.int32)
                    one.changed, sse0, bits0 = 1, sse1, bits1
            one.sse_after, one.bits_after = sse0, bits0
            stats.add(one)
            if on_clip is not None:
                on_clip(one)
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return replace(motion, clips=tuple(new_clips)), stats


def _descend(model: DNeRV, clips, q0: np.ndarray, kf_pair, target: np.ndarray, float_warp: FloatWarp, lam: float,
             iters: int, rows: int, cols: int, device: torch.device) -> np.ndarray | None:
    """The clip's fields after ``iters`` Adam steps on ``clip_objective``, continuous, in lattice steps:
    (n, 2, 2, rows, cols) float32; None where a gradient was not finite (the caller keeps the coded
    fields). The caller rounds them to the nearest lattice point (benchmarks/results/refine/rounding_probe.py
    measured a finer lattice and a learned rounding against that)."""
    objective = clip_objective(model, clips, q0, kf_pair, target, float_warp, lam, rows, cols, device)
    u = torch.tensor(q0, dtype=torch.float32, device=device)
    opt = torch.optim.Adam([u], lr=REFINE_LR)
    for _ in range(iters):
        _, u.grad = objective(u)
        if not torch.isfinite(u.grad).all():       # no step into fields a warp cannot sample: keep the coded ones
            return None
        opt.step()
    return u.cpu().numpy()


def clip_objective(model: DNeRV, clips, q0: np.ndarray, kf_pair, target: np.ndarray, float_warp: FloatWarp,
                   lam: float, rows: int, cols: int,
                   device: torch.device) -> Callable[[torch.Tensor], tuple[float, torch.Tensor]]:
    """fields -> (loss, its gradient): the frozen network's squared error on the clip's in-between frames
    (8-bit RGB) + lam x the Laplace bits of the fields' time residuals (the scale fitted to ``q0``'s), over
    the frames' values; fields (n, 2, 2, rows, cols) in lattice steps, warped by ``float_warp``.

    ``clips`` (one clip's tiles, ``build_clip_range``) give the network's other inputs, ``kf_pair`` the
    decoded keyframes, ``target`` (n, H, W, 3) the frames as coded. The warp is at frame level; the
    network runs on CHUNK_PIXELS of tiles at a time, its gradient gathered on the tiled pairs, so memory
    is one frame-level clip plus one chunk's activations whatever the frame size."""
    n = q0.shape[0]
    h, w = target.shape[1:3]
    inputs = clip_inputs(clips, np.arange(clips.n_clips), device)
    base = inputs[4]                                               # (tiles, T, 2, 3, th, tw): the keyframe slots
    n_tiles, n_t, _, _, th, tw = base.shape
    chunk = max(1, CHUNK_PIXELS // (n_t * th * tw))
    refs = torch.stack([torch.from_numpy(np.ascontiguousarray(k)).permute(2, 0, 1) for k in kf_pair])
    refs = refs.to(device).float().div_(255.0)[None].expand(n, -1, -1, -1, -1).reshape(2 * n, 3, h, w)
    goal = torch.from_numpy(split_tiles(target, th, tw).swapaxes(0, 1)).to(device).float()   # (tiles, n, 3, th, tw)
    real = F.pad(torch.ones(1, 1, h, w, device=device), (0, cols * tw - w, 0, rows * th - h))   # 0 on the padding
    real = real.view(rows, th, cols, tw).permute(0, 2, 1, 3).reshape(rows * cols, 1, 1, th, tw)
    res0 = np.diff(q0, axis=0, prepend=np.zeros_like(q0[:1]))
    b = max(float(np.mean(np.abs(res0))), 0.2)                  # the Laplace of the clip's time residuals
    scale = 1.0 / target.size

    def objective(fields: torch.Tensor) -> tuple[float, torch.Tensor]:
        u = fields.detach().requires_grad_(True)
        pairs = float_warp(refs, u.reshape(2 * n, 2, *u.shape[-2:])).view(n, 2, 3, h, w)
        tiled = _tiles_of(pairs, rows, cols, th, tw)                   # (tiles, n, 2, 3, th, tw)
        leaf = tiled.detach().requires_grad_(True)
        loss = 0.0
        for lo in range(0, n_tiles, chunk):
            part = slice(lo, lo + chunk)
            warped = torch.cat((base[part, :1], leaf[part], base[part, 1 + n:]), dim=1)
            with autocast(device):
                out = model(*(x[part] for x in inputs[:4]), warped, *(x[part] for x in inputs[5:]))
            sse = (real[part] * (out[:, 1:1 + n].float() * 255.0 - goal[part]) ** 2).sum() * scale
            sse.backward()
            loss += float(sse.detach())
        bits = laplace_bits(torch.diff(u, dim=0, prepend=torch.zeros_like(u[:1])), 0.0, b).sum() * (lam * scale)
        torch.autograd.backward([tiled, bits], [leaf.grad, None])
        return loss + float(bits.detach()), u.grad

    return objective


def refine_videos(model: DNeRV, videos: Sequence[tuple], interval: int, motion: Sequence[VideoMotion], lam: float,
                  iters: int, *, device: torch.device | None = None,
                  on_clip: Callable[[RefineStats], None] | None = None) -> tuple[list[VideoMotion], RefineStats]:
    """``refine_video`` on each of ``videos``, (read frames, decoded keyframes, keyframe positions) per video,
    one video's frames in memory at a time: (every video's motion, the stats summed). ``on_clip`` is called
    with the running sum after each clip."""
    total, out = RefineStats(), []

    def progress(one: RefineStats) -> None:
        total.add(one)
        if on_clip is not None:
            on_clip(total)

    base, cfg = 0, model.cfg
    for (read, dec_kf, positions), m in zip(videos, motion):
        frames, dec_kf = read(), np.asarray(dec_kf)
        refined, _ = refine_video(model, frames, dec_kf, m, interval, lam, iters, keyframes=positions, device=device,
                                  on_clip=progress, first_row=base if cfg.latent_channels else None)
        base += latent_row_bases([(len(frames), *dec_kf.shape[1:3], positions)], interval, cfg.tile_h, cfg.tile_w)[1]
        out.append(refined)
    return out, total
