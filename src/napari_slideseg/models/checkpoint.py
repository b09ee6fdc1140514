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
from pathlib import Path
from typing import Any

from ..io.files import atomic_path, use_default_mode
from .card import (
    CARD,
    CheckpointError,
    ModelCard,
    library_versions,
    read_card,
    write_card,
)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1  # of the safetensors metadata; the card has its own schema version

__all__ = [
    "CARD",
    "CONFIG",
    "WEIGHTS",
    "CheckpointError",
    "ModelCard",
    "library_versions",
    "load_model",
    "read_card",
    "save_checkpoint",
    "update_card",
]


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


def _check_replaceable(path: Path) -> None:
    """Refuse to replace anything at ``path`` but an empty folder or an earlier checkpoint."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise CheckpointError(
            f"{path}: exists and is not a folder; a checkpoint is a folder: give another name"
        )
    names = {p.name for p in path.iterdir()}
    if names and not {WEIGHTS, CONFIG} <= names:
        listing = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{path}: is a folder that is not a checkpoint ({listing}); it is not replaced: "
            "give another folder"
        )


def save_checkpoint(
    model: Any,
    path: str | os.PathLike,
    card: ModelCard,
    *,
    half: bool = False,
) -> Path:
    """Write ``model`` and its ``card`` to the folder ``path`` (atomically).

    Parameters
    ----------
    model : torch.nn.Module
        An smp model (its ``config`` is saved) or a model with a ``config`` dict
        (e.g. the HoVer model).
    path : str or os.PathLike
        Destination folder; written to a temporary sibling, then renamed.
    card : ModelCard
        A :class:`~napari_slideseg.models.card.ModelCard`.
    half : bool
        Store floating-point weights as float16 (half the size; loaded back
        as float32).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CheckpointError
        When ``path`` is a file, or a folder that is not an earlier checkpoint.
    """
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    _check_replaceable(path)  # then an earlier checkpoint is swapped out, never merged into
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        config = dict(getattr(model, "config", {}) or {})
        config["_model_class"] = type(model).__name__
        if getattr(model, "_slideseg_norm", None):
            config["_norm"] = model._slideseg_norm
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=str))
        state = _state_to_cpu(model, torch.float16 if half else None)
        save_file(
            state, str(tmp / WEIGHTS), metadata={"format": "pt", "slideseg": str(FORMAT_VERSION)}
        )
        use_default_mode(tmp / WEIGHTS)
        card = card.replace(weights_dtype="float16" if half else "float32", n_tensors=len(state))
        write_card(tmp, card)
    return path


def update_card(path: str | os.PathLike, **changes: Any) -> ModelCard:
    """Change fields of a checkpoint's card (and README), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder.
    **changes
        Card fields to change.

    Returns
    -------
    ModelCard
        The new card.
    """
    card = read_card(path).replace(**changes)
    write_card(path, card)
    return card


def _build_smp(card: ModelCard, config: dict[str, Any]) -> Any:
    """A segmentation-models-pytorch model of the class ``config.json`` names."""
    from .factory import architectures, trim_unused_stages

    cls_name = config.get("_model_class", card.arch)
    archs = architectures()
    if cls_name not in archs:
        raise CheckpointError(f"architecture {cls_name!r} is not available in this smp")
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    kwargs["encoder_weights"] = None  # never reach for the hub when loading
    return trim_unused_stages(archs[cls_name](**kwargs))


def _build_hovernet(card: ModelCard, config: dict[str, Any]) -> Any:
    """A :class:`~napari_slideseg.models.hovernet.HoVerNet` from ``config.json``."""
    from .hovernet import HoVerNet

    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    kwargs["encoder_weights"] = None
    return HoVerNet(**kwargs)


#: How each model card ``kind`` is rebuilt from its ``config.json`` (the model class, by name).
BUILDERS = {"semantic": _build_smp, "hover": _build_hovernet}
#: The kinds whose ``config.json`` names an architecture that must match the card's ``arch``.
ARCH_CHECKED_KINDS = frozenset({"semantic"})


def _build_from_card(card: ModelCard, config: dict[str, Any]) -> Any:
    from .factory import to_group_norm

    build = BUILDERS.get(card.kind)
    if build is None:
        raise CheckpointError(f"unknown model kind {card.kind!r}")
    model = build(card, config)
    return to_group_norm(model) if config.get("_norm") == "group" else model


def load_model(path: str | os.PathLike, *, device: str | Any = "cpu") -> tuple[Any, ModelCard]:
    """Rebuild a model from a checkpoint folder without pickle or hub access.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder, or a bundled model's name.
    device : str or torch.device
        Where the model is moved.

    Returns
    -------
    tuple
        ``(model in eval mode on device, its ModelCard)`` (the card's ``source``
        is the folder, ``weights_sha256`` the weights' hash).

    Raises
    ------
    CheckpointError
        Missing files, a card inconsistent with the config or the weights, an
        invalid ``config.json`` (not JSON, not an object, or arguments the
        architecture refuses), weights holding NaN/inf, or a model whose
        outputs on a small probe batch are not finite (see :func:`_probe`:
        one ``1 x C x 64 x 64`` forward on the CPU, about 0.05-0.2 s for
        the bundled models). The message names the file. A card with
        ``std <= 0`` is refused when the card is read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.exists() and isinstance(path, str):
        from .bundled import resolve_model

        p = resolve_model(path)  # a bundled model's name, or an error naming the choices
    card = read_card(p)
    cfg_path, w_path = p / CONFIG, p / WEIGHTS
    for f in (cfg_path, w_path):
        if not f.exists():
            raise CheckpointError(f"{p}: missing {f.name}")
    config = _read_config(cfg_path)
    if (
        config.get("_model_class")
        and card.kind in ARCH_CHECKED_KINDS
        and config["_model_class"] != card.arch
    ):
        raise CheckpointError(
            f"{p}: card says architecture {card.arch!r} but config.json says {config['_model_class']!r}"
        )
    enc = config.get("encoder_name")
    if enc is not None and enc != card.encoder:
        raise CheckpointError(
            f"{p}: card says encoder {card.encoder!r} but config.json says {enc!r}"
        )
    out_ch = config.get("classes")
    if out_ch is not None and (not isinstance(out_ch, int) or isinstance(out_ch, bool)):
        raise CheckpointError(f"{cfg_path}: 'classes' must be an integer, not {out_ch!r}")
    if out_ch is not None and int(out_ch) != card.classes:
        raise CheckpointError(
            f"{p}: card says {card.classes} output channels but config.json says {out_ch}"
        )
    try:
        state = load_file(str(w_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{w_path}: unreadable weights ({exc})") from exc
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(
            f"{w_path}: {len(bad)} weight tensor(s) hold NaN or infinite values "
            f"(e.g. {bad[0]!r}); the checkpoint is unusable"
        )
    try:
        model = _build_from_card(card, config)
    except CheckpointError as exc:
        raise CheckpointError(f"{cfg_path}: {exc}") from exc
    except Exception as exc:  # smp/timm constructors: TypeError, ValueError, KeyError, ...
        raise CheckpointError(
            f"{cfg_path}: the model cannot be built from this config ({type(exc).__name__}: {exc})"
        ) from exc
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
    _probe(model, card, p)
    return model.to(device), card  # card.source: dask workers reload it by path


#: Side of the probe batch: the card's patch size, capped here (and a multiple of 32).
PROBE_MAX_SIDE = 64
_PROBE_MIN_SIDE = 32


def _read_config(cfg_path: Path) -> dict[str, Any]:
    """``config.json`` as a dict, or a CheckpointError naming it."""
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{cfg_path}: not a readable JSON config ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{cfg_path}: the config must be a JSON object, not {type(config).__name__}"
        )
    return config


def _probe(model: Any, card: ModelCard, where: Path) -> None:
    """One small forward pass (seeded noise, eval mode, no autograd); refuse non-finite outputs.

    The batch is ``1 x C x S x S`` with ``S`` the card's patch size capped at
    :data:`PROBE_MAX_SIDE` (rounded down to a multiple of 32, at least 32):
    about 0.05-0.2 s on one CPU for the bundled models. It catches
    weights that pass the finiteness check but still produce NaN/inf (e.g.
    overflowing float16 statistics), and a model that cannot run at all.
    """
    import torch

    side = max(_PROBE_MIN_SIDE, min(PROBE_MAX_SIDE, int(card.patch_size or 0)) // 32 * 32)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, card.in_channels, side, side, generator=gen)
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as exc:
        raise CheckpointError(
            f"{where}: the model fails on a {side} x {side} probe batch "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    tensors = (
        list(out.values())
        if isinstance(out, dict)
        else (list(out) if isinstance(out, list | tuple) else [out])
    )
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(t.isfinite().all()):
            raise CheckpointError(
                f"{where}: the model gives NaN or infinite outputs on a probe batch "
                "(broken weights or normalisation statistics)"
            )
