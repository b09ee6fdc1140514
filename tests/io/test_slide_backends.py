"""The slide backends: tifffile, OpenSlide and wsidicom read the same pixels; vendor formats.

Real files only (``tests/data/wsi_formats``, SOURCE.md beside each): a
Hamamatsu NDPI, a DICOM WSI made from CMU-1-Small-Region.svs, a real
low-resolution H&E DICOM, a tiny synthetic DICOM, and MIRAX / VMS
detection stubs (OpenSlide detects them, then cannot open them).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_slideseg.cli import main
from napari_slideseg.io.errors import SlideError
from napari_slideseg.io.slide import open_slide

DATA = Path(__file__).parents[1] / "data"
FORMATS = DATA / "wsi_formats"
NDPI = FORMATS / "ndpi" / "test3-TRITC 2 (560).ndpi"
CMU_SVS = DATA / "wsi" / "CMU-1-Small-Region.svs"
TCGA_SVS = DATA / "wsi" / "TCGA-CR-7395-01A-01-TS1.svs"
CMU_DICOM = FORMATS / "dicom" / "napari-wsi_CMU-1-Small-Region"
CAMELYON = FORMATS / "dicom" / "ez-wsi_camelyon-lowres" / "multiframe_camelyon_challenge_image.dcm"
BOXES = FORMATS / "dicom" / "synthetic_openslide-python_boxes"
STUBS = FORMATS / "detection_stubs"


def _level(slide, i=0):
    return np.asarray(slide.levels[i].compute(scheduler="threads"))


@pytest.mark.parametrize(
    ("path", "backends"),
    [
        (NDPI, ("tifffile", "openslide")),
        (CMU_SVS, ("tifffile", "openslide")),
        (TCGA_SVS, ("tifffile", "openslide")),
        (CMU_DICOM, ("wsidicom", "openslide")),
        (CAMELYON, ("wsidicom", "openslide")),
        (CAMELYON.parent, ("wsidicom", "openslide")),
        (BOXES, ("wsidicom", "openslide")),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "-".join(v),
)
def test_every_backend_reads_the_same_pixels_and_mpp(path, backends):
    a, b = (open_slide(path, backend=name) for name in backends)
    assert (a.backend, b.backend) == backends
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    np.testing.assert_array_equal(_level(a), _level(b))
    if a.mpp is None:
        assert b.mpp is None
    else:
        np.testing.assert_allclose(a.mpp, b.mpp, rtol=1e-9)
    # every level both list at the same size (and integer downsample) is equal too
    for i in range(1, min(a.n_levels, b.n_levels)):
        if a.levels[i].shape == b.levels[i].shape and float(a.downsamples[i]).is_integer():
            np.testing.assert_array_equal(_level(a, i), _level(b, i))


def test_the_cmu1_dicom_is_the_svs_within_the_jpeg_re_encoding():
    """wsidicomizer re-encoded the SVS's JPEG tiles: the documented tolerance is JPEG noise.

    Mean absolute difference 2.89 grey levels, correlation 0.996 (the same
    pixels re-compressed); both backends read the DICOM identically (above).
    """
    svs = open_slide(CMU_SVS)
    dicom = open_slide(CMU_DICOM)
    assert (svs.backend, dicom.backend) == ("tifffile", "wsidicom")
    a, b = _level(svs).astype(float), _level(dicom).astype(float)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 3.5
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    assert dicom.mpp == pytest.approx(svs.mpp)
    # the DICOM's label is the SVS's label (never shown by the reader: asked for by name)
    assert set(dicom.associated_images) == {"label", "macro"}
    assert dicom.associated_images["label"] == svs.associated_images["label"] == (387, 463)
    assert dicom.associated_image("label").shape == (463, 387, 3)


def test_real_camelyon_dicom_mpp_keeps_y_and_x_apart():
    slide = open_slide(CAMELYON)
    assert slide.mpp == pytest.approx((28.968, 28.969))  # (y, x): rows 28.968 µm
    assert slide.shape == (700, 1152, 3)
    assert _level(slide).std() > 10  # tissue, not a blank frame


@pytest.mark.parametrize(
    ("path", "backend", "why"),
    [
        (NDPI, "openslide", "hamamatsu"),
        (CMU_SVS, "tifffile", "TIFF"),
        (CMU_DICOM, "wsidicom", "folder of DICOM files"),
        (CAMELYON, "wsidicom", "DICOM file"),
    ],
    ids=["ndpi", "svs", "dicom-folder", "dicom-file"],
)
def test_the_default_backend_is_chosen_by_content_and_recorded(path, backend, why):
    from napari_slideseg.layers import slide_layer

    slide = open_slide(path)
    assert slide.backend == backend
    assert why in slide.metadata["backend_reason"]
    _, kwargs, _ = slide_layer(slide)
    assert kwargs["metadata"]["slideseg"]["backend"] == backend
    assert kwargs["metadata"]["file_metadata"]["backend_reason"] == slide.metadata["backend_reason"]


def test_a_renamed_ndpi_is_still_read_by_openslide(tmp_path):
    """Content, not the name: an NDPI called .tif is an NDPI."""
    copy = tmp_path / "scan.tif"
    copy.write_bytes(NDPI.read_bytes())
    assert open_slide(copy).backend == "openslide"


def test_ndpi_chunks_are_tile_sized_not_restart_strips():
    by_openslide = open_slide(NDPI)
    by_tifffile = open_slide(NDPI, backend="tifffile")
    assert by_openslide.levels[0].chunksize[:2] == (512, 512)
    assert by_openslide.n_levels == 7 and by_openslide.metadata["objective_power"] == 40
    assert by_openslide.metadata["vendor"] == "hamamatsu"
    # tifffile: 8-row restart strips grouped (4864 / 512 -> 10 chunks, it was 608)
    assert by_tifffile.levels[0].numblocks[0] == 10
    assert by_tifffile.levels[0].chunksize[0] == 512


def test_openslide_composites_transparent_pixels_on_the_background():
    from napari_slideseg.io.slide.regions import composite_rgba, parse_colour

    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [200, 100, 0, 128]]], np.uint8)
    out = composite_rgba(rgba, parse_colour("F0E0D0"))
    assert out.tolist() == [[[10, 20, 30], [240, 224, 208], [220, 162, 104]]]
    assert parse_colour(None) == (255, 255, 255) and parse_colour("#zz0000") == (255, 255, 255)


@pytest.mark.parametrize(
    ("rel", "vendor", "message"),
    [
        (
            "Mirax2-Fluorescence-1.mrxs",
            "3DHISTECH MIRAX",
            "Index.dat doesn't have expected version",
        ),
        ("Mirax2-Fluorescence-1", "3DHISTECH MIRAX", "Index.dat doesn't have expected version"),
        ("Hamamatsu-VMS", "Hamamatsu", "Can't validate JPEG 0"),
    ],
    ids=["mrxs-file", "mirax-data-folder", "vms-folder"],
)
def test_vendor_stubs_are_detected_then_refused_with_openslides_message(rel, vendor, message):
    with pytest.raises(SlideError) as err:
        open_slide(STUBS / rel)
    text = str(err.value)
    assert str(STUBS / rel) in text and vendor in text
    assert "OpenSlide could not open it" in text and message in text


def test_a_mrxs_is_never_opened_as_its_jpeg_preview():
    """The .mrxs file starts like a JPEG; forcing the raster reader is refused, not shown."""
    with pytest.raises(SlideError, match="backend 'raster' reads PNG and JPEG") as err:
        open_slide(STUBS / "Mirax2-Fluorescence-1.mrxs", backend="raster")
    assert "Mirax2-Fluorescence-1.mrxs" in str(err.value)


@pytest.mark.parametrize(
    ("path", "backend", "words"),
    [
        (CMU_SVS, "wsidicom", "is not a DICOM whole-slide image wsidicom can open"),
        (CMU_DICOM, "tifffile", "backend 'tifffile' reads TIFF files"),
        (NDPI, "zarr", "backend 'zarr' reads zarr folders"),
    ],
)
def test_a_forced_backend_that_cannot_read_the_file_says_so(path, backend, words):
    with pytest.raises(SlideError, match=words) as err:
        open_slide(path, backend=backend)
    assert str(path) in str(err.value)


def test_wrong_backend_values_name_the_option(capsys):
    with pytest.raises(ValueError, match="backend must be one of tifffile, openslide"):
        open_slide(CMU_SVS, backend="OpenSlide ")
    with pytest.raises(ValueError, match="focal_plane / optical_path"):
        open_slide(CMU_SVS, focal_plane=0.0)
    with pytest.raises(SystemExit) as code:
        main(["info", str(CMU_SVS), "--backend", "libvips"])
    assert code.value.code == 2
    assert "argument --backend: invalid choice: 'libvips'" in capsys.readouterr().err


def test_several_focal_planes_or_paths_are_refused_unless_chosen():
    from napari_slideseg.io.slide.dicom import _choose

    with pytest.raises(
        SlideError, match=r"has 2 focal planes \(0.0, 1.5\); choose one with focal_plane="
    ):
        _choose("s", "focal plane", [0.0, 1.5], None, "focal_plane")
    with pytest.raises(SlideError, match=r"focal_plane=3.0 is not one of its focal planes"):
        _choose("s", "focal plane", [0.0, 1.5], 3.0, "focal_plane")
    assert _choose("s", "focal plane", [0.0, 1.5], 1.5, "focal_plane") == 1.5
    assert _choose("s", "optical path", ["0"], None, "optical_path") == "0"
    slide = open_slide(CMU_DICOM, optical_path="0", focal_plane=0.0)  # the only ones: accepted
    assert slide.metadata["optical_path"] == "0"
    with pytest.raises(SlideError, match="optical_path='2' is not one of its optical paths"):
        open_slide(CMU_DICOM, optical_path="2")


def test_a_dicom_wsidicom_refuses_falls_back_to_openslide_with_a_warning():
    """A lone thumbnail instance: wsidicom finds no levels; OpenSlide reads the series."""
    with pytest.warns(UserWarning, match="wsidicom could not open it .* read with OpenSlide"):
        slide = open_slide(BOXES / "boxes_1.dcm")
    assert slide.backend == "openslide" and slide.shape[:2] == (16, 16)
    with pytest.raises(SlideError, match="wsidicom can open"):
        open_slide(BOXES / "boxes_1.dcm", backend="wsidicom")  # forced: the error itself
    with pytest.raises(SlideError, match="wsidicom can open"):
        open_slide(BOXES / "boxes_1.dcm", focal_plane=0.0)  # a plane OpenSlide cannot honour


def test_associated_images_are_listed_not_read_and_unknown_names_are_refused():
    slide = open_slide(CMU_SVS, backend="openslide")
    assert set(slide.associated_images) == {"label", "macro", "thumbnail"}
    assert slide.info()["associated_images"]["macro"] == [1280, 431]
    by_tifffile = open_slide(CMU_SVS)
    np.testing.assert_array_equal(
        slide.associated_image("thumbnail"), by_tifffile.associated_image("thumbnail")
    )
    with pytest.raises(SlideError, match=r"has no associated image 'slide label'.*label, macro"):
        slide.associated_image("slide label")


def test_parallel_reads_share_a_bounded_pool_of_handles():
    slide = open_slide(NDPI)
    whole = _level(slide)
    results = {}

    def read(i):
        y, x = 300 * i, 250 * i
        results[i] = slide.read_region(0, y, x, 700, 600)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in results.items():
        np.testing.assert_array_equal(got, whole[300 * i : 300 * i + 700, 250 * i : 250 * i + 600])


def test_the_handle_pool_opens_at_most_its_size_and_lends_one_per_thread():
    from napari_slideseg.io.slide.regions import HandlePool

    opened, busy, clash = [], set(), []
    lock = threading.Lock()

    def opener():
        with lock:
            opened.append(object())
            return opened[-1]

    pool = HandlePool(opener, size=3)
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(20):
            with pool.handle() as h:
                with lock:
                    if id(h) in busy:
                        clash.append(h)
                    busy.add(id(h))
                with lock:
                    busy.discard(id(h))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(opened) <= 3 and pool.opened == len(opened)
    assert not clash  # no handle was lent to two threads at once


def test_slides_pickle_and_reopen_their_handles(tmp_path):
    """dask.distributed ships level arrays to workers: the pool reopens its handles there."""
    import pickle

    for path in (NDPI, CMU_DICOM):
        slide = open_slide(path)
        arr = pickle.loads(pickle.dumps(slide.levels[0]))
        np.testing.assert_array_equal(
            np.asarray(arr[100:300, 200:400].compute()), slide.read_region(0, 100, 200, 200, 200)
        )


def test_info_shows_backend_vendor_and_associated_images(capsys):
    assert main(["info", str(NDPI)]) == 0
    out = capsys.readouterr().out
    assert "backend      openslide (hamamatsu)" in out
    assert "vendor       Hamamatsu" in out and "objective    40x" in out
    assert "associated   macro 1188 x 406 (not shown" in out
    assert main(["info", str(CMU_DICOM), "--properties"]) == 0
    out = capsys.readouterr().out
    assert "backend      wsidicom (dicom)" in out and "label 387 x 463" in out
    assert main(["info", str(NDPI), "--properties"]) == 0
    assert "openslide.objective-power = 40" in capsys.readouterr().out


def test_info_refuses_the_stubs_naming_the_file(capsys):
    assert main(["info", str(STUBS / "Hamamatsu-VMS")]) == 2
    err = capsys.readouterr().err
    assert "Hamamatsu-VMS" in err and "OpenSlide could not open it" in err


def test_predict_on_a_dicom_folder_matches_predict_on_its_svs(tmp_path):
    """The user path: ``slideseg predict`` on a DICOM folder.

    Both backends of the DICOM give the same labels; the SVS it was made
    from (re-encoded JPEG, see above) gives nearly the same.
    """
    import zarr

    outs = {}
    runs = (("svs", CMU_SVS, "auto"), ("dicom", CMU_DICOM, "auto"), ("os", CMU_DICOM, "openslide"))
    for name, src, backend in runs:
        out = tmp_path / f"{name}.zarr"
        argv = ["predict", str(src), "--model", "glas-gland", "--out", str(out)]
        argv += ["--region", "0", "0", "512", "512", "--device", "cpu", "--threads", "2"]
        assert main([*argv, "--backend", backend, "--quiet"]) == 0
        outs[name] = zarr.open_group(str(out), mode="r")["labels"][:512, :512]
    assert outs["svs"].any() and not outs["svs"].all()
    np.testing.assert_array_equal(outs["dicom"], outs["os"])
    assert (outs["dicom"] == outs["svs"]).mean() > 0.97


def test_the_reader_claims_vendor_files_and_folders():
    from napari_slideseg._reader_choice import slide_claim

    for target in (
        CMU_DICOM,
        CAMELYON,
        STUBS / "Mirax2-Fluorescence-1.mrxs",
        STUBS / "Mirax2-Fluorescence-1",
        STUBS / "Hamamatsu-VMS",
        NDPI,
    ):
        assert slide_claim(str(target)) == "slide", target
    assert slide_claim(str(FORMATS / "ndpi")) is None  # a folder of slides is not one slide


def test_npe2_reads_a_dicom_folder_as_a_multiscale_image_in_micrometres():
    import npe2

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warnings from pydicom reach the user
        layers = npe2.read([str(CMU_DICOM)], stack=False, plugin_name="napari-slideseg")
    ((data, kwargs, kind),) = layers
    assert kind == "image" and kwargs["multiscale"] and kwargs["rgb"]
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))
    assert kwargs["units"] == ("micrometer", "micrometer")
    by_openslide = _level(open_slide(CMU_DICOM, backend="openslide"))
    np.testing.assert_array_equal(np.asarray(data[0][:64, :64]), by_openslide[:64, :64])


def test_the_stub_folders_notify_in_napari_instead_of_raising(monkeypatch):
    from napari_slideseg import _reader

    seen = []
    monkeypatch.setattr(_reader, "_notify_error", seen.append)
    assert _reader.read_slide(str(STUBS / "Mirax2-Fluorescence-1")) == [(None,)]
    assert "OpenSlide could not open it" in seen[0] and "Mirax2-Fluorescence-1" in seen[0]


def test_workers_and_widgets_reopen_a_slide_with_the_backend_it_was_opened_with():
    """A forced backend is not lost when a cluster worker or a dock widget reopens by path."""
    from types import SimpleNamespace

    from napari_slideseg._widgets._common import layer_to_slide
    from napari_slideseg.infer.runners import _worker_state
    from napari_slideseg.layers import slide_layer

    slide, models, _ = _worker_state(str(NDPI), (), "cpu", "tifffile")
    assert slide.backend == "tifffile" and models == []
    _, kwargs, _ = slide_layer(open_slide(NDPI, backend="tifffile"))
    layer = SimpleNamespace(
        metadata=kwargs["metadata"], units=kwargs["units"], scale=kwargs["scale"]
    )
    assert layer_to_slide(layer).backend == "tifffile"
    _, kwargs, _ = slide_layer(open_slide(NDPI))
    layer = SimpleNamespace(
        metadata=kwargs["metadata"], units=kwargs["units"], scale=kwargs["scale"]
    )
    assert layer_to_slide(layer).backend == "openslide"
