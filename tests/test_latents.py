"""Per-frame latents (``ModelConfig.latent_channels``, FORMAT.md 14.4): the table's rows, the network's
inputs, the fit's rate term, the file, and hostile metadata."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import nvcodec
import tests.nvc_craft as nc
from nvcodec.bitstream import NvcReader
from nvcodec.config import ModelConfig, count_parameters, latent_count
from nvcodec.corpus import build_clip_range, build_clipset, latent_row_bases
from nvcodec.errors import NvcFormatError, NvcInputError
from nvcodec.fit import latent_bits
from nvcodec.info import describe
from nvcodec.media import read_frames
from nvcodec.metrics import psnr_per_frame
from nvcodec.model import DNeRV
from nvcodec.presets import build_config
from tests.conformance_tools import REFINE_NVC
from tests.test_codec import write_video
from tests.test_refine import VIDEOS

NET = dict(tile_h=32, tile_w=32, c0=0, enc_width=8, embed_levels=8, mlp_width=16, min_width=8, motion=True,
           refine_width=8, refine_layers=3)
LATENTS = dict(latent_channels=2, latent_cell=8)


def test_latent_config_is_checked_counted_and_recorded_only_when_set():
    cfg = ModelConfig(**NET, **LATENTS, latent_rows=5)
    assert latent_count(cfg) == 5 * 8 * 2 * 4 * 4
    assert count_parameters(cfg) == sum(p.numel() for p in DNeRV(cfg).parameters())
    first_conv = 2 * 8 * 9                                  # 2 more input channels of the 8-wide 3x3 conv
    assert count_parameters(cfg) == count_parameters(ModelConfig(**NET)) + latent_count(cfg) + first_conv
    with_trunk = ModelConfig(**{**NET, "c0": 4}, **LATENTS, latent_rows=3)
    assert count_parameters(with_trunk) == sum(p.numel() for p in DNeRV(with_trunk).parameters())
    assert {"latent_channels", "latent_cell", "latent_rows"} <= set(cfg.to_json())
    assert not {"latent_channels", "latent_cell", "latent_rows"} & set(ModelConfig(**NET).to_json())
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    for bad, match in (({"refine_width": 0, "refine_layers": 0, "c0": 4}, "latents are inputs of the refiner"),
                       ({"latent_cell": 12}, "latent_cell: 12 must divide the tile 32x32"),
                       ({"latent_cell": 0}, "latent_cell: 0 must divide"),
                       ({"latent_channels": 65}, r"latent_channels: 65 outside \[0, 64\]")):
        with pytest.raises(NvcInputError, match=match):
            ModelConfig(**{**NET, **LATENTS, **bad})
    with pytest.raises(NvcInputError, match="given without latents"):
        ModelConfig(**NET, latent_cell=8)


def test_a_clip_ranges_rows_are_its_rows_in_the_whole_clipset():
    """Row = the clip's index in the file's order (video, clip, tile); a decode's clip range of any video,
    keyframes listed or regular, finds the same rows from ``latent_row_bases``."""
    rng = np.random.default_rng(0)
    sizes = ((21, 40, 50, None), (13, 30, 70, np.array([0, 5, 12])), (1, 20, 20, None))
    videos, positions = [], []
    for n, h, w, pos in sizes:
        frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        kf_at = pos if pos is not None else np.unique(np.r_[np.arange(0, n, 8), n - 1])
        videos.append((frames, frames[kf_at], n))
        positions.append(pos)
    whole = build_clipset(videos, 8, 32, 32, positions=positions, rows=True)
    assert (whole.row == np.arange(whole.n_clips)).all()
    assert whole.subset(np.array([4, 2])).row.tolist() == [4, 2]
    bases, total = latent_row_bases([(n, h, w, pos) for n, h, w, pos in sizes], 8, 32, 32)
    assert total == whole.n_clips and bases[0] == 0
    for v, (frames, kf, n) in enumerate(videos):
        firsts = np.unique(whole.first_frame[whole.video == v])            # clip c starts at keyframe c
        n_tiles = int(whole.tile[whole.video == v].max()) + 1
        for lo in range(len(firsts)):
            part = build_clip_range(kf[lo:], lo, n, 8, 32, 32, lo, len(firsts), positions=positions[v],
                                    first_row=bases[v] + lo * n_tiles)
            mine = np.flatnonzero((whole.video == v) & (whole.first_frame >= firsts[lo]))
            assert part.row.tolist() == mine.tolist(), (v, lo)
            assert (part.tile == whole.tile[mine]).all() and (part.first_frame == whole.first_frame[mine]).all()


def _inputs(b: int = 2):
    kf, tv, tl = torch.rand(b, 3, 32, 32), torch.rand(b, 8), torch.linspace(0, 1, 8).repeat(b, 1)
    return kf, tv, tl, torch.rand(b, 8, 2, 3, 32, 32)


def test_the_latents_reach_the_refiner_only_through_their_row_and_noise_only_when_asked():
    torch.manual_seed(0)
    cfg = ModelConfig(**NET, **LATENTS, latent_rows=4)
    net = DNeRV(cfg).eval()
    torch.nn.init.normal_(net.refiner.out.weight, std=0.1)
    kf, tv, tl, warped = _inputs()
    rows = torch.tensor([1, 3])
    with torch.no_grad():
        before = net(kf, kf, tv, tl, warped, rows)
        net.latents[3, 2].fill_(5.0)                              # clip 3, frame slot 2
        after = net(kf, kf, tv, tl, warped, rows)
        assert torch.equal(before[0], after[0])                   # the other clip's row is untouched
        assert not torch.equal(before[1, 2], after[1, 2]) and torch.equal(before[1, 3], after[1, 3])
        assert torch.equal(after, net(kf, kf, tv, tl, warped, rows))
        assert not torch.equal(after, net(kf, kf, tv, tl, warped, rows, latent_noise=True))
        # the fit passes the rows' values instead (nvcodec.row_adam steps the table): the same pictures
        assert torch.equal(after, net(kf, kf, tv, tl, warped, latent_values=net.latents[rows]))
    with pytest.raises(ValueError, match="rows or their values, not both"):
        net(kf, kf, tv, tl, warped, rows, latent_values=net.latents[rows])
    with pytest.raises(ValueError, match="per clip, the model's are"):
        net(kf, kf, tv, tl, warped, latent_values=net.latents[rows][:, :, :1])
    with pytest.raises(ValueError, match="pass each clip's row"):
        net(kf, kf, tv, tl, warped)
    with pytest.raises(ValueError, match="no per-frame latents: rows given"):
        DNeRV(ModelConfig(**NET))(kf, kf, tv, tl, warped, rows)


def test_latents_learn_what_the_inputs_cannot_tell():
    """Each frame is its start picture plus its own brightness offset, which nothing in the inputs predicts:
    the refiner alone cannot learn it, with one latent channel it takes most of it."""
    torch.manual_seed(0)
    kf, tv, tl, warped = _inputs()
    offset = torch.rand(2, 8, 1, 1, 1) * 0.4 - 0.2
    target = (warped[:, :, 0] + offset).clamp(0, 1)

    def fitted(cfg: ModelConfig) -> float:
        torch.manual_seed(1)
        net = DNeRV(cfg)
        rows = (torch.arange(2),) if cfg.latent_channels else ()
        groups = [{"params": [p for n, p in net.named_parameters() if n != "latents"], "lr": 1e-2}]
        if cfg.latent_channels:
            groups.append({"params": [net.latents], "lr": 5e-2})
        opt = torch.optim.Adam(groups)
        for _ in range(120):
            loss = (net(kf, kf, tv, tl, warped, *rows) - target)[:, 1:-1].square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return (net(kf, kf, tv, tl, warped, *rows) - target)[:, 1:-1].square().mean().item()

    alone = fitted(ModelConfig(**NET))
    with_latents = fitted(ModelConfig(**NET, latent_channels=1, latent_cell=32, latent_rows=2))
    assert with_latents < 0.3 * alone, (alone, with_latents)


def test_the_fits_rate_term_charges_each_value_and_pulls_it_to_zero():
    torch.manual_seed(0)
    small = torch.zeros(3, 8, 2, 4, 4)
    big = torch.full((3, 8, 2, 4, 4), 6.0)
    assert float(latent_bits(small)) < float(latent_bits(big)) / 4
    y = torch.randn(3, 8, 2, 4, 4).mul_(4).requires_grad_(True)
    latent_bits(y).backward()
    moved = y.grad * y.detach()
    assert (moved[y.detach().abs() > 1] > 0).float().mean() > 0.95       # descent shrinks the large values


def test_the_fits_rate_term_charges_less_for_values_next_to_non_zeros():
    """As the file's context model does: a run along the frame slots costs less than as many values alone."""
    run, alone = torch.zeros(4, 8, 2, 8, 8), torch.zeros(4, 8, 2, 8, 8)
    for r in range(4):
        run[r, 2:6, 0, 3, 3] = 2.0                       # one cell, four slots in a row
        for j in range(4):
            alone[r, 2 * j, 1, 2 * j, 7 - 2 * j] = 2.0   # four cells, no two neighbours
    assert int((run != 0).sum()) == int((alone != 0).sum())
    bits = []
    for table in (torch.zeros_like(run), run, alone):
        torch.manual_seed(0)                             # the same noise for the three
        bits.append(float(latent_bits(table)))
    zeros, bits_run, bits_alone = bits
    assert 0 < bits_run - zeros < 0.8 * (bits_alone - zeros), bits


