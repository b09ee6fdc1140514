"""Shared fixtures: real test slides, a generated big pyramid, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own pyramid cache directory (never the user's)."""
    monkeypatch.setenv("SLIDESEG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def tcga_svs() -> Path:
    """2-level Aperio SVS, JPEG 2000, no mpp."""
    return DATA / "wsi" / "TCGA-CR-7395-01A-01-TS1.svs"


@pytest.fixture(scope="session")
def cmu_svs() -> Path:
    """1-level Aperio SVS, JPEG 240x240 tiles, mpp 0.499."""
    return DATA / "wsi" / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="session")
def ome_pyramid() -> Path:
    """The bundled 3-level JPEG OME-TIFF sample."""
    from napari_slideseg._sample_data import sample_slide_path

    return sample_slide_path()


@pytest.fixture(scope="session")
def big_pyramid(tmp_path_factory) -> Path:
    """A generated 20000 x 24000 pyramidal JPEG BigTIFF (streamed; ~1 s)."""
    from napari_slideseg.io.synthetic import write_synthetic_slide

    path = tmp_path_factory.mktemp("synthetic") / "synthetic_20k.tif"
    return write_synthetic_slide(path, 20000, 24000, tile=512, mpp=0.25)


@pytest.fixture(scope="session")
def make_card():
    """``make_card(classmap, **fields)``: a model card with the tests' usual fields.

    A semantic 2-class ``resnet18`` U-Net on 3 channels with 256 px patches;
    ``fields`` override any of them (``kind``, ``arch``, ``classes``, ...).
    """
    from napari_slideseg.models.card import new_card

    def make(classmap, **fields):
        usual = {
            "kind": "semantic",
            "arch": "Unet",
            "encoder": "resnet18",
            "in_channels": 3,
            "classes": 2,
            "patch_size": 256,
        }
        return new_card(**{**usual, **fields}, classmap=classmap)

    return make


@pytest.fixture(scope="session", autouse=True)
def _npe2_discovered():
    """npe2's plugin manager discovers installed manifests lazily; do it once up front."""
    import npe2

    npe2.PluginManager.instance().discover()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """``slideseg demo`` run once (bundled models on the bundled sample)."""
    from napari_slideseg.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def level1_prediction(tmp_path_factory, ome_pyramid):
    """A semantic prediction zarr on level 1 of the bundled sample, as the engine lays it out.

    Returns ``(path, labels, slide)``. The labels are real: the sample's level
    1 thresholded into tissue (1) and dark, nucleus-rich areas (2); the
    attributes are the engine's (level, level factors, shapes, mpp, pyramid).
    """
    import numpy as np
    import zarr
    from scipy import ndimage

    from napari_slideseg.io.palette import ClassMap
    from napari_slideseg.io.slide import open_slide

    slide = open_slide(ome_pyramid)
    rgb = np.asarray(slide.levels[1])
    g = ndimage.uniform_filter(rgb.astype(np.float32).mean(-1), 5)
    labels = np.zeros(g.shape, np.uint8)
    labels[g < 215] = 1
    labels[g < 140] = 2
    out = tmp_path_factory.mktemp("pred") / "level1.zarr"
    root = zarr.open_group(str(out), mode="w")
    root.create_array("labels", shape=labels.shape, chunks=(512, 512), dtype=np.uint8)
    root["labels"][:] = labels
    root.create_array("pyramid/2", shape=labels[::2, ::2].shape, chunks=(512, 512), dtype=np.uint8)
    root["pyramid/2"][:] = labels[::2, ::2]
    root.attrs.update(
        {
            "slideseg_inference": {
                "level": 1,
                "level_factors": list(slide.level_factors(1)),
                "level_shape": list(labels.shape),
                "slide_shape": list(slide.levels[0].shape[:2]),
                "mpp": list(slide.mpp),
                "pyramid": [2],
                "kind": "semantic",
                "complete": True,
            },
            "slideseg": {"classmap": ClassMap.preset("wsi3").to_dict(), "models": []},
        }
    )
    return out, labels, slide
