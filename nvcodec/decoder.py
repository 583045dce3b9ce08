"""Decoding: ``nvcodec.open`` (random access to frames), ``nvcodec.decode`` (files out), ``ClipDataset``.

Decoding needs nothing but the file: the network is rebuilt from the metadata,
its weights are the container's integers times their steps, and the keyframes
are decoded by ``nvcodec.keyframes`` (bit-exact YUV, our own conversion).
Anything wrong inside the file surfaces as ``NvcFormatError``.

Random access: a frame range needs only the clips that hold it (found from the video's
keyframe layout, ``NvcReader.keyframe_layout``: the regular rule or the listed positions),
and those need only the keyframe segments that hold their start and end keyframes;
``NvcReader.read_segment`` reads just those bytes.
"""

from __future__ import annotations

import math
import os
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch.utils.data import Dataset

from nvcodec.bitstream import NvcFormatError, NvcReader, VideoRecord
from nvcodec.bitstream.tensors import MAX_ELEMENTS
from nvcodec.config import REFINE_INPUTS, count_parameters
from nvcodec.corpus import build_clip_range, latent_row_bases, merge_tiles, tile_grid
from nvcodec.errors import NvcInputError
from nvcodec.keyframes import KeyframeCodec, iter_keyframes
from nvcodec.media import MediaError
from nvcodec.runtime import resolve_device

# Decode memory (FORMAT.md section 13, "Decoder memory"). Every buffer is bounded by these and by
# the file, never by a count the file declares: frames are produced clip by clip, keyframes one
# segment at a time as ffmpeg delivers them.
STEP_PIXELS = 1 << 24         # frame pixels held per decoding step (a step is at least one clip)
BATCH_BYTES = 1 << 27         # estimated network activations per forward pass (at least one tile-clip)
BASE_MEMORY_BYTES = 1 << 29   # memory a file may make the decoder use, plus MEMORY_PER_FILE_BYTE per byte
MEMORY_PER_FILE_BYTE = 256


