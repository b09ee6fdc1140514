"""The slideseg console command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

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


@pytest.mark.slow
def test_demo_writes_outputs(demo_dir):
    """The README's main job: typed nuclei in a region of the sample, every export, no glands."""
    import csv
    import gzip

    import zarr
    from PIL import Image

    from napari_slideseg.demo import NUCLEI_REGION
    from napari_slideseg.infer import is_complete
    from napari_slideseg.io.palette import ClassMap

    d = demo_dir
    for name in (
        "nuclei.geojson.gz",
        "nuclei_rle.csv",
        "nuclei_table.csv",
        "nucleus_types.png",
        "overlay.png",
        "overlay_nuclei.png",
    ):
        assert (d / name).stat().st_size > 0, name
    # the gland model is not run on the skin sample: no output presents epidermis as glands
    assert not list(d.glob("gland*"))
    assert is_complete(d / "nuclei.zarr")
    root = zarr.open_group(str(d / "nuclei.zarr"), mode="r")
    types = root["labels"][:]
    cm = ClassMap.from_dict(dict(root.attrs)["slideseg"]["classmap"])
    with Image.open(d / "nucleus_types.png") as im:
        png = np.asarray(im)
    assert png.shape == (*types.shape, 3)
    y0, x0, y1, x1 = NUCLEI_REGION
    m = 32  # nuclei on the region's border are kept whole
    assert not types[: y0 - m].any() and not types[:, x1 + m :].any() and types[y0:y1, x0:x1].any()
    for value in np.unique(types):  # each type painted in its class-map colour
        assert (png[types == value] == np.asarray(cm.colors[value], np.uint8)).all()
    with open(d / "nuclei_table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 50  # a 1024 x 1024 H&E region holds hundreds of nuclei
    with gzip.open(d / "nuclei.geojson.gz", "rt") as fh:
        gj = json.load(fh)
    assert abs(len(gj["features"]) - len(rows)) <= len(rows) * 0.02
    assert {f["properties"]["classification"]["name"] for f in gj["features"]} <= {
        "background",
        "other",
        "inflammatory",
        "epithelial",
        "spindle-shaped",
    }
    with Image.open(d / "overlay_nuclei.png") as im:
        assert im.size == (1024, 1024)


def test_demo_prints_steps_and_timings(demo_dir, tmp_path, capsys):
    import shutil

    shutil.copytree(demo_dir, tmp_path / "demo")  # finished outputs: the run resumes instantly
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "predict nuclei" in out and " s" in out and "nuclei_table.csv" in out
    assert "glands: not run on this sample" in out and "skin" in out


def test_predict_evaluate_export_pipeline(tmp_path, data_dir, capsys):
    import numpy as np
    import torch
    import zarr
    from PIL import Image

    from napari_slideseg.infer.engine import is_complete
    from napari_slideseg.models import build_model, save_checkpoint
    from napari_slideseg.models.card import new_card

    torch.manual_seed(0)
    cm = {
        "name": "binary",
        "names": ["background", "foreground"],
        "colors": [[0, 0, 0], [255, 255, 255]],
        "background": 0,
    }
    card = new_card(
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


@pytest.mark.slow
def test_cli_hover_patch_train_predict_export_evaluate(tmp_path, data_dir, capsys):
    """The nuclei path end to end on a real CoNSeP patch (tiny model, 2 steps)."""
    import gzip
    import json

    import zarr

    from napari_slideseg.cli import main

    d = data_dir / "consep_patches"
    img, inst, types = (
        d / "images" / "test_4_013.jpg",
        d / "inst" / "test_4_013.npy",
        d / "type_map" / "test_4_013.png",
    )
    common = ["--size", "128", "--stride", "128", "--min-tissue", "0", "--quiet"]
    assert (
        main(
            [
                "patch",
                str(img),
                "--mask",
                str(inst),
                "--instances",
                "--types",
                str(types),
                "--classmap",
                "consep4",
                "--out",
                str(tmp_path / "p"),
                *common,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(tmp_path / "p"),
                "--val-fraction",
                "0.5",
                "--split-by",
                "patch",
                "--kind",
                "hover",
                "--encoder",
                "resnet18",
                "--encoder-depth",
                "3",
                "--decoder-channels",
                "32,16,8",
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--batch-size",
                "2",
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 0
    )
    from napari_slideseg.models.card import read_card

    card = read_card(tmp_path / "run" / "best")
    assert card.kind == "hover" and card.classmap.names[2] == "inflammatory"
    assert (
        main(
            [
                "predict",
                str(img),
                "--model",
                str(tmp_path / "run" / "best"),
                "--out",
                str(tmp_path / "pred.zarr"),
                "--tile",
                "128",
                "--overlap",
                "32",
                "--block",
                "256",
                "--quiet",
            ]
        )
        == 0
    )
    root = zarr.open_group(str(tmp_path / "pred.zarr"), mode="r")
    assert (
        root["instances"].dtype == np.uint32 and (tmp_path / "pred.zarr" / "instances.csv").exists()
    )
    n = root.attrs["slideseg_inference"]["n_instances"]
    assert (
        main(
            [
                "export",
                str(tmp_path / "pred.zarr"),
                "--instances",
                "--to",
                str(tmp_path / "nuclei.geojson.gz"),
                "--quiet",
            ]
        )
        == 0
    )
    with gzip.open(tmp_path / "nuclei.geojson.gz", "rt") as fh:
        gj = json.load(fh)
    assert len(gj["features"]) == len(set(np.unique(root["instances"][:]).tolist()) - {0})
    if gj["features"]:
        props = gj["features"][0]["properties"]
        assert props["objectType"] == "detection" and "classification" in props
    assert (
        main(
            [
                "export",
                str(tmp_path / "pred.zarr"),
                "--instances",
                "--to",
                str(tmp_path / "nuclei.csv"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "export",
                str(tmp_path / "pred.zarr"),
                "--table",
                "--to",
                str(tmp_path / "table.csv"),
                "--quiet",
            ]
        )
        == 0
    )
    assert len((tmp_path / "table.csv").read_text().splitlines()) == n + 1
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "pred.zarr"),
                str(inst),
                "--instances",
                "--truth-types",
                str(types),
                "--classmap",
                "consep4",
                "--report",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "aji=" in printed and "pq=" in printed and "mpq=" in printed
    assert "pq_inflammatory" in (tmp_path / "r.csv").read_text().splitlines()[0]


def test_demo_cache_follows_the_bundled_models(tmp_path, monkeypatch):
    """Retrained bundled models (same package version) get a fresh demo cache."""
    from napari_slideseg import _sample_data
    from napari_slideseg.models import bundled

    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "slideseg.json").write_text('{"epoch": 1}')
    monkeypatch.setattr(bundled, "bundled_models", lambda: {"m": model})
    monkeypatch.setenv("SLIDESEG_CACHE_DIR", str(tmp_path / "cache"))
    first = _sample_data.demo_cache_dir()
    assert first.parent == tmp_path / "cache" and first.name.startswith("demo-")
    assert _sample_data.demo_cache_dir() == first  # stable
    (model / "slideseg.json").write_text('{"epoch": 2}')
    assert _sample_data.demo_cache_dir() != first


# -----------------------------------------------------------------------------
# options generated from the config dataclasses
# -----------------------------------------------------------------------------
def _command_parser(module):
    import argparse

    p = argparse.ArgumentParser(prog=f"slideseg {module.NAME}")
    module.add_arguments(p)
    return p


def _configs():
    from napari_slideseg.cli import patch, predict, train
    from napari_slideseg.infer import InferConfig
    from napari_slideseg.patching import PatchConfig
    from napari_slideseg.train import TrainConfig

    return [
        (train, TrainConfig, train.train_flags()),
        (predict, InferConfig, predict.infer_flags()),
        (patch, PatchConfig, patch.patch_flags()),
    ]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["train", "predict", "patch"])
def test_every_config_field_is_an_option_with_help(which):
    import argparse
    import dataclasses

    module, cls, flags = _configs()[which]
    actions = {}
    for a in _command_parser(module)._actions:
        actions.setdefault(a.dest, a)  # the option shown, not its hidden alias
    for field in dataclasses.fields(cls):
        dest = flags[field.name].dest if field.name in flags else ""
        action = actions.get(dest or field.name)
        assert action is not None, f"{cls.__name__}.{field.name} cannot be set"
        assert action.help and action.help != argparse.SUPPRESS, field.name


def test_new_options_reach_the_configs():
    from napari_slideseg.cli.fields import config_kwargs

    (train, tc, tf), (predict, ic, inf), (patch, pc, pf) = _configs()
    args = _command_parser(train).parse_args(
        [
            *("m", "--out", "r", "--weight-decay", "0.01", "--bn-recalibrate", "0"),
            *("--hover-weights", "hv_mse=3,nc_ce=0.5", "--num-workers", "2", "--no-amp"),
        ]
    )
    cfg = tc(**config_kwargs(args, tc, tf))
    assert (cfg.weight_decay, cfg.bn_recalibrate, cfg.num_workers, cfg.amp) == (0.01, 0, 2, False)
    assert cfg.hover_weights == {"hv_mse": 3.0, "nc_ce": 0.5}
    args = _command_parser(predict).parse_args(
        [
            *("s", "--model", "m", "--out", "o", "--halo", "8", "--window", "cosine"),
            *("--roi", "0,0,0,99,99,99", "--hover", '{"np_threshold": 0.6}', "--save-probs"),
        ]
    )
    kw = config_kwargs(args, ic, inf)
    cfg = ic(**{**kw, "tile": 256, "overlap": 64})
    assert (cfg.halo, cfg.window, cfg.save_probs) == (8, "cosine", True)
    assert cfg.roi == ((0.0, 0.0), (0.0, 99.0), (99.0, 99.0))
    assert cfg.hover == {"np_threshold": 0.6}
    args = _command_parser(patch).parse_args(
        [
            *("s", "--out", "o", "--pad-value", "255", "--tissue-level", "1"),
            *("--polygons", "0,0,0,64,64,64;8,8,8,32,32,32"),
        ]
    )
    kw = config_kwargs(args, pc, pf)
    cfg = pc(**{**kw, "stride": kw["stride"] or kw["size"]})
    assert (cfg.pad_value, cfg.tissue_level, len(cfg.polygons)) == (255, 1, 2)
    assert cfg.polygons[1] == ((8.0, 8.0), (8.0, 32.0), (32.0, 32.0))


def test_dataclass_defaults_are_the_command_line_defaults():
    """Apart from the few the command works out itself (tile, overlap, stride, folds)."""
    import dataclasses

    from napari_slideseg.cli.fields import config_kwargs, field_default

    own = {"tile", "overlap", "stride", "folds", "val_manifests", "manifests", "out"}
    for module, cls, flags in _configs():
        argv = {
            "train": ["m", "--out", "o"],
            "predict": ["s", "--model", "m", "--out", "o"],
            "patch": ["s", "--out", "o"],
        }[module.NAME]
        kw = config_kwargs(_command_parser(module).parse_args(argv), cls, flags)
        for field in dataclasses.fields(cls):
            if field.name not in own:
                assert kw[field.name] == field_default(field), (cls.__name__, field.name)


def test_convert_is_export_and_commands_run_in_pipeline_order(capsys):
    import re

    from napari_slideseg.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    order = ["info", "patch", "train", "tune-hover", "pack", "predict", "export", "convert"]
    order += ["evaluate", "demo"]
    at = [re.search(rf"\n    {name}[ \n]", out).start() for name in order]
    assert at == sorted(at), out
    args = build_parser().parse_args(["convert", "m.png", "--to", "m.csv", "--rle-order", "row"])
    assert args.func is build_parser().parse_args(["export", "m", "--to", "x"]).func
    assert args.rle_order == "row"
