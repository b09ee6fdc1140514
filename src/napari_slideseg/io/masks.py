"""Reading label images in any of the forms users bring them.

:func:`read_labels` returns ``(labels, classmap, info)`` for a colour mask
(PNG/TIFF, one RGB colour per class), an index mask (grey PNG/TIFF of class
indices or instance ids), an RLE CSV (Kaggle or slideseg layouts), or a zarr
/ OME-Zarr label image (read lazily, block by block).

The resolution a file records comes back in ``info["mpp"]`` (µm per pixel
of the labels, ``(y, x)``) and, where the file says where it sits on its
slide, ``info["placement"]`` (:meth:`Placement.to_dict`): PNG ``pHYs`` and
the ``slideseg:placement`` text chunk, TIFF resolution tags, OME
PhysicalSize or the slideseg description, OME-Zarr scale and axis units,
RLE CSV placement columns, a prediction zarr's attributes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from .errors import SlideSegError
from .palette import ClassMap, MaskError, read_color_mask
from .placement import Placement, is_micrometer


def _read_zarr_labels(path: Path) -> tuple[da.Array, ClassMap | None, dict[str, Any]]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise MaskError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from exc
    info: dict[str, Any] = {"format": "zarr"}
    classmap = None
    if isinstance(node, zarr.Array):
        arr = node
    else:
        attrs = dict(node.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if ms:
            arr = node[ms[0]["datasets"][0]["path"]]
            info["format"] = "ome-zarr"
        elif "labels" in node and isinstance(node["labels"], zarr.Array):
            arr = node["labels"]
        else:
            arrays = sorted((a for _, a in node.arrays()), key=lambda a: -int(np.prod(a.shape)))
            if not arrays:
                raise MaskError(f"{path}: zarr group holds no label array")
            arr = arrays[0]
        cm = attrs.get("slideseg", {}).get("classmap")
        if cm:
            classmap = ClassMap.from_dict(cm)
        info["attrs"] = attrs
        where = Placement.from_attrs(attrs)
        if where is None and ms:
            where = Placement.from_pixel_mpp(_ngff_mpp(ms[0]))
            where = where if where.mpp else None
        if where is not None:
            info["placement"] = where.to_dict()
            info["mpp"] = list(where.pixel_mpp) if where.pixel_mpp else None
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise MaskError(f"{path}: expected a 2D integer label array, got {arr.shape} {arr.dtype}")
    return da.from_zarr(arr), classmap, info


def _ngff_mpp(ms: dict[str, Any]) -> tuple[float, float] | None:
    """µm per pixel of an NGFF multiscale's first dataset (its y, x scale in micrometres)."""
    try:
        axes = ms.get("axes") or []
        units = [a.get("unit") if isinstance(a, dict) else None for a in axes][-2:]
        if len(units) != 2 or not all(u is not None and is_micrometer(u) for u in units):
            return None
        scale = None
        for t in ms["datasets"][0].get("coordinateTransformations", []):
            if t.get("type") == "scale":
                scale = t["scale"]
        for t in ms.get("coordinateTransformations", []) or []:
            if t.get("type") == "scale" and scale is not None:
                scale = [a * b for a, b in zip(scale, t["scale"], strict=False)]
        return (float(scale[-2]), float(scale[-1])) if scale else None
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def file_placement(path: str | os.PathLike) -> Placement | None:
    """What a PNG or TIFF mask records about its resolution and place (None if nothing).

    PNG: the ``slideseg:placement`` text chunk, else ``pHYs`` (pixels per
    metre). TIFF: the slideseg JSON description, else OME PhysicalSize or
    the resolution tags.
    """
    from .sniff import sniff_kind

    p = Path(path)
    kind = sniff_kind(str(p))
    try:
        if kind == "png":
            from PIL import Image

            from .export import PNG_PLACEMENT_KEY
            from .placement import ppm_to_mpp

            with Image.open(p) as im:  # header: our text chunks come before the pixels
                raw = im.info.get(PNG_PLACEMENT_KEY)
                size = (im.size[1], im.size[0])
            if raw:
                found = Placement.from_dict(json.loads(raw))
                if found is not None:
                    return found
            phys = _png_phys(p)
            mpp = ppm_to_mpp(*phys) if phys is not None else None
            return Placement.from_pixel_mpp(mpp, size) if mpp else None
        if kind == "tiff":
            import tifffile

            from .slide import _tiff_mpp

            with tifffile.TiffFile(p) as tif:
                page = tif.pages.first
                desc = page.description or ""
                if desc.startswith("{") and "slideseg" in desc:
                    found = Placement.from_dict(
                        json.loads(desc).get("slideseg", {}).get("placement")
                    )
                    if found is not None:
                        return found
                mpp, _ = _tiff_mpp(tif, page)
                return Placement.from_pixel_mpp(mpp, page.shape[:2]) if mpp else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
        return None
    return None


