"""The block-streamed GeoJSON instance export against a straightforward whole-array reference."""

from __future__ import annotations

import gzip
import json

import dask.array as da
import numpy as np
import pytest

from napari_slideseg.io.export import mask_polygons, write_geojson
from napari_slideseg.io.palette import ClassMap


def _nuclei() -> np.ndarray:
    """Discs on a grid straddling 16-pixel blocks, a ring with a hole, touching and split ids."""
    inst = np.zeros((70, 90), np.uint32)
    yy, xx = np.mgrid[:70, :90]
    k = 1
    for cy in range(6, 70, 13):
        for cx in range(7, 90, 14):
            inst[(yy - cy) ** 2 + (xx - cx) ** 2 <= 20] = k
            k += 1
    inst[30:46, 40:58] = 100  # crosses block borders both ways...
    inst[35:41, 46:52] = 0  # ...with a hole
    inst[2:9, 60:66] = 101  # touching 102 (and a disc)
    inst[2:9, 66:71] = 102
    inst[60:64, 2:5] = 103  # one id in two far-apart parts (a MultiPolygon)
    inst[60:64, 80:85] = 103
    inst[47, 31] = 104  # one pixel on a block corner
    return inst


def _reference(inst: np.ndarray, scale: tuple[float, float]) -> dict[int, list]:
    """Each id's polygons from a crop of the whole array, in level-0 coordinates."""
    sy, sx = scale
    ref = {}
    for lid in np.unique(inst)[1:]:
        ys, xs = np.nonzero(inst == lid)
        y0, x0 = ys.min(), xs.min()
        mask = np.pad(inst[y0 : ys.max() + 1, x0 : xs.max() + 1] == lid, 1)
        ref[int(lid)] = [
            [[[(x + x0 - 1) * sx, (y + y0 - 1) * sy] for x, y in ring] for ring in poly]
            for poly in mask_polygons(mask)
        ]
    return ref


def _area(poly: list) -> float:
    """Pixels inside a polygon's rings: the outer ring's area less its holes'."""
    tot = 0.0
    for i, ring in enumerate(poly):
        r = np.asarray(ring, float)
        a = abs(np.dot(r[:-1, 0], r[1:, 1]) - np.dot(r[1:, 0], r[:-1, 1])) / 2
        tot += a if i == 0 else -a
    return tot


@pytest.mark.parametrize("block", [16, 23, 2048])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (4.000123, 3.5)])
def test_streamed_export_matches_whole_array_reference(tmp_path, block, scale):
    inst = _nuclei()
    ids = [int(i) for i in np.unique(inst)[1:]]
    cm = ClassMap(("background", "tumour", "immune"), ((0, 0, 0), (255, 0, 0), (0, 0, 255)))
    classes = {i: i % 3 for i in ids}
    props = {i: {"type_probability": i / 128, "area_px": int((inst == i).sum())} for i in ids}
    out = write_geojson(
        tmp_path / "n.geojson.gz",
        da.from_array(inst, chunks=20),
        classmap=cm,
        instance_classes=classes,
        properties=props,
        object_type="detection",
        scale=scale,
        block=block,
    )
    with gzip.open(out, "rt") as fh:
        fc = json.load(fh)
    feats = fc["features"]
    got = [f["properties"]["id"] for f in feats]
    assert sorted(got) == ids  # every object exactly once
    ref = _reference(inst, scale)
    for f in feats:
        i = f["properties"]["id"]
        geom = f["geometry"]
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        assert geom["type"] == ("MultiPolygon" if i == 103 else "Polygon"), i
        np.testing.assert_allclose(
            [p for poly in polys for ring in poly for p in ring],
            [p for poly in ref[i] for ring in poly for p in ring],
            atol=1e-3,
        )
        pixels = int((inst == i).sum()) * scale[0] * scale[1]
        assert sum(_area(p) for p in polys) == pytest.approx(
            pixels, abs=0.5
        )  # coordinates to 1/1000 px
        assert f["id"] == str(i)
        p = f["properties"]
        assert p["objectType"] == "detection" and p["class_index"] == i % 3
        assert p["classification"] == {"name": cm.names[i % 3], "color": list(cm.colors[i % 3])}
        assert p["type_probability"] == props[i]["type_probability"]
        assert p["area_px"] == props[i]["area_px"]
    ring_100 = next(f for f in feats if f["properties"]["id"] == 100)["geometry"]["coordinates"]
    assert len(ring_100) == 2  # outer ring and the hole


