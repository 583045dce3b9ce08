"""The corpus: which videos, where the keyframes are, tiles, and clips (DESIGN.md "Tiling", "Keyframes").

- :func:`scan` turns folders/files into probed :class:`SourceVideo` entries with stable
  names (relative POSIX paths, as stored in metadata["videos"][i]["name"]).
- :func:`keyframe_positions` is the one home of the keyframe rule: the regular frames 0, K,
  2K, ... (< L) plus L-1 (FORMAT.md section 5), or, given scene cuts, the same rule inside each
  shot (FORMAT.md section 15). The clips that follow from a list are
  ``nvcodec.bitstream.KeyframeLayout``'s (FORMAT.md section 13).
- :func:`split_tiles` / :func:`merge_tiles` pad a frame to whole tiles (edge padding)
  and back (crop); tile order is row-major over the grid.
- :func:`build_clipset` cuts tile-videos into clips of at most K frames, a :class:`ClipSet`.
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from nvcodec.bitstream import KeyframeLayout, check_video_name, regular_keyframes
from nvcodec.clipset import ClipSet
from nvcodec.errors import NvcInputError
from nvcodec.media import MediaError, VideoInfo, probe

# Extensions treated as video: other files are skipped with a warning. Files with these
# extensions that ffmpeg cannot decode are *broken videos* (an error unless skip_broken).
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".asf", ".flv", ".mpg", ".mpeg",
    ".m2v", ".ts", ".mts", ".m2ts", ".vob", ".3gp", ".3g2", ".ogv", ".ogg", ".mxf", ".nut",
    ".y4m", ".ivf", ".obu", ".264", ".h264", ".avc", ".265", ".h265", ".hevc", ".266", ".vvc",
    ".jsv", ".dv", ".gif",
})


@dataclass(frozen=True)
class SourceVideo:
    name: str          # relative POSIX path (metadata["videos"][i]["name"])
    path: Path
    info: VideoInfo


def _unreadable_link(path: Path) -> str | None:
    """Why a symbolic link cannot be followed ('symbolic link loop', 'broken symbolic link'), else None."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as e:
        return "symbolic link loop" if e.errno == errno.ELOOP else "broken symbolic link"
    return None


def _candidates(inputs: Sequence[str | Path], warn) -> list[tuple[str, Path]]:
    """(name, path) of every file under the inputs, each folder walked in sorted order.
    Links that lead nowhere (loops, dangling) are skipped with a ``warn`` line."""
    out = []
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            files = []
            for p in root.rglob("*"):
                if p.is_file():
                    files.append(p)
                elif (why := _unreadable_link(p)) is not None:
                    warn(f"skipping {p}: {why}")
            files.sort(key=lambda p: p.relative_to(root).as_posix())
            out.extend((p.relative_to(root).as_posix(), p) for p in files)
        elif root.is_file():
            out.append((root.name, root))
        else:
            raise NvcInputError(f"input {str(root)!r}: no such file or folder")
    return out


