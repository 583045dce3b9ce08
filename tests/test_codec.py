"""The codec end to end (tiny preset): encode -> .nvc -> open/read/decode, through the API and the CLI."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import nvcodec
from nvcodec.bitstream import NvcFormatError, NvcReader
from nvcodec.cli.main import main as cli
from nvcodec.media import VideoWriter, read_frames
from nvcodec.metrics import psnr_per_frame
from nvcodec.presets import build_config

EPOCHS = 2          # enough to exercise fitting; quality is asserted against the keyframe blend


def moving_pattern(n_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour gradients drifting over time: easy content with real motion."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for t in range(n_frames):
        chans = [127 + 100 * np.sin((x + 2 * t) / (5 + 3 * c) + (y - t) / (7 + 2 * c) + phase[c]) for c in range(3)]
        frames.append(np.stack(chans, axis=-1))
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, "mp4", frames.shape[2], frames.shape[1], *fps, lossless=True) as writer:
        for frame in frames:
            writer.write(frame)


# name -> (n_frames, height, width, fps)
VIDEOS = {
    "odd_37x29.mp4": (9, 29, 37, (25, 1)),
    "sub/one_frame.mp4": (1, 16, 20, (30, 1)),
    "sub/ntsc_48x40.mp4": (12, 40, 48, (30000, 1001)),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for i, (name, (n, h, w, fps)) in enumerate(VIDEOS.items()):
        write_video(root / name, moving_pattern(n, h, w, seed=i), fps)
    (root / "notes.txt").write_text("not a video")
    return root


@pytest.fixture(scope="module")
def encoded(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "corpus.nvc"
    report = nvcodec.encode([corpus], out, build_config("tiny", epochs=EPOCHS), quiet=True)
    return out, report


def test_round_trip_keeps_names_sizes_frame_counts_and_fps(encoded):
    """Every video comes back under its relative name with its size, frame count and exact frame rate."""
    path, _ = encoded
    with nvcodec.open(path) as nvc:
        got = {v.name: (v.n_frames, v.height, v.width, (v.fps_num, v.fps_den)) for v in nvc.videos}
        assert got == VIDEOS
        for v in nvc.videos:
            frames = nvc.read(v.name)
            assert frames.shape == (v.n_frames, v.height, v.width, 3) and frames.dtype == np.uint8


def test_report_rate_is_the_file_size_over_the_pixels(encoded):
    """bpp = 8 x file bytes / sum(frames x width x height); the parts add up to the file."""
    path, report = encoded
    n_pixels = sum(n * h * w for n, h, w, _ in VIDEOS.values())
    assert report.n_bytes == path.stat().st_size
    assert report.n_pixels == n_pixels
    assert report.bpp == pytest.approx(8 * path.stat().st_size / n_pixels)
    assert sum(report.bytes_by_part.values()) == report.n_bytes
    assert report.n_videos == 3 and report.n_frames == sum(v[0] for v in VIDEOS.values())


def test_report_psnr_is_measured_on_the_decoded_file_and_beats_a_floor(encoded, corpus):
    """The reported PSNR is that of the decoded frames, above 25 dB and not below the keyframe blend by > 1 dB."""
    path, report = encoded
    scores = []
    with nvcodec.open(path) as nvc:
        for v in nvc.videos:
            ref = np.stack(list(read_frames(corpus / v.name)))
            scores.append(psnr_per_frame(ref, nvc.read(v.name)))
    assert report.psnr == pytest.approx(float(np.mean(np.concatenate(scores))), abs=1e-6)
    assert report.psnr > 25.0
    assert report.psnr > report.blend_psnr - 1.0


@pytest.mark.parametrize("frames", [slice(0, 1), slice(3, 7), slice(7, 12), slice(11, None), slice(5, 5)])
def test_frame_range_equals_the_slice_of_a_full_decode(encoded, frames):
    """read(video, A:B) gives exactly the frames A..B-1 of the whole video, clip boundaries included."""
    path, _ = encoded
    with nvcodec.open(path) as nvc:
        full = nvc.read("sub/ntsc_48x40.mp4")
        np.testing.assert_array_equal(nvc.read("sub/ntsc_48x40.mp4", frames), full[frames])


def test_decode_writes_each_video_under_its_name(encoded, tmp_path):
    """decode() writes y4m files named after the videos, which read back as the same frames."""
    path, _ = encoded
    report = nvcodec.decode(path, tmp_path / "out")
    assert sorted(Path(p).relative_to(tmp_path / "out").as_posix() for p in report.outputs) == [
        "odd_37x29.y4m", "sub/ntsc_48x40.y4m", "sub/one_frame.y4m"]
    with nvcodec.open(path) as nvc:
        expected = nvc.read("odd_37x29.mp4")
    y4m = tmp_path / "out" / "odd_37x29.y4m"
    assert y4m.read_bytes().startswith(b"YUV4MPEG2 W37 H29 F25:1")
    back = np.stack(list(read_frames(y4m)))
    assert back.shape == expected.shape
    assert psnr_per_frame(expected, back).min() > 40      # y4m is 4:4:4 8-bit YCbCr: near-lossless


def test_existing_output_is_refused_without_force(encoded, corpus):
    path, _ = encoded
    with pytest.raises(ValueError, match="exists; pass --force"):
        nvcodec.encode([corpus], path, build_config("tiny", epochs=1), quiet=True)


def test_output_in_a_missing_folder_is_refused_before_any_work(corpus, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        nvcodec.encode([corpus], tmp_path / "no" / "x.nvc", build_config("tiny", epochs=1), quiet=True)


def test_interrupted_encode_resumes_to_the_same_file(corpus, tmp_path, monkeypatch):
    """A fit killed after a checkpoint resumes from the work folder and writes the identical file."""
    import nvcodec.fit as fit_module

    inputs = [corpus / "odd_37x29.mp4"]
    straight = tmp_path / "straight.nvc"
    nvcodec.encode(inputs, straight, build_config("tiny", epochs=EPOCHS), quiet=True)

    real_fit = fit_module.fit

    def killed_fit(*args, **kwargs):
        real_fit(*args, stop_after=3, **kwargs)       # checkpoints, then stops, as on SIGINT
        raise KeyboardInterrupt

    resumed = tmp_path / "resumed.nvc"
    monkeypatch.setattr(fit_module, "fit", killed_fit)
    with pytest.raises(KeyboardInterrupt):
        nvcodec.encode(inputs, resumed, build_config("tiny", epochs=EPOCHS), quiet=True)
    assert not resumed.exists()
    workdir = Path(str(resumed) + ".work")
    assert (workdir / fit_module.CHECKPOINT_NAME).exists()
    monkeypatch.setattr(fit_module, "fit", real_fit)
    with pytest.raises(ValueError, match="--resume"):
        nvcodec.encode(inputs, resumed, build_config("tiny", epochs=EPOCHS), quiet=True)
    nvcodec.encode(inputs, resumed, build_config("tiny", epochs=EPOCHS), quiet=True, resume=True)
    assert resumed.read_bytes() == straight.read_bytes()
    assert not workdir.exists()


def test_resume_refuses_a_workdir_of_another_encode(corpus, tmp_path, monkeypatch):
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "encode.json").write_text(json.dumps({"digest": "something else"}))
    with pytest.raises(ValueError, match="holds a different encode"):
        nvcodec.encode([corpus / "odd_37x29.mp4"], tmp_path / "x.nvc", build_config("tiny", epochs=1),
                       quiet=True, workdir=workdir, resume=True)


# -- the command line ---------------------------------------------------------------------


def test_cli_encode_info_decode(corpus, tmp_path):
    """The README's commands: encode a folder, info, decode one video's frame range as png."""
    runner = CliRunner()
    out = tmp_path / "c.nvc"
    result = runner.invoke(cli, ["encode", str(corpus / "sub"), str(out), "--preset", "tiny",
                                 "--epochs", "1", "--max-frames", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "bpp" in result.output and "PSNR" in result.output
    info = runner.invoke(cli, ["info", str(out), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.output)
    assert [v["name"] for v in summary["videos"]] == ["ntsc_48x40.mp4", "one_frame.mp4"]
    assert [v["n_frames"] for v in summary["videos"]] == [5, 1]
    assert summary["n_bytes"] == out.stat().st_size
    dec = runner.invoke(cli, ["decode", str(out), str(tmp_path / "png"), "--video", "ntsc_48x40.mp4",
                              "--frames", "1:4", "--format", "png"])
    assert dec.exit_code == 0, dec.output
    assert sorted(p.name for p in (tmp_path / "png" / "ntsc_48x40").iterdir()) == [
        "frame_000001.png", "frame_000002.png", "frame_000003.png"]


def test_cli_reports_a_corrupt_file_in_one_line(encoded, tmp_path):
    """A damaged .nvc gives 'nvcodec: error: ...', exit status 1, no traceback."""
    path, _ = encoded
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.nvc"
    bad.write_bytes(bytes(data))
    for args in (["info", str(bad)], ["decode", str(bad), str(tmp_path / "o")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert result.output.startswith("nvcodec: error: ")
        assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.y4m"))


def test_cli_reports_an_unusable_work_folder_as_a_user_error(corpus, tmp_path):
    """--workdir under a regular file (an OSError at the user's path): one 'nvcodec: error:' line, exit 1."""
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    result = CliRunner().invoke(cli, ["encode", str(corpus), str(tmp_path / "x.nvc"), "--preset", "tiny",
                                      "--epochs", "1", "--quiet", "--workdir", str(blocker / "work")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"nvcodec: error: cannot use the work folder {blocker / 'work'}: ")
    assert "internal error" not in result.output and "Traceback" not in result.output


def test_an_unwritable_output_is_a_user_error(corpus, tmp_path, monkeypatch):
    """An OSError while writing the output (disk full, say) is NvcInputError naming the path, not a bug."""
    import errno

    import nvcodec.encoder as encoder_module

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(encoder_module, "write_nvc", full_disk)
    out = tmp_path / "x.nvc"
    with pytest.raises(nvcodec.NvcInputError, match=f"cannot write {out}: No space left on device"):
        nvcodec.encode([corpus / "odd_37x29.mp4"], out, build_config("tiny", epochs=1), quiet=True)


def test_cli_builds_the_config_from_its_flags_and_refuses_contradictions(tmp_path):
    """--network none --target-bpp with --keyframe-quality is one user error line, before any video is read."""
    result = CliRunner().invoke(cli, ["encode", str(tmp_path), str(tmp_path / "x.nvc"), "--target-bpp", "0.1",
                                      "--keyframe-quality", "20", "--network", "none"])
    assert result.exit_code == 1
    assert result.output.startswith("nvcodec: error: --network none: give either --target-bpp or --keyframe-quality")


def test_cli_usage_errors_exit_2():
    runner = CliRunner()
    assert runner.invoke(cli, ["encode", "nope-does-not-exist", "x.nvc"]).exit_code == 2
    assert runner.invoke(cli, ["decode", "--frames", "a:b", "x", "y"]).exit_code == 2
    assert runner.invoke(cli, ["encode", ".", "x.nvc", "--size", "160by128"]).exit_code == 2


def test_cli_option_parsing_alone(tmp_path):
    """--size, --fps and --frames parse into the API's types."""
    from nvcodec.cli.main import decode, encode

    ctx = encode.make_context("encode", [str(tmp_path), "b.nvc", "--size", "160x128", "--fps", "30000/1001"])
    assert ctx.params["size"] == (160, 128) and ctx.params["fps"] == Fraction(30000, 1001)
    (tmp_path / "a.nvc").write_bytes(b"")
    ctx = decode.make_context("decode", [str(tmp_path / "a.nvc"), "-", "--frames", "8:"])
    assert ctx.params["frames"] == slice(8, None)


def test_hostile_video_name_writes_nothing_outside_outdir(encoded, tmp_path):
    """A file whose metadata names '../escape' is refused before anything is written."""
    from test_bitstream_container import parse_chunks, replace_meta
    import zstandard

    path, _ = encoded
    data = path.read_bytes()
    _, chunks = parse_chunks(data)
    meta = json.loads(zstandard.ZstdDecompressor().decompress(dict(chunks)[b"META"]))
    meta["videos"][0]["name"] = "../escape.mp4"
    hostile = tmp_path / "deep" / "hostile.nvc"
    hostile.parent.mkdir()
    hostile.write_bytes(replace_meta(data, json.dumps(meta).encode()))
    outdir = tmp_path / "deep" / "out"
    result = CliRunner().invoke(cli, ["decode", str(hostile), str(outdir)])
    assert result.exit_code == 1 and "nvcodec: error: " in result.output
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["hostile.nvc"]
    with pytest.raises(NvcFormatError, match="escape"):
        nvcodec.open(hostile)


def test_output_paths_stay_inside_outdir_even_without_the_container_check(tmp_path):
    """The decoder's own check (second line of defence) refuses names that resolve outside."""
    from nvcodec.decoder import output_paths

    with pytest.raises(NvcFormatError, match="outside the output folder"):
        output_paths(["a/../../x.mp4"], tmp_path, "y4m")
    paths = output_paths(["a.mp4", "a.mkv", "b/c.avi"], tmp_path, "y4m")
    assert [p.relative_to(tmp_path.resolve()).as_posix() for p in paths.values()] == [
        "a.mp4.y4m", "a.mkv.y4m", "b/c.y4m"]


def test_clip_dataset_yields_clips_of_the_file(encoded):
    """ClipDataset items are the clips of each video, equal to reading those frames."""
    path, _ = encoded
    ds = nvcodec.ClipDataset(path)
    expected = sum(math.ceil(n / 8) for n, *_ in VIDEOS.values())
    assert len(ds) == expected
    item = ds[0]
    assert item.shape[1] == 3 and item.dtype.is_floating_point is False
    with nvcodec.open(path) as nvc:
        v, start, stop = ds.items[0]
        np.testing.assert_array_equal(item.permute(0, 2, 3, 1).numpy(), nvc.read(v, slice(start, stop)))


def test_rate_plan_splits_the_budget_and_bisects_the_quality():
    """plan_rate gives keyframes the best quality within their share, weights the rest."""
    from nvcodec.rate import OVERHEAD_BYTES, plan_rate

    calls = []

    def kf_bytes(q):                       # bytes halve every 6 quality steps, like a CRF scale
        calls.append(q)
        return int(100_000 * 2 ** (-q / 6))

    plan = plan_rate(1.0, 1_000_000, kf_bytes, (0, 63))
    budget = 1_000_000 - 8 * OVERHEAD_BYTES
    assert 8 * plan.keyframe_bytes <= budget / 2 < 8 * kf_bytes(plan.keyframe_quality - 1)
    assert plan.weight_bpp == pytest.approx((budget - 8 * plan.keyframe_bytes) / 1_000_000)
    assert len(set(calls)) <= 8
    with pytest.raises(ValueError, match="too low for this corpus"):
        plan_rate(0.001, 1_000_000, kf_bytes, (0, 63))


@pytest.mark.slow
def test_target_bpp_lands_near_the_target(tmp_path):
    """--target-bpp: the written file's rate is within 15 % of the target on a real clip, at the keyframe
    quality the balance of keyframes and a pilot's weights chose."""
    sample = Path(__file__).parents[1] / "samples" / "foreman_176x144.mp4"
    lines = []
    report = nvcodec.encode([sample], tmp_path / "t.nvc", build_config("tiny", epochs=1, target_bpp=1.0),
                            max_frames=16, log=lines.append)
    assert report.bpp == pytest.approx(1.0, rel=0.15)
    assert any(line.startswith("  pilot: ") for line in lines)
    with NvcReader(tmp_path / "t.nvc") as reader:
        chosen = reader.metadata["keyframe_codec"]["params"]["quality"]
    assert any(line.startswith(f"rate plan for 1 bpp: keyframe quality {chosen} ") for line in lines)
    assert any(line.startswith(f"  keyframe quality {chosen}: ") for line in lines)     # priced, not guessed
    with pytest.raises(ValueError, match="either --target-bpp or --keyframe-quality"):
        build_config("fast", target_bpp=1.0, keyframe_quality=20, network="none")


@pytest.mark.slow
def test_target_bpp_with_motion_holds_every_candidates_keyframes_in_the_store(tmp_path, monkeypatch):
    """--target-bpp for a network that consumes coded motion: the plan's candidates' decoded and warped
    keyframes go through the frame store (not held in memory), and the file lands near the target."""
    from nvcodec.store import FrameStore

    held = {"keyframes": 0, "warped": 0}
    for kind in held:
        original = getattr(FrameStore, f"hold_{kind}")

        def spy(self, v, array, _kind=kind, _original=original):
            held[_kind] += 1
            return _original(self, v, array)

        monkeypatch.setattr(FrameStore, f"hold_{kind}", spy)
    sample = Path(__file__).parents[1] / "samples" / "foreman_176x144.mp4"
    lines = []
    report = nvcodec.encode([sample], tmp_path / "m.nvc", build_config("tiny", epochs=1, target_bpp=1.0, motion=True),
                            max_frames=16, log=lines.append, workdir=tmp_path / "w")
    assert report.bpp == pytest.approx(1.0, rel=0.15)
    # the plan allocated the motion it reserved bytes for at least once; the file's motion was allocated at the
    # quality the plan chose: by the plan's last round (the encoder takes it) or by the encoder
    allocated = re.findall(r"^  coded motion at keyframe quality (\d+): ", "\n".join(lines), re.M)
    chosen = re.search(r"^rate plan for 1 bpp: keyframe quality (\d+) ", "\n".join(lines), re.M).group(1)
    taken = any(line.startswith("motion: the rate plan's, allocated at this quality") for line in lines)
    again = [line for line in lines if line.startswith("motion: keyframe slope measured at quality ")]
    assert allocated and taken == (allocated[-1] == chosen) and taken != bool(again)
    assert taken or again[0].startswith(f"motion: keyframe slope measured at quality {chosen} ")
    balanced = [line for line in lines if line.startswith("  keyframe quality ")]
    assert balanced and len(balanced) == len(set(balanced))          # each quality's balance said once
    # the final encode holds one video's keyframes and warped keyframes once; the plan's decodes more
    assert held["keyframes"] >= 2 and held["warped"] >= 1
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_torchrun_two_ranks_write_one_file(tmp_path):
    """`torchrun --nproc_per_node 2 --no-python nvcodec encode ... --device cpu --motion --motion-iters 2` (gloo)
    writes one file, from rank 0 (which alone moves the motion through the network); both ranks hold their
    keyframes and warped keyframes in the one frame store, which goes."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    nvcodec_cmd = shutil.which("nvcodec") or str(Path(sys.executable).with_name("nvcodec"))
    sample = Path(__file__).parents[1] / "samples" / "dog_192x108.mp4"
    out = tmp_path / "ddp.nvc"
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "--no-python", nvcodec_cmd, "encode", str(sample),
         str(out), "--device", "cpu", "--preset", "tiny", "--epochs", "1", "--max-frames", "9", "--motion",
         "--motion-iters", "2"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.nvc"]
    with nvcodec.open(out) as nvc:
        assert nvc.read(0).shape == (9, 108, 192, 3)


# -- the first hour: what the CLI prints and writes --------------------------------


def test_cli_encode_json_prints_only_json_and_info_shows_the_measured_psnr(corpus, tmp_path):
    """encode --json: stdout is the JSON alone (progress on stderr); info shows the stored decoded PSNR."""
    runner = CliRunner()
    out = tmp_path / "j.nvc"
    result = runner.invoke(cli, ["encode", str(corpus / "sub"), str(out), "--preset", "tiny",
                                 "--epochs", "1", "--max-frames", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "keyframes:" in result.stderr and "keyframes:" not in result.stdout
    assert report["n_bytes"] == out.stat().st_size
    summary = json.loads(runner.invoke(cli, ["info", str(out), "--json"]).stdout)
    assert summary["quality"] == {"psnr": round(report["psnr"], 4), "blend_psnr": round(report["blend_psnr"], 4),
                                  "keyframe_psnr": round(report["keyframe_psnr"], 4),
                                  "motion_psnr": round(report["motion_psnr"], 4), "n_frames": 6, "n_keyframes": 3}
    text = runner.invoke(cli, ["info", str(out)]).stdout
    assert f"PSNR {report['psnr']:.2f} dB decoded, mean over 6 frames" in text
    assert (f"floors on the same frames: motion floor {report['motion_psnr']:.2f} dB, "
            f"keyframe blend {report['blend_psnr']:.2f} dB;") in text


def test_info_of_a_file_without_stored_quality_says_nothing_of_it():
    """Files written before the qual chunk (the conformance file) still describe: quality None."""
    from nvcodec.info import describe, format_text

    summary = describe(Path(__file__).parent / "data" / "conformance" / "tiny.nvc")
    assert summary["quality"] is None
    assert "dB decoded" not in format_text(summary)


def test_encode_summary_gives_one_decoded_psnr_and_the_floor_on_the_same_frames(corpus, tmp_path):
    result = CliRunner().invoke(cli, ["encode", str(corpus / "sub"), str(tmp_path / "s.nvc"), "--preset", "tiny",
                                      "--epochs", "1", "--max-frames", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    [line] = [ln for ln in result.stdout.splitlines() if "PSNR" in ln]
    assert "dB decoded, mean over the 6 frames (floors on the same frames: motion floor " in line
    assert "keyframe blend" in line


@pytest.mark.parametrize("frames", ["12:14", "10:13", "12:"])
def test_decode_range_past_the_end_is_an_error_naming_the_length(encoded, tmp_path, frames):
    """--frames beyond a 12-frame video: exit 1, the message names the video and its 12 frames; nothing written."""
    path, _ = encoded
    result = CliRunner().invoke(cli, ["decode", str(path), str(tmp_path / "o"), "--video", "sub/ntsc_48x40.mp4",
                                      "--frames", frames])
    assert result.exit_code == 1
    assert "'sub/ntsc_48x40.mp4', which has 12 frame(s)" in result.stderr
    assert not (tmp_path / "o").exists()


def test_decode_png_files_are_named_by_frame_index(encoded, tmp_path):
    """--frames 9:11 --format png: frame_000009.png and frame_000010.png, holding frames 9 and 10."""
    path, _ = encoded
    result = CliRunner().invoke(cli, ["decode", str(path), str(tmp_path), "--video", "sub/ntsc_48x40.mp4",
                                      "--frames", "9:11", "--format", "png", "-q"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sub" / "ntsc_48x40"
    assert sorted(p.name for p in folder.iterdir()) == ["frame_000009.png", "frame_000010.png"]
    with nvcodec.open(path) as nvc:
        np.testing.assert_array_equal(next(read_frames(folder / "frame_000010.png")),
                                      nvc.read("sub/ntsc_48x40.mp4", slice(10, 11))[0])


def test_decode_refuses_existing_outputs_unless_force(encoded, tmp_path):
    """As encode does: a second decode into the same folder is refused, --force replaces the outputs."""
    path, _ = encoded
    args = ["decode", str(path), str(tmp_path), "--video", "odd_37x29.mp4", "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    (tmp_path / "odd_37x29.y4m").write_bytes(b"not a decode")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "odd_37x29.y4m exists; pass --force to overwrite" in result.stderr
    assert (tmp_path / "odd_37x29.y4m").read_bytes() == b"not a decode"
    assert CliRunner().invoke(cli, args + ["--force"]).exit_code == 0
    assert (tmp_path / "odd_37x29.y4m").read_bytes().startswith(b"YUV4MPEG2 W37 H29")


def test_decode_progress_bar_has_a_total_and_one_colon():
    """The bar reads 'name:  50%|...| 4/8 ...', not 'name: : 4frame'."""
    import io

    from nvcodec.cli.main import progress_bar

    out = io.StringIO()
    with progress_bar(disable=False, file=out) as progress:
        progress("dog_192x108.mp4", 4, 8)
    text = out.getvalue()
    assert "dog_192x108.mp4:" in text and "4/8" in text and ": :" not in text


def test_decode_mp4_is_yuv420p_by_default_and_lossless_on_request(encoded, tmp_path):
    from nvcodec.media import probe

    path, _ = encoded
    args = ["decode", str(path), "--video", "odd_37x29.mp4", "--format", "mp4", "-q"]
    assert CliRunner().invoke(cli, args[:2] + [str(tmp_path / "a")] + args[2:]).exit_code == 0
    info = probe(tmp_path / "a" / "odd_37x29.mp4")
    assert (info.pix_fmt, info.width, info.height) == ("yuv420p", 38, 30)      # odd sizes padded to even
    assert CliRunner().invoke(cli, args[:2] + [str(tmp_path / "b")] + args[2:] + ["--lossless"]).exit_code == 0
    with nvcodec.open(path) as nvc:
        np.testing.assert_array_equal(np.stack(list(read_frames(tmp_path / "b" / "odd_37x29.mp4"))),
                                      nvc.read("odd_37x29.mp4"))
    assert CliRunner().invoke(cli, ["decode", str(path), str(tmp_path / "c"), "--lossless"]).exit_code == 2
