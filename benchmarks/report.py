"""Writers for the RD benchmark's outputs: JSON, CSV, Markdown table, PNG plot.

Each is written to a temporary name in the destination folder and renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bd import bd_compare, pareto

CSV_FIELDS = ("codec", "label", "bpp", "psnr", "y_psnr", "yuv_psnr", "ms_ssim", "n_bytes",
              "settings_sei_bytes", "n_frames", "n_pixels", "encode_s", "decode_fps")


def write_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def _fmt(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_csv(path: Path, points: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for p in points:
        w.writerow({k: p.get(k) for k in CSV_FIELDS})
    write_atomic(path, buf.getvalue().encode())


REFERENCE_ANCHOR = "x264-medium"      # what the bit budget prices each part against


def rate_at(points: list[dict], psnr: float) -> float | None:
    """The bpp a codec's Pareto front needs for ``psnr`` (log-linear between its two
    neighbours), None outside the front's range."""
    rate, q = pareto([p["bpp"] for p in points], [p["psnr"] for p in points])
    if len(rate) < 2 or not q[0] <= psnr <= q[-1]:
        return None
    return float(np.exp(np.interp(psnr, q, np.log(rate))))


def psnr_at(points: list[dict], bpp: float) -> float | None:
    """The PSNR a codec's Pareto front gives at ``bpp`` (linear in log rate between its two neighbours),
    None outside the front's range."""
    rate, q = pareto([p["bpp"] for p in points], [p["psnr"] for p in points])
    if len(rate) < 2 or not rate[0] <= bpp <= rate[-1]:
        return None
    return float(np.interp(np.log(bpp), np.log(rate), q))


def _weights_bytes(point: dict) -> int | None:
    parts = (point.get("encode_report") or {}).get("bytes_by_part")
    return None if parts is None else parts.get("weights", 0)


