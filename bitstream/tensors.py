"""Quantized tensors and the 'TENS' chunk payload (FORMAT.md section 7).

One 'TENS' chunk per tensor: its manifest entry (name, n_bits, shape, axis,
scales as exact float32 bytes) followed by the entropy-coded integers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .chunks import PayloadReader, Record
from .entropy import decode_ints, encode_ints, symbol_range
from .errors import NvcFormatError

MAX_NAME_N_BYTES = 256
MAX_NDIM = 8
MAX_ELEMENTS = 1 << 27  # per file: 134 M parameters (0.5 GiB as int32); a reader refuses more
MAX_SCALE = 2.0**16  # |scale| bound: q * scale stays below 2^31, far from float32 overflow (FORMAT.md 7)
AXIS_NONE = 0xFF  # axis byte for a per-tensor scale

_HEAD = Record(("n_name_bytes", "H"))
_QUANT = Record(("n_bits", "B"), ("ndim", "B"), ("axis", "B"))
_DIM = Record(("dim", "Q"))
_N_SCALES = Record(("n_scales", "I"))
_N_CODED = Record(("n_coded_bytes", "Q"))


def check_tensor_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"tensor name must be a str, got {type(name).__name__}")
    if not name.isascii() or not name.isprintable() or not 1 <= len(name) <= MAX_NAME_N_BYTES:
        raise ValueError(f"tensor name must be 1..{MAX_NAME_N_BYTES} printable ASCII characters, got {name!r}")
    return name


@dataclass(frozen=True)
class QuantizedTensor:
    """Integers q with float32 scales; dequantize() = q * scale along axis (FORMAT.md section 7.1).

    Fields are validated and normalised on construction: q becomes an int32
    array (>= 1-d), scale a 1-D float32 array of length q.shape[axis] (or 1 when
    axis is None).  Both are read-only.
    """

    name: str
    q: np.ndarray
    scale: np.ndarray
    axis: int | None
    n_bits: int

    def __post_init__(self):
        check_tensor_name(self.name)
        if type(self.n_bits) is not int or not 2 <= self.n_bits <= 16:
            raise ValueError(f"tensor {self.name!r}: n_bits must be an int 2..16, got {self.n_bits!r}")
        q = np.asarray(self.q)
        if q.dtype.kind not in "iu":
            raise TypeError(f"tensor {self.name!r}: q must be an integer array, got dtype {q.dtype}")
        if not 1 <= q.ndim <= MAX_NDIM:
            raise ValueError(f"tensor {self.name!r}: q must have 1..{MAX_NDIM} dimensions, got {q.ndim}")
        lo, hi = symbol_range(self.n_bits)
        if q.size and (int(q.min()) < lo or int(q.max()) > hi):
            raise ValueError(f"tensor {self.name!r}: q spans {int(q.min())}..{int(q.max())}, outside {lo}..{hi}")
        if self.axis is not None and (type(self.axis) is not int or not 0 <= self.axis < q.ndim):
            raise ValueError(f"tensor {self.name!r}: axis must be None or 0..{q.ndim - 1}, got {self.axis!r}")
        scale = np.asarray(self.scale)
        if scale.dtype != np.float32:
            raise TypeError(f"tensor {self.name!r}: scale must be float32, got dtype {scale.dtype}")
        n_scales = 1 if self.axis is None else q.shape[self.axis]
        if scale.shape != (n_scales,):
            raise ValueError(f"tensor {self.name!r}: scale must have shape ({n_scales},), got {scale.shape}")
        if not np.all(np.isfinite(scale)) or np.any(np.abs(scale) > MAX_SCALE):
            raise ValueError(f"tensor {self.name!r}: scales must be finite with magnitude <= {MAX_SCALE:g}")
        if not (q.dtype == np.int32 and not q.flags.writeable):
            q = np.array(q, dtype=np.int32)      # our own read-only copy (a reader's arrays already are)
            q.flags.writeable = False
        scale = np.array(scale, dtype=np.float32)
        scale.flags.writeable = False
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "scale", scale)

    def dequantize(self, out: np.ndarray | None = None) -> np.ndarray:
        """float32 q * scale, the scale broadcast along axis (one float32 rounding per element).

        ``out`` (float32, q's shape) receives the result without a temporary of q's size, so a
        decoder can dequantize straight into a network's parameter memory.
        """
        shape = [1] * self.q.ndim
        if self.axis is not None:
            shape[self.axis] = self.q.shape[self.axis]
        if out is None:
            out = np.empty(self.q.shape, np.float32)
        elif out.shape != self.q.shape or out.dtype != np.float32:
            raise ValueError(f"tensor {self.name!r}: out must be float32 {self.q.shape}, got {out.dtype} {out.shape}")
        return np.multiply(self.q, self.scale.reshape(shape), out=out, dtype=np.float32)

    def __eq__(self, other):
        if not isinstance(other, QuantizedTensor):
            return NotImplemented
        return (
            (self.name, self.axis, self.n_bits, self.q.shape) == (other.name, other.axis, other.n_bits, other.q.shape)
            and np.array_equal(self.q, other.q)
            and self.scale.tobytes() == other.scale.tobytes()
        )

    __hash__ = None


def write_tensor(t: QuantizedTensor) -> bytes:
    """QuantizedTensor -> 'TENS' payload (fields in the order of read_tensor)."""
    name = t.name.encode("ascii")
    coded = encode_ints(t.q, t.n_bits, shaped=True)   # the reader knows the shape: contexts allowed
    return b"".join(
        [
            _HEAD.pack({"n_name_bytes": len(name)}),
            name,
            _QUANT.pack({"n_bits": t.n_bits, "ndim": t.q.ndim, "axis": AXIS_NONE if t.axis is None else t.axis}),
            *(_DIM.pack({"dim": d}) for d in t.q.shape),
            _N_SCALES.pack({"n_scales": t.scale.size}),
            t.scale.astype("<f4").tobytes(),
            _N_CODED.pack({"n_coded_bytes": len(coded)}),
            coded,
        ]
    )


@dataclass(frozen=True)
class TensorHeader:
    """A 'TENS' payload's manifest entry, parsed and checked but not decoded."""

    name: str
    shape: tuple[int, ...]
    n_bits: int
    axis: int | None
    scale: np.ndarray
    coded: bytes

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


def read_tensor(r: PayloadReader, elements_left: int) -> QuantizedTensor:
    """'TENS' payload -> QuantizedTensor; every field checked before use (NvcFormatError)."""
    return decode_tensor(read_tensor_header(r, elements_left), r)


def read_tensor_header(r: PayloadReader, elements_left: int) -> TensorHeader:
    """The manifest fields of a 'TENS' payload, each checked before use; nothing of the tensor's size is allocated."""
    n_name = r.record(_HEAD, "the name length")["n_name_bytes"]
    raw_name = r.take(n_name, "the tensor name")
    try:
        name = check_tensor_name(raw_name.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise r.error(f"tensor name {raw_name[:40]!r} is not 1..{MAX_NAME_N_BYTES} printable ASCII characters") from None
    quant = r.record(_QUANT, "n_bits/ndim/axis")
    n_bits, ndim, axis = quant["n_bits"], quant["ndim"], quant["axis"]
    if not 2 <= n_bits <= 16:
        raise r.error(f"tensor {name!r}: n_bits {n_bits} is not 2..16")
    if not 1 <= ndim <= MAX_NDIM:
        raise r.error(f"tensor {name!r}: ndim {ndim} is not 1..{MAX_NDIM}")
    if axis != AXIS_NONE and axis >= ndim:
        raise r.error(f"tensor {name!r}: axis {axis} is not < ndim {ndim} (or 255 for per-tensor)")
    shape = tuple(r.record(_DIM, f"dimension {i}")["dim"] for i in range(ndim))
    if any(d > MAX_ELEMENTS for d in shape) or math.prod(shape) > elements_left:
        raise r.error(f"tensor {name!r}: shape {shape} exceeds the file's limit of {MAX_ELEMENTS} elements")
    n_scales = r.record(_N_SCALES, "the scale count")["n_scales"]
    expected = 1 if axis == AXIS_NONE else shape[axis]
    if n_scales != expected:
        raise r.error(f"tensor {name!r}: {n_scales} scales, expected {expected} for shape {shape}, axis {axis}")
    scale = np.frombuffer(r.take(4 * n_scales, "the scales"), dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(scale)) or np.any(np.abs(scale) > MAX_SCALE):
        raise r.error(f"tensor {name!r}: a scale is not finite or exceeds {MAX_SCALE:g} in magnitude")
    n_coded = r.record(_N_CODED, "the coded length")["n_coded_bytes"]
    coded = r.take(n_coded, "the coded integers")
    r.expect_end()
    return TensorHeader(name, shape, n_bits, None if axis == AXIS_NONE else axis, scale, coded)


def decode_tensor(h: TensorHeader, r: PayloadReader) -> QuantizedTensor:
    """Decode a checked header's integers (NvcFormatError naming the tensor, via ``r``'s chunk)."""
    try:
        q = decode_ints(h.coded, h.n_elements, h.n_bits, h.shape).reshape(h.shape)
    except NvcFormatError as e:
        raise r.error(f"tensor {h.name!r}: {e}") from None
    q.flags.writeable = False
    return QuantizedTensor(h.name, q, h.scale, h.axis, h.n_bits)
