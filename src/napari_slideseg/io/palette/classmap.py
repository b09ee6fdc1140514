"""ClassMap: class names, RGB colours and the background index, carried end to end.

One :class:`ClassMap` travels from the mask palette to patch manifests, model
cards, napari Labels colormaps and every writer, so a class never changes its
colour or index between steps. Label value ``i`` is class ``i``.

Presets
-------
Classes are named by their colour, because what a colour means differs
between datasets (the same yellow is tumour in one cohort and stroma in
another); rename them in a JSON class map when the meaning is known.

``binary``
    background (0,0,0), foreground (255,255,255). Grey 0/255 masks (like
    GlaS) map 0 -> 0 and 255 -> 1.
``wsi3``
    background (0,0,0), yellow (255,255,0), red (255,0,0).
``biopsy6``
    background (0,0,0), yellow (255,255,0), grey (150,150,150),
    green (0,255,0), blue (0,0,255), red (0,150,255). "red" is what these
    users call the last class: their masks were written by OpenCV, which
    stores BGR, so the RGB value in the files is (0,150,255). It is kept
    exactly as it is in their files.
``consep4``
    nucleus types of CoNSeP as merged by HoVer-Net: background, other
    (255,0,0), inflammatory (0,255,0), epithelial (0,0,255), spindle-shaped
    (255,255,0).

Colour masks and labels
-----------------------
A colour is packed into a ``uint32`` key ``r << 16 | g << 8 | b`` and looked
up in a 2**24-entry table (16 MiB for up to 255 classes, built once per
palette and tolerance and cached), so mapping a mask costs one gather per
pixel. NumPy arrays are mapped at once, dask arrays chunk by chunk. Colours
that are not in the class map are an error that lists each colour with its
pixel count; ``tolerance`` (an explicit opt-in for JPEG-compressed masks)
maps a colour to the nearest class colour within that Euclidean RGB distance.

This module is core: it never imports Qt, napari or magicgui, and imports
dask only when given a dask array.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import operator
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideSegError
from ..files import use_default_mode

RGB = tuple[int, int, int]

#: Most classes a map can hold: label values 0..65535 fit ``uint16``.
MAX_CLASSES = 65536

#: ``is_color_mask`` decodes images up to this many pixels.
SNIFF_MAX_PIXELS = 50_000_000

#: Colours covering less than this share of a mask's pixels are never made classes
#: by :meth:`ClassMap.infer` without being asked (``min_share=0``): they are refused,
#: listed with their pixel counts (a stray pixel would change the class count).
MIN_CLASS_SHARE = 0.001

_FORMAT_VERSION = 1


class MaskError(SlideSegError, ValueError):
    """A mask or class map is unusable.

    The message names the file when it is known, and says what is wrong.
    """


def _where(source: str | os.PathLike | None) -> str:
    return f"{os.fspath(source)}: " if source else ""


# Colours of ClassMap.default: the first 12 are fixed, more are drawn from a seeded RNG.
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


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool | np.bool_):  # JSON true/false are not numbers here
        raise MaskError(f"{what} must be an integer, not {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise MaskError(f"{what} must be an integer, not {value!r}") from None


def _first_duplicate(items: Sequence[Any]) -> Any:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


@dataclass(frozen=True)
class ClassMap:
    """Ordered classes: index ``i`` is label value ``i`` with colour ``colors[i]``.

    Parameters
    ----------
    names
        Class names, background included, all different and non-empty.
    colors
        One RGB triple (0-255) per class, all different.
    background
        Index of the background class (transparent in napari).
    name
        Preset or user name of the map (``""`` when it has none).

    Raises
    ------
    MaskError
        If the lengths differ, a colour is not an RGB triple in 0-255 or is
        used twice, there are more than 65536 classes, or ``background`` is
        out of range.
    """

    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    background: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            raise MaskError("class names must be a list of names, not one string")
        names = tuple(str(n) for n in self.names)
        colors: list[RGB] = []
        for col in self.colors:
            try:
                triple = tuple(_as_int(v, "a colour component") for v in col)
            except TypeError:
                raise MaskError(f"colour {col!r} is not an RGB triple") from None
            if len(triple) != 3 or not all(0 <= v <= 255 for v in triple):
                raise MaskError(f"colour {tuple(col)} is not an RGB triple in 0-255")
            colors.append(triple)  # type: ignore[arg-type]
        background = _as_int(self.background, "the background index")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", tuple(colors))
        object.__setattr__(self, "background", background)
        object.__setattr__(self, "name", str(self.name))
        if not names:
            raise MaskError("a class map needs at least one class")
        if len(names) != len(colors):
            raise MaskError(f"class map has {len(names)} names but {len(colors)} colours")
        if len(names) > MAX_CLASSES:
            raise MaskError(
                f"class map has {len(names)} classes; at most {MAX_CLASSES} are supported"
            )
        if len(set(colors)) != len(colors):
            dup = _first_duplicate(colors)
            raise MaskError(f"colour {dup} is used by more than one class")
        if any(not n.strip() for n in names):
            raise MaskError("class names must not be empty")
        if len(set(names)) != len(names):
            dup_n = _first_duplicate(names)
            raise MaskError(f"class name {dup_n!r} is used more than once; names must be unique")
        if not 0 <= background < len(names):
            raise MaskError(f"background index {background} is outside 0..{len(names) - 1}")

    # -- basics ------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.names)

    @property
    def label_dtype(self) -> np.dtype:
        """``uint8`` for up to 256 classes, else ``uint16``."""
        return np.dtype(np.uint8 if self.n_classes <= 256 else np.uint16)

    def lut(self) -> np.ndarray:
        """``(n_classes, 3)`` uint8 colour table indexed by label value."""
        return np.asarray(self.colors, np.uint8).reshape(-1, 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"version", "name", "names", "colors", "background"}``."""
        return {
            "version": _FORMAT_VERSION,
            "name": self.name,
            "names": list(self.names),
            "colors": [list(c) for c in self.colors],
            "background": self.background,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | os.PathLike | None = None) -> ClassMap:
        """Rebuild a map written by :meth:`to_dict`.

        Parameters
        ----------
        d
            The mapping (``names`` and ``colors`` are required).
        source
            File the mapping came from, for error messages.

        Raises
        ------
        MaskError
            Naming ``source`` and the problem (missing keys, bad values,
            newer format version).
        """
        where = _where(source)
        if not isinstance(d, Mapping):
            raise MaskError(f"{where}a class map must be a JSON object, not {type(d).__name__}")
        missing = [k for k in ("names", "colors") if k not in d]
        if missing:
            raise MaskError(
                f"{where}not a class map: missing key(s) {', '.join(map(repr, missing))} "
                "(expected names, colors, background)"
            )
        version = d.get("version", _FORMAT_VERSION)
        if not isinstance(version, int) or version > _FORMAT_VERSION:
            raise MaskError(
                f"{where}class map format version {version!r} is not supported "
                f"(this version reads {_FORMAT_VERSION})"
            )
        try:
            return cls(
                names=tuple(d["names"]),
                colors=tuple(tuple(c) for c in d["colors"]),
                background=d.get("background", 0),
                name=str(d.get("name", "") or ""),
            )
        except MaskError as exc:
            raise MaskError(f"{where}{exc}") from exc
        except (TypeError, ValueError) as exc:
            raise MaskError(
                f"{where}not a class map ({type(exc).__name__}: {exc}); "
                "expected names, colors, background"
            ) from exc

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the map as JSON, atomically (a temporary file, then ``os.replace``).

        Parameters
        ----------
        path
            Destination file.

        Returns
        -------
        Path
            ``path``.
        """
        p = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, indent=2)
                fh.write("\n")
            use_default_mode(tmp)
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return p

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> ClassMap:
        """Read a map written by :meth:`save_json`.

        Raises
        ------
        MaskError
            Naming the file, if it is missing, unreadable, not JSON or not a class map.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise MaskError(f"{p}: no such class map file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise MaskError(f"{p}: class map cannot be read ({exc})") from exc
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MaskError(f"{p}: class map is not valid JSON ({exc})") from exc
        return cls.from_dict(d, source=p)

    # -- presets and defaults ------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> ClassMap:
        """A named preset: ``binary``, ``wsi3`` or ``biopsy6`` (see :data:`PRESETS`).

        Raises
        ------
        MaskError
            Listing the available presets, if ``name`` is not one.
        """
        key = str(name).strip().lower()
        known = {**PRESETS, **NUCLEUS_PRESETS}
        if key not in known:
            raise MaskError(f"unknown class map preset {name!r}; available: {', '.join(known)}")
        return known[key]

    @classmethod
    def default(cls, n: int, names: Sequence[str] | None = None) -> ClassMap:
        """``n`` classes with distinct colours: background black, then fixed colours.

        Parameters
        ----------
        n
            Number of classes, background included.
        names
            Class names; ``background, class_1, ...`` when omitted.
        """
        n = _as_int(n, "the number of classes")
        if not 1 <= n <= MAX_CLASSES:
            raise MaskError(f"a class map holds 1 to {MAX_CLASSES} classes, not {n}")
        colors = list(_DEFAULT_COLORS[:n])
        seen = set(colors)
        rng = np.random.default_rng(12345)
        while len(colors) < n:
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            if c not in seen:
                seen.add(c)
                colors.append(c)  # type: ignore[arg-type]
        if names is None:
            names = ["background", *(f"class_{i}" for i in range(1, n))]
        names = list(names)
        if len(names) != n:
            raise MaskError(f"{len(names)} names given for {n} classes")
        return cls(tuple(names), tuple(colors), 0, "")

    @classmethod
    def match_preset(cls, colors: Sequence[Sequence[int]] | np.ndarray) -> ClassMap | None:
        """The smallest preset whose palette holds every colour in ``colors``.

        Parameters
        ----------
        colors
            RGB triples (e.g. the distinct colours of a mask).

        Returns
        -------
        ClassMap or None
            ``None`` if no preset holds them all, or ``colors`` is empty.
        """
        wanted = {tuple(int(v) for v in c) for c in np.asarray(colors).reshape(-1, 3)}
        if not wanted:
            return None
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
        source: str | os.PathLike | None = None,
        *,
        match_presets: bool = True,
        min_share: float = MIN_CLASS_SHARE,
        tolerance: float | None = None,
    ) -> ClassMap:
        """A class map from the distinct colours of a colour mask.

        Parameters
        ----------
        rgb
            ``(H, W, 3)`` mask (opaque RGBA and 2D grey accepted), NumPy or
            dask. Dask masks are scanned chunk by chunk, never whole.
        max_classes
            More distinct colours than this is an error.
        background
            Colour of the background class if it occurs in the mask; else
            (or with ``None``) the most frequent colour is the background.
        source
            File name for error messages.
        match_presets
            Return the smallest preset holding all the mask's colours, if any,
            so that masks of one dataset get the same map even when some lack
            a class.
        min_share
            Colours covering less than this share of the pixels (default
            :data:`MIN_CLASS_SHARE`, 0.1 %) are not made classes silently:
            when the other colours fit a preset, or such a colour lies within
            ``tolerance`` of another colour, the map is inferred without it
            (mapping the mask then names the colours not in it, unless the
            tolerance covers them); otherwise it is an error listing the
            colours and their pixel counts. ``0`` makes every colour a class.
        tolerance
            The tolerance the mask will be mapped with (JPEG noise), if any.

        Returns
        -------
        ClassMap
            Background at index 0, the other colours by decreasing pixel
            count, named ``class_<i>_rgb<r>_<g>_<b>``; ``name="inferred"``.

        Raises
        ------
        MaskError
            If the mask has more than ``max_classes`` colours (a photo or a
            JPEG-compressed mask), or colours under ``min_share`` that would
            become classes of their own (listed with pixel counts).
        """
        colors, counts = unique_colors(rgb, limit=max_classes, source=source)
        if len(colors) > max_classes:
            many = f"{len(colors)}" if not _is_dask(rgb) else f"at least {len(colors)}"
            raise MaskError(
                f"{_where(source)}mask has {many} distinct colours (limit {max_classes}); "
                "it looks like a photo or a JPEG-compressed mask, not a colour mask: "
                "give a preset or class map, with a tolerance for JPEG noise"
            )
        if not len(colors):
            raise MaskError(f"{_where(source)}mask is empty")
        if match_presets:
            preset = cls.match_preset(colors)
            if preset is not None:
                return preset
        counts = np.asarray(counts, np.int64)
        rare = counts < float(min_share) * int(counts.sum())
        if rare.any() and (~rare).any():
            major = colors[~rare]
            preset = cls.match_preset(major) if match_presets else None
            if preset is not None:
                # The palette the mask's real colours fit: mapping the mask with it lists
                # the stray colours and their counts (or the tolerance absorbs them).
                return preset
            tol = _check_tolerance(tolerance)
            if tol is not None:
                d2 = (colors[rare, None, :].astype(np.int64) - major[None].astype(np.int64)) ** 2
                near = d2.sum(-1).min(1) <= tol * tol
                rare_idx = np.flatnonzero(rare)
                keep = np.ones(len(colors), bool)
                keep[rare_idx[near]] = False
                colors, counts, rare = colors[keep], counts[keep], rare[keep]
            if rare.any():
                bg = tuple(int(v) for v in background) if background is not None else None
                rare &= np.array([tuple(int(v) for v in c) != bg for c in colors])
            if rare.any():
                raise MaskError(_rare_message(colors, counts, rare, min_share, source))
        order = np.lexsort((_pack(colors), -counts))
        cols = [tuple(int(v) for v in colors[i]) for i in order]
        bg = tuple(int(v) for v in background) if background is not None else None
        bg = bg if bg in cols else cols[0]
        cols.remove(bg)
        cols.insert(0, bg)
        names = ["background"] + [
            f"class_{i}_rgb{c[0]}_{c[1]}_{c[2]}" for i, c in enumerate(cols[1:], 1)
        ]
        return cls(tuple(names), tuple(cols), 0, "inferred")  # type: ignore[arg-type]

    # -- napari ----------------------------------------------------------------------------
    def to_napari_colormap_dict(
        self, background_opacity: float = 0.0
    ) -> dict[int | None, tuple[float, float, float, float]]:
        """Colours for ``napari.utils.colormaps.DirectLabelColormap(color_dict=...)``.

        Built without importing napari.

        Parameters
        ----------
        background_opacity
            Alpha of the background class (transparent by default).

        Returns
        -------
        dict
            ``{None: (0, 0, 0, 0), i: (r/255, g/255, b/255, alpha)}``; ``None``
            is the colour of labels outside the map (transparent).
        """
        d: dict[int | None, tuple[float, float, float, float]] = {None: (0.0, 0.0, 0.0, 0.0)}
        for i, (r, g, b) in enumerate(self.colors):
            a = float(background_opacity) if i == self.background else 1.0
            d[i] = (r / 255.0, g / 255.0, b / 255.0, a)
        return d


