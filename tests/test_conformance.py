"""Conformance: the committed .nvc files decode to the recorded integers and pixels on CPU.

tiny.nvc (version 1.0): keyframes and weights are bit-exact by design (YUV from the codec
standards plus our own conversion; integers times float32 steps). The network's output is
exact on CPU with the same torch build; across devices it is within a tolerance (README).

motion.nvc (version 1.1): coded motion and no network; its motion integers and its motion
floor (integer arithmetic, FORMAT.md 14.3) are bit-exact everywhere.

refine.nvc (version 1.1): coded motion and a network that consumes it (FORMAT.md 14.4): keyframes,
motion integers and weights bit-exact; frames exact on CPU with this torch build, like tiny.nvc's.

cuts.nvc (version 1.2): one video with a scene cut, its keyframes listed (KPOS, FORMAT.md section 15),
coded motion and no network: keyframe frame numbers, motion integers and floor bit-exact everywhere.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import nvcodec

from conformance_tools import MOTION_EXPECTED, MOTION_NVC, motion_digests, motion_from_json, motion_vector_inputs
from conformance_tools import (CUT_AT, CUTS_EXPECTED, CUTS_NVC, LATENTS_EXPECTED, LATENTS_NVC, REFINE_EXPECTED,
                               REFINE_NVC, refine_digests)
from conformance_tools import digests as conformance_digests
from nvcodec.bitstream import NvcFormatError, NvcReader, QuantizedTensor, write_nvc

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


# --- motion.nvc -------------------------------------------------------------------------------

MOTION = json.loads(MOTION_EXPECTED.read_text())


@pytest.fixture(scope="module")
def decoded_motion():
    return motion_digests(MOTION_NVC)


def test_motion_vector_is_version_1_1_with_one_motn_per_video_and_no_network():
    with NvcReader(MOTION_NVC) as r:
        types = [t for t, *_ in r.chunks()]
        assert r.version == (1, 1) and r.has_motion and r.tensor_headers() == []
        assert types.count("MOTN") == len(r.metadata["videos"]) == 2 and "TENS" not in types
        assert MOTION_NVC.stat().st_size < 4096


def test_motion_vector_decodes_to_the_recorded_motion_integers(decoded_motion):
    assert decoded_motion["motion"] == MOTION["motion"]


def test_motion_vector_keyframes_are_the_tiny_vectors(decoded_motion):
    """motion.nvc carries tiny.nvc's keyframe segments: both decode to the same recorded pixels."""
    assert decoded_motion["keyframes"] == MOTION["keyframes"] == EXPECTED["keyframes"]


def test_motion_floor_decodes_to_the_recorded_pixels(decoded_motion):
    assert decoded_motion["floor"] == MOTION["floor"]


def test_motion_vector_is_what_the_writer_produces(tmp_path):
    """Writing the vector's inputs (tiny.nvc's pieces + the recorded motion) gives its exact bytes: format drift
    shows here. Regenerate on purpose only: NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py motion."""
    metadata, segments = motion_vector_inputs()
    write_nvc(tmp_path / "again.nvc", metadata, segments, [], motion=motion_from_json(MOTION["motion"]))
    assert (tmp_path / "again.nvc").read_bytes() == MOTION_NVC.read_bytes()


def test_nvcodec_open_decodes_the_motion_vector_to_its_floor():
    """A file with coded motion and no network decodes, through nvcodec.open, to the recorded motion floor;
    a frame range decodes to the same frames as the whole video."""
    with nvcodec.open(MOTION_NVC, device="cpu") as nvc:
        assert nvc.floor_only
        for v in nvc.videos:
            frames = nvc.read(v.name)
            assert hashlib.md5(frames.tobytes()).hexdigest() == MOTION["floor"][v.name]
            for lo, hi in ((3, 9), (8, 9), (0, 1)):
                assert (nvc.read(v.name, slice(lo, hi)) == frames[lo:hi]).all()


def _motion_file(tmp_path, motion=True, tensors=(), model=None) -> Path:
    """motion.nvc's inputs written again, with or without its motion, with weights or a network."""
    metadata, segments = motion_vector_inputs()
    if model is not None:
        metadata["model"] = model
    fields = motion_from_json(MOTION["motion"]) if motion else None
    write_nvc(tmp_path / "f.nvc", metadata, segments, list(tensors), motion=fields)
    return tmp_path / "f.nvc"


def test_decoder_refuses_what_it_cannot_decode_with_motion(tmp_path):
    """No network and no motion, no network but weights, motion beside a network that does not consume it, or
    a network that consumes motion without any: one clean NvcFormatError."""
    with NvcReader(HERE / "tiny.nvc") as r:
        tiny_model = r.metadata["model"]
    cases = [
        (dict(motion=False), r"^metadata: model is empty \(no network\), but the file holds no coded motion$"),
        (dict(tensors=[QuantizedTensor("w", np.zeros(3, np.int32), np.ones(1, np.float32), None, 2)]),
         r"^metadata: model is empty \(no network\), but the file holds 1 weight tensors$"),
        (dict(model=tiny_model), r"^the file holds coded motion, but its network does not consume it$"),
        (dict(motion=False, model=dict(tiny_model, motion=True)),
         r"^metadata: the network consumes coded motion, but the file holds none$"),
    ]
    for kwargs, match in cases:
        with pytest.raises(NvcFormatError, match=match):
            nvcodec.open(_motion_file(tmp_path, **kwargs), device="cpu")


