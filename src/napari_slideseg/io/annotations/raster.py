"""Class masks from annotation polygons, a window or a chunk at a time.

Pixel convention
----------------
Coordinates are level-0 pixels where pixel ``(x, y)`` covers ``[x, x + 1) x
[y, y + 1)`` (QuPath's and this plugin's GeoJSON). A mask pixel is inside a
polygon when its centre is: at level 0 the centre of pixel ``(x, y)`` is
``(x + 0.5, y + 0.5)``; on a grid downsampled by ``f`` pixel ``(c, r)``
covers ``[c f, (c + 1) f)`` and its centre is ``((c + 0.5) f, (r + 0.5) f)``.
A centre exactly on an edge is inside on the edge's right (larger x) and
lower side (larger y) only, so two polygons sharing an edge never both
miss a pixel. Polygons whose vertices lie on pixel corners (this plugin's
exports, traced along pixel edges) have no centre on an edge: they
rasterise back to the pixels they were traced from exactly.

Painting
--------
Interior rings are holes (even-odd rule over a part's rings): a hole is
not painted, so whatever lies under it (an earlier feature, or the
unannotated value) shows. Features are painted in file order, later ones
over earlier ones. Outside every annotation the value is the class map's
background, or :data:`IGNORE_INDEX` with ``unannotated="ignore"``.

Each block tests the parts' bounding boxes and scans only the parts that
overlap it (a scanline over their edges: crossings at the row centres,
sorted, paired into spans), so memory is bounded by the block.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...options import Unannotated, values
from .read import AnnotationError, Annotations

#: The mask value of unannotated pixels with ``unannotated="ignore"`` (not a class).
IGNORE_INDEX = 255
#: What unannotated pixels may be: ``"background"`` or ``"ignore"``.
UNANNOTATED = tuple(values(Unannotated))
#: Default chunk edge of lazy annotation masks (4 MiB of uint8).
ANNOTATION_CHUNK = 2048


def unannotated_value(annotations: Annotations, unannotated: str) -> int:
    """The mask value of pixels outside every annotation.

    Parameters
    ----------
    annotations : Annotations
        The annotations (their class map gives the background).
    unannotated : str
        ``"background"`` (the class map's background class) or ``"ignore"``
        (:data:`IGNORE_INDEX`).

    Returns
    -------
    int
        The value.

    Raises
    ------
    AnnotationError
        ``unannotated`` is neither (the message names the option).
    """
    from ...validate import choice

    choice("unannotated", unannotated, UNANNOTATED, error=AnnotationError)
    return IGNORE_INDEX if unannotated == Unannotated.IGNORE else annotations.classmap.background


def _factors(downsample: float | tuple[float, float]) -> tuple[float, float]:
    from ...validate import positive

    pair = (downsample, downsample) if np.isscalar(downsample) else tuple(downsample)  # type: ignore[arg-type]
    if len(pair) != 2:
        raise AnnotationError(f"downsample must be a number or (fy, fx), not {downsample!r}")
    fy, fx = (positive("downsample", v, error=AnnotationError) for v in pair)
    return float(fy), float(fx)


def _gather(annotations: Annotations, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges of ``parts`` (in order) and the part index of each edge."""
    starts, stops = annotations.starts[parts], annotations.starts[parts + 1]
    n = stops - starts
    first = np.repeat(np.cumsum(n) - n, n)
    idx = np.repeat(starts, n) + (np.arange(int(n.sum())) - first)
    return annotations.edges[idx], np.repeat(parts, n)


def scan_spans(
    edges: np.ndarray, part: np.ndarray, yc: np.ndarray, xc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inside spans of polygons on a grid of pixel centres (even-odd rule per part).

    An edge crosses the rows whose centre ``y`` has ``min(y1, y2) <= y <
    max(y1, y2)``; the crossings of a part's row, sorted by ``x``, pair into
    spans ``[xa, xb)``, and a span holds the columns whose centre ``x`` has
    ``xa <= x < xb``.

    Parameters
    ----------
    edges : numpy.ndarray
        ``(e, 4)`` edges ``x1, y1, x2, y2`` of closed rings.
    part : numpy.ndarray
        ``(e,)`` the polygon each edge belongs to (its rings: outer and holes).
    yc, xc : numpy.ndarray
        Increasing centres of the grid's rows and columns, level-0 pixels.

    Returns
    -------
    tuple of numpy.ndarray
        ``(part, row, start, stop)`` of each non-empty span, sorted by part
        then row; ``row`` indexes ``yc``, ``[start, stop)`` indexes ``xc``.
    """
    x1, y1, x2, y2 = edges.T
    flip = y1 > y2  # the same segment gives the same crossings whichever way it runs
    x1, x2 = np.where(flip, x2, x1), np.where(flip, x1, x2)
    y1, y2 = np.where(flip, y2, y1), np.where(flip, y1, y2)
    lo = np.searchsorted(yc, y1, "left")
    n = np.searchsorted(yc, y2, "left") - lo
    sel = np.flatnonzero(n > 0)
    n = n[sel]
    e = np.repeat(sel, n)
    rows = np.repeat(lo[sel], n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    y = yc[rows]
    x = x1[e] + (y - y1[e]) * ((x2[e] - x1[e]) / (y2[e] - y1[e]))
    p = part[e]
    order = np.lexsort((x, rows, p))
    p, rows, x = p[order][0::2], rows[order][0::2], x[order]
    start = np.searchsorted(xc, x[0::2], "left")
    stop = np.searchsorted(xc, x[1::2], "left")
    keep = stop > start
    return p[keep], rows[keep], start[keep], stop[keep]


def _paint(out: np.ndarray, rows: np.ndarray, start: np.ndarray, stop: np.ndarray, v: int) -> None:
    """Set the spans ``[start, stop)`` of ``rows`` (disjoint within a row) to ``v``."""
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(start.min()), int(stop.max())
    diff = np.zeros((r1 - r0, c1 - c0 + 1), np.int8)  # disjoint spans: sums stay 0 or 1
    np.add.at(diff, (rows - r0, start - c0), 1)
    np.add.at(diff, (rows - r0, stop - c0), -1)
    out[r0:r1, c0:c1][np.cumsum(diff, axis=1, dtype=np.int8)[:, :-1] > 0] = v


def rasterize_grid(
    annotations: Annotations,
    yc: np.ndarray,
    xc: np.ndarray,
    fill: int,
) -> np.ndarray:
    """The class mask of the pixels whose centres are ``yc x xc``.

    Only the parts whose bounding box reaches the centres are scanned.

    Parameters
    ----------
    annotations : Annotations
        The classed polygons.
    yc, xc : numpy.ndarray
        Increasing row and column centres in level-0 pixels.
    fill : int
        The value outside every annotation (0-255).

    Returns
    -------
    numpy.ndarray
        ``(len(yc), len(xc))`` uint8: each pixel's class id (the last
        feature holding its centre), else ``fill``.
    """
    out = np.full((len(yc), len(xc)), fill, np.uint8)
    if out.size == 0 or annotations.n_parts == 0:
        return out
    b = annotations.boxes
    hit = (b[:, 2] >= yc[0]) & (b[:, 0] <= yc[-1]) & (b[:, 3] >= xc[0]) & (b[:, 1] <= xc[-1])
    parts = np.flatnonzero(hit)
    if parts.size == 0:
        return out
    p, rows, start, stop = scan_spans(*_gather(annotations, parts), yc, xc)
    if p.size == 0:
        return out
    cuts = np.flatnonzero(np.diff(p)) + 1
    for a, z in zip(np.r_[0, cuts], np.r_[cuts, p.size], strict=True):
        _paint(out, rows[a:z], start[a:z], stop[a:z], int(annotations.class_ids[p[a]]))
    return out


def _centres(origin: float, step: float, first: int, stop: int) -> np.ndarray:
    """Centres of grid pixels ``first..stop-1``: the same numbers whichever block asks."""
    return origin + (np.arange(first, stop, dtype=np.float64) + 0.5) * step


def rasterize_window(
    annotations: Annotations,
    window: tuple[float, float, float, float],
    downsample: float | tuple[float, float] = 1.0,
    *,
    unannotated: str = "background",
) -> np.ndarray:
    """The class mask of a level-0 window, at a downsample (see the module's pixel convention).

    Parameters
    ----------
    annotations : Annotations
        From :func:`~napari_slideseg.io.annotations.read_annotations`.
    window : tuple
        ``(y0, x0, h, w)`` in level-0 pixels.
    downsample : float or tuple of float
        Level-0 pixels per mask pixel, ``f`` or ``(fy, fx)``: the mask is
        ``ceil(h / fy) x ceil(w / fx)`` and pixel ``(r, c)`` is centred on
        ``(y0 + (r + 0.5) fy, x0 + (c + 0.5) fx)``.
    unannotated : str
        ``"background"`` (the class map's background) or ``"ignore"``
        (:data:`IGNORE_INDEX`) outside every annotation.

    Returns
    -------
    numpy.ndarray
        ``uint8`` class ids.

    Raises
    ------
    AnnotationError
        A bad ``unannotated``, ``downsample`` or window.
    """
    fill = unannotated_value(annotations, unannotated)
    fy, fx = _factors(downsample)
    try:
        y0, x0, h, w = (float(v) for v in window)
    except (TypeError, ValueError):
        raise AnnotationError(f"window must be (y0, x0, h, w), not {window!r}") from None
    if h < 0 or w < 0:
        raise AnnotationError(f"window must have h, w >= 0, not {window!r}")
    yc = _centres(y0, fy, 0, math.ceil(h / fy))
    xc = _centres(x0, fx, 0, math.ceil(w / fx))
    return rasterize_grid(annotations, yc, xc, fill)


def annotation_labels(
    annotations: Annotations,
    shape: tuple[int, int],
    *,
    downsample: float | tuple[float, float] = 1.0,
    chunks: int | tuple[int, int] = ANNOTATION_CHUNK,
    unannotated: str = "background",
) -> Any:
    """A lazy class mask over a whole slide (or level), one block of polygons per chunk.

    Parameters
    ----------
    annotations : Annotations
        From :func:`~napari_slideseg.io.annotations.read_annotations`.
    shape : tuple of int
        ``(height, width)`` of the mask: the slide's level 0, or a level's
        shape with ``downsample`` its factors to level 0.
    downsample : float or tuple of float
        Level-0 pixels per mask pixel (pixel ``(r, c)`` is centred on
        ``((r + 0.5) fy, (c + 0.5) fx)`` in level-0 pixels).
    chunks : int or tuple of int
        Chunk edge(s); memory is bounded by one chunk.
    unannotated : str
        ``"background"`` or ``"ignore"`` (see :func:`rasterize_window`).

    Returns
    -------
    dask.array.Array
        ``uint8`` class ids of ``shape``; every chunk equals
        :func:`rasterize_window` of its window.

    Raises
    ------
    AnnotationError
        A bad ``unannotated``, ``downsample`` or shape.
    """
    import dask.array as da

    fill = unannotated_value(annotations, unannotated)
    fy, fx = _factors(downsample)
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise AnnotationError(f"shape must be (height, width), not {shape!r}") from None
    if h < 1 or w < 1:
        raise AnnotationError(f"shape must be at least 1 x 1, not {shape!r}")

    def block(block_info: Any = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        return rasterize_grid(
            annotations, _centres(0.0, fy, r0, r1), _centres(0.0, fx, c0, c1), fill
        )

    return da.map_blocks(
        block,
        chunks=da.core.normalize_chunks(chunks, (h, w)),
        dtype=np.uint8,
        meta=np.empty((0, 0), np.uint8),
    )
