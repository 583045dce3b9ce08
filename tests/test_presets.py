"""Presets: the registry, the corpus-relative sizing rule, checked overrides, and `tiny` is quick."""

from __future__ import annotations

import dataclasses

import pytest

from nvcodec.fit import fit
from nvcodec.config import count_parameters
from nvcodec.presets import PRESETS, register, resolve

from test_fit import synthetic_clips


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_has_the_named_presets_and_refuses_duplicates():
    assert list(PRESETS) == ["tiny", "fast", "small", "medium", "large"]
    with pytest.raises(ValueError, match="already registered"):
        register(PRESETS["fast"])


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_valid_networks_at_both_ends_of_its_range(name):
    p = PRESETS[name]
    assert isinstance(p.keyframe_quality, int) and isinstance(p.quant_bits, int)
    small, big = p.model_config(0), p.model_config(10**13)
    assert (small.c0, big.c0) == (p.c0_min, p.c0_max)
    assert (small.tile_h, small.tile_w) == p.tile


def test_c0_grows_with_the_corpus_within_the_weight_budget():
    """The largest C0 whose parameters fit weight_bpp * pixels / bits."""
    p = PRESETS["medium"]
    pixels = 2_000 * 1280 * 720
    cfg = p.model_config(pixels)
    assert p.c0_min < cfg.c0 < p.c0_max
    budget = p.weight_bpp * pixels / p.quant_bits
    assert count_parameters(cfg) <= budget < count_parameters(dataclasses.replace(cfg, c0=cfg.c0 + 1))


def test_overrides_replace_fit_and_preset_fields():
    p = resolve("small", epochs=3, lr=1e-3, head="paper", c0=20)
    assert p.fit.epochs == 3 and p.fit.lr == 1e-3 and p.head == "paper"
    assert p.model_config(10**12).c0 == 20
    assert resolve("fast") is PRESETS["fast"]


@pytest.mark.parametrize("overrides, message", [
    ({"c0": 500}, r"sizes C0 within \[0, 0\]; c0=500 contradicts"),
    ({"c0": 20, "c0_max": 40}, "either c0 or c0_min/c0_max"),
    ({"epochz": 3}, r"unknown override\(s\) \['epochz'\]"),
    ({"name": "other"}, "unknown override"),
    ({"epochs": 0}, "FitConfig.epochs"),
    ({"tile": (50, 50)}, "ModelConfig.strides|multiples of 4"),
])
def test_overrides_that_contradict_the_preset_fail_loudly(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve("fast", **overrides)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="tiny, fast, small, medium, large"):
        resolve("huge")


def test_tiny_fits_three_clips_of_16_frames_at_64x64_above_the_floor():
    """The test preset: 3 videos x 16 frames at 64x64, cut by nvcodec.corpus, fit above the floor. (Its speed
    is a benchmark's business, benchmarks/bench_fit.py, not a wall-clock assertion on a shared machine;
    the suite's per-test timeout still bounds it.)"""
    from nvcodec import corpus
    p = PRESETS["tiny"]
    clips = synthetic_clips(n_videos=3, n_frames=16, size=(64, 64))
    videos = []
    for v in range(3):
        frames = clips.frames[clips.video == v][clips.mask[clips.video == v]]     # (16, 3, 64, 64)
        frames = frames.transpose(0, 2, 3, 1).copy()
        videos.append((frames, frames[corpus.keyframe_positions(16, 8)], 16))
    tiled = corpus.build_clipset(videos, 8, *p.tile)
    assert tiled.n_clips == 3 * 2 * 4
    result = fit(p.model_config(3 * 16 * 64 * 64), p.fit, tiled, device="cpu", progress=False)
    assert result.psnr > result.blend_psnr + 0.5


