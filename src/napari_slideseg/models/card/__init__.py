"""The model card: one typed, validated record of what a checkpoint is.

``slideseg.json`` in a checkpoint folder is read and written here and
nowhere else; every consumer (inference, widgets, CLI, exports, demo, pack,
tune-hover) gets a :class:`ModelCard`, never a dict. The card says what the
weights expect (architecture, channels, normalisation, the resolution in
µm/px of the pixels they were trained on, patch size), what they produce (a
:class:`~napari_slideseg.io.palette.ClassMap`, HoVer post-processing
parameters) and where they came from (training summary, metrics, licence,
library versions).

Schema versions: 1 (cards written before the typed card; still read) and 2.
Unknown keys from a newer writer are kept in ``extra`` and written back.

The **content digest** (:meth:`ModelCard.digest`) hashes the weights file and
every card field that changes a prediction (:data:`PREDICTION_FIELDS`), so a
prediction resumed after ``tune-hover --write`` or ``slideseg pack --mpp``
is recognised as made by a different model, while a new name, licence or
description changes nothing.
"""

from .build import as_card, library_versions, new_card
from .files import read_card, sha256_file, write_card
from .model import ModelCard
from .schema import (
    ACTIVATIONS,
    CARD,
    KINDS,
    NUCLEUS_CLASSMAP,
    PREDICTION_FIELDS,
    SCHEMA_VERSION,
    CheckpointError,
    Normalization,
    card_normalization,
    finite_float,
)
from .summary import card_readme, cards_summary

__all__ = [
    "ACTIVATIONS",
    "CARD",
    "KINDS",
    "NUCLEUS_CLASSMAP",
    "PREDICTION_FIELDS",
    "SCHEMA_VERSION",
    "CheckpointError",
    "ModelCard",
    "Normalization",
    "as_card",
    "card_normalization",
    "card_readme",
    "cards_summary",
    "finite_float",
    "library_versions",
    "new_card",
    "read_card",
    "sha256_file",
    "write_card",
]
