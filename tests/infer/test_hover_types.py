"""Nucleus types of the bundled HoVer model on a real tile of the sample slide.

A nucleus is never typed background: its type is the non-background type
with the highest NC probability averaged over its pixels, and ``type_prob``
is that mean renormalised over the non-background types. The saved maps
(``save_probs``) are the maps the post-processing saw, so every nucleus's
type can be recomputed from them.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import zarr

from napari_slideseg.infer import InferConfig, predict_slide
from napari_slideseg.infer.hover import read_instance_table

REGION = (2500, 600, 2756, 856)  # level-0 (y0, x0, y1, x1) of the sample slide


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """``(root, table, instances, labels, maps)`` of the bundled model over REGION."""
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.models.bundled import bundled_models
    from napari_slideseg.samples import sample_slide_path

    out = tmp_path_factory.mktemp("types") / "nuclei.zarr"
    cfg = InferConfig(region=REGION, block=256, instance_halo=32, device="cpu", save_probs=True)
    predict_slide(open_slide(sample_slide_path()), [bundled_models()["hover-nuclei"]], out, cfg)
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs["slideseg_inference"]["config"]["zoom"] == 2  # "auto": 0.5 -> 0.25 µm/px
    y0, x0, y1, x1 = REGION
    inst = np.asarray(root["instances"][y0:y1, x0:x1]).astype(np.int64)
    labels = np.asarray(root["labels"][y0:y1, x0:x1])
    maps = np.asarray(root["maps"][:, y0:y1, x0:x1]).astype(np.float64)
    return out, read_instance_table(out), inst, labels, maps


def _type_of_pixels(tab, inst):
    """The table's type of each instance pixel (-1 where the id is not in the table)."""
    fg = inst > 0
    ids, inv = np.unique(inst[fg], return_inverse=True)
    by_id = dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
    return fg, np.asarray([by_id.get(int(i), -1) for i in ids])[inv]


def test_no_nucleus_is_background_and_the_label_image_agrees(typed):
    out, tab, inst, labels, maps = typed
    assert len(tab["id"]) >= 30
    assert (tab["type"] >= 1).all() and (tab["type"] < maps.shape[0] - 3).all()
    assert set(tab["type_name"]) <= {"other", "inflammatory", "epithelial", "spindle-shaped"}
    fg, pixel_type = _type_of_pixels(tab, inst)
    assert (pixel_type >= 1).all()
    np.testing.assert_array_equal(labels[fg], pixel_type)
    assert not labels[~fg].any()
    # the whole output (the halo's nuclei too), not only the region
    root = zarr.open_group(str(out), mode="r")
    allfg, all_types = _type_of_pixels(tab, np.asarray(root["instances"][:]).astype(np.int64))
    np.testing.assert_array_equal(np.asarray(root["labels"][:])[allfg], all_types)
    # a vote share of the in-nucleus pixels was 1.0 for most nuclei; a mean probability is not
    assert np.mean(tab["type_prob"] >= 0.999) < 0.2
    assert (tab["type_prob"] >= 1 / 4 - 1e-4).all() and (tab["type_prob"] <= 1).all()


