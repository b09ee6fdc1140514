"""Inference dock widget: a thin adapter over :func:`predict_slide_steps`.

The output zarr is the layer: a multiscale Labels layer reads the prediction
folder's label pyramid directly and is refreshed as blocks finish, so the
user watches the slide fill in while the job runs in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    SpinBox,
)

from ..infer.config import InferConfig, InferError
from ..io.errors import SlideSegError
from ..options import TTAMode, values
from ._common import LayerChoice, device_choice, layer_to_slide, notify_warning
from .infer_output import (
    add_instance_layers,
    add_prediction_layer,
    checked_output,
    default_output,
    done_message,
    zoom_line,
)
from .regions import REGIONS, region_args, view_box
from .runner import REFRESH_EVERY, JobWidget


class InferWidget(JobWidget):
    """Run one model (or an ensemble) over a slide layer; see the result fill in.

    Choose a bundled model or checkpoint folder(s), the slide layer and the
    region (whole slide, the current view, a box, or a Shapes layer's
    polygons), then *Run*. *Cancel* stops after the current block; running
    again with *resume* ticked continues where it stopped.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it by this name).
    """

    def __init__(self, napari_viewer: Any) -> None:
        viewer = napari_viewer  # napari passes the viewer by this parameter name
        super().__init__(viewer, guard_torch=True)
        from ..models.bundled import bundled_models

        bundled = list(bundled_models())
        self.model = ComboBox(
            choices=[*bundled, "checkpoint folder(s)"],
            value=bundled[0] if bundled else "checkpoint folder(s)",
            label="model",
        )
        self.checkpoints = LineEdit(value="", label="checkpoints (; for ensemble)")
        self.browse = FileEdit(mode=FileDialogMode.EXISTING_DIRECTORY, label="add checkpoint")
        self.slide_layer = LayerChoice(viewer, "image", "slide")
        self.region = ComboBox(choices=list(REGIONS), value="whole slide", label="region")
        self.box = LineEdit(value="", label="box y0 x0 y1 x1")
        self.shapes_layer = LayerChoice(viewer, "shapes", "ROI shapes", optional=True)
        self.level = SpinBox(value=0, min=0, max=20, label="level")
        self.auto_zoom = CheckBox(value=True, label="match the model's resolution (zoom auto)")
        self.zoom = FloatSpinBox(value=1.0, min=0.125, max=8.0, step=0.05, label="zoom")
        self.zoom.tooltip = "used when zoom auto is off: >1 enlarges the slide for the model"
        self.resolution = Label(value="")
        self.tile = SpinBox(value=0, min=0, max=4096, step=32, label="tile (0 = model's)")
        self.overlap = SpinBox(value=64, min=0, max=1024, step=16, label="overlap")
        self.batch = SpinBox(value=0, min=0, max=256, label="batch size (0 = auto)")
        self.block = SpinBox(value=0, min=0, max=8192, step=64, label="block (0 = auto)")
        self.device = device_choice()
        self.tta = ComboBox(choices=values(TTAMode), value=TTAMode.NONE.value, label="TTA")
        import torch

        has_cuda = torch.cuda.is_available()
        self.amp = CheckBox(value=has_cuda, label="mixed precision (CUDA)", enabled=has_cuda)
        self.min_tissue = FloatSpinBox(value=0.0, min=0, max=1, step=0.05, label="min tissue")
        self.save_probs = CheckBox(value=False, label="save probabilities / maps")
        self.instance_halo = SpinBox(
            value=64, min=0, max=1024, step=8, label="nucleus halo (HoVer)"
        )
        self.points = CheckBox(value=True, label="centroid points (HoVer)")
        self.out = FileEdit(
            mode=FileDialogMode.OPTIONAL_FILE, label="output .zarr", filter="*.zarr", value=None
        )
        self.resume = CheckBox(value=True, label="resume if the output exists")
        self.scheduler = LineEdit(value="", label="dask scheduler (optional)")
        self.lay_out(
            [
                self.model,
                self.checkpoints,
                self.browse,
                self.slide_layer,
                self.region,
                self.box,
                self.shapes_layer,
                self.level,
                self.auto_zoom,
                self.zoom,
                self.resolution,
                self.tile,
                self.overlap,
                self.batch,
                self.block,
                self.device,
                self.tta,
                self.amp,
                self.min_tissue,
                self.save_probs,
                self.instance_halo,
                self.points,
                self.out,
                self.resume,
                self.scheduler,
            ],
            wrap=[self.resolution],
            on_progress=self._progress,
            on_done=self._done,
        )
        self.layer: Any = None
        self.instance_layer: Any = None
        self.points_layer: Any = None
        self._out: Path | None = None
        self._last_refresh = 0.0
        self.browse.changed.connect(self._add_checkpoint)
        watched = (
            self.model,
            self.checkpoints,
            self.slide_layer,
            self.level,
            self.auto_zoom,
            self.zoom,
        )
        for w in watched:
            w.changed.connect(self.update_resolution)
        self.zoom.enabled = not self.auto_zoom.value
        self.update_resolution()

    # -- inputs -> one config object ---------------------------------------------------
    def _add_checkpoint(self, *_: Any) -> None:
        path = str(self.browse.value)
        if path and path != ".":
            parts = [p for p in self.checkpoints.value.split(";") if p.strip()]
            self.checkpoints.value = ";".join([*parts, path])
            self.model.value = "checkpoint folder(s)"

    def model_paths(self) -> list[Path]:
        """The checkpoint folders the fields name (a bundled model or the list).

        Returns
        -------
        list of Path
            One folder per model of the ensemble.

        Raises
        ------
        InferError
            When the list is empty.
        CheckpointError
            For a name that is neither a folder nor a bundled model.
        """
        from ..models.bundled import bundled_models, resolve_model

        if self.model.value in bundled_models():
            return [bundled_models()[self.model.value]]
        paths = [p.strip() for p in self.checkpoints.value.split(";") if p.strip()]
        if not paths:
            raise InferError("choose a bundled model or give at least one checkpoint folder")
        return [resolve_model(p) for p in paths]

    def _slide_scale(self) -> np.ndarray:
        layer = self.slide_layer.layer
        return np.asarray(layer.scale[-2:], float) if layer is not None else np.ones(2)

    def _level_factor(self, slide: Any) -> np.ndarray:
        return np.asarray(slide.level_factors(self.level.value), float)

    def region_args(self, slide: Any) -> dict[str, Any]:
        """``region`` / ``roi`` for :class:`InferConfig` in pixels of the chosen level.

        Parameters
        ----------
        slide : Slide
            The slide (its level factors convert world units to level pixels).

        Returns
        -------
        dict
            What :func:`~napari_slideseg._widgets.regions.region_args` gives
            for the region fields.

        Raises
        ------
        InferError
            Where :func:`~napari_slideseg._widgets.regions.region_args` refuses the fields.
        """
        to_px = self._slide_scale() * self._level_factor(slide)  # world units per level pixel
        return region_args(
            self.region.value,
            self.box.value,
            lambda: view_box(self.viewer),
            self.shapes_layer.layer,
            to_px,
        )

    def update_resolution(self, *_: Any) -> str | None:
        """Show slide µm/px, model µm/px and the zoom a run will use; return any warning.

        Parameters
        ----------
        *_
            Ignored (the fields' change events).

        Returns
        -------
        str or None
            The note :func:`~napari_slideseg.infer.engine.resolve_zoom` gives when a
            resolution is missing, else None.
        """
        from ..infer.config import resolve_zoom
        from ..models.card import read_card

        self.zoom.enabled = not self.auto_zoom.value
        try:
            layer = self.slide_layer.layer
            if layer is None:
                self.resolution.value = "zoom: choose a slide layer"
                return None
            slide = layer_to_slide(layer)
            card = read_card(self.model_paths()[0], hash_weights=False)  # only its mpp
            zoom, info, note = resolve_zoom(slide, card, self._zoom_config())
        except (SlideSegError, OSError) as exc:
            self.resolution.value = f"zoom: {exc}"
            return None
        self.resolution.value = zoom_line(zoom, info, auto=self.auto_zoom.value)
        if self.auto_zoom.value and not note:
            self.zoom.value = zoom
        return note

    def _zoom_config(self) -> InferConfig:
        return InferConfig(
            level=self.level.value, zoom="auto" if self.auto_zoom.value else self.zoom.value
        )

    def config(self, slide: Any, card: Any) -> InferConfig:
        """The :class:`InferConfig` the fields describe.

        Parameters
        ----------
        slide : Slide
            The slide (for the region in its level's pixels).
        card : ModelCard
            The first model's card (its patch size is the default tile).

        Returns
        -------
        InferConfig
            The settings of the run.
        """
        zoom: float | str = "auto" if self.auto_zoom.value else self.zoom.value
        note = self.update_resolution() if self.auto_zoom.value else None
        if note:
            # an mpp is missing: say so here (the core would only warn in the worker)
            notify_warning(note)
            zoom = 1.0
        return InferConfig(
            level=self.level.value,
            zoom=zoom,
            tile=self.tile.value or card.patch_size,
            overlap=self.overlap.value,
            batch_size=self.batch.value or None,
            block=self.block.value or None,
            device=self.device.value,
            tta=self.tta.value,
            amp=self.amp.value,
            save_probs=self.save_probs.value,
            min_tissue=self.min_tissue.value,
            instance_halo=self.instance_halo.value,
            **self.region_args(slide),
        )

    def output_path(self, slide: Any, paths: list[Path], cfg: InferConfig) -> Path:
        """The field's path, or (empty field) a default unique to slide, models and settings.

        The default is :func:`~napari_slideseg._widgets.infer_output.default_output`'s.
        A field that names an existing folder that is not a ``.zarr`` (e.g.
        the working directory after clearing the field) is never written into.

        Parameters
        ----------
        slide : Slide
            The slide.
        paths : list of Path
            The checkpoint folders.
        cfg : InferConfig
            The run's settings.

        Returns
        -------
        Path
            The output folder.

        Raises
        ------
        InferError
            When the field names a folder that is not a ``.zarr`` output.
        """
        value = str(self.out.value or "").strip()
        # a cleared FileEdit reads back as "." or the working directory itself
        if value and value != "." and Path(value).expanduser().resolve() != Path.cwd().resolve():
            return checked_output(Path(value).expanduser())
        return default_output(slide, paths, cfg)

    # -- the job ---------------------------------------------------------------------
    def job(self) -> Generator[Any, None, Any]:
        """Inference with the fields' settings (run in the worker thread).

        Returns
        -------
        generator
            :func:`~napari_slideseg.infer.engine.predict_slide_steps`'s.

        Raises
        ------
        InferError
            When no slide layer is chosen, or the fields are refused.
        """
        from ..infer.engine import predict_slide_steps
        from ..models.checkpoint import load_model

        layer = self.slide_layer.layer
        if layer is None:
            raise InferError("choose a slide layer")
        slide = layer_to_slide(layer)
        paths = self.model_paths()
        models = [load_model(p) for p in paths]
        cfg = self.config(slide, models[0][1])
        out = self.output_path(slide, paths, cfg)
        out.parent.mkdir(parents=True, exist_ok=True)
        self._out = out
        if self.layer is not None and self.layer.metadata.get("slideseg", {}).get(
            "prediction"
        ) != str(out):
            self.layer = None
        return predict_slide_steps(
            slide,
            models,
            out,
            cfg,
            resume=self.resume.value,
            client=self.scheduler.value.strip() or None,
        )

    def _units(self) -> dict[str, Any]:
        """The slide layer's units, so the result lines up without unit warnings."""
        layer = self.slide_layer.layer
        units = getattr(layer, "units", None) if layer is not None else None
        return {"units": tuple(units)[-2:]} if units else {}

    def _ensure_layer(self) -> Any:
        if self.layer is not None and self.layer in self.viewer.layers:
            return self.layer
        scale = tuple(self._slide_scale())
        self.layer = add_prediction_layer(self.viewer, self._out, scale, self._units())
        return self.layer

    def _progress(self, _event: Any) -> None:
        now = time.monotonic()
        layer = self._ensure_layer()
        if now - self._last_refresh >= REFRESH_EVERY:
            self._last_refresh = now
            layer.refresh()

    def _done(self, out: Any) -> None:
        from ..layers import prediction_layers

        self._out = Path(out)
        layer = self._ensure_layer()
        tuples = prediction_layers(out, base_scale=tuple(self._slide_scale()))
        layer.metadata = {**layer.metadata, **tuples[0][1]["metadata"]}
        layer.refresh()
        if len(tuples) > 1:  # HoVer: nuclei with their table, and centroids
            old, units = (self.instance_layer, self.points_layer), self._units()
            self.instance_layer, self.points_layer = add_instance_layers(
                self.viewer, out, tuples[1], layer, units, points=self.points.value, replacing=old
            )
        self.status.value = done_message(out)


__all__ = ["InferWidget"]
