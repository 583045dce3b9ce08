"""Entropy coding of integer arrays with constriction's range coder (FORMAT.md section 9).

``encode_ints`` tries every model of the table below and keeps the smallest
output (model side information + coded words).  Arrays whose shape the decoder
knows (a tensor's) may also take the context model, whose histogram for each
value depends on which of its predecessors along up to three axes are non-zero.
The output is self-describing: one model-id byte, the model's parameters as
integers, then the range coder's 32-bit words.  Every float handed to constriction is derived deterministically
(float64) from those stored integers, so encoder and decoder build the same
model; parameters are validated before constriction sees them (a non-positive
scale would raise a PanicException, a BaseException).
"""
from __future__ import annotations

import math
import struct
from itertools import combinations

import constriction
import numpy as np

from .errors import NvcFormatError

_model = constriction.stream.model
_queue = constriction.stream.queue

# Wire codes of the entropy models (FORMAT.md section 9).  Never renumber.
MODEL_CONSTANT = 0  # every symbol equals `value`; no words
MODEL_UNIFORM = 1  # uniform over lo..hi
MODEL_CATEGORICAL = 2  # histogram over lo..hi, counts exp-Golomb coded
MODEL_LAPLACE = 3  # quantized Laplace(mean, scale) over the whole n_bits range
MODEL_GAUSSIAN = 4  # quantized Gaussian(mean, std) over the whole n_bits range
MODEL_CONTEXT = 5  # one histogram per context (non-zero predecessors along 1..3 axes); shaped arrays only
MODEL_NAMES = {
    MODEL_CONSTANT: "constant",
    MODEL_UNIFORM: "uniform",
    MODEL_CATEGORICAL: "categorical",
    MODEL_LAPLACE: "laplace",
    MODEL_GAUSSIAN: "gaussian",
    MODEL_CONTEXT: "context",
}

PARAM_FRAC_BITS = 12  # mean/scale are stored as integers in units of 2**-12
_PARAM_UNIT = float(1 << PARAM_FRAC_BITS)
MAX_SCALE_Q = 1 << 28  # scale/std <= 65536 symbols
MAX_MEAN_Q = 1 << 28  # |mean| <= 65536
MAX_EG_ORDER = 30  # exp-Golomb order k of the histogram counts
MAX_CONTEXT_AXES = 3  # the context model's axes: 2**3 contexts at most
CONTEXT_MIN_GROUP = 32  # n >= 32 x planes x contexts: the coder's calls stay below n / 32 (a bound on work)
_RANGE = struct.Struct("<ii")  # lo, hi
_PARAMS = struct.Struct("<iI")  # mean_q, scale_q
_VALUE = struct.Struct("<i")


def symbol_range(n_bits: int) -> tuple[int, int]:
    """Inclusive range of a signed n_bits integer: (-(2**(b-1)), 2**(b-1)-1)."""
    return -(1 << (n_bits - 1)), (1 << (n_bits - 1)) - 1


def _check_n_bits(n_bits: int) -> None:
    if not isinstance(n_bits, (int, np.integer)) or isinstance(n_bits, bool):
        raise TypeError(f"n_bits must be an int, got {type(n_bits).__name__}")
    if not 2 <= n_bits <= 16:
        raise ValueError(f"n_bits must be 2..16, got {n_bits}")


def _as_symbols(values: np.ndarray, n_bits: int) -> np.ndarray:
    """Flattened (C order) int32 copy of values, checked against the n_bits range."""
    _check_n_bits(n_bits)
    values = np.asarray(values)
    if values.dtype.kind not in "iu" and not (values.size == 0 and values.dtype.kind == "f"):
        raise TypeError(f"values must be an integer array, got dtype {values.dtype}")
    flat = values.reshape(-1)
    lo, hi = symbol_range(n_bits)
    if flat.size and (int(flat.min()) < lo or int(flat.max()) > hi):
        raise ValueError(
            f"values span {int(flat.min())}..{int(flat.max())}, outside the {n_bits}-bit range {lo}..{hi}"
        )
    return flat.astype(np.int32)


# --- exp-Golomb coding of the histogram counts ----------------------------------------------


