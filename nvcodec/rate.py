"""Rate control: split the bits between keyframes, motion and weights at one price of a bit.

Every bit of an .nvc is keyframes, coded motion (a network that consumes it), weights or a
little container overhead (DESIGN.md, "The economics of a shared model"). At the best split a
byte moved from one part to another (or back) buys the same squared error, so each part is
spent up to one price: the keyframes' measured slope.

- **The price** (``keyframe_slope``, ``keyframe_price``): the keyframes are coded once more
  ``SLOPE_PROBE_STEP`` quality steps coarser; the squared error of the motion floor this costs
  (the keyframes' own and, through warping, the frames between them), per bit saved, is the
  price of a bit at that quality.
- **Motion** (``allocate_motion``): each video's grid and step are chosen at that price
  (``nvcodec.motion.choose_motion``), and the vectors refined at it.
- **Weights**: rate-aware quantization (``nvcodec.qat``) at the same price, converted to its
  units by ``weight_lambda``; every rate-aware preset quantizes at it (``PricedQuant``).
- **A byte budget** (``--target-bpp``): ``plan_floor_target`` (no network) takes the finest
  keyframe quality whose keyframes and motion, chosen at its price, fit; ``plan_target`` (a
  network) the finest whose keyframes and weights at its price fit (``balance_keyframes``), the
  weights' bytes read off a short pilot fit's RD tables. Whether a network should have any bytes
  at all is not a question of prices but of whole files: ``--network auto`` (``nvcodec.encoder``).

The keyframe side is exact (measured bytes); the weight side is an estimate, so the reached
rate lands at or somewhat below the target. The encoder reports the rate of the written file,
never this plan's estimate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nvcodec.bitstream import motion_chunk_n_bytes
from nvcodec.bitstream.positions import KeyframeLayout
from nvcodec.config import ModelConfig
from nvcodec.corpus import build_clipset, keyframe_positions
from nvcodec.errors import NvcInputError
from nvcodec.keyframes import CODECS, KeyframeCodec, encode_keyframes
from nvcodec.motion import (MOTION_CANDIDATES, MotionConfig, choose_motion, clips_floor_sse, estimate_clips,
                            sample_clips, warped_video)
from nvcodec.presets import Preset

# The pilot fit's share of the steps, and the bits per weight rate-aware quantization costs, which
# sizes the network: benchmarks/results/quant/results.md measured 3.95 / 3.38 / 2.48 bits per weight
# at lambda 1e-3 / 3e-3 / 1e-2 (fast, one fit); 3.0 lies between the presets' lambda (3e-3) and the
# coarsest measured.
PILOT_FRACTION = 0.2
MOTION_ROUNDS = 3          # --target-bpp: the most motion allocations after the first (plan_target, step 4)
RATE_AWARE_BITS_PER_WEIGHT = 3.0
OVERHEAD_BYTES = 2048      # metadata + chunk framing of a small corpus, a generous bound (see `nvcodec info`)


# The keyframes' slope is measured between the codec's quality and this many quality steps coarser
# (finer where the scale ends): SVT-AV1 crf 40 -> 44 on the 32-frame corpus is about 12 % fewer bytes.
SLOPE_PROBE_STEP = 4


def probe_quality(codec: KeyframeCodec) -> int | None:
    """The quality the keyframes' slope is measured against: SLOPE_PROBE_STEP coarser, else finer, else None."""
    top = CODECS[codec.codec].max_quality
    if codec.quality + SLOPE_PROBE_STEP <= top:
        return codec.quality + SLOPE_PROBE_STEP
    if codec.quality - SLOPE_PROBE_STEP >= codec.min_quality:
        return codec.quality - SLOPE_PROBE_STEP
    return None


def finest_quality(n_bytes_at: Callable[[int], int], best: int, worst: int, n_bytes: float) -> int:
    """The finest quality in best..worst (lower is finer) whose keyframes take at most ``n_bytes``
    (``n_bytes_at(q)``, falling as q rises), by bisection; ``worst`` when none does."""
    lo, hi = best, worst
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if n_bytes_at(mid) <= n_bytes else (mid + 1, hi)
    return lo


