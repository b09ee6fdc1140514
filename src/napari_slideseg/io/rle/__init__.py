"""Run-length encoded (RLE) masks: Kaggle strings, COCO RLE and RLE CSV files.

Conventions
-----------
A *Kaggle RLE* is a string of space-separated ``start length`` pairs over the
flattened mask: ``"3 2 10 4"`` marks pixels 3-4 and 10-13. Two things are not
written in the string and differ between competitions, so every function here
takes them explicitly and never guesses:

``order``
    How the 2D mask is flattened.

    * ``"col"``: column-major (Fortran) order, pixel ``k = x * height + y``;
      numbered top to bottom, then left to right. Used by the 2018 Data Science
      Bowl, Airbus Ship Detection (``ImageId,EncodedPixels``, one row per ship)
      and HuBMAP "Hacking the Kidney" (``id,predicted``).
    * ``"row"``: row-major (C) order, pixel ``k = y * width + x``; numbered left
      to right, then top to bottom. Used by Carvana Image Masking
      (``img,rle_mask``) and Sartorius Cell Instance Segmentation
      (``id,annotation``, one row per cell).

    :func:`guess_order` compares both orders with a reference mask when a
    file's order is unknown; the decoders never call it.
``base``
    Index of the first pixel: ``1`` (the Kaggle convention, the default) or
    ``0``.

Runs must be sorted and must not overlap; a run's length is positive; an empty
string (or ``NaN`` / ``None`` from a data frame) is an empty mask.

*COCO RLE* (pycocotools, ``maskApi.c``) always uses column-major order and
stores alternating run lengths that ALWAYS start with a background run, which
is ``0`` when the first pixel is foreground: a 2 x 3 mask of ones is
``{"size": [2, 3], "counts": [0, 6]}``. Its compressed form packs each count
(after the first two, as the difference to the count two places earlier) into
6-bit ASCII characters, 5 data bits each (:func:`coco_compress`,
:func:`coco_decompress`). The COCO functions check their input, then leave
encoding, decoding, compressing and areas to :mod:`pycocotools.mask`.

CSV layouts
-----------
* Kaggle submission: two columns ``id,rle`` (names configurable, e.g. HuBMAP's
  ``id,predicted``); order and shape are not recorded.
* Semantic (:func:`write_rle_csv`): one row per class,
  ``image_id,class_index,class_name,height,width,order,base,rle``.
* Instance: one row per object,
  ``image_id,instance_id,class_index,class_name,height,width,order,base,rle``.

Files we write record order, base and shape in every row, so
:func:`read_rle_csv` reads them without arguments. When the mask's place on
its slide is known (a prediction made on pyramid level ``L``), every row
also states ``level``, the slide's level-0 ``slide_height``/``slide_width``
and the mask pixels' ``mpp_y``/``mpp_x`` (µm per pixel, empty when
unknown), placed before the ``rle`` column (:data:`PLACEMENT_COLUMNS`);
readers that look columns up by name read these files unchanged. Writers are atomic: a
temporary file in the target folder is renamed over the target at the end and
removed on any error. Malformed input raises :class:`RLEError`, whose message
names the file, the 1-based data row (and the row's id) and the problem.

Slide-sized masks are encoded band by band from a dask array
(:func:`rle_encode_dask`, :func:`iter_rle_text_dask`) and decoded band by band
(:func:`rle_decode_rows`), so memory stays proportional to one band plus the
runs.

Modules
-------
``checks``: :class:`RLEError` and the argument checks. ``tokens``: the
``start length`` text. ``runs``: runs of pixels, read and painted, and
``mask_runs``: the runs found in a mask (NumPy). ``kaggle``: Kaggle RLE of masks and label images,
:func:`guess_order`. ``stream``: band-by-band encoding of slide-sized masks.
``coco``: COCO RLE. ``csvfiles``: CSV plumbing shared by the layouts.
``submission``: Kaggle submission CSV files. The package's own RLE CSV
files: ``columns`` (layouts, placement and colour fields), ``rlecsv_read``
and ``rlecsv_write``.
"""

from __future__ import annotations

from .checks import ORDERS, RLEError
from .coco import (
    coco_area,
    coco_compress,
    coco_counts_to_rle,
    coco_decode,
    coco_decompress,
    coco_encode,
    coco_encode_compressed,
    rle_to_coco_counts,
)
from .columns import INSTANCE_COLUMNS as INSTANCE_COLUMNS
from .columns import PLACEMENT_COLUMNS as PLACEMENT_COLUMNS
from .columns import SEMANTIC_COLUMNS as SEMANTIC_COLUMNS
from .csvfiles import MEMORY_FRACTION as MEMORY_FRACTION
from .csvfiles import read_rle_csv_rows
from .kaggle import GUESS_MARGIN as GUESS_MARGIN
from .kaggle import GUESS_MIN_DICE as GUESS_MIN_DICE
from .kaggle import (
    decode_labels,
    encode_labels,
    guess_order,
    rle_decode,
    rle_decode_rows,
    rle_encode,
)
from .rlecsv_read import read_rle_csv
from .rlecsv_write import write_rle_csv
from .stream import iter_instance_rles_dask, iter_rle_text_dask, rle_encode_dask, write_rle_text
from .submission import read_submission_csv, write_submission_csv

__all__ = [
    "ORDERS",
    "RLEError",
    "coco_area",
    "coco_compress",
    "coco_counts_to_rle",
    "coco_decode",
    "coco_decompress",
    "coco_encode",
    "coco_encode_compressed",
    "decode_labels",
    "encode_labels",
    "guess_order",
    "iter_instance_rles_dask",
    "iter_rle_text_dask",
    "read_rle_csv",
    "read_rle_csv_rows",
    "read_submission_csv",
    "rle_decode",
    "rle_decode_rows",
    "rle_encode",
    "rle_encode_dask",
    "rle_to_coco_counts",
    "write_rle_csv",
    "write_rle_text",
    "write_submission_csv",
]
