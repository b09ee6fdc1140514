"""``PatchDataset``: a torch Dataset over a patch folder/manifest or straight from slides.

Both sources give ``(image, mask)`` pairs: ``image`` a float32 tensor
``(3, s, s)`` normalised with ``mean``/``std`` (ImageNet values by default,
hard-coded: smp's preprocessing helper would reach for a model hub), ``mask``
an int64 tensor ``(s, s)`` of class indices (zeros when there is no mask).
Augmentation (an albumentations ``Compose``, or a preset name from
:mod:`napari_slideseg.augment`) is applied to image and mask together before
normalisation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .normalization import IMAGENET
from .patching import (
    PatchConfig,
    PatchError,
    align_mask,
    iter_patches,
    patch_resolution,
    plan_patches,
    read_manifest,
    read_patch_window,
)

logger = logging.getLogger(__name__)


def _read_png(path: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise PatchError(f"{path}: cannot be read as an image")
    if arr.ndim == 3:
        arr = arr[..., :3][..., ::-1]
    return np.ascontiguousarray(arr)


class PatchDataset(Dataset):
    """Patches as ``(image, mask)`` tensor pairs (a ``torch.utils.data.Dataset``).

    Build it with :meth:`from_manifest` or :meth:`from_slide`.

    Parameters
    ----------
    items : sequence
        One entry per patch, passed to ``loader``.
    loader : callable
        ``loader(item) -> (image, mask or None)`` as uint8 NumPy arrays.
    transform : albumentations.Compose or str, optional
        Augmentation applied to image and mask together, or a preset name of
        :func:`~napari_slideseg.augment.build_augmentation`.
    seed : int, optional
        Seeds a preset named by ``transform``.
    mean, std : sequence of float
        Per-channel normalisation of [0, 1] pixels (ImageNet's by default).
    info : dict, optional
        Where the patches come from (slide, level, zoom, mpp), kept as :attr:`info`.
    target_fn : callable, optional
        Turns the (augmented) mask into the training target (e.g. HoVer
        maps); None: the mask as int64 class indices.
    """

    def __init__(
        self,
        items: Sequence[Any],
        loader: Any,
        *,
        transform: Any = None,
        seed: int | None = None,
        mean: Sequence[float] = IMAGENET["mean"],
        std: Sequence[float] = IMAGENET["std"],
        info: dict[str, Any] | None = None,
        target_fn: Any = None,
    ) -> None:
        from .augment import build_augmentation

        self.items = list(items)
        self._loader = loader
        self.transform = (
            build_augmentation(transform, seed) if isinstance(transform, str) else transform
        )
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.info = info or {}
        #: Turns the (augmented) mask into the training target (e.g. HoVer maps);
        #: None: the mask as int64 class indices.
        self.target_fn = target_fn

    # -- constructors -------------------------------------------------------------
    @classmethod
    def from_manifest(
        cls, manifests: str | os.PathLike | Sequence[str | os.PathLike], **kwargs: Any
    ) -> PatchDataset:
        """Patches listed in one or more ``manifest.csv`` files (or folders holding one).

        Parameters
        ----------
        manifests : str, os.PathLike or sequence of them
            Manifest files or patch folders.
        **kwargs
            Other :class:`PatchDataset` arguments (``transform``, ``mean``...).

        Returns
        -------
        PatchDataset
            One item per listed patch, read lazily.

        Raises
        ------
        PatchError
            When no patch is listed.
        """
        if isinstance(manifests, str | os.PathLike):
            manifests = [manifests]
        items = []
        for m in manifests:
            p = Path(m)
            base = p if p.is_dir() else p.parent
            for row in read_manifest(p):
                items.append((base, row))
        if not items:
            raise PatchError(f"no patches listed in {', '.join(map(str, manifests))}")
        zcache: dict[Path, Any] = {}

        def load(item: tuple[Path, dict[str, str]]) -> tuple[np.ndarray, np.ndarray | None]:
            base, row = item
            return load_ref(base, row["image"], zcache), (
                load_ref(base, row["mask"], zcache) if row.get("mask") else None
            )

        return cls(items, load, **kwargs)

    @classmethod
    def from_slide(
        cls,
        slide: Any,
        config: PatchConfig,
        mask: Any | None = None,
        *,
        prefilter: bool = False,
        **kwargs: Any,
    ) -> PatchDataset:
        """Patches read on the fly from ``slide`` (nothing is written).

        Region and tissue filters apply from the plan; the pixel filters (black,
        white, background-only) need the pixels, so they apply only with
        ``prefilter=True`` (one read pass over the kept grid at construction).

        Parameters
        ----------
        slide : Slide
            The slide.
        config : PatchConfig
            Patch size, stride, level, zoom and filters.
        mask : array-like, optional
            Label image aligned to the slide (any level; resampled to the patches').
        prefilter : bool
            Apply the pixel filters now.
        **kwargs
            Other :class:`PatchDataset` arguments.

        Returns
        -------
        PatchDataset
            One item per kept grid position.
        """
        plan = plan_patches(slide, config)
        img = slide.levels[plan.level]
        msk = align_mask(mask, slide, plan.level) if mask is not None else None
        positions = [tuple(map(int, p)) for p in plan.positions]
        if prefilter:
            positions = [
                (p.y, p.x)
                for p in iter_patches(slide, config, mask, plan=plan)
                if not hasattr(p, "stage")
            ]

        def load(pos: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
            # the window function extract_patches uses (zoom included), one patch at a time
            at = np.asarray([pos])
            _, im = read_patch_window(
                img, at, config.size, config.pad_mode, config.pad_value, config.zoom
            )
            mk = None
            if msk is not None:
                mask_pad = "reflect" if config.pad_mode == "reflect" else "constant"
                _, mk = read_patch_window(
                    msk, at, config.size, mask_pad, 0, config.zoom, labels=True
                )
            return im, mk

        info = {
            "slide": slide.path,
            "level": plan.level,
            "zoom": config.zoom,
            "mpp": patch_resolution(slide, plan.level, config.zoom),
        }
        return cls(positions, load, info=info, **kwargs)

    # -- Dataset protocol -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def load_numpy(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The raw (augmented) ``uint8`` image and mask of item ``index``.

        Grey images are repeated to RGB and channels past the third dropped.

        Parameters
        ----------
        index : int
            The item.

        Returns
        -------
        tuple
            ``(image (s, s, 3), mask (s, s) or None)``.
        """
        image, mask = self._loader(self.items[index])
        if image.ndim == 2:
            logger.debug("item %d is grey: repeated to RGB", index)
            image = np.repeat(image[..., None], 3, -1)
        elif image.shape[-1] > 3:
            logger.debug("item %d has %d channels: the first 3 are used", index, image.shape[-1])
        image = image[..., :3]
        if self.transform is not None:
            if mask is not None:
                out = self.transform(image=image, mask=mask)
                image, mask = out["image"], out["mask"]
            else:
                image = self.transform(image=image)["image"]
        return image, mask

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        image, mask = self.load_numpy(index)
        x = (image.astype(np.float32) / 255.0 - self.mean) / self.std
        x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
        if mask is None:
            m_t = torch.zeros(image.shape[:2], dtype=torch.int64)
        elif self.target_fn is not None:
            m_t = torch.from_numpy(np.ascontiguousarray(self.target_fn(mask)))
        else:
            m_t = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
        return x_t, m_t


def load_ref(base: Path, ref: str, zcache: dict[Path, Any]) -> np.ndarray:
    """The patch a manifest reference names, under the manifest folder ``base``.

    ``<store>.zarr/<array>/<index>`` is row ``index`` of a patch stack (zarr
    groups are kept open in ``zcache``); anything else is a PNG file.

    Parameters
    ----------
    base : Path
        The manifest's folder.
    ref : str
        The manifest entry.
    zcache : dict
        Open zarr groups by path (filled here).

    Returns
    -------
    numpy.ndarray
        The patch's pixels.

    Raises
    ------
    PatchError
        For a PNG that cannot be read.
    """
    if ".zarr/" in ref:
        store, rest = ref.split(".zarr/", 1)
        zpath = base / f"{store}.zarr"
        if zpath not in zcache:
            import zarr

            zcache[zpath] = zarr.open_group(str(zpath), mode="r")
        name, idx = rest.rsplit("/", 1)
        return np.asarray(zcache[zpath][name][int(idx)])
    return _read_png(base / ref)
