"""Rate-distortion benchmark: nvcodec vs x264/x265/AV1 (and NeRV) on the same RGB frames.

    python -m benchmarks.rd --corpus DIR --protocol native --size 160x128 \\
        --max-frames 300 --out benchmarks/results/NAME

Protocols: ``native`` reads each video's first N frames at its native frame rate;
``paper`` samples at 2 fps first (D-NeRV's UCF101 setup); both scale to the
coding size with ``nvcodec.media.read_frames`` (bicubic), the call nvcodec.encode
makes, so every codec is measured against exactly the same RGB frames.

Rate: pooled bpp = 8 · Σ bytes / Σ (frames × width × height) over the corpus
(anchors: the sum of the per-video raw elementary streams, settings SEI included;
nvcodec: the size of the .nvc file). Quality: :mod:`nvcodec.metrics`, mean over
all frames of the corpus. Finished points are cached under ``OUT/cache`` keyed by
codec + parameters + the frames' SHA-256 + the code revision (a hash of the source
that computes the point: ``code_revision``), so an interrupted run resumes and a
point made by older code is never reused.

``--reuse-points OLD/results.json`` carries over the points of every codec this run
does not compute (e.g. nvcodec and NeRV points measured on a GPU machine, when only
new anchors are run here). It refuses a file whose frames hash differs from this
corpus's, and marks each carried point with ``reused_from`` (the file, its date and
command), so a table shows which points this invocation measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shlex
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks import anchors, report
from benchmarks.reference import reference_check
from benchmarks.bd import bd_compare
from nvcodec import metrics

HARNESS_VERSION = 1           # bump when a point's meaning changes (invalidates the cache)
PROTOCOLS = {"native": None, "paper": Fraction(2)}   # protocol -> sampling fps (None: native)
DEFAULT_NVCODEC_PRESETS = ("fast", "small", "medium")
BD_ANCHORS = ("x264-medium", "x264-veryslow", "x265-medium", "svtav1-p6", "aom-c6", "nerv",
              "nerv-star")   # nerv-star: NeRV*


class StoredFrames(Mapping):
    """name -> (N, H, W, 3) uint8 RGB, each video read from the frame store (``nvcodec.store``) when it
    is looked up: the corpus is never in memory, one video at a time is (as long as callers drop it)."""

    def __init__(self, names: list[str], videos) -> None:
        self._videos = dict(zip(names, videos))          # name -> store.StoredVideo

    def __getitem__(self, name: str) -> np.ndarray:
        return self._videos[name].read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._videos)

    def __len__(self) -> int:
        return len(self._videos)

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self._videos[name].shape


@dataclass
class Corpus:
    """The benchmark's frames: read once, shared by every codec."""
    path: Path
    names: list[str]
    frames: Mapping[str, np.ndarray]     # name -> (N, H, W, 3) uint8 RGB (a StoredFrames: read on demand)
    fps: dict[str, Fraction]             # coded frame rate per video
    sha256: str

    def shape_of(self, name: str) -> tuple[int, ...]:
        shape_of = getattr(self.frames, "shape_of", None)
        return shape_of(name) if shape_of is not None else self.frames[name].shape

    @property
    def n_frames(self) -> int:
        return sum(self.shape_of(n)[0] for n in self.names)

    @property
    def n_pixels(self) -> int:
        return sum(int(np.prod(self.shape_of(n)[:3])) for n in self.names)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be >= 1x1, got {text!r}")
    return w, h


def _frames_sha256(names, frames, fps) -> str:
    h = hashlib.sha256()
    for name in names:
        video = frames[name]                   # one video in memory at a time
        h.update(f"{name}\0{video.shape}\0{fps[name]}\0".encode())
        h.update(np.ascontiguousarray(video).data)
    return h.hexdigest()


