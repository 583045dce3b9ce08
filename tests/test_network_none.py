"""``--network none``: a file that is the motion floor (keyframes + coded motion, no weights), end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import nvcodec
from nvcodec.bitstream import NvcReader
from nvcodec.cli.main import main as cli
from nvcodec.corpus import keyframe_positions
from nvcodec.errors import NvcInputError
from nvcodec.media import read_frames
from nvcodec.metrics import blend_psnr, psnr_per_frame
from nvcodec.presets import build_config
from tests.test_codec import moving_pattern, write_video

# name -> frames (n_frames, height, width, 3): moving content, a static video, a one-frame video
VIDEOS = {
    "moving_64x48.mp4": moving_pattern(18, 48, 64, seed=3),
    "static_40x24.mp4": np.repeat(moving_pattern(1, 24, 40, seed=4), 11, axis=0),
    "one_frame_24x16.mp4": moving_pattern(1, 16, 24, seed=5),
}


def test_build_config_validates_network():
    """network is one of NETWORKS, and 'none' refuses the options that quantize weights."""
    assert build_config("tiny").network == "dnerv"
    assert build_config("tiny", network="none").network == "none"
    with pytest.raises(NvcInputError, match=r"EncodeConfig.network: 'nerv' is not one of dnerv, none"):
        build_config("tiny", network="nerv")
    with pytest.raises(NvcInputError, match="--network none has no weights"):
        build_config("tiny", network="none", rate_lambda=0.01)
    with pytest.raises(NvcInputError, match="--network none has no weights"):
        build_config("tiny", network="none", quant_bits=6)
    assert build_config("tiny", network="none", target_bpp=0.05).quantization.target_bpp == 0.05


def test_cli_network_option_parses_to_the_config_field(tmp_path):
    """--network takes the names of NETWORKS and nothing else."""
    ctx = cli.commands["encode"].make_context("encode", [str(tmp_path), "out.nvc", "--network", "none"])
    assert ctx.params["network"] == "none"
    result = CliRunner().invoke(cli, ["encode", ".", "out.nvc", "--network", "nerv"])
    assert result.exit_code == 2 and "'nerv' is not one of" in result.output


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("floor_corpus")
    for name, frames in VIDEOS.items():
        write_video(root / name, frames, (25, 1))
    return root


@pytest.fixture(scope="module")
def floor_file(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("floor") / "floor.nvc"
    report = nvcodec.encode(corpus, out, build_config("tiny", network="none"), quiet=True)
    return out, report


@pytest.mark.slow
def test_network_none_writes_version_1_1_with_motion_and_no_weights(floor_file):
    """The file: version 1.1, one MOTN per video, no TENS, metadata model {}; the report says 0 weights."""
    path, report = floor_file
    with NvcReader(path) as reader:
        assert reader.version == (1, 1)
        types = [t for t, _, _ in reader.chunks()]
        assert types.count("MOTN") == len(VIDEOS) and "TENS" not in types
        assert reader.metadata["model"] == {}
        assert reader.byte_breakdown()["motion"] > 0 and reader.byte_breakdown()["weights"] == 0
    assert report.n_params == 0 and report.bytes_by_part["weights"] == 0
    assert report.n_bytes == path.stat().st_size


@pytest.mark.slow
def test_network_none_decodes_at_least_the_blend_floor_on_the_same_frames(floor_file, corpus):
    """Decoded PSNR (mean over every frame) >= the keyframe blend's, recomputed here from the file's keyframes."""
    path, report = floor_file
    refs, decoded, dec_kf = [], [], []
    with nvcodec.open(path) as nvc:
        for entry in nvc.videos:
            ref = np.stack(list(read_frames(corpus / entry.name)))
            out = nvc.read(entry.name)
            assert out.shape == ref.shape
            refs.append(ref)
            decoded.append(out)
            dec_kf.append(out[keyframe_positions(len(out), 8)])     # the floor decodes keyframes as coded
    psnr = float(np.mean(np.concatenate([psnr_per_frame(r, d) for r, d in zip(refs, decoded)])))
    assert psnr == pytest.approx(report.psnr, abs=1e-6)
    assert report.motion_psnr == report.psnr
    assert report.blend_psnr == pytest.approx(blend_psnr(refs, dec_kf, 8), abs=1e-6)
    assert psnr >= report.blend_psnr
    static = decoded[list(VIDEOS).index("static_40x24.mp4")]
    assert (static == static[0]).all()          # zero motion, one keyframe picture: every frame the same


@pytest.mark.slow
def test_network_none_random_access_matches_the_full_decode(floor_file):
    """read(video, frames) of any range equals that slice of the full decode."""
    path, _ = floor_file
    with nvcodec.open(path) as nvc:
        full = nvc.read("moving_64x48.mp4")
        for a, b in [(0, 1), (3, 11), (8, 9), (9, 18), (17, 18)]:
            np.testing.assert_array_equal(nvc.read("moving_64x48.mp4", slice(a, b)), full[a:b])


@pytest.mark.slow
def test_network_none_cli_summary_and_info_name_the_motion_floor(corpus, tmp_path):
    """encode prints 0 weights and the motion floor; info shows motion bytes and no 'model:' line."""
    runner = CliRunner()
    out = tmp_path / "c.nvc"
    result = runner.invoke(cli, ["encode", str(corpus), str(out), "--preset", "tiny", "--network", "none",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert "0 weights" in result.stdout and "this file is the motion floor" in result.stdout
    text = runner.invoke(cli, ["info", str(out)]).stdout
    assert "model:" not in text and "tile:" not in text
    assert "no network: decoded keyframes warped by coded motion (" in text
    decoded = runner.invoke(cli, ["decode", str(out), str(tmp_path / "dec"), "--video", "moving_64x48.mp4",
                                     "--frames", "2:5", "--quiet"])
    assert decoded.exit_code == 0, decoded.output
    assert len(list(read_frames(tmp_path / "dec" / "moving_64x48.y4m"))) == 3


@pytest.mark.slow
def test_resume_refuses_a_work_folder_left_by_another_network_setting(corpus, tmp_path, monkeypatch):
    """A work folder left by a --network none encode is not resumed by a network encode, but is by the same one."""
    import nvcodec.encoder

    out = tmp_path / "r.nvc"
    config = build_config("tiny", network="none")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(nvcodec.encoder, "write_nvc", interrupted)
        with pytest.raises(KeyboardInterrupt):
            nvcodec.encode(corpus, out, config, quiet=True)
    assert (tmp_path / "r.nvc.work" / "encode.json").exists()
    with pytest.raises(NvcInputError, match="holds a different encode"):
        nvcodec.encode(corpus, out, build_config("tiny"), quiet=True, resume=True)
    report = nvcodec.encode(corpus, out, config, quiet=True, resume=True)
    assert report.n_params == 0 and out.exists()


def test_plan_floor_target_fits_keyframes_and_the_motion_chosen_for_them():
    """The plan reserves the motion chosen at the finest fitting quality, searches the quality with that
    reserve, and steps coarser while the motion chosen there does not fit; too low a target is refused."""
    from nvcodec.keyframes import KeyframeCodec
    from nvcodec.rate import OVERHEAD_BYTES, MotionAllocation, plan_floor_target

    def kf_bytes(codec):                              # halves every 6 quality steps, like a CRF scale
        return int(200_000 * 2 ** (-codec.quality / 6))

    allocated = []

    def allocate(motion_bytes):
        def run(codec):
            allocated.append(codec.quality)
            return MotionAllocation([], 0.0, codec.quality + 4, []), motion_bytes(codec.quality)
        return run

    target, n_pixels = 0.5, 1_000_000
    budget = target * n_pixels / 8 - OVERHEAD_BYTES
    codec, _ = plan_floor_target(target, n_pixels, KeyframeCodec(quality=30), kf_bytes,
                                 allocate(lambda q: 20_000 - 200 * q), lambda _m: None)
    q = codec.quality
    assert kf_bytes(codec) + 20_000 - 200 * q <= budget < kf_bytes(KeyframeCodec(quality=q - 1)) + 20_000 - 200 * q
    assert len(allocated) == 2 and allocated[1] == q > allocated[0]
    # motion that grows as the quality coarsens (it does not by much, measured): the plan steps on until it fits
    allocated.clear()
    codec, _ = plan_floor_target(target, n_pixels, KeyframeCodec(quality=30), kf_bytes,
                                 allocate(lambda q: 10_000 + 1_500 * (q - 11)), lambda _m: None)
    assert allocated == [11, 12, 13] and codec.quality == 13
    assert kf_bytes(codec) + 10_000 + 1_500 * 2 <= budget
    with pytest.raises(NvcInputError, match="too low for this corpus"):
        plan_floor_target(0.0001, n_pixels, KeyframeCodec(quality=30), kf_bytes, allocate(lambda q: 0),
                          lambda _m: None)


@pytest.mark.slow
def test_network_none_target_bpp_lands_at_or_under_the_target(tmp_path):
    """--network none --target-bpp: the written file is at or under the target, and a larger target buys
    finer keyframes and a higher PSNR."""
    write_video(tmp_path / "moving.mp4", moving_pattern(10, 32, 48, seed=3), (25, 1))
    results = {}
    for target in (1.4, 2.5):          # 2048 bytes (1.07 bpp here) go to a generous overhead bound
        out = tmp_path / f"t{target}.nvc"
        report = nvcodec.encode([tmp_path / "moving.mp4"], out, build_config("tiny", network="none", target_bpp=target),
                                quiet=True)
        assert report.bpp <= target
        with NvcReader(out) as reader:
            results[target] = (report, reader.metadata["keyframe_codec"]["params"]["quality"])
    (low, q_low), (high, q_high) = results[1.4], results[2.5]
    assert q_high < q_low and high.psnr > low.psnr and high.bpp > low.bpp
