"""The error raised for label maps that cannot be scored."""

from __future__ import annotations

from ..io.errors import SlideSegError


class MetricsError(SlideSegError, ValueError):
    """Label maps that cannot be scored as given (shapes differ, values outside the classes)."""
