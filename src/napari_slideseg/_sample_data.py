"""npe2 sample-data glue: the bundled H&E slide."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

SAMPLE_SLIDE = "CMU-1-Small-Region.pyramid.ome.tif"


def sample_slide_path() -> Path:
    """Path of the bundled sample slide (CC0, see ``data/SOURCE.md``)."""
    return Path(str(files("napari_slideseg") / "data" / SAMPLE_SLIDE))


def sample_slide() -> list[tuple[Any, ...]]:
    """The bundled CMU-1 small-region H&E slide as a multiscale Image layer."""
    from .io.slide import open_slide
    from .layers import slide_layer

    return [slide_layer(open_slide(sample_slide_path()), name="CMU-1 small region")]