# --- refine.nvc -------------------------------------------------------------------------------

REFINE = json.loads(REFINE_EXPECTED.read_text())


@pytest.fixture(scope="module")
def decoded_refine():
    return refine_digests(REFINE_NVC)


def test_refine_vector_holds_motion_and_a_network_that_consumes_it():
    with NvcReader(REFINE_NVC) as r:
        types = [t for t, *_ in r.chunks()]
        assert r.version == (1, 1) and r.metadata["model"]["motion"] is True
        assert types.count("MOTN") == len(r.metadata["videos"]) == 2 and "TENS" in types


@pytest.mark.parametrize("part", ["keyframes", "weights", "motion", "frames"])
def test_refine_vector_decodes_bit_exactly(decoded_refine, part):
    assert decoded_refine[part] == REFINE[part]


def test_refine_vector_random_access_matches_the_full_decode():
    """A frame range of a motion-consuming network decodes to the same pixels as the whole video
    (the clips of a range are warped from the same decoded motion)."""
    with nvcodec.open(REFINE_NVC, device="cpu") as nvc:
        for v in nvc.videos:
            frames = nvc.read(v.name)
            assert hashlib.md5(frames.tobytes()).hexdigest() == REFINE["frames"][v.name]
            for lo, hi in ((3, 9), (8, 9)):
                assert (nvc.read(v.name, slice(lo, hi)) == frames[lo:hi]).all()


# --- latents.nvc ------------------------------------------------------------------------------

LATENTS = json.loads(LATENTS_EXPECTED.read_text())


def test_latents_vector_holds_a_latent_table_of_one_row_per_clip_tile_and_decodes_bit_exactly():
    """Per-frame latents (FORMAT.md 14.4): the ``latents`` tensor, (clip-tiles, K, C, tile / cell, tile / cell),
    among the weights; keyframes, weights, motion and frames as recorded; a frame range gives the full decode's
    pixels."""
    from nvcodec.corpus import latent_row_bases

    with NvcReader(LATENTS_NVC) as r:
        md = r.metadata
        shapes = {h.name: h.shape for h in r.tensor_headers()}
    cfg = md["model"]
    rows = latent_row_bases([(v["n_frames"], v["height"], v["width"], None) for v in md["videos"]],
                            md["keyframe_interval"], cfg["tile_h"], cfg["tile_w"])[1]
    assert cfg["latent_rows"] == rows and tuple(shapes["latents"]) == (rows, 8, 2, 4, 4)
    decoded = refine_digests(LATENTS_NVC)
    for part in ("keyframes", "weights", "motion", "frames"):
        assert decoded[part] == LATENTS[part], part
    with nvcodec.open(LATENTS_NVC, device="cpu") as nvc:
        for v in nvc.videos:
            frames = nvc.read(v.name)
            for lo, hi in ((3, 9), (8, 9)):
                assert (nvc.read(v.name, slice(lo, hi)) == frames[lo:hi]).all()


# --- cuts.nvc ---------------------------------------------------------------------------------

CUTS = json.loads(CUTS_EXPECTED.read_text())


def test_cuts_vector_lists_keyframes_on_both_sides_of_its_cut():
    """Version 1.2 with one KPOS: the keyframes are the recorded frame numbers, the cut's first frame and the
    frame before it among them, so no frame is predicted across the cut."""
    with NvcReader(CUTS_NVC) as r:
        types = [t for t, *_ in r.chunks()]
        assert r.version == (1, 2) and types.count("KPOS") == 1 and "TENS" not in types
        listed = r.keyframe_layout(0).keyframe_frames().tolist()
    assert listed == CUTS["keyframe_frames"] and {CUT_AT - 1, CUT_AT} <= set(listed)


def test_cuts_vector_decodes_bit_exactly():
    """Keyframes, motion integers and the motion floor over the listed keyframes, as recorded; nvcodec.open
    gives the same floor, and a frame range across the cut the same frames as the whole video."""
    decoded = motion_digests(CUTS_NVC)
    for part in ("keyframes", "motion", "floor"):
        assert decoded[part] == CUTS[part], part
    with nvcodec.open(CUTS_NVC, device="cpu") as nvc:
        (video,) = nvc.videos
        frames = nvc.read(video.name)
        assert hashlib.md5(frames.tobytes()).hexdigest() == CUTS["floor"][video.name]
        for lo, hi in ((CUT_AT - 2, CUT_AT + 2), (CUT_AT, CUT_AT + 1), (0, len(frames))):
            assert (nvc.read(video.name, slice(lo, hi)) == frames[lo:hi]).all()
