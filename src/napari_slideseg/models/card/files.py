"""``slideseg.json`` on disk: reading (validated, weights hashed) and writing (atomic)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from ...io.files import atomic_path
from .model import ModelCard
from .schema import CARD, CheckpointError
from .summary import card_readme

logger = logging.getLogger(__name__)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def read_card(
    path: str | os.PathLike, weights: str = "model.safetensors", *, hash_weights: bool = True
) -> ModelCard:
    """The card of a checkpoint folder, validated (clear error if missing or broken).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder.
    weights : str
        Its weights file, hashed into ``weights_sha256``.
    hash_weights : bool
        False skips hashing the weights (``weights_sha256`` stays ``None``,
        so :meth:`ModelCard.digest` is not the content digest): for callers
        that only show the card, such as a widget refreshing its fields.

    Returns
    -------
    ModelCard
        The card, with ``source`` the resolved folder.

    Raises
    ------
    CheckpointError
        For a missing path, a file, a folder without a card, or a card that is
        not valid JSON or not a valid card.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint")
    if p.is_file():
        raise CheckpointError(
            f"{p}: a checkpoint is a folder (model.safetensors + config.json + slideseg.json); "
            "pickled .pt/.pth files are not loaded"
        )
    card_path = p / CARD
    if not card_path.exists():
        raise CheckpointError(
            f"{p}: has no model card ({CARD}); it was not written by napari-slideseg"
        )
    try:
        doc = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{card_path}: model card is not valid JSON ({exc})") from exc
    card = ModelCard.from_dict(doc, source=p.resolve())
    w = p / weights
    if hash_weights and w.exists():
        return card.replace(weights_sha256=sha256_file(w))
    if hash_weights:
        logger.debug("%s: no %s to hash: the card has no content digest", p, weights)
    return card


def write_card(path: str | os.PathLike, card: ModelCard) -> None:
    """Write ``card`` (and the human-readable README) into the folder ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder (it exists).
    card : ModelCard
        The card written as ``slideseg.json``; ``README.md`` is rendered from it.
    """
    p = Path(path)
    for name, text in (
        (CARD, json.dumps(card.to_dict(), indent=2, default=str)),
        ("README.md", card_readme(card)),
    ):
        with atomic_path(p / name) as tmp:
            tmp.write_text(text)
