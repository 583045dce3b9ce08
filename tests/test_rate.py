"""nvcodec.rate: the keyframes, the motion and the weights spent up to one price of a bit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nvcodec.rate import balance_keyframes, inbetween_fraction, weight_lambda


def test_weight_lambda_converts_a_price_of_squared_error_per_bit_into_mse_per_weight_bpp():
    """A weight-rate step priced at lambda costs the squared error the keyframes' price says it should:
    lambda x (bpp step) of in-between MSE in [0, 1] is price x (bits) of 8-bit squared error."""
    n_pixels, between = 1_000_000, 700_000
    price = 850.0                                     # squared error (8-bit RGB, summed) per bit
    lam = weight_lambda(price, between / n_pixels)
    d_bpp = 0.01                                      # 10 000 bits of weights
    sse = lam * d_bpp * 3 * 255.0 ** 2 * between      # the MSE it trades, as summed 8-bit squared error
    assert sse == pytest.approx(price * d_bpp * n_pixels)
    with pytest.raises(ValueError):
        weight_lambda(-1.0, 0.5)
    with pytest.raises(ValueError):
        weight_lambda(1.0, 0.0)


def test_inbetween_fraction_weighs_videos_by_pixels_and_counts_their_keyframes():
    big = np.zeros((9, 20, 10, 3), np.uint8)           # regular keyframes every 8th: 0, 8
    small = np.zeros((4, 10, 10, 3), np.uint8)
    assert inbetween_fraction([big, small], 8, [np.array([0, 8]), np.array([0, 1, 3])]) == pytest.approx(
        (7 * 200 + 1 * 100) / (9 * 200 + 4 * 100))
    assert inbetween_fraction([big], 8) == pytest.approx(7 / 9)
    assert inbetween_fraction([small[:1]], 8) == 1.0     # every frame a keyframe: nothing is predicted


def _model():
    """A corpus with convex rate-distortion for both parts: keyframe bytes halve every 6 quality steps and
    their squared error falls exponentially with the bytes; the weights' MSE (RGB in [0, 1], in-between
    frames) falls exponentially with theirs. Returns the parts and the true total error of a split."""
    n_pixels, fraction = 2_000_000, 7 / 8
    to_sse = 3 * 255.0 ** 2 * fraction * n_pixels

    def kf_bytes(q: int) -> int:
        return int(60_000 * 2 ** (-q / 6))

    def kf_sse(b: float) -> float:
        return 4e9 * math.exp(-b / 15_000)

    def price(q: int) -> float:                       # -d(sse)/d(bits) at the quality's bytes
        return 4e9 / 15_000 * math.exp(-kf_bytes(q) / 15_000) / 8

    c, e = 2e-3, 6_000.0                               # weights: MSE = c exp(-w / e)

    def weight_bytes(lam: float) -> float:             # argmin_w c exp(-w/e) + lam 8 w / n_pixels
        return max(e * math.log(c * n_pixels / (8 * lam * e)), 0.0) if lam > 0 else 1e12

    def total_sse(q: int, budget: float) -> float:
        return kf_sse(kf_bytes(q)) + to_sse * c * math.exp(-(budget - kf_bytes(q)) / e)

    return n_pixels, fraction, kf_bytes, price, weight_bytes, total_sse


@pytest.mark.parametrize("budget", [25_000.0, 40_000.0, 60_000.0])
def test_balancing_at_one_price_lands_on_the_best_split(budget):
    """The finest quality whose keyframes and price-quantized weights fit is where the file's total
    error is least: one quality step either way costs more than it saves, and no split is much better."""
    n_pixels, fraction, kf_bytes, price, weight_bytes, total_sse = _model()
    q = balance_keyframes(kf_bytes, price, weight_bytes, fraction, (0, 63), budget, n_pixels)
    assert kf_bytes(q) < budget
    # the sum at the price crosses the budget between q and its coarser neighbour, or between q and its finer one
    sums = {q_: kf_bytes(q_) + weight_bytes(weight_lambda(price(q_), fraction)) for q_ in (q - 1, q, q + 1)}
    assert sums[q - 1] > budget >= sums[q + 1]
    best = min(range(0, 64), key=lambda q_: total_sse(q_, budget) if kf_bytes(q_) < budget else math.inf)
    assert total_sse(q, budget) <= 1.01 * total_sse(best, budget)
    assert total_sse(q, budget) < min(total_sse(q + 1, budget), total_sse(q - 1, budget))


def test_balancing_with_the_price_in_the_wrong_units_misses_the_split():
    """The same model with the price left in squared error of 8-bit RGB (no 3 x 255^2) lands far from the
    optimum: the test above measures the conversion, not only the bisection."""
    n_pixels, fraction, kf_bytes, price, weight_bytes, total_sse = _model()
    budget = 60_000.0
    wrong = balance_keyframes(kf_bytes, lambda q: price(q) * 3 * 255 ** 2, weight_bytes, fraction, (0, 63), budget,
                              n_pixels)
    right = balance_keyframes(kf_bytes, price, weight_bytes, fraction, (0, 63), budget, n_pixels)
    assert total_sse(wrong, budget) > 1.5 * total_sse(right, budget)


def test_balancing_gives_the_coarsest_quality_when_the_weights_want_more_than_the_budget():
    n_pixels, fraction, kf_bytes, price, _, _ = _model()
    assert balance_keyframes(kf_bytes, price, lambda lam: 1e9, fraction, (10, 40), 30_000.0, n_pixels) == 40


SAMPLE = Path(__file__).parents[1] / "samples" / "foreman_176x144.mp4"


@pytest.mark.slow
@pytest.mark.parametrize("motion", [True, False])
def test_a_network_quantizes_its_weights_at_the_keyframes_price(tmp_path, monkeypatch, motion):
    """PricedQuant (a rate-aware preset's default): the encoder converts the price of a bit (the one its motion
    allocation measured, or for a network without coded motion its own probe) into the quantizer's lambda,
    for the corpus's share of in-between pixels, and the file records that lambda and the price."""
    import dataclasses

    import nvcodec
    from nvcodec import encoder
    from nvcodec.bitstream import NvcReader
    from nvcodec.presets import PricedQuant, build_config

    seen = []

    def spy(price, fraction):
        seen.append((price, fraction))
        return weight_lambda(price, fraction)

    monkeypatch.setattr(encoder, "weight_lambda", spy)
    config = dataclasses.replace(build_config("tiny", epochs=1, motion=motion), quantization=PricedQuant(0.5))
    lines = []
    nvcodec.encode([SAMPLE], tmp_path / "p.nvc", config, max_frames=17, log=lines.append)
    (price, fraction), = seen
    assert price > 0 and fraction == pytest.approx(14 / 17)        # keyframes 0, 8, 16
    assert any(line.startswith(f"weights priced as keyframes: a bit costs {price:.1f} ") for line in lines)
    # with coded motion, the price is the one its allocation measured and said
    assert any(f"a bit costs {price:.1f} of squared error" in line for line in lines
               if line.startswith("motion:")) == motion
    with NvcReader(tmp_path / "p.nvc") as reader:
        assert reader.metadata["fit"]["rate_lambda"] == float(f"{weight_lambda(price, fraction):.6g}")
        assert reader.metadata["fit"]["rate_lambda"] != 0.5
        assert reader.metadata["fit"]["price"] == float(f"{price:.6g}")


