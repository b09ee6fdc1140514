"""Where blocks run: a local loop with read-ahead, or a dask.distributed cluster.

Both call the same pure steps (:func:`read_for`, :func:`compute_block`) and
the task's writer, and mark a block ``done`` only after everything of it is
written, so a run killed anywhere resumes to the same result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Progress
from .block import predict_block, read_block
from .config import InferConfig, InferError
from .task import Output, Task
from .writes import fault

Core = tuple[int, int, int, int]
Event = Callable[[int, int, str], Progress]


def read_for(
    task: Task, arr: Any, core: Core, config: InferConfig
) -> tuple[np.ndarray, tuple[int, int], Core]:
    """Pixels a block needs: the task's extent of ``core`` plus the tile halo.

    Parameters
    ----------
    task : Task
    arr : array-like
        The slide level.
    core : tuple of int
        ``(y0, x0, y1, x1)``.
    config : InferConfig
        With a numeric zoom.

    Returns
    -------
    tuple
        Pixels, the extent's offset in them, and the extent.
    """
    ext = task.extent(core, arr.shape, config)
    pixels, offset = read_block(arr, ext, config.halo_px, config.tile, config.zoom_factor)
    return pixels, offset, ext


def compute_block(
    task: Task,
    models: Any,
    pixels: np.ndarray,
    offset: tuple[int, int],
    ext: Core,
    core: Core,
    config: InferConfig,
    device: Any,
    index: int,
) -> dict[str, Any]:
    """The pure block function: maps over ``ext``, then the task's result for ``core``.

    Parameters
    ----------
    task : Task
    models : sequence of (torch.nn.Module, ModelCard)
    pixels, offset, ext
        From :func:`read_for`.
    core : tuple of int
    config : InferConfig
    device : torch.device
    index : int
        The block's index in the plan.

    Returns
    -------
    dict
        The task's block result.
    """
    shape = (ext[2] - ext[0], ext[3] - ext[1])
    maps = predict_block(models, pixels, offset, shape, config, device)
    return task.compute(maps, ext, core, config, index)


_WORKER_CACHE: dict[str, Any] = {}


def _worker_state(
    slide_path: str, model_paths: tuple[str, ...], device: str, backend: str | None = None
) -> tuple:
    """Slide and models kept per process, so a worker loads each checkpoint once.

    The slide is reopened with the driver's backend (``backend``), so a
    backend the user forced reads the same pixels on every worker.
    """
    from ..io.slide import open_slide
    from ..models.checkpoint import load_model
    from ..models.device import resolve_device

    key = repr((slide_path, model_paths, device, backend))
    if _WORKER_CACHE.get("key") != key:
        dev = resolve_device(device)
        models = [load_model(p, device=dev) for p in model_paths]
        _WORKER_CACHE.clear()
        _WORKER_CACHE.update(
            key=key, slide=open_slide(slide_path, backend=backend), models=models, device=dev
        )
    return _WORKER_CACHE["slide"], _WORKER_CACHE["models"], _WORKER_CACHE["device"]


def run_block_task(spec: dict[str, Any]) -> int | dict[str, Any]:
    """Predict one block from a picklable ``spec`` (runs on a dask worker).

    The worker opens the slide and the checkpoints by path (cached per
    process). A task that writes in the worker writes its block's chunks
    straight into the shared zarr output and returns the block index; one
    that writes on the driver (:attr:`Task.write_on_driver`) returns its
    result. The driver marks the block done when the task returns.

    Parameters
    ----------
    spec : dict
        ``slide``, ``models`` (paths), ``config`` (dict), ``out``,
        ``factors``, ``task``, ``core`` and ``index``.

    Returns
    -------
    int or dict
    """
    import zarr

    config = InferConfig.from_dict(spec["config"])
    task: Task = spec["task"]
    slide, models, device = _worker_state(
        spec["slide"], tuple(spec["models"]), config.device, spec.get("backend")
    )
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    core = tuple(spec["core"])
    i = int(spec["index"])
    pixels, offset, ext = read_for(task, slide.levels[config.level], core, config)
    res = compute_block(task, models, pixels, offset, ext, core, config, device, i)
    if task.write_on_driver:
        res["index"] = i
        return res  # the driver merges nuclei (smallest id wins) in one process
    root = zarr.open_group(spec["out"], mode="r+")
    task.write(Output(root, Path(spec["out"]), tuple(spec["factors"])), i, res, config)
    return i


def get_client(client: Any) -> Any:
    """A ``distributed.Client`` from what ``predict_slide(client=...)`` was given.

    Parameters
    ----------
    client : None, False, True, "current", str or Client
        None/False: run locally; True/"current": the active client; an
        address: connect to that scheduler; a client: itself.

    Returns
    -------
    Client or None

    Raises
    ------
    InferError
        No active client, or the scheduler cannot be reached.
    """
    if client is None or client is False:
        return None
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise InferError("dask.distributed is not installed: pip install distributed") from exc
    if client is True or client == "current":
        try:
            return distributed.get_client()
        except ValueError as exc:
            raise InferError("no active dask.distributed Client to run on") from exc
    if isinstance(client, str):
        try:
            return distributed.Client(client, timeout="20s")
        except OSError as exc:
            raise InferError(f"cannot reach the dask scheduler at {client}: {exc}") from exc
    return client


def run_local(
    task: Task,
    slide: Any,
    models: Any,
    config: InferConfig,
    device: Any,
    run: dict[str, Any],
    event: Event,
) -> Generator[Progress, None, None]:
    """Blocks ``run["todo"]`` in this process, through :func:`~.pipeline.run_pipeline`.

    Reads run ahead on threads, post-processing in ``config.workers``
    processes and writes on a thread, all overlapping the model.

    Parameters
    ----------
    task : Task
    slide : Slide
    models : sequence of (torch.nn.Module, ModelCard)
        On ``device``.
    config : InferConfig
    device : torch.device
    run : dict
        ``root`` (zarr group), ``out``, ``blocks``, ``todo``, ``factors``.
    event : callable
        ``event(k, i, where)`` makes the progress event of the k-th block done.

    Yields
    ------
    Progress
        One event per block.
    """
    from .pipeline import run_pipeline

    arr = slide.levels[config.level]
    for k, i in enumerate(run_pipeline(task, arr, models, config, device, run, read_for)):
        yield event(k, i, "")


def run_distributed(
    task: Task,
    client: Any,
    slide: Any,
    paths: Sequence[str],
    config: InferConfig,
    run: dict[str, Any],
    event: Event,
) -> Generator[Progress, None, None]:
    """Blocks ``run["todo"]`` on a dask cluster, a bounded window of tasks in flight.

    Parameters
    ----------
    task : Task
    client : distributed.Client
    slide : Slide
        Opened again on the workers from its path.
    paths : sequence of str
        Checkpoint folders the workers load.
    config : InferConfig
    run : dict
        As for :func:`run_local`.
    event : callable
        As for :func:`run_local`.

    Yields
    ------
    Progress
    """
    from distributed import as_completed

    from ..io.slide.backends import BACKENDS

    blocks, root, out = run["blocks"], run["root"], run["out"]
    dest = Output(root, Path(out), tuple(run["factors"]))
    base = {
        "slide": os.path.abspath(slide.path),
        "backend": slide.backend if slide.backend in BACKENDS else None,
        "models": [os.path.abspath(p) for p in paths],
        "config": config.to_dict(),
        "out": os.path.abspath(out),
        "factors": list(run["factors"]),
        "task": task,
    }
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * n_workers + 1  # tasks in flight: keeps cancel prompt and memory flat
    queue = list(run["todo"])
    futures: list[Any] = []

    def submit(i: int) -> Any:
        return client.submit(
            run_block_task, {**base, "core": list(blocks[i]), "index": i}, pure=False
        )

    while queue and len(futures) < window:
        futures.append(submit(queue.pop(0)))
    ac = as_completed(futures)
    k = 0
    try:
        for fut in ac:
            res = fut.result()  # re-raises the worker's error here
            if isinstance(res, dict):
                i = res["index"]
                task.write(dest, i, res, config)
            else:
                i = res
            fault("done")
            root["done"][i] = 1
            yield event(k, i, " (cluster)")
            k += 1
            if queue:
                futures.append(submit(queue.pop(0)))
                ac.add(futures[-1])
    finally:
        # On cancel (generator closed) or error: drop what has not finished. A block
        # already running may still write its chunks but is never marked done, so a
        # resumed run computes it again.
        client.cancel([f for f in futures if not f.done()])