@dataclass(frozen=True)
class SlopeProbe:
    """One video's keyframes at two qualities: what the motion floor's squared error (8-bit RGB, summed
    over the video) and the keyframe bits change by, from the codec's quality to the probe's."""

    sse_delta: float
    bits_delta: int


def keyframe_slope(frames, interval: int, keyframes, dec_kf: np.ndarray, probe_kf: np.ndarray,
                   kf_bytes: int, probe_bytes: int, config: MotionConfig) -> tuple[SlopeProbe, dict[int, np.ndarray]]:
    """How much the motion floor of one video loses per keyframe bit saved: its keyframes decoded at the
    codec's quality (``dec_kf``, ``kf_bytes``) and at the probe's (``probe_kf``, ``probe_bytes``).

    The keyframes' own error is counted exactly; the in-between frames' on ``sample_clips`` of the
    clips, with ``config``'s motion estimated against ``dec_kf`` for both, scaled to all the video's
    in-between frames.  Returns the probe and those estimates ({clip: fields}), which
    ``choose_motion`` reuses."""
    n_frames = len(frames)
    layout = KeyframeLayout(n_frames, interval, keyframes)
    counts = layout.inbetween_counts()
    sample = sample_clips(counts)
    clips = estimate_clips(frames, dec_kf, interval, config, keyframes, sample)
    sampled = sum(counts[c] for c in sample)
    scale = sum(counts) / sampled if sampled else 0.0
    inbetween = (clips_floor_sse(frames, probe_kf, interval, config, clips, keyframes)
                 - clips_floor_sse(frames, dec_kf, interval, config, clips, keyframes))
    originals = np.stack([frames[int(i)] for i in layout.keyframe_frames()]).astype(np.int64)
    own = int(np.sum((probe_kf.astype(np.int64) - originals) ** 2) - np.sum((dec_kf.astype(np.int64) - originals) ** 2))
    return SlopeProbe(sse_delta=own + scale * inbetween, bits_delta=8 * (kf_bytes - probe_bytes)), clips


def keyframe_lambda(probes: Sequence[SlopeProbe]) -> float:
    """The price of a bit, squared error per bit: the corpus's keyframes' slope (one quality for all
    videos, so their probes pool). 0 when the probe saved no bits or lost nothing (then motion is
    chosen for quality alone)."""
    sse = sum(p.sse_delta for p in probes)
    bits = sum(p.bits_delta for p in probes)
    if bits < 0:                      # the probe was finer: both deltas negative
        sse, bits = -sse, -bits
    return max(sse, 0.0) / bits if bits > 0 else 0.0


def keyframe_price(videos: Sequence[tuple[Callable[[], np.ndarray], np.ndarray | None]], interval: int,
                   coded: Callable[[int], tuple[int, np.ndarray, int, np.ndarray]],
                   config: MotionConfig = MOTION_CANDIDATES[0]) -> tuple[float, list[dict[int, np.ndarray]]]:
    """The price of a bit at the keyframes' quality (``keyframe_lambda`` over every video's
    ``keyframe_slope``), and per video the ``config`` motion of its sampled clips that measured it.

    ``videos``: as ``allocate_motion``'s; ``coded(v)``: video v's keyframes as (bytes, decoded) at
    the quality and then at the probe's. One video's frames and keyframes are in memory at a time."""
    probes, known = [], []
    for v, (read, keyframes) in enumerate(videos):
        kf_bytes, kf, probe_bytes, probe_kf = coded(v)
        slope, clips = keyframe_slope(read(), interval, keyframes, np.asarray(kf), probe_kf, kf_bytes, probe_bytes,
                                      config)
        probes.append(slope)
        known.append(clips)
    return keyframe_lambda(probes), known


