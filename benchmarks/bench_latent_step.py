"""A fit step's cost against the size of the per-frame latent table: dense AdamW against RowAdam.

    OMP_NUM_THREADS=1 python benchmarks/bench_latent_step.py --values 1.3e6 1.3e7 1.15e8

``fast``'s network (the 16 x 4 refiner on 64x64 tiles, no trunk, 4 latent channels on 16-pixel
cells: 8 frame slots x 64 = 512 values per clip-tile row) with a latent table of about each given number of values, one
training step on a batch of ``fast``'s 4 clips, timed two ways in the same process:

- ``dense``: as the fit stepped the table until nvcodec.row_adam, the table a parameter of the model
  (its gradient as large as the table) and one torch AdamW over everything;
- ``rows``: as the fit does now, the batch's rows read through ``RowAdam.current`` and stepped by it.

It prints each step's median over ``--steps`` (after one warm-up), the ratio, and the one-off
``RowAdam.flush`` at the end of a fit (every row brought up to date). For scale: 1.55 M values is
the 21-video corpus at <= 300 frames a clip at 160x128 (``native-160x128-floor``); 115 M about a
thousand such videos, near the file's 2^27-element bound.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from nvcodec.config import LATENTS, latent_count
from nvcodec.fit import latent_bits
from nvcodec.model import DNeRV
from nvcodec.presets import PRESETS
from nvcodec.row_adam import RowAdam


def _batch(cfg, batch: int, n_rows: int, gen: torch.Generator):
    h, w, t = cfg.tile_h, cfg.tile_w, cfg.clip_length
    kf = torch.rand(batch, 3, h, w, generator=gen)
    t_local = torch.linspace(0, 1, t).repeat(batch, 1)
    warped = torch.rand(batch, t, 2, 3, h, w, generator=gen)
    rows = torch.randint(0, n_rows, (batch,), generator=gen)
    target = torch.rand(batch, t, 3, h, w, generator=gen)
    return (kf, kf, t_local, t_local, warped), rows, target


def _time(step, n_steps: int) -> float:
    step()                                                   # warm-up: allocations, first-touch of the state
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(n_values: float, n_steps: int, batch: int) -> dict:
    base = PRESETS["fast"].model_config(0)          # fast's network, clip length 8
    per_row = latent_count(replace(base, latent_rows=1))
    n_rows = max(1, round(n_values / per_row))
    cfg = replace(base, latent_rows=n_rows)
    gen = torch.Generator().manual_seed(0)
    model = DNeRV(cfg)
    weights = [p for name, p in model.named_parameters() if name != LATENTS]

    dense_opt = torch.optim.AdamW([{"params": weights}, {"params": [model.latents]}], lr=2e-3, weight_decay=0.0)

    def dense_step():
        inputs, rows, target = _batch(cfg, batch, n_rows, gen)
        pred = model(*inputs, rows, latent_noise=True)
        loss = (pred - target).abs().mean() + 1e-6 * latent_bits(model.latents[rows])
        dense_opt.zero_grad(set_to_none=True)
        loss.backward()
        dense_opt.step()

    dense_s = _time(dense_step, n_steps)
    del dense_opt

    opt = torch.optim.AdamW(weights, lr=2e-3, weight_decay=0.0)
    rows_opt = RowAdam(model.latents)

    def rows_step():
        inputs, rows, target = _batch(cfg, batch, n_rows, gen)
        values = rows_opt.current(rows).requires_grad_()
        pred = model(*inputs, latent_values=values, latent_noise=True)
        loss = (pred - target).abs().mean() + 1e-6 * latent_bits(values)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rows_opt.step(rows, values.grad, 0.05)

    rows_s = _time(rows_step, n_steps)
    t0 = time.perf_counter()
    rows_opt.flush()
    flush_s = time.perf_counter() - t0
    return {"values": latent_count(cfg), "rows": n_rows, "dense_s": dense_s, "rows_s": rows_s, "flush_s": flush_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=float, nargs="+", default=[1.3e6, 1.3e7],
                        help="latent table sizes, in values (rounded to whole rows)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per way (median)")
    parser.add_argument("--batch", type=int, default=PRESETS["fast"].fit.batch_size)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); fast's network, batch {args.batch}, "
          f"median of {args.steps} steps")
    print(f"{'values':>12} {'rows':>8} {'dense AdamW s/step':>19} {'RowAdam s/step':>15} {'ratio':>6} {'flush s':>8}")
    for n in args.values:
        r = measure(n, args.steps, args.batch)
        print(f"{r['values']:>12} {r['rows']:>8} {r['dense_s']:>19.4f} {r['rows_s']:>15.4f} "
              f"{r['dense_s'] / r['rows_s']:>6.1f} {r['flush_s']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
