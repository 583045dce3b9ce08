"""Everything ffmpeg: which binary, how it is run, probing, reading and writing video.

Command lines are built with ``ffmpeg-python`` (``.get_args()``) and run by
:func:`run` / :class:`FfmpegProcess`, never through a shell: stderr goes to a
temporary file (so a chatty ffmpeg can never block on a full pipe), frames are
read from stdout with exact reads (short reads are looped over), and both the
exit status and the frame count are checked. Every failure is one
:class:`MediaError`: a one-line message naming the file, with the tail of ffmpeg's
stderr kept aside (``.stderr_tail``) for ``nvcodec --debug``.

Every path handed to ffmpeg goes through :func:`ffmpeg_path` (``file:`` + the absolute
path), so no file name is read as a protocol (``concat:a.mp4``) or an option.

Only stream #0 *of type video* is used (``-map 0:V:0``: the first video stream
that is not an attached picture); audio, subtitles and further video streams
are ignored. Probing needs nothing but the ``ffmpeg`` binary (the imageio-ffmpeg
wheel ships no ffprobe): stream facts come from ``ffmpeg -i``'s report and the
exact frame count from decoding the stream once to the ``null`` muxer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import ffmpeg
import numpy as np

from nvcodec import color
from nvcodec.errors import NvcError

STDERR_TAIL_CHARS = 1500        # how much of ffmpeg's stderr a MediaError quotes
NOMINAL_FPS = Fraction(25)      # what ffmpeg assumes for streams without timing (raw .264)
TEMP_PREFIX = ".nvc-"           # temporary outputs: ".nvc-XXXXXXXX.y4m", renamed into place when complete
MP4_CRF = 18                    # decode --format mp4: x264 CRF of the default yuv420p output (visually near-lossless)


class MediaError(NvcError, ValueError):
    """A video could not be probed, read or written. The message is one line naming the
    file and what failed; ``stderr`` holds ffmpeg's whole stderr, ``stderr_tail`` its end."""

    def __init__(self, path, what: str, stderr: str = ""):
        self.path = str(path)
        self.what = what
        self.stderr = stderr
        super().__init__(f"{self.path}: {what}")

    @property
    def stderr_tail(self) -> str:
        """The last STDERR_TAIL_CHARS characters of ffmpeg's stderr ('' when there was none)."""
        return self.stderr.strip()[-STDERR_TAIL_CHARS:]


def ffmpeg_path(path) -> str:
    """How a local path is given to ffmpeg: ``file:`` + the absolute path, so that a name such as
    ``concat:a.mp4``, ``http:x`` or ``-y.mp4`` is always a plain file."""
    return "file:" + os.path.abspath(os.fspath(path))


def ffmpeg_exe() -> str:
    """The ffmpeg binary: ``$NVCODEC_FFMPEG``, else ``ffmpeg`` on PATH, else imageio-ffmpeg's."""
    env = os.environ.get("NVCODEC_FFMPEG")
    if env:
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # noqa: BLE001 - any failure means "no ffmpeg"
        raise MediaError("ffmpeg", f"no ffmpeg binary: set NVCODEC_FFMPEG, put ffmpeg on PATH "
                                   f"or install imageio-ffmpeg ({e})") from None


@lru_cache(maxsize=None)
def ffmpeg_codecs(exe: str) -> frozenset[str]:
    """Names of the encoders and decoders ``exe`` was built with (``-encoders``/``-decoders``)."""
    names = set()
    for flag in ("-encoders", "-decoders"):
        out = subprocess.run([exe, "-hide_banner", flag], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, errors="replace").stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
                names.add(parts[1])
    return frozenset(names)


def ffmpeg_base_args(exe: str) -> list[str]:
    # -nostdin: never read the terminal; -nostats: only the final "frame=" report
    return [exe, "-nostdin", "-hide_banner", "-nostats"]


def _stderr_text(f) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def run(args: Sequence[str], path, what: str, *, ok_codes=(0,)) -> str:
    """Run ffmpeg to completion (no pipes to read); return its stderr; MediaError on failure."""
    with tempfile.TemporaryFile() as err:
        try:
            rc = subprocess.run(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err).returncode
        except OSError as e:
            raise MediaError(path, f"{what}: cannot start {args[0]!r}: {e}") from None
        text = _stderr_text(err)
    if rc not in ok_codes:
        raise MediaError(path, f"{what}: ffmpeg exited with status {rc}", text)
    return text