@pytest.fixture(scope="module")
def latent_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent_corpus")
    for name, frames in VIDEOS.items():
        write_video(root / name, frames, (25, 1))
    out = tmp_path_factory.mktemp("latent") / "l.nvc"
    report = nvcodec.encode(root, out, build_config("tiny", motion=True, epochs=3, weight_bpp=64.0, refine_width=8,
                                                    refine_layers=3, motion_iters=2, **LATENTS), quiet=True)
    return root, out, report


def test_a_latent_network_file_decodes_to_what_the_encoder_measured_and_its_latents_matter(latent_file):
    """One row of latents per clip-tile of the file (a static video, a one-frame video and one smaller than a
    tile included); the decode is the encoder's measure, any frame range the full decode's frames, and the
    decoded frames change when the latents are zeroed."""
    root, out, report = latent_file
    with NvcReader(out) as r:
        model = r.metadata["model"]
        videos = r.metadata["videos"]
        latents = [t for t in r.iter_tensors() if t.name == "latents"]
    rows = latent_row_bases([(v["n_frames"], v["height"], v["width"], None) for v in videos], 8, 32, 32)[1]
    assert model["latent_rows"] == rows and latents[0].q.shape == (rows, 8, 2, 4, 4)
    assert np.abs(latents[0].q).sum() > 0
    with NvcReader(out) as r:                # the report tells the latents' bytes from the network's
        tens = r.byte_breakdown()["weights"]
    parts = report.bytes_by_part
    assert parts["latents"] > 0 and parts["weights"] > 0 and parts["latents"] + parts["weights"] == tens
    assert report.n_latents == latents[0].q.size and sum(parts.values()) == report.n_bytes
    assert describe(out)["bytes_by_part"] == parts          # nvcodec info splits them as the report does
    with nvcodec.open(out, device="cpu") as nvc:
        decoded = {v.name: nvc.read(v.name) for v in nvc.videos}
        for v in nvc.videos:
            for lo, hi in ((2, 9), (8, 11), (0, 1)):
                if hi <= v.n_frames:
                    assert (nvc.read(v.name, slice(lo, hi)) == decoded[v.name][lo:hi]).all()
        scores = [psnr_per_frame(np.stack(list(read_frames(root / name))), frames) for name, frames in decoded.items()]
        assert np.mean(np.concatenate(scores)) == pytest.approx(report.psnr, abs=1e-9)
        with torch.no_grad():
            nvc.network().latents.zero_()
        assert any(not np.array_equal(nvc.read(name), frames) for name, frames in decoded.items())


