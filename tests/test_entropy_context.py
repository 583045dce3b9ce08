"""The context model (FORMAT.md section 9, model 5): shaped arrays, exact round trips, refusal of bad bytes."""
from __future__ import annotations

import itertools
import struct

import constriction
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nvcodec.bitstream import NvcFormatError, decode_ints, encode_ints
from nvcodec.bitstream.chunks import PayloadReader
from nvcodec.bitstream.entropy import (
    CONTEXT_MIN_GROUP,
    MODEL_CONTEXT,
    _encode_words,
    _read_side,
    _side_bytes,
    _write_counts,
    context_params,
    encode_ints_report,
)
from nvcodec.bitstream.tensors import QuantizedTensor, read_tensor, write_tensor


def latent_like(rng, shape=(40, 8, 4, 4, 4), p_on=0.12, p_flip=0.05):
    """Sparse integers whose non-zero pattern persists along axis 1 (as latents along the frame slots)."""
    flips = rng.random(shape) < np.where(np.arange(shape[1]) == 0, p_on, p_flip).reshape(1, -1, *[1] * (len(shape) - 2))
    active = np.cumsum(flips, axis=1) % 2 == 1
    return np.where(active, np.round(rng.laplace(0, 2, shape)) + np.sign(rng.random(shape) - 0.5), 0).astype(np.int32)


def coded_with(x: np.ndarray, n_bits: int, axes) -> bytes:
    """x coded under the context model on the given axes (whatever the encoder would choose)."""
    params = context_params(x, axes, int(x.min()), int(x.max()))
    return _side_bytes(MODEL_CONTEXT, params) + _encode_words(x, MODEL_CONTEXT, params, n_bits).astype("<u4").tobytes()


def test_the_encoder_takes_the_context_model_where_predecessors_predict():
    """On latent-like integers the context model wins, well below the best i.i.d. model, and round-trips."""
    x = latent_like(np.random.default_rng(0))
    flat, shaped = encode_ints(x, 8), encode_ints(x, 8, shaped=True)
    assert shaped[0] == MODEL_CONTEXT and flat[0] != MODEL_CONTEXT
    assert len(shaped) < 0.85 * len(flat)
    assert 1 in shaped[2 : 2 + shaped[1]]                          # the persistent axis is one of its contexts
    assert np.array_equal(decode_ints(shaped, x.size, 8, x.shape).reshape(x.shape), x)
    report = encode_ints_report(x, 8, shaped=True)
    assert len(shaped) == min(side + words for side, words in report.values()) == sum(report["context"])


def test_without_a_shape_nothing_changes():
    """encode_ints' default (arrays whose shape the reader does not know: motion, positions) never takes it."""
    x = latent_like(np.random.default_rng(1))
    assert encode_ints(x, 8)[0] != MODEL_CONTEXT
    assert MODEL_CONTEXT not in {int(encode_ints(x[i], 8)[0]) for i in range(3)}
    data = encode_ints(x, 8, shaped=True)
    with pytest.raises(NvcFormatError, match=r"^context model in an array whose shape the reader does not know$"):
        decode_ints(data, x.size, 8)


def test_i_i_d_arrays_keep_their_i_i_d_model():
    """Without structure the context model's extra histograms do not pay: the encoder keeps the i.i.d. one."""
    x = np.round(np.random.default_rng(2).laplace(0, 3, (32, 16, 16))).astype(np.int32)
    assert encode_ints(x, 8, shaped=True) == encode_ints(x, 8)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_round_trip_is_exact_for_any_allowed_axes(data):
    """Every allowed choice of 1..3 axes on 1..5-d arrays decodes to the values, bit-exactly re-encoded."""
    ndim = data.draw(st.integers(1, 4))
    dim = st.integers(2, 400) if ndim == 1 else st.integers(1, 12)
    shape = tuple(data.draw(st.lists(dim, min_size=ndim, max_size=ndim)))
    allowed = [a for m in (1, 2, 3) for a in itertools.combinations(range(ndim), m)
               if np.prod(shape) >= CONTEXT_MIN_GROUP * (np.prod([shape[i] for i in a]) << len(a))]
    assume(allowed)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n_bits = data.draw(st.sampled_from([2, 3, 8, 16]))
    lo = -(1 << (n_bits - 1))
    x = rng.integers(lo, -lo, shape).astype(np.int32) * (rng.random(shape) < data.draw(st.floats(0.05, 1.0)))
    x.reshape(-1)[:2] = [lo, -lo - 1]                               # both ends of the range: a 2-symbol alphabet at least
    for axes in allowed:
        coded = coded_with(x, n_bits, axes)
        assert np.array_equal(decode_ints(coded, x.size, n_bits, shape).reshape(shape), x)


def histograms(*counts) -> bytes:
    """Per-context histograms as the format stores them: order-0 exp-Golomb counts, each padded to a byte."""
    return b"".join(bytes([0]) + _write_counts(np.array(c), 0) for c in counts)


def side(axes, lo, hi, histograms: bytes) -> bytes:
    return bytes([MODEL_CONTEXT, len(axes), *axes]) + struct.pack("<ii", lo, hi) + histograms


