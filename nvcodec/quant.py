"""Post-training quantization of the network's weights (DESIGN.md, "Weights").

Symmetric uniform quantization, one step per output channel (axis 0), per
input channel (axis 1) or per tensor, whichever reconstructs the tensor with
the smallest squared error (HNeRV chooses the axis the same way). The integers
and float32 steps are what the container stores (``QuantizedTensor``); the
decoder multiplies them back with ``QuantizedTensor.dequantize``, so the
encoder measures quality with exactly the weights the decoder will have.

Pure numpy: no torch here; callers convert state dicts at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nvcodec.bitstream import QuantizedTensor

MIN_BITS = 2
MAX_BITS = 16


def _quantize_along(w: np.ndarray, axis: int | None, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(q int32, scale float32 1-D) for a symmetric quantizer with steps along ``axis``."""
    q_max = 2 ** (n_bits - 1) - 1
    if axis is None:
        peak = np.abs(w).max(initial=0.0).reshape(1)
    else:
        other = tuple(i for i in range(w.ndim) if i != axis)
        peak = np.abs(w).max(axis=other, initial=0.0) if other else np.abs(w)
    # An all-zero channel gets step 1 (its integers are all 0): the container
    # requires positive, finite steps.
    scale = np.where(peak > 0, peak / q_max, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -q_max - 1, q_max).astype(np.int32)
    return q, scale


def quantize_tensor(name: str, float_weights: np.ndarray, n_bits: int) -> QuantizedTensor:
    """Quantize one tensor, choosing per-output-channel, per-input-channel or per-tensor steps by error."""
    if not MIN_BITS <= n_bits <= MAX_BITS:
        raise ValueError(f"n_bits must lie in [{MIN_BITS}, {MAX_BITS}], got {n_bits}")
    w = np.asarray(float_weights, dtype=np.float32)
    if w.ndim == 0:
        raise ValueError(f"tensor {name!r}: 0-d tensors are not supported; store them as shape (1,)")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"tensor {name!r} holds non-finite values; the fit diverged")
    axes: list[int | None] = [0, 1, None] if w.ndim >= 2 else [None]
    best: QuantizedTensor | None = None
    best_err = np.inf
    for axis in axes:
        q, scale = _quantize_along(w, axis, n_bits)
        candidate = QuantizedTensor(name=name, q=q, scale=scale, axis=axis, n_bits=n_bits)
        err = float(np.sum((candidate.dequantize() - w).astype(np.float64) ** 2))
        if err < best_err:
            best, best_err = candidate, err
    assert best is not None  # axes is never empty
    return best


def quantize_state(float_state: Mapping[str, np.ndarray], n_bits: int) -> list[QuantizedTensor]:
    """Quantize every tensor of a state dict (name -> float array), in its order."""
    return [quantize_tensor(name, w, n_bits) for name, w in float_state.items()]


def dequantize_state(tensors: list[QuantizedTensor]) -> dict[str, np.ndarray]:
    """name -> float32 array, exactly what the decoder loads into the network."""
    return {t.name: t.dequantize() for t in tensors}
