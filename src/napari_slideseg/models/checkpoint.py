"""Safe, self-describing checkpoints: safetensors weights + JSON, never pickle.

A checkpoint is a folder in smp's ``save_pretrained`` layout, extended with
what inference needs:

``model.safetensors``
    The weights (float32, or float16 to ship small; loaded back as float32).
``config.json``
    smp's constructor arguments plus ``_model_class`` (as smp writes it).
``README.md``
    smp's human-readable model card.
``slideseg.json``
    The slideseg model card: ``kind`` (``semantic`` or ``hover``), architecture,
    encoder, channels, activation, the ClassMap, patch size, normalisation
    mean/std, mpp and level trained at, training summary, metrics, library
    versions.

:func:`load_model` rebuilds the model from the JSON alone, with
``encoder_weights=None`` (smp's saved config keeps ``"imagenet"``, which would
reach for the hub), loads the tensors with safetensors, and refuses a folder
whose card is missing or disagrees with the weights.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ..io.errors import SlideSegError

CARD = "slideseg.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class CheckpointError(SlideSegError, ValueError):
    """A checkpoint folder is missing parts or is inconsistent (the message names it)."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "napari-slideseg",
        "torch",
        "segmentation-models-pytorch",
        "albumentations",
        "safetensors",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def make_card(
    *,
    kind: str,
    arch: str,
    encoder: str,
    in_channels: int,
    classes: int,
    classmap: dict[str, Any],
    patch_size: int,
    activation: str | None = None,
    normalization: dict[str, list[float]] | None = None,
    mpp: float | None = None,
    level: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A model card dict with every field inference relies on."""
    card = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "arch": arch,
        "encoder": encoder,
        "in_channels": int(in_channels),
        "classes": int(classes),
        "activation": activation or ("sigmoid" if classes == 1 else "softmax"),
        "classmap": classmap,
        "patch_size": int(patch_size),
        "normalization": normalization or IMAGENET,
        "mpp": mpp,
        "level": level,
        "training": {},
        "metrics": {},
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    card.update(extra or {})
    return card


def _state_to_cpu(model: Any, dtype: Any = None) -> dict[str, Any]:
    import torch

    out = {}
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[k] = t.contiguous()
    del torch
    return out


def save_checkpoint(
    model: Any,
    path: str | os.PathLike,
    card: dict[str, Any],
    *,
    half: bool = False,
) -> Path:
    """Write ``model`` and its ``card`` to the folder ``path`` (atomically).

    Parameters
    ----------
    model
        An smp model (its ``config`` is saved) or a model with a ``config`` dict
        (e.g. the HoVer model).
    path
        Destination folder; written to a temporary sibling, then renamed.
    card
        From :func:`make_card`.
    half
        Store floating-point weights as float16 (half the size; loaded back
        as float32).
    """
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        config = dict(getattr(model, "config", {}) or {})
        config["_model_class"] = type(model).__name__
        if getattr(model, "_slideseg_norm", None):
            config["_norm"] = model._slideseg_norm
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=str))
        state = _state_to_cpu(model, torch.float16 if half else None)
        save_file(
            state, str(tmp / WEIGHTS), metadata={"format": "pt", "slideseg": str(FORMAT_VERSION)}
        )
        card = dict(card)
        card["weights_dtype"] = "float16" if half else "float32"
        card["n_tensors"] = len(state)
        (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
        (tmp / "README.md").write_text(_readme(card))
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _readme(card: dict[str, Any]) -> str:
    cm = card.get("classmap") or {}
    lines = [
        f"# {card.get('name') or card['arch'] + ' / ' + card['encoder']}",
        "",
        f"- kind: {card['kind']}",
        f"- architecture: {card['arch']} with encoder {card['encoder']}",
        f"- input: {card['in_channels']} channels, patches of {card['patch_size']} px"
        + (f" at {card['mpp']} µm/px" if card.get("mpp") else ""),
        f"- classes: {', '.join(cm.get('names', []))} ({card['activation']})",
        f"- normalisation: mean {card['normalization']['mean']}, std {card['normalization']['std']}",
    ]
    if card.get("metrics"):
        lines.append(f"- metrics: {json.dumps(card['metrics'])}")
    if card.get("license"):
        lines.append(f"- licence: {card['license']}")
    if card.get("training_data"):
        lines.append(f"- training data: {card['training_data']}")
    if card.get("held_out_metrics"):
        lines.append(f"- held-out metrics: {json.dumps(card['held_out_metrics'])}")
    if card.get("description"):
        lines += ["", str(card["description"])]
    if card.get("reproduce"):
        lines += ["", "Reproduce (CPU):", "", "```bash", str(card["reproduce"]), "```"]
    lines += [
        "",
        "Load with `napari_slideseg.models.load_model(path)` (safetensors + JSON, no pickle).",
    ]
    return "\n".join(lines) + "\n"


def update_card(path: str | os.PathLike, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into a checkpoint's card (and README), atomically; return the card."""
    p = Path(path)
    card = read_card(p)
    card.update(updates)
    for name, text in (
        (CARD, json.dumps(card, indent=2, default=str)),
        ("README.md", _readme(card)),
    ):
        tmp = p / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(text)
        os.replace(tmp, p / name)
    return card


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The ``slideseg.json`` card of a checkpoint folder (clear error if missing/broken)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint")
    if p.is_file():
        raise CheckpointError(
            f"{p}: a checkpoint is a folder (model.safetensors + config.json + slideseg.json); "
            "pickled .pt/.pth files are not loaded"
        )
    card_path = p / CARD
    if not card_path.exists():
        raise CheckpointError(
            f"{p}: has no model card ({CARD}); it was not written by napari-slideseg"
        )
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{card_path}: model card is not valid JSON ({exc})") from exc
    for key in ("kind", "arch", "encoder", "in_channels", "classes", "classmap", "patch_size"):
        if key not in card:
            raise CheckpointError(f"{card_path}: model card lacks {key!r}")
    return card


def _build_from_card(card: dict[str, Any], config: dict[str, Any]) -> Any:
    kind = card["kind"]
    if kind == "semantic":
        from .factory import architectures

        cls_name = config.get("_model_class", card["arch"])
        archs = architectures()
        if cls_name not in archs:
            raise CheckpointError(f"architecture {cls_name!r} is not available in this smp")
        kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
        kwargs["encoder_weights"] = None  # never reach for the hub when loading
        from .factory import to_group_norm, trim_unused_stages

        model = trim_unused_stages(archs[cls_name](**kwargs))
        return to_group_norm(model) if config.get("_norm") == "group" else model
    if kind == "hover":
        from .factory import to_group_norm
        from .hovernet import HoVerNet

        kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
        kwargs["encoder_weights"] = None
        model = HoVerNet(**kwargs)
        return to_group_norm(model) if config.get("_norm") == "group" else model
    raise CheckpointError(f"unknown model kind {kind!r}")


def load_model(path: str | os.PathLike, *, device: str | Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild a model from a checkpoint folder without pickle or hub access.

    Returns
    -------
    tuple
        ``(model in eval mode on device, card dict)``.

    Raises
    ------
    CheckpointError
        Missing files, a card inconsistent with the config or the weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    card = read_card(p)
    cfg_path, w_path = p / CONFIG, p / WEIGHTS
    for f in (cfg_path, w_path):
        if not f.exists():
            raise CheckpointError(f"{p}: missing {f.name}")
    config = json.loads(cfg_path.read_text())
    if (
        config.get("_model_class")
        and card["kind"] == "semantic"
        and config["_model_class"] != card["arch"]
    ):
        raise CheckpointError(
            f"{p}: card says architecture {card['arch']!r} but config.json says {config['_model_class']!r}"
        )
    enc = config.get("encoder_name")
    if enc is not None and enc != card["encoder"]:
        raise CheckpointError(
            f"{p}: card says encoder {card['encoder']!r} but config.json says {enc!r}"
        )
    out_ch = config.get("classes")
    if out_ch is not None and int(out_ch) != int(card["classes"]):
        raise CheckpointError(
            f"{p}: card says {card['classes']} output channels but config.json says {out_ch}"
        )
    n_names = len((card.get("classmap") or {}).get("names", []))
    expected = 2 if card.get("activation") == "sigmoid" else int(card["classes"])
    if card["kind"] == "semantic" and n_names and n_names != expected:
        raise CheckpointError(
            f"{p}: the class map has {n_names} classes but the model outputs {card['classes']} "
            f"channel(s) with {card.get('activation')}; card and weights do not belong together"
        )
    try:
        state = load_file(str(w_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{w_path}: unreadable weights ({exc})") from exc
    model = _build_from_card(card, config)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{p}: weights do not match the model the card describes "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong shape"
            + (
                f", e.g. {(missing or unexpected or wrong)[0]!r}"
                if missing or unexpected or wrong
                else ""
            )
            + ")"
        )
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    card["source"] = str(p.resolve())  # where it came from (dask workers reload it by path)
    return model.to(device), card
