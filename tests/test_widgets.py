"""Viewer tier: dock widgets drive core generators in workers (Xvfb)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.viewer


@pytest.fixture
def glas_layers(make_napari_viewer, data_dir):
    viewer = make_napari_viewer()
    viewer.open(str(data_dir / "glas" / "train_1.png"))
    mask = (np.asarray(Image.open(data_dir / "glas" / "train_1_mask.png")) > 0).astype(np.uint8)
    viewer.add_labels(mask, name="glands")
    return viewer


def test_patch_widget_preview_and_run(glas_layers, qtbot, tmp_path):
    from napari_slideseg._widgets.patch_widget import PatchWidget

    viewer = glas_layers
    w = PatchWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.slide_layer.value = "train_1"
    w.mask_layer.value = "glands"
    w.size.value = 256
    w.stride.value = 128
    w.min_tissue.value = 0.0
    w.out.value = str(tmp_path / "patches")
    layer = w.preview()
    assert layer is not None and layer.name == "patch grid"
    assert len(layer.data) == 15  # (522-256)//128+1 = 3 rows, (775-256)//128+1 = 5 cols
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    assert w.runner.error is None
    run = json.loads((tmp_path / "patches" / "run.json").read_text())
    assert run["complete"] and run["summary"]["kept"] == 15
    assert "15 patches" in w.summary.value
    assert w.run_button.text == "Run"
    w.zoom.value = 0.5  # half resolution: 388 x 261 px -> 2 x 1 valid windows of 256
    assert w.config().zoom == 0.5 and len(w.preview().data) == 2


def test_patch_widget_cancel_midway(make_napari_viewer, big_pyramid, qtbot, tmp_path):
    from napari_slideseg._widgets.patch_widget import PatchWidget

    viewer = make_napari_viewer()
    viewer.open(str(big_pyramid), plugin="napari-slideseg")
    w = PatchWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.size.value = 256
    w.stride.value = 256
    w.level.value = 1
    w.min_tissue.value = 0.0
    w.max_white.value = 1.0
    w.max_black.value = 1.0
    w.out.value = str(tmp_path / "big")
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: w.progress.value >= 1, timeout=30000)
    assert w.run_button.text == "Cancel"
    w.run_button.changed.emit(True)  # Cancel
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    assert w.runner.cancelled
    assert not (tmp_path / "big" / "manifest.csv").exists()
    assert json.loads((tmp_path / "big" / "run.json").read_text())["complete"] is False
    assert w.run_button.text == "Run"


def test_patch_widget_bad_input_notifies(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_slideseg._widgets import runner as widget_runner
    from napari_slideseg._widgets.patch_widget import PatchWidget

    messages = []
    monkeypatch.setattr(widget_runner, "notify_error", messages.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 300, 3), np.uint8), rgb=True, name="img")
    viewer.add_labels(np.zeros((200, 200), np.uint8), name="wrong size")
    w = PatchWidget(viewer)
    w.mask_layer.value = "wrong size"
    w.size.value = 128
    w.out.value = str(tmp_path / "x")
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    assert messages and "200 x 200" in messages[0] and "300 x 300" in messages[0]
    assert w.run_button.text == "Run"  # the widget is still alive


def test_labels_layer_shows_palette_colours(make_napari_viewer, tmp_path):
    from napari_slideseg.io.palette import ClassMap, labels_to_rgb

    cm = ClassMap.preset("biopsy6")
    labels = np.zeros((120, 180), np.uint8)
    for i in range(1, 6):
        labels[:, (i - 1) * 36 : i * 36] = i
    Image.fromarray(labels_to_rgb(labels, cm)).save(tmp_path / "mask.png")
    viewer = make_napari_viewer(show=True)
    layer = viewer.open(str(tmp_path / "mask.png"), plugin="napari-slideseg")[0]
    assert type(layer).__name__ == "Labels"
    layer.opacity = 1.0
    for i in range(1, 6):
        np.testing.assert_allclose(
            layer.colormap.map(np.array([i]))[0][:3], np.array(cm.colors[i]) / 255, atol=1e-6
        )
    shot = viewer.screenshot(canvas_only=True, flash=False)
    h, w = shot.shape[:2]
    # the canvas shows each class in its mask colour (sample the centre of each stripe)
    xs = [int(w / 2 + ((i - 0.5) * 36 - 90) * (w / 180) * 0.9) for i in range(1, 6)]
    seen = {tuple(int(v) for v in shot[h // 2, x, :3]) for x in xs}
    expected = {tuple(cm.colors[i]) for i in range(1, 6)}
    close = sum(any(np.abs(np.array(s) - np.array(e)).max() <= 3 for s in seen) for e in expected)
    assert close >= 4


@pytest.fixture
def train_widget(make_napari_viewer, tmp_path, data_dir):
    """A docked Train widget on 128 px GlaS patches in ``tmp_path/p``; it runs into ``tmp_path/run``."""
    from napari_slideseg import open_slide
    from napari_slideseg._widgets.train_widget import TrainWidget
    from napari_slideseg.patching import PatchConfig, extract_patches

    slide = open_slide(data_dir / "glas" / "train_1.png")
    mask = (np.asarray(Image.open(data_dir / "glas" / "train_1_mask.png")) > 0).astype(np.uint8)
    extract_patches(slide, tmp_path / "p", PatchConfig(size=128, stride=128), mask=mask)
    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.folders.value = str(tmp_path / "p")
    w.batch_size.value = 4
    w.out.value = str(tmp_path / "run")
    return w


def test_train_widget_runs_and_cancels(train_widget, qtbot, tmp_path):
    w = train_widget
    w.patch_size.value = 128
    w.epochs.value = 50
    assert w.config().scale_range is None
    w.zoom_aug.value = 2.0
    assert w.config().scale_range == [0.5, 2.0]
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: len(w.history) >= 1, timeout=120000)  # a full epoch with a plot update
    assert w.run_button.text == "Cancel"
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=60000)
    assert w.runner.cancelled and w.runner.error is None
    assert (tmp_path / "run" / "last" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "done.json").exists()
    assert len(w._figure.axes) >= 1


@pytest.mark.parametrize("stage", ["train", "val", "epoch"])
def test_train_widget_cancel_at_each_stage_then_run_again(train_widget, qtbot, tmp_path, stage):
    """Cancel during a training step, validation or at an epoch's end, then Run again with
    resume: it finishes. (Cancel during validation used to leave the worker thread in
    torch's inference mode; the next Run's backward() raised and the button stayed
    "Cancel" for good.)"""
    w = train_widget
    w.epochs.value = 2
    seen = []
    plain = w.runner.on_progress

    def cancel_at(event):
        seen.append(event.stage)
        plain(event)
        if event.stage == stage and w.runner.running and not w.runner.cancelled:
            w.runner.cancel()

    w.runner.on_progress = cancel_at
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    assert stage in seen and w.runner.cancelled and w.runner.error is None
    assert w.run_button.text == "Run" and w.status.value == "cancelled"
    assert not (tmp_path / "run" / "done.json").exists()
    w.runner.on_progress = plain
    # after an epoch there is a last/ checkpoint to resume; before it, Run starts afresh
    w.resume.value = stage == "epoch"
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=180000)
    assert w.runner.error is None, w.runner.error
    assert (tmp_path / "run" / "done.json").exists() and w.progress.value == w.progress.max
    assert "done: best epoch" in w.status.value


def test_long_status_never_widens_the_dock(make_napari_viewer, qtbot):
    from napari_slideseg._widgets._common import MAX_DOCK_WIDTH
    from napari_slideseg._widgets.infer_widget import InferWidget

    viewer = make_napari_viewer(show=True)
    w = InferWidget(viewer)
    viewer.window.add_dock_widget(w)
    qtbot.wait(50)
    canvas = viewer.canvas.size
    w.status.value = "error: " + "a very long message without breaks " * 40
    qtbot.wait(200)
    assert w.native.width() <= MAX_DOCK_WIDTH
    assert viewer.canvas.size[1] >= canvas[1] - 5  # the canvas kept its width
