"""The row-streaming PNG encoder against Pillow's decoder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_slideseg.io.pngstream import PngStreamWriter


@pytest.mark.parametrize("mode", ["L", "RGB", "P"])
def test_bands_decode_identically(tmp_path, mode):
    rng = np.random.default_rng(0)
    h, w = 301, 157
    if mode == "RGB":
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        img = rng.integers(0, 6, (h, w), dtype=np.uint8)
    palette = np.array(
        [[0, 0, 0], [255, 255, 0], [150, 150, 150], [0, 255, 0], [0, 0, 255], [0, 150, 255]]
    )
    path = tmp_path / f"x_{mode}.png"
    with PngStreamWriter(
        path, w, h, mode, palette=palette if mode == "P" else None, text={"k": "v"}
    ) as png:
        for y0 in range(0, h, 64):  # bands that don't divide the height
            png.write_rows(img[y0 : y0 + 64])
    with Image.open(path) as im:
        assert im.mode == mode
        assert im.text.get("k") == "v"
        np.testing.assert_array_equal(np.asarray(im), img)
        if mode == "P":
            rgb = np.asarray(im.convert("RGB"))
            np.testing.assert_array_equal(rgb, palette.astype(np.uint8)[img])


def test_16bit_grey(tmp_path):
    img = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50
    with PngStreamWriter(tmp_path / "g.png", 30, 40, "L", bit_depth=16) as png:
        png.write_rows(img)
    import imagecodecs

    np.testing.assert_array_equal(imagecodecs.imread(tmp_path / "g.png"), img)


def test_incomplete_or_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "part.png"
    png = PngStreamWriter(path, 10, 10, "L")
    png.write_rows(np.zeros((5, 10), np.uint8))
    with pytest.raises(ValueError, match="5 of 10 rows"):
        png.close()
    with pytest.raises(RuntimeError), PngStreamWriter(path, 10, 10, "L") as png2:
        png2.write_rows(np.zeros((5, 10), np.uint8))
        raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(ValueError, match="band shape"),
        PngStreamWriter(path, 10, 10, "RGB") as png3,
    ):
        png3.write_rows(np.zeros((5, 11, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
