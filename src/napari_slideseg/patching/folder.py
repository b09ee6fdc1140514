"""The patch folder of a run: reusing it, knowing whether it holds patches, clearing it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .config import PatchError
from .manifest import MANIFEST

#: What a previous run leaves in its folder (removed by ``overwrite="overwrite"``).
RUN_FILES = (
    "images",
    "masks",
    "types",
    "patches.zarr",
    MANIFEST,
    "run.json",
    "classmap.json",
)


def reuse_folder(out: Path, overwrite: str, digest: str) -> None:
    """Apply ``overwrite`` to a non-empty ``out``: refuse, check it resumes, or clear it.

    Parameters
    ----------
    out : Path
        The patch folder; not empty.
    overwrite : str
        ``"error"``, ``"skip"`` or ``"overwrite"``.
    digest : str
        The new run's config hash, compared with ``run.json``'s for ``skip``.

    Raises
    ------
    PatchError
        ``error``, or ``skip`` of a folder holding a different run.
    """
    run_file = out / "run.json"
    previous = json.loads(run_file.read_text()) if run_file.exists() else None
    if overwrite == "error":
        raise PatchError(
            f"{out}: folder is not empty; pass overwrite='skip' (--overwrite skip) to "
            "resume the same run or overwrite='overwrite' (--overwrite overwrite) to replace it"
        )
    if overwrite == "skip" and (previous is None or previous.get("config_hash") != digest):
        raise PatchError(
            f"{out}: holds a different patch run (other slide, mask or settings); "
            "'skip' only resumes the same run: use another folder or overwrite='overwrite' "
            "(--overwrite overwrite)"
        )
    if overwrite == "overwrite":
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def has_patches(out: Path) -> bool:
    """Whether a patch folder holds any patch file yet.

    Parameters
    ----------
    out : Path
        The patch folder.

    Returns
    -------
    bool
        A PNG under ``images/``, ``masks/`` or ``types/``, or a zarr chunk.
    """
    for sub in ("images", "masks", "types"):
        d = out / sub
        if d.is_dir() and any(p.suffix == ".png" for p in d.iterdir()):
            return True
    z = out / "patches.zarr"
    return z.exists() and any(z.rglob("c/*"))


def clear_failed(out: Path, made: bool) -> None:
    """Leave nothing of a run that failed before its first patch.

    Parameters
    ----------
    out : Path
        The patch folder.
    made : bool
        The run created ``out``: remove it; else empty it.
    """
    if made:
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in list(out.iterdir()):
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
