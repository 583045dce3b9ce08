"""Keyframes on detected scene cuts, end to end: the encoder places them, the file lists them (KPOS),
the decoder, random access and ``nvcodec info --json`` follow them (FORMAT.md section 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import nvcodec
import nvcodec.encoder
from nvcodec.bitstream import NvcReader
from nvcodec.cli.main import main as cli
from nvcodec.corpus import keyframe_positions
from nvcodec.errors import NvcInputError
from nvcodec.info import describe, format_text
from nvcodec.presets import build_config
from tests.test_codec import moving_pattern, write_video

K = build_config("tiny").keyframe_interval
# three shots of unrelated content: the detector finds cuts at 7 and 16
SHOTS = np.concatenate([moving_pattern(7, 48, 64, seed=11), moving_pattern(9, 48, 64, seed=12),
                        moving_pattern(5, 48, 64, seed=13)])
CUTS = [7, 16]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cut_corpus")
    write_video(root / "shots.mp4", SHOTS, (25, 1))
    write_video(root / "one_frame.mp4", moving_pattern(1, 16, 24, seed=5), (25, 1))
    return root


@pytest.fixture(scope="module")
def floor_files(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("cut_floor")
    files = {}
    for placement in ("cuts", "regular"):
        files[placement] = out / f"{placement}.nvc"
        nvcodec.encode(corpus, files[placement], build_config("tiny", network="none"), keyframes=placement,
                       quiet=True)
    return files


def test_encoder_puts_keyframes_on_detected_cuts_and_info_lists_them(floor_files):
    """Cuts found at 7 and 16: keyframes 6, 7, 15, 16 join the regular rule per shot; info --json lists them."""
    summary = describe(floor_files["cuts"])
    videos = {v["name"]: v for v in summary["videos"]}
    assert videos["shots.mp4"]["keyframes"] == keyframe_positions(len(SHOTS), K, CUTS).tolist()
    assert {6, 7, 15, 16} <= set(videos["shots.mp4"]["keyframes"])
    assert videos["shots.mp4"]["keyframes_rule"] == "listed"
    assert videos["one_frame.mp4"]["keyframes"] == [0] and videos["one_frame.mp4"]["keyframes_rule"] == "regular"
    assert summary["format_version"] == "1.2" and "KPOS" in [c["type"] for c in summary["chunks"]]
    text = format_text(summary)
    assert "on scene cuts (listed per video)" in text
    assert f"shots.mp4: 64x48, 25/1 fps, 21 frames, 0.84 s, {len(videos['shots.mp4']['keyframes'])} keyframes (listed)" in text
    result = CliRunner().invoke(cli, ["info", str(floor_files["cuts"]), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["videos"][1]["keyframes"] == videos["shots.mp4"]["keyframes"]


def test_regular_placement_writes_the_file_as_before(floor_files):
    """--keyframes regular: no KPOS, version 1.1 (motion), the regular keyframes."""
    summary = describe(floor_files["regular"])
    assert summary["format_version"] == "1.1" and "KPOS" not in [c["type"] for c in summary["chunks"]]
    shots = next(v for v in summary["videos"] if v["name"] == "shots.mp4")
    assert shots["keyframes"] == keyframe_positions(len(SHOTS), K).tolist() and shots["keyframes_rule"] == "regular"


def test_keyframes_on_cuts_predict_the_new_shot_better(floor_files):
    """The frames right after a cut come from their own shot's keyframes, so they decode closer."""
    from nvcodec.metrics import psnr_per_frame

    decoded = {}
    for placement, path in floor_files.items():
        with nvcodec.open(path) as nvc:
            decoded[placement] = nvc.read("shots.mp4")
    assert decoded["cuts"].shape == decoded["regular"].shape == SHOTS.shape
    near_cuts = [c + d for c in CUTS for d in (-2, -1, 0, 1, 2)]
    src = np.stack([SHOTS[i] for i in near_cuts])
    cut_psnr = psnr_per_frame(src, decoded["cuts"][near_cuts]).mean()
    regular_psnr = psnr_per_frame(src, decoded["regular"][near_cuts]).mean()
    assert cut_psnr > regular_psnr + 3


def test_random_access_across_a_cut_equals_the_full_decode(floor_files):
    """Any frame range, including ones that straddle a cut, is the slice of a full decode."""
    with nvcodec.open(floor_files["cuts"]) as nvc:
        full = nvc.read("shots.mp4")
        for start, stop in [(5, 9), (6, 7), (7, 8), (14, 18), (15, 21), (0, 21), (20, 21)]:
            assert np.array_equal(nvc.read("shots.mp4", slice(start, stop)), full[start:stop]), (start, stop)


