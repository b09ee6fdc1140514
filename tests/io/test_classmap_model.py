"""napari_slideseg.io.palette: the ClassMap model (checks, JSON, infer, defaults), napari."""

from __future__ import annotations

import json
import re

import dask.array as da
import numpy as np
import pytest

from napari_slideseg.io.palette import (
    PRESETS,
    ClassMap,
    MaskError,
    check_same_shape,
    labels_to_rgb,
    rgb_to_labels,
)


# -- ClassMap: validation, JSON, infer, defaults --------------------------------------------
def test_validation_errors():
    with pytest.raises(MaskError, match="used by more than one class"):
        ClassMap(("a", "b"), ((0, 0, 0), (0, 0, 0)))
    with pytest.raises(MaskError, match="2 names but 1 colours"):
        ClassMap(("a", "b"), ((0, 0, 0),))
    with pytest.raises(MaskError, match="not an RGB triple in 0-255"):
        ClassMap(("a",), ((0, 0, 256),))
    with pytest.raises(MaskError, match="not an RGB triple"):
        ClassMap(("a",), ((0, 0),))
    with pytest.raises(MaskError, match="background index 2"):
        ClassMap(("a", "b"), ((0, 0, 0), (1, 1, 1)), background=2)
    with pytest.raises(MaskError, match="'a' is used more than once"):
        ClassMap(("a", "a"), ((0, 0, 0), (1, 1, 1)))
    with pytest.raises(MaskError, match="at least one class"):
        ClassMap((), ())
    cm = ClassMap(["x", "y"], np.array([[1, 2, 3], [4, 5, 6]]), np.int64(1))
    assert cm.colors == ((1, 2, 3), (4, 5, 6)) and cm.background == 1
    assert isinstance(cm.colors[0][0], int) and hash(cm) == hash(cm)


def test_label_dtype_and_default():
    assert ClassMap.default(256).label_dtype == np.uint8
    big = ClassMap.default(300)
    assert big.label_dtype == np.uint16 and len(set(big.colors)) == 300
    assert big.colors[0] == (0, 0, 0) and big.names[:2] == ("background", "class_1")
    labels = (np.arange(300 * 4) % 300).reshape(30, 40).astype(np.uint16)
    rgb = labels_to_rgb(labels, big)
    back = rgb_to_labels(rgb, big)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    assert ClassMap.default(3, names=["bg", "a", "b"]).names == ("bg", "a", "b")
    with pytest.raises(MaskError, match="2 names given for 3 classes"):
        ClassMap.default(3, names=["a", "b"])
    with pytest.raises(MaskError, match="1 to 65536 classes"):
        ClassMap.default(0)


