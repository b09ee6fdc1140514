"""The prediction folder: its layout, its identity (for resume) and its completeness.

A prediction is a zarr group (see docs/ARCHITECTURE.md for the layout):
the task's arrays (:meth:`~napari_slideseg.infer.task.Task.arrays`) with
label pyramids whose chunks are one block each, ``done`` (per block: 1
predicted, 2 skipped) and the ``slideseg_inference`` attributes, among them
a hash of everything that decides its pixels. A new folder is built under a
temporary name and renamed into place; ``complete`` is set after the last
block only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..models.card import ModelCard, cards_summary
from .config import InferConfig, InferError
from .task import Task

#: Endings of temporary files (ours, and zarr's ``*.partial`` chunk writes) a finished run removes.
TEMP_SUFFIXES = (".tmp", ".part", ".partial")


#: Settings that say where and how fast a prediction runs, not what it predicts.
RUN_ONLY = ("device", "threads", "batch_size", "workers")


def identity(config: InferConfig, slide: Any, cards: Sequence[ModelCard]) -> dict[str, Any]:
    """What decides a prediction's pixels: settings, slide and the models' content digests.

    Where and how fast it runs (device, threads, batch size, workers) does not change what is
    predicted: a run started on the CPU may be resumed on a GPU or a cluster. The
    models are identified by content (weights + prediction fields of the card), so a
    card changed by ``tune-hover --write`` or ``pack --mpp`` is another model.
    """
    settings = {k: v for k, v in config.to_dict().items() if k not in RUN_ONLY}
    return {
        "config": settings,
        "slide": os.path.abspath(slide.path),
        "slide_mpp": list(slide.mpp) if slide.mpp else None,
        "models": [c.digest() for c in cards],
    }


def config_hash(identity: dict[str, Any]) -> str:
    raw = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def mismatch(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why an existing output cannot be resumed with these settings (for the error)."""
    if not old:
        return f"{out}: holds a prediction made with other settings, slide or models"
    if old.get("models") != new["models"]:
        return (
            f"{out}: was predicted by other model content (digest {old.get('models')} vs "
            f"{new['models']}): a retrained model or a changed card (tune-hover --write, "
            "pack --mpp) predicts differently; write to a new folder"
        )
    if old.get("slide") != new["slide"] or old.get("slide_mpp") != new["slide_mpp"]:
        return f"{out}: was predicted on {old.get('slide')} (mpp {old.get('slide_mpp')})"
    diff = sorted(
        k
        for k in set(old.get("config", {})) | set(new["config"])
        if old.get("config", {}).get(k) != new["config"].get(k)
    )
    return f"{out}: was predicted with other settings ({', '.join(diff) or 'unknown'})"


