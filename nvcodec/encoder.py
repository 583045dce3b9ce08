"""``nvcodec.encode``: a folder of videos in, one ``.nvc`` file out (DESIGN.md, "The data flow").

scan -> decode every video once into the frame store (``nvcodec.store``: on disk, read on
demand, so memory follows the batch and the video, not the corpus) -> detect scene cuts and place
the keyframes -> code keyframes (and
decode them back: the network is fed what the decoder will have) -> tile and clip -> fit one network -> quantize ->
write the container atomically -> decode the written file and measure it.

Every figure in the report comes from the written file: the rate is its size,
the quality is that of its decoded frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from nvcodec import __version__
from nvcodec.bitstream import KeyframeSegment, VideoRecord, motion_chunk_n_bytes, tensor_chunk_n_bytes, write_nvc
from nvcodec.bitstream.chunks import CHUNK_OVERHEAD_BYTES
from nvcodec.bitstream.tensors import MAX_ELEMENTS
from nvcodec.clipset import ClipSet
from nvcodec.config import LATENTS, ModelConfig, count_parameters, latent_count
from nvcodec.corpus import SourceVideo, build_clipset, keyframe_positions, scan
from nvcodec.cuts import detect_cuts
from nvcodec.errors import NvcInputError
from nvcodec.keyframes import KeyframeCodec, decode_keyframes, encode_keyframes
from nvcodec.metrics import blend_psnr, keyframe_psnr
from nvcodec.motion import MOTION_CANDIDATES, estimate_video, floor_video, warped_video
from nvcodec.presets import ByteBudget, EncodeConfig, PostTrainingQuant, PricedQuant, RateAwareQuant
from nvcodec.quant import quantize_state
from nvcodec.rate import (MotionAllocation, allocate_motion, inbetween_fraction, keyframe_bytes, keyframe_price,
                          TargetPlan, plan_floor_target, plan_target, probe_quality, weight_lambda)
from nvcodec.store import FrameStore, StoredVideo, open_store

WORKDIR_SUFFIX = ".work"
STORE_DIRNAME = "store"          # the frame store's default folder inside the work folder
STAMP_NAME = "encode.json"       # the work folder's stamp: which encode it belongs to
# How keyframes are placed (``encode(keyframes=...)``, ``--keyframes``): every K frames plus the last
# ("regular"), or that rule inside every shot between detected scene cuts ("cuts", FORMAT.md section 15).
KEYFRAME_PLACEMENTS = ("cuts", "regular")


@dataclass(frozen=True)
class EncodeReport:
    """What an encode produced, measured on the written file."""

    output: str
    n_videos: int
    n_frames: int
    n_pixels: int                 # sum of frames x width x height as coded
    n_bytes: int                  # size of the .nvc file
    bytes_by_part: dict[str, int]  # keyframes, motion, weights, latents (when there are), metadata, container
    bpp: float                    # 8 * n_bytes / n_pixels
    psnr: float                   # RGB PSNR of the decoded file, mean over all frames
    blend_psnr: float             # the floor: linear blend of the decoded keyframes, whole frames
    motion_psnr: float | None     # the motion floor: decoded keyframes warped by coded motion (None: not measured)
    keyframe_psnr: float          # decoded keyframes vs their source frames
    n_params: int                 # the network's weights (the per-frame latents not among them)
    preset: str
    seconds: float
    videos: list[dict] = field(default_factory=list)   # per video: name, size, n_frames, psnr
    n_latents: int = 0            # values of the per-frame latents (ModelConfig.latent_channels)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Video:
    """A source video read for coding: its frames as coded, and the record the file will hold."""

    source: SourceVideo
    frames: StoredVideo           # (L, H, W, 3) uint8 as coded, in the frame store, read on demand
    fps_num: int
    fps_den: int
    keyframes: np.ndarray         # (n_kf,) int64: the keyframes' frame numbers (corpus.keyframe_positions)

    def record(self) -> VideoRecord:
        n_frames, height, width = (int(n) for n in self.frames.shape[:3])
        return VideoRecord(name=self.source.name, source_width=self.source.info.width,
                           source_height=self.source.info.height, width=width, height=height,
                           fps_num=self.fps_num, fps_den=self.fps_den, n_frames=n_frames)


def _coded_fps(source: SourceVideo, fps: Fraction | None) -> tuple[int, int]:
    if fps is None:
        return source.info.fps_num, source.info.fps_den
    return fps.numerator, fps.denominator


def _read_videos(sources: Sequence[SourceVideo], store: FrameStore, fps, interval: int, placement: str,
                 log) -> list[_Video]:
    """Each source's frames as coded (in the frame store), and where its keyframes go (``placement``,
    KEYFRAME_PLACEMENTS; the cut detector reads one video at a time)."""
    videos = []
    for source, frames in zip(sources, store.videos):
        fps_num, fps_den = _coded_fps(source, fps)
        cuts = detect_cuts(frames.read()) if placement == "cuts" else []
        note = ""
        if placement == "cuts":
            note = f"; {len(cuts)} scene cut(s)" + (f" at frames {cuts}" if 0 < len(cuts) <= 8 else "")
        log(f"  {source.name}: {source.info.width}x{source.info.height} -> "
            f"{frames.shape[2]}x{frames.shape[1]}, {frames.shape[0]} frames at {fps_num}/{fps_den} fps{note}")
        videos.append(_Video(source, frames, fps_num, fps_den, keyframe_positions(len(frames), interval, cuts)))
    return videos


def _open_store(store_dir: Path, sources: Sequence[SourceVideo], size, fps, max_frames, workdir: Path,
                resume: bool, say: Callable[[str], None]) -> FrameStore:
    """Rank 0's frame store; on --resume, a video that changed since the interrupted run is decoded
    again and the work derived from the old frames (keyframes, checkpoint, rate plan) is dropped."""
    store = open_store(store_dir, sources, size=size, fps=fps, max_frames=max_frames, log=say)
    if resume and store.changed:
        say(f"{len(store.changed)} video(s) changed since the interrupted run: the fit starts over")
        _clear_workdir(workdir, keep=(workdir / STAMP_NAME, store_dir))
    return store


def _clear_workdir(workdir: Path, keep: Sequence[Path]) -> None:
    """Delete what is in ``workdir`` but the paths ``keep``."""
    kept = {p.resolve() for p in keep}
    for path in workdir.iterdir():
        if path.resolve() in kept:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _shared_store(store_dir: Path, sources, size, fps, max_frames, workdir: Path, resume: bool, digest: str,
                  ctx, device: str, say: Callable[[str], None]) -> FrameStore:
    """The work folder and the frame store, made by rank 0; under torchrun the other ranks wait for
    it and then open the same store (entries that match are reused, nothing is decoded twice)."""
    import torch

    from nvcodec import distributed

    if ctx.is_main:
        try:
            _prepare_workdir(workdir, digest, resume)
            store = _open_store(store_dir, sources, size, fps, max_frames, workdir, resume, say)
        except BaseException:
            distributed.all_reduce_sum([1.0], ctx, torch.device(device))    # tell the others, then stop
            raise
        distributed.all_reduce_sum([0.0], ctx, torch.device(device))
        return store
    if distributed.all_reduce_sum([0.0], ctx, torch.device(device))[0]:
        raise NvcInputError("rank 0 could not prepare the work folder or the frame store")
    return open_store(store_dir, sources, size=size, fps=fps, max_frames=max_frames, log=say)


def _finish(workdir: Path, store: FrameStore, keep_store: bool) -> None:
    """After a successful encode: the work folder goes, and the frame store unless asked to keep it."""
    store.remove(keep_frames=keep_store)
    if not workdir.exists():
        return
    _clear_workdir(workdir, keep=(store.root,) if keep_store else ())
    if not any(workdir.iterdir()):    # else the kept store is inside it
        workdir.rmdir()


def _settings_digest(settings: dict, sources: Sequence[SourceVideo]) -> str:
    """Identifies an encode, so that --resume refuses a workdir left by a different one. The inputs'
    sizes and mtimes are the frame store's to check: a video changed since is decoded again."""
    ident = {"settings": settings, "inputs": [[s.name, str(s.path)] for s in sources]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _prepare_workdir(workdir: Path, digest: str, resume: bool) -> None:
    try:                                        # the user's path: a file in the way, no permission, ...
        _stamp_workdir(workdir, digest, resume)
    except OSError as exc:
        raise NvcInputError(f"cannot use the work folder {workdir}: {exc.strerror or exc}") from exc


def _stamp_workdir(workdir: Path, digest: str, resume: bool) -> None:
    stamp = workdir / STAMP_NAME
    # A frame store kept by an earlier encode (--keep-store) does not make the folder another encode's.
    if workdir.exists() and any(p.name != STORE_DIRNAME for p in workdir.iterdir()):
        if not resume:
            raise NvcInputError(f"work folder {workdir} is not empty: pass --resume to continue "
                             f"that encode, or remove the folder")
        if not stamp.exists() or json.loads(stamp.read_text()).get("digest") != digest:
            raise NvcInputError(f"work folder {workdir} holds a different encode "
                             f"(other inputs or settings); cannot resume it")
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"digest": digest, "encoder": f"nvcodec {__version__}"}))
    os.replace(tmp, stamp)