#: Named class maps; see the module docstring for what the colours are.
PRESETS: dict[str, ClassMap] = {
    "binary": ClassMap(("background", "foreground"), ((0, 0, 0), (255, 255, 255)), 0, "binary"),
    "wsi3": ClassMap(
        ("background", "yellow", "red"), ((0, 0, 0), (255, 255, 0), (255, 0, 0)), 0, "wsi3"
    ),
    "biopsy6": ClassMap(
        ("background", "yellow", "grey", "green", "blue", "red"),
        # (0, 150, 255) is what these users call red: OpenCV wrote their masks in BGR
        # order. Kept exactly as it is in their files.
        ((0, 0, 0), (255, 255, 0), (150, 150, 150), (0, 255, 0), (0, 0, 255), (0, 150, 255)),
        0,
        "biopsy6",
    ),
}

#: Nucleus-type class maps (for HoVer type heads). Kept apart from :data:`PRESETS`,
#: whose palettes decide which colour images are masks.
NUCLEUS_PRESETS: dict[str, ClassMap] = {
    # CoNSeP's four nucleus types as HoVer-Net merged them (colours of its type_info.json).
    "consep4": ClassMap(
        ("background", "other", "inflammatory", "epithelial", "spindle-shaped"),
        ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)),
        0,
        "consep4",
    ),
}


