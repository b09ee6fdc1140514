"""napari hooks and metrics on bad input: clear errors, nothing destroyed, no temp files left.

Writers notify (``_writer._notify_error``) and report no file; readers
notify (``_reader._notify_error``) and return the ``[(None,)]`` sentinel;
:func:`napari_slideseg.metrics.evaluate` raises :class:`MetricsError`.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import zarr

from napari_slideseg import _reader, _writer
from napari_slideseg.io.errors import SlideSegError
from napari_slideseg.io.export import check_zarr_target, write_ome_zarr_labels
from napari_slideseg.io.palette import ClassMap
from napari_slideseg.metrics import MetricsError, evaluate

WRITERS = {
    ".png": _writer.write_labels_png,
    ".tif": _writer.write_labels_tiff,
    ".csv": _writer.write_labels_rle,
    ".zarr": _writer.write_labels_zarr,
    ".geojson": _writer.write_labels_geojson,
}
FILE_EXTS = [".png", ".tif", ".csv", ".geojson"]
LABELS = np.ones((8, 8), np.uint8)


@pytest.fixture
def notes(monkeypatch):
    """Messages the writer and reader hooks notify (instead of napari's show_error)."""
    messages: list[str] = []
    monkeypatch.setattr(_writer, "_notify_error", messages.append)
    monkeypatch.setattr(_reader, "_notify_error", messages.append)
    return messages


def _snapshot(folder):
    """``{relative path: sha256}`` of every file under ``folder``."""
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _temps(folder):
    return [f.name for f in folder.rglob("*") if f.name.endswith((".tmp", ".old"))]


def _prediction(tmp_path, name="pred.zarr"):
    """A small semantic prediction folder laid out as the engine writes it (with done marks)."""
    out = tmp_path / name
    labels = np.zeros((64, 64), np.uint8)
    labels[10:40, 20:50] = 1
    root = zarr.open_group(str(out), mode="w")
    root.create_array("labels", shape=labels.shape, chunks=(32, 32), dtype=np.uint8)
    root["labels"][:] = labels
    root.create_array("pyramid/2", shape=(32, 32), chunks=(32, 32), dtype=np.uint8)
    root["pyramid/2"][:] = labels[::2, ::2]
    root.create_array("done", shape=(1,), dtype=np.uint8)
    root["done"][:] = 1
    root.attrs.update(
        {
            "slideseg_inference": {
                "level": 0,
                "level_factors": [1.0, 1.0],
                "level_shape": [64, 64],
                "slide_shape": [64, 64],
                "pyramid": [2],
                "kind": "semantic",
                "complete": True,
            },
            "slideseg": {"classmap": ClassMap.preset("binary").to_dict(), "models": []},
        }
    )
    return out


# -----------------------------------------------------------------------------
# S1: the OME-Zarr writer never wipes a folder that is not its own earlier export
# -----------------------------------------------------------------------------
def _user_folder(tmp_path):
    d = tmp_path / "mydir"
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    return d


def _slide_zarr(tmp_path):
    d = tmp_path / "slide.zarr"
    root = zarr.open_group(str(d), mode="w")
    root.create_array("0", shape=(16, 16, 3), dtype=np.uint8)
    root.attrs["multiscales"] = [{"datasets": [{"path": "0"}]}]
    return d


def _export_with_extra(tmp_path):
    d = tmp_path / "old.ome.zarr"
    write_ome_zarr_labels(d, LABELS)
    (d / "notes.txt").write_text("mine")
    return d


def _a_file(tmp_path):
    f = tmp_path / "file.zarr"
    f.write_bytes(b"not a folder")
    return f


VICTIMS = {
    "user folder": (_user_folder, "not a zarr store"),
    "prediction": (_prediction, "is a prediction folder"),
    "slide zarr": (_slide_zarr, "not an OME-Zarr labels export"),
    "export with user files": (_export_with_extra, "also holds other files (notes.txt)"),
    "file": (_a_file, "is not a folder"),
}


@pytest.mark.parametrize("victim", VICTIMS)
def test_zarr_writer_refuses_foreign_target(tmp_path, notes, victim):
    make, why = VICTIMS[victim]
    target = make(tmp_path)
    before = _snapshot(target) if target.is_dir() else target.read_bytes()
    assert _writer.write_labels_zarr(str(target), LABELS, {"metadata": {}, "name": "x"}) == []
    assert len(notes) == 1
    assert str(target) in notes[0] and why in notes[0]
    assert "choose another output name" in notes[0]
    assert (_snapshot(target) if target.is_dir() else target.read_bytes()) == before
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("victim", ["prediction", "user folder"])
def test_core_zarr_export_refuses_foreign_target(tmp_path, victim):
    """``export_labels``/``write_ome_zarr_labels`` (what ``slideseg export --to X.zarr`` runs)."""
    make, why = VICTIMS[victim]
    target = make(tmp_path)
    before = _snapshot(target)
    with pytest.raises(SlideSegError, match=why) as err:
        write_ome_zarr_labels(target, LABELS)
    assert str(target) in str(err.value)
    assert _snapshot(target) == before
    assert _temps(tmp_path) == []


def test_prediction_exported_onto_itself_is_refused(tmp_path):
    from napari_slideseg.io.masks import read_labels

    pred = _prediction(tmp_path)
    before = _snapshot(pred)
    labels, cm, _ = read_labels(pred)
    with pytest.raises(SlideSegError, match="is a prediction folder"):
        write_ome_zarr_labels(pred, labels, classmap=cm)
    assert _snapshot(pred) == before


def test_earlier_export_is_replaced_atomically(tmp_path, notes):
    target = tmp_path / "l.ome.zarr"
    write_ome_zarr_labels(target, np.zeros((8, 8), np.uint8))
    assert check_zarr_target(target) is True
    assert _writer.write_labels_zarr(str(target), LABELS * 2, {"name": "x"}) == [str(target)]
    assert notes == []
    back = zarr.open_group(str(target), mode="r")["labels/x/0"][:]
    np.testing.assert_array_equal(back, LABELS * 2)
    assert not (target / "labels" / "labels").exists()  # the old label image went with it
    assert _temps(tmp_path) == []


def test_failed_replacement_keeps_the_earlier_export(tmp_path, monkeypatch):
    from napari_slideseg.io import ngff

    target = tmp_path / "l.ome.zarr"
    write_ome_zarr_labels(target, np.zeros((8, 8), np.uint8))
    before = _snapshot(target)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ngff, "iter_blocks", broken)  # the label pyramid writer
    with pytest.raises(OSError, match="disk full"):
        write_ome_zarr_labels(target, LABELS)
    assert _snapshot(target) == before
    assert _temps(tmp_path) == []


