"""HoVer-Net training targets from an instance map (pure NumPy/SciPy).

For every nucleus, the horizontal (``h``) and vertical (``v``) maps hold each
pixel's signed distance to the nucleus's centre of mass along x and y,
scaled to [-1, 1] within the nucleus (negative and positive sides scaled
separately, as in Graham et al. 2019, so both reach exactly -1 and 1).
Channel order is ``(h, v)``, MONAI's convention. Work is done on each
nucleus's bounding-box crop (``scipy.ndimage.find_objects``), never by
scanning the whole map once per nucleus.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def relabel_sequential(inst: np.ndarray) -> np.ndarray:
    """Instance ids ``1..N`` in order of first appearance of the sorted ids (int32).

    Parameters
    ----------
    inst : numpy.ndarray
        An instance map (0 background, any non-negative ids).

    Returns
    -------
    numpy.ndarray
        The same objects with ids ``1..N`` (``inst`` itself, as int32, when
        its ids already are).
    """
    ids, inv = np.unique(inst, return_inverse=True)
    n = len(ids) - (1 if len(ids) and ids[0] == 0 else 0)
    if n and ids[-1] == n and (len(ids) == n or ids[0] == 0):
        return inst.astype(np.int32, copy=False)
    # compact ids without a table as large as the largest id (slide ids reach 2**32)
    return (inv.reshape(inst.shape) + (0 if len(ids) and ids[0] == 0 else 1)).astype(np.int32)


def split_disconnected(inst: np.ndarray) -> np.ndarray:
    """Give every 8-connected piece of an instance its own id (sequential int32).

    Patches cut at a border or augmented with reflection can hold two copies
    of one id; HV targets need each piece to have its own centre.

    Parameters
    ----------
    inst : numpy.ndarray
        An instance map.

    Returns
    -------
    numpy.ndarray
        int32 map with ids ``1..M`` (``M`` pieces).
    """
    from scipy import ndimage as ndi

    inst = relabel_sequential(np.asarray(inst))
    out = np.zeros(inst.shape, np.int32)
    nxt = 1
    s8 = np.ones((3, 3), bool)
    for i, sl in enumerate(ndi.find_objects(inst), start=1):
        if sl is None:
            continue
        m = inst[sl] == i
        lab, n = ndi.label(m, structure=s8)
        view = out[sl]
        view[m] = lab[m] + (nxt - 1)
        nxt += n
    return out


def hv_maps(inst: np.ndarray) -> np.ndarray:
    """``(2, H, W)`` float32: horizontal and vertical distance maps of ``inst``.

    Background is 0. A one-pixel-wide nucleus gets 0 along its thin axis.

    Parameters
    ----------
    inst : numpy.ndarray
        ``(H, W)`` instance map.

    Returns
    -------
    numpy.ndarray
        Channel 0: x distance to the nucleus centre, channel 1: y distance,
        each scaled to [-1, 1] per nucleus side.
    """
    from scipy import ndimage as ndi

    inst = relabel_sequential(np.asarray(inst))
    out = np.zeros((2, *inst.shape), np.float32)
    for i, sl in enumerate(ndi.find_objects(inst), start=1):
        if sl is None:
            continue
        m = inst[sl] == i
        yy, xx = np.nonzero(m)
        cy, cx = yy.mean(), xx.mean()
        for ch, d in ((0, xx - cx), (1, yy - cy)):
            d = d.astype(np.float32)
            neg, pos = d < 0, d > 0
            if neg.any():
                d[neg] /= -d[neg].min()
            if pos.any():
                d[pos] /= d[pos].max()
            crop = out[ch][sl]
            crop[yy, xx] = d
    return out


def instance_types(inst: np.ndarray, type_map: np.ndarray) -> dict[int, int]:
    """``{instance id: majority type}`` from a per-pixel type map (background type 0 ignored).

    Parameters
    ----------
    inst : numpy.ndarray
        ``(H, W)`` instance map.
    type_map : numpy.ndarray
        ``(H, W)`` type per pixel.

    Returns
    -------
    dict of int to int
        Each instance's most frequent non-zero type (0 when it has none).
    """
    from scipy import ndimage as ndi

    out = {}
    objs = ndi.find_objects(inst)
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        t = type_map[sl][inst[sl] == i]
        t = t[t > 0]
        out[i] = int(np.bincount(t).argmax()) if t.size else 0
    return out


def hover_targets(inst: np.ndarray, type_map: np.ndarray | None = None) -> dict[str, Any]:
    """All HoVer-Net targets of one patch.

    Parameters
    ----------
    inst : numpy.ndarray
        ``(H, W)`` instance map.
    type_map : numpy.ndarray, optional
        ``(H, W)`` type per pixel.

    Returns
    -------
    dict
        ``np`` (H, W) uint8 nucleus/background, ``hv`` (2, H, W) float32 in
        [-1, 1], ``nc`` (H, W) uint8 type per pixel (each nucleus takes its
        majority type; absent when ``type_map`` is None), ``inst`` the
        sequential instance map (int32).
    """
    inst = relabel_sequential(np.asarray(inst))
    out: dict[str, Any] = {"inst": inst, "np": (inst > 0).astype(np.uint8), "hv": hv_maps(inst)}
    if type_map is not None:
        types = instance_types(inst, np.asarray(type_map))
        lut = np.zeros(int(inst.max()) + 1, np.uint8)
        for i, t in types.items():
            lut[i] = t
        out["nc"] = lut[inst]
    return out


#: Type value meaning "this patch has no type labels" (the NC loss ignores its nuclei).
UNKNOWN_TYPE = 65535


def hover_target_array(mask: np.ndarray) -> np.ndarray:
    """The ``(4, H, W)`` float32 training target (NP, H, V, NC) of an instance mask.

    NC is the nucleus type (0 on background). Where the type channel holds
    :data:`UNKNOWN_TYPE` (patches from a dataset without types, e.g.
    MoNuSeg next to CoNSeP) or there is no type channel, nuclei get NC = -1,
    which the loss ignores.

    Parameters
    ----------
    mask : numpy.ndarray
        An ``(H, W)`` instance map or an ``(H, W, 2)`` instance + type stack.

    Returns
    -------
    numpy.ndarray
        ``(4, H, W)`` float32: NP, H, V, NC.
    """
    inst = mask[..., 0] if mask.ndim == 3 else mask
    types = mask[..., 1] if mask.ndim == 3 else None
    unknown = types is None or bool((types == UNKNOWN_TYPE).any())
    inst = split_disconnected(inst)
    t = hover_targets(inst, None if unknown else types)
    y = np.zeros((4, *inst.shape), np.float32)
    y[0] = t["np"]
    y[1:3] = t["hv"]
    y[3] = -1.0 * t["np"] if unknown else t["nc"]
    return y
