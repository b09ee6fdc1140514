"""The ``slideseg`` console command.

Every subcommand is a thin driver over one core function; progress generators
are shown with a terminal progress bar. Errors print one line
(``slideseg: error: <file>: <problem>``), without a traceback: status 2 for
bad input (an option out of range, a file that cannot be used), status 1 for
the system refusing (permission denied, a missing or read-only folder, disk
full, out of memory). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..io.errors import SlideSegError


def _cmd_info(args: argparse.Namespace) -> int:
    from ..io.slide import open_slide
    from ..progress import tqdm_callback

    callback, close = tqdm_callback(disable=args.json or not sys.stderr.isatty())
    try:
        slide = open_slide(args.slide, progress=callback, mpp=args.mpp)
    finally:
        close()
    info = slide.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    meta = info["metadata"]
    mpp = (
        f"{info['mpp'][1]:.4f} x {info['mpp'][0]:.4f} µm/px (x, y)"
        + (" (given with --mpp)" if meta.get("mpp_source") == "user" else "")
        if info["mpp"]
        else "unknown (give it with --mpp)"
    )
    print(f"{slide.path}")
    print(f"  backend      {info['backend']} ({meta.get('format', '?')})")
    print(f"  pixels       {info['dtype']}, {info['channels']} channel(s)")
    print(f"  tile size    {info['tile_size'][1]} x {info['tile_size'][0]} (width x height)")
    print(f"  mpp          {mpp}")
    if meta.get("compression"):
        print(f"  compression  {meta['compression']}")
    print(f"  levels       {len(info['levels'])}")
    for lv in info["levels"]:
        print(
            f"    {lv['level']}: {lv['width']:>7} x {lv['height']:<7} (width x height)"
            f"  downsample {lv['downsample']:g}"
        )
    if meta.get("cache"):
        print(f"  cache        {meta['cache']}")
    return 0


def _drive(gen, desc: str = "", quiet: bool = False):
    """Run a core progress generator with a terminal progress bar; return its result."""
    from ..progress import drain, tqdm_callback

    callback, close = tqdm_callback(desc=desc, disable=quiet or not sys.stderr.isatty())
    try:
        return drain(gen, callback)
    finally:
        close()


def _needs(args: argparse.Namespace, flag: str, *options: str) -> None:
    """Refuse options that only apply with ``flag`` (they would be ignored without a word)."""
    if getattr(args, flag.lstrip("-").replace("-", "_")):
        return
    given = [o for o in options if getattr(args, o.lstrip("-").replace("-", "_"), None)]
    if given:
        raise SlideSegError(
            f"{' and '.join(given)} only apply with {flag}; add {flag} or drop them"
        )


def _cmd_patch(args: argparse.Namespace) -> int:
    from ..patching import PatchConfig, extract_patches_steps

    _needs(args, "--instances", "--types")

    slide = _drive_open(args.slide, args.quiet, args.mpp)
    from ..patching import PatchError

    slide.check_level(args.level, option="--level", error=PatchError)
    mask = classmap = types = None
    mask_id = None
    if args.instances:
        from ..io.masks import read_instance_map, resolve_classmap

        if not args.mask:
            from ..validate import OptionError

            raise OptionError("--instances needs --mask INSTANCE_MAP")
        mask = read_instance_map(args.mask)
        mask_id = str(args.mask)
        if args.types:
            types = read_instance_map(args.types)
        classmap = resolve_classmap(args.classmap) if args.classmap else None
    elif args.mask:
        from ..io.masks import read_labels

        mask, classmap, _ = read_labels(
            args.mask,
            classmap=args.classmap,
            rle_order=args.rle_order,
            shape=tuple(slide.levels[0].shape[:2]),
            tolerance=args.tolerance,
            min_share=args.min_class_share,
        )
        mask_id = str(args.mask)
    elif args.classmap:
        from ..io.masks import resolve_classmap

        classmap = resolve_classmap(args.classmap)
    cfg = PatchConfig(
        size=args.size,
        stride=args.stride or args.size,
        level=args.level,
        mpp=args.target_mpp,
        zoom=args.zoom,
        grid=args.grid,
        pad_mode=args.pad_mode,
        region=tuple(args.region) if args.region else None,
        min_tissue=args.min_tissue,
        max_black=args.max_black,
        max_white=args.max_white,
        drop_background=args.drop_background,
        keep_background=args.keep_background,
        seed=args.seed,
    )
    res = _drive(
        extract_patches_steps(
            slide,
            args.out,
            cfg,
            mask=mask,
            classmap=classmap,
            mask_id=mask_id,
            fmt=args.format,
            overwrite=args.overwrite,
            workers=args.workers,
            instances=args.instances,
            types=types,
        ),
        quiet=args.quiet,
    )
    print(f"{res.n_patches} patches in {res.out} (manifest: {res.manifest.name})")
    for key, value in res.summary.items():
        print(f"  {key:<16} {value}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train_folds_steps, train_steps

    weights: list[float] | str | None = args.class_weights or None
    cfg = TrainConfig(
        manifests=[str(m) for m in args.manifests],
        out=args.out,
        val_manifests=[str(m) for m in args.val or []],
        val_fraction=args.val_fraction,
        split_by=args.split_by,
        fold=args.fold,
        folds=args.folds or 5,
        arch=args.arch,
        encoder=args.encoder,
        encoder_weights=args.encoder_weights,
        input_norm=args.input_norm,
        binary=args.binary,
        loss=args.loss,
        class_weights=weights,
        optimizer=args.optimizer,
        lr=args.lr,
        scheduler=args.scheduler,
        epochs=args.epochs,
        batch_size=args.batch_size,
        augment=args.augment,
        scale_range=args.scale_range,
        patience=args.patience,
        monitor=args.monitor,
        amp=not args.no_amp,
        seed=args.seed,
        deterministic=args.deterministic,
        device=args.device,
        threads=args.threads,
        num_workers=args.workers,
        max_steps=args.max_steps,
        kind=args.kind,
        decoder_channels=args.decoder_channels or None,
        name=args.name or "",
        encoder_depth=args.encoder_depth,
        norm=args.norm,
        mixed_mpp=args.mixed_mpp,
    )
    if args.resume:
        cfg = _resume_config(args, cfg)
    if args.folds and args.fold is None:
        results = _drive(train_folds_steps(cfg, args.folds), quiet=args.quiet)
    else:
        results = [_drive(train_steps(cfg, resume=args.resume), quiet=args.quiet)]
    for res in results:
        last = res.history[-1] if res.history else {}
        print(
            f"{res.run_dir}: {len(res.history)} epochs, best epoch {res.best_epoch} "
            f"({res.monitor} {res.best_value:.4f}); last mean Dice {last.get('mean_dice', float('nan')):.4f}"
            + (" (stopped early)" if res.stopped_early else "")
        )
    return 0


#: TrainConfig fields whose command-line option has another name
_TRAIN_DEST = {"val_manifests": "val", "num_workers": "workers", "amp": "no_amp"}


def _resume_config(args: argparse.Namespace, cfg: Any) -> Any:
    """On ``train --resume``: the run's saved settings, with only the options given now.

    An option left at its default takes the run's value; one given with another value
    than the run's is kept, so :func:`~napari_slideseg.train.train` refuses it by name.
    """
    import dataclasses
    from pathlib import Path

    from ..train import TrainConfig, resume_changes

    saved_path = Path(cfg.out) / "config.json"
    if not saved_path.exists():
        return cfg
    saved = TrainConfig.load_json(saved_path)
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    keep = {}
    for change in resume_changes(saved, cfg):
        name = change.split(" ", 1)[0]
        dest = _TRAIN_DEST.get(name, name)
        if getattr(args, dest, None) == train_parser.get_default(dest):
            keep[name] = getattr(saved, name)  # not given now: the run's own value
    return dataclasses.replace(cfg, **keep) if keep else cfg


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..io.export import (
        write_color_png_steps,
        write_color_tiff_steps,
        write_geojson_steps,
        write_ome_zarr_labels_steps,
    )
    from ..io.masks import read_labels
    from ..io.placement import Placement

    src = Path(args.labels)
    streamed = str(args.to).lower().endswith((".csv", ".geojson", ".geojson.gz", ".json"))
    if (args.table or (args.instances and streamed)) and (src / "instances").is_dir():
        from ..infer.hover import export_instances_steps

        what = "table" if args.table else None
        out = _drive(
            export_instances_steps(
                src, args.to, what=what, image_id=args.image_id, partial=args.partial
            ),
            quiet=args.quiet,
        )
        print(f"wrote {out} ({'instance table' if args.table else 'nuclei'} of {src})")
        return 0

    labels, classmap, info = read_labels(
        args.labels,
        classmap=args.classmap,
        rle_order=args.in_rle_order,
        shape=tuple(args.shape) if args.shape else None,
        tolerance=args.tolerance,
        partial=args.partial,
        min_share=args.min_class_share,
    )
    # a prediction's level and level-0 mpp (or what the mask file records): GeoJSON in
    # level-0 pixels, rasters with their resolution, RLE rows with level and slide size
    where = Placement.from_dict(info.get("placement"))
    out = args.to
    name = str(out).lower()
    if args.instances and (src / "instances").is_dir():
        # a HoVer prediction's nuclei as an id image (PNG/TIFF/OME-Zarr), types per id
        import dask.array as da
        import zarr

        from ..infer.hover import read_instance_table

        table = read_instance_table(src, partial=args.partial)
        labels = da.from_zarr(zarr.open_group(str(src), mode="r")["instances"])
        info = {
            **info,
            "format": "HoVer prediction",
            "type_classmap": classmap,
            "instance_classes": dict(
                zip(
                    table["id"].astype(int).tolist(),
                    table["type"].astype(int).tolist(),
                    strict=True,
                )
            ),
        }
        return _export_instance_map(args, labels, info, where)
    if info.get("instances"):
        return _export_instance_map(args, labels, info, where)
    from ..io.export import check_not_empty, default_classmap

    check_not_empty(labels, out)
    if classmap is None:
        classmap = default_classmap(labels, out)
    if name.endswith(".png"):
        _drive(
            write_color_png_steps(out, labels, classmap, indexed=args.indexed, placement=where),
            quiet=args.quiet,
        )
    elif name.endswith((".tif", ".tiff")):
        _drive(write_color_tiff_steps(out, labels, classmap, placement=where), quiet=args.quiet)
    elif name.endswith(".csv"):
        from ..io.export import check_file_target
        from ..io.rle import write_rle_csv

        check_file_target(out)
        write_rle_csv(
            out,
            labels,
            layout=args.rle_layout,
            order=args.rle_order,
            base=args.rle_base,
            image_id=args.image_id or _stem(args.labels),
            class_names=list(classmap.names),
            placement=where,
        )
    elif name.endswith(".zarr"):
        _drive(
            write_ome_zarr_labels_steps(out, labels, classmap=classmap, placement=where),
            quiet=args.quiet,
        )
    elif name.endswith((".geojson", ".geojson.gz", ".json")):
        mode = "instances" if args.instances else "semantic"
        _drive(
            write_geojson_steps(out, labels, mode=mode, classmap=classmap, placement=where),
            quiet=args.quiet,
        )
    else:
        from ..io.palette import MaskError

        raise MaskError(
            f"{out}: unknown export format (use .png, .tif, .csv, .ome.zarr or .geojson[.gz])"
        )
    level = f", level {where.level} -> level-0 coordinates" if where and where.level else ""
    print(
        f"wrote {out} ({info.get('format', 'labels')} -> {name.rsplit('.', 1)[-1]}{level}, "
        f"classes: {', '.join(classmap.names)})"
    )
    return 0


def _export_instance_map(args: argparse.Namespace, labels: Any, info: dict, where: Any) -> int:
    """Export an instance map (object ids, not classes) as ids: never as a class map.

    PNG is a 16-bit id image (ids above 65535 are refused naming the formats
    that hold them), TIFF a uint16/uint32 id image, CSV one RLE row per
    object (with its type where the input records one), OME-Zarr instance
    labels, GeoJSON one polygon per object.
    """
    from ..io.export import export_labels
    from ..io.masks import resolve_classmap

    if args.indexed:
        from ..io.palette import MaskError

        raise MaskError(
            f"{args.labels}: --indexed writes a class palette, but this is an instance map "
            "(object ids, not classes); leave --indexed out for a 16-bit id PNG"
        )
    types_cm = resolve_classmap(args.classmap) if args.classmap else info.get("type_classmap")
    extra: dict[str, Any] = {}
    if str(args.to).lower().endswith(".csv"):
        extra = {"base": args.rle_base}
    out = export_labels(
        labels,
        args.to,
        classmap=types_cm,
        rle_order=args.rle_order,
        image_id=args.image_id or _stem(args.labels),
        placement=where,
        instances=True,
        instance_classes=info.get("instance_classes"),
        **extra,
    )
    ext = str(out).lower().rsplit(".", 1)[-1]
    print(f"wrote {out} ({info.get('format', 'instance map')} instances -> {ext}, object ids)")
    return 0


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path.rstrip("/")).name.split(".")[0]


def _cmd_predict(args: argparse.Namespace) -> int:
    from ..infer import InferConfig, predict_slide_steps
    from ..models import load_model, resolve_model

    slide = _drive_open(args.slide, args.quiet, args.mpp)
    models = [load_model(resolve_model(m)) for m in args.model]
    tile = args.tile or models[0][1].patch_size
    cfg = InferConfig(
        level=args.level,
        tile=tile,
        overlap=min(128, tile // 2) if args.overlap is None else args.overlap,
        batch_size=args.batch_size,
        block=args.block,
        tta=args.tta,
        device=args.device,
        amp=not args.no_amp,
        save_probs=args.probs,
        region=tuple(args.region) if args.region else None,
        min_tissue=args.min_tissue,
        threads=args.threads,
        zoom=args.zoom,
        instance_halo=args.instance_halo,
    )
    out = _drive(
        predict_slide_steps(
            slide, models, args.out, cfg, resume=args.resume, client=args.scheduler
        ),
        quiet=args.quiet,
    )
    import zarr

    info = zarr.open_group(str(out), mode="r").attrs["slideseg_inference"]
    res = info.get("resolution") or {}
    if res.get("slide_mpp") and res.get("model_mpp"):
        print(
            f"zoom {res['zoom']:g} (slide level {res['slide_mpp']:.4g} µm/px, "
            f"model {res['model_mpp']:.4g} µm/px)"
        )
    if models[0][1].is_hover:
        n = info.get("n_instances")
        print(
            f"wrote {out}: {n} nuclei (instances, nucleus types, instances.csv); export with: "
            f"slideseg export {out} --instances --to nuclei.geojson.gz"
        )
        return 0
    print(
        f"wrote {out} (labels{' + probs' if args.probs else ''}); export with: slideseg export {out} --to OUT.png"
    )
    return 0


def _region_crop(pred_path: str, pred: Any, truth: Any) -> Callable[[Any], Any]:
    """Crop to the predicted region when the prediction covers only part of the slide."""
    from ..io.masks import predicted_box

    box = predicted_box(pred_path)
    if box is None or tuple(pred.shape[:2]) != tuple(truth.shape[:2]):
        return lambda a: a  # whole slide, or shapes that metrics will refuse by name
    y0, x0, y1, x1 = box
    print(
        f"{pred_path}: predicted only the region y {y0}-{y1}, x {x0}-{x1} "
        f"({y1 - y0} x {x1 - x0} px): scored inside it",
        file=sys.stderr,
    )
    return lambda a: a[y0:y1, x0:x1]


def _cmd_evaluate_instances(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..io.masks import read_instance_map, resolve_classmap
    from ..metrics import instance_report

    pred = read_instance_map(args.pred, partial=args.partial)
    truth = read_instance_map(args.truth)
    crop = _region_crop(args.pred, pred, truth)
    pred, truth = crop(pred), crop(truth)
    types = None
    names = None
    if args.truth_types:
        truth_types = read_instance_map(args.truth_types)
        pred_types: Any = None
        if Path(args.pred).is_dir() and (Path(args.pred) / "instances.csv").exists():
            from ..infer.hover import read_instance_table

            tab = read_instance_table(args.pred, partial=args.partial)
            pred_types = dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
        elif args.pred_types:
            pred_types = read_instance_map(args.pred_types)
        else:
            from ..validate import OptionError

            raise OptionError(
                "--truth-types needs predicted types (a HoVer prediction "
                "folder, or --pred-types TYPEMAP)"
            )
        if not isinstance(pred_types, dict):
            pred_types = crop(pred_types)
        types = [(crop(truth_types), pred_types)]
        if args.classmap:
            names = list(resolve_classmap(args.classmap).names)
    rows = instance_report(
        [(_stem(args.pred), truth, pred)], types=types, type_names=names, report=args.report
    )
    for row in rows:
        print(
            ", ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in row.items())
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..io.export import label_max
    from ..io.masks import read_labels
    from ..metrics import evaluate

    if args.instances:
        return _cmd_evaluate_instances(args)
    _needs(args, "--instances", "--truth-types", "--pred-types")

    share = args.min_class_share
    pred, pcm, _ = read_labels(args.pred, partial=args.partial, min_share=share)
    if args.classmap:
        from ..io.masks import resolve_classmap

        given = resolve_classmap(args.classmap)
        if pcm is not None and (pcm.names, pcm.colors) != (given.names, given.colors):
            raise SlideSegError(
                f"{args.pred}: was predicted with the classes {', '.join(pcm.names)}, but "
                f"--classmap {args.classmap} gives {', '.join(given.names)} (or other colours); "
                "the class numbers would not match: drop --classmap or give the prediction's"
            )
        pcm = given
    truth, tcm, _ = read_labels(args.truth, classmap=args.classmap, min_share=share)
    crop = _region_crop(args.pred, pred, truth)
    pred, truth = crop(pred), crop(truth)
    cm = pcm or tcm
    n = max(cm.n_classes if cm else 0, label_max(pred) + 1, label_max(truth) + 1)
    names = (
        list(cm.names) if cm is not None and cm.n_classes >= n else [f"class_{i}" for i in range(n)]
    )
    rows = evaluate([(_stem(args.pred), pred, truth)], names, report=args.report)
    for row in rows:
        print(", ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models import resolve_model
    from ..models.checkpoint import load_model, save_checkpoint

    source = resolve_model(args.checkpoint)
    if Path(args.out).resolve() == Path(source).resolve():
        raise SlideSegError(
            f"{args.out}: --out is the checkpoint being packed; pack writes a copy: "
            "give another folder"
        )
    model, card = load_model(source)
    changes: dict = {
        k: v
        for k, v in (
            ("name", args.name),
            ("license", args.license),
            ("training_data", args.data),
            ("description", args.description),
            ("reproduce", args.reproduce),
        )
        if v
    }
    if args.metrics:
        changes["held_out_metrics"] = _metrics_arg(args.metrics)
    if args.validation_metrics:
        changes["validation_metrics"] = _metrics_arg(
            args.validation_metrics, "--validation-metrics"
        )
    if args.mpp:
        if card.mpp and abs(card.mpp / args.mpp - 1) > 0.01:
            print(
                f"slideseg pack: overriding the trained resolution {card.mpp:g} µm/px "
                f"with --mpp {args.mpp:g}",
                file=sys.stderr,
            )
        changes["mpp"] = float(args.mpp)
    out = save_checkpoint(model, args.out, card.replace(**changes), half=not args.float32)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB, weights {'float32' if args.float32 else 'float16'})")
    return 0


def _metrics_arg(value: str, option: str = "--metrics") -> dict:
    """``pack --metrics`` (or ``option``): JSON object text or a JSON file holding one."""
    from pathlib import Path

    text, where = value, option
    if not value.strip().startswith(("{", "[")):
        p = Path(value)
        if not p.is_file():
            raise SlideSegError(f"{value}: {option} is neither JSON text nor a JSON file")
        text, where = p.read_text(encoding="utf-8", errors="replace"), str(p)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise SlideSegError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise SlideSegError(
            f'{where}: {option} must be a JSON object such as {{"dice": 0.9}}, '
            f"not a {type(obj).__name__}"
        )
    return obj


def _cmd_tune_hover(args: argparse.Namespace) -> int:
    from ..infer.tune import tune_hover_steps
    from ..models.checkpoint import update_card

    params, rows = _drive(
        tune_hover_steps(
            args.checkpoint,
            args.images,
            args.truths,
            zoom=args.zoom,
            tta=args.tta,
            threads=args.threads,
            mpp=args.mpp,
        ),
        "tune",
        args.quiet,
    )
    if args.report:
        from pathlib import Path

        from ..metrics import write_csv

        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        write_csv(Path(args.report), rows)
    card_row = next((r for r in rows if r["card"]), None)
    print(f"{len(rows)} combinations on {len(args.images)} images (PQ = mean over images)")
    for r in rows[:5]:
        print("  " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "card"))
    if card_row is not None:
        print(f"card's current values: PQ {card_row['pq_mean']:.4f}")
    print(f"best: PQ {rows[0]['pq_mean']:.4f} with {params.to_dict()}")
    if args.write:
        from ..models.checkpoint import read_card

        card = read_card(args.checkpoint).with_postproc(
            params.to_dict(),
            postproc_tuned_on=[str(p) for p in args.images],
            postproc_tuned_pq=rows[0]["pq_mean"],
            postproc_tuned_tta=args.tta,
        )
        update_card(args.checkpoint, hover=card.hover)
        print(f"wrote the parameters into {args.checkpoint}")
    return 0


def _drive_open(path: str, quiet: bool = False, mpp: float | None = None):
    from ..io.slide import open_slide_steps

    slide = _drive(open_slide_steps(path), quiet=quiet)
    return slide if mpp is None else slide.with_mpp(mpp)


def _positive_float(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return v


def _zoom(text: str) -> float | str:
    """``auto`` or a positive number (``--zoom``)."""
    return "auto" if text.strip().lower() == "auto" else _positive_float(text)


def _add_min_class_share(p: argparse.ArgumentParser) -> None:
    """``--min-class-share`` (colour masks read without a class map)."""
    from ..validate import fraction

    p.add_argument(
        "--min-class-share",
        type=_t(fraction, "--min-class-share"),
        metavar="SHARE",
        help="without --classmap: colours under this share of a mask's pixels are refused, "
        "not made classes (default 0.001; 0 makes every colour a class)",
    )


def _t(validator: Callable[..., Any], flag: str, *args: Any, **kwargs: Any) -> Callable:
    """An argparse ``type`` checking ``flag``'s value with a shared validator."""
    from ..validate import arg_type

    return arg_type(validator, flag, *args, **kwargs)


