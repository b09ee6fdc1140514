"""Save every plugin layer with every writer and open it again, as a user does in napari.

The three kinds of layers the plugin makes come from real predictions of
the bundled models on the bundled sample (made once per module): semantic
labels (glas-gland), nucleus types and nucleus instances (hover-nuclei).
Each is saved through ``viewer.layers.save(..., plugin="napari-slideseg")``
and reopened with ``viewer.open(..., plugin="napari-slideseg")``; level-0
pixels, scale and units must come back (GeoJSON: the polygons rasterise to
the layer's pixels). What a format can't hold is refused with an error
notification, never an exception. Then the readers' side: slides by
preference, id maps, NGFF labels, GeoJSON from QuPath.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

#: Level-0 boxes (y0, x0, y1, x1) of the sample the bundled models run on (glands, nuclei).
GLAND_REGION = (1500, 700, 2012, 1212)
NUCLEI_REGION = (2500, 600, 2756, 856)
FORMATS = (".png", ".tif", ".csv", ".zarr", ".geojson")


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """``{"glands": zarr, "nuclei": zarr}``: the bundled models on small regions of the sample."""
    from napari_slideseg._sample_data import sample_slide_path
    from napari_slideseg.infer.engine import InferConfig, predict_slide
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.models.bundled import bundled_models

    out = tmp_path_factory.mktemp("predictions")
    slide = open_slide(sample_slide_path())
    models = bundled_models()
    glands = out / "glands.zarr"
    predict_slide(
        slide,
        [models["glas-gland"]],
        glands,
        InferConfig(region=GLAND_REGION, block=512, device="cpu"),
    )
    nuclei = out / "nuclei.zarr"
    predict_slide(
        slide,
        [models["hover-nuclei"]],
        nuclei,
        InferConfig(region=NUCLEI_REGION, block=256, instance_halo=32, device="cpu"),
    )
    return {"glands": glands, "nuclei": nuclei}


def _plugin_layers(viewer, predictions):
    """The three kinds of plugin layers, added as the Inference widget adds them."""
    from napari_slideseg.layers import prediction_layers

    found = {}
    for key in ("glands", "nuclei"):
        for data, kwargs, kind in prediction_layers(predictions[key]):
            layer = getattr(viewer, f"add_{kind}")(data, **kwargs)
            name = kwargs["name"]
            kind_key = (
                "semantic" if key == "glands" else "types" if "types" in name else "instances"
            )
            found[kind_key] = layer
    return found


def _level0(layer) -> np.ndarray:
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data[:])


def _save(viewer, layer, path):
    viewer.layers.selection.select_only(layer)
    return viewer.layers.save(str(path), selected=True, plugin="napari-slideseg")


def _errors_since(n):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [
        str(r.message)
        for r in notification_manager.records[n:]
        if r.severity == NotificationSeverity.ERROR
    ]


def _rasterise(shapes_layer, shape, values):
    """Pixels (by centre) inside each polygon, painted with ``values[i]``."""
    from skimage.draw import polygon

    out = np.zeros(shape, np.int64)
    for verts, kind, value in zip(shapes_layer.data, shapes_layer.shape_type, values, strict=True):
        assert kind == "polygon"
        if value:
            rr, cc = polygon(verts[:, 0], verts[:, 1], shape)
            out[rr, cc] = value
    return out


def _check_geojson(back, layer, labels, kind):
    """The Shapes layer from a GeoJSON export covers the layer's pixels (holes filled)."""
    assert type(back).__name__ == "Shapes"
    np.testing.assert_allclose(back.scale, layer.scale, rtol=1e-9)
    assert tuple(str(u) for u in back.units) == tuple(str(u) for u in layer.units)
    feats = back.features
    if kind == "instances":
        ids = set(np.unique(labels).tolist()) - {0}
        assert set(feats["id"].astype(np.int64).tolist()) == ids  # one object per nucleus
        got = _rasterise(back, labels.shape, feats["id"].astype(np.int64))
        np.testing.assert_array_equal(got, labels)
        return
    classes = [c for c in np.unique(labels).tolist() if c != 0]
    n_regions = sum(ndimage.label(labels == c)[1] for c in classes)
    assert len(back.data) == n_regions  # one polygon per connected region of a class
    cls = feats["class_index"].astype(np.int64).to_numpy()
    for c in classes:  # class by class: a region may lie in another class's hole
        got = _rasterise(back, labels.shape, (cls == c).astype(np.int64))
        np.testing.assert_array_equal(got > 0, ndimage.binary_fill_holes(labels == c))


