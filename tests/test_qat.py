"""Rate-aware quantization: one rounding for training and writing, a rate term that is
the coder's size, an allocation that trades as lambda says, and files that shrink as lambda grows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import nvcodec
from nvcodec import qat
from nvcodec.bitstream import NvcReader, QuantizedTensor, ints_code_length_bits
from nvcodec.fit import fit
from nvcodec.presets import build_config
from tests.test_fit import TINY_FIT, TINY_MODEL, latent_clips, latent_model, synthetic_clips

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SAMPLE = Path(__file__).parents[1] / "samples" / "foreman_176x144.mp4"


def _weight_like(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.laplace(0.0, 0.02, size=(n // 64, 64)) * (1 + rng.random((1, 64)))).astype(np.float32)


def test_fewest_bits_holds_every_integer_and_no_fewer():
    for lo, hi, bits in ((0, 0, 2), (-2, 1, 2), (-2, 2, 3), (-3, 1, 3), (-128, 127, 8), (-129, 0, 9), (0, 32767, 16)):
        q = np.array([lo, hi])
        assert qat.fewest_bits(q) == bits
        QuantizedTensor("t", q, np.ones(1, np.float32), None, bits)          # the container accepts it


def test_steps_halve_every_two_exponents_and_zero_channels_get_step_one():
    w = _weight_like(4096)
    w[:, 3] = 0.0
    grid = qat.grid_of("w", w)
    assert grid.axis in (0, 1, None)
    s10, s12 = grid.scale(10), grid.scale(12)
    live = grid.peak > 0
    np.testing.assert_allclose(s12[live], s10[live] / 2, rtol=1e-6)
    assert np.all(s10[~live] == 1.0)
    q = qat.quantize_weights({"w": w}, {"w": grid}, {"w": 10})[0].q
    assert np.abs(q).max() == 2 ** 5                    # peak / (peak * 2**-5)


def test_fake_quant_forward_is_the_written_tensor_and_its_gradient_passes_straight_through():
    w = torch.from_numpy(_weight_like(4096, seed=1)).requires_grad_()
    grid = qat.grid_of("w", w.detach().numpy())
    scale = torch.from_numpy(grid.scale(9))
    seen = qat.fake_quant(w, scale, grid.axis)
    seen.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    written = qat.quantize_weights({"w": w.detach().numpy()}, {"w": grid}, {"w": 9})[0]
    assert np.array_equal(seen.detach().numpy(), written.dequantize())     # bit for bit, float32


def test_rate_term_is_the_coders_size_within_one_percent_also_after_the_weights_move():
    w = torch.from_numpy(_weight_like(65536, seed=2))
    grid = qat.grid_of("w", w.numpy())
    scale = torch.from_numpy(grid.scale(12))
    term = qat.RateTerm(scale, grid.axis)
    term.refresh(w)

    def coder_bits(weights: torch.Tensor) -> int:
        q = qat.integers(weights, scale, grid.axis).to(torch.int32).numpy().ravel()
        return ints_code_length_bits(q, qat.fewest_bits(q))

    assert float(term.bits(w)) == pytest.approx(coder_bits(w), rel=1e-6)    # at a refresh: the coder's size
    words_only = float(term.costs[(qat.integers(w, scale, grid.axis) - term.lo).long()].sum())
    assert words_only == pytest.approx(coder_bits(w), rel=0.01)              # the model's costs, not a fudge
    moved = w * 0.97 + 0.002 * torch.from_numpy(np.random.default_rng(3).standard_normal(w.shape).astype(np.float32))
    assert float(term.bits(moved)) == pytest.approx(coder_bits(moved), rel=0.01)


def test_rate_gradient_pulls_weights_towards_the_mode():
    w = torch.from_numpy(_weight_like(8192, seed=4))
    grid = qat.grid_of("w", w.numpy())
    term = qat.RateTerm(torch.from_numpy(grid.scale(12)), grid.axis)
    term.refresh(w)
    leaf = w.clone().requires_grad_()
    term.bits(leaf).backward()
    far = leaf.detach().abs() > 4 * torch.from_numpy(grid.scale(12)).max()
    assert torch.all(torch.sign(leaf.grad[far]) == torch.sign(leaf.detach()[far]))   # descent shrinks |w|


def test_allocation_trades_rate_for_distortion_as_lambda_grows_and_meets_a_budget():
    ks = np.array(qat.K_TABLE, float)
    rate = {"a": 1000.0 * 2 ** (ks / 4), "b": 300.0 * 2 ** (ks / 4)}      # finer steps cost more bytes ...
    dist = {"a": 1e-2 * 2.0 ** -ks, "b": 3e-2 * 2.0 ** -ks}               # ... and lose less
    n_pixels = 10 ** 6
    chosen = [qat.allocate(rate, dist, lam, n_pixels) for lam in (0.0, 1e-4, 1e-2, 1.0)]
    assert chosen[0] == {"a": qat.K_TABLE[-1], "b": qat.K_TABLE[-1]}
    for finer, coarser in zip(chosen, chosen[1:]):
        assert all(coarser[g] <= finer[g] for g in rate)
    assert chosen[-1] != chosen[0]
    budget = 0.5 * sum(r[-1] for r in rate.values())
    lam = qat.lambda_for_budget(rate, dist, budget, n_pixels)
    alloc = qat.allocate(rate, dist, lam, n_pixels)
    assert sum(rate[g][qat.K_TABLE.index(k)] for g, k in alloc.items()) <= budget


def test_a_budget_is_spent_even_where_distortion_is_flat():
    """A barely trained network: every step gives the same MSE. Lambda alone would take the coarsest
    steps and leave most of the bytes unused; the greedy fill spends them, within the budget."""
    ks = np.array(qat.K_TABLE, float)
    rate = {"a": 1000.0 * 2 ** (ks / 4), "b": 300.0 * 2 ** (ks / 4)}
    dist = {"a": np.zeros(len(ks)), "b": np.zeros(len(ks))}
    coarsest = sum(r[0] for r in rate.values())
    for budget in (1.5 * coarsest, 5 * coarsest, 20 * coarsest):
        alloc, _ = qat.allocate_budget(rate, dist, budget, 10 ** 6)
        spent = sum(rate[g][qat.K_TABLE.index(k)] for g, k in alloc.items())
        assert spent <= budget
        next_step = min(rate[g][qat.K_TABLE.index(k) + 1] - rate[g][qat.K_TABLE.index(k)]
                        for g, k in alloc.items() if k < qat.K_TABLE[-1])
        assert spent + next_step > budget                    # no refinement that fits is left undone


@pytest.fixture(scope="module")
def fitted():
    clips = synthetic_clips(size=(32, 32))
    result = fit(TINY_MODEL, dataclasses.replace(TINY_FIT, epochs=12), clips, device="cpu", progress=False)
    return clips, result


def test_fine_tuned_integers_are_the_ones_training_saw_and_the_written_file_holds_them(fitted, tmp_path):
    clips, result = fitted
    choice = qat.rate_aware_quantize(TINY_MODEL, result.state_dict, clips, n_pixels=clips.mask.sum() * 32 * 32,
                                     lam=1e-3, qat_steps=12, lr=5e-4, device="cpu", log=lambda _m: None)
    assert len(choice.history) >= 1
    moved = [n for n in choice.float_state if not np.array_equal(choice.float_state[n], result.state_dict[n].numpy())]
    assert moved                                                        # the fine-tune changed the weights
    from nvcodec.bitstream import write_nvc
    from tests.test_bitstream_container import make_metadata, make_segments

    path = tmp_path / "w.nvc"
    write_nvc(path, make_metadata(), make_segments(), choice.tensors)
    with NvcReader(path) as reader:
        read_back = {t.name: t for t in reader.read_tensors()}
    for name, w in choice.float_state.items():
        grid = qat.grid_of(name, result.state_dict[name].numpy())          # grids come from the float fit
        scale = torch.from_numpy(grid.scale(choice.ks[name]))
        seen = qat.fake_quant(torch.from_numpy(w), scale, grid.axis)      # what a training step computes
        assert np.array_equal(read_back[name].dequantize(), seen.numpy()), name
        assert read_back[name] == next(t for t in choice.tensors if t.name == name)


def test_the_fine_tune_moves_the_weights_and_writes_the_latents_the_fit_left():
    """Per-frame latents are held at their integers through the fine-tune (it would otherwise step the whole
    table every step): the written latents are the fit's rounded, the weights moved, the latents mattered."""
    clips = latent_clips()
    model_cfg = latent_model(clips.n_clips)
    result = fit(model_cfg, dataclasses.replace(TINY_FIT, epochs=12, latent_lr=0.5), clips, device="cpu", progress=False)
    fitted_latents = result.state_dict["latents"].numpy()
    assert np.abs(fitted_latents).max() > 0.5
    choice = qat.rate_aware_quantize(model_cfg, result.state_dict, clips, n_pixels=clips.mask.sum() * 32 * 32,
                                     lam=1e-3, qat_steps=30, lr=0.2, device="cpu", log=lambda _m: None)
    written = next(t for t in choice.tensors if t.name == "latents")
    assert np.array_equal(written.dequantize(), np.round(fitted_latents))
    assert any(not np.array_equal(choice.float_state[n], result.state_dict[n].numpy())
               for n in choice.float_state if n != "latents")
    assert choice.history and all("weight_bits" in h for h in choice.history)


