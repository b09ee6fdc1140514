"""Manifest tier: masks and RLE CSVs read through npe2; labels written through npe2 writers; CLI."""

from __future__ import annotations

import json

import npe2
import numpy as np
import pytest
from PIL import Image

from napari_slideseg import _reader
from napari_slideseg.cli import main
from napari_slideseg.io.palette import ClassMap, labels_to_rgb


def _read(path):
    return npe2.read([str(path.resolve())], stack=False, plugin_name="napari-slideseg")


@pytest.mark.parametrize("preset", ["biopsy6", "wsi3", "binary"])
def test_colour_mask_opens_as_labels_with_palette(tmp_path, preset):
    cm = ClassMap.preset(preset)
    labels = np.random.default_rng(0).integers(0, cm.n_classes, (80, 90)).astype(np.uint8)
    Image.fromarray(labels_to_rgb(labels, cm)).save(tmp_path / "m.png")
    assert _reader.napari_get_mask_reader(str(tmp_path / "m.png")) is not None
    ((data, kwargs, kind),) = _read(tmp_path / "m.png")
    assert kind == "labels"
    np.testing.assert_array_equal(data, labels)
    assert kwargs["metadata"]["slideseg"]["classmap"]["name"] == preset
    assert kwargs["colormap"][1][:3] == pytest.approx(tuple(c / 255 for c in cm.colors[1]))


def test_photo_is_not_claimed_as_mask(data_dir):
    assert _reader.napari_get_mask_reader(str(data_dir / "glas" / "train_1.png")) is None
    assert _reader.napari_get_mask_reader(str(data_dir / "wsi" / "CMU-1-Small-Region.svs")) is None


def test_rle_csv_opens_and_missing_shape_is_explained(tmp_path):
    labels = np.zeros((40, 50), np.uint8)
    labels[5:10, 7:30] = 1
    assert (
        main(["convert", _png(tmp_path, labels), "--to", str(tmp_path / "m.csv"), "--quiet"]) == 0
    )
    ((data, _kwargs, kind),) = _read(tmp_path / "m.csv")
    assert kind == "labels"
    np.testing.assert_array_equal(data, labels)
    (tmp_path / "k.csv").write_text("id,rle\nimg1,1 5 20 3\n")
    messages = []
    import napari_slideseg._reader as r

    orig = r._notify_error
    r._notify_error = messages.append
    try:
        assert r.read_mask(str(tmp_path / "k.csv")) == [(None,)]
    finally:
        r._notify_error = orig
    assert messages and "k.csv" in messages[0] and "pixel order" in messages[0]
    # with the order given, the missing shape is what is asked for
    assert (
        main(
            [
                "export",
                str(tmp_path / "k.csv"),
                "--in-rle-order",
                "col",
                "--to",
                str(tmp_path / "k.png"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "k.png").exists()


def _png(tmp_path, labels):
    path = tmp_path / "in.png"
    Image.fromarray((labels * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("ext", [".png", ".csv", ".zarr", ".geojson"])
def test_npe2_write_then_read(tmp_path, ext):
    cm = ClassMap.preset("wsi3")
    labels = np.zeros((64, 48), np.uint8)
    labels[4:20, 5:30] = 1
    labels[30:50, 10:40] = 2
    meta = {"slideseg": {"classmap": cm.to_dict()}}
    out = tmp_path / f"out{ext}"
    paths = npe2.write(
        str(out),
        [(labels, {"name": "x", "metadata": meta}, "labels")],
        plugin_name="napari-slideseg",
    )
    assert paths == [str(out)]
    if ext == ".geojson":
        feats = json.loads(out.read_text())["features"]
        assert sorted(f["properties"]["classification"]["name"] for f in feats) == ["red", "yellow"]
        return
    if ext == ".png":
        np.testing.assert_array_equal(np.asarray(Image.open(out)), labels_to_rgb(labels, cm))
    ((data, _kwargs, _),) = _read(out) if ext != ".zarr" else [(None, None, None)]
    if ext == ".zarr":
        from napari_slideseg.io.masks import read_labels

        data, found, _ = read_labels(out)
        data = data.compute()
        assert found == cm
    np.testing.assert_array_equal(np.asarray(data), labels)


def test_cli_export_png_round_trip_is_byte_identical(tmp_path, data_dir):
    src = data_dir / "glas" / "train_1_mask.png"
    assert (
        main(
            ["convert", str(src), "--to", str(tmp_path / "g.csv"), "--rle-order", "row", "--quiet"]
        )
        == 0
    )
    assert "row" in (tmp_path / "g.csv").read_text().splitlines()[1]
    assert (
        main(["export", str(tmp_path / "g.csv"), "--to", str(tmp_path / "g.png"), "--quiet"]) == 0
    )
    back = np.asarray(Image.open(tmp_path / "g.png"))
    orig = np.asarray(Image.open(src))
    np.testing.assert_array_equal(back, np.stack([orig] * 3, -1))


def test_cli_export_error_is_one_line(tmp_path, capsys):
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["export", str(tmp_path / "a.png"), "--to", str(tmp_path / "a.bmp")]) == 2
    err = capsys.readouterr().err
    assert "a.bmp" in err and "unknown export format" in err and "Traceback" not in err
    assert not (tmp_path / "a.bmp").exists()
