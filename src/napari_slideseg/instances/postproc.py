"""HoVer-Net post-processing: NP + HV (+ NC) maps -> nucleus instances (NumPy/SciPy/OpenCV).

The steps and their defaults follow Graham et al. 2019 (HoVer-Net), at the
reference resolution of 0.25 µm/px (40x):

1. foreground: ``NP >= np_threshold`` (0.5); 4-connected components smaller
   than ``min_size`` (10 px) are removed;
2. Sobel derivatives (``sobel_ksize`` 21 x 21) of the H map along x and of
   the V map along y;
3. energy: each derivative is normalised to [0, 1] and inverted, the larger
   of the two is kept, and background is set to 0. High energy = between
   nuclei or at an uncertain edge;
4. markers: foreground where the energy is below ``marker_threshold`` (0.4),
   holes filled, opened with a ``opening_size`` (5 x 5) ellipse, components
   smaller than ``min_size`` removed;
5. marker-controlled watershed of ``-(1 - energy) * foreground`` blurred with
   a ``blur_size`` (3 x 3) Gaussian, restricted to the foreground;
6. each nucleus's type (when the model has an NC head): the NC
   probabilities are averaged over the nucleus's pixels and the type is the
   argmax over the non-background types (a nucleus is never typed
   background: NP already said it is a nucleus); its ``type_prob`` is that
   type's mean probability renormalised over the non-background types
   (mean of the type / sum of the means of all non-background types), i.e.
   the probability of the type given that it is a nucleus.

Kernel sizes scale with resolution (``mpp``): a 21 px kernel at 0.25 µm/px
becomes 11 px at 0.5 µm/px.

**Normalisation.** The reference code min-max normalises the H/V maps and
the Sobel responses over the whole input, so a nucleus's result depends on
what else is in the tile: tiled and untiled runs disagree at tile borders.
``normalize="fixed"`` (the default) uses bounds that do not depend on the
input: H/V are mapped from their known range [-1, 1] to [0, 1], and a Sobel
response ``s`` to ``0.5 - s / (2 * gradient_scale * R)`` clipped to [0, 1],
where ``R`` is the kernel's response to a unit-slope ramp (so ``s / R`` is a
per-pixel slope) and ``gradient_scale`` (default 0.1 per pixel at 0.25
µm/px, about the slope of H across a 20 px nucleus) plays the role of the
tile maximum. ``normalize="tile"`` reproduces the reference behaviour for
comparisons.

**Per object.** Components of the foreground are handled on their own
bounding-box crops (``scipy.ndimage.find_objects``): a component with one
marker is one nucleus without a watershed; only touching clusters run the
watershed. A foreground component without any marker (a thin or small
nucleus whose marker the opening erased) is kept as one nucleus
(``keep_unmarked=True``, the default); the reference's global watershed
drops it (``keep_unmarked=False`` reproduces that).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

# REFERENCE_MPP and HoverParams live in .params; re-exported for importers
from .params import REFERENCE_MPP as REFERENCE_MPP
from .params import HoverParams as HoverParams

# the default of hover_instances (a frozen dataclass, so one shared instance)
_DEFAULT_PARAMS = HoverParams()


@lru_cache(maxsize=8)
def _ramp_response(ksize: int) -> float:
    """Sobel response (x derivative) of ``ksize`` to the ramp f(x) = x."""
    import cv2

    n = 3 * ksize
    ramp = np.tile(np.arange(n, dtype=np.float64), (n, 1))
    return float(cv2.Sobel(ramp, cv2.CV_64F, 1, 0, ksize=ksize)[n // 2, n // 2])


def _remove_small(labels: np.ndarray, n: int, min_size: int) -> np.ndarray:
    if min_size <= 1 or n == 0:
        return labels
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_size
    keep[0] = False
    return np.where(keep[labels], labels, 0)


def _cc(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """4-connected components (int32 labels)."""
    import cv2

    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    return n - 1, lab


def _min_max(a: np.ndarray) -> np.ndarray:
    """``a`` (float32) min-max normalised to [0, 1] by OpenCV, as the reference code does."""
    import cv2

    # cv2 fills a given output of the same size and type as it would a new one
    return cv2.normalize(a, np.empty_like(a), 0, 1, cv2.NORM_MINMAX, dtype=cv2.CV_32F)


def energy_map(fg: np.ndarray, hv: np.ndarray, params: HoverParams) -> np.ndarray:
    """Steps 2-3: the boundary energy in [0, 1] (0 on background).

    Parameters
    ----------
    fg : numpy.ndarray
        ``(H, W)`` bool foreground.
    hv : numpy.ndarray
        ``(2, H, W)`` horizontal and vertical maps.
    params : HoverParams
        Kernel size and normalisation (already :meth:`~HoverParams.scaled`).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 energy: high between nuclei and at uncertain edges.
    """
    import cv2

    h = hv[0].astype(np.float32)
    v = hv[1].astype(np.float32)
    k = params.sobel_ksize
    if params.normalize == "tile":
        h = _min_max(h)
        v = _min_max(v)
        sh = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=k)
        sv = cv2.Sobel(v, cv2.CV_32F, 0, 1, ksize=k)
        sh = 1 - _min_max(sh)
        sv = 1 - _min_max(sv)
    else:
        h = np.clip((h + 1) * 0.5, 0, 1)
        v = np.clip((v + 1) * 0.5, 0, 1)
        # Derivative of the [0, 1] map: half the slope of the [-1, 1] map.
        scale = 1.0 / (2 * params.gradient_scale * 0.5 * _ramp_response(k))
        sh = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=k)
        sv = cv2.Sobel(v, cv2.CV_32F, 0, 1, ksize=k)
        sh = np.clip(0.5 - sh * scale, 0, 1)
        sv = np.clip(0.5 - sv * scale, 0, 1)
    energy = np.maximum(sh, sv)
    energy[~fg] = 0
    return energy


def hover_instances(
    np_prob: np.ndarray,
    hv: np.ndarray,
    nc_prob: np.ndarray | None = None,
    params: HoverParams = _DEFAULT_PARAMS,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Nucleus instances from HoVer-Net maps.

    Parameters
    ----------
    np_prob : numpy.ndarray
        ``(H, W)`` nucleus probability.
    hv : numpy.ndarray
        ``(2, H, W)`` horizontal and vertical maps (about [-1, 1]).
    nc_prob : numpy.ndarray, optional
        ``(T, H, W)`` type probabilities (type 0 = background).
    params : HoverParams
        Thresholds and sizes (scaled to ``params.mpp`` here).

    Returns
    -------
    tuple
        ``(instances, table)``: an int32 map with ids ``1..N`` (row-major order
        of each nucleus's first pixel... in practice the component order) and
        a column table (dict of arrays): ``id``, ``centroid_y``,
        ``centroid_x``, ``bbox_y0``, ``bbox_x0``, ``bbox_y1``, ``bbox_x1``,
        ``area``, ``type``, ``type_prob``.
    """
    import cv2
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    p = params.scaled()
    fg = np.asarray(np_prob) >= p.np_threshold
    n, comp = _cc(fg)
    comp = _remove_small(comp, n, p.min_size)
    fg = comp > 0
    energy = energy_map(fg, np.asarray(hv), p)
    dist: np.ndarray = (1.0 - energy) * fg
    if p.blur_size > 1:
        dist = cv2.GaussianBlur(dist, (p.blur_size, p.blur_size), 0)
    dist = -dist
    marker = fg & (energy < p.marker_threshold)
    marker = ndi.binary_fill_holes(marker)
    if p.opening_size > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (p.opening_size, p.opening_size))
        marker = cv2.morphologyEx(marker.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    nm, markers = _cc(marker)
    markers = _remove_small(markers, nm, p.min_size)

    inst = np.zeros(fg.shape, np.int32)
    next_id = 1
    for ci, sl in enumerate(ndi.find_objects(comp), start=1):
        if sl is None:
            continue
        cmask = comp[sl] == ci
        mk = np.where(cmask, markers[sl], 0)
        ids = np.unique(mk)
        ids = ids[ids != 0]
        if len(ids) == 0 and not p.keep_unmarked:
            continue  # the reference's watershed leaves marker-less components unlabelled
        if len(ids) <= 1:
            inst[sl][cmask] = next_id
            next_id += 1
            continue
        ws = watershed(dist[sl], markers=mk, mask=cmask, connectivity=1)
        lut = np.zeros(int(ws.max()) + 1, np.int32)
        lut[ids] = np.arange(next_id, next_id + len(ids), dtype=np.int32)
        view = inst[sl]
        view[cmask] = lut[ws[cmask]]
        next_id += len(ids)
    return inst, instance_table(inst, nc_prob)


def instance_table(
    inst: np.ndarray, nc_prob: np.ndarray | None = None, n_types: int | None = None
) -> dict[str, np.ndarray]:
    """Per-nucleus id, centroid, bbox, area, type and type probability (bbox crops only).

    With ``nc_prob`` (``(T, H, W)``, channel 0 background), a nucleus's
    ``type`` is the argmax over the non-background channels (``1..T-1``) of
    its pixels' mean NC probabilities, never 0, and ``type_prob`` is that
    mean renormalised over the non-background channels: the chosen type's
    mean divided by the sum of the means of types ``1..T-1`` (the
    probability of the type given that it is a nucleus; the probabilities
    of a nucleus's types sum to 1). A nucleus whose non-background
    probabilities are all 0 gets type 1 and ``1 / (T - 1)``. Without
    ``nc_prob`` (or with a background-only NC map) ``type`` is 0 and
    ``type_prob`` 0; the caller labels such nuclei (``hover_block``: type 1,
    "nucleus", probability 1).

    Parameters
    ----------
    inst : numpy.ndarray
        ``(H, W)`` instance map (ids ``1..N``, 0 background).
    nc_prob : numpy.ndarray, optional
        ``(T, H, W)`` type probabilities.
    n_types : int, optional
        Unused, accepted for compatibility (a DeprecationWarning says so).

    Returns
    -------
    dict of numpy.ndarray
        Columns ``id``, ``centroid_y``, ``centroid_x``, ``bbox_y0``,
        ``bbox_x0``, ``bbox_y1``, ``bbox_x1``, ``area``, ``type`` (int64) and
        ``type_prob`` (float64), one row per nucleus in id order.
    """
    from scipy import ndimage as ndi

    if n_types is not None:
        warnings.warn(
            "instance_table: n_types is unused (the types come from nc_prob); drop it",
            DeprecationWarning,
            stacklevel=2,
        )
    objs = ndi.find_objects(inst)
    rows = [(i, sl) for i, sl in enumerate(objs, start=1) if sl is not None]
    n = len(rows)
    t = {
        "id": np.zeros(n, np.int64),
        "centroid_y": np.zeros(n, np.float64),
        "centroid_x": np.zeros(n, np.float64),
        "bbox_y0": np.zeros(n, np.int64),
        "bbox_x0": np.zeros(n, np.int64),
        "bbox_y1": np.zeros(n, np.int64),
        "bbox_x1": np.zeros(n, np.int64),
        "area": np.zeros(n, np.int64),
        "type": np.zeros(n, np.int64),
        "type_prob": np.zeros(n, np.float64),
    }
    for r, (i, sl) in enumerate(rows):
        m = inst[sl] == i
        yy, xx = np.nonzero(m)
        t["id"][r] = i
        t["centroid_y"][r] = yy.mean() + sl[0].start
        t["centroid_x"][r] = xx.mean() + sl[1].start
        t["bbox_y0"][r], t["bbox_y1"][r] = sl[0].start, sl[0].stop
        t["bbox_x0"][r], t["bbox_x1"][r] = sl[1].start, sl[1].stop
        t["area"][r] = len(yy)
    if nc_prob is not None and n and np.shape(nc_prob)[0] > 1:
        t["type"], t["type_prob"] = nucleus_types(inst, nc_prob, t["id"])
    return t


def nucleus_types(
    inst: np.ndarray, nc_prob: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(type, type_prob)`` of each nucleus in ``ids`` (see :func:`instance_table`).

    The NC probabilities are summed per nucleus in one pass per channel
    (``np.bincount`` weighted by the channel, float64), so a block with
    thousands of nuclei costs ``T`` passes over its pixels.

    Parameters
    ----------
    inst : numpy.ndarray
        ``(H, W)`` instance map.
    nc_prob : numpy.ndarray
        ``(T, H, W)`` type probabilities, channel 0 background.
    ids : numpy.ndarray
        The nucleus ids to type.

    Returns
    -------
    tuple of numpy.ndarray
        ``(type, type_prob)``: int64 types in ``1..T-1`` and float64
        probabilities, one per id.
    """
    nc = np.asarray(nc_prob)
    flat = np.asarray(inst).ravel()
    size = int(flat.max()) + 1 if flat.size else 1
    count = np.bincount(flat, minlength=size)[ids].astype(np.float64)
    sums = np.stack(
        [
            np.bincount(flat, weights=nc[c].ravel().astype(np.float64), minlength=size)[ids]
            for c in range(1, nc.shape[0])
        ]
    )  # (T - 1, n): types 1..T-1
    mean = sums / np.maximum(count, 1)
    total = mean.sum(0)
    best = mean.argmax(0)
    prob = np.where(
        total > 0,
        mean[best, np.arange(len(ids))] / np.where(total > 0, total, 1),
        1.0 / mean.shape[0],
    )
    return (best + 1).astype(np.int64), prob.astype(np.float64)
