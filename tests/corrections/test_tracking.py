"""Painting on a prediction layer in napari saves corrections that survive reopening."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

pytestmark = pytest.mark.viewer


@pytest.fixture
def prediction(level1_prediction, tmp_path):
    """A private copy of the level-1 prediction of the sample (a 2-level pyramid)."""
    src, labels, _slide = level1_prediction
    out = tmp_path / "level1.zarr"
    shutil.copytree(src, out)
    return out, labels


def _small_blob(mask):
    """A pixel and the mask of a small 4-connected component of ``mask`` below row 800."""
    from scipy import ndimage

    comps, _n = ndimage.label(mask)
    sizes = np.bincount(comps.ravel())
    for c in np.argsort(sizes)[::-1]:
        where = np.argwhere(comps == c)
        if c and 50 <= sizes[c] <= 2000 and where[:, 0].min() > 800:
            return tuple(int(v) for v in where[0]), comps == c
    raise AssertionError("no small blob")


def _level0(layer):
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def test_painted_corrections_are_saved_and_shown_after_reopening(make_napari_viewer, prediction):
    from napari_slideseg._widgets.corrections import track_corrections
    from napari_slideseg.corrections import open_corrections

    out, labels = prediction
    viewer = make_napari_viewer()
    (opened,) = viewer.open(str(out), plugin="napari-slideseg")
    assert opened.multiscale and opened.name == "prediction (level1)"
    tracker = track_corrections(viewer, opened, debounce_ms=0)
    layer = tracker.layer  # napari paints single-scale layers only: put in its place
    assert not layer.multiscale and layer.editable
    assert viewer.layers.index(layer) == 0 and layer.name == opened.name
    np.testing.assert_allclose(layer.scale, opened.scale)

    # as a user does: a brush stroke (class 2), an erase, a fill
    layer.mode = "paint"
    layer.brush_size = 15
    for x in range(480, 560, 5):  # across the chunk corner (512, 512)
        layer.paint((505, x), 2)
    layer.mode = "erase"
    layer.paint((105, 405), layer.colormap.background_value)
    layer.mode = "fill"
    target, blob = _small_blob(labels == 2)
    layer.fill(target, 1)  # a small dark blob is tissue after all
    painted = np.asarray(layer.data).copy()
    assert painted[505, 500] == 2 and painted[105, 405] == 0 and (painted[blob] == 1).all()
    assert (painted != labels).sum() > 100
    entry = tracker.save()
    assert entry is not None and entry["version"] == 1 and entry["array"] == "labels"
    outline = viewer.layers[f"{layer.name} corrected regions"]
    assert len(outline.data) >= 2
    np.testing.assert_allclose(outline.scale, layer.scale)
    viewer.close()

    # the prediction is untouched; the corrections beside it are exact
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["labels"][:], labels)
    store = open_corrections(out, writable=False)
    np.testing.assert_array_equal(store.corrected().compute(), painted)

    again = make_napari_viewer()
    layers = again.open(str(out), plugin="napari-slideseg")
    assert [ly.name for ly in layers] == [
        "prediction (level1)",
        "prediction (level1) corrected regions",
    ]
    back, regions = layers
    assert back.multiscale and back.metadata["slideseg"]["corrections"] == 1
    np.testing.assert_array_equal(_level0(back), painted)
    np.testing.assert_array_equal(np.asarray(back.data[1]), painted[::2, ::2])
    assert type(regions).__name__ == "Shapes" and len(regions.data) == len(store.regions())
    ys, xs = np.nonzero(painted != labels)
    corners = np.concatenate(regions.data)
    assert corners[:, 0].min() == ys.min() - 0.5 and corners[:, 1].max() == xs.max() + 0.5
    np.testing.assert_allclose(regions.scale, back.scale)

    # resumable: tracking the reopened layer continues the version counter
    tracker = track_corrections(again, back, debounce_ms=0)
    tracker.layer.paint((1000, 800), 1)
    assert tracker.save()["version"] == 2


def test_strokes_save_after_a_pause_and_replaced_data_is_saved_whole(
    make_napari_viewer, prediction, qtbot
):
    from napari_slideseg._widgets.corrections import track_corrections

    out, _labels = prediction
    viewer = make_napari_viewer()
    (opened,) = viewer.open(str(out), plugin="napari-slideseg")
    tracker = track_corrections(viewer, opened, debounce_ms=50)
    tracker.layer.paint((300, 300), 2)
    assert tracker.store.version == 0  # not while painting
    qtbot.waitUntil(lambda: tracker.store.version == 1, timeout=5000)
    assert tracker.store.versions[-1]["chunks"] == [[0, 0]]

    replaced = np.asarray(tracker.layer.data).copy()
    replaced[1400:, 1000:] = 1  # e.g. a script sets layer.data
    tracker.layer.data = replaced
    qtbot.waitUntil(lambda: tracker.store.version == 2, timeout=5000)
    np.testing.assert_array_equal(tracker.store.corrected().compute(), replaced)
    assert tracker.store.versions[-1]["chunks"] == [[2, 1], [2, 2]]  # only the changed ones

    viewer.layers.remove(tracker.layer)  # pending edits are saved on removal