def test_build_config_names_how_the_weights_are_quantized():
    """PTQ, rate-aware and byte budget are explicit variants; the default is the preset's own."""
    from nvcodec.presets import (RATE_LAMBDA, ByteBudget, PostTrainingQuant, PricedQuant, RateAwareQuant,
                                 build_config)

    assert build_config("tiny").quantization == PostTrainingQuant(8)
    # the weights are priced as the keyframes are; the preset's lambda is the fallback
    assert build_config("fast").quantization == PricedQuant(RATE_LAMBDA)
    assert build_config("small").quantization == PricedQuant(RATE_LAMBDA)
    assert build_config("fast", rate_lambda=0.01).quantization == RateAwareQuant(0.01)
    six = build_config("fast", quant_bits=6)
    assert six.quantization == PostTrainingQuant(6) and six.preset.quant_bits == 6    # sizes the network too
    assert build_config("fast", target_bpp=0.1).quantization == ByteBudget(0.1)
    # pinned keyframes: the weights take what they leave
    assert build_config("fast", target_bpp=0.1, keyframe_quality=20).quantization == ByteBudget(0.1, 20)
    config = build_config("fast", epochs=3, seed=5, keyframe_interval=4, keyframe_quality=40)
    assert (config.preset.fit.epochs, config.preset.fit.seed) == (3, 5)
    assert (config.keyframe_interval, config.keyframe_codec.quality) == (4, 40)


@pytest.mark.parametrize("kwargs, message", [
    ({"target_bpp": 0.1, "keyframe_quality": 20, "network": "none"}, "either --target-bpp or --keyframe-quality"),
    ({"target_bpp": 0.1, "rate_lambda": 0.01}, "at most one of --target-bpp, --lambda and --quant-bits"),
    ({"quant_bits": 6, "rate_lambda": 0.01}, "at most one of"),
    ({"target_bpp": 0.0}, "target_bpp 0.0 is not a number > 0"),
    ({"rate_lambda": -1.0}, r"rate_lambda -1.0 is not a number >= 0"),
    ({"quant_bits": 1}, r"quant_bits 1 outside \[2, 16\]"),
    ({"keyframe_interval": 2000}, r"keyframe_interval: 2000 outside \[1, 1024\]"),
    ({"epochz": 1}, r"unknown override\(s\) \['epochz'\]"),
])
def test_build_config_refuses_contradictions_loudly(kwargs, message):
    from nvcodec.presets import build_config

    with pytest.raises(ValueError, match=message):
        build_config("fast", **kwargs)


def test_the_rate_plan_sizes_the_network_explicitly_below_the_preset_range():
    """model_config(weight_bpp=, c0_min=) is the rate plan's checked way to size a network."""
    p = PRESETS["small"]
    assert p.model_config(10**6, weight_bpp=1e-6).c0 == p.c0_min
    assert p.model_config(10**6, weight_bpp=1e-6, c0_min=1).c0 == 1
    with pytest.raises(ValueError, match=r"c0_min 0 outside \[1, 64\]"):
        p.model_config(10**6, c0_min=0)
    with pytest.raises(ValueError, match=r"weight_bpp 0.0 outside \(0, 64\]"):
        p.model_config(10**6, weight_bpp=0.0)


def test_no_motion_on_a_refiner_preset_drops_the_refiner_unless_one_is_asked_for():
    """The refiner is the head of a motion network: --no-motion on fast gives the small head; asking for both fails."""
    assert PRESETS["fast"].refine_width > 0
    p = resolve("fast", motion=False)
    assert (p.refine_width, p.refine_layers) == (0, 0) and not p.model_config(10**8).motion
    assert PRESETS["fast"].c0_max == 0 and p.model_config(10**8).c0 == 1      # no refiner, no trunk: C0 1
    assert resolve("fast", motion=False, c0_min=2, c0_max=3).model_config(10**8).c0 == 3
    with pytest.raises(ValueError, match="the refiner is the output head of a residual network with coded motion"):
        resolve("fast", motion=False, refine_width=8)
