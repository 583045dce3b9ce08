"""The keyframe track: a video's keyframes coded by a classical codec through ffmpeg.

One ffmpeg process encodes all keyframes of a video (never one per keyframe); the
resulting elementary stream is split into *segments*, each independently
decodable:

- ``mode='intra'``: every keyframe is a random-access picture and its own segment;
- ``mode='inter'``: the keyframes form an inter-coded track with a forced
  random-access picture every ``segment_length`` keyframes; a segment is one such
  group (random access from the segment start).

Segment bytes are standard elementary streams: AV1 as a Section 5 low-overhead OBU
stream (temporal units with their temporal delimiters, as in ``-f obu``), HEVC and
VVC as Annex B byte streams. Frames go in and come out as 4:2:0 YUV converted by
:mod:`nvcodec.color` (BT.601 full range, centre-sited chroma): ffmpeg only
encodes/decodes YUV, which the codec standards make bit-exact, so
:func:`decode_keyframes` gives identical RGB with any ffmpeg build. Frames are
edge-padded to the codec's coded size (even, at least ``MIN_SIZE[encoder]``) and cropped back.
Encoder options are fixed to be deterministic (single-threaded encoders).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np

from nvcodec import color
from nvcodec.errors import NvcInputError
from nvcodec.media import (FfmpegProcess, MediaError, ffmpeg_base_args, ffmpeg_codecs, ffmpeg_exe, ffmpeg_path,
                           last_frame_count, run)

# Coded sizes are even and at least this per encoder: SVT-AV1 refuses sizes below 64, x265
# aborts on inter coding narrower than 64 (ffmpeg 5.1's libx265); libaom and vvenc work from 16.
MIN_SIZE = {"libaom-av1": 16, "libsvtav1": 64, "libx265": 64, "libvvenc": 16}
_FPS = 25                # nominal rate given to the encoders; keyframes carry no timing
_X265_PRESETS = ("placebo", "veryslow", "slower", "slow", "medium", "fast", "faster", "veryfast",
                 "superfast", "ultrafast")     # index = speed


@dataclass(frozen=True)
class _CodecSpec:
    encoders: tuple[str, ...]     # allowed ffmpeg encoders, first is the default
    decoders: tuple[str, ...]     # ffmpeg decoders, first available is used (all are conformant)
    muxer: str                    # what ffmpeg writes; split into segments here
    demuxer: str                  # what a segment is fed to ffmpeg as
    max_quality: int              # quality is crf (av1, hevc) or qp (vvc), 0..max
    max_speed: int
    bit_depth: int
    default_quality: int


CODECS = {
    "av1": _CodecSpec(("libaom-av1", "libsvtav1"), ("libdav1d", "libaom-av1"), "ivf", "obu", 63, 8, 8, 44),
    "hevc": _CodecSpec(("libx265",), ("hevc",), "hevc", "hevc", 51, 9, 8, 26),
    "vvc": _CodecSpec(("libvvenc",), ("vvc",), "vvc", "vvc", 63, 4, 10, 34),
}
MODES = ("intra", "inter")
# Defaults chosen with benchmarks/bench_keyframes.py (table in its docstring).
DEFAULT_ENCODER = {("av1", "inter"): "libsvtav1", ("av1", "intra"): "libaom-av1", ("hevc", "inter"): "libx265",
                   ("hevc", "intra"): "libx265", ("vvc", "intra"): "libvvenc"}
DEFAULT_SPEED = {"libaom-av1": 6, "libsvtav1": 2, "libx265": 4, "libvvenc": 4}
DEFAULT_SEGMENT_LENGTH = 32


@dataclass(frozen=True)
class KeyframeCodec:
    """How keyframes are coded; stored in metadata["keyframe_codec"].

    ``quality``: crf for av1 (libaom/SVT, 0..63) and hevc (x265, 0..51), qp for vvc
    (0..63); lower is better. ``speed``: libaom ``cpu-used`` / SVT ``preset`` (0..8, higher
    faster), x265 preset (0 = placebo .. 4 = medium .. 9 = ultrafast), vvenc preset
    ``4 - speed`` (0 = slower .. 4 = faster). ``segment_length``: keyframes per
    random-access segment ('inter' mode; always 1 in 'intra' mode).

    Default (measured, benchmarks/bench_keyframe_codecs.py, benchmarks/results/keyframe-codecs):
    AV1 inter track, SVT-AV1 preset 2, crf 44, 32 keyframes per segment: BD-rate -10.5 % against
    preset 5 (nvcodec's earlier default) on 7 corpus clips at 160x128, at 4.9x its encode
    time; preset 4 gave -5.2 % (21 clips, 160x128) and -7.0 % (7 clips, 320x256) at 2-2.3x;
    libaom cpu-used 6 +17 %, x265 medium +36 %, VVC intra far worse. 'intra' defaults to libaom
    (SVT codes intra-only frames, which are not random-access points).
    """
    codec: str = "av1"
    mode: str = "inter"
    quality: int | None = None          # None: the codec's default_quality
    speed: int | None = None            # None: DEFAULT_SPEED[encoder]
    segment_length: int | None = None   # None: 1 (intra) or DEFAULT_SEGMENT_LENGTH (inter)
    encoder: str = ""                   # '': DEFAULT_ENCODER[codec, mode]

    def __post_init__(self) -> None:
        spec = CODECS.get(self.codec)
        if spec is None:
            raise NvcInputError(f"keyframe codec: unknown codec {self.codec!r} (known: {sorted(CODECS)})")
        if self.mode not in MODES:
            raise NvcInputError(f"keyframe codec: mode must be one of {MODES}, got {self.mode!r}")
        if self.codec == "vvc" and self.mode == "inter":
            raise NvcInputError("keyframe codec vvc: only mode='intra' is supported (vvenc's random-access "
                             "GOPs put leading pictures across segment boundaries)")
        encoder = self.encoder or DEFAULT_ENCODER[self.codec, self.mode]
        if encoder not in spec.encoders:
            raise NvcInputError(f"keyframe codec {self.codec}: encoder must be one of {spec.encoders}, got {encoder!r}")
        if encoder == "libsvtav1" and self.mode == "intra":
            raise NvcInputError("keyframe codec av1: libsvtav1 codes intra-only frames, not key frames, so "
                             "mode='intra' needs encoder='libaom-av1'")
        defaults = {"encoder": encoder, "quality": spec.default_quality, "speed": DEFAULT_SPEED[encoder],
                    "segment_length": 1 if self.mode == "intra" else DEFAULT_SEGMENT_LENGTH}
        for name, value in defaults.items():
            if getattr(self, name) in (None, ""):
                object.__setattr__(self, name, value)
        for name, lo, hi in (("quality", 0, spec.max_quality), ("speed", 0, spec.max_speed),
                             ("segment_length", 1, 1 if self.mode == "intra" else 1024)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise NvcInputError(f"keyframe codec {self.codec} {self.mode}: {name} must be an int in "
                                 f"{lo}..{hi}, got {value!r}")

    @property
    def min_quality(self) -> int:
        """The best quality the encoder honours: ffmpeg's libsvtav1 wrapper takes crf 0 for 'unset' and
        codes it like its default (measured: crf 0 and crf 35 gave the same bytes), so it starts at 1."""
        return 1 if self.encoder == "libsvtav1" else 0

    def to_json(self) -> dict:
        return {"codec": self.codec, "mode": self.mode,
                "params": {"quality": self.quality, "speed": self.speed,
                           "segment_length": self.segment_length, "encoder": self.encoder}}

    @classmethod
    def from_json(cls, d: dict) -> "KeyframeCodec":
        if not isinstance(d, dict) or set(d) != {"codec", "mode", "params"} or not isinstance(d["params"], dict):
            raise NvcInputError(f"keyframe_codec: expected keys codec, mode, params; got {d!r}")
        known = {f.name for f in fields(cls)} - {"codec", "mode"}
        unknown = set(d["params"]) - known
        if unknown:
            raise NvcInputError(f"keyframe_codec: unknown params {sorted(unknown)}")
        return cls(codec=d["codec"], mode=d["mode"], **d["params"])


def coded_size(encoder: str, width: int, height: int) -> tuple[int, int]:
    """The (width, height) the encoder sees: even and at least MIN_SIZE[encoder] (edge padding)."""
    low = MIN_SIZE[encoder]
    return max(low, width + width % 2), max(low, height + height % 2)


def _require(exe: str, codec: KeyframeCodec, decode: bool) -> str:
    """The ffmpeg encoder or decoder to use; MediaError if this ffmpeg lacks it."""
    spec, have = CODECS[codec.codec], ffmpeg_codecs(exe)
    if not decode:
        if codec.encoder not in have:
            raise MediaError(exe, f"this ffmpeg has no {codec.encoder} encoder for keyframe codec "
                                  f"{codec.codec!r}; use another codec or point NVCODEC_FFMPEG at an ffmpeg "
                                  f"that has it (e.g. imageio-ffmpeg's 9.x build for vvc)")
        return codec.encoder
    for name in spec.decoders:
        if name in have:
            return name
    raise MediaError(exe, f"this ffmpeg has no decoder for keyframe codec {codec.codec!r} "
                          f"(needs one of {spec.decoders}); point NVCODEC_FFMPEG at an ffmpeg that has it")


def _encoder_opts(codec: KeyframeCodec, n: int) -> dict:
    """ffmpeg output options; every encoder single-threaded so the bytes are reproducible."""
    seg, intra = codec.segment_length, codec.mode == "intra"
    if codec.encoder == "libaom-av1":
        opts = {"c:v": "libaom-av1", "crf": codec.quality, "b:v": 0, "cpu-used": codec.speed,
                "threads": 1, "row-mt": 0, "tiles": "1x1"}
        if intra:
            opts.update({"usage": "allintra", "g": 0})
        else:
            opts.update({"g": seg, "keyint_min": seg})
    elif codec.encoder == "libsvtav1":
        if codec.quality < codec.min_quality:     # refused when coding only: such files exist and decode
            raise NvcInputError(f"keyframe codec av1 (libsvtav1): quality must be {codec.min_quality}..63, got "
                             f"{codec.quality} (ffmpeg's wrapper codes crf 0 like its default)")
        params = "lp=1:scd=0" + (":keyint=1" if intra else f":keyint={seg}")
        opts = {"c:v": "libsvtav1", "crf": codec.quality, "preset": codec.speed, "svtav1-params": params}
    elif codec.encoder == "libx265":
        keyint = 1 if intra else seg
        params = (f"keyint={keyint}:min-keyint={keyint}:scenecut=0:open-gop=0:repeat-headers=1:info=0:"
                  f"frame-threads=1:pools=1:log-level=error")
        opts = {"c:v": "libx265", "crf": codec.quality, "preset": _X265_PRESETS[codec.speed],
                "x265-params": params}
    else:  # libvvenc, intra only
        opts = {"c:v": "libvvenc", "qp": codec.quality, "preset": 4 - codec.speed, "threads": 1, "qpa": 0,
                "vvenc-params": "IntraPeriod=1:DecodingRefreshType=idr:Threads=1"}
    # Force the random-access pictures where segments start (every picture in intra mode).
    opts["force_key_frames"] = "expr:1" if intra else f"expr:eq(mod(n,{seg}),0)"
    return opts


def _to_planes(frame: np.ndarray, w: int, h: int, bit_depth: int) -> bytes:
    pad = ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0))
    planes = color.rgb_to_yuv420(np.pad(frame, pad, mode="edge"))
    if bit_depth == 10:
        return b"".join((p.astype("<u2") << 2).tobytes() for p in planes)
    return b"".join(p.tobytes() for p in planes)


def encode_keyframes(frames: np.ndarray, codec: KeyframeCodec) -> list[tuple[int, int, bytes]]:
    """Code (n_kf, H, W, 3) uint8 RGB keyframes with one ffmpeg process; return the
    segments (first_keyframe, n_keyframes, data), each decodable alone, covering 0..n_kf-1."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"frames: expected uint8 (n_kf >= 1, H, W, 3), got {frames.dtype} {frames.shape}")
    if not isinstance(codec, KeyframeCodec):
        raise TypeError(f"codec: expected KeyframeCodec, got {type(codec).__name__}")
    exe = ffmpeg_exe()
    spec = CODECS[codec.codec]
    _require(exe, codec, decode=False)
    n, h, w = frames.shape[:3]
    cw, ch = coded_size(codec.encoder, w, h)
    pix_fmt = "yuv420p10le" if spec.bit_depth == 10 else "yuv420p"
    with tempfile.TemporaryDirectory(prefix="nvcodec-kf-") as tmp:
        src, dst = Path(tmp) / "in.yuv", Path(tmp) / f"out.{spec.muxer}"
        with open(src, "wb") as f:
            for frame in frames:
                f.write(_to_planes(frame, cw, ch, spec.bit_depth))
        stream = ffmpeg.input(ffmpeg_path(src), format="rawvideo", pix_fmt=pix_fmt, s=f"{cw}x{ch}", framerate=_FPS)
        args = ffmpeg_base_args(exe) + ["-y"] + stream.output(
            ffmpeg_path(dst), format=spec.muxer, pix_fmt=pix_fmt, an=None, **_encoder_opts(codec, n)).get_args()
        text = run(args, f"<keyframes {w}x{h}>", f"encode keyframes ({codec.encoder})")
        if last_frame_count(text) not in (None, n):
            raise MediaError(f"<keyframes {w}x{h}>", f"encoder wrote {last_frame_count(text)} of {n} frames", text)
        data = dst.read_bytes()
    units, is_rap = _split_units(codec.codec, data)
    if len(units) != n:
        raise MediaError(f"<keyframes {w}x{h}>", f"{codec.codec}: expected {n} access units, parsed {len(units)}")
    segments = []
    for first in range(0, n, codec.segment_length):
        if not is_rap[first]:
            raise MediaError(f"<keyframes {w}x{h}>", f"{codec.encoder} did not start keyframe {first} "
                                                     f"with a random-access picture")
        count = min(codec.segment_length, n - first)
        segments.append((first, count, b"".join(units[first:first + count])))
    return segments


def decode_keyframes(data: bytes, codec: KeyframeCodec, width: int, height: int, n_keyframes: int) -> np.ndarray:
    """Decode one segment to (n_keyframes, height, width, 3) uint8 RGB, the same on every machine.

    Memory follows the frames the stream really holds, never the count it is said to hold."""
    return np.stack(list(iter_keyframes(data, codec, width, height, n_keyframes)))


def iter_keyframes(data: bytes, codec: KeyframeCodec, width: int, height: int,
                   n_keyframes: int) -> Iterator[np.ndarray]:
    """Yield a segment's keyframes, (height, width, 3) uint8 RGB, one at a time as ffmpeg delivers them.

    The stream must hold exactly ``n_keyframes`` pictures: MediaError as soon as it holds more, or
    when it ends with fewer (after the ones it did hold). Nothing is allocated from ``n_keyframes``,
    so a declared count can lie by any amount at the cost of one frame. A consumer that stops early
    (closes the generator) ends the ffmpeg process; the remaining count is then not checked.
    """
    if width < 1 or height < 1 or n_keyframes < 1:
        raise ValueError(f"bad keyframe geometry {width}x{height} x {n_keyframes}")
    exe = ffmpeg_exe()
    spec = CODECS[codec.codec]
    decoder = _require(exe, codec, decode=True)
    cw, ch = coded_size(codec.encoder, width, height)
    bytes_per_sample = 2 if spec.bit_depth == 10 else 1
    frame_bytes = (cw * ch + 2 * (cw // 2) * (ch // 2)) * bytes_per_sample
    label = f"<keyframe segment {codec.codec} {width}x{height}>"
    with tempfile.TemporaryDirectory(prefix="nvcodec-kf-") as tmp:
        src = Path(tmp) / f"seg.{spec.demuxer}"
        src.write_bytes(data)
        stream = ffmpeg.input(ffmpeg_path(src), format=spec.demuxer, vcodec=decoder)["V:0"]
        args = ffmpeg_base_args(exe) + stream.output(
            "pipe:", format="rawvideo", pix_fmt="yuv420p10le" if spec.bit_depth == 10 else "yuv420p",
            fps_mode="passthrough").get_args()
        proc = FfmpegProcess(args, label, "decode keyframes")
        n_decoded = 0
        try:
            while True:
                buf = proc.read_exact(frame_bytes)
                if buf is None:
                    break
                if n_decoded == n_keyframes:
                    raise MediaError(label, f"the segment holds more than the {n_keyframes} keyframe(s) declared")
                if spec.bit_depth == 10:
                    buf = ((np.frombuffer(buf, "<u2") + 2) >> 2).clip(0, 255).astype(np.uint8).tobytes()
                y, cb, cr = color.yuv420_from_bytes(buf, cw, ch)
                n_decoded += 1
                yield color.yuv420_to_rgb(y, cb, cr)[:height, :width]
        except BaseException:
            proc.kill()          # an error, or the consumer stopped early (GeneratorExit)
            raise
        text = proc.finish()
    if n_decoded != n_keyframes:
        raise MediaError(label, f"the segment holds {n_decoded} keyframe(s), {n_keyframes} declared",
                         text)


# ---------------------------------------------------------------- elementary-stream splitting

def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            break
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise MediaError("<av1 stream>", f"bad leb128 at byte {pos}")


def split_ivf(data: bytes) -> tuple[list[bytes], list[bool]]:
    """IVF (32-byte header, 12-byte frame headers) -> AV1 temporal units and 'starts with a key frame'.

    The units are the Section 5 low-overhead OBU stream without the IVF framing (what
    ``-f obu`` writes); benchmarks.anchors counts AV1 anchor bytes with it."""
    if len(data) < 32 or data[:4] != b"DKIF":
        raise MediaError("<av1 stream>", "encoder output is not IVF")
    header_len = int.from_bytes(data[6:8], "little")
    pos, units, raps = header_len, [], []
    while pos < len(data):
        if pos + 12 > len(data):
            raise MediaError("<av1 stream>", f"truncated IVF frame header at byte {pos}")
        size = int.from_bytes(data[pos:pos + 4], "little")
        tu = data[pos + 12:pos + 12 + size]
        if len(tu) != size:
            raise MediaError("<av1 stream>", f"truncated IVF frame at byte {pos}")
        units.append(tu)
        raps.append(_av1_starts_with_key_frame(tu))
        pos += 12 + size
    return units, raps


def _av1_starts_with_key_frame(tu: bytes) -> bool:
    """A temporal unit starting a random-access point: TD, sequence header, then a shown key frame."""
    pos, seen_seq = 0, False
    while pos < len(tu):
        head = tu[pos]
        obu_type, ext, has_size = (head >> 3) & 0xF, (head >> 2) & 1, (head >> 1) & 1
        pos += 1 + ext
        if not has_size:
            return False
        size, pos = _leb128(tu, pos)
        if obu_type == 1:                                  # OBU_SEQUENCE_HEADER
            seen_seq = True
        elif obu_type in (3, 6):                           # OBU_FRAME_HEADER, OBU_FRAME
            # show_existing_frame (1 bit) = 0, frame_type (2 bits) = KEY_FRAME (0)
            return seen_seq and size > 0 and (tu[pos] & 0xE0) == 0
        pos += size
    return False


def _nal_starts(data: bytes) -> list[tuple[int, int]]:
    """(unit start incl. zero_byte, NAL header offset) for each Annex B NAL unit."""
    out, pos = [], 0
    while True:
        pos = data.find(b"\x00\x00\x01", pos)
        if pos < 0:
            return out
        start = pos - 1 if pos > 0 and data[pos - 1] == 0 else pos
        out.append((start, pos + 3))
        pos += 3


# NAL unit types (H.265 Table 7-1, H.266 Table 5) that may start an access unit when they
# follow a picture's VCL NAL units, and the random-access (IRAP) picture types.
_HEVC_PREFIX = {32, 33, 34, 35, 39, 41, 42, 43, 44, *range(48, 56)}
_HEVC_IRAP = set(range(16, 24))
_VVC_PREFIX = {12, 13, 14, 15, 16, 17, 19, 20, 23, 26, 27}
_VVC_IRAP = {7, 8, 9}


def _split_annexb(data: bytes, vvc: bool) -> tuple[list[bytes], list[bool]]:
    """Annex B byte stream -> access units (H.265 7.4.2.4.4 / H.266 7.4.2.4.3) and 'is IRAP'."""
    bounds, raps = [], []
    seen_vcl, cur_rap = False, False
    for start, hdr in _nal_starts(data):
        if hdr + 2 >= len(data):
            continue
        if vvc:
            nal_type = (data[hdr + 1] >> 3) & 0x1F
            is_vcl = nal_type <= 11
            first_in_pic = is_vcl and bool(data[hdr + 2] & 0x80)      # sh_picture_header_in_slice_header_flag
            is_prefix = nal_type in _VVC_PREFIX
            is_rap = nal_type in _VVC_IRAP
        else:
            nal_type = (data[hdr] >> 1) & 0x3F
            is_vcl = nal_type <= 31
            first_in_pic = is_vcl and bool(data[hdr + 2] & 0x80)      # first_slice_segment_in_pic_flag
            is_prefix = nal_type in _HEVC_PREFIX
            is_rap = nal_type in _HEVC_IRAP
        if not bounds or (seen_vcl and (is_prefix or first_in_pic)):
            if bounds:
                raps.append(cur_rap)
            bounds.append(start)
            seen_vcl, cur_rap = False, False
        if is_vcl:
            if not seen_vcl:
                cur_rap = is_rap
            seen_vcl = True
    if bounds:
        raps.append(cur_rap)
    units = [data[a:b] for a, b in zip(bounds, bounds[1:] + [len(data)])]
    return units, raps


def _split_units(codec: str, data: bytes) -> tuple[list[bytes], list[bool]]:
    if codec == "av1":
        return split_ivf(data)
    return _split_annexb(data, vvc=codec == "vvc")
