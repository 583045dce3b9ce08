"""The ancillary ``qual`` chunk (FORMAT.md section 8.1): the quality the encoder measured.

Written after the encoder decoded its own output, so ``nvcodec info`` can show the
decoded PSNR and its floors without decoding. UTF-8 JSON, one flat object; every
figure is a finite number, every count an int. A file without the chunk is valid.
"""
from __future__ import annotations

import json
import math

from .errors import at_chunk

MAX_QUALITY_BYTES = 1 << 16
# field -> Python type; the JSON object holds exactly these keys (a later minor version may add some)
QUALITY_FIELDS = {
    "psnr": float,           # dB: per-frame RGB PSNR of the decoded file, mean over every frame of every video
    "blend_psnr": float,     # dB: the floor on the same frames: (1-t)*start + t*end of the decoded keyframes
    "keyframe_psnr": float,  # dB: the decoded keyframes alone, mean over the keyframes
    "n_frames": int,         # frames the two first figures average over
    "n_keyframes": int,      # keyframes the last one averages over
}
# optional keys: absent from files written before them, read when present
OPTIONAL_FIELDS = {
    "motion_psnr": float,    # dB: the motion floor on the same frames (keyframes warped by the coded motion)
}


def write_quality(quality: dict) -> bytes:
    """The chunk's payload for ``quality`` (the keys of QUALITY_FIELDS, and any of OPTIONAL_FIELDS);
    ValueError on a bad value."""
    if not set(QUALITY_FIELDS) <= set(quality) <= set(QUALITY_FIELDS) | set(OPTIONAL_FIELDS):
        raise ValueError(f"quality: expected the keys {sorted(QUALITY_FIELDS)} and optionally "
                         f"{sorted(OPTIONAL_FIELDS)}, got {sorted(quality)}")
    out = {}
    for name, kind in {**QUALITY_FIELDS, **OPTIONAL_FIELDS}.items():
        if name not in quality:
            continue
        value = quality[name]
        if kind is int and (type(value) is not int or value < 0):
            raise ValueError(f"quality.{name}: expected a non-negative int, got {value!r}")
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"quality.{name}: expected a finite number, got {value!r}")
            value = round(value, 4)
        out[name] = value
    return json.dumps(out, separators=(",", ":")).encode("utf-8")


def read_quality(payload: bytes, chunk_type: str, offset_bytes: int) -> dict:
    """Parse a ``qual`` payload; NvcFormatError naming the chunk, its offset and the field."""
    def bad(what: str):
        return at_chunk(chunk_type, offset_bytes, what)

    if len(payload) > MAX_QUALITY_BYTES:
        raise bad(f"{len(payload)} bytes, more than the {MAX_QUALITY_BYTES} a quality record may hold")
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=lambda c: math.nan)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"not UTF-8 JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise bad(f"expected a JSON object, got {type(obj).__name__}")
    out = {}
    for name, kind in {**QUALITY_FIELDS, **OPTIONAL_FIELDS}.items():
        if name not in obj:
            if name in OPTIONAL_FIELDS:
                continue
            raise bad(f"field {name!r} missing")
        value = obj[name]
        if kind is int and (type(value) is not int or value < 0):
            raise bad(f"field {name!r}: expected a non-negative int, got {value!r}")
        if kind is float and (type(value) not in (int, float) or not math.isfinite(value)):
            raise bad(f"field {name!r}: expected a finite number, got {value!r}")
        out[name] = kind(value)
    return out
