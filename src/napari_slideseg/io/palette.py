"""ClassMap: class names, RGB colours and the background index, carried end to end.

One :class:`ClassMap` travels from the mask palette to patch manifests, model
cards, napari Labels colormaps and every writer, so a class never changes its
colour or index between steps.

Presets (named by what they are; class names are the colours, because the
meaning of a colour differs between datasets):

``biopsy6``
    background (0,0,0), yellow (255,255,0), grey (150,150,150),
    green (0,255,0), blue (0,0,255), red (0,150,255). The last one is what
    these users call red: their masks were written by OpenCV in BGR order,
    so the stored RGB value is (0,150,255). It is kept exactly as it is in
    their files.
``wsi3``
    background (0,0,0), yellow (255,255,0), red (255,0,0).
``binary``
    background (0,0,0), foreground (255,255,255). Grey 0/255 masks (like
    GlaS) map 0 -> 0 and 255 -> 1.

Colour masks convert to labels with a vectorised lookup on the packed
``r << 16 | g << 8 | b`` key (NumPy, or chunk-wise over dask); unknown
colours are an error that lists each colour with its pixel count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SlideSegError

RGB = tuple[int, int, int]


class MaskError(SlideSegError, ValueError):
    """A mask or class map is unusable (the message names the file and the problem)."""


_DEFAULT_COLORS: tuple[RGB, ...] = (
    (0, 0, 0),
    (255, 255, 0),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (0, 128, 0),
    (128, 128, 128),
    (255, 255, 255),
)


def _key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class ClassMap:
    """Ordered classes: index ``i`` is label value ``i`` with colour ``colors[i]``.

    Attributes
    ----------
    names
        Class names, background included.
    colors
        One RGB triple (0-255) per class, all different.
    background
        Index of the background class.
    name
        Preset or user name of the map.
    """

    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    background: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        colors = tuple(tuple(int(c) for c in col) for col in self.colors)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", colors)
        if not names:
            raise MaskError("a class map needs at least one class")
        if len(names) != len(colors):
            raise MaskError(f"class map has {len(names)} names but {len(colors)} colours")
        if len(names) > 65536:
            raise MaskError(f"class map has {len(names)} classes; at most 65536 are supported")
        for c in colors:
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise MaskError(f"colour {c} is not an RGB triple in 0-255")
        if len(set(colors)) != len(colors):
            dup = next(c for c in colors if colors.count(c) > 1)
            raise MaskError(f"colour {dup} is used by more than one class")
        if len(set(names)) != len(names):
            raise MaskError("class names must be unique")
        if not 0 <= self.background < len(names):
            raise MaskError(f"background index {self.background} is outside 0..{len(names) - 1}")

    # -- basics --------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.names)

    @property
    def label_dtype(self) -> np.dtype:
        """uint8 up to 256 classes, else uint16."""
        return np.dtype(np.uint8 if self.n_classes <= 256 else np.uint16)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "name": self.name,
            "names": list(self.names),
            "colors": [list(c) for c in self.colors],
            "background": self.background,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | None = None) -> ClassMap:
        try:
            return cls(
                names=tuple(d["names"]),
                colors=tuple(tuple(c) for c in d["colors"]),
                background=int(d.get("background", 0)),
                name=str(d.get("name", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            where = f"{source}: " if source else ""
            if isinstance(exc, MaskError):
                raise MaskError(f"{where}{exc}") from exc
            raise MaskError(
                f"{where}not a class map ({type(exc).__name__}: {exc}); expected names, colors, background"
            ) from exc

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the map as JSON (atomically)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, p)
        return p

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> ClassMap:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError as exc:
            raise MaskError(f"{p}: no such class map file") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MaskError(f"{p}: class map is not valid JSON ({exc})") from exc
        if not isinstance(d, dict):
            raise MaskError(f"{p}: class map must be a JSON object")
        return cls.from_dict(d, source=str(p))

    # -- presets and defaults -------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> ClassMap:
        """A named preset (``biopsy6``, ``wsi3``, ``binary``)."""
        if name not in PRESETS:
            raise MaskError(f"unknown class map preset {name!r}; available: {', '.join(PRESETS)}")
        return PRESETS[name]

    @classmethod
    def default(cls, n: int, names: Sequence[str] | None = None) -> ClassMap:
        """``n`` classes with distinct colours (background black), named ``class_i`` unless given."""
        if n < 1:
            raise MaskError("a class map needs at least one class")
        colors = list(_DEFAULT_COLORS[:n])
        rng = np.random.default_rng(12345)
        while len(colors) < n:
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            if c not in colors:
                colors.append(c)
        names = (
            list(names)
            if names is not None
            else ["background", *[f"class_{i}" for i in range(1, n)]]
        )
        if len(names) != n:
            raise MaskError(f"{len(names)} names given for {n} classes")
        return cls(tuple(names), tuple(colors), 0, "")

    @classmethod
    def match_preset(cls, colors: Sequence[Sequence[int]]) -> ClassMap | None:
        """The smallest preset whose palette contains all ``colors``, or ``None``."""
        wanted = {tuple(int(v) for v in c) for c in colors}
        for cm in sorted(PRESETS.values(), key=lambda c: c.n_classes):
            if wanted <= set(cm.colors):
                return cm
        return None

    @classmethod
    def infer(
        cls,
        rgb: Any,
        max_classes: int = 32,
        background: RGB | None = (0, 0, 0),
        source: str | None = None,
    ) -> ClassMap:
        """A class map from the distinct colours of an RGB mask (NumPy or dask).

        A known preset is returned when all colours belong to one. Otherwise
        the background is ``background`` if present, else the most frequent
        colour, and the other colours follow in order of frequency.
        """
        colors, counts = unique_colors(rgb)
        where = f"{source}: " if source else ""
        if len(colors) > max_classes:
            raise MaskError(
                f"{where}mask has {len(colors)} distinct colours (limit {max_classes}); it looks like a "
                "photo or a JPEG-compressed mask: give a preset/class map and a tolerance"
            )
        preset = cls.match_preset(colors)
        if preset is not None:
            return preset
        order = list(np.argsort(-counts, kind="stable"))
        cols = [tuple(int(v) for v in colors[i]) for i in order]
        bg = tuple(background) if background is not None and tuple(background) in cols else cols[0]
        cols.remove(bg)
        cols.insert(0, bg)
        names = ["background"] + [
            f"class_{i}_rgb{c[0]}_{c[1]}_{c[2]}" for i, c in enumerate(cols[1:], 1)
        ]
        return cls(tuple(names), tuple(cols), 0, "inferred")

    # -- napari ---------------------------------------------------------------------------
    def to_napari_colormap_dict(
        self, background_opacity: float = 0.0
    ) -> dict[Any, tuple[float, ...]]:
        """``{label: (r, g, b, a)}`` for napari's ``DirectLabelColormap(color_dict=...)``.

        Built without importing napari; the background is transparent by default.
        """
        d: dict[Any, tuple[float, ...]] = {None: (0.0, 0.0, 0.0, 0.0)}
        for i, (r, g, b) in enumerate(self.colors):
            a = background_opacity if i == self.background else 1.0
            d[i] = (r / 255.0, g / 255.0, b / 255.0, a)
        return d

    def lut(self) -> np.ndarray:
        """``(n, 3)`` uint8 colour table indexed by label."""
        return np.asarray(self.colors, np.uint8)


PRESETS: dict[str, ClassMap] = {
    "binary": ClassMap(("background", "foreground"), ((0, 0, 0), (255, 255, 255)), 0, "binary"),
    "wsi3": ClassMap(
        ("background", "yellow", "red"), ((0, 0, 0), (255, 255, 0), (255, 0, 0)), 0, "wsi3"
    ),
    "biopsy6": ClassMap(
        ("background", "yellow", "grey", "green", "blue", "red"),
        ((0, 0, 0), (255, 255, 0), (150, 150, 150), (0, 255, 0), (0, 0, 255), (0, 150, 255)),
        0,
        "biopsy6",
    ),
}


# -----------------------------------------------------------------------------
# colours <-> labels
# -----------------------------------------------------------------------------
def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask")


def _drop_alpha(rgb: Any, source: str | None) -> Any:
    if rgb.ndim == 3 and rgb.shape[-1] == 4:
        alpha = rgb[..., 3]
        amin = alpha.min()
        amin = amin.compute() if _is_dask(amin) else amin
        if amin < 255:
            raise MaskError(
                f"{source or 'mask'}: RGBA mask with transparent pixels; save it as RGB"
            )
        return rgb[..., :3]
    return rgb


def unique_colors(rgb: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colours ``(k, 3)`` of an RGB mask and their pixel counts (chunk-wise for dask)."""
    if _is_dask(rgb):
        import dask.array as da

        keys = da.map_blocks(lambda b: _key(b), rgb, drop_axis=2, dtype=np.uint32)
        parts = [
            np.unique(np.asarray(blk), return_counts=True)
            for blk in (keys.blocks[idx].compute() for idx in np.ndindex(*keys.numblocks))
        ]
        allk = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint32)
        allc = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        uk, inv = np.unique(allk, return_inverse=True)
        counts = np.bincount(inv, weights=allc).astype(np.int64)
    else:
        uk, counts = np.unique(_key(np.asarray(rgb)), return_counts=True)
    cols = np.stack([(uk >> 16) & 255, (uk >> 8) & 255, uk & 255], -1).astype(np.uint8)
    return cols, counts


