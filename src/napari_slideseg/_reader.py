"""npe2 reader hooks: which files this plugin opens, and the readers napari calls.

napari calls :func:`napari_get_reader`, :func:`napari_get_mask_reader` and
:func:`napari_get_geojson_reader` for every file whose name matches the
manifest's patterns, so this module imports only the standard library, the
light :mod:`napari_slideseg.io.sniff` and the reader helpers
(:mod:`napari_slideseg._reader_claims`: which reader takes a file;
:mod:`napari_slideseg._reader_layers`: the layer data), which import their
heavy dependencies inside their functions. The readers here turn every
error into a napari notification and the ``[(None,)]`` sentinel; napari is
imported only when one is shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._reader_claims import (
    MASK_SNIFF_MAX_PIXELS,
    csv_has_rle,
    is_id_map,
    is_label_store,
    looks_like_prediction,
    tiff_may_be_mask,
    written_by_slideseg,
)
from ._reader_layers import (
    GEOJSON_FACE_ALPHA,
    PREDICTION_KEYS,
    geojson_layers,
    mask_layers,
    prediction_problem,
    slide_error_message,
)
from .io.sniff import (
    RASTER_SUFFIXES,
    TIFF_SUFFIXES,
    raster_header,
    sniff_kind,
    special_file_kind,
)

__all__ = [
    "GEOJSON_FACE_ALPHA",
    "MASK_SNIFF_MAX_PIXELS",
    "PREDICTION_KEYS",
    "RASTER_MIN_PIXELS",
    "is_label_store",
    "looks_like_prediction",
    "napari_get_geojson_reader",
    "napari_get_mask_reader",
    "napari_get_reader",
    "prediction_problem",
    "read_geojson_shapes",
    "read_mask",
    "read_prediction",
    "read_slide",
]

#: PNG/JPEG files smaller than this are left to napari's builtin reader.
RASTER_MIN_PIXELS = 4096 * 4096


def _one_path(path: Any) -> str | None:
    """``path`` (or the single path of a one-item list) as a str; None for anything else."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike):
        return None
    path = os.fspath(path)
    return path if isinstance(path, str) and path else None


def napari_get_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a slide reader for ``path`` or ``None`` (fast; nothing decoded).

    Slides (TIFF family, zarr directories) and PNG/JPEG images larger than
    4096 x 4096 are claimed; colour-mask TIFFs this plugin wrote are left to
    :func:`napari_get_mask_reader` (npe2 tries a plugin's readers in no fixed
    order). Files with a slide extension are claimed even when
    their header is broken, so the user gets a clear message instead of
    "no reader found".

    Parameters
    ----------
    path : str or list of str
        What napari passes: one path, or a list (only a one-item list is claimed).

    Returns
    -------
    callable or None
        :func:`read_slide` or :func:`read_prediction`;
        ``None`` leaves the file to other readers.
    """
    target = _one_path(path)
    if target is None:
        return None
    lower = target.lower().rstrip("/\\")
    if special_file_kind(target) is not None:
        # A FIFO/socket/device is never opened (it would block); claim slide names so
        # read_slide reports it, leave the rest alone.
        return read_slide if lower.endswith((*TIFF_SUFFIXES, ".zarr", *RASTER_SUFFIXES)) else None
    kind = sniff_kind(target)
    if (
        kind == "tiff"
        and tiff_may_be_mask(target)
        and (written_by_slideseg(target, kind) or is_id_map(target))
    ):
        return None  # a mask or instance map: the mask reader opens it as Labels
    if kind == "zarr" and is_label_store(target):
        return None  # NGFF labels: the mask reader opens them as Labels
    if kind == "zarr" and looks_like_prediction(target):
        return read_prediction  # Labels, or a notification when its metadata is broken
    if kind in ("tiff", "zarr"):
        return read_slide
    if kind in ("png", "jpeg"):
        try:
            header = raster_header(target)
        except (OSError, ValueError):
            return read_slide
        if header.pixels <= RASTER_MIN_PIXELS:
            return None
        if kind == "png" and header.channels == 1 and header.bits == 16 and is_id_map(target):
            return None
        return read_slide
    if lower.endswith(TIFF_SUFFIXES) or lower.endswith(".zarr"):
        return read_slide  # broken or missing: read_slide reports why
    if lower.endswith(RASTER_SUFFIXES) and not os.path.exists(target):
        return None
    return None


def read_slide(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a slide as a multiscale Image layer; errors become notifications.

    Parameters
    ----------
    path : str or list of str
        The path (the first of a list).

    Returns
    -------
    list of tuple
        One multiscale ``(data, kwargs, "image")`` layer. ``[(None,)]`` (napari's "read,
        nothing to add") after a notification when it cannot be opened.
    """
    from .io.errors import SlideError
    from .io.slide import open_slide
    from .layers import slide_layer

    if isinstance(path, list | tuple):
        path = path[0]
    try:
        # markers only: panning stays fast; processing reopens with the full check
        slide = open_slide(path, progress=_napari_progress(), jpeg_check="markers")
    except SlideError as err:
        _notify_error(slide_error_message(path, str(err)))
        return [(None,)]
    return [slide_layer(slide)]


