"""The core's errors, under their historical ``napari_slideseg.io.errors`` name.

They live in :mod:`napari_slideseg.errors`, the bottom layer, so validation
and every package can raise them without importing ``io``.
"""

from __future__ import annotations

from ..errors import (
    SlideError,
    SlideNotFoundError,
    SlideSegError,
    SlideTooLargeError,
)

__all__ = ["SlideError", "SlideNotFoundError", "SlideSegError", "SlideTooLargeError"]
