"""The frame store: every video decoded once to disk, reused, re-decoded when it changed, written
atomically, checked against free space, and read on demand by the fit."""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import nvcodec.store as store_module
from nvcodec.corpus import build_clipset, keyframe_positions, scan
from nvcodec.errors import NvcInputError
from nvcodec.fit import fit
from nvcodec.media import read_frames
from nvcodec.store import ClipFrames, ClipKeyframes, ClipWarped, StoredVideo, open_store
from tests.test_codec import moving_pattern, write_video
from tests.test_fit import TINY_FIT, TINY_MODEL

SIZE = (24, 20)               # (width, height) the store is read at


@pytest.fixture
def videos(tmp_path) -> Path:
    root = tmp_path / "in"
    write_video(root / "a.mp4", moving_pattern(7, 30, 36, seed=1), (25, 1))
    write_video(root / "b.mp4", moving_pattern(5, 16, 20, seed=2), (30, 1))
    return root


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_stored_frames_equal_a_direct_read(videos, tmp_path):
    """Round trip: each stored video is exactly the frames read_frames gives, whole or by index."""
    sources = scan([videos], warn=lambda _m: None)
    store = open_store(tmp_path / "s", sources, size=SIZE, max_frames=6, log=lambda _m: None)
    for source, stored in zip(sources, store.videos):
        direct = np.stack(list(read_frames(source.path, size=SIZE, max_frames=6)))
        assert stored.shape == direct.shape and len(stored) == len(direct)
        np.testing.assert_array_equal(stored.read(), direct)
        np.testing.assert_array_equal(np.asarray(stored), direct)
        np.testing.assert_array_equal(stored[np.array([3, 0, 3])], direct[[3, 0, 3]])
        np.testing.assert_array_equal(stored[1:4], direct[1:4])
    assert store.n_bytes == sum(6 * 20 * 24 * 3 if s.name == "a.mp4" else 5 * 20 * 24 * 3 for s in sources)
    assert not store.changed


def test_a_second_open_reuses_the_entries_without_decoding(videos, tmp_path, monkeypatch):
    """--resume / a kept store: matching entries are used as they are; nothing is decoded again."""
    sources = scan([videos], warn=lambda _m: None)
    first = open_store(tmp_path / "s", sources, size=SIZE, log=lambda _m: None)
    stamps = [os.stat(v.path).st_mtime_ns for v in first.videos]

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("a stored video was decoded again")

    monkeypatch.setattr(store_module, "read_frames", no_decoding)
    again = open_store(tmp_path / "s", sources, size=SIZE, log=lambda _m: None)
    assert [os.stat(v.path).st_mtime_ns for v in again.videos] == stamps
    assert [v.shape for v in again.videos] == [v.shape for v in first.videos] and not again.changed


def test_other_read_settings_get_their_own_entries(videos, tmp_path):
    """An entry is keyed by the read settings: another --size or --max-frames is another entry."""
    sources = scan([videos], warn=lambda _m: None)
    one = open_store(tmp_path / "s", sources, size=SIZE, log=lambda _m: None)
    two = open_store(tmp_path / "s", sources, size=SIZE, max_frames=3, log=lambda _m: None)
    assert {v.path for v in one.videos}.isdisjoint(v.path for v in two.videos)
    assert [len(v) for v in two.videos] == [3, 3] and [len(v) for v in one.videos] == [7, 5]


def test_a_video_changed_since_it_was_stored_is_decoded_again(videos, tmp_path):
    """Size or mtime differ from the entry: the video is decoded again and named, never mixed."""
    sources = scan([videos], warn=lambda _m: None)
    open_store(tmp_path / "s", sources, size=SIZE, log=lambda _m: None)
    (videos / "b.mp4").unlink()
    write_video(videos / "b.mp4", moving_pattern(9, 16, 20, seed=7), (30, 1))     # new content, same name
    sources = scan([videos], warn=lambda _m: None)
    lines = []
    store = open_store(tmp_path / "s", sources, size=SIZE, log=lines.append)
    assert store.changed == ("b.mp4",)
    assert any("b.mp4: changed since its frames were stored" in line for line in lines)
    np.testing.assert_array_equal(store.videos[1].read(), np.stack(list(read_frames(videos / "b.mp4", size=SIZE))))


