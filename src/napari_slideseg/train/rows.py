"""Manifest rows: reading them, the class map beside them, the µm/px they state, their dataset."""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.annotations import IGNORE_INDEX
from ..io.palette import ClassMap
from ..models.card import NUCLEUS_CLASSMAP
from .checks import INPUT_NORMS, TrainError

MANIFEST_COLUMNS = ("image", "mask")  # what training reads from every manifest row

logger = logging.getLogger(__name__)

#: One manifest row and the folder its paths are relative to.
Row = tuple[Path, dict[str, str]]


def read_rows(manifests: Sequence[str]) -> list[Row]:
    """Every row of the given patch folders or manifest files, with its folder.

    Parameters
    ----------
    manifests : sequence of str
        Patch folders (holding ``manifest.csv``) or manifest files.

    Returns
    -------
    list of (Path, dict)
        ``(folder, row)`` per patch, in manifest order.

    Raises
    ------
    TrainError
        For a file that is not a CSV, lists no patches, or lacks the
        :data:`MANIFEST_COLUMNS`.
    """
    from ..patching import read_manifest

    rows = []
    for m in manifests:
        p = Path(m)
        base = p if p.is_dir() else p.parent
        f = p / "manifest.csv" if p.is_dir() else p
        try:
            got = read_manifest(p)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise TrainError(f"{f}: not a patch manifest (not a CSV file: {exc})") from None
        if not got:
            raise TrainError(f"{f}: the manifest lists no patches")
        lacking = [c for c in MANIFEST_COLUMNS if c not in got[0]]
        if lacking or None in got[0]:
            problem = (
                f"no {', '.join(lacking)} column{'s' if len(lacking) > 1 else ''}"
                if lacking
                else "rows with more fields than the header"
            )
            raise TrainError(f"{f}: not a patch manifest ({problem}; make one with slideseg patch)")
        rows += [(base, r) for r in got]
    return rows


def saved_classmap(manifests: Sequence[str]) -> ClassMap | None:
    """The ``classmap.json`` written next to the first manifest that has one.

    Parameters
    ----------
    manifests : sequence of str
        Patch folders or manifest files.

    Returns
    -------
    ClassMap or None
        ``None`` when no folder holds one.
    """
    for m in manifests:
        p = Path(m)
        f = (p if p.is_dir() else p.parent) / "classmap.json"
        if f.exists():
            return ClassMap.load_json(f)
    return None


def classmap_for(manifests: Sequence[str], *, stacklevel: int = 3) -> ClassMap:
    """The patch folder's class map, or one with distinct default colours per manifest class.

    Parameters
    ----------
    manifests : sequence of str
        Patch folders or manifest files.
    stacklevel : int
        Of the warning given when there is no ``classmap.json``.

    Returns
    -------
    ClassMap
        The saved map, else a default one named by the ``frac_`` columns.

    Raises
    ------
    TrainError
        When there is no saved map and the manifest names no classes.
    """
    saved = saved_classmap(manifests)
    if saved is not None:
        return saved
    rows = read_rows(manifests[:1])
    names = [k[5:] for k in rows[0][1] if k.startswith("frac_")]
    if not names:
        raise TrainError(f"{manifests[0]}: the manifest names no classes (no frac_ columns)")
    warnings.warn(
        f"{manifests[0]}: no classmap.json beside the manifest; using default colours for "
        f"{names} (extract patches with a class map to keep the mask's colours)",
        UserWarning,
        stacklevel=stacklevel,
    )
    return ClassMap.default(len(names), names)


def hover_classmap(manifests: Sequence[str], rows: list[Row]) -> tuple[ClassMap, int]:
    """Nucleus-type ClassMap and NC channels of a HoVer run (0 when no patch has types).

    Parameters
    ----------
    manifests : sequence of str
        Patch folders or manifest files (for a saved ``classmap.json``).
    rows : list of (Path, dict)
        The training rows.

    Returns
    -------
    tuple of (ClassMap, int)
        The type map (saved, else ``consep4``) and its number of classes.
    """
    if not any(r.get("types") for _, r in rows):
        return NUCLEUS_CLASSMAP, 0
    saved = saved_classmap(manifests)
    if saved is not None:
        return saved, saved.n_classes
    from ..io.palette import NUCLEUS_PRESETS

    cm = NUCLEUS_PRESETS["consep4"]
    logger.info("no classmap.json beside the nucleus patches: their types are read as consep4")
    return cm, cm.n_classes


