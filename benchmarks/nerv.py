"""A small NeRV baseline (Chen et al., NeurIPS 2021), written from the paper's description.

NeRV maps a frame index to a whole frame: positional encoding of the normalised
index t (sin/cos at frequencies b^l·π, b = 1.25) -> MLP (GELU) -> a C0-channel
map at a coarse grid -> NeRV blocks (3×3 conv to C·s² channels, PixelShuffle(s),
GELU), halving the channels each block -> 3×3 conv to RGB, sigmoid.

Two modes, as in D-NeRV's comparison: ``per-video`` fits one network per video
(t = i / (L-1) within the video); ``corpus`` (the paper's NeRV*) fits one network
on all videos concatenated (t over the concatenation). Every weight and bias is
quantised to 8 bits, symmetric, one step per output channel (per tensor for
biases), and the integers are coded with the project's entropy coder
(``nvcodec.bitstream.encode_ints``); the rate counts those bytes, the float32
steps, and the JSON config, i.e. what a real file would need. The quality is
measured on frames decoded by a *fresh* network built from the dequantised
weights (the fitted one is not touched).

Simplifications (stated): MSE loss (we measure PSNR; the paper mixes L1 and
SSIM); Adam with a cosine schedule; the channel width C0 is chosen to hit a
target bpp. Cost is set by ``epochs``, ``batch_size`` and the target bpp; the fit runs on
the harness's ``--device`` (CUDA when present), fp32, with every frame held on the device.

Schedules, measured (benchmarks/results/native-160x128 and paper-320x256, H200): about 350
steps/s at batch 8 of 160x128 frames and 300 at batch 2 of 320x256, i.e. bound by kernel
launches, not by pixels, so a larger batch buys frames per second; at equal epochs it loses (one 300-frame clip, 30 epochs, CPU: 25.69 dB at batch 2,
24.95 at batch 8 with lr 1e-2, 24.02 with 5e-3). lr 1e-2 at batch 8 diverged for NeRV* on
the whole corpus (train PSNR stuck at 10.8 dB from the first epochs) but not per video, so
a ladder entry can name one mode (``mode=``) to keep a good fit without its failed twin.
There is no warm-up; the paper's NeRV has one and trains 300-1200 epochs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nvcodec import metrics

QUANT_BITS = 8
PE_BASE = 1.25


@dataclass(frozen=True)
class NervConfig:
    target_bpp: float = 0.1       # sets C0 (weights at 8 bits before entropy coding)
    epochs: int = 50
    batch_size: int = 2
    lr: float = 5e-3              # 10x the paper's: we can afford ~100x fewer steps on CPU
    min_channels: int = 4         # channel floor of the late blocks
    seed: int = 0

    def __post_init__(self):
        if not self.target_bpp > 0:
            raise ValueError(f"target_bpp must be > 0, got {self.target_bpp}")
        if self.epochs < 1 or self.batch_size < 1 or self.min_channels < 1:
            raise ValueError(f"epochs, batch_size and min_channels must be >= 1: {self}")

    def to_json(self) -> dict:
        return asdict(self)


# name -> config; the rd harness takes names (--nerv quick,...). Small on purpose: CPU.
LADDER = {
    "smoke": NervConfig(target_bpp=0.2, epochs=2, batch_size=8),
    "quick": NervConfig(target_bpp=0.05, epochs=30),
    "low": NervConfig(target_bpp=0.04, epochs=150),
    "mid": NervConfig(target_bpp=0.08, epochs=150),
    "high": NervConfig(target_bpp=0.16, epochs=150),
}


MATCH = "match"   # ladder name: one point per nvcodec point, target_bpp = its measured bpp


# NervConfig fields a ladder entry may override: NAME[:KEY=VALUE...]
OVERRIDES = {"target_bpp": float, "epochs": int, "batch_size": int, "lr": float}
MODES = ("per-video", "corpus")      # one network per video; one on the concatenation (NeRV*)


def parse_entry(spec: str) -> tuple[str, dict, tuple[str, ...]]:
    """'mid' or 'match:epochs=30:batch_size=8:mode=corpus' -> (ladder name, NervConfig overrides,
    modes). Without ``mode=`` an entry is fitted in both modes."""
    name, *pairs = spec.split(":")
    if name not in LADDER and name != MATCH:
        raise ValueError(f"unknown NeRV ladder name {name!r}; known: {sorted(LADDER) + [MATCH]}")
    overrides, modes = {}, MODES
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep and key == "mode" and value in MODES:
            modes = (value,)
            continue
        if not sep or key not in OVERRIDES:
            raise ValueError(f"NeRV point {spec!r}: expected NAME[:KEY=VALUE...] with KEY in "
                             f"{tuple(OVERRIDES)} or mode in {MODES}")
        try:
            overrides[key] = OVERRIDES[key](value)
        except ValueError:
            raise ValueError(f"NeRV point {spec!r}: {key} must be a {OVERRIDES[key].__name__}") from None
    return name, overrides, modes


def ladder(specs, matched_bpps=()) -> list[tuple[NervConfig, tuple[str, ...]]]:
    """(config, modes) for ladder entries (see :func:`parse_entry`); ``match`` gives one per bpp
    in ``matched_bpps`` (the nvcodec points), with the 'mid' schedule unless overridden. The
    coded size lands at or below the target (8-bit weights before entropy coding fill it), so
    "matched" means "no more bits than"."""
    out = []
    for spec in specs:
        name, overrides, modes = parse_entry(spec)
        if name == MATCH:
            out += [(replace(LADDER["mid"], **{**overrides, "target_bpp": float(b)}), modes)
                    for b in matched_bpps]
        else:
            out.append((replace(LADDER[name], **overrides), modes))
    return out


def codec_name(mode: str) -> str:
    return {"per-video": "nerv", "corpus": "nerv-star"}[mode]


@dataclass(frozen=True)
class Arch:
    """The network's shape: everything a decoder needs besides the weights."""
    height: int
    width: int
    c0: int
    pe_levels: int
    hidden: int
    strides: tuple[int, ...]
    min_channels: int

    @property
    def grid(self) -> tuple[int, int]:
        s = math.prod(self.strides)
        return self.height // s, self.width // s

    def channels(self) -> list[int]:
        return [max(self.min_channels, self.c0 >> k) for k in range(len(self.strides) + 1)]


