"""The clips the network sees: the one data contract between the corpus layer and the fitter.

The corpus layer (``nvcodec.corpus``) turns videos into tile-videos and cuts them
into clips of ``T`` frames whose start and end keyframes are shared with the
neighbouring clips (DESIGN.md, "Tiling" and "Keyframes"). The fitter
(``nvcodec.fit``) and the decoder only ever see this object. Arrays are numpy
and channels-first so that a batch is a slice plus one ``torch.from_numpy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipSet:
    """Clips of tile-videos, ready for the network.

    ``frames``    uint8 (n_clips, T, 3, tile_h, tile_w): target frames; ``None`` when decoding. An array,
                  or an array-like whose ``frames[index]`` gives that array for the clips ``index``
                  (``nvcodec.store.ClipFrames``: read from the frame store on demand).
    ``mask``      bool (n_clips, T): True for real frames, False for the padding of a short last clip.
    ``t_video``   float32 (n_clips, T): the frame's relative time in its own video, i/(L-1), 0 when L=1.
    ``t_local``   float32 (n_clips, T): weight of the end keyframe, (i-s)/(e-s), 0 when e == s.
    ``keyframes`` uint8 (n_keyframe_tiles, 3, tile_h, tile_w): *decoded* keyframe tiles (an array, or an
                  array-like read on demand, ``nvcodec.store.ClipKeyframes``).
    ``start_kf``, ``end_kf``  int64 (n_clips,): indices into ``keyframes``.
    ``video``, ``tile``, ``first_frame``  int64 (n_clips,): where each clip comes from
        (video index, tile index within that video's grid, frame index of its first frame).
    ``warped``    uint8 (n_clips, T, 2, 3, tile_h, tile_w) or ``None``: for a network that consumes
        coded motion, each frame's start and end keyframe tiles warped at frame level by the
        frame's decoded motion (``nvcodec.motion.warped_clip``, then tiled). An array, or an array-like
        read on demand as ``frames`` may be (``nvcodec.store.ClipWarped``).
    ``row``       int64 (n_clips,) or ``None``: for a network with per-frame latents, each clip's row of
        the latent table, its index in the file's clip order (video, clip, tile).
    """

    mask: np.ndarray
    t_video: np.ndarray
    t_local: np.ndarray
    keyframes: np.ndarray
    start_kf: np.ndarray
    end_kf: np.ndarray
    video: np.ndarray
    tile: np.ndarray
    first_frame: np.ndarray
    frames: np.ndarray | None = None
    warped: np.ndarray | None = None
    row: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_clips, n_t = self.mask.shape
        if self.mask.dtype != np.bool_:
            raise TypeError(f"mask: expected bool, got {self.mask.dtype}")
        for name in ("t_video", "t_local"):
            arr = getattr(self, name)
            if arr.shape != (n_clips, n_t) or arr.dtype != np.float32:
                raise ValueError(f"{name}: expected float32 {(n_clips, n_t)}, got {arr.dtype} {arr.shape}")
        if self.keyframes.ndim != 4 or self.keyframes.shape[1] != 3 or self.keyframes.dtype != np.uint8:
            raise ValueError(f"keyframes: expected uint8 (n, 3, h, w), got {self.keyframes.dtype} {self.keyframes.shape}")
        for name in ("start_kf", "end_kf", "video", "tile", "first_frame") + (("row",) if self.row is not None else ()):
            arr = getattr(self, name)
            if arr.shape != (n_clips,) or arr.dtype != np.int64:
                raise ValueError(f"{name}: expected int64 {(n_clips,)}, got {arr.dtype} {arr.shape}")
        n_kf = self.keyframes.shape[0]
        for name in ("start_kf", "end_kf"):
            arr = getattr(self, name)
            if n_clips and (arr.min() < 0 or arr.max() >= n_kf):
                raise ValueError(f"{name}: indices must lie in [0, {n_kf}), got [{arr.min()}, {arr.max()}]")
        if self.frames is not None:
            expected = (n_clips, n_t, 3, *self.tile_size)
            if self.frames.shape != expected or self.frames.dtype != np.uint8:
                raise ValueError(f"frames: expected uint8 {expected}, got {self.frames.dtype} {self.frames.shape}")
        if self.warped is not None:
            expected = (n_clips, n_t, 2, 3, *self.tile_size)
            if self.warped.shape != expected or self.warped.dtype != np.uint8:
                raise ValueError(f"warped: expected uint8 {expected}, got {self.warped.dtype} {self.warped.shape}")

    @property
    def n_clips(self) -> int:
        return self.mask.shape[0]

    @property
    def clip_length(self) -> int:
        return self.mask.shape[1]

    @property
    def tile_size(self) -> tuple[int, int]:
        """(tile_h, tile_w)."""
        return self.keyframes.shape[2], self.keyframes.shape[3]

    def subset(self, index: np.ndarray | slice) -> "ClipSet":
        """The clips selected by ``index``, sharing the keyframe array (no copy of it)."""
        def pick(arr):
            if arr is None:
                return None
            # read on demand (nvcodec.store.ClipFrames, ClipWarped): the subset stays on demand
            return arr.subset(index) if hasattr(arr, "subset") else arr[index]

        return ClipSet(
            mask=self.mask[index], t_video=self.t_video[index], t_local=self.t_local[index],
            keyframes=self.keyframes, start_kf=self.start_kf[index], end_kf=self.end_kf[index],
            video=self.video[index], tile=self.tile[index], first_frame=self.first_frame[index],
            frames=pick(self.frames), warped=pick(self.warped), row=pick(self.row),
        )
