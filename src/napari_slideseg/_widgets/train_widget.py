"""Training dock widget: a thin adapter over :func:`napari_slideseg.train.train`."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)

from ..models.device import cpu_only_build
from ..options import (
    LOSS_PRESETS,
    Architecture,
    AugmentPreset,
    Optimizer,
    Scheduler,
    values,
)
from ..train import TrainConfig
from ._common import (
    LayerChoice,
    device_choice,
    edit_path,
    labels_level0,
    layer_to_slide,
)
from .runner import REFRESH_EVERY, JobWidget, gui_threads

#: What the widget trains on: patch folders, the open slide and a mask, or corrections.
SOURCES = ("patch folders", "slide + mask layers", "corrections of a prediction layer")


def _optional_path(value: Any) -> str | None:
    """A FileEdit's path, or None when the field is empty (magicgui gives '.' then)."""
    text = str(value or "").strip()
    return None if text in ("", ".") else text


ENCODERS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet-b0",
    "mobilenet_v2",
    "timm-regnety_004",
)
#: Architectures offered, most useful first (all of :class:`Architecture` but DeepLabV3).
ARCHS = tuple(
    a.value
    for a in (
        Architecture.UNET,
        Architecture.UNET_PLUS_PLUS,
        Architecture.FPN,
        Architecture.DEEPLABV3_PLUS,
        Architecture.LINKNET,
        Architecture.MANET,
        Architecture.PAN,
        Architecture.PSPNET,
        Architecture.UPERNET,
        Architecture.SEGFORMER,
    )
)