class NvcFile:
    """An open .nvc file: ``videos``, ``read(video, frames=slice)``, ``iter_frames(...)``.

    A context manager. Opening cross-checks what the container cannot: the network config
    against the tile, the clip length and the file's element limit, the keyframe segments
    against the codec's segment length, and the memory a decode would need against what a
    file of this size may ask for (FORMAT.md section 13). The network is built and its
    weights decoded on the first read, once.
    """

    def __init__(self, path: str | os.PathLike, *, device: str | None = None) -> None:
        self.path = Path(path)
        self._reader = NvcReader(self.path)
        try:
            md = self._reader.metadata
            self.metadata = md
            self.videos = [VideoRecord.from_json(v) for v in md["videos"]]
            self.interval = md["keyframe_interval"]
            try:
                self._kf_codec = KeyframeCodec.from_json(md["keyframe_codec"])
            except ValueError as exc:
                raise NvcFormatError(f"metadata: keyframe_codec: {exc}") from None
            self.floor_only = not md["model"]     # FORMAT.md section 13: no network, the motion floor
            if self.floor_only:
                self.model_config, self.batch_size, self._latent_bases = None, 0, None
                _check_floor_only(self._reader)
                need, what = floor_memory_bytes(self.videos, self.interval), "motion floor, no network"
            else:
                self.model_config = _model_config(md)
                if self._reader.has_motion != self.model_config.motion:
                    raise NvcFormatError("metadata: the network consumes coded motion, but the file holds none"
                                         if self.model_config.motion else
                                         "the file holds coded motion, but its network does not consume it")
                self._latent_bases = self._check_latent_rows() if self.model_config.latent_channels else None
                self.batch_size = predict_batch_size(self.model_config)
                need = decode_memory_bytes(self.model_config, self.videos, self.batch_size)
                what = (f"network {count_parameters(self.model_config)} parameters, "
                        f"{self.model_config.tile_w}x{self.model_config.tile_h} tiles")
            self._check_segments()
            allowed = memory_allowance_bytes(self._reader.n_bytes)
            if need > allowed:
                raise NvcFormatError(
                    f"decoding needs about {need >> 20} MiB ({what}, clips of {self.interval} frames), more than "
                    f"the {allowed >> 20} MiB a {self._reader.n_bytes}-byte file may ask for")
        except BaseException:
            self._reader.close()
            raise
        self._device = device
        self._model = None

    def _check_latent_rows(self) -> list[int]:
        """Each video's first latent row; the network's latent rows must be the file's clip-tiles."""
        cfg = self.model_config
        bases, total = latent_row_bases([(v.n_frames, v.height, v.width, self.keyframe_layout(i).positions)
                                         for i, v in enumerate(self.videos)], self.interval, cfg.tile_h, cfg.tile_w)
        if total != cfg.latent_rows:
            raise NvcFormatError(f"metadata: model latent_rows {cfg.latent_rows} differs from the {total} clip-tiles "
                                 f"of the file's videos")
        return bases

    def _check_segments(self) -> None:
        """A segment holds at most the codec's segment_length keyframes (1 in intra mode)."""
        limit = self._kf_codec.segment_length
        for v, entry in enumerate(self.videos):
            for i, (first, n) in enumerate(self._reader.segments(v)):
                if n > limit:
                    raise NvcFormatError(f"KIDX: segment {i} of video {entry.name!r} declares {n} keyframes, "
                                         f"more than the keyframe codec's segment_length {limit}")

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
            raise NvcInputError(f"video index {video} out of range: the file holds {len(self.videos)} video(s)")
        for i, entry in enumerate(self.videos):
            if entry.name == video:
                return i
        names = ", ".join(repr(v.name) for v in self.videos[:10])
        raise NvcInputError(f"no video named {video!r} in {self.path}; it holds {names}"
                         + (" ..." if len(self.videos) > 10 else ""))

    def keyframe_layout(self, video: str | int):
        """The video's keyframes and clips (``nvcodec.bitstream.KeyframeLayout``), as the file gives them."""
        return self._reader.keyframe_layout(self.video_index(video))

    # -- the network -------------------------------------------------------

    def network(self):
        """The DNeRV network with the file's dequantized weights, on the decode device (built once)."""
        if self._model is None:
            self._model = _build_network(self._reader, self.model_config, resolve_device(self._device))
        return self._model

    # -- frames -------------------------------------------------------------

    def iter_keyframes(self, video: int, first: int) -> Iterator[np.ndarray]:
        """A video's decoded keyframes ``first``, ``first + 1``, ... to its last, decoded one segment at
        a time as ffmpeg delivers them (only the segments from the one holding ``first`` are read).
        A segment holding other than its declared count is an NvcFormatError when reached."""
        entry = self.videos[video]
        for i, (seg_first, seg_n) in enumerate(self._reader.segments(video)):
            if seg_first + seg_n <= first:
                continue
            frames = iter_keyframes(self._reader.read_segment(video, i), self._kf_codec,
                                    entry.width, entry.height, seg_n)
            try:
                for k, frame in enumerate(frames, seg_first):
                    if k >= first:
                        yield frame
            except MediaError as exc:
                error = NvcFormatError(f"video {entry.name!r}, keyframe segment {i} (keyframes {seg_first}.."
                                       f"{seg_first + seg_n - 1}): {exc.what}")
                error.stderr_tail = exc.stderr_tail          # for nvcodec --debug
                raise error from None
            finally:
                frames.close()

    def _keyframes(self, video: int, first: int, last: int) -> np.ndarray:
        """Decoded keyframes ``first..last`` (inclusive) of a video as one array."""
        stream = self.iter_keyframes(video, first)
        try:
            return np.stack([_next_keyframe(stream, self.videos[video], k) for k in range(first, last + 1)])
        finally:
            stream.close()

    def iter_frames(self, video: str | int, frames: slice = slice(None)) -> Iterator[np.ndarray]:
        """Yield the frames of ``video`` selected by ``frames`` ((H, W, 3) uint8), decoding as it goes.

        Clip by clip: a step holds at most STEP_PIXELS frame pixels (at least one clip), its
        keyframes and one forward batch; nothing grows with the video's declared length.
        """
        from nvcodec.runtime import predict

        v = self.video_index(video)
        entry = self.videos[v]
        start, stop, step = frames.indices(entry.n_frames)
        if step != 1:
            raise NvcInputError(f"frames: only contiguous ranges are supported, got step {step}")
        if start >= stop:
            return
        if self.floor_only:
            yield from self._iter_floor_frames(v, start, stop)
            return
        k = self.interval
        tile_h, tile_w = self.model_config.tile_h, self.model_config.tile_w
        layout = self.keyframe_layout(v)
        n_kf = layout.n_keyframes
        clips_per_step = step_clips(self.model_config, entry)
        model = self.network()
        device = resolve_device(self._device)
        first_clip, stop_clip = layout.clip_of_frame(start), layout.clip_of_frame(stop - 1) + 1
        motion = self._reader.motion(v) if self.model_config.motion else None
        keyframes = self.iter_keyframes(v, first_clip)         # clip c starts at keyframe c
        window: list[np.ndarray] = []                 # decoded keyframes first_kf .. first_kf + len - 1
        first_kf = first_clip
        try:
            for c_lo in range(first_clip, stop_clip, clips_per_step):
                c_hi = min(c_lo + clips_per_step, stop_clip)                   # clips c_lo .. c_hi-1
                kf_last = min(c_hi, n_kf - 1)
                del window[:c_lo - first_kf]
                first_kf = c_lo
                while first_kf + len(window) <= kf_last:
                    window.append(_next_keyframe(keyframes, entry, first_kf + len(window)))
                step_kf = np.stack(window[:kf_last - first_kf + 1])
                firsts, lasts, _, end_kfs, _ = layout.clips(c_lo, c_hi)
                warped = None if motion is None else _warped_clips(step_kf, first_kf, motion, end_kfs, k, c_lo)
                first_row = None if self._latent_bases is None else \
                    self._latent_bases[v] + c_lo * math.prod(tile_grid(entry.height, entry.width, tile_h, tile_w))
                clips = build_clip_range(step_kf, first_kf, entry.n_frames, k, tile_h, tile_w, c_lo, c_hi,
                                         positions=layout.positions, warped=warped, first_row=first_row)
                n_tiles = int(clips.tile.max()) + 1
                out = np.empty((c_hi - c_lo, n_tiles, k, 3, tile_h, tile_w), np.uint8)
                for index, pred in predict(model, clips, device=device, batch_size=self.batch_size):
                    out[np.searchsorted(firsts, clips.first_frame[index]), clips.tile[index]] = pred
                for c in range(c_hi - c_lo):
                    tiles = out[c].transpose(1, 0, 2, 3, 4)                       # (T, n_tiles, 3, th, tw)
                    decoded = merge_tiles(tiles, entry.height, entry.width)    # (T, H, W, 3)
                    for t in range(int(lasts[c] - firsts[c]) + 1):
                        i = int(firsts[c]) + t
                        if start <= i < stop:
                            yield decoded[t]
        finally:
            keyframes.close()

    def _iter_floor_frames(self, v: int, start: int, stop: int) -> Iterator[np.ndarray]:
        """Frames start..stop-1 of a file without a network: keyframes and the motion floor (FORMAT.md
        14.3), clip by clip; only the motion clips and keyframe segments those frames need are read."""
        from nvcodec.motion import floor_clip_frames

        entry, layout = self.videos[v], self.keyframe_layout(v)
        motion = self._reader.motion(v)
        first_clip, stop_clip = layout.clip_of_frame(start), layout.clip_of_frame(stop - 1) + 1
        firsts, lasts, _, end_kfs, _ = layout.clips(first_clip, stop_clip)
        keyframes = self.iter_keyframes(v, first_clip)         # clip c starts at keyframe c
        try:
            kf_start = _next_keyframe(keyframes, entry, first_clip)
            for c, first, last, end in zip(range(first_clip, stop_clip), firsts.tolist(), lasts.tolist(),
                                           end_kfs.tolist()):
                kf_end = kf_start if end == c else _next_keyframe(keyframes, entry, end)
                n_clip_frames = last - first + 1
                for i, frame in enumerate(floor_clip_frames(kf_start, kf_end, motion.clip(c), motion, n_clip_frames),
                                          first):
                    if start <= i < stop:
                        yield frame
                kf_start = kf_end
        finally:
            keyframes.close()

    def read(self, video: str | int, frames: slice = slice(None)) -> np.ndarray:
        """The selected frames of ``video`` as one (n, H, W, 3) uint8 array.

        Memory follows the frames actually decoded (collected, then joined), not the count the
        file declares: a video that claims more frames than its keyframes hold fails first.
        """
        entry = self.videos[self.video_index(video)]
        got = list(self.iter_frames(video, frames))
        if not got:
            return np.empty((0, entry.height, entry.width, 3), np.uint8)
        return np.stack(got)


