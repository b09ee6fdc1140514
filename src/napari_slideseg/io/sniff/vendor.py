"""Vendor slide layouts from names and first bytes: DICOM files and folders, MIRAX, VMS.

Standard library only (the npe2 reader hooks ask these for every drop).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Index files of slides whose pixels live in other files (MIRAX, Hamamatsu VMS/VMU).
INDEX_SUFFIXES = (".mrxs", ".vms", ".vmu")
#: Suffixes of vendor slides only OpenSlide reads, or DICOM, that the reader claims.
VENDOR_SUFFIXES = (*INDEX_SUFFIXES, ".dcm", ".dicom", ".bif", ".svslide", ".czi")


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with the DICOM preamble (``DICM`` at byte 128).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with open(p, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def dicom_files(folder: str | os.PathLike, limit: int = 50) -> list[Path]:
    """The DICOM files directly inside ``folder`` among its first ``limit`` entries (sorted).

    Parameters
    ----------
    folder : str or os.PathLike
    limit : int
        Entries looked at (a DICOM series folder holds little else).

    Returns
    -------
    list of pathlib.Path
    """
    try:
        children = sorted(Path(folder).iterdir())[:limit]
    except OSError:
        return []
    return [c for c in children if is_dicom_file(c)]


def folder_index(folder: str | os.PathLike) -> Path | None:
    """The ``.mrxs``/``.vms``/``.vmu`` a folder stands for, or None.

    A folder holding exactly one such index (what a user drags from a file
    manager), or MIRAX's data folder (``Slidedat.ini`` inside) beside its
    ``<name>.mrxs``.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    pathlib.Path or None
    """
    path = Path(folder)
    try:
        inside = [c for c in path.iterdir() if c.suffix.lower() in INDEX_SUFFIXES and c.is_file()]
    except OSError:
        return None
    if len(inside) == 1:
        return inside[0]
    if (path / "Slidedat.ini").is_file():
        sibling = path.with_name(path.name + ".mrxs")
        if sibling.is_file():
            return sibling
    return None


def is_vendor_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a DICOM WSI series or a MIRAX/VMS slide folder.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    bool
    """
    return os.path.isdir(folder) and (bool(dicom_files(folder)) or folder_index(folder) is not None)
