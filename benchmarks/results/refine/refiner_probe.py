"""How much can a refiner of the warped pair alone add over the motion floor, per CPU-minute?

The probe behind ``nvcodec.model.Refiner``: the corpus at 160x128 (first N frames of each clip), keyframes
coded at one quality (the default SVT-AV1 track), each video's motion estimated at fixed 16-pixel cells in
half pixels and refined at a fixed price (``estimate_video(lam=)``), then the codec's own ``Refiner`` with
no trunk (c_in = 0) fitted on whole in-between frames (MSE, AdamW, a cosine schedule over a wall-clock
budget) and scored on the same frames, rounded to 8 bits, against the float fusion of the same pair,
(1 - t, t) (the floor up to the pair's 8-bit rounding). PSNR: per in-between frame, mean over them.

    PYTHONPATH=. python benchmarks/results/refine/refiner_probe.py --quality 40 --max-frames 32 --width 16 --layers 4 \
        --minutes 8 --threads 2
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import rd
from benchmarks.bench_motion import code_video_keyframes
from nvcodec.config import ModelConfig
from nvcodec.corpus import clip_layout
from nvcodec.keyframes import KeyframeCodec
from nvcodec.model import Refiner
from nvcodec.motion import MotionConfig, estimate_video, warped_video

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"


def pairs(quality: int, max_frames: int, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every in-between frame's warped pair (n, 2, H, W, 3), its target (n, H, W, 3) and its t (n,)."""
    corpus = rd.read_corpus(CORPUS, "native", (160, 128), max_frames, Path("/tmp/nvcodec-refiner-probe"))
    out = ([], [], [])
    for name in corpus.names:
        frames = np.asarray(corpus.frames[name])
        _, _, dec = code_video_keyframes(frames, KeyframeCodec(quality=quality), 8)
        motion = estimate_video(frames, dec, 8, MotionConfig(16, 2), lam=lam)
        warped = warped_video(dec, motion, len(frames), 8)
        _, _, _, frame, mask, _, t_local = clip_layout(len(frames), 8)
        inner = mask & (t_local > 0) & (t_local < 1)
        out[0].append(warped[inner])
        out[1].append(frames[frame[inner]])
        out[2].append(t_local[inner])
    return tuple(np.concatenate(a) for a in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality", type=int, default=40)
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--lam", type=float, default=1300.0, help="the motion's price of a bit (refine_clip)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--coarse", type=int, default=0, help="the half-resolution branch's width (0: none)")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warped, target, t_local = pairs(args.quality, args.max_frames, args.lam)
    mean, std = torch.tensor(ModelConfig.mean).view(1, 3, 1, 1), torch.tensor(ModelConfig.std).view(1, 3, 1, 1)
    net = Refiner(0, args.width, args.layers, args.coarse)
    n_params = sum(p.numel() for p in net.parameters())

    def batch(idx):
        w = torch.from_numpy(warped[idx]).permute(0, 1, 4, 2, 3).float() / 255          # (b, 2, 3, H, W)
        start, end = (w[:, 0] - mean) / std, (w[:, 1] - mean) / std
        t = torch.from_numpy(t_local[idx]).view(-1, 1, 1, 1)
        x = start.new_zeros(start.shape[0], 0, *start.shape[2:])
        tgt = torch.from_numpy(target[idx]).permute(0, 3, 1, 2).float() / 255
        return x, start, end, t, tgt

    def psnr() -> tuple[float, float]:
        net_db, fused_db = [], []
        with torch.no_grad():
            for a in range(0, len(t_local), 64):
                x, start, end, t, tgt = batch(np.arange(a, min(a + 64, len(t_local))))
                for pred, scores in ((net(x, start, end, t), net_db), ((1 - t) * start + t * end, fused_db)):
                    pixels = torch.round((pred * std + mean).clamp(0, 1) * 255)
                    mse = (pixels - tgt * 255).square().mean(dim=(1, 2, 3)).clamp_min(1e-10)
                    scores.append(10 * torch.log10(255 ** 2 / mse))
        return float(torch.cat(net_db).mean()), float(torch.cat(fused_db).mean())

    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0)
    rng = np.random.default_rng(0)
    started, steps, budget = time.monotonic(), 0, args.minutes * 60
    while (elapsed := time.monotonic() - started) < budget:
        frac = elapsed / budget
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, frac / 0.05) * 0.5 * (1 + math.cos(math.pi * frac))
        x, start, end, t, tgt = batch(rng.integers(0, len(t_local), args.batch))
        loss = ((net(x, start, end, t) * std + mean) - tgt).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    refined, fused = psnr()
    print(f"quality {args.quality}, {len(t_local)} in-between frames; refiner {args.width} x {args.layers} "
          + (f"with a {args.coarse}-wide half-resolution branch " if args.coarse else "") +
          f"({n_params} weights), {steps} steps of {args.batch} frames in {args.minutes:g} min on "
          f"{args.threads} thread(s): {refined:.3f} dB against the fused pair's {fused:.3f} dB "
          f"({refined - fused:+.3f} dB)")


if __name__ == "__main__":
    main()
