"""Patch-extraction dock widget: a thin adapter over :func:`extract_patches_steps`."""

from __future__ import annotations

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
    PushButton,
    SpinBox,
)

from ..options import GridMode, Overwrite, PadMode, PatchFormat, values
from ..patching import PatchConfig, PatchPlan, plan_patches
from ._common import (
    LayerChoice,
    drop_layer,
    edit_path,
    labels_level0,
    layer_to_slide,
    notify_error,
)
from .runner import JobWidget

#: Above this many windows the preview is a coarse Labels grid instead of rectangles.
PREVIEW_MAX_SHAPES = 3000


class PatchWidget(JobWidget):
    """Cut patches from a slide layer (and a mask layer) into a folder.

    Choose the layers and the grid, press *Preview grid* to see kept (green)
    and filtered (red) windows on the slide, then *Run*. The job runs in a
    worker thread with a progress bar; *Cancel* stops it at the next block.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it by this name).
    """

    def __init__(self, napari_viewer: Any) -> None:
        viewer = napari_viewer  # napari passes the viewer by this parameter name
        super().__init__(viewer)
        self.slide_layer = LayerChoice(viewer, "image", "slide")
        self.mask_layer = LayerChoice(viewer, "labels", "mask", optional=True)
        self.region_layer = LayerChoice(viewer, "shapes", "region", optional=True)
        self.size = SpinBox(value=512, min=16, max=8192, step=16, label="size")
        self.stride = SpinBox(value=512, min=1, max=8192, step=16, label="stride")
        self.level = SpinBox(value=0, min=0, max=20, label="level")
        self.zoom = FloatSpinBox(value=1.0, min=0.05, max=8.0, step=0.25, label="zoom")
        self.grid = ComboBox(choices=values(GridMode), value=GridMode.VALID.value, label="grid")
        self.pad_mode = ComboBox(
            choices=values(PadMode), value=PadMode.REFLECT.value, label="padding"
        )
        self.min_tissue = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="min tissue")
        self.max_black = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="max black")
        self.max_white = FloatSpinBox(value=0.9, min=0, max=1, step=0.05, label="max white")
        self.drop_background = CheckBox(value=False, label="drop background-only")
        self.keep_background = FloatSpinBox(
            value=0.0, min=0, max=1, step=0.05, label="keep bg fraction"
        )
        self.out = FileEdit(
            mode=FileDialogMode.EXISTING_DIRECTORY,
            label="output folder",
            value=Path.home() / "slideseg-patches",
        )
        self.fmt = ComboBox(
            choices=values(PatchFormat), value=PatchFormat.PNG.value, label="format"
        )
        self.overwrite = ComboBox(
            choices=values(Overwrite), value=Overwrite.ERROR.value, label="if folder exists"
        )
        self.preview_button = PushButton(text="Preview grid")
        self.summary = Label(value="")
        self.lay_out(
            [
                self.slide_layer,
                self.mask_layer,
                self.region_layer,
                self.size,
                self.stride,
                self.level,
                self.zoom,
                self.grid,
                self.pad_mode,
                self.min_tissue,
                self.max_black,
                self.max_white,
                self.drop_background,
                self.keep_background,
                self.out,
                self.fmt,
                self.overwrite,
                self.preview_button,
            ],
            after=[self.summary],
            on_done=self._done,
        )
        self.preview_button.changed.connect(self.preview)

    # -- the one config object --------------------------------------------------------
    def config(self) -> PatchConfig:
        """The :class:`PatchConfig` the fields describe.

        Returns
        -------
        PatchConfig
            The settings (the region layer's shapes as polygons in slide pixels).
        """
        polygons = None
        shapes = self.region_layer.layer
        if shapes is not None and len(shapes.data):
            scale = np.asarray(shapes.scale[-2:]) / self._slide_scale()
            polygons = tuple(
                tuple((float(y), float(x)) for y, x in np.asarray(poly)[:, -2:] * scale)
                for poly in shapes.data
            )
        return PatchConfig(
            size=self.size.value,
            stride=self.stride.value,
            level=self.level.value,
            zoom=self.zoom.value,
            grid=self.grid.value,
            pad_mode=self.pad_mode.value,
            polygons=polygons,
            min_tissue=self.min_tissue.value,
            max_black=self.max_black.value,
            max_white=self.max_white.value,
            drop_background=self.drop_background.value,
            keep_background=self.keep_background.value,
        )

    def _slide_scale(self) -> np.ndarray:
        layer = self.slide_layer.layer
        return np.asarray(layer.scale[-2:]) if layer is not None else np.ones(2)

    def _inputs(self) -> tuple[Any, Any, Any]:
        layer = self.slide_layer.layer
        if layer is None:
            raise ValueError("choose a slide layer")
        slide = layer_to_slide(layer)
        mask = classmap = None
        mlayer = self.mask_layer.layer
        if mlayer is not None:
            from ..io.masks import classmap_from_metadata

            mask = labels_level0(mlayer)
            classmap = classmap_from_metadata(mlayer.metadata)
        return slide, mask, classmap

    # -- actions ---------------------------------------------------------------------
    def job(self) -> Generator[Any, None, Any]:
        """Patch extraction with the fields' settings (run in the worker thread).

        Returns
        -------
        generator
            :func:`~napari_slideseg.patching.extract_patches_steps`'s.

        Raises
        ------
        ValueError
            When no slide layer is chosen.
        """
        from ..patching import extract_patches_steps

        slide, mask, classmap = self._inputs()
        mlayer = self.mask_layer.layer
        return extract_patches_steps(
            slide,
            edit_path(self.out),
            self.config(),
            mask=mask,
            classmap=classmap,
            mask_id=mlayer.name if mlayer is not None else None,
            fmt=self.fmt.value,
            overwrite=self.overwrite.value,
        )

    def _done(self, result: Any) -> None:
        lines = [f"{result.n_patches} patches written to {result.out}"]
        lines += [f"{k}: {v}" for k, v in result.summary.items()]
        self.summary.value = "\n".join(lines)

    def preview(self, *_: Any) -> Any:
        """Show kept and filtered windows (cheap filters: region, tissue) on the slide.

        Parameters
        ----------
        *_
            Ignored (the button's click event).

        Returns
        -------
        napari.layers.Layer or None
            The ``patch grid`` layer (rectangles, or a coarse Labels grid for many
            windows); None after an error notification.
        """
        try:
            slide, _, _ = self._inputs()
            cfg = self.config()
            full = plan_patches(
                slide, PatchConfig(**{**cfg.__dict__, "min_tissue": 0.0, "polygons": None})
            )
            plan = plan_patches(slide, cfg)
        except Exception as err:
            notify_error(str(err))
            return None
        layer = self._show_plan(slide, cfg, full, plan)
        s = plan.summary
        self.summary.value = (
            f"grid {s.get('grid', 0)}, kept {len(plan.positions)}, outside region "
            f"{s.get('outside_region', 0)}, low tissue {s.get('low_tissue', 0)} "
            "(black/white/background filters apply while writing)"
        )
        return layer

    def _show_plan(self, slide: Any, cfg: PatchConfig, full: PatchPlan, plan: PatchPlan) -> Any:
        kept = {tuple(p) for p in plan.positions.tolist()}
        fy, fx = full.factor
        scale = self._slide_scale()
        name = "patch grid"
        drop_layer(self.viewer, name)
        if len(full.positions) <= PREVIEW_MAX_SHAPES:
            rects = [
                np.array([[y * fy, x * fx], [(y + cfg.size) * fy, (x + cfg.size) * fx]])
                for y, x in full.positions
            ]
            colors = ["lime" if (y, x) in kept else "red" for y, x in full.positions.tolist()]
            return self.viewer.add_shapes(
                rects,
                shape_type="rectangle",
                edge_color=colors,
                face_color="transparent",
                edge_width=max(2.0, cfg.size * fy / 64),
                scale=scale,
                name=name,
            )
        ys = np.unique(full.positions[:, 0])
        xs = np.unique(full.positions[:, 1])
        grid = np.full((len(ys), len(xs)), 2, np.uint8)
        iy = {v: i for i, v in enumerate(ys)}
        ix = {v: i for i, v in enumerate(xs)}
        for y, x in kept:
            grid[iy[y], ix[x]] = 1
        step = cfg.stride
        return self.viewer.add_labels(
            grid,
            name=name,
            scale=scale * np.array([step * fy, step * fx]),
            translate=(ys[0] * fy * scale[0], xs[0] * fx * scale[1]),
            opacity=0.4,
        )
