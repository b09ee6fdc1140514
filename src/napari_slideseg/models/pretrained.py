"""Pretrained encoder weights from a local safetensors file, never a pickle.

This machine has no internet, so pretrained encoders come from files the user
names. Only safetensors is read: its header (8-byte little-endian length +
JSON) is checked before anything is loaded, and ``.pth/.pt/.ckpt/.bin`` files
are refused with a one-line conversion recipe, because unpickling runs code.

Keys are mapped onto the encoder's own state dict: wrapper prefixes
(``module.``, ``model.``, ``encoder.``, ``backbone.``) are stripped, head keys
(``classifier.``, ``fc.``, ``head.``, ``last_linear.``) are dropped, and of a
full smp model state dict only ``encoder.*`` is kept. torchvision and smp use
the same key names for ResNet and MobileNetV2 (as do timm's ResNets); timm's
``mobilenetv2_100`` names are translated to torchvision's ``features.*``.
Every encoder tensor must then be covered with the same shape, otherwise an
:class:`EncoderWeightsError` lists what is missing, unexpected or mis-shaped,
and nothing is loaded. ``num_batches_tracked`` is optional on both sides.

The normalisation the weights expect is read from a sidecar JSON (same stem)
so it can be recorded in the model card: for an smp encoder, pass
``model.encoder`` (also :class:`~napari_slideseg.models.hovernet.HoVerNet`'s).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..io.errors import SlideSegError
from ..normalization import UNIT

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl", ".pickle")
WRAPPER_PREFIXES = ("module.", "model.", "encoder.", "backbone.")
HEAD_PREFIXES = ("classifier.", "fc.", "head.", "last_linear.")
_TIMM_MBV2 = {"conv_pw": "conv.0.0", "bn1": "conv.0.1", "conv_dw": "conv.1.0", "bn2": "conv.1.1",
              "conv_pwl": "conv.2", "bn3": "conv.3"}  # fmt: skip
_TIMM_MBV2_FIRST = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}
_NBT = "num_batches_tracked"
Stats = tuple[float, float, float]


class EncoderWeightsError(SlideSegError, ValueError):
    """A weights file cannot be loaded into the encoder; the message starts with the file.

    Parameters
    ----------
    path : str or os.PathLike
        The weights (or sidecar JSON) file.
    problem : str
        What is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class EncoderWeights:
    """What was loaded into an encoder, for the model card.

    Attributes
    ----------
    path, name, sha256
        The file, its name, and the sha256 of its bytes.
    layout
        The key layout that matched: ``"torchvision"`` (= smp encoder names),
        ``"smp"`` (a full smp model state dict) or ``"timm"``.
    n_tensors
        Tensors copied into the encoder.
    dropped
        Keys of the file that were not loaded (classifier heads, decoders...).
    mean, std
        RGB normalisation of [0, 1] images the weights expect, if known.
    """

    path: str
    name: str
    sha256: str
    layout: str
    n_tensors: int
    dropped: tuple[str, ...]
    mean: Stats | None
    std: Stats | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists).

        Returns
        -------
        dict
            Every field.
        """
        lists = {k: getattr(self, k) for k in ("dropped", "mean", "std")}
        return {**asdict(self), **{k: None if v is None else list(v) for k, v in lists.items()}}


def _stats(json_path: Path, key: str, values: Any) -> Stats:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) and (key == "mean" or v > 0) for v in out):
        rule = "3 finite numbers" + (", all > 0" if key == "std" else "")
        raise EncoderWeightsError(json_path, f"normalization {key} must be {rule}, got {values!r}")
    return out


def weights_normalization(path: str | os.PathLike) -> tuple[Stats, Stats] | None:
    """``(mean, std)`` the weights expect, from the sidecar ``<stem>.json``, or ``None``.

    An explicit ``"normalization": {"mean": [...], "std": [...]}`` wins; else a
    ``"preprocessing"`` text saying inputs are scaled to ``[-1, 1]`` means
    mean = std = 0.5. No sidecar or no such entry gives ``None``.

    Parameters
    ----------
    path : str or os.PathLike
        The weights file.

    Returns
    -------
    tuple or None
        ``(mean, std)``, three floats each.

    Raises
    ------
    EncoderWeightsError
        The sidecar is not JSON or its values are invalid (names the JSON file).
    """
    json_path = Path(path).with_suffix(".json")
    if not json_path.is_file():
        return None
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderWeightsError(json_path, f"sidecar is not readable JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise EncoderWeightsError(json_path, "sidecar JSON is not an object")
    norm = meta.get("normalization")
    if norm is not None:
        if not isinstance(norm, dict):
            raise EncoderWeightsError(
                json_path, "normalization must be {'mean': [...], 'std': [...]}"
            )
        mean, std = (_stats(json_path, k, norm.get(k)) for k in ("mean", "std"))
        return mean, std
    if re.search(r"\[\s*-1\s*,\s*1\s*\]", str(meta.get("preprocessing", ""))):
        return UNIT["mean"], UNIT["std"]
    return None


def _check_file(p: Path) -> None:
    if not p.exists():
        raise EncoderWeightsError(p, "weights file does not exist")
    if p.is_dir():
        raise EncoderWeightsError(p, "is a directory, not a .safetensors weights file")
    recipe = (
        "pickled checkpoints are never loaded: convert it to safetensors with\n"
        f"  python -c \"import torch, safetensors.torch as st; sd = torch.load('{p}', "
        "map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); "
        f"st.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{p.with_suffix('.safetensors')}')\""
    )
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise EncoderWeightsError(p, recipe)
    with open(p, "rb") as f:
        head = f.read(9)
        size = p.stat().st_size
        n = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
        if head[:2] == b"PK" or head[:1] == b"\x80":
            raise EncoderWeightsError(p, "is a pickle/zip file, not safetensors; " + recipe)
        if not (2 <= n <= min(size - 8, 100_000_000)) or head[8:9] != b"{":
            raise EncoderWeightsError(p, "not a safetensors file (bad header)")
        try:
            f.seek(8)
            json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EncoderWeightsError(
                p, f"not a safetensors file (header is not JSON: {exc})"
            ) from exc


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _map_keys(sd: dict[str, Any]) -> tuple[dict[str, Any], list[str], str, dict[str, str]]:
    """Strip wrappers, keep a full model's encoder, drop heads; translate timm MobileNetV2."""
    dropped: list[str] = []
    layout = "torchvision"
    orig = {k: k for k in sd}  # mapped key -> file key
    while sd:
        pre = next((w for w in WRAPPER_PREFIXES if all(k.startswith(w) for k in sd)), None)
        if pre is not None:
            layout = "smp" if pre == "encoder." else layout
            sd = {k[len(pre) :]: v for k, v in sd.items()}
            orig = {k[len(pre) :]: o for k, o in orig.items()}
            continue
        if any(k.startswith("encoder.") for k in sd):  # full model: decoder.*, np_branch.*...
            layout = "smp"
            dropped += [orig[k] for k in sd if not k.startswith("encoder.")]
            sd = {k: v for k, v in sd.items() if k.startswith("encoder.")}
            continue
        break
    dropped += [orig[k] for k in sd if k.startswith(HEAD_PREFIXES)]
    sd = {k: v for k, v in sd.items() if not k.startswith(HEAD_PREFIXES)}
    if "conv_stem.weight" in sd and "blocks.0.0.conv_dw.weight" in sd:
        layout = "timm"
        blocks = sorted({tuple(map(int, k.split(".")[1:3])) for k in sd if k.startswith("blocks.")})
        index = {b: i + 1 for i, b in enumerate(blocks)}
        last = len(blocks) + 1
        out, orig = {}, {}
        for k, v in sd.items():
            o = k
            parts = k.split(".")
            if parts[0] == "blocks":
                b = (int(parts[1]), int(parts[2]))
                table = _TIMM_MBV2_FIRST if b == (0, 0) else _TIMM_MBV2
                k = f"features.{index[b]}.{table.get(parts[3], parts[3])}." + ".".join(parts[4:])
            elif parts[0] in ("conv_stem", "bn1", "conv_head", "bn2"):
                stage = "features.0" if parts[0] in ("conv_stem", "bn1") else f"features.{last}"
                k = f"{stage}.{'0' if parts[0].startswith('conv') else '1'}." + ".".join(parts[1:])
            out[k], orig[k] = v, o
        sd = out
    return sd, dropped, layout, orig