def _write_counts(counts: np.ndarray, k: int) -> bytes:
    """Order-k exp-Golomb codes of the counts, MSB first, zero-padded to a whole byte."""
    bits = []
    base = 1 << k
    for c in counts.tolist():
        code = format(c + base, "b")
        bits.append("0" * (len(code) - 1 - k))
        bits.append(code)
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def _eg_n_bits(counts: np.ndarray, k: int) -> int:
    m = np.floor(np.log2(counts.astype(np.float64) + (1 << k))).astype(np.int64)
    return int(np.sum(2 * m - k + 1))


def _read_counts(data: bytes, pos: int, n_symbols: int, k: int, n: int) -> tuple[np.ndarray, int]:
    """Decode n_symbols exp-Golomb counts starting at data[pos]; return (counts, new byte pos)."""
    max_code_bits = 2 * 33
    region = data[pos : pos + (n_symbols * max_code_bits + 7) // 8]
    s = format(int.from_bytes(region, "big"), "b").zfill(8 * len(region)) if region else ""
    counts = np.empty(n_symbols, dtype=np.int64)
    i = 0
    for j in range(n_symbols):
        one = s.find("1", i, i + 34)
        if one < 0:
            raise NvcFormatError(f"categorical model: count {j} of {n_symbols} is truncated or too long")
        n_zeros = one - i
        end = one + n_zeros + k + 1
        if end > len(s):
            raise NvcFormatError(f"categorical model: count {j} of {n_symbols} is truncated")
        c = int(s[one:end], 2) - (1 << k)
        if c > n:
            raise NvcFormatError(f"categorical model: count {c} exceeds the array length {n}")
        counts[j] = c
        i = end
    n_bytes = (i + 7) // 8
    if s[i : 8 * n_bytes].strip("0"):
        raise NvcFormatError("categorical model: padding bits after the counts are not zero")
    return counts, pos + n_bytes


# --- the context model: which predecessors are non-zero --------------------------------------


def _contexts(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Each element's context (uint8): bit j is set when the element before it along axes[j] exists and is non-zero."""
    nz = x != 0
    ctx = np.zeros(x.shape, np.uint8)
    for j, a in enumerate(axes):
        dst, src = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        dst[a], src[a] = slice(1, None), slice(None, -1)
        ctx[tuple(dst)] |= nz[tuple(src)].astype(np.uint8) << j
    return ctx


def _n_planes(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[a] for a in axes)


def _by_plane(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """x as (planes, rest): the context axes first, in order (lexicographic planes), the others in C order."""
    return np.moveaxis(x, axes, range(len(axes))).reshape(_n_planes(x.shape, axes), -1)


def _context_counts(x: np.ndarray, axes: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """(2**len(axes), hi - lo + 1) histograms of x's values, one row per context."""
    size = hi - lo + 1
    key = _contexts(x, axes).astype(np.int64) * size + (x.astype(np.int64) - lo)
    return np.bincount(key.reshape(-1), minlength=size << len(axes)).reshape(1 << len(axes), size)


def _context_axes_allowed(shape: tuple[int, ...], axes: tuple[int, ...]) -> bool:
    """The format's bound on the coder's work: n >= CONTEXT_MIN_GROUP x planes x contexts."""
    return math.prod(shape) >= CONTEXT_MIN_GROUP * (_n_planes(shape, axes) << len(axes))


def _context_candidate(x: np.ndarray, lo: int, hi: int) -> dict | None:
    """The context model's parameters for the axes whose estimated size is smallest (None: no axes allowed).

    The estimate is the histograms' empirical entropy plus their exact exp-Golomb bits:
    an encoder choice, so only the winner is range-coded."""
    best = None
    for m in range(1, MAX_CONTEXT_AXES + 1):
        for axes in combinations(range(x.ndim), m):
            if any(x.shape[a] < 2 for a in axes) or not _context_axes_allowed(x.shape, axes):
                continue
            params = context_params(x, axes, lo, hi)
            counts = params["counts"]
            n_ctx = np.maximum(counts.sum(axis=1, keepdims=True), 1)
            words = -np.sum(counts * np.log2(np.maximum(counts, 1) / n_ctx))
            bits = words + sum(_eg_n_bits(c, k) + 8 for c, k in zip(counts, params["ks"]))
            if best is None or bits < best[0]:
                best = (bits, params)
    return None if best is None else best[1]


def context_params(x: np.ndarray, axes: tuple[int, ...], lo: int, hi: int) -> dict:
    """The context model's parameters for x on these axes over lo..hi: histograms and their exp-Golomb orders."""
    counts = _context_counts(x, tuple(axes), lo, hi)
    ks = [min(range(MAX_EG_ORDER + 1), key=lambda k: _eg_n_bits(c, k)) for c in counts]
    return {"axes": tuple(axes), "lo": lo, "hi": hi, "ks": ks, "counts": counts}


def _context_models(params: dict) -> list:
    """One constriction Categorical per context (None for a context no element has)."""
    return [_model.Categorical(c.astype(np.float64), perfect=False) if c.any() else None for c in params["counts"]]


def _plane_contexts(planes: np.ndarray, p: int, sizes: list[int]) -> np.ndarray:
    """The contexts of plane p of ``planes`` (planes, rest), from the planes before it: bit j is set where the
    plane one step back along context axis j exists and is non-zero."""
    ctx = np.zeros(planes.shape[1], np.uint8)
    stride = 1
    for j in reversed(range(len(sizes))):              # the last context axis varies fastest
        if (p // stride) % sizes[j]:
            ctx |= (planes[p - stride] != 0).astype(np.uint8) << j
        stride *= sizes[j]
    return ctx


def _encode_planes(planes: np.ndarray, params: dict, sizes: list[int]) -> np.ndarray:
    """Words of values laid out (planes, rest): plane by plane, within a plane context 0, 1, ... in order."""
    models = _context_models(params)
    enc = _queue.RangeEncoder()
    lo = np.int32(params["lo"])
    for p in range(planes.shape[0]):
        ctx = _plane_contexts(planes, p, sizes)
        for j, model in enumerate(models):
            chosen = planes[p][ctx == j]
            if chosen.size:
                enc.encode((chosen - lo).astype(np.int32), model)
    return enc.get_compressed()


def _encode_context_words(x: np.ndarray, params: dict) -> np.ndarray:
    """Plane by plane (lexicographic over the context axes), within a plane context 0, 1, ... in C order."""
    axes = params["axes"]
    return _encode_planes(_by_plane(x, axes), params, [x.shape[a] for a in axes])


def _decode_context(words: np.ndarray, params: dict, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of _encode_context_words: the values in C order (int32). NvcFormatError for a value in an empty
    context, decoded histograms other than the stored ones, or words that do not re-encode identically. Memory:
    the values twice (as planes, then in C order) and one plane's temporaries."""
    axes, lo = params["axes"], params["lo"]
    sizes = [shape[a] for a in axes]
    rest_shape = tuple(d for i, d in enumerate(shape) if i not in axes)
    planes = np.empty((math.prod(sizes), math.prod(rest_shape)), np.int32)
    models = _context_models(params)
    seen = np.zeros_like(params["counts"])
    dec = _queue.RangeDecoder(words)
    for p in range(planes.shape[0]):
        ctx = _plane_contexts(planes, p, sizes)
        for j, model in enumerate(models):
            chosen = np.flatnonzero(ctx == j)
            if not chosen.size:
                continue
            if model is None:
                raise NvcFormatError(f"context model: a value falls in context {j}, whose histogram is empty")
            symbols = dec.decode(model, int(chosen.size)).astype(np.int32, copy=False)
            seen[j] += np.bincount(symbols, minlength=seen.shape[1])[: seen.shape[1]]
            planes[p, chosen] = symbols + np.int32(lo)
    if not np.array_equal(seen, params["counts"]):
        raise NvcFormatError("context model: decoded symbols do not match the stored histograms")
    again = _encode_planes(planes, params, sizes)
    if again.size != words.size or not np.array_equal(again, words):
        raise NvcFormatError("context model: coded words are corrupt (they do not re-encode identically)")
    return np.ascontiguousarray(np.moveaxis(planes.reshape(tuple(sizes) + rest_shape), range(len(axes)), axes))


# --- the models: side information <-> constriction model ------------------------------------


def _param_model(model_id: int, mean_q: int, scale_q: int, n_bits: int):
    lo, hi = symbol_range(n_bits)
    mean, scale = mean_q / _PARAM_UNIT, scale_q / _PARAM_UNIT  # float64, exact
    family = _model.QuantizedLaplace if model_id == MODEL_LAPLACE else _model.QuantizedGaussian
    return family(lo, hi, mean, scale)


def _param_cdf(model_id: int, scale: float):
    """CDF of a zero-mean Laplace (scale b) or Gaussian (std) as a numpy function."""
    if model_id == MODEL_LAPLACE:
        def cdf(x):
            return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / scale), 1 - 0.5 * np.exp(-np.maximum(x, 0) / scale))
    else:
        erf = np.vectorize(math.erf, otypes=[np.float64])

        def cdf(x):
            return 0.5 * (1 + erf(x / (scale * math.sqrt(2))))
    return cdf


def _param_probs(values: np.ndarray, model_id: int, mean: float, scale: float) -> np.ndarray:
    """Float probabilities of integer values under a quantized Laplace/Gaussian, floored at 2**-24."""
    cdf = _param_cdf(model_id, scale)
    return np.maximum(cdf(values + 0.5 - mean) - cdf(values - 0.5 - mean), 2.0**-24)


def _coder_model(model_id: int, params: dict, n_bits: int):
    """The constriction model and the symbol offset (symbol = value - offset) for stored params."""
    if model_id == MODEL_UNIFORM:
        return _model.Uniform(params["hi"] - params["lo"] + 1), params["lo"]
    if model_id == MODEL_CATEGORICAL:
        return _model.Categorical(params["counts"].astype(np.float64), perfect=False), params["lo"]
    return _param_model(model_id, params["mean_q"], params["scale_q"], n_bits), 0


def _side_bytes(model_id: int, params: dict) -> bytes:
    if model_id == MODEL_CONSTANT:
        return bytes([model_id]) + _VALUE.pack(params["value"])
    if model_id == MODEL_UNIFORM:
        return bytes([model_id]) + _RANGE.pack(params["lo"], params["hi"])
    if model_id == MODEL_CATEGORICAL:
        return (
            bytes([model_id])
            + _RANGE.pack(params["lo"], params["hi"])
            + bytes([params["k"]])
            + _write_counts(params["counts"], params["k"])
        )
    if model_id == MODEL_CONTEXT:
        return b"".join(
            [bytes([model_id, len(params["axes"]), *params["axes"]]), _RANGE.pack(params["lo"], params["hi"])]
            + [bytes([k]) + _write_counts(c, k) for k, c in zip(params["ks"], params["counts"])]
        )
    return bytes([model_id]) + _PARAMS.pack(params["mean_q"], params["scale_q"])


def _read_context_side(data: bytes, n: int, n_bits: int, shape: tuple[int, ...] | None) -> tuple[dict, int]:
    """The context model's axes, range and per-context histograms, each checked (section 9)."""
    if shape is None:
        raise NvcFormatError("context model in an array whose shape the reader does not know")
    if len(data) < 2 or not 1 <= data[1] <= MAX_CONTEXT_AXES:
        raise NvcFormatError(f"context model: axis count is not 1..{MAX_CONTEXT_AXES}")
    m = data[1]
    if len(data) < 2 + m + _RANGE.size:
        raise NvcFormatError("context model: data ends inside its parameters")
    axes = tuple(data[2 : 2 + m])
    if any(a >= len(shape) for a in axes) or any(a >= b for a, b in zip(axes, axes[1:])):
        raise NvcFormatError(f"context model: axes {list(axes)} are not increasing axes of a {len(shape)}-d array")
    if not _context_axes_allowed(shape, axes):
        raise NvcFormatError(f"context model: {n} values are fewer than {CONTEXT_MIN_GROUP} x "
                             f"{_n_planes(shape, axes)} planes x {1 << m} contexts")
    lo, hi = _RANGE.unpack_from(data, 2 + m)
    lo_b, hi_b = symbol_range(n_bits)
    if not lo_b <= lo < hi <= hi_b:
        raise NvcFormatError(f"context model: range {lo}..{hi} is not an interval of >= 2 symbols within {lo_b}..{hi_b}")
    pos, ks, counts = 2 + m + _RANGE.size, [], []
    for j in range(1 << m):
        if len(data) <= pos:
            raise NvcFormatError(f"context model: data ends before context {j}'s exp-Golomb order")
        ks.append(data[pos])
        if ks[-1] > MAX_EG_ORDER:
            raise NvcFormatError(f"context model: exp-Golomb order {ks[-1]} > {MAX_EG_ORDER}")
        c, pos = _read_counts(data, pos + 1, hi - lo + 1, ks[-1], n)
        counts.append(c)
    counts = np.stack(counts)
    total = counts.sum(axis=0)
    if int(total.sum()) != n:
        raise NvcFormatError(f"context model: counts sum to {int(total.sum())}, not the array length {n}")
    if total[0] == 0 or total[-1] == 0:
        raise NvcFormatError("context model: no value at the range's first or last symbol (range not tight)")
    return {"axes": axes, "lo": lo, "hi": hi, "ks": ks, "counts": counts}, pos


def _read_side(data: bytes, n: int, n_bits: int, shape: tuple[int, ...] | None = None) -> tuple[int, dict, int]:
    """Parse and validate the model id and parameters; return (model_id, params, position of the words)."""
    if not data:
        raise NvcFormatError("empty entropy-coded data (no model byte)")
    model_id = data[0]
    lo_b, hi_b = symbol_range(n_bits)

    def unpack(st: struct.Struct, pos: int):
        if len(data) < pos + st.size:
            raise NvcFormatError(f"{MODEL_NAMES[model_id]} model: data ends inside its parameters")
        return st.unpack_from(data, pos), pos + st.size

    if model_id == MODEL_CONSTANT:
        (value,), pos = unpack(_VALUE, 1)
        if not lo_b <= value <= hi_b:
            raise NvcFormatError(f"constant model: value {value} outside the {n_bits}-bit range")
        return model_id, {"value": value}, pos
    if model_id in (MODEL_UNIFORM, MODEL_CATEGORICAL):
        (lo, hi), pos = unpack(_RANGE, 1)
        if not lo_b <= lo < hi <= hi_b:
            raise NvcFormatError(
                f"{MODEL_NAMES[model_id]} model: range {lo}..{hi} is not an interval of >= 2 symbols "
                f"within {lo_b}..{hi_b}"
            )
        params = {"lo": lo, "hi": hi}
        if model_id == MODEL_CATEGORICAL:
            if len(data) <= pos:
                raise NvcFormatError("categorical model: data ends before the exp-Golomb order")
            k = data[pos]
            if k > MAX_EG_ORDER:
                raise NvcFormatError(f"categorical model: exp-Golomb order {k} > {MAX_EG_ORDER}")
            counts, pos = _read_counts(data, pos + 1, hi - lo + 1, k, n)
            if int(counts.sum()) != n:
                raise NvcFormatError(f"categorical model: counts sum to {int(counts.sum())}, not the array length {n}")
            if counts[0] == 0 or counts[-1] == 0:
                raise NvcFormatError("categorical model: first or last count is zero (range not tight)")
            params.update(k=k, counts=counts)
        return model_id, params, pos
    if model_id == MODEL_CONTEXT:
        params, pos = _read_context_side(data, n, n_bits, shape)
        return model_id, params, pos
    if model_id in (MODEL_LAPLACE, MODEL_GAUSSIAN):
        (mean_q, scale_q), pos = unpack(_PARAMS, 1)
        if abs(mean_q) > MAX_MEAN_Q or not 1 <= scale_q <= MAX_SCALE_Q:
            raise NvcFormatError(
                f"{MODEL_NAMES[model_id]} model: mean {mean_q}/4096 or scale {scale_q}/4096 out of range "
                f"(|mean| <= 65536, 0 < scale <= 65536)"
            )
        return model_id, {"mean_q": mean_q, "scale_q": scale_q}, pos
    raise NvcFormatError(f"unknown entropy model id {model_id}")


def _min_word_bits(model_id: int, params: dict, n: int, n_bits: int) -> float:
    """A loose lower bound on the word bits that can code n symbols under a model.

    Checked before decoding, so that a corrupt shape (n far too large for the
    stored words) is refused at once instead of after decoding millions of
    symbols.  Each symbol's probability is over-estimated by the mass the coder's
    24-bit fixed point can shift onto one symbol (alphabet size / 2**24, e.g. the
    remainder constriction's Uniform gives its last symbol), tail mass is put on
    the end symbols, and the total is halved: the bound never refuses what the
    encoder writes, yet refuses shapes inflated by a corrupt high byte.
    """
    if model_id == MODEL_UNIFORM:
        size = params["hi"] - params["lo"] + 1
        p, weights = np.full(1, 1.0 / size), np.full(1, float(n))
    elif model_id in (MODEL_CATEGORICAL, MODEL_CONTEXT):
        counts = params["counts"].reshape(-1, params["hi"] - params["lo"] + 1)   # one row per context
        size = counts.shape[1]
        per_context = np.broadcast_to(counts.sum(axis=1, keepdims=True), counts.shape)
        weights = counts[counts > 0].astype(np.float64)
        p = weights / per_context[counts > 0]
    else:
        lo_b, hi_b = symbol_range(n_bits)
        size = hi_b - lo_b + 1
        mean, scale = params["mean_q"] / _PARAM_UNIT, params["scale_q"] / _PARAM_UNIT
        mode = float(min(max(round(mean), lo_b), hi_b))
        x = np.array([lo_b - 0.5, hi_b + 0.5, mode - 0.5, mode + 0.5, lo_b + 0.5, hi_b - 0.5]) - mean
        cdf = _param_cdf(model_id, scale)(x)
        in_range = cdf[1] - cdf[0]
        if in_range < 0.5:
            return 0.0
        # the most probable symbol: the mode, or an end symbol if the coder gives it the tail mass
        p, weights = np.full(1, max((cdf[3] - cdf[2]) / in_range, cdf[4], 1.0 - cdf[5])), np.full(1, float(n))
    per_symbol = -np.log2(np.minimum(1.0, p + size / 2.0**24))
    return 0.5 * float(np.sum(weights * per_symbol)) - 64.0


def _encode_words(symbols: np.ndarray, model_id: int, params: dict, n_bits: int) -> np.ndarray:
    """The range coder's words for symbols (flat; shaped when the model is the context model)."""
    if model_id == MODEL_CONSTANT or symbols.size == 0:
        return np.zeros(0, dtype=np.uint32)
    if model_id == MODEL_CONTEXT:
        return _encode_context_words(symbols, params)
    coder_model, offset = _coder_model(model_id, params, n_bits)
    enc = _queue.RangeEncoder()
    enc.encode((symbols - np.int32(offset)).astype(np.int32), coder_model)
    return enc.get_compressed()


# --- parameter estimation (encoder only; the decoder just reads the integers) --------------


def _param_cost_bits(hist_values: np.ndarray, counts: np.ndarray, model_id: int, mean: float, scale: float) -> float:
    """Approximate code length of a histogram under a quantized Laplace/Gaussian."""
    return float(-(counts * np.log2(_param_probs(hist_values, model_id, mean, scale))).sum())


def _fit_param(model_id: int, symbols: np.ndarray, hist_values: np.ndarray, counts: np.ndarray) -> dict:
    """Fixed-point (mean_q, scale_q) minimising the approximate code length over a log-spaced scale grid."""
    x = symbols.astype(np.float64)
    if model_id == MODEL_LAPLACE:
        mean = float(np.median(x))
        scale0 = float(np.mean(np.abs(x - mean)))
    else:
        mean = float(np.mean(x))
        scale0 = float(np.std(x))
    mean_q = int(np.clip(round(mean * _PARAM_UNIT), -MAX_MEAN_Q, MAX_MEAN_Q))
    scale0 = max(scale0, 0.05)
    best = None
    for j in range(-24, 25, 2):
        scale_q = int(np.clip(round(scale0 * 2.0 ** (j / 16) * _PARAM_UNIT), 1, MAX_SCALE_Q))
        cost = _param_cost_bits(hist_values, counts, model_id, mean_q / _PARAM_UNIT, scale_q / _PARAM_UNIT)
        if best is None or cost < best[0]:
            best = (cost, scale_q)
    return {"mean_q": mean_q, "scale_q": best[1]}


def _candidates(symbols: np.ndarray, n_bits: int, shape: tuple[int, ...] | None = None):
    """(model_id, params) of every model that can code these symbols (the context model only with a shape)."""
    if symbols.size == 0:
        yield MODEL_CONSTANT, {"value": 0}
        return
    lo, hi = int(symbols.min()), int(symbols.max())
    if lo == hi:
        yield MODEL_CONSTANT, {"value": lo}
        return
    yield MODEL_UNIFORM, {"lo": lo, "hi": hi}
    counts = np.bincount(symbols - lo, minlength=hi - lo + 1).astype(np.int64)
    k = min(range(MAX_EG_ORDER + 1), key=lambda k: _eg_n_bits(counts, k))
    yield MODEL_CATEGORICAL, {"lo": lo, "hi": hi, "k": k, "counts": counts}
    used = np.nonzero(counts)[0]
    hist_values, hist_counts = (used + lo).astype(np.float64), counts[used].astype(np.float64)
    for model_id in (MODEL_LAPLACE, MODEL_GAUSSIAN):
        yield model_id, _fit_param(model_id, symbols, hist_values, hist_counts)
    if shape is not None:
        params = _context_candidate(symbols.reshape(shape), lo, hi)
        if params is not None:
            yield MODEL_CONTEXT, params


# --- public API ---------------------------------------------------------------------------


def _encode_all(values: np.ndarray, n_bits: int, shaped: bool = False) -> list[tuple[int, bytes, np.ndarray]]:
    symbols = _as_symbols(values, n_bits)
    shape = np.shape(values) if shaped else None
    return [
        (model_id, _side_bytes(model_id, params),
         _encode_words(symbols.reshape(shape) if model_id == MODEL_CONTEXT else symbols, model_id, params, n_bits))
        for model_id, params in _candidates(symbols, n_bits, shape)
    ]


def encode_ints(values: np.ndarray, n_bits: int, shaped: bool = False) -> bytes:
    """Entropy-code an integer array (flattened in C order) whose values fit signed n_bits (2..16).

    Returns model id + integer parameters + range-coder words (FORMAT.md section 9),
    choosing the model with the smallest total.  The length is not stored: the
    decoder is told n (the container stores the tensor shape).  ``shaped``: the
    decoder will know values' shape too (decode_ints' ``shape``), so the context
    model is a candidate.
    """
    best = min(_encode_all(values, n_bits, shaped), key=lambda c: len(c[1]) + 4 * c[2].size)
    return best[1] + best[2].astype("<u4").tobytes()


def encode_ints_report(values: np.ndarray, n_bits: int, shaped: bool = False) -> dict[str, tuple[int, int]]:
    """{model name: (side-information bytes, coded-word bytes)} for every candidate model (benchmarks)."""
    return {MODEL_NAMES[m]: (len(side), 4 * words.size) for m, side, words in _encode_all(values, n_bits, shaped)}


def ints_code_length_bits(values: np.ndarray, n_bits: int) -> int:
    """Exact size in bits of encode_ints(values, n_bits) (runs the coder; side information included).

    For rate-aware training (nvcodec.qat) use it to measure the real rate of a tensor;
    ``ints_symbol_costs_bits`` gives the per-symbol costs to build a differentiable proxy.
    """
    return 8 * len(encode_ints(values, n_bits))


def ints_symbol_costs_bits(values: np.ndarray, n_bits: int) -> np.ndarray:
    """-log2 p(s) in bits for every symbol s of the n_bits range (index s - min), under the model
    encode_ints would choose for ``values``; float probabilities with the coder's 2**-24 floor,
    so a near-exact estimate (within about 0.1 %) of the words' length, side information excluded."""
    symbols = _as_symbols(values, n_bits)
    lo_b, hi_b = symbol_range(n_bits)
    grid = np.arange(lo_b, hi_b + 1, dtype=np.float64)
    best = min(_encode_all(values, n_bits), key=lambda c: len(c[1]) + 4 * c[2].size)
    model_id, params, _ = _read_side(best[1], symbols.size, n_bits)
    p = np.zeros_like(grid)
    if model_id == MODEL_CONSTANT:
        p = (grid == params["value"]).astype(np.float64)
    elif model_id == MODEL_UNIFORM:
        p = np.where((grid >= params["lo"]) & (grid <= params["hi"]), 1.0 / (params["hi"] - params["lo"] + 1), 0.0)
    elif model_id == MODEL_CATEGORICAL:
        p = np.zeros_like(grid)
        i0 = params["lo"] - lo_b
        p[i0 : i0 + params["counts"].size] = np.maximum(params["counts"] / symbols.size, 2.0**-24)
    else:
        p = _param_probs(grid, model_id, params["mean_q"] / _PARAM_UNIT, params["scale_q"] / _PARAM_UNIT)
    with np.errstate(divide="ignore"):
        return -np.log2(p)


def decode_ints(data: bytes, n: int, n_bits: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Inverse of encode_ints: int32 array of length n (flat); NvcFormatError on bad bytes.

    ``shape`` (whose product is n) is the array's shape where the reader knows it:
    the context model needs it, and is refused without it.

    Structural damage is refused (FORMAT.md section 9): bad parameters, too few words
    for n, a histogram the symbols break, words other than those the encoder writes for
    the decoded symbols (checked by re-encoding). That re-encoding check does not make
    the words self-checking: a corrupted word can be the exact encoding of *other*
    values (a 40-value array under the uniform model over 0..4: 40 of 300 single-bit
    flips decoded silently to other values, tests/test_decode_limits.py), so integrity
    is the enclosing chunk's CRC, never this function.
    The constant model returns a read-only broadcast array (no memory of n's size).
    """
    _check_n_bits(n_bits)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if shape is not None and math.prod(shape) != n:
        raise ValueError(f"shape {tuple(shape)} does not hold n = {n} values")
    data = bytes(data)
    model_id, params, pos = _read_side(data, n, n_bits, None if shape is None else tuple(shape))
    n_word_bytes = len(data) - pos
    if n_word_bytes % 4:
        raise NvcFormatError(f"{MODEL_NAMES[model_id]} model: {n_word_bytes} bytes of words is not a multiple of 4")
    words = np.frombuffer(data, dtype="<u4", offset=pos).astype(np.uint32)
    if model_id == MODEL_CONSTANT or n == 0:
        if words.size:
            raise NvcFormatError(f"{MODEL_NAMES[model_id]} model: {words.size} unexpected words for {n} symbols")
        if model_id != MODEL_CONSTANT and n == 0:
            raise NvcFormatError(f"{MODEL_NAMES[model_id]} model used for an empty array")
        return np.broadcast_to(np.int32(params["value"]), (int(n),))
    min_bits = _min_word_bits(model_id, params, n, n_bits)
    if 32 * words.size < min_bits:
        raise NvcFormatError(
            f"{MODEL_NAMES[model_id]} model: {words.size} words cannot hold {n} symbols "
            f"(at least {math.ceil(min_bits)} bits needed): corrupt length or shape"
        )
    try:
        if model_id == MODEL_CONTEXT:      # checks its histograms and its words as it decodes
            return _decode_context(words, params, shape).reshape(-1)
        coder_model, offset = _coder_model(model_id, params, n_bits)
        values = _queue.RangeDecoder(words).decode(coder_model, int(n)).astype(np.int32, copy=False)
    except NvcFormatError:
        raise
    except BaseException as e:  # constriction raises ValueError/KeyError, or a PanicException (BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        raise NvcFormatError(f"{MODEL_NAMES[model_id]} model: range decoder failed ({e})") from None
    values += np.int32(offset)     # symbols and values both fit int32: no wider temporary
    if model_id in (MODEL_UNIFORM, MODEL_CATEGORICAL) and (values.min() < params["lo"] or values.max() > params["hi"]):
        raise NvcFormatError(f"{MODEL_NAMES[model_id]} model: decoded a symbol outside {params['lo']}..{params['hi']}")
    if model_id == MODEL_CATEGORICAL and not np.array_equal(
        np.bincount(values - params["lo"], minlength=params["counts"].size), params["counts"]
    ):
        raise NvcFormatError("categorical model: decoded symbols do not match the stored histogram")
    again = _encode_words(values, model_id, params, n_bits)
    if again.size != words.size or not np.array_equal(again, words):
        raise NvcFormatError(f"{MODEL_NAMES[model_id]} model: coded words are corrupt (they do not re-encode identically)")
    return values
