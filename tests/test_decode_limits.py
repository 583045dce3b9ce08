"""Files that pass every container check and still try to hurt the decoder.

Each file is built by the tests' own writer (``nvc_craft``, from FORMAT.md) out of the real pieces of
the conformance file, with one lie or one extreme: a decoder must refuse it in one clean
``NvcFormatError`` line, or decode it within the memory FORMAT.md section 13 allows.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import nvc_craft as nc
import nvcodec
from nvcodec.bitstream import NvcFormatError, NvcReader, encode_ints
from nvcodec.cli.main import main as cli
from nvcodec.decoder import decode_memory_bytes, memory_allowance_bytes, output_paths, predict_batch_size

GIB = 1 << 30
SILENT = 40       # single-bit flips of 300 that decode_ints decodes silently to other values (its docstring)
BIG = (1 << 27) - 60_000       # elements: the file limit less the conformance network's 50 959
SAMPLES = Path(__file__).parents[1] / "samples"


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def decode_in_subprocess(args: list[str], cap_bytes: int = 2 * GIB) -> tuple[int, str, int]:
    """``nvcodec ARGS`` in a child under an address-space cap: (exit status, stderr, peak RSS bytes)."""
    code = (
        "import resource, subprocess, sys\n"
        f"cap = {cap_bytes}\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,\n"
        "                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(r.stderr)\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "nvcodec.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=600)
    rc, maxrss_kib = proc.stdout.split()
    return int(rc), proc.stderr, int(maxrss_kib) * 1024


# -- the crafted cases ----------------------------------------------------------------


def lying_frame_count(tmp_path: Path, n_frames: int = 2**31 - 1, interval: int | None = None) -> Path:
    p = nc.Pieces()
    if interval is not None:
        p.metadata["keyframe_interval"] = interval
        p.metadata["model"]["clip_length"] = interval
        p.tensors = nc.tiny_network_tensors(p.metadata["model"])
        p.set_frames(1, 9)
    p.set_frames(0, n_frames)
    return p.write(tmp_path / f"frames_{n_frames}_{interval}.nvc")


def huge_frame(tmp_path: Path) -> Path:
    """One 4096x4096 video, a 4096 tile and a 1-channel network (6.8 KB at most)."""
    from nvcodec.config import ModelConfig

    p = nc.Pieces()
    p.metadata["videos"] = [dict(p.metadata["videos"][0], width=4096, height=4096)]
    p.metadata["tile"] = {"height": 4096, "width": 4096}
    model = dict(p.metadata["model"], tile_h=4096, tile_w=4096, c0=1, enc_width=1, mlp_width=1, min_width=1,
                 embed_levels=1, strides=[])
    p.metadata["model"] = ModelConfig.from_json(model).to_json()
    p.segments = [s for s in p.segments if s[0] == 0]
    p.tensors = nc.tiny_network_tensors(p.metadata["model"])
    return p.write(tmp_path / "huge.nvc")


def big_network_without_tensors(tmp_path: Path) -> Path:
    """A 2 KB file declaring a ~390 M-parameter network (ModelConfig allows 400 M) and no tensors."""
    p = nc.Pieces()
    p.metadata["model"].update(enc_width=3750, mlp_width=4096, c0=64)       # 389 M parameters
    p.tensors = []
    return p.write(tmp_path / "big.nvc")


def test_crafted_cases_are_valid_for_the_container(tmp_path):
    """Every crafted file passes the container's own checks (they are hostile, not malformed)."""
    for path in (lying_frame_count(tmp_path), lying_frame_count(tmp_path, interval=1), huge_frame(tmp_path),
                 big_network_without_tensors(tmp_path)):
        with NvcReader(path) as r:
            r.verify()


def test_a_segment_declaring_more_keyframes_than_the_codec_codes_is_refused_at_open(tmp_path):
    """n_frames 2^31-1 puts 268 M keyframes in a segment of a 32-keyframe codec: refused before decoding."""
    with pytest.raises(NvcFormatError, match=r"declares 268435457 keyframes, more than the keyframe codec's "
                                             r"segment_length 32"):
        nvcodec.open(lying_frame_count(tmp_path))
    with pytest.raises(NvcFormatError, match=r"declares 2147483647 keyframes"):
        nvcodec.open(lying_frame_count(tmp_path, interval=1))