def _check_reopened(back, layer, labels, kind, ext):
    assert type(back).__name__ == "Labels", ext
    np.testing.assert_array_equal(_level0(back), labels, err_msg=ext)
    np.testing.assert_allclose(back.scale, layer.scale, rtol=1e-9, err_msg=ext)
    assert tuple(str(u) for u in back.units) == tuple(str(u) for u in layer.units), ext
    meta = back.metadata["slideseg"]
    if kind == "instances":
        assert meta.get("instances"), ext
        if ext in (".csv", ".zarr"):  # the files that keep each nucleus's type
            want = layer.features.set_index("index")["type"].sort_index()
            got = back.features.set_index("index")["type"].sort_index()
            np.testing.assert_array_equal(got.index, want.index)
            np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    else:

        def classes(cm):  # names, colours, background (an RLE CSV doesn't keep the map's name)
            return {k: v for k, v in cm.items() if k != "name"}

        assert classes(meta["classmap"]) == classes(layer.metadata["slideseg"]["classmap"]), ext
        np.testing.assert_allclose(
            back.colormap.map(np.arange(len(meta["classmap"]["names"]))),
            layer.colormap.map(np.arange(len(meta["classmap"]["names"]))),
            err_msg=ext,
        )
    if ext == ".zarr":
        assert back.multiscale and len(back.data) == len(layer.data), ext


@pytest.mark.viewer
@pytest.mark.parametrize("kind", ["semantic", "types", "instances"])
def test_plugin_layer_saves_and_reopens_with_every_writer(
    make_napari_viewer, predictions, tmp_path, kind
):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    layer = _plugin_layers(viewer, predictions)[kind]
    assert layer.multiscale
    labels = _level0(layer)
    assert labels.any()
    for ext in FORMATS:
        out = tmp_path / f"{kind}{ext}"
        if kind == "instances" and ext == ".png":
            continue  # HoVer ids don't fit a 16-bit PNG: see the refusal test
        n = len(notification_manager.records)
        assert _save(viewer, layer, out) == [str(out)], ext
        assert _errors_since(n) == [], ext
        reopened = viewer.open(str(out), plugin="napari-slideseg")
        assert len(reopened) == 1, ext
        if ext == ".geojson":
            _check_geojson(reopened[0], layer, labels, kind)
        else:
            _check_reopened(reopened[0], layer, labels, kind, ext)
        viewer.layers.remove(reopened[0])