def _strides(height: int, width: int) -> tuple[int, ...]:
    """Factor-2 upsampling while both sides stay divisible and the grid >= 2 px; at least one block."""
    strides, h, w = [], height, width
    while h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= 2 and len(strides) < 6:
        strides.append(2)
        h, w = h // 2, w // 2
    return tuple(strides) or (1,)


def positional_encoding(t: torch.Tensor, levels: int) -> torch.Tensor:
    """(B,) t in [0, 1] -> (B, 2·levels): sin, cos of b^l·π·t, l = 0..levels-1."""
    freqs = PE_BASE ** torch.arange(levels, dtype=t.dtype, device=t.device) * math.pi
    angles = t[:, None] * freqs                                   # (B, levels)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class NeRV(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        ch = arch.channels()
        gh, gw = arch.grid
        self.mlp = nn.Sequential(nn.Linear(2 * arch.pe_levels, arch.hidden), nn.GELU(),
                                 nn.Linear(arch.hidden, ch[0] * gh * gw), nn.GELU())
        self.blocks = nn.ModuleList(nn.Conv2d(ch[k], ch[k + 1] * s * s, 3, padding=1)
                                    for k, s in enumerate(arch.strides))
        self.head = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        gh, gw = self.arch.grid
        x = self.mlp(positional_encoding(t, self.arch.pe_levels))
        x = x.view(t.shape[0], -1, gh, gw)                        # (B, C0, gh, gw)
        for conv, s in zip(self.blocks, self.arch.strides):
            x = F.gelu(F.pixel_shuffle(conv(x), s))               # (B, C_k+1, h·s, w·s)
        return torch.sigmoid(self.head(x))                         # (B, 3, H, W) in [0, 1]


