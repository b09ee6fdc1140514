"""Fine-tune the model a prediction came from, on the corrections saved beside the prediction."""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

from ..progress import Progress
from .config import FinetuneConfig, FinetuneError
from .run import FinetuneResult, finetune_steps


def _prediction(pred: Path) -> dict[str, Any]:
    import zarr

    try:
        attrs = dict(zarr.open_group(str(pred), mode="r").attrs)
    except Exception as exc:
        raise FinetuneError(f"{pred}: is not a prediction folder ({type(exc).__name__})") from None
    if "slideseg_inference" not in attrs:
        raise FinetuneError(f"{pred}: is not a prediction folder (no slideseg_inference record)")
    return attrs


def parent_model(attrs: dict[str, Any], model: str | os.PathLike | None, pred: Path) -> str:
    """The checkpoint to fine-tune: ``model``, or the one the prediction records (checked).

    Parameters
    ----------
    attrs : dict
        The prediction's attributes.
    model : str, os.PathLike or None
        What the user named (``--model``); None: the prediction's own model.
    pred : Path
        The prediction (named in errors).

    Returns
    -------
    str
        A checkpoint folder or bundled model name.

    Raises
    ------
    FinetuneError
        When the prediction's model is gone or changed and none was named.

    Warns
    -----
    UserWarning
        When the model named is not the one that made the prediction.
    """
    from ..models.bundled import resolve_model
    from ..models.card import read_card

    cards = (attrs.get("slideseg") or {}).get("models") or []
    made = cards[0] if cards else {}
    if model is None:
        src = made.get("source")
        if not src or not Path(src).exists():
            raise FinetuneError(
                f"{pred}: the model it was predicted with ({src or 'not recorded'}) is not "
                "there; name the checkpoint with --model"
            )
        if read_card(src).digest() != made.get("digest"):
            raise FinetuneError(
                f"{pred}: the model at {src} has changed since the prediction (digest "
                f"{read_card(src).digest()} vs {made.get('digest')}); name it with --model"
            )
        return str(src)
    digest = read_card(resolve_model(os.fspath(model))).digest()
    if made.get("digest") and digest != made["digest"]:
        warnings.warn(
            f"{model}: is not the model {pred} was predicted with ({made.get('name')!r}, "
            f"digest {made['digest']}); its corrections are fine-tuned into {model} anyway",
            UserWarning,
            stacklevel=4,
        )
    return os.fspath(model)


def finetune_prediction_steps(
    pred: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    config: FinetuneConfig | None = None,
    view: Any = None,
) -> Generator[Progress, None, FinetuneResult]:
    """Fine-tune on the corrections saved in the prediction ``pred`` (a generator of progress).

    The slide, level, zoom and inference settings are the prediction's; the
    labels are the corrected ones (``corrections/`` beside the prediction,
    :mod:`napari_slideseg.corrections`), the regions where they differ from
    the prediction. A HoVer prediction fine-tunes on its corrected nucleus
    instances (their HV targets are made from the ids), with the predicted
    types.

    Parameters
    ----------
    pred : str or os.PathLike
        A prediction folder with saved corrections.
    out : str or os.PathLike
        A new folder for the run.
    model : str, os.PathLike or None
        The checkpoint; None: the one the prediction was made with.
    config : FinetuneConfig, optional
    view : (y0, x0, y1, x1), optional
        A region of the prediction's level (the current view) also
        predicted with the new model.

    Yields
    ------
    Progress

    Returns
    -------
    FinetuneResult

    Raises
    ------
    FinetuneError
        Not a prediction, no corrections saved, the model gone.
    """
    from ..corrections import open_corrections
    from ..infer import InferConfig
    from ..io.slide import open_slide

    pred = Path(pred)
    attrs = _prediction(pred)
    info = attrs["slideseg_inference"]
    parent = parent_model(attrs, model, pred)
    name = "instances" if info.get("kind") == "hover" else "labels"
    store = open_corrections(pred, writable=False)
    regions = store.regions(name) if name in store.arrays() else []
    if not regions:
        raise FinetuneError(
            f"{pred}: has no saved corrections of its {name!r} (paint on the prediction in "
            "napari first; the plugin saves them beside it)"
        )
    slide = open_slide(info["slide"])
    types = None
    if name == "instances":
        import zarr

        types = zarr.open_group(str(pred), mode="r")["labels"]
    provenance = {
        "prediction": str(pred.resolve()),
        "array": name,
        "version": store.version,
        "history": store.versions,
        "regions": [list(r) for r in regions],
    }
    infer_config = InferConfig.from_dict(dict(info["config"]))
    return (
        yield from finetune_steps(
            slide,
            store.corrected(name),
            regions,
            parent,
            out,
            config,
            level=int(info.get("level") or 0),
            zoom=float((info.get("resolution") or {}).get("zoom") or 1.0),
            types=types,
            provenance=provenance,
            infer_config=infer_config,
            view=view,
        )
    )
