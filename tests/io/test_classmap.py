"""ClassMap presets, colour mask <-> labels, errors (core tier)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from PIL import Image

from napari_slideseg.io.palette import (
    PRESETS,
    ClassMap,
    MaskError,
    check_colors,
    check_same_shape,
    is_color_mask,
    labels_to_rgb,
    read_color_mask,
    rgb_to_labels,
)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_byte_identical_round_trip_through_png(tmp_path, preset):
    cm = ClassMap.preset(preset)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, cm.n_classes, (157, 203)).astype(np.uint8)
    rgb = labels_to_rgb(labels, cm)
    Image.fromarray(rgb).save(tmp_path / "mask.png")
    back, _found = read_color_mask(tmp_path / "mask.png", cm)
    np.testing.assert_array_equal(back, labels)
    # preset recognised without being told
    back2, found2 = read_color_mask(tmp_path / "mask.png")
    assert found2 == cm
    np.testing.assert_array_equal(
        labels_to_rgb(back2, found2), np.asarray(Image.open(tmp_path / "mask.png"))
    )


def test_biopsy6_keeps_users_bgr_red():
    assert ClassMap.preset("biopsy6").colors[5] == (0, 150, 255)
    assert ClassMap.preset("wsi3").colors == ((0, 0, 0), (255, 255, 0), (255, 0, 0))


def test_glas_grey_mask_reads_as_binary(data_dir):
    path = data_dir / "glas" / "train_1_mask.png"
    labels, cm = read_color_mask(path)
    raw = np.asarray(Image.open(path))
    assert cm.name == "binary"
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
    assert labels.mean() == pytest.approx((raw > 0).mean())
    assert is_color_mask(path) == PRESETS["binary"]
    assert is_color_mask(data_dir / "glas" / "train_1.png") is None  # a photo is not a mask


def test_unknown_colours_listed_with_counts():
    cm = ClassMap.preset("wsi3")
    rgb = labels_to_rgb(np.zeros((50, 60), np.uint8), cm)
    rgb[:3, :4] = (12, 34, 56)
    rgb[10, 10] = (1, 2, 3)
    with pytest.raises(
        MaskError, match=r"mask\.png: 2 colour.*\(12, 34, 56\): 12 px.*\(1, 2, 3\): 1 px"
    ):
        rgb_to_labels(rgb, cm, source="mask.png")
    with pytest.raises(MaskError, match=r"\(12, 34, 56\): 12 px"):
        check_colors(da.from_array(rgb, chunks=(17, 23, 3)), cm)


def test_tolerance_for_jpeg_noise():
    cm = ClassMap.preset("biopsy6")
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 6, (64, 64)).astype(np.uint8)
    noisy = np.clip(
        labels_to_rgb(labels, cm).astype(int) + rng.integers(-6, 7, (64, 64, 3)), 0, 255
    ).astype(np.uint8)
    np.testing.assert_array_equal(rgb_to_labels(noisy, cm, tolerance=12), labels)
    with pytest.raises(MaskError, match="not in the class map"):
        rgb_to_labels(noisy, cm, tolerance=2)


def test_dask_equals_numpy_chunkwise():
    cm = ClassMap.preset("biopsy6")
    labels = np.random.default_rng(3).integers(0, 6, (301, 257)).astype(np.uint8)
    rgb = labels_to_rgb(labels, cm)
    lazy = rgb_to_labels(da.from_array(rgb, chunks=(64, 100, 3)), cm)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), labels)
    np.testing.assert_array_equal(
        labels_to_rgb(da.from_array(labels, chunks=50), cm).compute(), rgb
    )


def test_json_round_trip_and_errors(tmp_path):
    cm = ClassMap.preset("biopsy6")
    cm.save_json(tmp_path / "cm.json")
    assert ClassMap.load_json(tmp_path / "cm.json") == cm
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MaskError, match=r"bad\.json: class map is not valid JSON"):
        ClassMap.load_json(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"names": ["a"]}')
    with pytest.raises(MaskError, match=r"partial\.json"):
        ClassMap.load_json(tmp_path / "partial.json")
    with pytest.raises(MaskError, match="available: binary, wsi3, biopsy6"):
        ClassMap.preset("nope")
    with pytest.raises(MaskError, match="used by more than one class"):
        ClassMap(("a", "b"), ((0, 0, 0), (0, 0, 0)))


def test_infer_and_match_preset():
    cm = ClassMap(("bg", "x", "y"), ((10, 10, 10), (200, 0, 0), (0, 200, 0)))
    rgb = labels_to_rgb(np.array([[0, 0, 1], [2, 0, 0]], np.uint8), cm)
    inferred = ClassMap.infer(rgb, background=None)
    assert inferred.colors[0] == (10, 10, 10) and set(inferred.colors) == set(cm.colors)
    assert ClassMap.match_preset([(0, 0, 0), (255, 0, 0)]).name == "wsi3"
    assert ClassMap.match_preset([(0, 0, 0), (150, 150, 150)]).name == "biopsy6"
    assert ClassMap.match_preset([(0, 0, 0), (255, 255, 255)]).name == "binary"
    noise = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    with pytest.raises(MaskError, match="distinct colours"):
        ClassMap.infer(noise, source="photo.png")


def test_shape_mismatch_names_both():
    with pytest.raises(MaskError, match=r"mask\.png is 300 x 200 .* slide\.svs is 301 x 200"):
        check_same_shape((200, 300), (200, 301, 3), mask_name="mask.png", slide_name="slide.svs")


def test_napari_colormap_shows_class_colours():
    from napari.utils.colormaps import DirectLabelColormap

    cm = ClassMap.preset("biopsy6")
    cmap = DirectLabelColormap(color_dict=cm.to_napari_colormap_dict())
    np.testing.assert_allclose(cmap.map(np.array([5]))[0], (0, 150 / 255, 1, 1))
    assert cmap.map(np.array([0]))[0][3] == 0  # background transparent
