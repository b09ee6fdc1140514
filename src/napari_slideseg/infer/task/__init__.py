"""What a prediction task does with a block: one interface, one class per model kind.

The engine (:mod:`~napari_slideseg.infer.engine`) knows blocks, tiles, the
output folder and the runners; everything that differs between a semantic
model and a HoVer model lives here, behind :class:`Task`:

============================  =========================  ===========================
step                          :class:`SemanticTask`      :class:`HoverTask`
============================  =========================  ===========================
``probs`` (activation)        softmax / sigmoid          NP softmax, HV raw, NC softmax
``undo_tta``                  pixels turned back         + the H/V maps' meaning
``extent`` (pixels predicted) the block core             core + ``instance_halo``
``compute`` (post-process)    argmax, ROI                nuclei owned by the core
``arrays`` (output layout)    labels, probs              labels, instances, maps
``write``                     in the worker              in the driver (smallest id)
``finish``                    nothing                    merged ``instances.csv``
============================  =========================  ===========================

A task is a small frozen dataclass: picklable, so a dask worker gets the same
object the driver built. :func:`make_task` picks the class from the model
card's ``kind`` (``TASKS``); a new kind of model is a new class here.
"""

from __future__ import annotations

from typing import Any

from ...models.card import ModelCard
from ..config import InferConfig, InferError
from .base import ArraySpec, Output, Task, unturn
from .hover import HoverTask, id_stride_checked
from .semantic import SemanticTask, block_result, write_block

#: The task class of each model card ``kind``.
TASKS: dict[str, type[Task]] = {"semantic": SemanticTask, "hover": HoverTask}


def task_class(card: ModelCard) -> type[Task]:
    """The :class:`Task` subclass for ``card.kind``.

    Parameters
    ----------
    card : ModelCard

    Returns
    -------
    type of Task

    Raises
    ------
    InferError
        A kind no task handles.
    """
    try:
        return TASKS[card.kind]
    except KeyError:
        raise InferError(
            f"model {card.display_name!r}: kind {card.kind!r} is not one of {sorted(TASKS)}"
        ) from None


def make_task(slide: Any, card: ModelCard, config: InferConfig, n_blocks: int) -> Task:
    """The task of a prediction by ``card`` on ``slide`` with ``config`` over ``n_blocks``.

    Parameters
    ----------
    slide : Slide
    card : ModelCard
        The (first) model's card; an ensemble shares its kind.
    config : InferConfig
    n_blocks : int

    Returns
    -------
    Task
    """
    return task_class(card).for_slide(slide, card, config, n_blocks)


__all__ = [
    "TASKS",
    "ArraySpec",
    "HoverTask",
    "Output",
    "SemanticTask",
    "Task",
    "block_result",
    "id_stride_checked",
    "make_task",
    "task_class",
    "unturn",
    "write_block",
]
