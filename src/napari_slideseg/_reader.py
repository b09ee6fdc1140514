"""npe2 reader hooks: which files this plugin opens, and the readers napari calls.

napari calls :func:`napari_get_reader`, :func:`napari_get_mask_reader` and
:func:`napari_get_geojson_reader` for every file whose name matches the
manifest's patterns, so this module imports only the standard library, the
light :mod:`napari_slideseg.io.sniff` and the reader helpers
(:mod:`napari_slideseg._reader_choice`: which reader takes a file, with the
checks of :mod:`napari_slideseg._reader_claims`;
:mod:`napari_slideseg._reader_layers`: the layer data), which import their
heavy dependencies inside their functions. The readers here turn every
error into a napari notification and the ``[(None,)]`` sentinel; napari is
imported only when one is shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._reader_choice import RASTER_MIN_PIXELS, geojson_claim, mask_claim, one_path, slide_claim
from ._reader_claims import MASK_SNIFF_MAX_PIXELS, is_label_store, looks_like_prediction
from ._reader_layers import (
    GEOJSON_FACE_ALPHA,
    PREDICTION_KEYS,
    geojson_layers,
    mask_layers,
    prediction_problem,
    slide_error_message,
)
from .io.sniff import special_file_kind

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


def napari_get_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a slide reader for ``path`` or ``None`` (fast; nothing decoded).

    Which files are claimed: :func:`~napari_slideseg._reader_choice.slide_claim`.

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
    target = one_path(path)
    claim = slide_claim(target) if target is not None else None
    if claim == "prediction":
        return read_prediction
    return read_slide if claim == "slide" else None


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
    path = one_path(path) or ""
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


def _first_path(path: Any) -> str:
    """The path a reader is given (the first of a list) as a str."""
    if isinstance(path, list | tuple):
        path = path[0]
    return os.fspath(path)


def _notified(read: Callable[[str], list[tuple[Any, ...]]], path: str) -> list[tuple[Any, ...]]:
    """``read(path)``; a SlideSegError becomes a notification and ``[(None,)]``."""
    from .io.errors import SlideSegError

    try:
        return read(path)
    except SlideSegError as err:
        _notify_error(str(err))
        return [(None,)]


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

    Which files are claimed: :func:`~napari_slideseg._reader_choice.mask_claim`.

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
    target = one_path(path)
    return read_mask if target is not None and mask_claim(target) else None


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
    path = _first_path(path)
    special = special_file_kind(path)
    if special is not None:
        _notify_error(f"{path}: is a {special}, not a regular file or directory; it is not opened")
        return [(None,)]
    return _notified(mask_layers, path)


# -----------------------------------------------------------------------------
# GeoJSON -> Shapes
# -----------------------------------------------------------------------------
def napari_get_geojson_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a Shapes reader for GeoJSON (QuPath annotations/detections, our exports), else None.

    Which files are claimed: :func:`~napari_slideseg._reader_choice.geojson_claim`.

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
    target = one_path(path)
    return read_geojson_shapes if target is not None and geojson_claim(target) else None


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
    path = _first_path(path)
    layers = _notified(geojson_layers, path)
    if not layers:
        _notify_error(f"{path}: holds no polygons, lines or points")
        return [(None,)]
    return layers