# -----------------------------------------------------------------------------
# helpers: keys, tables, dask
# -----------------------------------------------------------------------------
def _is_dask(a: Any) -> bool:
    return type(a).__module__.split(".", 1)[0] == "dask"


def _pack(rgb: np.ndarray) -> np.ndarray:
    """``uint32`` keys ``r << 16 | g << 8 | b`` of an ``(..., 3)`` uint8 array."""
    rgb = np.asarray(rgb)
    key = rgb[..., 0].astype(np.uint32)
    key <<= 16
    g = rgb[..., 1].astype(np.uint32)
    g <<= 8
    key |= g
    key |= rgb[..., 2].astype(np.uint32)
    return key


def _unpack(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, np.uint32)
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], -1).astype(np.uint8)


def _lut_dtype(n: int) -> np.dtype:
    """Smallest dtype holding 0..n-1 plus a 'no class' marker (its maximum)."""
    return np.dtype(np.uint8 if n <= 255 else np.uint16 if n <= 65535 else np.uint32)


def _check_tolerance(tolerance: float | None) -> float | None:
    if tolerance is None:
        return None
    t = float(tolerance)
    if not math.isfinite(t) or t < 0:
        raise MaskError(f"tolerance must be a distance >= 0 in RGB units, not {tolerance!r}")
    return t if t >= 1 else None  # distinct integer colours are >= 1 apart