def _unknown_message(cols: np.ndarray, counts: np.ndarray, cm: ClassMap, source: str | None) -> str:
    order = np.argsort(-counts)
    shown = ", ".join(f"{tuple(int(v) for v in cols[i])}: {int(counts[i])} px" for i in order[:10])
    more = f" and {len(cols) - 10} more" if len(cols) > 10 else ""
    where = f"{source}: " if source else ""
    return (
        f"{where}{len(cols)} colour(s) are not in the class map {cm.name or ''} "
        f"({int(counts.sum())} pixels): {shown}{more}. Use the right preset or class map, "
        "or pass a tolerance for JPEG-compressed masks"
    )


def _map_block(
    block: np.ndarray, cm: ClassMap, tolerance: float | None, source: str | None
) -> np.ndarray:
    keys = _key(block)
    pal = _key(cm.lut())
    order = np.argsort(pal)
    spal = pal[order]
    idx = np.searchsorted(spal, keys)
    idx = np.minimum(idx, len(spal) - 1)
    hit = spal[idx] == keys
    out = order[idx].astype(cm.label_dtype)
    if hit.all():
        return out
    miss = ~hit
    if tolerance is not None:
        px = block[miss].astype(np.int32)
        d2 = ((px[:, None, :] - cm.lut().astype(np.int32)[None]) ** 2).sum(-1)
        nearest = d2.argmin(1)
        ok = d2[np.arange(len(px)), nearest] <= tolerance**2
        vals = out[miss]
        vals[ok] = nearest[ok].astype(cm.label_dtype)
        out[miss] = vals
        still = np.zeros_like(miss)
        still[miss] = ~ok
        miss = still
        if not miss.any():
            return out
    cols, counts = unique_colors(block[miss][None])
    raise MaskError(_unknown_message(cols, counts, cm, source))