def _code_keyframes(videos: Sequence[_Video], interval: int, codec: KeyframeCodec, cache: Path | None,
                    store: FrameStore | None = None) -> tuple[list[KeyframeSegment], list]:
    """Keyframe segments and the decoded keyframes of each video.

    With ``cache`` (rank 0's work folder) the coded bytes are kept for --resume;
    other ranks code them again (the encoder is deterministic). With ``store`` the decoded
    keyframes go to the frame store and are read from there (``StoredVideo``); under torchrun
    every rank holds the same bytes there (``FrameStore.hold_keyframes``), so no rank keeps them.
    """
    if cache is not None:
        cache.mkdir(exist_ok=True)
    segments: list[KeyframeSegment] = []
    decoded: list[np.ndarray] = []
    for v, video in enumerate(videos):
        index_path = cache / f"{v}.json" if cache is not None else None
        coded = None
        if index_path is not None and index_path.exists():
            index = json.loads(index_path.read_text())
            coded = [(first, n, (cache / f"{v}_{i}.bin").read_bytes()) for i, (first, n) in enumerate(index)]
        coded, keyframes = _code_video_keyframes(video, codec, coded)
        if index_path is not None and not index_path.exists():
            for i, (_, _, data) in enumerate(coded):
                (cache / f"{v}_{i}.bin").write_bytes(data)
            tmp = index_path.with_suffix(".tmp")
            tmp.write_text(json.dumps([[first, n] for first, n, _ in coded]))
            os.replace(tmp, index_path)
        segments += [KeyframeSegment(video=v, first_keyframe=first, n_keyframes=n, data=data)
                     for first, n, data in coded]
        decoded.append(keyframes if store is None else store.hold_keyframes(v, keyframes))
    return segments, decoded