def weight_lambda(price: float, inbetween_fraction: float) -> float:
    """Rate-aware quantization's lambda (``nvcodec.qat``: MSE of RGB in [0, 1] per weight bpp, the MSE
    over the frames the weights predict) for a price of ``price`` squared error (8-bit RGB, summed
    over the corpus) per bit. ``inbetween_fraction``: those frames' share of the corpus's pixels.

    A bpp is n_pixels bits and an MSE step is 3 x 255^2 x (the predicted pixels) of squared error,
    so lambda = price / (3 x 255^2 x inbetween_fraction): weights quantized at it spend a byte
    where it buys what a keyframe byte buys."""
    if not price >= 0 or not 0 < inbetween_fraction <= 1:
        raise ValueError(f"weight_lambda: price {price} and fraction {inbetween_fraction} out of range")
    return price / (3 * 255.0 ** 2 * inbetween_fraction)


@dataclass(frozen=True)
class MotionAllocation:
    """Each video's coded motion, chosen at the price of a keyframe bit (``allocate_motion``)."""

    motion: list            # one nvcodec.bitstream.VideoMotion per video
    lam: float              # the price: squared error (8-bit RGB) per bit
    probe_quality: int
    chosen: list            # per video its MotionConfig


def allocate_motion(videos: Sequence[tuple[Callable[[], np.ndarray], np.ndarray | None]], interval: int,
                    decoded_kf: Sequence[np.ndarray], kf_bytes: Sequence[int],
                    probe: Callable[[int], tuple[int, np.ndarray]], probe_q: int,
                    candidates: Sequence[MotionConfig] = MOTION_CANDIDATES) -> MotionAllocation:
    """Each video's motion among ``candidates`` at the measured price of a keyframe bit.

    ``videos``: per video (a function that reads its frames as coded, its keyframe frames or None);
    ``decoded_kf``/``kf_bytes``: its keyframes at the codec's quality, decoded, and their bytes;
    ``probe(v)``: (bytes, decoded keyframes) of video v coded at ``probe_q``. One video's frames are
    in memory at a time (read twice: the price pools over the corpus before any choice)."""
    default = candidates[0]
    lam, known = keyframe_price(videos, interval, lambda v: (kf_bytes[v], decoded_kf[v], *probe(v)), default)
    motion, chosen = [], []
    for (read, keyframes), kf, clips in zip(videos, decoded_kf, known):
        m, best, _ = choose_motion(read(), np.asarray(kf), interval, candidates, lam, keyframes,
                                   known={default: clips})
        motion.append(m)
        chosen.append(best.config)
    return MotionAllocation(motion, lam, probe_q, chosen)


def plan_floor_target(target_bpp: float, n_pixels: int, kf_codec: KeyframeCodec,
                      keyframe_bytes: Callable[[KeyframeCodec], int],
                      allocate: Callable[[KeyframeCodec], tuple[MotionAllocation, int]],
                      say: Callable[[str], None]) -> tuple[KeyframeCodec, MotionAllocation]:
    """The keyframe quality and motion of a motion floor (no network) within ``target_bpp``.

    ``keyframe_bytes(codec)``: the corpus's keyframe bytes at that codec (real encodes);
    ``allocate(codec)``: (``allocate_motion`` at that codec's keyframes, the motion's chunk bytes).
    The finest quality whose keyframes fit the whole budget bounds the search; the motion chosen
    there, at the cheapest price of a bit any fitting quality can have, is the most motion any
    fitting quality chooses, so the quality found with its bytes reserved fits with its own
    motion, which is chosen last (one quality coarser while it does not: the price rises, the
    motion shrinks). Two or three allocations, O(log range) keyframe encodes."""
    budget = target_bpp * n_pixels / 8 - OVERHEAD_BYTES
    top = CODECS[kf_codec.codec].max_quality
    cache: dict[int, int] = {}

    def kf(q: int) -> int:
        if q not in cache:
            cache[q] = keyframe_bytes(replace(kf_codec, quality=q))
        return cache[q]

    def finest_within(n_bytes: float) -> int | None:
        return None if kf(top) > n_bytes else finest_quality(kf, kf_codec.min_quality, top, n_bytes)

    def too_low(extra: str) -> NvcInputError:
        return NvcInputError(f"target {target_bpp} bpp is too low for this corpus: the keyframes alone cost "
                             f"{8 * (kf(top) + OVERHEAD_BYTES) / n_pixels:.4f} bpp at the lowest quality ({top}){extra}")

    q = finest_within(budget)
    if q is None:
        raise too_low("")
    _, reserve = allocate(replace(kf_codec, quality=q))
    q = finest_within(budget - reserve)
    if q is None:
        raise too_low(" with the coded motion")
    while True:
        codec = replace(kf_codec, quality=q)
        alloc, motion_bytes = allocate(codec)
        if kf(q) + motion_bytes <= budget:
            break
        if q == top:
            raise too_low(" with the coded motion")
        q += 1
    say(f"rate plan for {target_bpp:.4g} bpp, no network: keyframe quality {q} ({8 * kf(q) / n_pixels:.4f} bpp), "
        f"motion {8 * motion_bytes / n_pixels:.4f} bpp")
    return codec, alloc