def _refiner_pieces() -> nc.Pieces:
    """The motion conformance file taken apart, its motion kept, its metadata naming a refiner (which the
    checks at open do not compare with the tensors)."""
    p = nc.Pieces(REFINE_NVC)
    p.motion = [payload for ctype, payload in nc.split_chunks(REFINE_NVC.read_bytes()) if ctype == b"MOTN"]
    p.minor = 1
    p.metadata["model"].update(refine_width=8, refine_layers=3)
    return p


@pytest.mark.parametrize("edit, message", [
    ({"latent_channels": 2, "latent_cell": 8, "latent_rows": 1},
     r"model latent_rows 1 differs from the \d+ clip-tiles"),
    ({"latent_channels": 2, "latent_cell": 7, "latent_rows": 1}, r"latent_cell: 7 must divide the tile"),
    ({"latent_channels": 64, "latent_cell": 1, "latent_rows": 1 << 27}, r"parameters exceed the limit"),
    ({"latent_rows": 4}, r"given without latents"),
])
def test_hostile_latent_metadata_is_one_format_error_at_open(tmp_path, edit, message):
    """Rows that are not the file's clip-tiles, a cell that does not divide the tile, a table past the
    parameter limit, rows without latents: refused from the metadata alone, before anything is built."""
    p = _refiner_pieces()
    p.metadata["model"].update(edit)
    with pytest.raises(NvcFormatError, match=message):
        nvcodec.open(p.write(tmp_path / "latents.nvc"))


