"""Cases found by the bad-input acceptance sweep (issue 16): each now refused clearly or right.

Silent wrong results (an option ignored, a checkpoint written over a user's
file, scores against the wrong class numbers, a run with no validation
reporting a "val_loss"), tracebacks (1-bit TIFF patches, negative seeds, bad
``--metrics`` JSON, non-path arguments) and unclear messages.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_slideseg.cli import main
from napari_slideseg.io.errors import SlideError, SlideSegError

GLAS = Path(__file__).parents[1] / "data" / "glas"
MODELS = Path(__file__).parents[2] / "src" / "napari_slideseg" / "data" / "models"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("slideseg: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """A 256 x 256 GlaS crop with its binary mask."""
    d = tmp_path_factory.mktemp("crop")
    img = np.asarray(Image.open(GLAS / "train_1.png").convert("RGB"))[:256, :256]
    mask = np.asarray(Image.open(GLAS / "train_1_mask.png"))[:256, :256]
    Image.fromarray(img).save(d / "img.png")
    Image.fromarray(((mask > 0) * 255).astype(np.uint8)).save(d / "mask.png")
    return d


@pytest.fixture(scope="module")
def pred(crop, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "pred.zarr"
    argv = ["predict", str(crop / "img.png"), "--model", "glas-gland", "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--threads", "1", "--quiet"]) == 0
    return out


# -----------------------------------------------------------------------------
# pack never replaces what is not a checkpoint
# -----------------------------------------------------------------------------
def test_pack_onto_a_user_file_is_refused(tmp_path, capsys):
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    assert main(["pack", "glas-gland", "--out", str(victim)]) == 2
    line = _error_line(capsys)
    assert str(victim) in line and "not a folder" in line
    assert victim.read_bytes() == b"precious"


def test_pack_onto_a_user_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    assert main(["pack", "glas-gland", "--out", str(folder)]) == 2
    line = _error_line(capsys)
    assert str(folder) in line and "not a checkpoint" in line and "notes.txt" in line
    assert (folder / "notes.txt").read_text() == "precious"


def test_pack_onto_itself_is_refused(tmp_path, capsys):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(MODELS / "glas-gland", ck)
    before = (ck / "model.safetensors").read_bytes()
    assert main(["pack", str(ck), "--out", str(ck)]) == 2
    assert "the checkpoint being packed" in _error_line(capsys)
    assert (ck / "model.safetensors").read_bytes() == before


def test_pack_takes_a_bundled_name_and_replaces_an_earlier_pack(tmp_path, capsys):
    out = tmp_path / "packed"
    assert main(["pack", "glas-gland", "--out", str(out)]) == 0
    assert main(["pack", "glas-gland", "--out", str(out), "--name", "again"]) == 0
    assert json.loads((out / "slideseg.json").read_text())["name"] == "again"


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ("{bad", ["--metrics", "not valid JSON"]),
        ("[1, 2]", ["--metrics must be a JSON object", "not a list"]),
        ("no-such-file.json", ["no-such-file.json", "neither JSON text nor a JSON file"]),
    ],
)
def test_pack_bad_metrics(tmp_path, capsys, metrics, words):
    out = tmp_path / "packed"
    assert main(["pack", "glas-gland", "--out", str(out), "--metrics", metrics]) == 2
    line = _error_line(capsys)
    assert all(w in line for w in words), line
    assert not out.exists()


def test_pack_validation_and_held_out_figures_are_kept_apart(tmp_path, capsys):
    out = tmp_path / "packed"
    argv = ["pack", "glas-gland", "--out", str(out), "--validation-metrics", '{"dice": 0.9}']
    assert main(argv) == 0
    card = json.loads((out / "slideseg.json").read_text())
    assert card["validation_metrics"] == {"dice": 0.9}
    readme = (out / "README.md").read_text()
    assert '- validation images (whole images, own split): {"dice": 0.9}' in readme
    assert main([*argv, "--metrics", "{}"]) == 0
    assert "- held-out test: none recorded" in (out / "README.md").read_text()
    assert main([*argv[:4], "--validation-metrics", "[1]"]) == 2
    assert "--validation-metrics must be a JSON object" in _error_line(capsys)


# -----------------------------------------------------------------------------
# options that would be ignored; class maps that would not match
# -----------------------------------------------------------------------------
def test_patch_types_without_instances(crop, tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--mask", str(crop / "mask.png")]
    assert main([*argv, "--types", str(crop / "mask.png"), "--out", str(out)]) == 2
    assert "--types only apply with --instances" in _error_line(capsys)
    assert not out.exists()


def test_evaluate_truth_types_without_instances(pred, crop, capsys):
    argv = ["evaluate", str(pred), str(crop / "mask.png"), "--truth-types", str(crop / "mask.png")]
    assert main(argv) == 2
    assert "--truth-types only apply with --instances" in _error_line(capsys)


def test_evaluate_with_a_class_map_other_than_the_predictions(pred, crop, tmp_path, capsys):
    swapped = tmp_path / "swap.json"
    swapped.write_text(
        json.dumps({"names": ["g", "bg"], "colors": [[255, 255, 255], [0, 0, 0]], "background": 1})
    )
    assert main(["evaluate", str(pred), str(crop / "mask.png"), "--classmap", str(swapped)]) == 2
    line = _error_line(capsys)
    assert str(pred) in line and "class numbers would not match" in line and "g, bg" in line


def test_evaluate_with_the_predictions_own_class_map(pred, crop, tmp_path, capsys):
    from napari_slideseg.io.masks import read_labels

    _, cm, _ = read_labels(pred)
    own = tmp_path / "own.json"
    cm.save_json(own)
    assert main(["evaluate", str(pred), str(crop / "mask.png"), "--classmap", str(own)]) == 0
    assert "dice" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# patch extraction
# -----------------------------------------------------------------------------
def test_patch_larger_than_the_image_says_how(crop, tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--mask", str(crop / "mask.png"), "--size", "300"]
    assert main([*argv, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "no 300 x 300 patch fits the 256 x 256 px image" in line and "--grid pad" in line
    assert not out.exists()
    assert main([*argv, "--out", str(out), "--grid", "pad", "--quiet", "--min-tissue", "0"]) == 0
    assert len(list((out / "images").glob("*.png"))) == 1


def test_one_bit_tiff_patches(crop, tmp_path):
    import tifffile

    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.patching import PatchConfig, extract_patches

    img = np.asarray(Image.open(crop / "img.png").convert("L")) > 128
    path = tmp_path / "onebit.tif"
    Image.fromarray(img).convert("1").save(path)
    assert tifffile.TiffFile(path).pages[0].bitspersample == 1
    res = extract_patches(
        open_slide(path),
        tmp_path / "p",
        PatchConfig(size=128, stride=128, min_tissue=0, max_white=1),
    )
    assert res.n_patches == 4
    first = np.asarray(Image.open(next((tmp_path / "p" / "images").glob("*.png"))))
    assert set(np.unique(first).tolist()) <= {0, 255}


def test_failed_patch_run_leaves_nothing(crop, tmp_path, monkeypatch):
    """A run that fails before its first patch leaves no folder that blocks the next."""
    from napari_slideseg import patching
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.patching import writers

    def broken(*_a, **_k):
        raise OSError("disk on fire")

    monkeypatch.setattr(writers, "write_png", broken)
    out = tmp_path / "p"
    slide = open_slide(crop / "img.png")
    with pytest.raises(OSError, match="disk on fire"):
        patching.extract_patches(
            slide, out, patching.PatchConfig(size=128, stride=128, min_tissue=0)
        )
    assert not out.exists()
    monkeypatch.undo()
    res = patching.extract_patches(
        slide, out, patching.PatchConfig(size=128, stride=128, min_tissue=0)
    )
    assert res.n_patches == 4


def test_patch_overwrite_message_names_the_cli_flag(crop, tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--out", str(out), "--size", "128", "--quiet"]
    assert main(argv) == 0
    assert main([*argv, "--stride", "64"]) == 2
    assert "--overwrite skip" in _error_line(capsys)


def test_mask_size_mismatch_names_the_mask(crop, tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(small)
    out = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--mask", str(small), "--size", "128"]
    assert main([*argv, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert str(small) in line and "120 x 100" in line and "256 x 256 at level 0;" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["patch", "x.png", "--out", "o", "--seed", "-5"], "--seed"),
        (["train", "x", "--out", "o", "--seed", "-1"], "--seed"),
    ],
)
def test_negative_seed_is_refused(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "[0, 2147483647]" in err and "Traceback" not in err


# -----------------------------------------------------------------------------
# training without validation says so
# -----------------------------------------------------------------------------
def test_training_without_validation_warns_and_reports_train_loss(crop, tmp_path, capsys):
    patches = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--mask", str(crop / "mask.png"), "--size", "256"]
    assert main([*argv, "--out", str(patches), "--quiet", "--min-tissue", "0"]) == 0
    run = [
        "train",
        str(patches),
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--encoder-depth",
        "3",
        "--decoder-channels",
        "8,8,8",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--quiet",
    ]
    assert main(run) == 0
    captured = capsys.readouterr()
    assert "slideseg: warning: no validation patches" in captured.err
    assert "(train_loss " in captured.out and "val_loss" not in captured.out


# -----------------------------------------------------------------------------
# API inputs that are not paths, regions, devices
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, 123, [str(GLAS / "train_1.png")], b"x.svs"])
def test_open_slide_with_a_non_path(value):
    from napari_slideseg.io.slide import open_slide

    with pytest.raises(SlideError, match="a slide is a file or folder path"):
        open_slide(value)


def test_symlink_loop_is_named(tmp_path):
    from napari_slideseg.io.slide import open_slide

    (tmp_path / "a.svs").symlink_to(tmp_path / "b.svs")
    (tmp_path / "b.svs").symlink_to(tmp_path / "a.svs")
    with pytest.raises(SlideError, match="loop of symbolic links"):
        open_slide(tmp_path / "a.svs")
    (tmp_path / "c.svs").symlink_to(tmp_path / "gone.svs")
    with pytest.raises(SlideError, match=r"symbolic link to .*gone\.svs.*does not exist"):
        open_slide(tmp_path / "c.svs")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"region": (0, 0, 5)}, "region must be four integers"),
        ({"region": (5, 5, 1, 1)}, "region (5, 5, 1, 1) is empty"),
        ({"region": (-5, 0, 10, 10)}, "region must be four integers >= 0"),
        ({"roi": [(0, 0)]}, "roi must be a polygon of at least 3"),
        ({"roi": [(0, 0), (1, float("nan")), (2, 2)]}, "roi must be a polygon"),
        ({"device": "bogus"}, "device must be auto, cpu, mps, cuda or cuda:N, not 'bogus'"),
        ({"tile": 100000}, "tile must be in [16, 8192] px"),
    ],
)
def test_infer_config_checks_region_roi_device(kwargs, words):
    from napari_slideseg.infer.engine import InferConfig, InferError

    with pytest.raises(InferError) as info:
        InferConfig(**kwargs)
    assert words in str(info.value)


def test_predict_inverted_region_cli(crop, tmp_path, capsys):
    argv = ["predict", str(crop / "img.png"), "--model", "glas-gland", "--out", str(tmp_path / "o")]
    assert main([*argv, "--region", "100", "100", "50", "50"]) == 2
    assert "is empty" in _error_line(capsys)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"manifests": 5}, "manifests must be a list"),
        ({"manifests": [1, 2]}, "manifests must be a list of folder or manifest paths"),
        ({"val_manifests": 5}, "val_manifests must be a list"),
        ({"seed": -1}, "seed must be an integer in [0, 2147483647]"),
    ],
)
def test_train_config_bad_types(kwargs, words):
    from napari_slideseg.train import TrainConfig

    with pytest.raises(SlideSegError) as info:
        TrainConfig(**kwargs)
    assert words in str(info.value)


# -----------------------------------------------------------------------------
# masks and class maps
# -----------------------------------------------------------------------------
def test_empty_mask_file(tmp_path, capsys):
    empty = tmp_path / "e.png"
    empty.touch()
    assert main(["convert", str(empty), "--to", str(tmp_path / "o.png")]) == 2
    line = _error_line(capsys)
    assert str(empty) in line and "empty (0 bytes)" in line and "UnboundLocalError" not in line


def test_folder_as_mask(crop, tmp_path, capsys):
    folder = tmp_path / "dir.tif"
    folder.mkdir()
    argv = ["patch", str(crop / "img.png"), "--mask", str(folder), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert str(folder) in line and "not a zarr store" in line and "GroupNotFound" not in line


def test_boolean_colour_component_is_refused():
    from napari_slideseg.io.palette import ClassMap, MaskError

    with pytest.raises(MaskError, match="colour component must be an integer, not True"):
        ClassMap(("bg", "fg"), ((0, 0, 0), (True, 255, 255)))


def test_no_warning_for_a_plain_patch_run(crop, tmp_path):
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.patching import PatchConfig, extract_patches

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = extract_patches(open_slide(crop / "img.png"), tmp_path / "p", PatchConfig(size=128))
    assert res.out == tmp_path / "p"


def test_export_csv_to_a_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "d.csv"
    folder.mkdir()
    assert main(["export", str(GLAS / "train_1_mask.png"), "--to", str(folder)]) == 2
    assert "is a directory; give a file name" in _error_line(capsys)
    assert not any(folder.iterdir()) and not list(tmp_path.glob(".*tmp*"))


def test_outputs_get_the_users_default_permissions(tmp_path):
    import os
    import stat

    from napari_slideseg.io.palette import ClassMap

    old = os.umask(0o022)
    try:
        cm_path = ClassMap.default(3).save_json(tmp_path / "classmap.json")
        assert main(["pack", "glas-gland", "--out", str(tmp_path / "packed")]) == 0
    finally:
        os.umask(old)
    for p in (cm_path, tmp_path / "packed" / "model.safetensors"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


# -----------------------------------------------------------------------------
# second sweep: vendor formats, HoVer exports, resumed training, regions
# -----------------------------------------------------------------------------
SHARED = Path(__file__).parents[3] / "shared" / "data" / "wsi_formats"


@pytest.mark.parametrize("name", ["test3-DAPI-2-(387).ndpi", "test3-TRITC 2 (560).ndpi"])
def test_real_ndpi_opens_with_the_full_jpeg_check(name):
    """NDPI tiles are restart intervals of one JPEG stream: checked behind its header."""
    from napari_slideseg.io.slide import open_slide

    full = open_slide(SHARED / "ndpi" / name)
    assert full.n_levels >= 4 and full.levels[0].shape[:2] == (4864, 3968)
    a = full.read_region(0, 1000, 1000, 300, 300)
    b = open_slide(SHARED / "ndpi" / name, jpeg_check="markers").read_region(
        0, 1000, 1000, 300, 300
    )
    np.testing.assert_array_equal(a, b)
    assert a.any()


@pytest.mark.parametrize(
    ("rel", "words"),
    [
        ("detection_stubs/Mirax2-Fluorescence-1.mrxs", "is a 3DHISTECH MIRAX slide"),
        ("detection_stubs/Hamamatsu-VMS", "is a Hamamatsu (NDPI/VMS/VMU) slide"),
    ],
)
def test_vendor_stubs_are_named_not_misread(rel, words, capsys):
    """Detected by OpenSlide, then refused with its message (the data files are dummies)."""
    assert main(["info", str(SHARED / rel)]) == 2
    line = _error_line(capsys)
    assert words in line and "OpenSlide could not open it" in line


def test_a_dicom_folder_is_a_slide(capsys):
    assert main(["info", str(SHARED / "dicom" / "napari-wsi_CMU-1-Small-Region")]) == 0
    assert "backend      wsidicom (dicom)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def hover_pred(tmp_path_factory):
    d = tmp_path_factory.mktemp("hover")
    src = sorted((Path(__file__).parents[1] / "data" / "monuseg" / "images").glob("*.png"))[0]
    Image.fromarray(np.asarray(Image.open(src).convert("RGB"))[:256, :256]).save(d / "t.png")
    out = d / "p.zarr"
    argv = ["predict", str(d / "t.png"), "--model", "hover-nuclei", "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--threads", "1", "--quiet"]) == 0
    return out


@pytest.mark.parametrize("ext", ["png", "tif", "ome.zarr"])
def test_hover_nuclei_export_as_id_images(hover_pred, tmp_path, ext):
    import zarr

    from napari_slideseg.io.masks import read_labels

    out = tmp_path / f"n.{ext}"
    assert main(["export", str(hover_pred), "--instances", "--to", str(out)]) == 0
    ids, _, info = read_labels(out)
    ref = zarr.open_group(str(hover_pred), mode="r")["instances"][:]
    assert info.get("instances") and ref.max() > 5
    np.testing.assert_array_equal(np.asarray(ids), ref)


def test_hover_table_needs_csv(hover_pred, tmp_path, capsys):
    out = tmp_path / "t.geojson"
    assert main(["export", str(hover_pred), "--table", "--to", str(out)]) == 2
    assert "the nuclei table is written as .csv" in _error_line(capsys)
    assert not out.exists()


def test_instances_evaluate_refuses_binary_and_other_sizes(hover_pred, tmp_path, capsys):
    binary = np.zeros((256, 256), np.uint8)
    binary[10:50, 10:50] = 255
    Image.fromarray(binary).save(tmp_path / "bin.png")
    assert main(["evaluate", str(hover_pred), str(tmp_path / "bin.png"), "--instances"]) == 2
    assert "a binary mask, not an instance map" in _error_line(capsys)
    Image.fromarray(np.zeros((100, 120), np.uint16)).save(tmp_path / "small.png")
    assert main(["evaluate", str(hover_pred), str(tmp_path / "small.png"), "--instances"]) == 2
    assert "256 x 256 px but the truth is 120 x 100 px" in _error_line(capsys)


def test_evaluate_scores_a_region_prediction_inside_its_region(crop, tmp_path, capsys):
    from napari_slideseg.io.masks import predicted_box

    out = tmp_path / "r.zarr"
    argv = ["predict", str(crop / "img.png"), "--model", "glas-gland", "--out", str(out)]
    assert main([*argv, "--region", "0", "0", "128", "192", "--device", "cpu", "--quiet"]) == 0
    assert predicted_box(out) == (0, 0, 128, 192)
    capsys.readouterr()
    assert main(["evaluate", str(out), str(crop / "mask.png")]) == 0
    captured = capsys.readouterr()
    assert "predicted only the region y 0-128, x 0-192" in captured.err
    # the same score as evaluating the cropped arrays directly
    from napari_slideseg.io.masks import read_labels
    from napari_slideseg.metrics import evaluate

    pred, _, _ = read_labels(out)
    truth = (np.asarray(Image.open(crop / "mask.png")) > 0).astype(np.uint8)
    rows = evaluate([("r", np.asarray(pred)[:128, :192], truth[:128, :192])], ["bg", "gland"])
    assert f"dice_gland={rows[0]['dice_gland']}" in captured.out


def test_resume_keeps_the_runs_settings_and_refuses_changes(crop, tmp_path, capsys):
    patches = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--mask", str(crop / "mask.png"), "--size", "128"]
    assert main([*argv, "--out", str(patches), "--quiet", "--min-tissue", "0"]) == 0
    run = ["train", str(patches), "--out", str(tmp_path / "run"), "--device", "cpu"]
    run += ["--encoder-depth", "3", "--decoder-channels", "8,8,8", "--max-steps", "1", "--quiet"]
    run += ["--threads", "1", "--val-fraction", "0.5", "--split-by", "patch"]
    assert main([*run, "--lr", "2e-3", "--epochs", "1"]) == 0
    assert main([*run, "--resume", "--epochs", "2"]) == 0  # --lr left out: the run's 2e-3
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["lr"] == 2e-3 and saved["epochs"] == 2
    capsys.readouterr()
    assert main([*run, "--resume", "--epochs", "3", "--lr", "0.5"]) == 2
    assert "these differ: lr 0.5 (run: 0.002)" in _error_line(capsys)


def test_validation_folder_that_is_a_training_folder(crop, tmp_path, capsys):
    patches = tmp_path / "p"
    argv = ["patch", str(crop / "img.png"), "--mask", str(crop / "mask.png"), "--size", "128"]
    assert main([*argv, "--out", str(patches), "--quiet"]) == 0
    argv = ["train", str(patches), "--val", str(patches), "--out", str(tmp_path / "r")]
    assert main([*argv, "--quiet"]) == 2
    assert "is both a training and a validation folder" in _error_line(capsys)
    assert main(["train", str(patches), "--kind", "hover", "--out", str(tmp_path / "h")]) == 2
    assert "holds class patches, but kind 'hover'" in _error_line(capsys)
    assert not (tmp_path / "r").exists() and not (tmp_path / "h").exists()


def test_api_takes_paths_and_bundled_names(crop, tmp_path):
    from napari_slideseg.infer import InferConfig, InferError, predict_slide
    from napari_slideseg.models import load_model
    from napari_slideseg.patching import PatchConfig, PatchError, extract_patches

    assert load_model("glas-gland")[1].name == "glas-gland"
    out = predict_slide(str(crop / "img.png"), "glas-gland", tmp_path / "p.zarr", InferConfig())
    assert (out / "labels").exists()
    res = extract_patches(crop / "img.png", tmp_path / "patches", PatchConfig(size=128, stride=128))
    assert res.n_patches == 4 and res.manifest.exists()
    with pytest.raises(InferError, match="slide must be a Slide"):
        predict_slide(np.zeros((8, 8, 3)), "glas-gland", tmp_path / "q.zarr")
    with pytest.raises(PatchError, match="config must be a PatchConfig"):
        extract_patches(crop / "img.png", tmp_path / "x", {"size": 64})


def test_demo_never_writes_into_a_prediction_or_a_users_folder(pred, tmp_path, capsys):
    assert main(["demo", "--out", str(pred)]) == 2
    assert "is a zarr store" in _error_line(capsys)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("precious")
    assert main(["demo", "--out", str(mine)]) == 2
    assert "holds files the demo did not write (thesis.docx)" in _error_line(capsys)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.docx"]


@pytest.mark.parametrize(
    ("mpp", "zoom", "want"),
    [(0.25, 1.0, 1.0), (0.26, 1.0, 1.0), (0.5, 1.0, 2.0), (0.125, 1.0, 0.5)],
)
def test_tune_hover_mpp_sets_the_zoom_like_predict(mpp, zoom, want):
    from napari_slideseg.infer.tune import tile_zoom
    from napari_slideseg.models.card import read_card

    card = read_card(MODELS / "hover-nuclei", hash_weights=False)
    assert card.mpp == pytest.approx(0.25)
    assert tile_zoom(card, mpp, zoom) == pytest.approx(want)


@pytest.mark.parametrize(
    ("mpp", "zoom", "words"),
    [
        (0.5, 2.0, "give mpp or zoom, not both"),
        (0.0, 1.0, "mpp must be a number > 0"),
        (5.0, 1.0, "outside 1/8-8"),
    ],
)
def test_tune_hover_mpp_refusals(mpp, zoom, words):
    from napari_slideseg.infer.tune import TuneError, tile_zoom
    from napari_slideseg.models.card import read_card

    card = read_card(MODELS / "hover-nuclei", hash_weights=False)
    with pytest.raises(TuneError, match=words):
        tile_zoom(card, mpp, zoom)
