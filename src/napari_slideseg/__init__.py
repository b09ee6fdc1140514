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

from typing import TYPE_CHECKING  # noqa: E402

from .errors import SlideError  # noqa: E402  (light: the standard library only)

if TYPE_CHECKING:
    from .io.slide import Slide, open_slide

__all__ = ["Slide", "SlideError", "__version__", "open_slide"]


def __getattr__(name: str) -> object:
    """``Slide`` and ``open_slide`` load on first use, so the npe2 hooks stay light."""
    if name in ("Slide", "open_slide"):
        from .io import slide

        return getattr(slide, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