def test_bigger_lambda_gives_fewer_weight_bytes_at_a_price_in_quality(fitted):
    clips, result = fitted
    n_pixels = int(clips.mask.sum()) * 32 * 32
    runs = [qat.rate_aware_quantize(TINY_MODEL, result.state_dict, clips, n_pixels=n_pixels, lam=lam,
                                    device="cpu", log=lambda _m: None) for lam in (0.0, 1e-3, 1.0)]
    sizes = [r.weight_bytes for r in runs]
    assert sizes[0] > sizes[1] > sizes[2]
    assert runs[0].eval_psnr >= runs[2].eval_psnr
    assert runs[0].eval_psnr == pytest.approx(runs[0].float_eval_psnr, abs=0.05)   # lambda 0: quality first
    budget = 0.6 * sizes[0]
    fitted_budget = qat.rate_aware_quantize(TINY_MODEL, result.state_dict, clips, n_pixels=n_pixels,
                                            budget_bytes=budget, device="cpu", log=lambda _m: None)
    assert fitted_budget.weight_bytes <= budget


def test_weight_bytes_curve_is_what_the_quantizer_writes_at_each_lambda_without_a_fine_tune(fitted):
    """The rate plan's view of the weights: at any lambda, the bytes rate_aware_quantize (no fine-tune) writes,
    falling as lambda grows."""
    clips, result = fitted
    n_pixels = int(clips.mask.sum()) * 32 * 32
    curve = qat.weight_bytes_curve(TINY_MODEL, result.state_dict, clips, n_pixels=n_pixels)
    lams = (0.0, 1e-4, 1e-3, 1.0)
    sizes = [curve(lam) for lam in lams]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    for lam, size in zip(lams[1:3], sizes[1:3]):
        written = qat.rate_aware_quantize(TINY_MODEL, result.state_dict, clips, n_pixels=n_pixels, lam=lam,
                                          device="cpu", log=lambda _m: None).weight_bytes
        assert written == size


