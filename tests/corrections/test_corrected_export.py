"""``slideseg export`` of a corrected prediction: with the corrections, or as predicted."""

from __future__ import annotations

import shutil

import numpy as np

from napari_slideseg.cli import main


def test_export_writes_the_corrections_unless_original(level1_prediction, tmp_path, capsys):
    from napari_slideseg.corrections import open_corrections
    from napari_slideseg.io.masks import read_labels

    src, labels, _ = level1_prediction
    pred = tmp_path / "pred.zarr"
    shutil.copytree(src, pred)
    fix = np.full((40, 60), 2, labels.dtype)
    assert open_corrections(pred).record("labels", 100, 120, fix) is not None
    want = labels.copy()
    want[100:140, 120:180] = 2
    assert not np.array_equal(want, labels)

    assert main(["export", str(pred), "--to", str(tmp_path / "fixed.png")]) == 0
    assert "exporting with the corrections painted on it (version 1" in capsys.readouterr().err
    got, _, _ = read_labels(tmp_path / "fixed.png", classmap="wsi3")
    np.testing.assert_array_equal(np.asarray(got), want)

    argv = ["export", str(pred), "--to", str(tmp_path / "orig.png"), "--original"]
    assert main(argv) == 0
    assert "without its corrections" in capsys.readouterr().err
    got, _, _ = read_labels(tmp_path / "orig.png", classmap="wsi3")
    np.testing.assert_array_equal(np.asarray(got), labels)

    # a prediction without corrections exports as before, without a word about them
    assert main(["export", str(src), "--to", str(tmp_path / "plain.png")]) == 0
    assert "corrections" not in capsys.readouterr().err
