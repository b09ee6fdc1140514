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
