"""What the context model (FORMAT.md section 9, model 5) saves on the latent tables of real files.

    PYTHONPATH=. python benchmarks/latent_coding.py FILE.nvc [FILE.nvc ...]

For each file: the latent table's integers coded under the best i.i.d. model (what
files carried before the context model) and under what the writer now chooses, the
axes it chose, and the coder's time. Same integers: the pictures do not change.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from nvcodec.bitstream import NvcReader, decode_ints, encode_ints
from nvcodec.bitstream.entropy import MODEL_CONTEXT
from nvcodec.config import LATENTS


def measure(path: str) -> dict:
    with NvcReader(path) as r:
        table = [t for t in r.read_tensors() if t.name == LATENTS]
    if not table:
        return {"file": path, "latents": None}
    q, n_bits = table[0].q, table[0].n_bits
    flat = encode_ints(q, n_bits)
    t0 = time.perf_counter()
    shaped = encode_ints(q, n_bits, shaped=True)
    t1 = time.perf_counter()
    back = decode_ints(shaped, q.size, n_bits, q.shape)
    t2 = time.perf_counter()
    assert np.array_equal(back.reshape(q.shape), q)
    return {"file": path, "latents": q.shape, "zeros": float(np.mean(q == 0)), "iid_bytes": len(flat),
            "bytes": len(shaped), "model": shaped[0], "axes": list(shaped[2:2 + shaped[1]]) if shaped[0] == MODEL_CONTEXT else None,
            "encode_s": t1 - t0, "decode_s": t2 - t1}


def main(paths: list[str]) -> None:
    print("| file | latent table | zeros | best i.i.d. model | now | saved | axes | encode s | decode s |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for path in paths:
        m = measure(path)
        if m["latents"] is None:
            print(f"| {path} | none | | | | | | | |")
            continue
        print(f"| {path} | {m['latents']} | {100 * m['zeros']:.1f} % | {m['iid_bytes']} B | {m['bytes']} B | "
              f"{100 * (1 - m['bytes'] / m['iid_bytes']):.1f} % | {m['axes']} | {m['encode_s']:.2f} | {m['decode_s']:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
