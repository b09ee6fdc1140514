"""OME-Zarr labels export: an NGFF 0.4 label image ``labels/<name>/`` with colours and properties.

The store holds no image (the slide is not copied): its root lists the
label image (``attrs["slideseg"]["labels"]``), and ``labels/<name>/`` holds
the label pyramid written by :func:`~napari_slideseg.io.ngff.write_label_image_steps`.
It is built under a temporary name and moved into place when complete; an
existing folder is replaced only when it is an earlier export of this
plugin (:func:`check_zarr_target`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import dask.array as da

from ...progress import Progress, drain
from ..files import replace_path, temp_name
from ..ngff import image_label, ngff_label_name, write_label_image_steps
from ..palette import ClassMap, MaskError
from ..placement import Placement
from .common import as_label_image, check_not_empty, jsonable, resolve_placement

logger = logging.getLogger(__name__)

#: Entries an OME-Zarr labels store of this plugin holds at its root (new and old layout).
_LABEL_STORE_ENTRIES = {".zgroup", ".zattrs", "zarr.json", "labels"}


def _root_attrs(path: Path) -> dict[str, Any] | None:
    """A zarr folder's root attributes (v2 ``.zattrs`` or v3 ``zarr.json``); None if unreadable."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        meta = path / name
        if meta.is_file():
            try:
                doc = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            attrs = doc.get(key, {}) if key and isinstance(doc, dict) else doc
            return attrs if isinstance(attrs, dict) else None
    return {} if (path / ".zgroup").is_file() else None


