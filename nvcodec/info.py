"""``nvcodec info``: what an .nvc file holds, like ffprobe. Reads the container only (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from nvcodec.bitstream import NvcFormatError, NvcReader, VideoRecord
from nvcodec.bitstream.chunks import CHUNK_OVERHEAD_BYTES, QUAL
from nvcodec.bitstream.container import add_chunk_before_end
from nvcodec.bitstream.positions import MAX_LISTED_KEYFRAMES
from nvcodec.bitstream.quality import read_quality, write_quality
from nvcodec.config import LATENTS


def record_quality(path: str | os.PathLike, quality: dict) -> int:
    """Store the quality the encoder measured on the decoded file (a ``qual`` chunk); return the new size.

    ``quality``: the keys of ``nvcodec.bitstream.quality.QUALITY_FIELDS`` (and any of its OPTIONAL_FIELDS).
    """
    return add_chunk_before_end(Path(path), QUAL, write_quality(quality))


def stored_quality(reader: NvcReader) -> dict | None:
    """The encoder's measured quality from the ``qual`` chunk, or None for files without one."""
    found = reader.ancillary(QUAL)
    return None if found is None else read_quality(found[1], QUAL, found[0])


def describe(path: str | os.PathLike) -> dict:
    """A JSON-ready summary: format, encoder, videos (each with its keyframes' frame numbers),
    settings, bytes by part and by chunk, bpp.

    Every chunk's CRC is checked first: ``info`` on a damaged file says so. A file declaring more
    keyframes than a KPOS chunk may list (MAX_LISTED_KEYFRAMES) is refused rather than listed.
    """
    with NvcReader(Path(path)) as reader:
        reader.verify()
        md = reader.metadata
        records = [VideoRecord.from_json(v) for v in md["videos"]]
        n_pixels = sum(v.n_pixels for v in records)
        layouts = [reader.keyframe_layout(i) for i in range(len(records))]
        n_keyframes = sum(lay.n_keyframes for lay in layouts)
        if n_keyframes > MAX_LISTED_KEYFRAMES:
            raise NvcFormatError(f"the videos declare {n_keyframes} keyframes, more than the {MAX_LISTED_KEYFRAMES} "
                                 f"info lists")
        videos = []
        for i, (v, layout) in enumerate(zip(records, layouts)):
            videos.append({
                "name": v.name,
                "width": v.width, "height": v.height,
                "source_width": v.source_width, "source_height": v.source_height,
                "fps": f"{v.fps_num}/{v.fps_den}",
                "n_frames": v.n_frames,
                "duration_s": round(v.duration_s, 3),
                "n_keyframe_segments": len(reader.segments(i)),
                "keyframes_rule": "regular" if layout.is_regular else "listed",
                "keyframes": layout.keyframe_frames().tolist(),
            })
        return {
            "file": str(path),
            "format_version": "%d.%d" % reader.version,
            "encoder": md["encoder"],
            "n_bytes": reader.n_bytes,
            "n_pixels": n_pixels,
            "bpp": 8.0 * reader.n_bytes / n_pixels,
            "bytes_by_part": _bytes_by_part(reader),
            "videos": videos,
            "keyframe_interval": md["keyframe_interval"],
            "tile": md["tile"],
            "keyframe_codec": md["keyframe_codec"],
            "model": md["model"],
            "fit": md.get("fit", {}),
            "quality": stored_quality(reader),
            "chunks": [{"type": t, "offset": off, "n_bytes": n} for t, off, n in reader.chunks()],
        }


def _bytes_by_part(reader: NvcReader) -> dict[str, int]:
    """The container's split by chunk type, with the per-frame latent table's payload apart from the weights
    (``latents``, where the file has one), as the encoder's report counts them."""
    parts = reader.byte_breakdown()
    tensors = [n - CHUNK_OVERHEAD_BYTES for t, _, n in reader.chunks() if t == "TENS"]
    for header, n_payload in zip(reader.tensor_headers(), tensors):
        if header.name == LATENTS:
            parts["weights"] -= n_payload
            parts["latents"] = n_payload
    return parts


def format_text(summary: dict) -> str:
    """The human-readable form of ``describe``'s summary."""
    lines = [
        f"{summary['file']}: nvc {summary['format_version']}, {summary['encoder']}",
        f"  size {summary['n_bytes']} bytes, {summary['bpp']:.4f} bpp over {summary['n_pixels']} pixels",
        "  bytes: " + ", ".join(f"{k} {v}" for k, v in summary["bytes_by_part"].items()),
        (f"  keyframes: at most {summary['keyframe_interval']} frames apart, on scene cuts (listed per video), "
         if any(v["keyframes_rule"] == "listed" for v in summary["videos"])
         else f"  keyframes: every {summary['keyframe_interval']} frames, ")
        + ", ".join(f"{k}={v}" for k, v in summary["keyframe_codec"].items() if k != "params")
        + " " + " ".join(f"{k}={v}" for k, v in summary["keyframe_codec"].get("params", {}).items()),
    ]
    if summary["model"]:                          # without a network the tile is unused
        lines.append(f"  tile: {summary['tile']['width']}x{summary['tile']['height']}")
    motion_bytes = summary["bytes_by_part"].get("motion", 0)
    if summary["model"]:
        lines.append("  model: " + " ".join(f"{k}={v}" for k, v in summary["model"].items()))
    else:   # FORMAT.md section 13 "No network": every frame is the motion floor
        lines.append(f"  no network: decoded keyframes warped by coded motion ({motion_bytes} bytes), the motion floor")
    q = summary.get("quality")
    if q:
        floors = ("this file is the motion floor; " if not summary["model"] else
                  f"motion floor {q['motion_psnr']:.2f} dB, " if "motion_psnr" in q else "")
        lines.append(f"  PSNR {q['psnr']:.2f} dB decoded, mean over {q['n_frames']} frames (floors on the same frames: "
                     f"{floors}keyframe blend {q['blend_psnr']:.2f} dB; keyframes alone {q['keyframe_psnr']:.2f} dB "
                     f"over {q['n_keyframes']}), measured by the encoder")
    if summary["fit"]:
        lines.append("  fit: " + " ".join(f"{k}={v}" for k, v in summary["fit"].items()))
    lines.append(f"  {len(summary['videos'])} video(s):")
    for v in summary["videos"]:
        size = f"{v['width']}x{v['height']}"
        if (v["source_width"], v["source_height"]) != (v["width"], v["height"]):
            size += f" (source {v['source_width']}x{v['source_height']})"
        lines.append(f"    {v['name']}: {size}, {v['fps']} fps, {v['n_frames']} frames, {v['duration_s']} s, "
                     f"{len(v['keyframes'])} keyframes ({v['keyframes_rule']})")
    lines.append("  chunks (type: count, bytes; --json lists each with its offset):")
    totals: dict[str, list[int]] = {}
    for c in summary["chunks"]:
        count_bytes = totals.setdefault(c["type"], [0, 0])
        count_bytes[0] += 1
        count_bytes[1] += c["n_bytes"]
    for chunk_type, (count, n_bytes) in totals.items():
        lines.append(f"    {chunk_type:<4} x{count:<6} {n_bytes:>10} bytes")
    return "\n".join(lines)
