"""benchmarks: BD deltas, settings-SEI counting, and a smoke run of the whole RD harness."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import anchors, rd
from benchmarks.bd import bd_compare

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_bd_rate_of_a_curve_at_half_the_rate_is_minus_50_percent():
    """Same PSNR at half the bits everywhere: BD-rate -50 %, overlap = the whole PSNR range."""
    rate, psnr = [0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0]
    bd = bd_compare(rate, psnr, [r / 2 for r in rate], psnr)
    assert bd["bd_rate_percent"] == pytest.approx(-50.0, abs=1e-9)
    assert bd["psnr_interval_db"] == (30.0, 36.0)
    assert bd["overlap_fraction"] == pytest.approx(1.0)


def test_bd_psnr_of_a_curve_shifted_up_is_the_shift():
    """Same rates, +1.5 dB everywhere: BD-PSNR +1.5 dB; the PSNR overlap shrinks to 31.5..36."""
    rate, psnr = [0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0]
    bd = bd_compare(rate, psnr, rate, [p + 1.5 for p in psnr])
    assert bd["bd_psnr_db"] == pytest.approx(1.5, abs=1e-9)
    assert bd["psnr_interval_db"] == (31.5, 36.0)
    assert bd["bd_rate_percent"] < 0


def test_bd_says_so_when_curves_do_not_overlap():
    """Disjoint PSNR ranges: no BD-rate, and the note says the curves do not overlap."""
    bd = bd_compare([0.1, 0.2, 0.4], [30.0, 32.0, 34.0], [1.0, 2.0, 3.0], [40.0, 41.0, 42.0])
    assert bd["bd_rate_percent"] is None and bd["psnr_interval_db"] is None
    assert "do not overlap in PSNR" in bd["note"]


def test_settings_sei_bytes_counts_only_the_nal_with_the_option_string():
    """An Annex B stream: SPS, SEI with the x264 option string, slice -> only the SEI is counted."""
    sps = b"\x00\x00\x00\x01\x67" + b"\x11" * 10
    sei = b"\x00\x00\x01\x06\x05" + b"\x22" * 16 + b"x264 - core 164 - options: cabac=1" + b"\x80"
    sl = b"\x00\x00\x00\x01\x65" + b"\x33" * 50
    assert anchors.settings_sei_bytes(sps + sei + sl) == len(sei)
    assert anchors.settings_sei_bytes(sps + sl) == 0


def test_anchor_command_is_a_raw_elementary_stream_with_tune_psnr():
    """The recorded x264 command: rgb24 from the pipe, explicit fps, -tune psnr, yuv420p, -f h264."""
    cmd = anchors.encode_command("x264-medium", 27, 160, 128, rd.Fraction(30000, 1001), Path("o.264"))
    text = " ".join(cmd)
    for part in ("-f rawvideo", "-pix_fmt rgb24", "-s 160x128", "-framerate 30000/1001", "-i pipe:",
                 "-tune psnr", "-crf 27", "-preset medium", "-pix_fmt yuv420p", "-f h264"):
        assert part in text, part
    with pytest.raises(ValueError, match="unknown anchor"):
        anchors.encode_command("x266-fast", 27, 16, 16, 25, Path("o"))


def smooth_frames(n: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = [np.stack([xx * 3 + 5 * t, yy * 3 + 20, 200 - xx - t], 2) + rng.normal(0, 3, (height, width, 3))
              for t in range(n)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("anchor", ["svtav1-p6", "aom-c6"])
def test_av1_anchor_counts_the_obu_stream_not_the_ivf_framing(anchor, tmp_path):
    """An AV1 anchor writes IVF; its bytes are the file less the 32-byte header and 12 bytes per frame,
    it decodes to the frames' shape at a sane PSNR, and the command is single-threaded with tune PSNR."""
    frames = smooth_frames(4, 64, 64)
    out = tmp_path / "a.ivf"
    res = anchors.code_stream(frames, anchor, 40, rd.Fraction(25), out)
    assert res.n_bytes == out.stat().st_size - 32 - 12 * 4 and res.settings_sei_bytes == 0
    assert res.frames.shape == frames.shape
    mse = np.mean((res.frames.astype(float) - frames) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 30
    text = " ".join(res.command)
    expected = (("-preset 6", "-svtav1-params tune=1:lp=1") if anchor == "svtav1-p6"
                else ("-cpu-used 6", "-tune psnr", "-threads 1", "-b:v 0"))
    for part in ("-f ivf", "-crf 40", "-pix_fmt yuv420p", *expected):
        assert part in text, part
    assert anchors.default_crfs(anchor) == (30, 40, 48, 56, 63)
    assert anchors.default_crfs("x264-medium") == (22, 27, 32, 37, 42)


def test_reuse_points_carries_only_codecs_not_computed_and_refuses_other_frames(tmp_path):
    """Points of codecs this run does not compute come over marked with their origin; a point carried
    twice keeps its first origin; a file of other frames (another hash) is refused."""
    corpus = rd.Corpus(tmp_path, [], {}, {}, "ab" * 32)
    old = {"date_utc": "2026-01-01 00:00:00", "command": "python -m benchmarks.rd --old",
           "corpus": {"frames_sha256": "ab" * 32},
           "commands": {"x264-medium": "ffmpeg x264", "nvcodec": "nvcodec.encode(...)"},
           "points": [{"codec": "x264-medium", "bpp": 0.1}, {"codec": "nvcodec", "bpp": 0.2},
                      {"codec": "nerv", "bpp": 0.3, "reused_from": {"results": "first.json"}}]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    points, commands, origin = rd.reuse_points(path, corpus, {"x264-medium"})
    assert [p["codec"] for p in points] == ["nvcodec", "nerv"]
    assert points[0]["reused_from"]["command"] == "python -m benchmarks.rd --old"
    assert points[1]["reused_from"] == {"results": "first.json"}
    assert commands == {"nvcodec": "nvcodec.encode(...)"}
    assert origin["codecs"] == ["nerv", "nvcodec"] and origin["n_points"] == 2
    other = rd.Corpus(tmp_path, [], {}, {}, "cd" * 32)
    with pytest.raises(SystemExit, match="measured on frames abababab"):
        rd.reuse_points(path, other, set())
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a benchmarks.rd results.json"):
        rd.reuse_points(tmp_path / "bad.json", corpus, set())


def test_reuse_points_keeps_the_nvcodec_points_this_run_does_not_measure_again(tmp_path):
    """Computing nvcodec points carries the earlier nvcodec points of other labels (the floor beside a network)."""
    corpus = rd.Corpus(tmp_path, [], {}, {}, "ab" * 32)
    old = {"corpus": {"frames_sha256": "ab" * 32},
           "points": [{"codec": "nvcodec", "label": "fast:network=none", "bpp": 0.1},
                      {"codec": "nvcodec", "label": "fast:keyframe_quality=40", "bpp": 0.2},
                      {"codec": "x264-medium", "label": "crf27", "bpp": 0.3}]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    points, _, origin = rd.reuse_points(path, corpus, {"nvcodec"}, ["fast:keyframe_quality=40"])
    assert [p["label"] for p in points] == ["fast:network=none", "crf27"]
    assert origin["codecs"] == ["nvcodec", "x264-medium"]


@pytest.mark.slow
def test_smoke_run_of_the_harness_on_two_tiny_clips(tmp_path):
    """The whole harness on two tiny clips: one CRF per anchor, NeRV 'smoke', and nvcodec 'tiny'
    as soon as nvcodec.encode is importable (then its BD-rates must be numbers or say why not)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("foreman_176x144.mp4", "nasa_160x90.mp4"):
        (corpus / name).symlink_to(SAMPLES / name)
    out = tmp_path / "out"
    presets = "tiny" if rd.nvcodec_available() else ""
    # SVT-AV1 refuses frames under 64x64: its anchor is covered by the AV1 test above
    argv = ["--corpus", str(corpus), "--protocol", "native", "--size", "32x24", "--max-frames", "6",
            "--anchors", "x264-medium,x264-veryslow,x265-medium,aom-c6",
            "--crfs", "30", "--nvcodec-presets", presets, "--nerv", "smoke", "--out", str(out)]
    result = rd.main(argv)
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"] == "native"
    assert set(saved["bd_rate"]) == {"x264-medium", "x264-veryslow", "x265-medium", "svtav1-p6", "aom-c6",
                                     "nerv", "nerv-star"}
    assert saved["corpus"]["n_frames"] == 12 and saved["corpus"]["n_videos"] == 2
    codecs = {p["codec"] for p in saved["points"]}
    assert {"x264-medium", "x264-veryslow", "x265-medium", "aom-c6"} <= codecs
    assert {"nerv", "nerv-star"} <= codecs
    assert ("nvcodec" in codecs) == bool(presets)
    if presets:   # one nvcodec point: BD needs two, and the result must say so
        assert all(v is None for v in saved["bd_rate"].values())
        assert all("fewer than two points" in bd["note"] for bd in saved["bd"].values())
    for p in saved["points"]:
        assert p["bpp"] == pytest.approx(8 * p["n_bytes"] / (12 * 32 * 24))
        assert 0 < p["psnr"] < 60 and -1 <= p["ms_ssim"] <= 1
        if p["codec"].startswith("x26"):
            assert p["psnr"] > 20 and p["ms_ssim"] > 0.5
    x264 = next(p for p in saved["points"] if p["codec"] == "x264-medium")
    assert 2 * 600 < x264["settings_sei_bytes"] < 2 * 800        # ~670 bytes in each of 2 streams
    assert "-tune psnr" in saved["commands"]["x264-medium"]
    for name in ("points.csv", "results.md", "rd.png"):
        assert (out / name).stat().st_size > 0
    if presets:   # the bit budget names the point, and its shares add up to the file
        md = (out / "results.md").read_text()
        assert "## Where nvcodec's bits go" in md
        row = next(line for line in md.splitlines() if line.startswith("| tiny |"))
        shares = [float(c.strip().rstrip(" %")) for c in row.split("|")[3:8]]   # keyframes, motion, weights,
        # latents, other
        assert sum(shares) == pytest.approx(100, abs=1.5)
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run resumes from the cache and gives the same points
    again = rd.main(argv)
    assert [p["n_bytes"] for p in again["points"]] == [p["n_bytes"] for p in result["points"]]
    assert np.isclose(again["points"][0]["psnr"], result["points"][0]["psnr"])


def test_reference_check_of_the_reference_itself_is_zero():
    """Points equal to reference.py's x264-medium figures give BD-rate 0 against the reference."""
    from benchmarks.reference import REFERENCE, reference_check

    ref = REFERENCE[("native", 160, 128, 300)]["x264-medium"]
    points = [{"codec": "x264-medium", "params": {"crf": crf}, "bpp": b, "psnr": p} for crf, (b, p) in ref.items()]
    check = reference_check("native", (160, 128), 300, points)
    assert check["x264-medium"]["bd"]["bd_rate_percent"] == pytest.approx(0.0, abs=1e-9)
    assert len(check["x264-medium"]["points"]) == 5
    assert reference_check("native", (64, 48), 300, points) == {}


def test_rate_point_spec_parses_preset_and_integer_settings():
    """'small:keyframe_quality=44:quant_bits=6' names a preset plus encode() settings; unknown keys are refused."""
    from benchmarks.rd import parse_rate_point

    assert parse_rate_point("small") == ("small", {})
    assert parse_rate_point("small:keyframe_quality=44:quant_bits=6") == (
        "small", {"keyframe_quality": 44, "quant_bits": 6})
    with pytest.raises(ValueError, match="expected PRESET"):
        parse_rate_point("small:lr=3")
    assert parse_rate_point("fast:motion=1:c0=4:weight_bpp=0.01:network=dnerv") == (
        "fast", {"motion": True, "c0": 4, "weight_bpp": 0.01, "network": "dnerv"})
    with pytest.raises(ValueError, match="motion='yes' is not a valid value"):
        parse_rate_point("fast:motion=yes")
    preset, settings = parse_rate_point("fast:refine_width=32:refine_layers=5:refine_coarse=24:motion_iters=0")
    assert settings == {"refine_width": 32, "refine_layers": 5, "refine_coarse": 24, "motion_iters": 0}
    from nvcodec.presets import resolve
    resolved = resolve(preset, **settings)
    assert (resolved.refine_width, resolved.refine_layers, resolved.refine_coarse, resolved.motion_iters) == \
        (32, 5, 24, 0)
    preset, settings = parse_rate_point("fast:latent_channels=4:latent_cell=16")
    assert (resolve(preset, **settings).latent_channels, resolve(preset, **settings).latent_cell) == (4, 16)


def test_bd_uses_each_curves_pareto_front_and_says_what_it_dropped():
    """A dominated point (more bits, less PSNR) is left out, not integrated through."""
    from benchmarks.bd import pareto

    rate, psnr = pareto([0.3, 0.1, 0.2, 0.25], [33.0, 30.0, 32.0, 31.0])
    assert list(rate) == [0.1, 0.2, 0.3] and list(psnr) == [30.0, 32.0, 33.0]
    anchor = ([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0])
    clean = bd_compare(*anchor, [0.2, 0.4, 0.8], [30.0, 32.0, 34.0])
    noisy = bd_compare(*anchor, [0.2, 0.4, 0.5, 0.8], [30.0, 32.0, 31.0, 34.0])
    assert noisy["bd_rate_percent"] == pytest.approx(clean["bd_rate_percent"])
    assert "1 dominated point(s) left out" in noisy["note"] and clean["note"] == ""


def test_bit_budget_shares_bits_per_weight_and_network_gain():
    """The bit budget of a point: each part's share of the file (keyframes, motion, weights, per-frame latents),
    bits per weight (the network's alone), the motion floor and the gain over the keyframes alone; points of other
    codecs are not listed."""
    from benchmarks.report import bit_budget

    point = {"codec": "nvcodec", "label": "p", "bpp": 0.1,
             "encode_report": {"bytes_by_part": {"keyframes": 500, "motion": 100, "weights": 250, "latents": 50,
                                                 "metadata": 60, "container": 40},
                               "n_params": 1000, "psnr": 28.5, "blend_psnr": 27.0, "keyframe_psnr": 33.0,
                               "motion_psnr": 28.0}}
    x264 = [{"codec": "x264-medium", "label": f"crf{c}", "bpp": b, "psnr": q}
            for c, b, q in ((37, 0.04, 26.0), (32, 0.08, 29.0), (27, 0.16, 32.0))]
    lines = bit_budget([point, *x264])
    rows = [line for line in lines if line.startswith("| p |")]
    assert len(rows) == 1 and len([line for line in lines if line.startswith("| ")]) == 2   # header + p
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert cells[2:13] == ["50 %", "10 %", "25 %", "5 %", "10.0 %", "2.00", "33.00", "27.00", "28.00", "28.50", "1.50"]
    # keyframes: 50 % of 0.1 bpp; x264 at 27 dB: a third of the way from 0.04 to 0.08 in log rate
    assert cells[13:16] == ["0.0500", f"{0.04 * 2 ** (1 / 3):.4f}", f"{0.04 * 2 ** 0.833333:.4f}"]
    assert cells[16:] == ["", ""]                          # no floor point in the table to set it against
    # outside the anchor's range: no price
    point["encode_report"]["blend_psnr"] = 20.0
    cells = [c.strip() for c in next(line for line in bit_budget([point, *x264])
                                     if line.startswith("| p |")).split("|")[1:-1]]
    assert cells[14] == ""
    assert bit_budget([{"codec": "x264-medium", "label": "crf30", "bpp": 0.1}]) == []


def test_bit_budget_sets_each_network_point_against_the_floor_points_at_its_rate():
    """The floor at a network point's rate is interpolated (log rate) between the table's weightless points;
    the network's gain over it follows, and with two points of each the BD figures."""
    from benchmarks.report import bit_budget

    def point(label, bpp, psnr, weights):
        return {"codec": "nvcodec", "label": label, "bpp": bpp, "psnr": psnr,
                "encode_report": {"bytes_by_part": {"keyframes": 800, "motion": 100, "weights": weights},
                                  "n_params": 10 if weights else 0, "psnr": psnr}}

    points = [point("f1", 0.04, 28.0, 0), point("f2", 0.08, 30.0, 0),
              point("n1", 0.04 * 2 ** 0.5, 29.5, 100), point("n2", 0.1, 31.0, 100)]
    lines = bit_budget(points)
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in lines
             if line.startswith("| ")}
    assert cells["n1"][-2:] == ["29.00", "0.50"]          # halfway in log rate from 28 to 30 dB
    assert cells["n2"][-2:] == ["", ""]                    # beyond the floor's points: not extrapolated
    assert cells["f1"][-2:] == ["", ""]
    assert any(line.startswith("The points with a network against those without") for line in lines)


def test_cache_key_follows_the_code_revision(monkeypatch):
    """A point cached by other code is not reused: the key changes with the source hash."""
    corpus = type("C", (), {"sha256": "f" * 64})()
    revision = rd.code_revision("nvcodec")
    assert len(revision) == 16 and revision == rd.code_revision("nvcodec")
    assert rd.code_revision("x264-medium") != revision
    before = rd._key("nvcodec", {"preset": "fast"}, corpus, 10)
    monkeypatch.setattr(rd, "code_revision", lambda codec: "0" * 16)
    assert rd._key("nvcodec", {"preset": "fast"}, corpus, 10) != before


def test_the_corpus_read_through_the_frame_store_is_the_corpus_read_in_memory(tmp_path):
    """With a cache folder the harness's frames come from a frame store, one video per look-up, and
    are exactly (same frames, same sha256) those read into memory; a second read decodes nothing."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("foreman_176x144.mp4", "nasa_160x90.mp4"):
        (corpus / name).symlink_to(SAMPLES / name)
    in_memory = rd.read_corpus(corpus, "native", (32, 24), 5, None, log=lambda _m: None)
    stored = rd.read_corpus(corpus, "native", (32, 24), 5, tmp_path / "cache", log=lambda _m: None)
    assert isinstance(stored.frames, rd.StoredFrames) and stored.sha256 == in_memory.sha256
    assert (stored.n_frames, stored.n_pixels) == (in_memory.n_frames, in_memory.n_pixels) == (10, 10 * 32 * 24)
    for name in in_memory.names:
        np.testing.assert_array_equal(stored.frames[name], in_memory.frames[name])
    lines = []
    rd.read_corpus(corpus, "native", (32, 24), 5, tmp_path / "cache", log=lines.append)
    assert any("0.0 MiB to decode" in line for line in lines)


def test_measure_takes_decoded_videos_one_at_a_time_in_the_corpus_order(tmp_path):
    """measure() accepts (name, frames) pairs as they are decoded, and refuses them out of order."""
    rng = np.random.default_rng(0)
    frames = {n: rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8) for n in ("a", "b")}
    corpus = rd.Corpus(tmp_path, ["a", "b"], frames, {}, "ab" * 32)
    by_name = rd.measure(corpus, {n: 255 - f for n, f in frames.items()}, ms_ssim_stride=0)
    streamed = rd.measure(corpus, ((n, 255 - frames[n]) for n in ("a", "b")), ms_ssim_stride=0)
    assert streamed == by_name and by_name["psnr"] < 20
    with pytest.raises(ValueError, match="expected 'a', got 'b'"):
        rd.measure(corpus, iter([("b", frames["b"]), ("a", frames["a"])]), ms_ssim_stride=0)
