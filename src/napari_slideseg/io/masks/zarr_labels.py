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

from ..errors import SlideSegError
from ..palette import MIN_CLASS_SHARE, ClassMap, MaskError, read_color_mask
from ..placement import Placement, is_micrometer


class IncompletePredictionError(SlideSegError, ValueError):
    """A prediction folder whose run has not finished (killed, failed or still running).

    Its unfinished blocks read as background, so using it as a result would be
    silently wrong; ``partial=True`` (``--partial``) takes it as it is, with a
    :class:`PartialPredictionWarning`.
    """

    def __init__(self, path: str | os.PathLike, missing: int, total: int) -> None:
        self.path = os.fspath(path)
        self.missing = missing
        self.total = total
        super().__init__(
            f"{self.path}: an incomplete prediction, {missing} of {total} blocks missing (the "
            "run was interrupted or is still running): finish it with `slideseg predict ... "
            "--resume`, or pass --partial (partial=True) to use it as it is"
        )


class PartialPredictionWarning(UserWarning):
    """An incomplete prediction is used as it is (``partial=True``)."""


def prediction_root(path: str | os.PathLike) -> Path | None:
    """The prediction folder ``path`` is (or lies in, e.g. ``out.zarr/labels``), else None."""
    import zarr

    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if not (cand / "zarr.json").is_file() and not (cand / ".zattrs").is_file():
            continue
        try:
            attrs = dict(zarr.open_group(str(cand), mode="r").attrs)
        except Exception:
            continue
        if isinstance(attrs.get("slideseg_inference"), dict):
            return cand
    return None


