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
