"""Rate-aware quantization of the fitted network (DESIGN.md, "Weights"; bitstream/FORMAT.md section 7).

Post-training 8-bit quantization (``nvcodec.quant``) leaves weights that the
container's coder can hardly compress (about 7.9 bits per weight measured). Here
the steps are chosen by rate-distortion and a short quantization-aware fine-tune
makes the integers cheap to code, as C3 / Cool-chic (step search) and NVRC /
Boosting-NeRV (a rate term in training) do. The decoder is unchanged: it reads
integers and float32 steps, exactly as for post-training quantization.

1. **Grid.** Tensor t's step along its axis (per-channel or per-tensor, chosen as
   ``nvcodec.quant`` does) is ``peak * 2**(-k/2)``, peak = the channel's largest
   magnitude after the float fit; k = 14 is about 8-bit post-training quantization.
2. **Tables.** For each group g (every tensor of at least ``GROUP_MIN_FRACTION`` of
   the parameters alone, the small rest together) and each k of ``K_TABLE``:
   R_g(k) = the exact bytes of g's TENS chunks (the container's coder, run) and
   D_g(k) = the rise of the MSE on a fixed evaluation subset of clips when g alone
   is quantized (fp32).
3. **Allocation.** For a given lambda, k_g = argmin D_g(k) + lambda * R_g(k) in bits
   per corpus pixel (independent choices: the Lagrangian of additive costs); for a
   byte budget, lambda is bisected.
4. **Fine-tune.** ``qat_steps`` AdamW steps on MSE + lambda * weight bpp with the
   steps fixed, fake-quantized weights (straight-through rounding) and a rate term
   whose value is the coder's own code length (its model's cost per symbol,
   refreshed every ``REFRESH_EVERY`` steps) and whose gradient comes from a
   Laplace fitted to the integers.
5. **Integers.** ``round(w / step)`` of the fine-tuned weights: the very integers
   the last training step saw (``integers`` is the one rounding, used by both);
   n_bits is the fewest bits that hold them.

Units: D is the MSE of RGB in [0, 1], R bits per corpus pixel, so lambda is MSE per
bpp (Cool-chic's convention). lambda = 0 with no fine-tune is a plain step search
for the best quality, which never chooses a step coarser than it must.

Runs on one device (rank 0 under torchrun: the step search and fine-tune are a few
percent of a fit).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from nvcodec import runtime
from nvcodec.bitstream import QuantizedTensor, ints_code_length_bits, ints_symbol_costs_bits, tensor_chunk_n_bytes
from nvcodec.clipset import ClipSet
from nvcodec.config import LATENTS, FitConfig, ModelConfig
from nvcodec.distributed import DistContext
from nvcodec.model import DNeRV
from nvcodec.runtime import Batcher, clip_inputs, lr_factor, to_device, trainable_mask

K_TABLE = tuple(range(0, 21))     # step = peak * 2**(-k/2): from ±1 level (k=0) to ±1024 (k=20)
K_PTQ = 14                        # about 8-bit post-training quantization (peak/127 vs peak/128)
GROUP_MIN_FRACTION = 0.02         # tensors below this share of the parameters share one k
EVAL_CLIPS = 16                   # clips of the fixed evaluation subset behind D_g(k)
NEGLIGIBLE = 0.002                # a D_g(k) below this share of the float MSE (0.01 dB): finer k measured no more
REFRESH_EVERY = 20                # fine-tune steps between refreshes of the coder's cost tables
MAX_Q = (1 << 15) - 1             # integers stay within 16 bits, the container's limit
REST = "(small tensors)"
LATENT_AXIS = 2                   # their channel axis
LATENT_K = 8                      # the k at which their grid's step is 1 (exactly: peak 2^4, times 2^-4)


# --- the grid: one rounding, shared by training and writing ---------------------------------------


@dataclass(frozen=True)
class Grid:
    """One tensor's quantizer: steps ``peak * 2**(-k/2)`` along ``axis`` (None: per tensor)."""

    name: str
    axis: int | None
    peak: np.ndarray           # float32, one per step

    def scale(self, k: int) -> np.ndarray:
        step = self.peak.astype(np.float64) * 2.0 ** (-k / 2)
        return np.where(step > 0, step, 1.0).astype(np.float32)   # an all-zero channel: step 1, integers 0


