"""The codec's configs, torch-free: the network's architecture and the fitting schedule.

``ModelConfig`` is what the .nvc metadata records (``to_json``/``from_json``), so the
decoder rebuilds the exact network from the file alone. ``from_json`` reads untrusted
input: every field is checked and the parameter count is bounded *before* anything
is allocated (``count_parameters`` is analytic and tested against the module).
``FitConfig`` is the fitting recipe (DESIGN.md, "training"). Both are frozen dataclasses
that validate in ``__post_init__``; importing this module needs no torch, so the presets
and the command line can list and check configurations without it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nvcodec.errors import NvcInputError
HEADS = ("residual", "paper")
MAX_PARAMETERS = 400_000_000     # 1.6 GB of float32: far above any paper size (61 M)
MAX_TILE = 4096                  # container limit on tile width/height
MAX_CLIP_LENGTH = 1024           # container limit on keyframe_interval
MAX_WIDTH = 4096                 # any channel width (C0, encoder, MLP, flow head)
MAX_EMBED_LEVELS = 1024
MAX_STRIDE = 16
MAX_REFINE_LAYERS = 16
MAX_LATENT_CHANNELS = 64
LATENTS = "latents"               # the network's per-frame latent table: its parameter and tensor name
MAX_LATENT_ROWS = 1 << 27         # clip-tiles with latents; the file's 2^27 elements bound their values anyway
REFINE_INPUTS = 10               # the refiner's inputs beside the trunk's features: the warped pair (2 x 3),
                                 # |start - end| (3) and t (nvcodec.model.Refiner)


def derive_strides(tile_h: int, tile_w: int) -> tuple[int, ...]:
    """Decoder strides for a tile: 4 then 2s, total S = the largest power of two <= 64
    dividing both sides that leaves a coarse grid of at least 4 on the short side
    (256x320 -> 4,2,2,2,2 and a 4x5 grid, the paper's; 128x160 -> 4,2,2,2; 64x80 -> 4,2,2;
    64x64 -> 4,2,2 and 4x4). Raises ValueError when S would be below 4."""
    total = 64
    while total >= 4 and (tile_h % total or tile_w % total or min(tile_h, tile_w) // total < 4):
        total //= 2
    if total < 4:
        raise NvcInputError(f"tile {tile_h}x{tile_w}: both sides must be multiples of 4 and at least 16")
    strides = [4]
    while math.prod(strides) < total:
        strides.append(2)
    return tuple(strides)


def decoder_widths(c0: int, strides: tuple[int, ...], min_width: int) -> list[int]:
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
    ``motion``: the network consumes coded motion (FORMAT.md 14.4): its keyframe inputs are each
    frame's two keyframes already warped at frame level by the frame's decoded motion, its flow
    heads predict a correction to that motion at every scale, and each head also predicts a
    visibility logit that replaces the fixed (1 - t, t) fusion weights. Omitted from the metadata
    when false, so files of networks without it read as before.
    ``refine_width``/``refine_layers``: with coded motion, the output head is a full-resolution
    refiner of ``refine_layers`` 3x3 convolutions ``refine_width`` wide (``nvcodec.model.Refiner``)
    instead of the paper's small head; 0/0 (omitted from the metadata): the small head.
    ``refine_coarse``: the refiner's middle layers run at half resolution, this wide (0, omitted from
    the metadata: all at full resolution).
    ``c0`` = 0, only with a refiner: no D-NeRV trunk at all (no time MLP, content encoder or decoder
    blocks); the network is the refiner of the warped pair alone (FORMAT.md 14.4, "Without a trunk").
    ``latent_channels``/``latent_cell``/``latent_rows``: with a refiner, every clip-tile of the file has
    its own coded latent, ``latent_channels`` x (tile_h / latent_cell) x (tile_w / latent_cell) per frame
    slot, upsampled to the tile and given to the refiner as more inputs (FORMAT.md 14.4, "Per-frame
    latents"); ``latent_rows`` is the file's count of clip-tiles. 0/0/0 (omitted from the metadata): none.
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
    motion: bool = False
    refine_width: int = 0
    refine_layers: int = 0
    refine_coarse: int = 0
    latent_channels: int = 0
    latent_cell: int = 0
    latent_rows: int = 0

    def __post_init__(self) -> None:
        def check_int(name: str, lo: int, hi: int) -> None:
            value = getattr(self, name)
            if type(value) is not int:          # bool is an int subclass: refuse it too
                raise NvcInputError(f"ModelConfig.{name}: expected int, got {type(value).__name__}")
            if not lo <= value <= hi:
                raise NvcInputError(f"ModelConfig.{name}: {value} outside [{lo}, {hi}]")

        check_int("tile_h", 16, MAX_TILE)
        check_int("tile_w", 16, MAX_TILE)
        check_int("c0", 0, MAX_WIDTH)
        check_int("enc_width", 1, MAX_WIDTH)
        check_int("embed_levels", 1, MAX_EMBED_LEVELS)
        check_int("mlp_width", 1, MAX_WIDTH)
        check_int("min_width", 1, MAX_WIDTH)
        check_int("clip_length", 1, MAX_CLIP_LENGTH)
        if not isinstance(self.embed_base, (int, float)) or isinstance(self.embed_base, bool) \
                or not 1.0 < float(self.embed_base) <= 4.0:
            raise NvcInputError(f"ModelConfig.embed_base: expected a number in (1, 4], got {self.embed_base!r}")
        object.__setattr__(self, "embed_base", float(self.embed_base))
        if self.head not in HEADS:
            raise NvcInputError(f"ModelConfig.head: expected one of {HEADS}, got {self.head!r}")
        for name in ("paste_keyframes", "motion"):
            if not isinstance(getattr(self, name), bool):
                raise NvcInputError(f"ModelConfig.{name}: expected bool, got {getattr(self, name)!r}")
        check_int("refine_width", 0, MAX_WIDTH)
        if self.refine_width:
            check_int("refine_layers", 2, MAX_REFINE_LAYERS)
            if not self.motion or self.head != "residual":
                raise NvcInputError("ModelConfig.refine_width: the refiner is the output head of a residual "
                                    "network with coded motion (motion true, head 'residual')")
        elif self.refine_layers != 0:
            raise NvcInputError(f"ModelConfig.refine_layers: {self.refine_layers!r} without a refiner "
                                f"(refine_width 0)")
        check_int("refine_coarse", 0, MAX_WIDTH)
        if self.refine_coarse and not self.refine_width:
            raise NvcInputError(f"ModelConfig.refine_coarse: {self.refine_coarse} without a refiner (refine_width 0)")
        if self.c0 == 0 and not self.refine_width:
            raise NvcInputError("ModelConfig.c0: 0 (no trunk) needs a refiner (refine_width > 0)")
        for name, lo in (("mean", -10.0), ("std", 1e-3)):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and lo <= v <= 10.0 for v in value):
                raise NvcInputError(f"ModelConfig.{name}: expected 3 finite numbers in [{lo}, 10], got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))

        strides = self.strides
        if not isinstance(strides, (tuple, list)):
            raise NvcInputError(f"ModelConfig.strides: expected a list of ints, got {strides!r}")
        if len(strides) == 0:
            strides = derive_strides(self.tile_h, self.tile_w)
        if len(strides) > 12 or not all(type(s) is int and 1 <= s <= MAX_STRIDE for s in strides):
            raise NvcInputError(f"ModelConfig.strides: expected 1..12 ints in [1, {MAX_STRIDE}], got {strides!r}")
        total = math.prod(strides)
        if self.tile_h % total or self.tile_w % total:
            raise NvcInputError(f"ModelConfig.strides: product {total} must divide the tile "
                             f"{self.tile_h}x{self.tile_w}")
        object.__setattr__(self, "strides", tuple(strides))
        check_int("latent_channels", 0, MAX_LATENT_CHANNELS)
        check_int("latent_cell", 0, MAX_TILE)
        check_int("latent_rows", 0, MAX_LATENT_ROWS)
        if self.latent_channels:
            if not self.refine_width:
                raise NvcInputError("ModelConfig.latent_channels: latents are inputs of the refiner (refine_width > 0)")
            if self.latent_cell < 1 or self.tile_h % self.latent_cell or self.tile_w % self.latent_cell:
                raise NvcInputError(f"ModelConfig.latent_cell: {self.latent_cell} must divide the tile "
                                    f"{self.tile_h}x{self.tile_w}")
        elif self.latent_cell or self.latent_rows:
            raise NvcInputError("ModelConfig.latent_cell/latent_rows: given without latents (latent_channels 0)")
        n_params = count_parameters(self)
        if n_params > MAX_PARAMETERS:
            raise NvcInputError(f"ModelConfig: {n_params} parameters exceed the limit {MAX_PARAMETERS}")

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
        return decoder_widths(self.c0, self.strides, self.min_width)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("strides", "mean", "std"):
            d[name] = list(d[name])
        # absent when off: older files read as before
        for name in ("motion", "refine_width", "refine_layers", "refine_coarse", "latent_channels", "latent_cell",
                     "latent_rows"):
            if not d[name]:
                del d[name]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        """Rebuild from the "model" metadata object; ValueError naming the field on anything bad."""
        if not isinstance(d, dict):
            raise NvcInputError(f"ModelConfig: expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise NvcInputError(f"ModelConfig.{unknown[0]}: unknown field")
        for required in ("tile_h", "tile_w", "c0"):
            if required not in d:
                raise NvcInputError(f"ModelConfig.{required}: missing")
        kwargs = dict(d)
        for name in ("strides", "mean", "std"):
            if name in kwargs:
                if not isinstance(kwargs[name], list):
                    raise NvcInputError(f"ModelConfig.{name}: expected a list, got {kwargs[name]!r}")
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)


def count_parameters(cfg: ModelConfig) -> int:
    """Exact parameter count of ``DNeRV(cfg)``, computed without allocating anything."""
    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k * k + c_out

    def refiner(c_in: int) -> int:                                              # model.Refiner
        width, layers, coarse = cfg.refine_width, cfg.refine_layers, cfg.refine_coarse
        n = conv(c_in + cfg.latent_channels + REFINE_INPUTS, width, 3) + conv(width, 8, 3)
        if coarse:
            return n + conv(width, coarse, 2) + (layers - 2) * conv(coarse, coarse, 3) \
                + conv(coarse, 4 * width, 1) + conv(width, width, 3)
        return n + (layers - 2) * conv(width, width, 3)

    latents = latent_count(cfg)
    if cfg.c0 == 0:
        return refiner(0) + latents
    h, w = cfg.tile_h // math.prod(cfg.strides), cfg.tile_w // math.prod(cfg.strides)
    n = conv(2 * cfg.embed_levels, cfg.mlp_width, 1) + conv(cfg.mlp_width, cfg.c0 * h * w, 1)
    n += conv(3, cfg.enc_width, 3) + sum(conv(cfg.enc_width, cfg.enc_width, s) for s in cfg.strides)
    def small_head(c_in: int, c_out: int) -> int:
        return conv(c_in, max(c_in // 4, 1), 1) + conv(max(c_in // 4, 1), c_out, 3)

    t = cfg.clip_length
    c_in = cfg.c0 + cfg.enc_width
    flow_out = flow_channels(cfg)
    for c_out, stride in zip(decoder_widths(cfg.c0, cfg.strides, cfg.min_width), cfg.strides):
        n += small_head(c_in, flow_out)                                         # flow head
        n += conv(cfg.enc_width, 2 * c_in, 1)                                   # gamma, beta
        n += conv(c_in, c_out * stride * stride, 3)                             # up-conv
        n += c_out * t * t + c_out * t                                          # temporal MLP
        c_in = c_out
    if cfg.refine_width:
        n += refiner(c_in)
    else:
        n += small_head(c_in, flow_out) + small_head(c_in + 3, 3)               # head's flow, head
    return n + latents


def latent_shape(cfg: ModelConfig) -> tuple[int, ...]:
    """The shape of the network's ``latents`` parameter: (rows, T, C, tile_h / cell, tile_w / cell)."""
    cell = max(cfg.latent_cell, 1)
    return (cfg.latent_rows, cfg.clip_length, cfg.latent_channels, cfg.tile_h // cell, cfg.tile_w // cell)


def latent_count(cfg: ModelConfig) -> int:
    """Values of the per-frame latents (0 without them)."""
    return math.prod(latent_shape(cfg)) if cfg.latent_channels else 0


def flow_channels(cfg: ModelConfig) -> int:
    """Output channels of a flow head: flow to both keyframes (4), plus a visibility logit with motion."""
    return 5 if cfg.motion else 4


@dataclass(frozen=True)
class FitConfig:
    """How to fit. ``batch_size`` counts clips per step over all ranks together.

    The fit lasts ``epochs`` passes over the clips, capped at ``max_steps`` steps when that is
    not 0 (a time bound for large corpora on a CPU); the schedule spans the steps actually run.
    """

    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 4
    lr: float = 5e-4
    warmup_frac: float = 0.2
    warmup_start: float = 0.1
    l1_weight: float = 0.7
    mse_weight: float = 0.0
    ssim_weight: float = 0.3
    seed: int = 0
    checkpoint_every: int = 500       # steps; 0: only when interrupted
    compile: bool = False             # torch.compile the model (worth it on CUDA for long fits)
    latent_lr: float = 0.05           # per-frame latents (ModelConfig.latent_channels): their learning rate, in
                                      # steps of their quantizer (each row is seen once in many steps)
    latent_price: float = 0.0         # their rate term: squared error on 8-bit values per bit (the encoder's
                                      # price of a bit); 0: none

    def __post_init__(self) -> None:
        for name, lo, hi in (("epochs", 1, 10**7), ("batch_size", 1, 2**16), ("seed", 0, 2**63 - 1),
                             ("checkpoint_every", 0, 10**9), ("max_steps", 0, 10**9)):
            value = getattr(self, name)
            if type(value) is not int or not lo <= value <= hi:
                raise NvcInputError(f"FitConfig.{name}: expected an int in [{lo}, {hi}], got {value!r}")
        for name, lo, hi in (("lr", 1e-8, 1.0), ("warmup_frac", 0.0, 1.0), ("warmup_start", 0.0, 1.0),
                             ("l1_weight", 0.0, 100.0), ("mse_weight", 0.0, 100.0), ("ssim_weight", 0.0, 100.0),
                             ("latent_lr", 0.0, 100.0), ("latent_price", 0.0, 1e12)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise NvcInputError(f"FitConfig.{name}: expected a number in [{lo}, {hi}], got {value!r}")
        if self.l1_weight + self.mse_weight + self.ssim_weight <= 0:
            raise NvcInputError("FitConfig: l1_weight, mse_weight and ssim_weight are all 0: nothing to fit")
        if not isinstance(self.compile, bool):
            raise NvcInputError(f"FitConfig.compile: expected bool, got {self.compile!r}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
