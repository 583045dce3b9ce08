"""Classical anchors (x264, x265, SVT-AV1, libaom) through ffmpeg: one raw elementary stream per video.

Every anchor sees exactly the RGB frames the benchmark read with
``nvcodec.media.read_frames`` (the call nvcodec.encode makes). The frames go to
ffmpeg as raw ``rgb24`` through a pipe, with the frame rate given explicitly;
ffmpeg converts them to 4:2:0 with an explicit BT.601 limited-range matrix and
tags the stream so. The stream is written raw (``-f h264`` / ``-f hevc``), so
no container bytes are counted, and decoded back to RGB with ``read_frames``,
the same conversion path as every source video (it honours the BT.601 tag).

AV1 has no Annex B byte stream: ffmpeg writes IVF (``-f ivf``) and the counted
bytes are its temporal units only, i.e. the Section 5 low-overhead OBU stream
(temporal delimiters, sequence headers and frames: what ``-f obu`` writes), split
out with :func:`nvcodec.keyframes.split_ivf`; the IVF framing (a 32-byte file
header and a 12-byte header per frame) is not counted. Both AV1 encoders run
single-threaded with ``tune`` PSNR (SVT-AV1 ``tune=1``, libaom ``-tune psnr``) and
constant quality (libaom ``-crf N -b:v 0``).

The command lines are built with ffmpeg-python and recorded verbatim.

The frame rate matters: x264's rate control divides a frame's complexity by its
duration relative to 1/25 s, so the same CRF at 2 fps (the paper protocol) spends
far more bits than at 25 fps (one CIF clip, 16 frames at 320x256, CRF 32:
0.321 bpp / 35.8 dB at 2 fps vs 0.133 bpp / 31.3 dB at 25 fps). We pass the true
rate of the frames (as nvcodec records it) and extend the CRF ladder instead.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from nvcodec import media
from nvcodec.keyframes import split_ivf

# Our RGB -> YUV step: BT.601 limited range, accurate rounding, and the stream tagged so.
_TO_YUV = dict(out_color_matrix="bt601", out_range="tv", flags="bicubic+accurate_rnd+full_chroma_int")
_TAGS = dict(colorspace="smpte170m", color_primaries="smpte170m", color_trc="smpte170m", color_range="tv")

# Anchor name -> (encoder, preset, elementary-stream muxer, file suffix). Names are wire-stable.
# The AV1 presets: SVT-AV1 ``-preset 6`` and libaom ``-cpu-used 6`` (both 0 = slowest .. 8 = fastest
# used here; measured at 160x128, one thread: 7 s and 11 s for 300 frames, where x264 medium takes ~1 s).
ANCHORS = {
    "x264-medium": ("libx264", "medium", "h264", ".264"),
    "x264-veryslow": ("libx264", "veryslow", "h264", ".264"),
    "x265-medium": ("libx265", "medium", "hevc", ".265"),
    "svtav1-p6": ("libsvtav1", "6", "ivf", ".ivf"),
    "aom-c6": ("libaom-av1", "6", "ivf", ".ivf"),
}
# Default CRF ladders: x264/x265 CRF 22..42 and AV1 CRF 30..63 (0..63 scale) span about the same
# 24..36 dB at 160x128 on the corpus.
DEFAULT_CRFS = {"h264": (22, 27, 32, 37, 42), "hevc": (22, 27, 32, 37, 42), "ivf": (30, 40, 48, 56, 63)}


def default_crfs(anchor: str) -> tuple[int, ...]:
    """The CRF ladder an anchor runs when no ``--crfs`` is given."""
    return DEFAULT_CRFS[ANCHORS[anchor][2]]

# Encoder-settings SEI payloads (H.264 user_data_unregistered carrying the option string).
_SETTINGS_MARKERS = (b"x264 - core", b"x265 (build")


@dataclass(frozen=True)
class StreamResult:
    n_bytes: int                  # elementary stream (AV1: the OBU stream, IVF framing not counted)
    settings_sei_bytes: int       # bytes of the NAL unit(s) carrying the encoder's option string
    encode_s: float
    decode_s: float
    command: list[str]
    frames: np.ndarray            # decoded (N, H, W, 3) uint8 RGB


def encode_command(anchor: str, crf: int, width: int, height: int, fps: Fraction, out: Path) -> list[str]:
    """The ffmpeg command line for one anchor stream (reads rgb24 from stdin)."""
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; known: {sorted(ANCHORS)}")
    vcodec, preset, muxer, _ = ANCHORS[anchor]
    fps = Fraction(fps)
    opts = dict(vcodec=vcodec, crf=crf, pix_fmt="yuv420p", format=muxer, **_TAGS)
    if vcodec == "libsvtav1":
        opts.update(preset=preset, **{"svtav1-params": "tune=1:lp=1"})
    elif vcodec == "libaom-av1":
        opts.update({"cpu-used": preset, "b:v": 0, "tune": "psnr", "threads": 1})
    else:
        opts.update(preset=preset, tune="psnr")
    if vcodec == "libx265":
        opts["x265-params"] = "log-level=error"
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                          framerate=f"{fps.numerator}/{fps.denominator}")
    args = stream.filter("scale", **_TO_YUV).output(str(out), **opts).get_args()
    return [media.ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-y"] + args


def settings_sei_bytes(data: bytes) -> int:
    """Bytes (start code included) of the Annex B NAL units that carry an encoder option string."""
    starts, i = [], data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = data.find(b"\x00\x00\x01", i + 3)
    total = 0
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        begin = s - 1 if s > 0 and data[s - 1] == 0 else s       # 4-byte start code
        if any(m in data[s:end] for m in _SETTINGS_MARKERS):
            # trailing zero bytes belong to the next start code
            while end > s and data[end - 1] == 0 and k + 1 < len(starts):
                end -= 1
            total += end - begin
    return total


def code_stream(frames: np.ndarray, anchor: str, crf: int, fps: Fraction, out: Path) -> StreamResult:
    """Encode (N, H, W, 3) uint8 RGB frames to ``out`` and decode them back to RGB."""
    n, height, width, _ = frames.shape
    cmd = encode_command(anchor, crf, width, height, fps, out)
    started = time.perf_counter()
    proc = media.FfmpegProcess(cmd, out, f"{anchor} encode", stdin=True, stdout=False)
    try:
        proc.proc.stdin.write(np.ascontiguousarray(frames).tobytes())
    except BrokenPipeError:
        proc.kill()
        raise media.MediaError(out, f"{anchor} encode: ffmpeg stopped reading", proc.stderr()) from None
    text = proc.finish()
    encode_s = time.perf_counter() - started
    n_coded = media.last_frame_count(text)
    if n_coded is not None and n_coded != n:
        raise media.MediaError(out, f"{anchor} encode: sent {n} frames, ffmpeg coded {n_coded}", text)
    data = Path(out).read_bytes()
    if ANCHORS[anchor][2] == "ivf":           # count the OBU stream, not the IVF framing
        units, _ = split_ivf(data)
        n_bytes, sei_bytes = sum(len(u) for u in units), 0
        if len(units) != n:
            raise media.MediaError(out, f"{anchor} encode: sent {n} frames, the IVF file holds {len(units)}")
    else:
        n_bytes, sei_bytes = len(data), settings_sei_bytes(data)
    started = time.perf_counter()
    decoded = np.stack(list(media.read_frames(out)))
    decode_s = time.perf_counter() - started
    if decoded.shape != frames.shape:
        raise media.MediaError(out, f"{anchor} decode: got {decoded.shape}, expected {frames.shape}")
    return StreamResult(n_bytes, sei_bytes, encode_s, decode_s, cmd, decoded)


def encoder_versions() -> dict[str, str]:
    """ffmpeg's version line (libx264/libx265/libsvtav1/libaom are linked into it)."""
    exe = media.ffmpeg_exe()
    out = subprocess.run([exe, "-hide_banner", "-version"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True).stdout
    return {"ffmpeg_exe": exe, "ffmpeg": out.splitlines()[0] if out else "unknown"}