def grid_of(name: str, float_weights: np.ndarray) -> Grid:
    """The axis ``nvcodec.quant`` would choose (smallest 8-bit error) and the peaks along it. The per-frame
    latents (rows, T, C, h, w) are integers already: the fit trained them with noise of one step under
    their rate term at the keyframes' price, so their step is 1 (at ``LATENT_K``), one per channel."""
    from nvcodec.quant import quantize_tensor

    if name == LATENTS:       # one step per channel, 1 at LATENT_K (what the fit trained them for)
        channels = np.asarray(float_weights).shape[LATENT_AXIS]
        return Grid(name, LATENT_AXIS, np.full(channels, 2.0 ** (LATENT_K / 2), np.float32))
    axis = quantize_tensor(name, float_weights, 8).axis
    w = np.abs(np.asarray(float_weights, np.float32))
    if axis is None:
        peak = w.max(initial=0.0).reshape(1)
    else:
        other = tuple(i for i in range(w.ndim) if i != axis)
        peak = w.max(axis=other, initial=0.0) if other else w
    return Grid(name, axis, peak.astype(np.float32))


def _broadcast(scale: Tensor, axis: int | None, ndim: int) -> Tensor:
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return scale.reshape(shape)


def integers(w: Tensor, scale: Tensor, axis: int | None) -> Tensor:
    """round(w / step), clamped to 16 bits: float32 division, ties to even (as numpy's rint)."""
    return torch.round(w.float() / _broadcast(scale, axis, w.ndim)).clamp_(-MAX_Q, MAX_Q)


def fake_quant(w: Tensor, scale: Tensor, axis: int | None) -> Tensor:
    """q * step in the forward pass, identity gradient (straight-through)."""
    step = _broadcast(scale, axis, w.ndim)
    return w + (integers(w, scale, axis) * step - w).detach()


def fewest_bits(q: np.ndarray) -> int:
    """The fewest signed bits (2..16) that hold every integer of q."""
    lo, hi = int(q.min(initial=0)), int(q.max(initial=0))
    bits = max(hi.bit_length() + 1, (-lo - 1).bit_length() + 1, 2) if q.size else 2
    return min(bits, 16)


def quantized_tensor(name: str, q: np.ndarray, scale: np.ndarray, axis: int | None) -> QuantizedTensor:
    return QuantizedTensor(name=name, q=q.astype(np.int32), scale=scale, axis=axis, n_bits=fewest_bits(q))


def quantize_weights(float_state: Mapping[str, np.ndarray], grids: Mapping[str, Grid],
                     ks: Mapping[str, int]) -> list[QuantizedTensor]:
    """The tensors to write for weights ``float_state`` at exponents ``ks`` (through ``integers``)."""
    out = []
    for name, w in float_state.items():
        grid = grids[name]
        scale = grid.scale(ks[name])
        q = integers(torch.from_numpy(np.asarray(w, np.float32)), torch.from_numpy(scale), grid.axis)
        out.append(quantized_tensor(name, q.to(torch.int32).numpy(), scale, grid.axis))
    return out


# --- the rate term -------------------------------------------------------------------------------


class RateTerm:
    """Code length in bits of one tensor's integers under the coder's model, with a gradient.

    The value is the coder's: the per-symbol costs of the model ``encode_ints`` chooses
    for the integers at the last ``refresh``, plus its side information (so at a refresh
    it equals ``ints_code_length_bits`` exactly; costs beyond the table are capped). The
    gradient is that of a discretised Laplace fitted to the same integers, evaluated
    at the unrounded w / step.
    """

    def __init__(self, scale: Tensor, axis: int | None) -> None:
        self.scale, self.axis = scale, axis
        self.costs = torch.zeros(1, dtype=torch.float32)
        self.lo, self.side_bits, self.mean, self.b = 0, 0.0, 0.0, 1.0

    def refresh(self, w: Tensor) -> None:
        q = integers(w.detach(), self.scale, self.axis).to(torch.int32).cpu().numpy().ravel()
        n_bits = fewest_bits(q)
        costs = ints_symbol_costs_bits(q, n_bits)
        costs = np.minimum(costs, n_bits + 8.0)           # a symbol the model has not seen: an escape's price
        self.lo = -(1 << (n_bits - 1))
        words_bits = float(costs[q - self.lo].sum())
        self.side_bits = ints_code_length_bits(q, n_bits) - words_bits
        self.costs = torch.from_numpy(costs.astype(np.float32)).to(w.device)
        self.mean = float(np.median(q))
        self.b = max(float(np.mean(np.abs(q - self.mean))), 0.2)

    def bits(self, w: Tensor) -> Tensor:
        x = w.float() / _broadcast(self.scale, self.axis, w.ndim)
        index = (torch.round(x).clamp(-MAX_Q, MAX_Q) - self.lo).long().clamp_(0, self.costs.numel() - 1)
        exact = self.costs[index].sum() + self.side_bits
        smooth = laplace_bits(x, self.mean, self.b).sum()
        return exact + (smooth - smooth.detach())


