"""The model card: one typed, validated record of what a checkpoint is.

``slideseg.json`` in a checkpoint folder is read and written here and
nowhere else; every consumer (inference, widgets, CLI, exports, demo, pack,
tune-hover) gets a :class:`ModelCard`, never a dict. The card says what the
weights expect (architecture, channels, normalisation, the resolution in
µm/px of the pixels they were trained on, patch size), what they produce (a
:class:`~napari_slideseg.io.palette.ClassMap`, HoVer post-processing
parameters) and where they came from (training summary, metrics, licence,
library versions).

Schema versions: 1 (cards written before the typed card; still read) and 2.
Unknown keys from a newer writer are kept in ``extra`` and written back.

The **content digest** (:meth:`ModelCard.digest`) hashes the weights file and
every card field that changes a prediction (:data:`PREDICTION_FIELDS`), so a
prediction resumed after ``tune-hover --write`` or ``slideseg pack --mpp``
is recognised as made by a different model, while a new name, licence or
description changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.errors import SlideSegError
from ..io.files import atomic_path
from ..io.palette import ClassMap
from ..normalization import IMAGENET

logger = logging.getLogger(__name__)

CARD = "slideseg.json"
SCHEMA_VERSION = 2
KINDS = ("semantic", "hover")
ACTIVATIONS = ("softmax", "sigmoid")
#: Card fields that change what a model predicts (with the weights: the content digest).
PREDICTION_FIELDS = (
    "kind",
    "arch",
    "encoder",
    "in_channels",
    "classes",
    "activation",
    "classmap",
    "patch_size",
    "normalization",
    "mpp",
    "hover",
)
#: Nucleus vs background: the NP branch's classes (and a HoVer run's map without types).
NUCLEUS_CLASSMAP = ClassMap(("background", "nucleus"), ((0, 0, 0), (255, 255, 0)), 0, "nuclei")


class CheckpointError(SlideSegError, ValueError):
    """A checkpoint folder is missing parts or is inconsistent (the message names it)."""


def _finite(v: Any, what: str, where: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: {what} must be a number, not {v!r}") from None
    if not math.isfinite(f):
        raise CheckpointError(f"{where}: {what} must be finite, not {v!r}")
    return f


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x / 255 - mean) / std`` applied to the model's input pixels.

    Parameters
    ----------
    mean : tuple of float
        One mean per input channel (default: ImageNet's).
    std : tuple of float
        One positive standard deviation per channel.

    Raises
    ------
    CheckpointError
        For non-finite values, a non-positive std, or lengths that differ.
    """

    mean: tuple[float, ...] = IMAGENET["mean"]
    std: tuple[float, ...] = IMAGENET["std"]

    def __post_init__(self) -> None:
        where = "normalization"
        mean = tuple(_finite(v, "every mean", where) for v in self.mean)
        std = tuple(_finite(v, "every std", where) for v in self.std)
        if len(mean) != len(std) or not mean:
            raise CheckpointError(
                f"{where}: mean and std need one value per channel ({len(mean)} vs {len(std)})"
            )
        if any(s <= 0 for s in std):
            raise CheckpointError(f"{where}: std must be positive, not {list(std)}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON form (the card's ``normalization``).

        Returns
        -------
        dict
            ``{"mean": [...], "std": [...]}``.
        """
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint's weights expect and produce (``slideseg.json``), validated.

    Parameters
    ----------
    kind
        ``"semantic"`` (class probabilities) or ``"hover"`` (NP/HV/NC maps).
    arch, encoder
        Architecture (smp class name, or ``HoVerNet``) and encoder name.
    in_channels, classes
        Input channels; output classes (semantic: channels of the head, 1 for a
        sigmoid model) or nucleus types (HoVer; 0 = no type head).
    classmap
        The classes predicted (HoVer: the nucleus types).
    patch_size
        Side of the training patches in pixels (the default inference tile).
    activation
        ``softmax`` or ``sigmoid``.
    normalization
        Input normalisation the weights were trained with.
    mpp
        Microns per pixel of the pixels the model was trained on (``None``:
        unknown; inference then cannot match the slide's resolution).
    level
        Slide level the training patches came from (informative).
    encoder_depth
        Encoder stages used (informative; the weights define the model).
    hover
        HoVer settings: ``n_types``, ``postproc`` (HoverParams fields) and
        how they were tuned.
    name, license, training_data, description, reproduce
        Release notes (``slideseg pack``).
    training, metrics, validation_metrics, held_out_metrics, versions
        Provenance: training summary, validation metrics of the saved epoch
        (on patches), whole-image figures on the validation images
        (``slideseg pack --validation-metrics``), figures on held-out test
        images no choice was made on (``--metrics``), library versions.
    created
        When the card was made (not part of the digest).
    weights_dtype, n_tensors
        Written by :func:`~napari_slideseg.models.checkpoint.save_checkpoint`.
    extra
        Keys this version does not know (kept and written back).
    source
        Folder the card was read from (not saved).
    weights_sha256
        SHA-256 of ``model.safetensors`` when read from a folder (not saved).
    """

    kind: str
    arch: str
    encoder: str
    in_channels: int
    classes: int
    classmap: ClassMap
    patch_size: int
    activation: str = "softmax"
    normalization: Normalization = field(default_factory=Normalization)
    mpp: float | None = None
    level: int | None = None
    encoder_depth: int | None = None
    hover: Mapping[str, Any] | None = None
    name: str = ""
    license: str | None = None
    training_data: str | None = None
    description: str | None = None
    reproduce: str | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    validation_metrics: Mapping[str, Any] = field(default_factory=dict)
    held_out_metrics: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    weights_dtype: str | None = None
    n_tensors: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)
    weights_sha256: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = f"{self.source}/{CARD}" if self.source else "model card"
        if self.kind not in KINDS:
            raise CheckpointError(f"{where}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise CheckpointError(
                f"{where}: activation must be one of {ACTIVATIONS}, not {self.activation!r}"
            )
        for name, lo in (("in_channels", 1), ("classes", 0), ("patch_size", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise CheckpointError(f"{where}: {name} must be an integer >= {lo}, not {v!r}")
        if not isinstance(self.classmap, ClassMap):
            raise CheckpointError(f"{where}: classmap must be a ClassMap")
        if not isinstance(self.normalization, Normalization):
            raise CheckpointError(f"{where}: normalization must be a Normalization")
        if len(self.normalization.mean) != self.in_channels:
            raise CheckpointError(
                f"{where}: normalization has {len(self.normalization.mean)} channels but the "
                f"model takes {self.in_channels}"
            )
        if self.mpp is not None:
            mpp = _finite(self.mpp, "mpp", where)
            if not 0.01 <= mpp <= 1000:
                raise CheckpointError(
                    f"{where}: mpp {self.mpp} µm/px is not a plausible pixel size"
                )
            object.__setattr__(self, "mpp", mpp)
        if self.kind == "semantic":
            if self.classes < 1:
                raise CheckpointError(f"{where}: a semantic model needs at least 1 output channel")
            if self.activation == "sigmoid" and self.classes != 1:
                raise CheckpointError(
                    f"{where}: a sigmoid model has 1 output channel, not {self.classes}"
                )
            if self.classmap.n_classes != self.channels:
                raise CheckpointError(
                    f"{where}: the class map has {self.classmap.n_classes} classes but the model "
                    f"outputs {self.classes} channel(s) with {self.activation}; card and weights "
                    "do not belong together"
                )
        elif self.classes and self.classmap.n_classes != self.classes:
            raise CheckpointError(
                f"{where}: the type class map has {self.classmap.n_classes} classes but the "
                f"model has {self.classes} type channels"
            )

    # -- what the engine needs ------------------------------------------------------
    @property
    def is_hover(self) -> bool:
        """Whether the model is a HoVer nucleus model (``kind == "hover"``)."""
        return self.kind == "hover"

    @property
    def channels(self) -> int:
        """Channels of the probability maps: classes (2 for sigmoid), or NP + H + V + types."""
        if self.is_hover:
            return 3 + self.classes
        return 2 if self.activation == "sigmoid" else self.classes

    @property
    def postproc(self) -> dict[str, Any]:
        """HoVer post-processing parameters stored in the card (``{}`` for semantic models)."""
        return dict((self.hover or {}).get("postproc") or {})

    @property
    def display_name(self) -> str:
        """The card's name, else ``"<arch> / <encoder>"``."""
        return self.name or f"{self.arch} / {self.encoder}"

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` (validated like a new card).

        Parameters
        ----------
        **changes
            Field values to change.

        Returns
        -------
        ModelCard
            The new card.

        Raises
        ------
        CheckpointError
            When the changed card is inconsistent.
        """
        return dataclasses.replace(self, **changes)

    def with_postproc(self, params: Mapping[str, Any], **notes: Any) -> ModelCard:
        """A copy whose HoVer post-processing parameters are ``params`` (plus tuning ``notes``).

        Parameters
        ----------
        params : mapping
            :class:`~napari_slideseg.instances.postproc.HoverParams` fields.
        **notes
            Other ``hover`` entries to record (how the parameters were tuned).

        Returns
        -------
        ModelCard
            The new card.
        """
        hover = {**dict(self.hover or {}), "postproc": dict(params), **notes}
        return self.replace(hover=hover)

    # -- digest ---------------------------------------------------------------------
    def prediction_fields(self) -> dict[str, Any]:
        """The card fields that change a prediction (:data:`PREDICTION_FIELDS`), in JSON form.

        Returns
        -------
        dict
            ``{field: value}``.
        """
        d = self.to_dict()
        return {k: d.get(k) for k in PREDICTION_FIELDS}

    def digest(self) -> str:
        """Content digest: the weights' SHA-256 and every field that changes a prediction.

        Returns
        -------
        str
            16 hex digits.
        """
        raw = json.dumps(
            {"weights": self.weights_sha256, "card": self.prediction_fields()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # -- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``slideseg.json`` (schema version 2).

        Returns
        -------
        dict
            ``format_version``, every saved field, then the ``extra`` keys.
        """
        d: dict[str, Any] = {"format_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "source", "weights_sha256"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, ClassMap | Normalization):
                v = v.to_dict()
            elif isinstance(v, Mapping):
                v = json.loads(json.dumps(dict(v), default=str))
            d[f.name] = v
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | os.PathLike | None = None) -> ModelCard:
        """Validate a card dict (schema 1 or 2); errors name ``source``.

        A card without ``normalization`` gets ImageNet's and one without
        ``activation`` sigmoid for 1 class, else softmax (both logged).

        Parameters
        ----------
        d : mapping
            The card's JSON object.
        source : str or os.PathLike, optional
            The checkpoint folder it came from.

        Returns
        -------
        ModelCard
            The validated card.

        Raises
        ------
        CheckpointError
            For a newer schema, missing keys, an invalid class map or
            normalisation, or inconsistent values.
        """
        where = f"{source}/{CARD}" if source else "model card"
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{where}: a model card is a JSON object")
        version = d.get("format_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise CheckpointError(
                f"{where}: card schema version {version!r} is newer than this napari-slideseg "
                f"reads ({SCHEMA_VERSION}); upgrade napari-slideseg"
            )
        for key in ("kind", "arch", "encoder", "in_channels", "classes", "classmap", "patch_size"):
            if key not in d:
                raise CheckpointError(f"{where}: model card lacks {key!r}")
        try:
            classmap = ClassMap.from_dict(d["classmap"], source=where)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{where}: invalid class map ({exc})") from exc
        normalization = _card_normalization(d.get("normalization"), where)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "source", "weights_sha256"}
        kwargs: dict[str, Any] = {k: d[k] for k in known if k in d and d[k] is not None}
        kwargs["classmap"] = classmap
        kwargs["normalization"] = normalization
        if "mpp" in d:
            kwargs["mpp"] = d["mpp"]
        for k in ("in_channels", "classes", "patch_size", "level", "encoder_depth", "n_tensors"):
            if kwargs.get(k) is not None:
                v = kwargs[k]
                if isinstance(v, float) and v.is_integer():
                    kwargs[k] = int(v)
        if "activation" not in kwargs:
            kwargs["activation"] = "sigmoid" if kwargs.get("classes") == 1 else "softmax"
            logger.debug("%s: no activation recorded: %s", where, kwargs["activation"])
        extra = {k: v for k, v in d.items() if k not in known and k != "format_version"}
        try:
            return cls(**kwargs, extra=extra, source=str(source) if source else None)
        except TypeError as exc:
            raise CheckpointError(f"{where}: {exc}") from exc


def _card_normalization(norm: Any, where: str) -> Normalization:
    """A card's ``normalization`` entry, validated (none recorded: ImageNet's, logged)."""
    if not norm:
        logger.debug("%s: no normalization recorded: ImageNet's mean and std", where)
        norm = IMAGENET
    if not isinstance(norm, Mapping) or "mean" not in norm or "std" not in norm:
        raise CheckpointError(f"{where}: normalization needs 'mean' and 'std'")
    try:
        return Normalization(tuple(norm["mean"]), tuple(norm["std"]))
    except TypeError as exc:
        raise CheckpointError(f"{where}: normalization mean/std must be lists") from exc
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc


def new_card(
    *,
    kind: str,
    arch: str,
    encoder: str,
    in_channels: int,
    classes: int,
    classmap: ClassMap | Mapping[str, Any],
    patch_size: int,
    activation: str | None = None,
    **fields: Any,
) -> ModelCard:
    """A fresh card (library versions and creation time filled in).

    Parameters
    ----------
    kind : str
        ``"semantic"`` or ``"hover"``.
    arch, encoder : str
        Architecture and encoder names.
    in_channels, classes : int
        Input channels and output classes (HoVer: nucleus types).
    classmap : ClassMap or mapping
        The classes (a ClassMap or its dict form).
    patch_size : int
        Side of the training patches.
    activation : str, optional
        Default: sigmoid for a 1-class semantic model, else softmax.
    **fields
        Other :class:`ModelCard` fields (``normalization`` may be a dict).

    Returns
    -------
    ModelCard
        The validated card.
    """
    if isinstance(classmap, Mapping):
        classmap = ClassMap.from_dict(classmap)
    if isinstance(fields.get("normalization"), Mapping):
        n = fields["normalization"]
        fields["normalization"] = Normalization(tuple(n["mean"]), tuple(n["std"]))
    return ModelCard(
        kind=kind,
        arch=arch,
        encoder=encoder,
        in_channels=int(in_channels),
        classes=int(classes),
        classmap=classmap,
        patch_size=int(patch_size),
        activation=activation or ("sigmoid" if classes == 1 and kind == "semantic" else "softmax"),
        versions=library_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    )


def as_card(card: ModelCard | Mapping[str, Any]) -> ModelCard:
    """A :class:`ModelCard` from a card or a card dict (console users pass either).

    Parameters
    ----------
    card : ModelCard or mapping
        A card, or its JSON form.

    Returns
    -------
    ModelCard
        ``card`` itself, or the validated dict.
    """
    return card if isinstance(card, ModelCard) else ModelCard.from_dict(card)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on.

    Returns
    -------
    dict of str to str
        ``{distribution: version}``; ``"not installed"`` for a missing one.
    """
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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


# -----------------------------------------------------------------------------
# the file
# -----------------------------------------------------------------------------
def read_card(
    path: str | os.PathLike, weights: str = "model.safetensors", *, hash_weights: bool = True
) -> ModelCard:
    """The card of a checkpoint folder, validated (clear error if missing or broken).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder.
    weights : str
        Its weights file, hashed into ``weights_sha256``.
    hash_weights : bool
        False skips hashing the weights (``weights_sha256`` stays ``None``,
        so :meth:`ModelCard.digest` is not the content digest): for callers
        that only show the card, such as a widget refreshing its fields.

    Returns
    -------
    ModelCard
        The card, with ``source`` the resolved folder.

    Raises
    ------
    CheckpointError
        For a missing path, a file, a folder without a card, or a card that is
        not valid JSON or not a valid card.
    """
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
        doc = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{card_path}: model card is not valid JSON ({exc})") from exc
    card = ModelCard.from_dict(doc, source=p.resolve())
    w = p / weights
    if hash_weights and w.exists():
        return card.replace(weights_sha256=sha256_file(w))
    if hash_weights:
        logger.debug("%s: no %s to hash: the card has no content digest", p, weights)
    return card


def write_card(path: str | os.PathLike, card: ModelCard) -> None:
    """Write ``card`` (and the human-readable README) into the folder ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder (it exists).
    card : ModelCard
        The card written as ``slideseg.json``; ``README.md`` is rendered from it.
    """
    p = Path(path)
    for name, text in (
        (CARD, json.dumps(card.to_dict(), indent=2, default=str)),
        ("README.md", card_readme(card)),
    ):
        with atomic_path(p / name) as tmp:
            tmp.write_text(text)


def card_readme(card: ModelCard) -> str:
    """A human-readable model card (README.md of a checkpoint).

    Parameters
    ----------
    card : ModelCard
        The card.

    Returns
    -------
    str
        Markdown text.
    """
    cm = card.classmap
    norm = card.normalization
    lines = [
        f"# {card.display_name}",
        "",
        f"- kind: {card.kind}",
        f"- architecture: {card.arch} with encoder {card.encoder}",
        f"- input: {card.in_channels} channels, patches of {card.patch_size} px"
        + (f" at {card.mpp:g} µm/px" if card.mpp else " (resolution unknown)"),
        f"- classes: {', '.join(cm.names)} ({card.activation})",
        f"- normalisation: mean {list(norm.mean)}, std {list(norm.std)}",
    ]
    weights = card.training.get("encoder_weights") if card.training else None
    if isinstance(weights, Mapping) and weights.get("name"):
        lines.append(
            f"- encoder initialised from: {weights['name']} (sha256 {weights.get('sha256')}, "
            f"{weights.get('layout')} layout)"
        )
    if card.license:
        lines.append(f"- licence: {card.license}")
    if card.training_data:
        lines.append(f"- training data: {card.training_data}")
    if card.metrics:
        lines.append(f"- saved epoch (validation patches): {json.dumps(dict(card.metrics))}")
    if card.validation_metrics:
        lines.append(
            f"- validation images (whole images, own split): "
            f"{json.dumps(dict(card.validation_metrics))}"
        )
    lines.append(
        f"- held-out test: {json.dumps(dict(card.held_out_metrics))}"
        if card.held_out_metrics
        else "- held-out test: none recorded (`slideseg pack --metrics` adds figures on test "
        "images that no choice of epoch or threshold saw)"
    )
    if card.description:
        lines += ["", str(card.description)]
    if card.reproduce:
        lines += ["", "Reproduce (CPU):", "", "```bash", str(card.reproduce), "```"]
    lines += [
        "",
        "Load with `napari_slideseg.models.load_model(path)` (safetensors + JSON, no pickle).",
    ]
    return "\n".join(lines) + "\n"


def cards_summary(cards: Sequence[ModelCard]) -> list[dict[str, Any]]:
    """Cards as JSON for a prediction's provenance (with source and digest).

    Parameters
    ----------
    cards : sequence of ModelCard
        The models of a prediction.

    Returns
    -------
    list of dict
        Each card's :meth:`~ModelCard.to_dict` plus ``source`` and ``digest``.
    """
    return [{**c.to_dict(), "source": c.source, "digest": c.digest()} for c in cards]
