"""Starting a run: the checks before anything is written, torch, the model and its optimiser."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.device import resolve_device
from .checks import TrainError
from .config import RESUME_MAY_CHANGE, TrainConfig, resume_changes
from .data import TrainData


def check_run(config: Any, resume: bool) -> TrainConfig:
    """Refuse a run that cannot start, before anything is read or written.

    Parameters
    ----------
    config : TrainConfig
        The run's config.
    resume : bool
        Whether it continues the run in ``config.out``.

    Returns
    -------
    TrainConfig
        ``config``.

    Raises
    ------
    TrainError
        For a config that is not a :class:`TrainConfig`, no training data,
        a run folder that is a file or already holds a run (unless resumed),
        a resume with nothing to resume or other settings than the run's, or
        a folder that both trains and validates.
    """
    cfg = config
    if not isinstance(cfg, TrainConfig):
        raise TrainError(f"train() takes a TrainConfig, not {type(cfg).__name__}")
    if not cfg.manifests:
        raise TrainError("no training data: give at least one patch folder or manifest.csv")
    out = Path(cfg.out)
    last_dir = out / "last"
    if out.exists() and not out.is_dir():
        raise TrainError(f"{out}: exists and is not a folder (the run folder)")
    if not resume and (last_dir / "training_state.json").exists():
        raise TrainError(
            f"{out}: holds a previous run; resume it (resume=True / --resume) or use another folder"
        )
    if resume:
        _check_resume(cfg, out)
    same = {os.path.realpath(m) for m in cfg.manifests} & {
        os.path.realpath(m) for m in cfg.val_manifests
    }
    if same:
        raise TrainError(
            f"{sorted(same)[0]}: is both a training and a validation folder; the best epoch "
            "would be chosen on training data: give validation folders of other images"
        )
    return cfg


def _check_resume(cfg: TrainConfig, out: Path) -> None:
    """A resume needs ``last/`` and the run's own settings (apart from :data:`RESUME_MAY_CHANGE`)."""
    if not (out / "last" / "training_state.json").exists():
        raise TrainError(f"{out}: nothing to resume (no last/ checkpoint)")
    if (out / "config.json").exists():
        saved = TrainConfig.load_json(out / "config.json")  # names the file if damaged
        changed = resume_changes(saved, cfg)
        if changed:
            raise TrainError(
                f"{out / 'config.json'}: resume continues the run with its own settings, "
                f"but these differ: {'; '.join(changed)}. Drop them, or start a new run "
                f"in another folder (only {', '.join(sorted(RESUME_MAY_CHANGE))} may change)"
            )


def configure_torch(cfg: TrainConfig) -> tuple[Any, bool]:
    """Apply ``threads`` and ``deterministic``; resolve the device.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``threads``, ``deterministic``, ``device`` and ``amp``.

    Returns
    -------
    tuple of (torch.device, bool)
        The device, and whether mixed precision runs (CUDA only).
    """
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    device = resolve_device(cfg.device)
    return device, cfg.amp and device.type == "cuda"


def make_optimizer(cfg: TrainConfig, params: Any) -> Any:
    """The optimiser ``cfg.optimizer`` names, with ``lr`` and ``weight_decay``.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``optimizer``, ``lr`` and ``weight_decay``.
    params
        The model's parameters.

    Returns
    -------
    torch.optim.Optimizer
        AdamW, Adam, RAdam or SGD (Nesterov momentum 0.9).
    """
    import torch

    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True
    )


def make_scheduler(cfg: TrainConfig, opt: Any, steps_per_epoch: int) -> Any:
    """The learning-rate schedule ``cfg.scheduler`` names.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``scheduler``, ``epochs`` and ``lr``.
    opt : torch.optim.Optimizer
        The optimiser.
    steps_per_epoch : int
        For ``onecycle``, which steps per batch.

    Returns
    -------
    torch.optim.lr_scheduler.LRScheduler or None
        ``None`` for ``"none"``.
    """
    import torch

    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=max(1, steps_per_epoch)
        )
    return None


def build_model(cfg: TrainConfig, data: TrainData, device: Any) -> tuple[Any, Any, Any]:
    """The model (seeded with ``cfg.seed``), its loss and the pretrained encoder it loaded.

    Parameters
    ----------
    cfg : TrainConfig
        The architecture, encoder, loss and normalisation options.
    data : TrainData
        The output channels, class weights and nucleus types.
    device : torch.device
        Where the model goes.

    Returns
    -------
    tuple
        ``(model, loss_fn, pretrained)``, ``pretrained`` the loaded weights'
        description (``None`` without ``encoder_weights``).
    """
    import torch

    torch.manual_seed(cfg.seed)
    model_kwargs: dict[str, Any] = {}
    if cfg.decoder_channels:
        model_kwargs["decoder_channels"] = list(cfg.decoder_channels)
    if cfg.encoder_depth:
        model_kwargs["encoder_depth"] = int(cfg.encoder_depth)
    model, loss_fn = data.task.build(cfg, data, model_kwargs)
    model = model.to(device)
    pretrained = None
    if cfg.encoder_weights:
        from ..models.pretrained import load_encoder_weights

        # before GroupNorm replaces BatchNorm: the file holds BatchNorm tensors
        pretrained = load_encoder_weights(model.encoder, cfg.encoder_weights).to_dict()
    if cfg.norm == "group":
        from ..models.factory import to_group_norm

        model = to_group_norm(model).to(device)
    return model, loss_fn, pretrained


