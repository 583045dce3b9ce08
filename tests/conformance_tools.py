"""The conformance files under tests/data/conformance: how they are made and what they must decode to.

Regenerate on purpose only:
    NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py          # tiny.nvc (version 1.0)
    NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py motion   # motion.nvc (version 1.1)
    NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py refine   # refine.nvc (version 1.1)
    NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py cuts     # cuts.nvc (version 1.2)
    NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py latents  # latents.nvc (version 1.1)

tiny.nvc: two sample clips encoded with the tiny preset; expected.json records what a
conforming CPU decoder must produce: the md5 of the decoded keyframes and weights
(bit-exact by design) and of every video's decoded frames (exact on CPU with this torch build).

motion.nvc: tiny.nvc's metadata and keyframe segments, no network (``model`` is empty, no
TENS), and one MOTN per video (FORMAT.md section 14), written by ``bitstream.write_nvc``.
motion_expected.json records every decoded motion integer and the md5 of each video's
motion floor (section 14.3: integer arithmetic, bit-exact everywhere).

refine.nvc: tiny.nvc's two clips encoded with the tiny preset and a network that consumes
coded motion (``ModelConfig.motion``, FORMAT.md 14.4): keyframes, one MOTN per video and
weights. refine_expected.json records ``digests`` plus the md5 of each video's motion integers.

latents.nvc: refine.nvc's clips and preset with a refiner (8 wide, 3 layers, on tiny's trunk) fed per-frame
latents (2 channels on 8-pixel cells, FORMAT.md 14.4, "Per-frame latents"): the ``latents`` tensor among the
weights, one row per clip-tile. latents_expected.json records the same digests as refine_expected.json.

cuts.nvc: one video with a scene cut, keyframes on it (a KPOS chunk, FORMAT.md section 15) and
the motion floor (no network): the first CUT_AT frames of foreman, then the first frames of dog,
at 48x40, written to a temporary y4m and encoded with ``--network none``. cuts_expected.json
records the keyframe frame numbers (``keyframe_frames``) and ``motion_digests`` (motion integers, keyframe and floor md5).
"""

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

import nvcodec
from nvc_craft import Pieces
from nvcodec.bitstream import KeyframeSegment, NvcReader, VideoMotion, write_nvc
from nvcodec.bitstream.motion import INTERP_BILINEAR, INTERP_NEAREST, clip_inbetween_counts, motion_grid
from nvcodec.keyframes import KeyframeCodec, iter_keyframes
from nvcodec.motion import floor_video
from nvcodec.presets import build_config

ROOT = Path(__file__).parents[1]
HERE = ROOT / "tests" / "data" / "conformance"
MOTION_NVC = HERE / "motion.nvc"
MOTION_EXPECTED = HERE / "motion_expected.json"
REFINE_NVC = HERE / "refine.nvc"
REFINE_EXPECTED = HERE / "refine_expected.json"
REFINE_INPUTS = [ROOT / "samples" / "foreman_176x144.mp4", ROOT / "samples" / "dog_192x108.mp4"]
LATENTS_NVC = HERE / "latents.nvc"              # a refiner with per-frame latents (FORMAT.md 14.4)
LATENTS_EXPECTED = HERE / "latents_expected.json"
LATENTS_SETTINGS = dict(epochs=2, motion=True, weight_bpp=64.0, refine_width=8, refine_layers=3, latent_channels=2,
                        latent_cell=8)
CUTS_NVC = HERE / "cuts.nvc"
CUTS_EXPECTED = HERE / "cuts_expected.json"
CUT_AT, CUTS_FRAMES = 7, 13