def laplace_bits(x: Tensor, mean: float, b: float) -> Tensor:
    """-log2 P(|X - x| <= 1/2) for X ~ Laplace(mean, b): a smooth stand-in for the integer's cost."""
    d = (x - mean).abs()
    # each branch on its own side of 1/2: torch.where passes 0 x the other branch's gradient, and a cosh that
    # overflowed there (d > 89 b) made that 0 x inf = NaN (fields far from the mean, nvcodec.motion_fit)
    inner = 1.0 - math.exp(-0.5 / b) * torch.cosh(d.clamp(max=0.5) / b)                   # d < 1/2
    outer = torch.exp(-(d.clamp(min=0.5) - 0.5) / b) * (1.0 - math.exp(-1.0 / b)) * 0.5  # d >= 1/2
    p = torch.where(d < 0.5, inner, outer).clamp_min(2.0 ** -24)
    return -torch.log2(p)


# --- tables, allocation, fine-tune ---------------------------------------------------------------


@dataclass(frozen=True)
class RateChoice:
    """The outcome: what to write and how it was chosen (recorded in the file's fit info)."""

    tensors: list[QuantizedTensor]
    float_state: dict[str, np.ndarray]  # the fine-tuned float weights that ``tensors`` quantize
    ks: dict[str, int]                 # exponent per tensor
    lam: float                         # lambda used for the allocation and fine-tune
    weight_bytes: int                  # sum of tensor_chunk_n_bytes over tensors
    eval_psnr: float                   # PSNR of the eval subset's MSE with the written weights
    float_eval_psnr: float             # same, float weights before the fine-tune
    history: list[dict]


class _EvalSet:
    """A fixed subset of clips on the device, and the MSE of a set of weights on it (fp32)."""

    def __init__(self, model: DNeRV, model_cfg: ModelConfig, clips: ClipSet, device: torch.device) -> None:
        index = np.unique(np.linspace(0, clips.n_clips - 1, min(EVAL_CLIPS, clips.n_clips)).round().astype(np.int64))
        c = clips
        self.model = model
        self.batches = []
        for first in range(0, len(index), 8):
            i = index[first:first + 8]
            inputs = clip_inputs(c, i, device)
            mask = torch.from_numpy(trainable_mask(model_cfg, clips, i)).to(device)
            self.batches.append((inputs, to_device(c.frames[i], device), mask))

    @torch.no_grad()
    def mse(self, params: Mapping[str, Tensor]) -> float:
        total, count = 0.0, 0
        for inputs, target, mask in self.batches:
            if not mask.any():
                continue
            pred = functional_call(self.model, dict(params), inputs)
            diff = pred[mask].float() - target[mask]
            total += float(diff.double().pow(2).sum())
            count += diff.numel()
        return total / max(count, 1)