@dataclass(frozen=True)
class RatePlan:
    keyframe_quality: int
    keyframe_bytes: int
    weight_bpp: float           # bits per corpus pixel left for the weights


def plan_rate(target_bpp: float, n_pixels: int, keyframe_bytes: Callable[[int], int],
              quality_range: tuple[int, int], keyframe_share: float = 0.5, reserved_bytes: int = 0) -> RatePlan:
    """Choose the keyframe quality and the weight rate for ``target_bpp``.

    ``keyframe_bytes(q)`` codes every keyframe of the corpus at quality ``q``
    (lower is better) and returns the bytes; it is called O(log range) times.
    ``reserved_bytes`` (the coded motion) come off the budget before it is shared.
    """
    if not target_bpp > 0:
        raise ValueError(f"target bpp must be positive, got {target_bpp}")
    if not 0 < keyframe_share < 1:
        raise ValueError(f"keyframe_share must lie in (0, 1), got {keyframe_share}")
    budget_bits = target_bpp * n_pixels - 8 * (OVERHEAD_BYTES + reserved_bytes)
    best, worst = quality_range
    cache: dict[int, int] = {}

    def cost(q: int) -> int:
        if q not in cache:
            cache[q] = keyframe_bytes(q)
        return cache[q]

    if 8 * cost(worst) > budget_bits:
        raise ValueError(f"target {target_bpp} bpp is too low for this corpus: the keyframes alone "
                         f"cost {8 * (cost(worst) + OVERHEAD_BYTES + reserved_bytes) / n_pixels:.4f} bpp at the "
                         f"lowest quality ({worst})" + (" with the coded motion" if reserved_bytes else ""))
    lo = finest_quality(cost, best, worst, keyframe_share * budget_bits / 8)
    weight_bits = budget_bits - 8 * cost(lo)
    return RatePlan(keyframe_quality=lo, keyframe_bytes=cost(lo), weight_bpp=weight_bits / n_pixels)


@dataclass(frozen=True)
class TargetPlan:
    """What ``plan_target`` chose: the keyframe codec (its quality set), the network, the bytes the
    keyframes leave of the budget (``left_bytes``: for the coded motion and the weights), and the last
    motion it allocated (None without coded motion) with the keyframe quality it was allocated at. The
    encoder writes its own final motion and gives the weights the rest: ``left_bytes`` - that motion's
    bytes (rate-aware quantization lands on them)."""

    keyframe_codec: KeyframeCodec
    model_config: ModelConfig
    left_bytes: float
    motion: MotionAllocation | None = None
    motion_quality: int | None = None


