"""Fine-tune a model on corrected labels: patches, a short training run, a re-prediction.

The parent model is never changed: the new version is a new checkpoint in
``out/model/best`` whose card records the parent (name, digest) and the
corrections it learnt from. ``out/finetune.json`` is written last, with
``complete: true``; a cancelled or failed run leaves a folder without it,
which is never taken for a finished one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..progress import Progress
from .config import FinetuneConfig, FinetuneError
from .patches import cut_patches_steps

#: Written last into the output folder; ``complete`` says the run finished.
RECORD = "finetune.json"


@dataclass
class FinetuneResult:
    """What a fine-tuning run made.

    Attributes
    ----------
    out : Path
        The run folder.
    checkpoint : Path
        The new model (``out/model/best``).
    parent : dict
        The fine-tuned model's ``path``, ``name`` and ``digest``.
    patches : dict
        Corrected and replay patch counts, the grown regions.
    history : list of dict
        The training run's metrics per epoch.
    repredicted : Path or None
        The new model's prediction of the corrected regions' bounding box.
    view : Path or None
        Its prediction of the view the user asked for (``view=``).
    """

    out: Path
    checkpoint: Path
    parent: dict[str, Any]
    patches: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    repredicted: Path | None = None
    view: Path | None = None


def _check_out(out: str | os.PathLike) -> Path:
    p = Path(out)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise FinetuneError(
            f"{p}: already exists and is not an empty folder; fine-tuning writes a new model "
            "into a new folder (choose another --out)"
        )
    return p


def train_config(card: Any, manifests: list[str], out: Path, config: FinetuneConfig) -> Any:
    """The parent's own training config, turned into a short low-rate run from its weights.

    Parameters
    ----------
    card : ModelCard
        The parent's card (read from its folder: ``source`` set).
    manifests : list of str
        The corrected and replay patch folders.
    out : Path
        The training run's folder.
    config : FinetuneConfig
        Epochs, rate factor, batch size, steps, device.

    Returns
    -------
    TrainConfig
    """
    from ..train import TrainConfig

    base = dict((card.training or {}).get("config") or {})
    for k in ("fold", "patience", "val_manifests", "resume", "name"):
        base.pop(k, None)
    if not base:
        base = {"arch": card.arch, "encoder": card.encoder, "kind": card.kind}
    n = int(config.batch_size or base.get("batch_size") or 8)
    base.update(
        manifests=manifests,
        out=str(out),
        val_fraction=config.val_fraction,
        split_by="patch",
        encoder_weights=None,
        init_from=str(card.source),
        lr=float(base.get("lr") or 1e-3) * config.lr_factor,
        epochs=config.epochs,
        batch_size=n,
        max_steps=config.max_steps,
        device=config.device,
        threads=config.threads,
        seed=config.seed,
        name=f"{card.name or Path(str(card.source)).name}-finetuned",
        mixed_mpp=True,
        num_workers=0,
    )
    if config.augment is not None:
        base["augment"] = config.augment
    return TrainConfig.from_dict(base)


def finetune_steps(
    slide: Any,
    labels: Any,
    regions: Sequence[Sequence[int]],
    model: str | os.PathLike,
    out: str | os.PathLike,
    config: FinetuneConfig | None = None,
    *,
    level: int = 0,
    zoom: float = 1.0,
    types: Any = None,
    provenance: dict[str, Any] | None = None,
    infer_config: Any = None,
    view: Sequence[int] | None = None,
) -> Generator[Progress, None, FinetuneResult]:
    """Fine-tune ``model`` on ``labels`` around ``regions``; a generator of progress events.

    Parameters
    ----------
    slide : Slide
        The slide the labels belong to.
    labels : array-like
        Corrected labels at ``level`` (the prediction with the user's fixes).
    regions : sequence of (y0, x0, y1, x1)
        Where the user corrected, in pixels of ``level``.
    model : str or os.PathLike
        The model the prediction came from (checkpoint folder or bundled name).
    out : str or os.PathLike
        A new (or empty) folder for the run.
    config : FinetuneConfig, optional
        The options (defaults: 3 epochs at a tenth of the parent's rate).
    level, zoom : int, float
        The prediction's level and zoom (patches get the model's µm/px).
    types : array-like, optional
        HoVer: the nucleus types beside ``labels``.
    provenance : dict, optional
        What the corrections were (prediction, versions): kept on the new card.
    infer_config : InferConfig, optional
        The prediction's settings, for the re-prediction (region replaced).
    view : (y0, x0, y1, x1), optional
        A region of ``level`` (what napari shows) also predicted with the new
        model, into ``out/view.zarr`` (clipped to the level).

    Yields
    ------
    Progress
        From cutting patches, training and re-predicting.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    FinetuneError
        For an ``out`` that is not new, no corrected region, no patch.
    """
    from ..models.bundled import resolve_model
    from ..models.card import read_card
    from ..train import train_steps

    config = config or FinetuneConfig()
    root = _check_out(out)
    parent_dir = resolve_model(os.fspath(model))
    card = read_card(parent_dir)
    root.mkdir(parents=True, exist_ok=True)
    patches = yield from cut_patches_steps(
        slide, labels, regions, root / "patches", card, config, level=level, zoom=zoom, types=types
    )
    tcfg = train_config(card, patches["manifests"], root / "model", config)
    trained = yield from train_steps(tcfg)
    best = root / "model" / "best"
    if not (best / "slideseg.json").exists():
        best = root / "model" / "last"
    parent = {"path": str(parent_dir), "name": card.name, "digest": card.digest()}
    _stamp_card(best, parent, patches, provenance)
    repredicted = seen = None
    if config.repredict:
        boxes = patches["regions"]
        union = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        args = (slide, best, level, infer_config, config)
        repredicted = yield from _repredict(*args, union, root / "repredicted.zarr")
        box = _clipped(view, slide.levels[level].shape[:2]) if view is not None else None
        if box is not None:
            seen = yield from _repredict(*args, box, root / "view.zarr")
    result = FinetuneResult(root, best, parent, patches, trained.history, repredicted, seen)
    _write_record(root, result, config, provenance)
    return result


def _stamp_card(best: Path, parent: dict, patches: dict, provenance: dict[str, Any] | None) -> None:
    """Record the parent and the corrections on the new model's card (its digest is unchanged)."""
    import dataclasses

    from ..models.card import read_card, write_card

    card = read_card(best)
    training = dict(card.training)
    training["finetune"] = {"parent": parent, "patches": patches, "corrections": provenance}
    write_card(best, dataclasses.replace(card, training=training))


def _clipped(view: Sequence[int], shape: Sequence[int]) -> tuple[int, int, int, int] | None:
    """``view`` as integers inside a level of ``shape``; None when nothing of it is inside."""
    try:
        y0, x0, y1, x1 = (round(float(v)) for v in view)
    except (TypeError, ValueError):
        raise FinetuneError(f"view is (y0, x0, y1, x1), not {view!r}") from None
    y0, x0 = max(0, y0), max(0, x0)
    y1, x1 = min(int(shape[0]), y1), min(int(shape[1]), x1)
    return (y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None


def _repredict(
    slide: Any,
    model: Path,
    level: int,
    infer_config: Any,
    config: FinetuneConfig,
    region: tuple[int, int, int, int],
    out: Path,
) -> Generator[Progress, None, Path]:
    """The new model's prediction of ``region`` (level pixels) into ``out``."""
    import dataclasses

    from ..infer import InferConfig, predict_slide_steps

    base = infer_config if infer_config is not None else InferConfig(level=level)
    cfg = dataclasses.replace(
        base, region=tuple(region), roi=None, device=config.device, threads=config.threads
    )
    yield from predict_slide_steps(slide, str(model), out, cfg)
    return out


def _write_record(
    root: Path, result: FinetuneResult, config: FinetuneConfig, provenance: Any
) -> None:
    from ..io.files import write_text_atomic

    record = {
        "complete": True,
        "checkpoint": str(result.checkpoint),
        "parent": result.parent,
        "patches": result.patches,
        "config": config.to_dict(),
        "corrections": provenance,
        "repredicted": str(result.repredicted) if result.repredicted else None,
        "view": str(result.view) if result.view else None,
        "history": result.history,
    }
    write_text_atomic(root / RECORD, json.dumps(record, indent=2, default=str))