def last_frame_count(stderr: str) -> int | None:
    """ffmpeg's own count of output frames: the last ``frame=  N`` of its final report."""
    found = re.findall(r"frame=\s*(\d+)", stderr)
    return int(found[-1]) if found else None


# ---------------------------------------------------------------- probing

@dataclass(frozen=True)
class VideoInfo:
    """Facts about stream #0 of type video. ``width``/``height`` are as displayed (a ±90°
    display rotation, which ffmpeg applies when decoding, swaps them). ``color_range`` is
    'tv', 'pc' or 'unknown'; ``color_space`` the matrix ffmpeg reports ('bt709', 'bt470bg',
    'smpte170m', ... or 'unknown'). ``fps`` is avg_frame_rate as ffmpeg reports it, made
    rational (29.97 -> 30000/1001) unless a clean nominal rate fits the decoded timing
    better (see ``_choose_fps``); streams without timing get ffmpeg's nominal 25."""
    width: int
    height: int
    fps_num: int
    fps_den: int
    n_frames: int
    pix_fmt: str
    duration_s: float
    color_range: str
    color_space: str

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+.*?: Video: (.*)$")
_SIZE_RE = re.compile(r"(?<![\w.])(\d{1,5})x(\d{1,5})(?![\w.])")
_PIXFMT_RE = re.compile(r"^\s*([a-z0-9_]+?)(?:\((.*?)\))?\s*$")
_MATRICES = ("bt709", "bt470bg", "smpte170m", "bt2020nc", "bt2020c", "smpte240m", "fcc",
             "ycgcor", "gbr", "bt601")


def _fps_fraction(text: str) -> Fraction:
    """'25' -> 25, '29.97' -> 30000/1001, '30.02' -> 1501/50, '1k' -> 1000."""
    mult = 1000 if text.endswith("k") else 1
    value = Fraction(text.rstrip("k")) * mult
    if value.denominator != 1:
        ntsc = round(value * Fraction(1001, 1000))
        if abs(value - Fraction(ntsc * 1000, 1001)) < Fraction(1, 100):
            return Fraction(ntsc * 1000, 1001)
    return value.limit_denominator(1001)


def _split_top_level(text: str) -> list[str]:
    """Split ffmpeg's stream description at commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    rates: dict              # {"fps": avg_frame_rate, "tbr": r_frame_rate} as ffmpeg printed them
    pix_fmt: str
    duration_s: float | None
    color_range: str
    color_space: str


def _probe_header(path, exe: str) -> _Header:
    """Parse ``ffmpeg -i path``'s report (no decoding). ffmpeg exits 1 here ("no output")."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(path, "no such file")
    if p.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    text = run(ffmpeg_base_args(exe) + ["-i", ffmpeg_path(p)], path, "probe", ok_codes=(0, 1))
    lines = text.splitlines()
    if not any(line.startswith("Input #0") for line in lines):
        raise MediaError(path, "not a media file ffmpeg can open", text)
    stream, side = None, []
    for i, line in enumerate(lines):
        m = _STREAM_RE.match(line)
        if m and "(attached pic)" not in line:
            stream = m.group(1)
            for follow in lines[i + 1:]:
                if re.match(r"^\s*Stream #", follow) or re.match(r"^\S", follow):
                    break
                side.append(follow)
            break
    if stream is None:
        raise MediaError(path, "no video stream", text)
    parts = _split_top_level(stream)
    pix_fmt, color_range, color_space = "unknown", "unknown", "unknown"
    if len(parts) > 1:
        m = _PIXFMT_RE.match(parts[1])
        if m:
            pix_fmt = m.group(1)
            for tok in (m.group(2) or "").replace("/", ",").split(","):
                tok = tok.strip()
                if tok in ("tv", "pc") and color_range == "unknown":
                    color_range = tok
                elif tok in _MATRICES and color_space == "unknown":
                    color_space = tok
    size = next((m for m in (_SIZE_RE.search(x) for x in parts[1:]) if m), None)
    if size is None or int(size.group(1)) < 1 or int(size.group(2)) < 1:
        raise MediaError(path, "video stream has no frame size (no decodable frames?)", text)
    width, height = int(size.group(1)), int(size.group(2))
    rates = {}
    for key in ("fps", "tbr"):
        m = re.search(r"(\d+(?:\.\d+)?k?) " + key + r"\b", stream)
        if m and float(m.group(1).rstrip("k")) > 0:
            rates[key] = _fps_fraction(m.group(1))
    rot = re.search(r"rotation of (-?[\d.]+) degrees", "\n".join(side))
    if rot and round(float(rot.group(1))) % 180 == 90:
        width, height = height, width
    dur = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    duration_s = (int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))) if dur else None
    return _Header(width, height, rates, pix_fmt, duration_s, color_range, color_space)


