"""Where the bundled sample slide file is (no Qt, no napari, no heavy imports)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SAMPLE_SLIDE = "CMU-1-Small-Region.pyramid.ome.tif"


def sample_slide_path() -> Path:
    """Path of the bundled sample slide (CC0, see ``data/SOURCE.md``)."""
    return Path(str(files("napari_slideseg") / "data" / SAMPLE_SLIDE))