def read_prediction(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a prediction folder as Labels layer(s); broken metadata becomes a notification.

    Parameters
    ----------
    path : str or list of str
        The path (the first of a list).

    Returns
    -------
    list of tuple
        The prediction's Labels layer tuple(s). ``[(None,)]`` (napari's "read,
        nothing to add") after a notification when it cannot be opened.
    """
    path = _one_path(path) or ""
    found = prediction_problem(path)
    if found is not None:
        broken, problem = found
        if broken:
            _notify_error(
                f"{path}: is a prediction folder with broken metadata: {problem}; it is not "
                "opened (run slideseg predict again into a new folder)"
            )
        else:
            _notify_error(f"{path}: is not a slide or prediction: {problem}; it is not opened")
        return [(None,)]
    try:
        from .layers import prediction_layers

        return prediction_layers(path)
    except Exception as err:  # never an internal error into napari
        _notify_error(
            f"{path}: is a prediction folder that cannot be opened ({type(err).__name__}: {err})"
        )
        return [(None,)]


def _napari_progress():
    """A progress callback that shows in napari's activity dock (if napari is there)."""
    try:
        from napari.utils import progress
    except ImportError:  # pragma: no cover - napari is always there when napari calls us
        return None
    bars: dict[str, Any] = {}

    def callback(event) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bars.clear()
            bar = bars[event.stage] = progress(total=event.total or 0, desc=event.message)
        bar.n = event.done
        bar.set_description(event.message)
        bar.refresh()
        if event.total and event.done >= event.total:
            bar.close()
            bars.pop(event.stage, None)

    return callback


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # pragma: no cover
        raise RuntimeError(message) from None
    show_error(message)


# -----------------------------------------------------------------------------
# masks: colour-mask PNG/TIFF, instance maps, RLE CSV and NGFF labels -> Labels
# -----------------------------------------------------------------------------
def napari_get_mask_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a Labels reader for masks, instance maps, RLE CSVs and NGFF labels, else ``None``.

    A PNG/TIFF is a mask when this plugin wrote it (its class map is
    recorded in the file) or when every colour in it belongs to one preset
    palette (``biopsy6``, ``wsi3``, ``binary``); TIFFs with lossy
    compression (JPEG, JPEG 2000: slides, never masks) are not read.
    An instance map (object ids) is a 16-bit single-channel PNG, a
    single-channel 16/32-bit integer TIFF or a 2-D integer ``.npy`` of at
    most :data:`MASK_SNIFF_MAX_PIXELS` whose content is ids on a 0
    background (:func:`~napari_slideseg.io.masks.looks_like_id_map`: almost
    all neighbouring object pixels share their value, unlike a grey
    image's), or an id PNG/TIFF this plugin wrote. A CSV is claimed when its
    header has an RLE column; a zarr store when it holds NGFF labels.

    Parameters
    ----------
    path : str or list of str
        What napari passes: one path, or a list (only a one-item list is claimed).

    Returns
    -------
    callable or None
        :func:`read_mask`;
        ``None`` leaves the file to other readers.
    """
    target = _one_path(path)
    if target is None:
        return None
    lower = target.lower().rstrip("/\\")
    if special_file_kind(target) is not None:
        # Never opened (a FIFO would block): read_mask reports mask-only names,
        # the slide reader the others.
        return read_mask if lower.endswith((".csv", ".npy")) else None
    if lower.endswith(".csv"):
        return read_mask if csv_has_rle(target) else None
    if lower.endswith(".npy"):
        return read_mask if is_id_map(target) else None
    kind = sniff_kind(target)
    if kind == "zarr":
        return read_mask if is_label_store(target) else None
    if kind == "png":
        try:
            header = raster_header(target)
        except (OSError, ValueError):
            return None
        if header.pixels > MASK_SNIFF_MAX_PIXELS:
            return None
        if header.channels == 1 and header.bits == 16:
            return read_mask if is_id_map(target) else None
    elif kind == "tiff":
        if not tiff_may_be_mask(target):
            return None
    else:
        return None
    if written_by_slideseg(target, kind):
        return read_mask
    if kind == "tiff" and is_id_map(target):
        return read_mask
    from .io.palette import is_color_mask

    return (
        read_mask if is_color_mask(target, max_pixels=MASK_SNIFF_MAX_PIXELS) is not None else None
    )


def read_mask(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a mask, RLE CSV, instance map or NGFF labels store as Labels layer(s).

    Class labels are coloured by their class map. Instance maps (object
    ids) get napari's own colours and, where the file records them, a
    ``features`` row per object (``index``, ``type``, ``type_name`` and the
    file's properties) and the type class map in ``metadata["slideseg"]``,
    so they save again as instances. An NGFF store gives one layer per
    label image, multiscale when it holds a pyramid.

    Parameters
    ----------
    path : str or list of str
        The path (the first of a list).

    Returns
    -------
    list of tuple
        ``(data, kwargs, "labels")`` per layer. ``[(None,)]`` (napari's "read,
        nothing to add") after a notification when it cannot be opened.
    """
    from .io.errors import SlideSegError

    if isinstance(path, list | tuple):
        path = path[0]
    path = os.fspath(path)
    special = special_file_kind(path)
    if special is not None:
        _notify_error(f"{path}: is a {special}, not a regular file or directory; it is not opened")
        return [(None,)]
    try:
        return mask_layers(path)
    except SlideSegError as err:
        _notify_error(str(err))
        return [(None,)]


# -----------------------------------------------------------------------------
# GeoJSON -> Shapes
# -----------------------------------------------------------------------------
def napari_get_geojson_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a Shapes reader for GeoJSON (QuPath annotations/detections, our exports), else None.

    ``.geojson`` and ``.geojson.gz`` are claimed when they start like
    GeoJSON; ``.json`` only when its first 4 kB hold a GeoJSON ``type``.

    Parameters
    ----------
    path : str or list of str
        What napari passes: one path, or a list (only a one-item list is claimed).

    Returns
    -------
    callable or None
        :func:`read_geojson_shapes`;
        ``None`` leaves the file to other readers.
    """
    target = _one_path(path)
    if target is None:
        return None
    if not target.lower().endswith((".geojson", ".geojson.gz", ".json", ".json.gz")):
        return None
    if not os.path.isfile(target):
        return None
    from .io.geojson import sniff_geojson

    return read_geojson_shapes if sniff_geojson(target) else None


def read_geojson_shapes(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open GeoJSON polygons as a Shapes layer (class names and measurements as features).

    Each polygon (each part of a MultiPolygon) is one shape, edged and
    lightly filled in its class colour; lines are paths; points become a
    Points layer. Vertices sit on pixel edges as QuPath's do (the shape of
    a pixel-exact export covers exactly its pixels). When the file states
    its µm per pixel (this plugin's exports) the layers get that scale in
    micrometres and overlay the slide layer; QuPath's files are in pixels.
    Holes are left out (napari polygons have none) and counted in
    ``metadata["slideseg"]["holes_left_out"]``.

    Parameters
    ----------
    path : str or list of str
        The path (the first of a list).

    Returns
    -------
    list of tuple
        A Shapes and/or Points layer tuple. ``[(None,)]`` (napari's "read,
        nothing to add") after a notification when it cannot be opened.
    """
    from .io.errors import SlideSegError

    if isinstance(path, list | tuple):
        path = path[0]
    path = os.fspath(path)
    try:
        layers = geojson_layers(path)
    except SlideSegError as err:
        _notify_error(str(err))
        return [(None,)]
    if not layers:
        _notify_error(f"{path}: holds no polygons, lines or points")
        return [(None,)]
    return layers
