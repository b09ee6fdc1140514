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

from ._torch_guard import hide_triton_without_gpu

hide_triton_without_gpu()  # before anything here can import torch (every entry point)

from .io import Slide, SlideError, open_slide  # noqa: E402

__all__ = ["Slide", "SlideError", "__version__", "open_slide"]