def n_params(arch: Arch) -> int:
    return sum(p.numel() for p in NeRV(arch).parameters())


def choose_arch(height: int, width: int, n_frames: int, target_bpp: float, min_channels: int) -> Arch:
    """The largest C0 whose 8-bit weights fit target_bpp · n_frames · H · W bits."""
    if height < 2 or width < 2:
        raise ValueError(f"NeRV needs frames of at least 2x2, got {width}x{height}")
    budget_params = target_bpp * n_frames * height * width / QUANT_BITS
    levels = max(4, math.ceil(math.log(max(n_frames, 2)) / math.log(PE_BASE)) + 2)
    strides = _strides(height, width)

    def make(c0: int) -> Arch:
        return Arch(height, width, c0, levels, max(16, 2 * c0), strides, min_channels)

    c0 = 4
    while n_params(make(c0 + 4)) <= budget_params and c0 < 1024:
        c0 += 4
    return make(c0)


def _frames_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def fit(frames: np.ndarray, arch: Arch, cfg: NervConfig, log=None, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Fit NeRV to (N, H, W, 3) uint8 frames (frame i at t = i / (N-1)) -> float32 CPU state dict.

    On ``device`` (fp32, the frames held there whole: N x H x W x 3 x 4 bytes)."""
    torch.manual_seed(cfg.seed)
    model = NeRV(arch).to(device)
    target = _frames_tensor(frames).to(device)                    # (N, 3, H, W)
    n = len(frames)
    t_all = torch.arange(n, dtype=torch.float32, device=device) / max(n - 1, 1)
    # fused: one kernel per step on CUDA, where a network this small is bound by launches
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                           fused=torch.device(device).type == "cuda")
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        total = torch.zeros((), device=device)          # summed on the device: no sync per step
        for idx in torch.randperm(n, generator=gen).split(cfg.batch_size):
            idx = idx.to(device)
            loss = F.mse_loss(model(t_all[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(idx)
        if log and (epoch + 1) % max(1, cfg.epochs // 5) == 0:
            log(f"    epoch {epoch + 1}/{cfg.epochs}: train PSNR {10 * math.log10(n / total.item()):.2f} dB")
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def quantize(state: dict[str, torch.Tensor]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (q int32, step float32): symmetric 8-bit, per output channel (dim 0) for >= 2-D."""
    qmax = 2 ** (QUANT_BITS - 1) - 1
    out = {}
    for name, w in state.items():
        w = w.numpy().astype(np.float32)
        flat = w.reshape(w.shape[0], -1) if w.ndim >= 2 else w.reshape(1, -1)
        step = np.abs(flat).max(axis=1) / qmax
        step = np.where(step > 0, step, 1.0).astype(np.float32)
        q = np.clip(np.round(flat / step[:, None]), -qmax, qmax).astype(np.int32)
        out[name] = (q.reshape(w.shape), step)
    return out


def coded_bytes(qstate: dict[str, tuple[np.ndarray, np.ndarray]], arch: Arch) -> int:
    """Bytes of a real NeRV file: entropy-coded integers + float32 steps + JSON architecture."""
    from nvcodec.bitstream import decode_ints, encode_ints

    total = len(json.dumps(asdict(arch)).encode())
    for q, step in qstate.values():
        data = encode_ints(q.ravel(), QUANT_BITS)
        if not np.array_equal(decode_ints(data, q.size, QUANT_BITS), q.ravel()):
            raise RuntimeError("entropy coder round trip failed")          # never expected
        total += len(data) + 4 * step.size
    return total


def decode(qstate, arch: Arch, n_frames: int, batch_size: int = 16, device: str = "cpu") -> np.ndarray:
    """Frames from the dequantised weights in a fresh network -> (N, H, W, 3) uint8."""
    model = NeRV(arch)
    deq = {}
    for name, (q, step) in qstate.items():
        shape = (-1,) + (1,) * (q.ndim - 1) if q.ndim >= 2 else (1,)
        deq[name] = torch.from_numpy(q.astype(np.float32) * step.reshape(shape))
    model.load_state_dict(deq)
    model.to(device).eval()
    t_all = torch.arange(n_frames, dtype=torch.float32, device=device) / max(n_frames - 1, 1)
    out = []
    with torch.no_grad():
        for idx in torch.arange(n_frames, device=device).split(batch_size):
            x = model(t_all[idx])                                  # (b, 3, H, W)
            out.append((x * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def code_video(frames: np.ndarray, cfg: NervConfig, log=None,
               device: str = "cpu") -> tuple[int, np.ndarray, Arch, float, float]:
    """Fit, quantise, code and decode one frame sequence.

    Returns (n_bytes, decoded frames, arch, encode seconds, decode seconds)."""
    started = time.perf_counter()
    n, h, w, _ = frames.shape
    arch = choose_arch(h, w, n, cfg.target_bpp, cfg.min_channels)
    qstate = quantize(fit(frames, arch, cfg, log, device))
    n_bytes = coded_bytes(qstate, arch)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded = decode(qstate, arch, n, device=device)
    return n_bytes, decoded, arch, encode_s, time.perf_counter() - started


def point_label(cfg: NervConfig) -> str:
    return f"bpp{cfg.target_bpp:g}-e{cfg.epochs}-b{cfg.batch_size}-lr{cfg.lr:g}"


def nerv_point(corpus, cfg: NervConfig, mode: str, measure, ms_ssim_stride: int, log=print,
               device: str = "cpu") -> dict:
    """One NeRV rate point over a benchmark corpus (benchmarks.rd.Corpus), fitted on ``device``."""
    decoded, n_bytes, archs, enc_s, dec_s = {}, 0, [], 0.0, 0.0
    if mode == "per-video":
        for name in corpus.names:
            b, dec, arch, e, d = code_video(corpus.frames[name], cfg, device=device)
            decoded[name], n_bytes, enc_s, dec_s = dec, n_bytes + b, enc_s + e, dec_s + d
            archs.append(asdict(arch))
    elif mode == "corpus":
        allf = np.concatenate([corpus.frames[n] for n in corpus.names])
        n_bytes, dec, arch, enc_s, dec_s = code_video(allf, cfg, log, device)
        archs.append(asdict(arch))
        start = 0
        for name in corpus.names:
            k = len(corpus.frames[name])
            decoded[name], start = dec[start:start + k], start + k
    else:
        raise ValueError(f"mode must be 'per-video' or 'corpus', got {mode!r}")
    m = measure(corpus, decoded, ms_ssim_stride=ms_ssim_stride)
    from benchmarks.rd import machine_info

    return {"codec": codec_name(mode), "label": point_label(cfg),
            "params": {"config": cfg.to_json(), "mode": mode}, "archs": archs,
            "n_params": sum(n_params(Arch(**{**a, "strides": tuple(a["strides"])})) for a in archs),
            "n_bytes": n_bytes, "settings_sei_bytes": 0, "n_frames": corpus.n_frames,
            "n_pixels": corpus.n_pixels, "bpp": metrics.bits_per_pixel(n_bytes, corpus.n_pixels),
            "psnr": m["psnr"], "y_psnr": m["y_psnr"], "yuv_psnr": m["yuv_psnr"], "ms_ssim": m["ms_ssim"],
            "encode_s": enc_s, "decode_s": dec_s, "decode_fps": corpus.n_frames / dec_s if dec_s else None,
            "device": str(device), "machine": machine_info()["summary"],   # kept when merged elsewhere
            "per_video": m["per_video"],
            "command_example": f"benchmarks.nerv {mode} {cfg.to_json()}"}
