"""Layer tuples: prediction layers sit on the slide layer, in micrometres, at every level."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_slideseg.layers import labels_layer, prediction_layers, slide_layer


def test_level1_prediction_layer_has_the_level_scale_and_units(level1_prediction):
    pred, labels, slide = level1_prediction
    base = slide_layer(slide)[1]
    ((data, kwargs, kind),) = prediction_layers(pred)
    assert kind == "labels" and kwargs["multiscale"] and len(data) == 2
    assert data[0].shape == labels.shape  # napari's scale is that of the first array
    fy, fx = slide.level_factors(1)
    assert kwargs["scale"] == pytest.approx((base["scale"][0] * fy, base["scale"][1] * fx))
    assert kwargs["units"] == base["units"] == ("micrometer", "micrometer")
    placement = kwargs["metadata"]["slideseg"]["placement"]
    assert placement["level"] == 1 and placement["mpp"] == [0.499, 0.499]
    # the slide layer's own scale, passed as the widget does, gives the same layer
    ((_, again, _),) = prediction_layers(pred, base_scale=base["scale"])
    assert again["scale"] == pytest.approx(kwargs["scale"]) and again["units"] == kwargs["units"]


def test_layer_extent_equals_the_slide_extent(level1_prediction):
    """In napari, the level-1 prediction covers the level-0 slide (to a level pixel)."""
    from napari.layers import Image, Labels

    pred, _labels, slide = level1_prediction
    levels, skw, _ = slide_layer(slide)
    img = Image(levels, **skw)
    ((data, kwargs, _),) = prediction_layers(pred)
    lab = Labels(data, **kwargs)
    np.testing.assert_allclose(lab.extent.world, img.extent.world, atol=slide.level_mpp(1)[0])
    assert str(lab.units[0]) == str(img.units[0]) == "micrometer"


def test_prediction_without_mpp_stays_in_pixels(tmp_path, level1_prediction):
    """No mpp recorded: level-0 pixel scale (the factors), no units (napari's pixels)."""
    import shutil

    pred, _labels, slide = level1_prediction
    copy = tmp_path / "nompp.zarr"
    shutil.copytree(pred, copy)
    root = zarr.open_group(str(copy), mode="a")
    info = dict(root.attrs["slideseg_inference"])
    info["mpp"] = None
    root.attrs["slideseg_inference"] = info
    ((_, kwargs, _),) = prediction_layers(copy)
    assert kwargs["scale"] == pytest.approx(slide.level_factors(1))
    assert "units" not in kwargs


def test_labels_layer_units():
    _, kwargs, _ = labels_layer(np.zeros((4, 4), np.uint8), scale=(0.5, 0.5))
    assert "units" not in kwargs
    _, kwargs, _ = labels_layer(
        np.zeros((4, 4), np.uint8), scale=(0.5, 0.5), units=("micrometer", "micrometer")
    )
    assert kwargs["units"] == ("micrometer", "micrometer")


@pytest.fixture
def hover_folder(tmp_path):
    """A HoVer prediction folder as the engine writes it: two nuclei, 10-digit ids.

    One nucleus is typed background, as tables made before nuclei were always
    typed have them.
    """
    from napari_slideseg.infer.hover import merge_tables, write_table
    from napari_slideseg.io.palette import ClassMap

    out = tmp_path / "nuclei.zarr"
    root = zarr.open_group(str(out), mode="w")
    inst = np.zeros((64, 64), np.uint32)
    inst[10:40, 10:40] = 1717987014
    inst[50:60, 50:60] = 1717987015
    root.create_array("instances", data=inst, chunks=(64, 64))
    cm = ClassMap(
        names=["background", "other", "inflammatory", "epithelial"],
        colors=[(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)],
    )
    root.attrs.update(
        {
            "slideseg_inference": {"kind": "hover", "mpp": [0.5, 0.5], "pyramid": []},
            "slideseg": {"classmap": cm.to_dict()},
        }
    )
    rows = [
        [1717987014, 24.53, 24.47, 10, 10, 40, 40, 1930, 3, "epithelial", 0.8734],
        [1717987015, 54.5, 54.5, 50, 50, 60, 60, 100, 0, "background", 1.0],
    ]
    write_table(out, 0, rows)
    merge_tables(out)
    return out


def test_nucleus_tooltip_shows_plain_values(hover_folder):
    """Hovering a nucleus: ``id: 1717987014``, ``area: 1930``, ``type_prob: 0.87``, no numpy reprs."""
    from napari.layers import Labels

    from napari_slideseg.layers import instance_layer

    data, kwargs, _ = instance_layer(hover_folder)
    feats = kwargs["features"]
    for c in ("index", "id", "area", "type", "centroid_y", "centroid_x"):
        assert feats[c].dtype == np.int64, c
    assert feats["type_prob"].tolist() == [0.87, 1.0]
    assert feats["area_um2"].tolist() == [482.5, 25.0]
    layer = Labels(data, **kwargs)
    shown = layer._get_properties((20, 20))
    assert shown == [
        "id: 1717987014",
        "type_name: epithelial",
        "type_prob: 0.87",
        "area: 1930",
        "area_um2: 482",
        "type: 3",
        "centroid_y: 25",
        "centroid_x: 24",
    ]
    status = layer.get_status((20, 20))["coordinates"]
    assert "id: 1717987014" in status and "np." not in status and "e+" not in status


def test_centroid_points_never_black(hover_folder):
    from napari_slideseg.layers import centroid_points

    pts, kwargs, kind = centroid_points(hover_folder)
    assert kind == "points" and pts.dtype == np.float64
    np.testing.assert_array_equal(pts, [[25, 24], [54, 54]])  # nearest pixel (ties to even)
    colours = kwargs["face_color"]
    np.testing.assert_allclose(colours[0], [0, 0, 1, 1])  # epithelial: the ClassMap's blue
    np.testing.assert_allclose(colours[1], [1, 1, 1, 1])  # an old background-typed row: white
