"""io/ngff.py: NGFF attributes and the two label pyramid writers (whole array, windows)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_slideseg.io import ngff
from napari_slideseg.io.palette import ClassMap
from napari_slideseg.progress import drain


def test_multiscales_scales_units_and_channel_axis():
    attrs = ngff.multiscales("s", [(1, 1), (2, 2)], (0.5, 0.25), channel=True, kind="mean")
    (ms,) = attrs["multiscales"]
    assert list(ms) == ["version", "name", "axes", "datasets", "type"]
    assert ms["axes"] == [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [
        [1.0, 0.5, 0.25],
        [1.0, 1.0, 0.5],
    ]
    plain = ngff.multiscales("p", [(1, 1), (4, 4)], paths=["a", "b"])["multiscales"][0]
    assert "type" not in plain
    assert plain["axes"] == [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    assert [d["path"] for d in plain["datasets"]] == ["a", "b"]


def test_image_label_colours_and_merged_properties():
    cm = ClassMap.default(3)
    meta = ngff.image_label(cm, {2: {"n": 5}, 7: {"q": 1}})
    assert meta["colors"][0]["rgba"][3] == 0  # background transparent
    assert all(c["rgba"][3] == 255 for c in meta["colors"][1:])
    assert [p["label-value"] for p in meta["properties"]] == [0, 1, 2, 7]
    assert meta["properties"][2] == {"label-value": 2, "class": cm.names[2], "n": 5}
    assert ngff.image_label() == {"version": ngff.NGFF_VERSION}


def test_the_two_label_pyramid_writers_agree(tmp_path):
    """Level f of both writers holds level-0 pixels (f i, f j): whole array or window by window."""
    labels = np.random.default_rng(0).integers(0, 2**16, (1000, 700)).astype(np.uint16)
    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=2)
    image = drain(
        ngff.write_label_image_steps(
            root, "x", da.from_array(labels, chunks=300), chunk=128, lowest_max=100
        )
    )
    shapes = ngff.label_level_shapes(labels.shape, 100)
    assert len(shapes) == 5 and shapes[-1] == (63, 44)
    factors = [2**i for i in range(1, len(shapes))]
    other = zarr.open_group(str(tmp_path / "b.zarr"), mode="w", zarr_format=2)
    group = other.create_group("pyramid")
    for f in factors:
        ngff.create_level(group, str(f), ngff.stride_shape(labels.shape, f), (64, 64), np.uint16)
    for y0 in range(0, 1000, 300):  # windows that do not start on multiples of f
        for x0 in range(0, 700, 300):
            window = labels[y0 : y0 + 300, x0 : x0 + 300]
            ngff.write_window_levels(other, "pyramid", y0, x0, window, factors)
    for i, f in enumerate(factors, start=1):
        expected = labels[::f, ::f]
        np.testing.assert_array_equal(image[str(i)][:], expected)
        np.testing.assert_array_equal(group[str(f)][:], expected)
    assert dict(root["labels"].attrs) == {"labels": ["x"]}
    assert image["0"].metadata.dimension_separator == "/"


def test_label_image_name_must_be_clean_and_is_listed_once(tmp_path):
    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=2)
    with pytest.raises(ValueError, match="not a label image name"):
        drain(ngff.write_label_image_steps(root, "my layer", da.zeros((4, 4), np.uint8)))
    drain(ngff.write_label_image_steps(root, "a", da.zeros((4, 4), np.uint8)))
    drain(ngff.write_label_image_steps(root, "b", da.zeros((4, 4), np.uint8)))
    assert dict(root["labels"].attrs) == {"labels": ["a", "b"]}
    assert ngff.ngff_label_name("my layer!") == "my_layer"
