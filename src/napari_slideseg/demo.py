"""The main job on the bundled sample: typed nuclei, exported and measured (no Qt).

:func:`run_demo` opens the bundled CMU-1 H&E sample (skin, 0.5 µm/px), runs
the bundled HoVer nuclei model over a 1024 x 1024 region of epidermis and
dermis, and writes every output a user would take away: the prediction
zarr, QuPath GeoJSON detections, an RLE CSV, the nucleus table, a
colour-map PNG of the nucleus types and overlay PNGs. Each step is timed.

The bundled gland model is *not* run on this sample (:data:`NO_GLANDS` says
why, on screen): it was trained on colon glands (GlaS) and the sample is
skin, where it marks the epidermis. The nuclei model was trained at
0.25 µm/px; inference's default ``zoom="auto"`` resamples blocks so it sees
its own scale, and the outputs stay on the slide's pixel grid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .io.errors import SlideSegError
from .progress import Progress

logger = logging.getLogger(__name__)

GLAND_MODEL = "glas-gland"
NUCLEI_MODEL = "hover-nuclei"
#: Why the demo does not run the gland model on the bundled sample (shown on screen).
NO_GLANDS = (
    f"glands: not run on this sample. The bundled gland model ({GLAND_MODEL}) was trained on "
    "colon glands (GlaS) and the bundled sample is skin, which has no such glands: there it "
    f"marks the epidermis. Run it on colon tissue: slideseg predict SLIDE --model {GLAND_MODEL}"
)
#: Region of the sample the nuclei model runs on (y0, x0, y1, x1 at level 0): epithelium
#: and dermis with a hair follicle, where the skin has its nuclei (no keratin flakes).
NUCLEI_REGION = (1900, 450, 2924, 1474)


def _inference_attrs(out: Path) -> dict[str, Any]:
    """The ``slideseg_inference`` attributes of the prediction ``out`` (JSON the engine wrote)."""
    import zarr

    attrs: dict[str, Any] = dict(zarr.open_group(str(out), mode="r").attrs)
    return attrs["slideseg_inference"]


def _zoom_used(out: Path) -> float:
    return float(_inference_attrs(out)["config"]["zoom"])


def _bundled(name: str) -> Path:
    from .models.bundled import bundled_models

    models = bundled_models()
    if name not in models:
        raise SlideSegError(
            f"the bundled model {name!r} is missing from this install (have: {', '.join(models) or 'none'}); "
            "reinstall napari-slideseg or rebuild it with scripts/train_bundled.sh"
        )
    return models[name]


#: What a demo run writes into its folder (an earlier run's files may be replaced).
DEMO_OUTPUTS = ("nuclei", "nucleus_types", "overlay")
#: What earlier versions wrote there (removed: they showed epidermis as glands).
OLD_DEMO_OUTPUTS = ("glands",)


def _check_demo_folder(out: Path) -> None:
    """Refuse an output folder that is a prediction/zarr store or holds other files."""
    if out.exists() and not out.is_dir():
        raise SlideSegError(f"{out}: exists and is not a folder (the demo writes a folder)")
    if not out.is_dir():
        return
    from .io.sniff import sniff_kind

    if sniff_kind(str(out)) == "zarr":
        raise SlideSegError(
            f"{out}: is a zarr store (a prediction?); the demo writes its own folder of "
            "outputs: give another --out"
        )
    known = DEMO_OUTPUTS + OLD_DEMO_OUTPUTS
    other = [p.name for p in out.iterdir() if not p.name.lstrip(".").startswith(known)]
    if other:
        raise SlideSegError(
            f"{out}: holds files the demo did not write ({', '.join(sorted(other)[:5])}); "
            "give an empty or new --out"
        )


class DemoResult(TypedDict):
    """What a demo run returns (a plain dict at run time).

    Attributes
    ----------
    out
        The demo folder.
    timings
        ``(step, seconds)`` per step, in order.
    files
        The outputs written, in order.
    n_nuclei
        Nuclei found (the prediction's ``n_instances``; None if it does not say).
    slide
        The opened sample :class:`~napari_slideseg.io.slide.Slide`.
    notes
        Lines to show after the run (why the gland model was not run).
    """

    out: Path
    timings: list[tuple[str, float]]
    files: list[Path]
    n_nuclei: int | None
    slide: Any
    notes: list[str]


def run_demo_steps(
    out: str | Path = "slideseg-demo",
    *,
    device: str = "auto",
    nuclei_region: tuple[int, int, int, int] | None = NUCLEI_REGION,
) -> Generator[Progress, None, DemoResult]:
    """:func:`run_demo` as a generator of progress events.

    Parameters
    ----------
    out : str or Path
        The demo folder (created; an earlier demo run's files are replaced,
        anything else there is refused).
    device : str
        Torch device for the nuclei model (``"auto"``, ``"cpu"``, ``"cuda:0"``...).
    nuclei_region : tuple of int, optional
        Level-0 ``(y0, x0, y1, x1)`` box the nuclei model runs on; None: the
        whole sample.

    Yields
    ------
    Progress
        One event per step of each stage.

    Returns
    -------
    DemoResult
        The folder, the timings, the files written and the nucleus count.

    Raises
    ------
    SlideSegError
        For an output folder that is a file, a zarr store or holds other files,
        and when the bundled nuclei model is missing.
    """
    from .infer import InferConfig, predict_slide_steps
    from .infer.hover import export_instances_steps
    from .io.export import write_color_png_steps
    from .io.masks import read_labels
    from .io.placement import Placement
    from .io.slide import open_slide
    from .models.checkpoint import load_model
    from .samples import sample_slide_path

    out = Path(out)
    _check_demo_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: list[tuple[str, float]] = []
    files: list[Path] = []

    t0 = time.perf_counter()
    slide = open_slide(sample_slide_path())
    nuclei_model = load_model(_bundled(NUCLEI_MODEL))
    _remove_old_outputs(out)
    timings.append(("open the sample slide and the bundled nuclei model", time.perf_counter() - t0))

    t0 = time.perf_counter()
    nuclei = out / "nuclei.zarr"
    ncfg = InferConfig(
        tile=256,
        overlap=64,
        block=288,  # small blocks for live progress, sized so tiles are not recomputed
        min_tissue=0.1,  # blocks of bare glass are skipped
        device=device,
        region=nuclei_region,
        instance_halo=48,
    )
    yield from predict_slide_steps(slide, [nuclei_model], nuclei, ncfg, resume=True)
    timings.append(
        (
            f"predict nuclei in region {nuclei_region} (zoom {_zoom_used(nuclei):g})",
            time.perf_counter() - t0,
        )
    )

    t0 = time.perf_counter()
    ngj = out / "nuclei.geojson.gz"
    yield from export_instances_steps(nuclei, ngj)
    ncsv = out / "nuclei_rle.csv"
    yield from export_instances_steps(nuclei, ncsv, what="rle")
    table = out / "nuclei_table.csv"
    yield from export_instances_steps(nuclei, table, what="table")
    types, classmap, info = read_labels(nuclei)
    if classmap is None:  # a prediction always records its model's class map
        raise SlideSegError(f"{nuclei}: the prediction records no class map")
    png = out / "nucleus_types.png"
    where = Placement.from_dict(info.get("placement"))  # level, slide size, mpp
    yield from write_color_png_steps(png, types, classmap, placement=where)
    files += [nuclei, ngj, ncsv, table, png]
    timings.append(
        ("export nuclei: QuPath GeoJSON, RLE CSV, table, type PNG", time.perf_counter() - t0)
    )

    t0 = time.perf_counter()
    overlay = out / "overlay.png"
    write_overlay(slide, None, overlay, box=nuclei_region)
    overlay_n = out / "overlay_nuclei.png"
    write_overlay(slide, nuclei, overlay_n, region=nuclei_region)
    files += [overlay, overlay_n]
    timings.append(
        ("overlay PNGs (slide with the nuclei region; nuclei)", time.perf_counter() - t0)
    )
    n_nuclei = _inference_attrs(nuclei).get("n_instances")
    return {
        "out": out,
        "timings": timings,
        "files": files,
        "n_nuclei": n_nuclei,
        "slide": slide,
        "notes": [NO_GLANDS],
    }


def _remove_old_outputs(out: Path) -> None:
    """Delete what an earlier version of the demo wrote here (gland outputs on skin)."""
    import shutil

    for p in out.iterdir():
        if p.name.lstrip(".").startswith(OLD_DEMO_OUTPUTS):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def run_demo_json_lines(out: str, region: str) -> int:
    """Run the demo, printing each progress event as one JSON line (for a parent process).

    napari's demo sample runs this in a child process, so torch and the models
    never load into napari's process: a thread there would hold the GIL while
    torch imports and stall the event loop.

    Parameters
    ----------
    out : str
        The demo folder.
    region : str
        The nuclei region as a JSON list ``[y0, x0, y1, x1]``, or ``"null"``.

    Returns
    -------
    int
        The exit status: 0 when done (a ``{"done": true, "n_nuclei": ...}``
        line was printed), 1 after an error (an ``{"error": ...}`` line).
    """
    import json
    import sys

    box = tuple(int(v) for v in json.loads(region)) if region != "null" else None
    try:
        # the parent sends a 4-number box (NUCLEI_REGION); InferConfig refuses any other
        gen = run_demo_steps(out, nuclei_region=box)  # type: ignore[arg-type]
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                print(json.dumps({"done": True, "n_nuclei": stop.value["n_nuclei"]}), flush=True)
                return 0
            if isinstance(ev, Progress):
                line = {
                    "stage": ev.stage,
                    "done": ev.done,
                    "total": ev.total,
                    "message": ev.message,
                }
                print(json.dumps({"progress": line}), flush=True)
    except Exception as exc:  # reported to the parent, which shows it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def run_demo(out: str | Path = "slideseg-demo", **kwargs: Any) -> DemoResult:
    """Run the demo to the end.

    Parameters
    ----------
    out : str or Path
        The demo folder.
    **kwargs
        ``device`` and ``nuclei_region`` of :func:`run_demo_steps`.

    Returns
    -------
    DemoResult
        ``{"out", "timings", "files", "n_nuclei", "slide", "notes"}``.
    """
    from .progress import drain

    return drain(run_demo_steps(out, **kwargs))


def write_overlay(
    slide: Any,
    nuclei: Path | None,
    path: Path,
    *,
    region: tuple[int, int, int, int] | None = None,
    box: tuple[int, int, int, int] | None = None,
    max_size: int = 2048,
) -> Path:
    """The slide with nuclei outlined in their type's colour (or a box drawn on it).

    Without ``region``: the whole slide at the largest level of at most
    ``max_size`` px (label pyramid levels, stride-sampled), with the level-0
    ``box`` outlined. With ``region`` (level-0 box): that box at full
    resolution.

    Parameters
    ----------
    slide : Slide
        The slide the nuclei were predicted on.
    nuclei : Path, optional
        A HoVer prediction folder whose nuclei are outlined; None: none.
    path : Path
        The PNG written (replaced atomically).
    region : tuple of int, optional
        Level-0 ``(y0, x0, y1, x1)`` box shown at full resolution.
    box : tuple of int, optional
        Level-0 box outlined in green on the whole-slide view.
    max_size : int
        Largest side in pixels of the whole-slide view.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    SlideSegError
        When the prediction has no label pyramid level for the chosen slide level.
    """
    import zarr
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from .io.files import atomic_path
    from .io.palette import ClassMap

    f = 1
    if region is not None:
        y0, x0, y1, x1 = region
        rgb = slide.read_region(0, y0, x0, y1 - y0, x1 - x0)[..., :3].copy()

        def view(root: Any, name: str, pyr: str) -> np.ndarray:
            return np.asarray(root[name][y0:y1, x0:x1])

    else:
        level = next(
            (i for i, lv in enumerate(slide.levels) if max(lv.shape[:2]) <= max_size), None
        )
        if level is None:
            level = len(slide.levels) - 1
            logger.debug("no slide level fits in %d px; the overlay uses the smallest", max_size)
        h, w = slide.levels[level].shape[:2]
        rgb = slide.read_region(level, 0, 0, h, w)[..., :3].copy()
        f = round(slide.levels[0].shape[0] / h)

        def view(root: Any, name: str, pyr: str) -> np.ndarray:
            attrs: dict[str, Any] = dict(root.attrs)
            factors = attrs["slideseg_inference"].get("pyramid", [])
            if f == 1:
                return np.asarray(root[name][:h, :w])
            if f in factors:
                return np.asarray(root[f"{pyr}/{f}"][:h, :w])
            raise SlideSegError(f"{root.store}: no label pyramid level {f} for the overlay")

    if nuclei is not None:
        n = zarr.open_group(str(nuclei), mode="r")
        n_attrs: dict[str, Any] = dict(n.attrs)
        cm = ClassMap.from_dict(n_attrs["slideseg"]["classmap"])
        inst = view(n, "instances", "pyramid_instances")
        types = view(n, "labels", "pyramid")
        nb = find_boundaries(inst, mode="inner") & (inst > 0)
        pal = np.asarray(cm.colors, np.uint8)
        colour = pal[np.clip(types[nb], 0, len(pal) - 1)]
        colour[(colour == 0).all(1)] = (255, 255, 0)  # untyped nuclei: yellow
        rgb[nb] = colour
    if box is not None and region is None:
        by0, bx0, by1, bx1 = (
            max(0, min(v // f, lim - 1)) for v, lim in zip(box, rgb.shape[:2] * 2, strict=True)
        )
        for t in range(3):  # a 3 px green frame
            rgb[by0 + t, bx0:bx1] = rgb[by1 - t, bx0:bx1] = (0, 200, 0)
            rgb[by0:by1, bx0 + t] = rgb[by0:by1, bx1 - t] = (0, 200, 0)
    with atomic_path(path, suffix=".png") as tmp:  # Pillow picks the format by the suffix
        Image.fromarray(rgb).save(tmp)
    return path
