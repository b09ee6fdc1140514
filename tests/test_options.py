"""The enums of napari_slideseg.options hold exactly the values the core validates.

Each enum is compared with the core's own constant where it has one, else the
core is called with every value (accepted) and with a wrong one (refused).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from napari_slideseg import options as o
from napari_slideseg.options import values

GLAS = Path(__file__).parent / "data" / "glas"


@pytest.mark.parametrize(
    ("enum", "where", "name"),
    [
        (o.TTAMode, "napari_slideseg.infer.config", "TTA_MODES"),
        (o.BlendWindow, "napari_slideseg.infer.config", "WINDOWS"),
        (o.Optimizer, "napari_slideseg.train", "OPTIMIZERS"),
        (o.Scheduler, "napari_slideseg.train", "SCHEDULERS"),
        (o.Monitor, "napari_slideseg.train", "MONITORS"),
        (o.InputNorm, "napari_slideseg.train", "INPUT_NORMS"),
        (o.AugmentPreset, "napari_slideseg.augment", "PRESETS"),
        (o.Architecture, "napari_slideseg.models.factory", "ARCHITECTURE_NAMES"),
        (o.Loss, "napari_slideseg.models.losses", "LOSS_NAMES"),
        (o.HoverLossTerm, "napari_slideseg.models.losses", "HOVER_WEIGHTS"),
        (o.ModelKind, "napari_slideseg.models.card", "KINDS"),
        (o.Activation, "napari_slideseg.models.card", "ACTIVATIONS"),
        (o.GridMode, "napari_slideseg.patching", "GRID_MODES"),
        (o.PadMode, "napari_slideseg.patching", "PAD_MODES"),
        (o.Overwrite, "napari_slideseg.patching", "OVERWRITE"),
        (o.PatchFormat, "napari_slideseg.patching.writers", "FORMATS"),
        (o.RLEOrder, "napari_slideseg.io.rle", "ORDERS"),
        (o.SlideBackend, "napari_slideseg.io.slide.backends", "BACKEND_CHOICES"),
        (o.Unannotated, "napari_slideseg.patching.config", "UNANNOTATED"),
        (o.Unannotated, "napari_slideseg.io.annotations", "UNANNOTATED"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_enum_is_the_core_constant(enum, where, name):
    import importlib

    core = getattr(importlib.import_module(where), name)
    assert tuple(values(enum)) == tuple(core)  # the same values, in the same order


@pytest.mark.parametrize(
    ("field", "enum"),
    [("split_by", o.SplitBy), ("norm", o.NormLayer), ("kind", o.ModelKind)],
)
def test_train_config_accepts_exactly_the_enum(field, enum):
    from napari_slideseg.train import TrainConfig, TrainError

    for value in values(enum):
        assert getattr(TrainConfig(**{field: value}), field) == value
    with pytest.raises(TrainError, match=field):
        TrainConfig(**{field: "nonsense"})


def test_devices_accepted_by_infer_config():
    from napari_slideseg.infer import InferConfig, InferError

    for value in [*values(o.DeviceKind), "cuda:1"]:
        assert InferConfig(device=value).device == value
    with pytest.raises(InferError, match="device"):
        InferConfig(device="gpu")


def test_blend_windows():
    from napari_slideseg.infer import InferConfig, InferError
    from napari_slideseg.infer.tiles import blend_window

    for value in values(o.BlendWindow):
        assert blend_window(8, value).shape == (8, 8)
        assert InferConfig(window=value).window == value
    with pytest.raises(ValueError, match="window"):
        blend_window(8, "box")
    with pytest.raises(InferError, match="window"):
        InferConfig(window="box")


def test_hover_normalize():
    from napari_slideseg.instances.postproc import HoverParams

    for value in values(o.HoverNormalize):
        assert HoverParams(normalize=value).normalize == value
    with pytest.raises(ValueError, match="normalize"):
        HoverParams(normalize="global")


def test_loss_presets_are_losses():
    from napari_slideseg.models.losses import build_loss

    for preset in o.LOSS_PRESETS:
        assert set(preset.split("+")) <= set(values(o.Loss))
        assert callable(build_loss(preset, classes=1 if "bce" in preset else 2))


def test_patch_formats(tmp_path):
    from napari_slideseg.patching import PatchConfig, PatchError, extract_patches_steps
    from napari_slideseg.progress import drain

    cfg = PatchConfig(size=16, stride=16, region=(0, 0, 16, 32))
    for fmt in values(o.PatchFormat):
        res = drain(extract_patches_steps(str(GLAS / "train_1.png"), tmp_path / fmt, cfg, fmt=fmt))
        assert res.n_patches == 2
    with pytest.raises(PatchError, match="fmt"):
        drain(extract_patches_steps(str(GLAS / "train_1.png"), tmp_path / "x", cfg, fmt="jpeg"))


def test_rle_layouts_and_bases(tmp_path):
    from napari_slideseg.io.rle import RLEError, write_rle_csv

    labels = np.array([[0, 1], [1, 2]], np.uint8)
    for layout in values(o.RLELayout):
        for base in values(o.RLEBase):
            write_rle_csv(tmp_path / f"{layout}{base}.csv", labels, layout=layout, base=base)
    with pytest.raises(RLEError, match="layout"):
        write_rle_csv(tmp_path / "x.csv", labels, layout="object")
    with pytest.raises(RLEError):
        write_rle_csv(tmp_path / "x.csv", labels, base=2)


def test_export_formats(tmp_path):
    from napari_slideseg.io.export import export_labels
    from napari_slideseg.io.palette import MaskError

    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6] = 1
    for i, suffix in enumerate(values(o.ExportFormat)):
        assert export_labels(labels, tmp_path / f"x{i}{suffix}").exists()
    with pytest.raises(MaskError, match="unknown export format"):
        export_labels(labels, tmp_path / "x.bmp")
    assert set(o.STREAMED_FORMATS) | set(o.GEOJSON_FORMATS) <= set(values(o.ExportFormat))


def test_geojson_modes_and_object_types(tmp_path):
    from napari_slideseg.io.export import write_geojson

    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6] = 1
    for mode in values(o.GeoJSONMode):
        for kind in values(o.GeoJSONObjectType):
            write_geojson(tmp_path / f"{mode}-{kind}.geojson", labels, mode=mode, object_type=kind)
    with pytest.raises(ValueError, match="mode"):
        write_geojson(tmp_path / "x.geojson", labels, mode="classes")
    with pytest.raises(ValueError, match="object_type"):
        write_geojson(tmp_path / "x.geojson", labels, object_type="nucleus")


def test_jpeg_checks():
    from napari_slideseg.io.slide import open_slide

    for value in values(o.JpegCheck):
        assert open_slide(GLAS / "train_1.png", jpeg_check=value).levels
    with pytest.raises(ValueError, match="jpeg_check"):
        open_slide(GLAS / "train_1.png", jpeg_check="none")


def test_members_are_their_strings():
    assert o.TTAMode.D4 == "d4" and f"{o.TTAMode.D4}" == "d4"
    assert values(o.RLEBase) == [0, 1] and all(type(v) is int for v in values(o.RLEBase))
    assert all(type(v) is str for v in values(o.TTAMode))


def test_options_sits_at_the_bottom():
    """options.py imports nothing from the package but napari_slideseg.errors."""
    tree = ast.parse(Path(o.__file__).read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod.startswith("napari_slideseg"):
                found.append(("." * node.level) + mod)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("napari_slideseg")]
    assert set(found) <= {".errors", "napari_slideseg.errors"}, found
