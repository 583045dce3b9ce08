"""AdamW on the per-frame latent table, lazily: a step costs its batch's rows, not the table.

The latent table (``ModelConfig.latent_channels``, FORMAT.md 14.4) has one row per clip-tile of
the corpus, and a fit step's batch reads a handful of them. Stepped by ``torch.optim.AdamW``,
every step touched the whole table: a gradient as large as the table (zeros outside the batch),
and every row moved by its decaying momentum. At 115 M values, a corpus of about a thousand
300-frame videos at 160x128, a step took 1.30 s that way against 0.10 s this way
(``benchmarks/bench_latent_step.py``), and under torchrun the whole table's gradient was
all-reduced every step.

``RowAdam`` keeps Adam's moments per value and, per row, the step its values are current at.
A row with no gradient for k steps is what dense AdamW makes of it: its moments decay
(m x beta1^k, v x beta2^k) and each of those steps moves it by lr_j / (1 - beta1^j) x m_j /
(sqrt(v_j / (1 - beta2^j)) + eps). ``step`` brings the batch's rows up to date with those k
moves before applying their gradient; ``flush`` brings every row up to date, at the end of the fit.
The moves fall as (beta1 / sqrt(beta2))^d with the steps d since the row's last gradient, so
those after ``horizon`` (the first d at which that factor is below 1e-8) are left out: a row
then differs from dense AdamW by less than 1e-8 of its catch-up, besides float rounding (the
test checks 1e-5 of a step after 400 steps). Weight decay is 0, as the fit's.

The state (moments, per-row steps, the learning rate of every step so far) goes into the fit's
checkpoint, so a resumed fit lands on the very same table.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CATCH_UP_TOLERANCE = 1e-8          # the leftover moves' share below which they are left out
CATCH_UP_CHUNK = 1 << 22           # values x steps per catch-up block: bounds every catch-up's memory


class RowAdam:
    """AdamW without weight decay on ``table`` (rows, ...), stepped with the gradients of some of its rows."""

    def __init__(self, table: Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        b1, b2 = betas
        if not (0 < b1 < 1 and 0 < b2 < 1 and b1 < math.sqrt(b2) and eps > 0):
            raise ValueError(f"RowAdam: betas {betas} and eps {eps} out of range (0 < beta1 < sqrt(beta2) < 1)")
        self.table = table
        self.b1, self.b2, self.eps = b1, b2, eps
        self.horizon = math.ceil(math.log(CATCH_UP_TOLERANCE) / math.log(b1 / math.sqrt(b2)))
        self.m = torch.zeros_like(table, memory_format=torch.contiguous_format)
        self.v = torch.zeros_like(self.m)
        self.last = torch.zeros(table.shape[0], dtype=torch.int64, device=table.device)
        self.lrs = torch.zeros(0, dtype=torch.float64, device=table.device)   # lrs[j - 1]: step j's
        self.n_steps = 0

    @torch.no_grad()
    def current(self, rows: Tensor) -> Tensor:
        """Rows ``rows`` brought up to the last step, as the next step's forward pass must read them: a copy."""
        unique = torch.unique(rows)
        self._catch_up(unique, self.n_steps)
        return self.table[rows].clone()

    @torch.no_grad()
    def step(self, rows: Tensor, grad: Tensor, lr: float) -> None:
        """One step: ``grad`` (n, *row shape) the gradient of rows ``rows`` (n,) (a row given twice
        gets the sum) at their values from ``current``, every other row's gradient 0, at learning rate ``lr``."""
        if grad.shape != (rows.shape[0], *self.table.shape[1:]):
            raise ValueError(f"RowAdam.step: gradient {tuple(grad.shape)} for {rows.shape[0]} rows of "
                             f"{tuple(self.table.shape[1:])}")
        rows, inverse = torch.unique(rows, return_inverse=True)
        g = torch.zeros((len(rows), *self.table.shape[1:]), dtype=self.m.dtype, device=self.m.device)
        g.index_add_(0, inverse, grad.to(g.dtype))
        self._catch_up(rows, self.n_steps)          # a no-op for rows read through ``current``
        self._record(lr)
        t = self.n_steps
        m, v = self.m[rows], self.v[rows]
        m.lerp_(g, 1 - self.b1)
        v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        denom = (v.sqrt() / math.sqrt(1 - self.b2 ** t)).add_(self.eps)
        p = self.table[rows]
        p.addcdiv_(m, denom, value=-lr / (1 - self.b1 ** t))
        self.table[rows], self.m[rows], self.v[rows] = p, m, v
        self.last[rows] = t

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row up to the last step (the table then is what dense AdamW would hold)."""
        self._catch_up(torch.nonzero(self.last < self.n_steps).flatten(), self.n_steps)

    def _record(self, lr: float) -> None:
        if self.n_steps == len(self.lrs):      # grow by doubling: O(1) amortised per step
            self.lrs = torch.cat((self.lrs, torch.zeros(max(1024, len(self.lrs)), dtype=self.lrs.dtype,
                                                        device=self.lrs.device)))
        self.lrs[self.n_steps] = lr
        self.n_steps += 1

    def _catch_up(self, rows: Tensor, upto: int) -> None:
        """Rows ``rows`` (unique) from their last step to step ``upto``, every gradient between 0; in blocks
        of rows whose moves hold at most CATCH_UP_CHUNK values."""
        per_block = max(1, CATCH_UP_CHUNK // (self.horizon * max(1, self.table[0].numel())))
        for first in range(0, len(rows), per_block):
            self._catch_up_block(rows[first:first + per_block], upto)

    def _catch_up_block(self, rows: Tensor, upto: int) -> None:
        since = self.last[rows]
        skipped = upto - since                                        # (n,)
        n_moves = min(int(skipped.max()) if len(rows) else 0, self.horizon)
        if n_moves > 0:
            d = torch.arange(1, n_moves + 1, dtype=torch.float64, device=rows.device)           # (D,)
            j = since[:, None].to(torch.float64) + d                                             # (n, D) step no.
            valid = d <= skipped[:, None]
            lr = self.lrs[(j.long() - 1).clamp(0, max(self.n_steps - 1, 0))]
            coef = torch.where(valid, lr / (1 - self.b1 ** j) * self.b1 ** d, 0.0).to(self.m.dtype)
            scale = (self.b2 ** (d / 2) / torch.sqrt(1 - self.b2 ** j)).to(self.m.dtype)
            shape = (len(rows), n_moves) + (1,) * (self.m.dim() - 1)
            m, root_v = self.m[rows].unsqueeze(1), self.v[rows].sqrt().unsqueeze(1)
            moves = coef.view(shape) * m / (scale.view(shape) * root_v + self.eps)
            self.table[rows] = self.table[rows] - moves.sum(1)
        decay = skipped.to(torch.float64).view((-1,) + (1,) * (self.m.dim() - 1))
        self.m[rows] = self.m[rows] * (self.b1 ** decay).to(self.m.dtype)
        self.v[rows] = self.v[rows] * (self.b2 ** decay).to(self.m.dtype)
        self.last[rows] = upto

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v, "last": self.last, "lrs": self.lrs[:self.n_steps].clone(),
                "betas": (self.b1, self.b2), "eps": self.eps}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["betas"]) != (self.b1, self.b2) or state["eps"] != self.eps:
            raise ValueError(f"RowAdam: state for betas {tuple(state['betas'])}, eps {state['eps']}; "
                             f"this one has {(self.b1, self.b2)}, {self.eps}")
        if state["m"].shape != self.m.shape or state["last"].shape != self.last.shape:
            raise ValueError(f"RowAdam: state for a table of {tuple(state['m'].shape)}, this one is "
                             f"{tuple(self.m.shape)}")
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
        self.last.copy_(state["last"])
        self.lrs = state["lrs"].to(torch.float64).clone()
        self.n_steps = len(self.lrs)
