"""Command-line options generated from a config dataclass's fields.

Every field of a config (:class:`~napari_slideseg.train.TrainConfig`,
:class:`~napari_slideseg.infer.InferConfig`,
:class:`~napari_slideseg.patching.PatchConfig`) becomes an option, so each is
settable from the command line:

* the flag is the field's name (``batch_size`` -> ``--batch-size``) unless a
  :class:`Flag` keeps the command's own spelling (``--workers`` for
  ``num_workers``; aliases follow the first spelling);
* the type comes from the annotation (``int``, ``float``, ``bool`` switches,
  fixed-length tuples as several values, lists and dicts as JSON or comma
  lists), the choices from the :mod:`napari_slideseg.options` enum a
  :class:`Flag` names, the default from the dataclass (shown in the help);
* the help text from the class docstring's numpydoc ``Parameters`` or
  ``Attributes`` section, unless a :class:`Flag` words it for the command
  line (a field the docstring does not document needs one; a test checks
  that every option has help).

The parsed value lands under the field's name (``args.num_workers``), and
:func:`config_kwargs` gathers them for the dataclass.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from ..options import values
from .common import checked
from .structured import mapping_type, points_type, polygons_type, sequence_type

MISSING: Any = dataclasses.MISSING
#: :attr:`Flag.default` meaning "the dataclass's default".
FIELD_DEFAULT: Any = type("FieldDefault", (), {"__repr__": lambda self: "FIELD_DEFAULT"})()


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line (every part optional).

    Attributes
    ----------
    flags
        Option strings: the command's usual spelling (shown in the help),
        then aliases (the field's name where the usual spelling differs);
        default ``--field-name``.
    dest
        Name in the parsed namespace, where the field's name is taken
        (``target_mpp`` for ``PatchConfig.mpp``: ``--mpp`` is the slide's).
    type
        argparse ``type`` (default: from the annotation).
    choices
        Enum of :mod:`napari_slideseg.options` whose values are allowed.
    default
        Command-line default when it differs from the dataclass's.
    help
        Help text in the command line's own words, in place of the class
        docstring's (needed where the docstring does not document the field).
    note
        Text added after the help (what the command line does besides).
    nargs, metavar, required
        As in ``argparse.add_argument``.
    group
        Name of a mutually exclusive group the option belongs to.
    positional
        A positional argument named after the field.
    to_field
        Turns the parsed value into the field's value (``None`` -> ``[]``...).
    skip
        The command sets the field itself (no option).
    """

    flags: tuple[str, ...] = ()
    dest: str = ""
    type: Callable[[str], Any] | None = None
    choices: builtins.type[StrEnum] | builtins.type[IntEnum] | None = None
    default: Any = FIELD_DEFAULT
    help: str = ""
    note: str = ""
    nargs: int | str | None = None
    metavar: str | tuple[str, ...] | None = None
    required: bool = False
    group: str = ""
    positional: bool = False
    to_field: Callable[[Any], Any] | None = None
    skip: bool = False


def _clean(text: str) -> str:
    """Docstring text as plain help: one line, reST roles and literals unwrapped."""
    text = re.sub(r":\w+:`~?([^`<]+?)(?:\s*<[^>]+>)?`", lambda m: m.group(1).split(".")[-1], text)
    text = text.replace("``", "")
    return " ".join(text.split())


def field_docs(cls: type) -> dict[str, str]:
    """Help text of each field from ``cls``'s numpydoc ``Parameters``/``Attributes`` section.

    An entry naming several fields (``size, stride``) documents each of them.

    Parameters
    ----------
    cls
        A dataclass.

    Returns
    -------
    dict
        ``{field name: description}`` (plain text, one line), for the fields
        the docstring documents.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    docs: dict[str, str] = {}
    in_section = False
    names: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if underlined:
            in_section = line.strip() in ("Parameters", "Attributes")
            names = []
            i += 2
            continue
        if in_section and line.strip():
            if not line[0].isspace():
                names = [n.strip() for n in line.split(":", 1)[0].split(",")]
            else:
                for name in names:
                    docs[name] = f"{docs.get(name, '')} {line.strip()}".strip()
        i += 1
    return {name: _clean(text) for name, text in docs.items()}


def _base(hint: Any) -> Any:
    """``hint`` without ``None`` (``int | None`` -> ``int``); a union stays a union."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return hint


def _scalar(hint: Any) -> bool:
    return hint in (int, float, str)


def value_type(hint: Any, flag: str) -> tuple[Callable[[str], Any], int | None]:
    """The argparse ``type`` (and ``nargs``) an annotation gives.

    Parameters
    ----------
    hint
        The field's annotation without ``None`` (``int``, ``tuple[int, int]``, ``dict[str, Any]``...).
    flag
        The option, named in error messages.

    Returns
    -------
    tuple
        ``(type, nargs)``; ``nargs`` is the length of a fixed-length tuple of
        numbers (given as that many values), else ``None``.

    Raises
    ------
    TypeError
        For an annotation with no generic option (a union of types): give a
        :class:`Flag` ``type``.
    """
    from ..validate import integer, number

    if hint is int:
        return checked(integer, flag), None
    if hint is float:
        return checked(number, flag), None
    if hint is str:
        return str, None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        return mapping_type(flag), None
    if origin is tuple and args and Ellipsis not in args and all(map(_scalar, args)):
        return value_type(args[0], flag)[0], len(args)
    if origin in (list, tuple) and args and _scalar(args[0]):
        return sequence_type(args[0], flag), None
    if origin is tuple and args and typing.get_origin(args[0]) is tuple:
        inner = typing.get_args(args[0])
        if inner and typing.get_origin(inner[0]) is tuple:
            return polygons_type(flag), None
        return points_type(flag), None
    raise TypeError(f"{flag}: no command-line type for {hint!r}; give Flag(type=...)")