def _listing(title: str, items: list[str]) -> str:
    more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
    return f"\n  {len(items)} {title}: " + ", ".join(items[:10]) + more


def load_encoder_weights(encoder: Any, path: str | os.PathLike) -> EncoderWeights:
    """Copy the tensors of a local safetensors file into ``encoder`` (in place).

    Parameters
    ----------
    encoder
        A ``torch.nn.Module``, e.g. ``build_model(...).encoder`` or ``HoVerNet(...).encoder``.
    path
        A ``.safetensors`` file in torchvision/smp, full smp model or timm layout.

    Returns
    -------
    EncoderWeights
        File, sha256, matched layout, dropped keys and normalisation.

    Raises
    ------
    EncoderWeightsError
        Missing, pickled or malformed file, or keys/shapes that do not cover the
        encoder (the encoder is then left unchanged).
    """
    from safetensors.torch import load_file

    p = Path(path)
    _check_file(p)
    digest = _sha256(p)
    norm = weights_normalization(p)  # before loading: a bad sidecar leaves the encoder as is
    try:
        raw = load_file(str(p), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise EncoderWeightsError(
            p, f"cannot read safetensors ({type(exc).__name__}: {exc})"
        ) from exc
    sd, dropped, layout, orig = _map_keys(dict(raw))
    own = encoder.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith(_NBT)]
    unexpected = [k for k in sd if k not in own and not k.endswith(_NBT)]
    bad = [
        f"{k} (file {tuple(sd[k].shape)}, model {tuple(v.shape)})"
        for k, v in own.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or bad:
        name = f"{type(encoder).__module__}.{type(encoder).__qualname__}"
        msg = f"weights ({layout} layout) do not fit encoder {name} ({len(own)} tensors)"
        lists = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": bad}
        msg += "".join(_listing(title, items) for title, items in lists.items() if items)
        raise EncoderWeightsError(p, msg)
    state = {k: sd.get(k, v).to(device=v.device, dtype=v.dtype, copy=True) for k, v in own.items()}
    encoder.load_state_dict(state, strict=True)
    return EncoderWeights(
        path=str(p),
        name=p.name,
        sha256=digest,
        layout=layout,
        n_tensors=sum(k in sd for k in own),
        dropped=tuple(dropped + [orig[k] for k in unexpected]),
        mean=None if norm is None else norm[0],
        std=None if norm is None else norm[1],
    )