def keyframe_bytes(frames: Sequence[np.ndarray], interval: int, codec: KeyframeCodec, keyframes=None) -> int:
    """Bytes of every video's keyframes coded with ``codec`` (the rate plan's measurement);
    ``keyframes``: per video their frames (None: the regular ones)."""
    positions = keyframes or [keyframe_positions(len(video), interval) for video in frames]
    return sum(len(data) for video, pos in zip(frames, positions)
               for _, _, data in encode_keyframes(video[pos], codec))


def plan_target(frames: Sequence[np.ndarray], interval: int, kf_codec: KeyframeCodec, preset: Preset,
                target_bpp: float, n_pixels: int, *, decode_keyframes: Callable[[KeyframeCodec], list[np.ndarray]],
                price: Callable[[KeyframeCodec], tuple[float, int]], device: str, workdir: Path, ctx,
                say: Callable[[str], None], keyframes: Sequence[np.ndarray] | None = None,
                allocate: Callable[[KeyframeCodec], tuple[MotionAllocation, int]] | None = None,
                hold_warped: Callable[[int, np.ndarray], object] = lambda _v, warped: warped,
                keyframe_quality: int | None = None) -> TargetPlan:
    """Keyframe quality, network and weight budget for ``target_bpp``, the keyframes and the weights
    balanced at one price of a bit.

    ``frames``: each video's frames as coded; ``decode_keyframes(codec)``: each video's keyframes
    coded with ``codec`` and decoded back, as the encoder will (at the frames ``keyframes``, per
    video; None: the regular ones); ``price(codec)``: the keyframes' price of a bit at that codec
    (``keyframe_price``: squared error per bit saved) and their bytes, which it measures on the way.

    1. For a network that consumes coded motion, its bytes come off the budget first: ``allocate(codec)``
       is (``allocate_motion`` at that codec's keyframes, the motion's chunk bytes), the motion the
       encoder writes, each video's grid and step chosen at the keyframes' price of a bit; allocated
       first at the quality that leaves the keyframes half the budget (``plan_rate``), or at the pinned
       ``keyframe_quality`` (then that is all).
    2. A pilot network, sized for what half the budget in keyframes leaves (``plan_rate``), is fitted
       for ``PILOT_FRACTION`` of the steps on those keyframes (and that motion, its warped keyframes
       passed through ``hold_warped(video, array)``: the encoder's frame store); its RD tables give the
       weights' bytes at any lambda (``nvcodec.qat.weight_bytes_curve``).
    3. The keyframe quality is the finest q whose keyframes plus the weights quantized at q's price
       (``weight_lambda``) fit the budget: the finer the keyframes, the more they cost and the cheaper
       their error per bit, so the weights want more bytes too, and the sum falls as q coarsens
       (bisection, O(log range) prices; the next finer q where the balance lies nearer it:
       ``balance_keyframes``). There a byte moved between keyframes and weights buys the same squared
       error, to within one quality step. The weights get everything else, which the rate-aware
       quantizer then spends.
    4. The motion's price moves with the keyframe quality (a coarser q makes a bit dearer, and each
       video takes less motion), so it is allocated again at the q chosen and q balanced again with
       those bytes, until q repeats (at most ``MOTION_ROUNDS`` allocations). The encoder refines that
       motion through the network and gives the weights what it leaves (``TargetPlan``).
    ``keyframe_quality`` pins q instead (steps 2-3 skipped: the weights take what the keyframes leave).

    The weights' curve is the pilot's, a short fit of a network sized for a first guess at the
    split: the real network's weights are worth somewhat more per byte, so the plan errs towards
    keyframes. The choice is kept in the work folder, so --resume does not run the pilot again.
    """
    import torch

    from nvcodec import distributed
    from nvcodec.fit import fit, total_steps_of
    from nvcodec.qat import weight_bytes_curve

    if not target_bpp > 0:
        raise ValueError(f"target bpp must be positive, got {target_bpp}")
    best_q, worst_q = kf_codec.min_quality, CODECS[kf_codec.codec].max_quality
    if keyframe_quality is not None and not best_q <= keyframe_quality <= worst_q:
        raise NvcInputError(f"keyframe quality {keyframe_quality} outside {kf_codec.codec}'s {best_q}..{worst_q}")
    cache: dict[int, int] = {}

    def kf(q: int) -> int:
        if q not in cache:
            cache[q] = keyframe_bytes(frames, interval, replace(kf_codec, quality=q), keyframes)
        return cache[q]

    top = worst_q if keyframe_quality is None else keyframe_quality
    budget = target_bpp * n_pixels / 8 - OVERHEAD_BYTES

    def check(motion_bytes: int) -> None:
        if kf(top) >= budget - motion_bytes:
            raise NvcInputError(f"target {target_bpp} bpp is too low for this corpus: the keyframes alone cost "
                                f"{8 * (kf(top) + OVERHEAD_BYTES + motion_bytes) / n_pixels:.4f} bpp at quality "
                                f"{top}" + (" with the coded motion" if motion_bytes else "") + ", leaving no weights")

    check(0)
    motion, motion_quality, motion_bytes = None, None, 0
    if allocate is not None:     # first at the quality that leaves half the budget to the keyframes
        motion_quality = keyframe_quality if keyframe_quality is not None else plan_rate(
            target_bpp, n_pixels, kf, (best_q, worst_q), keyframe_share=0.5).keyframe_quality
        motion, motion_bytes = allocate(replace(kf_codec, quality=motion_quality))
        say(f"  coded motion at keyframe quality {motion_quality}: {motion_bytes} bytes "
            f"({8 * motion_bytes / n_pixels:.4f} bpp) off the budget")
        check(motion_bytes)
        budget -= motion_bytes

    def network_for(q: int) -> ModelConfig:
        # sized for what rate-aware quantization costs per weight, not for plain quant_bits; it may go
        # below the preset's smallest C0 (down to 1, or 0 for a preset without a trunk) when the budget asks for it
        weight_bpp = min(max(8 * (budget - kf(q)) / n_pixels, 1e-6) * preset.quant_bits
                         / RATE_AWARE_BITS_PER_WEIGHT, 64.0)
        return preset.model_config(n_pixels, interval, weight_bpp=weight_bpp, c0_min=min(preset.c0_min, 1))

    choice_path = workdir / "rate_choice.json"
    main = ctx.is_main

    def from_rank0(value: int) -> int:          # every rank must take the same path (the pilot is collective)
        return int(distributed.all_reduce_sum([float(value if main else 0)], ctx, torch.device(device))[0])

    q = keyframe_quality
    if q is None:
        q = from_rank0(json.loads(choice_path.read_text())["keyframe_quality"] if main and choice_path.exists()
                       else -1)
    if q < 0:
        first = plan_rate(target_bpp, n_pixels, lambda q_: kf(q_), (best_q, worst_q), keyframe_share=0.5,
                          reserved_bytes=motion_bytes).keyframe_quality
        pilot_cfg = network_for(first)
        decoded_kf = decode_keyframes(replace(kf_codec, quality=first))
        warped = None
        if motion is not None:          # the reserved motion, on the pilot's keyframes: a pilot's inputs
            warped = [hold_warped(v, warped_video(np.asarray(k), m, len(video), interval,
                                                  None if keyframes is None else keyframes[v]))
                      for v, (video, k, m) in enumerate(zip(frames, decoded_kf, motion.motion))]
        clips = build_clipset([(video, k, len(video)) for video, k in zip(frames, decoded_kf)],
                              interval, pilot_cfg.tile_h, pilot_cfg.tile_w, warped=warped, positions=keyframes)
        steps = max(1, round(PILOT_FRACTION * total_steps_of(preset.fit, clips.n_clips)))
        result = fit(pilot_cfg, replace(preset.fit, max_steps=steps), clips, device=device, progress=False)
        q = 0
        if main:
            weight_bytes = weight_bytes_curve(pilot_cfg, result.state_dict, clips, n_pixels=n_pixels, device=device)
            fraction = inbetween_fraction(frames, interval, keyframes)
            say(f"  pilot: C0={pilot_cfg.c0}, {steps} steps on keyframes at quality {first}")

            def priced(q_: int) -> float:
                lam, cache[q_] = price(replace(kf_codec, quality=q_))
                return lam

            said: set[str] = set()

            def say_once(msg: str) -> None:      # a motion round balances again over qualities already said
                if msg not in said:
                    said.add(msg)
                    say(msg)

            q = balance_keyframes(kf, priced, weight_bytes, fraction, (best_q, worst_q), budget, n_pixels, say_once)
            for _ in range(MOTION_ROUNDS if motion is not None else 0):
                if q == motion_quality:
                    break
                motion, n_bytes = allocate(replace(kf_codec, quality=q))
                motion_quality = q
                say(f"  coded motion at keyframe quality {q}: {n_bytes} bytes ({8 * n_bytes / n_pixels:.4f} bpp)")
                q = balance_keyframes(kf, priced, weight_bytes, fraction, (best_q, worst_q),
                                      budget + motion_bytes - n_bytes, n_pixels, say_once)
            tmp = choice_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"keyframe_quality": q, "pilot_keyframe_quality": first}))
            os.replace(tmp, choice_path)
        q = from_rank0(q)                        # rank 0 decides
    model_cfg = network_for(q)            # sized with the first reservation, the same on every rank
    left = budget + motion_bytes - kf(q)
    say(f"rate plan for {target_bpp:.4g} bpp: keyframe quality {q} ({8 * kf(q) / n_pixels:.4f} bpp), "
        + (f"motion and weights {8 * left / n_pixels:.4f} bpp" if motion is not None else
           f"weights {8 * left / n_pixels:.4f} bpp") + f" (C0={model_cfg.c0})")
    return TargetPlan(replace(kf_codec, quality=q), model_cfg, left, motion, motion_quality)


