"""Patch-set settings: :class:`PatchConfig`, its error and the fixed levels."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..io.errors import SlideSegError
from ..options import GridMode, Overwrite, PadMode, Unannotated, values

GRID_MODES = tuple(values(GridMode))
PAD_MODES = tuple(values(PadMode))
OVERWRITE = tuple(values(Overwrite))
UNANNOTATED = tuple(values(Unannotated))
BLACK_LEVEL = 30
WHITE_LEVEL = 220


class PatchError(SlideSegError, ValueError):
    """Invalid patch parameters or inputs (the message says which and why)."""


@dataclass(frozen=True)
class PatchConfig:
    """Everything that defines a patch set (JSON-able; saved as ``run.json``).

    Attributes
    ----------
    size, stride
        Window edge and step in pixels of the chosen level.
    level, mpp
        Level to cut from, or a target microns per pixel (picks the level
        with the closest resolution that is not coarser). ``mpp`` wins.
    zoom
        Resample the chosen level by this factor before cutting (``0.5``:
        half resolution, twice the field of view per patch; ``2``: a 20x
        image brought to 40x). Windows are read and resampled block by block
        (images with area/linear interpolation, masks with nearest
        neighbours on the same pixel grid); ``size``, ``stride`` and the
        manifest's ``x``/``y`` are in resampled pixels, ``x0``/``y0`` in level 0.
    grid
        ``"valid"`` or ``"pad"`` (see the module docstring).
    pad_mode, pad_value
        How ``pad`` windows are filled: ``reflect`` or ``constant``
        (image ``pad_value``, mask background).
    region
        ``(y0, x0, y1, x1)`` box in level-0 pixels, or ``None``.
    polygons
        Polygons ``[[(y, x), ...], ...]`` in level-0 pixels (e.g. a napari
        Shapes layer's data); a window is kept when its centre is inside one.
    min_tissue, max_black, max_white
        Filter thresholds (fractions in [0, 1]; 0 / 1 / 1 disable them).
    tissue_level
        Level for the tissue mask (default: the smallest level at least 512
        px on its longest side).
    drop_background, keep_background
        Drop patches whose mask holds only background; keep this fraction of
        them anyway (1.0 keeps all, 0.0 drops all).
    seed
        Seeds the background-keeping draw.
    unannotated
        With a GeoJSON annotation mask: what pixels outside every annotation
        (and in holes) are: ``"background"`` (the class map's background) or
        ``"ignore"`` (:data:`~napari_slideseg.io.annotations.IGNORE_INDEX`,
        255, written in the mask patches; patches holding only it are
        dropped and counted as ``unannotated``; padding is 255 too).
    """

    size: int = 512
    stride: int = 512
    level: int = 0
    mpp: float | None = None
    zoom: float = 1.0
    grid: str = "valid"
    pad_mode: str = "reflect"
    pad_value: int = 0
    region: tuple[int, int, int, int] | None = None
    polygons: tuple[tuple[tuple[float, float], ...], ...] | None = None
    min_tissue: float = 0.0
    max_black: float = 1.0
    max_white: float = 1.0
    tissue_level: int | None = None
    drop_background: bool = False
    keep_background: float = 0.0
    seed: int = 0
    unannotated: str = "background"

    def __post_init__(self) -> None:
        from .. import validate as v

        err = PatchError

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("size", v.positive_int("size", self.size, error=err))
        put("stride", v.positive_int("stride", self.stride, error=err))
        put("level", v.nonneg_int("level", self.level, error=err))
        if self.mpp is not None:
            put("mpp", v.positive("mpp", self.mpp, error=err))
        put("zoom", v.positive("zoom", self.zoom, error=err))
        v.choice("grid", self.grid, GRID_MODES, error=err)
        v.choice("pad_mode", self.pad_mode, PAD_MODES, error=err)
        v.choice("unannotated", self.unannotated, UNANNOTATED, error=err)
        put("pad_value", v.int_in_range("pad_value", self.pad_value, 0, 65535, error=err))
        for name in ("min_tissue", "max_black", "max_white", "keep_background"):
            put(name, v.fraction(name, getattr(self, name), error=err))
        if self.tissue_level is not None:
            put("tissue_level", v.nonneg_int("tissue_level", self.tissue_level, error=err))
        put("seed", v.int_in_range("seed", self.seed, 0, 2**31 - 1, error=err))
        if not isinstance(self.drop_background, bool | np.bool_):
            raise PatchError(f"drop_background must be true or false, not {self.drop_background!r}")
        if self.polygons is not None:
            try:
                polys = tuple(tuple((float(y), float(x)) for y, x in p) for p in self.polygons)
            except (TypeError, ValueError):
                raise PatchError(
                    "polygons must be lists of (y, x) points in level-0 pixels"
                ) from None
            put("polygons", polys)
        if self.region is not None:
            r = self.region
            if isinstance(r, str | bytes) or len(r) != 4:
                raise PatchError(f"region must be four integers (y0, x0, y1, x1), not {r!r}")
            y0, x0, y1, x1 = (v.nonneg_int("region", c, error=err) for c in r)
            if y1 <= y0 or x1 <= x0:
                raise PatchError(
                    f"region must be (y0, x0, y1, x1) with y1 > y0 and x1 > x0, not {tuple(r)}"
                )
            put("region", (y0, x0, y1, x1))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able values (tuples become lists).

        Returns
        -------
        dict
            One entry per field (``unannotated`` only when it is not
            ``"background"``).
        """
        d = asdict(self)
        if d["unannotated"] == Unannotated.BACKGROUND:
            # left out at its default so runs from before the option keep their config hash
            del d["unannotated"]
        if d["polygons"] is not None:
            d["polygons"] = [[list(pt) for pt in p] for p in d["polygons"]]
        if d["region"] is not None:
            d["region"] = list(d["region"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatchConfig:
        """The config :meth:`to_dict` wrote (e.g. read back from ``run.json``).

        Parameters
        ----------
        d : dict
            Field values.

        Returns
        -------
        PatchConfig
            Validated.

        Raises
        ------
        PatchError
            A value is invalid.
        """
        d = dict(d)
        if d.get("region") is not None:
            d["region"] = tuple(d["region"])
        if d.get("polygons") is not None:
            d["polygons"] = tuple(tuple(tuple(pt) for pt in p) for p in d["polygons"])
        return cls(**d)
