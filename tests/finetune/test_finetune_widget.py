"""The user path: open a prediction in napari, paint corrections, fine-tune from the Training widget."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from .conftest import REGION, crop_to, dice

pytestmark = pytest.mark.viewer


def test_paint_corrections_then_finetune_from_the_training_widget(
    make_napari_viewer, qtbot, corrected, tmp_path, monkeypatch
):
    import zarr

    from napari_slideseg._widgets.train_widget import SOURCES, TrainWidget
    from napari_slideseg.corrections import open_corrections
    from napari_slideseg.models.bundled import resolve_model
    from napari_slideseg.models.card import read_card

    _, labels, _, truth, pred = corrected
    mine = tmp_path / "pred.zarr"
    shutil.copytree(pred, mine)
    viewer = make_napari_viewer()
    layers = viewer.open(str(mine), plugin="napari-slideseg")
    layer = next(lyr for lyr in layers if type(lyr).__name__ == "Labels")
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.source.value = SOURCES[2]
    w.prediction_layer.value = layer.name
    w.track.changed.emit(True)  # "track corrections on this layer"
    assert "tracking corrections" in w.status.value
    painted = viewer.layers[layer.name]  # a multiscale layer is swapped for a paintable one
    # the pathologist paints the glands the model missed and erases what it invented
    y0, x0 = REGION[:2]
    want = crop_to(truth, REGION).astype(labels.dtype)
    ys, xs = np.nonzero(crop_to(labels, REGION) != want)
    painted.data_setitem((ys + y0, xs + x0), want[ys, xs])
    w.finetune_epochs.value = 1
    w.device.value = "cpu"
    w.out.value = str(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    parent_digest = read_card(resolve_model("glas-gland")).digest()

    # cancel during training, and nothing is lost
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: w.progress.value > 0 and "epoch" in w.status.value, timeout=120000)
    w.run_button.changed.emit(True)  # Cancel
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120000)
    store = open_corrections(mine, writable=False)
    assert store.version >= 1 and store.regions("labels")
    assert read_card(resolve_model("glas-gland")).digest() == parent_digest
    assert not (tmp_path / "runs" / "finetune-1" / "finetune.json").exists()

    # run again to the end: a new model, the regions predicted again beside the prediction,
    # shown while they are predicted (live), then replaced by the finished layers
    from napari_slideseg._widgets import finetune_job

    live, real = [], finetune_job.live_layers

    def spy(viewer, run, like, shown):
        real(viewer, run, like, shown)
        live.append({k: v.name for k, v in shown.items()})

    monkeypatch.setattr(finetune_job, "live_layers", spy)
    w.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=300000)
    assert "fine-tuned on" in w.status.value, w.status.value
    run = tmp_path / "runs" / "finetune-2"
    card = read_card(run / "model" / "best")
    assert card.training["parent"]["digest"] == parent_digest
    assert card.training["finetune"]["corrections"]["version"] == store.version
    new = [lyr for lyr in viewer.layers if lyr.name.endswith("(fine-tuned)")]
    assert new and tuple(new[0].scale[-2:]) == tuple(layer.scale[-2:])
    # and what the layer showed when Run was pressed, predicted with the new model
    assert any(lyr.name.endswith("(fine-tuned, view)") for lyr in viewer.layers)
    assert (run / "view.zarr").is_dir()
    assert live and live[0].get("repredicted.zarr", "").endswith("(fine-tuned)"), live
    again = zarr.open_group(str(run / "repredicted.zarr"), mode="r")["labels"][:]
    assert dice(crop_to(again, REGION), crop_to(truth, REGION)) > dice(
        crop_to(labels, REGION), crop_to(truth, REGION)
    )
