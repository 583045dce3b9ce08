"""Entropy coding of integer arrays: exact round trips, model choice, and refusal of bad bytes."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nvcodec.bitstream import NvcFormatError, decode_ints, encode_ints, ints_code_length_bits, ints_symbol_costs_bits
from nvcodec.bitstream.entropy import (
    MODEL_NAMES,
    MODEL_CATEGORICAL,
    MODEL_CONSTANT,
    MODEL_GAUSSIAN,
    MODEL_LAPLACE,
    MODEL_UNIFORM,
    encode_ints_report,
    symbol_range,
)


def round_trip(values: np.ndarray, n_bits: int) -> bytes:
    data = encode_ints(values, n_bits)
    out = decode_ints(data, values.size, n_bits)
    assert out.dtype == np.int32 and np.array_equal(out, values.reshape(-1))
    return data


@st.composite
def int_arrays(draw):
    n_bits = draw(st.integers(2, 16))
    lo, hi = symbol_range(n_bits)
    sub_lo = draw(st.integers(lo, hi))
    sub_hi = draw(st.integers(sub_lo, min(hi, sub_lo + draw(st.sampled_from([0, 1, 3, 40, 1 << 16])))))
    values = draw(arrays(np.int32, st.integers(0, 300), elements=st.integers(sub_lo, sub_hi)))
    return values, n_bits


@settings(max_examples=300, deadline=None)
@given(int_arrays())
def test_round_trip_is_exact_for_any_array(case):
    """decode(encode(x)) == x for arrays of any length, range and bit depth."""
    round_trip(*case)


@pytest.mark.parametrize("n_bits", [2, 3, 8, 15, 16])
def test_round_trip_edge_cases(n_bits):
    """Empty, single value, all-equal, both range extremes, alternating extremes."""
    lo, hi = symbol_range(n_bits)
    for values in (
        np.zeros(0, np.int32),
        np.array([lo]),
        np.array([hi]),
        np.full(1000, hi),
        np.full(7, lo),
        np.array([lo, hi] * 50),
        np.arange(lo, hi + 1) if n_bits <= 8 else np.array([lo, 0, hi]),
    ):
        round_trip(values, n_bits)


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_seeded_realistic_arrays(seed):
    """Laplace/Gaussian-like arrays of 10..20 000 values, any shape (flattened in C order)."""
    rng = np.random.default_rng(seed)
    n_bits = int(rng.integers(2, 17))
    lo, hi = symbol_range(n_bits)
    shape = tuple(int(d) for d in rng.integers(1, 30, size=int(rng.integers(1, 4))))
    x = rng.laplace(0, rng.uniform(0.1, hi / 4 + 1), shape) if seed % 2 else rng.normal(rng.uniform(-3, 3), rng.uniform(0.1, hi / 4 + 1), shape)
    values = np.clip(np.round(x), lo, hi).astype(np.int64)
    round_trip(values, n_bits)


def test_empty_and_constant_arrays_cost_five_bytes():
    assert encode_ints(np.zeros(0, np.int8), 8) == bytes([MODEL_CONSTANT]) + struct.pack("<i", 0)
    assert encode_ints(np.full((3, 4), -5), 4) == bytes([MODEL_CONSTANT]) + struct.pack("<i", -5)
    assert decode_ints(encode_ints(np.full(10**6, 3), 8), 10**6, 8).sum() == 3 * 10**6


def test_model_choice_follows_the_data():
    """Laplace data picks a parametric model; a two-peak histogram picks the categorical one."""
    rng = np.random.default_rng(0)
    lap = np.clip(np.round(rng.laplace(0, 5, 20000)), -128, 127).astype(np.int32)
    assert encode_ints(lap, 8)[0] in (MODEL_LAPLACE, MODEL_GAUSSIAN)
    two_peaks = np.where(rng.random(20000) < 0.5, -40, 40) + rng.integers(-1, 2, 20000)
    assert encode_ints(two_peaks, 8)[0] == MODEL_CATEGORICAL
    assert encode_ints(rng.integers(-2, 2, 7), 2)[0] == MODEL_UNIFORM


def test_chosen_model_is_the_smallest_candidate():
    rng = np.random.default_rng(3)
    values = np.clip(np.round(rng.standard_t(3, 5000) * 4), -128, 127).astype(np.int32)
    sizes = encode_ints_report(values, 8)
    assert len(encode_ints(values, 8)) == min(side + coded for side, coded in sizes.values())


def test_categorical_coding_is_within_1_percent_of_empirical_entropy():
    """Target: coded <= 1.01 x sum(-log2 p_hat) (+ side information) for >= 10 000 symbols."""
    rng = np.random.default_rng(7)
    for x in (rng.laplace(0, 1, 20000), rng.normal(0, 1, 20000)):
        q = np.round(x / np.abs(x).max() * 127).astype(np.int32)
        _, counts = np.unique(q, return_counts=True)
        entropy_bytes = -(counts * np.log2(counts / q.size)).sum() / 8
        side, coded = encode_ints_report(q, 8)["categorical"]
        assert coded <= 1.01 * entropy_bytes
        assert len(encode_ints(q, 8)) <= 1.01 * entropy_bytes + side


def test_code_length_helpers():
    """ints_code_length_bits is the exact size; ints_symbol_costs_bits predicts it within 1 %."""
    rng = np.random.default_rng(5)
    q = np.clip(np.round(rng.laplace(0, 8, 30000)), -128, 127).astype(np.int32)
    assert ints_code_length_bits(q, 8) == 8 * len(encode_ints(q, 8))
    costs = ints_symbol_costs_bits(q, 8)
    assert costs.shape == (256,)
    predicted = costs[q + 128].sum()
    assert abs(predicted - ints_code_length_bits(q, 8)) < 0.01 * predicted + 200


@pytest.mark.parametrize(
    "values, n_bits, exc, match",
    [
        (np.array([8]), 4, ValueError, r"values span 8..8, outside the 4-bit range -8..7"),
        (np.array([-3]), 2, ValueError, r"outside the 2-bit range -2..1"),
        (np.array([1.5]), 8, TypeError, r"values must be an integer array, got dtype float64"),
        (np.array([1]), 17, ValueError, r"n_bits must be 2..16, got 17"),
        (np.array([1]), 1, ValueError, r"n_bits must be 2..16, got 1"),
        (np.array([1]), 8.0, TypeError, r"n_bits must be an int, got float"),
    ],
)
def test_encode_refuses_bad_calls(values, n_bits, exc, match):
    with pytest.raises(exc, match=match):
        encode_ints(values, n_bits)


def _laplace_bytes(mean_q, scale_q, words=b""):
    return bytes([MODEL_LAPLACE]) + struct.pack("<iI", mean_q, scale_q) + words


@pytest.mark.parametrize(
    "data, n, n_bits, match",
    [
        (b"", 1, 8, r"empty entropy-coded data \(no model byte\)"),
        (b"\x09", 1, 8, r"unknown entropy model id 9"),
        (b"\x00\x01\x00", 1, 8, r"constant model: data ends inside its parameters"),
        (bytes([0]) + struct.pack("<i", 200), 3, 8, r"constant model: value 200 outside the 8-bit range"),
        (bytes([0]) + struct.pack("<i", 1) + b"\0\0\0\0", 3, 8, r"constant model: 1 unexpected words for 3 symbols"),
        (bytes([1]) + struct.pack("<ii", 5, 5), 3, 8, r"uniform model: range 5..5 is not an interval of >= 2 symbols within -128..127"),
        (bytes([1]) + struct.pack("<ii", -300, 5), 3, 8, r"uniform model: range -300..5"),
        (bytes([1]) + struct.pack("<ii", 0, 5), 0, 8, r"uniform model used for an empty array"),
        (bytes([1]) + struct.pack("<ii", 0, 5) + b"\0\0", 3, 8, r"uniform model: 2 bytes of words is not a multiple of 4"),
        (_laplace_bytes(0, 0), 3, 8, r"laplace model: mean 0/4096 or scale 0/4096 out of range"),
        (_laplace_bytes(1 << 30, 5), 3, 8, r"laplace model: mean 1073741824/4096"),
        (bytes([4]) + struct.pack("<iI", 0, (1 << 28) + 1), 3, 8, r"gaussian model: .* out of range"),
        (bytes([2]) + struct.pack("<ii", 0, 1), 3, 8, r"categorical model: data ends before the exp-Golomb order"),
        (bytes([2]) + struct.pack("<ii", 0, 1) + b"\x1f", 3, 8, r"categorical model: exp-Golomb order 31 > 30"),
        (bytes([2]) + struct.pack("<ii", 0, 1) + b"\x00", 3, 8, r"categorical model: count 0 of 2 is truncated or too long"),
        (bytes([2]) + struct.pack("<ii", 0, 1) + b"\x00\x48", 3, 8, r"categorical model: counts sum to 2, not the array length 3"),
        (bytes([2]) + struct.pack("<ii", 0, 2) + b"\x00\x92", 3, 8, r"categorical model: first or last count is zero \(range not tight\)"),
        (bytes([2]) + struct.pack("<ii", 0, 1) + b"\x00\x00\x00\x00\x09", 3, 8, r"categorical model: count 0 of 2 is truncated$"),
        (bytes([2]) + struct.pack("<ii", 0, 1) + b"\x00\x31", 3, 8, r"categorical model: count 5 exceeds the array length 3"),
        (bytes([2]) + struct.pack("<ii", 0, 1) + b"\x00\xa1", 3, 8, r"categorical model: padding bits after the counts are not zero"),
    ],
)
def test_decode_refuses_bad_side_information(data, n, n_bits, match):
    """Every parameter is checked before constriction sees it (no PanicException)."""
    with pytest.raises(NvcFormatError, match=match):
        decode_ints(data, n, n_bits)


def test_decoded_words_are_always_the_canonical_encoding():
    """A flipped bit in the words is refused, or the words are exactly the encoding of what they
    decode to (a range coder has no redundancy: the container's CRC catches those)."""
    from nvcodec.bitstream.entropy import _encode_words, _read_side

    rng = np.random.default_rng(1)
    q = np.clip(np.round(rng.laplace(0, 4, 2000)), -128, 127).astype(np.int32)
    n_rejected = 0
    for model_q in (q, np.where(rng.random(2000) < 0.5, -40, 40)):
        data = encode_ints(model_q, 8)
        for pos in range(len(data) - 40, len(data)):
            bad = bytearray(data)
            bad[pos] ^= 0x10
            try:
                out = decode_ints(bytes(bad), model_q.size, 8)
            except NvcFormatError as e:
                assert any(w in str(e) for w in ("corrupt", "do not match", "range decoder failed"))
                n_rejected += 1
            else:
                model_id, params, pos_words = _read_side(bytes(bad), model_q.size, 8)
                assert _encode_words(out, model_id, params, 8).astype("<u4").tobytes() == bytes(bad[pos_words:])
    assert n_rejected > 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 50), st.integers(2, 16))
