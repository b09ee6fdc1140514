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
    (255,255,0). Kept in :data:`NUCLEUS_PRESETS`, apart from
    :data:`PRESETS`, whose palettes decide which colour images are masks.

This module is core: it never imports Qt, napari or magicgui.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .colors import default_colors
from .common import MAX_CLASSES, MIN_CLASS_SHARE, RGB, MaskError
from .fields import as_int, checked_fields
from .infer import infer_classmap
from .json_io import classmap_from_dict, classmap_to_dict, load_classmap_json, save_classmap_json


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
        names, colors, background, name = checked_fields(
            self.names, self.colors, self.background, self.name
        )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", colors)
        object.__setattr__(self, "background", background)
        object.__setattr__(self, "name", name)

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
        """The colour table of the classes.

        Returns
        -------
        numpy.ndarray
            ``(n_classes, 3)`` uint8 colours indexed by label value.
        """
        return np.asarray(self.colors, np.uint8).reshape(-1, 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form of the map.

        Returns
        -------
        dict
            ``{"version", "name", "names", "colors", "background"}``.
        """
        return classmap_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | os.PathLike | None = None) -> ClassMap:
        """Rebuild a map written by :meth:`to_dict`.

        Parameters
        ----------
        d
            The mapping (``names`` and ``colors`` are required).
        source
            File the mapping came from, for error messages.

        Returns
        -------
        ClassMap
            The map.

        Raises
        ------
        MaskError
            Naming ``source`` and the problem (missing keys, bad values,
            newer format version).
        """
        return classmap_from_dict(cls, d, source)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the map as JSON, atomically (:func:`~napari_slideseg.io.files.atomic_path`).

        Parameters
        ----------
        path
            Destination file.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        IsADirectoryError
            If ``path`` is a folder.
        OSError
            If the file cannot be written.
        """
        return save_classmap_json(self, path)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> ClassMap:
        """Read a map written by :meth:`save_json`.

        Parameters
        ----------
        path
            The JSON file.

        Returns
        -------
        ClassMap
            The map.

        Raises
        ------
        MaskError
            Naming the file, if it is missing, unreadable, not JSON or not a class map.
        """
        return load_classmap_json(cls, path)

    # -- presets and defaults ------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> ClassMap:
        """A named preset: ``binary``, ``wsi3`` or ``biopsy6`` (see :data:`PRESETS`).

        Parameters
        ----------
        name
            The preset's name (case and surrounding spaces do not matter);
            :data:`NUCLEUS_PRESETS` names (``consep4``) are accepted too.

        Returns
        -------
        ClassMap
            The preset.

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

        Returns
        -------
        ClassMap
            The map (its ``name`` is ``""``).

        Raises
        ------
        MaskError
            If ``n`` is not an integer in 1..65536 or ``names`` has not ``n`` names.
        """
        n = as_int(n, "the number of classes")
        if not 1 <= n <= MAX_CLASSES:
            raise MaskError(f"a class map holds 1 to {MAX_CLASSES} classes, not {n}")
        colors = default_colors(n)
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
        return infer_classmap(
            cls,
            rgb,
            max_classes,
            background,
            source,
            match_presets=match_presets,
            min_share=min_share,
            tolerance=tolerance,
        )

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