def balance_keyframes(kf_bytes: Callable[[int], int], price: Callable[[int], float],
                      weight_bytes: Callable[[float], float], fraction: float, quality_range: tuple[int, int],
                      budget: float, n_pixels: int, say: Callable[[str], None] = lambda _msg: None) -> int:
    """The finest keyframe quality q in ``quality_range`` (lower is finer) whose keyframes
    (``kf_bytes(q)``) and weights at q's price (``weight_bytes(weight_lambda(price(q), fraction))``, the
    weights' bytes at a rate-aware lambda) fit ``budget`` bytes: the balance point of ``plan_target``;
    or the next finer one, whose keyframes still fit, when its sum overshoots the budget by less than
    q's falls short (the balance lies nearer it: its weights get somewhat less than their price asks).
    The coarsest quality when none fits (the weights then get what is left)."""
    totals: dict[int, float] = {}

    def total(q: int) -> float:
        if q not in totals:
            lam = price(q)
            w = weight_bytes(weight_lambda(lam, fraction))
            say(f"  keyframe quality {q}: {8 * kf_bytes(q) / n_pixels:.4f} bpp, a bit costs {lam:.1f} of squared "
                f"error; weights at that price {8 * w / n_pixels:.4f} bpp")
            totals[q] = kf_bytes(q) + w
        return totals[q]

    best, worst = quality_range
    q = finest_quality(total, best, worst, budget)
    if q > best and total(q) <= budget and kf_bytes(q - 1) < budget and total(q - 1) - budget < budget - total(q):
        return q - 1
    return q


def inbetween_fraction(frames: Sequence[np.ndarray], interval: int, keyframes=None) -> float:
    """The share of the corpus's pixels in frames that are not keyframes (what a network predicts);
    1 when every frame is a keyframe (then nothing is predicted, and any price will do)."""
    positions = keyframes or [keyframe_positions(len(video), interval) for video in frames]
    total = sum(len(video) * int(np.prod(video.shape[1:3])) for video in frames)
    between = sum((len(video) - len(pos)) * int(np.prod(video.shape[1:3])) for video, pos in zip(frames, positions))
    return between / total if between else 1.0
