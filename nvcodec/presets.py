"""Named presets: how big a network, how long a fit, and the two rate knobs the codec uses.

A preset sizes the network *relative to the corpus* (DESIGN.md, "The economics of a
shared model"): weights cost about params x quant_bits / corpus pixels, so C0 is the
largest value in [c0_min, c0_max] whose parameter count fits
``weight_bpp * corpus_pixels / quant_bits``. Everything else (tile, widths, fit) is fixed
per preset. The figures behind each choice are in benchmarks/bench_fit.py's docstring.

Overrides go through ``resolve`` (dataclasses.replace underneath) and fail loudly when
they name nothing or contradict the preset, e.g. a C0 outside the preset's range.

``EncodeConfig`` is what ``nvcodec.encode`` takes: a preset, the keyframe codec and
interval, and how the weights are quantized (``PostTrainingQuant``, ``RateAwareQuant`` or
``ByteBudget`` for ``--target-bpp``). ``build_config`` makes one from a preset name and the
command line's overrides, refusing contradictions (two ways of quantizing, say).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nvcodec.config import MAX_CLIP_LENGTH, FitConfig, ModelConfig, count_parameters
from nvcodec.errors import NvcInputError
from nvcodec.keyframes import KeyframeCodec


@dataclass(frozen=True)
class Preset:
    name: str
    tile: tuple[int, int]              # (tile_h, tile_w)
    c0_min: int
    c0_max: int
    weight_bpp: float                  # target weight rate (bits per corpus pixel) that sizes C0
    fit: FitConfig
    keyframe_quality: int              # crf-like for the keyframe codec, lower = better
    quant_bits: int                    # bits of plain post-training quantization (when rate_lambda is None)
    rate_lambda: float | None = None   # rate-aware quantization (nvcodec.qat) at this lambda; None: plain 8-bit-style
    qat_fraction: float = 0.1          # rate-aware fine-tune steps, as a fraction of the fit's steps
    enc_width: int = 64
    embed_levels: int = 240
    mlp_width: int = 512
    min_width: int = 32
    head: str = "residual"
    paste_keyframes: bool = True
    motion: bool = False               # the network consumes coded motion (ModelConfig.motion; the file holds MOTN)
    refine_width: int = 0              # with motion: the full-resolution refiner head (ModelConfig.refine_width)
    refine_layers: int = 0
    refine_coarse: int = 0             # the refiner's half-resolution width (ModelConfig.refine_coarse)
    motion_iters: int = 0              # with motion: gradient steps per clip refining the coded motion through the
                                       # fitted network (nvcodec.motion_fit); 0: the motion as estimated
    latent_channels: int = 0           # with a refiner: per-frame coded latents, this many channels
    latent_cell: int = 0               # ... on cells of this many pixels (ModelConfig.latent_channels, latent_cell)

    def __post_init__(self) -> None:
        if not 0 <= self.c0_min <= self.c0_max:
            raise NvcInputError(f"preset {self.name}: c0 range [{self.c0_min}, {self.c0_max}] is empty")
        if not 0 < self.weight_bpp <= 64:
            raise NvcInputError(f"preset {self.name}: weight_bpp {self.weight_bpp} outside (0, 64]")
        if not 2 <= self.quant_bits <= 16:
            raise NvcInputError(f"preset {self.name}: quant_bits {self.quant_bits} outside [2, 16]")
        if not 0 <= self.keyframe_quality <= 63:
            raise NvcInputError(f"preset {self.name}: keyframe_quality {self.keyframe_quality} outside [0, 63]")
        if self.rate_lambda is not None and not (isinstance(self.rate_lambda, (int, float))
                                                 and 0 <= self.rate_lambda < math.inf):
            raise NvcInputError(f"preset {self.name}: rate_lambda {self.rate_lambda!r} is not a number >= 0")
        if not 0 <= self.qat_fraction <= 1:
            raise NvcInputError(f"preset {self.name}: qat_fraction {self.qat_fraction} outside [0, 1]")
        if type(self.motion_iters) is not int or not 0 <= self.motion_iters <= 10_000:
            raise NvcInputError(f"preset {self.name}: motion_iters {self.motion_iters!r} is not an int in [0, 10000]")
        self._config(self.c0_min, 8)      # the fixed parts must make a valid network

    def _config(self, c0: int, clip_length: int) -> ModelConfig:
        return ModelConfig(tile_h=self.tile[0], tile_w=self.tile[1], c0=c0, enc_width=self.enc_width,
                           embed_levels=self.embed_levels, mlp_width=self.mlp_width, min_width=self.min_width,
                           clip_length=clip_length, head=self.head, paste_keyframes=self.paste_keyframes,
                           motion=self.motion, refine_width=self.refine_width, refine_layers=self.refine_layers,
                           refine_coarse=self.refine_coarse, latent_channels=self.latent_channels,
                           latent_cell=self.latent_cell)

    def affords_network(self, corpus_pixels: int, clip_length: int = 8) -> bool:
        """Whether the weight budget (``weight_bpp`` x corpus pixels / ``quant_bits``) holds the preset's
        smallest network. A motion preset that cannot afford one writes the motion floor instead: on a
        corpus that small no network repays its bits (benchmarks/results/refine)."""
        return count_parameters(self._config(self.c0_min, clip_length)) <= \
            self.weight_bpp * corpus_pixels / self.quant_bits

    def model_config(self, corpus_pixels: int, clip_length: int = 8, *, weight_bpp: float | None = None,
                     c0_min: int | None = None) -> ModelConfig:
        """The network for a corpus of ``corpus_pixels`` (sum over videos of frames x width x height
        as coded): the largest C0 in [c0_min, c0_max] within the weight budget (c0_min if none is).

        ``weight_bpp``/``c0_min`` replace the preset's for one sizing: the rate plan (``nvcodec.rate``)
        sizes the network for the weight rate a byte budget leaves, which may call for a network
        below the preset's range (down to ``c0_min``); both are checked as the preset's own are."""
        if corpus_pixels < 0:
            raise NvcInputError(f"corpus_pixels must be >= 0, got {corpus_pixels}")
        weight_bpp = self.weight_bpp if weight_bpp is None else weight_bpp
        c0_min = self.c0_min if c0_min is None else c0_min
        if not 0 < weight_bpp <= 64:
            raise NvcInputError(f"preset {self.name}: weight_bpp {weight_bpp} outside (0, 64]")
        lowest = 0 if self.refine_width else 1                 # C0 0, no trunk, only for a refiner
        if type(c0_min) is not int or not lowest <= c0_min <= self.c0_max:
            raise NvcInputError(f"preset {self.name}: c0_min {c0_min!r} outside [{lowest}, {self.c0_max}]")
        budget = weight_bpp * corpus_pixels / self.quant_bits
        lo, hi = c0_min, self.c0_max
        while lo < hi:                                   # parameter count grows with C0
            mid = (lo + hi + 1) // 2
            if count_parameters(self._config(mid, clip_length)) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return self._config(lo, clip_length)


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    if preset.name in PRESETS:
        raise NvcInputError(f"preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset
    return preset


# The per-frame latents' cell in pixels when a preset has none: 16 took 13 % off squared error + lambda x bits
# in the probe, 8 took 12.5 % (benchmarks/results/refine, "Per-frame latents").
DEFAULT_LATENT_CELL = 16

_FIT_FIELDS = {f.name for f in dataclasses.fields(FitConfig)}
_PRESET_FIELDS = {f.name for f in dataclasses.fields(Preset)} - {"name", "fit"}


def resolve(name: str, /, **overrides) -> Preset:
    """``PRESETS[name]`` with overrides of Preset fields, FitConfig fields (``epochs``, ``lr``, ...)
    or ``c0`` (pins c0_min = c0_max; must lie in the preset's range). ValueError on anything else.
    ``motion=False`` on a preset with a refiner drops the refiner too (it is the head of a motion network),
    and its per-frame latents, unless ``refine_width`` is given as well; on a preset without a trunk (C0 0,
    ``fast``) it then gives the smallest trunk, C0 1, with the paper-shaped small head, unless C0 is given.
    ``latent_channels`` without ``latent_cell`` takes the preset's cell, or DEFAULT_LATENT_CELL (0 channels: none)."""
    if name not in PRESETS:
        raise NvcInputError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    preset = PRESETS[name]
    fit_kw = {k: v for k, v in overrides.items() if k in _FIT_FIELDS}
    preset_kw = {k: v for k, v in overrides.items() if k in _PRESET_FIELDS}
    if preset_kw.get("motion") is False and "refine_width" not in preset_kw:
        preset_kw.update(refine_width=0, refine_layers=0, refine_coarse=0)
        if "latent_channels" not in preset_kw:          # the latents are the refiner's inputs
            preset_kw.update(latent_channels=0, latent_cell=0)
        if preset.c0_max == 0 and not {"c0", "c0_min", "c0_max"} & set(overrides):
            preset_kw.update(c0_min=1, c0_max=1)        # a network needs a trunk without the refiner: the smallest
    if "latent_channels" in preset_kw and "latent_cell" not in preset_kw:
        channels = preset_kw["latent_channels"]         # the cell follows: the preset's, else DEFAULT_LATENT_CELL
        preset_kw["latent_cell"] = (preset.latent_cell or DEFAULT_LATENT_CELL) if channels else 0
    unknown = sorted(set(overrides) - set(fit_kw) - set(preset_kw) - {"c0"})
    if unknown:
        raise NvcInputError(f"preset {name!r}: unknown override(s) {unknown}; known: c0, "
                         f"{', '.join(sorted(_PRESET_FIELDS | _FIT_FIELDS))}")
    if "c0" in overrides:
        c0 = overrides["c0"]
        if "c0_min" in preset_kw or "c0_max" in preset_kw:
            raise NvcInputError(f"preset {name!r}: give either c0 or c0_min/c0_max, not both")
        if type(c0) is not int or not preset.c0_min <= c0 <= preset.c0_max:
            raise NvcInputError(f"preset {name!r} sizes C0 within [{preset.c0_min}, {preset.c0_max}]; "
                             f"c0={c0!r} contradicts it (choose another preset, or override c0_min/c0_max)")
        preset_kw["c0_min"] = preset_kw["c0_max"] = c0
    if fit_kw:
        preset_kw["fit"] = dataclasses.replace(preset.fit, **fit_kw)
    return dataclasses.replace(preset, **preset_kw) if preset_kw else preset



# --- the encode configuration: a preset plus the keyframe and quantization choices -------------------

DEFAULT_KEYFRAME_INTERVAL = 8         # DESIGN.md: every 8th frame plus the last
DEFAULT_KEYFRAME_CODEC = "av1"        # an inter-coded AV1 track: see benchmarks/bench_keyframes.py


@dataclass(frozen=True)
class PostTrainingQuant:
    """Plain post-training quantization at ``bits`` bits per weight (nvcodec.quant)."""

    bits: int


@dataclass(frozen=True)
class RateAwareQuant:
    """Rate-aware quantization (nvcodec.qat): minimise MSE + ``rate_lambda`` x weight bpp."""

    rate_lambda: float


@dataclass(frozen=True)
class PricedQuant:
    """Rate-aware quantization at the keyframes' measured price of a bit (``nvcodec.rate.weight_lambda``),
    so a byte of weights buys what a byte of keyframes buys: the default of every preset with a
    ``rate_lambda``. A network that consumes coded motion takes the price its motion allocation
    measured; one without measures it the same way (``nvcodec.rate.keyframe_price``: the motion
    floor's loss stands for how the predicted frames suffer from coarser keyframes).
    ``fallback_lambda`` (the preset's) where no price could be measured."""

    fallback_lambda: float


@dataclass(frozen=True)
class ByteBudget:
    """``--target-bpp``: the rate plan (nvcodec.rate.plan_target) chooses the keyframe quality, the network
    size and the weights' bytes jointly; the weights are quantized rate-aware to those bytes.
    ``keyframe_quality`` pins the keyframes instead: the weights take what they leave."""

    target_bpp: float
    keyframe_quality: int | None = None


Quantization = PostTrainingQuant | RateAwareQuant | PricedQuant | ByteBudget

# ``EncodeConfig.network`` (``--network``): the shared D-NeRV network fitted to the corpus; none: the
# file is the motion floor, decoded keyframes warped by coded motion (FORMAT.md section 13); auto: the
# network is fitted, then the motion floor coded at the network file's rate, and the file that decodes
# better is kept (a network that does not beat its floor at equal rate is not worth its bits).
NETWORKS = ("dnerv", "none", "auto")


@dataclass(frozen=True)
class EncodeConfig:
    """Everything ``nvcodec.encode`` decides with: the preset (network sizing and fit schedule,
    including the seed), the keyframe codec and interval, how the weights are quantized, and
    whether there is a network at all (``network``: one of NETWORKS; 'none' writes the motion floor,
    and the preset then only gives the keyframe quality; 'auto' keeps whichever of the network and
    the motion floor at its rate decodes better).

    Build one with ``build_config`` (a registered preset plus checked overrides). The preset's
    ``quant_bits`` keeps sizing the network in every variant; its ``rate_lambda`` is only the
    default of ``quantization``."""

    preset: Preset
    keyframe_codec: KeyframeCodec
    keyframe_interval: int
    quantization: Quantization
    network: str = "dnerv"

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise NvcInputError(f"EncodeConfig.network: {self.network!r} is not one of {', '.join(NETWORKS)}")
        if not isinstance(self.preset, Preset):
            raise NvcInputError(f"EncodeConfig.preset: expected a Preset, got {type(self.preset).__name__}")
        if not isinstance(self.keyframe_codec, KeyframeCodec):
            raise NvcInputError(f"EncodeConfig.keyframe_codec: expected a KeyframeCodec, "
                                f"got {type(self.keyframe_codec).__name__}")
        if type(self.keyframe_interval) is not int or not 1 <= self.keyframe_interval <= MAX_CLIP_LENGTH:
            raise NvcInputError(f"EncodeConfig.keyframe_interval: {self.keyframe_interval!r} "
                                f"outside [1, {MAX_CLIP_LENGTH}]")
        q = self.quantization
        if isinstance(q, PostTrainingQuant):
            if type(q.bits) is not int or not 2 <= q.bits <= 16:
                raise NvcInputError(f"quantization: bits {q.bits!r} outside [2, 16]")
        elif isinstance(q, (RateAwareQuant, PricedQuant)):
            lam = q.rate_lambda if isinstance(q, RateAwareQuant) else q.fallback_lambda
            if not (isinstance(lam, (int, float)) and 0 <= lam < math.inf):
                raise NvcInputError(f"quantization: rate_lambda {lam!r} is not a number >= 0")
        elif isinstance(q, ByteBudget):
            if not (isinstance(q.target_bpp, (int, float)) and 0 < q.target_bpp < math.inf):
                raise NvcInputError(f"quantization: target_bpp {q.target_bpp!r} is not a number > 0")
            if q.keyframe_quality is not None and (type(q.keyframe_quality) is not int
                                                   or not 0 <= q.keyframe_quality <= 63):
                raise NvcInputError(f"quantization: keyframe_quality {q.keyframe_quality!r} outside [0, 63]")
        else:
            raise NvcInputError(f"EncodeConfig.quantization: expected PostTrainingQuant, RateAwareQuant, PricedQuant "
                                f"or ByteBudget, got {type(q).__name__}")


def build_config(preset: str = "fast", /, *, keyframe_interval: int | None = None,
                 keyframe_codec: str | None = None, keyframe_quality: int | None = None,
                 quant_bits: int | None = None, rate_lambda: float | None = None,
                 target_bpp: float | None = None, network: str = "dnerv", **overrides) -> EncodeConfig:
    """The encode configuration: ``resolve(preset, **overrides)`` (FitConfig fields such as ``epochs``
    and ``seed``, Preset fields, ``c0``) plus the keyframe and quantization choices.

    ``quant_bits`` (plain quantization), ``rate_lambda`` (rate-aware) and ``target_bpp`` (a byte
    budget) each choose how the weights are quantized: at most one may be given (none: the preset's
    lambda as the fallback of the keyframes' measured price (``PricedQuant``), or plain ``quant_bits``
    when it has none). ``target_bpp`` chooses the
    keyframe quality itself, unless ``keyframe_quality`` pins it (the weights then take what the
    keyframes leave). ``network='none'`` (no weights) refuses the two that quantize weights; its
    ``target_bpp`` chooses the keyframe quality and the motion (``nvcodec.rate.plan_floor_target``),
    so it refuses ``keyframe_quality``. Contradictions raise NvcInputError."""
    if network == "none" and any(x is not None for x in (rate_lambda, quant_bits)):
        raise NvcInputError("--network none has no weights: --lambda and --quant-bits do not apply")
    if network == "none" and overrides.get("motion") is False:
        raise NvcInputError("--network none is keyframes + coded motion: --no-motion contradicts it")
    if network == "none" and target_bpp is not None and keyframe_quality is not None:
        raise NvcInputError("--network none: give either --target-bpp or --keyframe-quality: the rate control "
                            "chooses the quality and the motion")
    if sum(x is not None for x in (target_bpp, rate_lambda, quant_bits)) > 1:
        raise NvcInputError("give at most one of --target-bpp, --lambda and --quant-bits: each sets how the weights "
                            "are quantized")
    if quant_bits is not None:
        overrides.update(quant_bits=quant_bits, rate_lambda=None)     # the network is sized for these bits
    chosen = resolve(preset, **overrides)
    if target_bpp is not None:
        quantization: Quantization = ByteBudget(target_bpp, keyframe_quality)
    elif rate_lambda is not None:
        quantization = RateAwareQuant(rate_lambda)
    elif chosen.rate_lambda is not None:
        quantization = PricedQuant(chosen.rate_lambda)
    else:
        quantization = PostTrainingQuant(chosen.quant_bits)
    codec = KeyframeCodec(codec=keyframe_codec or DEFAULT_KEYFRAME_CODEC,
                          quality=chosen.keyframe_quality if keyframe_quality is None else keyframe_quality)
    return EncodeConfig(preset=chosen, keyframe_codec=codec,
                        keyframe_interval=keyframe_interval or DEFAULT_KEYFRAME_INTERVAL, quantization=quantization,
                        network=network)

# Rate-aware quantization's lambda (MSE per weight bpp, nvcodec.qat) for every preset but tiny, which
# keeps plain 8-bit quantization (the tests' reference): the fallback where the keyframes' price of a bit,
# at which the encoder quantizes (PricedQuant), cannot be measured. benchmarks/results/quant (fast, 4 corpus clips
# x 32 frames, one fit): 8-bit PTQ 7.99 bits/weight at 29.65 dB; lambda 1e-3 3.95 bits/weight at
# 29.81 dB; 3e-3 3.38 at 29.75 dB; 1e-2 2.48 at 29.47 dB. On the full corpus (H200, medium) 1e-2
# beat 1e-3 (benchmarks/results/native-160x128). 3e-3 is the middle of what was measured.
RATE_LAMBDA = 3e-3

# Sizes and schedules: see benchmarks/bench_fit.py for the measurements behind them.
#
#   preset  tile     C0 range  params (C0 min .. max)  fit                         keyframe q  use
#   tiny    32x32    8         50,959                  10 epochs, lr 5e-3          32          tests (seconds)
#   fast    64x64    0         7,832 + latents         60 epochs <= 7500 steps,    24          README demo, CPU; coded motion,
#                                                       lr 2e-3, MSE                            the refiner alone (16 x 4, no
#                                                                                              trunk) with per-frame latents;
#                                                                                              the floor alone below 6.3 M
#                                                                                              pixels
#   small   64x80    16..64    337,787 .. 2,385,851    300 epochs <= 2000 steps    36          low rate point, CPU
#   medium  128x160  32..213   1.65 M .. 23.99 M       400 epochs, lr 1e-3         32          GPU
#   large   256x320  64..361   3.93 M .. 61.30 M       800 epochs, lr 5e-4 (paper) 28          GPU, paper sizes
#
# fast's keyframe quality: with each video's motion chosen at the keyframes' price (nvcodec.rate.allocate_motion)
# the demo's floor was 35.27 dB at 0.1319 bpp at quality 24 and 35.88 dB at 0.1484 bpp at 20 (34.91 dB at 0.1140
# at 28), before the motion was refined (now 35.82 dB at 0.1324 bpp at 24: benchmarks/results/demo); 24 keeps the
# demo at or under half its rate before coded motion (0.2745 bpp) with its quality (35.1 dB).
#
# fast's network: the refiner (ModelConfig.refine_width, 16 wide, 4 layers) alone, without a D-NeRV trunk (C0 0,
# FORMAT.md 14.4), 7 256 weights, fitted on MSE (the codec is judged on PSNR). On 21 corpus clips x 32 frames at
# 160x128 (13.5 M pixels, keyframe quality 40, 7500 steps): 30.21 dB at 0.0715 bpp, where its motion floor (the
# same keyframes and motion) gives 29.91 dB: +0.21 dB over the floor at equal rate (benchmarks/results/refine,
# "The refiner without a trunk"). The same refiner on a 4-wide trunk (fast's network before, 11 918 weights)
# landed +0.20 dB (30.34 dB at 0.0752 bpp): the trunk's 5.7 kB buy what they cost, and a fit step without it
# takes half the time. A 16-wide half-resolution branch (ModelConfig.refine_coarse, 11 704 weights) gained
# +0.01 dB for 1.3 kB on these 64x64 tiles; 128x160 tiles (the whole frame here) +0.04 dB, both at equal rate
# within 0.05 dB of this. On the 64-frame table (benchmarks/results/native-160x128-64f) it landed +0.16 dB (q47) and
# +0.24 dB (q40) over the floor at equal rate (+0.26 and +0.35 dB with the motion refinement below); 15 000 steps
# gave +0.29 dB at q40 for twice the fit time (with the trunk, 15 000 steps gave +0.08 dB over 7500 and a 24-wide
# refiner +0.02 dB), so fast keeps 7500. weight_bpp 0.01 at 8 bits affords the network from 6.3 M pixels; below
# that it cannot repay its bytes and fast writes the floor.
# After the fit, 30 gradient steps a clip move the coded motion where the network, not the floor, gains more than
# the bits cost (motion_iters, nvcodec.motion_fit); the rate-aware fine-tune then fits the network to the moved
# fields. On the 32-frame clips above: 67 of 83 clips moved, the network's in-between frames +0.19 dB for 996
# motion bytes, the file 30.32 dB at 0.0716 bpp against 30.21 dB at 0.0715 without: +0.30 dB over the floor at
# equal rate (from +0.21; benchmarks/results/refine), where twice the fit's steps bought +0.05 dB (64-frame clips).
# Per-frame latents (latent_channels 4 on 16-pixel cells, ModelConfig.latent_channels): 4 x 4 x 4 coded integers per
# frame of each 64x64 tile, fitted with the refiner at the keyframes' price of a bit, tell it what no shared weights
# can know. On the 64-frame table they took the network from +0.26 to +0.32 dB over the floor at equal rate at
# keyframe quality 47 and from +0.35 to +0.55 dB at 40 (BD-PSNR over the floor points +0.28 -> +0.39 dB), for
# 10-13 % of the file; a fit step costs about a tenth more (benchmarks/results/native-160x128-64f). --target-bpp
# leaves them out (the rate plan does not price them yet).
register(Preset(
    name="tiny", tile=(32, 32), c0_min=8, c0_max=8, weight_bpp=1.0,
    fit=FitConfig(epochs=10, batch_size=4, lr=5e-3, checkpoint_every=0),
    keyframe_quality=32, quant_bits=8, enc_width=8, embed_levels=8, mlp_width=32, min_width=8))
register(Preset(
    name="fast", tile=(64, 64), c0_min=0, c0_max=0, weight_bpp=0.01,
    fit=FitConfig(epochs=60, max_steps=7500, batch_size=4, lr=2e-3, l1_weight=0.0, mse_weight=1.0, ssim_weight=0.0,
                  checkpoint_every=500),
    keyframe_quality=24, quant_bits=8, rate_lambda=RATE_LAMBDA, enc_width=4, embed_levels=4, mlp_width=8, min_width=4,
    motion=True, refine_width=16, refine_layers=4, motion_iters=30, latent_channels=4, latent_cell=16))
register(Preset(
    name="small", tile=(64, 80), c0_min=16, c0_max=64, weight_bpp=0.02,
    fit=FitConfig(epochs=300, max_steps=2000, batch_size=8, lr=2e-3, checkpoint_every=500),
    keyframe_quality=36, quant_bits=8, rate_lambda=RATE_LAMBDA, enc_width=32, embed_levels=32, mlp_width=128, min_width=16))
register(Preset(
    name="medium", tile=(128, 160), c0_min=32, c0_max=213, weight_bpp=0.05,
    fit=FitConfig(epochs=400, batch_size=8, lr=1e-3, checkpoint_every=500),
    keyframe_quality=32, quant_bits=8, rate_lambda=RATE_LAMBDA, enc_width=64, embed_levels=120, mlp_width=512, min_width=32))
register(Preset(
    name="large", tile=(256, 320), c0_min=64, c0_max=361, weight_bpp=0.1,
    fit=FitConfig(epochs=800, batch_size=8, lr=5e-4, checkpoint_every=500),
    keyframe_quality=28, quant_bits=8, rate_lambda=RATE_LAMBDA, enc_width=64, embed_levels=240, mlp_width=512, min_width=32))
