"""The metadata chunk 'META': schema validation and the zstd-compressed JSON payload (FORMAT.md section 5).

``validate_metadata`` is shared by the writer (a bad dict is a ValueError) and the
reader (bad bytes become an NvcFormatError naming the chunk), so both sides apply
exactly the same rules. ``VideoRecord`` is the one description of a video entry
(metadata "videos"[i]): the encoder writes it with ``to_json``, and the reader's
check, the decoder and ``info`` read it with ``from_json``.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, fields
from fractions import Fraction

import zstandard

from .errors import NvcFormatError

MAX_JSON_N_BYTES = 64 << 20  # decompressed metadata is capped at 64 MiB
ZSTD_LEVEL = 19  # writer's choice; any valid zstd frame with a content size is readable
MAX_VIDEOS = 1 << 16
MAX_INT = (1 << 31) - 1  # bound for "int >= 1" fields (counts, sizes, rates)
MAX_NAME_N_BYTES = 1024
# One path component of a video name: 200 bytes of UTF-8 leaves room, under the 255-byte NAME_MAX of
# common file systems, for an output suffix and a collision tag (FORMAT.md section 5, "Video names").
MAX_COMPONENT_N_BYTES = 200
MAX_JSON_DEPTH = 32
_DRIVE = re.compile(r"^[A-Za-z]:")


class MetadataError(ValueError):
    """A metadata dict breaks the schema; the message starts with the JSON path of the field."""


def keyframe_count(n_frames: int, interval: int) -> int:
    """n_kf of the regular keyframes of a video of n_frames frames: 0, K, 2K, ... < L, plus L-1 if
    (L-1) % K != 0 (listed keyframes, section 15, are ``positions.KeyframeLayout``)."""
    return len(range(0, n_frames, interval)) + (1 if (n_frames - 1) % interval else 0)


def check_video_name(name: object, path: str = "name") -> str:
    """A relative POSIX path that cannot escape an output folder (raises MetadataError)."""
    if not isinstance(name, str):
        raise MetadataError(f"{path}: must be a string, got {type(name).__name__}")
    try:
        n_bytes = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise MetadataError(f"{path}: {name!r} is not valid Unicode (lone surrogate)") from None
    if not 1 <= n_bytes <= MAX_NAME_N_BYTES:
        raise MetadataError(f"{path}: must be 1..{MAX_NAME_N_BYTES} bytes of UTF-8, got {n_bytes}")
    bad = [c for c in name if unicodedata.category(c) == "Cc"]
    if bad:
        raise MetadataError(f"{path}: {name!r} contains control character {bad[0]!r}")
    if "\\" in name:
        raise MetadataError(f"{path}: {name!r} contains a backslash (names are POSIX paths)")
    if name.startswith("/") or _DRIVE.match(name):
        raise MetadataError(f"{path}: {name!r} is an absolute path")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise MetadataError(f"{path}: {name!r} has an empty, '.' or '..' path component")
        n_part = len(part.encode("utf-8"))
        if n_part > MAX_COMPONENT_N_BYTES:
            raise MetadataError(f"{path}: path component {part[:40]!r}... is {n_part} bytes of UTF-8, "
                                f"more than {MAX_COMPONENT_N_BYTES}")
    return name


def _int(d: dict, key: str, path: str, lo: int, hi: int) -> int:
    if key not in d:
        raise MetadataError(f"{path}: missing key {key!r}")
    v = d[key]
    if type(v) is not int:
        raise MetadataError(f"{path}.{key}: must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise MetadataError(f"{path}.{key}: {v} is outside {lo}..{hi}")
    return v


def _typed(d: dict, key: str, path: str, kind: type, what: str):
    if key not in d:
        raise MetadataError(f"{path}: missing key {key!r}")
    v = d[key]
    if not isinstance(v, kind):
        raise MetadataError(f"{path}.{key}: must be {what}, got {type(v).__name__}")
    return v


def _obj(d: dict, key: str, path: str) -> dict:
    return _typed(d, key, path, dict, "an object")


def _str(d: dict, key: str, path: str) -> str:
    return _typed(d, key, path, str, "a string")


def _is_scalar(v: object) -> bool:
    return v is None or isinstance(v, (str, bool, int, float))


def _is_number(v: object) -> bool:
    return type(v) in (int, float)


def _check_json_value(v: object, path: str, depth: int = 0) -> None:
    """Plain JSON types only (dict with str keys, list, str, int, float, bool, None), finite floats."""
    if depth > MAX_JSON_DEPTH:
        raise MetadataError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise MetadataError(f"{path}: key {k!r} is not a string")
            try:
                k.encode("utf-8")
            except UnicodeEncodeError:
                raise MetadataError(f"{path}: key {k!r} is not valid Unicode (lone surrogate)") from None
            _check_json_value(x, f"{path}.{k}", depth + 1)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _check_json_value(x, f"{path}[{i}]", depth + 1)
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise MetadataError(f"{path}: {v} is not a finite number")
    elif isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise MetadataError(f"{path}: string is not valid Unicode (lone surrogate)") from None
    elif not (v is None or isinstance(v, (bool, int))):
        raise MetadataError(f"{path}: {type(v).__name__} is not a JSON type (convert it, e.g. with float() or list())")


MAX_CODED_SIDE = 16384  # width/height of a video as coded


@dataclass(frozen=True)
class VideoRecord:
    """One video of an .nvc file (FORMAT.md section 5, "videos"): its name, its size as coded
    (= as decoded) and as given, its frame rate as a rational and its frame count.

    The field order is the JSON key order the writer produces.
    """

    name: str                 # relative POSIX path, checked by check_video_name
    source_width: int         # size of the original input
    source_height: int
    width: int                # coded size = decoded size
    height: int
    fps_num: int
    fps_den: int
    n_frames: int

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def duration_s(self) -> float:
        return self.n_frames * self.fps_den / self.fps_num

    @property
    def n_pixels(self) -> int:
        """frames x width x height as coded: this video's share of the bpp denominator."""
        return self.n_frames * self.width * self.height

    def to_json(self) -> dict:
        """The metadata object; raises MetadataError if a field breaks the schema."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        VideoRecord.from_json(d)
        return d

    @classmethod
    def from_json(cls, v: object, path: str = "video") -> "VideoRecord":
        """Check one "videos" entry (MetadataError naming ``path`` and the field) and build the record."""
        if not isinstance(v, dict):
            raise MetadataError(f"{path}: must be an object, got {type(v).__name__}")
        if "name" not in v:
            raise MetadataError(f"{path}: missing key 'name'")
        name = check_video_name(v["name"], f"{path}.name")
        sizes = {key: _int(v, key, path, 1, MAX_INT) for key in ("source_width", "source_height", "fps_num", "fps_den",
                                                                 "n_frames")}
        sizes.update({key: _int(v, key, path, 1, MAX_CODED_SIDE) for key in ("width", "height")})
        return cls(name=name, **sizes)


def validate_metadata(md: object) -> None:
    """Check a metadata dict against the FORMAT.md section 5 schema; raise MetadataError."""
    if not isinstance(md, dict):
        raise MetadataError(f"metadata: must be an object, got {type(md).__name__}")
    _check_json_value(md, "metadata")
    _str(md, "encoder", "metadata")
    videos = md.get("videos")
    if not isinstance(videos, list) or not 1 <= len(videos) <= MAX_VIDEOS:
        raise MetadataError(f"metadata.videos: must be a list of 1..{MAX_VIDEOS} videos")
    names = set()
    for i, v in enumerate(videos):
        path = f"metadata.videos[{i}]"
        name = VideoRecord.from_json(v, path).name
        if name in names:
            raise MetadataError(f"{path}.name: {name!r} is used by an earlier video")
        names.add(name)
    _int(md, "keyframe_interval", "metadata", 1, 1024)
    tile = _obj(md, "tile", "metadata")
    for key in ("width", "height"):
        _int(tile, key, "metadata.tile", 8, 4096)
    kc = _obj(md, "keyframe_codec", "metadata")
    _str(kc, "codec", "metadata.keyframe_codec")
    if _str(kc, "mode", "metadata.keyframe_codec") not in ("intra", "inter"):
        raise MetadataError(f"metadata.keyframe_codec.mode: must be 'intra' or 'inter', got {kc['mode']!r}")
    for k, x in _obj(kc, "params", "metadata.keyframe_codec").items():
        if not isinstance(x, (str, bool, int, float)):
            raise MetadataError(f"metadata.keyframe_codec.params.{k}: must be a string, number or boolean")
    for k, x in _obj(md, "model", "metadata").items():
        if not (_is_scalar(x) or (isinstance(x, list) and all(_is_number(e) for e in x))):
            raise MetadataError(f"metadata.model.{k}: must be a JSON scalar or a list of numbers")
    if "fit" in md:
        for k, x in _obj(md, "fit", "metadata").items():
            if not _is_scalar(x):
                raise MetadataError(f"metadata.fit.{k}: must be a JSON scalar")


# --- payload: write_meta / read_meta ------------------------------------------------------


def write_meta(md: dict) -> bytes:
    """Validated metadata -> 'META' payload: one zstd frame (content size recorded) of UTF-8 JSON."""
    text = json.dumps(md, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    raw = text.encode("utf-8")
    if len(raw) > MAX_JSON_N_BYTES:
        raise MetadataError(f"metadata: JSON is {len(raw)} bytes, more than the {MAX_JSON_N_BYTES} allowed")
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=False).compress(raw)


def _no_duplicates(pairs: list) -> dict:
    d = {}
    for k, v in pairs:
        if k in d:
            raise MetadataError(f"JSON object has key {k!r} twice")
        d[k] = v
    return d


def _no_constant(name: str) -> None:
    raise MetadataError(f"JSON contains {name}, which is not a finite number")


def _decompress(payload: bytes) -> bytes:
    """Bounded zstd decompression: content size must be declared, <= cap, and exact."""
    try:
        params = zstandard.get_frame_parameters(payload)
    except zstandard.ZstdError as e:
        raise MetadataError(f"not a zstd frame ({e})") from None
    declared = params.content_size
    if declared == zstandard.CONTENTSIZE_UNKNOWN or declared == zstandard.CONTENTSIZE_ERROR:
        raise MetadataError("zstd frame does not record its decompressed size")
    if declared > MAX_JSON_N_BYTES:
        raise MetadataError(f"decompressed size {declared} exceeds the {MAX_JSON_N_BYTES}-byte limit")
    parts, n_bytes = [], 0
    try:
        with zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=False) as reader:
            while n_bytes < declared:
                block = reader.read(min(1 << 16, declared - n_bytes))
                if not block:
                    break
                n_bytes += len(block)
                parts.append(block)
    except zstandard.ZstdError as e:
        raise MetadataError(f"zstd data is corrupt ({e})") from None
    if n_bytes != declared:
        raise MetadataError(f"zstd frame decompresses to {n_bytes} bytes, not its declared {declared}")
    try:  # output is bounded: libzstd stops a frame that exceeds its declared size
        tail = zstandard.ZstdDecompressor().decompressobj()
        tail.decompress(payload)
        trailing = not tail.eof or bool(tail.unused_data)
    except zstandard.ZstdError:
        trailing = True
    if trailing:
        raise MetadataError(f"zstd frame holds more than its declared {declared} bytes, or bytes follow it")
    return b"".join(parts)


def read_meta(payload: bytes) -> dict:
    """'META' payload -> validated metadata dict; raises MetadataError (the caller adds chunk + offset)."""
    raw = _decompress(payload)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MetadataError(f"JSON is not valid UTF-8 (byte {e.start})") from None
    try:
        md = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise MetadataError("JSON is nested too deeply") from None
    except MetadataError:
        raise
    except ValueError as e:  # json.JSONDecodeError, or an int literal too long to convert
        raise MetadataError(f"invalid JSON ({e})") from None
    validate_metadata(md)
    return md


def meta_error(e: MetadataError, offset_bytes: int) -> NvcFormatError:
    return NvcFormatError(f"chunk 'META' at byte {offset_bytes}: {e}")
