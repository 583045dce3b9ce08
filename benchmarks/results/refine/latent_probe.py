"""Does per-frame side information the refiner decodes pay for its bits?

The network cannot memorize what is new in each frame (occlusions, lighting, the keyframes' coding error):
the motion floor's residual is per-frame information. This probe gives each in-between frame a small coded
latent, a C x (H/s) x (W/s) grid of integers upsampled (bilinear) to full resolution as C more refiner
inputs, fitted jointly with the refiner (an auto-decoder: the latents are parameters, no encoder network)
under squared error + lam x bits. Training adds uniform noise in place of rounding; the bits are the
Laplace cost of each integer (``nvcodec.qat.laplace_bits``) with each channel's scale fitted to its values
(closed form, mean |y|), as an adaptive coder with the scale in the file would pay them. Scored with the
latents rounded: in-between PSNR (8-bit RGB, mean over frames), the latents' bits, and the net of both at
the price lam (squared error on 8-bit values per bit, the unit of the encoder's price of a bit).

The pairs are ``refiner_probe.pairs`` (the same keyframes, motion and frames), cached in ``--cache``.
``--channels 0`` is the control: the refiner alone, the same schedule.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/refine/latent_probe.py --channels 4 --stride 16 \
        --minutes 12 --lam 1955
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.results.refine.refiner_probe import pairs
from nvcodec.config import ModelConfig
from nvcodec.model import Refiner
from nvcodec.qat import laplace_bits


def cached_pairs(path: Path, quality: int, max_frames: int, lam: float):
    if path.exists():
        z = np.load(path)
        return z["warped"], z["target"], z["t"]
    warped, target, t_local = pairs(quality, max_frames, lam)
    np.savez(path, warped=warped, target=target, t=t_local)
    return warped, target, t_local


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality", type=int, default=40)
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--motion-lam", type=float, default=1300.0, help="the motion's price of a bit (as refiner_probe)")
    ap.add_argument("--lam", type=float, default=1955.0, help="the latents' price of a bit (squared error per bit)")
    ap.add_argument("--channels", type=int, default=4, help="latent channels per frame (0: the refiner alone)")
    ap.add_argument("--stride", type=int, default=16, help="latent cell size in pixels")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--latent-lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/nvcodec-latent-probe-pairs.npz"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warped, target, t_local = cached_pairs(args.cache, args.quality, args.max_frames, args.motion_lam)
    n, h, w = target.shape[0], target.shape[1], target.shape[2]
    mean, std = torch.tensor(ModelConfig.mean).view(1, 3, 1, 1), torch.tensor(ModelConfig.std).view(1, 3, 1, 1)
    c = args.channels
    gh, gw = -(-h // args.stride), -(-w // args.stride)
    latents = torch.zeros(n, c, gh, gw, requires_grad=True)
    net = Refiner(c, args.width, args.layers)
    n_params = sum(p.numel() for p in net.parameters())

    def scales() -> torch.Tensor:
        """Each channel's Laplace scale, fitted to its values (ML: mean |y|), floored as the motion's."""
        return latents.detach().abs().mean(dim=(0, 2, 3)).clamp_min(0.2)

    def bits_of(y: torch.Tensor) -> torch.Tensor:
        b = scales()
        return sum(laplace_bits(y[:, k], 0.0, float(b[k])).sum() for k in range(c)) if c else y.new_zeros(())

    def batch(idx, noisy: bool):
        wp = torch.from_numpy(warped[idx]).permute(0, 1, 4, 2, 3).float() / 255          # (b, 2, 3, H, W)
        start, end = (wp[:, 0] - mean) / std, (wp[:, 1] - mean) / std
        t = torch.from_numpy(t_local[idx]).view(-1, 1, 1, 1)
        y = latents[torch.from_numpy(np.asarray(idx))]
        y = y + (torch.rand_like(y) - 0.5) if noisy else torch.round(y)
        x = F.interpolate(y, size=(gh * args.stride, gw * args.stride), mode="bilinear", align_corners=False)[
            ..., :h, :w] if c else y.new_zeros(len(idx), 0, h, w)
        tgt = torch.from_numpy(target[idx]).permute(0, 3, 1, 2).float()
        return y, x, start, end, t, tgt

    def score() -> tuple[float, float, float, float]:
        """(in-between PSNR, fused pair PSNR, SSE, bits) with the latents rounded."""
        net_db, fused_db, sse, bits = [], [], 0.0, 0.0
        with torch.no_grad():
            for a in range(0, n, 64):
                y, x, start, end, t, tgt = batch(np.arange(a, min(a + 64, n)), noisy=False)
                bits += float(bits_of(y))
                for pred, scores in ((net(x, start, end, t), net_db), ((1 - t) * start + t * end, fused_db)):
                    pixels = torch.round((pred * std + mean).clamp(0, 1) * 255)
                    err = (pixels - tgt).square()
                    if scores is net_db:
                        sse += float(err.sum())
                    mse = err.mean(dim=(1, 2, 3)).clamp_min(1e-10)
                    scores.append(10 * torch.log10(255 ** 2 / mse))
        return float(torch.cat(net_db).mean()), float(torch.cat(fused_db).mean()), sse, bits

    groups = [{"params": net.parameters(), "lr": args.lr, "base": args.lr}]
    if c:
        groups.append({"params": [latents], "lr": args.latent_lr, "base": args.latent_lr})
    opt = torch.optim.Adam(groups)
    rng = np.random.default_rng(0)
    started, steps, budget = time.monotonic(), 0, args.minutes * 60
    values = 3 * h * w
    while (elapsed := time.monotonic() - started) < budget:
        frac = elapsed / budget
        for group in opt.param_groups:
            group["lr"] = group["base"] * min(1.0, frac / 0.05) * 0.5 * (1 + math.cos(math.pi * frac))
        idx = rng.integers(0, n, args.batch)
        y, x, start, end, t, tgt = batch(idx, noisy=True)
        sse = ((net(x, start, end, t) * std + mean) * 255 - tgt).square().sum()
        loss = (sse + args.lam * bits_of(y)) / (len(idx) * values)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    db, fused, sse, bits = score()
    pixels = n * h * w
    print(f"quality {args.quality}, {n} in-between frames {w}x{h}; refiner {args.width} x {args.layers} "
          f"({n_params} weights), latents {c} x {gh} x {gw} per frame (stride {args.stride}), lam {args.lam:g}; "
          f"{steps} steps of {args.batch} frames in {args.minutes:g} min")
    print(f"  in-between PSNR {db:.3f} dB (fused pair {fused:.3f}, {db - fused:+.3f}); SSE {sse:.4g}; "
          f"latents {bits:.0f} bits = {bits / 8:.0f} bytes, {bits / n:.1f} bits/frame, "
          f"{bits / pixels:.5f} bpp of these frames; SSE + lam x bits = {sse + args.lam * bits:.4g}")


if __name__ == "__main__":
    main()
