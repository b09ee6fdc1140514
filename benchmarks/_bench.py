"""What several benchmarks share: a real H&E image of any size and a random-init U-Net."""

from __future__ import annotations

from typing import Any

import numpy as np


def sample_image(size: int) -> np.ndarray:
    """The bundled sample slide's level 0 tiled (mirror-free repeats) to ``size`` x ``size``."""
    from napari_slideseg._sample_data import sample_slide_path
    from napari_slideseg.io.slide import open_slide

    src = open_slide(sample_slide_path())
    h0, w0 = src.levels[0].shape[:2]
    base = src.read_region(0, 0, 0, h0, w0)
    return np.tile(base, (size // h0 + 1, size // w0 + 1, 1))[:size, :size]


def random_unet(tile: int, seed: int = 0) -> tuple[Any, Any]:
    """A seeded random-init Unet/resnet18 (2 classes, eval mode) and its ModelCard."""
    import torch

    from napari_slideseg.models import build_model
    from napari_slideseg.models.card import new_card

    torch.manual_seed(seed)
    model = build_model("Unet", "resnet18", classes=2).eval()
    cm = {"name": "", "names": ["a", "b"], "colors": [[0, 0, 0], [255, 255, 255]], "background": 0}
    card = new_card(
        kind="semantic",
        arch="Unet",
        encoder="resnet18",
        in_channels=3,
        classes=2,
        classmap=cm,
        patch_size=tile,
    )
    return model, card


def normalised(img: np.ndarray, card: Any) -> Any:
    """``img`` as the card's normalised ``(3, H, W)`` float32 tensor."""
    import torch

    mean = np.array(card.normalization.mean, np.float32)
    std = np.array(card.normalization.std, np.float32)
    return torch.from_numpy(((img.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1).copy())
