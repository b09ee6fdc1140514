"""OME-Zarr (NGFF 0.4) metadata and label pyramids: the one place the package writes them.

Every multiscale image or label image this package stores as NGFF goes
through this module: the ``multiscales`` attributes (:func:`multiscales`),
the ``image-label`` attributes of a label image (:func:`image_label`), the
level arrays (:func:`create_level`, zarr v2 with ``/`` chunk keys, as NGFF
0.4 asks), and the label pyramid itself.

A label pyramid level of factor ``f`` holds level-0 pixels ``(f * i, f *
j)`` (stride sampling: labels are never averaged) and has shape
``ceil(h / f) x ceil(w / f)`` (:func:`stride_shape`). Two writers fill it:
:func:`write_label_image_steps` writes a whole label array as
``labels/<name>/`` (levels ``0, 1, ...`` of factors ``1, 2, 4, ...``, each
subsampled from the level just written), and :func:`write_window_levels`
writes one level-0 window into existing levels (block-wise inference).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import dask.array as da

from ..progress import Progress
from .blocks import iter_blocks

#: NGFF version of the metadata written (zarr v2 layout, ``/`` chunk keys).
NGFF_VERSION = "0.4"
#: zarr chunk-key encoding of NGFF 0.4 arrays (zarr v2 keys, ``/``-nested).
NGFF_CHUNK_KEYS: Mapping[str, str] = {"name": "v2", "separator": "/"}
#: Unit of the spatial axes when the microns per pixel are known.
MICROMETER = "micrometer"


def ngff_label_name(name: str) -> str:
    """A group name for a label image: letters, digits, ``.``, ``_``, ``-``.

    Parameters
    ----------
    name : str
        Any name (a napari layer's, a file's).

    Returns
    -------
    str
        ``name`` with every run of other characters replaced by ``_`` and
        leading/trailing ``.``/``_`` removed; ``"labels"`` if nothing is left.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "labels"


def ngff_axes(channel: bool = False, unit: str | None = None) -> list[dict[str, str]]:
    """NGFF ``axes`` of a 2D image: ``y, x`` (space), after ``c`` (channel) when ``channel``.

    Parameters
    ----------
    channel : bool
        Whether the arrays have a leading channel axis.
    unit : str or None
        Unit of the space axes (e.g. ``"micrometer"``); none recorded when None.

    Returns
    -------
    list of dict
        One ``{"name", "type"[, "unit"]}`` entry per axis.
    """
    extra = {"unit": unit} if unit else {}
    space = [{"name": a, "type": "space", **extra} for a in ("y", "x")]
    return [{"name": "c", "type": "channel"}, *space] if channel else space


