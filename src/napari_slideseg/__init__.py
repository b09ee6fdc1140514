"""napari-slideseg: whole-slide histology segmentation for napari.

The public API is importable without Qt or napari::

    from napari_slideseg import open_slide
    slide = open_slide("slide.svs")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-slideseg")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from .io import Slide, SlideError, open_slide

__all__ = ["Slide", "SlideError", "__version__", "open_slide"]
