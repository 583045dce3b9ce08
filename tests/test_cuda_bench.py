"""benchmarks.cuda_bench: the GPU kit's bench runs on CPU at toy size, and its plan sizes RD points."""

import json
from pathlib import Path

import pytest

from benchmarks import cuda_bench

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _bench(steps_per_s=10.0, steps_per_epoch=64, preset_epochs=400, preset_total_steps=25600,
           specs=("medium", "medium:quant_bits=6")):
    entries = [{"spec": spec, "steps_per_s": steps_per_s, "steps_per_epoch": steps_per_epoch,
                "preset_epochs": preset_epochs, "preset_total_steps": preset_total_steps} for spec in specs]
    return {"parts": {"fit": {"presets": entries}}}


def test_plan_fills_the_point_seconds_at_90_percent_of_the_measured_rate():
    """10 steps/s for 90 s at 90 % = 810 steps = 12 epochs of 64 steps; a spec with epochs= is kept."""
    specs = cuda_bench.plan(_bench(), ["medium", "small:epochs=3"], 90, 1000, log=lambda m: None)
    assert specs == ["medium:epochs=12", "small:epochs=3"]


def test_plan_shares_the_time_left_and_drops_what_cannot_fit():
    """Two points in 2 x (overhead + 30 s): 30 s of fitting (270 steps) each; too little time drops the point."""
    overhead = cuda_bench.POINT_OVERHEAD_S
    specs = cuda_bench.plan(_bench(), ["medium", "medium:quant_bits=6"], 90, 2 * (overhead + 30), log=lambda m: None)
    assert specs == ["medium:epochs=4", "medium:quant_bits=6:epochs=4"]
    assert cuda_bench.plan(_bench(), ["medium"], 90, overhead + 5, log=lambda m: None) == []


def test_plan_leaves_room_for_the_rate_aware_fine_tune():
    """A preset that fine-tunes for 10 % of its fit: 810 / 1.1 = 736 steps = 11 epochs of 64."""
    bench = _bench()
    bench["parts"]["fit"]["presets"][0]["qat_fraction"] = 0.1
    assert cuda_bench.plan(bench, ["medium"], 90, 1000, log=lambda m: None) == ["medium:epochs=11"]


def test_rate_point_specs_take_a_float_rate_lambda():
    """The RD harness's specs: integers for keyframe_quality, quant_bits and epochs, a number for rate_lambda."""
    from benchmarks.rd import parse_rate_point

    assert parse_rate_point("medium:rate_lambda=0.02:epochs=12") == ("medium", {"rate_lambda": 0.02, "epochs": 12})
    with pytest.raises(ValueError, match="expected PRESET"):
        parse_rate_point("medium:lambda=0.02")


def test_plan_keeps_a_preset_whose_own_schedule_fits_and_guesses_without_a_measurement():
    """A short preset schedule runs as is; an unmeasured preset gets the fallback epochs."""
    short = _bench(preset_epochs=10, preset_total_steps=640)
    assert cuda_bench.plan(short, ["medium"], 90, 1000, log=lambda m: None) == ["medium"]
    assert cuda_bench.plan({}, ["medium"], 90, 1000, log=lambda m: None) == [
        f"medium:epochs={cuda_bench.FALLBACK_EPOCHS}"]


@pytest.mark.slow
def test_bench_env_and_fit_parts_run_on_cpu_and_write_json(tmp_path, one_torch_thread):
    """On CPU: env names the ffmpeg, fit times the tiny network on a 2-clip corpus; a failing part
    records its traceback and the run goes on."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("foreman_176x144.mp4", "nasa_160x90.mp4"):
        (corpus / name).symlink_to(SAMPLES / name)
    out = tmp_path / "bench.json"
    cuda_bench.main(["--out", str(out), "--budget", "60", "--parts", "env,fit", "--corpus", str(corpus),
                     "--size", "32x32", "--max-frames", "9", "--presets", "tiny,nosuchpreset",
                     "--max-fit-steps", "6", "--frames-cache", str(tmp_path / "cache")])
    saved = json.loads(out.read_text())
    assert saved["parts"]["env"]["ok"] and saved["parts"]["env"]["ffmpeg"]["exe"]
    fit = saved["parts"]["fit"]
    assert fit["ok"] and fit["corpus"]["n_frames"] == 18 and len(fit["corpus"]["frames_sha256"]) == 64
    tiny, bad = fit["presets"]
    assert tiny["n_params"] > 0 and tiny["steps_per_s"] > 0 and tiny["as_shipped"]["steps"] == 6
    assert tiny["steps_per_epoch"] == -(-tiny["n_clips"] // tiny["batch_size"])
    assert "unknown preset" in bad["traceback"]
    assert list((tmp_path / "cache" / "frames").glob("*.u8")), "the corpus is stored where benchmarks.rd looks"
    assert cuda_bench.plan(saved, ["tiny"], 90, 1000, log=lambda m: None) == ["tiny"]
