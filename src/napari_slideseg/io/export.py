"""Writers for label images: colour-map PNG, RLE CSV, OME-Zarr labels, GeoJSON.

Every writer streams: a NumPy or dask label array is walked in bands or
blocks, so exporting a 50k x 50k dask-backed labels layer never materialises
it. Every writer writes to a temporary name and renames the file (or folder)
into place when complete; a failed or cancelled export leaves nothing that
looks finished.

Formats that cannot stream say so and refuse above a documented size: the
semantic GeoJSON mode (connected components per class) needs the whole array
and refuses above :data:`GEOJSON_SEMANTIC_MAX_PIXELS`.

Coordinates and resolution: each writer takes a
:class:`~napari_slideseg.io.placement.Placement` (the labels' pyramid level,
the factors to level-0 pixels, the level-0 microns per pixel). GeoJSON is
written in level-0 pixels of the slide whatever level the labels hold;
raster formats keep their own pixels and record their resolution (PNG
``pHYs``, TIFF ``XResolution``/``YResolution`` in centimetres, OME-Zarr
scale in micrometres) and their placement, so they reopen on the slide.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..progress import Progress, drain
from .blocks import iter_bands, iter_blocks
from .files import atomic_path, replace_path, temp_name
from .ngff import NGFF_VERSION as NGFF_VERSION
from .ngff import image_label, ngff_label_name, write_label_image_steps
from .palette import ClassMap, MaskError, check_label_range
from .placement import Placement, mpp_to_ppm
from .pngstream import PngStreamWriter

#: Rows per band when streaming a PNG (bounded memory: band x width x 3 bytes).
PNG_BAND_ROWS = 512
#: The semantic GeoJSON mode needs the whole label array: refused above this size.
GEOJSON_SEMANTIC_MAX_PIXELS = 20000 * 20000
#: tEXt key under which PNG writers record the class map (JSON).
PNG_CLASSMAP_KEY = "slideseg:classmap"
#: tEXt key under which PNG writers record the placement (JSON, :meth:`Placement.to_dict`).
PNG_PLACEMENT_KEY = "slideseg:placement"
#: Tile edge of colour TIFF masks.
TIFF_TILE = 512

logger = logging.getLogger(__name__)


def resolve_placement(
    placement: Placement | None, mpp: tuple[float, float] | None, shape: tuple[int, ...]
) -> Placement | None:
    """The placement a writer records: ``placement``, else level-0 pixels of ``mpp`` µm, else None."""
    if placement is None and mpp is None:
        return None
    if placement is None:
        placement = Placement.from_pixel_mpp(mpp)
    from dataclasses import replace

    return replace(placement, shape=(int(shape[0]), int(shape[1])))


def as_label_image(labels: Any, what: str = "labels") -> Any:
    """``labels`` if it is a 2D integer label image, else a :class:`MaskError` naming ``what``."""
    if labels.ndim != 2:
        raise MaskError(f"{what} must be a 2D label image, got shape {tuple(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise MaskError(f"{what} must have an integer dtype, got {labels.dtype}")
    return labels


def check_file_target(path: str | os.PathLike) -> Path:
    """Refuse an output file path that is an existing directory (before anything is written).

    Raises :class:`MaskError` naming the path: the rename of the finished
    temporary file onto a directory would fail only at the end, with an
    ``Is a directory`` error naming the temporary file.
    """
    path = Path(path)
    if path.is_dir():
        raise MaskError(f"{path}: is a directory; give a file name")
    return path


def check_not_empty(labels: Any, path: str | os.PathLike) -> None:
    """Refuse a label image without pixels (a 0 x 0 layer): no file would be usable."""
    if int(np.prod(labels.shape)) == 0:
        shape = " x ".join(str(int(n)) for n in labels.shape)
        raise MaskError(f"{path}: the labels are empty ({shape} pixels); nothing to save")


def _check_range(band: np.ndarray, classmap: ClassMap, path: Path) -> None:
    if band.size and band.dtype != bool:
        check_class_values(int(band.min()), path)
    try:
        check_label_range(band, classmap)
    except MaskError as err:
        raise MaskError(f"{path}: {err} ({', '.join(classmap.names)})") from err


# -----------------------------------------------------------------------------
# PNG
# -----------------------------------------------------------------------------
def write_color_png_steps(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    indexed: bool = False,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_color_png` as a generator of progress events."""
    path = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    h, w = labels.shape
    colors = np.asarray(classmap.colors, np.uint8)
    text = {PNG_CLASSMAP_KEY: json.dumps(classmap.to_dict())}
    where = resolve_placement(placement, mpp, (h, w))
    ppm = None
    if where is not None:
        text[PNG_PLACEMENT_KEY] = json.dumps(where.to_dict())
        if where.pixel_mpp is not None:
            ppm = mpp_to_ppm(where.pixel_mpp)
    if indexed:
        if classmap.n_classes > 256:
            raise MaskError(
                f"{path}: an indexed PNG holds at most 256 classes, not {classmap.n_classes}"
            )
        writer = PngStreamWriter(path, w, h, "P", palette=colors, level=level, text=text, ppm=ppm)
    else:
        writer = PngStreamWriter(path, w, h, "RGB", level=level, text=text, ppm=ppm)
    n = -(-h // band_rows)
    try:
        with writer:
            for i, (_, band) in enumerate(iter_bands(labels, band_rows)):
                _check_range(band, classmap, path)
                writer.write_rows(band.astype(np.uint8) if indexed else colors[band])
                yield Progress("png", i + 1, n, f"PNG rows {min(h, (i + 1) * band_rows)}/{h}")
    finally:
        _drop_png_temp(writer)
    return path


def _drop_png_temp(writer: PngStreamWriter) -> None:
    """Remove a PNG writer's temporary file if it is still there (its final rename failed)."""
    tmp = getattr(writer, "_tmp", None)
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def write_color_png(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    indexed: bool = False,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
) -> Path:
    """Write labels as a colour-map PNG using the class map's RGB colours.

    Parameters
    ----------
    path
        Output ``.png``.
    labels
        2D integer label image (NumPy or dask), values are class indices.
    classmap
        Gives each class index its RGB colour.
    indexed
        Write a palette (indexed-colour) PNG whose pixel values are the class
        indices and whose palette is the class colours: decoded as RGB it is
        identical to the RGB PNG, and it is 3x smaller before compression.
    band_rows
        Rows encoded per step (memory: ``band_rows x width x 3`` bytes).
    level
        zlib level.
    placement
        Where the labels sit on their slide (level, factors, level-0 mpp):
        recorded in a ``tEXt`` chunk (``slideseg:placement``), and the
        labels' own µm per pixel in the ``pHYs`` chunk.
    mpp
        ``(y, x)`` µm per pixel of the labels, when there is no ``placement``.

    Returns
    -------
    Path
        ``path``. The class map is recorded in a ``tEXt`` chunk
        (``slideseg:classmap``) so the PNG reads back with its class names.
    """
    return drain(
        write_color_png_steps(
            path,
            labels,
            classmap,
            indexed=indexed,
            band_rows=band_rows,
            level=level,
            placement=placement,
            mpp=mpp,
        )
    )


def write_index_png(
    path: str | os.PathLike, labels: Any, *, band_rows: int = PNG_BAND_ROWS
) -> Path:
    """Write labels as a single-channel PNG of class indices (8-bit, or 16-bit above 255)."""
    path = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    h, w = labels.shape
    top = (
        int(labels.max().compute() if isinstance(labels, da.Array) else labels.max())
        if labels.size
        else 0
    )
    if top >= 2**16 or (labels.size and int(labels.min()) < 0):
        raise MaskError(f"{path}: a PNG index mask holds values 0..65535")
    depth = 8 if top < 256 else 16
    png = PngStreamWriter(path, w, h, "L", bit_depth=depth)
    try:
        with png:
            for _, band in iter_bands(labels, band_rows):
                png.write_rows(band)
    finally:
        _drop_png_temp(png)
    return path


#: tEXt key under which the id PNG writer marks an instance map (JSON: type class map).
PNG_INSTANCES_KEY = "slideseg:instances"
#: Largest id a 16-bit id PNG holds.
PNG_MAX_ID = 2**16 - 1


def id_refusal(path: Path, top: int, limit: int, fmt: str) -> MaskError:
    """The error for an instance id ``top`` above what format ``fmt`` holds (``limit``)."""
    return MaskError(
        f"{path}: instance id {top} does not fit a {fmt} (ids 0..{limit}); save the instance "
        "layer as .tif (32-bit ids), .csv (one RLE row per instance), .zarr (OME-Zarr labels) "
        "or .geojson (one polygon per instance), or save the nucleus-type layer as a colour PNG"
    )


def _check_ids(band: np.ndarray, path: Path, limit: int, fmt: str) -> None:
    if band.size == 0:
        return
    lo, hi = int(band.min()), int(band.max())
    if lo < 0:
        raise MaskError(f"{path}: instance ids must be non-negative, found {lo}")
    if hi > limit:
        raise id_refusal(path, hi, limit, fmt)


def write_id_png_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_id_png` as a generator of progress events."""
    path = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    h, w = labels.shape
    meta: dict[str, Any] = {"instances": True}
    if classmap is not None:
        meta["classmap"] = classmap.to_dict()
    text = {PNG_INSTANCES_KEY: json.dumps(meta)}
    where = resolve_placement(placement, mpp, (h, w))
    ppm = None
    if where is not None:
        text[PNG_PLACEMENT_KEY] = json.dumps(where.to_dict())
        if where.pixel_mpp is not None:
            ppm = mpp_to_ppm(where.pixel_mpp)
    n = -(-h // band_rows)
    png = PngStreamWriter(path, w, h, "L", bit_depth=16, level=level, text=text, ppm=ppm)
    try:
        with png:
            for i, (_, band) in enumerate(iter_bands(labels, band_rows)):
                _check_ids(band, path, PNG_MAX_ID, "16-bit PNG")
                png.write_rows(band.astype(np.uint16))
                yield Progress("png", i + 1, n, f"PNG rows {min(h, (i + 1) * band_rows)}/{h}")
    finally:
        _drop_png_temp(png)
    return path


def write_id_png(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write an instance map as a 16-bit grey PNG whose pixel values are the ids (0..65535).

    The ids are kept as they are (never renumbered, so they still match the
    instance table); an id above 65535 is refused with a message naming the
    formats that hold it (``.tif`` 32-bit ids, ``.csv``, ``.zarr``,
    ``.geojson``), and nothing is written. The file is marked as an instance
    map (``tEXt`` ``slideseg:instances``, with the type class map if given as
    ``classmap``) and records ``placement``/``mpp`` like the colour PNG.
    """
    return drain(write_id_png_steps(path, labels, **kwargs))


# -----------------------------------------------------------------------------
# TIFF
# -----------------------------------------------------------------------------
def write_color_tiff_steps(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
    tile: int = TIFF_TILE,
) -> Generator[Progress, None, Path]:
    """:func:`write_color_tiff` as a generator of progress events."""

    path = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    h, w = labels.shape
    colors = np.asarray(classmap.colors, np.uint8)
    where = resolve_placement(placement, mpp, (h, w))
    desc: dict[str, Any] = {"classmap": classmap.to_dict()}
    if where is not None:
        desc["placement"] = where.to_dict()
    n_rows = -(-h // tile)
    progress: list[Progress] = []

    def tiles() -> Iterator[np.ndarray]:
        for i, (_, band) in enumerate(iter_bands(labels, tile)):
            _check_range(band, classmap, path)
            rgb = colors[band]
            for x0 in range(0, w, tile):
                t = np.zeros((tile, tile, 3), np.uint8)
                part = rgb[:, x0 : x0 + tile]
                t[: part.shape[0], : part.shape[1]] = part
                yield t
            progress.append(
                Progress("tiff", i + 1, n_rows, f"TIFF rows {min(h, (i + 1) * tile)}/{h}")
            )

    _write_tiled_tiff(path, tiles(), (h, w, 3), np.dtype(np.uint8), "rgb", tile, desc, where)
    yield from progress
    return path


def _write_tiled_tiff(
    path: Path,
    tiles: Iterator[np.ndarray],
    shape: tuple[int, ...],
    dtype: np.dtype,
    photometric: str,
    tile: int,
    desc: dict[str, Any],
    where: Placement | None,
) -> None:
    """Stream ``tiles`` into a zlib-tiled TIFF at ``path`` (temporary name, then rename).

    The slideseg description (class map, placement) goes into the image
    description, the pixel size (when known) into the resolution tags.
    """
    import tifffile

    kwargs: dict[str, Any] = {}
    if where is not None and where.pixel_mpp is not None:
        my, mx = where.pixel_mpp
        kwargs = {"resolution": (1e4 / mx, 1e4 / my), "resolutionunit": "CENTIMETER"}
    nbytes = int(np.prod(shape)) * dtype.itemsize
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=nbytes > 2**31) as tw:
        tw.write(
            tiles,
            shape=shape,
            dtype=dtype,
            tile=(tile, tile),
            photometric=photometric,
            compression="zlib",
            description=json.dumps({"slideseg": desc}),
            metadata=None,
            software="napari-slideseg",
            **kwargs,
        )


def write_color_tiff(
    path: str | os.PathLike, labels: Any, classmap: ClassMap, **kwargs: Any
) -> Path:
    """Write labels as a tiled, deflate-compressed colour TIFF in the class map's colours.

    ``placement`` (or ``mpp``, µm per pixel of the labels) is recorded as
    ``XResolution``/``YResolution`` in pixels per centimetre (``ResolutionUnit``
    centimetre), and with the class map as JSON in ``ImageDescription``
    (``{"slideseg": {"classmap": ..., "placement": ...}}``); ``tile`` is the
    tile edge. Streams a row of tiles at a time.
    """
    return drain(write_color_tiff_steps(path, labels, classmap, **kwargs))


def write_id_tiff_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
    tile: int = TIFF_TILE,
) -> Generator[Progress, None, Path]:
    """:func:`write_id_tiff` as a generator of progress events."""

    path = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    h, w = labels.shape
    small = labels.dtype.kind == "u" and labels.dtype.itemsize <= 2
    dtype = np.dtype(np.uint16 if small else np.uint32)
    limit = int(np.iinfo(dtype).max)
    where = resolve_placement(placement, mpp, (h, w))
    desc: dict[str, Any] = {"instances": True}
    if classmap is not None:
        desc["classmap"] = classmap.to_dict()
    if where is not None:
        desc["placement"] = where.to_dict()
    n_rows = -(-h // tile)
    progress: list[Progress] = []

    def tiles() -> Iterator[np.ndarray]:
        for i, (_, band) in enumerate(iter_bands(labels, tile)):
            _check_ids(band, path, limit, f"{dtype.itemsize * 8}-bit TIFF")
            band = band.astype(dtype)
            for x0 in range(0, w, tile):
                t = np.zeros((tile, tile), dtype)
                part = band[:, x0 : x0 + tile]
                t[: part.shape[0], : part.shape[1]] = part
                yield t
            progress.append(
                Progress("tiff", i + 1, n_rows, f"TIFF rows {min(h, (i + 1) * tile)}/{h}")
            )

    _write_tiled_tiff(path, tiles(), (h, w), dtype, "minisblack", tile, desc, where)
    yield from progress
    return path


def write_id_tiff(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write an instance map as a tiled grey TIFF of its ids (uint16, or uint32 for wider input).

    Ids are kept as they are (HoVer ids reach about 4e9: uint32); deflate
    compressed, tiles of ``tile``; ``placement``/``mpp`` become resolution
    tags and, with the type class map (``classmap``), the slideseg JSON
    description (``{"slideseg": {"instances": true, ...}}``) that marks the
    file as an instance map for the reader.
    """
    return drain(write_id_tiff_steps(path, labels, **kwargs))


# -----------------------------------------------------------------------------
# OME-Zarr labels
# -----------------------------------------------------------------------------
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

    Returns whether ``path`` exists (an earlier OME-Zarr labels export of
    this plugin, or an empty folder), to be replaced. Raises
    :class:`MaskError` naming ``path`` and why, before anything is written,
    when it is a file, a prediction folder (``slideseg predict`` output:
    ``slideseg_inference`` attributes or ``done`` marks), another zarr store
    or a folder with other files.
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
        slideseg["source"] = {k: _jsonable(v) for k, v in dict(source).items()}
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
    """:func:`write_ome_zarr_labels` as a generator of progress events."""
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
        {v: {k: _jsonable(x) for k, x in extra.items()} for v, extra in properties.items()}
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
        if replace:
            replace_path(tmp, path)  # the earlier export is renamed aside, then deleted
        else:
            os.replace(tmp, path)  # refuses a non-empty folder that appeared meanwhile
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
    path
        Output ``.ome.zarr`` directory, written under a temporary name and
        renamed into place when complete. An existing folder is replaced
        only when it is an earlier labels export of this plugin (or empty);
        a prediction folder, another zarr store or a folder with other files
        is refused (:func:`check_zarr_target`) before anything is written.
    labels
        2D integer label image (NumPy or dask), written block by block.
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
    """
    return drain(write_ome_zarr_labels_steps(path, labels, **kwargs))


def _jsonable(v: Any) -> Any:
    """A JSON value: NumPy scalars and arrays as Python ones, NaN and infinities as None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


# -----------------------------------------------------------------------------
# GeoJSON
# -----------------------------------------------------------------------------
def _polygons(mask: np.ndarray) -> list[list[list[list[float]]]]:
    """Polygons (outer ring + holes, closed, (x, y)) of a binary crop, along pixel edges.

    Pixel ``(y, x)`` covers ``[x, x + 1) x [y, y + 1)`` (QuPath's convention),
    so rasterising the polygons by pixel centres gives back ``mask`` exactly,
    and scaling them by a level's downsample gives the level-0 outline.
    The borders are traced (OpenCV) on the mask upsampled 2x, where a pixel's
    left/top border pixels have even and its right/bottom ones odd indices:
    index ``k`` maps to edge ``ceil(k / 2)``.
    """
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    up = np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hier = hierarchy[0]
    polys: list[list[list[list[float]]]] = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue  # a hole: attached to its parent below
        rings = [_ring(c)]
        child = hier[i][2]
        while child != -1:
            rings.append(_ring(contours[child]))
            child = hier[child][0]
        polys.append(rings)
    return polys


def _ring(contour: np.ndarray) -> list[list[float]]:
    pts = (contour.reshape(-1, 2).astype(np.int64) + 1) // 2
    keep = np.ones(len(pts), bool)
    keep[1:] = (pts[1:] != pts[:-1]).any(1)
    pts = pts[keep]
    if len(pts) > 1 and (pts[0] == pts[-1]).all():
        pts = pts[:-1]
    ring = pts.astype(float).tolist()
    ring.append(ring[0])
    return ring


def _feature(
    label_id: int,
    polys: list,
    offset: tuple[int, int],
    scale: tuple[float, float],
    class_index: int | None,
    classmap: ClassMap | None,
    object_type: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    oy, ox = offset
    sy, sx = scale
    shifted = [
        [[[_num((x + ox) * sx), _num((y + oy) * sy)] for x, y in ring] for ring in poly]
        for poly in polys
    ]
    geom = (
        {"type": "Polygon", "coordinates": shifted[0]}
        if len(shifted) == 1
        else {"type": "MultiPolygon", "coordinates": shifted}
    )
    props: dict[str, Any] = {"objectType": object_type, "id": int(label_id)}
    if class_index is not None and classmap is not None and 0 <= class_index < classmap.n_classes:
        props["classification"] = {
            "name": classmap.names[class_index],
            "color": list(classmap.colors[class_index]),
        }
        props["class_index"] = int(class_index)
    if extra:
        props.update({k: _jsonable(v) for k, v in extra.items()})
    return {"type": "Feature", "id": str(label_id), "geometry": geom, "properties": props}


def _num(v: float) -> float | int:
    """A coordinate: an int when whole (compact JSON), else rounded to 1/1000 pixel."""
    r = round(v, 3)
    return int(r) if r == int(r) else r


def _scale_pair(scale: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(scale, int | float):
        return (float(scale), float(scale))
    sy, sx = (float(v) for v in scale)
    return (sy, sx)


def _instance_features(
    labels: Any,
    *,
    block: int,
    scale: tuple[float, float],
    classmap: ClassMap | None,
    instance_classes: Mapping[int, int] | None,
    properties: Mapping[int, Mapping[str, Any]] | None,
    object_type: str,
) -> Generator[dict[str, Any] | Progress, None, None]:
    """Features of an instance map, block by block.

    Pass 1 records each id's global bounding box (memory: one box per object).
    Pass 2 walks the blocks again; an object is emitted by the block holding
    the top-left corner of its box, reading a crop of the full array when the
    object reaches past that block. Each object is emitted exactly once.
    """
    from scipy import ndimage

    boxes: dict[int, list[int]] = {}
    h, w = labels.shape
    n_blocks = -(-h // block) * -(-w // block)
    for i, (y0, x0, b) in enumerate(iter_blocks(labels, block)):
        ids, inv = np.unique(b, return_inverse=True)
        # compact labels 1..n for the ids present (ids can be ~2**32: no dense table)
        compact = inv.reshape(b.shape) + (0 if ids[0] == 0 else 1)
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        for k, sl in enumerate(ndimage.find_objects(compact)):
            if sl is None:
                continue
            lid = int(ids[k])
            box = [sl[0].start + y0, sl[1].start + x0, sl[0].stop + y0, sl[1].stop + x0]
            old = boxes.get(lid)
            boxes[lid] = (
                box
                if old is None
                else [
                    min(old[0], box[0]),
                    min(old[1], box[1]),
                    max(old[2], box[2]),
                    max(old[3], box[3]),
                ]
            )
        yield Progress("geojson: find objects", i + 1, n_blocks)
    for i, (y0, x0, b) in enumerate(iter_blocks(labels, block)):
        owned = [
            lid
            for lid, bx in boxes.items()
            if y0 <= bx[0] < y0 + block and x0 <= bx[1] < x0 + block
        ]
        for lid in sorted(owned):
            by0, bx0, by1, bx1 = boxes[lid]
            if by1 <= y0 + b.shape[0] and bx1 <= x0 + b.shape[1]:
                crop = b[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
            else:
                crop = labels[by0:by1, bx0:bx1]
                crop = np.asarray(crop.compute() if isinstance(crop, da.Array) else crop)
            mask = np.pad(crop == lid, 1)
            polys = _polygons(mask)
            if not polys:
                continue
            cls = instance_classes.get(lid) if instance_classes else None
            extra = properties.get(lid) if properties else None
            yield _feature(lid, polys, (by0 - 1, bx0 - 1), scale, cls, classmap, object_type, extra)
        yield Progress("geojson: polygons", i + 1, n_blocks)


def _semantic_features(
    labels: Any, *, scale: tuple[float, float], classmap: ClassMap | None, object_type: str
) -> Iterator[dict[str, Any]]:
    from scipy import ndimage

    arr = np.asarray(labels.compute() if isinstance(labels, da.Array) else labels)
    background = classmap.background if classmap is not None else 0
    next_id = 1
    for cls in np.unique(arr):
        if cls == background:
            continue
        comp, _ = ndimage.label(arr == cls)
        for k, sl in enumerate(ndimage.find_objects(comp)):
            if sl is None:
                continue
            mask = np.pad(comp[sl] == k + 1, 1)
            polys = _polygons(mask)
            if polys:
                off = (sl[0].start - 1, sl[1].start - 1)
                yield _feature(next_id, polys, off, scale, int(cls), classmap, object_type, None)
                next_id += 1


def write_geojson_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    mode: str = "instances",
    classmap: ClassMap | None = None,
    instance_classes: Mapping[int, int] | None = None,
    properties: Mapping[int, Mapping[str, Any]] | None = None,
    object_type: str = "annotation",
    scale: float | tuple[float, float] | None = None,
    placement: Placement | None = None,
    block: int = 2048,
    compress: bool | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_geojson` as a generator of progress events."""
    path = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, path)
    if scale is None:
        scale = placement.factors if placement is not None else (1.0, 1.0)
    scale = _scale_pair(scale)
    if object_type not in ("annotation", "detection", "cell", "tile"):
        raise ValueError(
            f"object_type must be annotation, detection, cell or tile, not {object_type!r}"
        )
    if mode not in ("instances", "semantic"):
        raise ValueError(f"mode must be 'instances' or 'semantic', not {mode!r}")
    if mode == "semantic" and labels.shape[0] * labels.shape[1] > GEOJSON_SEMANTIC_MAX_PIXELS:
        raise MaskError(
            f"{path}: semantic GeoJSON export needs the whole {labels.shape[1]} x {labels.shape[0]} "
            f"label image in memory (limit {GEOJSON_SEMANTIC_MAX_PIXELS:,} pixels); export a smaller "
            "region, or export instances (mode='instances'), which streams"
        )
    compress = str(path).endswith(".gz") if compress is None else compress
    opener = gzip.open if compress else open
    with atomic_path(path) as tmp, opener(tmp, "wt", encoding="utf-8") as fh:
        coords: dict[str, Any] = {
            "units": "pixels",
            "level": 0,
            "source_level": placement.level if placement is not None else 0,
            "source_shape": [int(labels.shape[0]), int(labels.shape[1])],
            "scale": list(scale),
            "convention": "pixel edges: pixel (x, y) covers [x, x+1) x [y, y+1)",
        }
        if placement is not None and placement.slide_shape:
            coords["slide_shape"] = list(placement.slide_shape)
        if placement is not None and placement.mpp:
            coords["mpp"] = list(placement.mpp)
        fh.write('{"type": "FeatureCollection", "slideseg": ')
        fh.write(json.dumps({"coordinates": coords}))
        fh.write(', "features": [\n')
        first = True
        if mode == "instances":
            items: Iterator[Any] = _instance_features(
                labels,
                block=block,
                scale=scale,
                classmap=classmap,
                instance_classes=instance_classes,
                properties=properties,
                object_type=object_type,
            )
        else:
            items = _semantic_features(
                labels, scale=scale, classmap=classmap, object_type=object_type
            )
        for item in items:
            if isinstance(item, Progress):
                yield item
                continue
            if not first:
                fh.write(",\n")
            fh.write(json.dumps(item, separators=(",", ":")))
            first = False
        fh.write("\n]}\n")
    return path


def write_geojson(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write labels as GeoJSON polygons (QuPath imports them), streamed to disk.

    Parameters
    ----------
    path
        Output ``.geojson`` (or ``.geojson.gz``, gzipped).
    labels
        2D integer label image (NumPy or dask).
    **kwargs
        ``mode``: ``"instances"`` (default; every label id is one object,
        streamed block by block, each object emitted once) or ``"semantic"``
        (connected components of each class; needs the array in memory,
        refused above :data:`GEOJSON_SEMANTIC_MAX_PIXELS`).
        ``classmap`` and ``instance_classes`` (``{id: class index}``) give
        each object a QuPath ``classification`` (name and colour);
        ``properties`` adds per-id measurements; ``object_type`` is QuPath's
        ``"annotation"`` or ``"detection"`` (use detections for millions of
        nuclei); ``placement`` (the labels' level, factors and mpp) writes
        level-0 pixel coordinates of the slide, QuPath's, whatever level the
        labels hold, and records them in the collection's ``slideseg``
        member; ``scale`` (a number or ``(sy, sx)``) overrides the factors;
        ``block`` is the block edge. Polygons follow pixel edges (pixel
        ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``).

    Returns
    -------
    Path
        ``path``.
    """
    return drain(write_geojson_steps(path, labels, **kwargs))


# -----------------------------------------------------------------------------
# RLE CSV and dispatch
# -----------------------------------------------------------------------------
def export_labels(
    labels: Any,
    out: str | os.PathLike,
    *,
    classmap: ClassMap | None = None,
    rle_order: str = "col",
    rle_layout: str = "semantic",
    image_id: str | None = None,
    placement: Placement | None = None,
    instances: bool = False,
    instance_classes: Mapping[int, int] | None = None,
    **kwargs: Any,
) -> Path:
    """Write ``labels`` in the format given by ``out``'s suffix.

    ``.png`` colour-map PNG (``indexed=True`` for a palette PNG), ``.tif``/
    ``.tiff`` colour TIFF, ``.csv`` RLE CSV (``rle_layout`` semantic or
    instance, ``rle_order`` col or row; the order and base are recorded in
    every row), ``.ome.zarr``/``.zarr`` OME-Zarr labels,
    ``.geojson``/``.geojson.gz`` polygons.

    ``instances=True``: the values are object ids (nuclei), not classes, and
    ``classmap`` (if any) names the objects' types, given per id by
    ``instance_classes``: PNG is a 16-bit id image (ids above 65535 are
    refused, naming the formats that hold them), TIFF a uint16/uint32 id
    image, CSV the instance layout (one row per object), OME-Zarr labels
    without class colours, GeoJSON one polygon per id.

    ``placement`` (the labels' level, factors to level 0 and level-0 mpp,
    e.g. :meth:`Placement.from_attrs` of a prediction zarr): GeoJSON is
    written in level-0 pixels; rasters record their resolution (PNG
    ``pHYs``, TIFF resolution tags, OME-Zarr scale) and placement; RLE CSV
    rows state the level, the slide's level-0 size and the mpp.
    """
    out = Path(out)
    name = out.name.lower()
    labels = as_label_image(labels)
    check_not_empty(labels, out)
    if instances and name.endswith((".png", ".tif", ".tiff")):
        if name.endswith(".png"):
            return write_id_png(out, labels, classmap=classmap, placement=placement, **kwargs)
        return write_id_tiff(out, labels, classmap=classmap, placement=placement, **kwargs)
    if name.endswith((".png", ".tif", ".tiff")):
        if classmap is None:
            check_file_target(out)
            classmap = default_classmap(labels, out)
        if name.endswith(".png"):
            return write_color_png(out, labels, classmap, placement=placement, **kwargs)
        return write_color_tiff(out, labels, classmap, placement=placement, **kwargs)
    if name.endswith(".csv"):
        from .rle import write_rle_csv

        check_file_target(out)
        class_names = list(classmap.names) if classmap is not None else None
        kwargs.setdefault("class_colors", list(classmap.colors) if classmap is not None else None)
        write_rle_csv(
            out,
            labels,
            layout="instance" if instances else rle_layout,
            order=rle_order,
            image_id=image_id or out.stem,
            class_names=class_names,
            instance_classes=instance_classes,
            placement=placement,
            **kwargs,
        )
        return out
    if name.endswith(".zarr"):
        return write_ome_zarr_labels(
            out, labels, classmap=classmap, placement=placement, instances=instances, **kwargs
        )
    if name.endswith((".geojson", ".geojson.gz", ".json")):
        if instances:
            kwargs.setdefault("mode", "instances")
        return write_geojson(
            out,
            labels,
            classmap=classmap,
            placement=placement,
            instance_classes=instance_classes,
            **kwargs,
        )
    raise MaskError(
        f"{out}: unknown export format (use .png, .tif, .csv, .ome.zarr or .geojson[.gz])"
    )


def label_max(labels: Any) -> int:
    """The largest label of a numpy or dask label image, as an ``int``."""
    m = labels.max()
    return int(m.compute() if isinstance(m, da.Array) else m)


def value_range(labels: Any) -> tuple[int, int]:
    """``(min, max)`` of a NumPy or dask label image in one pass (``(0, 0)`` when empty)."""
    if int(np.prod(labels.shape)) == 0:
        return 0, 0
    if isinstance(labels, da.Array):
        lo, hi = da.compute(labels.min(), labels.max())
    else:
        lo, hi = labels.min(), labels.max()
    return int(lo), int(hi)


def check_class_values(lo: int, path: str | os.PathLike) -> None:
    """Refuse class labels with negative values (class indices are 0 or more)."""
    if lo < 0:
        raise MaskError(
            f"{path}: the labels hold negative values (min {lo}); class labels are 0, 1, 2, ... "
            "(set the negative pixels to a class, e.g. 0 for background)"
        )


def default_classmap(labels: Any, path: str | os.PathLike) -> ClassMap:
    """A default class map for every value of ``labels`` (negative values are refused)."""
    lo, hi = value_range(labels)
    check_class_values(lo, path)
    return ClassMap.default(hi + 1)
