"""Outputs under faults: kills at every block write step, failed starts, incomplete reads.

A kill is simulated with the engine's fault-injection hook (``writes.FAULT``,
called with the name of each write step just before it): the run raises at
the k-th call of one step, then ``resume=True`` finishes it, and the result
must equal an uninterrupted run bit for bit (labels, instances, every
pyramid level, saved maps, done marks, ``instances.csv``). The kill loop runs
small deterministic models on a real region of the sample slide; one case per
kind runs the bundled models.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import zarr

from napari_slideseg.infer import InferConfig, output, predict_slide, writes
from napari_slideseg.infer.engine import InferError, is_complete
from napari_slideseg.infer.hover import export_instances_steps, read_instance_table
from napari_slideseg.infer.task import HoverTask, id_stride_checked
from napari_slideseg.io.masks import (
    IncompletePredictionError,
    PartialPredictionWarning,
    read_instance_map,
    read_labels,
)
from napari_slideseg.metrics import MetricsError, confusion_counts, evaluate
from napari_slideseg.models.card import new_card
from napari_slideseg.progress import drain

REGION = (1500, 700, 2012, 1212)  # level-0 (y0, x0, y1, x1) of the sample slide: 3 x 3 blocks
SEMANTIC_STEPS = ("labels", "pyramid", "maps", "done")
HOVER_STEPS = ("instances", "labels", "instance_pyramid", "pyramid", "maps", "table", "done")
TEMP_ENDINGS = (".tmp", ".part", ".partial")


class Killed(Exception):
    """What the fault hook raises: the run stops there, as if killed."""


class _Semantic(torch.nn.Module):
    """Three classes from a fixed random 5 x 5 convolution of the pixels (deterministic)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 5, padding=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(3, 3, 5, 5, generator=g) * 0.5)
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


class _TypedHover(torch.nn.Module):
    """A typed 'HoVer model': dark pixels are nuclei, HV and types from the colours."""

    def forward(self, x):
        x = torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
        dark = 1 - x.mean(1, keepdim=True)
        np_logit = (dark - 0.5) * 30
        h = (x[:, 0:1] - x[:, 1:2]) * 2
        v = (x[:, 1:2] - x[:, 2:3]) * 2
        red_blue = (x[:, 0:1] - x[:, 2:3] - 0.05) * 40
        nc = torch.cat([torch.zeros_like(red_blue), red_blue, -red_blue], 1)
        return torch.cat([-np_logit, np_logit, h, v, nc], 1)


