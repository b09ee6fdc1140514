"""CSV plumbing shared by the RLE CSV layouts: opening, reading rows, atomic writing, memory."""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from ..files import atomic_path
from .checks import RLEError

#: Fraction of the available memory one decoded RLE label image may take.
MEMORY_FRACTION = 0.7


@contextlib.contextmanager
def big_fields() -> Iterator[None]:
    """Let the csv module read fields as long as a slide's RLE string.

    Yields
    ------
    None
        While the block runs; the old field size limit is restored after it.
    """
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


@contextlib.contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` only if the block succeeds.

    Parameters
    ----------
    path
        The output file.

    Yields
    ------
    typing.IO
        A UTF-8 text file (``newline=""``, for :mod:`csv`) open on a
        temporary sibling of ``path`` (:func:`~napari_slideseg.io.files.atomic_path`);
        removed if the block raises.

    Raises
    ------
    OSError
        ``path`` is an existing folder (``IsADirectoryError`` on Linux, at
        the end, as a plain rename onto it would): a file never replaces a
        folder.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            yield fh
        if path.is_dir() and not path.is_symlink():
            # replace_path would set the folder aside and delete it; the plain
            # rename refuses, and atomic_path then removes the temporary.
            os.replace(tmp, path)


def open_csv(path: Path) -> IO[str]:
    """Open a CSV file for reading (UTF-8, an optional byte-order mark).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    typing.IO
        The open text file, for :func:`csv.reader`.

    Raises
    ------
    RLEError
        ``path`` does not exist or is not a regular file.
    """
    if not path.exists():
        raise RLEError("no such file", source=path)
    if not path.is_file():
        raise RLEError("is not a regular file (a directory, pipe or device)", source=path)
    return open(path, newline="", encoding="utf-8-sig")


def _available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def check_alloc(h: int, w: int, itemsize: int) -> None:
    """Refuse a ``(h, w)`` label image that would not fit in memory (before allocating it).

    Parameters
    ----------
    h, w
        Image height and width.
    itemsize
        Bytes per pixel.

    Raises
    ------
    RLEError
        The image would take more than :data:`MEMORY_FRACTION` of the
        available memory.
    """
    need = h * w * itemsize
    avail = _available_memory()
    if need > MEMORY_FRACTION * avail:
        raise RLEError(
            f"a {h} x {w} label image needs {need / 2**30:.1f} GiB, more than "
            f"{MEMORY_FRACTION:.0%} of the {avail / 2**30:.1f} GiB of memory available; "
            "check the height and width columns"
        )


def _decode_error_row(path: Path) -> tuple[int, str]:
    """1-based data row (0: the header) and the bytes where ``path`` stops being UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        return data.count(b"\n", 0, start), data[start : start + 4].hex(" ")
    return 0, ""


def csv_rows(fh: IO[str], path: Path) -> Iterator[list[str]]:
    """``csv.reader`` rows whose decoding errors become :class:`RLEError` naming the row.

    Parameters
    ----------
    fh
        The file from :func:`open_csv`.
    path
        Its path, for the messages.

    Yields
    ------
    list of str
        The fields of each row, the header first.

    Raises
    ------
    RLEError
        Bytes that are not UTF-8 (naming the data row and the bytes) or a
        malformed CSV row.
    """
    rd = csv.reader(fh)
    while True:
        try:
            rec = next(rd)
        except StopIteration:
            return
        except UnicodeDecodeError:
            row, raw = _decode_error_row(path)
            raise RLEError(
                f"is not UTF-8 text (bytes {raw} cannot be decoded; save the file as UTF-8)",
                source=path,
                row=row or None,
            ) from None
        except csv.Error as exc:
            raise RLEError(f"is not a readable CSV ({exc})", source=path, row=rd.line_num) from None
        yield rec


def find_column(header: list[str], names: Sequence[str]) -> int | None:
    """Index of the first of ``names`` in ``header`` (case and spaces ignored).

    Parameters
    ----------
    header
        The header row.
    names
        Lower-case column names, in order of preference.

    Returns
    -------
    int or None
        The column index, None when no name is in the header.
    """
    low = [h.strip().lower() for h in header]
    for name in names:
        if name in low:
            return low.index(name)
    return None


def read_rle_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read an RLE CSV's rows as raw strings, without decoding anything.

    Parameters
    ----------
    path
        Any CSV file with a header row.

    Returns
    -------
    list of dict
        One ``{column: text}`` per data row.

    Raises
    ------
    RLEError
        A missing or non-regular file, bytes that are not UTF-8, or a
        malformed CSV row.
    """
    path = Path(path)
    with big_fields(), open_csv(path) as fh:
        rows = csv_rows(fh, path)
        header = next(rows, None)
        if not header:
            return []
        return [dict(zip(header, r, strict=False)) for r in rows if r]