def _png_phys(path: Path) -> tuple[int, int] | None:
    """``pHYs`` pixels per metre ``(x, y)`` of a PNG when its unit is the metre."""
    import struct

    with open(path, "rb") as fh:
        fh.read(8)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return None
            n, tag = struct.unpack(">I4s", head)
            if tag == b"pHYs" and n == 9:
                px, py, unit = struct.unpack(">IIB", fh.read(9))
                return (px, py) if unit == 1 else None
            if tag in (b"IDAT", b"IEND"):
                return None
            fh.seek(n + 4, 1)


def _with_placement(info: dict[str, Any], where: Placement | None) -> dict[str, Any]:
    if where is not None:
        info["placement"] = where.to_dict()
        info["mpp"] = list(where.pixel_mpp) if where.pixel_mpp else None
    return info


def read_labels(
    path: str | os.PathLike,
    *,
    classmap: ClassMap | str | None = None,
    shape: tuple[int, int] | None = None,
    rle_order: str | None = None,
    tolerance: float | None = None,
) -> tuple[Any, ClassMap | None, dict[str, Any]]:
    """Read a label image from a colour mask, index mask, RLE CSV or zarr.

    Parameters
    ----------
    path
        ``.png``/``.tif`` mask, ``.csv`` RLE, or a zarr directory.
    classmap
        A :class:`ClassMap` or a preset name (``biopsy6``, ``wsi3``,
        ``binary``) or a JSON file; inferred from the mask when omitted.
    shape
        ``(height, width)`` for RLE files without shape columns.
    rle_order
        ``"col"`` or ``"row"`` for RLE files that don't record their order.
    tolerance
        Opt-in nearest-colour tolerance for JPEG-compressed colour masks.

    Returns
    -------
    tuple
        ``(labels, classmap or None, info)``; ``labels`` is NumPy, or dask for
        zarr input.
    """
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: no such file or directory")
    cm = resolve_classmap(classmap)
    name = p.name.lower()
    if p.is_dir() or name.endswith(".zarr"):
        labels, zcm, info = _read_zarr_labels(p)
        return labels, cm or zcm, info
    if name.endswith(".csv"):
        from .rle import read_rle_csv

        labels, info = read_rle_csv(p, order=rle_order, shape=shape)
        names = info.get("class_names")
        if cm is None and names and info.get("layout") != "instance":
            from .palette import PRESETS

            same = [p for p in PRESETS.values() if list(p.names) == list(names)]
            cm = same[0] if same else ClassMap.default(len(names), names=names)
        info = {"format": "rle-csv", **info}
        if "level" in info:
            info = _with_placement(info, _rle_placement(info))
        return labels, cm, info
    if cm is None:
        cm = png_classmap(p)
    where = file_placement(p)
    if _is_big_image(p):
        labels, found, info = _read_big_mask(p, cm, tolerance)
        return labels, found, _with_placement(info, where)
    labels, found = read_color_mask(p, cm, tolerance=tolerance)
    return labels, found, _with_placement({"format": "mask"}, where)


def _rle_placement(info: dict[str, Any]) -> Placement:
    h, w = info["shape"]
    slide = info.get("slide_shape") or (h, w)
    fy, fx = slide[0] / h, slide[1] / w
    mpp = info.get("mpp")
    return Placement(
        level=int(info.get("level") or 0),
        factors=(fy, fx),
        slide_shape=tuple(slide),
        mpp=(mpp[0] / fy, mpp[1] / fx) if mpp else None,
        shape=(h, w),
    )


#: Masks above this many pixels are read lazily (through the slide reader's cache).
BIG_MASK_PIXELS = 4096 * 4096


def _is_big_image(p: Path) -> bool:
    from .sniff import raster_header, sniff_kind

    kind = sniff_kind(str(p))
    try:
        if kind in ("png", "jpeg"):
            return raster_header(str(p)).pixels > BIG_MASK_PIXELS
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                s = tif.series[0]
                return int(np.prod(s.shape[:2])) > BIG_MASK_PIXELS and s.keyframe.is_tiled
    except (OSError, ValueError, IndexError):
        return False
    return False


