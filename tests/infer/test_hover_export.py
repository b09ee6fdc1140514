"""A HoVer prediction on pyramid level 1 exports in level-0 pixels of the slide.

The slide's level 1 holds a real MoNuSeg nucleus map encoded as NP/H/V
pixels (level 0 is the same, twice as large); a 'model' reads the maps back,
so the engine's tiling, post-processing, tables and exports run for real.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import zarr
from PIL import Image

from napari_slideseg.cli import main
from napari_slideseg.infer import InferConfig, predict_slide
from napari_slideseg.infer.hover import read_instance_table
from napari_slideseg.io.slide import slide_from_arrays

MPP0 = 0.25  # level-0 µm per pixel of the test slide


@pytest.fixture(scope="module")
def level1_hover(tmp_path_factory, data_dir, maps_model, encode_maps):
    inst = np.asarray(
        Image.open(data_dir / "monuseg" / "inst_maps" / "TCGA-KB-A93J-01A-01-TS1_inst.png")
    ).astype(np.int32)[:384, :512]
    rgb = encode_maps(inst)
    level0 = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)
    slide = slide_from_arrays([level0, rgb], name="maps", mpp=(MPP0, MPP0))
    cfg = InferConfig(
        level=1, zoom=1.0, tile=256, overlap=32, block=256, device="cpu", batch_size=8
    )
    out = predict_slide(slide, [maps_model], tmp_path_factory.mktemp("h") / "h.zarr", cfg)
    inst1 = zarr.open_group(str(out), mode="r")["instances"][:].astype(np.int64)
    return out, inst1, np.repeat(np.repeat(inst1, 2, axis=0), 2, axis=1)


def _burn(features, shape):
    """Rasterise pixel-edge polygons by pixel centres (even-odd: holes cut out), by id."""
    out = np.zeros(shape, np.int64)
    for f in features:
        g = f["geometry"]
        for rings in [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]:
            acc = np.zeros((shape[0], shape[1] + 1), np.int32)
            for ring in rings:
                p = np.asarray(ring, float)
                for (xa, ya), (xb, yb) in itertools.pairwise(p):
                    r0, r1 = int(np.ceil(min(ya, yb) - 0.5)), int(np.ceil(max(ya, yb) - 0.5))
                    rows = np.arange(max(r0, 0), min(r1, shape[0]))
                    if len(rows):
                        x = xa + (rows + 0.5 - ya) / (yb - ya) * (xb - xa)
                        np.add.at(
                            acc, (rows, np.clip(np.ceil(x - 0.5).astype(int), 0, shape[1])), 1
                        )
            out[np.cumsum(acc, 1)[:, : shape[1]] % 2 == 1] = f["properties"]["id"]
    return out


def test_level1_nuclei_geojson_lands_on_level0(tmp_path, level1_hover):
    pred, inst1, truth0 = level1_hover
    out = tmp_path / "nuclei.geojson"
    assert main(["export", str(pred), "--instances", "--to", str(out), "--quiet"]) == 0
    fc = json.loads(out.read_text())
    feats = fc["features"]
    assert len(feats) == len(np.unique(inst1)) - 1 > 50
    assert fc["slideseg"]["coordinates"]["source_level"] == 1
    xs = [p[0] for f in feats for p in f["geometry"]["coordinates"][0]]
    assert max(xs) > 1.9 * inst1.shape[1]  # level-0 pixels, not level-1
    back = _burn(feats, truth0.shape)
    # ids are block_index * stride + k (up to 2**32): count over compact indices
    ids, t = np.unique(truth0, return_inverse=True)
    b = np.searchsorted(ids, back)
    assert (ids[b] == back).all()
    n = len(ids)
    inter = np.bincount(t.ravel()[(b == t).ravel()], minlength=n)[1:]
    area_t, area_b = (
        np.bincount(t.ravel(), minlength=n)[1:],
        np.bincount(b.ravel(), minlength=n)[1:],
    )
    iou = inter / (area_t + area_b - inter)
    assert iou.min() >= 0.95, np.sort(iou)[:5]
    f = next(f for f in feats if f["properties"]["id"] == int(ids[1]))
    assert f["properties"]["area_um2"] == pytest.approx(f["properties"]["area_px"] * MPP0**2)
    assert abs(f["properties"]["area_px"] - area_t[0]) <= 0.1 * area_t[0]  # level-0 pixels


def test_level1_nucleus_table_in_level0_pixels_and_micrometres(level1_hover):
    pred, _inst1, truth0 = level1_hover
    tab = read_instance_table(pred)
    from scipy import ndimage

    uniq, compact = np.unique(truth0, return_inverse=True)
    compact = compact.reshape(truth0.shape)
    present = np.isin(tab["id"], uniq)  # a nucleus may have lost all pixels to a neighbour
    k = np.searchsorted(uniq, tab["id"][present])
    cy, cx = np.asarray(ndimage.center_of_mass(compact > 0, compact, k)).T
    # level-0 indices; the table's centroid was taken before the smallest-id-wins merge
    np.testing.assert_allclose(tab["centroid_y"][present], cy, atol=1.0)
    np.testing.assert_allclose(tab["centroid_x"][present], cx, atol=1.0)
    assert np.median(np.abs(tab["centroid_y"][present] - cy)) < 0.02
    assert np.median(np.abs(tab["centroid_x"][present] - cx)) < 0.02
    sl = ndimage.find_objects(compact)
    boxes = np.asarray([[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in sl])[k - 1]
    got = np.stack([tab[c][present] for c in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")], 1)
    assert (np.abs(got - boxes) == 0).all(1).mean() > 0.9
    np.testing.assert_allclose(tab["centroid_y_um"], tab["centroid_y"] * MPP0, atol=1e-3)
    np.testing.assert_allclose(tab["centroid_x_um"], tab["centroid_x"] * MPP0, atol=1e-3)
    np.testing.assert_allclose(tab["area_um2"], tab["area"] * MPP0**2, atol=1e-3)


def test_level1_nucleus_rle_states_level_and_slide_size(tmp_path, level1_hover):
    from napari_slideseg.io.masks import read_labels

    pred, inst1, _ = level1_hover
    out = tmp_path / "nuclei.csv"
    assert main(["export", str(pred), "--instances", "--to", str(out), "--quiet"]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header[-6:] == ["level", "slide_height", "slide_width", "mpp_y", "mpp_x", "rle"]
    back, _, info = read_labels(out)
    np.testing.assert_array_equal(back, inst1)
    assert info["level"] == 1 and info["slide_shape"] == (768, 1024)
    assert info["mpp"] == pytest.approx((2 * MPP0, 2 * MPP0))


def test_level1_nucleus_layers_sit_on_the_slide(level1_hover):
    """Instance/type layers at level-1 scale, centroids in level-0 pixels at the slide's scale."""
    from napari_slideseg.layers import centroid_points, prediction_layers

    pred, *_ = level1_hover
    types, nuclei = prediction_layers(pred)
    for _data, kwargs, _ in (types, nuclei):
        assert kwargs["scale"] == pytest.approx((2 * MPP0, 2 * MPP0))
        assert kwargs["units"] == ("micrometer", "micrometer")
        assert kwargs["metadata"]["slideseg"]["placement"]["level"] == 1
    tab = read_instance_table(pred)
    # given the prediction layer's scale (what the widget passes) or nothing: the same points
    for kw in ({"scale": nuclei[1]["scale"]}, {}, {"base_scale": (MPP0, MPP0)}):
        pts, pkw, kind = centroid_points(pred, features=nuclei[1]["features"], **kw)
        assert kind == "points"
        np.testing.assert_allclose(pts[:, 0], tab["centroid_y"], atol=0.5)  # nearest pixel
        assert pkw["scale"] == pytest.approx((MPP0, MPP0))
        assert pkw["units"] == ("micrometer", "micrometer")