def bit_budget(points: list[dict]) -> list[str]:
    """Markdown section: where each nvcodec point's bytes go, and what each part buys.

    'keyframes alone' is the PSNR of the blend of the decoded keyframes without the network
    (the blend floor), 'motion floor' the decoded keyframes warped by the file's coded motion
    (a file without a network is that floor); the gain is the final PSNR over the blend. Beside them, the
    rate x264-medium needs for the same two qualities, when it was run: keyframes that cost
    more than that are a loss before the network starts. Last, for a point with a network, the motion
    floor *at its rate*, interpolated between the table's points without weights (files that are the
    floor), and what the network adds over it: a network that does not beat its floor at equal rate
    is not worth its bits. With two points or more of each, their BD-rate and BD-PSNR follow."""
    rows = [p for p in points if p["codec"] == "nvcodec" and (p.get("encode_report") or {}).get("bytes_by_part")]
    if not rows:
        return []
    anchor = [p for p in points if p["codec"] == REFERENCE_ANCHOR]
    out = ["", "## Where nvcodec's bits go", "",
           "| point | bpp | keyframes | motion | weights | latents | metadata + container | bits/weight | keyframe PSNR dB | "
           f"keyframes alone dB | motion floor dB | final dB | gain over keyframes alone dB | keyframes bpp | "
           f"{REFERENCE_ANCHOR} bpp at keyframes alone | {REFERENCE_ANCHOR} bpp at final | "
           "motion floor at this rate dB | network over it dB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    floors = [p for p in rows if _weights_bytes(p) == 0]
    networks = [p for p in rows if _weights_bytes(p)]
    for p in rows:
        rep, parts = p["encode_report"], p["encode_report"]["bytes_by_part"]
        total = sum(parts.values())
        other = parts.get("metadata", 0) + parts.get("container", 0)
        blend, final = rep.get("blend_psnr"), rep.get("psnr")
        gain = final - blend if blend is not None and final is not None else None
        bits_per_weight = 8 * parts["weights"] / rep["n_params"] if rep.get("n_params") else None
        at_blend = rate_at(anchor, blend) if anchor and blend is not None else None
        at_final = rate_at(anchor, final) if anchor and final is not None else None
        floor_here = psnr_at(floors, p["bpp"]) if parts["weights"] and floors else None
        over = final - floor_here if floor_here is not None and final is not None else None
        out.append(f"| {p['label']} | {p['bpp']:.4f} | {100 * parts['keyframes'] / total:.0f} % | "
                   f"{100 * parts.get('motion', 0) / total:.0f} % | "
                   f"{100 * parts['weights'] / total:.0f} % | {100 * parts.get('latents', 0) / total:.0f} % | "
                   f"{100 * other / total:.1f} % | "
                   f"{_fmt(bits_per_weight, 2)} | {_fmt(rep.get('keyframe_psnr'), 2)} | {_fmt(blend, 2)} | "
                   f"{_fmt(rep.get('motion_psnr'), 2)} | {_fmt(final, 2)} | {_fmt(gain, 2)} | {p['bpp'] * parts['keyframes'] / total:.4f} | "
                   f"{_fmt(at_blend, 4)} | {_fmt(at_final, 4)} | {_fmt(floor_here, 2)} | {_fmt(over, 2)} |")
    if len(floors) >= 2 and len(networks) >= 2:
        bd = bd_compare([p["bpp"] for p in floors], [p["psnr"] for p in floors],
                        [p["bpp"] for p in networks], [p["psnr"] for p in networks])
        out += ["", f"The points with a network against those without (the motion floor): BD-rate "
                    f"{_fmt(bd['bd_rate_percent'], 1)} %, BD-PSNR {_fmt(bd['bd_psnr_db'], 2)} dB"
                    + (f" ({bd['note']})" if bd["note"] else "") + "."]
    return out


def markdown(result: dict) -> str:
    """The human summary: setup, RD table, BD-rates, commands."""
    lines = [f"# RD benchmark: protocol `{result['protocol']}`", "",
             f"- date (UTC): {result['date_utc']}; machine: {result['machine']['summary']}",
             f"- corpus: `{result['corpus']['path']}`: {result['corpus']['n_videos']} videos, "
             f"{result['corpus']['n_frames']} frames at {result['corpus']['width']}x{result['corpus']['height']} "
             f"({result['corpus']['description']})",
             f"- frames hash: `{result['corpus']['frames_sha256'][:16]}`; peak RSS of this invocation "
             f"{result['peak_rss_mb']:.0f} MB (points read from the cache cost none: see each run below)",
             "- wall time per invocation (points computed / total): " + "; ".join(
                 f"{r['date_utc']}: {r['wall_s']:.0f} s ({r['n_computed']}/{r['n_points']}"
                 + (f", peak RSS {r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "") + ")"
                 for r in result["runs"]),
             f"- metrics: {result['metrics']['summary']}",
             f"- command: `{result['command']}`"]
    reused = result.get("reused_points")
    if reused:
        lines.append(f"- carried over, not measured by this command (`--reuse-points`): the "
                     f"{', '.join(reused['codecs'])} points ({reused['n_points']}) of `{reused['results']}`, "
                     f"written {reused['date_utc']} by `{reused['command']}`")
    lines += ["",
             "| codec | point | bpp | RGB PSNR dB | Y-PSNR dB | YUV 6:1:1 dB | MS-SSIM | bytes | settings SEI bytes | encode s | decode fps |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result["points"]:
        lines.append(f"| {p['codec']} | {p['label']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {_fmt(p.get('y_psnr'), 2)} | "
                     f"{_fmt(p.get('yuv_psnr'), 2)} | {_fmt(p.get('ms_ssim'), 4)} | {p['n_bytes']} | "
                     f"{p.get('settings_sei_bytes', 0)} | {p['encode_s']:.1f} | {_fmt(p.get('decode_fps'), 0)} |")
    elsewhere = [p for p in result["points"] if p.get("machine") and p["machine"] != result["machine"]["summary"]]
    if elsewhere:
        lines += ["", "Measured on another machine (their encode s and decode fps are that machine's; the "
                  "rate and quality come from the same frames and metric code):"]
        lines += [f"- {p['codec']} {p['label']}: {p['machine']} ({p.get('device', '?')})" for p in elsewhere]
    lines += ["", "## BD-rate of nvcodec against each anchor (pchip, RGB PSNR)", ""]
    if not result["bd"]:
        lines.append("No nvcodec points in this run: no BD-rates.")
    for name, bd in result["bd"].items():
        iv = bd["psnr_interval_db"]
        ivs = f"{iv[0]:.2f}..{iv[1]:.2f} dB" if iv else "none"
        lines.append(f"- vs {name}: BD-rate {_fmt(bd['bd_rate_percent'], 1) or 'n/a'} %, "
                     f"BD-PSNR {_fmt(bd['bd_psnr_db'], 2) or 'n/a'} dB, PSNR overlap {ivs}"
                     + (f" ({bd['note']})" if bd["note"] else ""))
    lines += bit_budget(result["points"])
    sei = result.get("settings_sei")
    if sei:
        lines += ["", "## Encoder settings SEI (counted in the rate)", ""]
        for codec, s in sei.items():
            per_point = (f"{s['n_streams']} streams (one per video) at each of {s['n_points']} CRFs"
                         if "n_points" in s else f"{s['n_streams']} streams")
            lines.append(f"- {codec}: {s['bytes_per_stream']:.0f} bytes per stream, {per_point}, "
                         f"{s['bpp']:.5f} bpp of the pooled rate")
    ref = result.get("reference_check")
    if ref:
        lines += ["", "## Against the reference figures in benchmarks/reference.py (BD of this run vs the reference curve)", "",
                  "| anchor | CRF | ref bpp | ref dB | this bpp | this dB |", "|---|---:|---:|---:|---:|---:|"]
        for anchor, r in ref.items():
            for crf, rb, rp, ob, op in r["points"]:
                lines.append(f"| {anchor} | {crf} | {rb:.3f} | {rp:.1f} | {ob:.4f} | {op:.2f} |")
        lines.append("")
        for anchor, r in ref.items():
            lines.append(f"- {anchor}: BD-rate {_fmt(r['bd']['bd_rate_percent'], 1) or 'n/a'} %, "
                         f"BD-PSNR {_fmt(r['bd']['bd_psnr_db'], 2) or 'n/a'} dB against the reference"
                         + (f" ({r['bd']['note']})" if r["bd"]["note"] else ""))
        for note in dict.fromkeys(r.get("note", "") for r in ref.values()):
            if note:
                lines += ["", f"Why: {note}"]
    lines += ["", "## Commands (one per stream; `OUT` is the stream file)", ""]
    for codec, cmd in result["commands"].items():
        lines += [f"- {codec}:", "", f"  `{cmd}`", ""]
    return "\n".join(lines) + "\n"


def write_plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    by_codec: dict[str, list[dict]] = {}
    for p in result["points"]:
        by_codec.setdefault(p["codec"], []).append(p)
    for k, (codec, pts) in enumerate(by_codec.items()):
        color = f"C{k}"
        for ax, key in zip(axes, ("psnr", "ms_ssim")):
            ys = [p.get(key) for p in pts]
            if any(y is None for y in ys):
                continue
            # every point as a marker; the line joins the points no other point beats (BD's curve)
            ax.plot([p["bpp"] for p in pts], ys, "o", color=color, label=codec)
            front = pareto([p["bpp"] for p in pts], ys)
            ax.plot(front[0], front[1], "-", color=color)
    for ax, ylabel in zip(axes, ("RGB PSNR (dB), mean over frames", "MS-SSIM (RGB), mean over frames")):
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (pooled over the corpus)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    c = result["corpus"]
    fig.suptitle(f"{result['protocol']} protocol: {c['n_videos']} videos, {c['n_frames']} frames, "
                 f"{c['width']}x{c['height']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
