"""Checkpoints and resume: the epoch's cards and weights, and optimiser state without pickle.

``last/training_state.safetensors`` holds the optimiser's tensors and the
torch RNG state; ``last/training_state.json`` its scalars, the scheduler,
the epoch, the best value so far and the history.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checks import TrainError
from .start import Run


@dataclass
class RunState:
    """Where a run stands: what resume restores and every epoch updates."""

    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    best_value: float = math.inf
    best_epoch: int = -1  # 0-based; -1 before the first epoch
    bad_epochs: int = 0


def json_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays (and the text of anything else).

    Parameters
    ----------
    o
        What :func:`json.dumps` cannot write.

    Returns
    -------
    Any
        A Python scalar, a list, or ``str(o)``.
    """
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none).

    Parameters
    ----------
    exc : BaseException
        The exception.

    Returns
    -------
    str
        One line for an error message.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def save_state(path: Path, optimizer: Any, scheduler: Any, extra: dict[str, Any]) -> None:
    """Write ``training_state.safetensors`` and ``training_state.json`` into ``path``.

    Parameters
    ----------
    path : Path
        The checkpoint folder (``last/``).
    optimizer : torch.optim.Optimizer
        Its state: tensors to safetensors, the rest to JSON.
    scheduler
        Its ``state_dict()`` goes to JSON (``None`` for no schedule).
    extra : dict
        More JSON keys (epoch, best value, history ...).
    """
    import torch
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    meta_state: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        meta_state[str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta_state[str(pid)][k] = v
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "training_state.safetensors"))
    doc = {
        "param_groups": sd["param_groups"],
        "state_scalars": meta_state,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        **extra,
    }
    (path / "training_state.json").write_text(json.dumps(doc, default=json_default))


def load_state(path: Path, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote: optimiser, scheduler and the torch RNG.

    Parameters
    ----------
    path : Path
        The checkpoint folder.
    optimizer : torch.optim.Optimizer
        Loaded in place.
    scheduler
        Loaded in place (when both it and the saved state exist).

    Returns
    -------
    dict
        The JSON document (with the ``extra`` keys).
    """
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path / "training_state.safetensors"))
    doc = json.loads((path / "training_state.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, scalars in doc["state_scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": doc["param_groups"]})
    if scheduler is not None and doc.get("scheduler") is not None:
        scheduler.load_state_dict(doc["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return doc


def resume_state(run: Run) -> RunState:
    """Load ``last/``'s weights and training state into the run; where it stands.

    Parameters
    ----------
    run : Run
        The started run (its model, optimiser and scheduler are loaded in place).

    Returns
    -------
    RunState
        The history and counters of the last finished epoch.

    Raises
    ------
    TrainError
        When there is no ``last/`` checkpoint, its weights do not fit the
        model, or its training state cannot be read.
    """
    from safetensors.torch import load_file

    cfg, last_dir = run.cfg, run.last_dir
    if not (last_dir / "training_state.json").exists():
        raise TrainError(f"{run.out}: nothing to resume (no last/ checkpoint)")
    weights_file = last_dir / "model.safetensors"
    try:
        run.model.load_state_dict(load_file(str(weights_file), device=str(run.device)))
    except (OSError, RuntimeError, ValueError) as exc:
        raise TrainError(
            f"{weights_file}: cannot resume from these weights ({first_line(exc)}); "
            "was the run started with another model (arch, encoder, classes)?"
        ) from None
    try:
        doc = load_state(last_dir, run.optimizer, run.scheduler)
        if cfg.scheduler == "cosine" and run.scheduler.T_max != cfg.epochs:
            # a resumed run given another epoch count anneals to its new last epoch
            run.scheduler.T_max = cfg.epochs
        start_epoch = int(doc["epoch"]) + 1
        best_value, best_epoch = float(doc["best_value"]), int(doc["best_epoch"])
        bad_epochs, history = int(doc["bad_epochs"]), list(doc["history"])
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrainError(
            f"{last_dir / 'training_state.json'}: not a usable training state "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from None
    return RunState(history, start_epoch, best_value, best_epoch, bad_epochs)


def epoch_card(run: Run, epoch: int, row: dict[str, Any]) -> Any:
    """The model card of an epoch's checkpoints.

    Parameters
    ----------
    run : Run
        The run.
    epoch : int
        0-based epoch.
    row : dict
        Its metrics row (all but ``seconds`` go on the card).

    Returns
    -------
    ModelCard
        With the training provenance and the epoch's metrics.
    """
    from ..models.card import new_card

    cfg, data = run.cfg, run.data
    return new_card(
        **run.card_base,
        name=cfg.name or run.out.name,
        hover=data.task.card_hover(data),
        training={
            "config": cfg.to_dict(),
            "epoch": epoch + 1,
            "train_patches": len(data.train_rows),
            "val_patches": len(data.val_rows),
            "slides": sorted({r["slide"] for _, r in data.rows}),
            "patch_mpp": data.folder_mpp,
            "encoder_weights": run.pretrained,
            "parent": run.parent,
            "normalization_source": data.norm_source,
        },
        metrics={k: v for k, v in row.items() if k != "seconds"},
    )


def save_epoch(
    run: Run, state: RunState, epoch: int, row: dict[str, Any], improved: bool, monitored: float
) -> None:
    """Checkpoint an epoch: ``best/`` when it improved, always ``last/`` and its training state.

    Parameters
    ----------
    run : Run
        The run.
    state : RunState
        Updated in place (best value and epoch, epochs without improvement).
    epoch : int
        0-based epoch.
    row : dict
        Its metrics row.
    improved : bool
        Whether ``monitored`` beat the best so far.
    monitored : float
        The epoch's value of the monitored metric.
    """
    from ..models.checkpoint import save_checkpoint

    card = epoch_card(run, epoch, row)
    if improved:
        state.best_value, state.best_epoch, state.bad_epochs = monitored, epoch, 0
        save_checkpoint(run.model, run.best_dir, card)
    else:
        state.bad_epochs += 1
    save_checkpoint(run.model, run.last_dir, card)
    save_state(
        run.last_dir,
        run.optimizer,
        run.scheduler,
        {
            "epoch": epoch,
            "best_value": state.best_value,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "history": state.history,
        },
    )
