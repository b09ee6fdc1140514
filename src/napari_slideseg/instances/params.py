"""The thresholds and kernel sizes of HoVer-Net post-processing (:class:`HoverParams`).

:func:`~napari_slideseg.instances.postproc.hover_instances` takes them; the
defaults are the reference's (Graham et al. 2019) at 0.25 µm/px, and
:meth:`HoverParams.scaled` rescales the pixel sizes to another resolution.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)

REFERENCE_MPP = 0.25


@dataclass(frozen=True)
class HoverParams:
    """Thresholds and kernel sizes of HoVer-Net post-processing (reference defaults).

    :func:`~napari_slideseg.instances.postproc.hover_instances` takes them.

    Parameters
    ----------
    np_threshold : float
        Foreground where the NP probability is at least this.
    min_size : int
        Components (and markers) smaller than this many pixels are removed.
    sobel_ksize : int
        Sobel kernel size of the H/V derivatives (odd).
    marker_threshold : float
        Markers where the energy is below this.
    opening_size : int
        Elliptical opening of the markers (pixels; 1: none).
    blur_size : int
        Gaussian blur of the watershed surface (pixels; 1: none).
    normalize : str
        ``"fixed"`` (input-independent bounds) or ``"tile"`` (the reference's
        min-max over the input).
    gradient_scale : float
        Slope per pixel mapped to full energy with ``normalize="fixed"``.
    mpp : float, optional
        Microns per pixel of the maps; sizes are scaled from the reference
        0.25 µm/px (:meth:`scaled`). None: the reference resolution.
    keep_unmarked : bool
        Keep a foreground component without a marker as one nucleus (the
        reference drops it).

    Raises
    ------
    ValueError
        For a ``normalize`` other than ``"fixed"`` or ``"tile"``.
    """

    np_threshold: float = 0.5
    min_size: int = 10
    sobel_ksize: int = 21
    marker_threshold: float = 0.4
    opening_size: int = 5
    blur_size: int = 3
    normalize: str = "fixed"
    gradient_scale: float = 0.1
    mpp: float | None = None
    keep_unmarked: bool = True

    def __post_init__(self) -> None:
        if self.normalize not in ("fixed", "tile"):
            raise ValueError(f"normalize must be 'fixed' or 'tile', not {self.normalize!r}")

    def scaled(self) -> HoverParams:
        """Kernel sizes, minimum size and gradient scale for ``mpp`` (odd sizes, cv2 limits).

        Returns
        -------
        HoverParams
            These parameters at the reference resolution's pixel sizes times
            0.25 / ``mpp`` (itself when ``mpp`` is unset or already 0.25); sizes
            outside OpenCV's limits are clipped to them.
        """
        if not self.mpp or abs(self.mpp - REFERENCE_MPP) < 1e-6:
            return self
        f = REFERENCE_MPP / float(self.mpp)

        def odd(k: int, lo: int, hi: int) -> int:
            v = round(k * f)
            v = v if v % 2 else v + 1
            if not lo <= v <= hi:
                logger.debug(
                    "kernel size %d at %g µm/px is outside [%d, %d]: clipped", v, self.mpp, lo, hi
                )
            return max(lo, min(hi, v))

        return HoverParams(
            **{
                **asdict(self),
                "sobel_ksize": odd(self.sobel_ksize, 3, 31),
                "opening_size": odd(self.opening_size, 1, 99),
                "blur_size": odd(self.blur_size, 1, 99),
                "min_size": max(1, round(self.min_size * f * f)),
                "gradient_scale": self.gradient_scale / f,
                "mpp": REFERENCE_MPP,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict (for model cards and run records).

        Returns
        -------
        dict
            ``{field: value}`` of every parameter.
        """
        return asdict(self)

    @classmethod
    def small_nuclei(cls, **kwargs: Any) -> HoverParams:
        """For small, crowded nuclei (e.g. CoNSeP lymphocytes): 11 px Sobel, 3 px opening.

        Parameters
        ----------
        **kwargs
            Other fields (they win over the two above).

        Returns
        -------
        HoverParams
            The parameters.
        """
        return cls(**{"sobel_ksize": 11, "opening_size": 3, **kwargs})
