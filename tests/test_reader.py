"""Manifest tier: reading through the plugin with npe2 (no viewer)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import npe2
import numpy as np
import pytest
from PIL import Image

from napari_slideseg import _reader

ROOT = Path(__file__).resolve().parents[1]


def _read(path: Path):
    return npe2.read([str(path.resolve())], stack=False, plugin_name="napari-slideseg")


MANIFEST = ROOT / "src" / "napari_slideseg" / "napari.yaml"


def test_manifest_is_the_packaged_file():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-slideseg")
    assert manifest.contributions.readers
    packaged = files("napari_slideseg") / "napari.yaml"
    assert not Path(str(packaged)).is_symlink()  # checkouts without symlinks work
    assert packaged.read_text() == MANIFEST.read_text()


@pytest.mark.slow
def test_wheel_contains_manifest(tmp_path):
    """A built wheel carries napari.yaml and the entry point."""
    out = tmp_path / "wheel"
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "bundled-work*"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
    )
    wheel = next(out.glob("napari_slideseg-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "napari_slideseg/napari.yaml" in names
        assert zf.read("napari_slideseg/napari.yaml").decode() == MANIFEST.read_text()
        ep = next(n for n in names if n.endswith("entry_points.txt"))
        assert "napari-slideseg = napari_slideseg:napari.yaml" in zf.read(ep).decode()
        assert "napari_slideseg/data/CMU-1-Small-Region.pyramid.ome.tif" in names


def test_read_svs_through_plugin(tcga_svs):
    ((data, kwargs, kind),) = _read(tcga_svs)
    assert kind == "image"
    assert kwargs["multiscale"] and kwargs["rgb"]
    assert [a.shape for a in data] == [(3567, 4443, 3), (1783, 2221, 3)]
    assert kwargs["contrast_limits"] == [0.0, 255.0]
    meta = kwargs["metadata"]["slideseg"]
    assert meta["path"] == str(tcga_svs.resolve())
    assert meta["levels"] == [[3567, 4443, 3], [1783, 2221, 3]]
    assert meta["mpp"] is None
    assert "scale" not in kwargs


def test_read_ome_tiff_has_scale_and_units(ome_pyramid):
    ((data, kwargs, _),) = _read(ome_pyramid)
    assert len(data) == 3
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))
    assert kwargs["units"] == ("micrometer", "micrometer")
    assert kwargs["metadata"]["slideseg"]["mpp"] == pytest.approx([0.499, 0.499])


def test_read_zarr_directory(tmp_path, ome_pyramid):
    from napari_slideseg.io import open_slide
    from napari_slideseg.io.pyramid import build_pyramid_cache
    from napari_slideseg.progress import drain

    src = open_slide(ome_pyramid)
    out = drain(build_pyramid_cache(src.levels[0], tmp_path / "s.ome.zarr", name="s", mpp=src.mpp))
    ((data, kwargs, _),) = _read(out)
    assert data[0].shape == (2967, 2220, 3)
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))


def test_get_reader_is_selective(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    assert _reader.napari_get_reader(str(txt)) is None
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(small)
    assert _reader.napari_get_reader(str(small)) is None  # napari's builtin reader is fine
    assert _reader.napari_get_reader([str(small), str(small)]) is None
    # broken files with a slide extension are claimed so the user hears why
    (tmp_path / "broken.svs").write_text("not a slide")
    assert _reader.napari_get_reader(str(tmp_path / "broken.svs")) is not None


def test_package_and_reader_hook_import_nothing_heavy():
    """npe2 imports the reader hook for every file dropped on napari: it must stay light."""
    code = (
        "import sys; import napari_slideseg; import napari_slideseg._reader as r; "
        "heavy = ('numpy', 'dask', 'tifffile', 'zarr', 'PIL', 'torch'); "
        "print(','.join(m for m in heavy if m in sys.modules)); "
        "from napari_slideseg import open_slide, Slide; "  # the public API still resolves
        "print(open_slide.__module__, 'dask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == ""
    assert second == "napari_slideseg.io.slide.opening True"


@pytest.mark.parametrize("name,content", [("empty.svs", b""), ("junk.svs", b"hello, not a slide")])
def test_bad_file_notifies_instead_of_raising(tmp_path, monkeypatch, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    messages = []
    monkeypatch.setattr(_reader, "_notify_error", messages.append)
    result = _reader.read_slide(str(path))
    assert result == [(None,)]  # npe2's "read, nothing to add" sentinel
    assert len(messages) == 1 and name in messages[0]


def test_sample_data_is_multiscale():
    pm = npe2.PluginManager.instance()
    pm.discover()
    contrib = next(s for s in pm.iter_sample_data() if s[0] == "napari-slideseg")
    (_, samples) = contrib
    layers = samples[0].open()
    ((data, kwargs, kind),) = layers
    assert kind == "image" and kwargs["multiscale"]
    assert [a.shape[:2] for a in data] == [(2967, 2220), (1483, 1110), (741, 555)]


def test_reader_knows_the_arrays_each_task_writes():
    """The reader's check of a prediction folder asks for what each task creates."""
    from napari_slideseg._reader_layers import KIND_ARRAYS
    from napari_slideseg.infer.task import TASKS

    for kind, task in TASKS.items():
        made = {spec.name for spec in task().arrays(4, save_probs=False)} - {"labels"}
        assert made == set(KIND_ARRAYS.get(kind, ())), kind
