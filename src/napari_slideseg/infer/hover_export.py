"""Exports of a HoVer prediction's nuclei: QuPath GeoJSON, instance RLE CSV, the table.

The nucleus table is read as columns (:mod:`.hover_table`) and handed to
the writers as arrays over the ids (an
:class:`~napari_slideseg.io.export.geojson_props.ObjectColumns`), so an
export of millions of nuclei holds a few arrays of one value per nucleus,
not a Python object per nucleus.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import atomic_path
from .hover_table import merge_tables, read_instance_table

#: Instance-table columns the GeoJSON export reads, and the measurements they become.
GEOJSON_MEASUREMENTS = {"type_prob": "type_probability", "area": "area_px", "area_um2": "area_um2"}
_EXPORTS = ("geojson", "rle", "table")


def export_kind(out: Path, what: str | None) -> str:
    """The export ``what`` names (or ``out``'s suffix implies), checked against ``out``.

    Parameters
    ----------
    out : Path
        The output file.
    what : str or None
        ``"geojson"``, ``"rle"`` or ``"table"``; None: GeoJSON for
        ``.geojson``/``.geojson.gz``/``.json``, else RLE.

    Returns
    -------
    str
        The export.

    Raises
    ------
    ValueError
        An unknown ``what``.
    SlideSegError
        ``out`` does not have the suffix of that export.
    """
    name = out.name.lower()
    is_geojson = name.endswith((".geojson", ".geojson.gz", ".json"))
    if what is None:
        what = "geojson" if is_geojson else "rle"
    fits = {"geojson": is_geojson, "rle": name.endswith(".csv"), "table": name.endswith(".csv")}
    if what not in fits:
        raise ValueError(f"what must be 'geojson', 'rle' or 'table', not {what!r}")
    if not fits[what]:
        from ..io.errors import SlideSegError

        wants = ".geojson or .geojson.gz" if what == "geojson" else ".csv"
        other = (
            "; for an id image (PNG/TIFF/OME-Zarr) export the prediction's instance map "
            "without --instances"
            if what == "rle"
            else ""
        )
        raise SlideSegError(
            f"{out}: the nuclei {'table' if what == 'table' else 'export'} is written as "
            f"{wants}, not {out.suffix or 'a file without extension'}{other}"
        )
    return what


class ClassLookup(Mapping[int, int]):
    """``{id: type}`` over two arrays (sorted ids, their types), without a dict per nucleus.

    Parameters
    ----------
    ids : numpy.ndarray
        Sorted unique ids.
    classes : numpy.ndarray
        The type of each.
    """

    def __init__(self, ids: np.ndarray, classes: np.ndarray) -> None:
        self._ids, self._classes = ids, classes

    def __getitem__(self, key: int) -> int:
        i = int(np.searchsorted(self._ids, key))
        if i >= len(self._ids) or self._ids[i] != key:
            raise KeyError(key)
        return int(self._classes[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)


def nucleus_columns(pred: Path, partial: bool) -> Any:
    """The prediction's nuclei as columns: types, type probability and areas per id.

    Parameters
    ----------
    pred : Path
        The prediction folder.
    partial : bool
        Read the finished blocks of an unfinished prediction.

    Returns
    -------
    ObjectColumns
        Classes = the nuclei's types; measurements ``type_probability``,
        ``area_px`` and (where the mpp is known) ``area_um2``.
    """
    from ..io.export import ObjectColumns

    wanted = ["id", "type", *GEOJSON_MEASUREMENTS]
    tab = read_instance_table(pred, partial=partial, columns=wanted)
    return ObjectColumns.from_arrays(
        tab.pop("id"),
        classes=tab.pop("type"),
        columns={GEOJSON_MEASUREMENTS[c]: tab[c] for c in GEOJSON_MEASUREMENTS if c in tab},
        optional=["area_um2"],
    )


def _export_table(pred: Path, out: Path, missing: int) -> None:
    """The instance table copied to ``out`` (merged from the finished blocks if ``missing``)."""
    if missing:
        merge_tables(pred, out)  # the finished blocks' nuclei (no instances.csv yet)
        return
    with atomic_path(out) as tmp:
        shutil.copyfile(pred / "instances.csv", tmp)


def export_instances_steps(
    pred: str | os.PathLike,
    out: str | os.PathLike,
    *,
    what: str | None = None,
    image_id: str | None = None,
    partial: bool = False,
) -> Generator[Any, None, Path]:
    """Export a HoVer prediction's nuclei (a generator of progress events; returns the path).

    A prediction whose run has not finished is refused
    (:class:`~napari_slideseg.io.masks.IncompletePredictionError`, naming the
    folder and the missing blocks) unless ``partial``: then the finished
    blocks' nuclei are exported, with a warning.

    Parameters
    ----------
    pred : str or os.PathLike
        The HoVer prediction folder.
    out : str or os.PathLike
        The output file.
    what : str, optional
        The export (default: from the suffix of ``out``):

        ``geojson``
            ``.geojson`` / ``.geojson.gz``: one polygon per nucleus as a QuPath
            *detection* with its type's name and ClassMap colour and the type
            probability and area as measurements, streamed block by block, in
            level-0 pixels of the slide whatever level was predicted.
        ``rle``
            ``.csv``: instance RLE CSV, one row per nucleus (id, class, RLE) in
            the prediction's pixels; every row states the level, the slide's
            level-0 size and the µm per pixel.
        ``table``
            ``.csv``: the instance table (id, centroid, bbox, area, type,
            probability, in level-0 pixels, and µm columns when the mpp is
            known), copied atomically.
    image_id : str, optional
        The RLE CSV's ``image_id`` (default: the folder's name up to its first dot).
    partial : bool
        Export the finished blocks of an unfinished prediction.

    Yields
    ------
    Progress
        Progress events.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    IncompletePredictionError
        An unfinished prediction, not ``partial``.
    SlideSegError
        ``pred`` is not a HoVer prediction, or ``out``'s suffix does not fit.
    ValueError
        An unknown ``what``.
    """
    import dask.array as da
    import zarr

    from ..io.masks import check_prediction
    from ..io.palette import ClassMap
    from ..progress import Progress

    pred, out = Path(pred), Path(out)
    missing = check_prediction(pred, partial)
    root = zarr.open_group(str(pred), mode="r")
    if "instances" not in root:
        from ..io.errors import SlideSegError

        raise SlideSegError(f"{pred}: not a HoVer prediction (no 'instances' array)")
    what = export_kind(out, what)
    if what == "table":
        _export_table(pred, out, missing)
        yield Progress("export", 1, 1, f"wrote {out}")
        return out
    from dataclasses import replace

    from ..io.placement import Placement

    attrs: dict[str, Any] = dict(root.attrs)
    meta = attrs.get("slideseg") or {}
    classmap = ClassMap.from_dict(meta["classmap"]) if meta.get("classmap") else None
    nuclei = nucleus_columns(pred, bool(missing))
    labels = da.from_zarr(root["instances"])
    where = replace(Placement.from_attrs(attrs) or Placement(), shape=tuple(labels.shape))
    if what == "geojson":
        from ..io.export import write_geojson_steps

        return (
            yield from write_geojson_steps(
                out,
                labels,
                mode="instances",
                classmap=classmap,
                properties=nuclei,
                object_type="detection",
                placement=where,
            )
        )
    from ..io.rle import write_rle_csv

    write_rle_csv(
        out,
        labels,
        layout="instance",
        image_id=image_id or pred.name.split(".")[0],
        class_names=list(classmap.names) if classmap else None,
        instance_classes=ClassLookup(nuclei.ids, nuclei.classes),
        placement=where,
    )
    yield Progress("export", 1, 1, f"wrote {out}")
    return out
