"""Rounding the motion refined through the network: does the lattice lose the continuous gain, and can a
finer lattice or a learned rounding keep more of it?

``nvcodec.motion_fit`` moves a clip's fields continuously (``clip_objective``: the frozen network's squared
error + lambda x Laplace bits) and rounds them to the nearest point of the video's lattice. Per clip of a
file's first N videos (the corpus at 160x128, first 32 frames, as the file was encoded) this prints the
network's in-between PSNR change with the decoder's integer warps, and the clip's coded bits, for:

- ``nearest``: the encoder's rounding (each clip kept only where error + lambda x bits falls);
- ``fine``: the same continuous fields rounded to a lattice twice as fine (the video's step halved, every
  clip re-expressed on it, refined or not); the video takes it only where its summed cost falls;
- ``learned``: after the continuous steps, ROUND_ITERS more on the choice between the lower and the upper
  lattice point of each value (a rectified sigmoid, AdaRound's, pushed to 0 or 1 by a regulariser of
  weight REG whose exponent anneals from 20 to 2), then rounded by that choice.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/refine/rounding_probe.py FILE.nvc LAMBDA \
        [--videos 5] [--iters 30] [--round-iters 15]

FILE: an encode of the corpus at 160x128 with ``max_frames=32`` whose network consumes coded motion (its
quantized network is used frozen); LAMBDA: the price of a bit the encode measured (its log says it).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nvcodec.corpus import build_clip_range, clip_layout, merge_tiles, tile_grid
from nvcodec.decoder import open_nvc
from nvcodec.media import read_frames
from nvcodec.motion import FloatWarp, warped_clip
from nvcodec.motion_fit import REFINE_LR, clip_bits, clip_objective, to_lattice
from nvcodec.runtime import predict

CORPUS = Path(__file__).parents[4] / "shared" / "corpus"
ZETA, GAMMA = 1.1, -0.1          # the rectified sigmoid's stretch (AdaRound)
REG = 0.02                       # the regulariser's weight, in the objective's units (squared error per value)
VLR = 0.3                        # Adam's step on the rounding logits


def learned_rounding(objective, u: np.ndarray, iters: int) -> np.ndarray:
    """Each value's lower or upper lattice point, chosen by ``iters`` Adam steps on the objective at
    floor(u) + h(V), h a rectified sigmoid started at u's fraction and pushed to 0 or 1."""
    low = torch.floor(torch.from_numpy(u))
    frac = (torch.from_numpy(u) - low).clamp(1e-3, 1 - 1e-3)
    v = torch.logit((frac - GAMMA) / (ZETA - GAMMA)).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=VLR)
    for k in range(iters):
        beta = 20 - 18 * k / max(iters - 1, 1)
        h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)
        _, grad = objective(low + h.detach())
        opt.zero_grad()
        reg = REG * (k + 1) / iters * (1 - (2 * h - 1).abs() ** beta).sum()
        torch.autograd.backward([h, reg], [grad, None])
        opt.step()
    h = torch.clamp(torch.sigmoid(v.detach()) * (ZETA - GAMMA) + GAMMA, 0, 1)
    return to_lattice((low + (h >= 0.5).float()).numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("lam", type=float)
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--round-iters", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    f = open_nvc(args.file)
    model = f.network().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    lam, interval = args.lam, f.interval
    th, tw = model.cfg.tile_h, model.cfg.tile_w
    total = {k: 0.0 for k in ("values", "sse0", "b0", "sse_nearest", "b_nearest", "sse_fine", "b_fine",
                              "sse_learned", "b_learned")}
    for v, entry in enumerate(f.videos[:args.videos]):
        frames = np.stack(list(read_frames(CORPUS / entry.name, size=(160, 128), max_frames=32)))
        layout = f.keyframe_layout(v)
        kfs = np.asarray(f._keyframes(v, 0, layout.n_keyframes - 1))
        motion = f._reader.motion(v).read_all()
        fine = replace(motion, step_qpel=motion.step_qpel // 2) if motion.step_qpel % 2 == 0 else None
        n_frames, (h, w) = len(frames), kfs.shape[1:3]
        rows, cols = tile_grid(h, w, th, tw)
        first, start_kf, end_kf, *_ = clip_layout(n_frames, interval, keyframes=layout.positions)
        float_warp = FloatWarp(h, w, motion.grid, motion.rows, motion.cols, motion.step_qpel)
        video = {k: 0.0 for k in total}
        for c, q0 in enumerate(motion.clips):
            n = q0.shape[0]
            if not n:
                continue
            s, e, f0 = int(start_kf[c]), int(end_kf[c]), int(first[c])
            target = frames[f0 + 1:f0 + 1 + n]

            def exact(q, m):
                warped = warped_clip(kfs[s], kfs[e], q, m, interval)[None]
                clips = build_clip_range(kfs[s:e + 1], s, n_frames, interval, th, tw, c, c + 1,
                                         positions=layout.positions, warped=warped)
                out = np.empty((clips.n_clips, interval, 3, th, tw), np.uint8)
                for index, pred in predict(model, clips, batch_size=clips.n_clips):
                    out[index] = pred
                d = merge_tiles(out.transpose(1, 0, 2, 3, 4), h, w)[1:1 + n].astype(np.float64) - target
                return float((d * d).sum()), clips

            q0 = q0.astype(np.int64)
            sse0, clips = exact(q0, motion)
            b0 = clip_bits(q0)
            objective = clip_objective(model, clips, q0, (kfs[s], kfs[e]), target, float_warp, lam, rows, cols,
                                       torch.device("cpu"))
            u = torch.tensor(q0, dtype=torch.float32)
            opt = torch.optim.Adam([u], lr=REFINE_LR)
            for _ in range(args.iters):
                _, u.grad = objective(u)
                opt.step()
            u = u.numpy()

            def kept(q, m, sse_base, b_base):
                if np.array_equal(q, q0) and m is motion:
                    return sse_base, b_base
                sse1, b1 = exact(q, m)[0], clip_bits(q)
                return (sse1, b1) if sse1 + lam * b1 < sse_base + lam * b_base else (sse_base, b_base)

            near = kept(to_lattice(u), motion, sse0, b0)
            learned = kept(learned_rounding(objective, u, args.round_iters), motion, sse0, b0) \
                if args.round_iters else near
            line = (f"v{v} c{c} step {motion.step_qpel}/4: nearest {10 * np.log10(sse0 / near[0]):+.3f} dB "
                    f"{b0}->{near[1]} bits | learned {10 * np.log10(sse0 / learned[0]):+.3f} dB ->{learned[1]}")
            fine_pt = near
            if fine is not None:
                coded_fine = (sse0, clip_bits(2 * q0))            # the same integers on the finer lattice, in its units
                fine_pt = kept(to_lattice(2 * u), fine, *coded_fine)
                line += f" | fine {10 * np.log10(sse0 / fine_pt[0]):+.3f} dB {coded_fine[1]}->{fine_pt[1]}"
            print(line, flush=True)
            for key, x in zip(("values", "sse0", "b0", "sse_nearest", "b_nearest", "sse_learned", "b_learned",
                               "sse_fine", "b_fine"), (target.size, sse0, b0, *near, *learned, *fine_pt)):
                video[key] += x
        if video["sse_fine"] + lam * video["b_fine"] >= video["sse_nearest"] + lam * video["b_nearest"]:
            video["sse_fine"], video["b_fine"] = video["sse_nearest"], video["b_nearest"]   # the video keeps its step
            print(f"video {v}: keeps its step")
        else:
            print(f"video {v}: takes the finer lattice")
        for key in total:
            total[key] += video[key]

    def psnr(sse: float) -> float:
        return 10 * np.log10(255.0 ** 2 * total["values"] / sse)

    print(f"in-between PSNR (pooled) as coded {psnr(total['sse0']):.3f} dB, {total['b0'] / 8:.0f} motion bytes | "
          + " | ".join(f"{k} {psnr(total['sse_' + k]):.3f} dB, {total['b_' + k] / 8:.0f} B"
                       for k in ("nearest", "fine", "learned")))


if __name__ == "__main__":
    main()
