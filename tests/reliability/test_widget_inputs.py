"""Widget boundary: every numeric field at its limits gives a valid config or a named error.

The widgets build the same config objects as the API and the CLI, so the
validators are shared; these tests check that no spin box lets a value
through that the config would refuse without naming it, and that a refused
combination reaches the user as a notification naming the option, with the
widget still usable (viewer tier, Xvfb).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.viewer

MODELS = Path(__file__).parents[2] / "src" / "napari_slideseg" / "data" / "models"


def _spin_boxes(widget):
    from magicgui.widgets import FloatSpinBox, SpinBox

    return [w for w in widget if isinstance(w, SpinBox | FloatSpinBox)]


def _check_extremes(widget, make_config):
    """Set each spin box to its min and max in turn; the config is valid or names the field."""
    from napari_slideseg.io.errors import SlideSegError

    checked = 0
    for box in _spin_boxes(widget):
        start = box.value
        for value in (box.min, box.max):
            box.value = value
            try:
                make_config()
            except SlideSegError as err:
                option = box.label.split(" (")[0].replace(" ", "_")
                text = str(err)
                assert option in text or box.label in text or _OPTION.get(box.label, "?") in text, (
                    f"{box.label}={value}: {text}"
                )
            checked += 1
        box.value = start
    return checked


# spin-box label -> the config option its errors name, where they differ
_OPTION = {
    "tile (0 = model's)": "tile",
    "batch size": "batch_size",
    "nucleus halo (HoVer)": "instance_halo",
    "keep bg fraction": "keep_background",
    "learning rate": "lr",
    "zoom augmentation (1 off)": "scale_range",
    "early stop (0 off)": "patience",
}


def test_patch_widget_extremes(make_napari_viewer):
    from napari_slideseg._widgets.patch_widget import PatchWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 300, 3), np.uint8), rgb=True, name="img")
    w = PatchWidget(viewer)
    assert _check_extremes(w, w.config) >= 16


def test_train_widget_extremes(make_napari_viewer, tmp_path):
    from napari_slideseg._widgets.train_widget import TrainWidget

    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    w.folders.value = str(tmp_path)
    w.out.value = str(tmp_path / "run")
    assert _check_extremes(w, w.config) >= 10
    w.lr.value = w.lr.min
    assert w.config().lr == pytest.approx(1e-6)  # the box keeps small rates, not 0.00


def test_infer_widget_extremes(make_napari_viewer):
    from napari_slideseg._widgets._common import layer_to_slide
    from napari_slideseg._widgets.infer_widget import InferWidget
    from napari_slideseg.models.card import read_card

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 300, 3), np.uint8), rgb=True, name="img")
    w = InferWidget(viewer)
    card = read_card(MODELS / "glas-gland", hash_weights=False)
    slide = layer_to_slide(viewer.layers["img"])
    w.auto_zoom.value = False
    assert _check_extremes(w, lambda: w.config(slide, card)) >= 16


def test_infer_widget_refused_combination_notifies(make_napari_viewer, qtbot, monkeypatch):
    """overlap >= tile is refused by InferConfig: a notification naming both, widget alive."""
    from napari_slideseg._widgets import runner as widget_runner
    from napari_slideseg._widgets.infer_widget import InferWidget

    messages: list[str] = []
    monkeypatch.setattr(widget_runner, "notify_error", messages.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 300, 3), np.uint8), rgb=True, name="img")
    w = InferWidget(viewer)
    w.tile.value = 64
    w.overlap.value = 64
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=60000)
    assert messages and "overlap" in messages[0] and "tile" in messages[0], messages
    assert w.run_button.text == "Run"
