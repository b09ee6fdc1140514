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
    # NGFF labels: the root's labels/ group lists the label image, which holds the pyramid
    root = zarr.open_group(str(out), mode="r")
    assert "multiscales" not in dict(root.attrs)
    assert dict(root["labels"].attrs)["labels"] == ["labels"]
    image = root["labels/labels"]
    attrs = dict(image.attrs)
    ms = attrs["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    assert ms["axes"][0]["unit"] == "micrometer"
    props = {p["label-value"]: p for p in attrs["image-label"]["properties"]}
    assert props[1] == {"label-value": 1, "class": "yellow", "area": 12}
    assert attrs["image-label"]["colors"][2]["rgba"] == [255, 0, 0, 255]
    np.testing.assert_array_equal(image["0"][:], labels)
    np.testing.assert_array_equal(image["1"][:], labels[::2, ::2])
    back, found, info = read_labels(out)
    assert found == cm and info["format"] == "ome-zarr"
    np.testing.assert_array_equal(back.compute(), labels)
    assert [lv.shape for lv in info["levels"]] == [(2100, 1500), (1050, 750), (525, 375)]


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
    # pixel edges (QuPath): pixels 350..449 span x in [350, 450]
    assert (min(xs), max(xs), min(ys), max(ys)) == (350, 450, 150, 200)
    f2 = next(f for f in fc["features"] if f["properties"]["id"] == 2)
    ys2 = [p[1] for p in f2["geometry"]["coordinates"][0]]
    assert (min(ys2), max(ys2)) == (100, 300)  # the whole object, not the part in one block


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


# -----------------------------------------------------------------------------
# coordinates and resolution
# -----------------------------------------------------------------------------
def _fill(rings, shape):
    """Pixels whose centres lie inside ``rings`` (even-odd rule, so holes are cut out)."""
    h, w = shape
    acc = np.zeros((h, w + 1), np.int32)
    for ring in rings:
        p = np.asarray(ring, float)
        xa, ya, xb, yb = p[:-1, 0], p[:-1, 1], p[1:, 0], p[1:, 1]
        # rows whose centre r + 0.5 lies in [min y, max y) of each edge
        r0 = np.ceil(np.minimum(ya, yb) - 0.5).astype(np.int64)
        n = np.ceil(np.maximum(ya, yb) - 0.5).astype(np.int64) - r0
        e = np.repeat(np.arange(len(n)), np.maximum(n, 0))
        start = np.repeat(np.cumsum(np.maximum(n, 0)) - np.maximum(n, 0), np.maximum(n, 0))
        rows = r0[e] + np.arange(len(e)) - start
        x = xa[e] + (rows + 0.5 - ya[e]) / (yb[e] - ya[e]) * (xb[e] - xa[e])
        ok = (rows >= 0) & (rows < h)
        cols = np.clip(np.ceil(x - 0.5).astype(np.int64), 0, w)
        np.add.at(acc, (rows[ok], cols[ok]), 1)
    return np.cumsum(acc, axis=1)[:, :w] % 2 == 1


def _rasterise(features, shape, *, by="class_index"):
    """Burn GeoJSON polygons (pixel-edge coordinates) into a label image by pixel centres."""
    out = np.zeros(shape, np.int64)
    for f in features:
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        for rings in polys:
            outer = np.asarray(rings[0], float)
            x0, y0 = np.maximum(np.floor(outer.min(0)).astype(int), 0)
            x1, y1 = np.ceil(outer.max(0)).astype(int)
            crop = [np.asarray(r, float) - (x0, y0) for r in rings]
            mask = _fill(crop, (min(y1, shape[0]) - y0, min(x1, shape[1]) - x0))
            out[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]][mask] = f["properties"][by]
    return out


