"""The shared torch runtime: device choice, the lr schedule's ends, and progress bars only on a terminal."""

from __future__ import annotations

import io
import sys

import torch

from nvcodec import runtime


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_only_on_a_terminal_and_when_enabled(monkeypatch):
    """A bar with an ETA on a terminal; disabled (silent) when stderr is a file or progress is off."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert runtime.progress_bar(10, "fit").disable
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert runtime.progress_bar(10, "fit", enabled=False).disable
    bar = runtime.progress_bar(10, "fit")
    assert not bar.disable
    bar.update(5)
    bar.refresh()
    bar.close()
    assert "fit" in terminal.getvalue() and "5/10" in terminal.getvalue()


def test_device_is_cuda_only_when_present_and_a_given_one_is_kept():
    assert runtime.resolve_device("cpu") == "cpu" and runtime.resolve_device("cuda:1") == "cuda:1"
    assert runtime.resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runtime.autocast(torch.device("cpu")).__class__.__name__ == "nullcontext"


def test_lr_schedule_warms_up_from_the_start_factor_and_ends_at_zero():
    assert runtime.lr_factor(0, 100, 0.2, 0.1) == 0.1
    assert runtime.lr_factor(20, 100, 0.2, 0.1) == 1.0
    assert abs(runtime.lr_factor(100, 100, 0.2, 0.1)) < 1e-12
