"""GeoJSON annotations as a Labels layer over their slide, and as the reader's Shapes."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from napari_slideseg import open_slide
from napari_slideseg.annotation_layers import annotation_labels_layer
from napari_slideseg.io.annotations import IGNORE_INDEX, rasterize_window, read_annotations
from napari_slideseg.io.errors import SlideSegError
from napari_slideseg.io.palette import ClassMap
from napari_slideseg.layers import slide_layer

CLASSES = ClassMap(("background", "Tumor", "Stroma"), ((0, 0, 0), (200, 0, 0), (0, 160, 0)), 0)


def _qupath(path, w, h):
    outer = [[w * 0.1, h * 0.1], [w * 0.8, h * 0.15], [w * 0.6, h * 0.9], [w * 0.1, h * 0.1]]
    hole = [[w * 0.35, h * 0.3], [w * 0.5, h * 0.3], [w * 0.45, h * 0.5], [w * 0.35, h * 0.3]]
    stroma = [[w * 0.82, h * 0.5], [w * 0.95, h * 0.55], [w * 0.9, h * 0.95], [w * 0.82, h * 0.5]]
    feats = [
        {
            "type": "Feature",
            "id": str(uuid.uuid4()),
            "geometry": {"type": "Polygon", "coordinates": [outer, hole]},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": "Tumor", "color": [200, 0, 0]},
            },
        },
        {
            "type": "Feature",
            "id": str(uuid.uuid4()),
            "geometry": {"type": "MultiPolygon", "coordinates": [[stroma]]},
            "properties": {"objectType": "annotation", "classification": "Stroma"},
        },
    ]
    path.write_text(json.dumps(feats))
    return path


@pytest.fixture
def cmu(cmu_svs, tmp_path):
    slide = open_slide(cmu_svs)
    h, w = slide.levels[0].shape[:2]
    return slide, _qupath(tmp_path / "cmu.geojson", w, h)


def test_labels_layer_lies_on_the_slide(cmu):
    slide, geo = cmu
    data, kwargs, kind = annotation_labels_layer(geo, CLASSES, slide=slide, chunks=1024)
    assert kind == "labels" and data.dtype == np.uint8
    assert data.shape == slide.levels[0].shape[:2] and data.chunksize == (1024, 1024)
    base = slide_layer(slide)[1]
    assert kwargs["scale"] == pytest.approx(base["scale"]) and kwargs["units"] == base["units"]
    assert kwargs["name"] == "cmu classes"
    meta = kwargs["metadata"]["slideseg"]
    assert meta["classmap"]["names"] == list(CLASSES.names)
    assert meta["annotations"]["holes"] == 1 and meta["annotations"]["features"] == 2
    ann = read_annotations(geo, CLASSES)
    y0, x0 = data.shape[0] // 4, data.shape[1] // 3
    window = (y0, x0, 700, 900)
    np.testing.assert_array_equal(
        data[y0 : y0 + 700, x0 : x0 + 900].compute(), rasterize_window(ann, window)
    )


def test_labels_layer_in_napari_has_the_slide_extent(cmu):
    from napari.layers import Image, Labels

    slide, geo = cmu
    levels, skw, _ = slide_layer(slide)
    data, kwargs, _ = annotation_labels_layer(geo, CLASSES, slide=slide, unannotated="ignore")
    lab = Labels(data, **kwargs)
    np.testing.assert_allclose(lab.extent.world, Image(levels, **skw).extent.world)
    assert kwargs["metadata"]["slideseg"]["annotations"]["ignore_index"] == IGNORE_INDEX
    # the ignore value is no class: transparent, like labels outside the map
    assert kwargs["colormap"][None][3] == 0 and IGNORE_INDEX not in kwargs["colormap"]


def test_labels_layer_needs_a_classmap_and_a_shape(tmp_path):
    geo = _qupath(tmp_path / "a.geojson", 100, 80)
    with pytest.raises(SlideSegError, match="class map"):
        annotation_labels_layer(geo)
    with pytest.raises(SlideSegError, match="shape"):
        annotation_labels_layer(geo, CLASSES)
    data, kwargs, _ = annotation_labels_layer(geo, CLASSES, shape=(80, 100))
    assert "scale" not in kwargs and data.shape == (80, 100)
    assert set(np.unique(data.compute())) == {0, 1, 2}


def test_reader_shapes_count_the_holes(tmp_path):
    from napari_slideseg._reader_layers import geojson_layers

    geo = _qupath(tmp_path / "a.geojson", 100, 80)
    ((shapes, kwargs, kind),) = geojson_layers(str(geo))
    assert kind == "shapes" and len(shapes) == 2
    assert kwargs["metadata"]["slideseg"]["geojson"]["holes_left_out"] == 1
