"""HoVer-Net style nuclei: NP/HV(/NC) maps, instances owned by each block core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...models.card import ModelCard
from ..config import InferConfig, InferError
from ..writes import fault
from .base import ArraySpec, Core, Output, Task, unturn


@dataclass(frozen=True)
class HoverTask(Task):
    """HoVer-Net style nuclei: NP/HV(/NC) maps, instances owned by the block core.

    Attributes
    ----------
    params : dict
        :class:`~napari_slideseg.instances.postproc.HoverParams` as a dict.
    stride : int
        Instance ids per block (:func:`id_stride_checked`).
    type_names : list of str
        Nucleus type names (the card's class map).
    """

    kind: ClassVar[str] = "hover"
    write_on_driver: ClassVar[bool] = True
    heavy_compute: ClassVar[bool] = True
    params: dict[str, Any] = field(default_factory=dict)
    stride: int = 0
    type_names: tuple[str, ...] = ()

    @classmethod
    def for_slide(
        cls, slide: Any, card: ModelCard, config: InferConfig, n_blocks: int
    ) -> HoverTask:
        """The task for ``card`` on ``slide``: card parameters, config overrides, slide mpp.

        Parameters
        ----------
        slide : Slide
            The slide (its µm/px sets the size filters when the card has none).
        card : ModelCard
            The HoVer model's card.
        config : InferConfig
            ``config.hover`` overrides the card's post-processing parameters.
        n_blocks : int
            Blocks of the prediction (sets the instance-id stride).

        Returns
        -------
        HoverTask

        Raises
        ------
        InferError
            Unknown parameter names, or too many blocks for uint32 ids.
        """
        from ...instances.postproc import HoverParams

        params = card.postproc
        params.update(config.hover or {})
        if not params.get("mpp") and slide.mpp:
            fy, _ = slide.level_factors(config.level)
            params["mpp"] = float(slide.mpp[0]) * float(fy)
        bad = set(params) - set(HoverParams.__dataclass_fields__)
        if bad:
            raise InferError(f"unknown HoVer post-processing parameters {sorted(bad)}")
        return cls(
            params=HoverParams(**params).to_dict(),
            stride=id_stride_checked(n_blocks),
            type_names=tuple(card.classmap.names),
        )

    @staticmethod
    def probs(out: Any, card: ModelCard) -> Any:
        """NP foreground probability, H and V as given, type probabilities (if any)."""
        import torch

        out = out.float()
        parts = [torch.softmax(out[:, 0:2], 1)[:, 1:2], out[:, 2:4]]
        if out.shape[1] > 4:
            parts.append(torch.softmax(out[:, 4:], 1))
        return torch.cat(parts, 1)

    @staticmethod
    def undo_tta(p: Any, k: int, flip: bool) -> Any:
        """Pixels turned back, and the H (channel 1) and V (channel 2) maps' meaning.

        A mirrored x axis negates H. ``torch.rot90(x, k, (2, 3))`` puts the
        input's y axis along the turned x axis and its x axis, reversed, along
        the turned y axis (k = 1), so the turned image's H map is the input's V
        map and its V map the input's negated H map.

        Parameters
        ----------
        p : torch.Tensor
            NP, H, V(, types) predicted on the transformed input.
        k : int
            Quarter turns of the input.
        flip : bool
            Whether the turned input was mirrored along x.

        Returns
        -------
        torch.Tensor
        """
        import torch

        p = unturn(p, k, flip)  # the pixels; then what the H and V channels mean
        if flip:
            p[:, 1] = -p[:, 1]
        if k % 4:
            h, v = p[:, 1], p[:, 2]
            turned = {1: (-v, h), 2: (-h, -v), 3: (v, -h)}[k % 4]
            p[:, 1:3] = torch.stack(turned, 1)
        return p

    @staticmethod
    def margin(config: InferConfig) -> int:
        """``config.instance_halo``: nuclei crossing the core's border are whole in the extent."""
        return config.instance_halo

    def compute(
        self, maps: np.ndarray, ext: Core, core: Core, config: InferConfig, index: int
    ) -> dict[str, Any]:
        """The nuclei whose centroid lies in ``core`` (ids from ``index * stride``)."""
        from ...instances.postproc import HoverParams
        from ..hover import hover_block

        res = hover_block(
            maps,
            ext,
            core,
            HoverParams(**self.params),
            index * self.stride,
            self.stride,
            list(self.type_names),
            config.roi,
        )
        res["kind"] = self.kind
        res["core"] = core
        if config.save_probs:
            cy, cx = core[0] - ext[0], core[1] - ext[1]
            res["maps"] = maps[:, cy : cy + core[2] - core[0], cx : cx + core[3] - core[1]]
        return res

    def arrays(self, channels: int, save_probs: bool) -> list[ArraySpec]:
        """Type ``labels`` and ``instances`` with their pyramids, and ``maps`` when saved."""
        specs = [
            ArraySpec("labels", np.uint8, None, "pyramid"),
            ArraySpec("instances", np.uint32, None, "pyramid_instances"),
        ]
        if save_probs:
            specs.append(ArraySpec("maps", np.float16, channels))
        return specs

    def write(self, dest: Output, index: int, res: dict[str, Any], config: InferConfig) -> None:
        """Nuclei (smallest id wins per pixel), maps if saved, then the block's table."""
        from ..hover import write_hover, write_table

        write_hover(dest.root, res, list(dest.factors))
        if config.save_probs:
            y0, x0, y1, x1 = res["core"]
            fault("maps")
            dest.root["maps"][:, y0:y1, x0:x1] = res["maps"].astype(np.float16)
        fault("table")
        write_table(dest.path, index, res["rows"])

    def finish(self, out: Path, meta: dict[str, Any]) -> None:
        """Merge the block tables into ``instances.csv``; records ``n_instances``."""
        from ..hover import merge_tables

        _, meta["n_instances"] = merge_tables(out)


def id_stride_checked(n_blocks: int) -> int:
    """Instance ids per block for ``n_blocks`` blocks (uint32), at least 4096.

    Parameters
    ----------
    n_blocks : int

    Returns
    -------
    int

    Raises
    ------
    InferError
        Too many blocks: fewer than 4096 ids would be left per block.
    """
    from ..hover import id_stride

    stride = id_stride(n_blocks)
    if stride < 4096:
        raise InferError(
            f"{n_blocks} blocks leave only {stride} instance ids per block (uint32); use larger blocks"
        )
    return stride
