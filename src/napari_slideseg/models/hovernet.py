"""HoVer-Net style model: one smp encoder, three U-Net decoders (NP, HV, NC).

The branches follow Graham et al. 2019: NP (nucleus vs background, 2
logits), HV (horizontal and vertical distance maps, 2 values, no
activation) and, optionally, NC (nucleus type logits, background included).
Unlike the original (valid convolutions, 270 -> 80 px), every layer uses
'same' padding, so the model tiles over a slide exactly like the semantic
models. ``forward`` returns one tensor ``(N, 4 + n_types, H, W)``: channels
``0:2`` NP logits, ``2:4`` HV, ``4:`` NC logits; :func:`split_outputs`
names them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class HoVerNet(nn.Module):
    """Shared encoder + NP/HV/NC decoders (smp building blocks).

    Parameters
    ----------
    encoder_name
        Any smp encoder (``resnet18``, ``mobilenet_v2``...).
    encoder_weights
        ``None`` (random init) or a cached pretrained name.
    in_channels
        Input channels.
    n_types
        NC channels including background; 0 builds no NC branch.
    decoder_channels
        Channels of each decoder's stages (deepest first).
    encoder_depth
        Encoder stages (3-5); ``len(decoder_channels)`` must match.
    """

    def __init__(
        self,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        n_types: int = 0,
        decoder_channels: tuple[int, ...] | list[int] = (128, 64, 32, 16, 16),
        encoder_depth: int = 5,
    ) -> None:
        super().__init__()
        from segmentation_models_pytorch.base import SegmentationHead
        from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
        from segmentation_models_pytorch.encoders import get_encoder

        from .factory import ModelError, hub_offline

        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != encoder_depth:
            raise ModelError(
                f"HoVerNet: {len(decoder_channels)} decoder stages for an encoder of depth {encoder_depth}"
            )
        try:
            with hub_offline():
                self.encoder = get_encoder(
                    encoder_name,
                    in_channels=in_channels,
                    depth=encoder_depth,
                    weights=encoder_weights,
                )
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise ModelError(
                f"HoVerNet encoder {encoder_name!r} ({encoder_weights}): {exc}"
            ) from exc
        from .factory import trim_unused_stages

        trim_unused_stages(self.encoder)
        self.config = {
            "encoder_name": encoder_name,
            "encoder_weights": encoder_weights,
            "in_channels": in_channels,
            "n_types": int(n_types),
            "decoder_channels": list(decoder_channels),
            "encoder_depth": encoder_depth,
        }
        self.n_types = int(n_types)
        enc_ch = self.encoder.out_channels

        def branch(out: int) -> nn.ModuleDict:
            return nn.ModuleDict(
                {
                    "decoder": UnetDecoder(
                        encoder_channels=enc_ch,
                        decoder_channels=decoder_channels,
                        n_blocks=encoder_depth,
                    ),
                    "head": SegmentationHead(decoder_channels[-1], out, kernel_size=3),
                }
            )

        self.np_branch = branch(2)
        self.hv_branch = branch(2)
        self.nc_branch = branch(self.n_types) if self.n_types else None
        self.output_stride = 2**encoder_depth

    def _run(self, branch: nn.ModuleDict, features: list[torch.Tensor]) -> torch.Tensor:
        return branch["head"](branch["decoder"](features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The NP, HV and NC outputs of a batch, as one tensor.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` input; ``H`` and ``W`` divisible by :attr:`output_stride`.

        Returns
        -------
        torch.Tensor
            ``(N, 4 + n_types, H, W)``: NP logits, HV, NC logits.

        Raises
        ------
        ValueError
            When the input size does not divide by the output stride.
        """
        h, w = x.shape[-2:]
        s = self.output_stride
        if h % s or w % s:
            raise ValueError(f"HoVerNet input {h} x {w} must be divisible by {s}")
        features = self.encoder(x)
        outs = [self._run(self.np_branch, features), self._run(self.hv_branch, features)]
        if self.nc_branch is not None:
            outs.append(self._run(self.nc_branch, features))
        return torch.cat(outs, 1)


def split_outputs(out: torch.Tensor) -> dict[str, torch.Tensor]:
    """The named parts of a :class:`HoVerNet` output.

    Parameters
    ----------
    out : torch.Tensor
        ``(N, 4 + T, H, W)`` model output.

    Returns
    -------
    dict of str to torch.Tensor
        ``np`` logits ``(N, 2, ...)``, ``hv`` ``(N, 2, ...)`` and, when the
        model has types, ``nc`` logits ``(N, T, ...)``.
    """
    d = {"np": out[:, 0:2], "hv": out[:, 2:4]}
    if out.shape[1] > 4:
        d["nc"] = out[:, 4:]
    return d


def build_hovernet(**kwargs: Any) -> HoVerNet:
    """:class:`HoVerNet` with ``encoder_weights=None`` unless asked (no hub access).

    Parameters
    ----------
    **kwargs
        :class:`HoVerNet` arguments.

    Returns
    -------
    HoVerNet
        The model.
    """
    kwargs.setdefault("encoder_weights", None)
    return HoVerNet(**kwargs)