def _fixed_length(hint: Any) -> int | None:
    """The length of a fixed-length tuple annotation (``tuple[int, int]`` -> 2), else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and Ellipsis not in args:
        return len(args)
    return None


def field_default(field: dataclasses.Field) -> Any:
    """The dataclass default of ``field`` (its factory called), or ``None``.

    Parameters
    ----------
    field
        A field of a dataclass.

    Returns
    -------
    Any
        The default value.
    """
    if field.default is not MISSING:
        return field.default
    if callable(field.default_factory):
        return field.default_factory()
    return None


def _help(cls: type, field: dataclasses.Field, spec: Flag, doc: str, shown: bool) -> str:
    """The option's help: the Flag's (else the docstring's), note, default; ``%`` escaped."""
    text = spec.help or doc
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]  # a sentence's full stop; "tu-..." keeps its dots
    if not text:
        raise ValueError(
            f"{cls.__name__}.{field.name} has no help: document it in the class docstring "
            "or give Flag(help=...)"
        )
    text = f"{text}; {spec.note}" if spec.note else text
    if len(spec.flags) > 1:
        text = f"{text} (also {', '.join(spec.flags[1:])})"
    text = text.replace("%", "%%")
    return f"{text} (default: %(default)s)" if shown else text


def option_arguments(
    cls: type, field: dataclasses.Field, hint: Any, spec: Flag, doc: str
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """``add_argument``'s names and keywords for one config field.

    Parameters
    ----------
    cls
        The dataclass (named in errors).
    field
        One of its fields.
    hint
        The field's resolved annotation.
    spec
        How the command line spells and checks it.
    doc
        The field's docstring text ("" when undocumented).

    Returns
    -------
    tuple
        ``(names, keywords)``: ``parser.add_argument(names[0], **keywords)``,
        and each alias in ``names[1:]`` the same way with its help suppressed.
    """
    default = field_default(field) if spec.default is FIELD_DEFAULT else spec.default
    if spec.positional:
        kw: dict[str, Any] = {"help": _help(cls, field, spec, doc, False)}
        kw.update(nargs=spec.nargs, type=spec.type or str)
        return (field.name,), kw
    names = spec.flags or (f"--{field.name.replace('_', '-')}",)
    kw = {"dest": spec.dest or field.name, "default": default}
    base = _base(hint)
    if base is bool and spec.type is None:
        kw["action"] = argparse.BooleanOptionalAction if default else "store_true"
        kw["help"] = _help(cls, field, spec, doc, False)
        return names, kw
    type_, nargs = value_type(base, names[0]) if spec.type is None else (spec.type, None)
    kw["type"] = type_
    count = spec.nargs if spec.nargs is not None else (nargs or _fixed_length(base))
    if count is not None:
        kw["nargs"] = count
    if spec.choices is not None:
        kw["choices"] = values(spec.choices)
    else:  # as argparse names it from the first flag (not from the field's dest)
        kw["metavar"] = spec.metavar or names[0].lstrip("-").replace("-", "_").upper()
    if spec.required:
        kw["required"] = True
    shown = default not in (None, "", []) and not spec.required
    kw["help"] = _help(cls, field, spec, doc, shown)
    return names, kw


def add_config_options(
    parser: argparse.ArgumentParser, cls: type, flags: Mapping[str, Flag]
) -> None:
    """Add an option for every field of the dataclass ``cls`` (in field order).

    Parameters
    ----------
    parser
        The command's parser.
    cls
        A config dataclass.
    flags
        ``{field name: Flag}`` for fields whose option differs from the generic one.

    Raises
    ------
    ValueError
        When ``flags`` names no field of ``cls``, or a field has no help text.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(flags) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    groups: dict[str, Any] = {}
    for name, field in fields.items():
        spec = flags.get(name, Flag())
        if spec.skip:
            continue
        target: Any = parser
        if spec.group:
            if spec.group not in groups:
                groups[spec.group] = parser.add_mutually_exclusive_group()
            target = groups[spec.group]
        names, kw = option_arguments(cls, field, hints[name], spec, docs.get(name, ""))
        target.add_argument(names[0], **kw)
        for alias in names[1:]:
            # its own action: an error names the spelling typed, as before the alias
            target.add_argument(alias, **{**kw, "help": argparse.SUPPRESS})


def _tuples(value: Any) -> Any:
    """Lists (nested) as tuples, for tuple-typed fields."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def config_kwargs(args: argparse.Namespace, cls: type, flags: Mapping[str, Flag]) -> dict:
    """The keyword arguments of ``cls`` from the options :func:`add_config_options` added.

    Parameters
    ----------
    args
        The parsed command line.
    cls
        The config dataclass.
    flags
        The same ``{field name: Flag}`` the options were made with.

    Returns
    -------
    dict
        ``{field name: value}`` for every field that is not skipped.
    """
    hints = typing.get_type_hints(cls)
    out = {}
    for field in dataclasses.fields(cls):
        spec = flags.get(field.name, Flag())
        if spec.skip:
            continue
        value = getattr(args, spec.dest or field.name)
        if spec.to_field is not None:
            value = spec.to_field(value)
        elif typing.get_origin(_base(hints[field.name])) is tuple and value is not None:
            value = _tuples(value)
        out[field.name] = value
    return out
