"""Where the bundled sample slide and its cached demo predictions live (no Qt, no napari).

The npe2 sample-data glue (``_sample_data``) and the core (the demo, the
synthetic test slides) both need these paths; keeping them here keeps the
core from importing the napari glue.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .io.sample import SAMPLE_SLIDE, sample_slide_path

__all__ = ["SAMPLE_SLIDE", "demo_cache_dir", "sample_slide_path"]


def demo_cache_dir() -> Path:
    """Where the sample's demo predictions are kept (computed once per version and models).

    The folder name carries the package version and a digest of the bundled
    model cards, so retrained models (same version, e.g. an editable
    install) never show predictions cached from the old ones.
    ``SLIDESEG_CACHE_DIR`` replaces the user cache folder.

    Returns
    -------
    Path
        ``<cache>/demo-<version>-<digest>`` (not created here).
    """
    import platformdirs

    from . import __version__
    from .models.bundled import bundled_models
    from .models.card import CARD

    digest = hashlib.sha256(b"prediction-format-3")  # bumped when predictions change
    for name, folder in bundled_models().items():
        digest.update(name.encode() + (folder / CARD).read_bytes())
    base = os.environ.get("SLIDESEG_CACHE_DIR") or platformdirs.user_cache_dir("napari-slideseg")
    return Path(base) / f"demo-{__version__}-{digest.hexdigest()[:10]}"
