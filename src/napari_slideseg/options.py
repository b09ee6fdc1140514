"""Every fixed set of option values, as :class:`enum.StrEnum` (one place, one spelling).

The command line (``choices=``), the dock widgets (combo boxes) and the
config objects all accept these values. A member *is* its string
(``TTAMode.D4 == "d4"``), so a plain string works wherever a member does and
the members serialise to JSON as their value.

This module sits at the bottom of the package: it imports nothing from it, so
every layer may use it. ``tests/test_options.py`` checks each enum against the
values the core validates.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class TTAMode(StrEnum):
    """Test-time augmentation of inference (``InferConfig.tta``)."""

    NONE = "none"
    FLIPS = "flips"
    D4 = "d4"


class BlendWindow(StrEnum):
    """Weight map blending overlapping inference tiles (``InferConfig.window``)."""

    GAUSSIAN = "gaussian"
    COSINE = "cosine"
    FLAT = "flat"


class DeviceKind(StrEnum):
    """Kinds of torch device (``cuda`` also as ``cuda:N``; ``auto``: cuda > mps > cpu)."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class Optimizer(StrEnum):
    """Training optimiser (``TrainConfig.optimizer``)."""

    ADAMW = "adamw"
    ADAM = "adam"
    SGD = "sgd"
    RADAM = "radam"


class Scheduler(StrEnum):
    """Learning-rate schedule (``TrainConfig.scheduler``)."""

    COSINE = "cosine"
    PLATEAU = "plateau"
    ONECYCLE = "onecycle"
    NONE = "none"


class Monitor(StrEnum):
    """Metric that picks the best epoch and stops early (``TrainConfig.monitor``)."""

    VAL_LOSS = "val_loss"
    VAL_DICE = "val_dice"


class SplitBy(StrEnum):
    """What the validation split holds out whole (``TrainConfig.split_by``)."""

    SLIDE = "slide"
    PATCH = "patch"


class NormLayer(StrEnum):
    """Normalisation layers of the model (``TrainConfig.norm``)."""

    BATCH = "batch"
    GROUP = "group"


class ModelKind(StrEnum):
    """What a model predicts: class maps or HoVer-Net nuclei (``TrainConfig.kind``)."""

    SEMANTIC = "semantic"
    HOVER = "hover"


class Activation(StrEnum):
    """Output activation recorded in a model card."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


class InputNorm(StrEnum):
    """Input normalisation of training (``TrainConfig.input_norm``).

    ``auto``: what the encoder weights' sidecar JSON states, else ImageNet;
    ``unit``: [-1, 1].
    """

    AUTO = "auto"
    IMAGENET = "imagenet"
    UNIT = "unit"
    NONE = "none"


class AugmentPreset(StrEnum):
    """Training augmentation preset (``TrainConfig.augment``)."""

    NONE = "none"
    FLIPS = "flips"
    STANDARD = "standard"
    STRONG = "strong"


class Architecture(StrEnum):
    """segmentation-models-pytorch architectures the plugin offers (case-sensitive)."""

    UNET = "Unet"
    UNET_PLUS_PLUS = "UnetPlusPlus"
    LINKNET = "Linknet"
    FPN = "FPN"
    PSPNET = "PSPNet"
    DEEPLABV3 = "DeepLabV3"
    DEEPLABV3_PLUS = "DeepLabV3Plus"
    MANET = "MAnet"
    PAN = "PAN"
    UPERNET = "UPerNet"
    SEGFORMER = "Segformer"


class Loss(StrEnum):
    """Loss terms of semantic training; ``TrainConfig.loss`` joins them with ``+``."""

    CE = "ce"
    BCE = "bce"
    DICE = "dice"
    FOCAL = "focal"
    JACCARD = "jaccard"
    LOVASZ = "lovasz"
    TVERSKY = "tversky"


#: Losses the Training widget offers, most useful first.
LOSS_PRESETS: tuple[str, ...] = tuple(
    "+".join(terms)
    for terms in (
        (Loss.CE, Loss.DICE),
        (Loss.CE,),
        (Loss.DICE,),
        (Loss.FOCAL,),
        (Loss.FOCAL, Loss.DICE),
        (Loss.JACCARD,),
        (Loss.LOVASZ,),
        (Loss.TVERSKY,),
        (Loss.BCE, Loss.DICE),
    )
)


class HoverLossTerm(StrEnum):
    """Terms of the HoVer-Net loss (keys of ``TrainConfig.hover_weights``)."""

    NP_CE = "np_ce"
    NP_DICE = "np_dice"
    HV_MSE = "hv_mse"
    HV_MSGE = "hv_msge"
    NC_CE = "nc_ce"
    NC_DICE = "nc_dice"


class HoverNormalize(StrEnum):
    """HoVer post-processing normalisation (``HoverParams.normalize``)."""

    FIXED = "fixed"
    TILE = "tile"


class GridMode(StrEnum):
    """Patch grid: windows inside the image only, or padded over its edge."""

    VALID = "valid"
    PAD = "pad"


class PadMode(StrEnum):
    """How windows over the edge are filled (``PatchConfig.pad_mode``)."""

    REFLECT = "reflect"
    CONSTANT = "constant"


class Overwrite(StrEnum):
    """What patch extraction does when its output folder exists."""

    ERROR = "error"
    SKIP = "skip"
    OVERWRITE = "overwrite"


class PatchFormat(StrEnum):
    """How patches are stored."""

    PNG = "png"
    ZARR = "zarr"


class Unannotated(StrEnum):
    """What label pixels outside every GeoJSON annotation get (``PatchConfig.unannotated``)."""

    BACKGROUND = "background"
    IGNORE = "ignore"


class RLEOrder(StrEnum):
    """Pixel order of run-length encodings: column-major (Kaggle/HuBMAP) or row-major."""

    COL = "col"
    ROW = "row"


class RLELayout(StrEnum):
    """RLE CSV rows: one per class, or one per object."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"


