"""What the Inference widget writes and shows: its output folder, result layers and status lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..infer.config import InferConfig, InferError
from ._common import drop_layer


def checked_output(path: Path) -> Path:
    """The output folder the user named, unless it is a folder that is not a ``.zarr`` output.

    Parameters
    ----------
    path : Path
        The output field's path (``~`` expanded).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InferError
        When ``path`` is an existing folder that is neither named ``*.zarr``
        nor a zarr v3 store (e.g. the working directory).
    """
    if path.is_dir() and path.suffix != ".zarr" and not (path / "zarr.json").exists():
        raise InferError(
            f"{path}: is a folder, not a .zarr output; give a new name ending in .zarr "
            "(or clear the field for the default)"
        )
    return path


def default_output(slide: Any, paths: list[Path], cfg: InferConfig) -> Path:
    """The output folder of a run whose output field is empty.

    It lives in ``~/slideseg-predictions`` and is named after the slide and
    model plus a digest of the slide path, the checkpoints and every
    setting that changes the result (region included), so another region or
    zoom never collides with an earlier output.

    Parameters
    ----------
    slide : Slide
        The slide (its path, or its name for an in-memory slide).
    paths : list of Path
        The checkpoint folders (the first one names the output).
    cfg : InferConfig
        The run's settings (all but device, threads and batch size go into the digest).

    Returns
    -------
    Path
        ``~/slideseg-predictions/<slide>_<model>_<digest>.zarr``.
    """
    import hashlib
    import json

    from ..infer.output import RUN_ONLY

    settings = {k: v for k, v in cfg.to_dict().items() if k not in RUN_ONLY}
    raw = json.dumps(
        {"slide": slide.path or slide.name, "models": [str(p) for p in paths], **settings},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    stem = Path(slide.path or slide.name).name.split(".")[0]
    return Path.home() / "slideseg-predictions" / f"{stem}_{paths[0].name}_{digest}.zarr"


def add_prediction_layer(
    viewer: Any, out: Any, base_scale: tuple[float, float], units: dict[str, Any]
) -> Any:
    """Add a prediction folder's (live) Labels layer, replacing a layer of its name.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    out : path-like
        The prediction folder (it may still be written).
    base_scale : tuple of float
        The slide layer's scale (y, x).
    units : dict
        ``{"units": ...}`` of the slide layer, or ``{}``.

    Returns
    -------
    napari.layers.Labels
        The new layer.
    """
    from ..layers import prediction_layers

    data, kwargs, _ = prediction_layers(out, base_scale=base_scale)[0]
    drop_layer(viewer, kwargs["name"])
    return viewer.add_labels(data, **{**units, **kwargs})


def add_instance_layers(
    viewer: Any,
    out: Any,
    instances: tuple[Any, ...],
    labels: Any,
    units: dict[str, Any],
    *,
    points: bool,
    replacing: tuple[Any, ...] = (),
) -> tuple[Any, Any]:
    """Add a HoVer prediction's nuclei layer (with its table) and, if asked, its centroids.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    out : path-like
        The finished prediction folder.
    instances : tuple
        The nuclei's ``(data, kwargs, "labels")`` layer tuple.
    labels : napari.layers.Labels
        The prediction's class layer (its scale and ``slideseg`` metadata are shared).
    units : dict
        ``{"units": ...}`` of the slide layer, or ``{}``.
    points : bool
        Add a Points layer of the nuclei's centroids too.
    replacing : tuple of napari layers
        The layers of an earlier run, removed first (None for none).

    Returns
    -------
    tuple
        The nuclei layer, and the Points layer (None when not asked for or empty).
    """
    from ..layers import centroid_points

    for old in replacing:
        if old is not None and old in viewer.layers:
            viewer.layers.remove(old)
    data, kwargs, _ = instances
    drop_layer(viewer, kwargs["name"])
    instance_layer = viewer.add_labels(data, **{**units, **kwargs})
    instance_layer.metadata["slideseg"].update(labels.metadata["slideseg"])
    points_layer = None
    if points:
        pdata, pkw, _ = centroid_points(
            out, scale=tuple(labels.scale[-2:]), features=kwargs.get("features")
        )
        drop_layer(viewer, pkw["name"])
        if len(pdata):
            points_layer = viewer.add_points(pdata, **{**units, **pkw})
    return instance_layer, points_layer


def done_message(out: Any) -> str:
    """The status line after a run: the folder, and how many background blocks were skipped.

    Parameters
    ----------
    out : path-like
        The finished prediction folder.

    Returns
    -------
    str
        ``"done: <out>"``, plus the skipped blocks when there were any.
    """
    import zarr

    attrs: dict[str, Any] = dict(zarr.open_group(str(out), mode="r").attrs)  # the engine's JSON
    skipped = int(attrs.get("slideseg_inference", {}).get("skipped_blocks", 0))
    return f"done: {out}" + (f" ({skipped} background blocks skipped)" if skipped else "")


def zoom_line(zoom: float, info: dict[str, Any], *, auto: bool) -> str:
    """The resolution line: slide and model µm/px, and the zoom a run will use.

    Parameters
    ----------
    zoom : float
        The zoom :func:`~napari_slideseg.infer.config.resolve_zoom` gives.
    info : dict
        Its ``slide_mpp``, ``model_mpp`` (None when unknown) and ``auto_zoom``.
    auto : bool
        Whether zoom auto is on.

    Returns
    -------
    str
        E.g. ``"slide 0.25 µm/px, model 0.5 µm/px: zoom 0.5 (auto)"``.
    """
    sm, mm = info["slide_mpp"], info["model_mpp"]
    line = (
        f"slide {f'{sm:.4g}' if sm else '?'} µm/px, model {f'{mm:.4g}' if mm else '?'} "
        f"µm/px: zoom {zoom:g}" + (" (auto)" if auto else "")
    )
    if not auto and info.get("auto_zoom"):
        line += f" (auto would be {info['auto_zoom']:g})"
    return line
