"""Human-readable and provenance summaries of cards (README.md, prediction metadata)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .model import ModelCard


def card_readme(card: ModelCard) -> str:
    """A human-readable model card (README.md of a checkpoint).

    Parameters
    ----------
    card : ModelCard
        The card.

    Returns
    -------
    str
        Markdown text.
    """
    cm = card.classmap
    norm = card.normalization
    lines = [
        f"# {card.display_name}",
        "",
        f"- kind: {card.kind}",
        f"- architecture: {card.arch} with encoder {card.encoder}",
        f"- input: {card.in_channels} channels, patches of {card.patch_size} px"
        + (f" at {card.mpp:g} µm/px" if card.mpp else " (resolution unknown)"),
        f"- classes: {', '.join(cm.names)} ({card.activation})",
        f"- normalisation: mean {list(norm.mean)}, std {list(norm.std)}",
    ]
    weights = card.training.get("encoder_weights") if card.training else None
    if isinstance(weights, Mapping) and weights.get("name"):
        lines.append(
            f"- encoder initialised from: {weights['name']} (sha256 {weights.get('sha256')}, "
            f"{weights.get('layout')} layout)"
        )
    if card.license:
        lines.append(f"- licence: {card.license}")
    if card.training_data:
        lines.append(f"- training data: {card.training_data}")
    if card.metrics:
        lines.append(f"- saved epoch (validation patches): {json.dumps(dict(card.metrics))}")
    if card.validation_metrics:
        lines.append(
            f"- validation images (whole images, own split): "
            f"{json.dumps(dict(card.validation_metrics))}"
        )
    lines.append(
        f"- held-out test: {json.dumps(dict(card.held_out_metrics))}"
        if card.held_out_metrics
        else "- held-out test: none recorded (`slideseg pack --metrics` adds figures on test "
        "images that no choice of epoch or threshold saw)"
    )
    if card.description:
        lines += ["", str(card.description)]
    if card.reproduce:
        lines += ["", "Reproduce (CPU):", "", "```bash", str(card.reproduce), "```"]
    lines += [
        "",
        "Load with `napari_slideseg.models.load_model(path)` (safetensors + JSON, no pickle).",
    ]
    return "\n".join(lines) + "\n"


def cards_summary(cards: Sequence[ModelCard]) -> list[dict[str, Any]]:
    """Cards as JSON for a prediction's provenance (with source and digest).

    Parameters
    ----------
    cards : sequence of ModelCard
        The models of a prediction.

    Returns
    -------
    list of dict
        Each card's :meth:`~ModelCard.to_dict` plus ``source`` and ``digest``.
    """
    return [{**c.to_dict(), "source": c.source, "digest": c.digest()} for c in cards]