def rgb_to_labels(
    rgb: Any, classmap: ClassMap, *, tolerance: float | None = None, source: str | None = None
) -> Any:
    """Class-index labels of a colour mask (NumPy, or chunk-wise dask).

    Parameters
    ----------
    rgb
        ``(H, W, 3)`` (or opaque RGBA) colour mask, or a 2D grey 0/255 mask
        with the ``binary`` class map (0 -> 0, 255 -> 1).
    classmap
        Colours to map from.
    tolerance
        Explicit opt-in for JPEG-compressed masks: a pixel takes the nearest
        palette colour if it lies within this Euclidean RGB distance.
    source
        File name for error messages.

    Raises
    ------
    MaskError
        Listing each unknown colour and its pixel count (for dask: at compute time;
        use :func:`check_colors` to scan first).
    """
    if rgb.ndim == 2:
        return _grey_to_labels(rgb, classmap, source)
    rgb = _drop_alpha(rgb, source)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise MaskError(
            f"{source or 'mask'}: expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )
    if _is_dask(rgb):
        import dask.array as da

        rgb = rgb.rechunk({2: 3})
        return da.map_blocks(
            _map_block, rgb, classmap, tolerance, source, drop_axis=2, dtype=classmap.label_dtype
        )
    return _map_block(np.asarray(rgb), classmap, tolerance, source)


def _grey_to_labels(grey: Any, cm: ClassMap, source: str | None) -> Any:
    greys = [c[0] for c in cm.colors if c[0] == c[1] == c[2]]
    if len(greys) != cm.n_classes:
        raise MaskError(
            f"{source or 'mask'}: a grey mask needs a class map of grey colours (like 'binary'); "
            f"{cm.name or 'this map'} has colours {list(cm.colors)}"
        )
    return rgb_to_labels(_stack3(grey), cm, source=source)


def _stack3(grey: Any) -> Any:
    if _is_dask(grey):
        import dask.array as da

        return da.stack([grey, grey, grey], axis=-1)
    g = np.asarray(grey)
    return np.stack([g, g, g], -1)


def check_colors(rgb: Any, classmap: ClassMap, source: str | None = None) -> None:
    """Scan a colour mask chunk by chunk and raise :class:`MaskError` listing every unknown colour."""
    rgb = _drop_alpha(rgb, source)
    cols, counts = unique_colors(rgb)
    known = set(classmap.colors)
    bad = [i for i, c in enumerate(cols) if tuple(int(v) for v in c) not in known]
    if bad:
        raise MaskError(_unknown_message(cols[bad], counts[bad], classmap, source))


def labels_to_rgb(labels: Any, classmap: ClassMap) -> Any:
    """RGB colour mask ``(H, W, 3)`` uint8 of class-index labels (NumPy, or chunk-wise dask)."""
    lut = classmap.lut()
    if _is_dask(labels):
        import dask.array as da

        def block(b: np.ndarray) -> np.ndarray:
            _check_label_range(b, classmap)
            return lut[b]

        return da.map_blocks(
            block, labels, new_axis=2, chunks=(*labels.chunks, (3,)), dtype=np.uint8
        )
    arr = np.asarray(labels)
    _check_label_range(arr, classmap)
    return lut[arr]


def _check_label_range(arr: np.ndarray, cm: ClassMap) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= cm.n_classes):
        bad = np.unique(arr[(arr < 0) | (arr >= cm.n_classes)])[:10]
        raise MaskError(
            f"label values {bad.tolist()} have no class in the class map ({cm.n_classes} classes)"
        )


