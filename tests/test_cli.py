"""The slideseg console command."""

from __future__ import annotations

import json
import subprocess
import sys

from napari_slideseg.cli import main


def test_info_tcga_lists_two_levels(tcga_svs, capsys):
    assert main(["info", str(tcga_svs)]) == 0
    out = capsys.readouterr().out
    assert "levels       2" in out
    assert "4443 x 3567" in out and "2221 x 1783" in out
    assert "mpp          unknown" in out


def test_info_json_ome(ome_pyramid, capsys):
    assert main(["info", str(ome_pyramid), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [(lv["width"], lv["height"]) for lv in info["levels"]] == [
        (2220, 2967),
        (1110, 1483),
        (555, 741),
    ]
    assert info["backend"] == "tifffile"
    assert info["tile_size"] == [256, 256]
    assert info["mpp"] == [0.499, 0.499]


def test_info_error_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.svs"
    bad.write_text("nope")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slideseg: error: ") and "bad.svs" in err
    assert "Traceback" not in err


def test_console_script_installed(cmu_svs):
    out = subprocess.run(
        [sys.executable, "-m", "napari_slideseg.cli", "info", str(cmu_svs), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["mpp"] == [0.499, 0.499]
    from pathlib import Path

    script = Path(sys.executable).parent / "slideseg"
    exe = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert exe.returncode == 0 and "slideseg" in exe.stdout


def test_demo_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    info = json.loads((tmp_path / "demo" / "slide_info.json").read_text())
    assert len(info["levels"]) == 3
    from PIL import Image

    with Image.open(tmp_path / "demo" / "thumbnail.png") as im:
        assert im.size == (1110, 1483)
    assert "outputs in" in capsys.readouterr().out


def test_predict_evaluate_export_pipeline(tmp_path, data_dir, capsys):
    import numpy as np
    import torch
    import zarr
    from PIL import Image

    from napari_slideseg.infer.engine import is_complete
    from napari_slideseg.models import build_model, save_checkpoint
    from napari_slideseg.models.checkpoint import make_card

    torch.manual_seed(0)
    cm = {
        "name": "binary",
        "names": ["background", "foreground"],
        "colors": [[0, 0, 0], [255, 255, 255]],
        "background": 0,
    }
    card = make_card(
        kind="semantic",
        arch="Unet",
        encoder="resnet18",
        in_channels=3,
        classes=2,
        classmap=cm,
        patch_size=256,
    )
    save_checkpoint(build_model("Unet", "resnet18", classes=2), tmp_path / "ck", card)
    img = data_dir / "glas" / "train_1.png"
    out = tmp_path / "p.zarr"
    args = [
        "predict",
        str(img),
        "--model",
        str(tmp_path / "ck"),
        "--out",
        str(out),
        "--overlap",
        "64",
        "--block",
        "512",
        "--quiet",
    ]
    assert main(args) == 0
    assert is_complete(out)
    labels = zarr.open_group(str(out), mode="r")["labels"][:]
    assert labels.shape == (522, 775)
    assert main(args) == 2  # refuses to overwrite without --resume
    assert "resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # a complete run resumes as a no-op
    assert (
        main(
            [
                "evaluate",
                str(out),
                str(data_dir / "glas" / "train_1_mask.png"),
                "--report",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    assert (tmp_path / "r.csv").read_text().startswith("image,dice_background,dice_foreground")
    assert main(["export", str(out), "--to", str(tmp_path / "p.png"), "--quiet"]) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "p.png"))[..., 0] > 0, labels > 0
    )
