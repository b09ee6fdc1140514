"""The :class:`ModelCard` dataclass: validation, digest and JSON form."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...io.palette import ClassMap
from .schema import (
    ACTIVATIONS,
    CARD,
    KINDS,
    PREDICTION_FIELDS,
    SCHEMA_VERSION,
    CheckpointError,
    Normalization,
    card_normalization,
    finite_float,
)

logger = logging.getLogger(__name__)


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
            mpp = finite_float(self.mpp, "mpp", where)
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
        normalization = card_normalization(d.get("normalization"), where)
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
