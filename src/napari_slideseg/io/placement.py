"""Where a label image sits on its slide, and how large its pixels are.

A prediction made on pyramid level ``L`` holds level-``L`` pixels; every
export is written in *level-0 pixels* of the slide (QuPath's convention)
whatever level was predicted, and carries microns per pixel wherever they
are known. :class:`Placement` is the small record that makes this possible:
the level, the factors from the label image's pixels to level-0 pixels,
the slide's level-0 shape and its level-0 microns per pixel.

It is built from a prediction zarr's attributes (``slideseg_inference``),
from a napari layer's attributes (the ``metadata["slideseg"]["placement"]``
this plugin sets on its layers, else the layer's scale when its units are
micrometres), or from what a mask file records (PNG ``pHYs``, TIFF
resolution tags, OME-Zarr scale, RLE CSV columns). Without any of these, a
label image is taken as level 0 with unknown resolution: pixel coordinates
are written as they are.

Coordinate conventions
----------------------
* GeoJSON polygons follow pixel *edges* (pixel ``(y, x)`` covers
  ``[x, x + 1) x [y, y + 1)``, QuPath's convention), so level-``L``
  outlines become level-0 outlines by multiplying by the factors, exactly.
* Tables (nucleus centroids) and napari Points use pixel *indices*
  (pixel ``i``'s centre is at ``i``, numpy's and napari's convention):
  level index ``c`` is level-0 index ``(c + 0.5) * f - 0.5``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: napari's name for the unit of a layer in microns.
MICROMETER = "micrometer"
_MICRO_NAMES = {"micrometer", "micrometre", "micron", "um", "µm", "μm"}


def _pair(v: Any) -> tuple[float, float] | None:
    if v is None:
        return None
    if isinstance(v, int | float):
        return (float(v), float(v))
    vals = [float(x) for x in v]
    if len(vals) < 2:
        logger.debug("a (y, x) pair needs 2 values, not %r: taken as unknown", v)
        return None
    y, x = vals[-2:]
    if not (math.isfinite(y) and math.isfinite(x)) or y <= 0 or x <= 0:
        logger.debug("(y, x) = %r is not positive and finite: taken as unknown", (y, x))
        return None
    return (y, x)


def _shape(v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    vals = [int(x) for x in v]
    return (vals[0], vals[1]) if len(vals) >= 2 else None


def is_micrometer(unit: Any) -> bool:
    """Whether ``unit`` (a string or a pint unit) names micrometres.

    Parameters
    ----------
    unit : str or pint.Unit
        A napari layer unit.

    Returns
    -------
    bool
        True for ``micrometer``, ``micron``, ``um``, ``µm`` and their spellings.
    """
    return str(unit).strip().lower() in _MICRO_NAMES


@dataclass(frozen=True)
class Placement:
    """A label image's place on its slide.

    Parameters
    ----------
    level
        The slide pyramid level whose pixels the labels hold (0 when unknown).
    factors
        ``(fy, fx)``: level-0 pixels per label pixel (a level's downsample).
    slide_shape
        The slide's level-0 ``(height, width)``, when known.
    mpp
        Level-0 microns per pixel ``(y, x)``, when known.
    shape
        The label image's own ``(height, width)``, when known.
    """

    level: int = 0
    factors: tuple[float, float] = (1.0, 1.0)
    slide_shape: tuple[int, int] | None = None
    mpp: tuple[float, float] | None = None
    shape: tuple[int, int] | None = None

    # -- derived ----------------------------------------------------------------
    @property
    def pixel_mpp(self) -> tuple[float, float] | None:
        """Microns per pixel of the label image itself (level-0 mpp x factors)."""
        if self.mpp is None:
            return None
        return (self.mpp[0] * self.factors[0], self.mpp[1] * self.factors[1])

    @property
    def is_level0(self) -> bool:
        """Whether the labels hold level-0 pixels (factors 1)."""
        return self.factors == (1.0, 1.0)

    def index_to_level0(self, y: Any, x: Any) -> tuple[Any, Any]:
        """Pixel indices of the labels -> level-0 pixel indices (pixel centres at integers).

        Parameters
        ----------
        y, x : float or numpy.ndarray
            Pixel indices in the label image.

        Returns
        -------
        tuple
            ``(y, x)`` in level-0 pixel indices.
        """
        fy, fx = self.factors
        return (y + 0.5) * fy - 0.5, (x + 0.5) * fx - 0.5

    # -- (de)serialisation ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (layer metadata, zarr attributes).

        Returns
        -------
        dict
            ``level``, ``level_factors``, ``slide_shape``, ``mpp`` and ``level_shape``.
        """
        return {
            "level": int(self.level),
            "level_factors": [float(f) for f in self.factors],
            "slide_shape": list(self.slide_shape) if self.slide_shape else None,
            "mpp": list(self.mpp) if self.mpp else None,
            "level_shape": list(self.shape) if self.shape else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Placement | None:
        """From :meth:`to_dict` or a prediction zarr's ``slideseg_inference`` dict.

        Parameters
        ----------
        d : mapping, optional
            The record.

        Returns
        -------
        Placement or None
            None when ``d`` is empty, not a mapping, or names none of
            ``level_factors``, ``slide_shape``, ``mpp`` and ``level``.
        """
        if not d or not isinstance(d, Mapping):
            return None
        if not any(k in d for k in ("level_factors", "slide_shape", "mpp", "level")):
            return None
        factors = _pair(d.get("level_factors")) or (1.0, 1.0)
        shape = _shape(d.get("level_shape"))
        slide_shape = _shape(d.get("slide_shape"))
        if d.get("level_factors") is None and shape and slide_shape:
            factors = (slide_shape[0] / shape[0], slide_shape[1] / shape[1])
        return cls(
            level=int(d.get("level") or 0),
            factors=factors,
            slide_shape=slide_shape,
            mpp=_pair(d.get("mpp")),
            shape=shape,
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any] | None) -> Placement | None:
        """From a zarr group's attributes: a prediction, or labels this plugin wrote.

        Parameters
        ----------
        attrs : mapping, optional
            The group's attributes.

        Returns
        -------
        Placement or None
            From ``slideseg_inference``, else ``slideseg.placement``; None without either.
        """
        if not attrs:
            return None
        attrs = dict(attrs)
        p = cls.from_dict(attrs.get("slideseg_inference"))
        if p is not None:
            return p
        return cls.from_dict((attrs.get("slideseg") or {}).get("placement"))

    @classmethod
    def from_pixel_mpp(
        cls, pixel_mpp: Sequence[float] | None, shape: Sequence[int] | None = None
    ) -> Placement:
        """Labels of unknown level whose pixels are ``pixel_mpp`` µm (taken as level 0).

        Parameters
        ----------
        pixel_mpp : sequence of float, optional
            ``(y, x)`` µm per pixel of the labels (a single number for both).
        shape : sequence of int, optional
            The labels' ``(height, width)``.

        Returns
        -------
        Placement
            Level 0, factors 1.
        """
        return cls(mpp=_pair(pixel_mpp), shape=_shape(shape))

    @classmethod
    def from_layer(cls, attributes: Mapping[str, Any] | None) -> Placement:
        """From a napari layer's attributes (what npe2 writers receive).

        The plugin's own layers carry ``metadata["slideseg"]["placement"]``;
        a layer without it whose units are micrometres is taken as level-0
        pixels of ``scale`` µm; otherwise pixel coordinates stay as they are.

        Parameters
        ----------
        attributes : mapping, optional
            The layer's attributes (``metadata``, ``scale``, ``units``).

        Returns
        -------
        Placement
            The layer's placement; ``Placement()`` (level 0, µm unknown) without one.
        """
        attributes = attributes or {}
        meta = attributes.get("metadata") or {}
        slideseg = meta.get("slideseg") if isinstance(meta, Mapping) else None
        p = cls.from_dict((slideseg or {}).get("placement"))
        if p is not None:
            return p
        scale = attributes.get("scale")
        units = [str(u) for u in (attributes.get("units") or [])]
        if scale is not None and len(units) >= 2 and all(is_micrometer(u) for u in units[-2:]):
            return cls(mpp=_pair(scale))
        return cls()


def layer_mpp(attributes: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """µm per pixel of a napari layer: its scale when its units are micrometres.

    Parameters
    ----------
    attributes : mapping, optional
        The layer's attributes.

    Returns
    -------
    tuple of float or None
        ``(y, x)`` µm per pixel; else the pixel size its placement records;
        else None.
    """
    attributes = attributes or {}
    scale = attributes.get("scale")
    units = [str(u) for u in (attributes.get("units") or [])]
    if scale is not None and len(units) >= 2 and all(is_micrometer(u) for u in units[-2:]):
        return _pair(scale)
    return Placement.from_layer(attributes).pixel_mpp


# -----------------------------------------------------------------------------
# file-level resolution records
# -----------------------------------------------------------------------------
def mpp_to_ppm(mpp: tuple[float, float]) -> tuple[int, int]:
    """PNG ``pHYs`` pixels per metre ``(x, y)`` from µm per pixel ``(y, x)``.

    Parameters
    ----------
    mpp : tuple of float
        ``(y, x)`` µm per pixel.

    Returns
    -------
    tuple of int
        ``(x, y)`` pixels per metre, rounded.
    """
    return (round(1e6 / mpp[1]), round(1e6 / mpp[0]))


def ppm_to_mpp(ppm_x: float, ppm_y: float) -> tuple[float, float] | None:
    """µm per pixel ``(y, x)`` from PNG ``pHYs`` pixels per metre.

    Parameters
    ----------
    ppm_x, ppm_y : float
        Pixels per metre along x and y.

    Returns
    -------
    tuple of float or None
        ``(y, x)`` µm per pixel; None unless both are positive.
    """
    if ppm_x <= 0 or ppm_y <= 0:
        return None
    return (1e6 / ppm_y, 1e6 / ppm_x)


__all__ = [
    "MICROMETER",
    "Placement",
    "is_micrometer",
    "layer_mpp",
    "mpp_to_ppm",
    "ppm_to_mpp",
]