def test_a_segment_holding_fewer_keyframes_than_declared_fails_cleanly_and_leaves_nothing(tmp_path):
    """21 keyframes declared, 2 coded: decoding stops where the segment ends, and no output is left."""
    path = lying_frame_count(tmp_path, n_frames=161)
    out = tmp_path / "out"
    with pytest.raises(NvcFormatError, match=r"keyframe segment 0 .*holds 2 keyframe\(s\), 21 declared"):
        nvcodec.decode(path, out)
    assert files_in(out) == [] and list(out.iterdir()) == []       # not even the temporary folder


def test_frames_before_the_lie_still_decode_by_random_access(tmp_path):
    """The clips a frame range needs decode; the lie is only met by a read that reaches it."""
    with nvcodec.open(lying_frame_count(tmp_path, n_frames=161)) as nvc, \
            nvcodec.open(nc.CONFORMANCE) as ref:
        np.testing.assert_array_equal(nvc.read(0, slice(0, 4)).shape, (4, 40, 48, 3))
        assert nvc.read(0, slice(0, 4)).shape == ref.read(0, slice(0, 4)).shape


def test_a_huge_frame_with_a_tiny_network_is_refused_before_allocating(tmp_path):
    """4096x4096 frames, 4096 tiles: the memory it needs is named and refused, not attempted."""
    with pytest.raises(NvcFormatError, match=r"decoding needs about \d+ MiB .* more than the \d+ MiB a \d+-byte file"):
        nvcodec.open(huge_frame(tmp_path))


def test_a_network_larger_than_the_file_may_hold_is_refused_before_building(tmp_path):
    """~390 M parameters exceed the 2^27 elements a file can carry: refused from the config alone."""
    with pytest.raises(NvcFormatError, match=r"parameters, more than the 134217728 elements"):
        nvcodec.open(big_network_without_tensors(tmp_path))


def test_manifest_is_checked_against_the_network_before_weights_are_decoded(tmp_path):
    """Missing, foreign or misshapen tensors are refused from their headers alone."""
    p = nc.Pieces()
    p.tensors = p.tensors[1:]
    with nvcodec.open(p.write(tmp_path / "missing.nvc")) as nvc, \
            pytest.raises(NvcFormatError, match=r"1 parameter\(s\) missing"):
        nvc.network()
    p = nc.Pieces()
    p.tensors.append(nc.constant_tensor("x", (BIG,)))        # ~2^27 elements in 30 bytes
    with nvcodec.open(p.write(tmp_path / "foreign.nvc")) as nvc, \
            pytest.raises(NvcFormatError, match=r"tensor 'x' is not a parameter"):
        nvc.network()
    p = nc.Pieces()
    first = NvcReader(nc.CONFORMANCE).tensor_headers()[0]
    p.tensors[0] = nc.constant_tensor(first.name, (*first.shape[:-1], first.shape[-1] + 1))
    with nvcodec.open(p.write(tmp_path / "shape.nvc")) as nvc, \
            pytest.raises(NvcFormatError, match=rf"tensor '{first.name}' has shape"):
        nvc.network()


@pytest.mark.parametrize("refiner, message", [
    ({"refine_width": 8, "refine_layers": 3}, "the refiner is the output head of a residual network with coded"),
    ({"motion": True, "refine_width": 4096, "refine_layers": 16}, r"parameters exceed the limit 400000000"),
    ({"motion": True, "refine_width": "8", "refine_layers": 3}, r"ModelConfig.refine_width"),
    ({"motion": True, "refine_width": 8, "refine_layers": 17}, r"ModelConfig.refine_layers: 17 outside \[2, 16\]"),
    ({"motion": True, "refine_layers": 3}, r"ModelConfig.refine_layers: 3 without a refiner"),
    ({"motion": True, "refine_coarse": 8}, r"ModelConfig.refine_coarse: 8 without a refiner"),
    ({"motion": True, "refine_width": 8, "refine_layers": 3, "refine_coarse": 5000},
     r"ModelConfig.refine_coarse: 5000 outside \[0, 4096\]"),
    ({"motion": True, "c0": 0}, r"ModelConfig.c0: 0 \(no trunk\) needs a refiner"),
])
def test_a_hostile_refiner_in_the_metadata_is_one_format_error_at_open(tmp_path, refiner, message):
    """The refiner's keys (FORMAT.md 14.4) are checked from the metadata alone, before anything is built: a
    refiner without coded motion, 2 G parameters in a 2 KB file, a width that is not an int, too many layers,
    layers without a width, a half-resolution branch without a refiner or too wide, no trunk and no refiner."""
    p = nc.Pieces()
    p.metadata["model"].update(refiner)
    with pytest.raises(NvcFormatError, match=rf"metadata: model: .*{message}"):
        nvcodec.open(p.write(tmp_path / "refiner.nvc"))


