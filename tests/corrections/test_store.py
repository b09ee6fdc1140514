"""The corrections store on a real prediction: edits saved beside it, exact, crash-safe."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from napari_slideseg.corrections import CorrectionsError, open_corrections, save


@pytest.fixture
def prediction(level1_prediction, tmp_path):
    """A private copy of the level-1 prediction of the sample (labels chunked 512, pyramid 2)."""
    src, labels, _slide = level1_prediction
    out = tmp_path / "pred.zarr"
    shutil.copytree(src, out)
    return out, labels


def _paint(labels, y0, x0, y1, x1, value):
    """The window of ``labels`` with a rectangle painted ``value``, as a user paints it."""
    block = labels[y0:y1, x0:x1].copy()
    block[:] = value
    return block


def test_edits_are_saved_beside_the_prediction_and_reopen_exactly(prediction):
    out, labels = prediction
    corr = open_corrections(out)
    assert corr.version == 0 and corr.versions == [] and corr.regions() == []
    np.testing.assert_array_equal(corr.corrected().compute(), labels)

    # a stroke across the chunk corner at (512, 512), and an erase far from it
    a = corr.record("labels", 500, 490, _paint(labels, 500, 490, 530, 540, 2))
    b = corr.record("labels", 100, 400, _paint(labels, 100, 400, 110, 415, 0))
    assert a is not None and b is not None
    want = labels.copy()
    want[500:530, 490:540] = 2
    want[100:110, 400:415] = 0
    changed_a = int((labels[500:530, 490:540] != 2).sum())
    assert (a["version"], a["array"], a["pixels"]) == (1, "labels", changed_a)
    assert len(a["chunks"]) == 4  # the stroke crosses four 512-px chunks

    again = open_corrections(out)  # as after closing napari
    assert again.version == 2
    assert [h["version"] for h in again.versions] == [1, 2]
    assert all(h["time"].endswith("+00:00") for h in again.versions)
    np.testing.assert_array_equal(again.corrected().compute(), want)
    # the prediction itself is untouched
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["labels"][:], labels)
    edited = again.edited_mask().compute()
    np.testing.assert_array_equal(edited, want != labels)
    boxes = again.regions()
    ys, xs = np.nonzero(want != labels)
    assert len(boxes) == 2
    assert boxes[-1] == (
        int(ys[ys >= 500].min()),
        int(xs[ys >= 500].min()),
        int(ys.max()) + 1,
        int(xs.max()) + 1,
    )
    # the pyramid (stride 2) shows the corrections too
    np.testing.assert_array_equal(again.corrected(factor=2).compute(), want[::2, ::2])
    levels = again.corrected_levels()
    assert [lv.shape for lv in levels] == [labels.shape, labels[::2, ::2].shape]

    # resumable: a third edit continues the counter; painting back the original un-edits
    c = again.record("labels", 100, 400, labels[100:110, 400:415])
    assert c is not None and c["version"] == 3
    assert len(open_corrections(out).regions()) == 1
    assert again.record("labels", 100, 400, labels[100:110, 400:415]) is None  # nothing changed


def test_a_crash_mid_save_never_counts_a_half_written_chunk(prediction, monkeypatch):
    out, labels = prediction
    corr = open_corrections(out)
    corr.record("labels", 100, 100, _paint(labels, 100, 100, 120, 120, 1))
    before = corr.corrected().compute()

    def crash(step):
        if step == "index":  # chunk data and edited mask written, index not yet
            raise KeyboardInterrupt

    monkeypatch.setattr(save, "FAULT", crash)
    with pytest.raises(KeyboardInterrupt):
        corr.record("labels", 90, 90, _paint(labels, 90, 90, 130, 700, 2))
    monkeypatch.setattr(save, "FAULT", None)
    back = open_corrections(out)
    assert back.version == 1 and len(back.versions) == 1
    np.testing.assert_array_equal(back.corrected().compute(), before)
    assert back.record("labels", 90, 90, _paint(labels, 90, 90, 130, 700, 2))["version"] == 2
    want = before.copy()
    want[90:130, 90:700] = 2
    np.testing.assert_array_equal(open_corrections(out).corrected().compute(), want)


def test_a_crash_before_the_history_keeps_the_saved_chunks_and_the_counter(prediction, monkeypatch):
    out, labels = prediction

    def crash(step):
        if step == "attrs":
            raise OSError("disk full")

    monkeypatch.setattr(save, "FAULT", crash)
    with pytest.raises(OSError):
        open_corrections(out).record("labels", 0, 0, _paint(labels, 0, 0, 8, 8, 2))
    monkeypatch.setattr(save, "FAULT", None)
    back = open_corrections(out)
    assert back.version == 1  # the index committed it
    assert back.record("labels", 8, 8, _paint(labels, 8, 8, 9, 9, 1))["version"] == 2


def test_corrections_of_another_prediction_are_refused(prediction):
    out, labels = prediction
    open_corrections(out).record("labels", 0, 0, _paint(labels, 0, 0, 4, 4, 2))
    root = zarr.open_group(str(out), mode="r+")
    info = dict(root.attrs["slideseg_inference"])
    info["level"] = 0
    root.attrs["slideseg_inference"] = info
    with pytest.raises(CorrectionsError, match="another prediction"):
        open_corrections(out)


def test_only_the_label_arrays_are_corrected(prediction):
    out, labels = prediction
    with pytest.raises(CorrectionsError, match="no correctable array 'probs'"):
        open_corrections(out).record("probs", 0, 0, labels[:4, :4])
    with pytest.raises(CorrectionsError, match="read-only"):
        open_corrections(out, writable=False).record("labels", 0, 0, labels[:4, :4])
