"""Tracking a pathologist's corrections of a prediction layer in napari.

:func:`track_corrections` (the Training widget's *track corrections*
button calls it) listens to a prediction Labels layer's ``paint`` event, which napari emits
for every brush stroke, erase, fill and polygon with the edit's history
atoms, and saves the chunks they touched into the prediction's
corrections store (:mod:`napari_slideseg.corrections`) a moment after the
last stroke; the prediction's own arrays are never written. A
``<layer> corrected regions`` Shapes layer outlines what is corrected.
When the prediction is opened again with the plugin its layers show the
corrections.

napari cannot paint a multiscale (pyramid) Labels layer, so tracking one
puts a single-scale layer over its corrected level 0 in its place (the
same name, scale, colours and metadata); that needs the level in memory
(:data:`MAX_EDIT_PIXELS`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..corrections import (
    CorrectionsError,
    chunk_windows,
    layer_array,
    open_corrections,
    regions_layer,
)
from ..corrections.view import REGION_EDGE
from ._common import notify_error

logger = logging.getLogger(__name__)

#: Largest level 0 (pixels) a tracked layer holds in memory for painting.
MAX_EDIT_PIXELS = 2**28
#: Milliseconds after the last stroke before the dirty chunks are saved.
DEBOUNCE_MS = 1000

#: The trackers alive, by layer id (a tracker lives as long as its layer is in the viewer).
TRACKERS: dict[int, CorrectionTracker] = {}


def atom_box(atom: Any) -> tuple[int, int, int, int] | None:
    """The ``(y0, x0, y1, x1)`` box one napari paint history atom changed (last two axes).

    Parameters
    ----------
    atom : tuple
        A masked atom (``slice_key``, ``mask``, ``old_values``, ``new_value``:
        paint, fill, polygon) or ``(indices, old_values, new_values)``
        (``data_setitem``).

    Returns
    -------
    tuple of int or None
        The box, end exclusive; None for an atom that changed nothing.
    """
    key = getattr(atom, "slice_key", None)
    if key is not None:
        ys, xs = key[-2], key[-1]
        return int(ys.start), int(xs.start), int(ys.stop), int(xs.stop)
    indices = atom[0]
    ys, xs = np.asarray(indices[-2]).ravel(), np.asarray(indices[-1]).ravel()
    if ys.size == 0:
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


class CorrectionTracker:
    """Saves a tracked layer's painted chunks to its prediction's corrections store.

    Made by :func:`track_corrections`.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding ``layer``.
    layer : napari.layers.Labels
        A single-scale prediction layer over the whole corrected level 0.
    store : Corrections
        The prediction's corrections, writable.
    array : str
        ``labels`` or ``instances``.
    debounce_ms : int
        Delay after the last stroke before saving; 0 saves only on :meth:`save`.
    """

    def __init__(
        self, viewer: Any, layer: Any, store: Any, array: str, debounce_ms: int = DEBOUNCE_MS
    ) -> None:
        from qtpy.QtCore import QTimer

        self.viewer, self.layer, self.store, self.array = viewer, layer, store, array
        arr = store.original(array)
        self.shape, self.chunks = tuple(arr.shape), tuple(arr.chunks)
        self.dirty: set[tuple[int, int]] = set()
        #: Chunks painted since tracking began: an undo (which napari does not
        #: announce) is saved with the next save.
        self.touched: set[tuple[int, int]] = set()
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setInterval(int(debounce_ms))
        self.timer.timeout.connect(self.save)
        self.debounce_ms = int(debounce_ms)
        layer.events.paint.connect(self.on_paint)
        layer.events.data.connect(self.on_data)
        viewer.layers.events.removed.connect(self.on_removed)

    def mark(self, box: tuple[int, int, int, int]) -> None:
        """Mark the chunks under a level-0 box ``(y0, x0, y1, x1)`` dirty and schedule a save.

        Parameters
        ----------
        box : tuple of int
            End exclusive.
        """
        for cy, cx, _win in chunk_windows(self.shape, self.chunks, *box):
            self.dirty.add((cy, cx))
        if self.debounce_ms > 0:
            self.timer.start()

    def on_paint(self, event: Any) -> None:
        """Mark the chunks one edit changed (``layer.events.paint``).

        Parameters
        ----------
        event : napari.utils.events.Event
            ``event.value``: the edit's history atoms (:func:`atom_box`).
        """
        for atom in event.value:
            box = atom_box(atom)
            if box is not None:
                self.mark(box)

    def on_data(self, event: Any) -> None:
        """Mark every chunk: the layer's data was replaced (``layer.events.data``).

        Parameters
        ----------
        event : napari.utils.events.Event
            The data event (its value is not needed).
        """
        if tuple(np.shape(self.layer.data)) != self.shape:
            notify_error(
                f"{self.layer.name}: its data no longer has the prediction's shape "
                f"{self.shape}; corrections are no longer tracked"
            )
            self.stop()
            return
        self.mark((0, 0, *self.shape))

    def on_removed(self, event: Any) -> None:
        """Save what is pending and stop tracking when the layer leaves the viewer.

        Parameters
        ----------
        event : napari.utils.events.Event
            ``viewer.layers.events.removed``; ``event.value`` is the layer removed.
        """
        if event.value is self.layer:
            self.save()
            self.stop()

    def save(self) -> dict[str, Any] | None:
        """Save the dirty (and earlier painted) chunks as one version; update the outline.

        Returns
        -------
        dict or None
            The new version's history entry, None when no pixel changed (or
            saving failed: the error is notified and the chunks stay dirty).
        """
        self.timer.stop()
        chunks = sorted(self.dirty | self.touched)
        blocks = []
        for y0, x0, y1, x1 in _chunk_list(self.shape, self.chunks, chunks):
            blocks.append((y0, x0, np.asarray(self.layer.data[y0:y1, x0:x1])))
        try:
            entry = self.store.record_blocks(self.array, blocks) if blocks else None
        except (CorrectionsError, OSError) as err:
            notify_error(f"{self.store.path}: corrections not saved ({err})")
            return None
        self.touched |= self.dirty
        self.dirty.clear()
        if entry is not None:
            self.update_outline()
        return entry

    def update_outline(self) -> Any:
        """Show the saved corrected regions in the ``<layer> corrected regions`` Shapes layer.

        Returns
        -------
        napari.layers.Shapes
            The outline layer (added above the tracked layer the first time).
        """
        boxes = self.store.regions(self.array)
        kwargs = {"name": self.layer.name, "scale": tuple(self.layer.scale)}
        units = getattr(self.layer, "units", None)
        if units is not None:
            kwargs["units"] = tuple(units)
        data, shape_kwargs, _kind = regions_layer(boxes, kwargs, str(self.store.path))
        name = shape_kwargs["name"]
        if name in self.viewer.layers:
            outline = self.viewer.layers[name]
            outline.data = []
            if data:
                outline.add_rectangles(
                    data, edge_color=REGION_EDGE, face_color="transparent", edge_width=2
                )
            outline.metadata = shape_kwargs["metadata"]
            return outline
        return self.viewer.add_shapes(data, **shape_kwargs)

    def stop(self) -> None:
        """Stop listening (pending chunks are not saved: call :meth:`save` first)."""
        self.timer.stop()
        for emitter, slot in (
            (self.layer.events.paint, self.on_paint),
            (self.layer.events.data, self.on_data),
            (self.viewer.layers.events.removed, self.on_removed),
        ):
            emitter.disconnect(slot)
        TRACKERS.pop(id(self.layer), None)


def _chunk_list(
    shape: tuple[int, ...], chunks: tuple[int, ...], keys: list[tuple[int, int]]
) -> list[tuple[int, int, int, int]]:
    """The ``(y0, x0, y1, x1)`` windows of the chunks ``keys``."""
    ch, cw = chunks[0], chunks[1]
    H, W = shape[0], shape[1]
    return [(cy * ch, cx * cw, min(H, (cy + 1) * ch), min(W, (cx + 1) * cw)) for cy, cx in keys]


def editable_layer(viewer: Any, layer: Any, store: Any, array: str) -> Any:
    """A layer napari can paint that shows the corrected level 0 of ``layer``'s prediction.

    A single-scale layer over an in-memory array is returned as it is; one
    over zarr or dask gets the corrected level 0 in memory; a multiscale
    layer is replaced, at its place in the layer list, by a single-scale
    layer with its name, scale, units, colours, features and metadata.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding ``layer``.
    layer : napari.layers.Labels
        A prediction layer.
    store : Corrections
        The prediction's corrections.
    array : str
        ``labels`` or ``instances``.

    Returns
    -------
    napari.layers.Labels
        The layer to paint on.

    Raises
    ------
    CorrectionsError
        When level 0 is larger than :data:`MAX_EDIT_PIXELS`.
    """
    from napari.layers import Labels

    data = layer.data
    if not layer.multiscale and isinstance(data, np.ndarray) and data.flags.writeable:
        return layer
    shape = store.original(array).shape
    if int(np.prod(shape)) > MAX_EDIT_PIXELS:
        raise CorrectionsError(
            f"{store.path}: {array} is {shape[0]} x {shape[1]} px, too large to paint in napari "
            f"(at most {MAX_EDIT_PIXELS} px); predict a region or a coarser level to correct it"
        )
    level0 = np.asarray(store.corrected(array).compute())
    if not layer.multiscale:
        layer.data = level0
        return layer
    state = {
        "name": layer.name,
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "units": tuple(layer.units),
        "metadata": dict(layer.metadata),
        "colormap": layer.colormap,
        "features": layer.features,
        "opacity": layer.opacity,
        "blending": layer.blending,
    }
    index = viewer.layers.index(layer)
    viewer.layers.remove(layer)
    new = Labels(level0, **state)
    viewer.layers.insert(index, new)
    return new


def track_corrections(
    viewer: Any, layer: Any, *, debounce_ms: int = DEBOUNCE_MS
) -> CorrectionTracker:
    """Save the corrections painted on a prediction layer beside its prediction.

    In napari's console, after opening a prediction folder with the plugin::

        from napari_slideseg._widgets.corrections import track_corrections
        tracker = track_corrections(viewer, viewer.layers["prediction (x)"])

    Then paint, erase or fill on the layer; the chunks each edit touched are
    saved a moment after the last stroke (``tracker.save()`` saves at once)
    into the prediction's ``corrections`` group, and a ``<layer> corrected
    regions`` Shapes layer outlines them. Removing the layer saves what is
    pending. A multiscale layer is first replaced by a paintable one (see
    :func:`editable_layer`); the tracker's ``layer`` is the one to paint.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding ``layer``.
    layer : napari.layers.Labels
        A prediction layer opened by this plugin (its
        ``metadata["slideseg"]["prediction"]`` names the folder): class
        labels, or the nuclei (instances) of a HoVer prediction.
    debounce_ms : int
        Delay after the last stroke before saving; 0 saves only on ``save()``.

    Returns
    -------
    CorrectionTracker
        Its ``layer``, ``store`` (:class:`~napari_slideseg.corrections.Corrections`),
        ``save()`` and ``stop()``.

    Raises
    ------
    CorrectionsError
        When the layer is not a prediction layer, its corrections belong to
        another prediction, or it is too large to paint.
    """
    meta = (getattr(layer, "metadata", None) or {}).get("slideseg") or {}
    path = meta.get("prediction")
    if not path:
        raise CorrectionsError(
            f"{getattr(layer, 'name', layer)}: is not a prediction layer (open a prediction "
            "folder with the napari-slideseg reader)"
        )
    array = layer_array({"metadata": layer.metadata})
    old = TRACKERS.get(id(layer))
    if old is not None:
        return old
    store = open_corrections(path)
    layer = editable_layer(viewer, layer, store, array)
    tracker = CorrectionTracker(viewer, layer, store, array, debounce_ms)
    TRACKERS[id(layer)] = tracker
    if store.regions(array):
        tracker.update_outline()
    return tracker
