"""Patch extraction with QuPath GeoJSON annotations as the mask (API and CLI)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from PIL import Image

from napari_slideseg import open_slide
from napari_slideseg.cli import main
from napari_slideseg.io.annotations import (
    IGNORE_INDEX,
    AnnotationError,
    rasterize_window,
    read_annotations,
)
from napari_slideseg.io.palette import ClassMap
from napari_slideseg.patching import PatchConfig, PatchError, extract_patches, read_manifest

CLASSES = ClassMap(("background", "Tumor", "Stroma"), ((0, 0, 0), (200, 0, 0), (0, 160, 0)))


def _feature(rings, name, kind="Polygon", object_type="annotation"):
    return {
        "type": "Feature",
        "id": str(uuid.uuid4()),
        "geometry": {"type": kind, "coordinates": rings},
        "properties": {
            "objectType": object_type,
            "classification": {"name": name, "color": list(CLASSES.colors[1])},
        },
    }


def _annotations(path):
    """Tumour with a hole in the top left of GlaS train_1 (775 x 522), stroma beside it."""
    feats = [
        _feature(
            [
                [[10.2, 12.7], [300.4, 20.3], [280.6, 240.1], [20.5, 230.8], [10.2, 12.7]],
                [[100.3, 90.2], [180.7, 95.6], [170.1, 160.4], [95.5, 150.9], [100.3, 90.2]],
            ],
            "Tumor",
        ),
        _feature(
            [[[[320.3, 30.1], [500.8, 40.4], [420.2, 200.6], [320.3, 30.1]]]],
            "stroma",
            kind="MultiPolygon",
        ),
    ]
    path.write_text(json.dumps(feats))
    return path


@pytest.fixture
def glas(data_dir):
    return open_slide(data_dir / "glas" / "train_1.png")


def _mask_patches(out, rows):
    return {r["image"]: np.asarray(Image.open(out / r["mask"])) for r in rows}


def test_ignore_writes_255_outside_and_skips_unannotated_patches(tmp_path, glas):
    geo = _annotations(tmp_path / "train_1.geojson")
    cfg = PatchConfig(size=96, stride=96, unannotated="ignore")
    res = extract_patches(glas, tmp_path / "out", cfg, mask=geo, classmap=CLASSES)
    h, w = glas.levels[0].shape[:2]
    n_grid = (h // 96) * (w // 96)
    assert res.summary["unannotated"] > 0
    assert res.summary["kept"] + res.summary["unannotated"] == n_grid
    ann = read_annotations(geo, CLASSES)
    truth = rasterize_window(ann, (0, 0, h, w), unannotated="ignore")
    rows = read_manifest(res.out)
    assert len(rows) == res.n_patches == res.summary["kept"]
    for r in rows:
        m = np.asarray(Image.open(res.out / r["mask"]))
        y, x = int(r["y"]), int(r["x"])
        np.testing.assert_array_equal(m, truth[y : y + 96, x : x + 96])
        assert (m != IGNORE_INDEX).any()  # every kept patch holds some annotation
    masks = [np.asarray(Image.open(res.out / r["mask"])) for r in rows]
    assert any((m == IGNORE_INDEX).any() for m in masks)  # outside annotations and in the hole
    assert {1, 2} <= set(np.unique(np.concatenate([m.ravel() for m in masks])))
    # the ignore value is neither a class fraction nor foreground
    fracs = [sum(float(r[f"frac_{n}"]) for n in CLASSES.names) for r in rows]
    assert min(fracs) < 1.0
    run = json.loads((res.out / "run.json").read_text())
    assert run["annotations"]["path"] == str(geo)
    assert run["annotations"]["unannotated"] == "ignore"
    assert run["annotations"]["ignore_index"] == IGNORE_INDEX
    assert run["annotations"]["holes"] == 1 and run["config"]["unannotated"] == "ignore"


def test_background_keeps_every_patch_and_writes_zero_outside(tmp_path, glas):
    geo = _annotations(tmp_path / "a.geojson")
    res = extract_patches(
        glas,
        tmp_path / "out",
        PatchConfig(size=128, stride=128),
        mask=geo,
        classmap=CLASSES,
        fmt="zarr",
    )
    assert "unannotated" not in res.summary
    h, w = glas.levels[0].shape[:2]
    assert res.n_patches == (h // 128) * (w // 128)
    import zarr

    masks = zarr.open_group(str(res.out / "patches.zarr"), mode="r")["masks"][:]
    assert set(np.unique(masks)) == {0, 1, 2}
    run = json.loads((res.out / "run.json").read_text())
    assert "unannotated" not in run["config"]  # the default keeps earlier runs' config hash
    assert run["annotations"]["unannotated"] == "background"


def test_level_masks_are_rasterised_at_the_level(tmp_path, tcga_svs):
    slide = open_slide(tcga_svs)
    h0, w0 = slide.levels[0].shape[:2]
    lh, lw = slide.levels[1].shape[:2]
    ring = [[w0 * 0.2, h0 * 0.2], [w0 * 0.7, h0 * 0.25], [w0 * 0.5, h0 * 0.8], [w0 * 0.2, h0 * 0.2]]
    geo = tmp_path / "t.geojson.gz"
    import gzip

    with gzip.open(geo, "wt") as fh:
        json.dump({"type": "FeatureCollection", "features": [_feature([ring], "TUMOR")]}, fh)
    cfg = PatchConfig(size=64, stride=64, level=1, unannotated="ignore")
    res = extract_patches(slide, tmp_path / "out", cfg, mask=geo, classmap=CLASSES)
    ann = read_annotations(geo, CLASSES)
    truth = rasterize_window(ann, (0, 0, h0, w0), (h0 / lh, w0 / lw), unannotated="ignore")
    assert truth.shape == (lh, lw)
    rows = read_manifest(res.out)
    assert rows and res.summary["unannotated"] > 0
    for r in rows:
        y, x = int(r["y"]), int(r["x"])
        m = np.asarray(Image.open(res.out / r["mask"]))
        np.testing.assert_array_equal(m, truth[y : y + 64, x : x + 64])


def test_geojson_mask_needs_a_classmap_and_known_classes(tmp_path, glas):
    geo = _annotations(tmp_path / "a.geojson")
    with pytest.raises(PatchError, match="class map"):
        extract_patches(glas, tmp_path / "o1", PatchConfig(size=128, stride=128), mask=geo)
    other = ClassMap(("background", "Tumor"), ((0, 0, 0), (255, 0, 0)))
    with pytest.raises(AnnotationError, match="stroma"):
        extract_patches(
            glas, tmp_path / "o2", PatchConfig(size=128, stride=128), mask=geo, classmap=other
        )
    assert not (tmp_path / "o2").exists()
    with pytest.raises(PatchError, match="unannotated"):
        PatchConfig(unannotated="skip")


def test_ignore_without_a_mask_warns(tmp_path, glas):
    with pytest.warns(UserWarning, match="unannotated='ignore' has no effect"):
        extract_patches(
            glas, tmp_path / "o", PatchConfig(size=256, stride=256, unannotated="ignore")
        )


def _cli(tmp_path, data_dir, *extra):
    geo = _annotations(tmp_path / "a.geojson")
    cm = CLASSES.save_json(tmp_path / "classes.json")
    slide = data_dir / "glas" / "train_1.png"
    return ["patch", str(slide), "--out", str(tmp_path / "out"), "--mask", str(geo), *extra], cm


def test_cli_patches_from_geojson(tmp_path, data_dir, capsys):
    argv, cm = _cli(tmp_path, data_dir)
    argv += ["--classmap", str(cm), "--size", "96", "--unannotated", "ignore", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "unannotated" in out
    rows = read_manifest(tmp_path / "out")
    assert rows and all(
        (np.asarray(Image.open(tmp_path / "out" / r["mask"])) != IGNORE_INDEX).any() for r in rows
    )


def test_cli_refuses_a_wrong_unannotated_value(tmp_path, data_dir, capsys):
    argv, cm = _cli(tmp_path, data_dir)
    with pytest.raises(SystemExit) as err:
        main([*argv, "--classmap", str(cm), "--unannotated", "skip"])
    assert err.value.code == 2
    assert "--unannotated" in capsys.readouterr().err


def test_cli_geojson_without_classmap_names_it(tmp_path, data_dir, capsys):
    argv, _ = _cli(tmp_path, data_dir)
    assert main([*argv, "--quiet"]) == 2
    assert "--classmap" in capsys.readouterr().err


def test_cli_skip_unknown_classes(tmp_path, data_dir, capsys):
    argv, _ = _cli(tmp_path, data_dir)
    tumor_only = ClassMap(("background", "tumor"), ((0, 0, 0), (255, 0, 0)))
    cm = tumor_only.save_json(tmp_path / "tumor.json")
    assert main([*argv, "--classmap", str(cm), "--quiet"]) == 2
    assert "stroma" in capsys.readouterr().err
    argv += ["--classmap", str(cm), "--skip-unknown-classes", "--quiet", "--size", "128"]
    assert main(argv) == 0
    assert "1 feature(s) skipped" in capsys.readouterr().err
