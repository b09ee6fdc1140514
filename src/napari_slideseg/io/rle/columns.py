"""Columns of the package's RLE CSV files: layouts, header names, placement and colour fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks import RLEError

#: Columns of the semantic layout (one row per class).
SEMANTIC_COLUMNS = (
    "image_id",
    "class_index",
    "class_name",
    "height",
    "width",
    "order",
    "base",
    "rle",
)
#: Columns of the instance layout (one row per object): the semantic ones plus ``instance_id``.
INSTANCE_COLUMNS = (SEMANTIC_COLUMNS[0], "instance_id", *SEMANTIC_COLUMNS[1:])

#: Columns stating where the mask sits on its slide (written when known, before ``rle``).
PLACEMENT_COLUMNS = ("level", "slide_height", "slide_width", "mpp_y", "mpp_x")

#: Header names a reader accepts for each field (lower case, in order of preference).
COLUMN_NAMES = {
    "rle": ("rle", "predicted", "encodedpixels", "encoded_pixels", "annotation", "segmentation"),
    "id": ("image_id", "id", "imageid", "img_id", "img", "image"),
    "instance": ("instance_id", "object_id"),
    "class": ("class_index", "class_id", "classid"),
    "class_name": ("class_name",),
    "class_color": ("class_color",),
    "height": ("height",),
    "width": ("width",),
    "order": ("order",),
    "base": ("base",),
    "level": ("level",),
    "slide_height": ("slide_height",),
    "slide_width": ("slide_width",),
    "mpp_y": ("mpp_y",),
    "mpp_x": ("mpp_x",),
}

#: Largest instance id a row may state.
UINT64_MAX = 2**64 - 1
#: Largest height or width a row may state (also bounded by memory, see ``check_alloc``).
_MAX_SIDE = 2**31 - 1


def int_field(text: str, what: str, minimum: int = 0, maximum: int = _MAX_SIDE) -> int:
    """An integer field of a row, range-checked.

    Parameters
    ----------
    text
        The field.
    what
        Its name, for the message.
    minimum, maximum
        The allowed range (inclusive).

    Returns
    -------
    int
        The value.

    Raises
    ------
    RLEError
        Not an integer, or outside the range.
    """
    try:
        v = int(text.strip())
    except ValueError:
        raise RLEError(f"{what} {text!r} is not an integer") from None
    if v < minimum:
        raise RLEError(f"{what} {v} is below {minimum}")
    if v > maximum:
        raise RLEError(f"{what} {v} is above the largest allowed value {maximum}")
    return v


def placement_info(fields: Mapping[str, str], shape: tuple[int, int], path: Path) -> dict[str, Any]:
    """``level``, ``slide_shape`` and ``mpp`` (µm per mask pixel or None) from the placement columns.

    Parameters
    ----------
    fields
        The :data:`PLACEMENT_COLUMNS` fields of a row.
    shape
        The mask's ``(height, width)`` (unused; the columns state the slide's).
    path
        The file, for the message.

    Returns
    -------
    dict
        ``{"level": int, "slide_shape": (h, w) or None, "mpp": (y, x) or None}``.

    Raises
    ------
    RLEError
        A level, slide side or µm per pixel that cannot be read.
    """
    try:
        level = int_field(fields["level"], "level")
        sh, sw = fields["slide_height"], fields["slide_width"]
        slide = (
            (int_field(sh, "slide height", 1), int_field(sw, "slide width", 1))
            if sh and sw
            else None
        )
        my, mx = fields["mpp_y"], fields["mpp_x"]
        mpp = (float(my), float(mx)) if my and mx else None
    except (RLEError, ValueError) as err:
        raise RLEError(f"unreadable placement columns ({err})", source=path) from None
    return {"level": level, "slide_shape": slide, "mpp": mpp}


def placement_fields(placement: Any, shape: tuple[int, int]) -> list[Any]:
    """The :data:`PLACEMENT_COLUMNS` fields that state ``placement``.

    Parameters
    ----------
    placement
        A :class:`~napari_slideseg.io.placement.Placement`.
    shape
        The mask's ``(height, width)``; with the placement's factors it
        gives the slide's shape when the placement does not state it.

    Returns
    -------
    list
        ``[level, slide_height, slide_width, mpp_y, mpp_x]`` (µm per pixel
        empty when unknown).
    """
    slide = placement.slide_shape
    if slide is None:
        fy, fx = placement.factors
        slide = (round(shape[0] * fy), round(shape[1] * fx))
    mpp = placement.pixel_mpp
    return [
        int(placement.level),
        int(slide[0]),
        int(slide[1]),
        "" if mpp is None else repr(float(mpp[0])),
        "" if mpp is None else repr(float(mpp[1])),
    ]


def format_color(colors: Sequence[Sequence[int]], index: Any) -> str:
    """The ``class_color`` field of a class index.

    Parameters
    ----------
    colors
        RGB of each class index.
    index
        The row's class index (``""`` or None when it has none).

    Returns
    -------
    str
        ``"#rrggbb"``, or ``""`` when the index has no colour.
    """
    if index == "" or index is None or not 0 <= int(index) < len(colors):
        return ""
    r, g, b = (int(v) for v in colors[int(index)][:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def parse_color(text: str) -> tuple[int, int, int]:
    """Read a ``class_color`` field.

    Parameters
    ----------
    text
        ``"#rrggbb"`` (the ``#`` is optional).

    Returns
    -------
    tuple of int
        ``(r, g, b)``.

    Raises
    ------
    RLEError
        Not six hexadecimal digits.
    """
    t = text.strip().lstrip("#")
    if len(t) != 6:
        raise RLEError(f"class colour {text!r} is not #rrggbb")
    try:
        return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))
    except ValueError:
        raise RLEError(f"class colour {text!r} is not #rrggbb") from None