def test_geojson_polygons_follow_pixel_edges_exactly(tmp_path):
    """Rasterised back by pixel centres, every object's polygon is its pixels, holes included."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    inst = ndimage.label(ndimage.binary_opening(rng.random((120, 150)) < 0.55))[0]
    inst[50:53, 60] = inst.max() + 1  # a one-pixel-wide object
    inst[5, 5] = inst.max() + 1  # a single pixel
    out = write_geojson(tmp_path / "e.geojson", inst, block=64)
    feats = json.loads(out.read_text())["features"]
    assert len(feats) == len(np.unique(inst)) - 1
    back = _rasterise(feats, inst.shape, by="id")
    np.testing.assert_array_equal(back, inst)


def _level0_raster(labels, slide_shape):
    """Level-1 labels drawn on level 0: each level-0 pixel takes the label its centre falls in."""
    fy, fx = slide_shape[0] / labels.shape[0], slide_shape[1] / labels.shape[1]
    yy = np.minimum(((np.arange(slide_shape[0]) + 0.5) / fy).astype(int), labels.shape[0] - 1)
    xx = np.minimum(((np.arange(slide_shape[1]) + 0.5) / fx).astype(int), labels.shape[1] - 1)
    return labels[yy][:, xx]


def test_level1_prediction_exports_geojson_in_level0_pixels(tmp_path, level1_prediction):
    from napari_slideseg.cli import main

    pred, labels, slide = level1_prediction
    h0, w0 = slide.levels[0].shape[:2]
    out = tmp_path / "glands.geojson"
    assert main(["export", str(pred), "--to", str(out), "--quiet"]) == 0
    fc = json.loads(out.read_text())
    assert fc["slideseg"]["coordinates"]["source_level"] == 1
    assert fc["slideseg"]["coordinates"]["mpp"] == [0.499, 0.499]
    ys = [p[1] for f in fc["features"] for p in f["geometry"]["coordinates"][0]]
    assert max(ys) > 0.99 * h0  # level-0 pixels: the overlay covers the slide, not its top-left
    back = _rasterise(fc["features"], (h0, w0))
    truth = _level0_raster(labels, (h0, w0))
    for c in (1, 2):
        inter = ((back == c) & (truth == c)).sum()
        union = ((back == c) | (truth == c)).sum()
        assert inter / union >= 0.99, (c, inter / union)  # measured 0.9999


def test_level1_prediction_rasters_record_resolution_and_level(tmp_path, level1_prediction):
    """PNG, TIFF, OME-Zarr and RLE CSV of a level-1 prediction state level-1 µm/px and level."""
    from napari_slideseg.cli import main
    from napari_slideseg.io.rle import read_rle_csv_rows

    pred, labels, slide = level1_prediction
    fy, fx = slide.level_factors(1)
    want = (0.499 * fy, 0.499 * fx)
    for name in ("m.png", "m.tif", "m.ome.zarr", "m.csv"):
        out = tmp_path / name
        assert main(["export", str(pred), "--to", str(out), "--quiet"]) == 0
        back, found, info = read_labels(out)
        np.testing.assert_array_equal(np.asarray(back), labels)
        assert found == ClassMap.preset("wsi3"), name
        assert info["mpp"] == pytest.approx(want, rel=1e-9), name
        assert info["placement"]["level"] == 1, name
        assert info["placement"]["slide_shape"] == [2967, 2220], name
    row = read_rle_csv_rows(tmp_path / "m.csv")[0]
    assert (row["level"], row["slide_height"], row["slide_width"]) == ("1", "2967", "2220")
    with Image.open(tmp_path / "m.png") as im:  # pHYs, what other software reads
        assert im.info["dpi"][0] == pytest.approx(25400 / want[1], rel=1e-5)


@pytest.mark.parametrize("ext", [".png", ".tif", ".ome.zarr"])
def test_written_masks_carry_their_resolution(tmp_path, ext):
    cm = ClassMap.preset("biopsy6")
    labels = np.random.default_rng(2).integers(0, cm.n_classes, (300, 200)).astype(np.uint8)
    out = export_labels(labels, tmp_path / f"m{ext}", classmap=cm, mpp=(0.499, 0.25))
    back, found, info = read_labels(out)
    np.testing.assert_array_equal(np.asarray(back), labels)
    assert found == cm
    assert info["mpp"] == pytest.approx((0.499, 0.25), rel=1e-12)
    if ext == ".tif":
        import tifffile

        with tifffile.TiffFile(out) as tif:
            tags = tif.pages.first.tags
            assert tags["ResolutionUnit"].value == 3  # centimetre
            num, den = tags["XResolution"].value
            assert num / den == pytest.approx(1e4 / 0.25, rel=1e-6)
            num, den = tags["YResolution"].value
            assert num / den == pytest.approx(1e4 / 0.499, rel=1e-6)
    if ext == ".ome.zarr":
        ms = dict(zarr.open_group(str(out), mode="r")["labels/labels"].attrs)["multiscales"][0]
        assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.499, 0.25]
        assert [a["unit"] for a in ms["axes"]] == ["micrometer", "micrometer"]


def test_resolution_from_other_writers(tmp_path):
    """A PNG with only pHYs (Pillow) and a TIFF with only resolution tags give their mpp."""
    import tifffile

    cm = ClassMap.preset("wsi3")
    labels = np.random.default_rng(5).integers(0, 3, (60, 70)).astype(np.uint8)
    rgb = labels_to_rgb(labels, cm)
    Image.fromarray(rgb).save(tmp_path / "p.png", dpi=(25400 / 0.5, 25400 / 0.5))
    tifffile.imwrite(tmp_path / "t.tif", rgb, resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit=3)
    _, _, info = read_labels(tmp_path / "p.png", classmap=cm)
    assert info["mpp"] == pytest.approx((0.5, 0.5), rel=1e-5)
    back, _, info = read_labels(tmp_path / "t.tif", classmap=cm)
    np.testing.assert_array_equal(back, labels)
    assert info["mpp"] == pytest.approx((0.25, 0.25), rel=1e-6)
    Image.fromarray(rgb).save(tmp_path / "none.png")
    assert "mpp" not in read_labels(tmp_path / "none.png", classmap=cm)[2]
