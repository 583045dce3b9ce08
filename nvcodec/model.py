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
             (with coded motion and ``refine_width``: the ``Refiner``, a wider full-resolution head;
             with C0 0 as well, the refiner alone on each frame's warped pair: no trunk above at all)

With coded motion (``ModelConfig.motion``, FORMAT.md 14.4) the keyframes come in already warped at
frame level by each frame's decoded coarse motion (so motion is not clamped at tile borders), one
pair per frame: the content encoder runs per frame, every flow head predicts a *correction* to the
coded motion, and a visibility logit per head replaces the fixed (1 - t, t) fusion. With the zero-
initialised last layers the residual head starts as the motion floor itself.

With per-frame latents (``ModelConfig.latent_channels``, FORMAT.md 14.4) the network also holds a
table ``latents``, one row per clip-tile of the corpus: each frame slot's C x (h/S) x (w/S) integers,
upsampled bilinearly to the tile, are C more refiner inputs. They carry what is new in each frame,
which no shared weights can memorize; the fit trains them with uniform noise of one step in place
of rounding (``latent_noise``) under a rate term at the keyframes' price of a bit (``nvcodec.fit``).

The architecture config, ``ModelConfig``, lives in the torch-free ``nvcodec.config``
(the .nvc metadata records it; the decoder rebuilds the exact network from it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nvcodec.config import REFINE_INPUTS, ModelConfig, latent_shape


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


T_EPS = 1e-4        # t is clamped to [T_EPS, 1 - T_EPS] before its logit (the keyframe slots have t = 0, 1)


class FlowHead(SmallHead):
    """Flow (dx, dy in pixels) to the start and to the end keyframe, 4 channels; with ``visibility``
    a fifth, a logit added to logit(t) that weighs the end keyframe's warp in the fusion.

    The last layer starts at zero so the warps start as the identity and the fusion as (1-t, t);
    flow and visibility are learnt only through the reconstruction loss (task-oriented, unsupervised).
    """

    def __init__(self, c_in: int, visibility: bool = False) -> None:
        super().__init__(c_in, 5 if visibility else 4, zero_init=True)
        self.visibility = visibility

    def warp_fuse(self, x: Tensor, f_start: Tensor, f_end: Tensor, t_local: Tensor) -> Tensor:
        """Warp both keyframes' features and fuse them: (1-w)*warp(start) + w*warp(end), w = t, or with
        visibility w = sigmoid(logit(t) + predicted logit)."""
        out = self(x).float()                                      # (N, 4 or 5, H, W)
        warped_start = backward_warp(f_start, out[:, 0:2])
        warped_end = backward_warp(f_end, out[:, 2:4])
        if not self.visibility:
            return warped_start.mul_(1 - t_local).add_(warped_end.mul_(t_local))
        w_end = torch.sigmoid(torch.logit(t_local.clamp(T_EPS, 1 - T_EPS)) + out[:, 4:5])
        return warped_start + w_end * (warped_end - warped_start)


class Refiner(nn.Module):
    """The output head of a network with coded motion and ``refine_width`` > 0 (FORMAT.md 14.4), at full
    resolution: [trunk features, the frame's motion-warped pair, its absolute difference, t] -> 3x3 conv
    -> GELU -> (``layers`` - 2) x (3x3 conv -> GELU) -> 3x3 conv to 8 channels: a flow correction to each
    picture of the pair (4), a visibility logit (1) and a residual (3). The prediction is the pair warped
    by the corrections, fused with w = sigmoid(logit(t) + v), plus the residual.

    With ``coarse`` > 0 the middle layers run at half resolution instead, ``coarse`` wide: after the
    first conv, a 2x2 stride-2 conv down, (``layers`` - 2) x (3x3 conv -> GELU), a 1x1 conv to 4 x width
    and a pixel shuffle up, added to the first conv's output, then one full-resolution 3x3 conv -> GELU
    before the output conv. Each middle layer costs a quarter of the compute and sees twice the distance,
    which motion errors of a few pixels and block-sized occlusions need: measured on 21 corpus clips x
    32 frames (the refiner alone on the warped pairs, 12 minutes of one CPU thread each,
    benchmarks/results/refine), 16 wide with a 16-wide half-resolution branch and L = 4 (11.7 k weights)
    bought +0.68 dB over the fused pair, where the plain 16 x 4 (7.3 k) bought +0.56 dB and the plain
    20 x 4 (10.5 k) +0.57 dB.

    It replaces the paper's 1x1 -> 3x3 head (``SmallHead``, c_in / 4 hidden channels), which at full
    resolution has too few channels to correct what warping leaves (occlusions, the keyframes' coding
    error): measured on 21 corpus clips x 32 frames, a 16-wide 4-layer refiner of the pair alone (7.3 k
    weights, benchmarks/results/refine/refiner_probe.py) bought +0.54 dB over the fused pair on the
    in-between frames in 12 minutes of one CPU thread, where the whole D-NeRV network with its small
    head (55 k weights) bought +0.04 dB over its floor in 1000 steps.
    The last layer starts at zero: an untrained refiner outputs the motion floor."""

    def __init__(self, c_in: int, width: int, layers: int, coarse: int = 0) -> None:
        super().__init__()
        self.coarse = coarse
        if coarse:
            self.convs = nn.ModuleList([nn.Conv2d(c_in + REFINE_INPUTS, width, 3, padding=1)])
            self.down = nn.Conv2d(width, coarse, 2, stride=2)
            self.mids = nn.ModuleList(nn.Conv2d(coarse, coarse, 3, padding=1) for _ in range(layers - 2))
            self.up = nn.Conv2d(coarse, 4 * width, 1)
            self.fuse = nn.Conv2d(width, width, 3, padding=1)
        else:
            widths = [c_in + REFINE_INPUTS] + [width] * (layers - 1)
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv2d(width, 8, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, start: Tensor, end: Tensor, t: Tensor) -> Tensor:
        """x (N, c_in, H, W) the trunk's features (c_in 0 without a trunk); start, end (N, 3, H, W) the
        normalised warped pair; t (N, 1, 1, 1) -> (N, 3, H, W), normalised."""
        t_map = t.to(x.dtype).expand(-1, 1, *x.shape[-2:])
        y = torch.cat((x, start.to(x.dtype), end.to(x.dtype), (start - end).abs().to(x.dtype), t_map), dim=1)
        for conv in self.convs:
            y = F.gelu(conv(y))
        if self.coarse:
            z = F.gelu(self.down(y))
            for conv in self.mids:
                z = F.gelu(conv(z))
            y = F.gelu(self.fuse(y + F.pixel_shuffle(self.up(z), 2)))
        out = self.out(y).float()                                   # (N, 8, H, W)
        warped_start = backward_warp(start, out[:, 0:2])
        warped_end = backward_warp(end, out[:, 2:4])
        w_end = torch.sigmoid(torch.logit(t.float().clamp(T_EPS, 1 - T_EPS)) + out[:, 4:5])
        return (warped_start + w_end * (warped_end - warped_start)).add_(out[:, 5:8])


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
        self.flow = FlowHead(c_in, visibility=cfg.motion)
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
        if cfg.latent_channels:     # per-frame latents (FORMAT.md 14.4): one row per clip-tile of the file
            self.latents = nn.Parameter(torch.zeros(latent_shape(cfg)))
        if cfg.c0 == 0:             # no trunk (FORMAT.md 14.4): the refiner alone, on the warped pair
            self.refiner = Refiner(cfg.latent_channels, cfg.refine_width, cfg.refine_layers, cfg.refine_coarse)
            return
        self.mlp = nn.Sequential(nn.Linear(2 * cfg.embed_levels, cfg.mlp_width), nn.GELU(),
                                 nn.Linear(cfg.mlp_width, cfg.c0 * h * w), nn.GELU())
        self.encoder = ContentEncoder(cfg)
        blocks, c_in = [], cfg.c0 + cfg.enc_width
        for c_out, stride in zip(cfg.widths, cfg.strides):
            blocks.append(DecoderBlock(c_in, c_out, stride, cfg))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        if cfg.refine_width:
            self.refiner = Refiner(c_in + cfg.latent_channels, cfg.refine_width, cfg.refine_layers, cfg.refine_coarse)
        else:
            self.head_flow = FlowHead(c_in, visibility=cfg.motion)
            self.head = SmallHead(c_in + 3, 3, zero_init=cfg.head == "residual")

    def embed(self, t: Tensor) -> Tensor:
        """(N,) relative times -> (N, 2L) sin/cos features at frequencies pi * base**l."""
        angles = t.float().unsqueeze(1) * self.freqs
        return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1)

    def forward(self, kf_start: Tensor, kf_end: Tensor, t_video: Tensor, t_local: Tensor,
                warped: Tensor | None = None, rows: Tensor | None = None, latent_noise: bool = False,
                latent_values: Tensor | None = None) -> Tensor:
        """kf_*: (B, 3, h, w) in [0, 1]; t_*: (B, T); ``warped`` (B, T, 2, 3, h, w) in [0, 1], each frame's
        start and end keyframe warped by its decoded motion (required when the config has ``motion``,
        refused otherwise); ``rows`` (B,) int64, each clip's row of ``latents`` (required when the config
        has latents) -> (B, T, 3, h, w) in [0, 1]. ``latent_noise``: the latents plus uniform noise of one
        step, as the fit trains them in place of rounding. ``latent_values`` (B, *latents.shape[1:]): the
        clips' latents in place of ``rows`` (the fit's, which steps the table's rows itself: nvcodec.row_adam)."""
        cfg = self.cfg
        n_clips, clip_length = t_video.shape
        if clip_length != cfg.clip_length:
            raise ValueError(f"clips have {clip_length} frames, the model was built for {cfg.clip_length}")
        if kf_start.shape[-2:] != (cfg.tile_h, cfg.tile_w):
            raise ValueError(f"keyframe tiles are {tuple(kf_start.shape[-2:])}, the model expects "
                             f"{(cfg.tile_h, cfg.tile_w)}")
        if (warped is None) == cfg.motion:
            raise ValueError("this network consumes coded motion: pass the warped keyframes" if cfg.motion
                             else "this network does not consume coded motion: warped keyframes given")
        if rows is not None and latent_values is not None:
            raise ValueError("give the clips' latent rows or their values, not both")
        if (rows is None and latent_values is None) == bool(cfg.latent_channels):
            raise ValueError("this network has per-frame latents: pass each clip's row" if cfg.latent_channels
                             else "this network has no per-frame latents: rows given")
        n = n_clips * clip_length
        t = t_local.reshape(n, 1, 1, 1).float()
        if latent_values is None and cfg.latent_channels:
            latent_values = self.latents[rows]
        extra = self._latent_planes(latent_values, latent_noise) if cfg.latent_channels else None
        h, w = cfg.grid
        if cfg.motion:
            # every frame has its own pair of (motion-warped) keyframes: (2N, 3, H, W), starts then ends
            images = torch.cat((warped[:, :, 0].reshape(n, 3, cfg.tile_h, cfg.tile_w),
                                warped[:, :, 1].reshape(n, 3, cfg.tile_h, cfg.tile_w)))
            images = (images - self.mean) / self.std
            if cfg.c0 == 0:
                x = images.new_zeros(n, 0, cfg.tile_h, cfg.tile_w) if extra is None else extra.to(images.dtype)
                y = self.refiner(x, images[:n], images[n:], t)
                return self._output(y, kf_start, kf_end, t_local)
            pyramid = self.encoder(images)

            def per_frame(level: Tensor) -> tuple[Tensor, Tensor]:
                return level[:n], level[n:]

            blend = (1 - t) * pyramid[0][:n] + t * pyramid[0][n:]
        else:
            pyramid = self.encoder(torch.cat(((kf_start - self.mean) / self.std,
                                              (kf_end - self.mean) / self.std)))

            def per_frame(level: Tensor) -> tuple[Tensor, Tensor]:
                # (2B, C, H, W) -> start and end features for every frame, (B*T, C, H, W) each
                return (level[:n_clips].repeat_interleave(clip_length, dim=0),
                        level[n_clips:].repeat_interleave(clip_length, dim=0))

            # stage 0's time blend, broadcast over the clip's frames instead of repeating the features:
            # (B, 1, C, h, w) x (B, T, 1, 1, 1) -> (B*T, C, h, w), the same products and sums
            coarse = pyramid[0].unsqueeze(1)
            t5 = t.view(n_clips, clip_length, 1, 1, 1)
            blend = ((1 - t5) * coarse[:n_clips] + t5 * coarse[n_clips:]).view(n, -1, h, w)
        x = self.mlp(self.embed(t_video.reshape(n))).view(n, cfg.c0, h, w)
        x = torch.cat((x, blend), dim=1)
        x = F.instance_norm(x.float()).to(x.dtype)                 # stage 0, no affine
        for block, level in zip(self.blocks, pyramid[:-1]):
            x = block(x, *per_frame(level), t, clip_length)
        if cfg.refine_width:
            if extra is not None:
                x = torch.cat((x, extra.to(x.dtype)), dim=1)
            y = self.refiner(x, *per_frame(pyramid[-1]), t)                         # (N, 3, H, W)
        else:
            warped = self.head_flow.warp_fuse(x, *per_frame(pyramid[-1]), t).to(x.dtype)  # (N, 3, H, W)
            y = self.head(torch.cat((x, warped), dim=1))
            if cfg.head == "residual":
                y = y.add_(warped)
        return self._output(y, kf_start, kf_end, t_local)

    def _latent_planes(self, values: Tensor, noise: bool) -> Tensor:
        """The clips' latents ``values`` (B, T, C, h / cell, w / cell), plus uniform noise of one step with
        ``noise``, upsampled bilinearly (half-pixel centres, edges clamped) to the tile: (B*T, C, h, w)."""
        cfg = self.cfg
        if values.shape[1:] != self.latents.shape[1:]:
            raise ValueError(f"latents {tuple(values.shape[1:])} per clip, the model's are "
                             f"{tuple(self.latents.shape[1:])}")
        y = values.flatten(0, 1)
        if noise:
            y = y + (torch.rand_like(y) - 0.5)
        return F.interpolate(y, size=(cfg.tile_h, cfg.tile_w), mode="bilinear", align_corners=False)

    def _output(self, y: Tensor, kf_start: Tensor, kf_end: Tensor, t_local: Tensor) -> Tensor:
        """The head's normalised (N, 3, H, W) -> (B, T, 3, H, W) in [0, 1], keyframes pasted when the
        config says so."""
        cfg = self.cfg
        n_clips, clip_length = t_local.shape
        out = (y.float() * self.std + self.mean).clamp(0, 1)
        out = out.view(n_clips, clip_length, 3, cfg.tile_h, cfg.tile_w)
        if cfg.paste_keyframes:
            at_start = (t_local == 0).view(n_clips, clip_length, 1, 1, 1)
            at_end = (t_local == 1).view(n_clips, clip_length, 1, 1, 1)
            out = torch.where(at_start, kf_start.unsqueeze(1).float(), out)
            out = torch.where(at_end, kf_end.unsqueeze(1).float(), out)
        return out
