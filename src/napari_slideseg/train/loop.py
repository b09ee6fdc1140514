"""Training as a generator of progress events, with a resumable run directory.

:func:`train` yields :class:`~napari_slideseg.progress.Progress` events
(``stage="train"`` per batch, ``"val"`` per validation batch, ``"epoch"`` at
the end of each epoch with the metrics row in ``info``) and returns a
:class:`TrainResult`. The widget and the CLI drive the same generator;
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

import csv
import json
import math
import os
import time
import warnings
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.errors import SlideSegError
from ..io.palette import ClassMap
from ..models.card import NUCLEUS_CLASSMAP
from ..models.device import resolve_device
from ..normalization import IMAGENET, UNIT
from ..progress import Progress, drain

OPTIMIZERS = ("adamw", "adam", "sgd", "radam")
SCHEDULERS = ("cosine", "plateau", "onecycle", "none")
MONITORS = ("val_loss", "val_dice")
MANIFEST_COLUMNS = ("image", "mask")  # what training reads from every manifest row


class TrainError(SlideSegError, ValueError):
    """Invalid training configuration or data."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-serialisable).

    Data: ``manifests`` (patch folders or manifest.csv files). Split:
    ``val_manifests`` if given, else ``val_fraction`` of the slides
    (``split_by="slide"``) or patches (``"patch"``), or fold ``fold`` of
    ``folds`` (k-fold over the same groups). Model: smp ``arch`` + ``encoder``;
    ``binary=True`` trains a 1-channel sigmoid model for a 2-class map.
    Loss: names from :mod:`napari_slideseg.models.losses`, ``class_weights``
    a list or ``"auto"`` (inverse sqrt of the manifest's class fractions).
    Augmentation: preset ``augment`` and an optional zoom range
    ``scale_range`` (see :func:`napari_slideseg.augment.build_augmentation`).
    ``device``: ``auto`` (cuda > mps > cpu) or explicit (``cuda:1``).
    Resolution: the card records the µm/px the patch manifests state; patch
    folders whose µm/px differ by more than 10 % are refused unless
    ``mixed_mpp=True`` (then the card holds the patches' median).
    """

    manifests: list[str] = field(default_factory=list)
    out: str = "slideseg-run"
    val_manifests: list[str] = field(default_factory=list)
    val_fraction: float = 0.2
    split_by: str = "slide"
    fold: int | None = None
    folds: int = 5
    arch: str = "Unet"
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    input_norm: str = "auto"
    binary: bool = False
    loss: str = "ce+dice"
    class_weights: list[float] | str | None = None
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    epochs: int = 10
    batch_size: int = 8
    augment: str = "flips"
    scale_range: list[float] | None = None
    patience: int | None = None
    monitor: str = "val_loss"
    amp: bool = True
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threads: int | None = None
    num_workers: int = 0
    max_steps: int | None = None
    name: str = ""
    kind: str = "semantic"
    norm: str = "batch"
    bn_recalibrate: int = 16
    decoder_channels: list[int] | None = None
    encoder_depth: int | None = None
    hover_weights: dict[str, float] | None = None
    mixed_mpp: bool = False

    def __post_init__(self) -> None:
        from .. import validate as v
        from ..augment import PRESETS

        err = TrainError
        if isinstance(self.manifests, str | os.PathLike):
            self.manifests = [self.manifests]
        if isinstance(self.val_manifests, str | os.PathLike):
            self.val_manifests = [self.val_manifests]
        for name in ("manifests", "val_manifests"):
            value = getattr(self, name) or []
            if not isinstance(value, list | tuple) or not all(
                isinstance(m, str | os.PathLike) for m in value
            ):
                raise err(f"{name} must be a list of folder or manifest paths, not {value!r}")
            setattr(self, name, [os.fspath(m) for m in value])
        self.out = os.fspath(self.out)
        v.choice("optimizer", self.optimizer, OPTIMIZERS, error=err)
        v.choice("scheduler", self.scheduler, SCHEDULERS, error=err)
        v.choice("monitor", self.monitor, MONITORS, error=err)
        v.choice("split_by", self.split_by, ("slide", "patch"), error=err)
        v.choice("norm", self.norm, ("batch", "group"), error=err)
        v.choice("kind", self.kind, ("semantic", "hover"), error=err)
        v.choice("augment", self.augment, PRESETS, error=err)
        self.val_fraction = v.fraction("val_fraction", self.val_fraction, hi_open=True, error=err)
        self.folds = v.int_at_least("folds", self.folds, 2, error=err)
        if self.fold is not None:
            self.fold = v.int_in_range("fold", self.fold, 0, self.folds - 1, error=err)
        self.lr = v.positive("lr", self.lr, error=err)
        self.weight_decay = v.nonneg("weight_decay", self.weight_decay, error=err)
        self.epochs = v.positive_int("epochs", self.epochs, error=err)
        self.batch_size = v.positive_int("batch_size", self.batch_size, error=err)
        self.seed = v.int_in_range("seed", self.seed, 0, 2**31 - 1, error=err)
        self.num_workers = v.nonneg_int("num_workers", self.num_workers, error=err)
        self.bn_recalibrate = v.nonneg_int("bn_recalibrate", self.bn_recalibrate, error=err)
        for name in ("patience", "threads", "max_steps"):
            if getattr(self, name) is not None:
                setattr(self, name, v.positive_int(name, getattr(self, name), error=err))
        v.choice("input_norm", self.input_norm, tuple(INPUT_NORMS), error=err)
        if self.encoder_weights is not None:
            w = self.encoder_weights
            if not isinstance(w, str | os.PathLike) or not os.fspath(w):
                raise TrainError(
                    f"encoder_weights must be the path of a local .safetensors file, not {w!r}"
                )
            w = os.fspath(w)
            if not Path(w).exists():
                hint = (
                    "; weights are never downloaded: name a local .safetensors file"
                    if os.sep not in w and not w.endswith(".safetensors")
                    else ""
                )
                raise TrainError(f"{w}: encoder_weights: no such file{hint}")
            self.encoder_weights = w
        if self.encoder_depth is not None:
            self.encoder_depth = v.int_in_range(
                "encoder_depth", self.encoder_depth, 3, 5, error=err
            )
        if self.decoder_channels is not None:
            dc = self.decoder_channels
            if isinstance(dc, str | bytes) or not isinstance(dc, Sequence) or not dc:
                raise TrainError(
                    f"decoder_channels must be a list of integers >= 1 (deepest first), not {dc!r}"
                )
            self.decoder_channels = [
                v.positive_int(f"decoder_channels[{i}]", c, error=err) for i, c in enumerate(dc)
            ]
            depth = self.encoder_depth or 5
            if (
                self.kind == "semantic"
                and self.arch.lower().startswith("unet")
                and len(dc) != depth
            ):
                raise TrainError(
                    f"decoder_channels must have one width per encoder stage ({depth}, "
                    f"encoder_depth), not {len(dc)}"
                )
        cw = self.class_weights
        if cw is not None and cw != "auto":
            if isinstance(cw, str):
                raise TrainError(
                    f"class_weights must be 'auto' or a list of positive numbers, not {cw!r}"
                )
            self.class_weights = v.positive_numbers("class_weights", cw, error=err)
        if self.hover_weights is not None:
            if not isinstance(self.hover_weights, dict):
                raise TrainError(
                    f"hover_weights must be a mapping of loss term to weight, not {self.hover_weights!r}"
                )
            self.hover_weights = {
                str(k): v.nonneg(f"hover_weights[{k!r}]", w, error=err)
                for k, w in self.hover_weights.items()
            }
        for name in ("arch", "encoder", "loss", "device", "name"):
            if not isinstance(getattr(self, name), str):
                raise TrainError(f"{name} must be text, not {getattr(self, name)!r}")
        if self.scale_range is not None:
            try:
                sr = [float(x) for x in self.scale_range]
            except (TypeError, ValueError):
                sr = []
            if len(sr) != 2 or not 0 < sr[0] <= 1 <= sr[1] or not all(map(math.isfinite, sr)):
                raise TrainError(
                    f"scale_range must be two numbers lo <= 1 <= hi with lo > 0, not {self.scale_range}"
                )
            self.scale_range = sr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise TrainError(f"a training config is a JSON object, not {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a run's ``config.json``; any problem is a :class:`TrainError` naming the file."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainError(f"{p}: not a valid training config (invalid JSON: {exc})") from None
        except OSError as exc:
            raise TrainError(
                f"{p}: cannot read the training config ({exc.strerror or exc})"
            ) from None
        try:
            return cls.from_dict(doc)
        except TypeError as exc:
            raise TrainError(f"{p}: not a valid training config ({exc})") from None
        except TrainError as exc:
            raise TrainError(f"{p}: not a valid training config: {exc}") from None


#: Options a resumed run may change (how long and where it runs, not what it learns).
RESUME_MAY_CHANGE = frozenset(
    {"epochs", "patience", "threads", "device", "num_workers", "max_steps", "out", "amp"}
)


def resume_changes(saved: TrainConfig, given: TrainConfig) -> list[str]:
    """``"lr 0.5 (run: 0.001)"`` for each option that differs, apart from :data:`RESUME_MAY_CHANGE`."""
    a, b = saved.to_dict(), given.to_dict()
    return [
        f"{k} {b[k]!r} (run: {a[k]!r})"
        for k in a
        if k not in RESUME_MAY_CHANGE and k in b and a[k] != b[k]
    ]


#: Input normalisations: ``auto`` takes what the encoder weights' sidecar JSON states,
#: else ImageNet's; ``unit`` scales to [-1, 1] (mean = std = 0.5 on [0, 1] images).
INPUT_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "auto": None,
    "imagenet": (IMAGENET["mean"], IMAGENET["std"]),
    "unit": (UNIT["mean"], UNIT["std"]),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def _input_norm(cfg: TrainConfig) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """The (mean, std) patches are normalised with, and where it came from."""
    from ..models.pretrained import weights_normalization

    if cfg.input_norm != "auto":
        mean, std = INPUT_NORMS[cfg.input_norm]  # type: ignore[misc]
        return mean, std, f"input_norm={cfg.input_norm}"
    if cfg.encoder_weights:
        found = weights_normalization(cfg.encoder_weights)
        if found is not None:
            return tuple(found[0]), tuple(found[1]), f"{Path(cfg.encoder_weights).name} (sidecar)"
        warnings.warn(
            f"{cfg.encoder_weights}: no sidecar JSON states the input normalisation these "
            "weights expect; using ImageNet mean/std. Give input_norm (--input-norm "
            "imagenet|unit|none) if they were trained otherwise",
            UserWarning,
            stacklevel=3,
        )
    mean, std = INPUT_NORMS["imagenet"]  # type: ignore[misc]
    return mean, std, "imagenet (default)"


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_value: float
    history: list[dict[str, Any]]
    stopped_early: bool = False
    monitor: str = "val_loss"  # what best_value is: train_loss when there was no validation


# -----------------------------------------------------------------------------
# data and splits
# -----------------------------------------------------------------------------
def split_groups(
    groups: Sequence[str],
    *,
    val_fraction: float = 0.2,
    fold: int | None = None,
    folds: int = 5,
    seed: int = 0,
) -> tuple[list[int], list[int]]:
    """Train/validation indices keeping each group (slide or patch) on one side.

    Groups are shuffled with ``seed``; for k-fold, group ``j`` (in shuffled
    order) goes to fold ``j % folds`` and ``fold`` is the validation fold, so
    the K validation sets are disjoint and together cover every item.
    """
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    if fold is not None:
        val_groups = {g for j, g in enumerate(order) if j % folds == fold}
    else:
        n_val = (
            max(1, round(val_fraction * len(order))) if len(order) > 1 and val_fraction > 0 else 0
        )
        val_groups = set(order[:n_val])
    train = [i for i, g in enumerate(groups) if g not in val_groups]
    val = [i for i, g in enumerate(groups) if g in val_groups]
    return train, val


def _read_rows(manifests: Sequence[str]) -> list[tuple[Path, dict[str, str]]]:
    from ..patching import read_manifest

    rows = []
    for m in manifests:
        p = Path(m)
        base = p if p.is_dir() else p.parent
        f = p / "manifest.csv" if p.is_dir() else p
        try:
            got = read_manifest(p)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise TrainError(f"{f}: not a patch manifest (not a CSV file: {exc})") from None
        if not got:
            raise TrainError(f"{f}: the manifest lists no patches")
        lacking = [c for c in MANIFEST_COLUMNS if c not in got[0]]
        if lacking or None in got[0]:
            problem = (
                f"no {', '.join(lacking)} column{'s' if len(lacking) > 1 else ''}"
                if lacking
                else "rows with more fields than the header"
            )
            raise TrainError(f"{f}: not a patch manifest ({problem}; make one with slideseg patch)")
        rows += [(base, r) for r in got]
    return rows


def _saved_classmap(manifests: Sequence[str]) -> ClassMap | None:
    """The ``classmap.json`` written next to the first manifest that has one."""
    for m in manifests:
        p = Path(m)
        f = (p if p.is_dir() else p.parent) / "classmap.json"
        if f.exists():
            return ClassMap.load_json(f)
    return None


def _classmap_for(manifests: Sequence[str]) -> ClassMap:
    """The patch folder's class map, or one with distinct default colours per manifest class."""
    saved = _saved_classmap(manifests)
    if saved is not None:
        return saved
    rows = _read_rows(manifests[:1])
    names = [k[5:] for k in rows[0][1] if k.startswith("frac_")]
    if not names:
        raise TrainError(f"{manifests[0]}: the manifest names no classes (no frac_ columns)")
    warnings.warn(
        f"{manifests[0]}: no classmap.json beside the manifest; using default colours for "
        f"{names} (extract patches with a class map to keep the mask's colours)",
        UserWarning,
        stacklevel=3,
    )
    return ClassMap.default(len(names), names)


def training_mpp(
    rows: Sequence[tuple[Path, dict[str, str]]], mixed: bool = False
) -> tuple[float | None, dict[str, float | None]]:
    """µm/px of the training patches (from the manifests) and each folder's value.

    Folders whose values differ by more than 10 % are refused unless ``mixed``
    (then the median over the patches is returned). ``None`` when no manifest
    states it.
    """
    per: dict[str, float | None] = {}
    values = []
    for base, r in rows:
        v = r.get("mpp")
        f = float(v) if v not in (None, "") else None
        key = str(base)
        if key not in per or per[key] is None:
            per[key] = f
        if f is not None:
            values.append(f)
    if not values:
        return None, per
    lo, hi = min(values), max(values)
    if hi > lo * 1.1 and not mixed:
        listing = ", ".join(f"{k}: {v:g}" for k, v in per.items() if v is not None)
        raise TrainError(
            f"the patch folders were cut at different resolutions ({listing} µm/px); a model "
            "learns one scale: re-extract them at one µm/px (--zoom / --target-mpp), or allow "
            "it with mixed_mpp=True (--mixed-mpp)"
        )
    unknown = [k for k, v in per.items() if v is None]
    if unknown:
        warnings.warn(
            f"patch folder(s) {unknown} state no µm/px; the card records {float(np.median(values)):g} "
            "from the others",
            UserWarning,
            stacklevel=3,
        )
    return float(np.median(values)), per


class _RowsDataset:
    """PatchDataset over pre-read manifest rows (so splits need no re-reading)."""

    def __new__(
        cls,
        rows: list[tuple[Path, dict[str, str]]],
        transform: Any,
        seed: int,
        hover: bool = False,
        n_classes: int | None = None,
        norm: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> Any:
        from ..dataset import PatchDataset, load_ref

        mean, std = norm or INPUT_NORMS["imagenet"]  # type: ignore[misc]

        zcache: dict[Path, Any] = {}

        def load(item: tuple[Path, dict[str, str]]) -> tuple[np.ndarray, np.ndarray | None]:
            base, row = item
            img = load_ref(base, row["image"], zcache)
            mask = load_ref(base, row["mask"], zcache) if row.get("mask") else None
            if n_classes is not None and mask is not None and mask.size:
                top = int(mask.max())
                if top >= n_classes:
                    raise TrainError(
                        f"{base / row['mask']}: mask value {top} is not a class (the patch set "
                        f"has {n_classes} classes, values 0..{n_classes - 1}); re-extract the "
                        "patches with the right class map"
                    )
            if hover and mask is not None:
                # instance ids and types travel together through the augmentation
                from ..instances.targets import UNKNOWN_TYPE

                types = (
                    load_ref(base, row["types"], zcache)
                    if row.get("types")
                    else np.full(mask.shape, UNKNOWN_TYPE, np.uint16)
                )
                mask = np.stack([mask.astype(np.uint16), types.astype(np.uint16)], -1)
            return img, mask

        target_fn = None
        if hover:
            from ..instances.targets import hover_target_array

            target_fn = hover_target_array
        return PatchDataset(
            rows, load, transform=transform, seed=seed, target_fn=target_fn, mean=mean, std=std
        )


# -----------------------------------------------------------------------------
# metrics
# -----------------------------------------------------------------------------
def _stats(logits: Any, target: Any, n_classes: int, binary: bool) -> Any:
    import segmentation_models_pytorch as smp
    import torch

    pred = (logits[:, 0] > 0).long() if binary else logits.argmax(1)
    tp, fp, fn, tn = smp.metrics.get_stats(
        pred, target.long(), mode="multiclass", num_classes=n_classes
    )
    return torch.stack([tp.sum(0), fp.sum(0), fn.sum(0), tn.sum(0)])


def _scores(stats: Any, names: Sequence[str], background: int) -> dict[str, float]:
    tp, fp, fn = (stats[i].double() for i in range(3))
    dice = (2 * tp / (2 * tp + fp + fn)).nan_to_num(1.0)
    iou = (tp / (tp + fp + fn)).nan_to_num(1.0)
    out = {}
    for i, n in enumerate(names):
        out[f"dice_{n}"] = float(dice[i])
        out[f"iou_{n}"] = float(iou[i])
    fg = [i for i in range(len(names)) if i != background] or list(range(len(names)))
    out["mean_dice"] = float(dice[fg].mean())
    out["mean_iou"] = float(iou[fg].mean())
    return out


# -----------------------------------------------------------------------------
# optimiser state without pickle
# -----------------------------------------------------------------------------
def _save_state(path: Path, optimizer: Any, scheduler: Any, extra: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    meta_state: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        meta_state[str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta_state[str(pid)][k] = v
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "training_state.safetensors"))
    doc = {
        "param_groups": sd["param_groups"],
        "state_scalars": meta_state,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        **extra,
    }
    (path / "training_state.json").write_text(json.dumps(doc, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_state(path: Path, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path / "training_state.safetensors"))
    doc = json.loads((path / "training_state.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, scalars in doc["state_scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": doc["param_groups"]})
    if scheduler is not None and doc.get("scheduler") is not None:
        scheduler.load_state_dict(doc["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return doc


# -----------------------------------------------------------------------------
# the loop
# -----------------------------------------------------------------------------
def _recalibrate_bn(model: Any, dataset: Any, cfg: TrainConfig, device: Any, seed: int) -> None:
    """Re-estimate batch-norm running statistics on un-augmented training patches.

    With small batches, few images and strong colour augmentation the running
    means and variances drift away from what clean images produce, and the
    model in eval mode (validation, inference) can collapse while it works
    in train mode. Averaging the statistics of ``cfg.bn_recalibrate`` clean
    batches (cumulative, momentum None), with the weights fixed, removes the
    mismatch ("precise BN"). Runs before validation each epoch.
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


def _make_optimizer(cfg: TrainConfig, params: Any) -> Any:
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


def _make_scheduler(cfg: TrainConfig, opt: Any, steps_per_epoch: int) -> Any:
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


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    keys = list(history[0])
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def _plot(path: Path, history: list[dict[str, Any]]) -> None:
    # Agg canvas on a bare Figure: no pyplot, no backend switch (this runs in
    # worker threads next to napari's Qt canvas).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(ep, [h["mean_dice"] for h in history], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation mean Dice")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


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
    """
    import torch
    from torch.utils.data import DataLoader

    from ..augment import build_augmentation
    from ..models.card import new_card
    from ..models.checkpoint import save_checkpoint
    from ..models.factory import build_model
    from ..models.losses import build_loss, class_weights_from_fractions

    cfg = config
    if not isinstance(cfg, TrainConfig):
        raise TrainError(f"train() takes a TrainConfig, not {type(cfg).__name__}")
    if not cfg.manifests:
        raise TrainError("no training data: give at least one patch folder or manifest.csv")
    out = Path(cfg.out)
    last_dir, best_dir = out / "last", out / "best"
    if out.exists() and not out.is_dir():
        raise TrainError(f"{out}: exists and is not a folder (the run folder)")
    if not resume and (last_dir / "training_state.json").exists():
        raise TrainError(
            f"{out}: holds a previous run; resume it (resume=True / --resume) or use another folder"
        )
    if resume:
        if not (last_dir / "training_state.json").exists():
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
    same = {os.path.realpath(m) for m in cfg.manifests} & {
        os.path.realpath(m) for m in cfg.val_manifests
    }
    if same:
        raise TrainError(
            f"{sorted(same)[0]}: is both a training and a validation folder; the best epoch "
            "would be chosen on training data: give validation folders of other images"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    device = resolve_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"

    # -- data (checked before the run folder is made: a refused run leaves nothing) --
    rows = _read_rows(cfg.manifests)
    if cfg.val_manifests:
        train_rows, val_rows = rows, _read_rows(cfg.val_manifests)
    else:
        groups = (
            [r.get("slide") or f"{b}/{r['image']}" for b, r in rows]
            if cfg.split_by == "slide"
            else [f"{b}/{r['image']}" for b, r in rows]
        )
        if cfg.split_by == "slide" and len(set(groups)) < 2:
            groups = [f"{b}/{r['image']}" for b, r in rows]  # one slide: split its patches
        tr, va = split_groups(
            groups, val_fraction=cfg.val_fraction, fold=cfg.fold, folds=cfg.folds, seed=cfg.seed
        )
        train_rows, val_rows = [rows[i] for i in tr], [rows[i] for i in va]
    if not train_rows:
        raise TrainError("the split left no training patches")
    if not val_rows:
        warnings.warn(
            f"no validation patches ({len(rows)} patch(es), val_fraction {cfg.val_fraction:g}): "
            "the best epoch is chosen on the training loss; give validation folders "
            "(val_manifests, --val) or more patches",
            UserWarning,
            stacklevel=2,
        )
    inst_rows = [b for b, r in rows if "n_instances" in r]
    if cfg.kind == "hover" and len(inst_rows) < len(rows):
        bad = next(b for b, r in rows if "n_instances" not in r)
        raise TrainError(
            f"{bad}: holds class patches, but kind 'hover' trains on nucleus instance "
            "patches: extract them with instances=True (slideseg patch --instances)"
        )
    if cfg.kind == "semantic" and inst_rows:
        raise TrainError(
            f"{inst_rows[0]}: holds nucleus instance patches (object ids, not classes): "
            "train them with kind 'hover' (--kind hover)"
        )
    missing = next((b for b, r in train_rows if not r.get("mask")), None)
    if missing is not None:
        raise TrainError(
            f"{missing}: every training patch needs a mask (the manifest has rows without one)"
        )
    hover = cfg.kind == "hover"
    if hover:
        type_cm, n_types = _hover_classmap(cfg.manifests, train_rows)
    cm = NUCLEUS_CLASSMAP if hover else _classmap_for(cfg.manifests)
    names = list(cm.names)
    n_classes = len(names)
    background = cm.background
    model_mpp, folder_mpp = training_mpp(train_rows + val_rows, cfg.mixed_mpp)
    if model_mpp is None:
        warnings.warn(
            "the patch manifests state no µm/px (the slide had none): the model card will not "
            "know its resolution and inference cannot match it; extract patches with --mpp, "
            "or set it later with slideseg pack --mpp",
            UserWarning,
            stacklevel=2,
        )
    binary = cfg.binary and n_classes == 2 and not hover
    out_ch = 1 if binary else n_classes
    weights = cfg.class_weights
    if weights == "auto":
        fr = np.array(
            [[float(r.get(f"frac_{n}") or 0) for n in names] for _, r in train_rows]
        ).mean(0)
        weights = class_weights_from_fractions(fr)
    elif weights is not None and not hover and len(weights) != out_ch:
        raise TrainError(
            f"class_weights must have {out_ch} values (one per "
            f"{'output channel' if binary else 'class'}: {', '.join(names)}), not {len(weights)}"
        )
    aug = build_augmentation(cfg.augment, cfg.seed, cfg.scale_range)
    nc = None if hover else n_classes
    mean, std, norm_source = _input_norm(cfg)
    norm = (mean, std)
    train_ds = _RowsDataset(train_rows, aug, cfg.seed, hover, nc, norm)
    calib_ds = _RowsDataset(train_rows, None, cfg.seed, hover, nc, norm)  # un-augmented, for BN
    val_ds = _RowsDataset(val_rows, None, cfg.seed, hover, nc, norm) if val_rows else None
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    if cfg.max_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)

    # -- model -----------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model_kwargs: dict[str, Any] = {}
    if cfg.decoder_channels:
        model_kwargs["decoder_channels"] = list(cfg.decoder_channels)
    if cfg.encoder_depth:
        model_kwargs["encoder_depth"] = int(cfg.encoder_depth)
    if hover:
        from ..models.hovernet import HoVerNet
        from ..models.losses import HoverLoss

        model = HoVerNet(cfg.encoder, encoder_weights=None, n_types=n_types, **model_kwargs).to(
            device
        )
        loss_fn = HoverLoss(cfg.hover_weights)
    else:
        model = build_model(
            cfg.arch,
            cfg.encoder,
            classes=out_ch,
            encoder_weights=None,
            **model_kwargs,
        ).to(device)
        loss_fn = build_loss(cfg.loss, classes=out_ch, class_weights=weights)
    pretrained = None
    if cfg.encoder_weights:
        from ..models.pretrained import load_encoder_weights

        # before GroupNorm replaces BatchNorm: the file holds BatchNorm tensors
        pretrained = load_encoder_weights(model.encoder, cfg.encoder_weights).to_dict()
    if cfg.norm == "group":
        from ..models.factory import to_group_norm

        model = to_group_norm(model).to(device)
    # the run folder is made once the model is built (weights that do not fit leave nothing)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    opt = _make_optimizer(cfg, model.parameters())
    sched = _make_scheduler(cfg, opt, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    first = train_rows[0][1]
    card_base = {
        "kind": cfg.kind,
        "arch": "HoVerNet" if hover else cfg.arch,
        "encoder": cfg.encoder,
        "in_channels": 3,
        "classes": n_types if hover else out_ch,
        "classmap": type_cm if hover else cm,
        "patch_size": int(first.get("size") or 0),
        "level": int(first["level"]) if first.get("level") not in (None, "") else None,
        "mpp": model_mpp,
        "encoder_depth": cfg.encoder_depth,
        "normalization": {"mean": list(mean), "std": list(std)},
    }
    history: list[dict[str, Any]] = []
    start_epoch, best_value, best_epoch, bad_epochs = 0, math.inf, -1, 0
    sign = 1.0 if cfg.monitor == "val_loss" else -1.0
    if resume:
        if not (last_dir / "training_state.json").exists():
            raise TrainError(f"{out}: nothing to resume (no last/ checkpoint)")
        from safetensors.torch import load_file

        weights_file = last_dir / "model.safetensors"
        try:
            model.load_state_dict(load_file(str(weights_file), device=str(device)))
        except (OSError, RuntimeError, ValueError) as exc:
            raise TrainError(
                f"{weights_file}: cannot resume from these weights ({_first_line(exc)}); "
                "was the run started with another model (arch, encoder, classes)?"
            ) from None
        try:
            doc = _load_state(last_dir, opt, sched)
            if cfg.scheduler == "cosine" and sched.T_max != cfg.epochs:
                # a resumed run given another epoch count anneals to its new last epoch
                sched.T_max = cfg.epochs
            start_epoch = int(doc["epoch"]) + 1
            best_value, best_epoch = float(doc["best_value"]), int(doc["best_epoch"])
            bad_epochs, history = int(doc["bad_epochs"]), list(doc["history"])
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrainError(
                f"{last_dir / 'training_state.json'}: not a usable training state "
                f"({type(exc).__name__}: {_first_line(exc)})"
            ) from None
        yield Progress(
            "resume",
            start_epoch,
            cfg.epochs,
            f"resumed after epoch {start_epoch}: continuing with epoch {start_epoch + 1}",
            {"epoch": start_epoch},
        )

    stopped = False
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)
        if hasattr(aug, "set_random_seed"):
            aug.set_random_seed(cfg.seed * 1000 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = DataLoader(
            train_ds,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=gen,
            drop_last=len(train_ds) > cfg.batch_size,
            num_workers=cfg.num_workers,
        )
        model.train()
        total, seen = 0.0, 0
        term_sums: dict[str, float] = {}
        for step, (x, y) in enumerate(loader):
            if cfg.max_steps and step >= cfg.max_steps:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(x)
                loss = loss_fn(logits, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            if cfg.scheduler == "onecycle":
                sched.step()
            lv = float(loss.detach())
            total += lv * len(x)
            seen += len(x)
            for k, v in getattr(loss_fn, "last", {}).items():
                term_sums[k] = term_sums.get(k, 0.0) + v * len(x)
            yield Progress(
                "train",
                step + 1,
                steps_per_epoch,
                f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps_per_epoch} loss {lv:.4f}",
                {"epoch": epoch, "step": step, "loss": lv},
            )
        train_loss = total / max(seen, 1)
        if cfg.bn_recalibrate:
            _recalibrate_bn(model, calib_ds, cfg, device, cfg.seed * 1000 + epoch)

        # -- validation --------------------------------------------------------------
        model.eval()
        vtotal, vseen, stats = 0.0, 0, None
        if val_ds is not None and len(val_ds):
            vloader = DataLoader(
                val_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers
            )
            with torch.inference_mode():
                for vstep, (x, y) in enumerate(vloader):
                    x, y = x.to(device), y.to(device)
                    with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                        logits = model(x)
                        vloss = loss_fn(logits, y)
                    vtotal += float(vloss) * len(x)
                    vseen += len(x)
                    if hover:  # NP branch vs nucleus/background
                        logits, y = logits[:, :2], y[:, 0].long()
                    s = _stats(logits.float(), y, n_classes, binary)
                    stats = s if stats is None else stats + s
                    yield Progress(
                        "val", vstep + 1, len(vloader), f"validating {vstep + 1}/{len(vloader)}"
                    )
        val_loss = vtotal / vseen if vseen else float("nan")
        scores = (
            _scores(stats, names, background)
            if stats is not None
            else {"mean_dice": float("nan"), "mean_iou": float("nan")}
        )
        if cfg.scheduler == "cosine":
            sched.step()
        elif cfg.scheduler == "plateau":
            sched.step(val_loss if vseen else train_loss)
        row = {
            "epoch": epoch + 1,
            "train_loss": round(train_loss, 6),
            "val_loss": round(val_loss, 6),
            **{k: round(v, 6) for k, v in scores.items()},
            **{f"train_{k}": round(v / max(seen, 1), 6) for k, v in term_sums.items()},
            "lr": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        history.append(row)
        monitored = val_loss if cfg.monitor == "val_loss" else scores["mean_dice"]
        if not vseen:
            monitored = train_loss if cfg.monitor == "val_loss" else -train_loss
        improved = sign * monitored < sign * best_value if best_epoch >= 0 else True
        hover_card = None
        if hover:
            from ..instances.postproc import HoverParams

            hover_card = {"n_types": n_types, "postproc": HoverParams().to_dict()}
        card = new_card(
            **card_base,
            name=cfg.name or out.name,
            hover=hover_card,
            training={
                "config": cfg.to_dict(),
                "epoch": epoch + 1,
                "train_patches": len(train_rows),
                "val_patches": len(val_rows),
                "slides": sorted({r["slide"] for _, r in rows}),
                "patch_mpp": folder_mpp,
                "encoder_weights": pretrained,
                "normalization_source": norm_source,
            },
            metrics={k: v for k, v in row.items() if k != "seconds"},
        )
        if improved:
            best_value, best_epoch, bad_epochs = monitored, epoch, 0
            save_checkpoint(model, best_dir, card)
        else:
            bad_epochs += 1
        save_checkpoint(model, last_dir, card)
        _save_state(
            last_dir,
            opt,
            sched,
            {
                "epoch": epoch,
                "best_value": best_value,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "history": history,
            },
        )
        _write_metrics(out / "metrics.csv", history)
        _plot(out / "curves.png", history)
        yield Progress(
            "epoch",
            epoch + 1,
            cfg.epochs,
            f"epoch {epoch + 1}: train {train_loss:.4f} val {val_loss:.4f} dice {scores['mean_dice']:.3f}",
            {"row": row, "best_epoch": best_epoch + 1, "best_value": best_value},
        )
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            stopped = True
            break
    if not val_rows and cfg.monitor == "val_dice":
        best_value = -best_value  # it ranked epochs by -train_loss
    result = TrainResult(
        out,
        best_epoch + 1,
        float(best_value),
        history,
        stopped,
        cfg.monitor if val_rows else "train_loss",
    )
    (out / "done.json").write_text(
        json.dumps(
            {
                "best_epoch": result.best_epoch,
                "best_value": result.best_value,
                "stopped_early": stopped,
            }
        )
    )
    return result


def _hover_classmap(
    manifests: Sequence[str], rows: list[tuple[Path, dict[str, str]]]
) -> tuple[ClassMap, int]:
    """Nucleus-type ClassMap and NC channels of a HoVer run (0 when no patch has types)."""
    if not any(r.get("types") for _, r in rows):
        return NUCLEUS_CLASSMAP, 0
    saved = _saved_classmap(manifests)
    if saved is not None:
        return saved, saved.n_classes
    from ..io.palette import NUCLEUS_PRESETS

    cm = NUCLEUS_PRESETS["consep4"]
    return cm, cm.n_classes


def train_folds_steps(
    config: TrainConfig, folds: int
) -> Generator[Progress, None, list[TrainResult]]:
    """Train ``folds`` runs (k-fold over slides or patches) into ``<out>/fold_<i>``."""
    results = []
    for k in range(folds):
        d = config.to_dict()
        d.update(
            fold=k,
            folds=folds,
            out=str(Path(config.out) / f"fold_{k}"),
            name=f"{config.name or Path(config.out).name}-fold{k}",
        )
        res = yield from train_steps(TrainConfig.from_dict(d))
        results.append(res)
    return results


def train(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train to the end and return the :class:`TrainResult` (scripts and the napari console).

    Parameters
    ----------
    config
        The run's :class:`TrainConfig`.
    resume
        Continue from ``<out>/last`` (see :func:`train_steps`).

    Examples
    --------
    >>> from napari_slideseg.train import TrainConfig, train
    >>> result = train(TrainConfig(manifests=["patches/"], out="run/", epochs=2))  # doctest: +SKIP
    >>> result.best_epoch, result.run_dir  # doctest: +SKIP
    """
    return drain(train_steps(config, resume=resume))


def train_folds(config: TrainConfig, folds: int) -> list[TrainResult]:
    """Run :func:`train_folds_steps` to the end."""
    return drain(train_folds_steps(config, folds))


#: The earlier name of :func:`train` (kept for scripts written against it).
train_blocking = train