def multiscales(
    name: str,
    factors: Sequence[tuple[float, float]],
    mpp: tuple[float, float] | None = None,
    *,
    channel: bool = False,
    paths: Sequence[str] | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """NGFF ``multiscales`` attributes of a pyramid, one dataset per level.

    Parameters
    ----------
    name : str
        The multiscale's ``name``.
    factors : sequence of (float, float)
        ``(fy, fx)`` per level: level-0 pixels per pixel of that level.
    mpp : (float, float) or None
        Level-0 microns per pixel ``(y, x)``: the scale of a level is
        ``mpp * factor`` and the space axes are in micrometres. Without it the
        scale is the factor alone and no unit is recorded.
    channel : bool
        Arrays have a leading channel axis (``c, y, x``; its scale is 1).
    paths : sequence of str, optional
        The level arrays' paths, relative to the group; ``"0", "1", ...`` by
        default.
    kind : str, optional
        The multiscale's ``type`` (how levels were reduced, e.g. ``"mean"``).

    Returns
    -------
    dict
        ``{"multiscales": [...]}``, to update a group's attributes with.
    """
    sy, sx = mpp if mpp else (1.0, 1.0)
    paths = [str(i) for i in range(len(factors))] if paths is None else list(paths)
    lead = [1.0] if channel else []
    datasets = [
        {
            "path": path,
            "coordinateTransformations": [{"type": "scale", "scale": [*lead, sy * fy, sx * fx]}],
        }
        for path, (fy, fx) in zip(paths, factors, strict=True)
    ]
    ms: dict[str, Any] = {
        "version": NGFF_VERSION,
        "name": name,
        "axes": ngff_axes(channel, MICROMETER if mpp else None),
        "datasets": datasets,
    }
    if kind is not None:
        ms["type"] = kind
    return {"multiscales": [ms]}


def image_label(
    classmap: Any = None,
    properties: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """NGFF ``image-label`` attributes: class colours and per-value properties.

    Parameters
    ----------
    classmap : ClassMap, optional
        Semantic labels: each class value gets its colour (the background
        transparent) and a ``class`` property with its name. None for an
        instance map (values are object ids, without colours). Typed
        ``Any``: importing :mod:`~napari_slideseg.io.palette` here would make
        an import cycle (palette -> slide -> pyramid -> ngff).
    properties : mapping of int to mapping, optional
        ``{label value: {key: JSON value}}``, merged into the properties
        (values without a class get an entry of their own).

    Returns
    -------
    dict
        ``{"version", ["colors"], ["properties"]}``, properties sorted by value.
    """
    meta: dict[str, Any] = {"version": NGFF_VERSION}
    props: list[dict[str, Any]] = []
    if classmap is not None:
        meta["colors"] = [
            {"label-value": i, "rgba": [*c, 0 if i == classmap.background else 255]}
            for i, c in enumerate(classmap.colors)
        ]
        props = [{"label-value": i, "class": n} for i, n in enumerate(classmap.names)]
    if properties:
        by_value = {p["label-value"]: p for p in props}
        for value, extra in properties.items():
            by_value.setdefault(int(value), {"label-value": int(value)}).update(extra)
        props = [by_value[k] for k in sorted(by_value)]
    if props:
        meta["properties"] = props
    return meta


def stride_shape(shape: Sequence[int], factor: int) -> tuple[int, int]:
    """Shape of the label pyramid level of ``factor``: ``ceil(h / f) x ceil(w / f)``.

    Parameters
    ----------
    shape : sequence of int
        Level-0 ``(h, w)``.
    factor : int
        The level's factor.

    Returns
    -------
    tuple of (int, int)
        The level's ``(h, w)``.
    """
    return (-(-int(shape[0]) // factor), -(-int(shape[1]) // factor))


def label_level_shapes(shape: Sequence[int], lowest_max: int) -> list[tuple[int, int]]:
    """Shapes of levels ``0, 1, ...`` (factors ``1, 2, 4, ...``) down to ``lowest_max``.

    Parameters
    ----------
    shape : sequence of int
        Level-0 ``(h, w)``.
    lowest_max : int
        Levels are added while the last one's longest side exceeds this.

    Returns
    -------
    list of (int, int)
        Level 0's shape first.
    """
    shapes = [stride_shape(shape, 1)]
    while max(shapes[-1]) > lowest_max:
        shapes.append(stride_shape(shape, 2 ** len(shapes)))
    return shapes


def create_level(
    group: Any,
    path: str,
    shape: Sequence[int],
    chunks: Sequence[int],
    dtype: Any,
    *,
    fill_value: Any = None,
    chunk_key_encoding: Mapping[str, str] | None = NGFF_CHUNK_KEYS,
) -> Any:
    """Create an empty level array of a pyramid in a zarr group.

    Parameters
    ----------
    group : zarr.Group
        The pyramid's group.
    path : str
        The array's name in ``group`` (its path in ``multiscales``).
    shape, chunks : sequence of int
        The array's shape and chunk shape.
    dtype : numpy dtype-like
        The array's dtype.
    fill_value : scalar, optional
        Value of chunks never written; zarr's default when None.
    chunk_key_encoding : mapping, optional
        Chunk keys; NGFF 0.4's ``/``-nested zarr v2 keys by default, zarr's
        default for the group's format when None.

    Returns
    -------
    zarr.Array
        The new array.
    """
    kwargs: dict[str, Any] = {}
    if fill_value is not None:
        kwargs["fill_value"] = fill_value
    if chunk_key_encoding is not None:
        kwargs["chunk_key_encoding"] = dict(chunk_key_encoding)
    return group.create_array(path, shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, **kwargs)


def write_label_image_steps(
    root: Any,
    name: str,
    labels: da.Array,
    *,
    mpp: tuple[float, float] | None = None,
    chunk: int = 1024,
    lowest_max: int = 1024,
    image_label_attrs: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    stage: str = "ome-zarr",
) -> Generator[Progress, None, Any]:
    """Write ``labels`` as the NGFF label image ``labels/<name>`` of the zarr group ``root``.

    ``root/labels`` lists the label image (``{"labels": [..., name]}``);
    ``labels/<name>`` holds levels ``0, 1, ...`` of factors ``1, 2, 4, ...``
    (:func:`label_level_shapes`; chunks of ``chunk``, fill value 0), each
    subsampled from the level just written so the source graph (e.g.
    inference) is computed once, block by block, and the attributes
    ``multiscales`` (axes ``y, x``, scale ``mpp * factor``),
    ``image-label`` and ``attrs``.

    Parameters
    ----------
    root : zarr.Group
        A writable group (zarr v2 for NGFF 0.4).
    name : str
        The label image's name: letters, digits, ``._-``
        (:func:`ngff_label_name`).
    labels : dask.array.Array
        2D integer labels.
    mpp : (float, float), optional
        Microns per pixel ``(y, x)`` of ``labels``.
    chunk : int
        Chunk edge of every level (smaller for a smaller level).
    lowest_max : int
        Longest side of the smallest level, at most.
    image_label_attrs : mapping, optional
        The ``image-label`` attributes (:func:`image_label`); ``{"version"}``
        alone by default.
    attrs : mapping, optional
        More attributes of the label image group (after the NGFF ones).
    stage : str
        Stage name of the progress events.

    Yields
    ------
    Progress
        One event per written block, over all levels.

    Returns
    -------
    zarr.Group
        The label image group.

    Raises
    ------
    ValueError
        ``name`` is not a clean group name.
    """
    if ngff_label_name(name) != name:
        raise ValueError(f"not a label image name (letters, digits, ._-): {name!r}")
    h, w = labels.shape
    shapes = label_level_shapes((h, w), lowest_max)
    group = root.require_group("labels")
    listed = list(group.attrs.get("labels", []))
    group.attrs.update({"labels": [*listed, name] if name not in listed else listed})
    image = group.create_group(name)
    image.attrs.update(
        {
            **multiscales(name, [(h / s[0], w / s[1]) for s in shapes], mpp),
            "image-label": dict(image_label_attrs or image_label()),
            **(attrs or {}),
        }
    )
    total = sum(-(-s[0] // chunk) * -(-s[1] // chunk) for s in shapes)
    done = 0
    level = labels
    for i, shape in enumerate(shapes):
        if i:
            # Subsampled from the level just written (already on disk), so the source
            # graph (e.g. inference) runs once; level i is then labels[::2**i, ::2**i].
            level = da.from_zarr(image[str(i - 1)])[::2, ::2]
        arr = create_level(
            image,
            str(i),
            shape,
            (min(chunk, shape[0]), min(chunk, shape[1])),
            labels.dtype,
            fill_value=0,
        )
        for y0, x0, block in iter_blocks(level, chunk):
            arr[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
            done += 1
            yield Progress(stage, done, total, f"level {i}: block {done}/{total}")
    return image


def write_window_levels(
    root: Any, group: str, y0: int, x0: int, window: Any, factors: Sequence[int]
) -> None:
    """Write the stride-sampled levels of a level-0 ``window`` at ``(y0, x0)`` into ``group/<f>``.

    Level ``f`` holds level-0 pixels ``(f * i, f * j)``; a window that does
    not start on a multiple of ``f`` contributes from its first such pixel.

    Parameters
    ----------
    root : zarr.Group
        The store.
    group : str
        Path of the pyramid group in ``root``; its level of factor ``f`` is
        the array ``<group>/<f>`` (shape :func:`stride_shape`).
    y0, x0 : int
        Level-0 position of the window's first pixel.
    window : numpy.ndarray
        Level-0 labels ``(h, w)``.
    factors : sequence of int
        The levels to write.
    """
    for f in factors:
        oy, ox = (-y0) % f, (-x0) % f
        sub = window[oy::f, ox::f]
        if sub.size:
            dy, dx = (y0 + oy) // f, (x0 + ox) // f
            root[f"{group}/{f}"][dy : dy + sub.shape[0], dx : dx + sub.shape[1]] = sub
