"""The Training widget's fine-tune source: corrections of a prediction layer -> a new model.

Thin glue over :func:`napari_slideseg.finetune.finetune_prediction_steps`:
the chosen prediction layer's pending corrections are saved first (its
tracker, if the user painted on it), the run goes into a new numbered
folder under the widget's run folder, and when it ends the re-predicted
regions are added to the viewer as layers named ``... (fine-tuned)``, and
what the layer showed when Run was pressed as ``... (fine-tuned, view)``.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from ..finetune import FinetuneConfig, finetune_prediction_steps
from .corrections import TRACKERS, track_corrections


def prediction_path(layer: Any) -> str:
    """The prediction folder behind a Labels layer the plugin opened, or an error saying so.

    Parameters
    ----------
    layer : napari.layers.Labels or None

    Returns
    -------
    str

    Raises
    ------
    ValueError
        When no layer is chosen or it is not a prediction layer.
    """
    meta = (getattr(layer, "metadata", None) or {}).get("slideseg") or {}
    if layer is None or not meta.get("prediction"):
        raise ValueError(
            "choose a prediction layer (a prediction folder opened with the napari-slideseg "
            "reader, or the Inference widget's result) to fine-tune on its corrections"
        )
    return str(meta["prediction"])


def next_run_folder(root: Path) -> Path:
    """``root/finetune-N`` for the first N not taken (fine-tuning never writes over a run).

    Parameters
    ----------
    root : Path

    Returns
    -------
    Path
    """
    n = 1
    while (root / f"finetune-{n}").exists():
        n += 1
    return root / f"finetune-{n}"


def start_tracking(viewer: Any, layer: Any) -> Any:
    """Track the corrections painted on ``layer`` (see :func:`~.corrections.track_corrections`).

    Parameters
    ----------
    viewer : napari.Viewer
    layer : napari.layers.Labels

    Returns
    -------
    CorrectionTracker
    """
    prediction_path(layer)
    return track_corrections(viewer, layer)


def finetune_job(layer: Any, root: Path, config: FinetuneConfig) -> Generator[Any, None, Any]:
    """Save the layer's pending corrections, then fine-tune in a new folder under ``root``.

    Parameters
    ----------
    layer : napari.layers.Labels
        The prediction layer (tracked or not).
    root : Path
        The widget's run folder.
    config : FinetuneConfig

    Returns
    -------
    generator
        :func:`~napari_slideseg.finetune.finetune_prediction_steps`'s.
    """
    pred = prediction_path(layer)
    tracker = TRACKERS.get(id(layer))
    if tracker is not None:
        tracker.save()
    view = visible_box(layer)
    return finetune_prediction_steps(pred, next_run_folder(Path(root)), config=config, view=view)


def visible_box(layer: Any) -> tuple[int, int, int, int] | None:
    """The ``(y0, x0, y1, x1)`` of ``layer``'s level 0 napari shows now, or None.

    Parameters
    ----------
    layer : napari.layers.Labels
        A single-scale layer (a tracked one is).

    Returns
    -------
    tuple of int or None
        None for a multiscale layer (its corners are in the shown level's pixels).
    """
    if getattr(layer, "multiscale", False):
        return None
    corners = getattr(layer, "corner_pixels", None)
    if corners is None:
        return None
    (y0, x0), (y1, x1) = ([int(v) for v in row[-2:]] for row in corners)
    return (y0, x0, y1 + 1, x1 + 1) if y1 >= y0 and x1 >= x0 else None


def add_repredicted(viewer: Any, result: Any, like: Any) -> list[Any]:
    """Add the re-predicted regions to ``viewer`` beside the layer ``like``; the new layers.

    Parameters
    ----------
    viewer : napari.Viewer
    result : FinetuneResult
    like : napari.layers.Labels
        The prediction layer (its scale places the new layers).

    Returns
    -------
    list of napari.layers.Layer
    """
    from ..layers import prediction_layers

    if result is None:
        return []
    sy, sx = (float(s) for s in getattr(like, "scale", (1.0, 1.0))[-2:])
    scale = (sy, sx)
    added = []
    for out, tag in ((result.repredicted, "fine-tuned"), (result.view, "fine-tuned, view")):
        if out is None:
            continue
        for data, kwargs, kind in prediction_layers(out, base_scale=scale):
            kwargs = {**kwargs, "name": f"{kwargs.get('name', 'prediction')} ({tag})"}
            added.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return added
