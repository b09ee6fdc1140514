"""Physical resolution from patches to inference (issue 14), driven through the CLI.

The bundled sample is 0.499 µm/px and ``hover-nuclei`` was trained at 0.25 µm/px:
with no flag, ``slideseg predict`` must run it at zoom ~2, record why, and find
nuclei of the size an explicit ``--zoom 2`` finds. Images that state no µm/px
warn and run at 1 unless ``--mpp`` says what they are.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_slideseg._sample_data import sample_slide_path
from napari_slideseg.cli import main
from napari_slideseg.infer.hover import read_instance_table

#: A 256 x 256 box of the sample with many nuclei (level-0 y0 x0 y1 x1).
BOX = ["1536", "768", "1792", "1024"]  # one 256 px block of the grid


def _not_block_size(err):
    """``err`` without the (expected) note that 256 px blocks recompute border tiles."""
    return "\n".join(line for line in err.splitlines() if "more tiles than block" not in line)


def _predict(out, *extra, slide=None):
    args = [
        "predict",
        str(slide or sample_slide_path()),
        "--model",
        "hover-nuclei",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--block",
        "256",
        "--instance-halo",
        "32",
        "--overlap",
        "64",
        "--quiet",
        *extra,
    ]
    return main(args)


def _info(out):
    return dict(zarr.open_group(str(out), mode="r").attrs)["slideseg_inference"]


def test_default_zoom_matches_the_model_resolution(tmp_path, capsys):
    assert _predict(tmp_path / "auto.zarr", "--region", *BOX) == 0
    text = capsys.readouterr()
    info = _info(tmp_path / "auto.zarr")
    res = info["resolution"]
    assert res["zoom_requested"] == "auto" and res["model_mpp"] == 0.25
    assert res["slide_mpp"] == pytest.approx(0.499, abs=0.001)
    # 0.499 / 0.25 = 1.996, within 2 % of 2: resampled by exactly 2
    assert info["config"]["zoom"] == 2.0
    assert "zoom 2 (slide level 0.499 µm/px, model 0.25 µm/px)" in text.out
    assert "warning" not in _not_block_size(text.err)
    assert _predict(tmp_path / "z2.zarr", "--region", *BOX, "--zoom", "2") == 0
    assert _predict(tmp_path / "z1.zarr", "--region", *BOX, "--zoom", "1") == 0
    area = {k: read_instance_table(tmp_path / f"{k}.zarr")["area"] for k in ("auto", "z2", "z1")}
    assert min(len(a) for a in area.values()) >= 20
    med = {k: float(np.median(a)) for k, a in area.items()}
    # the same nuclei as an explicit zoom 2 ...
    np.testing.assert_array_equal(area["auto"], area["z2"])
    # ... and not what the model makes of the slide at its own pixels (the model is
    # trained with 0.8-1.25x zoom augmentation, so sizes move less than 2x: compare the maps)
    maps = {k: zarr.open_group(str(tmp_path / f"{k}.zarr"), mode="r")["instances"] for k in area}
    y0, x0, y1, x1 = (int(v) for v in BOX)
    fg = {k: np.asarray(m[y0:y1, x0:x1]) > 0 for k, m in maps.items()}
    assert (fg["auto"] == fg["z2"]).all()
    assert (fg["auto"] != fg["z1"]).mean() > 0.02 or len(area["z1"]) != len(area["auto"]), med


def test_an_image_without_mpp_warns_and_mpp_silences_it(tmp_path, data_dir, capsys):
    jpeg = data_dir / "consep_patches" / "images" / "test_1_004.jpg"
    assert _predict(tmp_path / "a.zarr", slide=jpeg) == 0
    err = capsys.readouterr().err
    assert "slideseg: warning: zoom auto" in err and "states no µm/px" in err and "--mpp" in err
    assert _info(tmp_path / "a.zarr")["config"]["zoom"] == 1.0
    # CoNSeP is 40x (0.25 µm/px): saying so silences the warning (and still runs at 1)
    assert _predict(tmp_path / "b.zarr", "--mpp", "0.25", slide=jpeg) == 0
    assert "warning" not in _not_block_size(capsys.readouterr().err)
    info = _info(tmp_path / "b.zarr")
    assert info["config"]["zoom"] == 1.0 and info["mpp"] == [0.25, 0.25]
    # at 0.5 µm/px it would need zoom 2
    assert _predict(tmp_path / "c.zarr", "--mpp", "0.5", slide=jpeg) == 0
    assert _info(tmp_path / "c.zarr")["config"]["zoom"] == 2.0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--zoom", "fast", "expected a number"),
        ("--zoom", "-2", "positive number"),
        ("--mpp", "0", "positive number"),
        ("--zoom", "20", "between 1/8 and 8"),
        ("--level", "5", "level 5 does not exist"),
    ],
)
def test_wrong_resolution_options_are_refused(tmp_path, capsys, flag, value, message):
    try:
        rc = _predict(tmp_path / "x.zarr", "--region", *BOX, flag, value)
    except SystemExit as exc:  # argparse refuses the value itself
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and (flag in err or "level" in err or "zoom" in err)
    assert not (tmp_path / "x.zarr").exists()


def test_small_blocks_at_zoom_below_one_see_the_model_scale(tmp_path, data_dir):
    """Blocks smaller than tile / zoom used to be stretched unevenly; now they read enough."""
    img = data_dir / "glas" / "train_1.png"
    common = ["--model", "glas-gland", "--device", "cpu", "--quiet", "--zoom", "0.5"]
    assert (
        main(
            ["predict", str(img), "--out", str(tmp_path / "small.zarr"), "--block", "256", *common]
        )
        == 0
    )
    assert (
        main(
            ["predict", str(img), "--out", str(tmp_path / "whole.zarr"), "--block", "1024", *common]
        )
        == 0
    )
    a = zarr.open_group(str(tmp_path / "small.zarr"), mode="r")["labels"][:]
    b = zarr.open_group(str(tmp_path / "whole.zarr"), mode="r")["labels"][:]
    assert len(_info(tmp_path / "small.zarr")["blocks"]) > 4
    assert (b == 1).mean() > 0.2  # glands found
    assert (a == b).mean() >= 0.99