@functools.lru_cache(maxsize=4)
def _color_lut(colors: tuple[RGB, ...], tolerance: float | None) -> np.ndarray:
    """2**24-entry table: packed colour -> class index, or the dtype's max for 'no class'.

    With ``tolerance``, every colour whose nearest class colour (Euclidean,
    lowest index on ties) lies within ``tolerance`` maps to that class.
    """
    n = len(colors)
    dt = _lut_dtype(n)
    lut = np.full(1 << 24, np.iinfo(dt).max, dt)
    pal = np.asarray(colors, np.int32).reshape(-1, 3)
    if tolerance is None:
        lut[_pack(pal.astype(np.uint8))] = np.arange(n, dtype=dt)
    else:
        t = math.floor(tolerance)
        t2 = tolerance * tolerance
        if n * (2 * t + 1) ** 3 <= 1 << 22:  # enumerate balls around the class colours
            off = np.arange(-t, t + 1, dtype=np.int32)
            cube = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
            ball = cube[(cube**2).sum(1) <= t2]
            cand = (pal[:, None, :] + ball[None]).reshape(-1, 3)
            cand = cand[((cand >= 0) & (cand <= 255)).all(1)]
            keys = np.unique(_pack(cand.astype(np.uint8)))
            parts = (keys[i : i + (1 << 20)] for i in range(0, len(keys), 1 << 20))
        else:  # every colour, a million at a time
            parts = (
                np.arange(s, s + (1 << 20), dtype=np.uint32) for s in range(0, 1 << 24, 1 << 20)
            )
        # nearest class (lowest index on ties), on contiguous channel columns
        for keys in parts:
            r, g, b = (((keys >> sh) & 255).astype(np.int32) for sh in (16, 8, 0))
            best = np.full(len(keys), np.iinfo(np.int32).max, np.int32)
            best_i = np.zeros(len(keys), dt)
            for i, (cr, cg, cb) in enumerate(pal.tolist()):
                d = r - cr
                d *= d
                e = g - cg
                e *= e
                d += e
                e = b - cb
                e *= e
                d += e
                closer = d < best
                np.minimum(best, d, out=best)
                np.putmask(best_i, closer, i)
            ok = best <= t2
            lut[keys[ok]] = best_i[ok]
    lut.flags.writeable = False
    return lut


def _grey_lut(colors: tuple[RGB, ...], tolerance: float | None) -> np.ndarray:
    """256-entry table: grey value v -> class of colour (v, v, v) (within tolerance)."""
    return _color_lut(colors, tolerance)[np.arange(256, dtype=np.uint32) * 0x010101]


def _unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, c = np.unique(np.asarray(keys).ravel(), return_counts=True)
    return u, c.astype(np.int64)


