"""Training as a generator of progress events, with a resumable run directory.

:func:`train` yields :class:`~napari_slideseg.progress.Progress` events
(``stage="train"`` per batch, ``"val"`` per validation batch, ``"epoch"`` at
the end of each epoch with the metrics row in ``info``) and returns a
:class:`~.report.TrainResult`. The widget and the CLI drive the same generator;
closing it cancels within one batch and keeps the ``last`` checkpoint of the
previous epoch.

Run directory::

    run/
      config.json       the TrainConfig
      metrics.csv       one row per epoch: losses, per-class Dice/IoU, lr, time
      curves.png        loss and mean-Dice curves
      last/             checkpoint of the last finished epoch + training_state.*
      best/             checkpoint with the best monitored metric
      done.json         written when training ends (not on cancel)

Reproducibility: each epoch re-seeds torch, the data order and the
albumentations pipeline from ``(seed, epoch)``, so a run resumed from
``last`` continues exactly as an uninterrupted one would (bit-identical on
CPU in deterministic mode).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from ..progress import Progress, drain
from .config import TrainConfig
from .data import prepare_data
from .report import (
    TrainResult,
    confusion_stats,
    dice_scores,
    epoch_row,
    plot,
    write_metrics,
    write_summary,
)
from .start import Run, check_run, configure_torch, start_run
from .state import RunState, resume_state, save_epoch


def recalibrate_bn(model: Any, dataset: Any, cfg: TrainConfig, device: Any, seed: int) -> None:
    """Re-estimate batch-norm running statistics on un-augmented training patches.

    With small batches, few images and strong colour augmentation the running
    means and variances drift away from what clean images produce, and the
    model in eval mode (validation, inference) can collapse while it works
    in train mode. Averaging the statistics of ``cfg.bn_recalibrate`` clean
    batches (cumulative, momentum None), with the weights fixed, removes the
    mismatch ("precise BN"). Runs before validation each epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Its batch-norm layers are updated in place (nothing without any).
    dataset
        The un-augmented training patches.
    cfg : TrainConfig
        Its ``batch_size`` and ``bn_recalibrate`` (the number of batches).
    device : torch.device
        Where the model is.
    seed : int
        Seeds the order of the patches.
    """
    import torch
    from torch.utils.data import DataLoader

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or not len(dataset):
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    model.train()
    with torch.no_grad():
        for i, (x, _) in enumerate(loader):
            if i >= cfg.bn_recalibrate:
                break
            model(x.to(device))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom


def train_batch(run: Run, x: Any, y: Any) -> float:
    """One optimiser step on a batch (and the one-cycle schedule's step).

    Parameters
    ----------
    run : Run
        The run.
    x, y : torch.Tensor
        The batch's images and targets.

    Returns
    -------
    float
        The batch's loss.
    """
    import torch

    cfg, device, opt = run.cfg, run.device, run.optimizer
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=run.use_amp):
        logits = run.model(x)
        loss = run.loss_fn(logits, y)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(opt)
        run.scaler.update()
    else:
        loss.backward()
        opt.step()
    if cfg.scheduler == "onecycle":
        run.scheduler.step()
    return float(loss.detach())


def train_epoch(
    run: Run, epoch: int
) -> Generator[Progress, None, tuple[float, int, dict[str, float]]]:
    """Train one epoch, seeded from ``(seed, epoch)``; a ``"train"`` event per batch.

    Parameters
    ----------
    run : Run
        The run.
    epoch : int
        0-based epoch.

    Returns
    -------
    tuple of (float, int, dict)
        The mean loss, the number of patches seen, and the loss terms summed
        over them.
    """
    import torch
    from torch.utils.data import DataLoader

    cfg, data = run.cfg, run.data
    seed = cfg.seed * 1000 + epoch
    torch.manual_seed(seed)
    if hasattr(data.augmentation, "set_random_seed"):
        data.augmentation.set_random_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        data.train_ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=gen,
        drop_last=len(data.train_ds) > cfg.batch_size,
        num_workers=cfg.num_workers,
    )
    run.model.train()
    total, seen = 0.0, 0
    term_sums: dict[str, float] = {}
    steps = data.steps_per_epoch
    for step, (x, y) in enumerate(loader):
        if cfg.max_steps and step >= cfg.max_steps:
            break
        lv = train_batch(run, x, y)
        total += lv * len(x)
        seen += len(x)
        for k, v in getattr(run.loss_fn, "last", {}).items():
            term_sums[k] = term_sums.get(k, 0.0) + v * len(x)
        yield Progress(
            "train",
            step + 1,
            steps,
            f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps} loss {lv:.4f}",
            {"epoch": epoch, "step": step, "loss": lv},
        )
    return total / max(seen, 1), seen, term_sums


def validate(run: Run) -> Generator[Progress, None, tuple[float, int, dict[str, float]]]:
    """Score the validation patches in eval mode; a ``"val"`` event per batch.

    Parameters
    ----------
    run : Run
        The run.

    Returns
    -------
    tuple of (float, int, dict)
        The mean loss (NaN without validation patches), the number of
        patches, and :func:`~.report.dice_scores` of the pooled counts
        (NaN means without validation patches).
    """
    import torch
    from torch.utils.data import DataLoader

    cfg, data, device = run.cfg, run.data, run.device
    run.model.eval()
    vtotal, vseen, stats = 0.0, 0, None
    if data.val_ds is not None and len(data.val_ds):
        vloader = DataLoader(
            data.val_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers
        )
        with torch.inference_mode():
            for vstep, (x, y) in enumerate(vloader):
                x, y = x.to(device), y.to(device)
                with torch.autocast(device.type, dtype=torch.float16, enabled=run.use_amp):
                    logits = run.model(x)
                    vloss = run.loss_fn(logits, y)
                vtotal += float(vloss) * len(x)
                vseen += len(x)
                logits, y = data.task.validation_view(logits, y)
                s = confusion_stats(logits.float(), y, data.n_classes, data.binary)
                stats = s if stats is None else stats + s
                yield Progress(
                    "val", vstep + 1, len(vloader), f"validating {vstep + 1}/{len(vloader)}"
                )
    val_loss = vtotal / vseen if vseen else float("nan")
    scores = (
        dice_scores(stats, data.names, data.background)
        if stats is not None
        else {"mean_dice": float("nan"), "mean_iou": float("nan")}
    )
    return val_loss, vseen, scores


def monitored_value(
    cfg: TrainConfig, val_loss: float, scores: dict[str, float], vseen: int, train_loss: float
) -> float:
    """The epoch's value of ``cfg.monitor``; without validation, the training loss ranks epochs.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``monitor``.
    val_loss : float
        The validation loss.
    scores : dict
        The validation scores (``mean_dice``).
    vseen : int
        The number of validation patches.
    train_loss : float
        The training loss.

    Returns
    -------
    float
        ``val_loss`` or ``mean_dice``; ``train_loss`` (``-train_loss`` for
        ``val_dice``) when nothing was validated.
    """
    if not vseen:
        return train_loss if cfg.monitor == "val_loss" else -train_loss
    return val_loss if cfg.monitor == "val_loss" else scores["mean_dice"]


def _step_scheduler(run: Run, plateau_value: float) -> None:
    """The per-epoch step of the cosine and plateau schedules."""
    if run.cfg.scheduler == "cosine":
        run.scheduler.step()
    elif run.cfg.scheduler == "plateau":
        run.scheduler.step(plateau_value)


def _finish(run: Run, state: RunState, stopped: bool) -> TrainResult:
    """The run's result, written to ``done.json``."""
    cfg, val_rows = run.cfg, run.data.val_rows
    if not val_rows and cfg.monitor == "val_dice":
        state.best_value = -state.best_value  # it ranked epochs by -train_loss
    result = TrainResult(
        run.out,
        state.best_epoch + 1,
        float(state.best_value),
        state.history,
        stopped,
        cfg.monitor if val_rows else "train_loss",
    )
    write_summary(run.out / "done.json", result)
    return result


def run_epoch(run: Run, state: RunState, epoch: int) -> Generator[Progress, None, None]:
    """Train, validate, checkpoint and report one epoch; ends with its ``"epoch"`` event.

    Parameters
    ----------
    run : Run
        The run.
    state : RunState
        Updated in place (history, best epoch, epochs without improvement).
    epoch : int
        0-based epoch.
    """
    cfg = run.cfg
    t0 = time.perf_counter()
    train_loss, seen, term_sums = yield from train_epoch(run, epoch)
    if cfg.bn_recalibrate:
        recalibrate_bn(run.model, run.data.calib_ds, cfg, run.device, cfg.seed * 1000 + epoch)
    val_loss, vseen, scores = yield from validate(run)
    _step_scheduler(run, val_loss if vseen else train_loss)
    lr = run.optimizer.param_groups[0]["lr"]
    row = epoch_row(
        epoch, train_loss, val_loss, scores, term_sums, seen, lr, time.perf_counter() - t0
    )
    state.history.append(row)
    monitored = monitored_value(cfg, val_loss, scores, vseen, train_loss)
    sign = 1.0 if cfg.monitor == "val_loss" else -1.0
    improved = sign * monitored < sign * state.best_value if state.best_epoch >= 0 else True
    save_epoch(run, state, epoch, row, improved, monitored)
    write_metrics(run.out / "metrics.csv", state.history)
    plot(run.out / "curves.png", state.history)
    yield Progress(
        "epoch",
        epoch + 1,
        cfg.epochs,
        f"epoch {epoch + 1}: train {train_loss:.4f} val {val_loss:.4f} dice {scores['mean_dice']:.3f}",
        {"row": row, "best_epoch": state.best_epoch + 1, "best_value": state.best_value},
    )


def train_steps(
    config: TrainConfig, *, resume: bool = False
) -> Generator[Progress, None, TrainResult]:
    """Train a segmentation model; a generator of progress events returning a :class:`TrainResult`.

    :func:`train` runs it to the end.

    Parameters
    ----------
    config
        The run's :class:`TrainConfig`.
    resume
        Continue from ``<out>/last`` (after a crash or cancel): weights,
        optimiser, scheduler, epoch count, best value and history.

    Returns
    -------
    TrainResult
        The generator's return value (``StopIteration.value``).

    Raises
    ------
    TrainError
        For a run that cannot start or resume (see
        :func:`~.start.check_run`), or data that cannot train (see
        :func:`~.data.prepare_data`); nothing is written before the model
        is built.
    """
    cfg = check_run(config, resume)
    device, use_amp = configure_torch(cfg)
    # data checked before the run folder is made: a refused run leaves nothing
    data = prepare_data(cfg, stacklevel=3)  # warnings name the caller of the generator
    run = start_run(cfg, data, device, use_amp)
    state = RunState()
    if resume:
        state = resume_state(run)
        yield Progress(
            "resume",
            state.start_epoch,
            cfg.epochs,
            f"resumed after epoch {state.start_epoch}: continuing with epoch {state.start_epoch + 1}",
            {"epoch": state.start_epoch},
        )
    stopped = False
    for epoch in range(state.start_epoch, cfg.epochs):
        yield from run_epoch(run, state, epoch)
        if cfg.patience is not None and state.bad_epochs >= cfg.patience:
            stopped = True
            break
    return _finish(run, state, stopped)


def train(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train to the end and return the :class:`TrainResult` (scripts and the napari console).

    Parameters
    ----------
    config
        The run's :class:`TrainConfig`.
    resume
        Continue from ``<out>/last`` (see :func:`train_steps`).

    Returns
    -------
    TrainResult
        The run folder, the best epoch and its value, the history.

    Raises
    ------
    TrainError
        As :func:`train_steps`.

    Examples
    --------
    >>> from napari_slideseg.train import TrainConfig, train
    >>> result = train(TrainConfig(manifests=["patches/"], out="run/", epochs=2))  # doctest: +SKIP
    >>> result.best_epoch, result.run_dir  # doctest: +SKIP
    """
    return drain(train_steps(config, resume=resume))


#: The earlier name of :func:`train` (kept for scripts written against it).
train_blocking = train
