"""Bjøntegaard deltas with the ``bjontegaard`` package (pchip), with the overlap stated.

BD-rate: mean log-rate difference of the test curve against the anchor over the
PSNR interval both curves cover, as a percent (negative = the test needs fewer
bits). BD-PSNR: mean PSNR difference over the overlapping log-rate interval, in dB.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import bjontegaard
import numpy as np

METHOD = "pchip"


def _interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    return (float(lo), float(hi)) if hi > lo else None


def _sorted(rate, psnr):
    rate, psnr = np.asarray(rate, float), np.asarray(psnr, float)
    order = np.argsort(rate)
    return rate[order], psnr[order]


def pareto(rate, psnr) -> tuple[np.ndarray, np.ndarray]:
    """The points no other point beats (less or equal rate and higher PSNR), by rising rate.

    A curve through a dominated point is not monotone, which pchip cannot integrate; a
    codec user would never choose such a point anyway.
    """
    rate, psnr = _sorted(rate, psnr)
    keep, best = [], -math.inf
    for i in range(len(rate)):
        if psnr[i] > best and not (keep and rate[i] == rate[keep[-1]]):
            keep.append(i)
            best = psnr[i]
    return rate[keep], psnr[keep]


def bd_compare(anchor_rate, anchor_psnr, test_rate, test_psnr) -> dict:
    """BD-rate (%) and BD-PSNR (dB) of ``test`` against ``anchor`` with their overlaps.

    Each curve is first cut to its Pareto front (``pareto``); the note says how many
    points that dropped. Returns {"bd_rate_percent", "bd_psnr_db", "psnr_interval_db",
    "log10_rate_interval", "overlap_fraction", "note"}; the deltas are None when a curve
    has fewer than two points or the curves do not overlap (the note says which).
    """
    out = {"method": METHOD, "bd_rate_percent": None, "bd_psnr_db": None, "psnr_interval_db": None,
           "log10_rate_interval": None, "overlap_fraction": None, "note": ""}
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    dropped = len(anchor_rate) - len(ar) + len(test_rate) - len(tr)
    if dropped:
        out["note"] = f"{dropped} dominated point(s) left out"
    if len(ar) < 2 or len(tr) < 2:
        out["note"] = (out["note"] + "; " if out["note"] else "") + "fewer than two points on a curve"
        return out
    psnr_iv = _interval(ap, tp)
    rate_iv = _interval(np.log10(ar), np.log10(tr))
    out["psnr_interval_db"], out["log10_rate_interval"] = psnr_iv, rate_iv
    if psnr_iv is None:
        out["note"] = (out["note"] + "; " if out["note"] else "") + "curves do not overlap in PSNR: no BD-rate"
    else:
        span = min(ap.max() - ap.min(), tp.max() - tp.min())
        out["overlap_fraction"] = (psnr_iv[1] - psnr_iv[0]) / span if span > 0 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # the partial-overlap warning: we report the interval
            value = bjontegaard.bd_rate(ar, ap, tr, tp, method=METHOD, require_matching_points=False,
                                        min_overlap=0)
        out["bd_rate_percent"] = float(value) if math.isfinite(value) else None
    if rate_iv is None:
        out["note"] = (out["note"] + "; " if out["note"] else "") + "curves do not overlap in rate: no BD-PSNR"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = bjontegaard.bd_psnr(ar, ap, tr, tp, method=METHOD, require_matching_points=False,
                                        min_overlap=0)
        out["bd_psnr_db"] = float(value) if math.isfinite(value) else None
    return out
