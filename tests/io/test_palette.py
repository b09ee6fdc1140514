"""napari_slideseg.io.palette: presets, colour mask <-> labels, mask files, the mask sniff.

The ClassMap model itself is tested in test_classmap_model.py.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_slideseg.io.errors import SlideSegError
from napari_slideseg.io.palette import (
    PRESETS,
    ClassMap,
    MaskError,
    check_colors,
    is_color_mask,
    labels_to_rgb,
    read_color_mask,
    rgb_to_labels,
    unique_colors,
)

PRESET_NAMES = sorted(PRESETS)


def _random_labels(cm: ClassMap, shape=(97, 131), seed=0) -> np.ndarray:
    """Blocky random labels (every class present) like a real mask."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, cm.n_classes, (shape[0] // 8 + 1, shape[1] // 8 + 1))
    labels = np.kron(small, np.ones((8, 8), int))[: shape[0], : shape[1]]
    labels.flat[: cm.n_classes] = np.arange(cm.n_classes)
    return labels.astype(np.uint8)


# -- presets ----------------------------------------------------------------------------
def test_presets_keep_users_colours():
    assert ClassMap.preset("biopsy6").colors == (
        (0, 0, 0),
        (255, 255, 0),
        (150, 150, 150),
        (0, 255, 0),
        (0, 0, 255),
        (0, 150, 255),  # "red" as the users' OpenCV (BGR) masks store it
    )
    assert ClassMap.preset("biopsy6").names == (
        "background",
        "yellow",
        "grey",
        "green",
        "blue",
        "red",
    )
    assert ClassMap.preset("wsi3").colors == ((0, 0, 0), (255, 255, 0), (255, 0, 0))
    assert ClassMap.preset("wsi3").names == ("background", "yellow", "red")
    assert ClassMap.preset("binary").names == ("background", "foreground")
    assert all(cm.background == 0 and cm.name == key for key, cm in PRESETS.items())
    assert ClassMap.preset(" WSI3 ") is PRESETS["wsi3"]
    with pytest.raises(MaskError, match=r"unknown class map preset 'nope'; available: .*biopsy6"):
        ClassMap.preset("nope")


def test_mask_error_is_a_value_error():
    assert issubclass(MaskError, SlideSegError) and issubclass(MaskError, ValueError)


