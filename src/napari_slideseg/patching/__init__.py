"""Patch extraction from slides and masks on one shared grid.

The grid is computed once, in the coordinates of the chosen level, and the
same window function cuts the image and the mask, so a mask patch always
lines up with its image patch pixel for pixel, in both grid modes:

``valid``
    Only windows that lie fully inside the image (or region):
    ``n = floor((L - size) / stride) + 1`` per axis, 0 if ``L < size``.
``pad``
    Windows cover the whole extent; the last ones hang over the edge and
    are padded (``reflect`` or ``constant``):
    ``n = ceil(max(L - size, 0) / stride) + 1`` per axis.

Extraction walks the slide in blocks of patches: each block region is read
once (one dask compute over native tiles), patches are cut from it, filtered
and written, while the next block is read on a thread. Memory is bounded by
the block, never by the slide.

Filters, applied in this order and counted in the summary:

1. ``outside_region``: window centre outside the box / polygons.
2. ``low_tissue``: tissue fraction under ``min_tissue``, from a tissue mask
   computed once on a low-resolution level (Otsu threshold on HSV saturation,
   very dark pixels excluded; see :func:`tissue_mask`).
3. ``black``: fraction of near-black pixels (all channels < 30, scanner
   artefacts, pen, out-of-scan areas) over ``max_black``.
4. ``white``: fraction of near-white pixels (all channels > 220, glass) over
   ``max_white``.
5. ``unannotated``: with ``unannotated="ignore"``, the mask holds only
   the ignore value (255: no annotation there, nothing to learn).
6. ``background_only``: no foreground class in the mask; with
   ``keep_background`` in [0, 1] that fraction of them is kept (random,
   seeded), for class balancing.

Modules
-------
``config``    :class:`PatchConfig`, :class:`PatchError`, the fixed levels.
``grid``      window corners (:func:`grid_starts`, :func:`patch_grid`) and blocks.
``window``    reading padded and resampled windows of images and masks.
``tissue``    the low-resolution tissue mask (Otsu on saturation).
``plan``      which windows to take: region, polygons, tissue (:func:`plan_patches`).
``masks``     masks aligned to a level; GeoJSON annotation masks; instance-map patches.
``iterate``   cutting the plan block by block with the pixel filters (:func:`iter_patches`).
``writers``   :class:`PatchWriter` with PNG and zarr implementations.
``png_encode`` :func:`encode_png`: fast lossless PNG bytes of a patch.
``manifest``  ``manifest.csv``: classes, columns, :func:`read_manifest`.
``folder``    reusing, checking and clearing a run's folder.
``inputs``    checking the slide, the mask (instances, annotations) and the choices.
``extract``   :func:`extract_patches` and :func:`extract_patches_steps`.
"""

from collections.abc import Sequence

from .config import (
    BLACK_LEVEL,
    GRID_MODES,
    OVERWRITE,
    PAD_MODES,
    WHITE_LEVEL,
    PatchConfig,
    PatchError,
)
from .extract import PatchSetResult, extract_patches, extract_patches_steps
from .grid import grid_starts, patch_grid
from .iterate import Patch, iter_patches
from .manifest import read_manifest
from .masks import align_mask, annotation_mask, check_mask_shape
from .plan import PatchPlan, choose_level, patch_resolution, plan_patches, points_in_polygon
from .png_encode import encode_png
from .tissue import otsu_threshold, slide_tissue_mask, tissue_mask
from .window import read_patch_window, read_window, read_window_rect, read_window_zoomed
from .writers import PatchWriter, PngPatchWriter, ZarrPatchWriter

__all__: Sequence[str] = [
    "BLACK_LEVEL",
    "GRID_MODES",
    "OVERWRITE",
    "PAD_MODES",
    "WHITE_LEVEL",
    "Patch",
    "PatchConfig",
    "PatchError",
    "PatchPlan",
    "PatchSetResult",
    "PatchWriter",
    "PngPatchWriter",
    "ZarrPatchWriter",
    "align_mask",
    "annotation_mask",
    "check_mask_shape",
    "choose_level",
    "encode_png",
    "extract_patches",
    "extract_patches_steps",
    "grid_starts",
    "iter_patches",
    "otsu_threshold",
    "patch_grid",
    "patch_resolution",
    "plan_patches",
    "points_in_polygon",
    "read_manifest",
    "read_patch_window",
    "read_window",
    "read_window_rect",
    "read_window_zoomed",
    "slide_tissue_mask",
    "tissue_mask",
]
