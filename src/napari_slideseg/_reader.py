"""npe2 reader glue for slides.

napari calls :func:`napari_get_reader` for every file whose name matches the
manifest's patterns, so this module imports only the standard library and the
light :mod:`napari_slideseg.io.sniff`. Heavy imports happen in the returned
reader function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .io.sniff import RASTER_SUFFIXES, TIFF_SUFFIXES, raster_header, sniff_kind

#: PNG/JPEG files smaller than this are left to napari's builtin reader.
RASTER_MIN_PIXELS = 4096 * 4096


def napari_get_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a slide reader for ``path`` or ``None`` (fast; nothing decoded).

    Slides (TIFF family, zarr directories) and PNG/JPEG images larger than
    4096 x 4096 are claimed; colour-mask TIFFs this plugin wrote are left to
    :func:`napari_get_mask_reader` (npe2 tries a plugin's readers in no fixed
    order). Files with a slide extension are claimed even when
    their header is broken, so the user gets a clear message instead of
    "no reader found".
    """
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    path = os.fspath(path)
    lower = path.lower().rstrip("/\\")
    kind = sniff_kind(path)
    if kind == "tiff" and _written_by_slideseg(path, kind) and _tiff_may_be_mask(path):
        return None  # a mask this plugin wrote: the mask reader opens it as Labels
    if kind in ("tiff", "zarr"):
        return read_slide
    if kind in ("png", "jpeg"):
        try:
            header = raster_header(path)
        except (OSError, ValueError):
            return read_slide
        return read_slide if header.pixels > RASTER_MIN_PIXELS else None
    if lower.endswith(TIFF_SUFFIXES) or lower.endswith(".zarr"):
        return read_slide  # broken or missing: read_slide reports why
    if lower.endswith(RASTER_SUFFIXES) and not os.path.exists(path):
        return None
    return None


def read_slide(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a slide as a multiscale Image layer; errors become notifications."""
    from .io.errors import SlideError
    from .io.slide import open_slide
    from .layers import slide_layer

    if isinstance(path, list | tuple):
        path = path[0]
    try:
        slide = open_slide(path, progress=_napari_progress())
    except SlideError as err:
        _notify_error(str(err))
        return [(None,)]
    return [slide_layer(slide)]


def _napari_progress():
    """A progress callback that shows in napari's activity dock (if napari is there)."""
    try:
        from napari.utils import progress
    except ImportError:  # pragma: no cover - napari is always there when napari calls us
        return None
    bars: dict[str, Any] = {}

    def callback(event) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bars.clear()
            bar = bars[event.stage] = progress(total=event.total or 0, desc=event.message)
        bar.n = event.done
        bar.set_description(event.message)
        bar.refresh()
        if event.total and event.done >= event.total:
            bar.close()
            bars.pop(event.stage, None)

    return callback


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # pragma: no cover
        raise RuntimeError(message) from None
    show_error(message)


# -----------------------------------------------------------------------------
# masks: colour-mask PNG/TIFF and RLE CSV -> Labels
# -----------------------------------------------------------------------------
#: Largest mask the sniffer decodes to check its palette.
MASK_SNIFF_MAX_PIXELS = 50_000_000


def napari_get_mask_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a Labels reader for colour masks in a known palette and RLE CSVs, else ``None``.

    A PNG/TIFF is a mask when this plugin wrote it (its class map is
    recorded in the file) or when every colour in it belongs to one preset
    palette (``biopsy6``, ``wsi3``, ``binary``); TIFFs with lossy
    compression (JPEG, JPEG 2000: slides, never masks) are not read.
    A CSV is claimed when its header has an RLE column.
    """
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(".csv"):
        return read_mask if _csv_has_rle(path) else None
    kind = sniff_kind(path)
    if kind == "png":
        try:
            if raster_header(path).pixels > MASK_SNIFF_MAX_PIXELS:
                return None
        except (OSError, ValueError):
            return None
    elif kind == "tiff":
        if not _tiff_may_be_mask(path):
            return None
    else:
        return None
    if _written_by_slideseg(path, kind):
        return read_mask
    from .io.palette import is_color_mask

    return read_mask if is_color_mask(path, max_pixels=MASK_SNIFF_MAX_PIXELS) is not None else None


def _csv_has_rle(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().lower()
    except OSError:
        return False
    cols = {c.strip().strip('"') for c in header.split(",")}
    return bool(cols & {"rle", "encodedpixels", "predicted", "annotation"})


def _written_by_slideseg(path: str, kind: str) -> bool:
    """Whether a PNG/TIFF records a slideseg class map (PNG text chunk, TIFF description)."""
    try:
        if kind == "png":
            import struct

            with open(path, "rb") as fh:
                fh.read(8)
                while True:
                    head = fh.read(8)
                    if len(head) < 8:
                        return False
                    n, tag = struct.unpack(">I4s", head)
                    if tag in (b"IDAT", b"IEND"):
                        return False
                    if tag == b"tEXt" and n < 1 << 20:
                        if fh.read(n).split(b"\x00", 1)[0] == b"slideseg:classmap":
                            return True
                        fh.seek(4, 1)
                    else:
                        fh.seek(n + 4, 1)
        import tifffile

        with tifffile.TiffFile(path) as tif:
            desc = tif.pages.first.description or ""
        return desc.startswith('{"slideseg"') and '"classmap"' in desc
    except Exception:
        return False


def _tiff_may_be_mask(path: str) -> bool:
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            lossy = int(page.compression) in (6, 7, 33003, 33004, 33005, 34712, 50001, 50002)
            return not lossy and page.imagewidth * page.imagelength <= MASK_SNIFF_MAX_PIXELS
    except Exception:
        return False


def read_mask(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a colour mask or RLE CSV as a Labels layer coloured by its class map."""
    from pathlib import Path

    from .io.errors import SlideSegError
    from .io.masks import read_labels
    from .layers import labels_layer

    if isinstance(path, list | tuple):
        path = path[0]
    try:
        labels, classmap, info = read_labels(path)
    except SlideSegError as err:
        _notify_error(str(err))
        return [(None,)]
    meta: dict[str, Any] = {
        "path": os.fspath(path),
        "slideseg": {"source": {k: v for k, v in info.items() if k != "attrs"}},
    }
    if info.get("placement"):
        meta["slideseg"]["placement"] = info["placement"]
    mpp = info.get("mpp")
    return [
        labels_layer(
            labels,
            classmap,
            name=Path(path).stem,
            metadata=meta,
            scale=tuple(mpp) if mpp else None,
            units=("micrometer", "micrometer") if mpp else None,
        )
    ]
