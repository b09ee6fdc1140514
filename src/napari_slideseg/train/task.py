"""What a training run does differently per model kind: one class each, one interface.

The training loop (:mod:`~napari_slideseg.train.loop`) and its data, start and
state steps ask a :class:`TrainTask` instead of branching on ``cfg.kind``:

=====================  ==============================  ==================================
step                   :class:`SemanticTraining`       :class:`HoverTraining`
=====================  ==============================  ==================================
``check_rows``         class patches only              nucleus instance patches only
``classmaps``          the manifests' class map        NP classes + the nucleus types
``instance_targets``   False (class masks)             True (NP/HV/NC targets)
``build``              smp model + named loss          HoVerNet + HoVer loss
``card_fields``        arch, classes, class map        HoVerNet, types, post-processing
``validation_view``    the logits as they are          the NP branch (nucleus/background)
=====================  ==============================  ==================================

:func:`train_task` picks the class from ``cfg.kind`` (``TRAIN_TASKS``), as
:mod:`napari_slideseg.infer.task` does for inference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..io.palette import ClassMap
from ..models.card import NUCLEUS_CLASSMAP
from .checks import TrainError
from .config import TrainConfig
from .rows import Row, classmap_for, hover_classmap

#: :class:`~napari_slideseg.train.data.TrainData` (not imported: data imports this module).
TrainData = Any


class TrainTask(ABC):
    """The interface (see the module docstring)."""

    kind: ClassVar[str] = ""
    #: Whether the masks are instance ids turned into NP/HV(/NC) targets.
    instance_targets: ClassVar[bool] = False
    #: Whether ``class_weights`` must give one weight per output channel.
    weights_per_channel: ClassVar[bool] = True

    @abstractmethod
    def check_rows(self, rows: list[Row]) -> None:
        """Refuse patch rows of the other kind (class vs instance patches).

        Parameters
        ----------
        rows : list of (Path, dict)
            The rows of ``cfg.manifests``.

        Raises
        ------
        TrainError
            Naming the first folder at fault.
        """

    @abstractmethod
    def classmaps(
        self, cfg: TrainConfig, train_rows: list[Row], stacklevel: int
    ) -> tuple[ClassMap, ClassMap | None, int]:
        """The classes trained on, the nucleus type map (or None) and the number of types.

        Parameters
        ----------
        cfg : TrainConfig
        train_rows : list of (Path, dict)
        stacklevel : int
            For warnings, pointing at the caller of ``train``.

        Returns
        -------
        tuple
        """

    @abstractmethod
    def build(self, cfg: TrainConfig, data: TrainData, model_kwargs: dict[str, Any]) -> Any:
        """The untrained model and its loss.

        Parameters
        ----------
        cfg : TrainConfig
        data : TrainData
        model_kwargs : dict
            ``decoder_channels`` / ``encoder_depth`` when set.

        Returns
        -------
        tuple of (torch.nn.Module, torch.nn.Module)
        """

    @abstractmethod
    def card_fields(self, cfg: TrainConfig, data: TrainData) -> dict[str, Any]:
        """The model-card fields that depend on the kind (``arch``, ``classes``, ``classmap``).

        Parameters
        ----------
        cfg : TrainConfig
        data : TrainData

        Returns
        -------
        dict
        """

    def card_hover(self, data: TrainData) -> dict[str, Any] | None:
        """The card's ``hover`` section (None for a semantic model).

        Parameters
        ----------
        data : TrainData

        Returns
        -------
        dict or None
        """
        return None

    def validation_view(self, logits: Any, y: Any) -> tuple[Any, Any]:
        """The logits and targets the validation Dice is computed on.

        Parameters
        ----------
        logits, y : torch.Tensor
            A validation batch's outputs and targets.

        Returns
        -------
        tuple of torch.Tensor
        """
        return logits, y


class SemanticTraining(TrainTask):
    """Semantic segmentation with a segmentation-models-pytorch model."""

    kind: ClassVar[str] = "semantic"

    def check_rows(self, rows: list[Row]) -> None:
        """Refuse nucleus instance patches; see :meth:`TrainTask.check_rows`."""
        inst_rows = [b for b, r in rows if "n_instances" in r]
        if inst_rows:
            raise TrainError(
                f"{inst_rows[0]}: holds nucleus instance patches (object ids, not classes): "
                "train them with kind 'hover' (--kind hover)"
            )

    def classmaps(
        self, cfg: TrainConfig, train_rows: list[Row], stacklevel: int
    ) -> tuple[ClassMap, ClassMap | None, int]:
        """The manifests' class map; no nucleus types."""
        return classmap_for(cfg.manifests, stacklevel=stacklevel + 1), None, 0

    def build(self, cfg: TrainConfig, data: TrainData, model_kwargs: dict[str, Any]) -> Any:
        """``cfg.arch`` + ``cfg.encoder`` and the loss named by ``cfg.loss``."""
        from ..models.factory import build_model
        from ..models.losses import build_loss

        model = build_model(
            cfg.arch, cfg.encoder, classes=data.out_channels, encoder_weights=None, **model_kwargs
        )
        loss = build_loss(cfg.loss, classes=data.out_channels, class_weights=data.class_weights)
        return model, loss

    def card_fields(self, cfg: TrainConfig, data: TrainData) -> dict[str, Any]:
        """The architecture, output channels and class map."""
        return {"arch": cfg.arch, "classes": data.out_channels, "classmap": data.classmap}


