"""``predict_slide``: block-wise tiled inference into a resumable zarr output.

One pure function per block (:func:`~napari_slideseg.infer.runners.compute_block`:
:func:`~napari_slideseg.infer.block.predict_block`, then the task's
post-processing) does the work for one block core: read the core plus a halo
(reflect-padded at the slide edge), cut it into overlapping tiles, run them
in batches through every model (and every TTA transform), average, blend
tiles with a smooth window, and crop to the core. :func:`predict_slide_steps`
runs it over the block grid (locally with the next block's pixels read ahead
on a thread, or on a dask cluster), writes each block's arrays into a chunked
zarr, and only then marks the block done. Re-running with ``resume=True``
skips done blocks; because the block function is pure and every block write
is idempotent (a half-written block is simply written again), the result
equals an uninterrupted run bit for bit wherever a run was killed. The
output's ``complete`` attribute is set only after the last block. A new
output is created under a temporary name and renamed into place, only once
the device and models are ready; a run that fails before its first block is
done removes it again. Tests kill runs at each write step through
:data:`napari_slideseg.infer.writes.FAULT`.

What differs between semantic and HoVer models is one
:class:`~napari_slideseg.infer.task.Task` object; this module has no branch
on the model kind.

Memory is bounded by one block (plus halo) x channels x float32, and one batch
of tiles on the device: a 100k x 100k slide uses about what a 10k one does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..models.card import ModelCard, as_card
from ..progress import Progress, drain
from .block import predict_block
from .config import (
    ZOOM_TOLERANCE,
    InferConfig,
    InferError,
    resolve_zoom,
    resolved_block,
    resolved_config,
)
from .output import is_complete, open_output, output_levels, remove_temporaries
from .plan import plan_blocks, skip_blocks
from .runners import get_client, run_distributed, run_local
from .task import Task, make_task, task_class
from .tiles import pyramid_factors

#: What ``models`` may be: one checkpoint (path, bundled name, ``(model, card)``) or several.
ModelsArg = (
    str
    | os.PathLike
    | tuple[Any, ModelCard | dict[str, Any]]
    | Sequence[tuple[Any, ModelCard | dict[str, Any]] | str | os.PathLike]
)

#: The default settings (a frozen dataclass, safe as a default argument).
DEFAULT_CONFIG = InferConfig()

__all__ = [  # the engine's own names, and those importers have always taken from here
    "DEFAULT_CONFIG",
    "InferConfig",
    "InferError",
    "check_models",
    "is_complete",
    "output_levels",
    "plan_blocks",
    "predict_block",
    "predict_slide",
    "predict_slide_steps",
    "resolve_zoom",
]


def check_models(models: Sequence[tuple[Any, Any]]) -> list[tuple[Any, ModelCard]]:
    """``(model, ModelCard)`` pairs (card dicts are validated), checked to agree.

    Parameters
    ----------
    models : sequence of (torch.nn.Module, ModelCard or dict)

    Returns
    -------
    list of (torch.nn.Module, ModelCard)

    Raises
    ------
    InferError
        No model, or ensemble members that differ in kind, classes,
        normalisation or resolution.
    """
    if not models:
        raise InferError("no model given")
    checked = [(m, as_card(c)) for m, c in models]
    first = checked[0][1]
    names = first.classmap.names
    for _, c in checked[1:]:
        if c.kind != first.kind:
            raise InferError("an ensemble mixes semantic and HoVer models")
        if c.classmap.names != names:
            raise InferError(
                f"ensemble members disagree on classes: {list(names)} vs {list(c.classmap.names)}"
            )
        if c.normalization != first.normalization:
            raise InferError(
                f"ensemble members need the same input normalisation: {c.display_name} differs "
                f"from {first.display_name}"
            )
        if (c.mpp is None) != (first.mpp is None) or (
            c.mpp and first.mpp and abs(c.mpp / first.mpp - 1) > ZOOM_TOLERANCE
        ):
            raise InferError(
                f"ensemble members were trained at different resolutions ({first.display_name}: "
                f"{first.mpp} µm/px, {c.display_name}: {c.mpp} µm/px)"
            )
    return checked


def _load_models(models: Any) -> list[tuple[Any, ModelCard]]:
    from ..models import resolve_model
    from ..models.checkpoint import load_model

    if isinstance(models, str | os.PathLike) or (
        isinstance(models, tuple) and len(models) == 2 and not isinstance(models[0], str)
    ):
        models = [models]  # one checkpoint (path, bundled name or (model, card))
    return check_models(
        [
            load_model(resolve_model(str(m))) if isinstance(m, str | os.PathLike) else m
            for m in models
        ]
    )


def predict_slide_steps(
    slide: Any,
    models: ModelsArg,
    out: str | os.PathLike,
    config: InferConfig = DEFAULT_CONFIG,
    *,
    resume: bool = False,
    client: Any = None,
) -> Generator[Progress, None, Path]:
    """:func:`predict_slide` as a generator of progress events; returns the output path.

    Parameters
    ----------
    slide, models, out, config
        As for :func:`predict_slide`.
    resume : bool
        Continue an interrupted run of the same prediction.
    client : distributed.Client, str or None
        See :func:`predict_slide`.

    Yields
    ------
    Progress
        One event per predicted block.

    Returns
    -------
    Path
        ``out``.
    """
    if not isinstance(config, InferConfig):
        raise InferError(f"config must be an InferConfig, not {type(config).__name__}")
    from ..io.slide import as_slide

    slide = as_slide(slide, error=InferError)
    checked = _load_models(models)
    owned = isinstance(client, str) and client not in ("current",)
    client = get_client(client)
    try:
        return (yield from _predict(slide, checked, Path(out), config, resume, client))
    finally:
        if owned and client is not None:
            client.close()  # a client made here from an address is ours to close


def _check_cluster_inputs(slide: Any, cards: list[ModelCard]) -> None:
    if not all(c.source for c in cards):
        raise InferError(
            "distributed inference loads checkpoints on the workers by path: "
            "pass checkpoint folders (or models from load_model(path))"
        )
    if not getattr(slide, "path", None) or not os.path.exists(slide.path):
        raise InferError(
            "distributed inference opens the slide on the workers by path: "
            f"{getattr(slide, 'path', None)!r} is not a file they can read"
        )


def _predict(
    slide: Any,
    models: list[tuple[Any, ModelCard]],
    out: Path,
    config: InferConfig,
    resume: bool,
    client: Any,
) -> Generator[Progress, None, Path]:
    import torch

    from ..models.device import resolve_device

    cards = [c for _, c in models]
    config, resolution = resolved_config(slide, cards[0], config)
    config = resolved_block(config, task_class(cards[0]).margin(config))
    shape, blocks = plan_blocks(slide, config)
    task = make_task(slide, cards[0], config, len(blocks))
    plan = {
        "shape": shape,
        "blocks": blocks,
        "factors": pyramid_factors(shape, config.block_px),
        "resolution": resolution,
    }
    device = None
    # Everything that can fail before the first block (paths for a cluster, the device,
    # the models on it) is checked before the output exists, so a run that cannot start
    # leaves nothing behind that would block the next one.
    if client is not None:
        _check_cluster_inputs(slide, cards)
    else:
        if config.threads:
            torch.set_num_threads(config.threads)
        device = resolve_device(config.device)
        models = [(m.to(device).eval(), c) for m, c in models]
    empty_dir = out.is_dir() and not any(out.iterdir())
    existed = out.exists() and not empty_dir
    root = open_output(out, slide, cards, config, task, plan, resume)
    run = {**plan, "root": root, "out": out}
    try:
        yield from _run(task, slide, models, config, client, device, run)
    except BaseException:
        try:
            started = bool((np.asarray(root["done"][:]) == 1).any())
        except Exception:  # unreadable marks (disk gone): keep what is there
            started = True
        if not existed and not started:
            # Failed (or cancelled) before its first block: this run made the folder
            # and nothing in it is worth resuming.
            shutil.rmtree(out, ignore_errors=True)
            if empty_dir:
                out.mkdir(exist_ok=True)  # the user's empty folder stays as it was
        raise
    remove_temporaries(out)
    return out


def _run(
    task: Task,
    slide: Any,
    models: list[tuple[Any, ModelCard]],
    config: InferConfig,
    client: Any,
    device: Any,
    run: dict[str, Any],
) -> Generator[Progress, None, None]:
    root, blocks = run["root"], run["blocks"]
    done = np.asarray(root["done"][:])
    skipped = skip_blocks(slide, config, blocks, done)
    if skipped:
        root["done"][:] = done
    run["todo"] = todo = [i for i in range(len(blocks)) if not done[i]]
    n_before = len(blocks) - len(todo)

    def event(k: int, i: int, where: str) -> Progress:
        return Progress(
            "predict",
            n_before + k + 1,
            len(blocks),
            f"block {n_before + k + 1}/{len(blocks)}{where}",
            {"block": list(blocks[i]), "skipped_blocks": skipped},
        )

    if client is not None:
        paths = [str(c.source) for _, c in models]  # all set (_check_cluster_inputs)
        yield from run_distributed(task, client, slide, paths, config, run, event)
    else:
        yield from run_local(task, slide, models, config, device, run, event)
    meta = dict(root.attrs["slideseg_inference"])
    task.finish(run["out"], meta)
    meta["complete"] = True
    meta["skipped_blocks"] = int((np.asarray(root["done"][:]) == 2).sum())
    root.attrs["slideseg_inference"] = meta


def predict_slide(
    slide: Any,
    models: ModelsArg,
    out: str | os.PathLike,
    config: InferConfig = DEFAULT_CONFIG,
    *,
    resume: bool = False,
    client: Any = None,
) -> Path:
    """Predict class labels (and, for HoVer models, nuclei) over a slide level into ``out``.

    Parameters
    ----------
    slide : Slide or path
        An opened :class:`~napari_slideseg.io.slide.Slide`, or a path to open.
    models : path, bundled name, (model, card) or a sequence of them
        Checkpoint folders, bundled model names, or ``[(model, card), ...]``
        from :func:`~napari_slideseg.models.load_model`; several with the same
        classes form an ensemble (probability mean).
    out : str or os.PathLike
        Output zarr folder: ``labels`` (uint8, chunks of one block), a label
        ``pyramid`` (stride-sampled levels 2, 4, ... for display), optional
        ``probs`` (float16), ``done`` (per block: 1 predicted, 2 skipped), and
        attributes with the config, model cards, versions and ``complete``.
        HoVer models add ``instances`` (uint32), ``pyramid_instances``,
        ``maps`` and ``instances.csv``.
    config : InferConfig
        Settings.
    resume : bool
        Continue an interrupted run (refused if settings, slide or models differ).
    client : distributed.Client, str or None
        A client, a scheduler address (``"tcp://..."``) or ``"current"`` runs
        the blocks on a dask cluster whose workers read the slide and
        checkpoints by path and write into the shared ``out``.

    Returns
    -------
    Path
        ``out``, complete.

    Raises
    ------
    InferError
        Bad settings, disagreeing models, an output that is not this prediction.

    Examples
    --------
    >>> from napari_slideseg import open_slide
    >>> from napari_slideseg.infer import InferConfig, predict_slide
    >>> out = predict_slide(open_slide("slide.svs"), "hover-nuclei", "nuclei.zarr",
    ...                     InferConfig(region=(0, 0, 2048, 2048)))  # doctest: +SKIP
    """
    return drain(predict_slide_steps(slide, models, out, config, resume=resume, client=client))
