"""Writing a patch set: :func:`extract_patches` and its generator of progress events.

:func:`extract_patches_steps` checks its inputs, prepares the folder (a
fresh one, a resumed run or a replaced one), then walks the plan with
:func:`~napari_slideseg.patching.iterate.iter_patches`: each kept patch goes
to a :class:`~napari_slideseg.patching.writers.PatchWriter` and gets one
manifest row. ``manifest.csv`` appears only when the run completes
(atomically), and ``run.json`` says whether it did.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.annotations import IGNORE_INDEX
from ..io.files import atomic_path, write_text_atomic
from ..io.slide import Slide, as_slide
from ..progress import Progress, drain
from .config import PatchConfig, PatchError
from .folder import clear_failed, has_patches, reuse_folder
from .inputs import check_choices, instance_mask, is_annotations
from .iterate import Patch, iter_patches
from .manifest import MANIFEST, ManifestLayout, manifest_classes
from .masks import annotation_mask, check_mask_shape, instance_patch
from .plan import PatchPlan, patch_resolution, plan_patches
from .writers import PatchWriter, patch_writer

_DEFAULT_CONFIG = PatchConfig()  # frozen: one shared default is safe


@dataclass
class PatchSetResult:
    """What :func:`extract_patches` wrote.

    Attributes
    ----------
    out : Path
        The patch folder.
    manifest : Path
        Its ``manifest.csv``.
    summary : dict
        Patch counts per filter (``grid``, ``outside_region``,
        ``low_tissue``, ``black``, ``white``, ``background_only``) and ``kept``.
    n_patches : int
        Manifest rows written.
    """

    out: Path
    manifest: Path
    summary: dict[str, int]
    n_patches: int


def _config_hash(config: PatchConfig, slide: Slide, mask_id: str | None) -> str:
    raw = json.dumps(
        {"config": config.to_dict(), "slide": os.path.abspath(slide.path), "mask": mask_id},
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))


# -----------------------------------------------------------------------------
# the run
# -----------------------------------------------------------------------------
def extract_patches_steps(
    slide: Slide,
    out: str | os.PathLike,
    config: PatchConfig = _DEFAULT_CONFIG,
    *,
    mask: Any | None = None,
    classmap: Any | None = None,
    mask_id: str | None = None,
    fmt: str = "png",
    overwrite: str = "error",
    workers: int = 2,
    block: int = 4096,
    instances: bool = False,
    types: Any | None = None,
) -> Generator[Progress, None, PatchSetResult]:
    """:func:`extract_patches` as a generator of progress events (for widgets and the CLI).

    Parameters
    ----------
    slide : Slide or str or os.PathLike
        The slide, or its path.
    out : str or os.PathLike
        The output folder (see :func:`extract_patches`).
    config : PatchConfig
        The patch settings.
    mask, classmap, mask_id, fmt, overwrite, workers, block
        See :func:`extract_patches`. ``mask`` may be a ``.geojson`` /
        ``.geojson.gz`` file of annotations (QuPath's export; read with
        ``classmap``, which is then required) or
        :class:`~napari_slideseg.io.annotations.Annotations`: it is
        rasterised lazily at the level cut, ``config.unannotated`` deciding
        what pixels outside the annotations are, and ``run.json`` records
        the file and the option under ``annotations``.
    instances : bool
        ``mask`` is an instance map: mask patches are uint16 ids 1..N per
        patch (PNG only), with an ``n_instances`` manifest column.
    types : array or None
        With ``instances``: a nucleus-type map of the same shape, written to
        ``types/``.

    Yields
    ------
    Progress
        One event per block of patches.

    Returns
    -------
    PatchSetResult
        The generator's return value (``StopIteration.value``).

    Raises
    ------
    PatchError
        Invalid settings or inputs, a mask of the wrong shape, or a folder
        that ``overwrite`` does not allow to reuse; GeoJSON annotations
        without a class map.
    SlideSegError
        Annotations that cannot be read or whose classes are not in the map
        (:class:`~napari_slideseg.io.annotations.AnnotationError`).

    Warns
    -----
    UserWarning
        ``config.unannotated == "ignore"`` without a mask (it has no effect).
    """
    slide = as_slide(slide, error=PatchError)
    if not isinstance(config, PatchConfig):
        raise PatchError(f"config must be a PatchConfig, not {type(config).__name__}")
    annotated = is_annotations(mask)
    if annotated and (instances or types is not None):
        raise PatchError("instance patches need an instance map, not GeoJSON annotations")
    mask = instance_mask(mask, types, instances, fmt)
    check_choices(overwrite, fmt)
    out = Path(out)
    if annotated and mask_id is None:
        mask_id = str(getattr(mask, "path", mask))
    digest = _config_hash(config, slide, mask_id)
    plan = plan_patches(slide, config)  # refuses impossible settings before anything is made
    record = None
    if annotated:
        mask, classmap, record = annotation_mask(
            mask, slide, plan.level, classmap, config.unannotated
        )
    elif mask is None and config.unannotated == "ignore":
        warnings.warn(
            "unannotated='ignore' has no effect without a mask", UserWarning, stacklevel=2
        )
    if mask is not None:
        check_mask_shape(mask, slide, plan.level, mask_id or "mask")
    fresh = not out.exists() or not any(out.iterdir())
    if not fresh:
        reuse_folder(out, overwrite, digest)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(slide, out, config, plan, mask, overwrite, workers, block, instances, types, record)
    try:
        result = yield from run.extract(digest, classmap, mask_id, fmt)
    except BaseException:
        if fresh and not has_patches(out):
            # failed before the first patch: leave nothing that blocks the next run
            clear_failed(out, made)
        raise
    return result


@dataclass
class _Run:
    """One patch run into a prepared folder: the body of :func:`extract_patches_steps`."""

    slide: Slide
    out: Path
    config: PatchConfig
    plan: PatchPlan
    mask: Any
    overwrite: str
    workers: int
    block: int
    instances: bool
    types: Any
    annotations: dict[str, Any] | None = None

    def extract(
        self, digest: str, classmap: Any, mask_id: str | None, fmt: str
    ) -> Generator[Progress, None, PatchSetResult]:
        """Write ``run.json``, the patches and the manifest; mark the run complete."""
        run_file = self.out / "run.json"
        meta: dict[str, Any] = {
            "config": self.config.to_dict(),
            "config_hash": digest,
            "slide": os.path.abspath(self.slide.path),
            "mask": mask_id,
            "format": fmt,
            "instances": bool(self.instances),
            "complete": False,
        }
        if self.annotations is not None:
            meta["annotations"] = self.annotations
        _write_json(run_file, meta)
        if classmap is not None:
            classmap.save_json(self.out / "classmap.json")
        layout = self.layout(classmap)
        meta["mpp"] = layout.mpp
        _write_json(run_file, meta)
        summary: dict[str, int] = {}
        items = iter_patches(
            self.slide,
            self.config,
            self.mask,
            plan=self.plan,
            block=self.block,
            background=layout.background,
            workers=self.workers,
            summary=summary,
        )
        with self.writer(fmt, layout) as writer:
            rows = yield from _write_patches(self.out / MANIFEST, writer, layout, items)
            meta["complete"] = True
            meta["summary"] = summary
            _write_json(run_file, meta)
        return PatchSetResult(self.out, self.out / MANIFEST, summary, rows)

    def layout(self, classmap: Any) -> ManifestLayout:
        """Names, classes and manifest columns of this run."""
        n_classes, background, names = manifest_classes(classmap, self.mask, self.instances)
        zoom = self.config.zoom
        return ManifestLayout(
            stem=Path(self.slide.path.rstrip("/")).name.split(".")[0],
            level=self.plan.level,
            ztag="" if zoom == 1 else f"z{zoom:g}",
            factor=self.plan.factor,
            size=self.config.size,
            mpp=patch_resolution(self.slide, self.plan.level, zoom),
            n_classes=n_classes,
            background=background,
            names=names,
            instances=self.instances,
            has_types=self.instances and self.types is not None,
            ignore=IGNORE_INDEX
            if self.mask is not None and self.config.unannotated == "ignore"
            else None,
        )

    def writer(self, fmt: str, layout: ManifestLayout) -> PatchWriter:
        """The (unopened) writer for ``fmt``, sized for this slide and mask."""
        arr = self.slide.levels[self.plan.level]
        wide = (layout.n_classes or 0) > 256
        return patch_writer(
            fmt,
            self.out,
            skip_existing=self.overwrite == "skip",
            workers=self.workers,
            size=self.config.size,
            channels=tuple(arr.shape[2:]) if arr.ndim == 3 else (),
            dtype=self.slide.dtype,
            mask_dtype=None if self.mask is None else (np.uint16 if wide else np.uint8),
        )


def _write_patches(
    manifest: Path, writer: PatchWriter, layout: ManifestLayout, items: Iterable[Patch | Progress]
) -> Generator[Progress, None, int]:
    """Write each patch and its manifest row; the manifest appears only when all are done.

    Progress events pass through once the patches before them are on disk.
    Returns the number of rows.
    """
    rows = 0
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(layout.header())
        for item in items:
            if isinstance(item, Progress):
                writer.flush()
                yield item
                continue
            w.writerow(_write_patch(writer, layout, item))
            rows += 1
        writer.flush()
    return rows


def _write_patch(writer: PatchWriter, layout: ManifestLayout, item: Patch) -> list:
    """Hand one patch's pixels to ``writer``; return its manifest row."""
    name = layout.patch_name(item)
    image_ref = writer.write_image(name, item.image)
    mask = item.mask
    extra: list[Any] = []
    if layout.instances:
        assert item.mask is not None  # _instance_mask requires a mask with instances
        mask, type_p = instance_patch(item.mask)
        extra = [int(mask.max())]
        if layout.has_types:
            assert type_p is not None  # a type map makes the mask (s, s, 2)
            extra.append(writer.write_types(name, type_p))
    if mask is None:
        return layout.row(item, (image_ref, ""), None, extra)
    labels = layout.fractions(mask)
    mask_ref = writer.write_mask(name, mask)
    return layout.row(item, (image_ref, mask_ref), labels, extra)


