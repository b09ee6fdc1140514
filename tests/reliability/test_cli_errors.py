"""The ``slideseg`` command never prints a traceback for a user or environment error.

Bad option values stop at argparse (status 2, the message names the option
and its range); bad files and refused writes print one line
``slideseg: error: <file>: <problem>`` (status 2 for bad input, 1 when the
system refuses: a missing or file-blocked folder, disk full, memory).
Real bugs keep their traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from napari_slideseg.cli import main

GLAS = Path(__file__).parents[1] / "data" / "glas"
SLIDE = str(GLAS / "train_1.png")
MASK = str(GLAS / "train_1_mask.png")
INST = Path(__file__).parents[1] / "data" / "monuseg" / "inst_maps"


def _argparse_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# (subcommand args, the option, words of the allowed range)
BAD_OPTIONS = [
    (["patch", SLIDE, "--out", "{out}", "--stride", "0"], "--stride", "integer >= 1, not 0"),
    (["patch", SLIDE, "--out", "{out}", "--size", "-64"], "--size", "integer >= 1, not -64"),
    (["patch", SLIDE, "--out", "{out}", "--size", "1.5"], "--size", "integer >= 1, not 1.5"),
    (["patch", SLIDE, "--out", "{out}", "--level", "-1"], "--level", "integer >= 0, not -1"),
    (["patch", SLIDE, "--out", "{out}", "--min-tissue", "5"], "--min-tissue", "in [0, 1], not 5"),
    (["patch", SLIDE, "--out", "{out}", "--max-white", "1.5"], "--max-white", "in [0, 1]"),
    (["patch", SLIDE, "--out", "{out}", "--max-black", "nan"], "--max-black", "in [0, 1]"),
    (["patch", SLIDE, "--out", "{out}", "--keep-background", "-1"], "--keep-background", "[0, 1]"),
    (["patch", SLIDE, "--out", "{out}", "--workers", "-1"], "--workers", "integer >= 0"),
    (["patch", SLIDE, "--out", "{out}", "--zoom", "0"], "--zoom", "positive number"),
    (
        ["patch", SLIDE, "--out", "{out}", "--region", "0", "0", "-5", "10"],
        "--region",
        "integer >= 0, not -5",
    ),
    (["train", "{out}", "--out", "{out}", "--threads", "-1"], "--threads", "integer >= 1, not -1"),
    (["train", "{out}", "--out", "{out}", "--threads", "0"], "--threads", "integer >= 1, not 0"),
    (["train", "{out}", "--out", "{out}", "--val-fraction", "1.5"], "--val-fraction", "[0, 1)"),
    (["train", "{out}", "--out", "{out}", "--batch-size", "0"], "--batch-size", "integer >= 1"),
    (["train", "{out}", "--out", "{out}", "--epochs", "0"], "--epochs", "integer >= 1"),
    (["train", "{out}", "--out", "{out}", "--lr", "-0.1"], "--lr", "number > 0"),
    (["train", "{out}", "--out", "{out}", "--folds", "1"], "--folds", "integer >= 2, not 1"),
    (["train", "{out}", "--out", "{out}", "--patience", "0"], "--patience", "integer >= 1"),
    (["train", "{out}", "--out", "{out}", "--max-steps", "0"], "--max-steps", "integer >= 1"),
    (["train", "{out}", "--out", "{out}", "--workers", "-1"], "--workers", "integer >= 0"),
    (
        ["train", "{out}", "--out", "{out}", "--encoder-depth", "four"],
        "--encoder-depth",
        "integer in [3, 5], not 'four'",
    ),
    (["train", "{out}", "--out", "{out}", "--encoder-depth", "9"], "--encoder-depth", "[3, 5]"),
    (
        ["train", "{out}", "--out", "{out}", "--class-weights", "1,abc"],
        "--class-weights",
        "numbers > 0",
    ),
    (["train", "{out}", "--out", "{out}", "--class-weights", "1,-2"], "--class-weights", "> 0"),
    (
        ["train", "{out}", "--out", "{out}", "--decoder-channels", "16,x"],
        "--decoder-channels",
        "integers >= 1",
    ),
    (
        ["train", "{out}", "--out", "{out}", "--scale-range", "0", "2"],
        "--scale-range",
        "number > 0",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--threads", "0"],
        "--threads",
        ">= 1",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--threads", "-1"],
        "--threads",
        ">= 1",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--instance-halo", "-10"],
        "--instance-halo",
        "integer >= 0, not -10",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--workers", "-1"],
        "--workers",
        "integer >= 0, not -1",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--level", "-1"],
        "--level",
        ">= 0",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--block", "0"],
        "--block",
        ">= 1",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--tile", "8"],
        "--tile",
        "integer >= 16, not 8",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--batch-size", "0"],
        "--batch-size",
        ">= 1",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--overlap", "-1"],
        "--overlap",
        ">= 0",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--min-tissue", "5"],
        "--min-tissue",
        "[0, 1]",
    ),
    (["export", MASK, "--to", "{out}", "--shape", "0", "10"], "--shape", "integer >= 1, not 0"),
    (["export", MASK, "--to", "{out}", "--tolerance", "-3"], "--tolerance", "number >= 0"),
    (["tune-hover", "x", "--images", "a", "--truths", "b", "--threads", "0"], "--threads", ">= 1"),
    # config fields the command line did not reach before the options were generated
    (["train", "{out}", "--out", "{out}", "--weight-decay", "-1"], "--weight-decay", ">= 0"),
    (["train", "{out}", "--out", "{out}", "--bn-recalibrate", "-2"], "--bn-recalibrate", ">= 0"),
    (
        ["train", "{out}", "--out", "{out}", "--hover-weights", "np=1"],
        "--hover-weights",
        "unknown HoVer loss terms ['np']",
    ),
    (
        ["train", "{out}", "--out", "{out}", "--hover-weights", "{nope"],
        "--hover-weights",
        "not valid JSON",
    ),
    (["patch", SLIDE, "--out", "{out}", "--pad-value", "-1"], "--pad-value", "[0, 65535]"),
    (["patch", SLIDE, "--out", "{out}", "--tissue-level", "-1"], "--tissue-level", ">= 0"),
    (["patch", SLIDE, "--out", "{out}", "--polygons", "1,2,3"], "--polygons", "(y, x) points"),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--halo", "-1"],
        "--halo",
        "integer >= 0",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--window", "box"],
        "--window",
        "invalid choice: 'box' (choose from 'gaussian', 'cosine', 'flat')",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--roi", "0,0,x,1"],
        "--roi",
        "(y, x) points",
    ),
    (
        ["predict", SLIDE, "--model", "glas-gland", "--out", "{out}", "--hover", "size=3"],
        "--hover",
        "unknown HoVer post-processing parameters ['size']",
    ),
]


@pytest.mark.parametrize(
    ("argv", "option", "allowed"),
    BAD_OPTIONS,
    ids=[f"{a[0]} {o} {a[-1]}" for a, o, _ in BAD_OPTIONS],
)
def test_bad_option_names_option_and_range(argv, option, allowed, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    err = _argparse_error([str(out) if a == "{out}" else a for a in argv], capsys)
    assert f"argument {option}" in err and allowed in err, err
    assert not out.exists()  # refused before anything is written


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("slideseg: error:")]
    assert len(lines) == 1, err
    return lines[0]


# -----------------------------------------------------------------------------
# output paths the system refuses: one line naming the path, status 1
# -----------------------------------------------------------------------------
def _blocked(tmp_path: Path) -> Path:
    f = tmp_path / "afile"
    f.write_text("a regular file, not a folder")
    return f


def test_patch_out_under_a_file(tmp_path, capsys):
    out = _blocked(tmp_path) / "patches"
    rc = main(["patch", SLIDE, "--out", str(out), "--size", "64", "--region", "0", "0", "64", "64"])
    assert rc == 1
    line = _error_line(capsys)
    assert str(out) in line and "not a folder" in line


def test_predict_out_under_a_file(tmp_path, capsys):
    out = _blocked(tmp_path) / "out.zarr"
    argv = [
        "predict",
        SLIDE,
        "--model",
        "glas-gland",
        "--out",
        str(out),
        "--region",
        "0",
        "0",
        "64",
        "64",
    ]
    assert main([*argv, "--tile", "64", "--block", "64", "--quiet"]) == 1
    line = _error_line(capsys)
    assert str(tmp_path / "afile") in line and "folder" in line
    assert (tmp_path / "afile").is_file()


def test_train_out_under_a_file(patch_set, tmp_path, capsys):
    out = _blocked(tmp_path) / "run"
    assert main(["train", str(patch_set), "--out", str(out), "--epochs", "1"]) == 1
    line = _error_line(capsys)
    assert str(out) in line and "Not a directory" in line


@pytest.mark.parametrize("suffix", ["x.png", "x.csv", "x.tif"])
def test_export_missing_parent_folder_names_target(tmp_path, capsys, suffix):
    out = tmp_path / "missing" / suffix
    assert main(["export", MASK, "--to", str(out), "--quiet"]) == 1
    line = _error_line(capsys)
    assert f"{out}: No such file or directory" in line  # the target, not a hidden temporary
    assert f"the folder {out.parent} does not exist" in line
    assert not (tmp_path / "missing").exists()


def test_export_under_a_file(tmp_path, capsys):
    out = _blocked(tmp_path) / "x.png"
    assert main(["export", MASK, "--to", str(out), "--quiet"]) == 1
    assert str(out) in _error_line(capsys)


def test_disk_full_is_one_line(tmp_path, capsys, monkeypatch):
    import napari_slideseg.io.rle as rle

    def full(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rle, "write_rle_csv", full)
    out = tmp_path / "x.csv"
    assert main(["export", MASK, "--to", str(out)]) == 1
    line = _error_line(capsys)
    assert str(out) in line and "No space left on device" in line and "disk full" in line


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    import napari_slideseg.io.masks as masks

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(masks, "read_labels", oom)
    assert main(["export", MASK, "--to", str(tmp_path / "x.png")]) == 1
    assert "not enough memory" in _error_line(capsys)


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import napari_slideseg.io.masks as masks

    def bug(*a, **k):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(masks, "read_labels", bug)
    with pytest.raises(RuntimeError, match="a real bug"):
        main(["export", MASK, "--to", str(tmp_path / "x.png")])


def test_help_documents_exit_status(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit status" in out and "bad input" in out and "disk full" in out


# -----------------------------------------------------------------------------
# bad input files and values found after parsing: status 2, names file/option
# -----------------------------------------------------------------------------
def test_patch_level_beyond_slide_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["patch", SLIDE, "--out", str(out), "--level", "5"]) == 2
    line = _error_line(capsys)
    assert SLIDE in line and "--level 5" in line and "has 1 level: 0)" in line
    assert not out.exists()


def test_patch_instances_without_mask(tmp_path, capsys):
    assert main(["patch", SLIDE, "--out", str(tmp_path / "p"), "--instances"]) == 2
    assert "--instances needs --mask" in _error_line(capsys)


@pytest.fixture(scope="module")
def patch_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_patches") / "p"
    argv = ["patch", SLIDE, "--mask", MASK, "--size", "64", "--region", "0", "0", "128", "128"]
    assert main([*argv, "--out", str(root), "--quiet"]) == 0
    return root


TINY = ["--epochs", "1", "--batch-size", "2", "--max-steps", "1", "--encoder-depth", "3"]
TINY += ["--decoder-channels", "16,8,8", "--device", "cpu", "--threads", "1", "--quiet"]


def test_train_mask_value_out_of_bounds(patch_set, tmp_path, capsys):
    import shutil

    from PIL import Image

    p = tmp_path / "p"
    shutil.copytree(patch_set, p)
    for f in (p / "masks").glob("*.png"):
        m = np.asarray(Image.open(f)).copy()
        m[0, 0] = 7
        Image.fromarray(m).save(f)
    rc = main(["train", str(p), "--out", str(tmp_path / "run"), "--val-fraction", "0", *TINY])
    assert rc == 2
    line = _error_line(capsys)
    assert "mask value 7" in line and str(p / "masks") in line


def test_train_garbage_manifest(tmp_path, capsys):
    f = tmp_path / "manifest.csv"
    f.write_text("just,some\n1,2\n")
    out = tmp_path / "run"
    assert main(["train", str(f), "--out", str(out), *TINY]) == 2
    line = _error_line(capsys)
    assert str(f) in line and "not a patch manifest" in line
    assert not out.exists()


def test_train_class_weights_count(patch_set, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", str(patch_set), "--out", str(out), "--class-weights", "1,2,3", *TINY])
    assert rc == 2
    assert "class_weights must have 2 values" in _error_line(capsys)
    assert not out.exists()


def test_train_missing_manifest(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["train", str(missing), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert str(missing) in _error_line(capsys)


# -----------------------------------------------------------------------------
# instance maps are exported as ids, never as a made-up class map
# -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def instance_csv(tmp_path_factory):
    from napari_slideseg.io.export import export_labels
    from napari_slideseg.io.masks import read_instance_map

    ids = np.asarray(read_instance_map(INST / "TCGA-A7-A13E-01Z-00-DX1_inst.png"))[:200, :200]
    ids = ids.astype(np.uint32)
    out = tmp_path_factory.mktemp("inst") / "nuclei.csv"
    export_labels(ids, out, instances=True)
    return out, ids


@pytest.mark.parametrize("suffix", ["png", "tif", "csv", "ome.zarr"])
def test_export_instance_csv_keeps_ids(instance_csv, tmp_path, capsys, suffix):
    from napari_slideseg.io.masks import read_labels

    src, ids = instance_csv
    out = tmp_path / f"nuclei.{suffix}"
    assert main(["export", str(src), "--to", str(out), "--quiet"]) == 0
    assert "class_" not in capsys.readouterr().out
    back, _cm, info = read_labels(out)
    assert info.get("instances"), info
    got = np.asarray(back)
    # the same objects with the same ids (a relabelled map would still pass equality of masks)
    assert np.array_equal(got, ids)


def test_export_instance_indexed_refused(instance_csv, tmp_path, capsys):
    src, _ = instance_csv
    out = tmp_path / "x.png"
    assert main(["export", str(src), "--to", str(out), "--indexed"]) == 2
    line = _error_line(capsys)
    assert str(src) in line and "instance map" in line
    assert not out.exists()
