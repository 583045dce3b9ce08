"""Format stability: FORMAT.md's worked example, the golden file, and a torch-free import."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import nvcodec.bitstream as bitstream
from nvcodec.bitstream import KeyframeSegment, NvcReader, QuantizedTensor, write_nvc

FORMAT_MD = Path(bitstream.__file__).with_name("FORMAT.md")
GOLDEN = Path(__file__).parent / "data" / "golden"
REGENERATE = os.environ.get("NVCODEC_REGENERATE_GOLDEN") == "1"


def spec_example_bytes() -> bytes:
    """The bytes of the hex dump in FORMAT.md section 11 (offset-checked line by line)."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    block = re.search(r"## 11\. Worked example.*?```hex\n(.*?)```", text, re.S).group(1)
    out = bytearray()
    for line in block.splitlines():
        offset, rest = line.split(":", 1)
        assert int(offset, 16) == len(out), f"FORMAT.md example: line {line!r} has the wrong offset"
        out += bytes.fromhex(rest.split("#", 1)[0])
    return bytes(out)


def test_format_md_example_is_what_the_writer_produces(tmp_path):
    """The hex dump in FORMAT.md section 11 equals the writer's output for the inputs described there."""
    metadata = json.loads(re.search(r"## 11\. Worked example.*?```json\n(.*?)```", FORMAT_MD.read_text(encoding="utf-8"), re.S).group(1))
    tensor = QuantizedTensor("w", np.array([[-2, 0], [1, 1]]), np.array([0.5], np.float32), None, 2)
    n_bytes = write_nvc(tmp_path / "ex.nvc", metadata, [KeyframeSegment(0, 0, 1, b"KF")], [tensor])
    assert (tmp_path / "ex.nvc").read_bytes() == spec_example_bytes()
    assert n_bytes == len(spec_example_bytes()) == 327
    with NvcReader(tmp_path / "ex.nvc") as r:
        assert r.read_tensors() == [tensor] and r.read_segment(0, 0) == b"KF" and r.metadata == metadata


def test_format_md_example_crc_of_fend():
    """FORMAT.md section 8 states FEND's CRC; the example ends with it."""
    assert spec_example_bytes()[-16:] == b"FEND" + bytes(8) + bytes.fromhex("d47021f6")


# --- golden file -------------------------------------------------------------------------------


def golden_inputs():
    """Inputs of the golden file (used only when regenerating): one tensor per entropy model (FORMAT.md 9)."""
    rng = np.random.default_rng(2024)
    metadata = {
        "encoder": "nvcodec golden",
        "videos": [
            {"name": "clips/a.mp4", "source_width": 1920, "source_height": 1080, "width": 160, "height": 90,
             "fps_num": 30000, "fps_den": 1001, "n_frames": 17},
            {"name": "b.y4m", "source_width": 176, "source_height": 144, "width": 176, "height": 144,
             "fps_num": 25, "fps_den": 1, "n_frames": 1},
        ],
        "keyframe_interval": 8,
        "tile": {"width": 32, "height": 16},
        "keyframe_codec": {"codec": "av1", "mode": "inter", "params": {"crf": 38, "preset": 8}},
        "model": {"c0": 12, "strides": [2, 2, 2], "mean": [0.45, 0.43, 0.4]},
        "fit": {"preset": "tiny", "epochs": 3, "psnr": 27.5},
    }
    segments = [KeyframeSegment(0, 0, 2, b"\x12\x00\x0a\x0a" + bytes(range(20))), KeyframeSegment(0, 2, 1, b"\x12\x00tail"),
                KeyframeSegment(1, 0, 1, b"only")]
    peaks = np.where(rng.random(300) < 0.5, -40, 40) + rng.integers(-1, 2, 300)
    tensors = [
        QuantizedTensor("constant", np.full((3, 2), 5), np.array([0.25], np.float32), None, 4),
        QuantizedTensor("uniform", np.array([[-2, 0], [1, 1]]), np.array([0.5, 1.5], np.float32), 0, 2),
        QuantizedTensor("categorical", peaks.reshape(10, 30), np.linspace(0.01, 0.1, 30, dtype=np.float32), 1, 8),
        QuantizedTensor("laplace", np.clip(np.round(rng.laplace(0, 20, (8, 3, 3, 3))), -128, 127).astype(np.int32),
                        np.linspace(1e-3, 2e-3, 8, dtype=np.float32), 0, 8),
        QuantizedTensor("gaussian", np.clip(np.round(rng.normal(3, 10, 600)), -128, 127).astype(np.int32),
                        np.array([3.0517578e-05], np.float32), None, 8),
    ]
    rng = np.random.default_rng(2026)                 # the context tensor came later: the draws above stay as they were
    flips = rng.random((4, 6, 40)) < np.where(np.arange(6) == 0, 0.3, 0.08)[None, :, None]
    active = np.cumsum(flips, axis=1) % 2 == 1        # on/off runs along axis 1, as latents along the frame slots
    sparse = np.where(active, rng.choice([-2, -1, 1, 2], size=active.shape), 0)
    tensors.append(QuantizedTensor("context", sparse, np.array([0.5, 0.25, 0.125, 1.0], np.float32), 0, 4))
    return metadata, segments, tensors


