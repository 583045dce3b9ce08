"""Rate control for ``--target-bpp`` (``ByteBudget``): split the bits between keyframes, motion and weights.

Every bit of an .nvc is keyframes, coded motion (a network that consumes it), weights or a
little container overhead (DESIGN.md, "The economics of a shared model"). Given a target rate,
the plan first takes the motion's measured bytes off the budget, then:

1. gives the keyframes ``keyframe_share`` of the budget and searches the
   keyframe codec's quality scale (bisection; real encodes, real byte counts)
   for the best quality that fits in it;
2. gives the weights what is left, as a weight rate (bits per corpus pixel)
   from which the preset sizes the network (``Preset.model_config``).

``plan_target`` runs the plan for several keyframe shares, gives each distinct candidate
a short pilot fit and keeps the one whose quantized network decodes best.

The split between keyframes and motion follows the parts' measured slopes instead
(``keyframe_slope``, ``SlopeProbe``): the keyframes are coded once more a few quality steps
coarser, the squared error of the motion floor that this costs, per bit saved, is the price
of a bit, and each video's motion is chosen at that price (``nvcodec.motion.choose_motion``).
At the optimum a byte moved between the keyframes and the motion buys the same squared error.

The keyframe side is exact (measured bytes); the weight side is an estimate
(quantization bits per parameter, before entropy coding, which only makes the
file smaller), so the reached rate lands at or somewhat below the target. The
encoder reports the rate of the written file, never this plan's estimate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nvcodec.bitstream import motion_chunk_n_bytes, tensor_chunk_n_bytes
from nvcodec.bitstream.positions import KeyframeLayout
from nvcodec.config import ModelConfig
from nvcodec.corpus import build_clipset, keyframe_positions
from nvcodec.errors import NvcInputError
from nvcodec.keyframes import CODECS, KeyframeCodec, encode_keyframes
from nvcodec.motion import (MOTION_CANDIDATES, MotionConfig, choose_motion, clips_floor_sse, estimate_clips,
                            sample_clips, warped_video)
from nvcodec.presets import Preset

# Keyframe shares of the budget tried, the pilot fit's share of the steps, and the bits per weight
# rate-aware quantization costs, which sizes the network: benchmarks/results/quant/results.md
# measured 3.95 / 3.38 / 2.48 bits per weight at lambda 1e-3 / 3e-3 / 1e-2 (fast, one fit); 3.0 lies
# between the presets' lambda (3e-3) and the coarsest measured.
KEYFRAME_SHARES = (0.35, 0.5, 0.65)
PILOT_FRACTION = 0.2
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
    sample = sample_clips(len(counts))
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
    probes, known = [], []
    for v, ((read, keyframes), kf) in enumerate(zip(videos, decoded_kf)):
        n_bytes, probe_kf = probe(v)
        slope, clips = keyframe_slope(read(), interval, keyframes, np.asarray(kf), probe_kf, kf_bytes[v], n_bytes,
                                      default)
        probes.append(slope)
        known.append(clips)
    lam = keyframe_lambda(probes)
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
    say(f"rate plan for {target_bpp} bpp, no network: keyframe quality {q} ({8 * kf(q) / n_pixels:.4f} bpp), "
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
    """What ``plan_target`` chose: the keyframe codec (its quality set), the network, and the
    bytes the weights may take (rate-aware quantization lands on them)."""

    keyframe_codec: KeyframeCodec
    model_config: ModelConfig
    weight_budget_bytes: float


def keyframe_bytes(frames: Sequence[np.ndarray], interval: int, codec: KeyframeCodec, keyframes=None) -> int:
    """Bytes of every video's keyframes coded with ``codec`` (the rate plan's measurement);
    ``keyframes``: per video their frames (None: the regular ones)."""
    positions = keyframes or [keyframe_positions(len(video), interval) for video in frames]
    return sum(len(data) for video, pos in zip(frames, positions)
               for _, _, data in encode_keyframes(video[pos], codec))


def _candidates(frames, interval, kf_codec, preset, target_bpp, n_pixels, keyframes=None, motion_bytes: int = 0):
    """(RatePlan, network, weight bytes) per distinct outcome of ``plan_rate`` over KEYFRAME_SHARES."""
    kf_cache: dict[int, int] = {}

    def kf_bytes(q: int) -> int:
        if q not in kf_cache:
            kf_cache[q] = keyframe_bytes(frames, interval, replace(kf_codec, quality=q), keyframes)
        return kf_cache[q]

    candidates, seen = [], set()
    for share in KEYFRAME_SHARES:
        plan = plan_rate(target_bpp, n_pixels, kf_bytes, (kf_codec.min_quality, CODECS[kf_codec.codec].max_quality),
                         keyframe_share=share, reserved_bytes=motion_bytes)
        # the network is sized for what rate-aware quantization costs per weight, not for plain quant_bits,
        # and may go below the preset's smallest C0 when the budget asks for it
        weight_bpp = min(max(plan.weight_bpp, 1e-6) * preset.quant_bits / RATE_AWARE_BITS_PER_WEIGHT, 64.0)
        model_cfg = preset.model_config(n_pixels, interval, weight_bpp=weight_bpp, c0_min=1)
        key = (plan.keyframe_quality, model_cfg.c0)
        if key not in seen:
            seen.add(key)
            candidates.append((plan, model_cfg,
                               target_bpp * n_pixels / 8 - plan.keyframe_bytes - motion_bytes - OVERHEAD_BYTES))
    return candidates


def plan_target(frames: Sequence[np.ndarray], interval: int, kf_codec: KeyframeCodec, preset: Preset,
                target_bpp: float, n_pixels: int, *, decode_keyframes: Callable[[KeyframeCodec], list[np.ndarray]],
                device: str, workdir: Path, ctx, say: Callable[[str], None],
                keyframes: Sequence[np.ndarray] | None = None,
                estimate_motion: Callable[[list[np.ndarray]], list] | None = None,
                hold_warped: Callable[[int, np.ndarray], object] = lambda _v, warped: warped) -> TargetPlan:
    """Keyframe quality, network and weight budget for ``target_bpp``, chosen jointly.

    ``frames``: each video's frames as coded; ``decode_keyframes(codec)``: each video's keyframes
    coded with ``codec`` and decoded back, as the encoder will (at the frames ``keyframes``, per
    video; None: the regular ones). Each share of ``KEYFRAME_SHARES``
    gives a keyframe quality (measured bytes) and a network sized for what is left; each distinct
    candidate gets a pilot fit of ``PILOT_FRACTION`` of the steps, its weights are quantized
    rate-aware to exactly the bytes left, and the candidate whose whole corpus decodes best wins.
    The choice is kept in the work folder, so --resume does not run the pilots again.

    ``estimate_motion(decoded keyframes)``, for a network that consumes coded motion, gives each
    video's motion: the third share. Its bytes, measured once against the keyframes at the
    codec's own quality (they move little with the keyframe quality), come off the budget first,
    and each pilot fits on the motion estimated against its own keyframes, its warped keyframes
    passed through ``hold_warped(video, array)`` (the encoder's frame store: read a batch at a time).
    """
    import torch

    from nvcodec import distributed
    from nvcodec.fit import clips_psnr, fit, total_steps_of
    from nvcodec.model import DNeRV
    from nvcodec.qat import rate_aware_quantize

    motion_bytes = 0
    if estimate_motion is not None:
        motion = estimate_motion(decode_keyframes(kf_codec))
        motion_bytes = sum(motion_chunk_n_bytes(v, m) for v, m in enumerate(motion))
        say(f"  coded motion: {motion_bytes} bytes ({8 * motion_bytes / n_pixels:.4f} bpp) off the budget")
    candidates = _candidates(frames, interval, kf_codec, preset, target_bpp, n_pixels, keyframes, motion_bytes)
    choice_path = workdir / "rate_choice.json"
    main = ctx.is_main

    def from_rank0(value: int) -> int:          # every rank must take the same path (the pilots are collective)
        return int(distributed.all_reduce_sum([float(value if ctx.is_main else 0)], ctx, torch.device(device))[0])

    kept = from_rank0(json.loads(choice_path.read_text())["candidate"] if main and choice_path.exists() else -1)
    if len(candidates) == 1:
        best = 0
    elif kept >= 0:
        best = kept
    else:
        scores = []
        for plan, model_cfg, budget in candidates:
            decoded_kf = decode_keyframes(replace(kf_codec, quality=plan.keyframe_quality))
            warped = None
            if estimate_motion is not None:
                warped = [hold_warped(v, warped_video(np.asarray(kf), m, len(video), interval,
                                                      None if keyframes is None else keyframes[v]))
                          for v, (video, kf, m) in enumerate(zip(frames, decoded_kf, estimate_motion(decoded_kf)))]
            clips = build_clipset([(video, kf, len(video)) for video, kf in zip(frames, decoded_kf)],
                                  interval, model_cfg.tile_h, model_cfg.tile_w, warped=warped, positions=keyframes)
            steps = max(1, round(PILOT_FRACTION * total_steps_of(preset.fit, clips.n_clips)))
            result = fit(model_cfg, replace(preset.fit, max_steps=steps), clips, device=device, progress=False)
            psnr = float("-inf")
            if main:
                q = rate_aware_quantize(model_cfg, result.state_dict, clips, n_pixels=n_pixels,
                                        budget_bytes=max(budget, 0.0), device=device, log=lambda _msg: None)
                model = DNeRV(model_cfg)
                model.load_state_dict({t.name: torch.from_numpy(t.dequantize()) for t in q.tensors})
                psnr = clips_psnr(model, clips, device=device)
                say(f"  candidate: keyframe quality {plan.keyframe_quality} "
                    f"({8 * plan.keyframe_bytes / n_pixels:.4f} bpp), C0={model_cfg.c0}, pilot of {steps} steps: "
                    f"{psnr:.2f} dB with {8 * sum(tensor_chunk_n_bytes(t) for t in q.tensors) / n_pixels:.4f} bpp of weights")
            scores.append(psnr)
        best = int(np.argmax(scores)) if main else 0
        if main:
            tmp = choice_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"candidate": best, "psnr": scores}))
            os.replace(tmp, choice_path)
    best = from_rank0(best)                     # rank 0 decides
    plan, model_cfg, budget = candidates[best]
    say(f"rate plan for {target_bpp} bpp: keyframe quality {plan.keyframe_quality} "
        f"({8 * plan.keyframe_bytes / n_pixels:.4f} bpp), weights {8 * budget / n_pixels:.4f} bpp")
    return TargetPlan(replace(kf_codec, quality=plan.keyframe_quality), model_cfg, max(budget, 0.0))