def read_corpus(corpus: Path, protocol: str, size: tuple[int, int], max_frames: int | None,
                cache_dir: Path | None = None, log=print) -> Corpus:
    """Scan ``corpus`` like nvcodec.encode does and read every video's frames once.

    With ``cache_dir`` the frames go to a frame store there (``nvcodec.store.open_store``, the
    encoder's: keyed by the files' sizes and mtimes and the reading parameters, since decoding
    1080p sources dominates a rerun) and ``frames`` reads one video at a time from it
    (``StoredFrames``); without it they are held in memory."""
    from nvcodec.corpus import scan
    from nvcodec.media import read_frames
    from nvcodec.store import open_store

    fps_sample = PROTOCOLS[protocol]
    sources = scan([corpus], warn=lambda msg: log(f"  {msg}"))
    fps = {s.name: fps_sample if fps_sample is not None else s.info.fps for s in sources}
    names = [s.name for s in sources]
    if cache_dir is not None:
        store = open_store(Path(cache_dir) / "frames", sources, size=size, fps=fps_sample, max_frames=max_frames,
                           log=lambda msg: log(f"  {msg}"))
        frames: Mapping[str, np.ndarray] = StoredFrames(names, store.videos)
    else:
        frames = {s.name: np.stack(list(read_frames(s.path, size=size, fps=fps_sample, max_frames=max_frames)))
                  for s in sources}
    for s in sources:
        shape = frames.shape_of(s.name) if isinstance(frames, StoredFrames) else frames[s.name].shape
        log(f"  {s.name}: {s.info.width}x{s.info.height} @ {float(s.info.fps):.3f} fps -> {shape[0]} frames")
    return Corpus(Path(corpus), names, frames, fps, _frames_sha256(names, frames, fps))


# ------------------------------------------------------------------ measuring

def measure(corpus: Corpus, decoded: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]], *,
            ms_ssim_stride: int) -> dict:
    """Per-frame metrics of decoded frames against the corpus -> means over all frames.

    ``decoded``: name -> frames, or (name, frames) pairs in the corpus's order, e.g. a generator that
    decodes one video at a time (then one decoded and one reference video are in memory at a time).
    MS-SSIM is computed on every ``ms_ssim_stride``-th frame of each video (1 = all)."""
    pairs = ((n, decoded[n]) for n in corpus.names) if isinstance(decoded, Mapping) else iter(decoded)
    per = {"psnr": [], "y_psnr": [], "yuv_psnr": [], "ms_ssim": []}
    per_video = []
    for name in corpus.names:
        got, dist = next(pairs, (None, None))
        if got != name:
            raise ValueError(f"decoded videos out of step with the corpus: expected {name!r}, got {got!r}")
        ref = corpus.frames[name]
        if dist.shape != ref.shape:
            raise ValueError(f"{name}: decoded {dist.shape}, reference {ref.shape}")
        psnr = metrics.psnr_per_frame(ref, dist)
        per["psnr"].append(psnr)
        per["y_psnr"].append(metrics.y_psnr_per_frame(ref, dist))
        per["yuv_psnr"].append(metrics.yuv_psnr_per_frame(ref, dist))
        if ms_ssim_stride > 0:
            per["ms_ssim"].append(metrics.ms_ssim_per_frame(ref[::ms_ssim_stride], dist[::ms_ssim_stride]))
        per_video.append({"name": name, "n_frames": len(ref), "psnr": float(psnr.mean())})
    out = {k: float(np.mean(np.concatenate(v))) if v else None for k, v in per.items()}
    out["per_video"] = per_video
    return out