def test_streamed_export_without_properties_is_compact_valid_json(tmp_path):
    inst = _nuclei()
    out = write_geojson(tmp_path / "n.geojson", inst, block=16)
    text = out.read_text()
    fc = json.loads(text)
    assert len(fc["features"]) == len(np.unique(inst)) - 1
    f = fc["features"][0]
    assert f["properties"] == {"objectType": "annotation", "id": f["properties"]["id"]}
    assert text.count("\n") == len(fc["features"]) + 2  # one feature per line
    assert all(isinstance(v, int) for p in f["geometry"]["coordinates"][0] for v in p)


def test_columnar_properties_write_the_lines_of_the_per_object_dicts(tmp_path):
    """ObjectColumns: same bytes as ``{id: class}`` + ``{id: {name: value}}`` dicts.

    Ids in any order and repeated (the last row counts, as a dict's update),
    ids of the map missing from the table and table ids missing from the
    map, classes outside the class map, NaN written ``null`` or (optional
    columns) left out, ints, floats, bools and strings.
    """
    from napari_slideseg.io.export import ObjectColumns

    inst = _nuclei()
    rng = np.random.default_rng(3)
    ids = np.array([i for i in np.unique(inst)[1:] if i % 7] + [999, 5], np.int64)
    ids = rng.permutation(ids)
    classes = rng.integers(-1, 5, len(ids))
    cols = {
        "type_probability": np.where(np.arange(len(ids)) % 3 == 0, np.nan, rng.random(len(ids))),
        "area_px": rng.integers(0, 10**6, len(ids)),
        "area_um2": np.where(np.arange(len(ids)) % 4 == 1, np.nan, rng.random(len(ids)) * 1e5),
        "big": rng.random(len(ids)) * 1e20,
        "flag": rng.random(len(ids)) < 0.5,
        "name": np.asarray([f"n\u00e9{i}" for i in range(len(ids))], object),
    }
    cm = ClassMap(("bg", "a", "b\u00e9"), ((0, 0, 0), (255, 0, 0), (0, 128, 255)))
    as_dicts: dict[int, dict] = {}
    by_id: dict[int, int] = {}
    for k, i in enumerate(ids.tolist()):
        by_id[i] = int(classes[k])
        row = {n: v.tolist()[k] for n, v in cols.items()}
        if not np.isfinite(row["area_um2"]):
            del row["area_um2"]
        as_dicts[i] = row
    table = ObjectColumns.from_arrays(ids, classes, cols, optional=["area_um2"])
    a, b = tmp_path / "dicts.geojson", tmp_path / "columns.geojson"
    common = {"classmap": cm, "object_type": "detection", "block": 16}
    labels = da.from_array(inst, chunks=16)
    write_geojson(a, labels, instance_classes=by_id, properties=as_dicts, **common)
    write_geojson(b, labels, properties=table, **common)
    assert b.read_bytes() == a.read_bytes()
    feats = json.loads(b.read_text())["features"]
    rows = [f["properties"] for f in feats if "area_px" in f["properties"]]
    assert any("area_um2" not in p for p in rows) and any("area_um2" in p for p in rows)
    assert any(p["type_probability"] is None for p in rows)
    assert any("classification" in p for p in rows) and any("class_index" not in p for p in rows)
    missing = next(f["properties"] for f in feats if f["properties"]["id"] % 7 == 0)
    assert missing == {"objectType": "detection", "id": missing["id"]}
    with pytest.raises(ValueError, match="give the classes in the ObjectColumns"):
        write_geojson(b, inst, instance_classes=by_id, properties=table)
    with pytest.raises(ValueError, match="has 2 values for"):
        ObjectColumns.from_arrays(ids, columns={"x": [1, 2]})