def content_to_json(metadata, segments, tensors) -> dict:
    return {
        "metadata": metadata,
        "segments": [{"video": v, "first_keyframe": f, "n_keyframes": n, "data_hex": d.hex()} for v, f, n, d in segments],
        "tensors": [{"name": t.name, "shape": list(t.q.shape), "axis": t.axis, "n_bits": t.n_bits,
                     "scale_f32le_hex": t.scale.astype("<f4").tobytes().hex(), "q": t.q.reshape(-1).tolist()} for t in tensors],
    }


def json_to_inputs(d: dict):
    segments = [KeyframeSegment(s["video"], s["first_keyframe"], s["n_keyframes"], bytes.fromhex(s["data_hex"])) for s in d["segments"]]
    tensors = [QuantizedTensor(t["name"], np.array(t["q"], np.int32).reshape(t["shape"]),
                               np.frombuffer(bytes.fromhex(t["scale_f32le_hex"]), "<f4").astype(np.float32), t["axis"], t["n_bits"])
               for t in d["tensors"]]
    return d["metadata"], segments, tensors


def test_golden_file_reads_to_its_expected_content_and_is_rewritten_byte_exact(tmp_path):
    """tests/data/golden/small.nvc decodes to small.json, and writing small.json gives the same bytes.
    Regenerate (after checking the change is intended) with NVCODEC_REGENERATE_GOLDEN=1."""
    if REGENERATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        metadata, segments, tensors = golden_inputs()
        write_nvc(GOLDEN / "small.nvc", metadata, segments, tensors)
        expected = content_to_json(metadata, [(s.video, s.first_keyframe, s.n_keyframes, s.data) for s in segments], tensors)
        (GOLDEN / "small.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    expected = json.loads((GOLDEN / "small.json").read_text(encoding="utf-8"))
    golden_bytes = (GOLDEN / "small.nvc").read_bytes()

    with NvcReader(GOLDEN / "small.nvc") as r:
        r.verify()
        segments = [(v, f, n, r.read_segment(v, i)) for v in range(len(r.metadata["videos"])) for i, (f, n) in enumerate(r.segments(v))]
        got = content_to_json(r.metadata, segments, r.read_tensors())
    assert got == expected, "the reader's view of the golden file changed: format drift"

    metadata, segments, tensors = json_to_inputs(expected)
    write_nvc(tmp_path / "again.nvc", metadata, segments, tensors)
    assert (tmp_path / "again.nvc").read_bytes() == golden_bytes, "the writer's output changed: format drift"


def test_golden_file_exercises_every_entropy_model():
    from nvcodec.bitstream.entropy import MODEL_NAMES, encode_ints

    _, _, tensors = json_to_inputs(json.loads((GOLDEN / "small.json").read_text(encoding="utf-8")))
    models = [MODEL_NAMES[encode_ints(t.q, t.n_bits, shaped=True)[0]] for t in tensors]
    assert set(models) == set(MODEL_NAMES.values())
    assert [t.name for t in tensors] == models


def test_import_does_not_load_torch():
    """nvcodec.bitstream is torch-free: importing it in a fresh interpreter loads no torch."""
    code = "import sys, nvcodec.bitstream; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'nvcodec')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch" not in out.replace("nvcodec", ""), out


def test_chunk_order_table_is_format_md_table():
    """chunks.CHUNK_ORDER (which drives writer and reader) lists FORMAT.md's critical chunk table, in its order."""
    from nvcodec.bitstream import chunks

    text = FORMAT_MD.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z]{4})` \| \d+ \| ([^|]+) \|", text, re.M)
    assert [t for t, _ in rows] == list(chunks.KNOWN_CRITICAL)
    spelled = {chunks.ONE: "exactly 1", chunks.OPTIONAL: "0 or 1", chunks.AS_INDEXED: "as many as `KIDX` lists", chunks.PER_VIDEO: "0, or 1 per video",
               chunks.ANY: "0 .."}
    for (ctype, count), (_, doc) in zip(chunks.CHUNK_ORDER, rows):
        assert doc.strip().startswith(spelled[count]), (ctype, doc)
