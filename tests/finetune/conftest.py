"""The corrected mosaic the fine-tuning tests share (real GlaS H&E, the bundled gland model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

GLAS = Path(__file__).parents[1] / "data" / "glas"
H, W = 522, 775
REGION = (H, 448, H + 320, W)  # rows 522-842, columns 448-775 of the mosaic
FAR = (0, 0, H, W)  # train_1, top left: untouched


def dice(a, b):
    """Dice of the foreground of two label arrays."""
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def crop_to(a, box):
    """``a`` inside ``(y0, x0, y1, x1)``."""
    return a[box[0] : box[2], box[1] : box[3]]


@pytest.fixture(scope="session")
def corrected(tmp_path_factory):
    """``(slide, prediction labels, corrected labels, truth, prediction folder)`` of the mosaic."""
    import zarr

    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.io.slide import open_slide

    d = tmp_path_factory.mktemp("mosaic")
    names = ["train_1", "train_2", "testA_1"]
    ims = [np.asarray(Image.open(GLAS / f"{n}.png").convert("RGB")) for n in names]
    gts = [(np.asarray(Image.open(GLAS / f"{n}_mask.png")) > 0).astype(np.uint8) for n in names]
    ims.append(ims[0][:, ::-1])
    gts.append(gts[0][:, ::-1])
    img = np.concatenate([np.concatenate(ims[:2], 1), np.concatenate(ims[2:], 1)], 0)
    truth = np.concatenate([np.concatenate(gts[:2], 1), np.concatenate(gts[2:], 1)], 0)
    Image.fromarray(img).save(d / "mosaic.png")
    slide = open_slide(d / "mosaic.png", mpp=0.62)
    predict_slide(slide, "glas-gland", d / "pred.zarr", InferConfig(device="cpu", threads=2))
    labels = zarr.open_group(str(d / "pred.zarr"), mode="r")["labels"][:]
    fixed = labels.copy()
    y0, x0, y1, x1 = REGION
    fixed[y0:y1, x0:x1] = truth[y0:y1, x0:x1]
    return slide, labels, fixed, truth, d / "pred.zarr"