def test_json_round_trip_and_errors(tmp_path):
    for cm in (*PRESETS.values(), ClassMap.default(20, names=[f"c{i}" for i in range(20)])):
        path = cm.save_json(tmp_path / "cm.json")
        d = json.loads(path.read_text())
        assert d["version"] == 1 and set(d) == {"version", "name", "names", "colors", "background"}
        assert ClassMap.load_json(path) == cm
        assert ClassMap.from_dict(cm.to_dict()) == cm
    assert [p.name for p in tmp_path.iterdir()] == ["cm.json"]  # no temp files left
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MaskError, match=r"bad\.json: class map is not valid JSON"):
        ClassMap.load_json(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"names": ["a"]}')
    with pytest.raises(
        MaskError, match=r"partial\.json: not a class map: missing key\(s\) 'colors'"
    ):
        ClassMap.load_json(tmp_path / "partial.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(MaskError, match=r"list\.json: a class map must be a JSON object"):
        ClassMap.load_json(tmp_path / "list.json")
    (tmp_path / "dup.json").write_text('{"names": ["a", "b"], "colors": [[0,0,0],[0,0,0]]}')
    with pytest.raises(MaskError, match=r"dup\.json: colour \(0, 0, 0\) is used by more"):
        ClassMap.load_json(tmp_path / "dup.json")
    (tmp_path / "new.json").write_text('{"names": ["a"], "colors": [[0,0,0]], "version": 9}')
    with pytest.raises(MaskError, match=r"new\.json: class map format version 9"):
        ClassMap.load_json(tmp_path / "new.json")
    with pytest.raises(MaskError, match=r"nothere\.json: no such class map file"):
        ClassMap.load_json(tmp_path / "nothere.json")


def test_infer_from_mask():
    cm = ClassMap(("bg", "x", "y"), ((10, 10, 10), (200, 0, 0), (0, 200, 0)))
    labels = np.array([[0, 0, 1, 1, 1], [2, 0, 0, 0, 0]], np.uint8)
    rgb = labels_to_rgb(labels, cm)
    inferred = ClassMap.infer(rgb)  # no black: the most frequent colour is the background
    assert inferred.colors == ((10, 10, 10), (200, 0, 0), (0, 200, 0))  # then by count
    assert inferred.background == 0 and inferred.name == "inferred"
    np.testing.assert_array_equal(rgb_to_labels(rgb, inferred), labels)
    rgb[0, 0] = (0, 0, 0)  # black present: black is the background even if rare
    assert ClassMap.infer(rgb).colors[0] == (0, 0, 0)
    assert ClassMap.infer(rgb, background=None).colors[0] == (10, 10, 10)
    # colours of a preset give the preset (or not, if asked)
    wsi = labels_to_rgb(np.array([[0, 1], [0, 0]], np.uint8), PRESETS["wsi3"])
    assert ClassMap.infer(wsi) == PRESETS["wsi3"]
    assert ClassMap.infer(wsi, match_presets=False).colors == ((0, 0, 0), (255, 255, 0))


def test_too_many_colours_looks_like_a_photo():
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    with pytest.raises(MaskError) as info:
        ClassMap.infer(noise, source="photo.png")
    msg = str(info.value)
    assert re.match(r"photo\.png: mask has \d+ distinct colours \(limit 32\)", msg)
    assert "photo" in msg and "JPEG" in msg and "tolerance" in msg
    with pytest.raises(MaskError, match=r"at least \d+ distinct colours \(limit 8\)"):
        ClassMap.infer(da.from_array(noise, chunks=(10, 10, 3)), max_classes=8)


def test_match_preset():
    assert ClassMap.match_preset([(0, 0, 0), (255, 0, 0)]).name == "wsi3"
    assert ClassMap.match_preset([(255, 255, 0)]).name == "wsi3"  # smallest holding it
    assert ClassMap.match_preset([(0, 0, 0), (150, 150, 150)]).name == "biopsy6"
    assert ClassMap.match_preset(np.array([[0, 150, 255], [255, 255, 0]])).name == "biopsy6"
    assert ClassMap.match_preset([(0, 0, 0), (255, 255, 255)]).name == "binary"
    assert ClassMap.match_preset([(255, 0, 0), (0, 255, 0)]) is None  # no preset holds both
    assert ClassMap.match_preset([(1, 2, 3)]) is None
    assert ClassMap.match_preset([]) is None


# -- shapes and napari ---------------------------------------------------------------------
def test_shape_mismatch_names_both():
    with pytest.raises(MaskError) as info:
        check_same_shape((200, 300), (200, 301, 3), mask_name="mask.png", slide_name="slide.svs")
    msg = str(info.value)
    assert "mask.png is 300 x 200" in msg and "(200, 300)" in msg
    assert "slide.svs is 301 x 200" in msg and "(200, 301, 3)" in msg
    check_same_shape((200, 300), (200, 300, 3), mask_name="m", slide_name="s")


def test_napari_colormap_dict():
    from napari.utils.colormaps import DirectLabelColormap

    for cm in PRESETS.values():
        d = cm.to_napari_colormap_dict()
        assert d[None] == (0, 0, 0, 0) and d[0] == (0, 0, 0, 0)
        cmap = DirectLabelColormap(color_dict=d)
        for i, (r, g, b) in enumerate(cm.colors[1:], 1):
            np.testing.assert_allclose(cmap.map(np.array([i]))[0], (r / 255, g / 255, b / 255, 1))
        assert cmap.map(np.array([0]))[0][3] == 0  # background transparent
    shown = ClassMap.preset("wsi3").to_napari_colormap_dict(background_opacity=0.5)
    assert shown[0] == (0, 0, 0, 0.5)


def test_save_json_never_replaces_a_folder(tmp_path):
    folder = tmp_path / "cm.json"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with pytest.raises(IsADirectoryError):
        PRESETS["wsi3"].save_json(folder)
    assert (folder / "keep.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.json"]  # no temp files left
