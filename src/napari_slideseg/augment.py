"""albumentations presets for histology patches (albumentations 2.0.x, MIT line).

Every preset transforms image and mask together (masks use nearest
interpolation). Presets are seeded through ``Compose(seed=...)``: since
albumentations 2.0, global NumPy seeding no longer reaches the transforms.

``none``
    No change.
``flips``
    Horizontal/vertical flips and 90 degree rotations (the dihedral group D4,
    exact for histology, which has no up or down).
``standard``
    ``flips`` + a mild affine (scale 0.9-1.1, rotation ±15°, shift ≤ 5 %,
    reflected borders) + Gaussian blur or noise + colour jitter.
``strong``
    ``standard`` + one of elastic / grid / optical distortion + H&E stain
    augmentation (``HEStain``: random stain matrices and intensities, the
    colour variation between labs and scanners).

``scale=(lo, hi)`` widens the zoom range of the affine step (``flips`` gains
one): images at the model's resolution still differ in how large their
structures look (GlaS glands vary about 2x between images; a 20x scan labelled
"40x"), and a model that saw only one size labels the others background. The
zoom is drawn so that ``lo``..1 and 1..``hi`` are equally likely
(``balanced_scale``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .options import AugmentPreset, values

PRESETS = tuple(values(AugmentPreset))


def _flips(A: Any) -> list[Any]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)]


def _affine(A: Any, scale: tuple[float, float] | None, rotate: float, p: float) -> Any:
    import cv2

    return A.Affine(
        scale=scale or (0.9, 1.1),
        balanced_scale=scale is not None,
        rotate=(-rotate, rotate),
        translate_percent=(-0.05, 0.05),
        border_mode=cv2.BORDER_REFLECT_101,
        p=p,
    )


def _standard(A: Any, scale: tuple[float, float] | None = None) -> list[Any]:
    return [
        *_flips(A),
        _affine(A, scale, 15, 0.7 if scale else 0.5),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 5), p=1.0),
                A.GaussNoise(std_range=(0.02, 0.06), p=1.0),
            ],
            p=0.3,
        ),
        A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.03, p=0.5),
    ]


def _strong(A: Any, scale: tuple[float, float] | None = None) -> list[Any]:
    import cv2

    return [
        *_standard(A, scale),
        A.OneOf(
            [
                A.ElasticTransform(alpha=30, sigma=6, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
                A.GridDistortion(
                    num_steps=5, distort_limit=0.2, border_mode=cv2.BORDER_REFLECT_101, p=1.0
                ),
                A.OpticalDistortion(distort_limit=0.2, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
            ],
            p=0.3,
        ),
        A.HEStain(method="random_preset", p=0.5),
    ]


def build_augmentation(
    preset: str = "flips", seed: int | None = None, scale: Sequence[float] | None = None
) -> Any:
    """An ``albumentations.Compose`` for ``preset`` applied to ``image`` and ``mask`` together.

    Parameters
    ----------
    preset : str
        One of :data:`PRESETS`.
    seed : int, optional
        Seeds the pipeline (``Compose(seed=...)``) for reproducible runs.
    scale : sequence of float, optional
        ``(lo, hi)`` zoom range with ``0 < lo <= 1 <= hi`` (e.g. ``(0.5, 2)``),
        or ``None`` for the preset's own (0.9-1.1 in ``standard``/``strong``).

    Returns
    -------
    albumentations.Compose
        The pipeline (empty for ``none`` without ``scale``).

    Raises
    ------
    ValueError
        For an unknown preset name or a bad scale range.
    """
    import albumentations as A

    if preset not in PRESETS:
        raise ValueError(
            f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}"
        )
    zoom = None
    if scale is not None:
        lo, hi = (float(v) for v in scale)
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f"scale range must satisfy 0 < lo <= 1 <= hi, not ({lo}, {hi})")
        zoom = (lo, hi)
    if preset == "none":
        steps = [_affine(A, zoom, 0, 0.7)] if zoom else []
    elif preset == "flips":
        steps = [*_flips(A), *([_affine(A, zoom, 0, 0.7)] if zoom else [])]
    else:
        steps = (_standard if preset == "standard" else _strong)(A, zoom)
    return A.Compose(steps, seed=seed)