def digests(path: Path) -> dict:
    """md5 of each video's decoded frames, keyframes and of the dequantized weights."""
    out = {"frames": {}, "keyframes": {}}
    with nvcodec.open(path, device="cpu") as nvc:
        for i, v in enumerate(nvc.videos):
            out["frames"][v.name] = hashlib.md5(nvc.read(v.name).tobytes()).hexdigest()
            n_kf = sum(n for _, n in nvc._reader.segments(i))
            out["keyframes"][v.name] = hashlib.md5(nvc._keyframes(i, 0, n_kf - 1).tobytes()).hexdigest()
        weights = hashlib.md5()
        for t in nvc._reader.read_tensors():
            weights.update(t.name.encode() + t.dequantize().tobytes())
        out["weights"] = weights.hexdigest()
    return out


# --- motion.nvc ----------------------------------------------------------------------------------


def motion_vector_inputs() -> tuple[dict, list[KeyframeSegment]]:
    """motion.nvc's metadata and keyframe segments: tiny.nvc's, taken apart by the tests' own crafting code."""
    pieces = Pieces()
    metadata = dict(pieces.metadata, encoder="nvcodec conformance: keyframes + coded motion, no network", model={})
    del metadata["fit"]
    return metadata, [KeyframeSegment(v, first, n, data) for v, first, n, data in pieces.segments]


def motion_vector_fields(metadata: dict) -> list[VideoMotion]:
    """The vector's motion (used only when regenerating): a pan growing with the distance to each keyframe,
    plus seeded jitter. Video 0: 16-pixel cells, whole pixels, bilinear; video 1: 8-pixel cells, half
    pixels, nearest; so both interpolations and a fractional step reach the floor."""
    rng = np.random.default_rng(1313)
    interval = metadata["keyframe_interval"]
    fields = []
    for v, (grid, step_qpel, interp, pan) in enumerate([(16, 4, INTERP_BILINEAR, (0.5, 1.0)),
                                                         (8, 2, INTERP_NEAREST, (-0.5, 0.25))]):
        video = metadata["videos"][v]
        rows, cols = motion_grid(video["height"], video["width"], grid)
        clips = []
        for n in clip_inbetween_counts(video["n_frames"], interval):
            q = np.zeros((n, 2, 2, rows, cols), np.int32)
            for j in range(n):
                for k, frames_away in enumerate((j + 1, j + 1 - (n + 1))):  # to the start (+) / the end (-)
                    for comp in range(2):
                        whole = frames_away * pan[comp] * 4 / step_qpel
                        q[j, k, comp] = round(whole) + rng.integers(-1, 2, (rows, cols))
            clips.append(q)
        fields.append(VideoMotion(grid, step_qpel, interp, rows, cols, tuple(clips)))
    return fields


def motion_to_json(fields: list[VideoMotion]) -> list[dict]:
    return [{"grid": m.grid, "step_qpel": m.step_qpel, "interp": m.interp, "rows": m.rows, "cols": m.cols,
             "clips": [{"shape": list(q.shape), "q": q.reshape(-1).tolist()} for q in m.clips]} for m in fields]


def motion_from_json(items: list[dict]) -> list[VideoMotion]:
    return [VideoMotion(d["grid"], d["step_qpel"], d["interp"], d["rows"], d["cols"],
                        tuple(np.array(c["q"], np.int32).reshape(c["shape"]) for c in d["clips"])) for d in items]


def decoded_keyframes(reader: NvcReader, video: int) -> np.ndarray:
    """Every decoded keyframe of one video, (n_kf, H, W, 3) uint8, segment by segment through ffmpeg."""
    entry = reader.metadata["videos"][video]
    codec = KeyframeCodec.from_json(reader.metadata["keyframe_codec"])
    frames = []
    for i, (_, n) in enumerate(reader.segments(video)):
        frames += list(iter_keyframes(reader.read_segment(video, i), codec, entry["width"], entry["height"], n))
    return np.stack(frames)


