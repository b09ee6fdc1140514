"""Plain layer-data tuples for napari, built without importing napari.

napari's reader and sample-data contributions (and console users) take
``(data, kwargs, layer_type)`` tuples. Building them here keeps the npe2 glue
thin and lets scripts do ``viewer.add_image(*slide_layer(slide)[:2])``.
"""

from __future__ import annotations

from typing import Any

from .io.slide import Slide


def slide_layer(slide: Slide, name: str | None = None) -> tuple[list, dict[str, Any], str]:
    """A multiscale Image layer tuple for ``slide``.

    Contrast limits are fixed from the stored bit depth (never computed over
    the slide). Scale and units come from the microns per pixel when known.

    Parameters
    ----------
    slide
        An opened slide.
    name
        Layer name (default: the file name).

    Returns
    -------
    tuple
        ``(levels, kwargs, "image")``.
    """
    meta = slide.metadata
    display = meta.get("display_range") or [0.0, 255.0]
    kwargs: dict[str, Any] = {
        "name": name or slide.name,
        "multiscale": True,
        "rgb": slide.is_rgb,
        "contrast_limits": [float(display[0]), float(display[1])],
        "metadata": {
            "slideseg": {
                "path": slide.path,
                "backend": slide.backend,
                "levels": [list(lv.shape) for lv in slide.levels],
                "downsamples": list(slide.downsamples),
                "mpp": list(slide.mpp) if slide.mpp else None,
                "tile_size": list(slide.tile_size),
            },
            "path": slide.path,
            "file_metadata": meta,
        },
    }
    if slide.mpp:
        kwargs["scale"] = tuple(slide.mpp)
        kwargs["units"] = ("micrometer", "micrometer")
    if not slide.is_rgb:
        kwargs["colormap"] = "gray"
        if slide.channels > 1:
            kwargs["channel_axis"] = 2
            kwargs.pop("rgb")
            kwargs["contrast_limits"] = [kwargs["contrast_limits"]] * slide.channels
    return list(slide.levels), kwargs, "image"


def labels_layer(
    labels: Any,
    classmap: Any | None = None,
    *,
    name: str = "labels",
    scale: tuple[float, float] | None = None,
    metadata: dict[str, Any] | None = None,
    features: Any | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """A Labels layer tuple whose colours are the class map's (background transparent).

    The class map travels in ``metadata["slideseg"]["classmap"]`` so writers
    and widgets get it back from the layer.
    """
    meta = dict(metadata or {})
    slideseg = dict(meta.get("slideseg") or {})
    kwargs: dict[str, Any] = {"name": name}
    if classmap is not None:
        slideseg["classmap"] = classmap.to_dict()
        # napari turns a {label: rgba} dict (None = default) into a DirectLabelColormap.
        kwargs["colormap"] = classmap.to_napari_colormap_dict()
    meta["slideseg"] = slideseg
    kwargs["metadata"] = meta
    if scale is not None:
        kwargs["scale"] = tuple(scale)
    if features is not None:
        kwargs["features"] = features
    return labels, kwargs, "labels"
