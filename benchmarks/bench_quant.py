"""Weights benchmark: plain post-training quantization vs rate-aware, from one fit.

    nice python -m benchmarks.bench_quant --size 160x128 --max-frames 32 --preset fast \
        --out benchmarks/results/quant CLIP ...

Reads the clips the way ``nvcodec.encode`` does, codes and decodes the keyframes at the
preset's quality, fits the preset's network once (cached under OUT/cache), then quantizes
that one float network every way asked: post-training at each of ``--ptq-bits``
(``nvcodec.quant``, the histogram-coded integers of 8-bit PTQ are the issue's baseline) and
rate-aware at each of ``--lambdas`` (``nvcodec.qat``: step search plus a fine-tune of
``qat_fraction`` of the fit's steps, each from the same float weights). Every row's quality
is the whole corpus decoded with the quantized weights (mean over frames of RGB PSNR, pasted
keyframes included); its weight bytes are the exact bytes of the TENS chunks as written
(``nvcodec.bitstream.tensor_chunk_n_bytes``). Total bpp adds the keyframe bytes (the same for every row);
metadata and chunk framing outside the tensors (about 1.5 kB) are left out of every row alike.

Printed and written (OUT/results.json, OUT/results.md): the table; the weight bytes that
8-bit PTQ needs vs rate-aware at equal PSNR (the PTQ curve interpolated in log-rate at the
rate-aware row's PSNR); BD-rate of rate-aware vs PTQ on total bpp (benchmarks.bd, each
curve's Pareto front).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bd import bd_compare, pareto
from benchmarks.report import write_atomic, write_json
from nvcodec.corpus import build_clipset, keyframe_positions
from nvcodec.fit import clips_psnr, fit
from nvcodec.keyframes import KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.media import read_frames
from nvcodec.model import DNeRV
from nvcodec.presets import resolve
from nvcodec.bitstream import tensor_chunk_n_bytes
from nvcodec.qat import rate_aware_quantize
from nvcodec.quant import quantize_state


def _corpus(paths, size, max_frames, quality, interval):
    videos, kf_bytes = [], 0
    codec = KeyframeCodec(codec="av1", quality=quality)
    for path in paths:
        frames = np.stack(list(read_frames(path, size=size, max_frames=max_frames)))
        keyframes = frames[keyframe_positions(len(frames), interval)]
        data = b"".join(d for _, _, d in encode_keyframes(keyframes, codec))
        kf_bytes += len(data)
        videos.append((frames, decode_keyframes(data, codec, size[0], size[1], len(keyframes)), len(frames)))
    return videos, kf_bytes


def _psnr(model_cfg, clips, tensors) -> float:
    model = DNeRV(model_cfg)
    model.load_state_dict({t.name: torch.from_numpy(t.dequantize()) for t in tensors})
    return clips_psnr(model, clips, device="cpu")


def _log_interp(psnr_target: float, psnrs, sizes) -> float | None:
    """Bytes on the (Pareto) curve at ``psnr_target``, interpolated in log-bytes; None outside it."""
    r, p = pareto(sizes, psnrs)
    if not p.min() <= psnr_target <= p.max():
        return None
    return float(np.exp(np.interp(psnr_target, p, np.log(r))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--size", default="160x128")
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--max-steps", type=int, default=0, help="cap the fit's steps (0: the preset's schedule)")
    ap.add_argument("--ptq-bits", default="4,5,6,8")
    ap.add_argument("--lambdas", default="0.0003,0.001,0.003,0.01")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = tuple(int(x) for x in args.size.split("x"))
    preset = resolve(args.preset, **({"max_steps": args.max_steps} if args.max_steps else {}))
    interval = 8
    started = time.monotonic()

    videos, kf_bytes = _corpus(args.clips, size, args.max_frames, preset.keyframe_quality, interval)
    n_pixels = sum(f.shape[0] * size[0] * size[1] for f, _, _ in videos)
    model_cfg = preset.model_config(n_pixels, interval)
    clips = build_clipset(videos, interval, model_cfg.tile_h, model_cfg.tile_w)
    key = hashlib.sha256(json.dumps([sorted(map(str, args.clips)), args.size, args.max_frames, args.preset,
                                     args.max_steps, model_cfg.to_json()]).encode()).hexdigest()[:16]
    cache = args.out / "cache" / f"fit-{key}.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
    else:
        result = fit(model_cfg, preset.fit, clips, device="cpu", progress=True)
        saved = {"state": result.state_dict, "steps": result.steps, "psnr": result.psnr,
                 "blend_psnr": result.blend_psnr, "seconds": result.seconds}
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(saved, cache)
    state, n_params = saved["state"], sum(t.numel() for t in saved["state"].values())
    print(f"{len(videos)} clips, {n_pixels} pixels; C0={model_cfg.c0}, {n_params} weights, "
          f"{saved['steps']} fit steps; float {saved['psnr']:.3f} dB, keyframe blend {saved['blend_psnr']:.3f} dB; "
          f"keyframes {8 * kf_bytes / n_pixels:.4f} bpp", flush=True)

    rows = []

    def add(kind: str, setting: str, tensors, seconds: float) -> None:
        weight_bytes = sum(tensor_chunk_n_bytes(t) for t in tensors)
        row = {"kind": kind, "setting": setting, "weight_bytes": weight_bytes,
               "bits_per_weight": 8 * weight_bytes / n_params, "weight_bpp": 8 * weight_bytes / n_pixels,
               "total_bpp": 8 * (weight_bytes + kf_bytes) / n_pixels, "psnr": _psnr(model_cfg, clips, tensors),
               "seconds": seconds}
        rows.append(row)
        print(f"  {kind:10s} {setting:14s} {weight_bytes:8d} B  {row['bits_per_weight']:.2f} bits/weight  "
              f"total {row['total_bpp']:.4f} bpp  {row['psnr']:.3f} dB  ({seconds:.0f} s)", flush=True)

    float_np = {k: v.numpy() for k, v in state.items()}
    for bits in (int(b) for b in args.ptq_bits.split(",")):
        t0 = time.monotonic()
        add("ptq", f"{bits} bits", quantize_state(float_np, bits), time.monotonic() - t0)
    qat_steps = round(preset.qat_fraction * saved["steps"])
    for lam in (float(x) for x in args.lambdas.split(",")):
        t0 = time.monotonic()
        choice = rate_aware_quantize(model_cfg, state, clips, n_pixels=n_pixels, lam=lam, qat_steps=qat_steps,
                                     lr=0.1 * preset.fit.lr, batch_size=preset.fit.batch_size, device="cpu",
                                     log=lambda _m: None)
        add("rate-aware", f"lambda {lam:g}", choice.tensors, time.monotonic() - t0)

    ptq = [r for r in rows if r["kind"] == "ptq"]
    ra = [r for r in rows if r["kind"] == "rate-aware"]
    ptq8 = next((r for r in ptq if r["setting"] == "8 bits"), None)
    equal_psnr = []
    for r in ra:
        at = _log_interp(r["psnr"], [p["psnr"] for p in ptq], [p["weight_bytes"] for p in ptq])
        equal_psnr.append({"setting": r["setting"], "psnr": r["psnr"], "rate_aware_bytes": r["weight_bytes"],
                           "ptq_bytes_at_equal_psnr": at,
                           "ratio_to_ptq_at_equal_psnr": r["weight_bytes"] / at if at else None,
                           "ratio_to_ptq8": r["weight_bytes"] / ptq8["weight_bytes"] if ptq8 else None,
                           "psnr_minus_ptq8": r["psnr"] - ptq8["psnr"] if ptq8 else None})
    bd = bd_compare([p["total_bpp"] for p in ptq], [p["psnr"] for p in ptq],
                    [r["total_bpp"] for r in ra], [r["psnr"] for r in ra])
    result = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "command": "python -m benchmarks.bench_quant " + " ".join(sys.argv[1:] if argv is None else argv),
        "corpus": {"clips": [str(c) for c in args.clips], "n_pixels": n_pixels, "keyframe_bytes": kf_bytes},
        "model": {"c0": model_cfg.c0, "n_params": n_params, "fit_steps": saved["steps"], "qat_steps": qat_steps,
                  "float_psnr": saved["psnr"], "blend_psnr": saved["blend_psnr"]},
        "rows": rows, "equal_psnr": equal_psnr, "bd_rate_aware_vs_ptq": bd,
        "wall_s": time.monotonic() - started,
    }
    write_json(args.out / "results.json", result)
    write_atomic(args.out / "results.md", _markdown(result).encode())
    print(_markdown(result))
    return 0


def _markdown(r: dict) -> str:
    m = r["model"]
    lines = ["# Weights: post-training vs rate-aware quantization (one fit)", "",
             f"- date (UTC): {r['date_utc']}; machine: {r['machine']}; wall {r['wall_s']:.0f} s",
             f"- command: `{r['command']}`",
             f"- network: C0={m['c0']}, {m['n_params']} weights, {m['fit_steps']} fit steps, float "
             f"{m['float_psnr']:.2f} dB (keyframe blend {m['blend_psnr']:.2f} dB); rate-aware fine-tune "
             f"{m['qat_steps']} steps; keyframes {r['corpus']['keyframe_bytes']} B in every row", "",
             "| quantization | setting | weight bytes | bits/weight | weight bpp | total bpp | PSNR dB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['kind']} | {x['setting']} | {x['weight_bytes']} | {x['bits_per_weight']:.2f} | "
              f"{x['weight_bpp']:.4f} | {x['total_bpp']:.4f} | {x['psnr']:.2f} |" for x in r["rows"]]
    lines += ["", "## Rate-aware weight bytes against post-training at equal PSNR", ""]
    for e in r["equal_psnr"]:
        at = (f"{e['ratio_to_ptq_at_equal_psnr']:.2f} x PTQ interpolated at {e['psnr']:.2f} dB"
              if e["ratio_to_ptq_at_equal_psnr"] else f"{e['psnr']:.2f} dB lies outside the PTQ curve")
        lines.append(f"- {e['setting']}: {at}; {e['ratio_to_ptq8']:.2f} x 8-bit PTQ's bytes at "
                     f"{e['psnr_minus_ptq8']:+.2f} dB")
    bd = r["bd_rate_aware_vs_ptq"]
    pct = "n/a" if bd["bd_rate_percent"] is None else f"{bd['bd_rate_percent']:.1f} %"
    lines += ["", f"BD-rate of rate-aware vs post-training (total bpp, RGB PSNR, pchip): {pct}"
              + (f" over {bd['psnr_interval_db'][0]:.2f}..{bd['psnr_interval_db'][1]:.2f} dB" if bd["psnr_interval_db"] else "")
              + (f" ({bd['note']})" if bd["note"] else "")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