# -----------------------------------------------------------------------------
# T4, T5: empty layers and attributes=None
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (7, 0)])
@pytest.mark.parametrize("ext", list(WRITERS))
def test_empty_layer_is_refused_and_nothing_written(tmp_path, notes, ext, shape):
    out = tmp_path / f"e{ext}"
    assert WRITERS[ext](str(out), np.zeros(shape, np.uint8), {"metadata": {}}) == []
    assert len(notes) == 1
    assert str(out) in notes[0] and "empty" in notes[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", list(WRITERS))
def test_attributes_none_is_an_empty_dict(tmp_path, notes, ext):
    out = tmp_path / f"a{ext}"
    assert WRITERS[ext](str(out), LABELS, None) == [str(out)]
    assert notes == []
    assert out.exists()


# -----------------------------------------------------------------------------
# U7: negative labels
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("classmap", [None, ClassMap.preset("binary")])
@pytest.mark.parametrize("ext", list(WRITERS))
def test_negative_labels_are_named(tmp_path, notes, ext, classmap):
    out = tmp_path / f"n{ext}"
    labels = LABELS.astype(np.int16)
    labels[0, 0] = -3
    meta = {"slideseg": {"classmap": classmap.to_dict()}} if classmap else {}
    assert WRITERS[ext](str(out), labels, {"metadata": meta}) == []
    assert len(notes) == 1
    assert str(out) in notes[0] and "-3" in notes[0] and "negative" in notes[0]
    assert "classes, not 0" not in notes[0]
    assert list(tmp_path.iterdir()) == []


# -----------------------------------------------------------------------------
# U8, L2: an output path that is a directory; temp files removed on failure
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("ext", FILE_EXTS)
def test_directory_output_is_refused_up_front(tmp_path, notes, ext):
    out = tmp_path / f"dir{ext}"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    assert WRITERS[ext](str(out), LABELS, {}) == []
    assert notes == [f"Not saved. {out}: is a directory; give a file name"]
    assert [f.name for f in out.iterdir()] == ["keep.txt"]
    assert sorted(f.name for f in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("ext", [".png", ".tif", ".geojson"])
def test_failed_rename_removes_temp_file(tmp_path, monkeypatch, notes, ext):
    import os

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    out = tmp_path / f"f{ext}"
    assert WRITERS[ext](str(out), LABELS, {}) == []
    assert len(notes) == 1 and "No space left" in notes[0]
    assert list(tmp_path.iterdir()) == []


def test_metrics_report_directory_is_refused_and_no_temp_left(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    with pytest.raises(MetricsError, match="is a directory; give a file name") as err:
        evaluate([("x", LABELS, LABELS)], ["bg", "fg"], report=report)
    assert str(report) in str(err.value)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["report"]


def test_metrics_failed_report_write_removes_temp(tmp_path, monkeypatch):
    import os

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        evaluate([("x", LABELS, LABELS)], ["bg", "fg"], report=tmp_path / "r.csv")
    assert list(tmp_path.iterdir()) == []


# -----------------------------------------------------------------------------
# S6, T6: metrics inputs
# -----------------------------------------------------------------------------
def test_metrics_refuses_non_integer_floats():
    with pytest.raises(MetricsError, match=r"img7: the prediction holds non-integer values"):
        evaluate([("img7", LABELS + 0.5, LABELS)], ["bg", "fg"])
    with pytest.raises(MetricsError, match=r"img7: the truth holds non-integer values"):
        evaluate([("img7", LABELS, np.full((8, 8), np.nan))], ["bg", "fg"])


def test_metrics_accepts_integer_valued_floats():
    rows = evaluate([("x", LABELS.astype(np.float32), LABELS)], ["bg", "fg"])
    assert rows[0]["dice_fg"] == 1.0


@pytest.mark.parametrize("names", ["bgfg", b"bg", 3])
def test_metrics_refuses_class_names_not_a_list(names):
    with pytest.raises(MetricsError, match="class_names must be a list of class names"):
        evaluate([("x", LABELS, LABELS)], names)


@pytest.mark.parametrize(
    "pairs, match",
    [
        ([("x", None, None)], r"pair 0 \(x\): the prediction must be a 2-D label array, not None"),
        ([("x", LABELS, None)], r"pair 0 \(x\): the truth must be a 2-D label array, not None"),
        ([LABELS, LABELS], r"pair 0: expected \(image_id, prediction, truth\), got a ndarray"),
        ([("x", LABELS)], r"pair 0: expected .* got a tuple of 2 items"),
        ([("x", LABELS, LABELS), None], r"pair 1: expected .* got a NoneType"),
    ],
)
def test_metrics_malformed_pairs_are_named(pairs, match):
    with pytest.raises(MetricsError, match=match):
        evaluate(pairs, ["bg", "fg"])


# -----------------------------------------------------------------------------
# S7, U6: prediction folders with broken metadata, zarr folders that are neither
# -----------------------------------------------------------------------------
def _garbage(root):
    root.attrs["slideseg_inference"] = "garbage"
    root.attrs["slideseg"] = [1, 2]


def _list_info(root):
    root.attrs["slideseg_inference"] = [1, 2]


def _missing(root):
    root.attrs.clear()


def _partial(root):
    root.attrs["slideseg_inference"] = {"kind": "semantic"}


def _no_classmap(root):
    root.attrs["slideseg"] = {"models": []}


def _no_labels(root):
    del root["labels"]


BROKEN = {
    "garbage": (_garbage, "'slideseg_inference' attributes are a str ('garbage')"),
    "list": (_list_info, "'slideseg_inference' attributes are a list ([1, 2])"),
    "missing": (_missing, "'slideseg_inference' attributes are missing"),
    "partial": (_partial, "'slideseg_inference' lacks level, level_shape, pyramid"),
    "no class map": (_no_classmap, "have no class map"),
    "labels removed": (_no_labels, "the arrays labels are missing"),
}


def test_good_prediction_opens_as_labels(tmp_path, notes):
    pred = _prediction(tmp_path)
    reader = _reader.napari_get_reader(str(pred))
    assert reader is _reader.read_prediction
    layers = reader(str(pred))
    assert [kind for *_, kind in layers] == ["labels"]
    assert notes == []


@pytest.mark.parametrize("case", BROKEN)
def test_broken_prediction_notifies(tmp_path, notes, case):
    pred = _prediction(tmp_path)
    damage, problem = BROKEN[case]
    damage(zarr.open_group(str(pred), mode="r+"))
    reader = _reader.napari_get_reader(str(pred))
    assert reader is not None
    assert reader(str(pred)) == [(None,)]
    assert len(notes) == 1
    assert notes[0].startswith(f"{pred}: is a prediction folder with broken metadata")
    assert problem in notes[0]


def test_only_done_marks_is_not_a_slide_or_prediction(tmp_path, notes):
    pred = _prediction(tmp_path)
    root = zarr.open_group(str(pred), mode="r+")
    root.attrs.clear()
    del root["labels"]
    del root["pyramid"]
    assert _reader.napari_get_reader(str(pred))(str(pred)) == [(None,)]
    assert notes == [
        f"{pred}: is not a slide or prediction: it has no 'slideseg_inference' attributes and "
        "no labels (arrays: done (1-D)); it is not opened"
    ]


def test_zarr_without_image_arrays_is_not_a_slide(tmp_path, notes):
    path = tmp_path / "odd.zarr"
    zarr.open_group(str(path), mode="w").create_array("x", shape=(5,), dtype=np.uint8)
    assert _reader.napari_get_reader(str(path))(str(path)) == [(None,)]
    assert notes == [
        f"{path}: is not a slide or prediction: it holds no 2-D image array (arrays: x (1-D))"
    ]
    assert "axes" not in notes[0]


@pytest.mark.parametrize("path", [None, 123, 4.5, b"x.zarr", [None], [1], ["a", "b"], [], ""])
def test_get_readers_ignore_non_paths(path):
    assert _reader.napari_get_reader(path) is None
    assert _reader.napari_get_mask_reader(path) is None
    assert _reader.napari_get_geojson_reader(path) is None


def test_copy_of_prediction_is_untouched_by_a_refused_save(tmp_path, notes):
    """The whole flow: open a prediction, save its layer onto the folder itself: refused."""
    pred = _prediction(tmp_path)
    backup = tmp_path / "backup.zarr"
    shutil.copytree(pred, backup)
    data, kwargs, _ = _reader.read_prediction(str(pred))[0]
    assert _writer.write_labels_zarr(str(pred), data, kwargs) == []
    assert "is a prediction folder" in notes[0]
    assert _snapshot(pred) == _snapshot(backup)