def test_too_little_free_space_is_one_error_before_anything_is_written(videos, tmp_path, monkeypatch):
    """The store's size is checked against the disk's free space before any video is decoded."""
    sources = scan([videos], warn=lambda _m: None)
    real = shutil.disk_usage
    monkeypatch.setattr(store_module.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=1000))
    root = tmp_path / "s"
    need_mib = (7 + 5) * 20 * 24 * 3 / 2 ** 20
    with pytest.raises(NvcInputError, match=rf"frame store in {root} needs {need_mib:.1f} MiB more, "
                                             r"only 0\.0 MiB free"):
        open_store(root, sources, size=SIZE, log=lambda _m: None)
    assert _files(root) == []


def test_a_disk_that_fills_while_writing_leaves_no_partial_entry(videos, tmp_path):
    """A file-size limit (the full disk, simulated in a child process) hits mid-write: one clear error,
    no partial file at the destination; with the limit gone the same call completes the store."""
    root = tmp_path / "s"
    script = textwrap.dedent(f"""
        import resource
        from nvcodec.corpus import scan
        from nvcodec.errors import NvcInputError
        from nvcodec.store import open_store
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, resource.RLIM_INFINITY))
        try:
            open_store({str(root)!r}, scan([{str(videos)!r}], warn=lambda m: None), size={SIZE!r}, log=lambda m: None)
        except NvcInputError as e:
            print("ERROR", e)
    """)
    # a.mp4's 7 frames are 10 080 bytes (over the limit), its entry and b.mp4's frames are under it
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"ERROR cannot write the frame store in {root} (a.mp4): File too large; ")
    assert _files(root) == []                     # a.mp4 is the first video: nothing of it is left

    sources = scan([videos], warn=lambda _m: None)
    store = open_store(root, sources, size=SIZE, log=lambda _m: None)
    assert [len(v) for v in store.videos] == [7, 5]
    assert all(not name.endswith(".tmp") for name in _files(root)) and len(_files(root)) == 4
    store.remove()
    assert not root.exists()


def _stored(tmp_path: Path, frames: np.ndarray) -> StoredVideo:
    path = tmp_path / f"v{len(list(tmp_path.iterdir()))}.u8"
    frames.tofile(path)
    return StoredVideo(path, frames.shape)


def _clipsets(tmp_path):
    """The same corpus as a ClipSet whose frames and keyframes are in memory and one whose are on disk."""
    raw = [moving_pattern(19, 40, 70, seed=3), moving_pattern(9, 32, 32, seed=4)]
    interval, (th, tw) = TINY_MODEL.clip_length, (TINY_MODEL.tile_h, TINY_MODEL.tile_w)
    in_memory = build_clipset([(f, f[keyframe_positions(len(f), interval)], len(f)) for f in raw], interval, th, tw)
    on_disk = build_clipset([(_stored(tmp_path, f), _stored(tmp_path, f[keyframe_positions(len(f), interval)]), len(f))
                             for f in raw], interval, th, tw)
    return in_memory, on_disk


def test_clip_frames_read_on_demand_equal_the_in_memory_clips(tmp_path):
    """ClipSet.frames from the store gives, for any clip index, subset or scalar, the in-memory array."""
    in_memory, on_disk = _clipsets(tmp_path)
    assert isinstance(on_disk.frames, ClipFrames) and on_disk.frames.shape == in_memory.frames.shape
    rng = np.random.default_rng(0)
    for _ in range(5):
        index = np.sort(rng.choice(in_memory.n_clips, size=4, replace=False))
        np.testing.assert_array_equal(on_disk.frames[index], in_memory.frames[index])
    np.testing.assert_array_equal(on_disk.frames[3], in_memory.frames[3])
    np.testing.assert_array_equal(on_disk.frames[2:9], in_memory.frames[2:9])
    sub = np.array([7, 1, 4])
    np.testing.assert_array_equal(on_disk.subset(sub).frames[np.array([2, 0])], in_memory.frames[[4, 7]])
    for name in ("mask", "t_video", "t_local", "start_kf", "end_kf", "video", "tile", "first_frame", "keyframes"):
        np.testing.assert_array_equal(getattr(on_disk, name), getattr(in_memory, name))


def test_clip_keyframes_read_on_demand_equal_the_in_memory_tiles(tmp_path):
    """ClipSet.keyframes from the store gives every tile of every video's keyframes, in any order."""
    in_memory, on_disk = _clipsets(tmp_path)
    assert isinstance(on_disk.keyframes, ClipKeyframes) and on_disk.keyframes.shape == in_memory.keyframes.shape
    rng = np.random.default_rng(1)
    index = rng.permutation(len(in_memory.keyframes))
    np.testing.assert_array_equal(on_disk.keyframes[index], in_memory.keyframes[index])
    np.testing.assert_array_equal(on_disk.keyframes[on_disk.end_kf], in_memory.keyframes[in_memory.end_kf])
    np.testing.assert_array_equal(on_disk.keyframes[len(in_memory.keyframes) - 1], in_memory.keyframes[-1])