def _decode_count(path, exe: str) -> tuple[int, float | None]:
    """(exact frame count, end time in seconds) of stream #0 of type video, by decoding it
    once to the null muxer and reading ffmpeg's final ``frame=`` / ``time=`` report."""
    args = ffmpeg.input(ffmpeg_path(path))["V:0"].output("-", format="null").get_args()
    text = run(ffmpeg_base_args(exe) + args, path, "decode (frame count)")
    n = last_frame_count(text)
    if not n:
        raise MediaError(path, "no decodable video frames", text)
    times = re.findall(r"time=\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    end_s = int(times[-1][0]) * 3600 + int(times[-1][1]) * 60 + float(times[-1][2]) if times else None
    return n, end_s


def count_frames(path) -> int:
    """Exact number of frames of stream #0 of type video (decodes the whole stream)."""
    exe = ffmpeg_exe()
    _probe_header(path, exe)
    return _decode_count(path, exe)[0]


def _clean_rate(r: Fraction) -> bool:
    return r.denominator in (1, 1001)


def _choose_fps(rates: dict, n_frames: int, end_s: float | None) -> Fraction:
    """The frame rate, robust to what different ffmpeg builds print.

    Candidates: avg rate ('fps'), nominal rate ('tbr') and tbr/2 (raw H.264 streams report
    the field rate; 9.x prints the raw demuxer's default 25 as 'fps' for VUI-timed streams).
    The measured rate is n_frames / decoded end time. A clean candidate (integer or NTSC
    x/1001) within 10 % of the measurement wins, closest first (an irregular timestamp
    must not turn 30 fps into 561/20); otherwise the avg rate; without any, 25.
    """
    cands = [r for r in (rates.get("fps"), rates.get("tbr")) if r]
    if rates.get("tbr"):
        cands.append(rates["tbr"] / 2)
    if end_s and end_s > 0 and cands:
        measured = Fraction(n_frames) / Fraction(end_s).limit_denominator(1000)
        near = [r for r in cands if _clean_rate(r) and abs(r - measured) < measured / 10]
        if near:
            return min(near, key=lambda r: abs(r - measured))
    return rates.get("fps") or rates.get("tbr") or NOMINAL_FPS


def probe(path) -> VideoInfo:
    """Size, rational fps, exact frame count (by decoding), pix_fmt, duration, colour tags."""
    exe = ffmpeg_exe()
    head = _probe_header(path, exe)
    n_frames, end_s = _decode_count(path, exe)
    fps = _choose_fps(head.rates, n_frames, end_s)
    duration = head.duration_s if head.duration_s is not None else float(n_frames / fps)
    return VideoInfo(head.width, head.height, fps.numerator, fps.denominator, n_frames,
                     head.pix_fmt, duration, head.color_range, head.color_space)


def source_color(color_space: str, color_range: str, pix_fmt: str, height: int) -> tuple[str, str]:
    """The (matrix, range) ``read_frames`` converts with, for swscale's ``in_color_matrix``/``in_range``.

    Matrix: the stream's tag when it is BT.709 or BT.601 (bt470bg/smpte170m); untagged
    streams get BT.709 when ``height >= 720`` and BT.601 below, the rule players use.
    Range: full ('pc') when tagged so or for yuvj* formats, else limited ('tv')."""
    if color_space == "bt709":
        matrix = "bt709"
    elif color_space in ("bt470bg", "smpte170m", "bt601"):
        matrix = "bt601"
    elif color_space in ("bt2020nc", "bt2020c"):
        matrix = "bt2020"
    else:
        matrix = "bt709" if height >= 720 else "bt601"
    full = color_range == "pc" or pix_fmt.startswith("yuvj")
    return matrix, ("pc" if full else "tv")


# ---------------------------------------------------------------- streaming processes

class FfmpegProcess:
    """One ffmpeg process: stdout piped to us (exact reads), stdin optionally piped from us,
    stderr to a temporary file so it can never fill a pipe and deadlock."""

    def __init__(self, args: Sequence[str], path, what: str, *, stdin: bool = False,
                 stdout: bool = True):
        self.path, self.what = path, what
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                list(args), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL, stderr=self._err)
        except OSError as e:
            self._err.close()
            raise MediaError(path, f"{what}: cannot start {args[0]!r}: {e}") from None

    def read_exact(self, n_bytes: int) -> bytes | None:
        """Exactly n_bytes, None at a clean end of stream; MediaError on a partial frame."""
        chunks, got = [], 0
        while got < n_bytes:
            chunk = self.proc.stdout.read(n_bytes - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got == 0:
            return None
        if got < n_bytes:
            self.kill()
            raise MediaError(self.path, f"{self.what}: stream ended inside a frame "
                                        f"({got} of {n_bytes} bytes)", self.stderr())
        return b"".join(chunks)

    def stderr(self) -> str:
        self._err.flush()
        return _stderr_text(self._err)

    def finish(self) -> str:
        """Close our pipes, wait, check the exit status; return stderr."""
        self._close_pipes()
        rc = self.proc.wait()
        text = self.stderr()
        self._err.close()
        if rc != 0:
            raise MediaError(self.path, f"{self.what}: ffmpeg exited with status {rc}", text)
        return text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass


def read_frames(path, *, size: tuple[int, int] | None = None, fps: Fraction | None = None,
                max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of stream #0 of type video as (H, W, 3) uint8 RGB, one at a time.

    Memory is one frame plus ffmpeg's pipe buffer, whatever the file's length.
    ``size`` (width, height) resizes with swscale's bicubic filter (accurate rounding,
    full chroma interpolation; its support widens when downscaling, so it low-passes).
    ``fps`` resamples with ffmpeg's ``fps`` filter (drops/duplicates to the new rate,
    as the paper's 2 fps protocol does); without it every decoded frame is returned once
    (``-fps_mode passthrough``: irregular timestamps never duplicate frames).
    ``max_frames`` stops after that many output frames.

    Colour: YUV->RGB uses the matrix and range from :func:`source_color` (the stream's
    BT.709/BT.601 tag, else BT.709 for height >= 720 and BT.601 below; full range for
    'pc'/yuvj*, else limited), passed explicitly to swscale as ``in_color_matrix`` and
    ``in_range``. Output RGB is full range. Bit-exactness of this path across ffmpeg
    builds is not promised (swscale changes); keyframes use :mod:`nvcodec.color` instead.

    Checked: ffmpeg's exit status, no partial frame, at least one frame, and that the
    number of frames read equals ffmpeg's own final ``frame=`` count.
    """
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (width, height) >= 1, got {size!r}")
    if fps is not None and Fraction(fps) <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames!r}")
    exe = ffmpeg_exe()
    head = _probe_header(path, exe)
    matrix, rng = source_color(head.color_space, head.color_range, head.pix_fmt, head.height)
    width, height = size if size is not None else (head.width, head.height)
    stream = ffmpeg.input(ffmpeg_path(path))["V:0"]
    if fps is not None:
        fps = Fraction(fps)
        stream = stream.filter("fps", fps=f"{fps.numerator}/{fps.denominator}")
    stream = stream.filter("scale", width, height, flags="bicubic+accurate_rnd+full_chroma_int",
                           in_color_matrix=matrix, in_range=rng, out_range="pc")
    out_opts = {"format": "rawvideo", "pix_fmt": "rgb24", "fps_mode": "passthrough"}
    if max_frames is not None:
        out_opts["frames:v"] = max_frames
    args = ffmpeg_base_args(exe) + stream.output("pipe:", **out_opts).get_args()
    frame_bytes = width * height * 3
    proc = FfmpegProcess(args, path, "read frames")
    n_read = 0
    try:
        while True:
            buf = proc.read_exact(frame_bytes)
            if buf is None:
                break
            n_read += 1
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    except BaseException:
        proc.kill()   # consumer stopped early (GeneratorExit) or an error: no orphan ffmpeg
        raise
    text = proc.finish()
    if n_read == 0:
        raise MediaError(path, "no decodable video frames", text)
    n_ffmpeg = last_frame_count(text)
    if n_ffmpeg is not None and n_ffmpeg != n_read:
        raise MediaError(path, f"frame count mismatch: ffmpeg reported {n_ffmpeg}, read {n_read}", text)


# ---------------------------------------------------------------- writing

class VideoWriter:
    """Write RGB frames as y4m, mp4 or a folder of PNGs; atomic for paths (tmp + rename).

    ``y4m``: written here (no ffmpeg), 4:4:4 (``C444``), BT.601 limited range through
    :func:`nvcodec.color.rgb_to_ycbcr444` (y4m carries no matrix; BT.601 is what ffmpeg
    and most y4m readers assume), header tagged ``XCOLORRANGE=LIMITED``. ``dest`` may be a
    path or a binary file object (``sys.stdout.buffer``), so ``... | ffmpeg -i -`` works.
    ``mp4``: ffmpeg. By default what every player opens: libx264 ``-preset medium -crf crf``
    (``crf=None``: ``MP4_CRF``), yuv420p BT.709 limited range, tagged as such.
    ``lossless=True``: ``libx264rgb -qp 0`` codes the RGB samples exactly (High 4:4:4
    Predictive, gbrp: many players refuse it). yuv420p needs even sizes: an odd width or
    height is padded by one column or row, a copy of the last (the file is then 1 larger).
    ``png``: ffmpeg's png encoder, ``dest`` is a folder created with ``frame_%06d.png``
    files numbered from ``first_index`` (the decoder passes the 0-based frame index of
    the first frame), written in a temporary sibling folder and renamed on success.

    An existing ``dest`` is refused unless ``overwrite``; it is replaced only when the
    new output is complete.
    """

    FORMATS = ("y4m", "mp4", "png")

    def __init__(self, dest, fmt: str, width: int, height: int, fps_num: int, fps_den: int,
                 *, crf: int | None = None, lossless: bool = False, first_index: int = 0,
                 overwrite: bool = False):
        if fmt not in self.FORMATS:
            raise ValueError(f"fmt must be one of {self.FORMATS}, got {fmt!r}")
        if width < 1 or height < 1 or fps_num < 1 or fps_den < 1:
            raise ValueError(f"bad size/fps: {width}x{height} @ {fps_num}/{fps_den}")
        if crf is not None and not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        if lossless and crf is not None:
            raise ValueError("give either crf or lossless, not both")
        if type(first_index) is not int or first_index < 0:
            raise ValueError(f"first_index must be a non-negative int, got {first_index!r}")
        self.fmt, self.width, self.height = fmt, width, height
        self.fps_num, self.fps_den = fps_num, fps_den
        self.crf, self.lossless, self.first_index = (MP4_CRF if crf is None else crf), lossless, first_index
        subsampled = fmt == "mp4" and not lossless                  # yuv420p: even sizes only
        self._pad_h, self._pad_w = (height % 2, width % 2) if subsampled else (0, 0)
        self.n_frames = 0
        self._file: BinaryIO | None = None
        self._proc: FfmpegProcess | None = None
        self._closed = False
        is_path = isinstance(dest, (str, os.PathLike))
        if not is_path and fmt != "y4m":
            raise TypeError(f"{fmt}: dest must be a path (file objects only for y4m)")
        self.dest = Path(dest) if is_path else None
        if is_path:
            if self.dest.exists() and not overwrite and not (
                    fmt == "png" and self.dest.is_dir() and not any(self.dest.iterdir())):
                raise ValueError(f"{self.dest} exists (overwrite=False)")
            if self.dest.exists() and self.dest.is_dir() != (fmt == "png"):
                raise ValueError(f"{self.dest} exists and is a {'folder' if self.dest.is_dir() else 'file'}; "
                                 f"{fmt} writes a {'folder' if fmt == 'png' else 'file'}")
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            # Short temporary names (not dest's name plus a tag): a destination whose own name is
            # near the file system's 255-byte limit must still be writable.
            if fmt == "png":
                self._tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.dest.parent))
            else:
                fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f".{fmt}", dir=self.dest.parent)
                os.close(fd)
                self._tmp = Path(name)
        if fmt == "y4m":
            self._file = open(self._tmp, "wb") if is_path else dest
            self._file.write(f"YUV4MPEG2 W{width} H{height} F{fps_num}:{fps_den} Ip A1:1 C444 "
                             f"XCOLORRANGE=LIMITED\n".encode("ascii"))
        else:
            self._start_ffmpeg()

    def _start_ffmpeg(self) -> None:
        exe = ffmpeg_exe()
        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24",
                              s=f"{self.width + self._pad_w}x{self.height + self._pad_h}",
                              framerate=f"{self.fps_num}/{self.fps_den}")
        if self.fmt == "png":
            out = stream.output(ffmpeg_path(self._tmp / "frame_%06d.png"), vcodec="png", pix_fmt="rgb24",
                                start_number=self.first_index)
        elif self.lossless:
            out = stream.output(ffmpeg_path(self._tmp), format="mp4", vcodec="libx264rgb", qp=0,
                                preset="medium", pix_fmt="rgb24")
        else:
            out = stream.filter("scale", out_color_matrix="bt709", out_range="tv",
                                flags="bicubic+accurate_rnd+full_chroma_int").output(
                ffmpeg_path(self._tmp), format="mp4", vcodec="libx264", crf=self.crf, preset="medium",
                pix_fmt="yuv420p", colorspace="bt709", color_primaries="bt709", color_trc="bt709",
                color_range="tv")
        args = ffmpeg_base_args(exe) + ["-y"] + out.get_args()
        self._proc = FfmpegProcess(args, self.dest, f"write {self.fmt}", stdin=True, stdout=False)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if self._closed:
            raise ValueError("VideoWriter is closed")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame: expected uint8 {(self.height, self.width, 3)}, "
                             f"got {frame.dtype} {frame.shape}")
        if self.fmt == "y4m":
            y, cb, cr = color.rgb_to_ycbcr444(frame)
            self._file.write(b"FRAME\n")
            for plane in (y, cb, cr):
                self._file.write(np.ascontiguousarray(plane).tobytes())
        else:
            try:
                if self._pad_h or self._pad_w:
                    frame = np.pad(frame, ((0, self._pad_h), (0, self._pad_w), (0, 0)), mode="edge")
                self._proc.proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:
                self._proc.kill()
                raise MediaError(self.dest, f"write {self.fmt}: ffmpeg stopped reading",
                                 self._proc.stderr()) from None
        self.n_frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (only after every check passed)."""
        if self._closed:
            return
        self._closed = True
        if self.fmt == "y4m":
            if self.dest is not None:
                self._file.close()
            else:
                self._file.flush()
        else:
            text = self._proc.finish()
            n_ffmpeg = last_frame_count(text)
            if n_ffmpeg is not None and n_ffmpeg != self.n_frames:
                raise MediaError(self.dest, f"write {self.fmt}: wrote {self.n_frames} frames, "
                                            f"ffmpeg encoded {n_ffmpeg}", text)
        if self.dest is not None:
            # mkstemp/mkdtemp create private (0600/0700) entries; give the result
            # the permissions an ordinary file or folder would get under the umask.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._tmp, (0o777 if self._tmp.is_dir() else 0o666) & ~umask)
            if self._tmp.is_dir() and self.dest.is_dir():     # os.replace cannot replace a non-empty folder
                old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old.", dir=self.dest.parent))
                os.replace(self.dest, old / self.dest.name)
                os.replace(self._tmp, self.dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self._tmp, self.dest)

    def abort(self) -> None:
        """Stop without producing ``dest`` (temporary output removed)."""
        self._closed = True
        if self._proc is not None:
            self._proc.kill()
        if self.fmt == "y4m" and self.dest is not None and self._file:
            self._file.close()
        if self.dest is not None:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["MediaError", "VideoInfo", "VideoWriter", "count_frames", "ffmpeg_codecs", "ffmpeg_exe",
           "ffmpeg_path", "probe", "read_frames", "run", "source_color"]