class RLEBase(IntEnum):
    """Index of the first pixel in a run-length encoding."""

    ZERO = 0
    ONE = 1


class ExportFormat(StrEnum):
    """Output file suffixes a label image exports to (chosen by the name's ending)."""

    PNG = ".png"
    TIF = ".tif"
    TIFF = ".tiff"
    CSV = ".csv"
    ZARR = ".zarr"
    OME_ZARR = ".ome.zarr"
    GEOJSON = ".geojson"
    GEOJSON_GZ = ".geojson.gz"
    JSON = ".json"


#: Export suffixes written by streaming vector or text writers (not rasters).
STREAMED_FORMATS: tuple[str, ...] = tuple(
    f.value
    for f in (ExportFormat.CSV, ExportFormat.GEOJSON, ExportFormat.GEOJSON_GZ, ExportFormat.JSON)
)
#: Export suffixes of GeoJSON.
GEOJSON_FORMATS: tuple[str, ...] = tuple(
    f.value for f in (ExportFormat.GEOJSON, ExportFormat.GEOJSON_GZ, ExportFormat.JSON)
)


class GeoJSONMode(StrEnum):
    """GeoJSON export: one polygon per object id, or per class region."""

    INSTANCES = "instances"
    SEMANTIC = "semantic"


class GeoJSONObjectType(StrEnum):
    """QuPath object type written on each GeoJSON feature."""

    ANNOTATION = "annotation"
    DETECTION = "detection"
    CELL = "cell"
    TILE = "tile"


class JpegCheck(StrEnum):
    """How a JPEG slide is checked when opened: fully decoded, or its markers walked."""

    FULL = "full"
    MARKERS = "markers"


class SlideBackend(StrEnum):
    """The reader of a slide (``open_slide(backend=...)``, ``--backend``); AUTO chooses by content."""

    AUTO = "auto"
    TIFFFILE = "tifffile"
    OPENSLIDE = "openslide"
    WSIDICOM = "wsidicom"
    ZARR = "zarr"
    RASTER = "raster"


def values(options: type[StrEnum] | type[IntEnum]) -> list:
    """The plain values of an enum, in definition order (for ``choices=`` lists).

    Parameters
    ----------
    options
        A :class:`~enum.StrEnum` or :class:`~enum.IntEnum` class of this module.

    Returns
    -------
    list
        ``[member.value, ...]``: plain ``str`` (or ``int``) values, so argparse
        error messages and combo boxes show ``'d4'``, not ``TTAMode.D4``.
    """
    return [member.value for member in options]


__all__ = [
    "GEOJSON_FORMATS",
    "LOSS_PRESETS",
    "STREAMED_FORMATS",
    "Activation",
    "Architecture",
    "AugmentPreset",
    "BlendWindow",
    "DeviceKind",
    "ExportFormat",
    "GeoJSONMode",
    "GeoJSONObjectType",
    "GridMode",
    "HoverLossTerm",
    "HoverNormalize",
    "InputNorm",
    "JpegCheck",
    "Loss",
    "ModelKind",
    "Monitor",
    "NormLayer",
    "Optimizer",
    "Overwrite",
    "PadMode",
    "PatchFormat",
    "RLEBase",
    "RLELayout",
    "RLEOrder",
    "Scheduler",
    "SplitBy",
    "TTAMode",
    "values",
]