class TrainWidget(JobWidget):
    """Train a segmentation model on patch folders, or on the open slide + mask layers.

    With *source* = layers, patches are first cut from the chosen layers into
    ``<run>/patches`` (same core as the Patch widget), then training starts.
    With *source* = corrections, the model a prediction layer came from is
    fine-tuned on what was painted on it (*track corrections* first, then
    paint; :mod:`napari_slideseg.finetune`) into ``<run>/finetune-N``, and
    the re-predicted regions (and the view shown when Run was pressed) are
    added as ``... (fine-tuned)`` layers.
    The plot shows train/validation loss and validation mean Dice per epoch.
    Cancel stops within one batch and keeps the ``last`` checkpoint.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it by this name).
    """

    def __init__(self, napari_viewer: Any) -> None:
        viewer = napari_viewer  # napari passes the viewer by this parameter name
        super().__init__(viewer, guard_torch=True)
        self.source = ComboBox(choices=list(SOURCES), value=SOURCES[0], label="source")
        self.prediction_layer = LayerChoice(viewer, "labels", "prediction")
        self.track = PushButton(text="track corrections on this layer")
        self.finetune_epochs = SpinBox(value=3, min=1, max=100, label="fine-tune epochs")
        self.folders = LineEdit(value="", label="patch folders (;)")
        self.add_folder = FileEdit(mode=FileDialogMode.EXISTING_DIRECTORY, label="add folder")
        self.slide_layer = LayerChoice(viewer, "image", "slide")
        self.mask_layer = LayerChoice(viewer, "labels", "mask")
        self.patch_size = SpinBox(value=256, min=32, max=2048, step=32, label="patch size")
        self.arch = ComboBox(
            choices=list(ARCHS), value=Architecture.UNET.value, label="architecture"
        )
        self.encoder = ComboBox(choices=list(ENCODERS), value="resnet18", label="encoder")
        self.encoder_weights = FileEdit(
            mode=FileDialogMode.EXISTING_FILE,
            filter="*.safetensors",
            label="encoder weights (optional)",
            value=None,
        )
        self.encoder_weights.tooltip = (
            "pretrained encoder weights from a local .safetensors file (never downloaded); "
            "the encoder above must match them, e.g. mobilenet_v2"
        )
        self.binary = CheckBox(value=False, label="binary (sigmoid)")
        self.loss = ComboBox(choices=list(LOSS_PRESETS), value=LOSS_PRESETS[0], label="loss")
        self.optimizer = ComboBox(
            choices=values(Optimizer), value=Optimizer.ADAMW.value, label="optimizer"
        )
        self.scheduler = ComboBox(
            choices=values(Scheduler), value=Scheduler.COSINE.value, label="LR schedule"
        )
        self.lr = FloatSpinBox(value=1e-3, min=1e-6, max=1.0, step=1e-4, label="learning rate")
        self.lr.native.setDecimals(6)  # the step alone gives 4 places: 1e-6 would read as 0
        self.epochs = SpinBox(value=10, min=1, max=1000, label="epochs")
        self.batch_size = SpinBox(value=8, min=1, max=256, label="batch size")
        self.augment = ComboBox(
            choices=values(AugmentPreset), value=AugmentPreset.FLIPS.value, label="augmentation"
        )
        self.zoom_aug = FloatSpinBox(
            value=1.0, min=1.0, max=4.0, step=0.25, label="zoom augmentation (1 off)"
        )
        self.zoom_aug.tooltip = "zoom in and out up to this factor (2: 0.5x-2x)"
        self.patience = SpinBox(value=0, min=0, max=100, label="early stop (0 off)")
        self.device = device_choice()
        hint = "torch is a CPU-only build: training runs on the CPU" if cpu_only_build() else ""
        self.device_hint = Label(value=hint)
        self.out = FileEdit(
            mode=FileDialogMode.EXISTING_DIRECTORY,
            label="run folder",
            value=Path.home() / "slideseg-run",
        )
        self.resume = CheckBox(value=False, label="resume from last")
        self.lay_out(
            [
                self.source,
                self.prediction_layer,
                self.track,
                self.finetune_epochs,
                self.folders,
                self.add_folder,
                self.slide_layer,
                self.mask_layer,
                self.patch_size,
                self.arch,
                self.encoder,
                self.encoder_weights,
                self.binary,
                self.loss,
                self.optimizer,
                self.scheduler,
                self.lr,
                self.epochs,
                self.batch_size,
                self.augment,
                self.zoom_aug,
                self.patience,
                self.device,
                self.device_hint,
                self.out,
                self.resume,
            ],
            wrap=[self.device_hint],
            on_progress=self._on_progress,
            on_done=self._done,
            fraction=self._fraction,
        )
        self.history: list[dict[str, Any]] = []
        self._figure, self._canvas = self._make_plot()
        self._epoch = 0
        self.add_folder.changed.connect(self._append_folder)
        self.track.changed.connect(self._track)
        self._run_epochs = self.epochs.value
        self._ft_run: Path | None = None
        self._ft_live: dict[str, Any] = {}
        self._ft_refresh = 0.0

    # -- config -------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        """The :class:`TrainConfig` the fields describe.

        Returns
        -------
        TrainConfig
            The settings of the run.
        """
        manifests = [f.strip() for f in self.folders.value.split(";") if f.strip()]
        if self.source.value != "patch folders":
            manifests = [str(edit_path(self.out) / "patches")]
        threads = gui_threads()
        return TrainConfig(
            manifests=manifests,
            out=str(self.out.value),
            arch=self.arch.value,
            encoder=self.encoder.value,
            encoder_weights=_optional_path(self.encoder_weights.value),
            binary=self.binary.value,
            loss=self.loss.value,
            optimizer=self.optimizer.value,
            scheduler=self.scheduler.value,
            lr=self.lr.value,
            epochs=self.epochs.value,
            batch_size=self.batch_size.value,
            augment=self.augment.value,
            scale_range=[1 / self.zoom_aug.value, self.zoom_aug.value]
            if self.zoom_aug.value > 1
            else None,
            patience=self.patience.value or None,
            device=self.device.value,
            threads=threads,
        )

    def _append_folder(self, *_: Any) -> None:
        value = str(self.add_folder.value)
        if value and value != ".":
            items = [f for f in self.folders.value.split(";") if f.strip()]
            if value not in items:
                self.folders.value = ";".join([*items, value])

    # -- job ------------------------------------------------------------------------------
    def job(self) -> Generator[Any, None, Any]:
        """Training with the fields' settings (run in the worker thread).

        With *source* = layers, patches are cut from the chosen layers first.

        Returns
        -------
        generator
            :func:`~napari_slideseg.train.train_steps`'s (after patch
            extraction's events, for the layers source).
        """
        from ..train import train_steps

        self.history = []
        if self.source.value == SOURCES[2]:
            from ..finetune import FinetuneConfig
            from .finetune_job import finetune_job, next_run_folder

            self._run_epochs = self.finetune_epochs.value
            self._ft_run, self._ft_live = next_run_folder(edit_path(self.out)), {}
            config = FinetuneConfig(
                epochs=self.finetune_epochs.value,
                device=self.device.value,
                threads=gui_threads(),
            )
            return finetune_job(self.viewer, self.prediction_layer.layer, self._ft_run, config)
        cfg = self.config()
        self._run_epochs = self.epochs.value
        self._ft_run = None
        resume = self.resume.value
        if self.source.value == "patch folders":
            return train_steps(cfg, resume=resume)
        return self._patches_then_train(cfg, resume)

    def _patches_then_train(self, cfg: TrainConfig, resume: bool):
        from ..io.masks import classmap_from_metadata
        from ..patching import PatchConfig, extract_patches_steps
        from ..train import train_steps

        slide = layer_to_slide(self.slide_layer.layer)
        mlayer = self.mask_layer.layer
        if mlayer is None:
            raise ValueError("choose a mask (Labels) layer to train on")
        size = self.patch_size.value
        yield from extract_patches_steps(
            slide,
            cfg.manifests[0],
            PatchConfig(size=size, stride=size),
            mask=labels_level0(mlayer),
            classmap=classmap_from_metadata(mlayer.metadata),
            mask_id=mlayer.name,
            overwrite="skip" if resume else "overwrite",
        )
        return (yield from train_steps(cfg, resume=resume))

    # -- plot ------------------------------------------------------------------------------
    def _make_plot(self) -> tuple[Any, Any]:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 2.4), dpi=90)
        canvas = FigureCanvasQTAgg(fig)
        canvas.setMinimumHeight(180)
        self.native.layout().addWidget(canvas)
        return fig, canvas

    def _fraction(self, event: Any) -> float | None:
        """Share of the whole run done (training steps 80 % of an epoch, validation 20 %).

        Patch extraction before training shows its own progress (``None``).
        """
        epochs = max(1, self._run_epochs)
        if event.stage in ("train", "resume"):
            self._epoch = int(event.info.get("epoch", event.done if event.stage == "resume" else 0))
        if event.stage == "train":
            within = 0.8 * event.done / max(1, event.total)
        elif event.stage == "val":
            within = 0.8 + 0.2 * event.done / max(1, event.total)
        elif event.stage in ("epoch", "resume"):
            return event.done / epochs
        else:
            return None
        return (self._epoch + within) / epochs

    def _on_progress(self, event: Any) -> None:
        if event.stage == "predict" and self._ft_run is not None:
            import time

            from .finetune_job import live_layers

            now = time.monotonic()
            if now - self._ft_refresh >= REFRESH_EVERY:  # the re-prediction, as blocks land
                self._ft_refresh = now
                live_layers(self.viewer, self._ft_run, self.prediction_layer.layer, self._ft_live)
        if event.stage != "epoch":
            return
        self.history.append(event.info["row"])
        self._redraw()

    def _redraw(self) -> None:
        fig = self._figure
        fig.clear()
        ax = fig.add_subplot(111)
        ep = [h["epoch"] for h in self.history]
        ax.plot(ep, [h["train_loss"] for h in self.history], "o-", label="train loss")
        ax.plot(ep, [h["val_loss"] for h in self.history], "o-", label="val loss")
        ax2 = ax.twinx()
        ax2.plot(
            ep, [h["mean_dice"] for h in self.history], "s--", color="tab:green", label="val Dice"
        )
        ax2.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.legend(loc="upper left", fontsize=7)
        ax2.legend(loc="upper right", fontsize=7)
        fig.tight_layout()
        self._canvas.draw_idle()

    def _track(self, *_: Any) -> None:
        from ._common import notify_error
        from .finetune_job import start_tracking

        try:
            tracker = start_tracking(self.viewer, self.prediction_layer.layer)
        except Exception as exc:  # not a prediction layer, too large, another prediction's
            notify_error(str(exc))
            return
        self.status.value = f"tracking corrections on {tracker.layer.name!r}: paint, then Run"

    def _done(self, result: Any) -> None:
        if result is None:
            return
        if hasattr(result, "checkpoint"):  # a fine-tuning run
            from .finetune_job import add_repredicted

            add_repredicted(self.viewer, result, self.prediction_layer.layer)
            n = result.patches
            self.status.value = (
                f"fine-tuned on {n['corrected']} corrected + {n['replay']} replay patches: "
                f"new model in {result.checkpoint}"
            )
            return
        last = result.history[-1] if result.history else {}
        self.status.value = (
            f"done: best epoch {result.best_epoch}, last mean Dice {last.get('mean_dice', float('nan')):.3f}; "
            f"checkpoints in {result.run_dir}"
        )
