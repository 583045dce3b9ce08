"""Decoding: ``nvcodec.open`` (random access to frames), ``nvcodec.decode`` (files out), ``ClipDataset``.

Decoding needs nothing but the file: the network is rebuilt from the metadata,
its weights are the container's integers times their steps, and the keyframes
are decoded by ``nvcodec.keyframes`` (bit-exact YUV, our own conversion).
Anything wrong inside the file surfaces as ``NvcFormatError``.

Random access: a frame range needs only the clips that hold it, and those
need only the keyframe segments that hold their start and end keyframes;
``NvcReader.read_segment`` reads just those bytes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch.utils.data import Dataset

from nvcodec.bitstream import NvcFormatError, NvcReader
from nvcodec.corpus import build_clip_range, keyframe_positions, merge_tiles
from nvcodec.keyframes import KeyframeCodec, decode_keyframes

CLIPS_PER_STEP = 8          # clips decoded together per video (x tiles); bounds memory while streaming


@dataclass(frozen=True)
class VideoEntry:
    """One video of an .nvc file, as the decoder will output it."""

    name: str
    width: int                # coded size = decoded size
    height: int
    source_width: int         # size of the original input
    source_height: int
    fps_num: int
    fps_den: int
    n_frames: int

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def duration_s(self) -> float:
        return self.n_frames * self.fps_den / self.fps_num


def resolve_device(device: str | None) -> str:
    """``device`` as given, else CUDA when present, else CPU."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class NvcFile:
    """An open .nvc file: ``videos``, ``read(video, frames=slice)``, ``iter_frames(...)``.

    A context manager; the network is built and its weights decoded on the
    first read, once.
    """

    def __init__(self, path: str | os.PathLike, *, device: str | None = None) -> None:
        self.path = Path(path)
        self._reader = NvcReader(self.path)
        try:
            md = self._reader.metadata
            self.metadata = md
            self.videos = [
                VideoEntry(name=v["name"], width=v["width"], height=v["height"],
                           source_width=v["source_width"], source_height=v["source_height"],
                           fps_num=v["fps_num"], fps_den=v["fps_den"], n_frames=v["n_frames"])
                for v in md["videos"]
            ]
            self.interval = md["keyframe_interval"]
            try:
                self._kf_codec = KeyframeCodec.from_json(md["keyframe_codec"])
            except ValueError as exc:
                raise NvcFormatError(f"metadata: keyframe_codec: {exc}") from None
        except BaseException:
            self._reader.close()
            raise
        self._device = device
        self._model = None

    def __enter__(self) -> "NvcFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def n_bytes(self) -> int:
        return self._reader.n_bytes

    def byte_breakdown(self) -> dict[str, int]:
        return self._reader.byte_breakdown()

    def video_index(self, video: str | int) -> int:
        """Index of a video given by name or index; ValueError naming the choices otherwise."""
        if isinstance(video, (int, np.integer)) and not isinstance(video, bool):
            if 0 <= video < len(self.videos):
                return int(video)
            raise ValueError(f"video index {video} out of range: the file holds {len(self.videos)} video(s)")
        for i, entry in enumerate(self.videos):
            if entry.name == video:
                return i
        names = ", ".join(repr(v.name) for v in self.videos[:10])
        raise ValueError(f"no video named {video!r} in {self.path}; it holds {names}"
                         + (" ..." if len(self.videos) > 10 else ""))

    # -- the network -------------------------------------------------------

    def network(self):
        """The DNeRV network with the file's dequantized weights, on the decode device (built once)."""
        if self._model is None:
            self._model = _build_network(self._reader, self.metadata, resolve_device(self._device))
        return self._model

    # -- frames -------------------------------------------------------------

    def _keyframes(self, video: int, first: int, last: int) -> np.ndarray:
        """Decoded keyframes ``first..last`` (inclusive) of a video, reading only the segments that hold them."""
        entry = self.videos[video]
        needed = [(i, seg_first, seg_n) for i, (seg_first, seg_n) in enumerate(self._reader.segments(video))
                  if seg_first <= last and seg_first + seg_n > first]
        # Segments concatenate into one valid stream: one ffmpeg process for the range.
        data = b"".join(self._reader.read_segment(video, i) for i, _, _ in needed)
        n_keyframes = sum(n for _, _, n in needed)
        try:
            frames = decode_keyframes(data, self._kf_codec, entry.width, entry.height, n_keyframes)
        except ValueError as exc:
            raise NvcFormatError(f"keyframe segments {needed[0][0]}..{needed[-1][0]} of video "
                                 f"{entry.name!r}: {exc}") from None
        offset = needed[0][1]
        return frames[first - offset: last - offset + 1]

    def iter_frames(self, video: str | int, frames: slice = slice(None)) -> Iterator[np.ndarray]:
        """Yield the frames of ``video`` selected by ``frames`` ((H, W, 3) uint8), decoding as it goes."""
        from nvcodec.fit import predict

        v = self.video_index(video)
        entry = self.videos[v]
        start, stop, step = frames.indices(entry.n_frames)
        if step != 1:
            raise ValueError(f"frames: only contiguous ranges are supported, got step {step}")
        if start >= stop:
            return
        k = self.interval
        tile_h, tile_w = self.metadata["tile"]["height"], self.metadata["tile"]["width"]
        n_kf = len(keyframe_positions(entry.n_frames, k))
        model = self.network()
        device = resolve_device(self._device)
        for c_lo in range(start // k, (stop - 1) // k + 1, CLIPS_PER_STEP):
            c_hi = min(c_lo + CLIPS_PER_STEP, (stop - 1) // k + 1)         # clips c_lo .. c_hi-1
            kf_first, kf_last = c_lo, min(c_hi, n_kf - 1)
            keyframes = self._keyframes(v, kf_first, kf_last)
            clips = build_clip_range(keyframes, kf_first, entry.n_frames, k, tile_h, tile_w, c_lo, c_hi)
            n_tiles = int(clips.tile.max()) + 1
            out = np.empty((c_hi - c_lo, n_tiles, k, 3, tile_h, tile_w), np.uint8)
            for index, pred in predict(model, clips, device=device):
                out[clips.first_frame[index] // k - c_lo, clips.tile[index]] = pred
            for c in range(c_lo, c_hi):
                tiles = out[c - c_lo].transpose(1, 0, 2, 3, 4)                # (T, n_tiles, 3, th, tw)
                decoded = merge_tiles(tiles, entry.height, entry.width)    # (T, H, W, 3)
                for t in range(k):
                    i = c * k + t
                    if start <= i < stop:
                        yield decoded[t]

    def read(self, video: str | int, frames: slice = slice(None)) -> np.ndarray:
        """The selected frames of ``video`` as one (n, H, W, 3) uint8 array."""
        entry = self.videos[self.video_index(video)]
        start, stop, _ = frames.indices(entry.n_frames)
        out = np.empty((max(stop - start, 0), entry.height, entry.width, 3), np.uint8)
        for i, frame in enumerate(self.iter_frames(video, frames)):
            out[i] = frame
        return out


def _build_network(reader: NvcReader, metadata: dict, device: str):
    from nvcodec.model import DNeRV, ModelConfig
    from nvcodec.quant import dequantize_state

    try:
        cfg = ModelConfig.from_json(metadata["model"])
    except (ValueError, TypeError) as exc:
        raise NvcFormatError(f"metadata: model: {exc}") from None
    if cfg.clip_length != metadata["keyframe_interval"]:
        raise NvcFormatError(f"metadata: model clip_length {cfg.clip_length} differs from "
                             f"keyframe_interval {metadata['keyframe_interval']}")
    model = DNeRV(cfg)
    expected = {name: tuple(p.shape) for name, p in model.named_parameters()}
    weights = dequantize_state(reader.read_tensors())
    for name, w in weights.items():
        if name not in expected:
            raise NvcFormatError(f"weights: tensor {name!r} is not a parameter of the network")
        if tuple(w.shape) != expected[name]:
            raise NvcFormatError(f"weights: tensor {name!r} has shape {tuple(w.shape)}, "
                                 f"the network expects {expected[name]}")
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise NvcFormatError(f"weights: {len(missing)} parameter(s) missing, e.g. {missing[0]!r}")
    model.load_state_dict({k: torch.from_numpy(w) for k, w in weights.items()}, strict=False)
    return model.to(device).eval()


def open_nvc(path: str | os.PathLike, *, device: str | None = None) -> NvcFile:
    """Open an .nvc file for reading (``nvcodec.open``)."""
    return NvcFile(path, device=device)


# -- measuring an encode ---------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    psnr: float                                   # mean over all frames of all videos
    bytes_by_part: dict[str, int]
    videos: list[dict] = field(default_factory=list)


def measure_file(path: str | os.PathLike, reference: dict[str, np.ndarray], *, device: str | None = None) -> Measurement:
    """Decode ``path`` and compare with the frames that were encoded (name -> (L, H, W, 3) uint8)."""
    from nvcodec.metrics import psnr_per_frame

    scores, per_video = [], []
    with open_nvc(path, device=device) as nvc:
        for entry in nvc.videos:
            psnr = psnr_per_frame(reference[entry.name], nvc.read(entry.name))
            scores.append(psnr)
            per_video.append({"name": entry.name, "width": entry.width, "height": entry.height,
                              "n_frames": entry.n_frames, "psnr": float(np.mean(psnr))})
        breakdown = nvc.byte_breakdown()
    return Measurement(psnr=float(np.mean(np.concatenate(scores))), bytes_by_part=breakdown, videos=per_video)


# -- writing files -------------------------------------------------------------

OUTPUT_SUFFIX = {"y4m": ".y4m", "mp4": ".mp4", "png": ""}


def output_paths(names: Sequence[str], outdir: Path, fmt: str) -> dict[str, Path]:
    """Where each video goes under ``outdir``: its stored name with the format's extension.

    Two videos whose names differ only in extension (a.mp4, a.mkv) keep the
    original extension too (a.mp4.y4m, a.mkv.y4m). Names were validated by the
    container; the check here that the result stays inside ``outdir`` is a second
    line of defence, not the first.
    """
    suffix = OUTPUT_SUFFIX[fmt]
    stems = [str(PurePosixPath(n).with_suffix("")) for n in names]
    root = outdir.resolve()
    paths = {}
    for name, stem in zip(names, stems):
        rel = (stem if stems.count(stem) == 1 else name) + suffix
        dest = (root / rel).resolve()
        if root != dest and root not in dest.parents:
            raise NvcFormatError(f"video name {name!r} would write outside the output folder")
        paths[name] = dest
    return paths


def frame_range(entry: VideoEntry, frames: slice) -> tuple[int, int]:
    """(start, stop) of ``frames`` in ``entry``; ValueError naming the video's length when the
    range is empty or reaches past the end (an open end, ``A:``, means the last frame)."""
    if frames.step not in (None, 1):
        raise ValueError(f"frames: only contiguous ranges are supported, got step {frames.step}")
    start = 0 if frames.start is None else frames.start
    stop = entry.n_frames if frames.stop is None else frames.stop
    if not 0 <= start < stop <= entry.n_frames:
        raise ValueError(f"frames {start}:{stop} are not inside {entry.name!r}, which has {entry.n_frames} "
                         f"frame(s), 0:{entry.n_frames}")
    return start, stop


@dataclass(frozen=True)
class DecodeReport:
    outputs: list[str]
    n_frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("inf")


def decode(
    path: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    videos: Sequence[str] | None = None,
    frames: slice = slice(None),
    fmt: str = "y4m",
    crf: int | None = None,
    lossless: bool = False,
    force: bool = False,
    device: str | None = None,
    stdout=None,
    progress=None,
) -> DecodeReport:
    """Decode ``path`` into ``outdir`` (or, with ``outdir == "-"``, one video as y4m to ``stdout``).

    ``frames`` must lie inside every selected video (ValueError naming its length).
    Existing outputs are refused unless ``force``, before anything is decoded.
    ``crf``/``lossless``: mp4 only (``VideoWriter``). png files are named by the 0-based
    frame index. ``progress(video_name, n_frames_so_far, n_frames_total)`` is called after
    every frame written to a file (counts over all selected videos).
    """
    import time

    from nvcodec.media import VideoWriter

    if fmt not in OUTPUT_SUFFIX:
        raise ValueError(f"format must be one of {sorted(OUTPUT_SUFFIX)}, got {fmt!r}")
    started = time.monotonic()
    n_frames = 0
    outputs: list[str] = []
    with open_nvc(path, device=device) as nvc:
        selected = [nvc.videos[nvc.video_index(v)] for v in videos] if videos else list(nvc.videos)
        ranges = {entry.name: frame_range(entry, frames) for entry in selected}
        if str(outdir) == "-":
            if len(selected) != 1 or fmt != "y4m":
                raise ValueError("decoding to '-' (stdout) writes one video as y4m: choose it with --video")
            entry = selected[0]
            with VideoWriter(stdout or sys.stdout.buffer, "y4m", entry.width, entry.height, entry.fps_num, entry.fps_den) as writer:
                for frame in nvc.iter_frames(entry.name, frames):
                    writer.write(frame)
                    n_frames += 1
            return DecodeReport(outputs=["-"], n_frames=n_frames, seconds=time.monotonic() - started)
        root = Path(outdir)
        dests = output_paths([e.name for e in selected], root, fmt)
        existing = [str(d) for d in dests.values() if d.exists()]
        if existing and not force:
            raise ValueError(f"{existing[0]} exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                             + "; pass --force to overwrite")
        n_total = sum(stop - start for start, stop in ranges.values())
        for entry in selected:
            dest = dests[entry.name]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with VideoWriter(dest, fmt, entry.width, entry.height, entry.fps_num, entry.fps_den, crf=crf,
                             lossless=lossless, first_index=ranges[entry.name][0], overwrite=force) as writer:
                for frame in nvc.iter_frames(entry.name, frames):
                    writer.write(frame)
                    n_frames += 1
                    if progress is not None:
                        progress(entry.name, n_frames, n_total)
            outputs.append(str(dest))
    return DecodeReport(outputs=outputs, n_frames=n_frames, seconds=time.monotonic() - started)


class ClipDataset(Dataset):
    """A ``torch.utils.data.Dataset`` of clips decoded straight from an .nvc file.

    Item ``i`` is one clip (``keyframe_interval`` frames, fewer for a video's
    short last clip) of one video, as a uint8 tensor (n, 3, H, W), with the
    network on ``device`` (CUDA when present): a training pipeline can read
    compressed data directly, as the paper does for action recognition.
    """

    def __init__(self, path: str | os.PathLike, *, device: str | None = None) -> None:
        self._path = Path(path)
        self._device = device
        self._nvc: NvcFile | None = None
        with open_nvc(path) as nvc:
            k = nvc.interval
            self.items = [(v, c * k, min(c * k + k, e.n_frames))
                          for v, e in enumerate(nvc.videos) for c in range(-(-e.n_frames // k))]
            self.videos = nvc.videos

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._nvc is None:             # opened lazily: one per DataLoader worker
            self._nvc = open_nvc(self._path, device=self._device)
        v, start, stop = self.items[i]
        frames = self._nvc.read(v, slice(start, stop))
        return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