SEM_CARD = new_card(
    kind="semantic",
    arch="Unet",
    encoder="none",
    in_channels=3,
    classes=3,
    classmap={
        "name": "",
        "names": ["background", "a", "b"],
        "colors": [[0, 0, 0], [255, 0, 0], [0, 255, 0]],
        "background": 0,
    },
    patch_size=256,
    normalization={"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
)
HOVER_CARD = new_card(
    kind="hover",
    arch="HoVerNet",
    encoder="none",
    in_channels=3,
    classes=3,
    classmap={
        "name": "nuclei",
        "names": ["background", "reddish", "bluish"],
        "colors": [[0, 0, 0], [255, 0, 0], [0, 0, 255]],
        "background": 0,
    },
    patch_size=256,
    normalization={"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
)
FAST = {
    "semantic": (
        lambda: [(_Semantic().eval(), SEM_CARD)],
        InferConfig(
            region=REGION, block=256, tile=128, overlap=32, device="cpu", save_probs=True, zoom=1.0
        ),
    ),
    "hover": (
        lambda: [(_TypedHover().eval(), HOVER_CARD)],
        InferConfig(
            region=REGION,
            block=256,
            tile=128,
            overlap=32,
            instance_halo=32,
            device="cpu",
            save_probs=True,
            zoom=1.0,
        ),
    ),
}
#: The bundled models (tile 256 and zoom 1 keep them quick on a CPU).
REAL = {
    "semantic": ("glas-gland", InferConfig(region=REGION, block=256, tile=256, overlap=64)),
    "hover": (
        "hover-nuclei",
        InferConfig(region=REGION, block=256, tile=256, overlap=64, instance_halo=32, zoom=1.0),
    ),
}


@pytest.fixture(scope="module")
def slide():
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.samples import sample_slide_path

    return open_slide(sample_slide_path())


@pytest.fixture(autouse=True)
def _no_fault():
    yield
    writes.FAULT = None


def _kill_at(step: str, k: int):
    """A fault hook raising at the ``k``-th (0-based) call of ``step``."""
    seen = {"n": 0}

    def hook(name: str) -> None:
        if name == step:
            if seen["n"] == k:
                raise Killed(f"killed before {step} #{k}")
            seen["n"] += 1
        if name == "done":
            hook.blocks_done += 1

    hook.blocks_done = 0  # blocks marked done before the kill
    return hook


def _arrays(root, prefix=""):
    out = {}
    for name, node in root.members():
        if isinstance(node, zarr.Array):
            out[prefix + name] = np.asarray(node[:])
        else:
            out.update(_arrays(node, f"{prefix}{name}/"))
    return out


def _assert_same(ref, got):
    a = _arrays(zarr.open_group(str(ref), mode="r"))
    b = _arrays(zarr.open_group(str(got), mode="r"))
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert is_complete(got)
    if (ref / "instances.csv").exists():
        assert (got / "instances.csv").read_text() == (ref / "instances.csv").read_text()
    left = [p for p in got.rglob("*") if p.name.endswith(TEMP_ENDINGS)]
    assert not left, left


@pytest.fixture(scope="module")
def fast_refs(tmp_path_factory, slide):
    d = tmp_path_factory.mktemp("fast")
    refs = {}
    for kind, (models, cfg) in FAST.items():
        refs[kind] = predict_slide(slide, models(), d / f"{kind}.zarr", cfg)
    root = zarr.open_group(str(refs["hover"]), mode="r")
    table = read_instance_table(refs["hover"])
    stride = id_stride_checked(root["done"].shape[0])
    # the fake nuclei exercise what matters: several types, most blocks owning nuclei
    assert len(table["id"]) >= 100 and len(set(table["type"].tolist())) >= 2
    assert len(np.unique(table["id"] // stride)) >= 6
    return refs


CASES = [("semantic", s) for s in SEMANTIC_STEPS] + [("hover", s) for s in HOVER_STEPS]


@pytest.mark.parametrize(("kind", "step"), CASES)
@pytest.mark.parametrize("block", [0, 4])
def test_kill_at_each_write_step_then_resume_is_identical(
    tmp_path, slide, fast_refs, kind, step, block
):
    models, cfg = FAST[kind]
    out = tmp_path / "cut.zarr"
    writes.FAULT = hook = _kill_at(step, block)
    with pytest.raises(Killed):
        predict_slide(slide, models(), out, cfg)
    writes.FAULT = None
    if hook.blocks_done == 0:
        # failed before its first block was done: nothing is left to block the next run
        assert not out.exists()
    else:
        assert not is_complete(out)
        with pytest.raises(IncompletePredictionError, match="blocks missing"):
            read_labels(out)
    predict_slide(slide, models(), out, cfg, resume=True)
    _assert_same(fast_refs[kind], out)


def test_hover_kill_between_instances_and_labels_keeps_types(tmp_path, slide, fast_refs):
    """The reported case: instances written, labels not; resume used to skip the types."""
    models, cfg = FAST["hover"]
    out = tmp_path / "cut.zarr"
    for k in (1, 2):  # two kills in a row at the same place, then resumes
        writes.FAULT = _kill_at("labels", k)
        with pytest.raises(Killed):
            predict_slide(slide, models(), out, cfg, resume=True)
    writes.FAULT = None
    predict_slide(slide, models(), out, cfg, resume=True)
    _assert_same(fast_refs["hover"], out)
    root = zarr.open_group(str(out), mode="r")
    inst, labels = np.asarray(root["instances"][:]), np.asarray(root["labels"][:])
    tab = read_instance_table(out)
    by_id = dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
    fg = inst > 0
    ids, inv = np.unique(inst[fg], return_inverse=True)
    np.testing.assert_array_equal(labels[fg], np.asarray([by_id[int(i)] for i in ids])[inv])


def test_hover_rewriting_a_block_is_idempotent_and_order_free(tmp_path, slide, fast_refs):
    """Blocks written in reverse order, some twice: the same maps (smallest id wins)."""
    from napari_slideseg.infer.hover import write_hover

    models, cfg = FAST["hover"]
    captured = []
    real_write = HoverTask.write

    def capture(self, dest, index, res, config):
        captured.append((index, res, dest.factors))
        real_write(self, dest, index, res, config)

    out = tmp_path / "ref.zarr"
    mp = pytest.MonkeyPatch()
    mp.setattr(HoverTask, "write", capture)
    try:
        predict_slide(slide, models(), out, cfg)
    finally:
        mp.undo()
    ref = zarr.open_group(str(fast_refs["hover"]), mode="r")
    root = zarr.open_group(str(out), mode="r+")
    for name in ("instances", "labels"):
        root[name][:] = 0
    for _index, res, factors in captured[::-1] + captured[:2]:
        write_hover(root, res, list(factors))
    for name in ("instances", "labels"):
        np.testing.assert_array_equal(root[name][:], ref[name][:], err_msg=name)


@pytest.fixture(scope="module")
def real_refs(tmp_path_factory, slide):
    from napari_slideseg.models.bundled import bundled_models

    d = tmp_path_factory.mktemp("real")
    bundled = bundled_models()
    return {
        kind: predict_slide(slide, [bundled[name]], d / f"{kind}.zarr", cfg)
        for kind, (name, cfg) in REAL.items()
    }


@pytest.mark.parametrize(("kind", "step"), [("semantic", "pyramid"), ("hover", "labels")])
def test_real_model_kill_and_resume_is_identical(tmp_path, slide, real_refs, kind, step):
    from napari_slideseg.models.bundled import bundled_models

    name, cfg = REAL[kind]
    model = bundled_models()[name]
    out = tmp_path / "cut.zarr"
    writes.FAULT = _kill_at(step, 1)  # inside the second block
    with pytest.raises(Killed):
        predict_slide(slide, [model], out, cfg)
    writes.FAULT = None
    predict_slide(slide, [model], out, cfg, resume=True)
    _assert_same(real_refs[kind], out)
    if kind == "hover":
        root = zarr.open_group(str(out), mode="r")
        assert np.asarray(root["instances"][:]).any()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "step"),
    [("semantic", "labels"), ("hover", "instances")],
)
def test_distributed_kill_and_resume_is_identical(tmp_path, slide, real_refs, kind, step):
    """A dask cluster run killed inside a block write (on a worker for semantic models, in
    the driver for HoVer) or before its done mark resumes on the cluster to the local result.

    The cluster's workers are threads of this process, so the fault hook reaches them."""
    distributed = pytest.importorskip("distributed")
    from napari_slideseg.models.bundled import bundled_models

    name, cfg = REAL[kind]
    model = bundled_models()[name]
    out = tmp_path / "cut.zarr"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        writes.FAULT = _kill_at(step, 2)
        with pytest.raises(Killed):
            predict_slide(slide, [model], out, cfg, client=client)
        writes.FAULT = None
        assert not is_complete(out)
        predict_slide(slide, [model], out, cfg, resume=True, client=client)
    _assert_same(real_refs[kind], out)


# -----------------------------------------------------------------------------
# runs that fail before their first block; temporaries
# -----------------------------------------------------------------------------
def test_failed_start_leaves_nothing_and_the_next_run_works(tmp_path, slide, fast_refs):
    models, cfg = FAST["semantic"]
    out = tmp_path / "pred.zarr"
    if not torch.cuda.is_available():
        from dataclasses import replace

        with pytest.raises(Exception, match=r"(?i)cuda"):
            predict_slide(slide, models(), out, replace(cfg, device="cuda"))
        assert not out.exists()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("broken weights")

    with pytest.raises(RuntimeError, match="broken"):
        predict_slide(slide, [(Broken(), SEM_CARD)], out, cfg)
    assert not out.exists() and not list(tmp_path.iterdir())
    predict_slide(slide, models(), out, cfg)  # no "holds a prediction made with other settings"
    _assert_same(fast_refs["semantic"], out)


def test_failed_start_keeps_an_empty_folder_the_user_made(tmp_path, slide):
    _, cfg = FAST["semantic"]
    out = tmp_path / "pred.zarr"
    out.mkdir()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("broken weights")

    with pytest.raises(RuntimeError):
        predict_slide(slide, [(Broken(), SEM_CARD)], out, cfg, resume=True)
    assert out.is_dir() and not list(out.iterdir())


def test_stale_temporaries_are_removed_on_resume(tmp_path, slide, fast_refs):
    models, cfg = FAST["hover"]
    out = tmp_path / "cut.zarr"
    writes.FAULT = _kill_at("done", 1)
    with pytest.raises(Killed):
        predict_slide(slide, models(), out, cfg)
    writes.FAULT = None
    # what a kill -9 leaves: a block table, the merged table and a zarr chunk half-written
    (out / "tables" / ".0000003.csv.tmp").write_text("id,centroid")
    (out / ".instances.csv.tmp").write_text("id")
    (out / "labels" / "c.0.0.abc.partial").parent.mkdir(exist_ok=True)
    (out / "labels" / "c.0.0.abc.partial").write_bytes(b"\0")
    (tmp_path / ".cut.zarr.part").mkdir()  # a creation killed earlier
    predict_slide(slide, models(), out, cfg, resume=True)
    _assert_same(fast_refs["hover"], out)
    assert not (tmp_path / ".cut.zarr.part").exists()


def test_a_killed_creation_is_not_a_half_made_output(tmp_path, slide, fast_refs, monkeypatch):
    """A kill while the arrays are created (before the attributes): nothing at ``out``."""
    models, cfg = FAST["semantic"]
    out = tmp_path / "pred.zarr"
    real = output.create_pyramid

    def die(*a, **k):
        real(*a, **k)
        raise Killed("killed while creating")

    monkeypatch.setattr(output, "create_pyramid", die)
    with pytest.raises(Killed):
        predict_slide(slide, models(), out, cfg, resume=True)
    assert not out.exists()
    monkeypatch.setattr(output, "create_pyramid", real)
    predict_slide(slide, models(), out, cfg, resume=True)  # no ContainsArrayError
    _assert_same(fast_refs["semantic"], out)


def test_resume_refuses_a_folder_that_is_not_a_prediction(tmp_path, slide):
    models, cfg = FAST["semantic"]
    mine = tmp_path / "my files"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(InferError, match="not a prediction") as err:
        predict_slide(slide, models(), mine, cfg, resume=True)
    assert str(mine) in str(err.value)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    plain = tmp_path / "plain.zarr"
    zarr.create_array(str(plain), shape=(4, 4), dtype="u1")
    with pytest.raises(InferError, match="not a slideseg prediction"):
        predict_slide(slide, models(), plain, cfg, resume=True)


# -----------------------------------------------------------------------------
# reading an incomplete prediction: refused unless partial
# -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def killed(tmp_path_factory, slide):
    """A semantic and a HoVer prediction killed after their second block (7 of 9 missing)."""
    d = tmp_path_factory.mktemp("killed")
    outs = {}
    for kind, (models, cfg) in FAST.items():
        outs[kind] = d / f"{kind}.zarr"
        writes.FAULT = _kill_at("done", 2)
        try:
            with pytest.raises(Killed):
                predict_slide(slide, models(), outs[kind], cfg)
        finally:
            writes.FAULT = None
    return outs


@pytest.mark.parametrize("kind", ["semantic", "hover"])
def test_read_labels_refuses_an_incomplete_prediction(killed, kind):
    out = killed[kind]
    with pytest.raises(IncompletePredictionError) as err:
        read_labels(out)
    msg = str(err.value)
    assert str(out) in msg and "7 of 9 blocks missing" in msg and "--partial" in msg
    assert err.value.missing == 7 and err.value.total == 9
    with pytest.raises(IncompletePredictionError):
        read_labels(out / "labels")  # an array inside it too
    with pytest.warns(PartialPredictionWarning, match="7 of 9 blocks missing"):
        labels, _, info = read_labels(out, partial=True)
    assert info["missing_blocks"] == 7 and labels.shape == (2967, 2220)


def test_complete_predictions_read_without_a_warning(fast_refs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialPredictionWarning)
        read_labels(fast_refs["semantic"])
        read_instance_map(fast_refs["hover"])


def test_hover_readers_and_exports_refuse_an_incomplete_prediction(killed, tmp_path):
    out = killed["hover"]
    with pytest.raises(IncompletePredictionError, match="7 of 9 blocks missing"):
        read_instance_map(out)
    with pytest.raises(IncompletePredictionError):
        read_instance_table(out)
    for what, name in (("table", "t.csv"), ("rle", "r.csv"), (None, "n.geojson")):
        with pytest.raises(IncompletePredictionError, match=str(out)):
            drain(export_instances_steps(out, tmp_path / name, what=what))
        assert not (tmp_path / name).exists()
    with pytest.warns(PartialPredictionWarning):
        inst = read_instance_map(out, partial=True)
    assert inst.any()
    with pytest.warns(PartialPredictionWarning):
        t = drain(export_instances_steps(out, tmp_path / "t.csv", what="table", partial=True))
    with pytest.warns(PartialPredictionWarning):
        tab = read_instance_table(out, partial=True)
    assert len(tab["id"]) > 0
    assert t.read_text().count("\n") == len(tab["id"]) + 1
    with pytest.warns(PartialPredictionWarning):
        drain(export_instances_steps(out, tmp_path / "n.geojson", partial=True))
    assert (tmp_path / "n.geojson").exists()


@pytest.mark.parametrize("argv", ["export {out} --to {dst}/x.png", "evaluate {out} {out}"])
def test_cli_refuses_an_incomplete_prediction(killed, tmp_path, capsys, argv):
    from napari_slideseg.cli import main

    out = killed["semantic"]
    rc = main(argv.format(out=out, dst=tmp_path).split())
    err = capsys.readouterr().err
    assert rc == 2
    assert str(out) in err and "7 of 9 blocks missing" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_cli_refuses_an_incomplete_hover_export(killed, tmp_path, capsys):
    from napari_slideseg.cli import main

    out = killed["hover"]
    rc = main(["export", str(out), "--to", str(tmp_path / "n.geojson"), "--instances"])
    assert rc == 2
    assert str(out) in capsys.readouterr().err


def test_cli_partial_takes_an_incomplete_prediction_and_says_so(killed, tmp_path, capsys):
    from napari_slideseg.cli import main

    out = killed["semantic"]
    assert main(["export", str(out), "--to", str(tmp_path / "x.png"), "--partial"]) == 0
    assert "7 of 9 blocks missing" in capsys.readouterr().err  # the warning line
    assert (tmp_path / "x.png").exists()
    hover = killed["hover"]
    dst = tmp_path / "n.geojson"
    assert main(["export", str(hover), "--to", str(dst), "--instances", "--partial"]) == 0
    assert dst.exists() and "blocks missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_tissue", 5, r"min_tissue must be a number in \[0, 1\], not 5"),
        ("min_tissue", -1, "min_tissue must be"),
        ("threads", -1, "threads must be an integer >= 1, not -1"),
        ("threads", 0, "threads must be an integer >= 1"),
        ("instance_halo", -10, "instance_halo must be 0 or more"),
        ("level", -1, "level must be 0 or more"),
        ("tile", 8, r"tile must be in \[16, 8192\]"),
        ("zoom", "fast", "zoom must be 'auto' or a number"),
    ],
)
def test_infer_config_refuses_out_of_range_values_naming_them(field, value, message):
    from napari_slideseg.infer import InferConfig, InferError

    with pytest.raises(InferError, match=message):
        InferConfig(**{field: value})


