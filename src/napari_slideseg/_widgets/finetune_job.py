"""The Training widget's fine-tune source: corrections of a prediction layer -> a new model.

Thin glue over :func:`napari_slideseg.finetune.finetune_prediction_steps`:
the chosen prediction layer's pending corrections are saved first (its
tracker, if the user painted on it), the run goes into a new numbered
folder under the widget's run folder, and when it ends the re-predicted
regions are added to the viewer as layers named ``... (fine-tuned)``, and
what the layer showed when Run was pressed as ``... (fine-tuned, view)``.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from pathlib import Path
from typing import Any

from ..finetune import FinetuneConfig, finetune_prediction_steps
from ..io.sniff import is_zarr_path
from .corrections import TRACKERS, track_corrections

logger = logging.getLogger(__name__)


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


def finetune_job(
    viewer: Any, layer: Any, run: Path, config: FinetuneConfig
) -> Generator[Any, None, Any]:
    """Save the layer's pending corrections, then fine-tune into ``run``.

    What the canvas shows now is predicted with the new model too (the
    Inference widget's *current view*, in the layer's pixels).

    Parameters
    ----------
    viewer : napari.Viewer
    layer : napari.layers.Labels
        The prediction layer (tracked or not).
    run : Path
        A new folder (:func:`next_run_folder`).
    config : FinetuneConfig

    Returns
    -------
    generator
        :func:`~napari_slideseg.finetune.finetune_prediction_steps`'s.
    """
    import numpy as np

    from .regions import region_args, view_box

    pred = prediction_path(layer)
    tracker = TRACKERS.get(id(layer))
    if tracker is not None:
        tracker.save()
    to_px = np.asarray(layer.scale[-2:], float)  # world units per pixel of the prediction
    view = region_args("current view", "", lambda: view_box(viewer), None, to_px)["region"]
    return finetune_prediction_steps(pred, run, config=config, view=view)


#: The re-predictions a fine-tuning run writes, and the tag of their layers.
OUTPUTS = (("repredicted.zarr", "fine-tuned"), ("view.zarr", "fine-tuned, view"))


def _scale(like: Any) -> tuple[float, float]:
    sy, sx = (float(s) for s in getattr(like, "scale", (1.0, 1.0))[-2:])
    return (sy, sx)


def _add(viewer: Any, out: Path, like: Any, tag: str, first_only: bool) -> list[Any]:
    """Add (replacing same-named ones) the layers of the prediction ``out``, named ``... (tag)``."""
    from ..layers import prediction_layers
    from ._common import drop_layer

    tuples = prediction_layers(out, base_scale=_scale(like))
    added = []
    for data, kwargs, kind in tuples[:1] if first_only else tuples:
        kwargs = {**kwargs, "name": f"{kwargs.get('name', 'prediction')} ({tag})"}
        drop_layer(viewer, kwargs["name"])
        added.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return added


def live_layers(viewer: Any, run: Path, like: Any, shown: dict[str, Any]) -> None:
    """While a run re-predicts: show each re-prediction as it is written, refreshed.

    Parameters
    ----------
    viewer : napari.Viewer
    run : Path
        The fine-tuning run's folder.
    like : napari.layers.Labels
        The prediction layer (its scale places the new layers).
    shown : dict
        Output name -> the live layer; updated in place.
    """
    for name, tag in OUTPUTS:
        out = run / name
        layer = shown.get(name)
        if layer is not None and layer in viewer.layers:
            layer.refresh()
        elif is_zarr_path(str(out)):
            try:
                shown[name] = _add(viewer, out, like, tag, first_only=True)[0]
            except Exception as exc:  # not written far enough yet: the next event tries again
                logger.debug("%s: not shown yet (%s)", out, exc)


def add_repredicted(viewer: Any, result: Any, like: Any) -> list[Any]:
    """Add the finished re-predictions to ``viewer`` beside ``like`` (replacing the live ones).

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
    if result is None:
        return []
    added = []
    for out, (_, tag) in zip((result.repredicted, result.view), OUTPUTS, strict=True):
        if out is not None:
            added += _add(viewer, Path(out), like, tag, first_only=False)
    return added
