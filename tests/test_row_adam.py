"""The latent table's lazy optimizer: what dense AdamW would make of the table, at the cost of the batch's rows."""

from __future__ import annotations

import math

import pytest
import torch

from nvcodec.row_adam import RowAdam


def _run(n_rows: int, row_shape: tuple[int, ...], n_steps: int, batch: int, seed: int = 0, stop_at: int | None = None):
    """The same rows, targets and learning rates (warm-up, then a cosine) stepped by dense AdamW and by
    RowAdam: (dense table, lazy table, the RowAdam); with ``stop_at``, RowAdam's state is saved there and
    loaded into a fresh one on a copy of its table, which goes on."""
    gen = torch.Generator().manual_seed(seed)
    init = torch.randn(n_rows, *row_shape, generator=gen)
    dense = torch.nn.Parameter(init.clone())
    adamw = torch.optim.AdamW([dense], lr=0.05, weight_decay=0.0)
    lazy = torch.nn.Parameter(init.clone())
    rows_opt = RowAdam(lazy)
    for step in range(n_steps):
        rows = torch.randint(0, n_rows // 2, (batch,), generator=gen)       # half the table never moves
        target = torch.randn(batch, *row_shape, generator=gen)
        lr = 0.05 * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / n_steps))
        adamw.param_groups[0]["lr"] = lr
        loss = ((dense[rows] - target) ** 2 * (1 + rows.view(-1, *[1] * len(row_shape)))).sum()
        adamw.zero_grad()
        loss.backward()
        adamw.step()
        values = rows_opt.current(rows).requires_grad_()
        ((values - target) ** 2 * (1 + rows.view(-1, *[1] * len(row_shape)))).sum().backward()
        rows_opt.step(rows, values.grad, lr)
        if step + 1 == stop_at:
            state = {k: v.clone() if torch.is_tensor(v) else v for k, v in rows_opt.state_dict().items()}
            lazy = torch.nn.Parameter(lazy.detach().clone())
            rows_opt = RowAdam(lazy)
            rows_opt.load_state_dict(state)
    rows_opt.flush()
    return dense.detach(), lazy.detach(), rows_opt


def test_row_adam_holds_what_dense_adamw_holds():
    """400 steps of 6 rows of 120 (a row drawn twice gets the sum of its gradients, rows unseen for hundreds
    of steps catch up): every value within 1e-5 of dense AdamW's, which moved them by up to several units."""
    dense, lazy, _ = _run(120, (3, 2, 2), 400, 6)
    init = _run(120, (3, 2, 2), 0, 6)[0]
    assert (dense - init).abs().max() > 1.0
    assert torch.allclose(lazy, dense, atol=1e-5, rtol=0), (lazy - dense).abs().max()
    assert torch.equal(lazy[60:], init[60:])                # rows never stepped never move


def test_row_adam_catches_up_in_blocks_to_the_same_table(monkeypatch):
    """Catch-ups cut into blocks of 3 rows (bounded memory for large rows and ``flush``) give the same table,
    to float rounding (a block sums its moves over as many steps as its stalest row needs)."""
    import nvcodec.row_adam as row_adam

    _, whole, opt = _run(60, (3, 2, 2), 150, 8, seed=5)
    monkeypatch.setattr(row_adam, "CATCH_UP_CHUNK", 3 * opt.horizon * 12)
    _, blocks, _ = _run(60, (3, 2, 2), 150, 8, seed=5)
    assert torch.allclose(whole, blocks, atol=1e-6, rtol=0), (whole - blocks).abs().max()


def test_row_adam_touches_only_the_rows_it_is_given():
    """Between the steps that name a row, the row stays as it was until ``current`` or ``flush`` reads it."""
    table = torch.nn.Parameter(torch.zeros(4, 2))
    opt = RowAdam(table)
    opt.step(torch.tensor([1]), torch.ones(1, 2), 0.1)
    after_one = table.detach()[1].clone()
    opt.step(torch.tensor([2]), torch.ones(1, 2), 0.1)
    assert torch.equal(table.detach()[1], after_one)        # not touched by a step on row 2
    moved = opt.current(torch.tensor([1]))
    assert (moved < after_one).all()                        # its momentum carried it on, as dense AdamW's does
    assert torch.equal(table.detach()[[0, 3]], torch.zeros(2, 2))


def test_row_adam_resumes_from_its_state_exactly():
    """Its state saved mid-run and loaded into a fresh optimizer: the very same table as one straight run."""
    _, straight, _ = _run(40, (2, 3), 120, 4, seed=3)
    _, resumed, _ = _run(40, (2, 3), 120, 4, seed=3, stop_at=50)
    assert torch.equal(straight, resumed)


def test_row_adam_refuses_what_does_not_fit():
    table = torch.nn.Parameter(torch.zeros(4, 2))
    opt = RowAdam(table)
    with pytest.raises(ValueError, match="gradient"):
        opt.step(torch.tensor([0, 1]), torch.ones(2, 3), 0.1)
    with pytest.raises(ValueError, match="table of"):
        RowAdam(torch.nn.Parameter(torch.zeros(5, 2))).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="betas"):
        RowAdam(table, betas=(0.9, 0.5))


def test_the_step_benchmark_times_both_ways_on_a_small_table():
    """benchmarks/bench_latent_step.py's measurement runs end to end (tiny: 3 rows, one timed step)."""
    from benchmarks.bench_latent_step import measure

    r = measure(1700, 1, 2)
    assert r["rows"] == 3 and r["values"] == 3 * 512
    assert r["dense_s"] > 0 and r["rows_s"] > 0 and r["flush_s"] >= 0
