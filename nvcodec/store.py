"""The frame store: each video's frames as coded, decoded once into a folder on disk (DESIGN.md,
"The data flow": streamed; an on-disk store for large corpora).

The encoder never holds the corpus in memory. :func:`open_store` decodes every video once
(ffmpeg, frame by frame) into one raw uint8 file of shape (L, H, W, 3), C order, beside a JSON
entry that records the shape and what the frames were made from: the source's resolved path,
size in bytes and mtime (ns), and the size/fps/max_frames settings. An entry whose source
changed is decoded again; an entry that matches is reused (``--resume``, or a kept store).

Layout: one frame-major file per video, not a tile/clip-major one. A clip's frames are K
whole frames, so one batch reads K x n_tiles times the tile's bytes; measured by
``benchmarks/bench_store.py`` (``benchmarks/results/store``) the fit still ran at 0.95-0.96 x
its in-memory steps/s, and frame order keeps every consumer (keyframe coding, motion
estimation, metrics, the measuring decode) and any keyframe placement working on the same
file, whatever the tile or the clip layout.

:class:`StoredVideo` is an array-like over one file: ``video[index]`` reads just those frames
(a memory map opened for the read and closed after it, so pages do not stay mapped).
:class:`ClipFrames` is ``ClipSet.frames`` read on demand: ``frames[index]`` gives the uint8
(len(index), T, 3, th, tw) of those clips, reading only their videos' frames.
The encode also holds each video's decoded keyframes and, for a network that consumes coded
motion, its clips' warped keyframes beside the frames (``FrameStore.hold_keyframes`` /
``hold_warped``); :class:`ClipKeyframes` and :class:`ClipWarped` are ``ClipSet.keyframes`` and
``ClipSet.warped`` read on demand likewise.

Writing is atomic per entry (a temporary file renamed into place, the JSON last); a full
disk or a file-size limit raises one ``NvcInputError`` and leaves no partial entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from nvcodec.corpus import SourceVideo, split_tiles, tile_grid
from nvcodec.errors import NvcInputError
from nvcodec.media import read_frames

STORE_VERSION = 1             # bump when the entry layout changes: older entries are decoded again
ENTRY_SUFFIX = ".json"        # what an entry records (StoreKey + shape); written after the frames
FRAMES_SUFFIX = ".u8"         # the frames: raw uint8 (L, H, W, 3), C order
KEYFRAMES_SUFFIX = ".kf.u8"   # the encoder's decoded keyframes of the video (n_kf, H, W, 3), same layout
WARPED_SUFFIX = ".wp.u8"      # its clips' motion-warped keyframes (n_clips, K, 2, H, W, 3) (motion.warped_video)
HELD_SUFFIXES = (KEYFRAMES_SUFFIX, WARPED_SUFFIX)   # what one encode holds beside the frames


@dataclass(frozen=True)
class StoreKey:
    """What a video's stored frames were made from. ``name`` is the file stem: the source path and
    the read settings (so one store can hold several corpora); size and mtime decide whether the
    entry is still valid."""

    path: str                 # resolved source path
    n_bytes: int              # source file size
    mtime_ns: int             # source modification time
    size: list[int] | None    # (width, height) asked for, None: as the source
    fps: str | None           # the --fps resampling, None: every frame
    max_frames: int | None

    @property
    def name(self) -> str:
        ident = json.dumps([STORE_VERSION, self.path, self.size, self.fps, self.max_frames])
        return hashlib.sha256(ident.encode()).hexdigest()[:24]


def store_key(source: SourceVideo, size, fps, max_frames) -> StoreKey:
    st = os.stat(source.path)
    return StoreKey(path=str(Path(source.path).resolve()), n_bytes=st.st_size, mtime_ns=st.st_mtime_ns,
                    size=list(size) if size is not None else None, fps=str(Fraction(fps)) if fps else None,
                    max_frames=max_frames)


class _Uint8Rows:
    """What the fit and the stages need of a uint8 array kept on disk: dtype, shape, ndim, len."""

    dtype = np.dtype(np.uint8)
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]


class StoredVideo(_Uint8Rows):
    """One video's frames in the store, (L, H, W, 3) uint8, read on demand (``video[index]``) along
    the first axis; likewise its held keyframes and warped keyframes (other shapes, same access)."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path, self.shape = Path(path), tuple(int(n) for n in shape)

    def __getitem__(self, index) -> np.ndarray:
        """The frames at ``index`` (an int, a slice or an int array) as a new in-memory array."""
        # Mapped for this read only: pages touched must not stay mapped (resident) in this process.
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            frames = np.frombuffer(mapped, np.uint8, count=math.prod(self.shape)).reshape(self.shape)
            out = np.array(frames[index])
            del frames                # the map closes only once no array points into it
        return out

    def read(self) -> np.ndarray:
        """The whole video in memory (for the stages that walk one video at a time)."""
        return np.fromfile(self.path, np.uint8, count=math.prod(self.shape)).reshape(self.shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        frames = self.read()
        return frames if dtype is None else frames.astype(dtype)


class _RowsOnDemand(_Uint8Rows):
    """An array-like of clip rows kept in per-video files: ``self[index]`` reads only the videos of those
    rows (``_video_of``), each once (``_read``), into a new uint8 array of shape (len(index), *shape[1:])."""

    def __getitem__(self, index) -> np.ndarray:
        rows = np.arange(self.shape[0])[index]
        if rows.ndim == 0:
            return self[rows[None]][0]
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        video = self._video_of(rows)
        for v in np.unique(video):
            sel = np.flatnonzero(video == v)
            out[sel] = self._read(int(v), rows[sel])
        return out

    def _video_of(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _read(self, v: int, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ClipFrames(_RowsOnDemand):
    """``ClipSet.frames`` read on demand: clip row i is tile ``tile[i]`` of frames ``frame_index[i]``
    (T,) of video ``video[i]``; ``videos`` are per-video (L, H, W, 3) uint8 array-likes."""

    def __init__(self, videos: Sequence, frame_index: np.ndarray, video: np.ndarray, tile: np.ndarray,
                 tile_h: int, tile_w: int) -> None:
        self.videos, self.frame_index, self.video, self.tile = videos, frame_index, video, tile
        self.tile_h, self.tile_w = tile_h, tile_w
        self.shape = (len(video), frame_index.shape[1], 3, tile_h, tile_w)

    def _video_of(self, rows: np.ndarray) -> np.ndarray:
        return self.video[rows]

    def _read(self, v: int, rows: np.ndarray) -> np.ndarray:
        frame_index = self.frame_index[rows]                               # (m, T)
        needed, inverse = np.unique(frame_index.ravel(), return_inverse=True)
        tiles = split_tiles(self.videos[v][needed], self.tile_h, self.tile_w)   # (u, n_tiles, 3, th, tw)
        return tiles[inverse.reshape(frame_index.shape), self.tile[rows][:, None]]   # (m, T, 3, th, tw)

    def subset(self, index) -> "ClipFrames":
        """The rows ``index``, still on demand (``ClipSet.subset``)."""
        return ClipFrames(self.videos, self.frame_index[index], self.video[index], self.tile[index],
                          self.tile_h, self.tile_w)


class ClipKeyframes(_RowsOnDemand):
    """``ClipSet.keyframes`` read on demand: row ``base[v] + k * n_tiles[v] + j`` is tile j of keyframe k
    of video v (``corpus.build_clipset``'s order); ``videos`` are per-video (n_kf, H, W, 3) uint8
    array-likes (``FrameStore.hold_keyframes``). ``keyframes[index]`` gives the uint8 (len(index), 3, th, tw)."""

    def __init__(self, videos: Sequence, tile_h: int, tile_w: int) -> None:
        self.videos, self.tile_h, self.tile_w = videos, tile_h, tile_w
        self.n_tiles = np.array([math.prod(tile_grid(*kf.shape[1:3], tile_h, tile_w)) for kf in videos], np.int64)
        counts = np.array([len(kf) for kf in videos], np.int64) * self.n_tiles
        self.base = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.shape = (int(counts.sum()), 3, tile_h, tile_w)

    def _video_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.base, rows, side="right") - 1

    def _read(self, v: int, rows: np.ndarray) -> np.ndarray:
        keyframe, tile = np.divmod(rows - self.base[v], self.n_tiles[v])
        needed, inverse = np.unique(keyframe, return_inverse=True)
        tiles = split_tiles(self.videos[v][needed], self.tile_h, self.tile_w)   # (u, n_tiles, 3, th, tw)
        return tiles[inverse, tile]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        tiles = self[:]
        return tiles if dtype is None else tiles.astype(dtype)


class ClipWarped(_RowsOnDemand):
    """``ClipSet.warped`` read on demand: clip row i is tile ``tile[i]`` of clip ``clip[i]`` of video
    ``video[i]``; ``videos`` are per-video (n_clips, T, 2, H, W, 3) uint8 array-likes
    (``FrameStore.hold_warped``). ``warped[index]`` gives the uint8 (len(index), T, 2, 3, th, tw)."""

    def __init__(self, videos: Sequence, clip: np.ndarray, video: np.ndarray, tile: np.ndarray,
                 tile_h: int, tile_w: int) -> None:
        self.videos, self.clip, self.video, self.tile = videos, clip, video, tile
        self.tile_h, self.tile_w = tile_h, tile_w
        clip_length = videos[0].shape[1] if len(videos) else 0
        self.shape = (len(video), clip_length, 2, 3, tile_h, tile_w)

    def _video_of(self, rows: np.ndarray) -> np.ndarray:
        return self.video[rows]

    def _read(self, v: int, rows: np.ndarray) -> np.ndarray:
        needed, inverse = np.unique(self.clip[rows], return_inverse=True)
        warped = self.videos[v][needed]                                    # (u, T, 2, H, W, 3)
        u, clip_length = warped.shape[:2]
        tiles = split_tiles(warped.reshape(-1, *warped.shape[3:]), self.tile_h, self.tile_w)
        tiles = tiles.reshape(u, clip_length, 2, -1, 3, self.tile_h, self.tile_w)   # (u, T, 2, n_tiles, 3, th, tw)
        return tiles[inverse, :, :, self.tile[rows]]                       # (m, T, 2, 3, th, tw)

    def subset(self, index) -> "ClipWarped":
        """The rows ``index``, still on demand (``ClipSet.subset``)."""
        return ClipWarped(self.videos, self.clip[index], self.video[index], self.tile[index],
                          self.tile_h, self.tile_w)


@dataclass(frozen=True)
class FrameStore:
    """An opened store: one :class:`StoredVideo` per source, in the sources' order."""

    root: Path
    keys: tuple[StoreKey, ...]
    videos: tuple[StoredVideo, ...]
    changed: tuple[str, ...]          # names of the sources decoded again because they changed

    @property
    def n_bytes(self) -> int:
        return sum(math.prod(v.shape) for v in self.videos)

    def hold_keyframes(self, v: int, keyframes: np.ndarray) -> StoredVideo:
        """Keep video ``v``'s decoded keyframes beside its frames until the store is removed, and
        read them on demand from there (the encode's keyframes are 1/K of its frames)."""
        return self._hold(v, KEYFRAMES_SUFFIX, keyframes, "decoded keyframes")

    def hold_warped(self, v: int, warped: np.ndarray) -> StoredVideo:
        """Likewise video ``v``'s motion-warped keyframes (n_clips, K, 2, H, W, 3), read a batch's
        clips at a time through ``ClipWarped`` (they are twice the frames' size)."""
        return self._hold(v, WARPED_SUFFIX, warped, "warped keyframes")

    def _hold(self, v: int, suffix: str, array: np.ndarray, what: str) -> StoredVideo:
        # Under torchrun every rank holds the same array at the same path: each writes its own temporary
        # file and renames it over the entry, and the arrays are equal (the encoder is deterministic), so a
        # reader sees the same bytes whichever rank's file it opens (a read maps the file it opened).
        path = self.root / (self.keys[v].name + suffix)
        tmp = self.root / f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp"   # one per rank, any node
        try:
            np.ascontiguousarray(array, dtype=np.uint8).tofile(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise NvcInputError(f"cannot write the frame store in {self.root} ({what}): "
                                f"{exc.strerror or exc}; free some space and run again with --resume") from None
        return StoredVideo(path, array.shape)

    def remove(self, *, keep_frames: bool = False) -> None:
        """Delete this store's entries (only what an encode held, HELD_SUFFIXES, with ``keep_frames``:
        that belongs to one encode), and its folder when nothing else is left in it."""
        for key in self.keys:
            for suffix in HELD_SUFFIXES if keep_frames else (ENTRY_SUFFIX, FRAMES_SUFFIX, *HELD_SUFFIXES):
                (self.root / (key.name + suffix)).unlink(missing_ok=True)
        try:
            self.root.rmdir()
        except OSError:
            pass                      # other files (another corpus's entries) stay


def estimated_frames(source: SourceVideo, fps, max_frames: int | None) -> int:
    """The frame count a read with these settings should give (probe's count; the duration at
    ``fps``): what the free-space check plans for."""
    n = source.info.n_frames
    if fps is not None or n <= 0:
        rate = Fraction(fps) if fps is not None else source.info.fps
        n = math.ceil(source.info.duration_s * rate) + 1
    return min(n, max_frames) if max_frames else n


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2 ** 20:.1f} MiB"


def _valid_entry(root: Path, key: StoreKey) -> tuple[tuple[int, ...] | None, bool]:
    """(shape of a reusable entry or None, whether an entry for this source existed but is stale)."""
    entry = root / (key.name + ENTRY_SUFFIX)
    try:
        recorded = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None, False
    shape = tuple(recorded.get("shape", ()))
    data = root / (key.name + FRAMES_SUFFIX)
    if (recorded.get("version") == STORE_VERSION and recorded.get("key") == asdict(key) and len(shape) == 4
            and data.exists() and data.stat().st_size == math.prod(shape)):
        return shape, False
    return None, True


def open_store(root: str | os.PathLike, sources: Sequence[SourceVideo], *, size=None, fps=None,
               max_frames: int | None = None, log: Callable[[str], None] = print) -> FrameStore:
    """The frame store of ``sources`` under ``root``: entries that match are reused, the others decoded.

    Before decoding anything the store's size is logged and checked against the free space of
    ``root`` (NvcInputError when it cannot fit). A source that changed (size or mtime) since its
    entry was written is decoded again and named in ``FrameStore.changed``.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvcInputError(f"cannot use the frame store folder {root}: {exc.strerror or exc}") from None
    keys = [store_key(s, size, fps, max_frames) for s in sources]
    found = [_valid_entry(root, k) for k in keys]
    todo = [i for i, (shape, _) in enumerate(found) if shape is None]
    need = 0
    for i in todo:
        width, height = size if size is not None else (sources[i].info.width, sources[i].info.height)
        need += estimated_frames(sources[i], fps, max_frames) * height * width * 3
    have = sum(math.prod(shape) for shape, _ in found if shape is not None)
    free = shutil.disk_usage(root).free
    log(f"frame store {root}: {_mib(have + need)} ({_mib(have)} reused, {_mib(need)} to decode; "
        f"{_mib(free)} free)")
    if need > free:
        raise NvcInputError(f"the frame store in {root} needs {_mib(need)} more, only {_mib(free)} free: "
                            f"free some space or put the store on a larger disk (--store)")
    shapes, changed = [shape for shape, _ in found], []
    for i in todo:
        if found[i][1]:
            changed.append(sources[i].name)
            log(f"  {sources[i].name}: changed since its frames were stored; decoding it again")
        shapes[i] = _write_entry(root, keys[i], sources[i], size, fps, max_frames)
    videos = tuple(StoredVideo(root / (k.name + FRAMES_SUFFIX), shape) for k, shape in zip(keys, shapes))
    return FrameStore(root, tuple(keys), videos, tuple(changed))


def _write_entry(root: Path, key: StoreKey, source: SourceVideo, size, fps, max_frames) -> tuple[int, ...]:
    """Decode ``source`` into its entry (frames, then the JSON that makes the entry valid): its shape."""
    data, entry = root / (key.name + FRAMES_SUFFIX), root / (key.name + ENTRY_SUFFIX)
    tmp = root / f".{key.name}.{os.getpid()}.tmp"
    entry.unlink(missing_ok=True)                 # a stale entry is invalid from now on
    n_frames, frame_shape = 0, None
    try:
        with open(tmp, "wb") as f:
            for frame in read_frames(source.path, size=size, fps=fps, max_frames=max_frames):
                frame_shape = frame.shape
                f.write(np.ascontiguousarray(frame).data)
                n_frames += 1
        if not n_frames:
            raise NvcInputError(f"{source.name}: no frames left to code (after --fps/--max-frames)")
        shape = (n_frames, *frame_shape)
        os.replace(tmp, data)
        entry_tmp = tmp.with_suffix(".json.tmp")
        entry_tmp.write_text(json.dumps({"version": STORE_VERSION, "key": asdict(key), "shape": shape,
                                         "name": source.name}))
        os.replace(entry_tmp, entry)
    except OSError as exc:
        for path in (tmp, tmp.with_suffix(".json.tmp"), data):
            path.unlink(missing_ok=True)
        raise NvcInputError(f"cannot write the frame store in {root} ({source.name}): {exc.strerror or exc}; "
                            f"free some space and run again with --resume") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return shape