def test_metadata_tile_must_match_the_model_tile(tmp_path):
    """The container's tile and the network's tile are one fact: disagreement is a format error."""
    p = nc.Pieces()
    p.metadata["tile"] = {"width": 16, "height": 32}
    with pytest.raises(NvcFormatError, match=r"tile 16x32 differs from the model's tile 32x32"):
        nvcodec.open(p.write(tmp_path / "tile.nvc"))


def test_a_huge_scale_is_refused_by_the_reader(tmp_path):
    """A scale of 3e38 would decode to overflowed garbage: the reader refuses it (|scale| <= 2^16)."""
    p = nc.Pieces()
    p.tensors[0] = nc.tensor_payload_with_scale(p.tensors[0], 3e38)
    with NvcReader(p.write(tmp_path / "scale.nvc")) as r, pytest.raises(NvcFormatError, match="exceeds 65536"):
        r.verify()


def test_constant_coded_tensors_cost_no_memory_to_verify(tmp_path):
    """A ~2^27-element constant tensor is verified (``info``) without materialising it."""
    p = nc.Pieces()
    p.tensors.append(nc.constant_tensor("x", (BIG,)))
    path = p.write(tmp_path / "const.nvc")
    with NvcReader(path) as r:
        t = [t for t in r.iter_tensors() if t.name == "x"][0]
        assert t.q.shape == (BIG,) and t.q.strides == (0,)
    rc, err, peak = decode_in_subprocess(["info", str(path)], cap_bytes=GIB)
    assert rc == 0, err
    assert peak < 256 << 20


def test_decode_ints_words_are_not_self_checking():
    """The docstring's claim: flipped words of a small uniform-coded array often decode silently to other values."""
    from nvcodec.bitstream import decode_ints

    rng = np.random.default_rng(17)
    q = rng.integers(0, 5, 40).astype(np.int32)
    data = encode_ints(q, 8)
    assert data[0] == 1                                            # the uniform model was chosen
    silent = refused = 0
    for _ in range(300):
        bad = bytearray(data)
        pos = 9 + int(rng.integers(len(data) - 9))
        bad[pos] ^= 1 << int(rng.integers(8))
        try:
            silent += not np.array_equal(decode_ints(bytes(bad), q.size, 8), q)
        except NvcFormatError:
            refused += 1
    assert (silent, refused) == (SILENT, 300 - SILENT)     # the figure decode_ints' docstring quotes


# -- memory: every file of up to 100 KB decodes within 1 GiB ------------------------------


def _worst_case(tmp_path: Path, name: str, knob: str, values) -> Path:
    """The conformance file with ``knob`` of its network raised as far as the memory allowance lets a
    file of its size go (constant-coded weights): the heaviest file of its kind that decodes."""
    from nvcodec.config import ModelConfig

    best = None
    for value in values:
        p = nc.Pieces()
        model = dict(p.metadata["model"], **{knob: value})
        if knob == "tile":
            model.update(tile_h=value, tile_w=value, strides=[])
            p.metadata["tile"] = {"height": value, "width": value}
            model.pop("tile")
        try:
            cfg = ModelConfig.from_json(model)
        except ValueError:
            continue
        p.metadata["model"] = cfg.to_json()
        p.tensors = nc.tiny_network_tensors(p.metadata["model"])
        path = p.write(tmp_path / f"{name}.nvc")
        with NvcReader(path) as r:
            videos = r.metadata["videos"]
        from nvcodec.bitstream import VideoRecord
        entries = [VideoRecord.from_json(v) for v in videos]
        need = decode_memory_bytes(cfg, entries, predict_batch_size(cfg))
        if need <= memory_allowance_bytes(path.stat().st_size):
            best = (value, path.read_bytes(), need)
    value, data, need = best
    path = tmp_path / f"{name}.nvc"
    path.write_bytes(data)
    assert need > 0.6 * memory_allowance_bytes(len(data)), (knob, value, need)    # really near the bound
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["weights", "activations"])
def test_decode_of_the_heaviest_small_file_stays_under_1_gib(tmp_path, kind):
    """The heaviest files the allowance admits (weights-bound, activation-bound) decode under 1 GiB peak RSS."""
    if kind == "weights":
        path = _worst_case(tmp_path, kind, "enc_width", range(256, 4097, 128))
    else:
        path = _worst_case(tmp_path, kind, "tile", range(64, 1025, 32))
    assert path.stat().st_size < 100_000
    rc, err, peak = decode_in_subprocess(["decode", str(path), str(tmp_path / "out")])
    assert rc == 0, err[-2000:]
    assert peak < GIB, f"{peak >> 20} MiB"


