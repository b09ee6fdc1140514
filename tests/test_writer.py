"""npe2 writers: level 0 of multiscale layers, level-0 coordinates, resolution that reopens.

The first tests call the writers with what napari passes them (a layer's
``as_layer_data_tuple()``: ``MultiScaleData`` for multiscale layers, pint
units); the viewer tests go through napari's own save and open.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from PIL import Image

from napari_slideseg import _writer
from napari_slideseg.io.masks import read_labels
from napari_slideseg.io.palette import ClassMap, labels_to_rgb

EXTS = [".png", ".tif", ".csv", ".zarr", ".geojson"]
WRITERS = {
    ".png": _writer.write_labels_png,
    ".tif": _writer.write_labels_tiff,
    ".csv": _writer.write_labels_rle,
    ".zarr": _writer.write_labels_zarr,
    ".geojson": _writer.write_labels_geojson,
}


def _prediction_layer(pred):
    from napari.layers import Labels

    from napari_slideseg.layers import prediction_layers

    data, kwargs, _ = prediction_layers(pred)[0]
    return Labels(data, **kwargs)


def _geojson_max(path):
    fc = json.loads(path.read_text())
    pts = np.asarray([p for f in fc["features"] for p in f["geometry"]["coordinates"][0]])
    return fc, pts.max(0)  # (max x, max y)


def _check_level0_files(tmp_path, root, slide, name="p"):
    labels = root["labels"][:]
    h0, w0 = slide.levels[0].shape[:2]
    level1_mpp = slide.level_mpp(1)
    for ext in (".png", ".tif", ".csv", ".zarr"):
        back, _, info = read_labels(tmp_path / f"{name}{ext}")
        np.testing.assert_array_equal(np.asarray(back), labels, err_msg=ext)
        assert info["mpp"] == pytest.approx(level1_mpp, rel=1e-9), ext
        assert info["placement"]["level"] == 1, ext
    fc, (mx, my) = _geojson_max(tmp_path / f"{name}.geojson")
    assert fc["slideseg"]["coordinates"]["source_level"] == 1
    # level-0 pixels: beyond the level-1 extent, within the slide's
    assert 0.99 * h0 < my <= h0 and 1.5 * labels.shape[1] < mx <= w0


def test_level0_of_napari_multiscale_data():
    from napari.layers._multiscale_data import MultiScaleData

    levels = [np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8)]
    assert _writer._level0(MultiScaleData(levels)) is levels[0]
    assert _writer._level0(levels) is levels[0]
    assert _writer._level0(levels[1]) is levels[1]


def test_multiscale_prediction_layer_writes_level0(tmp_path, level1_prediction):
    """What napari hands a writer for a multiscale level-1 prediction layer: level 0, on level 0."""
    pred, _labels, slide = level1_prediction
    layer = _prediction_layer(pred)
    assert layer.multiscale
    data, attrs, _ = layer.as_layer_data_tuple()
    assert type(data).__name__ == "MultiScaleData"
    for ext in EXTS:
        out = tmp_path / f"p{ext}"
        assert WRITERS[ext](str(out), data, attrs) == [str(out)]
    _check_level0_files(tmp_path, zarr.open_group(str(pred), mode="r"), slide)


def test_layer_scale_is_the_written_resolution(tmp_path):
    """A layer in micrometres without placement: its scale is recorded and read back."""
    import npe2
    from napari.layers import Labels

    cm = ClassMap.preset("wsi3")
    labels = np.random.default_rng(4).integers(0, 3, (50, 40)).astype(np.uint8)
    layer = Labels(
        labels,
        scale=(0.499, 0.499),
        units=("micrometer", "micrometer"),
        metadata={"slideseg": {"classmap": cm.to_dict()}},
    )
    data, attrs, _ = layer.as_layer_data_tuple()
    for ext in (".png", ".tif"):
        out = tmp_path / f"m{ext}"
        assert WRITERS[ext](str(out), data, attrs) == [str(out)]
        ((back, kwargs, kind),) = npe2.read([str(out)], stack=False, plugin_name="napari-slideseg")
        assert kind == "labels"
        np.testing.assert_array_equal(np.asarray(back), labels)
        assert kwargs["scale"] == pytest.approx((0.499, 0.499), rel=1e-12)
        assert kwargs["units"] == ("micrometer", "micrometer")
    # GeoJSON keeps the pixels (level 0) and states the mpp
    WRITERS[".geojson"](str(tmp_path / "m.geojson"), data, attrs)
    fc, (mx, my) = _geojson_max(tmp_path / "m.geojson")
    assert fc["slideseg"]["coordinates"]["mpp"] == [0.499, 0.499] and my <= 50 and mx <= 40
    # no units: pixels as they are, no resolution recorded
    plain = Labels(labels, scale=(2.0, 2.0), metadata={"slideseg": {"classmap": cm.to_dict()}})
    WRITERS[".png"](str(tmp_path / "plain.png"), *plain.as_layer_data_tuple()[:2])
    assert "mpp" not in read_labels(tmp_path / "plain.png")[2]


# -----------------------------------------------------------------------------
# through napari's save and open
# -----------------------------------------------------------------------------
@pytest.mark.viewer
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_mask_saved_on_the_sample_reopens_on_it(make_napari_viewer, ome_pyramid, tmp_path, ext):
    viewer = make_napari_viewer()
    viewer.open(str(ome_pyramid), plugin="napari-slideseg")
    slide_layer = viewer.layers[0]
    rgb = np.asarray(slide_layer.data[0][:])
    grey = rgb.mean(-1)
    labels = np.zeros(grey.shape, np.uint8)
    labels[grey < 215] = 1
    labels[grey < 140] = 2
    cm = ClassMap.preset("wsi3")
    mask = viewer.add_labels(
        labels,
        name="mask",
        scale=slide_layer.scale,
        units=slide_layer.units,
        metadata={"slideseg": {"classmap": cm.to_dict()}},
    )
    viewer.layers.selection.active = mask
    out = tmp_path / f"mask{ext}"
    assert viewer.layers.save(str(out), selected=True, plugin="napari-slideseg") == [str(out)]
    if ext == ".png":
        np.testing.assert_array_equal(np.asarray(Image.open(out)), labels_to_rgb(labels, cm))
    viewer.layers.remove(mask)
    (back,) = viewer.open(str(out), plugin="napari-slideseg")
    assert type(back).__name__ == "Labels"
    np.testing.assert_array_equal(np.asarray(back.data), labels)
    np.testing.assert_allclose(back.scale, slide_layer.scale, rtol=1e-12)
    assert tuple(back.units) == tuple(slide_layer.units)
    np.testing.assert_allclose(back.extent.world, slide_layer.extent.world, rtol=1e-9)
    assert viewer.layers.extent.units is not None  # no "Inconsistent units" warning


@pytest.mark.viewer
def test_multiscale_prediction_layer_saved_through_napari(
    make_napari_viewer, level1_prediction, tmp_path
):
    from napari_slideseg._reader import read_slide
    from napari_slideseg.layers import prediction_layers

    pred, _labels, slide = level1_prediction
    viewer = make_napari_viewer()
    data, kwargs, _ = read_slide(slide.path)[0]
    slide_layer = viewer.add_image(data, **kwargs)
    pdata, pkw, _ = prediction_layers(pred)[0]
    layer = viewer.add_labels(pdata, **pkw)
    assert layer.multiscale and viewer.layers.extent.units is not None
    # it sits on the slide: same world extent (up to the level's rounding)
    np.testing.assert_allclose(
        layer.extent.world[1], slide_layer.extent.world[1], atol=slide.level_mpp(1)[0]
    )
    for ext in EXTS:
        out = tmp_path / f"p{ext}"
        assert layer.save(str(out), plugin="napari-slideseg") == [str(out)]
    _check_level0_files(tmp_path, zarr.open_group(str(pred), mode="r"), slide)