def test_a_corpus_whose_latents_pass_the_files_element_limit_is_fitted_without_them(tmp_path, monkeypatch):
    """The table grows with the corpus; past what a file may hold the encoder says so and fits the network
    alone, and the file decodes."""
    import nvcodec.encoder

    write_video(tmp_path / "in" / "a.mp4", VIDEOS["moving_64x48.mp4"], (25, 1))
    config = build_config("tiny", motion=True, epochs=1, weight_bpp=64.0, refine_width=8, refine_layers=3, **LATENTS)
    network = count_parameters(config.preset.model_config(10 ** 6))     # no rows yet: the network alone
    monkeypatch.setattr(nvcodec.encoder, "MAX_ELEMENTS", network + 100)  # the network fits, its latents not
    lines = []
    report = nvcodec.encode(tmp_path / "in", tmp_path / "a.nvc", config, log=lines.append)
    assert any(line.startswith("per-frame latents: ") and "fitting without them" in line for line in lines)
    with NvcReader(tmp_path / "a.nvc") as r:
        assert "latent_channels" not in r.metadata["model"]
        assert "latents" not in {t.name for t in r.iter_tensors()}
    with nvcodec.open(tmp_path / "a.nvc", device="cpu") as nvc:
        frames = nvc.read(0)
    source = np.stack(list(read_frames(tmp_path / "in" / "a.mp4")))
    assert psnr_per_frame(source, frames).mean() == pytest.approx(report.psnr, abs=1e-9)


def test_presets_and_the_cli_give_latents_a_cell_and_drop_them_with_the_refiner(tmp_path, monkeypatch):
    """``latent_channels`` alone takes the default cell, 0 takes none; ``motion=False`` drops the refiner and
    its latents; ``nvcodec encode --latents N`` reaches the preset, out of range is a usage error."""
    from click.testing import CliRunner

    from nvcodec.cli.main import main as cli
    from nvcodec.presets import DEFAULT_LATENT_CELL, PRESETS, resolve

    assert (resolve("fast", latent_channels=3).latent_channels, resolve("fast", latent_channels=3).latent_cell) == \
        (3, DEFAULT_LATENT_CELL)
    assert resolve("fast", latent_channels=3, latent_cell=32).latent_cell == 32
    with pytest.raises(NvcInputError, match="latents are inputs of the refiner"):
        resolve("fast", latent_channels=3, motion=False)           # asked for both: a contradiction, said
    monkeypatch.setitem(PRESETS, "fast", dataclasses.replace(PRESETS["fast"], latent_channels=3, latent_cell=16))
    plain = resolve("fast", motion=False)
    assert (plain.refine_width, plain.latent_channels, plain.latent_cell) == (0, 0, 0)
    assert resolve("fast", latent_channels=0).latent_cell == 0
    monkeypatch.undo()
    seen = []
    monkeypatch.setattr(nvcodec, "encode", lambda inputs, output, config, **kw: seen.append(config) or None)
    runner = CliRunner()
    result = runner.invoke(cli, ["encode", str(tmp_path), str(tmp_path / "a.nvc"), "--latents", "2"])
    assert result.exit_code == 0 and (seen[0].preset.latent_channels, seen[0].preset.latent_cell) == (2, 16)
    result = runner.invoke(cli, ["encode", str(tmp_path), str(tmp_path / "a.nvc"), "--latents", "65"])
    assert result.exit_code == 2 and "--latents" in result.output


def test_a_byte_budget_fits_the_network_without_latents_and_says_why(tmp_path):
    """The rate plan does not price latents: under --target-bpp they are left out, said, and the file holds none."""
    write_video(tmp_path / "in" / "a.mp4", VIDEOS["moving_64x48.mp4"], (25, 1))
    lines = []
    config = build_config("tiny", motion=True, epochs=1, weight_bpp=64.0, refine_width=8, refine_layers=3,
                          target_bpp=2.0, keyframe_quality=32, **LATENTS)
    nvcodec.encode(tmp_path / "in", tmp_path / "a.nvc", config, log=lines.append)
    assert any(line.startswith("--target-bpp: the rate plan does not price per-frame latents") for line in lines)
    with NvcReader(tmp_path / "a.nvc") as r:
        assert "latent_channels" not in r.metadata["model"]
        assert "latents" not in {t.name for t in r.iter_tensors()}