def create_pyramid(
    root: Any, group: str, shape: tuple[int, int], block: int, factors: Sequence[int], dtype: Any
) -> None:
    """Empty pyramid levels whose chunks are one block each (one writer per chunk).

    Parameters
    ----------
    root : zarr.Group
        The prediction store.
    group : str
        The pyramid's group (``pyramid``, ``pyramid_instances``).
    shape : tuple of int
        Level-0 ``(H, W)``.
    block : int
        Block side (level 0); level ``f`` is chunked ``block // f``.
    factors : sequence of int
        The levels' factors.
    dtype : numpy dtype
    """
    from ..io.ngff import create_level, stride_shape

    g = root.create_group(group)
    for f in factors:
        # zarr's default chunk keys, as the rest of the prediction store
        chunks = (block // f, block // f)
        create_level(
            g, str(f), stride_shape(shape, f), chunks, dtype, fill_value=0, chunk_key_encoding=None
        )


def open_output(
    out: Path,
    slide: Any,
    cards: list[ModelCard],
    config: InferConfig,
    task: Task,
    plan: dict[str, Any],
    resume: bool,
) -> Any:
    """Open the prediction folder ``out`` to resume it, or create it (atomically).

    Parameters
    ----------
    out : Path
        The folder; absent, empty, or (with ``resume``) an earlier run of the
        same prediction.
    slide : Slide
    cards : list of ModelCard
    config : InferConfig
        With a numeric zoom.
    task : Task
        Decides the arrays (:meth:`Task.arrays`).
    plan : dict
        ``shape`` (level H, W), ``blocks`` (cores), ``factors`` (pyramid),
        ``resolution`` (zoom provenance).
    resume : bool
        Continue an existing folder of the same prediction.

    Returns
    -------
    zarr.Group
        Open for writing.

    Raises
    ------
    InferError
        ``out`` exists without ``resume``, or holds another prediction or
        something else.
    """
    import zarr

    ident = identity(config, slide, cards)
    digest = config_hash(ident)
    if out.exists() and not resume:
        raise InferError(
            f"{out}: exists; pass resume=True (--resume) to continue it, or choose another path"
        )
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        return _reopen(out, ident, digest, cards)
    # A new output is built under a temporary name and renamed into place once all its
    # arrays and attributes exist: a kill while creating it leaves no half-made store.
    tmp = out.with_name(f".{out.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp)  # a killed creation of this same output
    tmp.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(tmp), mode="w-")
    _create_arrays(root, task, cards[0].channels, config, plan)
    root.attrs.update(_attributes(slide, cards, config, plan, ident, digest))
    os.replace(tmp, out)  # (out is absent or an empty folder)
    return zarr.open_group(str(out), mode="r+")


def _reopen(out: Path, ident: dict[str, Any], digest: str, cards: list[ModelCard]) -> Any:
    """The earlier run at ``out`` of the same prediction, cleaned for resuming."""
    import zarr

    attrs = prediction_attrs(out)
    info = attrs["slideseg_inference"]
    if info.get("config_hash") != digest:
        raise InferError(mismatch(out, info.get("identity") or {}, ident) + "; not resuming it")
    root = zarr.open_group(str(out), mode="r+")
    remove_temporaries(out)  # what a killed run was writing is redone from scratch
    shutil.rmtree(out.with_name(f".{out.name}.part"), ignore_errors=True)
    # Same content: the provenance shows the cards as they are now (names, notes).
    meta = dict(attrs.get("slideseg") or {})
    meta["models"] = cards_summary(cards)
    root.attrs["slideseg"] = meta
    return root


def _create_arrays(
    root: Any, task: Task, channels: int, config: InferConfig, plan: dict[str, Any]
) -> None:
    H, W = plan["shape"]
    b = config.block_px
    for spec in task.arrays(channels, config.save_probs):
        if spec.channels is None:
            root.create_array(
                spec.name, shape=(H, W), chunks=(b, b), dtype=spec.dtype, fill_value=0
            )
        else:
            c = spec.channels
            root.create_array(
                spec.name, shape=(c, H, W), chunks=(c, b, b), dtype=spec.dtype, fill_value=0
            )
        if spec.pyramid:
            create_pyramid(root, spec.pyramid, (H, W), b, plan["factors"], spec.dtype)
    n = len(plan["blocks"])
    root.create_array("done", shape=(n,), chunks=(max(1, n),), dtype=np.uint8, fill_value=0)


def _attributes(
    slide: Any,
    cards: list[ModelCard],
    config: InferConfig,
    plan: dict[str, Any],
    ident: dict[str, Any],
    digest: str,
) -> dict[str, Any]:
    card = cards[0]
    shape = plan["shape"]
    return {
        "slideseg_inference": {
            "config_hash": digest,
            "identity": ident,
            "config": config.to_dict(),
            "resolution": plan["resolution"],
            "slide": os.path.abspath(slide.path),
            "level": config.level,
            "level_factors": list(slide.level_factors(config.level)),
            "level_shape": [int(shape[0]), int(shape[1])],
            "slide_shape": [int(n) for n in slide.levels[0].shape[:2]],
            "mpp": list(slide.mpp) if slide.mpp else None,
            "blocks": [list(b) for b in plan["blocks"]],
            "pyramid": list(plan["factors"]),
            "kind": card.kind,
            "complete": False,
            "versions": versions(),
        },
        "slideseg": {"classmap": card.classmap.to_dict(), "models": cards_summary(cards)},
    }


def prediction_attrs(out: Path) -> dict[str, Any]:
    """The attributes of the prediction folder ``out``, or an error saying what it is instead."""
    import zarr

    what = "--resume continues a prediction this plugin wrote; choose a new or empty output folder"
    if not out.is_dir():
        raise InferError(f"{out}: is a file, not a prediction folder; {what}")
    try:
        node = zarr.open(str(out), mode="r")
    except Exception:
        raise InferError(
            f"{out}: is a folder but not a prediction (no zarr store); {what}"
        ) from None
    attrs = dict(node.attrs)
    if not isinstance(node, zarr.Group) or not isinstance(attrs.get("slideseg_inference"), dict):
        raise InferError(
            f"{out}: is a zarr store but not a slideseg prediction (no 'slideseg_inference' "
            f"attributes); {what}"
        )
    return attrs


def versions() -> dict[str, str]:
    from ..models.checkpoint import library_versions

    return library_versions()


def output_levels(out: str | os.PathLike | Any) -> list[Any]:
    """The label pyramid of a prediction folder as zarr arrays, level 0 first.

    The arrays read from disk on every access, so a napari layer built on them
    shows blocks as they are written (call ``layer.refresh()``).
    """
    import zarr

    root: Any = out if hasattr(out, "attrs") else zarr.open_group(str(out), mode="r")
    attrs: dict[str, Any] = dict(root.attrs)
    factors = attrs.get("slideseg_inference", {}).get("pyramid", [])
    return [root["labels"]] + [root[f"pyramid/{f}"] for f in factors]


def remove_temporaries(out: str | os.PathLike) -> int:
    """Delete temporary files (:data:`TEMP_SUFFIXES`) a killed run left in ``out``; returns how many.

    Only call it when no other process writes into ``out``.
    """
    n = 0
    for p in Path(out).rglob("*"):
        if p.name.endswith(TEMP_SUFFIXES) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            n += 1
    return n


def is_complete(out: str | os.PathLike) -> bool:
    """Whether a prediction folder is finished (never true for an interrupted run)."""
    import zarr

    try:
        root = zarr.open_group(str(out), mode="r")
    except Exception:
        return False
    attrs: dict[str, Any] = dict(root.attrs)
    return bool(attrs.get("slideseg_inference", {}).get("complete"))
