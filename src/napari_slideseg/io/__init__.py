"""Reading slides and masks, writing labels (no Qt, no napari)."""

from .errors import SlideError, SlideNotFoundError, SlideSegError, SlideTooLargeError
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
