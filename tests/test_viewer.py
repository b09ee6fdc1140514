"""Viewer tier: napari under Xvfb (pytest-xvfb) opens slides through the plugin."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.viewer


def test_open_svs_in_viewer(make_napari_viewer, tcga_svs):
    viewer = make_napari_viewer()
    layers = viewer.open(str(tcga_svs), plugin="napari-slideseg")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.multiscale and layer.rgb
    np.testing.assert_array_equal(layer.level_shapes, [[3567, 4443], [1783, 2221]])
    assert tuple(layer.contrast_limits) == (0, 255)


def test_sample_data_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-slideseg", "cmu1_small_region")
    layer = viewer.layers[-1]
    assert layer.multiscale
    assert [tuple(s[:2]) for s in layer.level_shapes] == [(2967, 2220), (1483, 1110), (741, 555)]
    assert tuple(layer.scale) == pytest.approx((0.499, 0.499))
    assert str(layer.units[0]) == "micrometer"


def test_corrupt_file_notifies(make_napari_viewer, tmp_path, monkeypatch):
    from napari_slideseg import _reader

    viewer = make_napari_viewer()
    messages = []
    monkeypatch.setattr(_reader, "_notify_error", messages.append)
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00" + b"\x00" * 40)
    layers = viewer.open(str(bad), plugin="napari-slideseg")
    assert layers == []
    assert len(viewer.layers) == 0
    assert messages and "broken.svs" in messages[0]


def test_corrupt_file_real_notification(make_napari_viewer, tmp_path):
    """Without patching: napari gets an error notification, no exception escapes."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    bad = tmp_path / "empty.svs"
    bad.write_bytes(b"")
    before = len(notification_manager.records)
    viewer.open(str(bad), plugin="napari-slideseg")
    new = notification_manager.records[before:]
    assert any("empty.svs" in str(n.message) and "empty" in str(n.message) for n in new)
    assert len(viewer.layers) == 0


@pytest.mark.slow
def test_sample_with_demo_predictions(make_napari_viewer, demo_dir, monkeypatch):
    """Open Sample > slide + demo predictions: slide, nucleus types, nuclei, centroids."""
    import shutil

    from napari_slideseg import _sample_data

    cache = demo_dir.parent / "cache-copy"
    if not cache.exists():
        shutil.copytree(demo_dir, cache)
    monkeypatch.setattr(_sample_data, "demo_cache_dir", lambda: cache)
    viewer = make_napari_viewer()
    from napari.utils.notifications import notification_manager

    n_before = len(notification_manager.records)
    viewer.open_sample("napari-slideseg", "cmu1_demo_predictions")
    kinds = [type(ly).__name__ for ly in viewer.layers]
    assert kinds == ["Image", "Labels", "Labels", "Points"]
    assert not any("gland" in ly.name for ly in viewer.layers)
    said = [str(n.message) for n in notification_manager.records[n_before:]]
    assert any("glands: not run on this sample" in m and "skin" in m for m in said), said
    nuclei = viewer.layers[2]
    assert {"type_name", "type_prob", "area"} <= set(nuclei.features.columns)
    assert len(viewer.layers[3].data) == len(nuclei.features) > 50
    assert viewer.layers[1].scale[0] == pytest.approx(viewer.layers[0].scale[0])


def test_drag_and_drop_a_dicom_folder_opens_it_in_micrometres(
    make_napari_viewer, data_dir, monkeypatch
):
    """What a user does: drop the folder of a DICOM WSI on the canvas (napari's dropEvent).

    napari lists every reader that takes folders and asks which one; the
    user picks SlideSeg in that dialog (its ``exec_`` is stood in for).
    """
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog
    from qtpy.QtCore import QMimeData, QPointF, Qt, QUrl
    from qtpy.QtGui import QDropEvent

    folder = data_dir / "wsi_formats" / "dicom" / "napari-wsi_CMU-1-Small-Region"
    offered = []

    def pick_slideseg(dialog):
        buttons = dialog.reader_btn_group.buttons()
        offered.append(sorted(b.text() for b in buttons))
        next(b for b in buttons if b.text() == "SlideSeg").setChecked(True)
        return 1

    monkeypatch.setattr(QtReaderDialog, "exec_", pick_slideseg)
    viewer = make_napari_viewer()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    viewer.window._qt_viewer.dropEvent(event)
    assert len(viewer.layers) == 1, offered
    layer = viewer.layers[0]
    assert layer.source.reader_plugin == "napari-slideseg"
    assert type(layer).__name__ == "Image" and layer.multiscale and layer.rgb
    assert tuple(layer.scale) == pytest.approx((0.499, 0.499))
    assert tuple(str(u) for u in layer.units) == ("micrometer", "micrometer")
    assert layer.metadata["slideseg"]["backend"] == "wsidicom"
    assert tuple(layer.level_shapes[0][:2]) == (2967, 2220)
    assert offered == [["SlideSeg", "napari builtins"]]  # napari asked, the user chose
    assert not any("label" in lyr.name.lower() for lyr in viewer.layers)  # never shown