@pytest.mark.slow
def test_target_bpp_with_pinned_keyframes_gives_the_weights_the_rest(tmp_path):
    """--target-bpp with --keyframe-quality: the keyframes at that quality, the file near the target."""
    import nvcodec
    from nvcodec.bitstream import NvcReader
    from nvcodec.presets import build_config

    pinned = nvcodec.encode([SAMPLE], tmp_path / "k.nvc", build_config("tiny", epochs=1, target_bpp=1.0,
                                                                        keyframe_quality=20),
                            max_frames=16, quiet=True)
    assert pinned.bpp == pytest.approx(1.0, rel=0.15)
    with NvcReader(tmp_path / "k.nvc") as reader:
        assert reader.metadata["keyframe_codec"]["params"]["quality"] == 20


@pytest.mark.slow
def test_target_bpp_with_coded_motion_prices_refines_it_and_gives_the_weights_the_rest(tmp_path):
    """--target-bpp for a network that consumes coded motion: the plan reserves the motion the encoder writes
    (each video's grid and step at the keyframes' price, allocated once where the quality is pinned), the
    motion is refined through the fitted network at that price as without a budget, and the weights take
    what the keyframes and the refined motion leave: the file lands near the target."""
    import nvcodec
    from nvcodec.bitstream import NvcReader
    from nvcodec.presets import build_config

    lines = []
    report = nvcodec.encode([SAMPLE], tmp_path / "m.nvc",
                            build_config("tiny", epochs=1, target_bpp=1.0, keyframe_quality=20, motion=True,
                                         motion_iters=2), max_frames=16, log=lines.append)
    assert any(line.startswith("  coded motion at keyframe quality 20: ") for line in lines)
    assert any(line.startswith("motion: the rate plan's, allocated at this quality (a bit costs ") for line in lines)
    assert not any(line.startswith("motion: keyframe slope measured") for line in lines)     # not allocated twice
    refined, = [line for line in lines if line.startswith("motion refined through the network (2 steps a clip)")]
    assert report.bpp == pytest.approx(1.0, rel=0.15)
    with NvcReader(tmp_path / "m.nvc") as reader:
        assert reader.metadata["fit"]["motion_iters"] == 2
        assert f"{reader.metadata['fit']['motion_clips_changed']} of " in refined


@pytest.mark.slow
def test_network_auto_keeps_whichever_of_the_network_and_its_floor_at_equal_rate_decodes_better(tmp_path):
    """--network auto: the network is fitted and written, the motion floor coded at that file's rate, and the
    better of the two is the output, at or under the network's rate; nothing else is left beside it."""
    import re

    import nvcodec
    from nvcodec.bitstream import NvcReader
    from nvcodec.presets import build_config

    lines = []
    report = nvcodec.encode([SAMPLE], tmp_path / "a.nvc", build_config("tiny", epochs=1, motion=True, network="auto"),
                            max_frames=17, log=lines.append)
    line, = [x for x in lines if x.startswith("the network: ")]
    net_psnr, net_bpp, floor_psnr, floor_bpp, kept = re.match(
        r"the network: ([\d.]+) dB at ([\d.]+) bpp; the motion floor at the same rate: ([\d.]+) dB at ([\d.]+) bpp: "
        r"keeping the (floor|network)$", line).groups()
    assert float(floor_bpp) <= float(net_bpp)
    assert kept == ("floor" if float(floor_psnr) > float(net_psnr) else "network")
    assert f"{report.psnr:.2f}" == (floor_psnr if kept == "floor" else net_psnr)
    with NvcReader(tmp_path / "a.nvc") as reader:
        assert (reader.metadata["model"] == {}) == (kept == "floor")
    assert report.n_bytes == (tmp_path / "a.nvc").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nvc"]
