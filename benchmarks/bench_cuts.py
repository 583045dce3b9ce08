"""The cut detector (nvcodec.cuts), measured: misses and false alarms, frame-exact.

    nice -n 10 python -m benchmarks.bench_cuts --cut-corpus /tmp/cuts1 --plain ../shared/corpus \\
        --out benchmarks/results/cuts

``--cut-corpus``: a folder from ``benchmarks.make_cut_corpus`` (its ``cuts.json`` is the
truth); a detection counts only on the exact first frame of a shot. ``--plain``: corpus
clips, read the way the RD tables read them (first ``--max-frames`` frames at ``--size``),
whose every detection is listed for a person to check (an edited clip has real cuts), with
the ``N_TOP`` highest-scoring transitions it did not call a cut (where a miss would hide);
``--plain-truth`` names a JSON {clip: [cut frames]} of the cuts a person found there. For
each generated corpus the score margin is given too: the lowest score at a true cut and
the highest elsewhere, against ``CutDetector``'s thresholds.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks import report
from nvcodec.corpus import scan
from nvcodec.cuts import CutDetector, cuts_from_scores, transition_scores
from nvcodec.media import read_frames


N_TOP = 8         # undetected transitions listed per set


def score_clip(path: Path, size: tuple[int, int] | None, max_frames: int | None) -> np.ndarray:
    return transition_scores(read_frames(path, size=size, max_frames=max_frames))


def evaluate(truth: dict[str, list[int]], scores: dict[str, np.ndarray], detector: CutDetector) -> dict:
    """Per video and in total: detected, missed and false cuts against ``truth``."""
    videos, n_true, n_missed, n_false = {}, 0, 0, 0
    for name, s in scores.items():
        found, real = set(cuts_from_scores(s, detector)), set(truth.get(name, []))
        missed, false = sorted(real - found), sorted(found - real)
        videos[name] = {"n_transitions": len(s), "cuts": sorted(real), "detected": sorted(found),
                        "missed": missed, "false_alarms": false}
        n_true, n_missed, n_false = n_true + len(real), n_missed + len(missed), n_false + len(false)
    n_transitions = sum(len(s) for s in scores.values())
    # the highest-scoring transitions nobody called a cut: where a missed cut would be, for a person to check
    quiet = sorted(((float(v), name, i + 1) for name, s in scores.items() for i, v in enumerate(s)
                    if i + 1 not in set(videos[name]["detected"]) | set(videos[name]["cuts"])), reverse=True)
    return {"n_videos": len(scores), "n_transitions": n_transitions, "n_cuts": n_true, "n_missed": n_missed,
            "n_false_alarms": n_false, "videos": videos,
            "top_undetected": [{"video": name, "frame": i, "score": v} for v, name, i in quiet[:N_TOP]]}


def margin(truth: dict[str, list[int]], scores: dict[str, np.ndarray]) -> dict:
    """Lowest score at a true cut and highest at a non-cut (the separation the thresholds sit in)."""
    at_cut, elsewhere = [], []
    for name, s in scores.items():
        real = set(truth.get(name, []))
        for i, v in enumerate(s):
            (at_cut if i + 1 in real else elsewhere).append(float(v))
    return {"min_at_cut": min(at_cut) if at_cut else None, "max_elsewhere": max(elsewhere) if elsewhere else None,
            "n_at_cut": len(at_cut), "n_elsewhere": len(elsewhere)}


def markdown(result: dict) -> str:
    d = result["detector"]
    lines = ["# Cut detector (nvcodec.cuts)", "", f"- date (UTC): {result['date_utc']}",
             f"- command: `{result['command']}`",
             f"- detector: threshold {d['threshold']}, ratio {d['ratio']}, window {d['window']}, "
             f"sure_threshold {d['sure_threshold']}", "",
             "| set | videos | transitions | cuts | missed | false alarms |", "|---|---:|---:|---:|---:|---:|"]
    for label, ev in result["sets"].items():
        lines.append(f"| {label} | {ev['n_videos']} | {ev['n_transitions']} | {ev['n_cuts']} | {ev['n_missed']} | "
                     f"{ev['n_false_alarms']} |")
    for label, ev in result["sets"].items():
        lines += ["", f"## {label}", ""]
        if "margin" in ev:
            m = ev["margin"]
            lines.append(f"- lowest score at a cut {m['min_at_cut']}, highest elsewhere {m['max_elsewhere']}")
        lines.append("- highest undetected transitions: " + ", ".join(
            f"{t['video']} frame {t['frame']} ({t['score']:.4f})" for t in ev["top_undetected"]))
        for name, v in ev["videos"].items():
            if v["missed"] or v["false_alarms"] or v["detected"]:
                lines.append(f"- {name}: cuts {v['cuts']}, detected {v['detected']}, missed {v['missed']}, "
                             f"false alarms {v['false_alarms']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_cuts", description=__doc__.splitlines()[0])
    ap.add_argument("--cut-corpus", type=Path, action="append", default=[], help="make_cut_corpus folder(s)")
    ap.add_argument("--plain", type=Path, default=None, help="folder of clips to scan for detections")
    ap.add_argument("--plain-truth", type=Path, default=None, help="JSON {clip: [cut frames]} for --plain")
    ap.add_argument("--size", default="160x128")
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    size = tuple(map(int, args.size.split("x")))
    detector = CutDetector()
    sets = {}
    for folder in args.cut_corpus:
        meta = json.loads((folder / "cuts.json").read_text())
        truth = {name: v["cuts"] for name, v in meta["videos"].items()}
        scores = {name: score_clip(folder / name, None, None) for name in truth}
        sets[f"generated seed {meta['seed']} ({folder.name})"] = {**evaluate(truth, scores, detector),
                                                                  "margin": margin(truth, scores)}
    if args.plain:
        truth = json.loads(args.plain_truth.read_text()) if args.plain_truth else {}
        scores = {s.name: score_clip(s.path, size, args.max_frames) for s in scan([args.plain], warn=lambda m: None)}
        label = f"plain corpus ({args.plain.name}, first {args.max_frames} frames at {args.size})"
        sets[label] = {**evaluate(truth, scores, detector), "truth": str(args.plain_truth)}
    result = {"date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
              "command": shlex.join(["python", "-m", "benchmarks.bench_cuts", *(sys.argv[1:] if argv is None else argv)]),
              "detector": {k: getattr(detector, k) for k in ("threshold", "ratio", "window", "sure_threshold")},
              "sets": sets}
    text = markdown(result)
    if args.out:
        report.write_json(args.out / "results.json", result)
        report.write_atomic(args.out / "results.md", text.encode())
    print(text)
    return result


if __name__ == "__main__":
    main()
