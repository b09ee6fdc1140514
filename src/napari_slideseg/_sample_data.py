"""npe2 sample-data glue: the bundled H&E slide, alone or with the demo predictions."""

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


def demo_cache_dir() -> Path:
    """Where the sample's demo predictions are kept (computed once per version and models).

    The folder name carries the package version and a digest of the bundled
    model cards, so retrained models (same version, e.g. an editable
    install) never show predictions cached from the old ones.
    """
    import hashlib
    import os

    import platformdirs

    from . import __version__
    from .models.bundled import bundled_models
    from .models.checkpoint import CARD

    digest = hashlib.sha256(b"prediction-format-2")  # bumped when predictions change
    for name, folder in bundled_models().items():
        digest.update(name.encode() + (folder / CARD).read_bytes())
    base = os.environ.get("SLIDESEG_CACHE_DIR") or platformdirs.user_cache_dir("napari-slideseg")
    return Path(base) / f"demo-{__version__}-{digest.hexdigest()[:10]}"


def sample_slide_with_predictions() -> list[tuple[Any, ...]]:
    """The sample slide plus the bundled models' glands and typed nuclei.

    The first call runs the demo predictions on the CPU (about a minute)
    and caches them; later calls open the cache.
    """
    from .demo import run_demo
    from .io.slide import open_slide
    from .layers import centroid_points, prediction_layers, slide_layer

    out = demo_cache_dir()
    if not (out / "overlay_nuclei.png").exists():
        run_demo(out)
    slide = open_slide(sample_slide_path())
    base = slide_layer(slide, name="CMU-1 small region")
    scale = tuple(base[1].get("scale", (1.0, 1.0)))
    layers: list[tuple[Any, ...]] = [base]
    glands = prediction_layers(out / "glands.zarr", base_scale=scale, name="glands")
    glands[0][1]["opacity"] = 0.4
    layers += glands
    nuclei = prediction_layers(out / "nuclei.zarr", base_scale=scale)
    layers += nuclei
    layers.append(
        centroid_points(
            out / "nuclei.zarr",
            scale=tuple(nuclei[0][1]["scale"]),
            features=nuclei[1][1].get("features"),
        )
    )
    units = base[1].get("units")
    if units:
        for _, kwargs, _ in layers[1:]:
            kwargs["units"] = units
    return layers
