"""Writers: colour PNG, index PNG, OME-Zarr labels, GeoJSON, RLE CSV via export_labels."""

from __future__ import annotations

import gzip
import json

import dask.array as da
import numpy as np
import pytest
import zarr
from PIL import Image

from napari_slideseg.io.export import (
    export_labels,
    write_color_png,
    write_geojson,
    write_index_png,
    write_ome_zarr_labels,
)
from napari_slideseg.io.masks import read_labels
from napari_slideseg.io.palette import ClassMap, MaskError, labels_to_rgb


@pytest.mark.parametrize("indexed", [False, True])
def test_color_png_is_pixel_identical_and_streams_from_dask(tmp_path, indexed):
    cm = ClassMap.preset("biopsy6")
    labels = np.random.default_rng(0).integers(0, 6, (700, 333)).astype(np.uint8)
    lazy = da.from_array(labels, chunks=(128, 100))
    out = write_color_png(tmp_path / "m.png", lazy, cm, indexed=indexed, band_rows=100)
    with Image.open(out) as im:
        assert im.mode == ("P" if indexed else "RGB")
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), labels_to_rgb(labels, cm))
        assert json.loads(im.text["slideseg:classmap"])["name"] == "biopsy6"
    back, found, _ = read_labels(out)
    np.testing.assert_array_equal(back, labels)
    assert found == cm


def test_bad_labels_leave_no_file(tmp_path):
    cm = ClassMap.preset("wsi3")
    labels = np.zeros((300, 50), np.uint8)
    labels[250, 3] = 7
    with pytest.raises(MaskError, match=r"label values \[7\]"):
        write_color_png(tmp_path / "x.png", labels, cm, band_rows=64)
    assert list(tmp_path.iterdir()) == []


def test_index_png_8_and_16_bit(tmp_path):
    small = np.arange(60, dtype=np.uint8).reshape(6, 10)
    big = np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000
    np.testing.assert_array_equal(
        np.asarray(Image.open(write_index_png(tmp_path / "a.png", small))), small
    )
    import imagecodecs

    np.testing.assert_array_equal(imagecodecs.imread(write_index_png(tmp_path / "b.png", big)), big)


def test_ome_zarr_labels_with_properties(tmp_path):
    cm = ClassMap.preset("wsi3")
    labels = np.random.default_rng(1).integers(0, 3, (2100, 1500)).astype(np.uint8)
    out = write_ome_zarr_labels(
        tmp_path / "l.ome.zarr",
        da.from_array(labels, chunks=512),
        classmap=cm,
        properties={1: {"area": 12}, 2: {"area": np.int64(5)}},
        mpp=(0.5, 0.5),
        chunk=512,
    )
    root = zarr.open_group(str(out), mode="r")
    attrs = dict(root.attrs)
    ms = attrs["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    assert ms["axes"][0]["unit"] == "micrometer"
    props = {p["label-value"]: p for p in attrs["image-label"]["properties"]}
    assert props[1] == {"label-value": 1, "class": "yellow", "area": 12}
    assert attrs["image-label"]["colors"][2]["rgba"] == [255, 0, 0, 255]
    np.testing.assert_array_equal(root["0"][:], labels)
    np.testing.assert_array_equal(root["1"][:], labels[::2, ::2])
    back, found, info = read_labels(out)
    assert found == cm and info["format"] == "ome-zarr"
    np.testing.assert_array_equal(back.compute(), labels)


def _blobs():
    inst = np.zeros((400, 500), np.int32)
    inst[10:40, 10:30] = 1
    inst[100:300, 200:260] = 2  # crosses block borders (block=128)
    inst[350:352, 400:401] = 3  # tiny
    inst[150:200, 350:450] = 4
    inst[160:190, 380:420] = 0  # a hole in 4
    return inst


@pytest.mark.parametrize("gz", [False, True])
def test_geojson_instances_each_once_with_classes(tmp_path, gz):
    inst = _blobs()
    cm = ClassMap(("background", "tumour", "immune"), ((0, 0, 0), (255, 0, 0), (0, 0, 255)))
    out = write_geojson(
        tmp_path / ("n.geojson.gz" if gz else "n.geojson"),
        da.from_array(inst, chunks=128),
        classmap=cm,
        instance_classes={1: 1, 2: 2, 3: 1, 4: 2},
        object_type="detection",
        block=128,
    )
    if gz:
        with gzip.open(out, "rt") as fh:
            text = fh.read()
    else:
        text = out.read_text()
    fc = json.loads(text)
    ids = sorted(f["properties"]["id"] for f in fc["features"])
    assert ids == [1, 2, 3, 4]
    f4 = next(f for f in fc["features"] if f["properties"]["id"] == 4)
    assert f4["properties"]["objectType"] == "detection"
    assert f4["properties"]["classification"] == {"name": "immune", "color": [0, 0, 255]}
    assert len(f4["geometry"]["coordinates"]) == 2  # outer ring + hole
    xs = [p[0] for p in f4["geometry"]["coordinates"][0]]
    ys = [p[1] for p in f4["geometry"]["coordinates"][0]]
    assert (min(xs), max(xs), min(ys), max(ys)) == (350, 449, 150, 199)
    f2 = next(f for f in fc["features"] if f["properties"]["id"] == 2)
    ys2 = [p[1] for p in f2["geometry"]["coordinates"][0]]
    assert (min(ys2), max(ys2)) == (100, 299)  # the whole object, not the part in one block


def test_geojson_semantic_components(tmp_path):
    labels = np.zeros((100, 100), np.uint8)
    labels[10:20, 10:20] = 1
    labels[50:60, 50:60] = 1
    labels[70:90, 10:30] = 2
    out = write_geojson(
        tmp_path / "s.geojson", labels, mode="semantic", classmap=ClassMap.preset("wsi3")
    )
    feats = json.loads(out.read_text())["features"]
    assert sorted(f["properties"]["classification"]["name"] for f in feats) == [
        "red",
        "yellow",
        "yellow",
    ]


def test_export_dispatch_rle_csv_round_trip(tmp_path):
    cm = ClassMap.preset("wsi3")
    labels = np.random.default_rng(4).integers(0, 3, (90, 70)).astype(np.uint8)
    out = export_labels(labels, tmp_path / "m.csv", classmap=cm, rle_order="row")
    back, _found, info = read_labels(out)
    np.testing.assert_array_equal(back, labels)
    assert info["order"] == "row"
    with pytest.raises(MaskError, match="unknown export format"):
        export_labels(labels, tmp_path / "m.bmp", classmap=cm)