def scan(inputs: Sequence[str | Path], *, skip_broken: bool = False, warn=print) -> list[SourceVideo]:
    """Probe every video under ``inputs`` (folders recursively, or files), in stable order.

    Names are POSIX paths relative to the given folder (a file given directly: its basename);
    a name the format refuses (FORMAT.md section 5, e.g. a component over 200 bytes) is a ValueError
    before anything is probed further. Symbolic links that lead nowhere are skipped with a warning.
    Files without a video extension (VIDEO_EXTENSIONS) are skipped with a ``warn`` line, and
    so are media files without a video stream (audio only). A video ffmpeg cannot decode
    raises MediaError naming it, or with ``skip_broken`` is skipped with a warning.
    ValueError when nothing decodable is left, or when two inputs give the same name.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    videos, names = [], {}
    for name, path in _candidates(inputs, warn):
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            warn(f"skipping {path}: not a video file (extension {path.suffix or 'none'!r})")
            continue
        try:
            check_video_name(name)
        except ValueError as e:
            raise ValueError(f"input {str(path)!r} cannot be stored under its name: {e}") from None
        try:
            info = probe(path)
        except MediaError as e:
            if e.what == "no video stream":
                warn(f"skipping {path}: no video stream")
                continue
            if skip_broken:
                warn(f"skipping broken video {path}: {e.what}")
                continue
            raise
        if name in names:
            raise NvcInputError(f"two inputs give the video name {name!r}: {names[name]} and {path}")
        names[name] = path
        videos.append(SourceVideo(name, path, info))
    if not videos:
        raise NvcInputError(f"no decodable video in {[str(p) for p in inputs]}")
    return videos


def keyframe_positions(n_frames: int, interval: int, cuts: Sequence[int] = ()) -> np.ndarray:
    """Frame indices of the keyframes, int64.

    Without ``cuts``: 0, K, 2K, ... (< L), plus L-1 if (L-1) % K != 0. A cut at frame c means c
    starts a new shot; each shot a..b then gets that rule on its own (a, a+K, ..., b), so c is a
    keyframe and so is c-1, the last frame of the shot before: no frame is ever predicted from
    another shot's keyframe (a cut at 0 changes nothing)."""
    if n_frames < 1 or interval < 1:
        raise ValueError(f"keyframe_positions: need n_frames >= 1 and interval >= 1, got {n_frames}, {interval}")
    starts = sorted({int(c) for c in cuts} - {0})
    if starts and not (1 <= starts[0] and starts[-1] < n_frames):
        raise ValueError(f"keyframe_positions: cuts must be frames 0..{n_frames - 1}, got {starts[0]}..{starts[-1]}")
    bounds = [0, *starts, n_frames]
    return np.concatenate([a + regular_keyframes(b - a, interval) for a, b in zip(bounds[:-1], bounds[1:])])


def tile_grid(height: int, width: int, tile_h: int, tile_w: int) -> tuple[int, int]:
    """(rows, cols) of tiles covering a height x width frame."""
    return math.ceil(height / tile_h), math.ceil(width / tile_w)


def split_tiles(frames: np.ndarray, tile_h: int, tile_w: int) -> np.ndarray:
    """(N, H, W, 3) -> (N, n_tiles, 3, tile_h, tile_w): edge-pad to whole tiles, row-major tiles."""
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames: expected (N, H, W, 3), got {frames.shape}")
    if tile_h < 1 or tile_w < 1:
        raise ValueError(f"tile size must be >= 1, got {tile_h}x{tile_w}")
    n, h, w, _ = frames.shape
    rows, cols = tile_grid(h, w, tile_h, tile_w)
    padded = np.pad(frames, ((0, 0), (0, rows * tile_h - h), (0, cols * tile_w - w), (0, 0)), mode="edge")
    t = padded.reshape(n, rows, tile_h, cols, tile_w, 3).transpose(0, 1, 3, 5, 2, 4)  # (N, rows, cols, 3, th, tw)
    return np.ascontiguousarray(t.reshape(n, rows * cols, 3, tile_h, tile_w))


