"""QuPath GeoJSON annotations as class masks: reading, holes, tiling, round trips."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import polygon as draw_polygon

from napari_slideseg.io.annotations import (
    IGNORE_INDEX,
    AnnotationError,
    annotation_labels,
    is_annotation_file,
    rasterize_window,
    read_annotations,
)
from napari_slideseg.io.export import write_geojson
from napari_slideseg.io.geojson import GeoJSONError
from napari_slideseg.io.palette import ClassMap

CLASSES = ClassMap(
    ("background", "Tumor", "Stroma", "Immune cells"),
    ((0, 0, 0), (200, 0, 0), (150, 200, 150), (160, 90, 160)),
    0,
    "qupath",
)
SHAPE = (60, 80)

# Rings in QuPath's (x, y) level-0 pixels; no vertex coordinate is a pixel centre.
TUMOR_OUTER = [[3.3, 2.7], [52.2, 4.1], [47.6, 41.9], [8.1, 38.2], [3.3, 2.7]]
TUMOR_HOLE = [[15.2, 12.6], [30.7, 13.3], [28.4, 27.8], [14.9, 25.1], [15.2, 12.6]]
STROMA_A = [[55.4, 5.2], [77.6, 6.3], [70.1, 30.4], [55.4, 5.2]]
STROMA_B = [[60.3, 40.2], [78.2, 44.6], [66.6, 57.7], [60.3, 40.2]]
CELL = [[40.2, 30.3], [58.7, 33.2], [50.9, 50.6], [40.2, 30.3]]  # over the tumour


def _feature(geometry, object_type, classification):
    props = {"objectType": object_type, "isLocked": False}
    if classification is not None:
        props["classification"] = classification
    return {"type": "Feature", "id": str(uuid.uuid4()), "geometry": geometry, "properties": props}


def _qupath_features():
    """A QuPath "export as array": annotations, a MultiPolygon, a hole, a detection, a point."""
    return [
        _feature(
            {"type": "Polygon", "coordinates": [TUMOR_OUTER, TUMOR_HOLE]},
            "annotation",
            {"name": "Tumor", "color": [200, 0, 0]},
        ),
        _feature(
            {"type": "MultiPolygon", "coordinates": [[STROMA_A], [STROMA_B]]},
            "annotation",
            {"name": "Stroma", "colorRGB": -6895466},  # older QuPath: packed ARGB int
        ),
        _feature({"type": "Polygon", "coordinates": [CELL]}, "detection", {"name": "immune CELLS"}),
        _feature({"type": "Point", "coordinates": [5.5, 5.5]}, "annotation", "Tumor"),
    ]


def _write(path: Path, doc) -> Path:
    text = json.dumps(doc)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _fill(ring, shape=SHAPE) -> np.ndarray:
    """Pixels whose centre is inside ``ring`` (skimage: centres on integers, so shift by 0.5)."""
    xy = np.asarray(ring, float)
    m = np.zeros(shape, bool)
    rr, cc = draw_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)
    m[rr, cc] = True
    return m


def _expected(fill: int = 0) -> np.ndarray:
    ref = np.full(SHAPE, fill, np.uint8)
    ref[_fill(TUMOR_OUTER) & ~_fill(TUMOR_HOLE)] = 1
    ref[_fill(STROMA_A) | _fill(STROMA_B)] = 2
    ref[_fill(CELL)] = 3
    return ref


@pytest.fixture
def qupath_gz(tmp_path) -> Path:
    return _write(tmp_path / "slide.geojson.gz", _qupath_features())


def test_qupath_export_reads_to_the_exact_mask(qupath_gz):
    ann = read_annotations(qupath_gz, CLASSES)
    assert [f.object_type for f in ann.features] == ["annotation", "annotation", "detection"]
    assert [f.class_name for f in ann.features] == ["Tumor", "Stroma", "immune CELLS"]
    assert [f.class_id for f in ann.features] == [1, 2, 3]
    assert ann.n_parts == 4 and ann.holes == 1
    assert ann.skipped == {"geometry": 1}
    mask = rasterize_window(ann, (0, 0, *SHAPE))
    assert mask.dtype == np.uint8 and mask.shape == SHAPE
    np.testing.assert_array_equal(mask, _expected())
    # the hole is not painted: there is background inside the tumour
    hole = _fill(TUMOR_HOLE)
    assert hole.sum() > 100 and (mask[hole] == 0).all()


@pytest.mark.parametrize(
    "doc",
    [
        lambda f: {"type": "FeatureCollection", "features": f},
        lambda f: f,
        lambda f: f[0],
    ],
    ids=["collection", "list", "feature"],
)
def test_every_geojson_layout_reads(tmp_path, doc):
    path = _write(tmp_path / "a.geojson", doc(_qupath_features()))
    ann = read_annotations(path, CLASSES)
    assert ann.features[0].class_name == "Tumor"
    mask = rasterize_window(ann, (0, 0, *SHAPE))
    tumor = _fill(TUMOR_OUTER) & ~_fill(TUMOR_HOLE)
    np.testing.assert_array_equal(
        mask == 1, tumor & ~_fill(CELL) if len(ann.features) > 1 else tumor
    )


def test_ignore_outside_annotations_and_in_holes(qupath_gz):
    ann = read_annotations(qupath_gz, CLASSES)
    mask = rasterize_window(ann, (0, 0, *SHAPE), unannotated="ignore")
    np.testing.assert_array_equal(mask, _expected(IGNORE_INDEX))
    assert (mask[_fill(TUMOR_HOLE)] == IGNORE_INDEX).all()


def test_object_types_filter(qupath_gz):
    ann = read_annotations(qupath_gz, CLASSES, object_types=("annotation",))
    assert [f.object_type for f in ann.features] == ["annotation", "annotation"]
    assert ann.skipped["object_type"] == 1
    assert not (rasterize_window(ann, (0, 0, *SHAPE)) == 3).any()
    with pytest.raises(AnnotationError, match="object_types"):
        read_annotations(qupath_gz, CLASSES, object_types=("nucleus",))


def test_unknown_class_is_an_error_naming_it(tmp_path):
    feats = _qupath_features()
    feats[1]["properties"]["classification"] = {"name": "Necrosis", "color": [0, 0, 0]}
    path = _write(tmp_path / "n.geojson", feats)
    with pytest.raises(AnnotationError) as err:
        read_annotations(path, CLASSES)
    msg = str(err.value)
    assert "Necrosis" in msg and str(path) in msg
    assert "background, Tumor, Stroma, Immune cells" in msg


def test_skip_unknown_warns_how_many(tmp_path):
    feats = _qupath_features()
    feats[1]["properties"]["classification"] = {"name": "Necrosis", "color": [0, 0, 0]}
    del feats[2]["properties"]["classification"]  # unclassified
    path = _write(tmp_path / "n.geojson", feats)
    with pytest.warns(UserWarning, match=r"2 feature\(s\) skipped.*Necrosis.*unclassified"):
        ann = read_annotations(path, CLASSES, skip_unknown=True)
    assert [f.class_name for f in ann.features] == ["Tumor"]
    assert ann.skipped["unknown_class"] == 2


def test_malformed_geometry_names_the_feature(tmp_path):
    feats = _qupath_features()
    feats[0]["geometry"]["coordinates"] = [[[1, 2], ["a", 3]]]
    path = _write(tmp_path / "bad.geojson", feats)
    with pytest.raises(GeoJSONError, match=r"feature 1 .*malformed Polygon"):
        read_annotations(path, CLASSES)


def test_options_are_named_in_errors(qupath_gz):
    ann = read_annotations(qupath_gz, CLASSES)
    with pytest.raises(AnnotationError, match="unannotated"):
        rasterize_window(ann, (0, 0, 4, 4), unannotated="nothing")
    with pytest.raises(AnnotationError, match="downsample"):
        rasterize_window(ann, (0, 0, 4, 4), downsample=0)
    wide = ClassMap.default(256)
    with pytest.raises(AnnotationError, match="255"):
        read_annotations(qupath_gz, wide)


@pytest.mark.parametrize("chunks", [7, 13, (64, 33), (1, 80), 1000])
@pytest.mark.parametrize("downsample", [1.0, 1.7, (2.0, 3.0)])
def test_tiles_equal_the_whole_window(qupath_gz, chunks, downsample):
    ann = read_annotations(qupath_gz, CLASSES)
    fy, fx = (downsample, downsample) if np.isscalar(downsample) else downsample
    shape = (int(np.ceil(SHAPE[0] / fy)), int(np.ceil(SHAPE[1] / fx)))
    whole = rasterize_window(ann, (0, 0, *SHAPE), downsample, unannotated="ignore")
    assert whole.shape == shape
    lazy = annotation_labels(ann, shape, downsample=downsample, chunks=chunks, unannotated="ignore")
    assert lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(), whole)


def test_a_window_is_a_crop_of_the_slide_mask(qupath_gz):
    ann = read_annotations(qupath_gz, CLASSES)
    whole = rasterize_window(ann, (0, 0, *SHAPE))
    for y0, x0, h, w in [(0, 0, 5, 5), (11, 17, 23, 9), (37, 50, 23, 30), (59, 79, 1, 1)]:
        np.testing.assert_array_equal(
            rasterize_window(ann, (y0, x0, h, w)), whole[y0 : y0 + h, x0 : x0 + w]
        )
    # a downsampled window centres its pixels on the level-0 grid
    np.testing.assert_array_equal(
        rasterize_window(ann, (0, 0, *SHAPE), 2),
        rasterize_window(ann, (0.5, 0.5, 59, 79))[::2, ::2],
    )


def _glas_labels(data_dir) -> np.ndarray:
    """Real GlaS glands: class 1, their right halves class 2, and class-3 islands in both."""
    glands = np.asarray(Image.open(data_dir / "glas" / "train_1_mask.png")) > 0
    if glands.ndim == 3:
        glands = glands[..., 0]
    labels = glands.astype(np.uint8)
    labels[:, labels.shape[1] // 2 :][glands[:, labels.shape[1] // 2 :]] = 2
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    islands = ((yy // 9) % 5 == 2) & ((xx // 7) % 6 == 3) & glands  # holes in the gland polygons
    labels[islands] = 3
    return labels


@pytest.mark.parametrize("name", ["glands.geojson", "glands.geojson.gz"])
def test_own_semantic_export_reads_back_to_the_labels(tmp_path, data_dir, name):
    labels = _glas_labels(data_dir)
    path = write_geojson(tmp_path / name, labels, mode="semantic", classmap=CLASSES)
    ann = read_annotations(path, CLASSES)
    assert ann.holes > 0  # the class-3 islands are holes in the class-1 and 2 glands
    back = rasterize_window(ann, (0, 0, *labels.shape))
    np.testing.assert_array_equal(back, labels)
    lazy = annotation_labels(ann, labels.shape, chunks=(97, 131))
    np.testing.assert_array_equal(lazy.compute(), labels)


def test_own_export_of_a_level_reads_back_at_that_level(tmp_path, data_dir):
    labels = _glas_labels(data_dir)
    path = write_geojson(
        tmp_path / "l1.geojson", labels, mode="semantic", classmap=CLASSES, scale=4
    )
    ann = read_annotations(path, CLASSES)
    lazy = annotation_labels(ann, labels.shape, downsample=4, chunks=128)
    np.testing.assert_array_equal(lazy.compute(), labels)


def test_is_annotation_file():
    assert is_annotation_file("a/B.GeoJSON") and is_annotation_file(Path("x.geojson.gz"))
    assert not is_annotation_file("mask.png") and not is_annotation_file(None)
