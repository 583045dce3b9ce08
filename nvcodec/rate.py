"""Rate control for ``--target-bpp``: split the bits between keyframes and weights.

Every bit of an .nvc is keyframes, weights or a little container overhead
(DESIGN.md, "The economics of a shared model"). Given a target rate, the plan:

1. gives the keyframes ``keyframe_share`` of the budget and searches the
   keyframe codec's quality scale (bisection; real encodes, real byte counts)
   for the best quality that fits in it;
2. gives the weights what is left, as a weight rate (bits per corpus pixel)
   from which the preset sizes the network (``Preset.model_config``).

The keyframe side is exact (measured bytes); the weight side is an estimate
(quantization bits per parameter, before entropy coding, which only makes the
file smaller), so the reached rate lands at or somewhat below the target. The
encoder reports the rate of the written file, never this plan's estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

OVERHEAD_BYTES = 2048      # metadata + chunk framing of a small corpus, a generous bound (see `nvcodec info`)


@dataclass(frozen=True)
class RatePlan:
    keyframe_quality: int
    keyframe_bytes: int
    weight_bpp: float           # bits per corpus pixel left for the weights


def plan_rate(target_bpp: float, n_pixels: int, keyframe_bytes: Callable[[int], int],
              quality_range: tuple[int, int], keyframe_share: float = 0.5) -> RatePlan:
    """Choose the keyframe quality and the weight rate for ``target_bpp``.

    ``keyframe_bytes(q)`` codes every keyframe of the corpus at quality ``q``
    (lower is better) and returns the bytes; it is called O(log range) times.
    """
    if not target_bpp > 0:
        raise ValueError(f"target bpp must be positive, got {target_bpp}")
    if not 0 < keyframe_share < 1:
        raise ValueError(f"keyframe_share must lie in (0, 1), got {keyframe_share}")
    budget_bits = target_bpp * n_pixels - 8 * OVERHEAD_BYTES
    best, worst = quality_range
    cache: dict[int, int] = {}

    def cost(q: int) -> int:
        if q not in cache:
            cache[q] = keyframe_bytes(q)
        return cache[q]

    if 8 * cost(worst) > budget_bits:
        raise ValueError(f"target {target_bpp} bpp is too low for this corpus: the keyframes alone "
                         f"cost {8 * (cost(worst) + OVERHEAD_BYTES) / n_pixels:.4f} bpp at the "
                         f"lowest quality ({worst})")
    allowed = keyframe_share * budget_bits
    lo, hi = best, worst                   # the smallest q within the share (worst if none is)
    while lo < hi:
        mid = (lo + hi) // 2
        if 8 * cost(mid) <= allowed:
            hi = mid
        else:
            lo = mid + 1
    weight_bits = budget_bits - 8 * cost(lo)
    return RatePlan(keyframe_quality=lo, keyframe_bytes=cost(lo), weight_bpp=weight_bits / n_pixels)