def merge_tiles(tiles: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, n_tiles, 3, tile_h, tile_w) -> (N, height, width, 3): stitch row-major tiles, crop the padding."""
    if tiles.ndim != 5 or tiles.shape[2] != 3:
        raise ValueError(f"tiles: expected (N, n_tiles, 3, th, tw), got {tiles.shape}")
    n, n_tiles, _, th, tw = tiles.shape
    rows, cols = tile_grid(height, width, th, tw)
    if n_tiles != rows * cols:
        raise ValueError(f"{n_tiles} tiles of {th}x{tw} cannot cover {width}x{height} ({rows}x{cols} needed)")
    t = tiles.reshape(n, rows, cols, 3, th, tw).transpose(0, 1, 4, 2, 5, 3)            # (N, rows, th, cols, tw, 3)
    return np.ascontiguousarray(t.reshape(n, rows * th, cols * tw, 3)[:, :height, :width])


def clip_layout(n_frames: int, interval: int, first_clip: int = 0,
                stop_clip: int | None = None, keyframes: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Clips ``first_clip .. stop_clip-1`` (default: all) of one video: (first_frame, start_kf, end_kf)
    int64 (n_clips,), then per clip slot frame index int64, mask bool, t_video float32, t_local
    float32, each (n_clips, K). Work and memory follow the clips asked for, not n_frames.

    ``keyframes``: the video's keyframe frames (``keyframe_positions``), None for the regular ones.
    Clip j starts at keyframe j and runs to the frame before its end keyframe j+1; the last frame
    joins the last clip when it fits (KeyframeLayout, FORMAT.md section 13). With the regular
    keyframes clip c covers frames cK .. min(cK+K, L)-1. Padding slots of a short clip repeat its
    last frame (mask False, times of that frame). t_video = i/(L-1) (0 when L=1); t_local =
    (i-s)/(e-s) with s, e the frames of its keyframes (0 when e == s)."""
    if n_frames < 1 or interval < 1:
        raise ValueError(f"clip_layout: need n_frames >= 1 and interval >= 1, got {n_frames}, {interval}")
    layout = KeyframeLayout(n_frames, interval, keyframes)
    try:
        first, last, start_kf, end_kf, end_frame = layout.clips(first_clip, stop_clip)
    except ValueError as e:
        raise ValueError(f"clip_layout: {e}") from None
    slot = first[:, None] + np.arange(interval, dtype=np.int64)[None, :]                # (n_clips, K)
    mask = slot <= last[:, None]
    frame = np.minimum(slot, last[:, None])
    t_video = (frame / (n_frames - 1) if n_frames > 1 else np.zeros(frame.shape)).astype(np.float32)
    span = (end_frame - first)[:, None]
    t_local = np.where(span > 0, (frame - first[:, None]) / np.maximum(span, 1), 0.0).astype(np.float32)
    return first, start_kf, end_kf, frame, mask, t_video, t_local