def test_encode_with_a_large_lambda_writes_a_smaller_file(tmp_path):
    reports = [nvcodec.encode([SAMPLE], tmp_path / f"l{i}.nvc", build_config("tiny", epochs=2, rate_lambda=lam),
                              max_frames=9, quiet=True) for i, lam in enumerate((0.0, 10.0))]
    assert reports[1].n_bytes < reports[0].n_bytes
    assert reports[1].bytes_by_part["weights"] < 0.7 * reports[0].bytes_by_part["weights"]
    with NvcReader(tmp_path / "l1.nvc") as reader:
        fit_info = reader.metadata["fit"]
    assert fit_info["quantization"] == "rate-aware" and fit_info["rate_lambda"] == 10.0


def test_encode_refuses_two_ways_of_quantizing(tmp_path):
    with pytest.raises(ValueError, match="at most one of --target-bpp, --lambda and --quant-bits"):
        build_config("tiny", rate_lambda=0.01, quant_bits=6)


def test_laplace_bits_is_the_integers_probability_with_a_finite_gradient_far_from_the_mean():
    """-log2 of the Laplace mass of [x - 1/2, x + 1/2] on both sides of 1/2, and a finite gradient however
    far x lies from the mean (a cosh overflowing on the unused side once turned it into NaN)."""
    b = 0.2
    x = torch.tensor([0.0, 0.3, 1.0, 3.0, 40.0, 1e4], dtype=torch.float64, requires_grad=True)
    bits = qat.laplace_bits(x, 0.0, b)
    cdf = lambda v: np.where(v < 0, 0.5 * np.exp(np.minimum(v, 0) / b), 1 - 0.5 * np.exp(-np.maximum(v, 0) / b))  # noqa: E731
    xs = x.detach().numpy()
    mass = np.maximum(cdf(xs + 0.5) - cdf(xs - 0.5), 2.0 ** -24)
    np.testing.assert_allclose(bits.detach().numpy(), -np.log2(mass), rtol=1e-6)
    bits.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[1] > 0 and x.grad[2] > 0
