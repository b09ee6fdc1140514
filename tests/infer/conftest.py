"""Shared fixtures of the inference tests: a 'HoVer model' that reads its maps from the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_slideseg.instances.targets import hover_targets
from napari_slideseg.models.card import NUCLEUS_CLASSMAP


class MapsAsPixels(torch.nn.Module):
    """A 'HoVer model' that reads NP, H and V back from the pixels (R, G, B).

    The engine then tiles, blends and post-processes exactly the maps that
    were encoded, so block-wise results can be compared with one whole-image
    post-processing of the same maps.
    """

    def forward(self, x):
        np_logit = (x[:, 0:1] - 0.5) * 40
        hv = x[:, 1:3] * 2 - 1
        return torch.cat([-np_logit, np_logit, hv], 1)


@pytest.fixture(scope="session")
def maps_card(make_card):
    """The card of :class:`MapsAsPixels`: HoVer without types, pixels as they are (no normalisation)."""
    return make_card(
        NUCLEUS_CLASSMAP,
        kind="hover",
        arch="HoVerNet",
        encoder="none",
        classes=0,
        normalization={"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    )


@pytest.fixture(scope="session")
def maps_model(maps_card):
    """``(model, card)``: a :class:`MapsAsPixels` and its card, as ``predict_slide`` takes them."""
    return MapsAsPixels(), maps_card


@pytest.fixture(scope="session")
def encode_maps():
    """``encode_maps(inst)``: an RGB uint8 image of an instance map's NP, H and V targets.

    Red is NP (0 or 255), green and blue H and V in [-1, 1] scaled to 0..255:
    what :class:`MapsAsPixels` reads back.
    """

    def encode(inst):
        t = hover_targets(inst)
        return np.stack(
            [t["np"] * 255, np.round((t["hv"][0] + 1) * 127.5), np.round((t["hv"][1] + 1) * 127.5)],
            -1,
        ).astype(np.uint8)

    return encode