@pytest.mark.parametrize(
    "data, shape, match",
    [
        (bytes([MODEL_CONTEXT]), (64,), r"context model: axis count is not 1..3"),
        (bytes([MODEL_CONTEXT, 0]), (64,), r"context model: axis count is not 1..3"),
        (bytes([MODEL_CONTEXT, 4, 0, 1, 2, 3]), (4, 4, 4, 4), r"context model: axis count is not 1..3"),
        (bytes([MODEL_CONTEXT, 1, 0]), (64,), r"context model: data ends inside its parameters"),
        (side((1,), 0, 1, b""), (64,), r"context model: axes \[1\] are not increasing axes of a 1-d array"),
        (side((1, 1), 0, 1, b""), (64, 64), r"axes \[1, 1\] are not increasing"),
        (side((2, 1), 0, 1, b""), (64, 64, 2), r"axes \[2, 1\] are not increasing"),
        (side((0,), 0, 1, b""), (64,), r"context model: 64 values are fewer than 32 x 64 planes x 2 contexts"),
        (side((0,), 1, 1, b""), (2, 64), r"context model: range 1..1 is not an interval of >= 2 symbols within -128..127"),
        (side((0,), 0, 1, b""), (2, 64), r"context model: data ends before context 0's exp-Golomb order"),
        (side((0,), 0, 1, b"\x1f"), (2, 64), r"context model: exp-Golomb order 31 > 30"),
        (side((0,), 0, 1, b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), (2, 64),
         r"categorical model: count 0 of 2 is truncated or too long"),
        (side((0,), 0, 1, histograms([1, 0], [0, 1])), (2, 64), r"context model: counts sum to 2, not the array length 128"),
        (side((0,), 0, 2, histograms([0, 100, 0], [0, 28, 0])), (2, 64),
         r"context model: no value at the range's first or last symbol \(range not tight\)"),
        (side((0,), 0, 1, histograms([0, 100], [0, 28])), (2, 64), r"no value at the range's first or last symbol"),
        (side((0,), 0, 1, histograms([100, 0], [0, 29])), (2, 64), r"context model: count 29 exceeds|counts sum to 129"),
    ],
)
def test_decode_refuses_bad_side_information(data, shape, match):
    """Every field is checked before constriction sees it."""
    with pytest.raises(NvcFormatError, match=match):
        decode_ints(data, int(np.prod(shape)), 8, shape)


def test_a_value_in_an_empty_context_is_refused():
    """Words that put a value in a context whose histogram is empty give a format error, not a crash."""
    counts = np.array([[4 * 64 - 32, 32], [0, 0]])         # context 1 (predecessor non-zero) never occurs, says the file
    row0 = np.r_[np.ones(32), np.zeros(32)].astype(np.int32)  # ... but row 0's first half is non-zero
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(row0, constriction.stream.model.Categorical(counts[0].astype(np.float64), perfect=False))
    data = side((0,), 0, 1, histograms(*counts)) + enc.get_compressed().astype("<u4").tobytes()
    with pytest.raises(NvcFormatError, match=r"^context model: a value falls in context 1, whose histogram is empty$"):
        decode_ints(data, 4 * 64, 8, (4, 64))


def test_flipped_word_bits_are_refused_or_canonical():
    """As for the i.i.d. models: a flip is refused, or the words are exactly the encoding of what they decode to."""
    rng = np.random.default_rng(3)
    x = latent_like(rng, (20, 8, 2, 4, 4))
    data = encode_ints(x, 8, shaped=True)
    assert data[0] == MODEL_CONTEXT
    n_rejected = 0
    for pos in range(len(data) - 60, len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x08
        try:
            out = decode_ints(bytes(bad), x.size, 8, x.shape)
        except NvcFormatError as e:
            assert any(w in str(e) for w in ("corrupt", "do not match", "range decoder failed", "empty", "outside"))
            n_rejected += 1
        else:
            model_id, params, pos_words = _read_side(bytes(bad), x.size, 8, x.shape)
            again = _encode_words(out.reshape(x.shape), model_id, params, 8).astype("<u4").tobytes()
            assert again == bytes(bad[pos_words:])
    assert n_rejected > 0


def test_an_inflated_shape_is_refused_before_decoding():
    """A corrupt dimension (the TENS shape) cannot make the decoder run through millions of symbols."""
    x = latent_like(np.random.default_rng(4))
    data = encode_ints(x, 8, shaped=True)
    big = (x.shape[0] << 12,) + x.shape[1:]
    with pytest.raises(NvcFormatError, match=r"context model: \d+ words cannot hold \d+ symbols|counts sum to"):
        decode_ints(data, int(np.prod(big)), 8, big)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([(64, 2), (8, 4, 4), (2, 2, 2, 2, 2, 8)]))
def test_random_bytes_after_the_model_id_raise_only_format_errors(tail, shape):
    try:
        out = decode_ints(bytes([MODEL_CONTEXT]) + tail, int(np.prod(shape)), 8, shape)
    except NvcFormatError:
        return
    assert out.shape == (int(np.prod(shape)),)


def test_a_latent_table_round_trips_through_a_tens_chunk():
    """write_tensor takes the context model for a latent-like table; read_tensor returns it exactly."""
    q = latent_like(np.random.default_rng(5))
    t = QuantizedTensor("latents", q, np.array([1.0, 0.5, 0.25, 2.0], np.float32), 2, 8)
    payload = write_tensor(t)
    assert payload[payload.index(b"latents") + 7 + 3 + 8 * 5 + 4 + 16 + 8] == MODEL_CONTEXT
    assert read_tensor(PayloadReader(payload, "TENS", 0), 1 << 27) == t


def test_decoding_holds_the_values_at_most_twice():
    """The decoder's memory: the values as planes, then in C order, and one plane's temporaries (traced)."""
    import tracemalloc

    q = latent_like(np.random.default_rng(6), (400, 8, 4, 8, 8))
    data = encode_ints(q, 8, shaped=True)
    assert data[0] == MODEL_CONTEXT
    tracemalloc.start()
    try:
        out = decode_ints(data, q.size, 8, q.shape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(out.reshape(q.shape), q)
    assert peak < 2.3 * 4 * q.size, (peak, 4 * q.size)