def training_mpp(
    rows: Sequence[Row], mixed: bool = False, *, stacklevel: int = 3
) -> tuple[float | None, dict[str, float | None]]:
    """µm/px of the training patches (from the manifests) and each folder's value.

    Folders whose values differ by more than 10 % are refused unless ``mixed``
    (then the median over the patches is returned). ``None`` when no manifest
    states it.

    Parameters
    ----------
    rows : sequence of (Path, dict)
        Manifest rows with their folders.
    mixed : bool
        Accept folders of different µm/px.
    stacklevel : int
        Of the warning given when some folders state no µm/px.

    Returns
    -------
    tuple of (float or None, dict)
        The median µm/px and each folder's first stated value.

    Raises
    ------
    TrainError
        For folders more than 10 % apart, unless ``mixed``.
    """
    per: dict[str, float | None] = {}
    values = []
    for base, r in rows:
        v = r.get("mpp")
        f = float(v) if v not in (None, "") else None
        key = str(base)
        if key not in per or per[key] is None:
            per[key] = f
        if f is not None:
            values.append(f)
    if not values:
        return None, per
    lo, hi = min(values), max(values)
    if hi > lo * 1.1 and not mixed:
        listing = ", ".join(f"{k}: {v:g}" for k, v in per.items() if v is not None)
        raise TrainError(
            f"the patch folders were cut at different resolutions ({listing} µm/px); a model "
            "learns one scale: re-extract them at one µm/px (--zoom / --target-mpp), or allow "
            "it with mixed_mpp=True (--mixed-mpp)"
        )
    unknown = [k for k, v in per.items() if v is None]
    if unknown:
        warnings.warn(
            f"patch folder(s) {unknown} state no µm/px; the card records {float(np.median(values)):g} "
            "from the others",
            UserWarning,
            stacklevel=stacklevel,
        )
    return float(np.median(values)), per


def top_class_value(mask: np.ndarray) -> int:
    """The largest value of a class mask other than the ignore value.

    Parameters
    ----------
    mask : numpy.ndarray
        A class mask; :data:`~napari_slideseg.io.annotations.IGNORE_INDEX`
        marks unannotated pixels (no label).

    Returns
    -------
    int
        The largest labelled value, or -1 when the mask is empty or holds
        only the ignore value.
    """
    if not mask.size:
        return -1
    top = int(mask.max())
    if top != IGNORE_INDEX:
        return top
    labelled = mask[mask != IGNORE_INDEX]
    return int(labelled.max()) if labelled.size else -1


def rows_dataset(
    rows: list[Row],
    transform: Any,
    seed: int,
    hover: bool = False,
    n_classes: int | None = None,
    norm: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Any:
    """A :class:`~napari_slideseg.dataset.PatchDataset` over pre-read rows (splits re-read nothing).

    Parameters
    ----------
    rows : list of (Path, dict)
        The patches.
    transform
        The augmentation, or ``None``.
    seed : int
        The dataset's seed.
    hover : bool
        Instance patches: the targets are HoVer-Net maps of (ids, types).
    n_classes : int or None
        Masks holding a value ``>= n_classes`` are refused when loaded, except
        :data:`~napari_slideseg.io.annotations.IGNORE_INDEX` (unannotated
        pixels: no label, left out of the losses and the scores).
    norm : tuple of (mean, std) or None
        The input normalisation (ImageNet's when ``None``).

    Returns
    -------
    PatchDataset
        Loading each row's image and mask on access.
    """
    from ..dataset import PatchDataset, load_ref

    mean, std = norm or INPUT_NORMS["imagenet"]  # type: ignore[misc]

    zcache: dict[Path, Any] = {}

    def load(item: Row) -> tuple[np.ndarray, np.ndarray | None]:
        base, row = item
        img = load_ref(base, row["image"], zcache)
        mask = load_ref(base, row["mask"], zcache) if row.get("mask") else None
        if n_classes is not None and mask is not None:
            top = top_class_value(mask)
            if top >= n_classes:
                raise TrainError(
                    f"{base / row['mask']}: mask value {top} is not a class (the patch set "
                    f"has {n_classes} classes, values 0..{n_classes - 1}); re-extract the "
                    "patches with the right class map"
                )
        if hover and mask is not None:
            # instance ids and types travel together through the augmentation
            from ..instances.targets import UNKNOWN_TYPE

            types = (
                load_ref(base, row["types"], zcache)
                if row.get("types")
                else np.full(mask.shape, UNKNOWN_TYPE, np.uint16)
            )
            mask = np.stack([mask.astype(np.uint16), types.astype(np.uint16)], -1)
        return img, mask

    target_fn = None
    if hover:
        from ..instances.targets import hover_target_array

        target_fn = hover_target_array
    return PatchDataset(
        rows, load, transform=transform, seed=seed, target_fn=target_fn, mean=mean, std=std
    )
