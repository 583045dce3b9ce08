"""Shared test fixtures. torch is imported only by the fixtures that need it, so the
torch-free bitstream tests run where torch is not installed."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's fits: on a loaded 2-core box, OpenMP spin-waits made a 5 s fit take minutes."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