def code_revision(codec: str) -> str:
    """SHA-256 (first 16 hex digits) of the Python source behind ``codec``'s points.

    nvcodec points depend on the whole package (``nvcodec``, its ``bitstream`` and this
    harness); anchor points on the anchors, the media and metrics code and this harness.
    A content hash rather than a commit id, so uncommitted edits count too.
    """
    import nvcodec
    import nvcodec.bitstream

    here = Path(__file__).parent
    if codec == "nvcodec":
        roots = [Path(nvcodec.__file__).parent, Path(nvcodec.bitstream.__file__).parent]
        files = sorted({f for root in roots for f in root.rglob("*.py")})
    else:
        package = Path(nvcodec.__file__).parent
        files = [package / "media.py", package / "metrics.py", package / "color.py"]
    files += [here / "rd.py", here / "anchors.py", here / "nerv.py"]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _key(codec: str, params: dict, corpus: Corpus, ms_ssim_stride: int) -> str:
    blob = json.dumps([HARNESS_VERSION, codec, params, corpus.sha256, ms_ssim_stride, code_revision(codec)],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _append_history(cache_dir: Path, entry: dict) -> list[dict]:
    """Every invocation's wall time (a resumed run's own wall time hides the earlier ones)."""
    path = cache_dir / "runs.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(entry)
    report.write_json(path, runs)
    return runs


def cached_point(cache_dir: Path, codec: str, params: dict, corpus: Corpus, ms_ssim_stride: int,
                 compute, log=print, counter: list | None = None) -> dict:
    """The point from the cache, or computed by ``compute()`` and cached (atomically)."""
    path = cache_dir / "points" / f"{codec}-{_key(codec, params, corpus, ms_ssim_stride)}.json"
    if path.exists():
        point = json.loads(path.read_text())
        log(f"  {point['codec']} {point['label']}: cached ({point['bpp']:.4f} bpp, {point['psnr']:.2f} dB)")
        return point
    started = time.perf_counter()
    if counter is not None:
        counter[0] += 1
    point = compute()
    point["wall_s"] = time.perf_counter() - started        # everything: encode, decode, metrics
    report.write_json(path, point)
    log(f"  {point['codec']} {point['label']}: {point['bpp']:.4f} bpp, {point['psnr']:.2f} dB, "
        f"MS-SSIM {point['ms_ssim'] if point['ms_ssim'] is None else round(point['ms_ssim'], 4)}, "
        f"encode {point['encode_s']:.1f} s")
    return point


def anchor_point(corpus: Corpus, anchor: str, crf: int, work: Path, ms_ssim_stride: int) -> dict:
    """One CRF of one anchor over the whole corpus: one stream per video."""
    suffix = anchors.ANCHORS[anchor][3]
    n_bytes, sei, enc_s, dec_s, per_video_bytes, cmd = 0, 0, 0.0, 0.0, {}, None

    def decoded():                            # one video coded, decoded and measured at a time
        nonlocal n_bytes, sei, enc_s, dec_s, cmd
        for i, name in enumerate(corpus.names):
            res = anchors.code_stream(corpus.frames[name], anchor, crf, corpus.fps[name],
                                      work / f"{anchor}-crf{crf}-{i}{suffix}")
            n_bytes += res.n_bytes
            sei += res.settings_sei_bytes
            enc_s += res.encode_s
            dec_s += res.decode_s
            per_video_bytes[name] = res.n_bytes
            cmd = res.command
            (work / f"{anchor}-crf{crf}-{i}{suffix}").unlink()
            yield name, res.frames

    m = measure(corpus, decoded(), ms_ssim_stride=ms_ssim_stride)
    for v in m["per_video"]:
        v["n_bytes"] = per_video_bytes[v["name"]]
    return {"codec": anchor, "label": f"crf{crf}", "params": {"crf": crf},
            "n_bytes": n_bytes, "settings_sei_bytes": sei, "n_streams": len(corpus.names),
            "n_frames": corpus.n_frames, "n_pixels": corpus.n_pixels,
            "bpp": metrics.bits_per_pixel(n_bytes, corpus.n_pixels),
            "psnr": m["psnr"], "y_psnr": m["y_psnr"], "yuv_psnr": m["yuv_psnr"], "ms_ssim": m["ms_ssim"],
            "encode_s": enc_s, "decode_s": dec_s, "decode_fps": corpus.n_frames / dec_s if dec_s else None,
            "command_example": shlex.join(cmd[:-1] + ["OUT"]), "per_video": m["per_video"]}


def parse_rate_point(spec: str) -> tuple[str, dict[str, int | float]]:
    """'small' or 'small:keyframe_quality=44:quant_bits=6' -> (preset, encode() settings)."""
    preset, *pairs = spec.split(":")
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in RATE_POINT_SETTINGS:
            raise ValueError(f"rate point {spec!r}: expected PRESET[:KEY=VALUE...] with KEY in "
                             f"{tuple(RATE_POINT_SETTINGS)}")
        try:
            settings[key] = RATE_POINT_SETTINGS[key](value)
        except (KeyError, ValueError):
            raise ValueError(f"rate point {spec!r}: {key}={value!r} is not a valid value") from None
    return preset, settings


# encode() keyword -> type; rate_lambda: rate-aware quantization (nvcodec.qat); keyframe_interval: frames per
# clip (at 2 fps, the paper protocol, 8 frames are 4 s apart); network=none: the motion floor alone; motion=1: a
# network that consumes coded motion; weight_bpp / c0: the preset's network sizing; refine_width / refine_layers /
# refine_coarse: the refiner head of a motion network (ModelConfig.refine_width, 0: the paper's small head);
# motion_iters: steps per clip refining the coded motion through the fitted network (0: as estimated);
# latent_channels / latent_cell: per-frame latents given to the refiner (ModelConfig.latent_channels, 0: none)
RATE_POINT_SETTINGS = {"keyframe_quality": int, "quant_bits": int, "epochs": int, "rate_lambda": float,
                       "keyframe_interval": int, "network": str, "motion": lambda v: {"1": True, "0": False}[v],
                       "weight_bpp": float, "c0": int, "refine_width": int, "refine_layers": int,
                       "refine_coarse": int, "motion_iters": int, "latent_channels": int, "latent_cell": int}


def nvcodec_point(corpus: Corpus, spec: str, protocol: str, size, max_frames, work: Path,
                  ms_ssim_stride: int, device: str | None) -> dict:
    """One nvcodec rate point through the users' path: nvcodec.encode, then nvcodec.open(...).read()."""
    import nvcodec
    from nvcodec.runtime import resolve_device

    preset, settings = parse_rate_point(spec)
    stem = "nvcodec-" + spec.replace(":", "_").replace("=", "")
    out = work / f"{stem}.nvc"
    started = time.perf_counter()
    rep = nvcodec.encode([corpus.path], out, nvcodec.build_config(preset, seed=0, **settings), size=size,
                         fps=PROTOCOLS[protocol], max_frames=max_frames, quiet=True, force=True, device=device,
                         workdir=work / f"{stem}.work")
    encode_s = time.perf_counter() - started
    n_bytes = out.stat().st_size
    decode_s = 0.0

    def decoded():                            # one video decoded and measured at a time
        nonlocal decode_s
        for entry in nvc.videos:
            started = time.perf_counter()
            frames = nvc.read(entry.name)
            decode_s += time.perf_counter() - started
            yield entry.name, frames

    with nvcodec.open(out) as nvc:
        coded = [entry.name for entry in nvc.videos]
        if coded != corpus.names:
            raise ValueError(f"nvcodec coded videos {coded}, the benchmark read {corpus.names}")
        m = measure(corpus, decoded(), ms_ssim_stride=ms_ssim_stride)
    rep_json = rep.to_json() if hasattr(rep, "to_json") else {}
    return {"codec": "nvcodec", "label": spec, "params": {"preset": preset, **settings},
            "n_bytes": n_bytes, "settings_sei_bytes": 0, "bytes_by_part": rep_json.get("bytes_by_part"),
            "n_frames": corpus.n_frames, "n_pixels": corpus.n_pixels,
            "bpp": metrics.bits_per_pixel(n_bytes, corpus.n_pixels),
            "psnr": m["psnr"], "y_psnr": m["y_psnr"], "yuv_psnr": m["yuv_psnr"], "ms_ssim": m["ms_ssim"],
            "encode_s": encode_s, "decode_s": decode_s, "decode_fps": corpus.n_frames / decode_s,
            "device": resolve_device(device), "machine": machine_info()["summary"],   # kept when merged elsewhere
            "encode_report": rep_json, "per_video": m["per_video"],
            "command_example": f"nvcodec.encode([{str(corpus.path)!r}], OUT, nvcodec.build_config({preset!r}, seed=0"
                               + "".join(f", {k}={v}" for k, v in settings.items())
                               + f"), size={size}, fps={PROTOCOLS[protocol]}, max_frames={max_frames})"}


def nvcodec_available() -> bool:
    """True when the lead's nvcodec.encode / nvcodec.open can be imported."""
    try:
        import nvcodec

        return callable(nvcodec.encode) and callable(nvcodec.open)
    except Exception:  # noqa: BLE001 - anything missing means "not yet"
        return False


def reuse_points(path: Path, corpus: Corpus, computed: set[str],
                 nvcodec_labels: Sequence[str] = ()) -> tuple[list[dict], dict, dict | None]:
    """(points, commands, provenance) of every codec not in ``computed`` from an earlier results.json, and
    of every nvcodec point whose label (its ``--nvcodec-presets`` entry) is not in ``nvcodec_labels``,
    the ones this run measures: a table gains points of one kind (the network's) beside those it has
    (the motion floor's) without measuring those again.

    The points were measured on the frames that file hashes; a different hash means other frames
    (other corpus, size, frame count or decoder), so the file is refused."""
    try:
        old = json.loads(Path(path).read_text())
        old_sha, old_points = old["corpus"]["frames_sha256"], old["points"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"--reuse-points {path}: not a benchmarks.rd results.json ({e})") from None
    if old_sha != corpus.sha256:
        raise SystemExit(f"--reuse-points {path}: measured on frames {old_sha[:16]}, this corpus hashes to "
                         f"{corpus.sha256[:16]}: its points are of other frames")
    origin = {"results": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
              "date_utc": old.get("date_utc"), "command": old.get("command")}
    points = []
    for p in old_points:
        if p["codec"] not in computed or (p["codec"] == "nvcodec" and p.get("label") not in nvcodec_labels):
            # a point carried over twice keeps where it was measured
            points.append({**p, "reused_from": p.get("reused_from", origin)})
    codecs = sorted({p["codec"] for p in points})
    commands = {c: cmd for c, cmd in old.get("commands", {}).items() if c in codecs}
    return points, commands, ({**origin, "codecs": codecs, "n_points": len(points)} if points else None)


# ------------------------------------------------------------------ the run

def machine_info() -> dict:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    summary = f"{cpu}, {os.cpu_count()} logical CPUs" + (f", {gpu}" if gpu else ", no GPU")
    return {"summary": summary, "platform": platform.platform(), "cpu": cpu, "n_cpus": os.cpu_count(),
            "gpu": gpu, "hostname": platform.node()}


def software_versions() -> dict:
    import torch
    from importlib.metadata import version

    out = {"python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__}
    for pkg in ("nvcodec", "bjontegaard", "pytorch-msssim", "ffmpeg-python", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = "unknown"
    out.update(anchors.encoder_versions())
    return out


def peak_rss_mb() -> float:
    """Peak RSS of this process (frames, decoded copies, metrics, in-process nvcodec/NeRV).

    ffmpeg children are not reported: on Linux a forked child's ru_maxrss starts at the
    parent's size, so RUSAGE_CHILDREN says nothing about ffmpeg itself."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def metrics_summary(size: tuple[int, int], stride: int) -> str:
    scales = metrics.ms_ssim_scales(size[1], size[0])
    which = "off" if stride == 0 else ("every frame" if stride == 1 else f"every {stride}th frame")
    return ("RGB PSNR per frame (peak 255, capped at 100 dB), mean over all frames; Y and YUV 6:1:1 PSNR "
            f"from BT.601 limited-range YCbCr (float, 4:4:4); MS-SSIM with {scales} scales at this size, "
            f"on {which}")


def run(args: argparse.Namespace, log=print) -> dict:
    started = time.perf_counter()
    out_dir, cache_dir = Path(args.out), Path(args.out) / "cache"
    work = cache_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    (cache_dir / ".gitignore").write_text("# decoded frames and per-point caches: never committed\n*\n")
    log(f"reading {args.corpus} ({args.protocol}, {args.size[0]}x{args.size[1]}, max {args.max_frames} frames)")
    corpus = read_corpus(Path(args.corpus), args.protocol, args.size, args.max_frames, cache_dir, log)
    log(f"{len(corpus.names)} videos, {corpus.n_frames} frames, frames sha256 {corpus.sha256[:16]}")
    stride = args.ms_ssim_stride
    points, commands, n_computed = [], {}, [0]
    for anchor in args.anchors:
        for crf in args.crfs or anchors.default_crfs(anchor):
            p = cached_point(cache_dir, anchor, {"crf": crf}, corpus, stride,
                             lambda: anchor_point(corpus, anchor, crf, work, stride), log, n_computed)
            points.append(p)
            commands[anchor] = p["command_example"].replace(f"-crf {crf}", "-crf CRF")
    use_nvcodec = args.nvcodec_presets and nvcodec_available()
    if args.nvcodec_presets and not use_nvcodec:
        log("nvcodec.encode is not importable yet: nvcodec points skipped")
    reused = None
    if args.reuse_points:
        from benchmarks import nerv

        computed = set(args.anchors) | ({"nvcodec"} if use_nvcodec else set())
        computed |= {nerv.codec_name(m) for m in nerv.MODES} if args.nerv else set()
        old_points, old_commands, reused = reuse_points(Path(args.reuse_points), corpus, computed,
                                                        args.nvcodec_presets if use_nvcodec else ())
        points += old_points
        commands.update(old_commands)
        log(f"  {len(old_points)} points carried over from {args.reuse_points}: "
            f"{', '.join(reused['codecs']) if reused else 'none'}")
    for preset in (args.nvcodec_presets if use_nvcodec else ()):
        params = {"preset": preset, "protocol": args.protocol, "size": list(args.size),
                  "max_frames": args.max_frames, "seed": 0}
        points.append(cached_point(cache_dir, "nvcodec", params, corpus, stride,
                                   lambda: nvcodec_point(corpus, preset, args.protocol, args.size,
                                                         args.max_frames, work, stride, args.device),
                                   log, n_computed))
    if args.nerv:
        import torch

        from benchmarks import nerv

        matched = [p["bpp"] for p in points if p["codec"] == "nvcodec"]
        nerv_device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        for cfg, modes in nerv.ladder(args.nerv, matched):
            for mode in modes:
                params = {"config": cfg.to_json(), "mode": mode}
                points.append(cached_point(cache_dir, nerv.codec_name(mode), params, corpus, stride,
                                           lambda: nerv.nerv_point(corpus, cfg, mode, measure, stride,
                                                                   device=nerv_device),
                                           log, n_computed))
                commands[nerv.codec_name(mode)] = "benchmarks.nerv (in-process), see params"

    def curve(codec):
        pts = [p for p in points if p["codec"] == codec]
        return [p["bpp"] for p in pts], [p["psnr"] for p in pts]

    bd = {}
    ours = curve("nvcodec")
    if ours[0]:
        for name in BD_ANCHORS:
            ref = curve(name)
            if ref[0]:
                bd[name] = bd_compare(ref[0], ref[1], ours[0], ours[1])
    sei = {}
    for anchor in anchors.ANCHORS:           # computed or carried over
        pts = [p for p in points if p["codec"] == anchor]
        total = sum(p["settings_sei_bytes"] for p in pts)
        n_streams = sum(p["n_streams"] for p in pts)
        if pts:
            sei[anchor] = {"bytes_per_stream": total / n_streams, "n_streams": n_streams // len(pts),
                           "n_points": len(pts),
                           "bpp": metrics.bits_per_pixel(total // len(pts), corpus.n_pixels)}
    result = {
        "protocol": args.protocol,
        "bd_rate": {name: (bd[name]["bd_rate_percent"] if name in bd else None) for name in BD_ANCHORS},
        "bd": bd,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", "benchmarks.rd"] + args.argv),
        "corpus": {"path": str(corpus.path), "n_videos": len(corpus.names), "n_frames": corpus.n_frames,
                   "n_pixels": corpus.n_pixels, "width": args.size[0], "height": args.size[1],
                   "max_frames": args.max_frames, "frames_sha256": corpus.sha256,
                   "description": ("first N frames at native fps" if args.protocol == "native"
                                   else "sampled at 2 fps, first N"),
                   "videos": [{"name": n, "n_frames": corpus.shape_of(n)[0], "fps": str(corpus.fps[n])}
                              for n in corpus.names]},
        "metrics": {"summary": metrics_summary(args.size, stride),
                    "ms_ssim_stride": stride,
                    "ms_ssim_scales": metrics.ms_ssim_scales(args.size[1], args.size[0]),
                    "psnr_cap_db": metrics.PSNR_CAP_DB},
        "commands": commands,
        "reused_points": reused,
        "settings_sei": sei,
        "reference_check": reference_check(args.protocol, args.size, args.max_frames, points),
        "software": software_versions(),
        "machine": machine_info(),
        "points": points,
        "peak_rss_mb": peak_rss_mb(),
        "wall_s": time.perf_counter() - started,
    }
    result["runs"] = _append_history(cache_dir, {"date_utc": result["date_utc"], "wall_s": result["wall_s"],
                                                 "n_points": len(points), "n_computed": n_computed[0],
                                                 "peak_rss_mb": result["peak_rss_mb"]})
    report.write_json(out_dir / "results.json", result)
    report.write_csv(out_dir / "points.csv", points)
    report.write_atomic(out_dir / "results.md", report.markdown(result).encode())
    report.write_plot(out_dir / "rd.png", result)
    log(f"wrote {out_dir}/results.json, points.csv, results.md, rd.png in {result['wall_s']:.0f} s")
    return result


def _csv(kind):
    def parse(text: str):
        return [kind(v) for v in text.split(",") if v.strip()] if text.strip() else []
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rd", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="folder of videos (scanned like nvcodec encode)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="native")
    p.add_argument("--size", type=parse_size, default=(160, 128), help="coding size WIDTHxHEIGHT")
    p.add_argument("--max-frames", type=int, default=300, help="frames per video (after sampling)")
    p.add_argument("--out", required=True, help="results folder (cache under OUT/cache)")
    p.add_argument("--anchors", type=_csv(str), default=list(anchors.ANCHORS),
                   help=f"comma list from {','.join(anchors.ANCHORS)}; 'none' or '' for none (points "
                        "for other codecs only, e.g. to merge into a table whose anchors are cached)")
    p.add_argument("--crfs", type=_csv(int), default=[],
                   help="CRF ladder for every anchor (default: each anchor's own, anchors.DEFAULT_CRFS: "
                        "x264/x265 22..42, AV1 30..63)")
    p.add_argument("--reuse-points", default=None, metavar="RESULTS_JSON",
                   help="carry over the points of every codec this run does not compute from an earlier "
                        "results.json of the same frames (marked reused_from in the output)")
    p.add_argument("--nvcodec-presets", type=_csv(str), default=list(DEFAULT_NVCODEC_PRESETS),
                   help="nvcodec rate points, PRESET[:KEY=VALUE...] with KEY keyframe_quality, quant_bits, "
                        "epochs, keyframe_interval (integers) or rate_lambda (a number) (empty: none); skipped while "
                        "nvcodec.encode is not importable")
    p.add_argument("--nerv", type=_csv(str), default=[],
                   help="NeRV points NAME[:KEY=VALUE...]: NAME from benchmarks.nerv.LADDER or 'match' (one "
                        "point at each nvcodec point's bpp), KEY in target_bpp, epochs, batch_size, lr, or "
                        "mode=per-video|corpus for one mode only (default both); "
                        "empty: no NeRV points")
    p.add_argument("--ms-ssim-stride", type=int, default=1, help="MS-SSIM on every k-th frame (0: off)")
    p.add_argument("--device", default=None, help="nvcodec/NeRV device (default: cuda when present)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for metrics/NeRV")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.anchors == ["none"]:
        args.anchors = []
    for name in args.anchors:
        if name not in anchors.ANCHORS:
            raise SystemExit(f"unknown anchor {name!r}; known: {', '.join(anchors.ANCHORS)}")
    if args.max_frames < 1 or args.ms_ssim_stride < 0:
        raise SystemExit("--max-frames must be >= 1 and --ms-ssim-stride >= 0")
    import torch

    torch.set_num_threads(args.threads)
    return run(args)


if __name__ == "__main__":
    main()