@pytest.mark.viewer
def test_instance_png_is_refused_with_a_notification(make_napari_viewer, predictions, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    layer = _plugin_layers(viewer, predictions)["instances"]
    out = tmp_path / "nuclei.png"
    n = len(notification_manager.records)
    with pytest.warns(UserWarning, match="did not return any written paths"):
        assert _save(viewer, layer, out) == []
    (message,) = _errors_since(n)
    assert "nuclei.png" in message and "16-bit PNG" in message
    assert all(alt in message for alt in (".tif", ".csv", ".zarr", ".geojson"))
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.viewer
def test_small_instance_map_saves_as_16bit_png(make_napari_viewer, tmp_path):
    """Ids that fit 16 bits (a dataset's instance map) go to a 16-bit id PNG and come back."""
    from PIL import Image

    ids = np.zeros((120, 90), np.uint16)
    for k in range(1, 40):
        y, x = divmod(k, 7)
        ids[y * 15 : y * 15 + 9, x * 12 : x * 12 + 8] = 1000 + k * 1500  # up to 59500
    viewer = make_napari_viewer()
    layer = viewer.add_labels(ids, name="inst", metadata={"slideseg": {"instances": True}})
    out = tmp_path / "inst.png"
    assert _save(viewer, layer, out) == [str(out)]
    with Image.open(out) as im:
        assert im.mode.startswith("I;16")
    (back,) = viewer.open(str(out), plugin="napari-slideseg")
    assert type(back).__name__ == "Labels" and back.metadata["slideseg"]["instances"]
    np.testing.assert_array_equal(np.asarray(back.data), ids)


# -----------------------------------------------------------------------------
# readers
# -----------------------------------------------------------------------------
@pytest.mark.viewer
def test_open_slide_without_plugin_uses_the_reader_preference(make_napari_viewer, cmu_svs):
    """What napari's File > Open does (plugin=None): the preference, else the reader choice.

    Our reader is a candidate for .svs (napari lists it with its builtins and,
    without a preference, asks); with ``extension2reader["*.svs"]`` set to
    the plugin, the slide opens multiscale in µm. (``viewer.open(path)``
    with napari's default ``plugin="napari"`` always takes napari's builtins.)
    """
    from napari.errors import MultipleReaderError
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    with pytest.raises(MultipleReaderError, match="napari-slideseg"):
        viewer.open(str(cmu_svs), plugin=None)
    settings = get_settings()
    saving, settings._save_on_change = settings._save_on_change, False  # not the user's file
    before = dict(settings.plugins.extension2reader)
    try:
        settings.plugins.extension2reader = {**before, "*.svs": "napari-slideseg"}
        (layer,) = viewer.open(str(cmu_svs), plugin=None)
    finally:
        settings.plugins.extension2reader = before
        settings._save_on_change = saving
    assert layer.source.reader_plugin == "napari-slideseg"
    assert layer.multiscale and layer.rgb
    assert tuple(layer.scale) == pytest.approx((0.499, 0.499))
    assert tuple(str(u) for u in layer.units) == ("micrometer", "micrometer")


def _blob_ids(shape=(200, 260), n=60, dtype=np.uint32, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros(shape, dtype)
    for k in range(n):
        y, x = rng.integers(0, shape[0] - 10), rng.integers(0, shape[1] - 10)
        r = rng.integers(3, 7)
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        ids[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = 70000 + 3 * k if dtype == np.uint32 else k + 1
    return ids


@pytest.mark.viewer
def test_instance_maps_open_as_labels(make_napari_viewer, tmp_path):
    import tifffile
    from PIL import Image

    ids16 = _blob_ids(dtype=np.uint16)
    ids32 = _blob_ids(dtype=np.uint32, seed=1)
    Image.fromarray(ids16).save(tmp_path / "inst16.png")  # Pillow writes a 16-bit grey PNG
    tifffile.imwrite(tmp_path / "inst32.tif", ids32)
    np.save(tmp_path / "inst.npy", ids32)
    viewer = make_napari_viewer()
    for name, want in (("inst16.png", ids16), ("inst32.tif", ids32), ("inst.npy", ids32)):
        (layer,) = viewer.open(str(tmp_path / name), plugin="napari-slideseg")
        assert type(layer).__name__ == "Labels", name
        assert layer.metadata["slideseg"]["instances"], name
        np.testing.assert_array_equal(np.asarray(layer.data), want, err_msg=name)


def test_grey_and_colour_images_are_not_instance_maps(tmp_path):
    """16-bit grey images (noise), 8-bit grey and RGB photos are left alone."""
    import tifffile
    from PIL import Image

    from napari_slideseg import _reader

    rng = np.random.default_rng(3)
    _yy, xx = np.mgrid[:300, :400]
    grey = (2000 + 800 * np.sin(xx / 30) + rng.normal(0, 40, (300, 400))).astype(np.uint16)
    grey[:40] = 0  # a black margin does not make it an id map
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    tifffile.imwrite(tmp_path / "grey16.tif", grey)
    np.save(tmp_path / "grey.npy", grey)
    Image.fromarray((grey >> 4).astype(np.uint8)).save(tmp_path / "grey8.png")
    rgb = rng.integers(0, 255, (300, 400, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    for name in ("grey16.png", "grey16.tif", "grey.npy", "grey8.png", "photo.png"):
        assert _reader.napari_get_mask_reader(str(tmp_path / name)) is None, name
    # a grey TIFF slide stays the slide reader's
    assert _reader.napari_get_reader(str(tmp_path / "grey16.tif")) is not None


def test_id_map_sniff_ignores_what_a_file_is_called(tmp_path):
    from napari_slideseg import _reader

    ids = _blob_ids(dtype=np.uint16)
    np.save(tmp_path / "x.npy", ids.astype(np.int64))
    assert _reader.napari_get_mask_reader(str(tmp_path / "x.npy")) is not None
    np.save(tmp_path / "f.npy", ids.astype(np.float32))
    assert _reader.napari_get_mask_reader(str(tmp_path / "f.npy")) is None


def _old_layout_store(path, labels, cm):
    """OME-Zarr labels as this plugin wrote them before NGFF labels (image-label on the root)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs.update(
        {
            "multiscales": [
                {
                    "version": "0.4",
                    "name": "labels",
                    "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}],
                        }
                    ],
                }
            ],
            "image-label": {"version": "0.4"},
            "slideseg": {"classmap": cm.to_dict()},
        }
    )
    arr = root.create_array(
        "0", shape=labels.shape, dtype=labels.dtype, chunk_key_encoding={"name": "v2"}
    )
    arr[:] = labels


@pytest.mark.viewer
def test_ngff_label_stores_open_as_labels(make_napari_viewer, tmp_path):
    """Our NGFF store (root and labels/ group), an old-layout store; a slide zarr stays an Image."""
    from napari_slideseg.io.export import write_ome_zarr_labels
    from napari_slideseg.io.palette import ClassMap

    cm = ClassMap.preset("wsi3")
    labels = np.random.default_rng(2).integers(0, 3, (1500, 700)).astype(np.uint8)
    write_ome_zarr_labels(tmp_path / "new.ome.zarr", labels, classmap=cm, name="tissue", chunk=256)
    _old_layout_store(tmp_path / "old.zarr", labels, cm)
    viewer = make_napari_viewer()
    (new,) = viewer.open(str(tmp_path / "new.ome.zarr"), plugin="napari-slideseg")
    assert type(new).__name__ == "Labels" and new.multiscale
    assert [tuple(s) for s in new.level_shapes] == [(1500, 700), (750, 350)]
    np.testing.assert_array_equal(np.asarray(new.data[0]), labels)
    assert new.metadata["slideseg"]["classmap"] == cm.to_dict()
    (old,) = viewer.open(str(tmp_path / "old.zarr"), plugin="napari-slideseg")
    assert type(old).__name__ == "Labels"
    np.testing.assert_array_equal(np.asarray(old.data), labels)
    # the labels/ group itself (what napari-ome-zarr is pointed at) opens too
    attrs = json.loads((tmp_path / "new.ome.zarr" / "labels" / ".zattrs").read_text())
    assert attrs == {"labels": ["tissue"]}
    meta = json.loads((tmp_path / "new.ome.zarr" / "labels" / "tissue" / ".zattrs").read_text())
    assert meta["image-label"]["colors"][1] == {"label-value": 1, "rgba": [255, 255, 0, 255]}
    assert meta["multiscales"][0]["datasets"][1]["path"] == "1"


def test_slide_zarr_is_still_a_slide(tmp_path):
    import dask.array as da

    from napari_slideseg import _reader
    from napari_slideseg.io.export import write_ome_zarr_labels
    from napari_slideseg.io.pyramid import build_pyramid_cache
    from napari_slideseg.progress import drain

    rgb = np.random.default_rng(0).integers(0, 255, (600, 500, 3)).astype(np.uint8)
    drain(
        build_pyramid_cache(da.from_array(rgb), tmp_path / "s.ome.zarr", name="s", mpp=(0.5, 0.5))
    )
    assert _reader.napari_get_reader(str(tmp_path / "s.ome.zarr")) is _reader.read_slide
    assert _reader.napari_get_mask_reader(str(tmp_path / "s.ome.zarr")) is None
    write_ome_zarr_labels(tmp_path / "l.zarr", np.zeros((10, 10), np.uint8))
    assert _reader.napari_get_reader(str(tmp_path / "l.zarr")) is None
    assert _reader.napari_get_mask_reader(str(tmp_path / "l.zarr")) is _reader.read_mask


def _qupath_features():
    """Features as QuPath exports them (array form): a class colour as a packed int, measurements."""
    return [
        {
            "type": "Feature",
            "id": "a1",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[10, 20], [40, 20], [40, 50], [10, 50], [10, 20]]],
            },
            "properties": {
                "objectType": "annotation",
                "classification": {"name": "Tumor", "colorRGB": -3670016},  # (200, 0, 0)
                "measurements": {"Area px": 900.0},
            },
        },
        {
            "type": "Feature",
            "id": "d1",
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[60, 60], [70, 60], [70, 70], [60, 70], [60, 60]]],
                    [
                        [[80, 80], [95, 80], [95, 95], [80, 95], [80, 80]],
                        [[84, 84], [88, 84], [88, 88], [84, 88], [84, 84]],  # a hole
                    ],
                ],
            },
            "properties": {
                "objectType": "detection",
                "classification": {"name": "Lymphocyte", "color": [0, 100, 255]},
            },
        },
    ]


@pytest.mark.viewer
def test_qupath_geojson_opens_as_shapes(make_napari_viewer, tmp_path):
    import gzip

    feats = _qupath_features()
    (tmp_path / "qupath.geojson").write_text(json.dumps(feats))
    with gzip.open(tmp_path / "qupath.geojson.gz", "wt") as fh:
        json.dump({"type": "FeatureCollection", "features": feats}, fh)
    (tmp_path / "other.json").write_text(json.dumps({"name": "not geojson", "type": "config"}))
    from napari_slideseg import _reader

    assert _reader.napari_get_geojson_reader(str(tmp_path / "other.json")) is None
    viewer = make_napari_viewer()
    for name in ("qupath.geojson", "qupath.geojson.gz"):
        (layer,) = viewer.open(str(tmp_path / name), plugin="napari-slideseg")
        assert type(layer).__name__ == "Shapes"
        assert layer.name == "qupath"
        assert len(layer.data) == 3  # the polygon and the MultiPolygon's two parts
        assert list(layer.features["class_name"]) == ["Tumor", "Lymphocyte", "Lymphocyte"]
        assert list(layer.features["object_type"]) == ["annotation", "detection", "detection"]
        assert layer.features["Area px"][0] == 900.0
        np.testing.assert_allclose(layer.edge_color[0][:3], np.array([200, 0, 0]) / 255)
        np.testing.assert_allclose(layer.edge_color[1][:3], np.array([0, 100, 255]) / 255)
        # vertices on pixel edges: (x, y) -> (y - 0.5, x - 0.5), so the 30 x 30 px square
        # covers pixels 20..49 x 10..39 by their centres
        np.testing.assert_allclose(layer.data[0].min(0), (19.5, 9.5))
        np.testing.assert_allclose(layer.data[0].max(0), (49.5, 39.5))
        assert layer.metadata["slideseg"]["geojson"]["holes_left_out"] == 1
        viewer.layers.remove(layer)
