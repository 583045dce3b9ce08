"""Efficiency of nvcodec.bitstream's integer coder against the empirical entropy.

For arrays drawn from Laplace, Gaussian and real-weight-like distributions,
quantized max-abs to n_bits like the codec's weights, prints per case:
  side   bytes of model side information (model id + parameters / histogram),
  coded  bytes of range-coder words,
  H      empirical entropy sum(-log2 p_hat) / 8 in bytes (p_hat = the array's own histogram),
  coded/H, total/H, and the same for the categorical model alone.
Target: coded <= 1.01 * H + side.  The categorical model codes with p_hat itself, so
for it the target reads coded/H <= 1.01 with side = the stored histogram ("cat" columns).
The parametric models (9 bytes of side information) are chosen only when their total
is smaller than the categorical total, so "ok" checks the chosen total against
1.01 * H + the histogram's side information: total <= 1.01 * H + cat side.
(With few samples per symbol, e.g. 10 000 symbols at 16 bits, H is far below the
source's true entropy and a parametric model beats it in total.)

    python benchmarks/bench_entropy.py [--n 10000 100000] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from nvcodec.bitstream import decode_ints, encode_ints
from nvcodec.bitstream.entropy import MODEL_NAMES, encode_ints_report


def draw(dist: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if dist == "laplace":
        return rng.laplace(0.0, 1.0, n)
    if dist == "gaussian":
        return rng.normal(0.0, 1.0, n)
    # weight-like: mostly Gaussian, 10 % heavy-tailed (Student t, 3 d.o.f.), slight offset
    core = rng.normal(0.01, 1.0, n)
    tail = 2.0 * rng.standard_t(3, n)
    return np.where(rng.random(n) < 0.1, tail, core)


def quantize(x: np.ndarray, n_bits: int) -> np.ndarray:
    q_max = (1 << (n_bits - 1)) - 1
    return np.clip(np.round(x / np.abs(x).max() * q_max), -q_max - 1, q_max).astype(np.int32)


def entropy_bytes(q: np.ndarray) -> float:
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    return float(-(counts * np.log2(p)).sum() / 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 16])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'dist':9} {'bits':>4} {'n':>7} {'model':>11} {'side':>6} {'coded':>8} {'H':>10} "
          f"{'coded/H':>8} {'total/H':>8} | {'cat side':>8} {'cat coded/H':>11} {'ok':>3} {'ms':>6}")
    n_fail = 0
    for dist in ("laplace", "gaussian", "weights"):
        for n_bits in args.bits:
            for n in args.n:
                q = quantize(draw(dist, n, rng), n_bits)
                t0 = time.perf_counter()
                data = encode_ints(q, n_bits)
                ms = 1000 * (time.perf_counter() - t0)
                assert np.array_equal(decode_ints(data, n, n_bits), q)
                report = encode_ints_report(q, n_bits)
                model = MODEL_NAMES[data[0]]
                side, coded = report[model]
                h = entropy_bytes(q)
                cat_side, cat_coded = report.get("categorical", (0, 0))
                ok = cat_coded <= 1.01 * h + cat_side and side + coded <= 1.01 * h + cat_side
                n_fail += not ok
                print(f"{dist:9} {n_bits:4d} {n:7d} {model:>11} {side:6d} {coded:8d} {h:10.1f} "
                      f"{coded / h:8.4f} {(side + coded) / h:8.4f} | {cat_side:8d} {cat_coded / h:11.4f} "
                      f"{'yes' if ok else 'NO':>3} {ms:6.1f}")
    print(f"cases failing (categorical coded <= 1.01 H + its side, chosen total <= 1.01 H + histogram side): {n_fail}")


if __name__ == "__main__":
    main()
