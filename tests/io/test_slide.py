"""Core tier: open_slide on real and generated slides, no Qt, no napari."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_slideseg.io import SlideError, SlideNotFoundError, SlideTooLargeError, open_slide
from napari_slideseg.io import pyramid as pyr
from napari_slideseg.io import slide as slide_mod
from napari_slideseg.io.slide import open_slide_steps
from napari_slideseg.io.slide import raster as slide_raster
from napari_slideseg.progress import drain


# -- real slides ------------------------------------------------------------------
def test_tcga_svs_two_levels_jpeg2000(tcga_svs):
    s = open_slide(tcga_svs)
    assert s.backend == "tifffile"
    assert s.n_levels == 2
    assert s.dimensions == ((4443, 3567), (2221, 1783))
    assert [lv.chunksize for lv in s.levels] == [(256, 256, 3), (256, 256, 3)]
    assert s.tile_size == (256, 256)
    assert s.mpp is None
    assert s.metadata["compression"].startswith("APERIO_JP2000")
    # Lazy region read equals tifffile's own decode of the same pixels.
    with tifffile.TiffFile(tcga_svs) as tif:
        ref = tif.series[0].levels[0].asarray()[1000:1300, 2000:2517]
    np.testing.assert_array_equal(s.read_region(0, 1000, 2000, 300, 517), ref)
    assert s.downsamples[0] == 1.0 and s.downsamples[1] == pytest.approx(2.0, abs=0.01)


def test_cmu_svs_one_level_with_mpp(cmu_svs):
    s = open_slide(cmu_svs)
    assert s.n_levels == 1
    assert s.levels[0].shape == (2967, 2220, 3)
    assert s.levels[0].chunksize == (240, 240, 3)  # native JPEG tiles
    assert s.mpp == pytest.approx((0.499, 0.499))
    assert s.metadata["mpp_source"] == "svs:MPP"


def test_ome_tiff_three_levels(ome_pyramid):
    s = open_slide(ome_pyramid)
    assert s.n_levels == 3
    assert [lv.shape[:2] for lv in s.levels] == [(2967, 2220), (1483, 1110), (741, 555)]
    assert s.mpp == pytest.approx((0.499, 0.499))
    assert s.level_mpp(2) == pytest.approx((0.499 * 2967 / 741, 0.499 * 2220 / 555))
    assert s.level_for_mpp(1.0) == 1
    assert s.level_for_mpp(0.3) == 0


def test_slide_is_frozen_and_metadata_jsonable(ome_pyramid):
    s = open_slide(ome_pyramid)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mpp = (1.0, 1.0)  # type: ignore[misc]
    meta = s.metadata
    json.dumps(meta)
    json.dumps(s.info())
    meta["path"] = "changed"
    assert s.metadata["path"] != "changed"  # a copy each time
    assert all(isinstance(lv, da.Array) for lv in s.levels)


def test_generated_big_pyramid_is_lazy(big_pyramid):
    s = open_slide(big_pyramid)
    assert s.levels[0].shape == (20000, 24000, 3)
    assert s.n_levels == 6
    assert s.levels[0].chunksize == (512, 512, 3)
    assert s.mpp == pytest.approx((0.25, 0.25))
    # Find tissue on the smallest level, then read that place at level 0.
    small = s.levels[-1].compute()
    ys, xs = np.nonzero(small.min(-1) < 200)
    fy, fx = s.level_factors(s.n_levels - 1)
    y, x = int(np.median(ys) * fy), int(np.median(xs) * fx)
    region = s.read_region(0, y, x, 1024, 1024)
    assert region.shape == (1024, 1024, 3) and region.dtype == np.uint8
    assert region.std() > 10


# -- zarr -------------------------------------------------------------------------
def test_ome_zarr_roundtrip(tmp_path, ome_pyramid):
    src = open_slide(ome_pyramid)
    out = tmp_path / "copy.ome.zarr"
    drain(pyr.build_pyramid_cache(src.levels[0], out, name="copy", mpp=src.mpp, lowest_max=750))
    z = open_slide(out)
    assert z.backend == "zarr"
    assert z.metadata["format"] == "ome-zarr"
    assert z.mpp == pytest.approx((0.499, 0.499))
    assert [lv.shape[:2] for lv in z.levels] == [(2967, 2220), (1483, 1110), (741, 555)]
    np.testing.assert_array_equal(
        z.read_region(0, 5, 7, 100, 90), src.read_region(0, 5, 7, 100, 90)
    )
    # 2x2 box mean of level 0 (truncated).
    blk = src.read_region(0, 0, 0, 2, 2).astype(int).reshape(4, 3).sum(0) // 4
    np.testing.assert_array_equal(z.read_region(1, 0, 0, 1, 1)[0, 0], blk)


def test_plain_zarr_array_and_group(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    zarr.create_array(str(tmp_path / "a.zarr"), data=arr, chunks=(64, 64, 3))
    s = open_slide(tmp_path / "a.zarr")
    assert s.levels[0].shape == (300, 200, 3)
    assert s.levels[0].chunksize == (64, 64, 3)
    np.testing.assert_array_equal(s.read_region(0, 0, 0, 300, 200), arr)

    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("big", data=arr[None].repeat(1, 0)[0])
    g.create_array("small", data=arr[::2, ::2])
    s2 = open_slide(tmp_path / "g.zarr")
    assert [lv.shape for lv in s2.levels] == [(300, 200, 3), (150, 100, 3)]


# -- non-pyramidal inputs go through the cache ------------------------------------------
def test_single_level_tiled_tiff_gets_cached_reductions(tmp_path, big_pyramid, monkeypatch):
    src = open_slide(big_pyramid)
    data = src.levels[2].compute()  # 5000 x 6000
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, data, tile=(256, 256), compression="zlib", photometric="rgb")
    events = []
    s = open_slide(path, progress=events.append)
    assert s.backend == "tifffile"
    assert s.levels[0].shape == (5000, 6000, 3)
    assert [lv.shape[:2] for lv in s.levels] == [
        (5000, 6000),
        (2500, 3000),
        (1250, 1500),
        (625, 750),
    ]
    assert events and events[-1].done == events[-1].total
    assert "cache" in s.metadata
    # Second open: served from the cache, nothing rebuilt.
    events2 = []
    s2 = open_slide(path, progress=events2.append)
    assert events2 == []
    np.testing.assert_array_equal(s2.read_region(3, 0, 0, 50, 50), s.read_region(3, 0, 0, 50, 50))


def _write_png_rows(path: Path, height: int, width: int) -> None:
    """Stream an RGB PNG row by row (never holds the image)."""
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp = zlib.compressobj(1)
    base = np.arange(width, dtype=np.int64)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        buf = bytearray()
        for y in range(height):
            row = np.empty((width, 3), np.uint8)
            row[:, 0] = (base + y) % 256
            row[:, 1] = y % 251
            row[:, 2] = 200
            buf += b"\x00" + row.tobytes()
            if len(buf) > 8 << 20:
                fh.write(chunk(b"IDAT", comp.compress(bytes(buf))))
                buf.clear()
        fh.write(chunk(b"IDAT", comp.compress(bytes(buf)) + comp.flush()))
        fh.write(chunk(b"IEND", b""))


@pytest.mark.slow
def test_20k_png_opens_via_cache_without_touching_pil_limit(tmp_path):
    path = tmp_path / "huge.png"
    _write_png_rows(path, 20000, 20000)
    default = Image.MAX_IMAGE_PIXELS
    # Pillow on its own refuses this file (the problem users hit).
    with pytest.raises(Image.DecompressionBombError), Image.open(path):
        pass
    events = []
    s = open_slide(path, progress=events.append)
    assert default == Image.MAX_IMAGE_PIXELS
    assert s.levels[0].shape == (20000, 20000, 3)
    assert s.n_levels == 6 and max(s.levels[-1].shape[:2]) <= 1024
    assert {e.stage for e in events} >= {"decode", "level 0", "level 5"}
    region = s.read_region(0, 12345, 300, 4, 5)
    exp = np.empty((4, 5, 3), np.uint8)
    ys = np.arange(12345, 12349)[:, None]
    exp[..., 0] = (np.arange(300, 305)[None, :] + ys) % 256
    exp[..., 1] = ys % 251
    exp[..., 2] = 200
    np.testing.assert_array_equal(region, exp)
    # The cache is reused: no decode on the second open.
    events2 = []
    open_slide(path, progress=events2.append)
    assert events2 == []
    assert default == Image.MAX_IMAGE_PIXELS


def test_pil_limit_is_scoped():
    default = Image.MAX_IMAGE_PIXELS
    with slide_mod.pil_pixel_limit(default * 10):
        assert default * 10 < Image.MAX_IMAGE_PIXELS
    assert default == Image.MAX_IMAGE_PIXELS


def test_refuses_raster_too_big_for_memory(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    _write_png_rows(path, 5000, 4000)
    monkeypatch.setattr(slide_raster, "_available_memory", lambda: 10 << 20)
    with pytest.raises(SlideTooLargeError, match=r"big\.png: decoding this 4000 x 5000 PNG needs"):
        open_slide(path)
    cache = Path(os.environ["SLIDESEG_CACHE_DIR"])
    assert not cache.exists() or not any(cache.iterdir())


def test_cancelled_cache_build_leaves_nothing(tmp_path):
    path = tmp_path / "big.png"
    _write_png_rows(path, 5000, 4000)
    gen = open_slide_steps(path)
    for i, _event in enumerate(gen):
        if i == 5:
            break
    gen.close()  # what a Cancel button does
    cache = Path(os.environ["SLIDESEG_CACHE_DIR"])
    assert not cache.exists() or not list(cache.rglob("*"))


# -- pixel types --------------------------------------------------------------------
def test_rgba_opaque_becomes_rgb_and_transparent_stays(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    tifffile.imwrite(tmp_path / "opaque.tif", opaque, tile=(128, 128), photometric="rgb")
    s = open_slide(tmp_path / "opaque.tif")
    assert s.levels[0].shape == (300, 400, 3)
    np.testing.assert_array_equal(s.read_region(0, 0, 0, 300, 400), rgb)
    see_through = opaque.copy()
    see_through[:10, :10, 3] = 0
    tifffile.imwrite(tmp_path / "alpha.tif", see_through, tile=(128, 128), photometric="rgb")
    assert open_slide(tmp_path / "alpha.tif").levels[0].shape == (300, 400, 4)
    Image.fromarray(opaque).save(tmp_path / "opaque.png")
    assert open_slide(tmp_path / "opaque.png").levels[0].shape == (300, 400, 3)


def test_grey_and_16bit(tmp_path):
    grey16 = (np.arange(256 * 300, dtype=np.uint16).reshape(256, 300) * 7) % 4096
    tifffile.imwrite(tmp_path / "g16.tif", grey16, tile=(128, 128), photometric="minisblack")
    s = open_slide(tmp_path / "g16.tif")
    assert s.levels[0].shape == (256, 300) and s.dtype == np.uint16
    assert not s.is_rgb and s.channels == 1
    assert s.metadata["display_range"] == [0.0, 65535.0]
    np.testing.assert_array_equal(s.read_region(0, 0, 0, 256, 300), grey16)
    rgb16 = np.stack([grey16, grey16 // 2, grey16 // 3], -1)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, tile=(128, 128), photometric="rgb")
    s16 = open_slide(tmp_path / "rgb16.tif")
    assert s16.is_rgb and s16.dtype == np.uint16
    np.testing.assert_array_equal(s16.read_region(0, 10, 10, 5, 5), rgb16[10:15, 10:15])


# -- errors ---------------------------------------------------------------------------
def test_missing_path():
    with pytest.raises(SlideNotFoundError, match=r"nope\.svs: no such file"):
        open_slide("/definitely/not/here/nope.svs")


def test_empty_file(tmp_path):
    (tmp_path / "empty.svs").write_bytes(b"")
    with pytest.raises(SlideError, match=r"empty\.svs: the file is empty"):
        open_slide(tmp_path / "empty.svs")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.svs").write_text("patient notes, not a slide\n" * 10)
    with pytest.raises(SlideError, match=r"notes\.svs: is not a supported slide image"):
        open_slide(tmp_path / "notes.svs")


def test_truncated_tiff(tmp_path, tcga_svs):
    # Tiles cut off, directory intact (tifffile writes the IFD first).
    arr = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "whole.tif", arr, tile=(256, 256), photometric="rgb")
    data = (tmp_path / "whole.tif").read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideError, match=r"cut\.tif: is truncated: \d+ of 16 tiles"):
        open_slide(cut)
    # Directory cut off (Aperio writes it at the end).
    svs = tcga_svs.read_bytes()
    half = tmp_path / "half.svs"
    half.write_bytes(svs[: len(svs) // 2])
    with pytest.raises(SlideError, match=r"half\.svs: .*truncated or corrupt"):
        open_slide(half)
    header_only = tmp_path / "header.svs"
    header_only.write_bytes(data[:64])
    with pytest.raises(SlideError, match=r"header\.svs: is not a readable TIFF"):
        open_slide(header_only)


def test_corrupt_tile_data_names_file(tmp_path, ome_pyramid):
    bad = tmp_path / "corrupt.ome.tif"
    shutil.copy(ome_pyramid, bad)
    with tifffile.TiffFile(bad) as tif:
        page = tif.series[0].levels[0].keyframe
        off, n = page.dataoffsets[3], page.databytecounts[3]
    raw = bytearray(bad.read_bytes())
    raw[off : off + n] = b"\x00" * n  # destroy one level-0 tile
    bad.write_bytes(bytes(raw))
    s = open_slide(bad)  # the header and smallest level are fine
    with pytest.raises(SlideError, match=r"corrupt\.ome\.tif: reading pixels failed"):
        s.read_region(0, 0, 0, 256, 1024)


def test_unsupported_compression(tmp_path):
    arr = np.zeros((64, 64, 3), np.uint8)
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, arr, tile=(32, 32), photometric="rgb")
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["Compression"]
        pos = tag.valueoffset
    struct.pack_into("<H", raw, pos, 60123)  # a compression no codec knows
    path.write_bytes(bytes(raw))
    with pytest.raises(SlideError, match=r"odd\.tif: uses TIFF compression .*60123"):
        open_slide(path)


def test_slide_from_arrays_takes_one_mpp_and_refuses_a_bad_one():
    from napari_slideseg.io.slide import slide_from_arrays

    img = np.zeros((64, 64, 3), np.uint8)
    assert slide_from_arrays([img], mpp=0.5).mpp == (0.5, 0.5)
    assert slide_from_arrays([img], mpp=(0.25, 0.5)).mpp == (0.25, 0.5)
    with pytest.raises(SlideError, match="plausible"):
        slide_from_arrays([img], name="tiny", mpp=0)