def card_base(cfg: TrainConfig, data: TrainData) -> dict[str, Any]:
    """The model card fields every checkpoint of the run shares.

    Parameters
    ----------
    cfg : TrainConfig
        The run's config.
    data : TrainData
        The classes, patch size, level, µm/px and normalisation.

    Returns
    -------
    dict
        Keyword arguments of :func:`~napari_slideseg.models.card.new_card`.
    """
    first = data.train_rows[0][1]
    return {
        "kind": cfg.kind,
        **data.task.card_fields(cfg, data),
        "encoder": cfg.encoder,
        "in_channels": 3,
        "patch_size": int(first.get("size") or 0),
        "level": int(first["level"]) if first.get("level") not in (None, "") else None,
        "mpp": data.model_mpp,
        "encoder_depth": cfg.encoder_depth,
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
    }


@dataclass
class Run:
    """A started run: its config, data, device, model and optimiser."""

    cfg: TrainConfig
    data: TrainData
    device: Any
    use_amp: bool
    model: Any
    loss_fn: Any
    pretrained: dict[str, Any] | None
    optimizer: Any
    scheduler: Any
    scaler: Any
    card_base: dict[str, Any]
    parent: dict[str, Any] | None = None

    @property
    def out(self) -> Path:
        """The run folder."""
        return Path(self.cfg.out)

    @property
    def last_dir(self) -> Path:
        """The checkpoint of the last finished epoch."""
        return self.out / "last"

    @property
    def best_dir(self) -> Path:
        """The checkpoint of the best epoch."""
        return self.out / "best"


def start_run(cfg: TrainConfig, data: TrainData, device: Any, use_amp: bool) -> Run:
    """Build the model, make the run folder with its ``config.json``, and the optimiser.

    The folder is made once the model is built, so weights that do not fit
    leave nothing behind.

    Parameters
    ----------
    cfg : TrainConfig
        The run's config.
    data : TrainData
        Its data (:func:`~.data.prepare_data`).
    device : torch.device
        Where it trains.
    use_amp : bool
        Mixed precision (a gradient scaler).

    Returns
    -------
    Run
        Ready for its first epoch.
    """
    import torch

    model, loss_fn, pretrained = build_model(cfg, data, device)
    parent = load_parent(cfg, data, model) if cfg.init_from else None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    opt = make_optimizer(cfg, model.parameters())
    sched = make_scheduler(cfg, opt, data.steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    return Run(
        cfg=cfg,
        data=data,
        device=device,
        use_amp=use_amp,
        model=model,
        loss_fn=loss_fn,
        pretrained=pretrained,
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
        card_base=card_base(cfg, data),
        parent=parent,
    )


def load_parent(cfg: TrainConfig, data: TrainData, model: Any) -> dict[str, Any]:
    """Load the weights of ``cfg.init_from`` into ``model`` (fine-tuning); describe the parent.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``init_from`` (a checkpoint folder, resolved by the config).
    data : TrainData
        The patches' classes, which the parent must have.
    model : torch.nn.Module
        The model the config builds.

    Returns
    -------
    dict
        ``path``, ``name`` and ``digest`` of the parent (for the cards).

    Raises
    ------
    TrainError
        When the parent is another kind, architecture, encoder or class
        count, or its weights do not fit the model.
    """
    from ..models.checkpoint import CheckpointError, load_model

    assert cfg.init_from is not None
    try:
        parent, card = load_model(cfg.init_from, device="cpu")
    except CheckpointError as exc:
        raise TrainError(f"init_from: {exc}") from None
    mine = {"kind": cfg.kind, "encoder": cfg.encoder}
    if cfg.kind == "semantic":  # a HoVer model's architecture is its kind
        mine["arch"] = cfg.arch
    for key, value in mine.items():
        if getattr(card, key) != value:
            raise TrainError(
                f"init_from {cfg.init_from}: the model is {key} {getattr(card, key)!r}, this "
                f"run's config says {value!r} (fine-tuning keeps the model's own)"
            )
    if card.kind == "semantic" and card.classmap.n_classes != data.classmap.n_classes:
        raise TrainError(
            f"init_from {cfg.init_from}: the model has {card.classmap.n_classes} classes, the "
            f"patches {data.classmap.n_classes}"
        )
    try:
        model.load_state_dict(parent.state_dict())
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise TrainError(
            f"init_from {cfg.init_from}: its weights do not fit the model this config builds "
            f"(norm {cfg.norm!r}, decoder_channels {cfg.decoder_channels}): {first}"
        ) from None
    return {"path": os.fspath(cfg.init_from), "name": card.name, "digest": card.digest()}
