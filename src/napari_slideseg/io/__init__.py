"""Reading slides and masks, writing labels (no Qt, no napari)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import SlideError, SlideNotFoundError, SlideSegError, SlideTooLargeError

if TYPE_CHECKING:
    from .slide import Slide, open_slide, open_slide_steps

__all__ = [
    "Slide",
    "SlideError",
    "SlideNotFoundError",
    "SlideSegError",
    "SlideTooLargeError",
    "open_slide",
    "open_slide_steps",
]


def __getattr__(name: str) -> object:
    """The slide reader (dask, tifffile) loads on first use of these names."""
    if name in ("Slide", "open_slide", "open_slide_steps"):
        from . import slide

        return getattr(slide, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
