"""Bad option values through the API config objects and the shared validators.

Every refusal is a SlideSegError and a ValueError whose message names the
option, the allowed range and the value given.
"""

from __future__ import annotations

import math

import pytest

from napari_slideseg import validate as v
from napari_slideseg.io.errors import SlideSegError
from napari_slideseg.patching import PatchConfig, PatchError


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: v.positive_int("stride", 0), "stride must be an integer >= 1, not 0"),
        (lambda: v.positive_int("stride", 2.5), "stride must be an integer >= 1, not 2.5"),
        (lambda: v.positive_int("stride", True), "stride must be an integer >= 1, not True"),
        (lambda: v.nonneg_int("level", -1), "level must be an integer >= 0, not -1"),
        (
            lambda: v.int_in_range("encoder_depth", "four", 3, 5),
            "encoder_depth must be an integer in [3, 5], not 'four'",
        ),
        (
            lambda: v.fraction("val_fraction", 1.5, hi_open=True),
            "val_fraction must be a number in [0, 1), not 1.5",
        ),
        (lambda: v.fraction("min_tissue", math.nan), "min_tissue must be a number in [0, 1]"),
        (lambda: v.positive("lr", 0), "lr must be a number > 0, not 0"),
        (lambda: v.nonneg("weight_decay", -1e-4), "weight_decay must be a number >= 0"),
        (lambda: v.choice("grid", "full", ("valid", "pad")), "grid must be one of 'valid', 'pad'"),
        (
            lambda: v.positive_numbers("class_weights", [1, -2]),
            "class_weights[1] must be a number > 0, not -2",
        ),
        (
            lambda: v.positive_numbers("class_weights", [1, 2], length=3),
            "class_weights must have 3 values",
        ),
    ],
)
def test_validators_name_option_range_and_value(call, message):
    with pytest.raises(v.OptionError) as exc:
        call()
    assert isinstance(exc.value, SlideSegError) and isinstance(exc.value, ValueError)
    assert message in str(exc.value)


def test_validators_return_converted_values():
    assert v.positive_int("size", 4.0) == 4
    assert v.fraction("x", 1) == 1.0
    assert v.positive_numbers("w", (1, 2.5)) == [1.0, 2.5]


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"stride": 0}, "stride must be an integer >= 1, not 0"),
        ({"size": -4}, "size must be an integer >= 1, not -4"),
        ({"size": "big"}, "size must be an integer >= 1, not 'big'"),
        ({"level": -1}, "level must be an integer >= 0, not -1"),
        ({"zoom": 0}, "zoom must be a number > 0, not 0"),
        ({"zoom": math.inf}, "zoom must be a number > 0"),
        ({"mpp": -0.5}, "mpp must be a number > 0"),
        ({"min_tissue": 5}, "min_tissue must be a number in [0, 1], not 5"),
        ({"max_black": -0.1}, "max_black must be a number in [0, 1]"),
        ({"max_white": 2}, "max_white must be a number in [0, 1]"),
        ({"keep_background": 1.5}, "keep_background must be a number in [0, 1]"),
        ({"pad_value": -1}, "pad_value must be an integer in [0, 65535], not -1"),
        ({"tissue_level": -2}, "tissue_level must be an integer >= 0, not -2"),
        ({"grid": "full"}, "grid must be one of 'valid', 'pad', not 'full'"),
        ({"pad_mode": "wrap"}, "pad_mode must be one of"),
        ({"region": (0, 0, 10)}, "region must be four integers"),
        ({"region": (10, 0, 5, 20)}, "y1 > y0"),
        ({"region": (-5, 0, 5, 20)}, "region must be an integer >= 0, not -5"),
        ({"drop_background": "yes"}, "drop_background must be true or false"),
    ],
)
def test_patch_config_refuses(kwargs, option):
    with pytest.raises(PatchError) as exc:
        PatchConfig(**kwargs)
    assert option in str(exc.value)


def test_patch_config_accepts_and_normalises():
    cfg = PatchConfig(size=64.0, stride=32, region=[0, 0, 64, 64], min_tissue=1)
    assert cfg.size == 64 and isinstance(cfg.size, int)
    assert cfg.region == (0, 0, 64, 64) and cfg.min_tissue == 1.0
    assert PatchConfig.from_dict(cfg.to_dict()) == cfg
