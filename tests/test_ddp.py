"""Fitting under torchrun: two gloo ranks on CPU end with identical weights and a falling loss."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import dataclasses, json, os, sys
    import torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from test_fit import TINY_FIT, TINY_MODEL, latent_clips, latent_model, synthetic_clips
    from nvcodec.fit import fit
    out = {out!r}
    if {latents!r}:
        clips = latent_clips()
        model_cfg, fit_cfg = latent_model(clips.n_clips), dataclasses.replace(TINY_FIT, latent_price=50.0)
    else:
        clips, model_cfg, fit_cfg = synthetic_clips(size=(32, 32)), TINY_MODEL, TINY_FIT
    result = fit(model_cfg, dataclasses.replace(fit_cfg, epochs=8, checkpoint_every=4), clips,
                 device="cpu", workdir=os.path.join(out, "work"), progress=False)
    rank = int(os.environ["RANK"])
    torch.save(result.state_dict, os.path.join(out, f"rank{{rank}}.pt"))
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"losses": [h["loss"] for h in result.history], "psnr": result.psnr,
                   "blend_psnr": result.blend_psnr, "world": torch.distributed.get_world_size()}}, f)
    # leave the group as the encoder does (distributed.teardown): left to the interpreter's exit, gloo's
    # threads were sometimes destroyed unjoined ("terminate called without an active exception", SIGABRT)
    from nvcodec import distributed
    distributed.teardown(distributed.setup("cpu"))
""")


@pytest.mark.slow
@pytest.mark.parametrize("latents", [False, True], ids=["weights", "latents"])
def test_two_gloo_ranks_hold_identical_weights_and_loss_falls(tmp_path, latents):
    """torchrun --standalone --nproc_per_node 2: DDP on gloo; rank 0 alone writes the checkpoint. With
    per-frame latents, the table (no DDP parameter: its rows' gradients are gathered) is the same on both."""
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path), latents=latents))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = shutil.which("torchrun")
    cmd = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(cmd + ["--standalone", "--nproc_per_node", "2", str(script)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ("latents" in a) == latents and (not latents or a["latents"].abs().max() > 0.1)
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["world"] == 2
    assert info[0]["psnr"] == info[1]["psnr"] and info[0]["blend_psnr"] == info[1]["blend_psnr"]
    losses = info[0]["losses"]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["fit_checkpoint.pt"]
