"""Bad input through the API and the npe2 readers: a clear error naming the file, never a hang.

Every call runs in a daemon thread joined with a timeout, so a regression
that blocks (a FIFO opened for reading) fails the test instead of hanging
the suite. Each case asserts the exact outcome: the error type and that the
message names the file (and the row or tile where there is one).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_slideseg import _reader
from napari_slideseg.io.errors import SlideError, SlideSegError
from napari_slideseg.io.rle import RLEError, read_rle_csv
from napari_slideseg.io.rle import csvfiles as rle_csvfiles

DATA = Path(__file__).parents[1] / "data"
TIMEOUT = 30.0


def _call(fn, *args: Any, timeout: float = TIMEOUT, **kwargs: Any) -> Any:
    """``fn(*args)`` in a thread: its result, or its exception re-raised; fails on a hang."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)}{args} still running after {timeout} s (hang)")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _read_via_napari(monkeypatch, getter, path: Path) -> tuple[Any, list[str]]:
    """Ask an npe2 reader hook for ``path`` and call what it returns; (layers, notifications)."""
    messages: list[str] = []
    monkeypatch.setattr(_reader, "_notify_error", messages.append)
    reader = _call(getter, str(path))
    if reader is None:
        return None, messages
    return _call(reader, str(path)), messages


def _assert_notified(layers: Any, messages: list[str], path: Path, *words: str) -> None:
    assert layers == [(None,)], "the reader must notify, not return layers"
    assert len(messages) == 1, messages
    assert str(path) in messages[0]
    for w in words:
        assert w in messages[0], messages[0]


# -----------------------------------------------------------------------------
# RLE CSV (issue 16, item 5)
# -----------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


_HUGE = "id,rle,height,width,order\na,1 10,100000,100000,col\n"
_BAD_RLE = {
    "huge_shape": (_HUGE, "row 1", "GiB"),
    "enormous_shape": (
        "id,rle,height,width,order\na,1 10,1000000000,1000000000,col\n",
        "row 1",
        "GiB",
    ),
    "side_too_large": ("id,rle,height,width,order\na,1 10,10,99999999999,col\n", "row 1", "width"),
    "latin1_row2": (
        b"id,rle,height,width,order\na,1 10,10,10,col\nb\xe9,1 10,10,10,col\n",
        "row 2",
        "UTF-8",
    ),
    "latin1_header": (b"id,rl\xe9,height,width,order\na,1 10,10,10,col\n", "", "UTF-8"),
    "uint64_overflow": (
        f"image_id,instance_id,rle,height,width,order\na,{2**64},1 10,10,10,col\n",
        "row 1",
        "instance id",
    ),
}


@pytest.mark.parametrize("case", sorted(_BAD_RLE))
def test_bad_rle_csv_api(tmp_path, monkeypatch, case):
    text, where, word = _BAD_RLE[case]
    monkeypatch.setattr(rle_csvfiles, "_available_memory", lambda: 4 * 2**30)
    path = _write(tmp_path, f"{case}.csv", text)
    with pytest.raises(RLEError) as info:
        _call(read_rle_csv, path)
    msg = str(info.value)
    assert str(path) in msg and where in msg and word in msg, msg


@pytest.mark.parametrize("case", ["huge_shape", "latin1_row2", "uint64_overflow"])
def test_bad_rle_csv_napari(tmp_path, monkeypatch, case):
    text, where, word = _BAD_RLE[case]
    monkeypatch.setattr(rle_csvfiles, "_available_memory", lambda: 4 * 2**30)
    path = _write(tmp_path, f"{case}.csv", text)
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_mask_reader, path)
    _assert_notified(layers, messages, path, where, word)


@pytest.mark.parametrize("ident", [2**63 - 1, 2**63, 2**64 - 1])
def test_rle_csv_full_uint64_ids(tmp_path, ident):
    path = _write(
        tmp_path,
        "ids.csv",
        f"image_id,instance_id,rle,height,width,order\na,{ident},1 10,10,10,col\na,3,11 5,10,10,col\n",
    )
    labels, _info = _call(read_rle_csv, path)
    assert labels.dtype == np.uint64
    assert int(labels[0, 0]) == ident and int(labels[0, 1]) == 3
    assert int((labels == np.uint64(ident)).sum()) == 10