def motion_digests(path: Path) -> dict:
    """The decoded motion of every video, and the md5 of each video's keyframes and motion floor."""
    out = {"keyframes": {}, "floor": {}}
    with NvcReader(path) as r:
        r.verify()
        md = r.metadata
        fields = [r.motion(v).read_all() for v in range(len(md["videos"]))]
        out["motion"] = motion_to_json(fields)
        for v, (entry, m) in enumerate(zip(md["videos"], fields)):
            keyframes = decoded_keyframes(r, v)
            layout = r.keyframe_layout(v)
            floor = floor_video(keyframes, m, entry["n_frames"], md["keyframe_interval"],
                                None if layout.is_regular else layout.keyframe_frames())
            out["keyframes"][entry["name"]] = hashlib.md5(keyframes.tobytes()).hexdigest()
            out["floor"][entry["name"]] = hashlib.md5(floor.tobytes()).hexdigest()
    return out


# --- refine.nvc --------------------------------------------------------------------------------


def refine_digests(path: Path) -> dict:
    """``digests`` and the md5 of each video's decoded motion integers: a network that consumes coded motion."""
    out = digests(path)
    with NvcReader(path) as r:
        out["motion"] = {v["name"]: hashlib.md5(b"".join(q.tobytes() for q in r.motion(i).read_all().clips)).hexdigest()
                         for i, v in enumerate(r.metadata["videos"])}
    return out


def main() -> None:
    if os.environ.get("NVCODEC_REGENERATE_GOLDEN") != "1":
        sys.exit("set NVCODEC_REGENERATE_GOLDEN=1 to overwrite the conformance file")
    if sys.argv[1:] == ["motion"]:
        metadata, segments = motion_vector_inputs()
        write_nvc(MOTION_NVC, metadata, segments, [], motion=motion_vector_fields(metadata))
        text = json.dumps(motion_digests(MOTION_NVC), indent=1)
        MOTION_EXPECTED.write_text(re.sub(r"\[[-\d,\s]*\]", lambda m: re.sub(r"\s", "", m[0]), text) + "\n")
        return
    if sys.argv[1:] == ["refine"]:
        nvcodec.encode(REFINE_INPUTS, REFINE_NVC, build_config("tiny", epochs=2, motion=True, weight_bpp=64.0), size=(48, 40),
                       max_frames=9, force=True, quiet=True)
        REFINE_EXPECTED.write_text(json.dumps(refine_digests(REFINE_NVC), indent=2) + "\n")
        return
    if sys.argv[1:] == ["latents"]:
        nvcodec.encode(REFINE_INPUTS, LATENTS_NVC, build_config("tiny", **LATENTS_SETTINGS), size=(48, 40), max_frames=9,
                       force=True, quiet=True)
        LATENTS_EXPECTED.write_text(json.dumps(refine_digests(LATENTS_NVC), indent=2) + "\n")
        return
    if sys.argv[1:] == ["cuts"]:
        import tempfile

        from nvcodec.media import VideoWriter, read_frames

        shots = [list(read_frames(path, size=(48, 40), max_frames=n))
                 for path, n in zip(REFINE_INPUTS, (CUT_AT, CUTS_FRAMES - CUT_AT))]
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "cut.y4m"
            with VideoWriter(video, "y4m", 48, 40, 25, 1) as writer:
                for frame in shots[0] + shots[1]:
                    writer.write(frame)
            nvcodec.encode([video], CUTS_NVC, build_config("tiny", network="none"), force=True, quiet=True)
        with NvcReader(CUTS_NVC) as r:
            keyframes = r.keyframe_layout(0).keyframe_frames().tolist()
        text = json.dumps({"keyframe_frames": keyframes, **motion_digests(CUTS_NVC)}, indent=1)
        CUTS_EXPECTED.write_text(re.sub(r"\[[-\d,\s]*\]", lambda m: re.sub(r"\s", "", m[0]), text) + "\n")
        return
    nvc = HERE / "tiny.nvc"
    nvcodec.encode([ROOT / "samples" / "foreman_176x144.mp4", ROOT / "samples" / "dog_192x108.mp4"],
                   nvc, build_config("tiny", epochs=2), size=(48, 40), max_frames=9, force=True, quiet=True)
    (HERE / "expected.json").write_text(json.dumps(digests(nvc), indent=2) + "\n")


if __name__ == "__main__":
    main()