def check_same_shape(
    mask_shape: Sequence[int],
    slide_shape: Sequence[int],
    *,
    mask_name: str = "mask",
    slide_name: str = "slide",
) -> None:
    """Raise :class:`MaskError` naming both shapes if the mask's (H, W) differs from the slide's."""
    mh, mw = int(mask_shape[0]), int(mask_shape[1])
    sh, sw = int(slide_shape[0]), int(slide_shape[1])
    if (mh, mw) != (sh, sw):
        raise MaskError(
            f"{mask_name} is {mw} x {mh} (width x height, shape {tuple(mask_shape)}) but {slide_name} "
            f"is {sw} x {sh} (shape {tuple(slide_shape)}); they must match"
        )


# -----------------------------------------------------------------------------
# files
# -----------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    name = path.name.lower()
    try:
        if name.endswith((".tif", ".tiff")):
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imagecodecs

        return np.asarray(imagecodecs.imread(path))
    except Exception as first:
        from PIL import Image

        from .slide import pil_pixel_limit

        try:
            with Image.open(path) as probe:
                pixels = probe.size[0] * probe.size[1]
        except Exception:
            pixels = 0
        try:
            with pil_pixel_limit(pixels), Image.open(path) as im:
                return np.asarray(im.convert("RGB") if im.mode == "P" else im)
        except Exception as exc:
            raise MaskError(f"{path}: cannot be read as an image ({first}; Pillow: {exc})") from exc


def read_color_mask(
    path: str | os.PathLike,
    classmap: ClassMap | None = None,
    *,
    tolerance: float | None = None,
) -> tuple[np.ndarray, ClassMap]:
    """Read a colour mask (or a grey/index mask) as class labels.

    * RGB: mapped through ``classmap``, or a matching preset, or an inferred map.
    * grey with values {0, 255}: the ``binary`` preset (0 -> background, 255 -> foreground).
    * grey with small integers: returned as labels with a default class map
      (or ``classmap`` if given).

    Errors name the file.
    """
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: no such file")
    arr = _read_image(p)
    src = str(p)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _drop_alpha(arr, src)
        cm = classmap or ClassMap.infer(arr, source=src)
        return rgb_to_labels(arr, cm, tolerance=tolerance, source=src), cm
    if arr.ndim == 3 and arr.shape[-1] == 2:  # grey + alpha
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MaskError(f"{p}: a mask must be 2D or RGB, got shape {arr.shape}")
    values = np.unique(arr)
    if classmap is None and set(values.tolist()) <= {0, 255} and 255 in values:
        return (arr > 0).astype(np.uint8), PRESETS["binary"]
    if (
        classmap is not None
        and all(c[0] == c[1] == c[2] for c in classmap.colors)
        and values.max() >= classmap.n_classes
    ):
        return rgb_to_labels(arr, classmap, source=src), classmap
    top = int(values.max()) if values.size else 0
    cm = classmap or ClassMap.default(top + 1)
    if top >= cm.n_classes:
        raise MaskError(
            f"{p}: label values up to {top} but the class map has {cm.n_classes} classes"
        )
    return arr.astype(cm.label_dtype if top < 65536 else arr.dtype), cm


def is_color_mask(
    path: str | os.PathLike, max_colors: int = 16, max_pixels: int = 50_000_000
) -> ClassMap | None:
    """The matching preset if ``path`` is a colour mask in a known palette, else ``None``.

    Cheap sniff for readers: images above ``max_pixels`` are not read; unreadable files give ``None``.
    """
    try:
        p = Path(path)
        from .sniff import raster_header

        if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
            h = raster_header(str(p))
            if h.pixels > max_pixels or h.format == "jpeg":
                return None
        arr = _read_image(p)
        if arr.size > max_pixels * 4:
            return None
        if arr.ndim == 2:
            vals = np.unique(arr)
            return (
                PRESETS["binary"]
                if set(vals.tolist()) <= {0, 255} and 255 in vals and 0 in vals
                else None
            )
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            return None
        if arr.shape[-1] == 4:
            if arr[..., 3].min() < 255:
                return None
            arr = arr[..., :3]
        cols, _ = unique_colors(arr)
        if len(cols) > max_colors or len(cols) < 2:
            return None
        return ClassMap.match_preset(cols)
    except Exception:
        return None