def check_zarr_target(path: str | os.PathLike) -> bool:
    """Refuse an OME-Zarr output path that holds anything but an earlier labels export.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.ome.zarr`` folder.

    Returns
    -------
    bool
        Whether ``path`` exists (an earlier OME-Zarr labels export of this
        plugin, or an empty folder), to be replaced.

    Raises
    ------
    MaskError
        Naming ``path`` and why, before anything is written, when it is a
        file, a prediction folder (``slideseg predict`` output:
        ``slideseg_inference`` attributes or ``done`` marks), another zarr
        store or a folder with other files.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    fix = "choose another output name, or delete it first if it is no longer needed"
    if not path.is_dir() or path.is_symlink():
        raise MaskError(f"{path}: exists and is not a folder; it is not replaced: {fix}")
    entries = {e.name for e in path.iterdir()}
    if not entries:
        return True
    attrs = _root_attrs(path)
    if (attrs is not None and "slideseg_inference" in attrs) or "done" in entries:
        raise MaskError(
            f"{path}: is a prediction folder (slideseg predict output); exporting onto it would "
            f"destroy the prediction: {fix}"
        )
    if attrs is None:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise MaskError(
            f"{path}: is a folder that is not a zarr store (it holds {shown}); it is not "
            f"replaced: {fix}"
        )
    ours = attrs.get("slideseg")
    new_layout = isinstance(ours, dict) and isinstance(ours.get("labels"), list)
    old_layout = isinstance(ours, dict) and "image-label" in attrs
    other = sorted(e for e in entries - _LABEL_STORE_ENTRIES if not (old_layout and e.isdigit()))
    if not (new_layout or old_layout):
        raise MaskError(
            f"{path}: is a zarr store that is not an OME-Zarr labels export of napari-slideseg "
            f"(a slide or another program's data); it is not replaced: {fix}"
        )
    if other:
        raise MaskError(
            f"{path}: is an earlier labels export but also holds other files "
            f"({', '.join(other[:5])}{', ...' if len(other) > 5 else ''}); it is not replaced: {fix}"
        )
    return True


def _move_into_place(tmp: Path, path: Path, replace: bool) -> None:
    """Rename the finished store ``tmp`` to ``path``.

    ``replace`` (``path`` held an earlier export or nothing when checked):
    the old folder is renamed aside first and deleted once ``tmp`` is in
    place. Otherwise a plain rename, which refuses a non-empty folder that
    appeared at ``path`` since the check.
    """
    if replace:
        replace_path(tmp, path)
    else:
        os.replace(tmp, path)


def _label_provenance(
    classmap: ClassMap | None,
    where: Placement | None,
    source: Mapping[str, Any] | None,
    instances: bool,
) -> dict[str, Any]:
    """The ``slideseg`` attributes of an exported label image: kind, class map, placement, source."""
    slideseg: dict[str, Any] = {"kind": "instances" if instances else "semantic"}
    if instances:
        slideseg["instances"] = True
    if classmap is not None:
        slideseg["classmap"] = classmap.to_dict()
    if where is not None:
        slideseg["placement"] = where.to_dict()
    if source:
        slideseg["source"] = {k: jsonable(v) for k, v in dict(source).items()}
    return slideseg


def write_ome_zarr_labels_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    properties: Mapping[int, Mapping[str, Any]] | None = None,
    name: str = "labels",
    mpp: tuple[float, float] | None = None,
    chunk: int = 1024,
    lowest_max: int = 1024,
    source: Mapping[str, Any] | None = None,
    placement: Placement | None = None,
    instances: bool = False,
) -> Generator[Progress, None, Path]:
    """:func:`write_ome_zarr_labels` as a generator of progress events.

    Parameters
    ----------
    path, labels, classmap, properties, name, mpp, chunk, lowest_max, source, placement, instances
        See :func:`write_ome_zarr_labels`.

    Yields
    ------
    Progress
        One event per written block, over all levels.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        Before anything is written: the labels are not a non-empty 2D
        integer image, or ``path`` may not be replaced
        (:func:`check_zarr_target`).
    """
    import zarr

    path = Path(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    replace = check_zarr_target(path)
    if not isinstance(labels, da.Array):
        labels = da.from_array(labels, chunks=chunk)
    where = resolve_placement(placement, mpp, labels.shape)
    label_name = ngff_label_name(name)
    if label_name != name:
        logger.debug("label image name %r written as %r (NGFF group name)", name, label_name)
    props = (
        {v: {k: jsonable(x) for k, x in extra.items()} for v, extra in properties.items()}
        if properties
        else None
    )
    tmp = temp_name(path)
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        root.attrs.update({"slideseg": {"labels": [label_name]}})
        yield from write_label_image_steps(
            root,
            label_name,
            labels,
            mpp=where.pixel_mpp if where is not None else None,
            chunk=chunk,
            lowest_max=lowest_max,
            image_label_attrs=image_label(None if instances else classmap, props),
            attrs={"slideseg": _label_provenance(classmap, where, source, instances)},
        )
        _move_into_place(tmp, path, replace)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def write_ome_zarr_labels(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write labels as an OME-Zarr (NGFF 0.4) label image with colours and per-label properties.

    The store is laid out as NGFF labels: the root group's ``labels`` group
    lists the label image (``{"labels": [name]}``), and ``labels/<name>/``
    holds the pyramid (``0``, ``1``, ...) with ``multiscales`` and
    ``image-label`` metadata (class colours as ``colors``, class names and
    ``properties`` per label value). The root holds no image (the slide is
    not copied), so other NGFF readers such as napari-ome-zarr open
    ``<path>/labels``; this plugin opens ``<path>`` itself.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.ome.zarr`` directory, written under a temporary name and
        renamed into place when complete. An existing folder is replaced
        only when it is an earlier labels export of this plugin (or empty);
        a prediction folder, another zarr store or a folder with other files
        is refused (:func:`check_zarr_target`) before anything is written.
    labels : numpy.ndarray or dask.array.Array
        2D integer label image, written block by block.
    **kwargs
        ``classmap`` (colours and class names per value; for ``instances``
        the classes named in the properties), ``properties``
        (``{value: {key: value}}``, e.g. instance type and area), ``name``
        (the label image's group name, cleaned to letters, digits, ``._-``),
        ``instances`` (label values are object ids: no class colours),
        ``mpp`` (``(y, x)`` µm/px, recorded as the scale, axes in
        micrometres), ``placement`` (level, factors and level-0 mpp: its
        µm/px is the scale, and it is kept in ``attrs["slideseg"]``), ``chunk``,
        ``lowest_max`` (reduced levels by nearest sampling down to this size),
        ``source`` (provenance dict, kept in ``attrs["slideseg"]["source"]``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        See :func:`write_ome_zarr_labels_steps`.
    """
    return drain(write_ome_zarr_labels_steps(path, labels, **kwargs))