def _warped_clips(keyframes: np.ndarray, first_kf: int, motion, end_kfs: np.ndarray, interval: int,
                  c_lo: int) -> np.ndarray:
    """The motion-warped keyframes of clips c_lo.. (one per entry of ``end_kfs``, their end keyframes from
    the video's layout; clip c starts at keyframe c; FORMAT.md 14.4), from that step's keyframes
    ``first_kf ..`` and the video's decoded motion: (len(end_kfs), K, 2, H, W, 3) uint8."""
    from nvcodec.motion import warped_clip

    return np.stack([warped_clip(keyframes[c_lo + i - first_kf], keyframes[int(end) - first_kf],
                                 motion.clip(c_lo + i), motion, interval) for i, end in enumerate(end_kfs)])


def _next_keyframe(stream: Iterator[np.ndarray], entry: VideoRecord, index: int) -> np.ndarray:
    frame = next(stream, None)
    if frame is None:        # segments check their own counts, so only a reader bug gets here
        raise NvcFormatError(f"video {entry.name!r}: no keyframe {index} in its segments")
    return frame


def _model_config(md: dict):
    """The network config of a file, cross-checked against the tile, the clip length and the element limit."""
    from nvcodec.config import ModelConfig

    try:
        cfg = ModelConfig.from_json(md["model"])
    except (ValueError, TypeError) as exc:
        raise NvcFormatError(f"metadata: model: {exc}") from None
    if cfg.clip_length != md["keyframe_interval"]:
        raise NvcFormatError(f"metadata: model clip_length {cfg.clip_length} differs from "
                             f"keyframe_interval {md['keyframe_interval']}")
    tile = md["tile"]
    if (cfg.tile_w, cfg.tile_h) != (tile["width"], tile["height"]):
        raise NvcFormatError(f"metadata: tile {tile['width']}x{tile['height']} differs from the model's tile "
                             f"{cfg.tile_w}x{cfg.tile_h}")
    n_params = count_parameters(cfg)
    if n_params > MAX_ELEMENTS:
        raise NvcFormatError(f"metadata: model has {n_params} parameters, more than the {MAX_ELEMENTS} "
                             f"elements a file may hold")
    return cfg


