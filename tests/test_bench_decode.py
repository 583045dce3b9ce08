"""benchmarks/bench_decode.py: it decodes, times every stage and leaves the decoder as it found it."""
from pathlib import Path

import nvcodec
from benchmarks import bench_decode
from nvcodec import decoder, media, runtime

TINY = Path(__file__).parent / "data" / "conformance" / "tiny.nvc"


def test_bench_times_each_stage_and_restores_the_decoder():
    originals = (decoder.iter_keyframes, decoder._build_network, decoder.merge_tiles, runtime.predict,
                 media.VideoWriter.write)
    result = bench_decode.bench(TINY, "cpu", 1, slice(0, 5))
    assert result["n_frames"] == 10                          # two videos x frames 0..4
    assert set(result["stages"]) == set(bench_decode.STAGES)
    assert all(result["stages"][s] > 0 for s in ("keyframes", "weights", "network", "write"))
    assert sum(result["stages"].values()) <= result["wall_s"]
    assert (decoder.iter_keyframes, decoder._build_network, decoder.merge_tiles, runtime.predict,
            media.VideoWriter.write) == originals


def test_flop_count_is_that_of_the_network():
    with nvcodec.open(TINY) as nvc:
        assert bench_decode.flops_per_tile_frame(nvc) > 2 * 3 * 3 * 3 * 32 * 32     # at least the stem conv


def test_bench_times_the_warp_of_a_refining_network_and_the_floor_of_a_file_without_one():
    """refine.nvc (coded motion + network) spends time in 'warp'; motion.nvc (no network) in 'floor' only;
    both wrapped functions are put back."""
    from nvcodec import motion

    originals = (decoder._warped_clips, motion.floor_clip_frames)
    here = TINY.parent
    refine = bench_decode.bench(here / "refine.nvc", "cpu", 1, slice(0, 9))
    assert refine["stages"]["warp"] > 0 and refine["stages"]["network"] > 0 and refine["stages"]["floor"] == 0
    floor = bench_decode.bench(here / "motion.nvc", "cpu", 1, slice(0, 9))
    assert floor["stages"]["floor"] > 0 and floor["stages"]["network"] == 0 == floor["stages"]["weights"]
    assert (decoder._warped_clips, motion.floor_clip_frames) == originals
    with nvcodec.open(here / "refine.nvc") as nvc:       # the per-frame encoder runs on both warped pictures
        cfg = nvc.network().cfg
        assert bench_decode.flops_per_tile_frame(nvc) > 2 * 2 * 3 * 3 * 3 * cfg.enc_width * cfg.tile_h * cfg.tile_w