# -----------------------------------------------------------------------------
# metrics: label values outside the classes
# -----------------------------------------------------------------------------
def test_evaluate_refuses_values_outside_the_classes():
    truth = np.zeros((8, 8), np.uint8)
    truth[:4] = 1
    pred = truth.copy()
    pred[:2] = 5  # 16 px wrong: used to score Dice 1.0 for class 1
    with pytest.raises(MetricsError, match=r"prediction holds label value 5.*only 2 classes"):
        evaluate([("x", pred, truth)], ["background", "gland"])
    with pytest.raises(MetricsError, match=r"truth holds label value 3"):
        confusion_counts(truth, np.full_like(truth, 3), 2)
    with pytest.raises(MetricsError, match="value -1"):
        confusion_counts(np.full((2, 2), -1, np.int16), np.zeros((2, 2), np.int16), 2)
    rows = evaluate([("x", pred, truth)], ["background", "gland", "c2", "c3", "c4", "c5"])
    assert rows[0]["dice_gland"] < 1.0


def test_napari_reader_refuses_an_incomplete_prediction(killed, monkeypatch):
    from napari_slideseg import _reader

    said = []
    monkeypatch.setattr(_reader, "_notify_error", said.append)
    out = killed["semantic"]
    reader = _reader.napari_get_mask_reader(str(out))
    layers = (reader or _reader.read_mask)(str(out))
    assert layers == [(None,)]
    assert len(said) == 1 and str(out) in said[0] and "7 of 9 blocks missing" in said[0]