def test_a_fit_from_the_store_equals_the_fit_in_memory(tmp_path, one_torch_thread):
    """Same clips, same seed, CPU: the weights fitted from the store are those fitted in memory."""
    in_memory, on_disk = _clipsets(tmp_path)
    cfg = dataclasses.replace(TINY_FIT, epochs=2, max_steps=6)
    a = fit(TINY_MODEL, cfg, in_memory, device="cpu", progress=False)
    b = fit(TINY_MODEL, cfg, on_disk, device="cpu", progress=False)
    assert a.steps == b.steps > 0 and a.psnr == b.psnr and a.blend_psnr == b.blend_psnr
    for name, tensor in a.state_dict.items():
        assert torch.equal(tensor, b.state_dict[name]), name


def _warped_clipsets(tmp_path):
    """A motion network's clips (each frame's keyframes warped by estimated motion) with frames, keyframes
    and warped keyframes in memory, and with all three in a frame store, read on demand."""
    from nvcodec.motion import MotionConfig, estimate_video, warped_video
    from nvcodec.store import FrameStore, StoreKey

    raw = [moving_pattern(19, 40, 70, seed=3), moving_pattern(9, 32, 32, seed=4)]
    interval, (th, tw) = TINY_MODEL.clip_length, (TINY_MODEL.tile_h, TINY_MODEL.tile_w)
    keyframes = [f[keyframe_positions(len(f), interval)] for f in raw]
    warped = [warped_video(kf, estimate_video(f, kf, interval, MotionConfig(16, 4)), len(f), interval)
              for f, kf in zip(raw, keyframes)]
    keys = tuple(StoreKey(f"/v{i}", 0, 0, None, None, None) for i in range(len(raw)))
    store = FrameStore(tmp_path / "store", keys, (), ())
    store.root.mkdir()
    held = [store.hold_warped(v, w) for v, w in enumerate(warped)]
    in_memory = build_clipset([(f, kf, len(f)) for f, kf in zip(raw, keyframes)], interval, th, tw, warped=warped)
    on_disk = build_clipset([(_stored(tmp_path, f), store.hold_keyframes(v, kf), len(f))
                             for v, (f, kf) in enumerate(zip(raw, keyframes))], interval, th, tw, warped=held)
    return in_memory, on_disk, store


def test_clip_warped_read_on_demand_equal_the_in_memory_clips(tmp_path):
    """ClipSet.warped held in the store gives, for any clip index, subset or scalar, the in-memory array."""
    in_memory, on_disk, store = _warped_clipsets(tmp_path)
    assert isinstance(on_disk.warped, ClipWarped) and on_disk.warped.shape == in_memory.warped.shape
    assert in_memory.warped.any()
    rng = np.random.default_rng(0)
    for _ in range(5):
        index = np.sort(rng.choice(in_memory.n_clips, size=4, replace=False))
        np.testing.assert_array_equal(on_disk.warped[index], in_memory.warped[index])
    np.testing.assert_array_equal(on_disk.warped[3], in_memory.warped[3])
    np.testing.assert_array_equal(on_disk.warped[:], in_memory.warped)
    sub = np.array([7, 1, 4, in_memory.n_clips - 1])
    np.testing.assert_array_equal(on_disk.subset(sub).warped[np.array([3, 0])], in_memory.warped[[-1, 7]])
    store.remove()
    assert not store.root.exists()


def test_a_motion_network_fitted_from_the_store_equals_the_fit_in_memory(tmp_path, one_torch_thread):
    """Same clips, same seed, CPU: a motion network fitted on warped keyframes read from the store has
    the weights of one fitted on them in memory."""
    in_memory, on_disk, _ = _warped_clipsets(tmp_path)
    model = dataclasses.replace(TINY_MODEL, motion=True)
    cfg = dataclasses.replace(TINY_FIT, epochs=2, max_steps=6)
    a = fit(model, cfg, in_memory, device="cpu", progress=False)
    b = fit(model, cfg, on_disk, device="cpu", progress=False)
    assert a.steps == b.steps > 0 and a.psnr == b.psnr
    for name, tensor in a.state_dict.items():
        assert torch.equal(tensor, b.state_dict[name]), name


# -- the encoder's use of the store -----------------------------------------------------------


def _tiny():
    from nvcodec.presets import build_config

    return build_config("tiny", epochs=1)