class HoverTraining(TrainTask):
    """HoVer-Net style nuclei: NP, HV and (with types) NC branches."""

    kind: ClassVar[str] = "hover"
    instance_targets: ClassVar[bool] = True
    weights_per_channel: ClassVar[bool] = False

    def check_rows(self, rows: list[Row]) -> None:
        """Refuse class patches; see :meth:`TrainTask.check_rows`."""
        bad = next((b for b, r in rows if "n_instances" not in r), None)
        if bad is not None:
            raise TrainError(
                f"{bad}: holds class patches, but kind 'hover' trains on nucleus instance "
                "patches: extract them with instances=True (slideseg patch --instances)"
            )

    def classmaps(
        self, cfg: TrainConfig, train_rows: list[Row], stacklevel: int
    ) -> tuple[ClassMap, ClassMap | None, int]:
        """Nucleus / background, and the nucleus types of the manifests (if any)."""
        type_cm, n_types = hover_classmap(cfg.manifests, train_rows)
        return NUCLEUS_CLASSMAP, type_cm, n_types

    def build(self, cfg: TrainConfig, data: TrainData, model_kwargs: dict[str, Any]) -> Any:
        """A :class:`~napari_slideseg.models.hovernet.HoVerNet` and its loss."""
        from ..models.hovernet import HoVerNet
        from ..models.losses import HoverLoss

        model = HoVerNet(cfg.encoder, encoder_weights=None, n_types=data.n_types, **model_kwargs)
        return model, HoverLoss(cfg.hover_weights)

    def card_fields(self, cfg: TrainConfig, data: TrainData) -> dict[str, Any]:
        """HoVerNet, the number of nucleus types and their class map."""
        return {"arch": "HoVerNet", "classes": data.n_types, "classmap": data.type_classmap}

    def card_hover(self, data: TrainData) -> dict[str, Any] | None:
        """The number of types and the default post-processing parameters."""
        from ..instances.params import HoverParams

        return {"n_types": data.n_types, "postproc": HoverParams().to_dict()}

    def validation_view(self, logits: Any, y: Any) -> tuple[Any, Any]:
        """The NP branch (nucleus vs background) against the nucleus target."""
        return logits[:, :2], y[:, 0].long()


#: The training task of each ``TrainConfig.kind``.
TRAIN_TASKS: dict[str, type[TrainTask]] = {"semantic": SemanticTraining, "hover": HoverTraining}


def train_task(cfg: TrainConfig) -> TrainTask:
    """The :class:`TrainTask` of ``cfg.kind``.

    Parameters
    ----------
    cfg : TrainConfig

    Returns
    -------
    TrainTask
    """
    return TRAIN_TASKS[cfg.kind]()