def _code_video_keyframes(video: _Video, codec: KeyframeCodec, coded=None) -> tuple[list, np.ndarray]:
    """(segments as (first, n, bytes), decoded keyframes) of one video: ``coded`` (None: coded here), decoded
    back as the decoder will. Segments concatenate into one valid stream: one ffmpeg process per video."""
    if coded is None:
        coded = encode_keyframes(video.frames[video.keyframes], codec)
    height, width = video.frames.shape[1:3]
    return coded, decode_keyframes(b"".join(data for _, _, data in coded), codec, width, height,
                                   sum(n for _, n, _ in coded))


def _metadata(videos: Sequence[_Video], interval: int, codec: KeyframeCodec, model_json: dict,
              tile_hw: tuple[int, int], fit_info: dict) -> dict:
    return {
        "encoder": f"nvcodec {__version__}",
        "videos": [v.record().to_json() for v in videos],
        "keyframe_interval": interval,
        "tile": {"height": tile_hw[0], "width": tile_hw[1]},
        "keyframe_codec": codec.to_json(),
        "model": model_json,
        "fit": fit_info,
    }


def encode(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    output: str | os.PathLike,
    config: EncodeConfig | str = "fast",
    *,
    size: tuple[int, int] | None = None,
    fps: Fraction | None = None,
    max_frames: int | None = None,
    device: str | None = None,
    workdir: str | os.PathLike | None = None,
    resume: bool = False,
    store: str | os.PathLike | None = None,
    keep_store: bool = False,
    force: bool = False,
    skip_broken: bool = False,
    keyframes: str = "cuts",
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> EncodeReport | None:
    """Fit one network to every video under ``inputs`` and write ``output`` (.nvc).

    ``config``: an ``EncodeConfig`` (``nvcodec.presets.build_config``: a preset plus checked
    overrides; it says how the weights are quantized: plainly, rate-aware, or to a byte budget
    ``--target-bpp`` whose rate plan is ``nvcodec.rate``), or a preset name, i.e.
    ``build_config(name)``. ``size``/``fps``/``max_frames`` select what is read from the inputs.
    ``keyframes``: "cuts" (default) puts a keyframe on every detected scene cut (``nvcodec.cuts``)
    and on the frame before it, keeping at most K frames between keyframes; "regular" puts them
    every K frames whatever the content.
    Every video is decoded once into the frame store (``store``, default ``workdir/store``; its
    size is checked against the free space first), which the encode reads on demand; it is
    deleted after a successful encode unless ``keep_store``, and reused by ``resume``.
    Returns the report (measured on the written file), or ``None`` on ranks other than 0 under
    torchrun, where only rank 0 writes.
    """
    from nvcodec import distributed
    from nvcodec.fit import fit
    from nvcodec.runtime import resolve_device

    started = time.monotonic()
    config = _as_config(config)
    if keyframes not in KEYFRAME_PLACEMENTS:
        raise NvcInputError(f"keyframes must be one of {', '.join(KEYFRAME_PLACEMENTS)}, got {keyframes!r}")
    output, fps = _check_output(output, force), _check_fps(fps)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    device = resolve_device(device)
    ctx = distributed.setup(device.split(":")[0])
    main = ctx.is_main                                         # under torchrun, rank 0 alone talks and writes
    say = (lambda _msg: None) if quiet or not main else (log or print)
    preset, interval = config.preset, config.keyframe_interval

    sources = scan(inputs, skip_broken=skip_broken, warn=say)
    say(f"nvcodec {__version__}: {len(sources)} video(s), preset {preset.name!r}")
    workdir = Path(workdir) if workdir is not None else output.with_name(output.name + WORKDIR_SUFFIX)
    store_dir = Path(store) if store is not None else workdir / STORE_DIRNAME
    settings = {"config": _config_json(config), "size": size, "fps": str(fps) if fps else None,
                "max_frames": max_frames, "keyframes": keyframes}
    frame_store = _shared_store(store_dir, sources, size, fps, max_frames, workdir, resume,
                                _settings_digest(settings, sources), ctx, device, say)
    videos = _read_videos(sources, frame_store, fps, interval, keyframes, say)
    if keyframes == "cuts":
        say(f"keyframes on scene cuts: {sum(len(v.keyframes) for v in videos)} keyframes, "
            f"{sum(len(keyframe_positions(len(v.frames), interval)) for v in videos)} without cut detection")
    n_pixels = sum(int(np.prod(v.frames.shape[:3])) for v in videos)
    config = _latents_or_not(_network_or_floor(config, n_pixels, say), say)
    if config.network == "none":
        report = (_encode_motion_floor(config, videos, n_pixels, output, workdir, frame_store, started, device, say,
                                       progress=not quiet) if main else None)
        if main:
            _finish(workdir, frame_store, keep_store)
        distributed.teardown(ctx)
        return report

    kf_codec, model_cfg, plan = _plan_network(config, videos, n_pixels, device, workdir, ctx, say, frame_store)
    say(f"keyframes: {kf_codec.codec} ({kf_codec.encoder}) {kf_codec.mode}, quality {kf_codec.quality}, "
        f"one every {interval} frames")
    segments, decoded_kf = _code_keyframes(videos, interval, kf_codec, workdir / "keyframes" if main else None,
                                           frame_store)
    # the motion is chosen at the keyframes' price of a bit, at which PricedQuant quantizes the weights too;
    # a byte budget's plan allocated it already where it planned at this quality
    motion, price = None, None
    if model_cfg.motion:
        if plan is not None and plan.motion is not None and plan.motion_quality == kf_codec.quality:
            alloc = plan.motion
            say(f"motion: the rate plan's, allocated at this quality (a bit costs {alloc.lam:.1f} of squared error)")
        else:
            alloc = _priced_motion(videos, decoded_kf, interval, say, kf_codec, segments)
        motion, price = alloc.motion, alloc.lam
    clips = _clips(videos, decoded_kf, motion, interval, model_cfg, frame_store)
    fit_cfg = preset.fit
    if model_cfg.latent_channels:           # one row of latents per clip-tile, priced as keyframes are
        model_cfg = replace(model_cfg, latent_rows=clips.n_clips)
        fit_cfg = replace(fit_cfg, latent_price=float(price or 0.0))
        if count_parameters(model_cfg) > MAX_ELEMENTS:
            say(f"per-frame latents: {latent_count(model_cfg)} values for {clips.n_clips} clip-tiles pass the "
                f"{MAX_ELEMENTS} elements a file may hold; fitting without them")
            model_cfg = replace(model_cfg, latent_channels=0, latent_cell=0, latent_rows=0)
            clips = replace(clips, row=None)
    say(f"network: {f'C0={model_cfg.c0}' if model_cfg.c0 else 'the refiner alone (no trunk)'}, "
        f"tile {model_cfg.tile_w}x{model_cfg.tile_h}, "
        f"{count_parameters(model_cfg)} parameters"
        + (f" ({latent_count(model_cfg)} of them per-frame latents)" if model_cfg.latent_channels else "")
        + f"; {clips.n_clips} clips of {interval} frames")
    result = fit(model_cfg, fit_cfg, clips, device=device, workdir=workdir, resume=resume, progress=not quiet)
    if not main:
        distributed.teardown(ctx)                              # rank 0 alone writes
        return None

    motion_info = {}
    if price and preset.motion_iters:
        motion, motion_info = _refine_motion(model_cfg, result, videos, decoded_kf, motion, interval, price,
                                             preset.motion_iters, device, say, progress=not quiet)
        clips = _clips(videos, decoded_kf, motion, interval, model_cfg, frame_store)   # the fine-tune sees them
    if price is None and isinstance(config.quantization, PricedQuant):    # no motion allocation priced a bit
        price = _keyframe_price(videos, interval, kf_codec)[0]
    budget_bytes = None
    if plan is not None:        # the weights take what the keyframes and the motion as written leave
        budget_bytes = plan.left_bytes - _motion_bytes(motion)
    tensors, quant_info = _quantize(config, model_cfg, result, clips, n_pixels, budget_bytes, device, say, quiet,
                                    price=price, videos=videos)
    fit_info = {"preset": preset.name, "epochs": preset.fit.epochs, "seed": preset.fit.seed,
                "fit_psnr": round(result.psnr, 4), "blend_psnr": round(result.blend_psnr, 4), **quant_info,
                **motion_info}
    metadata = _metadata(videos, interval, kf_codec, model_cfg.to_json(), (model_cfg.tile_h, model_cfg.tile_w), fit_info)
    n_bytes = _write(output, metadata, segments, tensors, motion=motion, keyframes=[v.keyframes for v in videos])

    report = _report(output, n_bytes, n_pixels, videos, decoded_kf, interval, tensors, preset.name, started, device,
                     motion_psnr=_motion_floor_psnr(videos, decoded_kf, interval, motion), progress=not quiet)
    if config.network == "auto":
        report = _network_or_floor_at_its_rate(config, videos, n_pixels, output, workdir, frame_store, started,
                                               device, say, report, progress=not quiet)
    _finish(workdir, frame_store, keep_store)
    distributed.teardown(ctx)
    return report


def _network_or_floor(config: EncodeConfig, n_pixels: int, say: Callable[[str], None]) -> EncodeConfig:
    """``config``, or, for a motion preset whose smallest network the corpus cannot pay for
    (``Preset.affords_network``), the same config without a network: the file is then the motion floor."""
    preset = config.preset
    if (config.network == "none" or not preset.motion or isinstance(config.quantization, ByteBudget)
            or preset.affords_network(n_pixels, config.keyframe_interval)):
        return config
    say(f"the corpus ({n_pixels} pixels) is too small to pay for preset {preset.name!r}'s smallest network at "
        f"{preset.weight_bpp} bpp of weights: writing the motion floor (keyframes + coded motion), no network")
    return replace(config, network="none")


def _latents_or_not(config: EncodeConfig, say: Callable[[str], None]) -> EncodeConfig:
    """``config``, or under ``--target-bpp`` the same without per-frame latents: the rate plan
    (``nvcodec.rate.plan_target``) shares the bytes among keyframes, motion and weights and does not price
    latents yet, so a file with them would overshoot its target by their bytes. A first pricing (c5c01f8: the
    pilot's latent bytes reserved, the final fit's trimmed to what the budget left) lost 0.25 dB at 0.07 bpp: the
    short pilot kept a quarter of the final fit's latents (benchmarks/results/target-bpp/coded-motion.md)."""
    preset = config.preset
    if not (preset.latent_channels and isinstance(config.quantization, ByteBudget) and config.network != "none"):
        return config
    say("--target-bpp: the rate plan does not price per-frame latents yet; fitting the network without them")
    return replace(config, preset=replace(preset, latent_channels=0, latent_cell=0))


def _network_or_floor_at_its_rate(config: EncodeConfig, videos: Sequence[_Video], n_pixels: int, output: Path,
                                  workdir: Path, store: FrameStore, started: float, device: str,
                                  say: Callable[[str], None], network: EncodeReport,
                                  progress: bool = False) -> EncodeReport:
    """``--network auto``, after the network's file is written at ``output``: the motion floor at that file's
    rate (``--network none --target-bpp``: ``plan_floor_target``, which lands at or under it, so the
    comparison favours the network by the floor's unspent bytes), written beside it; the file that
    decodes better is kept at ``output`` and its report returned."""
    floor_out = output.with_name(output.name + ".floor.tmp")
    floor_dir = workdir / "floor"                 # its keyframes' cache apart from the network's
    floor_dir.mkdir(parents=True, exist_ok=True)
    say(f"network: {network.psnr:.2f} dB at {network.bpp:.4f} bpp; coding the motion floor at that rate")
    try:
        floor = _encode_motion_floor(replace(config, network="none", quantization=ByteBudget(network.bpp)), videos,
                                     n_pixels, floor_out, floor_dir, store, started, device, say, progress=progress)
    except BaseException:
        floor_out.unlink(missing_ok=True)
        raise
    keep_floor = floor.psnr > network.psnr
    say(f"the network: {network.psnr:.2f} dB at {network.bpp:.4f} bpp; the motion floor at the same rate: "
        f"{floor.psnr:.2f} dB at {floor.bpp:.4f} bpp: keeping the {'floor' if keep_floor else 'network'}")
    if not keep_floor:
        floor_out.unlink()
        return network
    os.replace(floor_out, output)
    return replace(floor, output=str(output), seconds=time.monotonic() - started)


def _write(output: Path, metadata: dict, segments, tensors, motion=None, keyframes=None) -> int:
    """``write_nvc``, with a failure at the user's output path (full disk, no permission) as a user error."""
    try:
        return write_nvc(output, metadata, segments, tensors, motion=motion, keyframes=keyframes)
    except OSError as exc:
        raise NvcInputError(f"cannot write {output}: {exc.strerror or exc}") from exc


def _encode_motion_floor(config: EncodeConfig, videos: Sequence[_Video], n_pixels: int, output: Path, workdir: Path,
                         store: FrameStore, started: float, device: str, say: Callable[[str], None],
                         progress: bool = False) -> EncodeReport:
    """``--network none``: keyframes + one MOTN per video, metadata ``model: {}`` (FORMAT.md section 13);
    no fit, no weights. The measuring decode is the decoder's floor path. A byte budget chooses the
    keyframe quality and the motion together (``nvcodec.rate.plan_floor_target``)."""
    interval, kf_codec = config.keyframe_interval, config.keyframe_codec
    motion = None
    if isinstance(config.quantization, ByteBudget):
        kf_codec, alloc = plan_floor_target(
            config.quantization.target_bpp, n_pixels, kf_codec,
            lambda codec: keyframe_bytes([v.frames for v in videos], interval, codec, [v.keyframes for v in videos]),
            _allocation_at(videos, interval, store), say)
        motion = alloc.motion
    say(f"keyframes: {kf_codec.codec} ({kf_codec.encoder}) {kf_codec.mode}, quality {kf_codec.quality}, "
        f"one every {interval} frames; no network: the motion floor")
    segments, decoded_kf = _code_keyframes(videos, interval, kf_codec, workdir / "keyframes", store)
    if motion is None:
        motion = _estimate_motion(videos, decoded_kf, interval, say, kf_codec, segments)
    # The tile means nothing without a network; the metadata requires one: the preset's.
    metadata = _metadata(videos, interval, kf_codec, {}, config.preset.tile, {"preset": config.preset.name,
                                                                           "network": "none"})
    n_bytes = _write(output, metadata, segments, [], motion=motion, keyframes=[v.keyframes for v in videos])
    report = _report(output, n_bytes, n_pixels, videos, decoded_kf, interval, [], config.preset.name, started, device,
                     progress=progress)
    return replace(report, motion_psnr=report.psnr)            # the decoded file is the motion floor


def _estimate_motion(videos: Sequence[_Video], decoded_kf, interval: int, say: Callable[[str], None],
                     kf_codec: KeyframeCodec | None = None, segments: Sequence[KeyframeSegment] = ()) -> list:
    """Each video's coded motion (FORMAT.md section 14), estimated on whole frames against its decoded
    keyframes, one video's frames in memory at a time. Without ``kf_codec``: the default
    ``MotionConfig``. With it (the keyframes' codec, their ``segments``): each video's grid and step
    chosen among MOTION_CANDIDATES at the price of a keyframe bit (``nvcodec.rate.allocate_motion``)."""
    if kf_codec is None:
        default = MOTION_CANDIDATES[0]
        say(f"motion: {default.grid}x{default.grid} cells, step {default.step_qpel}/4 pixel, {default.interp}")
        return [estimate_video(v.frames.read(), np.asarray(kf), interval, default, v.keyframes)
                for v, kf in zip(videos, decoded_kf)]
    return _priced_motion(videos, decoded_kf, interval, say, kf_codec, segments).motion


def _priced_motion(videos: Sequence[_Video], decoded_kf, interval: int, say: Callable[[str], None],
                   kf_codec: KeyframeCodec, segments: Sequence[KeyframeSegment]) -> MotionAllocation:
    """``_allocate_motion``, said: the price of a bit and the grid and step each video took."""
    alloc = _allocate_motion(videos, decoded_kf, interval, kf_codec, segments)
    counts = {c: alloc.chosen.count(c) for c in MOTION_CANDIDATES if c in alloc.chosen}
    say(f"motion: keyframe slope measured at quality {kf_codec.quality} vs {alloc.probe_quality}: a bit costs "
        f"{alloc.lam:.1f} of squared error; grid/step per video: "
        + ", ".join(f"{c.grid}px step {c.step_qpel}/4 x{n}" for c, n in counts.items()))
    return alloc


def _motion_bytes(motion) -> int:
    """The bytes of the MOTN chunks of ``motion`` (one VideoMotion per video; None: none) in the file."""
    return sum(motion_chunk_n_bytes(v, m) for v, m in enumerate(motion or ()))


def _allocation_at(videos: Sequence[_Video], interval: int,
                   store: FrameStore) -> Callable[[KeyframeCodec], tuple[MotionAllocation, int]]:
    """The rate plans' ``allocate(codec)``: (``_allocate_motion`` against the keyframes coded with ``codec``,
    its chunks' bytes); each codec's decoded keyframes replace the last's in the frame ``store``."""
    def allocate(codec: KeyframeCodec) -> tuple[MotionAllocation, int]:
        segments, decoded = _code_keyframes(videos, interval, codec, None, store)
        alloc = _allocate_motion(videos, decoded, interval, codec, segments)
        return alloc, _motion_bytes(alloc.motion)

    return allocate


def _allocate_motion(videos: Sequence[_Video], decoded_kf, interval: int, kf_codec: KeyframeCodec,
                     segments: Sequence[KeyframeSegment]) -> MotionAllocation:
    """``nvcodec.rate.allocate_motion`` on the encoder's videos; a quality scale too short for a probe
    (none of the codecs has one) leaves bits unpriced: each video then takes its least-error motion."""
    probe_q = probe_quality(kf_codec)
    kf_bytes = [sum(len(s.data) for s in segments if s.video == v) for v in range(len(videos))]

    def probe(v: int) -> tuple[int, np.ndarray]:
        if probe_q is None:                    # the keyframes themselves: no bits saved, so no price
            return kf_bytes[v], np.asarray(decoded_kf[v])
        coded, decoded = _code_video_keyframes(videos[v], replace(kf_codec, quality=probe_q))
        return sum(len(data) for *_, data in coded), decoded

    return allocate_motion([(v.frames.read, v.keyframes) for v in videos], interval, decoded_kf, kf_bytes, probe,
                           kf_codec.quality if probe_q is None else probe_q)


def _keyframe_price(videos: Sequence[_Video], interval: int, codec: KeyframeCodec) -> tuple[float, int]:
    """The price of a bit (``nvcodec.rate.keyframe_price``) with the keyframes coded by ``codec``, and
    their bytes: each video's keyframes coded at its quality and at ``probe_quality``'s, one video's at a
    time. No quality to probe leaves bits unpriced (0)."""
    probe_q = probe_quality(codec)
    n_bytes = [0] * len(videos)

    def coded(v: int) -> tuple[int, np.ndarray, int, np.ndarray]:
        out = []
        for c in (codec, replace(codec, quality=codec.quality if probe_q is None else probe_q)):
            segments, decoded = _code_video_keyframes(videos[v], c)
            out += [sum(len(data) for *_, data in segments), decoded]
        n_bytes[v] = out[0]
        return tuple(out)

    lam = keyframe_price([(v.frames.read, v.keyframes) for v in videos], interval, coded)[0]
    return lam, sum(n_bytes)


def _warped_inputs(videos: Sequence[_Video], decoded_kf, motion, interval: int, store: FrameStore | None) -> list:
    """Each video's clips' motion-warped keyframes (``motion.warped_video``), the inputs of a network that
    consumes coded motion, one video at a time. With ``store`` (every rank) each video's go to the frame
    store and the fit reads a batch's clips from there (``store.ClipWarped``): twice the frames' size, not held."""
    out = []
    for v, (video, kf, m) in enumerate(zip(videos, decoded_kf, motion)):
        warped = warped_video(np.asarray(kf), m, len(video.frames), interval, video.keyframes)
        out.append(warped if store is None else store.hold_warped(v, warped))
    return out


def _clips(videos: Sequence[_Video], decoded_kf, motion, interval: int, model_cfg: ModelConfig,
           store: FrameStore) -> ClipSet:
    """The fit's clips of every video; with ``motion`` (a network that consumes it) its warped keyframes,
    held in the frame ``store`` (the last ones there are replaced)."""
    warped = None if motion is None else _warped_inputs(videos, decoded_kf, motion, interval, store)
    return build_clipset([(v.frames, kf, len(v.frames)) for v, kf in zip(videos, decoded_kf)], interval,
                         model_cfg.tile_h, model_cfg.tile_w, warped=warped, positions=[v.keyframes for v in videos],
                         rows=bool(model_cfg.latent_channels))


def _refine_motion(model_cfg: ModelConfig, result, videos: Sequence[_Video], decoded_kf, motion, interval: int,
                   price: float, iters: int, device: str, say: Callable[[str], None],
                   progress: bool = False) -> tuple[list, dict]:
    """Each video's motion refined through the fitted network at the keyframes' price of a bit
    (``nvcodec.motion_fit``), said (the clips it changed, the in-between frames' PSNR and the motion's bytes),
    and what the file's fit info records of it."""
    from nvcodec.model import DNeRV
    from nvcodec.motion_fit import refine_videos
    from nvcodec.runtime import as_device, progress_bar

    dev = as_device(device)
    model = DNeRV(model_cfg)
    model.load_state_dict(result.state_dict)
    model.to(dev)
    n_clips = sum(sum(1 for q in m.clips if q.shape[0]) for m in motion)
    bar = progress_bar(n_clips, "motion through the network", enabled=progress, unit="clip")

    def on_clip(s) -> None:
        bar.update(s.clips - bar.n)
        bar.set_postfix(changed=s.changed, gain=f"{s.psnr_after - s.psnr_before:+.3f}dB",
                        refresh=False)

    try:
        refined, s = refine_videos(model, [(v.frames.read, kf, v.keyframes) for v, kf in zip(videos, decoded_kf)],
                                   interval, motion, price, iters, device=dev, on_clip=on_clip)
    finally:
        bar.close()
    say(f"motion refined through the network ({iters} steps a clip): {s.changed} of {s.clips} clips changed; "
        f"the network's in-between frames {s.psnr_before:.2f} -> {s.psnr_after:.2f} dB, "
        f"motion {s.bits_before // 8} -> {s.bits_after // 8} bytes")
    return refined, {"motion_iters": iters, "motion_clips_changed": s.changed}


def _motion_floor_psnr(videos: Sequence[_Video], decoded_kf, interval: int, motion=None) -> float:
    """PSNR of the motion floor on the frames as coded: what a network must beat. ``motion``: the
    file's coded motion; None (a network without it): estimated here with the default MotionConfig.
    One video's frames in memory at a time."""
    from nvcodec.metrics import psnr_per_frame

    if motion is None:
        motion = _estimate_motion(videos, decoded_kf, interval, lambda _msg: None)
    scores = []
    for v, kf, m in zip(videos, decoded_kf, motion):
        frames = v.frames.read()
        scores.append(psnr_per_frame(frames, floor_video(np.asarray(kf), m, len(frames), interval, v.keyframes)))
    return float(np.mean(np.concatenate(scores)))


def _as_config(config: EncodeConfig | str) -> EncodeConfig:
    from nvcodec.presets import build_config

    if isinstance(config, str):
        return build_config(config)
    if not isinstance(config, EncodeConfig):
        raise TypeError(f"config: expected an EncodeConfig or a preset name, got {type(config).__name__}")
    return config


def _config_json(config: EncodeConfig) -> dict:
    """The config as JSON-able data (for the resume digest), the quantization variant named."""
    return {**asdict(config), "quantization": {"kind": type(config.quantization).__name__,
                                               **asdict(config.quantization)}}


def _check_output(output: str | os.PathLike, force: bool) -> Path:
    """Refuse an output path now, not after minutes of fitting."""
    output = Path(output)
    if output.exists() and not force:
        raise NvcInputError(f"{output} exists; pass --force to overwrite it")
    if output.is_dir():
        raise NvcInputError(f"{output} is a folder; give a file name such as out.nvc")
    if not output.parent.is_dir():
        raise NvcInputError(f"the folder of {output} does not exist")
    return output


def _check_fps(fps) -> Fraction | None:
    if fps is None:
        return None
    fps = Fraction(fps)
    if fps <= 0:
        raise NvcInputError(f"fps must be positive, got {fps}")
    return fps


def _plan_network(config: EncodeConfig, videos: Sequence[_Video], n_pixels: int, device: str, workdir: Path,
                  ctx, say: Callable[[str], None], store: FrameStore) -> tuple[KeyframeCodec, ModelConfig,
                                                                               TargetPlan | None]:
    """(keyframe codec, network, the rate plan or None): the preset's sizing, or, for a byte budget, the
    rate plan's joint choice (``nvcodec.rate.plan_target``), with the motion it reserved bytes for. Each
    candidate's decoded and warped keyframes are held in the frame ``store`` (the next candidate's replace
    them there)."""
    interval = config.keyframe_interval
    if not isinstance(config.quantization, ByteBudget):
        return config.keyframe_codec, config.preset.model_config(n_pixels, clip_length=interval), None
    plan = plan_target([v.frames for v in videos], interval, config.keyframe_codec, config.preset,
                       config.quantization.target_bpp, n_pixels,
                       decode_keyframes=lambda codec: _code_keyframes(videos, interval, codec, None, store)[1],
                       price=lambda codec: _keyframe_price(videos, interval, codec),
                       device=device, workdir=workdir, ctx=ctx, say=say, keyframes=[v.keyframes for v in videos],
                       allocate=_allocation_at(videos, interval, store) if config.preset.motion else None,
                       hold_warped=store.hold_warped, keyframe_quality=config.quantization.keyframe_quality)
    return plan.keyframe_codec, plan.model_config, plan


def _quantize(config: EncodeConfig, model_cfg: ModelConfig, result, clips, n_pixels: int,
              budget_bytes: float | None, device: str, say: Callable[[str], None], quiet: bool,
              price: float | None = None, videos: Sequence[_Video] = ()):
    """The coded tensors and what the file's fit info says about their quantization. ``price``: the
    keyframes' price of a bit (squared error per bit), at which ``PricedQuant`` quantizes
    (``nvcodec.rate.weight_lambda``; its fallback where it is 0 or unmeasured)."""
    q = config.quantization
    if isinstance(q, PostTrainingQuant):
        tensors = quantize_state({name: t.numpy() for name, t in result.state_dict.items()}, q.bits)
        return tensors, {"quant_bits": q.bits}
    from nvcodec.qat import rate_aware_quantize

    preset = config.preset
    qat_steps = round(preset.qat_fraction * result.steps)
    lam = q.rate_lambda if isinstance(q, RateAwareQuant) else None
    priced = {}
    if isinstance(q, PricedQuant):
        lam = q.fallback_lambda
        if price:
            lam = weight_lambda(price, inbetween_fraction([v.frames for v in videos], config.keyframe_interval,
                                                          [v.keyframes for v in videos]))
            priced = {"price": float(f"{price:.6g}")}
        say(f"weights priced as keyframes: a bit costs {price or 0:.1f} of squared error, lambda {lam:.3g}"
            + ("" if price else " (no price measured: the preset's)"))
    choice = rate_aware_quantize(model_cfg, result.state_dict, clips, n_pixels=n_pixels, lam=lam,
                                 budget_bytes=budget_bytes, qat_steps=qat_steps, lr=0.1 * preset.fit.lr,
                                 batch_size=preset.fit.batch_size, seed=preset.fit.seed, device=device, log=say,
                                 progress=not quiet)
    return choice.tensors, {"quantization": "rate-aware", "rate_lambda": float(f"{choice.lam:.6g}"),
                            "qat_steps": qat_steps, **priced}


def _report(output: Path, n_bytes: int, n_pixels: int, videos: Sequence[_Video], decoded_kf, interval: int,
            tensors, preset_name: str, started: float, device: str, motion_psnr: float | None = None,
            progress: bool = False) -> EncodeReport:
    """Measure the written file: decode it back and compare with the frames as coded."""
    from nvcodec.decoder import measure_file

    from nvcodec.info import record_quality

    measured = measure_file(output, {v.source.name: v.frames for v in videos}, device=device, progress=progress)
    frames = [v.frames for v in videos]
    positions = [v.keyframes for v in videos]
    floor_psnr = blend_psnr(frames, decoded_kf, interval, positions)
    kf_psnr = keyframe_psnr(frames, decoded_kf, interval, positions)
    # The measured quality goes into the file (an ancillary chunk), for `nvcodec info`.
    quality = {"psnr": measured.psnr, "blend_psnr": floor_psnr, "keyframe_psnr": kf_psnr,
               "n_frames": sum(len(f) for f in frames), "n_keyframes": sum(len(kf) for kf in decoded_kf)}
    if motion_psnr is not None or not tensors:                 # without weights the file is the motion floor
        quality["motion_psnr"] = measured.psnr if motion_psnr is None else motion_psnr
    n_bytes = record_quality(output, quality)
    bytes_by_part = dict(measured.bytes_by_part)
    latents = [t for t in tensors if t.name == LATENTS]
    if latents:                 # the per-frame latents are side information, not the shared network's weights
        bytes_by_part["latents"] = tensor_chunk_n_bytes(latents[0]) - CHUNK_OVERHEAD_BYTES
        bytes_by_part["weights"] -= bytes_by_part["latents"]
    bytes_by_part["container"] += n_bytes - sum(bytes_by_part.values())
    return EncodeReport(
        output=str(output), n_videos=len(videos), n_frames=sum(len(f) for f in frames),
        n_pixels=n_pixels, n_bytes=n_bytes, bytes_by_part=bytes_by_part,
        bpp=8.0 * n_bytes / n_pixels, psnr=measured.psnr, blend_psnr=floor_psnr, motion_psnr=motion_psnr,
        keyframe_psnr=kf_psnr, n_params=sum(int(t.q.size) for t in tensors if t.name != LATENTS),
        n_latents=sum(int(t.q.size) for t in latents),
        preset=preset_name, seconds=time.monotonic() - started, videos=measured.videos,
    )
