"""Shared pieces of the dock widgets: layer adapters, fields and notifications.

Widgets stay thin: they build one config object from their fields and call
one core generator; :mod:`napari_slideseg._widgets.runner` runs it (worker
thread, Run/Cancel toggle, progress bar, error notifications).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, FileEdit, Label

logger = logging.getLogger(__name__)


def layer_to_slide(layer: Any) -> Any:
    """The :class:`~napari_slideseg.io.slide.Slide` behind an Image layer.

    Layers opened by this plugin carry their file path and are reopened
    lazily; any other image layer (or one whose file is gone) is wrapped as
    an in-memory slide. The layer's scale, when in micrometres, is the µm
    per pixel of an in-memory slide, or of a file that states none.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer.

    Returns
    -------
    Slide
        The slide.
    """
    from ..io.slide import open_slide, slide_from_arrays
    from ..io.slide.backends import BACKENDS

    meta = (layer.metadata or {}).get("slideseg") or {}
    path = meta.get("path")
    mpp = None
    units = [str(u) for u in getattr(layer, "units", ())]
    if units and all(u == "micrometer" for u in units[-2:]):
        mpp = (float(layer.scale[-2]), float(layer.scale[-1]))
    if path and not os.path.exists(path):
        logger.info("%s: not found; using the layer's own data instead", path)
    if path and os.path.exists(path):
        backend = meta.get("backend")
        slide = open_slide(path, backend=backend if backend in BACKENDS else None)
        # a resolution the user gave the layer (a JPEG tile has none in the file)
        return slide.with_mpp(mpp) if mpp and not slide.mpp else slide
    data = list(layer.data) if layer.multiscale else [layer.data]
    return slide_from_arrays(data, name=layer.name, mpp=mpp)


def guard_torch_imports() -> None:
    """Hide triton where there is no NVIDIA GPU (done at package import; kept for callers).

    See :mod:`napari_slideseg._torch_guard`.
    """
    from .._torch_guard import hide_triton_without_gpu

    hide_triton_without_gpu()


def edit_path(edit: FileEdit) -> Path:
    """The path a one-path :class:`~magicgui.widgets.FileEdit` holds.

    Parameters
    ----------
    edit : FileEdit
        A file edit in a one-path mode (``"r"``, ``"w"`` or ``"d"``) that is
        not nullable: its value is always a ``Path`` (``"."`` when empty).

    Returns
    -------
    Path
        The field's path.

    Raises
    ------
    TypeError
        For a several-files edit (mode ``"rm"``) or an empty nullable one.
    """
    value = edit.value
    if not isinstance(value, Path):
        raise TypeError(f"{edit.label}: expected one path, not {value!r}")
    return value


def labels_level0(layer: Any) -> Any:
    """Level-0 data of a Labels layer (multiscale or not).

    Parameters
    ----------
    layer : napari.layers.Labels
        The layer.

    Returns
    -------
    array
        Its full-resolution data.
    """
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification.

    Parameters
    ----------
    message : str
        The text.
    """
    from napari.utils.notifications import show_error

    show_error(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification.

    Parameters
    ----------
    message : str
        The text.
    """
    from napari.utils.notifications import show_warning

    show_warning(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari information notification.

    Parameters
    ----------
    message : str
        The text.
    """
    from napari.utils.notifications import show_info

    show_info(message)


class LayerChoice(ComboBox):
    """A combo box listing the viewer's layers of one type, kept up to date.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    layer_type : str
        Lower-case layer class name (``"image"``, ``"labels"``, ``"shapes"``).
    label : str
        The field's label.
    optional : bool
        Offer "no layer" (None) first.
    """

    def __init__(self, viewer: Any, layer_type: str, label: str, optional: bool = False) -> None:
        self._viewer = viewer
        self._type = layer_type
        self._optional = optional
        super().__init__(label=label, choices=self._names)
        for ev in (viewer.layers.events.inserted, viewer.layers.events.removed):
            ev.connect(lambda *_: self.reset_choices())

    def _names(self, *_: Any) -> list[Any]:
        names = [ly.name for ly in self._viewer.layers if type(ly).__name__.lower() == self._type]
        return [None, *names] if self._optional else names

    @property
    def layer(self) -> Any:
        """The chosen layer, or None."""
        name = self.value
        return next((ly for ly in self._viewer.layers if ly.name == name), None)


def drop_layer(viewer: Any, name: str) -> None:
    """Remove the viewer's layer called ``name``, if there is one.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    name : str
        The layer's name.
    """
    if name in viewer.layers:
        viewer.layers.remove(name)


def device_choice() -> ComboBox:
    """A ``device`` field offering the devices torch sees (``auto`` chosen).

    Returns
    -------
    ComboBox
        Choices ``(description, value)`` from
        :func:`~napari_slideseg.models.device.list_devices`.
    """
    from ..models.device import list_devices

    return ComboBox(
        choices=[(desc, value) for value, desc in list_devices()], value="auto", label="device"
    )


#: Widest a dock widget grows (px): long messages wrap instead of squeezing the canvas.
MAX_DOCK_WIDTH = 460


def bound_width(container: Any, *labels: Label) -> None:
    """Keep a dock widget at most :data:`MAX_DOCK_WIDTH` wide; ``labels`` wrap their text.

    Parameters
    ----------
    container : magicgui.widgets.Container
        The dock widget.
    *labels : Label
        Labels whose long text wraps.
    """
    from qtpy.QtWidgets import QSizePolicy

    container.native.setMaximumWidth(MAX_DOCK_WIDTH)
    for label in labels:
        label.native.setWordWrap(True)
        label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