def _check_floor_only(reader: NvcReader) -> None:
    """A file without a network (empty ``model``) is keyframes + coded motion, and nothing else."""
    if not reader.has_motion:
        raise NvcFormatError("metadata: model is empty (no network), but the file holds no coded motion")
    n_tensors = sum(t == "TENS" for t, *_ in reader.chunks())
    if n_tensors:
        raise NvcFormatError(f"metadata: model is empty (no network), but the file holds {n_tensors} weight tensors")


# The integer warp's temporaries per frame pixel (nvcodec.motion.floor_clip, both keyframes, WARP_THREADS=2
# frames at once): measured 246 with tracemalloc on one 256x256 clip of 8 frames, its output included
# (int32 warps; 290 for one frame at a time with int64 before).
FLOOR_BYTES_PER_PIXEL = 320


def floor_memory_bytes(videos: Sequence[VideoRecord], interval: int) -> int:
    """What the motion floor needs for the largest video: one clip's frames (twice: the floor's and
    the clip's), its two keyframes, and one frame's warp temporaries."""
    return max(v.width * v.height * (3 * (2 * interval + 2) + FLOOR_BYTES_PER_PIXEL) for v in videos)


def clip_activation_bytes(cfg) -> int:
    """An upper estimate of the float32 activations live at once while the network predicts one
    tile-clip (T frames of one tile): the worst decoder stage, plus the keyframe pyramid."""
    t, pixels = cfg.clip_length, cfg.tile_h * cfg.tile_w
    pairs = t if cfg.motion else 1                                # with coded motion: a keyframe pair per frame
    # the refiner: inputs, two layers, GELU, out, warps; a half-resolution branch adds its layers (M wide
    # at a quarter of the pixels) and its up-convolution (4W wide, likewise)
    refiner = t * pixels * (REFINE_INPUTS + 3 * cfg.refine_width + 30) if cfg.refine_width else 0
    refiner += t * pixels * (3 * cfg.refine_coarse + 4 * cfg.refine_width) // 4 if cfg.refine_coarse else 0
    if cfg.c0 == 0:                                               # no trunk: the normalised pair, the refiner
        return 6 * (2 * pairs * 3 * pixels + refiner)
    total_stride = math.prod(cfg.strides)
    res = pixels // (total_stride * total_stride)                 # coarse grid pixels
    pyramid = 2 * pairs * (3 + cfg.enc_width) * pixels            # both keyframes: raw + stem output
    worst = t * res * (cfg.mlp_width + 3 * (cfg.c0 + cfg.enc_width))
    c_in = cfg.c0 + cfg.enc_width
    for c_out, stride in zip(cfg.widths, cfg.strides):
        pyramid += 2 * pairs * cfg.enc_width * res
        stage = t * res * (3 * c_in + 3 * cfg.enc_width + 8) + t * res * stride * stride * 3 * c_out
        worst = max(worst, stage)
        res, c_in = res * stride * stride, c_out
    worst = max(worst, t * pixels * (3 * c_in + 30))             # the head at full tile resolution
    if cfg.refine_width:
        worst = max(worst, refiner + t * pixels * c_in)
    # float32, and a margin of 1.5: at 4 x the count, a 512-pixel tile peaked ~100 MB above the estimate
    return 6 * (worst + pyramid)