def test_type_is_the_argmax_of_the_mean_nc_probabilities(typed):
    """Recomputed from the saved maps: exactly where the nucleus lies in its block's core.

    The region is four blocks of the level's 256 px grid; a block's saved
    maps are the ones its post-processing saw, so a nucleus inside its own
    block's core is recomputed to float16 precision. A nucleus reaching into
    a neighbour's core has pixels whose saved maps the neighbour predicted
    (another context): close, not equal.
    """
    out, tab, inst, _labels, maps = typed
    y0, x0, y1, x1 = REGION
    blocks = zarr.open_group(str(out), mode="r").attrs["slideseg_inference"]["blocks"]
    nc = maps[3:]  # channel 0 of the NC maps: background
    exact = near = 0
    for r, i in enumerate(tab["id"]):
        box = [int(tab[k][r]) for k in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")]
        if not (box[0] >= y0 and box[1] >= x0 and box[2] <= y1 and box[3] <= x1):
            continue  # reaches into the region's halo, where no maps are saved
        m = inst == i
        assert m.sum() == tab["area"][r]
        mean = nc[:, m].mean(1)
        t, p = int(tab["type"][r]), float(tab["type_prob"][r])
        top2 = np.sort(mean[1:])[-2:]
        cy, cx = tab["centroid_y"][r], tab["centroid_x"][r]
        own = next(b for b in blocks if b[0] <= cy < b[2] and b[1] <= cx < b[3])
        inside = box[0] >= own[0] and box[1] >= own[1] and box[2] <= own[2] and box[3] <= own[3]
        tol = 1e-3 if inside else 0.03
        if top2[1] - top2[0] > tol:  # not a tie within the saved maps' precision
            assert t == 1 + int(np.argmax(mean[1:])), (i, mean)
        assert p == pytest.approx(mean[t] / mean[1:].sum(), abs=tol), (i, mean)
        exact += inside
        near += not inside
    assert exact >= 0.5 * len(tab["id"]) and exact + near >= 0.8 * len(tab["id"])


def test_a_nucleus_whose_pixels_mostly_agree_gets_their_type(typed):
    """Where most of a nucleus's pixels (70 %+) have the same NC argmax over the
    non-background types, its mean-probability type is that type. (Were every pixel to
    agree, it would follow exactly: a sum of values each largest for one type is
    largest for it; this model's type head is rarely that sure.)"""
    _out, tab, inst, _labels, maps = typed
    pixel_argmax = 1 + maps[4:].argmax(0)
    by_id = dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
    clear = agree = 0
    for i in np.unique(inst[inst > 0]):
        votes = np.bincount(pixel_argmax[inst == i], minlength=maps.shape[0] - 3)
        if votes.max() >= 0.7 * votes.sum() and int(i) in by_id:
            clear += 1
            agree += by_id[int(i)] == votes.argmax()
    assert clear >= 10
    assert agree >= 0.95 * clear, (agree, clear)


def test_centroid_points_have_type_colours_and_tooltips_plain_values(typed):
    from napari.layers import Labels

    from napari_slideseg.io.palette import ClassMap
    from napari_slideseg.layers import centroid_points, instance_layer

    out, tab, inst, _labels, _maps = typed
    data, kwargs, _ = instance_layer(out)
    feats = kwargs["features"]
    pts, pkw, _ = centroid_points(out, features=feats)
    cm = ClassMap.from_dict(zarr.open_group(str(out), mode="r").attrs["slideseg"]["classmap"])
    colours = np.asarray(cm.colors, np.float32)[feats["type"].to_numpy()] / 255
    np.testing.assert_allclose(pkw["face_color"][:, :3], colours)
    assert (pkw["face_color"][:, :3].sum(1) > 0).all()  # never black
    np.testing.assert_allclose(pts[:, 0], tab["centroid_y"], atol=0.5)
    layer = Labels(data, **kwargs)
    y0, x0 = REGION[:2]
    r = int(np.argmax(tab["area"]))
    ys, xs = np.nonzero(inst == tab["id"][r])
    # the layer may show a coarser level (stride-sampled: level f holds level-0 pixels
    # (f i, f j)): hover a pixel of the nucleus that every level holds
    f = 2 ** (len(data) - 1)
    k = np.flatnonzero(((ys + y0) % f == 0) & ((xs + x0) % f == 0))[0]
    shown = layer._get_properties((ys[k] + y0, xs[k] + x0))
    assert f"id: {tab['id'][r]}" in shown and f"type_name: {tab['type_name'][r]}" in shown
    assert f"area: {tab['area'][r]}" in shown
    assert f"type_prob: {round(float(tab['type_prob'][r]), 2):g}" in shown


def test_columnar_nucleus_export_writes_the_per_object_features(typed, tmp_path):
    """The HoVer export (table read as columns) = per-nucleus dicts through the writer, byte for byte."""
    import dask.array as da

    from napari_slideseg.infer.hover import export_instances_steps
    from napari_slideseg.io.export import write_geojson
    from napari_slideseg.io.palette import ClassMap
    from napari_slideseg.io.placement import Placement
    from napari_slideseg.progress import drain

    out, tab, *_ = typed
    new = drain(export_instances_steps(out, tmp_path / "new.geojson"))
    root = zarr.open_group(str(out), mode="r")
    labels = da.from_zarr(root["instances"])
    classmap = ClassMap.from_dict(root.attrs["slideseg"]["classmap"])
    props = {
        int(i): {"type_probability": float(p), "area_px": int(a)}
        for i, p, a in zip(tab["id"], tab["type_prob"], tab["area"], strict=True)
    }
    for i, v in zip(tab["id"], tab["area_um2"], strict=True):
        if np.isfinite(v):
            props[int(i)]["area_um2"] = float(v)
    old = write_geojson(
        tmp_path / "old.geojson",
        labels,
        classmap=classmap,
        instance_classes=dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True)),
        properties=props,
        object_type="detection",
        placement=Placement.from_attrs(dict(root.attrs)),
    )
    assert new.read_bytes() == old.read_bytes()
    feats = json.loads(new.read_text())["features"]
    assert len(feats) >= 30
    p = feats[0]["properties"]
    assert list(p)[:4] == ["objectType", "id", "classification", "class_index"]
    assert set(tab["type_name"]) >= {f["properties"]["classification"]["name"] for f in feats}
    # the RLE CSV's class of each nucleus is its table type (ids looked up in the columns)
    rle = drain(export_instances_steps(out, tmp_path / "n.csv", what="rle"))
    with open(rle, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_id = dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
    assert rows and all(int(r["class_index"]) == by_id[int(r["instance_id"])] for r in rows)
