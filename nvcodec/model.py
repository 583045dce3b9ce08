"""The D-NeRV network (He et al., CVPR 2023, arXiv 2303.14124) and its architecture config.

DESIGN.md, "The network", is the specification. Per clip of T frames the network
sees the two *decoded* keyframes and each frame's relative time, and predicts the
T frames by decoding a time embedding while warping keyframe content with flow it
predicts at every scale:

    time -> sin/cos embedding -> MLP -> C0 x h x w map           (h x w: coarse grid)
    keyframes -> shared content encoder -> pyramid, coarse .. fine (finest: raw keyframe)
    stage 0: [time map, time-blend of the coarsest features] -> instance norm
    block i: flow head -> warp both keyframes' level-i features -> blend over t
             -> x*(1+gamma)+beta -> 3x3 conv -> PixelShuffle -> GELU -> temporal MLP
    head:    flow head -> warp raw keyframes -> [x, warped] -> 1x1 -> GELU -> 3x3 -> RGB

``ModelConfig`` is what the .nvc metadata records (``to_json``/``from_json``), so the
decoder rebuilds the exact network from the file alone. ``from_json`` reads untrusted
input: every field is checked and the parameter count is bounded *before* anything
is allocated (``count_parameters`` is analytic and tested against the module).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("residual", "paper")
MAX_PARAMETERS = 400_000_000     # 1.6 GB of float32: far above any paper size (61 M)
MAX_TILE = 4096                  # container limit on tile width/height
MAX_CLIP_LENGTH = 1024           # container limit on keyframe_interval
MAX_WIDTH = 4096                 # any channel width (C0, encoder, MLP, flow head)
MAX_EMBED_LEVELS = 1024
MAX_STRIDE = 16


def derive_strides(tile_h: int, tile_w: int) -> tuple[int, ...]:
    """Decoder strides for a tile: 4 then 2s, total S = the largest power of two <= 64
    dividing both sides that leaves a coarse grid of at least 4 on the short side
    (256x320 -> 4,2,2,2,2 and a 4x5 grid, the paper's; 128x160 -> 4,2,2,2; 64x80 -> 4,2,2;
    64x64 -> 4,2,2 and 4x4). Raises ValueError when S would be below 4."""
    total = 64
    while total >= 4 and (tile_h % total or tile_w % total or min(tile_h, tile_w) // total < 4):
        total //= 2
    if total < 4:
        raise ValueError(f"tile {tile_h}x{tile_w}: both sides must be multiples of 4 and at least 16")
    strides = [4]
    while math.prod(strides) < total:
        strides.append(2)
    return tuple(strides)


def _decoder_widths(c0: int, strides: tuple[int, ...], min_width: int) -> list[int]:
    """Output channels of each decoder block: 2*C0, then max(round(C/stride), min_width)
    (Python's round, half to even, as in the paper's code: the parameter counts depend on it)."""
    widths = [2 * c0]
    for stride in strides[1:]:
        widths.append(max(round(widths[-1] / stride), min_width))
    return widths


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one D-NeRV network; recorded in the .nvc metadata ("model").

    ``strides`` empty means derived from the tile size (``derive_strides``); the config
    then stores the derived tuple, so the file always records the strides used.
    ``head``: 'paper' = the paper's output head; 'residual' = fused warped raw keyframe
    plus the head's correction (last layer zero-initialised; our measured deviation).
    ``paste_keyframes``: output the decoded keyframe itself at keyframe positions
    (t_local == 0 or 1), where the network can only approximate it.
    ``mean``/``std``: per-channel RGB normalisation of network inputs and outputs.
    """

    tile_h: int
    tile_w: int
    c0: int
    strides: tuple[int, ...] = ()
    enc_width: int = 64
    embed_levels: int = 240
    embed_base: float = 1.25
    mlp_width: int = 512
    min_width: int = 32
    clip_length: int = 8
    head: str = "residual"
    paste_keyframes: bool = True
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        def check_int(name: str, lo: int, hi: int) -> None:
            value = getattr(self, name)
            if type(value) is not int:          # bool is an int subclass: refuse it too
                raise ValueError(f"ModelConfig.{name}: expected int, got {type(value).__name__}")
            if not lo <= value <= hi:
                raise ValueError(f"ModelConfig.{name}: {value} outside [{lo}, {hi}]")

        check_int("tile_h", 16, MAX_TILE)
        check_int("tile_w", 16, MAX_TILE)
        check_int("c0", 1, MAX_WIDTH)
        check_int("enc_width", 1, MAX_WIDTH)
        check_int("embed_levels", 1, MAX_EMBED_LEVELS)
        check_int("mlp_width", 1, MAX_WIDTH)
        check_int("min_width", 1, MAX_WIDTH)
        check_int("clip_length", 1, MAX_CLIP_LENGTH)
        if not isinstance(self.embed_base, (int, float)) or isinstance(self.embed_base, bool) \
                or not 1.0 < float(self.embed_base) <= 4.0:
            raise ValueError(f"ModelConfig.embed_base: expected a number in (1, 4], got {self.embed_base!r}")
        object.__setattr__(self, "embed_base", float(self.embed_base))
        if self.head not in HEADS:
            raise ValueError(f"ModelConfig.head: expected one of {HEADS}, got {self.head!r}")
        if not isinstance(self.paste_keyframes, bool):
            raise ValueError(f"ModelConfig.paste_keyframes: expected bool, got {self.paste_keyframes!r}")
        for name, lo in (("mean", -10.0), ("std", 1e-3)):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and lo <= v <= 10.0 for v in value):
                raise ValueError(f"ModelConfig.{name}: expected 3 finite numbers in [{lo}, 10], got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))

        strides = self.strides
        if not isinstance(strides, (tuple, list)):
            raise ValueError(f"ModelConfig.strides: expected a list of ints, got {strides!r}")
        if len(strides) == 0:
            strides = derive_strides(self.tile_h, self.tile_w)
        if len(strides) > 12 or not all(type(s) is int and 1 <= s <= MAX_STRIDE for s in strides):
            raise ValueError(f"ModelConfig.strides: expected 1..12 ints in [1, {MAX_STRIDE}], got {strides!r}")
        total = math.prod(strides)
        if self.tile_h % total or self.tile_w % total:
            raise ValueError(f"ModelConfig.strides: product {total} must divide the tile "
                             f"{self.tile_h}x{self.tile_w}")
        object.__setattr__(self, "strides", tuple(strides))
        n_params = count_parameters(self)
        if n_params > MAX_PARAMETERS:
            raise ValueError(f"ModelConfig: {n_params} parameters exceed the limit {MAX_PARAMETERS}")

    @classmethod
    def paper(cls, c0: int, clip_length: int = 8) -> "ModelConfig":
        """The faithful configuration: 256x320 tiles, strides 4,2,2,2,2, 4x5 grid, encoder
        width 64, 240 levels, the paper's head, no keyframe pasting (C0 198 -> 21.39 M)."""
        return cls(tile_h=256, tile_w=320, c0=c0, strides=(4, 2, 2, 2, 2), clip_length=clip_length,
                   head="paper", paste_keyframes=False)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the coarse grid the time embedding is decoded to."""
        total = math.prod(self.strides)
        return self.tile_h // total, self.tile_w // total

    @property
    def widths(self) -> list[int]:
        return _decoder_widths(self.c0, self.strides, self.min_width)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("strides", "mean", "std"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        """Rebuild from the "model" metadata object; ValueError naming the field on anything bad."""
        if not isinstance(d, dict):
            raise ValueError(f"ModelConfig: expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"ModelConfig.{unknown[0]}: unknown field")
        for required in ("tile_h", "tile_w", "c0"):
            if required not in d:
                raise ValueError(f"ModelConfig.{required}: missing")
        kwargs = dict(d)
        for name in ("strides", "mean", "std"):
            if name in kwargs:
                if not isinstance(kwargs[name], list):
                    raise ValueError(f"ModelConfig.{name}: expected a list, got {kwargs[name]!r}")
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)


def count_parameters(cfg: ModelConfig) -> int:
    """Exact parameter count of ``DNeRV(cfg)``, computed without allocating anything."""
    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k * k + c_out

    h, w = cfg.tile_h // math.prod(cfg.strides), cfg.tile_w // math.prod(cfg.strides)
    n = conv(2 * cfg.embed_levels, cfg.mlp_width, 1) + conv(cfg.mlp_width, cfg.c0 * h * w, 1)
    n += conv(3, cfg.enc_width, 3) + sum(conv(cfg.enc_width, cfg.enc_width, s) for s in cfg.strides)
    def small_head(c_in: int, c_out: int) -> int:
        return conv(c_in, max(c_in // 4, 1), 1) + conv(max(c_in // 4, 1), c_out, 3)

    t = cfg.clip_length
    c_in = cfg.c0 + cfg.enc_width
    for c_out, stride in zip(_decoder_widths(cfg.c0, cfg.strides, cfg.min_width), cfg.strides):
        n += small_head(c_in, 4)                                                # flow head
        n += conv(cfg.enc_width, 2 * c_in, 1)                                   # gamma, beta
        n += conv(c_in, c_out * stride * stride, 3)                             # up-conv
        n += c_out * t * t + c_out * t                                          # temporal MLP
        c_in = c_out
    n += small_head(c_in, 4) + small_head(c_in + 3, 3)                          # head's flow, head
    return n


def backward_warp(feat: Tensor, flow: Tensor) -> Tensor:
    """Sample ``feat`` (N, C, H, W) at pixel + ``flow`` (N, 2, H, W; dx, dy in pixels).

    Bilinear, border padding, pixel centres at integer coordinates (align_corners=True).
    Always float32: a bf16 sampling grid would misplace samples by up to a pixel on wide tiles.
    """
    _, _, height, width = feat.shape
    xs = torch.arange(width, device=feat.device, dtype=flow.dtype).view(1, 1, width)
    ys = torch.arange(height, device=feat.device, dtype=flow.dtype).view(1, height, 1)
    gx = (xs + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)                       # (N, H, W, 2)
    return F.grid_sample(feat.float(), grid.float(), mode="bilinear", padding_mode="border",
                         align_corners=True)


class SmallHead(nn.Module):
    """1x1 conv to c_in//4 channels -> GELU -> 3x3 conv to c_out (the paper's head shape)."""

    def __init__(self, c_in: int, c_out: int, zero_init: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, max(c_in // 4, 1), 1)
        self.conv2 = nn.Conv2d(max(c_in // 4, 1), c_out, 3, padding=1)
        if zero_init:
            nn.init.zeros_(self.conv2.weight)
            nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class FlowHead(SmallHead):
    """Flow (dx, dy in pixels) to the start and to the end keyframe, 4 channels.

    The last layer starts at zero so the warps start as the identity; the flow is learnt
    only through the reconstruction loss (task-oriented, unsupervised).
    """

    def __init__(self, c_in: int) -> None:
        super().__init__(c_in, 4, zero_init=True)

    def warp_fuse(self, x: Tensor, f_start: Tensor, f_end: Tensor, t_local: Tensor) -> Tensor:
        """Warp both keyframes' features and blend them: (1-t)*warp(start) + t*warp(end)."""
        flow = self(x).float()                                     # (N, 4, H, W)
        warped_start = backward_warp(f_start, flow[:, :2])
        warped_end = backward_warp(f_end, flow[:, 2:])
        return warped_start.mul_(1 - t_local).add_(warped_end.mul_(t_local))


class TemporalMLP(nn.Module):
    """Global temporal MLP: x + a per-channel T x T linear map (with bias) over the clip's frames.

    Zero-initialised, so the block starts as the identity.
    """

    def __init__(self, channels: int, clip_length: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, clip_length, clip_length))
        self.bias = nn.Parameter(torch.zeros(channels, clip_length))

    def forward(self, x: Tensor, clip_length: int) -> Tensor:
        n, c, h, w = x.shape
        x5 = x.view(n // clip_length, clip_length, c, h, w)              # (B, T, C, H, W)
        mixed = torch.einsum("cts,bschw->btchw", self.weight.to(x.dtype), x5)
        # In place on the fresh einsum output: the same sums as x5 + (mixed + bias), two fewer
        # full-size allocations (decode speed; bit-exact with the out-of-place form).
        mixed.add_(self.bias.t().to(x.dtype).view(1, clip_length, c, 1, 1))
        return mixed.add_(x5).reshape(n, c, h, w)


class DecoderBlock(nn.Module):
    """Flow-guided spatially-adaptive fusion, then 3x3 conv -> PixelShuffle -> GELU -> temporal MLP."""

    def __init__(self, c_in: int, c_out: int, stride: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.flow = FlowHead(c_in)
        self.affine = nn.Conv2d(cfg.enc_width, 2 * c_in, 1)      # -> gamma, beta
        self.conv = nn.Conv2d(c_in, c_out * stride * stride, 3, padding=1)
        self.shuffle = nn.PixelShuffle(stride)
        self.temporal = TemporalMLP(c_out, cfg.clip_length)

    def forward(self, x: Tensor, f_start: Tensor, f_end: Tensor, t_local: Tensor, clip_length: int) -> Tensor:
        fused = self.flow.warp_fuse(x, f_start, f_end, t_local).to(x.dtype)
        gamma, beta = self.affine(fused).chunk(2, dim=1)
        x = (x * (1 + gamma)).add_(beta)
        x = F.gelu(self.shuffle(self.conv(x)))
        return self.temporal(x, clip_length)


class ContentEncoder(nn.Module):
    """Shared by both keyframes: 3x3 conv + GELU, then kernel=stride convs + GELU.

    Returns the pyramid coarse -> fine: the feature at the coarse grid, then one per
    decoder block's input resolution, then the raw normalised keyframe itself.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, cfg.enc_width, 3, padding=1)
        self.downs = nn.ModuleList(nn.Conv2d(cfg.enc_width, cfg.enc_width, s, stride=s)
                                   for s in reversed(cfg.strides))

    def forward(self, x: Tensor) -> list[Tensor]:
        levels = [x]
        y = F.gelu(self.stem(x))
        for down in self.downs:
            y = F.gelu(down(y))
            levels.append(y)
        return levels[::-1]


class DNeRV(nn.Module):
    """D-NeRV: (keyframes, times) -> frames. See the module docstring for the data flow."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, w = cfg.grid
        self.register_buffer("freqs", math.pi * cfg.embed_base ** torch.arange(cfg.embed_levels,
                                                                               dtype=torch.float64)
                             .float(), persistent=False)
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * cfg.embed_levels, cfg.mlp_width), nn.GELU(),
                                 nn.Linear(cfg.mlp_width, cfg.c0 * h * w), nn.GELU())
        self.encoder = ContentEncoder(cfg)
        blocks, c_in = [], cfg.c0 + cfg.enc_width
        for c_out, stride in zip(cfg.widths, cfg.strides):
            blocks.append(DecoderBlock(c_in, c_out, stride, cfg))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head_flow = FlowHead(c_in)
        self.head = SmallHead(c_in + 3, 3, zero_init=cfg.head == "residual")

    def embed(self, t: Tensor) -> Tensor:
        """(N,) relative times -> (N, 2L) sin/cos features at frequencies pi * base**l."""
        angles = t.float().unsqueeze(1) * self.freqs
        return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1)

    def forward(self, kf_start: Tensor, kf_end: Tensor, t_video: Tensor, t_local: Tensor) -> Tensor:
        """kf_*: (B, 3, h, w) in [0, 1]; t_*: (B, T) -> (B, T, 3, h, w) in [0, 1]."""
        cfg = self.cfg
        n_clips, clip_length = t_video.shape
        if clip_length != cfg.clip_length:
            raise ValueError(f"clips have {clip_length} frames, the model was built for {cfg.clip_length}")
        if kf_start.shape[-2:] != (cfg.tile_h, cfg.tile_w):
            raise ValueError(f"keyframe tiles are {tuple(kf_start.shape[-2:])}, the model expects "
                             f"{(cfg.tile_h, cfg.tile_w)}")
        n = n_clips * clip_length
        pyramid = self.encoder(torch.cat(((kf_start - self.mean) / self.std,
                                          (kf_end - self.mean) / self.std)))

        def per_frame(level: Tensor) -> tuple[Tensor, Tensor]:
            # (2B, C, H, W) -> start and end features for every frame, (B*T, C, H, W) each
            return (level[:n_clips].repeat_interleave(clip_length, dim=0),
                    level[n_clips:].repeat_interleave(clip_length, dim=0))

        t = t_local.reshape(n, 1, 1, 1).float()
        h, w = cfg.grid
        x = self.mlp(self.embed(t_video.reshape(n))).view(n, cfg.c0, h, w)
        # stage 0's time blend, broadcast over the clip's frames instead of repeating the features:
        # (B, 1, C, h, w) x (B, T, 1, 1, 1) -> (B*T, C, h, w), the same products and sums
        coarse = pyramid[0].unsqueeze(1)
        t5 = t.view(n_clips, clip_length, 1, 1, 1)
        blend = ((1 - t5) * coarse[:n_clips] + t5 * coarse[n_clips:]).view(n, -1, h, w)
        x = torch.cat((x, blend), dim=1)
        x = F.instance_norm(x.float()).to(x.dtype)                 # stage 0, no affine
        for block, level in zip(self.blocks, pyramid[:-1]):
            x = block(x, *per_frame(level), t, clip_length)
        warped = self.head_flow.warp_fuse(x, *per_frame(pyramid[-1]), t).to(x.dtype)  # (N, 3, H, W)
        y = self.head(torch.cat((x, warped), dim=1))
        if cfg.head == "residual":
            y = y.add_(warped)
        out = (y.float() * self.std + self.mean).clamp(0, 1)
        out = out.view(n_clips, clip_length, 3, cfg.tile_h, cfg.tile_w)
        if cfg.paste_keyframes:
            at_start = (t_local == 0).view(n_clips, clip_length, 1, 1, 1)
            at_end = (t_local == 1).view(n_clips, clip_length, 1, 1, 1)
            out = torch.where(at_start, kf_start.unsqueeze(1).float(), out)
            out = torch.where(at_end, kf_end.unsqueeze(1).float(), out)
        return out