def test_rle_csv_uint64_ids_via_napari(tmp_path, monkeypatch):
    ident = 2**64 - 1
    path = _write(
        tmp_path,
        "ids.csv",
        f"image_id,instance_id,rle,height,width,order\na,{ident},1 10,10,10,col\n",
    )
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_mask_reader, path)
    assert not messages, messages
    data = np.asarray(layers[0][0])
    assert int(data.max()) == ident


def test_rle_csv_that_is_a_directory(tmp_path):
    path = tmp_path / "dir.csv"
    path.mkdir()
    with pytest.raises(RLEError, match="not a regular file") as info:
        _call(read_rle_csv, path, order="col", shape=(4, 4))
    assert str(path) in str(info.value)


def test_error_types_are_slideseg_errors():
    assert issubclass(RLEError, SlideSegError) and issubclass(SlideError, SlideSegError)
    assert os.name == "posix"  # FIFOs below need POSIX


# -----------------------------------------------------------------------------
# FIFOs, sockets, devices: never opened (issue 16, item 4)
# -----------------------------------------------------------------------------
@pytest.fixture
def fifo(tmp_path, request):
    """A FIFO with the name the test asks for; unblocked at teardown should a reader hang."""
    path = tmp_path / request.param
    os.mkfifo(path)
    yield path
    try:  # release a reader stuck in open() (a regression) so the thread can end
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


_SLIDE_NAMES = ["x.svs", "x.tif", "x.ndpi", "x.png", "x.jpg", "x.zarr"]


@pytest.mark.parametrize("fifo", _SLIDE_NAMES, indirect=True)
def test_fifo_open_slide_refused(fifo):
    from napari_slideseg.io.slide import open_slide

    with pytest.raises(SlideError, match="FIFO") as info:
        _call(open_slide, fifo, timeout=10)
    assert str(fifo) in str(info.value)


@pytest.mark.parametrize("fifo", _SLIDE_NAMES, indirect=True)
def test_fifo_npe2_slide_reader_notifies(fifo, monkeypatch):
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_reader, fifo)
    _assert_notified(layers, messages, fifo, "FIFO")


@pytest.mark.parametrize("fifo", ["x.csv", "x.npy"], indirect=True)
def test_fifo_npe2_mask_reader_notifies(fifo, monkeypatch):
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_mask_reader, fifo)
    _assert_notified(layers, messages, fifo, "FIFO")


@pytest.mark.parametrize("fifo", ["x.png", "x.tif", "x.svs"], indirect=True)
def test_fifo_mask_reader_hook_declines(fifo):
    assert _call(_reader.napari_get_mask_reader, str(fifo), timeout=10) is None


@pytest.mark.parametrize("fifo", ["x.csv"], indirect=True)
def test_fifo_rle_csv_refused(fifo):
    with pytest.raises(RLEError, match="not a regular file") as info:
        _call(read_rle_csv, fifo, order="col", shape=(4, 4), timeout=10)
    assert str(fifo) in str(info.value)


def test_device_refused():
    from napari_slideseg.io.slide import open_slide

    with pytest.raises(SlideError, match="device") as info:
        _call(open_slide, "/dev/zero", timeout=10)
    assert "/dev/zero" in str(info.value)


# -----------------------------------------------------------------------------
# tiny and extreme shapes (issue 16, item 4)
# -----------------------------------------------------------------------------
_SHAPES = {
    "1xN": ((1, 500), {}),
    "Nx1": ((500, 1), {}),
    "1x1": ((1, 1), {}),
    "1xN_rgb": ((1, 300, 3), {}),
    "40x100000": ((40, 100000), {}),
    "20000x3": ((20000, 3), {}),
    "1x5000_tiled": ((1, 5000), {"tile": (16, 16)}),
    "3x20000_tiled": ((3, 20000), {"tile": (16, 1024)}),
}


def _shape_tiff(tmp_path: Path, case: str) -> tuple[Path, tuple[int, ...]]:
    import tifffile

    shape, kw = _SHAPES[case]
    data = (np.arange(int(np.prod(shape))) % 251).astype(np.uint8).reshape(shape)
    path = tmp_path / f"{case}.tif"
    tifffile.imwrite(path, data, **kw)
    return path, shape


@pytest.mark.parametrize("case", sorted(_SHAPES))
def test_extreme_shapes_open(tmp_path, case):
    from napari_slideseg.io.slide import open_slide

    path, shape = _shape_tiff(tmp_path, case)
    slide = _call(open_slide, path)
    assert slide.shape == shape
    for lvl in slide.levels:
        assert min(lvl.shape[:2]) >= 1
    smallest = np.asarray(slide.levels[-1].compute())
    assert smallest.size > 0


