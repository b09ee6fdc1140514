"""Writers for label images: colour-map PNG, TIFF, RLE CSV, OME-Zarr labels, GeoJSON.

Every writer streams: a NumPy or dask label array is walked in bands or
blocks, so exporting a 50k x 50k dask-backed labels layer never materialises
it. Every writer writes to a temporary name and renames the file (or folder)
into place when complete; a failed or cancelled export leaves nothing that
looks finished.

Formats that cannot stream say so and refuse above a documented size: the
semantic GeoJSON mode (connected components per class) needs the whole array
and refuses above :data:`GEOJSON_SEMANTIC_MAX_PIXELS`.

Coordinates and resolution: each writer takes a
:class:`~napari_slideseg.io.placement.Placement` (the labels' pyramid level,
the factors to level-0 pixels, the level-0 microns per pixel). GeoJSON is
written in level-0 pixels of the slide whatever level the labels hold;
raster formats keep their own pixels and record their resolution (PNG
``pHYs``, TIFF ``XResolution``/``YResolution`` in centimetres, OME-Zarr
scale in micrometres) and their placement, so they reopen on the slide.

One module per format: :mod:`.png`, :mod:`.tiff`, :mod:`.rlecsv`,
:mod:`.omezarr` (NGFF metadata and label pyramid from
:mod:`napari_slideseg.io.ngff`), :mod:`.geojson` (outlines from
:mod:`.outlines`); the checks they share are in :mod:`.common`, and
:func:`export_labels` (:mod:`.dispatch`) picks the writer from the file
name. Every name is re-exported here.
"""

from ..blocks import iter_bands, iter_blocks
from ..ngff import NGFF_VERSION, ngff_label_name
from .common import (
    as_label_image,
    check_class_range,
    check_class_values,
    check_file_target,
    check_ids,
    check_not_empty,
    default_classmap,
    id_refusal,
    jsonable,
    label_max,
    resolve_placement,
    value_range,
)
from .dispatch import export_labels
from .geojson import GEOJSON_SEMANTIC_MAX_PIXELS, write_geojson, write_geojson_steps
from .geojson_props import ObjectColumns
from .omezarr import check_zarr_target, write_ome_zarr_labels, write_ome_zarr_labels_steps
from .outlines import mask_polygons
from .png import (
    PNG_BAND_ROWS,
    PNG_CLASSMAP_KEY,
    PNG_INSTANCES_KEY,
    PNG_MAX_ID,
    PNG_PLACEMENT_KEY,
    write_color_png,
    write_color_png_steps,
    write_id_png,
    write_id_png_steps,
    write_index_png,
)
from .rlecsv import write_labels_csv
from .tiff import (
    TIFF_TILE,
    write_color_tiff,
    write_color_tiff_steps,
    write_id_tiff,
    write_id_tiff_steps,
)

__all__ = [
    "GEOJSON_SEMANTIC_MAX_PIXELS",
    "NGFF_VERSION",
    "PNG_BAND_ROWS",
    "PNG_CLASSMAP_KEY",
    "PNG_INSTANCES_KEY",
    "PNG_MAX_ID",
    "PNG_PLACEMENT_KEY",
    "TIFF_TILE",
    "ObjectColumns",
    "as_label_image",
    "check_class_range",
    "check_class_values",
    "check_file_target",
    "check_ids",
    "check_not_empty",
    "check_zarr_target",
    "default_classmap",
    "export_labels",
    "id_refusal",
    "iter_bands",
    "iter_blocks",
    "jsonable",
    "label_max",
    "mask_polygons",
    "ngff_label_name",
    "resolve_placement",
    "value_range",
    "write_color_png",
    "write_color_png_steps",
    "write_color_tiff",
    "write_color_tiff_steps",
    "write_geojson",
    "write_geojson_steps",
    "write_id_png",
    "write_id_png_steps",
    "write_id_tiff",
    "write_id_tiff_steps",
    "write_index_png",
    "write_labels_csv",
    "write_ome_zarr_labels",
    "write_ome_zarr_labels_steps",
]
