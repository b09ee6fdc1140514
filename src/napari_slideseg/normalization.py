"""Input normalisations shared by training, model cards and datasets (no dependencies).

``IMAGENET`` is the mean and standard deviation (per RGB channel, on
[0, 1] pixels) that ImageNet-trained encoders expect; ``UNIT`` scales
[0, 1] pixels to [-1, 1] (what, e.g., the MobileNetV2 weights expect).
"""

from __future__ import annotations

from typing import TypedDict


class MeanStd(TypedDict):
    """Per-channel RGB statistics of [0, 1] pixels (a plain dict at run time).

    Attributes
    ----------
    mean
        The ``(r, g, b)`` means subtracted.
    std
        The ``(r, g, b)`` standard deviations divided by.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET: MeanStd = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}
UNIT: MeanStd = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