def extract_patches(
    slide: Slide, out: str | os.PathLike, config: PatchConfig = _DEFAULT_CONFIG, **kwargs: Any
) -> PatchSetResult:
    """Cut patches (and aligned mask patches) from ``slide`` into ``out``.

    Parameters
    ----------
    slide
        An opened :class:`~napari_slideseg.io.slide.Slide`.
    out
        Output folder: ``images/`` and ``masks/`` PNGs (masks are single-channel
        class indices), ``manifest.csv`` (one row per patch: image, mask, slide,
        level, x, y in level pixels, x0, y0 in level-0 pixels, size, per-class
        pixel fractions, has_foreground), ``classmap.json`` and ``run.json``
        (config, its hash, summary, completion flag). With ``fmt="zarr"`` the
        pixels go to ``patches.zarr`` (``images``: (n, s, s, c), ``masks``:
        (n, s, s), one chunk per patch) and the manifest points into it.
    config
        A :class:`PatchConfig`.
    **kwargs
        ``mask`` (label array at level 0 or at the chosen level; numpy or
        dask; or a ``.geojson`` / ``.geojson.gz`` file of annotations, see
        :func:`extract_patches_steps`), ``classmap``, ``mask_id`` (a name recorded for the mask),
        ``fmt``, ``overwrite`` (``error``: refuse a non-empty folder; ``skip``:
        resume the same run, skipping files already written; ``overwrite``:
        replace the previous run), ``workers`` (reader and writer threads),
        ``block`` (block edge in pixels).

    Returns
    -------
    PatchSetResult
        The folder, its manifest and the counts.

    Raises
    ------
    PatchError
        See :func:`extract_patches_steps`.
    """
    return drain(extract_patches_steps(slide, out, config, **kwargs))
