"""The OpenSlide backend: MIRAX, Hamamatsu (NDPI, VMS, VMU), Leica, Ventana, Philips, Sakura...

OpenSlide (``openslide-python`` with the ``openslide-bin`` wheel, so no
system library) reads a region at a time. Each level becomes a dask array
whose chunks are whole tiles of the format near 512 px
(:func:`~.regions.chunk_side`), read with ``read_region`` on a pool of
handles so dask's threads decode in parallel. OpenSlide returns RGBA with
transparent pixels where the scanner stored nothing; they are composited
over the background colour the slide states (``openslide.background-color``,
white when absent), so a level is always RGB.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..errors import SlideError
from .levels import check_decodes, display_range, lazy_array, make_slide
from .model import AssociatedImage, Slide
from .regions import HandlePool, RegionArray, chunk_side, composite_rgba, parse_colour, path_token

#: Handles kept open per slide (each has OpenSlide's own tile cache).
POOL_SIZE = 4
#: Longest text kept per vendor property in the metadata.
_PROPERTY_MAX = 2000

_VENDOR_NAMES = {
    "aperio": "Aperio SVS",
    "dicom": "DICOM WSI",
    "generic-tiff": "TIFF",
    "hamamatsu": "Hamamatsu (NDPI/VMS/VMU)",
    "leica": "Leica SCN",
    "mirax": "3DHISTECH MIRAX",
    "philips": "Philips TIFF",
    "sakura": "Sakura SVSlide",
    "synthetic": "OpenSlide synthetic",
    "trestle": "Trestle TIFF",
    "ventana": "Ventana BIF",
    "zeiss": "Zeiss CZI",
}


def detect_vendor(path: str) -> str | None:
    """OpenSlide's name for the format of ``path`` (``"hamamatsu"``, ``"mirax"``...), or None.

    Parameters
    ----------
    path : str
        A file.

    Returns
    -------
    str or None
        None when OpenSlide does not recognise it or cannot be imported.
    """
    try:
        import openslide
    except ImportError:  # pragma: no cover - a base dependency
        return None
    try:
        return openslide.OpenSlide.detect_format(path)
    except Exception:  # OpenSlide raises for unreadable files
        return None


def vendor_name(vendor: str | None) -> str:
    """A reader's name for OpenSlide's vendor string (``"mirax"`` -> ``"3DHISTECH MIRAX"``).

    Parameters
    ----------
    vendor : str or None
        OpenSlide's vendor.

    Returns
    -------
    str
    """
    return _VENDOR_NAMES.get(vendor or "", vendor or "unknown format")


def open_handle(path: str) -> Any:
    """A new OpenSlide handle on ``path`` (the pool's opener; picklable by name).

    Parameters
    ----------
    path : str

    Returns
    -------
    openslide.OpenSlide
    """
    import openslide

    return openslide.OpenSlide(path)


def _first_handle(path: str) -> Any:
    """An OpenSlide handle on ``path``; OpenSlide's failure as a SlideError naming the format."""
    try:
        import openslide
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise SlideError(path, f"the OpenSlide backend is not installed ({exc})") from exc
    try:
        return openslide.OpenSlide(path)
    except Exception as exc:
        vendor = detect_vendor(path)  # only to name the format in the error
        what = (
            f"is a {vendor_name(vendor)} slide (OpenSlide detected {vendor!r}) but"
            if vendor
            else "is not a slide"
        )
        raise SlideError(
            path, f"{what} OpenSlide could not open it ({type(exc).__name__}: {exc})"
        ) from exc


def _mpp(props: dict[str, str]) -> tuple[float, float] | None:
    try:
        y, x = float(props["openslide.mpp-y"]), float(props["openslide.mpp-x"])
    except (KeyError, ValueError):
        return None
    return (y, x) if y > 0 and x > 0 else None


class _LevelReader:
    """``read(y, x, h, w)`` of one level; OpenSlide places regions in level-0 pixels.

    A class, not a closure, so a level array pickles (dask.distributed).
    """

    def __init__(self, pool: HandlePool, level: int, downsample: float, background: tuple):
        self.pool, self.level, self.downsample, self.background = (
            pool,
            level,
            downsample,
            background,
        )

    def __call__(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        x0, y0 = round(x * self.downsample), round(y * self.downsample)
        with self.pool.handle() as slide:
            rgba = np.asarray(slide.read_region((x0, y0), self.level, (w, h)))
        return composite_rgba(rgba, self.background)


def _associated(pool: HandlePool, handle: Any, background: tuple) -> list[AssociatedImage]:
    props = handle.properties
    images = []
    for name in handle.associated_images:
        try:
            size = (
                int(props[f"openslide.associated.{name}.width"]),
                int(props[f"openslide.associated.{name}.height"]),
            )
        except (KeyError, ValueError):
            size = None

        def read(name: str = name) -> np.ndarray:
            with pool.handle() as slide:
                return composite_rgba(np.asarray(slide.associated_images[name]), background)

        images.append(AssociatedImage(name, size, read))
    return images


def open_openslide(path: str) -> Slide:
    """Open a slide with OpenSlide as a :class:`~.model.Slide`.

    Parameters
    ----------
    path : str
        A file OpenSlide reads (the ``.mrxs`` of a MIRAX slide, the ``.vms``
        of a VMS slide, an NDPI, a DICOM instance of a series...).

    Returns
    -------
    Slide
        RGB levels chunked on whole tiles near 512 px; metadata ``vendor``,
        ``objective_power``, ``background`` and every OpenSlide property.

    Raises
    ------
    SlideError
        With the file, the format OpenSlide detected and OpenSlide's message,
        when it cannot be opened or its first pixels cannot be decoded.
    """
    first = _first_handle(path)
    props = dict(first.properties)
    pool = HandlePool(functools.partial(open_handle, path), POOL_SIZE, first=first)
    background = parse_colour(props.get("openslide.background-color"))
    token = path_token(path)
    levels = []
    for i, ((w, h), ds) in enumerate(
        zip(first.level_dimensions, first.level_downsamples, strict=False)
    ):
        tw = _int(props.get(f"openslide.level[{i}].tile-width"))
        th = _int(props.get(f"openslide.level[{i}].tile-height"))
        chunks = (chunk_side(th, h), chunk_side(tw, w), 3)
        arr = RegionArray(_LevelReader(pool, i, float(ds), background), (h, w, 3), np.uint8)
        levels.append(lazy_array(arr, path, chunks, name=f"slide-{token}-openslide-L{i}"))
    vendor = props.get("openslide.vendor")
    mpp = _mpp(props)
    metadata: dict[str, Any] = {
        "format": vendor or "openslide",
        "vendor": vendor,
        "vendor_name": vendor_name(vendor),
        "objective_power": _float(props.get("openslide.objective-power")),
        "background": list(background),
        "display_range": display_range(np.dtype(np.uint8), None),
        "mpp_source": "openslide.mpp-x/y" if mpp else None,
        "properties": {k: v[:_PROPERTY_MAX] for k, v in sorted(props.items())},
        "pyramid": "from file",
    }
    try:
        check_decodes(levels)
    except SlideError as exc:
        raise SlideError(
            path, f"OpenSlide opened it but cannot decode its pixels: {exc.problem}"
        ) from exc
    return make_slide(
        path, levels, mpp, "openslide", metadata, _associated(pool, first, background)
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
