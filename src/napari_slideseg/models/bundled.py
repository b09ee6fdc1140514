"""Models trained by this project and shipped inside the package.

Each lives in ``napari_slideseg/data/models/<name>/`` as a normal checkpoint
folder (safetensors + config + model card). :func:`bundled_models` lists
them so the CLI (``--model glas-gland``) and the Inference widget can offer
them by name.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

from .card import CARD, CheckpointError

logger = logging.getLogger(__name__)


def bundled_dir() -> Path:
    """The folder holding the bundled checkpoints.

    Returns
    -------
    Path
        ``napari_slideseg/data/models`` of this install.
    """
    return Path(str(files("napari_slideseg") / "data" / "models"))


def bundled_models() -> dict[str, Path]:
    """``{name: checkpoint folder}`` of the bundled models (sorted by name).

    Returns
    -------
    dict of str to Path
        Each folder of :func:`bundled_dir` that holds a model card; empty
        (logged) when the folder is missing from the install.
    """
    root = bundled_dir()
    if not root.is_dir():
        logger.warning("%s: the bundled models folder is missing from this install", root)
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CARD).exists()}


def resolve_model(name_or_path: str) -> Path:
    """A checkpoint folder from a path or the name of a bundled model.

    Parameters
    ----------
    name_or_path : str
        An existing path (``~`` expanded), or a bundled model's name.

    Returns
    -------
    Path
        The checkpoint folder.

    Raises
    ------
    CheckpointError
        When it is neither, naming the bundled models.
    """
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    bundled = bundled_models()
    if name_or_path in bundled:
        return bundled[name_or_path]
    known = ", ".join(bundled) or "none"
    raise CheckpointError(
        f"{name_or_path}: no such checkpoint folder, and not a bundled model (bundled: {known})"
    )
