"""The conformance file tests/data/conformance/tiny.nvc: how it is made and what it must decode to.

Regenerate on purpose only: NVCODEC_REGENERATE_GOLDEN=1 python tests/conformance_tools.py

Encodes two sample clips with the tiny preset and records what a conforming CPU
decoder must produce: the md5 of the decoded keyframes and weights (bit-exact by
design) and of every video's decoded frames (exact on CPU with this torch build).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import nvcodec
from nvcodec.presets import build_config

ROOT = Path(__file__).parents[1]
HERE = ROOT / "tests" / "data" / "conformance"


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


def main() -> None:
    if os.environ.get("NVCODEC_REGENERATE_GOLDEN") != "1":
        sys.exit("set NVCODEC_REGENERATE_GOLDEN=1 to overwrite the conformance file")
    nvc = HERE / "tiny.nvc"
    nvcodec.encode([ROOT / "samples" / "foreman_176x144.mp4", ROOT / "samples" / "dog_192x108.mp4"],
                   nvc, build_config("tiny", epochs=2), size=(48, 40), max_frames=9, force=True, quiet=True)
    (HERE / "expected.json").write_text(json.dumps(digests(nvc), indent=2) + "\n")


if __name__ == "__main__":
    main()
