"""Outlines of binary masks along pixel edges, the polygons GeoJSON exports are made of.

Pixel ``(y, x)`` covers ``[x, x + 1) x [y, y + 1)`` (QuPath's convention):
rasterising the polygons by pixel centres gives the mask back exactly, and
scaling them by a level's downsample gives the level-0 outline.
"""

from __future__ import annotations

import numpy as np


def mask_polygons(mask: np.ndarray) -> list[list[list[list[float]]]]:
    """Polygons (outer ring + holes, closed, (x, y)) of a binary crop, along pixel edges.

    Pixel ``(y, x)`` covers ``[x, x + 1) x [y, y + 1)`` (QuPath's convention),
    so rasterising the polygons by pixel centres gives back ``mask`` exactly,
    and scaling them by a level's downsample gives the level-0 outline.
    The borders are traced (OpenCV) on the mask upsampled 2x, where a pixel's
    left/top border pixels have even and its right/bottom ones odd indices:
    index ``k`` maps to edge ``ceil(k / 2)``.

    Parameters
    ----------
    mask : numpy.ndarray
        2D binary crop, padded by one background pixel all round.

    Returns
    -------
    list
        One entry per connected part: its rings (outer first, then holes),
        each a closed list of ``[x, y]`` pixel-edge points.
    """
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    up = np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hier = hierarchy[0]
    polys: list[list[list[list[float]]]] = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue  # a hole: attached to its parent below
        rings = [_ring(c)]
        child = hier[i][2]
        while child != -1:
            rings.append(_ring(contours[child]))
            child = hier[child][0]
        polys.append(rings)
    return polys


def _ring(contour: np.ndarray) -> list[list[float]]:
    pts = (contour.reshape(-1, 2).astype(np.int64) + 1) // 2
    keep = np.ones(len(pts), bool)
    keep[1:] = (pts[1:] != pts[:-1]).any(1)
    pts = pts[keep]
    if len(pts) > 1 and (pts[0] == pts[-1]).all():
        pts = pts[:-1]
    ring = pts.astype(float).tolist()
    ring.append(ring[0])
    return ring
