"""Viewer tier: the Inference widget fills a live Labels layer from the output zarr."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from napari_slideseg.models.card import read_card

pytestmark = pytest.mark.viewer

CM = {
    "name": "",
    "names": ["background", "tissue", "other"],
    "colors": [[0, 0, 0], [200, 30, 30], [30, 30, 200]],
    "background": 0,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from napari_slideseg.models import build_model, save_checkpoint
    from napari_slideseg.models.card import new_card

    torch.manual_seed(0)
    m = build_model("Unet", "resnet18", classes=3).eval()
    card = new_card(
        kind="semantic",
        arch="Unet",
        encoder="resnet18",
        in_channels=3,
        classes=3,
        classmap=CM,
        patch_size=256,
    )
    return save_checkpoint(m, tmp_path_factory.mktemp("ckpt") / "tiny-unet", card)


@pytest.fixture
def sample_viewer(make_napari_viewer):
    from napari_slideseg._sample_data import sample_slide_path

    viewer = make_napari_viewer()
    viewer.open(str(sample_slide_path()), plugin="napari-slideseg")
    return viewer


def _widget(viewer, checkpoint, tmp_path, **fields):
    from napari_slideseg._widgets.infer_widget import InferWidget

    w = InferWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.model.value = "checkpoint folder(s)"
    w.checkpoints.value = str(checkpoint)
    w.out.value = str(tmp_path / "pred.zarr")
    w.device.value = "cpu"
    w.overlap.value = 32
    for k, v in fields.items():
        getattr(w, k).value = v
    return w


def test_infer_widget_runs_to_completion(sample_viewer, checkpoint, qtbot, tmp_path):
    from napari_slideseg.infer import is_complete

    viewer = sample_viewer
    w = _widget(viewer, checkpoint, tmp_path, level=1, block=512)
    assert {"glas-gland", "hover-nuclei"} <= set(w.model.choices)  # the bundled models, by name
    w.run_button.changed.emit(True)
    assert w.run_button.text == "Cancel"
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    assert w.runner.error is None, w.runner.error
    assert is_complete(tmp_path / "pred.zarr")
    layer = w.layer
    assert layer in viewer.layers and type(layer).__name__ == "Labels" and layer.multiscale
    root = zarr.open_group(str(tmp_path / "pred.zarr"), mode="r")
    np.testing.assert_array_equal(np.asarray(layer.data[0][:]), root["labels"][:])
    # it sits on the slide: level 1 of the slide has 2x the level-0 scale
    slide_layer = viewer.layers[0]
    f = slide_layer.data[0].shape[0] / slide_layer.data[1].shape[0]
    assert layer.scale[0] == pytest.approx(slide_layer.scale[0] * f, rel=0.01)
    meta = layer.metadata["slideseg"]
    assert meta["complete"] and meta["models"][0]["classmap"]["names"] == CM["names"]
    assert meta["options"]["level"] == 1 and "torch" in meta["versions"]
    np.testing.assert_allclose(
        layer.colormap.map(np.array([1]))[0][:3], np.array([200, 30, 30]) / 255, atol=1e-6
    )


def test_infer_widget_cancels_and_resumes(sample_viewer, checkpoint, qtbot, tmp_path):
    from napari_slideseg.infer import is_complete

    viewer = sample_viewer
    w = _widget(viewer, checkpoint, tmp_path, level=0, block=256, tile=256)
    w.region.value = "box"
    w.box.value = "0 0 1024 1024"  # 16 blocks: enough to cancel midway, quick to finish
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: w.progress.value >= 1, timeout=60000)
    assert w.layer is not None  # the live layer appears with the first block
    w.run_button.changed.emit(True)  # Cancel
    qtbot.waitUntil(lambda: not w.runner.running, timeout=60000)
    assert w.runner.cancelled and not is_complete(tmp_path / "pred.zarr")
    done = zarr.open_group(str(tmp_path / "pred.zarr"), mode="r")["done"][:]
    assert 0 < (done == 1).sum() < len(done)
    # Run again with "resume": it continues the same output and finishes it
    n_done = (done == 1).sum()
    events = []
    w.runner.on_progress = lambda e: (events.append(e), w._progress(e))
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    assert is_complete(tmp_path / "pred.zarr") and w.runner.error is None
    assert events[0].done == n_done + 1  # it started after the finished blocks
    # a box region
    w.runner.on_progress = w._progress
    w.level.value = 1
    w.block.value = 512
    w.out.value = str(tmp_path / "pred2.zarr")
    w.region.value = "box"
    w.box.value = "0 0 600 700"
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    assert is_complete(tmp_path / "pred2.zarr") and w.runner.error is None
    done = zarr.open_group(str(tmp_path / "pred2.zarr"), mode="r")["done"][:]
    assert len(done) == 4  # the box covers 2 x 2 blocks of 512


def test_infer_widget_shapes_roi_and_view(sample_viewer, checkpoint, qtbot, tmp_path):
    viewer = sample_viewer
    slide_layer = viewer.layers[0]
    sy, sx = slide_layer.scale[-2:]
    viewer.add_shapes(
        [np.array([[100 * sy, 100 * sx], [100 * sy, 500 * sx], [500 * sy, 300 * sx]])],
        shape_type="polygon",
        name="roi",
    )
    w = _widget(viewer, checkpoint, tmp_path, level=0, block=512)
    w.region.value = "shapes layer"
    w.shapes_layer.value = "roi"
    from napari_slideseg import open_slide

    slide = open_slide(slide_layer.metadata["slideseg"]["path"])
    args = w.region_args(slide)
    roi = np.asarray(args["roi"])
    np.testing.assert_allclose(roi, [[100, 100], [100, 500], [500, 300]], atol=1e-6)
    w.region.value = "current view"
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = (0, 400 * sy, 600 * sx)
    camera.zoom = 2 / sy
    y0, x0, y1, x1 = w.region_args(slide)["region"]
    assert y0 < 400 < y1 and x0 < 600 < x1 and (y1 - y0) < 2000
    w.region.value = "shapes layer"
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    assert w.runner.error is None
    lab = zarr.open_group(str(tmp_path / "pred.zarr"), mode="r")["labels"]
    assert lab[600:, :].max() == 0 and lab[:, 600:].max() == 0  # nothing outside the ROI


def test_infer_widget_bad_input_notifies(sample_viewer, qtbot, tmp_path, monkeypatch):
    from napari_slideseg._widgets import runner as widget_runner
    from napari_slideseg._widgets.infer_widget import InferWidget

    messages = []
    monkeypatch.setattr(widget_runner, "notify_error", messages.append)
    w = InferWidget(sample_viewer)
    w.model.value = "checkpoint folder(s)"
    w.checkpoints.value = str(tmp_path / "no-such-model")
    w.out.value = str(tmp_path / "p.zarr")
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    assert messages and "no-such-model" in messages[0]
    assert w.run_button.text == "Run"


@pytest.fixture(scope="module")
def hover_checkpoint(tmp_path_factory):
    from napari_slideseg.io.palette import NUCLEUS_PRESETS
    from napari_slideseg.models import save_checkpoint
    from napari_slideseg.models.card import new_card
    from napari_slideseg.models.hovernet import HoVerNet

    torch.manual_seed(3)
    m = HoVerNet("resnet18", n_types=5, decoder_channels=(32, 16, 16, 8, 8)).eval()
    with torch.no_grad():  # a random net with a NP head that sees nuclei everywhere
        head = m.np_branch["head"][0]
        head.weight.mul_(0.01)
        head.bias.copy_(torch.tensor([-3.0, 3.0]))
    card = new_card(
        kind="hover",
        arch="HoVerNet",
        encoder="resnet18",
        in_channels=3,
        classes=5,
        classmap=NUCLEUS_PRESETS["consep4"].to_dict(),
        patch_size=256,
    )
    return save_checkpoint(m, tmp_path_factory.mktemp("hover") / "tiny-hover", card)


def test_infer_widget_hover_mode(sample_viewer, hover_checkpoint, qtbot, tmp_path):
    viewer = sample_viewer
    w = _widget(viewer, hover_checkpoint, tmp_path, level=1, block=512, tile=256)
    w.region.value = "box"
    w.box.value = "0 0 512 768"
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=180000)
    assert w.runner.error is None, w.runner.error
    root = zarr.open_group(str(tmp_path / "pred.zarr"), mode="r")
    inst = root["instances"][:512, :768]
    ids = np.unique(inst)[1:]
    assert len(ids) > 0  # a random model still finds blobs
    nuclei = w.instance_layer
    assert nuclei in viewer.layers and nuclei.multiscale
    feats = nuclei.features
    assert {"index", "type_name", "type_prob", "area", "centroid_y"} <= set(feats.columns)
    assert set(feats["index"]) >= set(ids.tolist()) - {0}
    assert set(feats["type_name"]) <= {
        "background",
        "other",
        "inflammatory",
        "epithelial",
        "spindle-shaped",
    }
    # the class layer is coloured by type; the points layer has one point per nucleus
    types = w.layer
    assert "nucleus types" in types.name
    assert w.points_layer is not None and len(w.points_layer.data) == len(feats)
    assert nuclei.scale[0] == pytest.approx(types.scale[0])


class _TypedMaps(torch.nn.Module):
    """NP from red, HV from green/blue, every nucleus of type 2 (a stand-in HoVer model)."""

    def forward(self, x):
        np_logit = (x[:, 0:1] - 0.5) * 40
        nc = torch.zeros(x.shape[0], 5, *x.shape[-2:])
        nc[:, 2] = 5.0
        return torch.cat([-np_logit, np_logit, x[:, 1:3] * 2 - 1, nc], 1)


def test_instance_layer_saves_as_typed_qupath_detections(make_napari_viewer, tmp_path, data_dir):
    """Saving the nuclei layer as GeoJSON: one detection per nucleus, classified by type."""
    import json

    from napari_slideseg._writer import write_labels_geojson
    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.instances.targets import hover_targets
    from napari_slideseg.io.palette import NUCLEUS_PRESETS
    from napari_slideseg.io.slide import slide_from_arrays
    from napari_slideseg.layers import instance_layer
    from napari_slideseg.models.card import new_card

    t = hover_targets(np.load(data_dir / "consep_patches" / "inst" / "test_4_013.npy"))
    rgb = np.stack([t["np"] * 255, (t["hv"][0] + 1) * 127.5, (t["hv"][1] + 1) * 127.5], -1)
    slide = slide_from_arrays([np.round(rgb).astype(np.uint8)], name="maps")
    card = new_card(
        kind="hover",
        arch="HoVerNet",
        encoder="none",
        in_channels=3,
        classes=5,
        classmap=NUCLEUS_PRESETS["consep4"].to_dict(),
        patch_size=128,
        normalization={"mean": [0, 0, 0], "std": [1, 1, 1]},
    )
    pred = predict_slide(
        slide,
        [(_TypedMaps(), card)],
        tmp_path / "p.zarr",
        InferConfig(tile=128, overlap=16, block=256, device="cpu"),
    )
    viewer = make_napari_viewer()
    data, kwargs, _ = instance_layer(pred)
    layer = viewer.add_labels(data, **kwargs)
    assert set(layer.features["type_name"]) == {"inflammatory"}
    out = tmp_path / "nuclei.geojson"
    written = write_labels_geojson(
        str(out), layer.data, {"metadata": layer.metadata, "features": layer.features}
    )
    gj = json.loads(out.read_text())
    assert written and len(gj["features"]) == len(layer.features) > 10
    props = gj["features"][0]["properties"]
    assert props["objectType"] == "detection"
    assert props["classification"]["name"] == "inflammatory"
    assert props["classification"]["color"] == [0, 255, 0]


@pytest.mark.parametrize("name", ["Patch extraction", "Training", "Inference"])
def test_widgets_open_from_the_plugins_menu(make_napari_viewer, name):
    """napari builds each dock widget itself (it passes the viewer as ``napari_viewer``)."""
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-slideseg", name)
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="img")
    assert [ly.name for ly in widget.viewer.layers] == ["img"]  # (napari hands in a proxy)
    assert widget.slide_layer.value == "img"


def test_infer_widget_shows_and_uses_the_model_resolution(sample_viewer, qtbot, tmp_path):
    """hover-nuclei (0.25 µm/px) on the 0.499 µm/px sample: the widget says zoom 2 and uses it."""
    from napari_slideseg._widgets.infer_widget import InferWidget

    w = InferWidget(sample_viewer)
    sample_viewer.window.add_dock_widget(w)
    w.model.value = "hover-nuclei"
    w.device.value = "cpu"
    w.out.value = str(tmp_path / "nuclei.zarr")
    assert "slide 0.499 µm/px, model 0.25 µm/px: zoom 2 (auto)" in w.resolution.value
    w.auto_zoom.value = False
    w.zoom.value = 1.0
    assert "zoom 1" in w.resolution.value and "auto would be 2" in w.resolution.value
    w.auto_zoom.value = True
    w.region.value = "box"
    w.box.value = "1500 700 1756 956"
    w.block.value = 256
    w.instance_halo.value = 32
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    assert w.runner.error is None, w.runner.error
    info = dict(zarr.open_group(str(tmp_path / "nuclei.zarr"), mode="r").attrs)
    info = info["slideseg_inference"]
    assert info["config"]["zoom"] == 2.0 and info["resolution"]["zoom_requested"] == "auto"


def test_infer_widget_warns_when_the_image_has_no_mpp(
    make_napari_viewer, data_dir, qtbot, tmp_path
):
    from napari_slideseg._widgets import infer_widget

    viewer = make_napari_viewer()
    viewer.open(str(data_dir / "consep_patches" / "images" / "test_1_004.jpg"))  # napari's reader
    w = infer_widget.InferWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.model.value = "hover-nuclei"
    w.device.value = "cpu"
    w.out.value = str(tmp_path / "n.zarr")
    assert "slide ? µm/px, model 0.25 µm/px: zoom 1" in w.resolution.value
    said = []
    infer_widget.notify_warning, saved = said.append, infer_widget.notify_warning
    try:
        w.run_button.changed.emit(True)
        qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    finally:
        infer_widget.notify_warning = saved
    assert w.runner.error is None, w.runner.error
    assert len(said) == 1 and "states no µm/px" in said[0] and "--mpp" in said[0]
    info = dict(zarr.open_group(str(tmp_path / "n.zarr"), mode="r").attrs)["slideseg_inference"]
    assert info["config"]["zoom"] == 1.0


def test_infer_widget_default_output_is_unique_and_never_the_cwd(
    sample_viewer, checkpoint, tmp_path, monkeypatch
):
    from pathlib import Path

    from napari_slideseg._widgets.infer_widget import InferWidget
    from napari_slideseg.infer import InferError
    from napari_slideseg.io.slide import open_slide

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    w = InferWidget(sample_viewer)
    w.model.value = "checkpoint folder(s)"
    w.checkpoints.value = str(checkpoint)
    slide = open_slide(sample_viewer.layers[0].metadata["slideseg"]["path"])
    paths = w.model_paths()
    w.out.value = ""  # the user cleared the field
    w.region.value = "box"
    w.box.value = "0 0 512 512"
    a = w.output_path(slide, paths, w.config(slide, read_card(paths[0])))
    w.box.value = "512 512 1024 1024"
    b = w.output_path(slide, paths, w.config(slide, read_card(paths[0])))
    assert a != b and a.parent == b.parent == Path(tmp_path / "home" / "slideseg-predictions")
    assert a.suffix == ".zarr" and "tiny-unet" in a.name
    (tmp_path / "my-files").mkdir()
    w.out.value = str(tmp_path / "my-files")  # a folder of the user's: never written into
    with pytest.raises(InferError, match=r"is a folder, not a \.zarr output"):
        w.output_path(slide, paths, w.config(slide, read_card(paths[0])))


def test_any_exception_in_a_job_ends_it_with_a_notification(make_napari_viewer, qtbot, monkeypatch):
    """superqt swallows a RuntimeError raised by a job and never says it finished."""
    from magicgui.widgets import Label, ProgressBar, PushButton

    from napari_slideseg._widgets import runner as widget_runner

    said = []
    monkeypatch.setattr(widget_runner, "notify_error", said.append)
    make_napari_viewer()
    button, bar, status = PushButton(text="Run"), ProgressBar(), Label()
    runner = widget_runner.GeneratorRunner(button, bar, status)

    def job():
        from napari_slideseg.progress import Progress

        yield Progress("x", 1, 2, "half")
        raise RuntimeError("element 0 of tensors does not require grad")

    runner.toggle(job)
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert button.text == "Run" and isinstance(runner.error, RuntimeError)
    assert said and "RuntimeError: element 0" in said[0] and status.value.startswith("error:")
    runner.toggle(job)  # and it runs again
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)
    assert len(said) == 2
