"""HoVer targets and post-processing on real instance maps (MoNuSeg, CoNSeP)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_slideseg.instances.postproc import HoverParams, hover_instances, instance_table
from napari_slideseg.instances.targets import (
    hover_target_array,
    hover_targets,
    hv_maps,
    relabel_sequential,
    split_disconnected,
)
from napari_slideseg.metrics import panoptic_quality


def _monuseg(data_dir):
    return {
        p.name.split("_")[0]: np.asarray(Image.open(p)).astype(np.int32)
        for p in sorted((data_dir / "monuseg" / "inst_maps").glob("*.png"))
    }


def _consep(data_dir):
    return {
        p.stem: relabel_sequential(np.load(p))
        for p in sorted((data_dir / "consep_patches" / "inst").glob("*.npy"))
    }


def test_hv_maps_range_and_centre():
    inst = np.zeros((40, 60), np.int32)
    inst[5:16, 10:31] = 1  # 11 x 21 box: centre (10, 20)
    inst[25:36, 40:51] = 7
    hv = hv_maps(inst)
    assert hv.shape == (2, 40, 60) and hv.dtype == np.float32
    assert hv[0, 10, 10] == -1 and hv[0, 10, 30] == 1 and hv[0, 10, 20] == 0
    assert hv[1, 5, 20] == -1 and hv[1, 15, 20] == 1
    assert (hv[:, inst == 0] == 0).all()
    assert hv[0][inst == 2].size == 0 and np.abs(hv).max() == 1


def test_split_disconnected_gives_pieces_their_own_ids():
    inst = np.zeros((10, 10), np.int32)
    inst[1:3, 1:3] = 5
    inst[6:8, 6:8] = 5  # the same id twice (e.g. a reflected border)
    out = split_disconnected(inst)
    assert len(np.unique(out)) == 3
    t = hover_target_array(np.stack([inst, np.where(inst > 0, 2, 0)], -1).astype(np.uint16))
    assert t.shape == (4, 10, 10) and t[3].max() == 2 and t[1, 1, 1] == -1 and t[1, 6, 6] == -1


def test_instance_types_majority(data_dir):
    d = data_dir / "consep_patches"
    inst = np.load(d / "inst" / "test_4_013.npy")
    tmap = np.asarray(Image.open(d / "type_map" / "test_4_013.png"))
    t = hover_targets(inst, tmap)
    from scipy.io import loadmat

    mat = loadmat(d / "type_mat" / "test_4_013.mat")
    ids = np.unique(inst)[1:]
    seq = relabel_sequential(inst)
    for k in range(len(ids)):
        px = t["nc"][seq == k + 1]
        assert (px == mat["inst_type"][k, 0]).all()


@pytest.mark.parametrize("dataset", ["monuseg", "consep"])
def test_ground_truth_maps_recover_instances(data_dir, dataset):
    """GT instances -> targets -> post-processing -> the same instances (PQ)."""
    maps = _monuseg(data_dir) if dataset == "monuseg" else _consep(data_dir)
    # Reference parameters for MoNuSeg (40x); CoNSeP's small, crowded nuclei need
    # the small-nucleus preset (11 px Sobel, 3 px opening); the reference gives 0.93.
    params = HoverParams() if dataset == "monuseg" else HoverParams.small_nuclei()
    pqs = []
    for inst in maps.values():
        t = hover_targets(inst)
        out, table = hover_instances(t["np"].astype(np.float32), t["hv"], params=params)
        assert out.max() == len(table["id"])
        pqs.append(panoptic_quality(inst, out)["pq"])
    print(dataset, np.round(pqs, 4))
    assert np.mean(pqs) >= 0.95 and min(pqs) >= 0.9


def test_fixed_normalisation_is_tile_independent(data_dir):
    """A nucleus's result does not depend on the window it is computed in."""
    inst = _monuseg(data_dir)["TCGA-KB-A93J-01A-01-TS1"]
    t = hover_targets(inst)
    npm = t["np"].astype(np.float32)
    hv = t["hv"].copy()
    hv[:, :200, :200] *= 0.5  # a weak region elsewhere changes min/max of the whole tile
    whole, _ = hover_instances(npm, hv)
    crop, _ = hover_instances(npm[500:, 500:], hv[:, 500:, 500:])
    a = whole[560:940, 560:940]
    b = crop[60:440, 60:440]
    # same partition in the interior of the crop
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    assert pairs.shape[1] == len(np.unique(a))
    tile_whole, _ = hover_instances(npm, hv, params=HoverParams(normalize="tile"))
    tile_crop, _ = hover_instances(
        npm[500:, 500:], hv[:, 500:, 500:], params=HoverParams(normalize="tile")
    )
    tp = np.unique(
        np.stack([tile_whole[560:940, 560:940].ravel(), tile_crop[60:440, 60:440].ravel()]), axis=1
    )
    assert tp.shape[1] >= pairs.shape[1]  # (min-max: may split differently)


def test_types_from_mean_probabilities_and_table():
    """Type = argmax over non-background types of the mean NC probabilities; never 0."""
    inst = np.zeros((20, 30), np.int32)
    inst[2:8, 2:8] = 1  # 36 px
    inst[10:18, 10:18] = 2  # 64 px
    inst[2:6, 20:30] = 3  # 40 px
    nc = np.zeros((3, 20, 30), np.float32)
    nc[0] = 1.0
    nc[:, 2:8, 2:8] = [[[0]], [[0.2]], [[0.8]]]
    nc[:, 2:4, 2:8] = [[[0]], [[0.9]], [[0.1]]]  # 12 of 36 pixels
    # background-dominated everywhere: once type 0, now its best non-background type
    nc[:, 10:18, 10:18] = [[[0.9]], [[0.04]], [[0.06]]]
    # 30 of 40 pixels lean to type 2 but carry little type evidence; 10 are confidently type 1
    nc[:, 2:6, 20:30] = [[[0.9]], [[0.04]], [[0.06]]]
    nc[:, 2:3, 20:30] = [[[0.1]], [[0.85]], [[0.05]]]
    t = instance_table(inst, nc)
    assert list(t["id"]) == [1, 2, 3]
    mean1 = np.array([24 * 0.2 + 12 * 0.9, 24 * 0.8 + 12 * 0.1]) / 36
    assert t["type"][0] == 2 and t["type_prob"][0] == pytest.approx(mean1[1] / mean1.sum())
    assert t["type"][1] == 2 and t["type_prob"][1] == pytest.approx(0.06 / 0.1)
    mean3 = np.array([10 * 0.85 + 30 * 0.04, 10 * 0.05 + 30 * 0.06]) / 40
    assert t["type"][2] == 1 and t["type_prob"][2] == pytest.approx(mean3[0] / mean3.sum())
    assert t["area"][1] == 64
    assert t["centroid_y"][1] == pytest.approx(13.5) and t["bbox_x1"][1] == 18
    # no type evidence at all: the first type, uniform probability (still not background)
    bare = instance_table(
        inst, np.stack([np.ones((20, 30)), np.zeros((20, 30)), np.zeros((20, 30))])
    )
    assert list(bare["type"]) == [1, 1, 1] and bare["type_prob"] == pytest.approx(0.5)
    # no NC map: untyped (the block labels them "nucleus")
    assert list(instance_table(inst)["type"]) == [0, 0, 0]


def test_params_scale_with_resolution():
    p = HoverParams(mpp=0.5).scaled()
    assert p.sobel_ksize == 11 and p.opening_size == 3 and p.min_size == 2
    assert HoverParams(mpp=0.25).scaled().sobel_ksize == 21
    with pytest.raises(ValueError):
        HoverParams(normalize="global")