@pytest.mark.slow
def test_encode_deletes_the_store_unless_kept_and_a_kept_store_is_reused(videos, tmp_path, monkeypatch):
    """--keep-store keeps the frames (the work folder goes); the next encode reads them without
    decoding and writes the same bytes; without --keep-store the store is gone after success."""
    import nvcodec

    kept, first, second = tmp_path / "kept", tmp_path / "1.nvc", tmp_path / "2.nvc"
    nvcodec.encode([videos], first, _tiny(), size=SIZE, quiet=True, store=kept, keep_store=True)
    assert len(_files(kept)) == 4 and not Path(f"{first}.work").exists()

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("a stored video was decoded again")

    monkeypatch.setattr(store_module, "read_frames", no_decoding)
    nvcodec.encode([videos], second, _tiny(), size=SIZE, quiet=True, store=kept)
    assert second.read_bytes() == first.read_bytes()
    assert not kept.exists() and not Path(f"{second}.work").exists()


@pytest.mark.slow
def test_resume_after_a_video_changed_decodes_it_again_and_fits_anew(videos, tmp_path, monkeypatch):
    """A video changed between an interrupted encode and --resume: re-decoded, the old fit dropped,
    and the file is that of a fresh encode of the new videos."""
    import nvcodec
    import nvcodec.fit as fit_module

    real_fit = fit_module.fit

    def killed_fit(*args, **kwargs):
        real_fit(*args, **{**kwargs, "stop_after": 1})
        raise KeyboardInterrupt

    out = tmp_path / "r.nvc"
    with monkeypatch.context() as m:
        m.setattr(fit_module, "fit", killed_fit)
        with pytest.raises(KeyboardInterrupt):
            nvcodec.encode([videos], out, _tiny(), size=SIZE, quiet=True)
    assert (Path(f"{out}.work") / fit_module.CHECKPOINT_NAME).exists()
    (videos / "b.mp4").unlink()
    write_video(videos / "b.mp4", moving_pattern(9, 16, 20, seed=7), (30, 1))
    lines = []
    resumed = nvcodec.encode([videos], out, _tiny(), size=SIZE, resume=True, log=lines.append)
    assert any("b.mp4: changed since its frames were stored" in line for line in lines)
    assert [v["n_frames"] for v in resumed.videos] == [7, 9]
    fresh = tmp_path / "fresh.nvc"
    nvcodec.encode([videos], fresh, _tiny(), size=SIZE, quiet=True)
    assert out.read_bytes() == fresh.read_bytes()


@pytest.mark.slow
def test_an_encode_reading_warped_keyframes_from_the_store_writes_the_bytes_of_one_holding_them(tmp_path,
                                                                                               monkeypatch):
    """A motion network's warped keyframes go to the store and the fit reads them from there
    (ClipWarped); the file is byte for byte that of an encode that keeps them in memory."""
    import nvcodec
    import nvcodec.fit as fit_module
    from nvcodec.presets import build_config
    from nvcodec.store import FrameStore

    root = tmp_path / "in"
    for i in range(2):
        write_video(root / f"{i}.mp4", moving_pattern(17, 48, 64, seed=5 + i), (25, 1))
    config = build_config("tiny", epochs=1, motion=True, weight_bpp=8.0)
    real_fit, seen = fit_module.fit, []

    def watched_fit(model_cfg, fit_cfg, clips, **kwargs):
        seen.append(type(clips.warped))
        return real_fit(model_cfg, fit_cfg, clips, **kwargs)

    monkeypatch.setattr(fit_module, "fit", watched_fit)
    stored = nvcodec.encode([root], tmp_path / "stored.nvc", config, quiet=True)
    with monkeypatch.context() as m:
        m.setattr(FrameStore, "hold_warped", lambda _self, _v, warped: warped)
        nvcodec.encode([root], tmp_path / "memory.nvc", config, quiet=True)
    assert seen == [ClipWarped, np.ndarray] and stored.n_params > 0
    assert (tmp_path / "stored.nvc").read_bytes() == (tmp_path / "memory.nvc").read_bytes()


def test_cli_store_options_parse():
    """--store DIR and --keep-store reach the API under the API's names."""
    from nvcodec.cli.main import encode

    ctx = encode.make_context("encode", [".", "b.nvc", "--store", "/tmp/frames", "--keep-store"])
    assert ctx.params["store"] == "/tmp/frames" and ctx.params["keep_store"] is True
    ctx = encode.make_context("encode", [".", "b.nvc"])
    assert ctx.params["store"] is None and ctx.params["keep_store"] is False