@pytest.mark.parametrize("case", ["1xN", "Nx1", "40x100000", "1x5000_tiled"])
def test_extreme_shapes_npe2(tmp_path, monkeypatch, case):
    path, shape = _shape_tiff(tmp_path, case)
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_reader, path)
    assert not messages, messages
    data = layers[0][0]
    levels = data if isinstance(data, list) else [data]
    assert tuple(levels[0].shape) == shape


# -----------------------------------------------------------------------------
# checkpoints refused at load (issue 16, item 6)
# -----------------------------------------------------------------------------
def _bundled_copy(tmp_path: Path, name: str = "glas-gland") -> Path:
    import shutil

    from napari_slideseg.models.bundled import bundled_models

    dst = tmp_path / name
    shutil.copytree(bundled_models()[name], dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    import json

    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _edit_weights(ck: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(ck / "model.safetensors"))
    edit(state)
    save_file(state, str(ck / "model.safetensors"), metadata={"format": "pt"})


def _first_conv(state: dict) -> str:
    return next(k for k, v in state.items() if v.ndim == 4)


def _set(key: str, value: Any):
    def edit(doc: dict) -> None:
        doc[key] = value

    return edit


def _norm(**kw: Any):
    def edit(doc: dict) -> None:
        doc["normalization"].update(kw)

    return edit


_BAD_CHECKPOINTS = {
    # case: (file edited, how, file named in the message, words in the message)
    "config_not_json": ("config.json", "{broken", "config.json", "JSON"),
    "config_a_list": ("config.json", "[1, 2]", "config.json", "JSON object"),
    "config_encoder_depth_four": (
        "config.json",
        _set("encoder_depth", "four"),
        "config.json",
        "cannot be built",
    ),
    "config_classes_text": ("config.json", _set("classes", "two"), "config.json", "integer"),
    "config_latin1": ("config.json", b'{"encoder_name": "r\xe9snet"}', "config.json", "JSON"),
    "card_std_zero": ("slideseg.json", _norm(std=[0.0, 0.2, 0.2]), "glas-gland", "std"),
    "card_std_nan": ("slideseg.json", _norm(std=[float("nan"), 0.2, 0.2]), "glas-gland", "std"),
    "weights_nan": (
        "model.safetensors",
        lambda s: s[_first_conv(s)].view(-1).__setitem__(0, float("nan")),
        "model.safetensors",
        "NaN",
    ),
    "weights_inf": (
        "model.safetensors",
        lambda s: s[_first_conv(s)].view(-1).__setitem__(0, float("inf")),
        "model.safetensors",
        "NaN or infinite",
    ),
    # finite weights, NaN outputs: only the probe batch sees it
    "weights_negative_bn_variance": (
        "model.safetensors",
        lambda s: s[next(k for k in s if k.endswith("running_var"))].fill_(-1.0),
        "hover-nuclei",
        "probe batch",
    ),
}


@pytest.mark.parametrize("case", sorted(_BAD_CHECKPOINTS))
def test_bad_checkpoint_refused_at_load(tmp_path, case):
    from napari_slideseg.models.checkpoint import CheckpointError, load_model

    fname, how, named, word = _BAD_CHECKPOINTS[case]
    ck = _bundled_copy(tmp_path, "hover-nuclei" if named == "hover-nuclei" else "glas-gland")
    target = ck / fname
    if fname == "model.safetensors":
        _edit_weights(ck, how)
    elif isinstance(how, str | bytes):
        target.write_bytes(how.encode() if isinstance(how, str) else how)
    else:
        _edit_json(target, how)
    with pytest.raises(CheckpointError) as info:
        _call(load_model, ck, timeout=60)
    msg = str(info.value)
    assert named in msg and word in msg, msg
    if named not in ("glas-gland", "hover-nuclei"):
        assert str(ck / named) in msg, msg
    else:
        assert str(ck) in msg, msg


@pytest.mark.parametrize("name", ["glas-gland", "hover-nuclei"])
def test_probe_is_cheap_for_bundled_models(name):
    import time

    import torch

    from napari_slideseg.models import checkpoint as ck
    from napari_slideseg.models.bundled import bundled_models

    model, card = ck.load_model(bundled_models()[name])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of this thread: not skewed by a busy shared machine
    try:
        best = float("inf")
        for _ in range(3):
            t = time.thread_time()
            ck._probe(model, card, Path(name))
            best = min(best, time.thread_time() - t)
    finally:
        torch.set_num_threads(threads)
    assert best < 0.2, f"probe of {name} took {best:.3f} s of CPU"


# -----------------------------------------------------------------------------
# damaged image data (issue 16, item 4)
# -----------------------------------------------------------------------------
_JPG = sorted((DATA / "consep_patches" / "images").glob("*.jpg"))[0]
_PNG = DATA / "glas" / "testA_1.png"
_SVS = DATA / "wsi" / "CMU-1-Small-Region.svs"


def _sof(raw: bytes) -> int:
    import re

    return re.search(rb"\xff[\xc0-\xc2]", raw).start()


def _jpeg_case(case: str) -> bytes:
    import struct

    raw = bytearray(_JPG.read_bytes())
    sos = raw.index(b"\xff\xda")
    mid = sos + (len(raw) - sos) // 2
    if case == "truncated_half":
        return bytes(raw[: len(raw) // 2])
    if case == "truncated_tail":
        return bytes(raw[:-40])
    if case == "bad_marker_in_data":
        raw[mid : mid + 6] = b"\xff\x17\x00\x05\xaa\x55"
        return bytes(raw)
    if case == "second_soi_in_data":
        raw[mid : mid + 2] = b"\xff\xd8"
        return bytes(raw)
    if case.startswith("header_"):
        side = int(case.split("_")[1])
        j = _sof(raw)
        raw[j + 5 : j + 9] = struct.pack(">HH", side, side)
        return bytes(raw)
    raise AssertionError(case)


_JPEG_CASES = {
    "truncated_half": "truncated",
    "truncated_tail": "truncated",
    "bad_marker_in_data": "corrupt",
    "second_soi_in_data": "corrupt",
    "header_3000": "promises 3000 x 3000",
    "header_5000": "promises 5000 x 5000",
}


@pytest.mark.parametrize("case", sorted(_JPEG_CASES))
def test_damaged_jpeg_refused(tmp_path, case):
    from napari_slideseg.io.slide import open_slide

    path = _write(tmp_path, f"{case}.jpg", _jpeg_case(case))
    with pytest.raises(SlideError) as info:
        _call(open_slide, path)
    msg = str(info.value)
    assert str(path) in msg and "damaged JPEG" in msg and _JPEG_CASES[case] in msg, msg


def _scramble(data: bytes, seed: int, n_bytes: int) -> bytes:
    """``data`` with ``n_bytes`` random bytes of its image data overwritten (markers intact)."""
    rng = np.random.default_rng(seed)
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    raw = bytearray(data)
    for i in rng.integers(start + 4, len(raw) - 4, n_bytes):
        v = int(rng.integers(0, 255))
        raw[i] = 0xFE if v == 0xFF else v  # never a new marker: that is jpeg_damage's case
    return bytes(raw)


def test_jpeg_with_scrambled_image_data_refused(tmp_path):
    """Overwritten image data with intact markers decodes to garbage in libjpeg: refused."""
    from napari_slideseg.io.slide import open_slide

    path = _write(tmp_path, "scrambled.jpg", _scramble(_JPG.read_bytes(), 3, 12))
    with pytest.raises(SlideError) as info:
        _call(open_slide, path)
    msg = str(info.value)
    assert str(path) in msg and "damaged JPEG" in msg and "image data" in msg, msg


def test_clean_jpegs_pass_the_entropy_check():
    """Every encoder setting the check must follow: subsampling, grey, odd sizes, restarts."""
    import io

    import imagecodecs
    from PIL import Image

    from napari_slideseg.io.sniff import jpeg_problem

    rgb = np.asarray(Image.open(_PNG).convert("RGB"))[:300, :301]
    streams = [
        imagecodecs.jpeg8_encode(np.ascontiguousarray(rgb), level=q, subsampling=sub)
        for q in (30, 95)
        for sub in ("444", "422", "420")
    ]
    streams.append(imagecodecs.jpeg8_encode(np.ascontiguousarray(rgb[:37, :53, 0]), level=80))
    for kwargs in ({"restart_marker_rows": 1}, {"restart_marker_blocks": 3}, {}):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=85, **kwargs)
        streams.append(buf.getvalue())
    streams.append(_JPG.read_bytes())
    assert [jpeg_problem(s) for s in streams] == [None] * len(streams)


_CV2_WARNINGS = """
import sys, cv2, numpy as np
for path in sys.argv[1:]:
    sys.stderr.write("@@" + path + "\\n"); sys.stderr.flush()
    cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    sys.stderr.flush()
"""


def test_entropy_check_agrees_with_libjpeg_warnings(tmp_path):
    """Independent check: libjpeg (through OpenCV, which prints its warnings) on 40 damaged
    streams. Every stream libjpeg warns about is refused; a stream it decodes without a
    word is refused only for a coefficient past the block end (libjpeg clamps those)."""
    import subprocess
    import sys

    import imagecodecs
    from PIL import Image

    from napari_slideseg.io.sniff import jpeg_problem

    rgb = np.ascontiguousarray(np.asarray(Image.open(_PNG).convert("RGB"))[:256, :256])
    clean = imagecodecs.jpeg8_encode(rgb, level=90)
    ours = {}
    for seed in range(40):
        path = _write(tmp_path, f"s{seed}.jpg", _scramble(clean, seed, 1 + seed % 8))
        ours[str(path)] = jpeg_problem(path.read_bytes())
    run = subprocess.run(
        [sys.executable, "-c", _CV2_WARNINGS, *ours], capture_output=True, text=True, timeout=120
    )
    warned: dict[str, list[str]] = {}
    current = None
    for line in run.stderr.splitlines():
        if line.startswith("@@"):
            current = line[2:]
        elif current and "Corrupt JPEG data" in line:
            warned.setdefault(current, []).append(line)
    assert len(warned) >= 10, run.stderr[-2000:]  # the damage is real
    for path, problem in ours.items():
        if path in warned:
            assert problem is not None, (path, warned[path])
        elif problem is not None:
            assert "out of range" in problem, (path, problem)


def test_damaged_jpeg_header_npe2(tmp_path, monkeypatch):
    path = _write(tmp_path, "forged.jpg", _jpeg_case("header_5000"))
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_reader, path)
    _assert_notified(layers, messages, path, "promises 5000 x 5000")


def test_intact_jpeg_still_opens():
    from napari_slideseg.io.slide import open_slide

    assert _call(open_slide, _JPG).shape == (256, 256, 3)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_png_is_one_clear_line(tmp_path, keep):
    from napari_slideseg.io.slide import open_slide

    raw = _PNG.read_bytes()
    path = _write(tmp_path, "cut.png", raw[: int(len(raw) * keep)])
    with pytest.raises(SlideError) as info:
        _call(open_slide, path)
    msg = str(info.value)
    assert str(path) in msg and "damaged PNG" in msg and "\n" not in msg, msg
    assert "GIF" not in msg and "JPEG" not in msg, msg  # no tour of unrelated codecs


def _svs_case(tmp_path: Path, case: str) -> Path:
    import tifffile

    with tifffile.TiffFile(_SVS) as tif:
        page = tif.pages[0]
        off, cnt = int(page.dataoffsets[5]), int(page.databytecounts[5])
    raw = bytearray(_SVS.read_bytes())
    if case == "tile_without_end":
        raw[off + cnt - 2 : off + cnt] = b"\x00\x00"
    elif case == "tile_bad_marker":
        raw[off + cnt // 2 : off + cnt // 2 + 4] = b"\xff\x12\x34\x56"
    elif case == "tile_cut_short":
        raw[off + cnt // 3 : off + cnt] = bytes(cnt - cnt // 3)
    return _write(tmp_path, f"{case}.svs", bytes(raw))


@pytest.mark.parametrize("case", ["tile_without_end", "tile_bad_marker", "tile_cut_short"])
def test_damaged_svs_tile_named(tmp_path, case):
    from napari_slideseg.io.slide import open_slide

    path = _svs_case(tmp_path, case)
    slide = _call(open_slide, path)  # tile 5 is not the one checked at open
    with pytest.raises(SlideError) as info:
        _call(slide.levels[0].compute)
    msg = str(info.value)
    assert str(path) in msg and "JPEG tile 5 (row 0, column 5) of level 0" in msg, msg


def test_svs_tile_with_scrambled_image_data_named(tmp_path):
    """A tile whose codes are damaged (markers intact) is an error naming it, not garbage."""
    import tifffile

    from napari_slideseg.io.slide import open_slide

    with tifffile.TiffFile(_SVS) as tif:
        page = tif.pages[0]
        off, cnt = int(page.dataoffsets[5]), int(page.databytecounts[5])
    raw = bytearray(_SVS.read_bytes())
    raw[off : off + cnt] = _scramble(bytes(raw[off : off + cnt]), 7, 12)
    path = _write(tmp_path, "scrambled.svs", bytes(raw))
    slide = _call(open_slide, path)
    with pytest.raises(SlideError) as info:
        _call(slide.read_region, 0, 0, 1200, 200, 200)
    msg = str(info.value)
    assert str(path) in msg and "JPEG tile 5 (row 0, column 5)" in msg and "image data" in msg
    viewer = _call(open_slide, path, jpeg_check="markers")  # what napari's reader opens
    assert viewer.read_region(0, 0, 1200, 200, 200).shape == (200, 200, 3)


def test_damaged_svs_tile_in_region_read(tmp_path):
    from napari_slideseg.io.slide import open_slide

    path = _svs_case(tmp_path, "tile_bad_marker")
    slide = _call(open_slide, path)
    assert slide.read_region(0, 0, 0, 240, 240).shape == (240, 240, 3)  # tile 0 is intact
    with pytest.raises(SlideError, match="tile 5"):
        _call(slide.read_region, 0, 0, 5 * 240, 240, 240)


def test_damaged_svs_tile_npe2_layer_read(tmp_path, monkeypatch):
    path = _svs_case(tmp_path, "tile_without_end")
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_reader, path)
    assert not messages
    data = layers[0][0]
    level0 = data[0] if isinstance(data, list) else data
    with pytest.raises(SlideError) as info:
        _call(level0[:240, 5 * 240 : 6 * 240].compute)
    assert str(path) in str(info.value)


# -----------------------------------------------------------------------------
# mask colours outside the palette (issue 16, item 4)
# -----------------------------------------------------------------------------
def _binary_with_stray(tmp_path: Path, n_stray: int = 1, name: str = "stray.png") -> Path:
    from PIL import Image

    m = np.zeros((256, 256, 3), np.uint8)
    m[50:150, 50:150] = 255
    m[3, 3 : 3 + n_stray] = (12, 200, 7)
    path = tmp_path / name
    Image.fromarray(m).save(path)
    return path


def _three_class_with_stray() -> np.ndarray:
    c = np.zeros((256, 256, 3), np.uint8)
    c[:100] = (200, 10, 10)
    c[100:200] = (10, 200, 10)
    c[0, 0] = (1, 2, 3)
    c[0, 1:3] = (90, 90, 250)
    return c


def test_stray_colour_in_binary_mask_is_an_error(tmp_path):
    from napari_slideseg.io.palette import MaskError, read_color_mask

    path = _binary_with_stray(tmp_path)
    with pytest.raises(MaskError) as info:
        _call(read_color_mask, path)
    msg = str(info.value)
    assert str(path) in msg and "(12, 200, 7): 1 px" in msg and "'binary'" in msg, msg


def test_stray_colour_with_tolerance_maps_to_the_preset(tmp_path):
    from napari_slideseg.io.palette import PRESETS, read_color_mask

    path = _binary_with_stray(tmp_path)
    labels, cm = _call(read_color_mask, path, tolerance=255)
    assert cm == PRESETS["binary"] and labels.max() == 1 and int(labels.sum()) == 100 * 100


def test_stray_colour_with_its_class_map_is_accepted(tmp_path):
    from napari_slideseg.io.palette import ClassMap, read_color_mask

    path = _binary_with_stray(tmp_path)
    cm = ClassMap(("bg", "fg", "odd"), ((0, 0, 0), (255, 255, 255), (12, 200, 7)))
    labels, got = _call(read_color_mask, path, cm)
    assert got == cm and int((labels == 2).sum()) == 1


def test_stray_colour_mask_npe2_notifies(tmp_path, monkeypatch):
    path = _binary_with_stray(tmp_path)
    layers, messages = _read_via_napari(monkeypatch, _reader.napari_get_mask_reader, path)
    _assert_notified(layers, messages, path, "(12, 200, 7): 1 px")


def test_rare_colours_never_become_classes_silently():
    from napari_slideseg.io.palette import ClassMap, MaskError

    with pytest.raises(MaskError) as info:
        ClassMap.infer(_three_class_with_stray(), source="custom.png")
    msg = str(info.value)
    assert msg.startswith("custom.png: 2 colour(s)") and "(90, 90, 250): 2 px" in msg, msg
    assert "(1, 2, 3): 1 px" in msg and "min_share=0" in msg, msg


def test_rare_colours_opt_in():
    from napari_slideseg.io.palette import ClassMap

    rgb = _three_class_with_stray()
    assert ClassMap.infer(rgb, min_share=0).n_classes == 5
    assert ClassMap.infer(rgb, min_share=1e-6).n_classes == 5
    with pytest.raises(Exception, match=r"\(90, 90, 250\): 2 px"):
        ClassMap.infer(rgb, tolerance=5)  # (1, 2, 3) is JPEG noise of black; the blue is not


def test_many_stray_pixels_are_not_sniffed_as_a_mask(tmp_path):
    from napari_slideseg.io.palette import is_color_mask

    assert is_color_mask(_binary_with_stray(tmp_path, 1, "one.png")) is not None
    assert is_color_mask(_binary_with_stray(tmp_path, 200, "many.png")) is None


@pytest.mark.parametrize("fifo", ["mask.png"], indirect=True)
def test_fifo_color_mask_refused(fifo):
    from napari_slideseg.io.palette import MaskError, read_color_mask

    with pytest.raises(MaskError, match="FIFO") as info:
        _call(read_color_mask, fifo, timeout=10)
    assert str(fifo) in str(info.value)


def test_rle_tokens_with_leading_zeros_are_numbers():
    from napari_slideseg.io.rle import rle_decode

    m = _call(rle_decode, "0000000000000000001 0000000000000000000003", (4, 4), order="row")
    assert int(m.sum()) == 3 and m.ravel()[:3].all()


def test_rle_token_too_large_is_named(tmp_path):
    path = _write(tmp_path, "big.csv", f"id,rle,height,width,order\na,1 {10**30},10,10,col\n")
    with pytest.raises(RLEError) as info:
        _call(read_rle_csv, path)
    msg = str(info.value)
    assert str(path) in msg and "row 1" in msg and "token 2" in msg and "larger than" in msg, msg


def _write_rgb(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return path


def test_rare_colours_cli_names_the_option(tmp_path, capsys):
    from napari_slideseg.cli import main

    mask = _write_rgb(tmp_path / "custom.png", _three_class_with_stray())
    out = tmp_path / "labels.csv"
    assert main(["convert", str(mask), "--to", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(mask) in err and "--min-class-share 0" in err, err
    assert not out.exists()
    assert main(["convert", str(mask), "--to", str(out), "--min-class-share", "0"]) == 0
    assert out.exists()
    from napari_slideseg.io.masks import read_labels

    labels, cm, _ = read_labels(out)
    assert cm is not None and cm.n_classes == 5 and int(labels.max()) == 4


def test_rare_colours_read_labels_min_share(tmp_path):
    from napari_slideseg.io.masks import read_labels
    from napari_slideseg.io.palette import MaskError
    from napari_slideseg.validate import OptionError

    mask = _write_rgb(tmp_path / "custom.png", _three_class_with_stray())
    with pytest.raises(MaskError, match=r"\(1, 2, 3\): 1 px"):
        read_labels(mask)
    _, cm, _ = read_labels(mask, min_share=0)
    assert cm.n_classes == 5
    _, cm, _ = read_labels(mask, min_share=1e-6)
    assert cm.n_classes == 5
    with pytest.raises(OptionError, match=r"min_share must be a number in \[0, 1\], not 2"):
        read_labels(mask, min_share=2)


def test_min_class_share_out_of_range_is_refused(capsys):
    from napari_slideseg.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "a.zarr", "b.png", "--min-class-share", "1.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--min-class-share" in err and "[0, 1]" in err and "Traceback" not in err


def test_frame_header_claiming_more_components_than_it_holds():
    """A SOF segment whose component count runs past its end is reported as broken,
    not an IndexError (a truncated scanner tile)."""
    import io as _io

    from PIL import Image

    from napari_slideseg.io.sniff import jpeg_damage

    buf = _io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, "JPEG")
    raw = bytearray(buf.getvalue())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 9] = 200  # number of components: 200, in a segment that holds 3
    assert "frame header is broken" in jpeg_damage(bytes(raw))