def _read_big_mask(
    p: Path, cm: ClassMap | None, tolerance: float | None
) -> tuple[Any, ClassMap, dict[str, Any]]:
    """A slide-sized mask as lazy labels: decoded once into the tiled cache, mapped chunk-wise."""
    from .palette import ClassMap as _CM
    from .palette import rgb_to_labels, unique_colors
    from .slide import open_slide

    level0 = open_slide(p).levels[0]
    if level0.ndim == 2:
        colors, _ = unique_colors(da.stack([level0] * 3, axis=-1))
        if cm is None and {tuple(c) for c in colors.tolist()} <= {(0, 0, 0), (255, 255, 255)}:
            cm = ClassMap.preset("binary")
        if cm is None:
            return (
                level0,
                _CM.default(int(level0.max().compute()) + 1),
                {"format": "mask", "lazy": True},
            )
        return rgb_to_labels(level0, cm, source=str(p)), cm, {"format": "mask", "lazy": True}
    cm = cm or ClassMap.infer(level0, source=str(p))
    return (
        rgb_to_labels(level0, cm, tolerance=tolerance, source=str(p)),
        cm,
        {"format": "mask", "lazy": True},
    )


def png_classmap(path: str | os.PathLike) -> ClassMap | None:
    """The class map a slideseg PNG or TIFF writer recorded in the file, if any.

    PNG: the ``slideseg:classmap`` ``tEXt`` chunk; TIFF: the slideseg JSON
    ``ImageDescription``.
    """
    from .sniff import sniff_kind

    raw: Any = None
    try:
        if sniff_kind(str(path)) == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                desc = tif.pages.first.description or ""
            if desc.startswith("{") and "slideseg" in desc:
                raw = json.loads(desc).get("slideseg", {}).get("classmap")
        else:
            from PIL import Image

            from .export import PNG_CLASSMAP_KEY

            with Image.open(path) as im:
                raw = im.info.get(PNG_CLASSMAP_KEY)
                if raw is None and im.format == "PNG":
                    raw = (getattr(im, "text", {}) or {}).get(PNG_CLASSMAP_KEY)
            raw = json.loads(raw) if raw else None
    except Exception:
        return None
    if not raw:
        return None
    try:
        return ClassMap.from_dict(raw, source=str(path))
    except SlideSegError:
        return None


def resolve_classmap(classmap: ClassMap | str | os.PathLike | None) -> ClassMap | None:
    """A ClassMap from an instance, a preset name or a JSON file path (``None`` passes)."""
    if classmap is None or isinstance(classmap, ClassMap):
        return classmap
    s = os.fspath(classmap)
    if s.lower().endswith(".json") or os.path.exists(s):
        return ClassMap.load_json(s)
    return ClassMap.preset(s)


def classmap_from_metadata(metadata: dict[str, Any] | None) -> ClassMap | None:
    """The ClassMap stored in napari layer metadata (``metadata["slideseg"]["classmap"]``)."""
    if not metadata:
        return None
    cm = (metadata.get("slideseg") or {}).get("classmap") or metadata.get("classmap")
    if cm is None:
        return None
    if isinstance(cm, ClassMap):
        return cm
    if isinstance(cm, str):
        try:
            cm = json.loads(cm)
        except json.JSONDecodeError as exc:
            raise SlideSegError(f"layer metadata holds an unreadable class map ({exc})") from exc
    return ClassMap.from_dict(cm)


def read_instance_map(path: str | os.PathLike, key: str = "inst_map") -> np.ndarray:
    """An instance map (0 = background, ids > 0) from ``.npy``, ``.mat``, PNG/TIFF or a prediction zarr.

    PNG/TIFF values are taken as ids as they are (16-bit PNGs hold up to
    65535 nuclei), never through a colour palette. A prediction folder gives
    its ``instances`` array. The whole map is read: meant for tiles and
    regions, as instance metrics need.
    """
    from .errors import SlideSegError

    p = Path(path)
    if not p.exists():
        raise SlideSegError(f"{p}: no such file")
    name = p.name.lower()
    if p.is_dir():
        import zarr

        root = zarr.open_group(str(p), mode="r")
        if "instances" not in root:
            raise SlideSegError(f"{p}: not a HoVer prediction (no 'instances' array)")
        return np.asarray(root["instances"][:])
    if name.endswith(".npy"):
        arr = np.load(p, allow_pickle=False)
    elif name.endswith(".mat"):
        from scipy.io import loadmat

        m = loadmat(p)
        if key not in m:
            raise SlideSegError(
                f"{p}: no {key!r} in this .mat (has {sorted(k for k in m if not k.startswith('__'))})"
            )
        arr = m[key]
    elif name.endswith((".tif", ".tiff")):
        import tifffile

        arr = tifffile.imread(p)
    else:
        from PIL import Image

        with Image.open(p) as im:
            arr = np.asarray(im)
    if arr.ndim != 2:
        raise SlideSegError(
            f"{p}: an instance map must be 2-D (one id per pixel), not shape {arr.shape}"
        )
    if arr.dtype.kind == "f" or (arr.dtype.kind == "i" and arr.min() < 0):
        raise SlideSegError(f"{p}: instance ids must be non-negative integers (dtype {arr.dtype})")
    return arr