def _positive_ints(flag: str) -> Callable[[str], list[int]]:
    """``--decoder-channels 128,64,32``: comma-separated integers >= 1."""
    from ..validate import OptionError, positive_int

    def parse(text: str) -> list[int]:
        items = [t.strip() for t in text.split(",")]
        out = []
        for i, t in enumerate(items):
            try:
                value: Any = int(t)
            except ValueError:
                value = t
            try:
                out.append(positive_int(f"value {i + 1}", value))
            except OptionError as err:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated integers >= 1, e.g. 128,64,32 ({err})"
                ) from None
        return out

    return parse


def _class_weights(text: str) -> list[float] | str:
    """``--class-weights``: ``auto`` or comma-separated positive numbers."""
    import math

    if text.strip().lower() == "auto":
        return "auto"
    out = []
    for i, t in enumerate(text.split(",")):
        try:
            f = float(t)
        except ValueError:
            f = math.nan
        if not (math.isfinite(f) and f > 0):
            raise argparse.ArgumentTypeError(
                f"expected 'auto' or comma-separated numbers > 0 (one per class), "
                f"not {text!r} (value {i + 1}: {t.strip()!r})"
            )
        out.append(f)
    return out


def _add_mpp(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mpp",
        type=_positive_float,
        metavar="UM",
        help="microns per pixel of the image's level 0, for files that do not state it "
        "(JPEG/PNG tiles) or to override what they state",
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo_steps

    res = _drive(run_demo_steps(args.out, device=args.device), quiet=args.quiet)
    print(f"sample slide: {res['slide']!r}")
    print("steps:")
    for step, sec in res["timings"]:
        print(f"  {step:<66} {sec:7.2f} s")
    print(f"{res['n_nuclei']} nuclei; outputs in {res['out'].resolve()}:")
    for p in res["files"]:
        print(f"  {p.name}")
    for note in res.get("notes", []):
        print(note)
    return 0


def _atomic_write_text(path, text: str) -> None:
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


EPILOG = """\
exit status:
  0  done
  1  the system refused: permission denied, a missing or read-only folder,
     disk full, out of memory (the message names the file)
  2  bad input: an option out of its range, a file that cannot be used
     (the message names the option or the file and the problem)
  130  interrupted (Ctrl-C)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``slideseg`` (subcommands register here)."""
    from ..validate import (
        fraction,
        int_at_least,
        int_in_range,
        nonneg,
        nonneg_int,
        positive,
        positive_int,
    )

    parser = argparse.ArgumentParser(
        prog="slideseg",
        description="Whole-slide histology segmentation: inspect, patch, train, predict, export.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="describe a slide: levels, shapes, tile size, mpp, backend")
    p.add_argument("slide", help="slide file (SVS, TIFF, OME-TIFF, NDPI, OME-Zarr, PNG, JPEG)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_mpp(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "patch",
        help="cut image (and mask) patches on one grid into PNGs or zarr with a manifest",
        description="Cut patches from SLIDE (and MASK, on exactly the same grid).",
    )
    p.add_argument("slide")
    p.add_argument("--mask", help="colour mask, index mask, RLE CSV or zarr labels")
    p.add_argument("--classmap", help="preset (biopsy6, wsi3, binary) or a classmap JSON")
    p.add_argument(
        "--instances",
        action="store_true",
        help="--mask is a nucleus instance map (.npy, .mat, 16-bit PNG, TIFF) for HoVer training",
    )
    p.add_argument("--types", help="with --instances: per-pixel nucleus type map")
    p.add_argument(
        "--rle-order",
        choices=["col", "row"],
        help="pixel order of an RLE mask without one recorded",
    )
    p.add_argument(
        "--tolerance",
        type=_t(nonneg, "--tolerance"),
        help="nearest-colour tolerance for JPEG colour masks",
    )
    _add_min_class_share(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=_t(positive_int, "--size"), default=512)
    p.add_argument(
        "--stride", type=_t(positive_int, "--stride"), help="default: --size (no overlap)"
    )
    lv = p.add_mutually_exclusive_group()
    lv.add_argument("--level", type=_t(nonneg_int, "--level"), default=0)
    lv.add_argument(
        "--target-mpp", type=_positive_float, help="target microns per pixel (picks the level)"
    )
    _add_mpp(p)
    p.add_argument(
        "--zoom",
        type=_positive_float,
        default=1.0,
        help="resample the level by this factor (0.5: half resolution, 2: 20x to 40x)",
    )
    p.add_argument("--grid", choices=["valid", "pad"], default="valid")
    p.add_argument("--pad-mode", choices=["reflect", "constant"], default="reflect")
    p.add_argument(
        "--region",
        type=_t(nonneg_int, "--region"),
        nargs=4,
        metavar=("Y0", "X0", "Y1", "X1"),
        help="level-0 box",
    )
    p.add_argument(
        "--min-tissue",
        type=_t(fraction, "--min-tissue"),
        default=0.0,
        help="drop patches with less tissue",
    )
    p.add_argument(
        "--max-black",
        type=_t(fraction, "--max-black"),
        default=1.0,
        help="drop patches with more near-black",
    )
    p.add_argument(
        "--max-white",
        type=_t(fraction, "--max-white"),
        default=1.0,
        help="drop patches with more near-white",
    )
    p.add_argument(
        "--drop-background", action="store_true", help="drop mask-background-only patches"
    )
    p.add_argument(
        "--keep-background",
        type=_t(fraction, "--keep-background"),
        default=0.0,
        help="...but keep this fraction",
    )
    p.add_argument("--format", choices=["png", "zarr"], default="png")
    p.add_argument("--overwrite", choices=["error", "skip", "overwrite"], default="error")
    p.add_argument("--workers", type=_t(nonneg_int, "--workers"), default=2)
    p.add_argument("--seed", type=_t(int_in_range, "--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_patch)

    p = sub.add_parser(
        "train",
        help="train a segmentation model from patch manifests into a run folder",
        description="Train an smp model on patch folders / manifest.csv files made by `slideseg patch`.",
    )
    p.add_argument("manifests", nargs="+", help="patch folders or manifest.csv files")
    p.add_argument("--out", required=True, help="run folder (config, metrics.csv, last/, best/)")
    p.add_argument("--val", nargs="*", help="explicit validation manifests")
    p.add_argument(
        "--val-fraction",
        type=_t(fraction, "--val-fraction", hi_open=True),
        default=0.2,
        help="share of slides (or patches) held out for validation, in [0, 1)",
    )
    p.add_argument("--split-by", choices=["slide", "patch"], default="slide")
    p.add_argument(
        "--folds",
        type=_t(int_at_least, "--folds", 2),
        help="train K folds into OUT/fold_<k> (or with --fold, one fold)",
    )
    p.add_argument("--fold", type=_t(nonneg_int, "--fold"), help="train only this fold of --folds")
    p.add_argument("--arch", default="Unet")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument(
        "--encoder-weights",
        default=None,
        metavar="PATH",
        help="pretrained encoder weights: a local .safetensors file (torchvision, smp or timm "
        "key layout; never downloaded). Its sidecar JSON may state the input normalisation",
    )
    p.add_argument(
        "--input-norm",
        choices=["auto", "imagenet", "unit", "none"],
        default="auto",
        help="input normalisation: auto = what the weights' sidecar JSON states, else ImageNet; "
        "unit = [-1, 1]",
    )
    p.add_argument("--binary", action="store_true", help="1-channel sigmoid model for 2 classes")
    p.add_argument(
        "--loss",
        default="ce+dice",
        help="ce, bce, dice, focal, jaccard, lovasz, tversky; join with +",
    )
    p.add_argument(
        "--class-weights",
        type=_class_weights,
        help="comma-separated weights, or 'auto' (from class fractions)",
    )
    p.add_argument("--optimizer", choices=["adamw", "adam", "sgd", "radam"], default="adamw")
    p.add_argument("--lr", type=_t(positive, "--lr"), default=1e-3)
    p.add_argument(
        "--scheduler", choices=["cosine", "plateau", "onecycle", "none"], default="cosine"
    )
    p.add_argument("--epochs", type=_t(positive_int, "--epochs"), default=10)
    p.add_argument("--batch-size", type=_t(positive_int, "--batch-size"), default=8)
    p.add_argument("--augment", choices=["none", "flips", "standard", "strong"], default="flips")
    p.add_argument(
        "--scale-range",
        nargs=2,
        type=_t(positive, "--scale-range"),
        metavar=("LO", "HI"),
        help="zoom augmentation range, e.g. 0.5 2 (structures of varying size)",
    )
    p.add_argument(
        "--patience", type=_t(positive_int, "--patience"), help="early stopping patience (epochs)"
    )
    p.add_argument("--monitor", choices=["val_loss", "val_dice"], default="val_loss")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--seed", type=_t(int_in_range, "--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=_t(positive_int, "--threads"), help="torch CPU threads")
    p.add_argument(
        "--workers", type=_t(nonneg_int, "--workers"), default=0, help="DataLoader worker processes"
    )
    p.add_argument(
        "--max-steps", type=_t(positive_int, "--max-steps"), help="cap steps per epoch (quick runs)"
    )
    p.add_argument(
        "--kind",
        choices=["semantic", "hover"],
        default="semantic",
        help="hover: HoVer-Net nuclei from instance patches (slideseg patch --instances)",
    )
    p.add_argument(
        "--decoder-channels",
        type=_positive_ints("--decoder-channels"),
        help="decoder widths, deepest first, e.g. 128,64,32,16,16 (smaller model)",
    )
    p.add_argument(
        "--encoder-depth",
        type=_t(int_in_range, "--encoder-depth", 3, 5),
        help="encoder stages (3-5; fewer = smaller model)",
    )
    p.add_argument(
        "--norm",
        choices=["batch", "group"],
        default="batch",
        help="group: GroupNorm instead of BatchNorm (few slides, varied staining)",
    )
    p.add_argument(
        "--mixed-mpp",
        action="store_true",
        help="train on patch folders cut at different µm/px (the card records their median)",
    )
    p.add_argument("--name", help="model name written in the model card")
    p.add_argument(
        "--resume", action="store_true", help="continue OUT/last after a crash or cancel"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    for cmd, help_text in (
        (
            "export",
            "write a label image (zarr, index/colour mask, RLE CSV) as PNG, RLE CSV, OME-Zarr or GeoJSON",
        ),
        ("convert", "convert a colour mask or RLE CSV to another mask format (same as export)"),
    ):
        p = sub.add_parser(cmd, help=help_text, description=help_text)
        p.add_argument("labels", metavar="LABELS" if cmd == "export" else "MASK")
        p.add_argument(
            "--to", required=True, help="output: .png, .tif, .csv, .ome.zarr, .geojson[.gz]"
        )
        p.add_argument(
            "--partial",
            action="store_true",
            help="use an unfinished prediction as it is (missing blocks read as background)",
        )
        p.add_argument("--classmap", help="preset (biopsy6, wsi3, binary) or class map JSON")
        p.add_argument(
            "--rle-order",
            choices=["col", "row"],
            default="col",
            help="pixel order of RLE written (default col, Kaggle/HuBMAP)",
        )
        p.add_argument(
            "--rle-base",
            type=int,
            choices=[0, 1],
            default=1,
            help="index of the first pixel in RLE written (default 1)",
        )
        p.add_argument("--rle-layout", choices=["semantic", "instance"], default="semantic")
        p.add_argument(
            "--in-rle-order",
            choices=["col", "row"],
            help="pixel order of an input RLE that does not record it",
        )
        p.add_argument(
            "--shape",
            type=_t(positive_int, "--shape"),
            nargs=2,
            metavar=("H", "W"),
            help="shape of an input RLE without shape columns",
        )
        p.add_argument(
            "--tolerance",
            type=_t(nonneg, "--tolerance"),
            help="nearest-colour tolerance for JPEG colour masks",
        )
        _add_min_class_share(p)
        p.add_argument(
            "--indexed", action="store_true", help="palette (indexed) PNG instead of RGB"
        )
        p.add_argument(
            "--instances",
            action="store_true",
            help="GeoJSON: one polygon per label id; a HoVer prediction: its nuclei "
            "(.geojson[.gz] QuPath detections with types, .csv one RLE row per nucleus)",
        )
        p.add_argument(
            "--table", action="store_true", help="a HoVer prediction: copy its instance table CSV"
        )
        p.add_argument("--image-id", help="image id written in RLE CSV rows")
        p.add_argument("--quiet", action="store_true")
        p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "predict", help="tiled inference of one or more checkpoints over a slide into a zarr"
    )
    p.add_argument("slide")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        help="checkpoint folder or bundled model name (repeat for an ensemble)",
    )
    p.add_argument("--out", required=True, help="output .zarr folder")
    p.add_argument("--level", type=_t(nonneg_int, "--level"), default=0)
    p.add_argument(
        "--tile",
        type=_t(int_at_least, "--tile", 16),
        help="tile size (default: the model's patch size)",
    )
    p.add_argument(
        "--overlap",
        type=_t(nonneg_int, "--overlap"),
        help="tile overlap (default: 128, at most half the tile)",
    )
    p.add_argument("--batch-size", type=_t(positive_int, "--batch-size"), default=4)
    p.add_argument("--block", type=_t(positive_int, "--block"), default=2048)
    p.add_argument("--tta", choices=["none", "flips", "d4"], default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument(
        "--probs", action="store_true", help="also store per-class probabilities (float16)"
    )
    p.add_argument(
        "--region",
        type=_t(nonneg_int, "--region"),
        nargs=4,
        metavar=("Y0", "X0", "Y1", "X1"),
        help="box in level pixels",
    )
    p.add_argument(
        "--min-tissue",
        type=_t(fraction, "--min-tissue"),
        default=0.0,
        help="skip blocks with less tissue",
    )
    p.add_argument("--threads", type=_t(positive_int, "--threads"), help="torch CPU threads")
    p.add_argument(
        "--zoom",
        type=_zoom,
        default="auto",
        help="resample blocks by this factor for the model; auto (default): the slide's "
        "µm/px over the model's (2: a 0.25 µm/px model on a 0.5 µm/px slide)",
    )
    _add_mpp(p)
    p.add_argument(
        "--instance-halo",
        type=_t(nonneg_int, "--instance-halo"),
        default=64,
        help="HoVer: margin wider than the largest nucleus",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted prediction")
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run the blocks on a dask.distributed cluster (tcp://host:8786); "
        "its workers must see the slide, the checkpoints and --out at the same paths",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="per-class Dice and IoU of a prediction against the truth")
    p.add_argument("pred", help="prediction: zarr, mask PNG/TIFF or RLE CSV")
    p.add_argument("truth", help="ground truth in any mask format")
    p.add_argument("--classmap", help="preset or class map JSON")
    p.add_argument("--report", help="CSV report path")
    _add_min_class_share(p)
    p.add_argument(
        "--partial",
        action="store_true",
        help="use an unfinished prediction as it is (missing blocks read as background)",
    )
    p.add_argument(
        "--instances",
        action="store_true",
        help="nucleus instances: AJI, AJI+, DQ/SQ/PQ (PRED: HoVer prediction or instance map)",
    )
    p.add_argument("--truth-types", help="with --instances: true per-pixel type map (per-type PQ)")
    p.add_argument(
        "--pred-types", help="with --instances: predicted type map (if PRED has no table)"
    )
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "pack", help="copy a checkpoint as a compact release (float16 weights, model card notes)"
    )
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--name")
    p.add_argument("--license", help="licence of the weights (e.g. of the training data)")
    p.add_argument("--data", help="what the model was trained on")
    p.add_argument("--description")
    p.add_argument(
        "--metrics", help="held-out test metrics (no choice made on them): JSON text or a file"
    )
    p.add_argument(
        "--validation-metrics",
        help="whole-image figures on the validation images: JSON text or a JSON file",
    )
    p.add_argument("--reproduce", help="the commands that reproduce training and evaluation")
    p.add_argument("--mpp", type=_positive_float, help="microns per pixel of the training images")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")
    p.set_defaults(func=_cmd_pack)

    p = sub.add_parser(
        "tune-hover",
        help="choose HoVer post-processing thresholds on annotated tiles (best mean PQ)",
    )
    p.add_argument("checkpoint", help="HoVer checkpoint folder")
    p.add_argument("--images", nargs="+", required=True, help="annotated tiles (not test images)")
    p.add_argument("--truths", nargs="+", required=True, help="their instance maps, same order")
    p.add_argument(
        "--zoom", type=_positive_float, default=1.0, help="resample the images for the model"
    )
    p.add_argument(
        "--tta",
        choices=["none", "flips", "d4"],
        default="none",
        help="tune on test-time-augmented maps (use the mode you predict with)",
    )
    p.add_argument(
        "--mpp",
        type=_t(positive, "--mpp"),
        metavar="UM",
        help="µm/px of the tiles: zoom to the model's resolution, as predict does",
    )
    p.add_argument("--threads", type=_t(positive_int, "--threads"), help="torch CPU threads")
    p.add_argument("--write", action="store_true", help="store the best values in the card")
    p.add_argument("--report", help="CSV of every combination")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_tune_hover)

    p = sub.add_parser("demo", help="run the main job on the bundled sample slide")
    p.add_argument("--out", default="slideseg-demo", help="output folder (default: slideseg-demo)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


_SHOW_WARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """User-facing warnings as one ``slideseg: warning:`` line (no source line)."""
    if not issubclass(category, UserWarning):
        _SHOW_WARNING(message, category, filename, lineno, file, line)
        return
    print(f"slideseg: warning: {message}", file=sys.stderr)


def _one_line(err: BaseException) -> str:
    """The error's message on one line (worker tracebacks and extra lines dropped)."""
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        # an error re-raised by a torch DataLoader worker: its own message is the last line
        text = text.splitlines()[-1].split(": ", 1)[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(err).__name__


def _os_error(err: OSError) -> str:
    """``<file>: <problem>`` for an OSError (permission, missing folder, disk full...)."""
    import re

    problem = err.strerror or _one_line(err)
    names = []
    for f in (err.filename, err.filename2):
        if f is None:
            continue
        head, tail = os.path.split(os.fsdecode(f))
        # writers go through a hidden temporary (.NAME[.pid].tmp / .part): name the target
        m = re.fullmatch(r"\.(.+?)(?:\.(?:[0-9a-f]{6,}|\d+))?\.(?:tmp|part)", tail) or re.fullmatch(
            r"(.+\.[A-Za-z]{2,8})\.(?:[0-9a-f]{8,32}|\d+)(?:\.(?:tmp|part))?", tail
        )
        names.append(os.path.join(head, m.group(1)) if m else os.path.join(head, tail))
    hints = {
        errno.ENOSPC: " (disk full: free space or write elsewhere)",
        errno.EACCES: " (check the folder's permissions or write elsewhere)",
        errno.EROFS: " (a read-only file system: write elsewhere)",
        errno.ENOTDIR: " (a part of the path is a file, not a folder)",
    }
    hint = hints.get(err.errno or -1, "")
    if err.errno == errno.ENOENT and names:
        parent = os.path.dirname(names[0])
        if parent and not os.path.isdir(parent) and not os.path.exists(parent):
            hint = f" (the folder {parent} does not exist)"
    if err.errno == errno.EEXIST and names and os.path.isfile(names[0]):
        hint = " (a file is in the way where a folder is needed)"
    if names:
        return f"{' -> '.join(names)}: {problem}{hint}"
    return f"{problem}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slideseg`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return func(args)
    except SlideSegError as err:
        print(f"slideseg: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"slideseg: error: {_os_error(err)}", file=sys.stderr)
        return 1
    except MemoryError as err:
        detail = f" ({_one_line(err)})" if str(err) else ""
        print(
            f"slideseg: error: not enough memory{detail}; try a smaller --block, --tile "
            "or --batch-size, or a coarser --level",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("slideseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
