"""Input normalisations shared by training, model cards and datasets (no dependencies).

``IMAGENET`` is the mean and standard deviation (per RGB channel, on
[0, 1] pixels) that ImageNet-trained encoders expect; ``UNIT`` scales
[0, 1] pixels to [-1, 1] (what, e.g., the MobileNetV2 weights expect).
"""

from __future__ import annotations

IMAGENET: dict[str, tuple[float, float, float]] = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}
UNIT: dict[str, tuple[float, float, float]] = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