def _merge_counts(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    keys = [p[0] for p in parts if len(p[0])]
    if not keys:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    allk = np.concatenate(keys)
    allc = np.concatenate([p[1] for p in parts if len(p[0])])
    u, inv = np.unique(allk, return_inverse=True)
    counts = np.zeros(len(u), np.int64)
    np.add.at(counts, inv.ravel(), allc)
    return u, counts


def _blockwise_counts(
    arr: Any,
    func: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    stop: Callable[[int], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``func`` (block -> keys, counts) to each block of a dask array and merge.

    Blocks are computed a few at a time (in parallel), so only those blocks are
    in memory at once; ``stop(n_keys)`` ends the scan early.
    """
    import dask

    tasks = [dask.delayed(func)(b) for b in arr.to_delayed().ravel()]
    step = max(4, 2 * (os.cpu_count() or 1))
    acc = (np.zeros(0, np.uint32), np.zeros(0, np.int64))
    for i in range(0, len(tasks), step):
        acc = _merge_counts([acc, *dask.compute(*tasks[i : i + step])])
        if stop is not None and stop(len(acc[0])):
            break
    return acc


def _as_uint8(block: np.ndarray, source: str | os.PathLike | None) -> np.ndarray:
    if block.dtype == np.uint8:
        return block
    if block.dtype == bool or not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"{_where(source)}a colour mask holds 8-bit integers, not {block.dtype}")
    if block.size and (block.min() < 0 or block.max() > 255):
        raise MaskError(
            f"{_where(source)}colour mask values must be 0-255 (8-bit); this {block.dtype} mask "
            f"holds {int(block.min())}..{int(block.max())}: convert it to 8-bit first"
        )
    return block.astype(np.uint8)


def _opaque_rgb(block: np.ndarray, source: str | os.PathLike | None) -> np.ndarray:
    """``(..., 3)`` uint8 colours of an RGB or opaque RGBA block."""
    block = _as_uint8(np.asarray(block), source)
    if block.shape[-1] == 4:
        clear = int(np.count_nonzero(block[..., 3] != 255))
        if clear:
            raise MaskError(
                f"{_where(source)}RGBA mask has {clear} pixel(s) that are not fully opaque "
                "(alpha < 255); save the mask as RGB"
            )
        block = block[..., :3]
    return block


def _chunk_location(block_info: dict | None) -> str:
    try:
        (y0, y1), (x0, x1) = block_info[0]["array-location"][:2]  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return ""
    return f" in rows {y0}-{y1 - 1}, columns {x0}-{x1 - 1} (check_colors lists the whole mask)"


def _unknown_message(
    keys: np.ndarray,
    counts: np.ndarray,
    cm: ClassMap,
    source: str | os.PathLike | None,
    *,
    grey: bool = False,
    tolerance: float | None = None,
    where: str = "",
) -> str:
    """'N colour(s) are not in the class map ...' with the top 10 colours by count."""
    keys = np.asarray(keys)
    counts = np.asarray(counts, np.int64)
    order = np.lexsort((keys, -counts))
    if grey:
        items = [f"grey {int(keys[i])}: {int(counts[i])} px" for i in order[:10]]
        what = "grey value(s)"
    else:
        cols = _unpack(keys)
        items = [f"{tuple(int(v) for v in cols[i])}: {int(counts[i])} px" for i in order[:10]]
        what = "colour(s)"
    more = f", and {len(keys) - 10} more" if len(keys) > 10 else ""
    tol = f" (none within tolerance {tolerance:g} of a class colour)" if tolerance else ""
    label = f" {cm.name!r}" if cm.name else ""
    hint = (
        "Use the right preset or class map"
        + ("" if tolerance else ", or pass a tolerance for JPEG-compressed masks")
        + (" (a grey mask of class indices is read as labels directly)" if grey else "")
    )
    return (
        f"{_where(source)}{len(keys)} {what} are not in the class map{label}{tol}{where}, "
        f"{int(counts.sum())} pixel(s) in all: {', '.join(items)}{more}. {hint}"
    )


def _rare_message(
    colors: np.ndarray,
    counts: np.ndarray,
    rare: np.ndarray,
    min_share: float,
    source: str | os.PathLike | None,
) -> str:
    """'N colour(s) cover less than x % each ...' with the rare colours and their counts."""
    idx = np.flatnonzero(rare)
    idx = idx[np.lexsort((_pack(colors[idx]), -counts[idx]))]
    items = [f"{tuple(int(v) for v in colors[i])}: {int(counts[i])} px" for i in idx[:10]]
    more = f", and {len(idx) - 10} more" if len(idx) > 10 else ""
    return (
        f"{_where(source)}{len(idx)} colour(s) cover less than {min_share:.1%} of the mask each "
        f"and would silently become classes of their own: {', '.join(items)}{more}; the other "
        f"{int((~rare).sum())} colour(s) cover {int(counts[~rare].sum())} px. Give the class map "
        "or preset (with a tolerance for JPEG noise), clean the mask, or pass min_share=0 "
        "(--min-class-share 0) to make every colour a class"
    )


def _is_grey_map(cm: ClassMap) -> bool:
    return all(r == g == b for r, g, b in cm.colors)


# -----------------------------------------------------------------------------
# block functions (NumPy in, NumPy out; used directly and through map_blocks)
# -----------------------------------------------------------------------------
def _rgb_block(
    block: np.ndarray,
    cm: ClassMap,
    tolerance: float | None,
    source: str | os.PathLike | None,
    block_info: dict | None = None,
) -> np.ndarray:
    keys = _pack(_opaque_rgb(block, source))
    lut = _color_lut(cm.colors, tolerance)
    out = lut[keys]
    bad = out == np.iinfo(lut.dtype).max
    if bad.any():
        u, c = _unique_counts(keys[bad])
        raise MaskError(
            _unknown_message(
                u, c, cm, source, tolerance=tolerance, where=_chunk_location(block_info)
            )
        )
    return out.astype(cm.label_dtype, copy=False)


def _grey_values(block: np.ndarray, source: str | os.PathLike | None) -> np.ndarray:
    if block.dtype == bool or not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"{_where(source)}a grey mask holds integers, not {block.dtype}")
    return block


def _grey_block(
    block: np.ndarray,
    cm: ClassMap,
    tolerance: float | None,
    source: str | os.PathLike | None,
    block_info: dict | None = None,
) -> np.ndarray:
    block = _grey_values(np.asarray(block), source)
    lut = _grey_lut(cm.colors, tolerance)
    miss = np.iinfo(lut.dtype).max
    if block.dtype == np.uint8:
        out = lut[block]
    else:
        inside = (block >= 0) & (block <= 255)
        out = np.full(block.shape, miss, lut.dtype)
        out[inside] = lut[block[inside].astype(np.intp)]
    bad = out == miss
    if bad.any():
        u, c = _unique_counts(block[bad])
        raise MaskError(
            _unknown_message(
                u,
                c,
                cm,
                source,
                grey=True,
                tolerance=tolerance,
                where=_chunk_location(block_info),
            )
        )
    return out.astype(cm.label_dtype, copy=False)


def _index_block(block: np.ndarray, cm: ClassMap, source: str | os.PathLike | None) -> np.ndarray:
    block = np.asarray(block)
    if block.dtype != bool and not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"{_where(source)}labels must be integers, not {block.dtype}")
    try:
        check_label_range(block, cm)
    except MaskError as err:
        raise MaskError(f"{_where(source)}{err}") from None
    return block.astype(cm.label_dtype, copy=False)


def _labels_block_to_rgb(block: np.ndarray, cm: ClassMap) -> np.ndarray:
    block = np.asarray(block)
    if block.dtype == bool:
        block = block.view(np.uint8)
    elif not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"labels must be integers, not {block.dtype}")
    check_label_range(block, cm)
    return cm.lut()[block]


# -----------------------------------------------------------------------------
# colours <-> labels
# -----------------------------------------------------------------------------
def unique_colors(
    rgb: Any, *, limit: int | None = None, source: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colours of a colour mask and their pixel counts.

    Parameters
    ----------
    rgb
        ``(H, W, 3)`` or opaque ``(H, W, 4)`` mask, or a 2D grey mask (its
        values ``v`` are reported as ``(v, v, v)``); NumPy or dask (scanned
        chunk by chunk, a few chunks at a time).
    limit
        For dask input, stop scanning once more than ``limit`` colours were
        found (the counts are then partial).
    source
        File name for error messages.

    Returns
    -------
    colors, counts
        ``(k, 3)`` uint8 colours in ascending key order and ``(k,)`` int64 counts.
    """
    grey = rgb.ndim == 2
    if not grey and (rgb.ndim != 3 or rgb.shape[-1] not in (3, 4)):
        raise MaskError(
            f"{_where(source)}expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )

    def block_keys(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.asarray(b)
        if grey:
            g = _as_uint8(b, source).astype(np.uint32)
            return _unique_counts(g * 0x010101)
        return _unique_counts(_pack(_opaque_rgb(b, source)))

    if _is_dask(rgb):
        if not grey:
            rgb = rgb.rechunk({2: -1})
        stop = (lambda k: k > limit) if limit is not None else None
        keys, counts = _blockwise_counts(rgb, block_keys, stop)
    else:
        keys, counts = block_keys(np.asarray(rgb))
    return _unpack(keys).reshape(-1, 3), counts


def rgb_to_labels(
    rgb: Any,
    classmap: ClassMap,
    *,
    tolerance: float | None = None,
    source: str | os.PathLike | None = None,
) -> Any:
    """Class-index labels of a colour mask (NumPy at once, dask chunk by chunk).

    Parameters
    ----------
    rgb
        ``(H, W, 3)`` uint8 colour mask, or ``(H, W, 4)`` RGBA whose alpha is
        255 everywhere. A 2D grey mask is accepted too: with a class map of
        grey colours (like ``binary``) grey value ``v`` is the class of colour
        ``(v, v, v)``, so a 0/255 mask gives 0 -> 0 and 255 -> 1; with any
        other class map its values are class indices (range-checked).
    classmap
        The colours to map from.
    tolerance
        Explicit opt-in for JPEG-compressed masks: a colour that is not in
        the map takes the class of the nearest class colour (Euclidean RGB)
        if that lies within ``tolerance``; farther colours are unknown.
    source
        File name for error messages.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``(H, W)`` labels in ``classmap.label_dtype``.

    Raises
    ------
    MaskError
        Listing each unknown colour with its pixel count (top 10 by count,
        and the total). For dask input this happens at compute time and
        counts one chunk; :func:`check_colors` scans a whole mask first.
    """
    tol = _check_tolerance(tolerance)
    ndim = rgb.ndim
    if ndim == 3 and rgb.shape[-1] == 1:
        rgb = rgb[..., 0]
        ndim = 2
    dask_in = _is_dask(rgb)
    if ndim == 2:
        if _is_grey_map(classmap):
            func, args = _grey_block, (classmap, tol, source)
        else:
            if dask_in:
                return rgb.map_blocks(_index_block, classmap, source, dtype=classmap.label_dtype)
            return _index_block(rgb, classmap, source)
        if dask_in:
            return rgb.map_blocks(func, *args, dtype=classmap.label_dtype)
        return func(np.asarray(rgb), *args)
    if ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise MaskError(
            f"{_where(source)}expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )
    if dask_in:
        return rgb.rechunk({2: -1}).map_blocks(
            _rgb_block, classmap, tol, source, drop_axis=2, dtype=classmap.label_dtype
        )
    return _rgb_block(np.asarray(rgb), classmap, tol, source)


def check_colors(
    rgb: Any,
    classmap: ClassMap,
    source: str | os.PathLike | None = None,
    *,
    tolerance: float | None = None,
) -> None:
    """Scan a colour mask chunk by chunk and report every colour not in ``classmap``.

    Parameters
    ----------
    rgb
        As for :func:`rgb_to_labels` (NumPy or dask; dask is scanned a few
        chunks at a time, never materialised whole).
    classmap
        The colours that are allowed.
    source
        File name for error messages.
    tolerance
        As for :func:`rgb_to_labels`.

    Raises
    ------
    MaskError
        Listing the unknown colours of the whole mask with their pixel counts.
    """
    tol = _check_tolerance(tolerance)
    if rgb.ndim == 3 and rgb.shape[-1] == 1:
        rgb = rgb[..., 0]
    grey = rgb.ndim == 2
    if grey and not _is_grey_map(classmap):
        if _is_dask(rgb):
            lo, hi = (int(v) for v in _dask_minmax(rgb))
            bad = [v for v in (lo, hi) if not 0 <= v < classmap.n_classes]
            if bad:
                raise MaskError(
                    f"{_where(source)}label values {bad} have no class in the class map "
                    f"({classmap.n_classes} classes)"
                )
            return
        _index_block(rgb, classmap, source)
        return
    if not grey and (rgb.ndim != 3 or rgb.shape[-1] not in (3, 4)):
        raise MaskError(
            f"{_where(source)}expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )

    def unknown(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.asarray(b)
        if grey:
            g = _grey_values(b, source)
            lut = _grey_lut(classmap.colors, tol)
            miss = np.iinfo(lut.dtype).max
            inside = (g >= 0) & (g <= 255)
            out = np.full(g.shape, miss, lut.dtype)
            out[inside] = lut[g[inside].astype(np.intp)]
            return _unique_counts(g[out == miss])
        keys = _pack(_opaque_rgb(b, source))
        lut = _color_lut(classmap.colors, tol)
        return _unique_counts(keys[lut[keys] == np.iinfo(lut.dtype).max])

    if _is_dask(rgb):
        keys, counts = _blockwise_counts(rgb if grey else rgb.rechunk({2: -1}), unknown)
    else:
        keys, counts = unknown(np.asarray(rgb))
    if len(keys):
        raise MaskError(_unknown_message(keys, counts, classmap, source, grey=grey, tolerance=tol))


def _dask_minmax(arr: Any) -> tuple[int, int]:
    import dask

    lo, hi = dask.compute(arr.min(), arr.max())
    return int(lo), int(hi)


def labels_to_rgb(labels: Any, classmap: ClassMap) -> Any:
    """``(H, W, 3)`` uint8 colour mask of class-index labels.

    Parameters
    ----------
    labels
        Integer (or boolean) labels, NumPy or dask (coloured chunk by chunk).
    classmap
        The colours of the classes.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``classmap.lut()[labels]``.

    Raises
    ------
    MaskError
        If a label value has no class (the message lists the values); for
        dask input at compute time.
    """
    if _is_dask(labels):
        return labels.map_blocks(
            _labels_block_to_rgb,
            classmap,
            new_axis=labels.ndim,
            chunks=(*labels.chunks, (3,)),
            dtype=np.uint8,
        )
    return _labels_block_to_rgb(np.asarray(labels), classmap)


def check_label_range(arr: np.ndarray, cm: ClassMap) -> None:
    """Raise :class:`MaskError` listing label values (up to 10) that have no class."""
    arr = np.asarray(arr)
    if not arr.size:
        return
    if arr.dtype == bool:
        if cm.n_classes < 2 and arr.any():
            raise MaskError(
                f"label values [1] have no class in the class map ({cm.n_classes} classes)"
            )
        return
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= cm.n_classes:
        bad = np.unique(arr[(arr < 0) | (arr >= cm.n_classes)])
        shown = bad[:10].tolist()
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise MaskError(
            f"label values {shown}{more} have no class in the class map ({cm.n_classes} classes)"
        )


def check_same_shape(
    mask_shape: Sequence[int],
    slide_shape: Sequence[int],
    *,
    mask_name: str = "mask",
    slide_name: str = "slide",
) -> None:
    """Raise :class:`MaskError` if the mask's (H, W) differs from the slide's.

    Parameters
    ----------
    mask_shape, slide_shape
        NumPy shapes; only the first two axes (height, width) are compared.
    mask_name, slide_name
        Names (files) for the message, which gives both sizes as
        width x height and as NumPy shapes.
    """
    mh, mw = int(mask_shape[0]), int(mask_shape[1])
    sh, sw = int(slide_shape[0]), int(slide_shape[1])
    if (mh, mw) != (sh, sw):
        raise MaskError(
            f"{mask_name} is {mw} x {mh} (width x height; shape {tuple(mask_shape)}) "
            f"but {slide_name} is {sw} x {sh} (shape {tuple(slide_shape)}); "
            "a mask must have the size of the slide's full-resolution level"
        )


# -----------------------------------------------------------------------------
# files
# -----------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    """Decode a PNG/TIFF/other raster fully (tifffile for TIFF, imagecodecs, then Pillow)."""
    from ..sniff import raster_header, sniff_kind

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise MaskError(f"{path}: the file is empty (0 bytes)")
    kind = sniff_kind(str(path))
    if kind == "zarr":
        raise MaskError(f"{path}: is a zarr store, not an image")
    if kind == "tiff":
        import tifffile

        try:
            arr = np.asarray(tifffile.imread(path))
        except Exception as exc:
            raise MaskError(
                f"{path}: cannot be read as a TIFF ({type(exc).__name__}: {exc})"
            ) from exc
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
            arr = np.moveaxis(arr, 0, -1)  # planar RGB(A)
        return arr
    import imagecodecs

    try:
        return np.asarray(imagecodecs.imread(str(path)))
    except Exception as first:
        from PIL import Image

        from ..slide import pil_pixel_limit

        try:
            pixels = raster_header(str(path)).pixels if kind in ("png", "jpeg") else 0
        except (OSError, ValueError):
            pixels = 0
        try:
            with pil_pixel_limit(pixels), Image.open(path) as im:
                if im.mode in ("P", "PA"):
                    im = im.convert(
                        "RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB"
                    )
                elif im.mode == "1":
                    im = im.convert("L")
                return np.asarray(im)
        except Exception as exc:
            raise MaskError(
                f"{path}: cannot be read as an image ({type(first).__name__}: {first}; "
                f"Pillow: {exc})"
            ) from exc


def _channels(arr: np.ndarray, source: str) -> np.ndarray:
    """2D grey or ``(H, W, 3)`` colours; opaque alpha dropped, transparency refused."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        alpha = arr[..., -1]
        opaque = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else 1
        clear = int(np.count_nonzero(alpha != opaque))
        if clear:
            raise MaskError(
                f"{source}: mask has {clear} pixel(s) that are not fully opaque "
                "(alpha channel); save it without transparency"
            )
        arr = arr[..., 0] if arr.shape[-1] == 2 else arr[..., :3]
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3):
        return arr
    raise MaskError(f"{source}: a mask must be 2D (grey) or RGB, got shape {arr.shape}")


def read_color_mask(
    path: str | os.PathLike,
    classmap: ClassMap | None = None,
    *,
    tolerance: float | None = None,
    min_share: float = MIN_CLASS_SHARE,
) -> tuple[np.ndarray, ClassMap]:
    """Read a colour mask or a grey mask (PNG, TIFF, ...) as class labels.

    Parameters
    ----------
    path
        The image. TIFF is read with tifffile, other formats with imagecodecs
        (Pillow as a fallback, its pixel limit raised for this file only).
    classmap
        The colours to map from. When omitted: the smallest preset holding
        all the mask's colours, else a map inferred from them
        (:meth:`ClassMap.infer`).
    tolerance
        Opt-in nearest-colour tolerance for JPEG-compressed masks.
    min_share
        When the map is inferred: colours under this share of the pixels are
        refused rather than made classes (:meth:`ClassMap.infer`); ``0``
        makes every colour a class.

    Returns
    -------
    labels, classmap
        ``(H, W)`` labels in ``classmap.label_dtype`` (uint8 up to 256 classes)
        and the class map used.

    Notes
    -----
    Grey masks (2D):

    * values in {0, 255} without a class map: the ``binary`` preset
      (0 -> background, 255 -> foreground), like GlaS masks;
    * other small integers ``0..n`` without a class map: returned as labels
      with :meth:`ClassMap.default` ``(n + 1)``;
    * with a class map of grey colours (like ``binary``): grey value ``v`` is
      the class of colour ``(v, v, v)``, unless the values are not all such
      colours but all below ``n_classes``, when they are class indices;
    * with any other class map: class indices.

    Raises
    ------
    MaskError
        Naming the file: unreadable, transparent, wrong shape, unknown colours
        (listed with pixel counts) or label values without a class.
    """
    p = Path(path)
    src = str(p)
    if not p.exists():
        raise MaskError(f"{src}: no such file")
    if p.is_dir():
        raise MaskError(f"{src}: is a directory, not a mask image")
    from ..sniff import special_file_kind

    special = special_file_kind(p)
    if special is not None:
        raise MaskError(f"{src}: is a {special}, not a regular file; it is not opened")
    arr = _channels(_read_image(p), src)
    if arr.ndim == 3:
        arr = _as_uint8(arr, src)
        cm = (
            classmap
            if classmap is not None
            else ClassMap.infer(arr, source=src, tolerance=tolerance, min_share=min_share)
        )
        return rgb_to_labels(arr, cm, tolerance=tolerance, source=src), cm
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise MaskError(f"{src}: a grey mask holds integers, not {arr.dtype}")
    if arr.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        values = np.unique(arr)
    if classmap is None:
        if set(values.tolist()) <= {0, 255}:
            cm = PRESETS["binary"]
            return (arr == 255).astype(cm.label_dtype), cm
        if values[0] < 0:
            raise MaskError(f"{src}: grey mask has negative values ({int(values[0])})")
        top = int(values[-1])
        if top >= MAX_CLASSES:
            raise MaskError(
                f"{src}: grey mask has values up to {top}; a class-index mask holds at most "
                f"{MAX_CLASSES} classes"
            )
        cm = ClassMap.default(top + 1)
        return arr.astype(cm.label_dtype), cm
    if _is_grey_map(classmap):
        greys = {c[0] for c in classmap.colors}
        as_index = (
            tolerance is None
            and not set(values.tolist()) <= greys
            and values[0] >= 0
            and values[-1] < classmap.n_classes
        )
        if not as_index:
            return rgb_to_labels(arr, classmap, tolerance=tolerance, source=src), classmap
    return _index_block(arr, classmap, src), classmap


def is_color_mask(
    path: str | os.PathLike, max_colors: int = 16, max_pixels: int = SNIFF_MAX_PIXELS
) -> ClassMap | None:
    """The preset that ``path`` is a colour mask of, else ``None``; never raises.

    A cheap sniff for readers: images above ``max_pixels`` are not decoded,
    JPEGs and lossy TIFFs are never masks (their colours are not exact), and
    unreadable files give ``None``. An RGB image is a mask when all its
    colours (at least 2, at most ``max_colors``) belong to one preset, but
    for stray pixels of other colours under :data:`MIN_CLASS_SHARE` (reading
    such a mask then lists them as an error instead of it opening as a
    photo); a grey
    image when its values are exactly {0, 255} (``binary``).

    Parameters
    ----------
    path
        The image file.
    max_colors
        Most distinct colours a mask may have.
    max_pixels
        Larger images are not read (``None``).

    Returns
    -------
    ClassMap or None
        The smallest matching preset.
    """
    try:
        from ..sniff import raster_header, sniff_kind

        p = Path(path)
        if not p.is_file():
            return None
        kind = sniff_kind(str(p))
        if kind == "jpeg":
            return None
        if kind == "png":
            if raster_header(str(p)).pixels > max_pixels:
                return None
        elif kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                page = tif.pages.first
                lossy = int(page.compression) in (6, 7, 33003, 33004, 33005, 34712, 50001, 50002)
                if lossy or page.imagewidth * page.imagelength > max_pixels:
                    return None
        else:
            from PIL import Image

            with Image.open(p) as im:  # header only
                if im.format == "JPEG" or im.size[0] * im.size[1] > max_pixels:
                    return None
        arr = _read_image(p)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.dtype != np.uint8:
            return None
        if arr.ndim == 3 and arr.shape[-1] in (2, 4):
            if (arr[..., -1] != 255).any():
                return None
            arr = arr[..., 0] if arr.shape[-1] == 2 else arr[..., :3]
        if arr.ndim == 2:
            values = set(np.flatnonzero(np.bincount(arr.ravel(), minlength=256)).tolist())
            return PRESETS["binary"] if values == {0, 255} else None
        if arr.ndim != 3 or arr.shape[-1] != 3:
            return None
        palette = tuple(sorted({c for cm in PRESETS.values() for c in cm.colors}))
        lut = _color_lut(palette, None)
        miss = np.iinfo(lut.dtype).max
        if (lut[_pack(arr[::7, ::7])] == miss).mean() > MIN_CLASS_SHARE:  # photos fail here
            return None
        idx = lut[_pack(arr)]
        stray = idx == miss
        if stray.any():
            # A few stray pixels in a preset's mask: claim it, so that reading it says
            # which colours are not in the palette instead of showing it as a photo.
            if stray.mean() >= MIN_CLASS_SHARE:
                return None
            idx = idx[~stray]
        present = np.flatnonzero(np.bincount(idx.ravel(), minlength=len(palette)))
        if not 2 <= len(present) <= max_colors:
            return None
        return ClassMap.match_preset([palette[i] for i in present])
    except Exception:
        return None
