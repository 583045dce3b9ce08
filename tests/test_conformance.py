"""Conformance: the committed tiny .nvc decodes to the recorded pixels on CPU.

Keyframes and weights are bit-exact by design (YUV from the codec standards plus
our own conversion; integers times float32 steps). The network's output is exact
on CPU with the same torch build; across devices it is within a tolerance (README).
"""

import json
from pathlib import Path

import pytest
import torch

from conformance_tools import digests as conformance_digests

HERE = Path(__file__).parent / "data" / "conformance"
EXPECTED = json.loads((HERE / "expected.json").read_text())


@pytest.fixture(scope="module")
def decoded():
    return conformance_digests(HERE / "tiny.nvc")


def test_keyframes_decode_bit_exactly(decoded):
    assert decoded["keyframes"] == EXPECTED["keyframes"]


def test_weights_decode_bit_exactly(decoded):
    assert decoded["weights"] == EXPECTED["weights"]


def test_frames_decode_to_the_recorded_pixels(decoded):
    assert decoded["frames"] == EXPECTED["frames"]


def test_frames_do_not_depend_on_the_thread_count():
    """One CPU thread decodes the same pixels as several (no reduction-order drift)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert conformance_digests(HERE / "tiny.nvc")["frames"] == EXPECTED["frames"]
    finally:
        torch.set_num_threads(threads)
