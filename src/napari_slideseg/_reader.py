"""npe2 reader glue for slides.

napari calls :func:`napari_get_reader` for every file whose name matches the
manifest's patterns, so this module imports only the standard library and the
light :mod:`napari_slideseg.io.sniff`. Heavy imports happen in the returned
reader function.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable
from typing import Any

from .io.sniff import (
    RASTER_SUFFIXES,
    TIFF_SUFFIXES,
    raster_header,
    sniff_kind,
    special_file_kind,
)

#: PNG/JPEG files smaller than this are left to napari's builtin reader.
RASTER_MIN_PIXELS = 4096 * 4096


def _one_path(path: Any) -> str | None:
    """``path`` (or the single path of a one-item list) as a str; None for anything else."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike):
        return None
    path = os.fspath(path)
    return path if isinstance(path, str) and path else None


def napari_get_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a slide reader for ``path`` or ``None`` (fast; nothing decoded).

    Slides (TIFF family, zarr directories) and PNG/JPEG images larger than
    4096 x 4096 are claimed; colour-mask TIFFs this plugin wrote are left to
    :func:`napari_get_mask_reader` (npe2 tries a plugin's readers in no fixed
    order). Files with a slide extension are claimed even when
    their header is broken, so the user gets a clear message instead of
    "no reader found".
    """
    path = _one_path(path)
    if path is None:
        return None
    lower = path.lower().rstrip("/\\")
    if special_file_kind(path) is not None:
        # A FIFO/socket/device is never opened (it would block); claim slide names so
        # read_slide reports it, leave the rest alone.
        return read_slide if lower.endswith((*TIFF_SUFFIXES, ".zarr", *RASTER_SUFFIXES)) else None
    kind = sniff_kind(path)
    if (
        kind == "tiff"
        and _tiff_may_be_mask(path)
        and (_written_by_slideseg(path, kind) or _is_id_map(path))
    ):
        return None  # a mask or instance map: the mask reader opens it as Labels
    if kind == "zarr" and is_label_store(path):
        return None  # NGFF labels: the mask reader opens them as Labels
    if kind == "zarr" and looks_like_prediction(path):
        return read_prediction  # Labels, or a notification when its metadata is broken
    if kind in ("tiff", "zarr"):
        return read_slide
    if kind in ("png", "jpeg"):
        try:
            header = raster_header(path)
        except (OSError, ValueError):
            return read_slide
        if header.pixels <= RASTER_MIN_PIXELS:
            return None
        if kind == "png" and header.channels == 1 and header.bits == 16 and _is_id_map(path):
            return None
        return read_slide
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
        # markers only: panning stays fast; processing reopens with the full check
        slide = open_slide(path, progress=_napari_progress(), jpeg_check="markers")
    except SlideError as err:
        message = str(err)
        if os.path.isdir(path):
            arrays = _zarr_arrays(path)
            if arrays is not None and not any(len(shape) >= 2 for shape in arrays.values()):
                found = ", ".join(f"{k} ({len(v)}-D)" for k, v in arrays.items()) or "none"
                message = (
                    f"{path}: is not a slide or prediction: it holds no 2-D image array "
                    f"(arrays: {found})"
                )
        _notify_error(message)
        return [(None,)]
    return [slide_layer(slide)]


def _zarr_arrays(path: str) -> dict[str, tuple[int, ...]] | None:
    """Every array of a zarr group (name -> shape), or None if it is not a readable group."""
    try:
        import zarr

        root = zarr.open_group(path, mode="r")
        return {k: tuple(v.shape) for k, v in root.members(max_depth=None) if hasattr(v, "dtype")}
    except Exception:
        return None


def looks_like_prediction(path: str) -> bool:
    """Whether a zarr folder is (or was meant to be) a ``slideseg predict`` output (metadata only).

    True when its attributes name ``slideseg_inference`` (whatever their
    value), when it holds ``done`` marks, or a root ``labels`` array beside
    a ``pyramid`` group (the engine's layout) and no image ``multiscales``.
    """
    path = os.fspath(path).rstrip("/\\")
    attrs = _zarr_attrs(path)
    if attrs is not None and "slideseg_inference" in attrs:
        return True
    if os.path.isdir(os.path.join(path, "done")):
        return True
    labels = os.path.join(path, "labels")
    is_array = os.path.isfile(os.path.join(labels, ".zarray")) or _zarr_node_type(labels) == "array"
    return (
        is_array
        and os.path.isdir(os.path.join(path, "pyramid"))
        and not (attrs and "multiscales" in attrs)
    )


def _zarr_node_type(path: str) -> str | None:
    import json

    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    return doc.get("node_type") if isinstance(doc, dict) else None


#: Keys of ``slideseg_inference`` a prediction folder needs to open.
PREDICTION_KEYS = ("kind", "level", "level_shape", "pyramid")


def prediction_problem(path: str) -> tuple[bool, str] | None:
    """What keeps a prediction folder from opening, or None when it opens.

    Returns ``(broken, problem)``: ``broken`` is whether it is a prediction
    with broken metadata (its ``slideseg_inference`` attributes or its
    labels are there), not only prediction parts (e.g. ``done`` marks).
    """
    import zarr

    try:
        root = zarr.open_group(path, mode="r")
        attrs = dict(root.attrs)
    except Exception as err:  # unreadable metadata files
        return False, f"its zarr metadata cannot be read ({type(err).__name__}: {err})"
    info = attrs.get("slideseg_inference")
    has = "slideseg_inference" in attrs
    arrays = _zarr_arrays(path) or {}
    if info is None and not has and "labels" not in arrays:
        found = ", ".join(f"{k} ({len(v)}-D)" for k, v in arrays.items()) or "none"
        return False, f"it has no 'slideseg_inference' attributes and no labels (arrays: {found})"
    if info is None:
        return True, "its 'slideseg_inference' attributes are missing"
    if not isinstance(info, dict):
        return True, f"its 'slideseg_inference' attributes are {_shown(info)}, not a mapping"
    missing = [k for k in PREDICTION_KEYS if k not in info]
    if missing:
        return True, f"'slideseg_inference' lacks {', '.join(missing)}"
    pyramid, shape = info["pyramid"], info["level_shape"]
    if not isinstance(pyramid, list) or not all(isinstance(f, int) for f in pyramid):
        return True, f"'slideseg_inference' pyramid is {_shown(pyramid)}, not a list of factors"
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in shape)):
        return True, f"'slideseg_inference' level_shape is {_shown(shape)}, not [height, width]"
    meta = attrs.get("slideseg")
    if not isinstance(meta, dict):
        what = "missing" if meta is None else f"{_shown(meta)}, not a mapping"
        return True, f"its 'slideseg' attributes (class map, models) are {what}"
    if not isinstance(meta.get("classmap"), dict):
        return True, "its 'slideseg' attributes have no class map"
    try:
        from .io.palette import ClassMap

        ClassMap.from_dict(meta["classmap"])
    except Exception as err:
        return True, f"its class map is unusable ({err})"
    needed = ["labels"] + [f"pyramid/{f}" for f in pyramid]
    if info.get("kind") == "hover":
        needed.append("instances")
    gone = [k for k in needed if k not in arrays]
    if gone:
        return True, f"the arrays {', '.join(gone)} are missing"
    if arrays["labels"] != tuple(shape):
        return True, f"'labels' is {arrays['labels']} but level_shape says {tuple(shape)}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40] + '...' if len(text) > 40 else text})"


def read_prediction(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a prediction folder as Labels layer(s); broken metadata becomes a notification."""
    path = _one_path(path) or ""
    found = prediction_problem(path)
    if found is not None:
        broken, problem = found
        if broken:
            _notify_error(
                f"{path}: is a prediction folder with broken metadata: {problem}; it is not "
                "opened (run slideseg predict again into a new folder)"
            )
        else:
            _notify_error(f"{path}: is not a slide or prediction: {problem}; it is not opened")
        return [(None,)]
    try:
        from .layers import prediction_layers

        return prediction_layers(path)
    except Exception as err:  # never an internal error into napari
        _notify_error(
            f"{path}: is a prediction folder that cannot be opened ({type(err).__name__}: {err})"
        )
        return [(None,)]


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
    """Return a Labels reader for masks, instance maps, RLE CSVs and NGFF labels, else ``None``.

    A PNG/TIFF is a mask when this plugin wrote it (its class map is
    recorded in the file) or when every colour in it belongs to one preset
    palette (``biopsy6``, ``wsi3``, ``binary``); TIFFs with lossy
    compression (JPEG, JPEG 2000: slides, never masks) are not read.
    An instance map (object ids) is a 16-bit single-channel PNG, a
    single-channel 16/32-bit integer TIFF or a 2-D integer ``.npy`` of at
    most :data:`MASK_SNIFF_MAX_PIXELS` whose content is ids on a 0
    background (:func:`~napari_slideseg.io.masks.looks_like_id_map`: almost
    all neighbouring object pixels share their value, unlike a grey
    image's), or an id PNG/TIFF this plugin wrote. A CSV is claimed when its
    header has an RLE column; a zarr store when it holds NGFF labels.
    """
    path = _one_path(path)
    if path is None:
        return None
    lower = path.lower().rstrip("/\\")
    if special_file_kind(path) is not None:
        # Never opened (a FIFO would block): read_mask reports mask-only names,
        # the slide reader the others.
        return read_mask if lower.endswith((".csv", ".npy")) else None
    if lower.endswith(".csv"):
        return read_mask if _csv_has_rle(path) else None
    if lower.endswith(".npy"):
        return read_mask if _is_id_map(path) else None
    kind = sniff_kind(path)
    if kind == "zarr":
        return read_mask if is_label_store(path) else None
    if kind == "png":
        try:
            header = raster_header(path)
        except (OSError, ValueError):
            return None
        if header.pixels > MASK_SNIFF_MAX_PIXELS:
            return None
        if header.channels == 1 and header.bits == 16:
            return read_mask if _is_id_map(path) else None
    elif kind == "tiff":
        if not _tiff_may_be_mask(path):
            return None
    else:
        return None
    if _written_by_slideseg(path, kind):
        return read_mask
    if kind == "tiff" and _is_id_map(path):
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
                        key = fh.read(n).split(b"\x00", 1)[0]
                        if key in (b"slideseg:classmap", b"slideseg:instances"):
                            return True
                        fh.seek(4, 1)
                    else:
                        fh.seek(n + 4, 1)
        import tifffile

        with tifffile.TiffFile(path) as tif:
            desc = tif.pages.first.description or ""
        return desc.startswith('{"slideseg"') and ('"classmap"' in desc or '"instances"' in desc)
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


def _is_id_map(path: str) -> bool:
    """Whether ``path`` is an instance map (cached by path, size and modification time)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    return _is_id_map_cached(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _is_id_map_cached(path: str, size: int, mtime_ns: int) -> bool:
    from .io.masks import sniff_id_map

    return sniff_id_map(path, MASK_SNIFF_MAX_PIXELS)


def _zarr_attrs(path: str) -> dict[str, Any] | None:
    """A zarr group's attributes from its metadata file (v2 ``.zattrs`` or v3 ``zarr.json``)."""
    import json

    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        meta = os.path.join(path, name)
        if os.path.isfile(meta):
            try:
                with open(meta, encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                return None
            attrs = doc.get(key, {}) if key else doc
            if not isinstance(attrs, dict):
                return None
            ome = attrs.get("ome")
            return {**attrs, **ome} if isinstance(ome, dict) else attrs
    return None


def is_label_store(path: str) -> bool:
    """Whether a zarr directory holds NGFF labels rather than an image (metadata files only).

    True for a root whose ``labels`` group lists label images and that is
    not itself an image (what this plugin's OME-Zarr writer makes), for a
    ``labels`` group, and for a label image group (``image-label``: also
    this plugin's earlier layout). An OME-Zarr image with labels beside it
    stays a slide.
    """
    path = os.fspath(path).rstrip("/\\")
    attrs = _zarr_attrs(path)
    if attrs is None:
        return False
    if "image-label" in attrs:
        return True
    if "multiscales" in attrs:
        return False
    if isinstance(attrs.get("labels"), list):
        return True
    sub = _zarr_attrs(os.path.join(path, "labels"))
    return bool(sub) and isinstance(sub.get("labels"), list)


def read_mask(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open a mask, RLE CSV, instance map or NGFF labels store as Labels layer(s).

    Class labels are coloured by their class map. Instance maps (object
    ids) get napari's own colours and, where the file records them, a
    ``features`` row per object (``index``, ``type``, ``type_name`` and the
    file's properties) and the type class map in ``metadata["slideseg"]``,
    so they save again as instances. An NGFF store gives one layer per
    label image, multiscale when it holds a pyramid.
    """
    from .io.errors import SlideSegError
    from .io.masks import ngff_label_names, read_id_map, read_labels

    if isinstance(path, list | tuple):
        path = path[0]
    path = os.fspath(path)
    special = special_file_kind(path)
    if special is not None:
        _notify_error(f"{path}: is a {special}, not a regular file or directory; it is not opened")
        return [(None,)]
    try:
        if os.path.isfile(path) and not path.lower().endswith(".csv") and _is_id_map(path):
            return [_mask_layer(path, *read_id_map(path), None)]
        names = ngff_label_names(path) if os.path.isdir(path) else []
        layers = []
        for name in names or [None]:
            labels, classmap, info = read_labels(path, label=name)
            layers.append(
                _mask_layer(path, labels, classmap, info, name if len(names) > 1 else None)
            )
    except SlideSegError as err:
        _notify_error(str(err))
        return [(None,)]
    return layers


#: ``info`` entries of read_labels that stay out of layer metadata (big or not JSON).
_INFO_LEFT_OUT = ("attrs", "levels", "properties", "type_classmap", "instance_classes")


def _mask_layer(
    path: str, labels: Any, classmap: Any, info: dict[str, Any], label_name: str | None
) -> tuple[Any, dict[str, Any], str]:
    from pathlib import Path

    from .layers import labels_layer

    stem = Path(path.rstrip("/\\")).name.split(".")[0] or Path(path).stem
    meta: dict[str, Any] = {
        "path": path,
        "slideseg": {"source": {k: v for k, v in info.items() if k not in _INFO_LEFT_OUT}},
    }
    if info.get("placement"):
        meta["slideseg"]["placement"] = info["placement"]
    mpp = info.get("mpp")
    levels = info.get("levels") or []
    data = levels if len(levels) > 1 else labels
    features = None
    if info.get("instances"):
        meta["slideseg"]["instances"] = True
        types = info.get("type_classmap")
        if types is not None:
            meta["slideseg"]["classmap"] = types.to_dict()
        features = _instance_table(info, types)
        classmap = None
    data, kwargs, kind = labels_layer(
        data,
        classmap,
        name=f"{stem} {label_name}" if label_name else stem,
        metadata=meta,
        scale=tuple(mpp) if mpp else None,
        units=("micrometer", "micrometer") if mpp else None,
        features=features,
    )
    if isinstance(data, list):
        kwargs["multiscale"] = True
    return data, kwargs, kind


def _instance_table(info: dict[str, Any], types: Any) -> Any:
    """A features table (one row per object, ``index`` = id) from what the file records."""
    import pandas as pd

    props = info.get("properties")
    inst = info.get("instance_classes")
    if props:
        df = pd.DataFrame.from_dict(props, orient="index")
        df.index.name = "index"
        df = df.reset_index()
    elif inst:
        df = pd.DataFrame({"index": list(inst), "type": list(inst.values())})
    else:
        return None
    df["index"] = df["index"].astype("int64")
    if "type" in df and types is not None:
        names = list(types.names)
        t = pd.to_numeric(df["type"], errors="coerce")
        df["type"] = t.fillna(-1).astype("int64")
        if "type_name" not in df:
            df["type_name"] = [names[i] if 0 <= i < len(names) else "" for i in df["type"]]
    return df.sort_values("index").reset_index(drop=True)


# -----------------------------------------------------------------------------
# GeoJSON -> Shapes
# -----------------------------------------------------------------------------
#: Opacity of polygon faces (edges are opaque) in the class colour.
GEOJSON_FACE_ALPHA = 0.3


def napari_get_geojson_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a Shapes reader for GeoJSON (QuPath annotations/detections, our exports), else None.

    ``.geojson`` and ``.geojson.gz`` are claimed when they start like
    GeoJSON; ``.json`` only when its first 4 kB hold a GeoJSON ``type``.
    """
    path = _one_path(path)
    if path is None:
        return None
    if not path.lower().endswith((".geojson", ".geojson.gz", ".json", ".json.gz")):
        return None
    if not os.path.isfile(path):
        return None
    from .io.geojson import sniff_geojson

    return read_geojson_shapes if sniff_geojson(path) else None


def read_geojson_shapes(path: str | list[str]) -> list[tuple[Any, ...]]:
    """Open GeoJSON polygons as a Shapes layer (class names and measurements as features).

    Each polygon (each part of a MultiPolygon) is one shape, edged and
    lightly filled in its class colour; lines are paths; points become a
    Points layer. Vertices sit on pixel edges as QuPath's do (the shape of
    a pixel-exact export covers exactly its pixels). When the file states
    its µm per pixel (this plugin's exports) the layers get that scale in
    micrometres and overlay the slide layer; QuPath's files are in pixels.
    Holes are left out (napari polygons have none) and counted in
    ``metadata["slideseg"]["holes_left_out"]``.
    """
    from pathlib import Path

    import numpy as np

    from .io.errors import SlideSegError
    from .io.geojson import read_geojson

    if isinstance(path, list | tuple):
        path = path[0]
    path = os.fspath(path)
    try:
        found = read_geojson(path)
    except SlideSegError as err:
        _notify_error(str(err))
        return [(None,)]
    name = Path(path).name
    for suffix in (".gz", ".geojson", ".json"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    common: dict[str, Any] = {}
    if found.mpp:
        common = {"scale": tuple(found.mpp), "units": ("micrometer", "micrometer")}
    meta = {
        "path": path,
        "slideseg": {"geojson": {"coordinates": found.coordinates, "holes_left_out": found.holes}},
    }
    layers: list[tuple[Any, ...]] = []
    keep = [
        i
        for i, (s, t) in enumerate(zip(found.shapes, found.shape_types, strict=True))
        if len(s) >= (3 if t == "polygon" else 2)
    ]
    if keep:
        import pandas as pd

        edge = np.ones((len(keep), 4), np.float32)
        edge[:, :3] = np.asarray([found.colors[i] for i in keep], np.float32) / 255
        face = edge.copy()
        face[:, 3] = GEOJSON_FACE_ALPHA
        kwargs = {
            "name": name,
            "shape_type": [found.shape_types[i] for i in keep],
            "edge_color": edge,
            "face_color": face,
            "features": pd.DataFrame([found.records[i] for i in keep]),
            "metadata": meta,
            **common,
        }
        layers.append(([found.shapes[i] for i in keep], kwargs, "shapes"))
    if found.points:
        import pandas as pd

        colors = np.ones((len(found.points), 4), np.float32)
        colors[:, :3] = np.asarray(found.point_colors, np.float32) / 255
        kwargs = {
            "name": f"{name} points",
            "face_color": colors,
            "features": pd.DataFrame(found.point_records),
            "metadata": meta,
            **common,
        }
        layers.append((np.asarray(found.points, np.float64), kwargs, "points"))
    if not layers:
        _notify_error(f"{path}: holds no polygons, lines or points")
        return [(None,)]
    return layers
