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
"""

from __future__ import annotations

from typing import Any

PRESETS = ("none", "flips", "standard", "strong")


def _flips(A: Any) -> list[Any]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)]


def _standard(A: Any) -> list[Any]:
    import cv2

    return [
        *_flips(A),
        A.Affine(
            scale=(0.9, 1.1),
            rotate=(-15, 15),
            translate_percent=(-0.05, 0.05),
            border_mode=cv2.BORDER_REFLECT_101,
            p=0.5,
        ),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 5), p=1.0),
                A.GaussNoise(std_range=(0.02, 0.06), p=1.0),
            ],
            p=0.3,
        ),
        A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.03, p=0.5),
    ]


def _strong(A: Any) -> list[Any]:
    import cv2

    return [
        *_standard(A),
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


def build_augmentation(preset: str = "flips", seed: int | None = None) -> Any:
    """An ``albumentations.Compose`` for ``preset`` applied to ``image`` and ``mask`` together.

    Parameters
    ----------
    preset
        One of :data:`PRESETS`.
    seed
        Seeds the pipeline (``Compose(seed=...)``) for reproducible runs.

    Raises
    ------
    ValueError
        For an unknown preset name.
    """
    import albumentations as A

    builders = {"none": lambda A: [], "flips": _flips, "standard": _standard, "strong": _strong}
    if preset not in builders:
        raise ValueError(
            f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}"
        )
    return A.Compose(builders[preset](A), seed=seed)
