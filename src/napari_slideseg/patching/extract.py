"""Writing a patch set: :func:`extract_patches` and its generator of progress events."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..io.slide import Slide
from ..progress import Progress, drain
from .config import OVERWRITE, PatchConfig, PatchError
from .iterate import Patch, iter_patches
from .masks import check_mask_shape, instance_patch
from .plan import patch_resolution, plan_patches
from .writers import write_png

_DEFAULT_CONFIG = PatchConfig()  # frozen: one shared default is safe


def _config_hash(config: PatchConfig, slide: Slide, mask_id: str | None) -> str:
    raw = json.dumps(
        {"config": config.to_dict(), "slide": os.path.abspath(slide.path), "mask": mask_id},
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class PatchSetResult:
    """What :func:`extract_patches` wrote."""

    out: Path
    manifest: Path
    summary: dict[str, int]
    n_patches: int


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
    """:func:`extract_patches` as a generator of progress events (for widgets and the CLI)."""
    if isinstance(slide, str | os.PathLike):
        from ..io.slide import open_slide

        slide = open_slide(slide)
    elif not hasattr(slide, "levels") or not hasattr(slide, "check_level"):
        raise PatchError(
            f"slide must be a Slide (napari_slideseg.open_slide(path)) or a path, "
            f"not {type(slide).__name__}"
        )
    if not isinstance(config, PatchConfig):
        raise PatchError(f"config must be a PatchConfig, not {type(config).__name__}")
    if instances:
        if fmt != "png":
            raise PatchError("instance patches are written as PNG (fmt='png')")
        if mask is None:
            raise PatchError("instances=True needs an instance map as mask")
        if types is not None:
            if tuple(types.shape[:2]) != tuple(mask.shape[:2]):
                raise PatchError(
                    f"type map shape {tuple(types.shape)} differs from the instance map's {tuple(mask.shape)}"
                )
            stack = (
                da.stack if isinstance(mask, da.Array) or isinstance(types, da.Array) else np.stack
            )
            mask = stack([mask.astype(np.int64), types.astype(np.int64)], -1)
    elif types is not None:
        raise PatchError("a type map goes with instances=True")
    if overwrite not in OVERWRITE:
        raise PatchError(f"overwrite must be one of {OVERWRITE}, not {overwrite!r}")
    if fmt not in ("png", "zarr"):
        raise PatchError(f"fmt must be 'png' or 'zarr', not {fmt!r}")
    out = Path(out)
    run_file = out / "run.json"
    digest = _config_hash(config, slide, mask_id)
    plan = plan_patches(slide, config)  # refuses impossible settings before anything is made
    if mask is not None:
        check_mask_shape(mask, slide, plan.level, mask_id or "mask")
    fresh = not out.exists() or not any(out.iterdir())
    if not fresh:
        previous = json.loads(run_file.read_text()) if run_file.exists() else None
        if overwrite == "error":
            raise PatchError(
                f"{out}: folder is not empty; pass overwrite='skip' (--overwrite skip) to "
                "resume the same run or overwrite='overwrite' (--overwrite overwrite) to replace it"
            )
        if overwrite == "skip" and (previous is None or previous.get("config_hash") != digest):
            raise PatchError(
                f"{out}: holds a different patch run (other slide, mask or settings); "
                "'skip' only resumes the same run: use another folder or overwrite='overwrite' "
                "(--overwrite overwrite)"
            )
        if overwrite == "overwrite":
            for name in (
                "images",
                "masks",
                "types",
                "patches.zarr",
                "manifest.csv",
                "run.json",
                "classmap.json",
            ):
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = yield from _extract_into(
            slide,
            out,
            config,
            plan,
            digest,
            mask,
            classmap,
            mask_id,
            fmt,
            overwrite,
            workers,
            block,
            instances,
            types,
        )
    except BaseException:
        if fresh and not _has_patches(out):
            # failed before the first patch: leave nothing that blocks the next run
            if made:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for p in list(out.iterdir()):
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        raise
    return result


def _has_patches(out: Path) -> bool:
    """Whether a patch folder holds any patch file yet."""
    for sub in ("images", "masks", "types"):
        d = out / sub
        if d.is_dir() and any(p.suffix == ".png" for p in d.iterdir()):
            return True
    z = out / "patches.zarr"
    return z.exists() and any(z.rglob("c/*"))


def _extract_into(
    slide,
    out,
    config,
    plan,
    digest,
    mask,
    classmap,
    mask_id,
    fmt,
    overwrite,
    workers,
    block,
    instances,
    types,
) -> Generator[Progress, None, PatchSetResult]:
    """The body of :func:`extract_patches_steps` once the folder is ready."""
    run_file = out / "run.json"
    meta = {
        "config": config.to_dict(),
        "config_hash": digest,
        "slide": os.path.abspath(slide.path),
        "mask": mask_id,
        "format": fmt,
        "instances": bool(instances),
        "complete": False,
    }
    _atomic_json(run_file, meta)
    if classmap is not None:
        classmap.save_json(out / "classmap.json")
    n_classes = classmap.n_classes if classmap is not None else None
    background = classmap.background if classmap is not None else 0
    if instances:
        n_classes, background = 2, 0
    if mask is not None and n_classes is None:
        top = mask.max()
        n_classes = int(top.compute() if isinstance(top, da.Array) else top) + 1
    class_names = (
        list(classmap.names)
        if classmap is not None and not instances
        else ["background", "nucleus"]
        if instances
        else [f"class_{i}" for i in range(n_classes or 0)]
    )

    stem = Path(slide.path.rstrip("/")).name.split(".")[0]
    ztag = "" if config.zoom == 1 else f"z{config.zoom:g}"
    fy, fx = plan.factor
    patch_mpp = patch_resolution(slide, plan.level, config.zoom)
    meta["mpp"] = patch_mpp
    _atomic_json(run_file, meta)
    header = ["image", "mask", "slide", "level", "x", "y", "x0", "y0", "size", "mpp"]
    header += [f"frac_{n}" for n in class_names] + ["has_foreground"]
    has_types = instances and types is not None
    if instances:
        header += ["n_instances"] + (["types"] if has_types else [])
    part = out / f"manifest.csv.{uuid.uuid4().hex[:6]}.part"
    summary: dict[str, int] = {}
    rows = 0
    zimg = zmask = None
    if fmt == "zarr":
        import zarr

        root = zarr.open_group(str(out / "patches.zarr"), mode="a")
        s = config.size
        ch = slide.levels[plan.level].shape[2:] if slide.levels[plan.level].ndim == 3 else ()
        zimg = root.require_array(
            "images", shape=(0, s, s, *ch), chunks=(1, s, s, *ch), dtype=slide.dtype
        )
        zimg.resize((0, s, s, *ch))
        if mask is not None:
            zmask = root.require_array(
                "masks",
                shape=(0, s, s),
                chunks=(1, s, s),
                dtype=np.uint16 if (n_classes or 0) > 256 else np.uint8,
            )
            zmask.resize((0, s, s))
    writer_pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        with open(part, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            pending: list[Future] = []
            for item in iter_patches(
                slide,
                config,
                mask,
                plan=plan,
                block=block,
                background=background,
                workers=workers,
                summary=summary,
            ):
                if isinstance(item, Progress):
                    for f in pending:
                        f.result()
                    pending.clear()
                    yield item
                    continue
                name = f"{stem}_L{plan.level}{ztag}_y{item.y}_x{item.x}.png"
                if fmt == "png":
                    ipath = out / "images" / name
                    ipath.parent.mkdir(exist_ok=True)
                    if not (overwrite == "skip" and ipath.exists()):
                        pending.append(writer_pool.submit(write_png, ipath, item.image))
                    image_ref = f"images/{name}"
                else:
                    idx = zimg.shape[0]
                    zimg.resize((idx + 1, *zimg.shape[1:]))
                    zimg[idx] = item.image
                    image_ref = f"patches.zarr/images/{idx}"
                mask_ref = ""
                fracs: list[float] = []
                has_fg = ""
                extra: list[Any] = []
                if instances:
                    inst_p, type_p = instance_patch(item.mask)
                    extra = [int(inst_p.max())]
                    if has_types:
                        tpath = out / "types" / name
                        tpath.parent.mkdir(exist_ok=True)
                        if not (overwrite == "skip" and tpath.exists()):
                            pending.append(writer_pool.submit(write_png, tpath, type_p))
                        extra.append(f"types/{name}")
                    item = Patch(item.y, item.x, item.image, inst_p)
                if item.mask is not None:
                    counts = np.bincount(
                        (item.mask > 0 if instances else item.mask).ravel().astype(np.int64),
                        minlength=n_classes or 1,
                    )
                    fracs = (counts[: n_classes or len(counts)] / item.mask.size).round(6).tolist()
                    has_fg = int(bool(np.any(item.mask != background)))
                    if fmt == "png":
                        mpath = out / "masks" / name
                        mpath.parent.mkdir(exist_ok=True)
                        if not (overwrite == "skip" and mpath.exists()):
                            m = item.mask.astype(np.uint16 if item.mask.max() > 255 else np.uint8)
                            pending.append(writer_pool.submit(write_png, mpath, m))
                        mask_ref = f"masks/{name}"
                    else:
                        idx = zmask.shape[0]
                        zmask.resize((idx + 1, *zmask.shape[1:]))
                        zmask[idx] = item.mask
                        mask_ref = f"patches.zarr/masks/{idx}"
                w.writerow(
                    [
                        image_ref,
                        mask_ref,
                        stem,
                        plan.level,
                        item.x,
                        item.y,
                        round(item.x * fx),
                        round(item.y * fy),
                        config.size,
                        "" if patch_mpp is None else patch_mpp,
                    ]
                    + (
                        fracs + [0.0] * (len(class_names) - len(fracs))
                        if item.mask is not None
                        else [""] * len(class_names)
                    )
                    + [has_fg]
                    + extra
                )
                rows += 1
            for f in pending:
                f.result()
        os.replace(part, out / "manifest.csv")
        meta["complete"] = True
        meta["summary"] = summary
        _atomic_json(run_file, meta)
    finally:
        writer_pool.shutdown(wait=True, cancel_futures=True)
        part.unlink(missing_ok=True)
    return PatchSetResult(out, out / "manifest.csv", summary, rows)


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
        dask), ``classmap``, ``mask_id`` (a name recorded for the mask),
        ``fmt``, ``overwrite`` (``error``: refuse a non-empty folder; ``skip``:
        resume the same run, skipping files already written; ``overwrite``:
        replace the previous run), ``workers`` (reader and writer threads),
        ``block`` (block edge in pixels).

    Returns
    -------
    PatchSetResult
    """
    return drain(extract_patches_steps(slide, out, config, **kwargs))


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)
