"""The D-NeRV network: the paper's parameter counts, shapes, heads, and the config as file content."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from nvcodec.config import ModelConfig, count_parameters, derive_strides
from nvcodec.model import DNeRV

PAPER = dict(tile_h=256, tile_w=320, strides=(4, 2, 2, 2, 2), enc_width=64, embed_levels=240)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("c0, millions", [(198, 21.39), (361, 61.30), (107, 8.02), (213, 24.20)])
def test_parameter_counts_match_the_paper(c0, millions):
    """UCF101 S/L and UVG XS/M sizes of D-NeRV (256x320 tiles, 4x5 grid, 240 levels)."""
    cfg = ModelConfig(c0=c0, head="paper", paste_keyframes=False, **PAPER)
    assert cfg.grid == (4, 5) and cfg == ModelConfig.paper(c0)
    assert round(count_parameters(cfg) / 1e6, 2) == millions


def test_module_has_exactly_the_counted_parameters_at_paper_size():
    """The analytic count (used to bound untrusted configs) is the module's own count."""
    cfg = ModelConfig(c0=107, **PAPER)
    assert sum(p.numel() for p in DNeRV(cfg).parameters()) == count_parameters(cfg) == 8_017_893


@pytest.mark.parametrize("tile, strides, grid", [
    ((256, 320), (4, 2, 2, 2, 2), (4, 5)), ((128, 160), (4, 2, 2, 2), (4, 5)),
    ((64, 80), (4, 2, 2), (4, 5)), ((64, 64), (4, 2, 2), (4, 4)), ((144, 176), (4, 2, 2), (9, 11)),
])
def test_strides_and_grid_derive_from_the_tile(tile, strides, grid):
    """Derived strides: 4 then 2s, leaving a coarse grid of >= 4 on the short side."""
    cfg = ModelConfig(*tile, c0=8)
    assert cfg.strides == strides == derive_strides(*tile)
    assert cfg.grid == grid


def small(**kw) -> ModelConfig:
    base = dict(tile_h=64, tile_w=80, c0=8, enc_width=8, embed_levels=8, mlp_width=16, min_width=8, clip_length=4)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("tile", [(64, 80), (64, 64), (32, 48)])
@pytest.mark.parametrize("head", ["residual", "paper"])
def test_forward_shapes_range_and_parameter_count(tile, head):
    """(B,3,h,w) keyframes + (B,T) times -> (B,T,3,h,w) in [0,1]; count_parameters is exact."""
    cfg = small(tile_h=tile[0], tile_w=tile[1], head=head)
    model = DNeRV(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(cfg)
    kf = torch.rand(2, 3, *tile)
    out = model(kf, torch.rand(2, 3, *tile), torch.rand(2, 4), torch.rand(2, 4))
    assert out.shape == (2, 4, 3, *tile)
    assert 0 <= out.min() and out.max() <= 1
    out.mean().backward()


def test_residual_head_starts_as_the_keyframe_blend():
    """Zero-initialised flow and correction: the untrained residual net outputs (1-t)*start + t*end."""
    cfg = small(paste_keyframes=False)
    torch.manual_seed(0)
    start, end = torch.rand(2, 3, 64, 80), torch.rand(2, 3, 64, 80)
    t = torch.rand(2, 4)
    out = DNeRV(cfg)(start, end, torch.rand(2, 4), t)
    w = t.view(2, 4, 1, 1, 1)
    torch.testing.assert_close(out, (1 - w) * start[:, None] + w * end[:, None], atol=1e-5, rtol=0)


def test_keyframes_are_pasted_at_keyframe_positions():
    """t_local 0 or 1 outputs the decoded keyframe itself when paste_keyframes is on."""
    model = DNeRV(small(head="paper"))
    start, end = torch.rand(1, 3, 64, 80), torch.rand(1, 3, 64, 80)
    out = model(start, end, torch.rand(1, 4), torch.tensor([[0.0, 0.3, 0.6, 1.0]]))
    assert torch.equal(out[0, 0], start[0]) and torch.equal(out[0, 3], end[0])
    assert not torch.equal(out[0, 1], start[0])


def test_wrong_clip_length_or_tile_is_refused():
    """The network is built for one T and one tile size; anything else is a ValueError."""
    model = DNeRV(small())
    with pytest.raises(ValueError, match="clips have 5 frames"):
        model(torch.rand(1, 3, 64, 80), torch.rand(1, 3, 64, 80), torch.rand(1, 5), torch.rand(1, 5))
    with pytest.raises(ValueError, match="keyframe tiles"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 4), torch.rand(1, 4))


def test_json_round_trip_rebuilds_the_same_network():
    """to_json -> JSON text -> from_json gives an equal config and identically-shaped weights."""
    cfg = small(head="paper", mean=(0.4, 0.5, 0.6))
    again = ModelConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg
    assert again.strides == (4, 2, 2)
    a, b = DNeRV(cfg).state_dict(), DNeRV(again).state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


@pytest.mark.parametrize("edit, field", [
    ({"c0": "8"}, "c0"), ({"c0": True}, "c0"), ({"c0": 0}, "c0"), ({"tile_h": 100000}, "tile_h"),
    ({"strides": [3, 2]}, "strides"), ({"strides": "4,2"}, "strides"), ({"head": "fancy"}, "head"),
    ({"mean": [0.5, 0.5]}, "mean"), ({"std": [0, 1, 1]}, "std"), ({"embed_base": float("nan")}, "embed_base"),
    ({"paste_keyframes": 1}, "paste_keyframes"), ({"bogus": 1}, "bogus"), ({"clip_length": 0}, "clip_length"),
])
def test_from_json_names_the_bad_field(edit, field):
    """Untrusted metadata: every bad field is a ValueError that names it."""
    d = small().to_json()
    d.update(edit)
    with pytest.raises(ValueError, match=f"ModelConfig.{field}"):
        ModelConfig.from_json(d)


def test_from_json_refuses_absurd_sizes_before_allocating():
    """A config that would need billions of parameters is refused by count, not by running out of memory."""
    d = dict(tile_h=4096, tile_w=4096, c0=4096, strides=[4])
    with pytest.raises(ValueError, match="parameters exceed"):
        ModelConfig.from_json(d)
    with pytest.raises(ValueError, match="ModelConfig.c0: missing"):
        ModelConfig.from_json({"tile_h": 64, "tile_w": 64})
    with pytest.raises(ValueError, match="JSON object"):
        ModelConfig.from_json([1, 2])


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        small().c0 = 3