def _groups(float_state: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """Each tensor of at least GROUP_MIN_FRACTION of the weights alone, the rest together; the per-frame
    latents are in no group (their step is fixed) and do not count among the weights."""
    n_total = sum(w.size for name, w in float_state.items() if name != LATENTS)
    groups: dict[str, list[str]] = {}
    for name, w in float_state.items():
        if name == LATENTS:
            continue
        key = name if w.size >= GROUP_MIN_FRACTION * n_total else REST
        groups.setdefault(key, []).append(name)
    return groups


def _tables(eval_set: _EvalSet, float_params: dict[str, Tensor], grids: Mapping[str, Grid],
            groups: Mapping[str, list[str]], *,
            progress: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """R_g(k) in bytes and D_g(k) in MSE rise, per group, over K_TABLE; and the float MSE.

    R is exact at every k (the coder is run: milliseconds). D costs a pass over the
    evaluation subset, so it is measured at even k from the coarsest up, until it is
    negligible (the finer steps then get that last value), and odd k take the
    geometric mean of their neighbours.
    """
    base = eval_set.mse(float_params)
    rate, dist = {}, {}
    bar = runtime.progress_bar(len(groups), "rate-distortion tables", enabled=progress, unit="group")
    for g, names in groups.items():
        rate[g] = np.zeros(len(K_TABLE))
        dist[g] = np.full(len(K_TABLE), np.nan)
        quantized = {}
        for j, k in enumerate(K_TABLE):
            params = {}
            for name in names:
                w = float_params[name]
                scale = torch.from_numpy(grids[name].scale(k)).to(w.device)
                q = integers(w, scale, grids[name].axis)
                params[name] = q * _broadcast(scale, grids[name].axis, w.ndim)
                rate[g][j] += tensor_chunk_n_bytes(quantized_tensor(name, q.to(torch.int32).cpu().numpy(),
                                                           grids[name].scale(k), grids[name].axis))
            quantized[j] = params
        done = False
        for j in range(0, len(K_TABLE), 2):
            if done:
                dist[g][j] = dist[g][j - 2]
                continue
            dist[g][j] = max(eval_set.mse({**float_params, **quantized[j]}) - base, 0.0)
            done = dist[g][j] <= NEGLIGIBLE * base
        for j in range(1, len(K_TABLE), 2):
            right = dist[g][j + 1] if j + 1 < len(K_TABLE) else dist[g][j - 1]
            dist[g][j] = math.sqrt(dist[g][j - 1] * right)
        bar.update(1)
    bar.close()
    return rate, dist, base


def allocate(rate: Mapping[str, np.ndarray], dist: Mapping[str, np.ndarray], lam: float,
             n_pixels: int) -> dict[str, int]:
    """k per group minimising D_g(k) + lam * 8 R_g(k) / n_pixels (ties: the finer step)."""
    ks = {}
    for g in rate:
        cost = dist[g] + lam * 8.0 * rate[g] / n_pixels
        ks[g] = K_TABLE[int(np.flatnonzero(cost <= cost.min() + 1e-15)[-1])]
    return ks


def lambda_for_budget(rate: Mapping[str, np.ndarray], dist: Mapping[str, np.ndarray], budget_bytes: float,
                      n_pixels: int) -> float:
    """The smallest lambda (bisection in log space) whose allocation fits ``budget_bytes``."""
    def total(lam: float) -> float:
        ks = allocate(rate, dist, lam, n_pixels)
        return sum(rate[g][K_TABLE.index(k)] for g, k in ks.items())

    if total(0.0) <= budget_bytes:
        return 0.0
    lo, hi = 1e-9, 1.0
    while total(hi) > budget_bytes and hi < 1e6:
        lo, hi = hi, hi * 100
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if total(mid) <= budget_bytes else (mid, hi)
    return hi


def allocate_budget(rate: Mapping[str, np.ndarray], dist: Mapping[str, np.ndarray], budget_bytes: float,
                    n_pixels: int) -> tuple[dict[str, int], float]:
    """k per group for a byte budget, and the lambda behind it.

    The Lagrangian allocation at ``lambda_for_budget`` is on the convex hull of the
    (R, D) tables and can leave much of the budget unspent (where D is flat, e.g. a
    network that is barely trained, every step looks alike). The bytes left are then
    spent greedily: the refinement k -> k+1 with the most distortion saved per byte
    (ties: the cheapest) that still fits, until none fits.
    """
    lam = lambda_for_budget(rate, dist, budget_bytes, n_pixels)
    ks = allocate(rate, dist, lam, n_pixels)
    index = {g: K_TABLE.index(k) for g, k in ks.items()}
    spent = sum(rate[g][j] for g, j in index.items())
    while True:
        best = None
        for g, j in index.items():
            if j + 1 >= len(K_TABLE):
                continue
            extra = rate[g][j + 1] - rate[g][j]
            if spent + extra > budget_bytes:
                continue
            gain = (dist[g][j] - dist[g][j + 1]) / max(extra, 1e-9)
            if best is None or (gain, -extra) > best[0]:
                best = ((gain, -extra), g, extra)
        if best is None:
            return {g: K_TABLE[j] for g, j in index.items()}, lam
        _, g, extra = best
        index[g] += 1
        spent += extra


def _psnr(mse: float) -> float:
    from nvcodec.metrics import psnr_from_mse

    return float(psnr_from_mse(np.array([mse * 255.0 ** 2]))[0])


def _prepare(model_cfg: ModelConfig, float_state: Mapping[str, Tensor], clips: ClipSet, device: torch.device,
             progress: bool):
    """The model, float parameters, grids, groups, evaluation subset and RD tables of ``float_state``."""
    model = DNeRV(model_cfg).to(device).eval()
    params = {name: t.detach().float().to(device).clone() for name, t in float_state.items()}
    if LATENTS in params:               # rounded once: every table and the fine-tune see the integers written
        params[LATENTS] = torch.round(params[LATENTS])
    float_np = {name: t.cpu().numpy() for name, t in params.items()}
    grids = {name: grid_of(name, w) for name, w in float_np.items()}
    groups = _groups(float_np)
    eval_set = _EvalSet(model, model_cfg, clips, device)
    return model, params, grids, groups, eval_set, _tables(eval_set, params, grids, groups, progress=progress)


def weight_bytes_curve(model_cfg: ModelConfig, float_state: Mapping[str, Tensor], clips: ClipSet, *,
                       n_pixels: int, device: str | torch.device = "cpu") -> Callable[[float], float]:
    """Bytes of ``float_state``'s weight chunks as a function of lambda (MSE per weight bpp): the
    allocation step of ``rate_aware_quantize`` on its RD tables, which are measured once here (no
    fine-tune). The rate plan (``nvcodec.rate.plan_target``) asks it how many bytes the weights
    take at the keyframes' price of a bit."""
    *_, (rate, dist, _) = _prepare(model_cfg, float_state, clips, torch.device(device), False)

    def n_bytes(lam: float) -> float:
        return float(sum(rate[g][K_TABLE.index(k)] for g, k in allocate(rate, dist, lam, n_pixels).items()))

    return n_bytes


def rate_aware_quantize(model_cfg: ModelConfig, float_state: Mapping[str, Tensor], clips: ClipSet, *,
                        n_pixels: int, lam: float | None = None, budget_bytes: float | None = None,
                        qat_steps: int = 0, lr: float = 1e-4, batch_size: int = 8, seed: int = 0,
                        device: str | torch.device = "cpu", log: Callable[[str], None] | None = None,
                        progress: bool = False) -> RateChoice:
    """Choose steps for ``float_state`` (lambda, or the lambda that fits ``budget_bytes`` of weight
    chunks), fine-tune ``qat_steps`` steps with fake quantization and the rate term, and return
    the tensors to write. ``n_pixels``: the corpus's pixels (frames x width x height), the unit of R.
    ``progress``: bars for the tables and the fine-tune on a terminal (each also logs one line).
    """
    if (lam is None) == (budget_bytes is None):
        raise ValueError("give exactly one of lam and budget_bytes")
    if lam is not None and not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"lambda must be a finite number >= 0, got {lam}")
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    device = torch.device(device)
    model, params, grids, groups, eval_set, (rate, dist, base_mse) = _prepare(model_cfg, float_state, clips, device,
                                                                             progress)
    latent_bytes = 0
    if LATENTS in params:
        latent_bytes = tensor_chunk_n_bytes(quantize_weights({LATENTS: params[LATENTS].cpu().numpy()}, grids,
                                                             {LATENTS: LATENT_K})[0])
    if budget_bytes is not None:        # the latents' bytes are fixed: the weights take the rest
        group_ks, lam = allocate_budget(rate, dist, max(budget_bytes - latent_bytes, 0.0), n_pixels)
    else:
        group_ks = allocate(rate, dist, lam, n_pixels)
    ks = {name: group_ks[g] for g, names in groups.items() for name in names}
    planned = sum(rate[g][K_TABLE.index(k)] for g, k in group_ks.items())
    say(f"rate-aware quantization: lambda {lam:.3g}, steps 2^-(k/2) x peak with k "
        f"{sorted(set(ks.values()))}, {planned / 1e3:.1f} kB of weights planned"
        + (f", {latent_bytes / 1e3:.1f} kB of per-frame latents (step 1)" if latent_bytes else ""))
    if LATENTS in params:
        ks[LATENTS] = LATENT_K

    history: list[dict] = []
    if qat_steps > 0:
        history = _fine_tune(model, model_cfg, params, grids, ks, clips, lam=lam, n_pixels=n_pixels,
                             steps=qat_steps, lr=lr, batch_size=batch_size, seed=seed, device=device, say=say,
                             progress=progress)

    final_np = {name: t.detach().cpu().numpy() for name, t in params.items()}
    tensors = quantize_weights(final_np, grids, ks)
    weight_bytes = sum(tensor_chunk_n_bytes(t) for t in tensors)
    written = {t.name: torch.from_numpy(t.dequantize()).to(device) for t in tensors}
    choice = RateChoice(tensors=tensors, float_state=final_np, ks=ks, lam=float(lam), weight_bytes=weight_bytes,
                        eval_psnr=_psnr(eval_set.mse(written)), float_eval_psnr=_psnr(base_mse), history=history)
    net = [t for t in tensors if t.name != LATENTS]
    net_bytes = sum(tensor_chunk_n_bytes(t) for t in net)
    say(f"weights: {net_bytes / 1e3:.1f} kB ({8 * net_bytes / n_pixels:.4f} bpp, "
        f"{8 * net_bytes / max(sum(t.q.size for t in net), 1):.2f} bits/weight)"
        + (f", per-frame latents {(weight_bytes - net_bytes) / 1e3:.1f} kB "
           f"({8 * (weight_bytes - net_bytes) / n_pixels:.4f} bpp)" if len(net) < len(tensors) else "")
        + f"; eval subset {choice.eval_psnr:.2f} dB quantized vs {choice.float_eval_psnr:.2f} dB float")
    return choice


def _fine_tune(model: DNeRV, model_cfg: ModelConfig, params: dict[str, Tensor], grids: Mapping[str, Grid],
               ks: Mapping[str, int], clips: ClipSet, *, lam: float, n_pixels: int, steps: int, lr: float,
               batch_size: int, seed: int, device: torch.device, say: Callable[[str], None],
               progress: bool = False) -> list[dict]:
    """AdamW on MSE + lam * bpp of the weights, fake-quantized, steps fixed; updates ``params`` in place.

    Per-frame latents stay the integers the fit left (their step is 1): at the fine-tune's learning rate
    they hardly move (on the samples at 96x64, 750 steps moved no value more than 0.07 of a step and
    changed none of 12 288 integers), and stepping them here would cost every step the whole table,
    which grows with the corpus (the fit steps only its batch's rows: nvcodec.row_adam)."""
    scales = {name: torch.from_numpy(grids[name].scale(ks[name])).to(device) for name in params}
    fixed = {}
    if LATENTS in params:
        fixed[LATENTS] = fake_quant(params[LATENTS], scales[LATENTS], grids[LATENTS].axis).detach()
    terms = {name: RateTerm(scales[name], grids[name].axis) for name in params if name not in fixed}
    leaves = {name: torch.nn.Parameter(p) for name, p in params.items() if name not in fixed}
    optimizer = torch.optim.AdamW(leaves.values(), lr=lr, weight_decay=0.0)
    fit_cfg = dataclasses.replace(FitConfig(), batch_size=batch_size, seed=seed + 1)
    batcher = Batcher(clips, fit_cfg, DistContext(), device)
    history = []
    bar = runtime.progress_bar(steps, "fine-tune", enabled=progress)
    model.train()
    for step in range(steps):
        bar.update(1)
        if step % REFRESH_EVERY == 0:
            for name, term in terms.items():
                term.refresh(leaves[name])
        index = batcher.indices(step)
        inputs = batcher.tensors(index)
        mask = torch.from_numpy(trainable_mask(model_cfg, clips, index)).to(device)
        if not mask.any():
            continue
        target = to_device(clips.frames[index], device)
        quantized = {name: fake_quant(w, scales[name], grids[name].axis) for name, w in leaves.items()} | fixed
        with runtime.autocast(device):
            pred = functional_call(model, quantized, inputs)
        mse = torch.mean((pred[mask].float() - target[mask]) ** 2)
        bits = sum(term.bits(leaves[name]) for name, term in terms.items())
        loss = mse + lam * bits / n_pixels
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(step, steps, 0.0, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % REFRESH_EVERY == 0 or step == steps - 1:
            history.append({"step": step + 1, "mse": float(mse.detach()), "weight_bits": float(bits.detach())})
    bar.close()
    model.eval()
    for name, leaf in leaves.items():
        params[name] = leaf.detach()
    if history:
        say(f"fine-tune: {steps} steps, weight bits {history[0]['weight_bits'] / 8e3:.1f} -> "
            f"{history[-1]['weight_bits'] / 8e3:.1f} kB (rate term), batch MSE "
            f"{history[0]['mse']:.2e} -> {history[-1]['mse']:.2e}")
    return history