def _tile_clips(n_frames: int, interval: int, n_tiles: int, first_clip: int, stop_clip: int | None,
                kf_offset: int, keyframes: np.ndarray | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ClipSet arrays of one video's clips ``first_clip .. stop_clip-1`` for every tile
    (clip-major, tile-minor), and the clips' frame indices (n, K). Keyframe tile indices are
    ``kf_offset + k * n_tiles + j`` for keyframe k of the video, tile j."""
    first, start_kf, end_kf, frame_idx, mask, t_video, t_local = clip_layout(n_frames, interval, first_clip, stop_clip,
                                                                             keyframes)
    n_clips = len(first)
    tile = np.tile(np.arange(n_tiles, dtype=np.int64), n_clips)
    rep = lambda a: np.repeat(a, n_tiles, axis=0)                         # noqa: E731
    arrays = {"mask": rep(mask), "t_video": rep(t_video), "t_local": rep(t_local),
              "start_kf": kf_offset + rep(start_kf) * n_tiles + tile,
              "end_kf": kf_offset + rep(end_kf) * n_tiles + tile,
              "tile": tile, "first_frame": rep(first)}
    return arrays, frame_idx


def tile_warped(warped: np.ndarray, tile_h: int, tile_w: int) -> np.ndarray:
    """Per-clip warped keyframes (n_clips, T, 2, H, W, 3) -> (n_clips * n_tiles, T, 2, 3, th, tw),
    clip-major and tile-minor like the clips of ``_tile_clips``."""
    n_clips, clip_length = warped.shape[:2]
    wt = split_tiles(warped.reshape(-1, *warped.shape[3:]), tile_h, tile_w)   # (n*T*2, n_tiles, 3, th, tw)
    n_tiles = wt.shape[1]
    wt = wt.reshape(n_clips, clip_length, 2, n_tiles, 3, tile_h, tile_w).transpose(0, 3, 1, 2, 4, 5, 6)
    return np.ascontiguousarray(wt.reshape(n_clips * n_tiles, clip_length, 2, 3, tile_h, tile_w))


def build_clip_range(keyframes: np.ndarray, first_keyframe: int, n_frames: int, interval: int,
                     tile_h: int, tile_w: int, first_clip: int, stop_clip: int,
                     positions: np.ndarray | None = None, warped: np.ndarray | None = None,
                     first_row: int | None = None) -> ClipSet:
    """Decode-only clips ``first_clip .. stop_clip-1`` of one video, every tile, clip-major.

    ``keyframes`` (n, H, W, 3) are that video's decoded keyframes ``first_keyframe ..``: random
    access decodes only the keyframes its clips need. ``warped``: those clips' motion-warped
    keyframes (stop_clip - first_clip, K, 2, H, W, 3), for a network that consumes coded motion.
    ``positions``: the video's keyframe frames (None: the regular ones). ``first_row``: for a network with
    per-frame latents, the row of clip ``first_clip``'s first tile (``latent_row_bases``); the clips' rows follow.
    """
    kt = split_tiles(keyframes, tile_h, tile_w)                           # (n, n_tiles, 3, th, tw)
    n_tiles = kt.shape[1]
    arrays, _ = _tile_clips(n_frames, interval, n_tiles, first_clip, stop_clip, -first_keyframe * n_tiles, positions)
    n = len(arrays["tile"])
    return ClipSet(keyframes=kt.reshape(-1, 3, tile_h, tile_w), video=np.zeros(n, np.int64),
                   warped=None if warped is None else tile_warped(warped, tile_h, tile_w),
                   row=None if first_row is None else first_row + np.arange(n, dtype=np.int64), **arrays)


def latent_row_bases(videos: Sequence[tuple[int, int, int, np.ndarray | None]], interval: int, tile_h: int,
                     tile_w: int) -> tuple[list[int], int]:
    """Per video (n_frames, height, width, keyframe positions or None), the latent row of its first clip's
    first tile, and the rows of all videos together: the file's clips in order (video, clip, tile), as
    ``build_clipset`` orders them. Video v's clip c, tile j is row ``bases[v] + c * n_tiles_v + j``."""
    bases, total = [], 0
    for n_frames, height, width, pos in videos:
        bases.append(total)
        total += KeyframeLayout(n_frames, interval, pos).n_clips * math.prod(tile_grid(height, width, tile_h, tile_w))
    return bases, total


def build_clipset(videos: Sequence[tuple[np.ndarray | None, np.ndarray, int]], interval: int,
                  tile_h: int, tile_w: int, positions: Sequence[np.ndarray | None] | None = None,
                  warped: Sequence[np.ndarray] | None = None, rows: bool = False) -> ClipSet:
    """Clips of every tile-video of every video.

    ``videos``: per video (frames (L, H, W, 3) uint8 or None when decoding, decoded keyframes
    (n_kf, H, W, 3) uint8, L). Order: video, then clip, then tile (so one clip's tiles are
    adjacent and a frame can be stitched as soon as its clip is predicted). ``keyframes``
    holds video v's keyframe k, tile j at ``kf_base[v] + k * n_tiles_v + j``.
    ``frames`` is None unless every video gives frames. Frames given as array-likes that are not
    numpy arrays (the frame store's ``StoredVideo``) stay where they are: ``frames`` is then a
    ``store.ClipFrames`` that reads a batch's clips when indexed, so memory follows the batch.
    Keyframes given so make ``keyframes`` a ``store.ClipKeyframes``, read likewise.
    ``warped``: per video, its clips' motion-warped keyframes (n_clips, K, 2, H, W, 3)
    (``nvcodec.motion.warped_video``), for a network that consumes coded motion; given as array-likes
    that are not numpy arrays (``FrameStore.hold_warped``), ``warped`` is a ``store.ClipWarped``
    read a batch at a time, as the frames are. ``positions``: per
    video its keyframes' frame numbers (``keyframe_positions``), or None for the regular ones (all
    videos when omitted). ``rows``: give each clip its row of a latent table (its index here).
    """
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    if not videos:
        raise ValueError("build_clipset: no videos")
    with_frames = all(v[0] is not None for v in videos)
    on_demand = with_frames and not all(isinstance(v[0], np.ndarray) for v in videos)
    warped_on_demand = warped is not None and not all(isinstance(w, np.ndarray) for w in warped)
    keyframes_on_demand = not all(isinstance(v[1], np.ndarray) for v in videos)
    frame_rows: list[np.ndarray] = []                                     # on demand: (n_clips * n_tiles, K)
    warped_clip: list[np.ndarray] = []                                    # on demand: clip of each row in its video
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "mask", "t_video", "t_local", "start_kf", "end_kf", "video", "tile", "first_frame", "frames", "warped")}
    kf_tiles, kf_base = [], 0
    positions = [None] * len(videos) if positions is None else list(positions)
    if len(positions) != len(videos):
        raise ValueError(f"build_clipset: keyframe positions for {len(positions)} videos, {len(videos)} given")
    for v, ((frames, keyframes, n_frames), pos) in enumerate(zip(videos, positions)):
        n_kf = KeyframeLayout(n_frames, interval, pos).n_keyframes
        if keyframes.ndim != 4 or keyframes.shape[0] != n_kf or keyframes.shape[3] != 3:
            raise ValueError(f"video {v}: expected {n_kf} keyframes (n_kf, H, W, 3) for L={n_frames}, "
                             f"K={interval}; got {keyframes.shape}")
        height, width = keyframes.shape[1:3]
        if frames is not None and frames.shape != (n_frames, height, width, 3):
            raise ValueError(f"video {v}: frames {frames.shape} do not match L={n_frames} and keyframes "
                             f"{width}x{height}")
        if keyframes_on_demand:
            n_tiles = math.prod(tile_grid(height, width, tile_h, tile_w))
        else:
            kt = split_tiles(keyframes, tile_h, tile_w)                   # (n_kf, n_tiles, 3, th, tw)
            n_tiles = kt.shape[1]
            kf_tiles.append(kt.reshape(-1, 3, tile_h, tile_w))
        arrays, frame_idx = _tile_clips(n_frames, interval, n_tiles, 0, None, kf_base, pos)
        for key, arr in arrays.items():
            parts[key].append(arr)
        parts["video"].append(np.full(len(arrays["tile"]), v, np.int64))
        if on_demand:
            frame_rows.append(np.repeat(frame_idx, n_tiles, axis=0))
        elif with_frames:
            ft = split_tiles(frames, tile_h, tile_w)                      # (L, n_tiles, 3, th, tw)
            clips = ft[frame_idx]                                         # (n_clips, K, n_tiles, 3, th, tw)
            parts["frames"].append(clips.transpose(0, 2, 1, 3, 4, 5).reshape(-1, interval, 3, tile_h, tile_w))
        if warped_on_demand:
            warped_clip.append(np.repeat(np.arange(len(frame_idx), dtype=np.int64), n_tiles))
        elif warped is not None:
            parts["warped"].append(tile_warped(warped[v], tile_h, tile_w))
        kf_base += n_kf * n_tiles
    cat = {k: np.concatenate(a) for k, a in parts.items() if a}
    if on_demand:
        from nvcodec.store import ClipFrames

        cat["frames"] = ClipFrames([v[0] for v in videos], np.concatenate(frame_rows), cat["video"], cat["tile"],
                                   tile_h, tile_w)
    if keyframes_on_demand:
        from nvcodec.store import ClipKeyframes

        kf_tiles = [ClipKeyframes([v[1] for v in videos], tile_h, tile_w)]
    if warped_on_demand:
        from nvcodec.store import ClipWarped

        cat["warped"] = ClipWarped(list(warped), np.concatenate(warped_clip), cat["video"], cat["tile"], tile_h, tile_w)
    return ClipSet(mask=cat["mask"], t_video=cat["t_video"], t_local=cat["t_local"],
                   keyframes=kf_tiles[0] if keyframes_on_demand else np.concatenate(kf_tiles), start_kf=cat["start_kf"], end_kf=cat["end_kf"],
                   video=cat["video"], tile=cat["tile"], first_frame=cat["first_frame"],
                   frames=cat.get("frames"), warped=cat.get("warped"),
                   row=np.arange(len(cat["tile"]), dtype=np.int64) if rows else None)