def predict_batch_size(cfg) -> int:
    """Tile-clips per forward pass: as many as fit BATCH_BYTES of activations, at least one."""
    return max(1, BATCH_BYTES // clip_activation_bytes(cfg))


def decode_memory_bytes(cfg, videos: Sequence[VideoRecord], batch_size: int) -> int:
    """What decoding the file needs beyond the interpreter: the weights (float32, decoded in place),
    a copy of the largest one, one forward batch, and the largest video's decoding step (its frames,
    tiles and keyframes).

    The copy: on the CPU, torch's convolution backend (oneDNN) reorders a convolution's weight into
    its blocked layout on every call, a transient float32 copy of that weight (measured: a 2048x2048x4x4
    convolution's forward peaked 257 MiB above its 256 MiB weight, and not at all with oneDNN off)."""
    weights = 4 * (count_parameters(cfg) + largest_parameter(cfg))
    batch = batch_size * clip_activation_bytes(cfg)
    step = 0
    for v in videos:
        padded = _padded_pixels(cfg, v) * 3
        clips = step_clips(cfg, v)
        n_frames = clips * cfg.clip_length
        # predicted tiles + stitched frames of the step, its keyframes split into tiles (twice)
        need = padded * n_frames + v.width * v.height * 3 * n_frames + 3 * padded * (clips + 1)
        if cfg.motion:     # each frame's warped keyframe pair, whole and in tiles, and one warp's temporaries
            need += 2 * n_frames * (v.width * v.height * 3 + padded) + v.width * v.height * FLOOR_BYTES_PER_PIXEL
        step = max(step, need)
    return weights + batch + step


def largest_parameter(cfg) -> int:
    """Elements of the network's largest parameter tensor, from its shapes on torch's meta device
    (nothing allocated)."""
    from nvcodec.model import DNeRV

    with torch.device("meta"):
        return max(p.numel() for p in DNeRV(cfg).parameters())


def _padded_pixels(cfg, v: VideoRecord) -> int:
    """Pixels of one frame padded to whole tiles."""
    return -(-v.height // cfg.tile_h) * cfg.tile_h * -(-v.width // cfg.tile_w) * cfg.tile_w


def step_clips(cfg, v: VideoRecord) -> int:
    """Clips decoded together: as many as hold STEP_PIXELS padded frame pixels, at least one, at most the video's."""
    n_clips = -(-v.n_frames // cfg.clip_length)
    return min(n_clips, max(1, STEP_PIXELS // (cfg.clip_length * _padded_pixels(cfg, v))))


def memory_allowance_bytes(n_bytes_file: int) -> int:
    """The most a file may make the decoder use: BASE_MEMORY_BYTES + MEMORY_PER_FILE_BYTE per byte."""
    return BASE_MEMORY_BYTES + MEMORY_PER_FILE_BYTE * n_bytes_file


def _build_network(reader: NvcReader, cfg, device: str):
    """The network with the file's weights. The manifest is checked against the network's parameters
    (names and shapes, on torch's meta device: nothing allocated) before anything is built or
    decoded; then each tensor is decoded and dequantized straight into its parameter."""
    from nvcodec.model import DNeRV

    with torch.device("meta"):
        expected = {name: tuple(p.shape) for name, p in DNeRV(cfg).named_parameters()}
    seen = set()
    for h in reader.tensor_headers():
        if h.name not in expected:
            raise NvcFormatError(f"weights: tensor {h.name!r} is not a parameter of the network")
        if h.shape != expected[h.name]:
            raise NvcFormatError(f"weights: tensor {h.name!r} has shape {h.shape}, "
                                 f"the network expects {expected[h.name]}")
        seen.add(h.name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise NvcFormatError(f"weights: {len(missing)} parameter(s) missing, e.g. {missing[0]!r}")
    model = DNeRV(cfg)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for t in reader.iter_tensors():
            t.dequantize(out=params[t.name].data.numpy())
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


def measure_file(path: str | os.PathLike, reference: dict[str, np.ndarray], *, device: str | None = None,
                 progress: bool = False) -> Measurement:
    """Decode ``path`` and compare with the frames that were encoded (name -> (L, H, W, 3) uint8, an
    array or an array-like such as the frame store's ``StoredVideo``).

    Frames are compared as they are decoded, one video at a time: one video's reference is held
    whole (read from the store when the reference is one), never the corpus. ``progress``: a bar
    over the file's frames (``runtime.progress_bar``: on a terminal only)."""
    from nvcodec import runtime
    from nvcodec.metrics import psnr_per_frame

    scores, per_video = [], []
    with open_nvc(path, device=device) as nvc:
        bar = runtime.progress_bar(sum(v.n_frames for v in nvc.videos), "measuring decode", enabled=progress,
                                   unit="frame")
        for entry in nvc.videos:
            ref = np.asarray(reference[entry.name])
            if len(ref) != entry.n_frames:
                raise ValueError(f"reference for {entry.name!r} has {len(ref)} frames, the file {entry.n_frames}")
            psnr = []
            for i, frame in enumerate(nvc.iter_frames(entry.name)):
                psnr.append(psnr_per_frame(ref[i:i + 1], frame[None])[0])
                bar.update(1)
            psnr = np.array(psnr)
            scores.append(psnr)
            per_video.append({"name": entry.name, "width": entry.width, "height": entry.height,
                              "n_frames": entry.n_frames, "psnr": float(np.mean(psnr))})
        bar.close()
        breakdown = nvc.byte_breakdown()
    return Measurement(psnr=float(np.mean(np.concatenate(scores))), bytes_by_part=breakdown, videos=per_video)


# -- writing files -------------------------------------------------------------

OUTPUT_SUFFIX = {"y4m": ".y4m", "mp4": ".mp4", "png": ""}


def output_key(rel_path: str) -> str:
    """What two output paths are compared by: NFKC, case-folded, NFKC again. Paths equal under this
    key may name one file on a case-insensitive or normalising file system (macOS, Windows)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", rel_path).casefold())


def _colliding(rels: Sequence[str]) -> set[int]:
    """Indices of paths that equal another under output_key, or are a folder of another (a/ vs a/b)."""
    keys = [output_key(r) for r in rels]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    bad = {i for same in by_key.values() if len(same) > 1 for i in same}
    for i, k in enumerate(keys):
        parts = k.split("/")
        for depth in range(1, len(parts)):
            for j in by_key.get("/".join(parts[:depth]), ()):
                bad.update((i, j))
    return bad


def output_paths(names: Sequence[str], outdir: Path, fmt: str) -> dict[str, Path]:
    """Where each video goes under ``outdir`` (FORMAT.md section 13, "Output names").

    Each video's output takes the first of three forms: its name with the last extension
    replaced by the format's (a/b.y4m), its name plus the format's extension (a/b.mp4.y4m), that
    with the video's index in ``names`` (a/b.mp4~3.y4m). Two outputs collide when equal under
    ``output_key`` or when one would be a folder of the other; while any collide, the colliding
    outputs in the lowest form present move up one form. Names were validated by the container;
    the check that the result stays inside ``outdir`` is a second line of defence.
    """
    suffix = OUTPUT_SUFFIX[fmt]
    forms = (lambda i: str(PurePosixPath(names[i]).with_suffix("")) + suffix,    # a/b.y4m
             lambda i: names[i] + suffix,                                         # a/b.mp4.y4m
             lambda i: f"{names[i]}~{i}{suffix}")                                 # a/b.mp4~3.y4m
    level = [0] * len(names)
    rels = [forms[0](i) for i in range(len(names))]
    while clash := _colliding(rels):
        lowest = min(level[i] for i in clash)
        if lowest == len(forms) - 1:
            first, second = sorted(clash)[:2]
            raise NvcFormatError(f"video names {names[first]!r} and {names[second]!r} cannot be given "
                                 f"distinct output paths")
        for i in clash:
            if level[i] == lowest:
                level[i] += 1
                rels[i] = forms[level[i]](i)
    root = outdir.resolve()
    paths = {}
    for name, rel in zip(names, rels):
        dest = (root / rel).resolve()
        if root != dest and root not in dest.parents:
            raise NvcFormatError(f"video name {name!r} would write outside the output folder")
        paths[name] = dest
    return paths


def frame_range(entry: VideoRecord, frames: slice) -> tuple[int, int]:
    """(start, stop) of ``frames`` in ``entry``; NvcInputError naming the video's length when the
    range is empty or reaches past the end (an open end, ``A:``, means the last frame)."""
    if frames.step not in (None, 1):
        raise NvcInputError(f"frames: only contiguous ranges are supported, got step {frames.step}")
    start = 0 if frames.start is None else frames.start
    stop = entry.n_frames if frames.stop is None else frames.stop
    if not 0 <= start < stop <= entry.n_frames:
        raise NvcInputError(f"frames {start}:{stop} are not inside {entry.name!r}, which has {entry.n_frames} "
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

    All or nothing: every output is written into a temporary folder inside ``outdir`` and moved
    into place only when every selected video has decoded, so a decode that fails midway leaves
    no partial set behind. ``frames`` must lie inside every selected video (an error naming its
    length). Existing outputs are refused unless ``force``, before anything is decoded.
    ``crf``/``lossless``: mp4 only (``VideoWriter``). png files are named by the 0-based frame
    index. ``progress(video_name, n_frames_so_far, n_frames_total)`` is called after every frame
    written to a file (counts over all selected videos).
    """
    import shutil
    import tempfile
    import time

    from nvcodec.media import TEMP_PREFIX, VideoWriter

    if fmt not in OUTPUT_SUFFIX:
        raise NvcInputError(f"format must be one of {sorted(OUTPUT_SUFFIX)}, got {fmt!r}")
    started = time.monotonic()
    n_frames = 0
    with open_nvc(path, device=device) as nvc:
        selected = [nvc.videos[nvc.video_index(v)] for v in videos] if videos else list(nvc.videos)
        ranges = {entry.name: frame_range(entry, frames) for entry in selected}
        if str(outdir) == "-":
            if len(selected) != 1 or fmt != "y4m":
                raise NvcInputError("decoding to '-' (stdout) writes one video as y4m: choose it with --video")
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
            raise NvcInputError(f"{existing[0]} exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1
                                                           else "") + "; pass --force to overwrite")
        n_total = sum(stop - start for start, stop in ranges.values())
        root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=root.resolve()))
        try:
            staged = []
            for entry in selected:
                dest = stage / dests[entry.name].relative_to(root.resolve())
                with VideoWriter(dest, fmt, entry.width, entry.height, entry.fps_num, entry.fps_den, crf=crf,
                                 lossless=lossless, first_index=ranges[entry.name][0]) as writer:
                    for frame in nvc.iter_frames(entry.name, frames):
                        writer.write(frame)
                        n_frames += 1
                        if progress is not None:
                            progress(entry.name, n_frames, n_total)
                staged.append((dest, dests[entry.name]))
            for tmp, dest in staged:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_dir() and not dest.is_symlink():      # a png folder replaced under --force
                    shutil.rmtree(dest)
                os.replace(tmp, dest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return DecodeReport(outputs=[str(dests[e.name]) for e in selected], n_frames=n_frames,
                        seconds=time.monotonic() - started)


class ClipDataset(Dataset):
    """A ``torch.utils.data.Dataset`` of clips decoded straight from an .nvc file.

    Item ``i`` is one clip (at most ``keyframe_interval`` frames: fewer for a
    video's short last clip, or a clip that ends before a listed keyframe) of one video, as a uint8 tensor (n, 3, H, W), with the
    network on ``device`` (CUDA when present): a training pipeline can read
    compressed data directly, as the paper does for action recognition.
    """

    def __init__(self, path: str | os.PathLike, *, device: str | None = None) -> None:
        self._path = Path(path)
        self._device = device
        self._nvc: NvcFile | None = None
        with open_nvc(path) as nvc:
            self.items = []
            for v in range(len(nvc.videos)):
                first, last = nvc.keyframe_layout(v).clips()[:2]
                self.items += [(v, a, b + 1) for a, b in zip(first.tolist(), last.tolist())]
            self.videos = nvc.videos

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._nvc is None:             # opened lazily: one per DataLoader worker
            self._nvc = open_nvc(self._path, device=self._device)
        v, start, stop = self.items[i]
        frames = self._nvc.read(v, slice(start, stop))
        return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
