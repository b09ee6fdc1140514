"""The local run as a pipeline: reads, the model, post-processing and writes overlap.

Four stages, each on its own worker, with a fixed number of blocks in flight
(so memory stays bounded by a few blocks whatever the slide):

1. **read**: :data:`READ_AHEAD` blocks ahead on a thread pool (JPEG/zarr
   decoding releases the GIL);
2. **model**: this thread, one block at a time (torch uses its own threads);
3. **post-process**: the task's :meth:`~napari_slideseg.infer.task.Task.compute`
   in ``workers`` processes (HoVer's instances from the maps), or inline
   when ``workers`` is 0 or the task is cheap;
4. **write**: one writer thread, so blocks are written one at a time (HoVer's
   smallest-id-wins merge reads what its neighbours wrote) while the model
   runs the next block.

A block is marked done (and its progress event yielded) only after its
write returns, in the order the blocks were planned. Every stage is the pure
function it was when run one after the other, so results are identical with
any number of workers, and a run closed or killed anywhere resumes to the
same output (blocks not yet marked are computed again).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Generator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from .block import predict_block
from .config import InferConfig
from .task import Output, Task
from .writes import fault

logger = logging.getLogger(__name__)

Core = tuple[int, int, int, int]

#: Blocks read ahead of the model.
READ_AHEAD = 2
#: Most post-processing processes ``workers=None`` starts.
MAX_AUTO_WORKERS = 4
#: Run every stage in the calling thread, one after the other (benchmarks measure the
#: stages this way; the output is the same).
SERIAL = False


def post_workers(task: Task, config: InferConfig, n_blocks: int) -> int:
    """Post-processing processes for a run of ``n_blocks`` blocks.

    Parameters
    ----------
    task : Task
        Only tasks with a heavy :meth:`~Task.compute` (:attr:`Task.heavy_compute`)
        get processes.
    config : InferConfig
        ``workers``: a number is used as given (for any task); None is
        one per core beyond the first, at most :data:`MAX_AUTO_WORKERS`, when
        there are at least two blocks.
    n_blocks : int
        Blocks still to predict.

    Returns
    -------
    int
    """
    if SERIAL:
        return 0
    if config.workers is not None:
        return config.workers
    if not task.heavy_compute or n_blocks < 2:
        return 0
    return max(0, min(MAX_AUTO_WORKERS, (os.cpu_count() or 1) - 1))


class _Inline(Executor):
    """Runs a call where it is submitted (post-processing without processes)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result
            fut.set_exception(exc)
        return fut


def _post_pool(workers: int) -> Executor:
    if workers == 0:
        return _Inline()
    # spawn: a forked child of a process running torch's thread pools can deadlock
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def run_pipeline(
    task: Task,
    arr: Any,
    models: Any,
    config: InferConfig,
    device: Any,
    run: dict[str, Any],
    read: Any,
) -> Generator[int, None, None]:
    """Blocks ``run["todo"]`` through the four stages; yields each block index once done.

    Parameters
    ----------
    task : Task
    arr : array-like
        The slide level.
    models : sequence of (torch.nn.Module, ModelCard)
        On ``device``.
    config : InferConfig
    device : torch.device
    run : dict
        ``root`` (zarr group), ``out``, ``blocks``, ``todo``, ``factors``.
    read : callable
        ``read(task, arr, core, config) -> (pixels, offset, extent)``.

    Yields
    ------
    int
        The index of each block after it is written and marked done.
    """
    blocks, todo, root = run["blocks"], run["todo"], run["root"]
    workers = post_workers(task, config, len(todo))
    if workers:
        logger.info("%d post-processing processes beside the model", workers)
    post = _post_pool(workers)  # inline when SERIAL (post_workers gives 0)
    reads: Executor = _Inline()
    writer: Executor = _Inline()
    if not SERIAL:
        reads = ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="slideseg-read")
        writer = ThreadPoolExecutor(1, thread_name_prefix="slideseg-write")
    in_flight = max(1, workers) + 1  # blocks between the model and done

    dest = Output(root, run["out"], tuple(run["factors"]))

    def write(i: int, res: dict[str, Any]) -> int:
        task.write(dest, i, res, config)
        fault("done")
        root["done"][i] = 1  # only after all of the block's arrays and its table are written
        return i

    pending: deque[list[Any]] = deque()  # [index, post future, write future | None]

    def advance(wait: bool) -> Generator[int, None, None]:
        for entry in pending:
            if entry[2] is None and entry[1].done():
                entry[2] = writer.submit(write, entry[0], entry[1].result())
        while pending and (wait or len(pending) > in_flight or _written(pending[0])):
            i, fut, wfut = pending[0]
            if wfut is None:
                wfut = pending[0][2] = writer.submit(write, i, fut.result())
            wfut.result()  # re-raises a failed write
            pending.popleft()
            yield i

    try:
        ahead = deque(reads.submit(read, task, arr, blocks[i], config) for i in todo[:READ_AHEAD])
        for k, i in enumerate(todo):
            pixels, offset, ext = ahead.popleft().result()
            if k + READ_AHEAD < len(todo):
                ahead.append(reads.submit(read, task, arr, blocks[todo[k + READ_AHEAD]], config))
            shape = (ext[2] - ext[0], ext[3] - ext[1])
            maps = predict_block(models, pixels, offset, shape, config, device)
            del pixels
            pending.append([i, post.submit(task.compute, maps, ext, blocks[i], config, i), None])
            del maps
            yield from advance(wait=False)
        yield from advance(wait=True)
    finally:
        # Closed (cancelled) or failed: queued work is dropped; a block being written
        # finishes (and is marked done), one being post-processed is left to its process.
        post.shutdown(wait=False, cancel_futures=True)
        for ex in (reads, writer):
            ex.shutdown(wait=True, cancel_futures=True)


def _written(entry: list[Any]) -> bool:
    return entry[2] is not None and entry[2].done()


__all__ = ["MAX_AUTO_WORKERS", "READ_AHEAD", "post_workers", "run_pipeline"]
