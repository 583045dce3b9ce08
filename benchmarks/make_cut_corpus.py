"""Make a corpus with known scene cuts by concatenating shots of corpus clips (no videos committed).

    nice -n 10 python -m benchmarks.make_cut_corpus --corpus ../shared/corpus --seed 1 --out /tmp/cuts1

Each source clip is read once (first ``--max-frames`` frames at ``--size``, with
``nvcodec.media.read_frames``). Each output video is a run of shots; a shot is a
contiguous stretch of one source, and consecutive shots come from different sources or
from the same source at least ``SAME_SOURCE_GAP`` frames apart (a hard cut: same scene
colours, another moment). Besides ``--n-videos`` random videos the corpus holds the edge
cases nvcodec's keyframe placement must handle: ``all_cuts`` (every frame its own shot),
``cut_at_1`` (a one-frame first shot), ``cut_at_last`` (a one-frame last shot) and
``one_frame``. Videos are written with ``nvcodec.media.VideoWriter`` (mp4, x264
``--crf``), so a detector sees decoded, lossy frames, as the encoder would.

``OUT/cuts.json`` records, per video, ``n_frames``, ``fps`` and ``cuts`` (the first frame of
every shot but the first) and the shots (source, first source frame, length). The same
seed, corpus and ffmpeg give the same shots (the shot list does not depend on ffmpeg).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from benchmarks import report
from nvcodec.corpus import scan
from nvcodec.media import VideoWriter, read_frames

SAME_SOURCE_GAP = 60        # frames between two shots of one source
FPS = 25
SHOT_FRAMES = (3, 60)       # random shot lengths, inclusive


def plan_video(rng: np.random.Generator, lengths: dict[str, int], n_shots: int) -> list[tuple[str, int, int]]:
    """``n_shots`` shots (source, first frame, n_frames): random lengths, a new source or a far jump at each cut."""
    names = sorted(lengths)
    shots: list[tuple[str, int, int]] = []
    for _ in range(n_shots):
        for _attempt in range(100):
            name = names[rng.integers(len(names))]
            n = int(min(rng.integers(SHOT_FRAMES[0], SHOT_FRAMES[1] + 1), lengths[name]))
            first = int(rng.integers(0, lengths[name] - n + 1))
            if not shots or shots[-1][0] != name or abs(first - shots[-1][1]) >= SAME_SOURCE_GAP + shots[-1][2]:
                shots.append((name, first, n))
                break
    return shots


def edge_cases(rng: np.random.Generator, lengths: dict[str, int]) -> dict[str, list[tuple[str, int, int]]]:
    """The videos every keyframe-placement test needs: all cuts, a cut at 1, a cut at the last frame, one frame."""
    names = sorted(lengths)
    picks = [names[i] for i in rng.permutation(len(names))]
    long = [n for n in picks if lengths[n] >= 40]
    return {"all_cuts": [(n, 0, 1) for n in picks[:12]],
            "cut_at_1": [(long[0], 0, 1), (long[1], 0, 39)],
            "cut_at_last": [(long[2], 0, 39), (long[3], 0, 1)],
            "one_frame": [(long[4], 0, 1)]}


def cuts_of(shots: list[tuple[str, int, int]]) -> list[int]:
    """First frame of every shot but the first."""
    return [int(x) for x in np.cumsum([n for _, _, n in shots])[:-1]]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.make_cut_corpus", description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-videos", type=int, default=8)
    ap.add_argument("--n-shots", type=int, default=8, help="shots per random video")
    ap.add_argument("--size", default="160x128")
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--crf", type=int, default=18)
    args = ap.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    sources = {s.name: s.path for s in scan([args.corpus], warn=lambda msg: None)}
    frames = {name: np.stack(list(read_frames(path, size=(width, height), max_frames=args.max_frames)))
              for name, path in sources.items()}
    lengths = {name: len(f) for name, f in frames.items()}
    rng = np.random.default_rng(args.seed)
    videos = {f"cuts_{args.seed}_{k:02d}": plan_video(rng, lengths, args.n_shots) for k in range(args.n_videos)}
    videos.update({f"{name}_{args.seed}": shots for name, shots in edge_cases(rng, lengths).items()})
    truth = {}
    for name, shots in videos.items():
        with VideoWriter(args.out / f"{name}.mp4", "mp4", width, height, FPS, 1, crf=args.crf) as w:
            for src, first, n in shots:
                for frame in frames[src][first:first + n]:
                    w.write(frame)
        truth[f"{name}.mp4"] = {"n_frames": sum(n for *_, n in shots), "fps": FPS, "cuts": cuts_of(shots),
                                "shots": [{"source": s, "first": f, "n_frames": n} for s, f, n in shots]}
    result = {"command": shlex.join(["python", "-m", "benchmarks.make_cut_corpus",
                                     *(sys.argv[1:] if argv is None else argv)]),
              "seed": args.seed, "size": args.size, "crf": args.crf, "videos": truth}
    report.write_json(args.out / "cuts.json", result)
    print(f"wrote {len(truth)} videos, {sum(len(v['cuts']) for v in truth.values())} cuts to {args.out}")
    return result


if __name__ == "__main__":
    main()