def test_decode_of_random_bytes_raises_only_format_errors(data, n, n_bits):
    """Arbitrary bytes decode or raise NvcFormatError -- never a PanicException, KeyError, ..."""
    try:
        out = decode_ints(data, n, n_bits)
    except NvcFormatError:
        return
    lo, hi = symbol_range(n_bits)
    assert out.shape == (n,) and (n == 0 or (out.min() >= lo and out.max() <= hi))


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "laplace"])
def test_decode_refuses_a_length_the_words_cannot_hold(kind):
    """A corrupt (inflated) n is refused before decoding, not after millions of symbols."""
    rng = np.random.default_rng(2)
    q = {
        "uniform": rng.integers(-2, 2, 9),
        "gaussian": np.clip(np.round(rng.normal(0, 10, 3000)), -128, 127),
        "laplace": np.clip(np.round(rng.laplace(0, 6, 3000)), -128, 127),
    }[kind].astype(np.int32)
    n_bits = 2 if kind == "uniform" else 8
    data = encode_ints(q, n_bits)
    assert decode_ints(data, q.size, n_bits).size == q.size and MODEL_NAMES[data[0]] == kind
    with pytest.raises(NvcFormatError, match=rf"^{kind} model: \d+ words cannot hold {q.size << 16} symbols \(at least \d+ bits needed\): corrupt length or shape$"):
        decode_ints(data, q.size << 16, n_bits)


def test_decode_refuses_bad_calls():
    with pytest.raises(ValueError, match=r"n must be a non-negative int, got -1"):
        decode_ints(b"\0\0\0\0\0", -1, 8)
    with pytest.raises(ValueError, match=r"n_bits must be 2..16, got 20"):
        decode_ints(b"\0\0\0\0\0", 1, 20)
