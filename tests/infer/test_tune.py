"""Choosing HoVer post-processing thresholds on annotated tiles (tune_hover, slideseg tune-hover)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from napari_slideseg.cli import main
from napari_slideseg.infer import tune
from napari_slideseg.instances.targets import hover_targets
from napari_slideseg.models import load_model, save_checkpoint
from napari_slideseg.models.card import NUCLEUS_CLASSMAP, new_card
from napari_slideseg.models.hovernet import HoVerNet

IMAGE = "monuseg/images/TCGA-A7-A13E-01Z-00-DX1.png"
TRUTH = "monuseg/inst_maps/TCGA-A7-A13E-01Z-00-DX1_inst.png"


@pytest.fixture
def hover_ckpt(tmp_path):
    torch.manual_seed(0)
    m = HoVerNet("resnet18", n_types=0, encoder_depth=3, decoder_channels=(16, 8, 8)).eval()
    card = new_card(
        kind="hover",
        arch="HoVerNet",
        encoder="resnet18",
        in_channels=3,
        classes=0,
        classmap=NUCLEUS_CLASSMAP,
        patch_size=256,
        hover={"n_types": 0, "postproc": {"np_threshold": 0.5, "min_size": 10}},
    )
    return save_checkpoint(m, tmp_path / "h", card)


@pytest.fixture
def weak_maps(monkeypatch, data_dir):
    """A 'model' whose NP probability peaks at 0.45 inside nuclei (a calibration the
    reference 0.5 threshold misses entirely) with true HV maps. Returns the keyword
    arguments of every map prediction (zoom, tta)."""
    truth = np.asarray(Image.open(data_dir / TRUTH)).astype(np.int32)
    t = hover_targets(truth)
    calls = []

    def fake(model, card, image, **kw):
        assert image.shape[:2] == truth.shape
        calls.append(kw)
        return np.concatenate([t["np"][None] * 0.45, t["hv"]]).astype(np.float32)

    monkeypatch.setattr(tune, "predict_maps", fake)
    return calls


def test_tuning_finds_the_threshold_the_card_misses(hover_ckpt, weak_maps, data_dir):
    grid = {"np_threshold": (0.4, 0.5), "min_size": (10, 30)}
    params, rows = tune.tune_hover(hover_ckpt, [data_dir / IMAGE], [data_dir / TRUTH], grid=grid)
    assert len(rows) == 4  # the card's values (0.5, 10) are in the grid
    assert [r["pq_mean"] for r in rows] == sorted((r["pq_mean"] for r in rows), reverse=True)
    assert params.np_threshold == 0.4 and rows[0]["pq_mean"] > 0.9
    card_row = next(r for r in rows if r["card"])
    assert card_row["np_threshold"] == 0.5 and card_row["pq_mean"] == 0.0
    # values outside the grid come from the card (not from HoverParams' defaults)
    params, rows = tune.tune_hover(
        hover_ckpt, [data_dir / IMAGE], [data_dir / TRUTH], grid={"np_threshold": (0.3, 0.4)}
    )
    assert len(rows) == 3 and rows[-1]["card"] and params.min_size == 10


def test_cli_writes_the_choice_into_the_card(hover_ckpt, weak_maps, data_dir, tmp_path, capsys):
    monkey_grid = {"np_threshold": (0.4, 0.5), "min_size": (10,), "marker_threshold": (0.4,)}
    tune.DEFAULT_GRID, saved = monkey_grid, tune.DEFAULT_GRID
    try:
        rc = main(
            [
                "tune-hover",
                str(hover_ckpt),
                "--images",
                str(data_dir / IMAGE),
                "--truths",
                str(data_dir / TRUTH),
                "--tta",
                "flips",
                "--write",
                "--report",
                str(tmp_path / "tune.csv"),
                "--quiet",
            ]
        )
    finally:
        tune.DEFAULT_GRID = saved
    assert rc == 0
    out = capsys.readouterr().out
    assert "card's current values: PQ 0.0000" in out and "best: PQ" in out
    from napari_slideseg.models.card import read_card

    card = read_card(hover_ckpt)
    assert card.hover["postproc"]["np_threshold"] == 0.4
    assert card.hover["postproc_tuned_on"] == [str(data_dir / IMAGE)]
    assert card.hover["postproc_tuned_tta"] == "flips"
    assert weak_maps and all(kw["tta"] == "flips" for kw in weak_maps)  # maps made with TTA
    _, loaded = load_model(hover_ckpt)  # still a valid checkpoint
    assert loaded.postproc["np_threshold"] == 0.4
    lines = (tmp_path / "tune.csv").read_text().splitlines()
    assert lines[0].startswith("np_threshold,min_size,marker_threshold,pq_") and len(lines) == 3


def test_bad_inputs_name_the_problem(hover_ckpt, data_dir, tmp_path):
    with pytest.raises(tune.TuneError, match="one truth instance map per image"):
        tune.tune_hover(hover_ckpt, [data_dir / IMAGE], [])
    with pytest.raises(tune.TuneError, match="tta must be one of"):
        tune.tune_hover(hover_ckpt, [data_dir / IMAGE], [data_dir / TRUTH], tta="spin")
    with pytest.raises(tune.TuneError, match="unknown HoVer post-processing"):
        tune.tune_hover(hover_ckpt, [data_dir / IMAGE], [data_dir / TRUTH], grid={"bogus": (1,)})
    small = np.zeros((10, 10), np.uint16)
    Image.fromarray(small).save(tmp_path / "small.png")
    with pytest.raises(tune.TuneError, match="instance map is 10 x 10"):
        tune.tune_hover(hover_ckpt, [data_dir / IMAGE], [tmp_path / "small.png"])
