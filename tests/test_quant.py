"""Post-training quantization: steps, axis choice and the decoder's dequantization."""

import numpy as np
import pytest

from nvcodec.quant import dequantize_state, quantize_state, quantize_tensor


def test_error_is_at_most_half_a_step():
    """Every weight is reconstructed within half of its channel's step."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    t = quantize_tensor("conv.weight", w, 8)
    shape = [1] * w.ndim
    if t.axis is not None:
        shape[t.axis] = -1
    step = np.broadcast_to(t.scale.reshape(shape), w.shape)
    assert np.all(np.abs(t.dequantize() - w) <= step / 2 + 1e-7)


def test_axis_follows_the_channel_whose_range_varies():
    """Per-output steps win when output channels differ in range; per-input when input channels do."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(16, 16)).astype(np.float32)
    gains = np.geomspace(0.01, 10, 16).astype(np.float32)
    assert quantize_tensor("out", base * gains[:, None], 6).axis == 0
    assert quantize_tensor("in", base * gains[None, :], 6).axis == 1


@pytest.mark.parametrize("n_bits", [2, 4, 8, 16])
def test_integers_stay_in_the_signed_range(n_bits):
    """q lies in [-(2**(b-1)), 2**(b-1)-1], the range the entropy coder accepts."""
    w = np.random.default_rng(n_bits).standard_cauchy(size=(5, 7)).astype(np.float32)
    t = quantize_tensor("w", w, n_bits)
    assert t.q.dtype == np.int32
    assert t.q.min() >= -(2 ** (n_bits - 1)) and t.q.max() <= 2 ** (n_bits - 1) - 1


def test_zero_tensor_and_zero_channel_get_positive_steps():
    """All-zero tensors and channels quantize to zeros with a finite positive step."""
    w = np.zeros((3, 4), np.float32)
    w[1] = 0.5
    t = quantize_tensor("w", w, 8)
    assert np.all(t.scale > 0) and np.all(np.isfinite(t.scale))
    np.testing.assert_array_equal(t.dequantize()[[0, 2]], 0.0)
    t0 = quantize_tensor("b", np.zeros(5, np.float32), 8)
    np.testing.assert_array_equal(t0.dequantize(), 0.0)


def test_bad_calls_raise_value_error():
    with pytest.raises(ValueError, match="n_bits must lie in"):
        quantize_tensor("w", np.ones(3, np.float32), 1)
    with pytest.raises(ValueError, match="non-finite"):
        quantize_tensor("w", np.array([1.0, np.nan], np.float32), 8)


def test_state_round_trip_keeps_names_order_and_shapes():
    """dequantize_state(quantize_state(s)) has s's names, order and shapes, within the step."""
    rng = np.random.default_rng(2)
    state = {"a.weight": rng.normal(size=(4, 3)).astype(np.float32), "a.bias": rng.normal(size=4).astype(np.float32)}
    back = dequantize_state(quantize_state(state, 8))
    assert list(back) == list(state)
    for name in state:
        assert back[name].shape == state[name].shape and back[name].dtype == np.float32
        np.testing.assert_allclose(back[name], state[name], atol=np.abs(state[name]).max() / 127)