@pytest.mark.slow
def test_hostile_small_files_decode_or_fail_in_one_line_under_1_gib(tmp_path):
    """The issue's files (each once ran to GBs or a traceback) fail in one line, well under 1 GiB."""
    for path in (lying_frame_count(tmp_path), lying_frame_count(tmp_path, interval=1), huge_frame(tmp_path),
                 big_network_without_tensors(tmp_path), lying_frame_count(tmp_path, n_frames=161)):
        assert path.stat().st_size < 100_000
        rc, err, peak = decode_in_subprocess(["decode", str(path), str(tmp_path / "out")], cap_bytes=GIB)
        assert rc == 1 and err.startswith("nvcodec: error: ") and err.count("\n") == 1, err[-2000:]
        assert peak < GIB


# -- output names ------------------------------------------------------------------------


def test_output_paths_are_unique_after_every_transformation(tmp_path):
    """Extension swaps, case-only and normalisation-only differences and file/folder clashes all get distinct paths."""
    cafe_nfc, cafe_nfd = "caf\u00e9.mp4", unicodedata.normalize("NFD", "caf\u00e9.mp4")
    names = ["a.mp4", "a.mkv", "a.mp4.mov", "B.mp4", "b.mp4", cafe_nfc, cafe_nfd, "d", "d/e.mp4"]
    for fmt in ("y4m", "png"):
        paths = output_paths(names, tmp_path, fmt)
        rels = [p.relative_to(tmp_path.resolve()).as_posix() for p in paths.values()]
        keys = [unicodedata.normalize("NFKC", r).casefold() for r in rels]
        assert len(set(keys)) == len(names)
        assert not any(a != b and b.startswith(a + "/") for a in keys for b in keys)
    assert output_paths(["x/y.mp4", "z.avi"], tmp_path, "y4m")["x/y.mp4"].name == "y.y4m"
    rels = [p.name for p in output_paths(["a.mp4", "a.mkv", "a.mp4.mov"], tmp_path, "y4m").values()]
    assert rels == ["a.mp4.y4m", "a.mkv.y4m", "a.mp4.mov.y4m"]
    assert output_paths(["d", "d/e.mp4"], tmp_path, "png")["d"].name == "d~0"


def test_three_videos_whose_names_collide_all_reach_the_disk(tmp_path):
    """a.mp4, a.mkv and a.mp4.mov: three output files, each holding its own video's frames."""
    p = nc.Pieces()
    p.metadata["videos"].append(dict(p.metadata["videos"][0]))
    p.segments.append([2, 0, 2, p.segments[0][3]])
    for v, name in zip(p.metadata["videos"], ["a.mp4", "a.mkv", "a.mp4.mov"]):
        v["name"] = name
    path = p.write(tmp_path / "names.nvc")
    report = nvcodec.decode(path, tmp_path / "out")
    assert len(set(report.outputs)) == 3 and report.n_frames == 27
    assert files_in(tmp_path / "out") == ["a.mkv.y4m", "a.mp4.mov.y4m", "a.mp4.y4m"]
    data = {Path(o).name: Path(o).read_bytes() for o in report.outputs}
    assert data["a.mp4.y4m"] == data["a.mp4.mov.y4m"] != data["a.mkv.y4m"]      # videos 0 and 2 share content