# -- byte-identical round trips ------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_round_trip_numpy_and_png(tmp_path, preset):
    cm = ClassMap.preset(preset)
    labels = _random_labels(cm)
    rgb = labels_to_rgb(labels, cm)
    assert rgb.dtype == np.uint8 and rgb.shape == (*labels.shape, 3)
    back = rgb_to_labels(rgb, cm)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(labels_to_rgb(back, cm), rgb)

    path = tmp_path / f"{preset}.png"
    Image.fromarray(rgb).save(path)
    for given_cm in (cm, None):  # told the preset, or recognising it
        got, found = read_color_mask(path, given_cm)
        assert found == cm
        np.testing.assert_array_equal(got, labels)
        np.testing.assert_array_equal(labels_to_rgb(got, found), np.asarray(Image.open(path)))
    assert is_color_mask(path) == cm


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_round_trip_indexed_rgba_and_tiff(tmp_path, preset):
    cm = ClassMap.preset(preset)
    labels = _random_labels(cm, (64, 80), seed=1)
    rgb = labels_to_rgb(labels, cm)
    indexed = Image.fromarray(labels, "P")
    indexed.putpalette(np.asarray(cm.colors, np.uint8).ravel().tolist())
    indexed.save(tmp_path / "p.png")
    rgba = np.concatenate([rgb, np.full((*labels.shape, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    tifffile.imwrite(tmp_path / "m.tif", rgb, photometric="rgb", compression="zlib")
    for name in ("p.png", "rgba.png", "m.tif"):
        got, found = read_color_mask(tmp_path / name)
        assert found == cm, name
        np.testing.assert_array_equal(got, labels)
        np.testing.assert_array_equal(labels_to_rgb(got, found), rgb)
    np.testing.assert_array_equal(rgb_to_labels(rgba, cm), labels)


@settings(max_examples=25, deadline=None)
@given(
    preset=st.sampled_from(PRESET_NAMES),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(preset, h, w, seed):
    cm = ClassMap.preset(preset)
    labels = np.random.default_rng(seed).integers(0, cm.n_classes, (h, w)).astype(np.uint8)
    rgb = labels_to_rgb(labels, cm)
    np.testing.assert_array_equal(rgb_to_labels(rgb, cm), labels)
    lazy = rgb_to_labels(da.from_array(rgb, chunks=(7, 11, 3)), cm)
    np.testing.assert_array_equal(lazy.compute(), labels)


# -- real data: GlaS binary masks ------------------------------------------------------------
def test_glas_grey_mask_is_binary(data_dir):
    path = data_dir / "glas" / "train_1_mask.png"
    raw = np.asarray(Image.open(path))
    assert raw.ndim == 2 and set(np.unique(raw).tolist()) == {0, 255}
    labels, cm = read_color_mask(path)
    assert cm == PRESETS["binary"]
    assert labels.dtype == np.uint8 and labels.shape == raw.shape
    assert set(np.unique(labels).tolist()) == {0, 1}
    assert labels.mean() == pytest.approx((raw > 0).mean())
    assert 0.1 < labels.mean() < 0.95
    # the same through rgb_to_labels on the grey array, NumPy and dask
    np.testing.assert_array_equal(rgb_to_labels(raw, PRESETS["binary"]), labels)
    lazy = rgb_to_labels(da.from_array(raw, chunks=(100, 123)), PRESETS["binary"])
    np.testing.assert_array_equal(lazy.compute(), labels)
    # told the preset: the same
    labels2, _ = read_color_mask(path, PRESETS["binary"])
    np.testing.assert_array_equal(labels2, labels)
    assert is_color_mask(path) == PRESETS["binary"]


def test_glas_photo_is_not_a_mask(data_dir):
    photo = data_dir / "glas" / "train_1.png"
    assert is_color_mask(photo) is None
    with pytest.raises(MaskError, match=r"train_1\.png: mask has \d+ distinct colours.*JPEG"):
        read_color_mask(photo)


def test_grey_index_masks(tmp_path):
    labels = _random_labels(ClassMap.preset("biopsy6"), (40, 50))
    Image.fromarray(labels).save(tmp_path / "idx.png")
    got, cm = read_color_mask(tmp_path / "idx.png")
    np.testing.assert_array_equal(got, labels)
    assert cm.n_classes == 6 and cm.colors[0] == (0, 0, 0) and len(set(cm.colors)) == 6
    got, cm = read_color_mask(tmp_path / "idx.png", PRESETS["biopsy6"])
    np.testing.assert_array_equal(got, labels)
    with pytest.raises(MaskError, match=r"idx\.png: label values \[3, 4, 5\]"):
        read_color_mask(tmp_path / "idx.png", PRESETS["wsi3"])
    # 0/1 with the binary preset are indices; 0/255 are colours
    Image.fromarray((labels > 2).astype(np.uint8)).save(tmp_path / "01.png")
    got, _ = read_color_mask(tmp_path / "01.png", PRESETS["binary"])
    np.testing.assert_array_equal(got, labels > 2)
    # a 2D mask with a colour class map is indices; with a grey map, colours
    np.testing.assert_array_equal(rgb_to_labels(labels, PRESETS["biopsy6"]), labels)
    with pytest.raises(MaskError, match=r"grey 1: \d+ px"):
        rgb_to_labels(labels, PRESETS["binary"])


# -- unknown colours, tolerance -------------------------------------------------------------
def test_unknown_colours_listed_with_counts():
    cm = ClassMap.preset("wsi3")
    rgb = labels_to_rgb(_random_labels(cm, (50, 60)), cm)
    rgb[:3, :4] = (12, 34, 56)
    rgb[10, 10] = (1, 2, 3)
    with pytest.raises(MaskError) as info:
        rgb_to_labels(rgb, cm, source="slide_mask.png")
    msg = str(info.value)
    assert msg.startswith("slide_mask.png: 2 colour(s) are not in the class map 'wsi3'")
    assert "(12, 34, 56): 12 px" in msg and "(1, 2, 3): 1 px" in msg
    assert msg.index("(12, 34, 56)") < msg.index("(1, 2, 3)")  # by count
    assert "13 pixel(s) in all" in msg and "tolerance" in msg


def test_unknown_colours_top_ten_and_total():
    cm = ClassMap.preset("binary")
    rgb = np.zeros((20, 20, 3), np.uint8)
    for i in range(15):  # colour (i+1, 0, 0) on i+1 pixels
        rgb.reshape(-1, 3)[100 + i * 16 : 100 + i * 16 + i + 1] = (i + 1, 0, 0)
    with pytest.raises(MaskError) as info:
        rgb_to_labels(rgb, cm)
    msg = str(info.value)
    assert "15 colour(s)" in msg and f"{sum(range(1, 16))} pixel(s) in all" in msg
    assert "(15, 0, 0): 15 px" in msg and "(6, 0, 0): 6 px" in msg
    assert "(5, 0, 0)" not in msg and "and 5 more" in msg


def test_tolerance_maps_jpeg_noise_exactly():
    cm = ClassMap.preset("biopsy6")
    labels = _random_labels(cm, (64, 72), seed=2)
    rng = np.random.default_rng(2)
    noise = rng.integers(-6, 7, (64, 72, 3))
    noisy = np.clip(labels_to_rgb(labels, cm).astype(int) + noise, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb_to_labels(noisy, cm, tolerance=12), labels)
    lazy = rgb_to_labels(da.from_array(noisy, chunks=(30, 41, 3)), cm, tolerance=12)
    np.testing.assert_array_equal(lazy.compute(), labels)
    check_colors(noisy, cm, tolerance=12)
    with pytest.raises(MaskError, match=r"not in the class map.*none within tolerance 2"):
        rgb_to_labels(noisy, cm, tolerance=2)
    with pytest.raises(MaskError, match="not in the class map"):
        rgb_to_labels(noisy, cm)  # no tolerance unless asked
    with pytest.raises(MaskError, match="tolerance must be"):
        rgb_to_labels(noisy, cm, tolerance=-1)


def test_tolerance_picks_nearest_colour_within_distance():
    cm = ClassMap.preset("wsi3")
    rgb = np.array([[(10, 0, 0), (200, 0, 0), (250, 240, 10), (128, 128, 0)]], np.uint8)
    # (10,0,0) -> black (10); (200,0,0) -> red (55); (250,240,10) -> yellow; (128,128,0) far
    np.testing.assert_array_equal(rgb_to_labels(rgb[:, :3], cm, tolerance=60), [[0, 2, 1]])
    with pytest.raises(MaskError, match=r"\(128, 128, 0\): 1 px"):
        rgb_to_labels(rgb, cm, tolerance=60)
    # a large tolerance (whole colour cube scanned) agrees with brute force
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (1, 4000, 3)).astype(np.uint8)
    pal = np.asarray(cm.colors)
    d2 = ((colours[0, :, None, :].astype(int) - pal[None]) ** 2).sum(-1)
    ok = d2.min(1) <= 150**2
    mapped = rgb_to_labels(colours[:, ok], cm, tolerance=150)
    np.testing.assert_array_equal(mapped[0], d2.argmin(1)[ok])


def test_transparent_and_bad_masks(tmp_path):
    cm = ClassMap.preset("wsi3")
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, :3, 3] = 0
    with pytest.raises(MaskError, match="3 pixel"):
        rgb_to_labels(rgba, cm, source="a.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    with pytest.raises(MaskError, match=r"clear\.png: .*not fully opaque"):
        read_color_mask(tmp_path / "clear.png")
    assert is_color_mask(tmp_path / "clear.png") is None
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(MaskError, match=r"junk\.png: cannot be read"):
        read_color_mask(tmp_path / "junk.png")
    assert is_color_mask(tmp_path / "junk.png") is None
    assert is_color_mask(tmp_path / "missing.png") is None
    with pytest.raises(MaskError, match=r"missing\.png: no such file"):
        read_color_mask(tmp_path / "missing.png")
    with pytest.raises(MaskError, match="expected an \\(H, W, 3\\) colour mask"):
        rgb_to_labels(np.zeros((4, 4, 5), np.uint8), cm)
    with pytest.raises(MaskError, match="0-255"):
        rgb_to_labels(np.full((2, 2, 3), 300, np.uint16), cm)


# -- dask ---------------------------------------------------------------------------------
def test_dask_equals_numpy_on_odd_chunks():
    cm = ClassMap.preset("biopsy6")
    labels = _random_labels(cm, (301, 257), seed=3)
    rgb = labels_to_rgb(labels, cm)
    for chunks in ((64, 100, 3), (37, 53, 1), (301, 19, 2)):
        lazy = rgb_to_labels(da.from_array(rgb, chunks=chunks), cm)
        assert isinstance(lazy, da.Array) and lazy.dtype == np.uint8
        assert lazy.shape == labels.shape
        np.testing.assert_array_equal(lazy.compute(), rgb_to_labels(rgb, cm))
    back = labels_to_rgb(da.from_array(labels, chunks=(50, 61)), cm)
    assert isinstance(back, da.Array)
    np.testing.assert_array_equal(back.compute(), rgb)
    colors, counts = unique_colors(da.from_array(rgb, chunks=(64, 100, 3)))
    colors_np, counts_np = unique_colors(rgb)
    np.testing.assert_array_equal(colors, colors_np)
    np.testing.assert_array_equal(counts, counts_np)
    assert counts.sum() == labels.size
    assert ClassMap.infer(da.from_array(rgb, chunks=(64, 100, 3))) == cm


def test_dask_unknown_colours_lazy_and_check_colors():
    cm = ClassMap.preset("wsi3")
    rgb = labels_to_rgb(_random_labels(cm, (120, 90), seed=4), cm)
    rgb[30:40, 40:50] = (12, 34, 56)  # spans four chunks
    rgb[100, 5] = (200, 100, 50)
    lazy_rgb = da.from_array(rgb, chunks=(35, 45, 3))
    lazy = rgb_to_labels(lazy_rgb, cm, source="m.png")  # building does not raise
    # computing does, naming one chunk (whichever fails first)
    with pytest.raises(
        MaskError,
        match=r"m\.png: .* in rows \d+-\d+, columns \d+-\d+ .*\((12, 34, 56|200, 100, 50)\)",
    ):
        lazy.compute()
    with pytest.raises(MaskError) as info:
        check_colors(lazy_rgb, cm, source="m.png")
    msg = str(info.value)
    assert msg.startswith("m.png: 2 colour(s)")
    assert "(12, 34, 56): 100 px" in msg and "(200, 100, 50): 1 px" in msg
    assert "101 pixel(s) in all" in msg
    check_colors(da.from_array(labels_to_rgb(_random_labels(cm), cm), chunks=20), cm)


def test_check_colors_scans_blocks_separately():
    """Each task of the scan sees one chunk, never the whole mask."""
    cm = ClassMap.preset("binary")
    seen: list[tuple[int, ...]] = []

    def block(b: np.ndarray) -> np.ndarray:
        seen.append(b.shape)
        return b

    rgb = np.zeros((100, 100, 3), np.uint8)
    rgb[90:, 90:] = (7, 7, 7)
    lazy = da.from_array(rgb, chunks=(25, 50, 3)).map_blocks(block, dtype=np.uint8)
    with pytest.raises(MaskError, match=r"\(7, 7, 7\): 100 px"):
        check_colors(lazy, cm)
    assert seen and all(s[0] <= 25 and s[1] <= 50 for s in seen)


def test_labels_out_of_range():
    cm = ClassMap.preset("wsi3")
    with pytest.raises(MaskError, match=r"label values \[3, 7\] have no class.*3 classes"):
        labels_to_rgb(np.array([[0, 3, 7, 1]]), cm)
    with pytest.raises(MaskError, match=r"label values \[-1\]"):
        labels_to_rgb(np.array([[0, -1]]), cm)
    with pytest.raises(MaskError, match=r"label values \[9\]"):
        labels_to_rgb(da.from_array(np.array([[0, 9]]), chunks=1), cm).compute()
    with pytest.raises(MaskError, match="integers"):
        labels_to_rgb(np.zeros((2, 2), np.float32), cm)
    np.testing.assert_array_equal(
        labels_to_rgb(np.array([[True, False]]), PRESETS["binary"]),
        [[(255, 255, 255), (0, 0, 0)]],
    )


def test_is_color_mask_sniffs_presets(tmp_path):
    cm = PRESETS["biopsy6"]
    rgb = labels_to_rgb(_random_labels(cm, (50, 50)), cm)
    Image.fromarray(rgb).save(tmp_path / "b6.png")
    assert is_color_mask(tmp_path / "b6.png") == cm
    assert is_color_mask(tmp_path / "b6.png", max_pixels=100) is None  # too big to sniff
    Image.fromarray(rgb).save(tmp_path / "b6.jpg", quality=95)
    assert is_color_mask(tmp_path / "b6.jpg") is None  # JPEG colours are never exact
    black = np.zeros((20, 20, 3), np.uint8)
    Image.fromarray(black).save(tmp_path / "black.png")
    assert is_color_mask(tmp_path / "black.png") is None  # one colour: cannot tell
    black[5:9, 5:9] = (255, 0, 0)
    Image.fromarray(black).save(tmp_path / "red.png")
    assert is_color_mask(tmp_path / "red.png") == PRESETS["wsi3"]
    black[0, 0] = (255, 0, 1)
    Image.fromarray(black).save(tmp_path / "off.png")
    assert is_color_mask(tmp_path / "off.png") is None