def missing_blocks(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(missing, total)`` blocks of an incomplete prediction at ``path``; None if complete or not one."""
    import zarr

    root_path = prediction_root(path)
    if root_path is None:
        return None
    root = zarr.open_group(str(root_path), mode="r")
    info = dict(root.attrs)["slideseg_inference"]
    if info.get("complete"):
        return None
    total = len(info.get("blocks") or [])
    try:
        done = np.asarray(root["done"][:])
        return int((done == 0).sum()), int(done.size)
    except Exception:  # no readable done marks: nothing is known to be finished
        return total, total


def predicted_box(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` in the prediction's pixels when it covers only a region or ROI.

    ``None`` for a whole-slide prediction or anything that is not a prediction
    folder. Scores and comparisons must be taken inside this box: outside it
    nothing was predicted.
    """
    p = Path(path)
    if not p.is_dir():
        return None
    try:
        import zarr

        meta = dict(zarr.open_group(str(p), mode="r").attrs).get("slideseg_inference") or {}
    except Exception:
        return None
    cfg = meta.get("config") or {}
    shape = meta.get("level_shape")
    if not shape or (not cfg.get("region") and not cfg.get("roi")):
        return None
    h, w = int(shape[0]), int(shape[1])
    y0, x0, y1, x1 = 0, 0, h, w
    if cfg.get("region"):
        a, b, c, d = (int(v) for v in cfg["region"])
        y0, x0, y1, x1 = max(0, a), max(0, b), min(h, c), min(w, d)
    if cfg.get("roi"):
        pts = np.asarray(cfg["roi"], np.float64)
        y0, x0 = max(y0, int(np.floor(pts[:, 0].min()))), max(x0, int(np.floor(pts[:, 1].min())))
        y1 = min(y1, int(np.ceil(pts[:, 0].max())) + 1)
        x1 = min(x1, int(np.ceil(pts[:, 1].max())) + 1)
    return (y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None


def check_prediction(path: str | os.PathLike, partial: bool = False) -> int:
    """Refuse an incomplete prediction at ``path`` unless ``partial``; returns the missing blocks.

    Raises :class:`IncompletePredictionError` naming the folder and how many
    blocks are missing; with ``partial=True`` a :class:`PartialPredictionWarning`
    says the same and the count is returned (0 for anything else).
    """
    gap = missing_blocks(path)
    if gap is None:
        return 0
    missing, total = gap
    root = prediction_root(path)
    if not partial:
        raise IncompletePredictionError(root, missing, total)
    import warnings

    warnings.warn(
        f"{root}: an incomplete prediction, {missing} of {total} blocks missing: they read "
        "as background (partial=True)",
        PartialPredictionWarning,
        stacklevel=3,
    )
    return missing


def _ngff_attrs(node: Any) -> dict[str, Any]:
    """A zarr node's attributes, NGFF 0.5's ``ome`` member unwrapped."""
    attrs = dict(node.attrs)
    ome = attrs.get("ome")
    if isinstance(ome, dict):
        attrs = {**attrs, **ome}
    return attrs


def ngff_label_names(path: str | os.PathLike) -> list[str]:
    """Names of the NGFF label images in a store (``labels/`` listing), ``[]`` when none."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:
        return []
    if isinstance(node, zarr.Array):
        return []
    attrs = _ngff_attrs(node)
    if "image-label" in attrs:
        return []
    names = attrs.get("labels")
    if not (isinstance(names, list) and "multiscales" not in attrs):
        try:
            group = node["labels"]
        except KeyError:
            return []
        if isinstance(group, zarr.Array):
            return []
        names = _ngff_attrs(group).get("labels")
    return [str(n) for n in names] if isinstance(names, list) else []


def _ngff_classmap(label_meta: dict[str, Any]) -> ClassMap | None:
    """A ClassMap from NGFF ``image-label`` colours (values 0..n-1) and ``class`` properties."""
    colors = {
        int(c["label-value"]): tuple(int(v) for v in c["rgba"][:3])
        for c in label_meta.get("colors") or []
        if isinstance(c, dict) and "rgba" in c and isinstance(c.get("label-value"), int)
    }
    if not colors or max(colors) >= 256 or min(colors) < 0:
        return None
    colors.setdefault(0, (0, 0, 0))
    n = max(colors) + 1
    if len(colors) != n:
        return None
    names = {
        int(p["label-value"]): str(p.get("class") or p.get("name"))
        for p in label_meta.get("properties") or []
        if isinstance(p, dict) and (p.get("class") or p.get("name"))
    }
    try:
        return ClassMap(
            tuple(names.get(i, "background" if i == 0 else f"class {i}") for i in range(n)),
            tuple(colors[i] for i in range(n)),
        )
    except SlideSegError:
        return None


def _ngff_properties(label_meta: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for p in label_meta.get("properties") or []:
        if isinstance(p, dict) and isinstance(p.get("label-value"), int):
            out[int(p["label-value"])] = {k: v for k, v in p.items() if k != "label-value"}
    return out


def _read_zarr_labels(
    path: Path, label: str | None = None
) -> tuple[da.Array, ClassMap | None, dict[str, Any]]:
    """Labels from a zarr store: NGFF labels (``labels/<name>``), an OME-Zarr or a plain array.

    NGFF layouts read: a root whose ``labels`` group lists label images (what
    :func:`~napari_slideseg.io.export.write_ome_zarr_labels` writes; ``label``
    picks one by name, the first by default), the ``labels`` group itself, a
    label image group (``image-label`` + ``multiscales``: also the layout
    this plugin wrote before), or an image group with labels. All pyramid
    levels come back in ``info["levels"]``.
    """
    import zarr

    from ..sniff import sniff_kind

    if Path(path).is_dir() and sniff_kind(str(path)) != "zarr":
        raise MaskError(
            f"{path}: is a folder but not a zarr store (no zarr.json/.zgroup/.zarray); "
            "a mask is an image file, an RLE CSV or a zarr store"
        )
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise MaskError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from exc
    info: dict[str, Any] = {"format": "zarr"}
    classmap = None
    if isinstance(node, zarr.Array):
        arr = node
        levels = [arr]
    else:
        names = ngff_label_names(path)
        root_attrs = _ngff_attrs(node)
        if names:
            name = label if label is not None else names[0]
            if name not in names:
                raise MaskError(f"{path}: no label image {name!r} (has {', '.join(names)})")
            listed_here = isinstance(root_attrs.get("labels"), list) and (
                "multiscales" not in root_attrs
            )
            node = node[name] if listed_here else node["labels"][name]
            info["label_name"] = name
            info["label_names"] = names
        elif label is not None:
            raise MaskError(f"{path}: holds no NGFF label images (no labels/ group)")
        attrs = _ngff_attrs(node)
        ms = attrs.get("multiscales")
        if ms:
            levels = [node[d["path"]] for d in ms[0]["datasets"]]
            arr = levels[0]
            info["format"] = "ome-zarr"
        elif "labels" in node and isinstance(node["labels"], zarr.Array):
            arr = node["labels"]
            levels = [arr]
        else:
            arrays = sorted((a for _, a in node.arrays()), key=lambda a: -int(np.prod(a.shape)))
            if not arrays:
                raise MaskError(f"{path}: zarr group holds no label array")
            arr = arrays[0]
            levels = [arr]
        slideseg = attrs.get("slideseg") or root_attrs.get("slideseg") or {}
        cm = slideseg.get("classmap")
        if cm:
            classmap = ClassMap.from_dict(cm)
        label_meta = attrs.get("image-label")
        if isinstance(label_meta, dict):
            info["image_label"] = True
            if classmap is None:
                classmap = _ngff_classmap(label_meta)
            props = _ngff_properties(label_meta)
            if props:
                info["properties"] = props
        if slideseg.get("instances") or slideseg.get("kind") == "instances":
            info["instances"] = True
        info["attrs"] = attrs
        where = Placement.from_attrs(attrs) or Placement.from_attrs(root_attrs)
        if where is None and ms:
            where = Placement.from_pixel_mpp(_ngff_mpp(ms[0]))
            where = where if where.mpp else None
        if where is not None:
            info["placement"] = where.to_dict()
            info["mpp"] = list(where.pixel_mpp) if where.pixel_mpp else None
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise MaskError(f"{path}: expected a 2D integer label array, got {arr.shape} {arr.dtype}")
    info["levels"] = [da.from_zarr(a) for a in levels if a.ndim == 2]
    return info["levels"][0], classmap, info


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
    from ..sniff import sniff_kind

    p = Path(path)
    kind = sniff_kind(str(p))
    try:
        if kind == "png":
            from PIL import Image

            from ..export import PNG_PLACEMENT_KEY
            from ..placement import ppm_to_mpp

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

            from ..slide import tiff_mpp

            with tifffile.TiffFile(p) as tif:
                page = tif.pages.first
                desc = page.description or ""
                if desc.startswith("{") and "slideseg" in desc:
                    found = Placement.from_dict(
                        json.loads(desc).get("slideseg", {}).get("placement")
                    )
                    if found is not None:
                        return found
                mpp, _ = tiff_mpp(tif, page)
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
    label: str | None = None,
    partial: bool = False,
    min_share: float | None = None,
) -> tuple[Any, ClassMap | None, dict[str, Any]]:
    """Read a label image from a colour mask, index mask, RLE CSV, instance map or zarr.

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
    label
        Which NGFF label image of a zarr store (its name under ``labels/``);
        the first by default.
    partial
        Take a prediction folder whose run has not finished (its missing
        blocks read as background, ``info["missing_blocks"]`` says how many,
        with a :class:`PartialPredictionWarning`); by default it is refused
        with :class:`IncompletePredictionError`.
    min_share
        For a colour mask read without a class map: colours under this share
        of the pixels are refused rather than made classes of their own
        (default :data:`~napari_slideseg.io.palette.MIN_CLASS_SHARE`, 0.1 %;
        ``0`` makes every colour a class).

    Returns
    -------
    tuple
        ``(labels, classmap or None, info)``; ``labels`` is NumPy, or dask for
        zarr input (``info["levels"]`` holds every pyramid level).
        Instance maps (object ids, not classes: an instance-layout RLE CSV,
        a ``.npy``, a 16-bit id PNG or id TIFF this plugin wrote, OME-Zarr
        labels marked as instances) come back with ``classmap`` None (or
        the one passed) and ``info["instances"]`` True; ``info["type_classmap"]`` names the
        objects' types where the file records them (with
        ``info["instance_classes"]`` or ``info["properties"]`` per id).
    """
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: no such file or directory")
    from ...validate import fraction

    share = MIN_CLASS_SHARE if min_share is None else fraction("min_share", min_share)
    cm = resolve_classmap(classmap)
    name = p.name.lower()
    if p.is_dir() or name.endswith(".zarr"):
        missing = check_prediction(p, partial)
        labels, zcm, info = _read_zarr_labels(p, label)
        if missing:
            info["missing_blocks"] = missing
        if info.get("instances"):
            info["type_classmap"] = cm or zcm
            return labels, cm, info
        return labels, cm or zcm, info
    if name.endswith(".csv"):
        from ..rle import read_rle_csv

        labels, info = read_rle_csv(p, order=rle_order, shape=shape)
        names = info.get("class_names")
        found = cm
        if found is None and names:
            found = _named_classmap(names, info.get("class_colors"))
        info = {"format": "rle-csv", **info}
        if "level" in info:
            info = _with_placement(info, _rle_placement(info))
        if info.get("layout") == "instance":
            info["instances"] = True
            info["type_classmap"] = found
            return labels, cm, info
        return labels, found, info
    if name.endswith(".npy") or instance_marker(p) is not None:
        return read_id_map(p)
    if cm is None:
        cm = png_classmap(p)
    where = file_placement(p)
    if _is_big_image(p):
        labels, found, info = _read_big_mask(p, cm, tolerance, share)
        return labels, found, _with_placement(info, where)
    labels, found = read_color_mask(p, cm, tolerance=tolerance, min_share=share)
    return labels, found, _with_placement({"format": "mask"}, where)


def _named_classmap(names: list[str], colors: list[Any] | None = None) -> ClassMap:
    """The classes an RLE CSV names: its colours when it states them, else a preset.

    A ``class_color`` column (what this plugin writes) gives the colours;
    class 0 without a row is black. Otherwise a preset with exactly these
    names, else a default map with them.
    """
    from ..palette import PRESETS

    if colors:
        stated = list(colors) + [None] * (len(names) - len(colors))
        if stated[0] is None:
            stated[0] = (0, 0, 0)
        if all(c is not None for c in stated[: len(names)]):
            same = [
                cm
                for cm in PRESETS.values()
                if list(cm.names) == list(names)
                and [list(c) for c in cm.colors] == [list(c) for c in stated[: len(names)]]
            ]
            if same:
                return same[0]
            try:
                return ClassMap(tuple(names), tuple(tuple(c) for c in stated[: len(names)]))
            except SlideSegError:
                pass
    same = [cm for cm in PRESETS.values() if list(cm.names) == list(names)]
    return same[0] if same else ClassMap.default(len(names), names=names)


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
    from ..sniff import raster_header, sniff_kind

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
    p: Path, cm: ClassMap | None, tolerance: float | None, min_share: float
) -> tuple[Any, ClassMap, dict[str, Any]]:
    """A slide-sized mask as lazy labels: decoded once into the tiled cache, mapped chunk-wise."""
    from ..palette import ClassMap as _CM
    from ..palette import rgb_to_labels, unique_colors
    from ..slide import open_slide

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
    cm = cm or ClassMap.infer(level0, source=str(p), tolerance=tolerance, min_share=min_share)
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
    from ..sniff import sniff_kind

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

            from ..export import PNG_CLASSMAP_KEY

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


def read_instance_map(
    path: str | os.PathLike, key: str = "inst_map", *, partial: bool = False
) -> np.ndarray:
    """An instance map (0 = background, ids > 0) from ``.npy``, ``.mat``, PNG/TIFF or a prediction zarr.

    PNG/TIFF values are taken as ids as they are (16-bit PNGs hold up to
    65535 nuclei), never through a colour palette. A prediction folder gives
    its ``instances`` array; one whose run has not finished is refused
    (:class:`IncompletePredictionError`) unless ``partial``. The whole map is
    read: meant for tiles and regions, as instance metrics need.
    """
    from ..errors import SlideSegError

    p = Path(path)
    if not p.exists():
        raise SlideSegError(f"{p}: no such file")
    name = p.name.lower()
    if p.is_dir():
        import zarr

        check_prediction(p, partial)
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


# -----------------------------------------------------------------------------
# instance (id) maps: 16-bit PNG, uint16/uint32 TIFF, .npy
# -----------------------------------------------------------------------------
#: Share of neighbouring object pixels (both non-zero) that must hold the same id.
ID_MAP_MIN_SAME = 0.8
#: Pixels an id-map sniff looks at (whole rows, evenly spaced).
ID_MAP_SNIFF_PIXELS = 4_000_000


def instance_marker(path: str | os.PathLike) -> dict[str, Any] | None:
    """What an id PNG/TIFF this plugin wrote records (``{"instances": True, ...}``), else None."""
    from ..sniff import sniff_kind

    p = Path(path)
    kind = sniff_kind(str(p))
    try:
        if kind == "png":
            from PIL import Image

            from ..export import PNG_INSTANCES_KEY

            with Image.open(p) as im:  # header: the text chunks come before the pixels
                raw = im.info.get(PNG_INSTANCES_KEY)
            found = json.loads(raw) if raw else None
        elif kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                desc = tif.pages.first.description or ""
            if not (desc.startswith('{"slideseg"') and '"instances"' in desc):
                return None
            found = json.loads(desc).get("slideseg")
        else:
            return None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return found if isinstance(found, dict) and found.get("instances") else None


def looks_like_id_map(arr: Any) -> bool:
    """Whether a 2-D integer array is an instance map rather than a grey image.

    An instance map has a background of 0 and objects of one id each, so
    almost all horizontally neighbouring object pixels hold the same value
    (at least :data:`ID_MAP_MIN_SAME`); a grey image's neighbours differ by
    noise. Whole rows, evenly spaced, up to :data:`ID_MAP_SNIFF_PIXELS`, are
    looked at.
    """
    if getattr(arr, "ndim", 0) != 2 or np.dtype(arr.dtype).kind not in "ui":
        return False
    h, w = arr.shape
    if h == 0 or w < 2:
        return False
    step = max(1, -(-(h * w) // ID_MAP_SNIFF_PIXELS))
    rows = np.asarray(arr[::step])
    if rows.min() < 0:
        return False
    nz = rows != 0
    if nz.all() or not nz.any():
        return False
    both = nz[:, :-1] & nz[:, 1:]
    n = int(both.sum())
    if n == 0:
        return False
    same = int(((rows[:, :-1] == rows[:, 1:]) & both).sum())
    return same >= ID_MAP_MIN_SAME * n


def sniff_id_map(path: str | os.PathLike, max_pixels: int) -> bool:
    """Whether ``path`` is an instance map the reader should open as Labels; never raises.

    Claimed: id PNGs/TIFFs this plugin wrote; 16-bit single-channel PNGs,
    single-channel 16/32-bit integer TIFFs (lossless) and 2-D integer
    ``.npy`` files of at most ``max_pixels`` whose content
    :func:`looks_like_id_map`. 8-bit images, colour images, and 16-bit grey
    images with noise (slides, photos) are not.
    """
    from ..sniff import raster_header, sniff_kind

    p = Path(path)
    try:
        if not p.is_file():
            return False
        if p.name.lower().endswith(".npy"):
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
            return arr.ndim == 2 and arr.size <= max_pixels and looks_like_id_map(arr)
        kind = sniff_kind(str(p))
        if kind == "png":
            head = raster_header(str(p))
            if head.channels != 1 or head.bits != 16 or head.pixels > max_pixels:
                return False
            if instance_marker(p) is not None:
                return True
            import imagecodecs

            return looks_like_id_map(np.asarray(imagecodecs.imread(str(p))))
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                page = tif.pages.first
                lossy = int(page.compression) in (6, 7, 33003, 33004, 33005, 34712, 50001, 50002)
                if (
                    lossy
                    or page.samplesperpixel != 1
                    or page.bitspersample not in (16, 32)
                    or int(page.sampleformat) not in (1, 2)
                    or int(page.photometric) == 3  # palette
                    or page.imagewidth * page.imagelength > max_pixels
                ):
                    return False
                desc = page.description or ""
                if desc.startswith('{"slideseg"') and '"instances"' in desc:
                    return True
                return looks_like_id_map(page.asarray())
    except Exception:
        return False
    return False


def read_id_map(path: str | os.PathLike) -> tuple[np.ndarray, None, dict[str, Any]]:
    """An instance map (ids as they are) with what the file records about it.

    Returns ``(ids, None, info)``: ``info["instances"]`` is True,
    ``info["type_classmap"]`` the type class map an id file this plugin
    wrote records (else None), and placement/mpp as for masks.
    """
    p = Path(path)
    ids = read_instance_map(p)
    marker = instance_marker(p) or {}
    types = marker.get("classmap")
    info: dict[str, Any] = {
        "format": "instance-map",
        "instances": True,
        "type_classmap": ClassMap.from_dict(types, source=str(p)) if types else None,
    }
    where = None if p.name.lower().endswith(".npy") else file_placement(p)
    return ids, None, _with_placement(info, where)