def test_a_name_component_at_the_limit_decodes_and_one_over_is_refused(tmp_path):
    """200 bytes per component decode (temporary names are short); 201 bytes are refused by the reader and by scan."""
    from nvcodec.corpus import scan

    p = nc.Pieces()
    p.metadata["videos"][0]["name"] = "x" * 196 + ".mp4"
    report = nvcodec.decode(p.write(tmp_path / "long.nvc"), tmp_path / "out", videos=["x" * 196 + ".mp4"])
    assert Path(report.outputs[0]).name == "x" * 196 + ".y4m"
    p.metadata["videos"][0]["name"] = "x" * 197 + ".mp4"
    with pytest.raises(NvcFormatError, match=r"201 bytes of UTF-8, more than 200"):
        nvcodec.open(p.write(tmp_path / "longer.nvc"))
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SAMPLES / "dog_192x108.mp4", src / ("y" * 197 + ".mp4"))
    with pytest.raises(ValueError, match=r"cannot be stored under its name: .*201 bytes"):
        scan([src], warn=lambda line: None)


# -- ffmpeg, signals, scanning -------------------------------------------------------------


def test_a_file_named_like_an_ffmpeg_protocol_is_read_as_a_file(tmp_path):
    """'concat:foreman.mp4' is a file of its own, not ffmpeg's concat protocol over foreman.mp4."""
    from nvcodec.media import probe

    shutil.copy(SAMPLES / "foreman_176x144.mp4", tmp_path / "foreman.mp4")
    shutil.copy(SAMPLES / "dog_192x108.mp4", tmp_path / "concat:foreman.mp4")
    cwd = os.getcwd()
    os.chdir(tmp_path)                            # a relative name is the dangerous case
    try:
        info = probe("concat:foreman.mp4")
    finally:
        os.chdir(cwd)
    assert (info.width, info.height) == (192, 108)


def test_ffmpeg_failure_is_one_line_and_the_tail_only_with_debug(tmp_path):
    """Garbage keyframe bytes: one 'nvcodec: error:' line; --debug adds ffmpeg's stderr tail."""
    p = nc.Pieces()
    for s in p.segments:
        s[3] = b"\x12\x00" + bytes(range(256)) * 3
    path = p.write(tmp_path / "garbage.nvc")
    result = CliRunner().invoke(cli, ["decode", str(path), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith("nvcodec: error: ") and result.output.count("\n") == 1, result.output
    result = CliRunner().invoke(cli, ["--debug", "decode", str(path), str(tmp_path / "out")])
    assert "--- ffmpeg stderr (tail) ---" in result.output


def test_sigterm_prints_an_nvcodec_line_and_exits_143(tmp_path):
    """SIGTERM while a command runs: 'nvcodec: terminated (SIGTERM)', status 128 + 15."""
    code = ("import os, signal, time\n"
            "import nvcodec.info\n"
            "def slow(path):\n"
            "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)\n"
            "nvcodec.info.describe = slow\n"
            "from nvcodec.cli.main import main\n"
            f"main(['info', {str(nc.CONFORMANCE)!r}])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert proc.stderr.strip() == "nvcodec: terminated (SIGTERM)"


def test_ctrl_c_during_start_up_exits_130_without_aborted(monkeypatch):
    """A KeyboardInterrupt before the API call (imports) gives our line and 130, not click's 'Aborted!'."""
    import nvcodec.cli.main as cli_main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_run", interrupted)
    result = CliRunner().invoke(cli, ["info", str(nc.CONFORMANCE)])
    assert result.exit_code == 130
    assert "Aborted!" not in result.output and "nvcodec: interrupted" in result.output


def test_symlink_loops_are_skipped_with_a_warning(tmp_path):
    """A link loop and a dangling link in a scanned folder each give a warning line, not silence."""
    from nvcodec.corpus import scan

    shutil.copy(SAMPLES / "dog_192x108.mp4", tmp_path / "dog.mp4")
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    lines = []
    videos = scan([tmp_path], warn=lines.append)
    assert [v.name for v in videos] == ["dog.mp4"]
    assert any("loop.mp4: symbolic link loop" in line for line in lines)
    assert any("gone.mp4: broken symbolic link" in line for line in lines)
