"""The README's set-up is what CI runs: the commands of its first code block, word for word, in .ci/run."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    """Command lines without comments, pip's -q (it only quietens) or surrounding blanks."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line).replace(" -q ", " ").strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def test_ci_runs_the_readme_set_up_and_test_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up on a fresh machine", 1)[1]
    set_up = _commands(section.split("```sh", 1)[1].split("```", 1)[0])
    assert any("--index-url https://download.pytorch.org/whl/cpu" in c for c in set_up)   # the CPU build
    ci = _commands((ROOT / ".ci" / "run").read_text())
    positions = [ci.index(c) for c in set_up]          # ValueError names a README command CI lacks
    assert positions == sorted(positions)
    assert "python -m pytest -q" in readme and ci[-1] == "python -m pytest -q"
    assert not any(re.match(r"pip3? ", c) and c not in set_up for c in ci)     # no pip step the README does not show


def test_readme_demo_figures_are_the_committed_demo_results():
    """The demo paragraph's bytes, bpp and PSNRs are those of benchmarks/results/demo/fast.json."""
    import json

    report = json.loads((ROOT / "benchmarks" / "results" / "demo" / "fast.json").read_text())
    readme = (ROOT / "README.md").read_text()
    demo = readme.split("Measured on this project's 2-core CPU machine (no GPU), `nvcodec encode samples/", 1)[1]
    demo = demo.split("Three short clips", 1)[0]
    parts = report["bytes_by_part"]
    expected = [f"{report['n_bytes']:,} bytes".replace(",", " "), f"{report['bpp']:.4f} bpp",
                f"keyframes {parts['keyframes']:,}".replace(",", " "),
                f"{report['psnr']:.2f} dB decoded", f"keyframe blend {report['blend_psnr']:.2f} dB",
                f"keyframes alone {report['keyframe_psnr']:.2f} dB"]
    if report["n_params"]:
        expected += [f"weights {parts['weights']:,}".replace(",", " "), f"{report['n_params']:,} weights".replace(",", " ")]
    else:                                   # the motion floor: keyframes + coded motion, no weights
        expected += [f"motion {parts['motion']:,}".replace(",", " "), "no network"]
    squashed = re.sub(r"\s+", " ", demo)
    assert [e for e in expected if e not in squashed] == []