@pytest.mark.parametrize("name, n_frames, cuts", [
    ("all_cuts", 6, [1, 2, 3, 4, 5]),        # every frame a new shot
    ("cut_at_1", 12, [1]),                   # a one-frame first shot
    ("cut_at_last", 12, [11]),               # a one-frame last shot
])
def test_edge_case_cuts_encode_and_decode(tmp_path, monkeypatch, name, n_frames, cuts):
    """Whatever the detector says, the placement, the file and the decoder agree (detector stubbed)."""
    frames = moving_pattern(n_frames, 24, 32, seed=7)
    write_video(tmp_path / "in" / f"{name}.mp4", frames, (25, 1))
    monkeypatch.setattr(nvcodec.encoder, "detect_cuts", lambda _frames: list(cuts))
    out = tmp_path / f"{name}.nvc"
    report = nvcodec.encode(tmp_path / "in", out, build_config("tiny", network="none"), quiet=True)
    expected = keyframe_positions(n_frames, K, cuts)
    assert describe(out)["videos"][0]["keyframes"] == expected.tolist()
    with nvcodec.open(out) as nvc:
        full = nvc.read(0)
        assert len(full) == n_frames
        assert np.array_equal(nvc.read(0, slice(n_frames - 2, n_frames)), full[-2:])
    assert report.psnr > 25


def test_keyframes_option_is_checked_and_parsed(tmp_path):
    """--keyframes takes cuts or regular (default cuts); the API refuses anything else in one line."""
    ctx = cli.commands["encode"].make_context("encode", [str(tmp_path), "out.nvc"])
    assert ctx.params["keyframes"] == "cuts"
    ctx = cli.commands["encode"].make_context("encode", [str(tmp_path), "out.nvc", "--keyframes", "regular"])
    assert ctx.params["keyframes"] == "regular"
    result = CliRunner().invoke(cli, ["encode", ".", "out.nvc", "--keyframes", "every"])
    assert result.exit_code == 2 and "'every' is not one of" in result.output
    with pytest.raises(NvcInputError, match=r"^keyframes must be one of cuts, regular, got 'every'$"):
        nvcodec.encode(tmp_path, tmp_path / "x.nvc", "tiny", keyframes="every")


def test_resume_refuses_a_workdir_left_with_another_placement(corpus, tmp_path, monkeypatch):
    """The placement is part of the resume digest: a work folder of a 'regular' encode is not resumed as 'cuts'."""
    work = tmp_path / "work"

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(nvcodec.encoder, "_code_keyframes", stop)
    with pytest.raises(KeyboardInterrupt):
        nvcodec.encode(corpus, tmp_path / "x.nvc", build_config("tiny", network="none"), keyframes="regular",
                       workdir=work, quiet=True)
    with pytest.raises(NvcInputError, match="holds a different encode"):
        nvcodec.encode(corpus, tmp_path / "x.nvc", build_config("tiny", network="none"), keyframes="cuts",
                       workdir=work, resume=True, quiet=True)


@pytest.mark.slow
def test_network_file_with_cuts_decodes_every_range_like_the_full_video(corpus, tmp_path):
    """The network path (build_clipset / build_clip_range with listed keyframes) decodes clip by clip
    into the same frames as a full decode, across cuts, and keeps its keyframes listed."""
    out = tmp_path / "net.nvc"
    report = nvcodec.encode(corpus, out, build_config("tiny", epochs=1), quiet=True)
    assert describe(out)["videos"][1]["keyframes"] == keyframe_positions(len(SHOTS), K, CUTS).tolist()
    with NvcReader(out) as reader:
        assert reader.version == (1, 2)
    with nvcodec.open(out) as nvc:
        full = nvc.read("shots.mp4")
        assert full.shape == SHOTS.shape
        for start, stop in [(5, 9), (7, 8), (15, 21)]:
            assert np.array_equal(nvc.read("shots.mp4", slice(start, stop)), full[start:stop]), (start, stop)
        from nvcodec.decoder import ClipDataset

        lengths = [len(ClipDataset(out)[i]) for i in range(len(ClipDataset(out)))]
    assert sum(lengths) == len(SHOTS) + 1 and max(lengths) <= K
    assert report.psnr > 20
