"""Helpers every ``slideseg`` command shares: progress bars, argparse types, common options."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Generator
from typing import Any

from ..io.errors import SlideSegError


def drive(gen: Generator[Any, None, Any], desc: str = "", quiet: bool = False) -> Any:
    """Run a core progress generator with a terminal progress bar; return its result.

    Parameters
    ----------
    gen
        A generator of :class:`~napari_slideseg.progress.Progress` events.
    desc
        Label of the progress bar.
    quiet
        No progress bar (there is none either when stderr is not a terminal).

    Returns
    -------
    Any
        The generator's return value.
    """
    from ..progress import drain, tqdm_callback

    callback, close = tqdm_callback(desc=desc, disable=quiet or not sys.stderr.isatty())
    try:
        return drain(gen, callback)
    finally:
        close()


def drive_open(
    path: str, quiet: bool = False, mpp: float | None = None, backend: str | None = None
) -> Any:
    """Open a slide with a progress bar, its level-0 µm/px replaced by ``mpp`` when given.

    Parameters
    ----------
    path
        The slide file or folder.
    quiet
        No progress bar.
    mpp
        ``--mpp``: microns per pixel of level 0, or ``None`` for what the file states.
    backend
        ``--backend``: the reader to use, or ``None`` / ``"auto"`` to choose from the content.

    Returns
    -------
    Slide
        The opened slide.
    """
    from ..io.slide import open_slide_steps

    slide = drive(open_slide_steps(path, backend=backend), quiet=quiet)
    return slide if mpp is None else slide.with_mpp(mpp)


def needs(args: argparse.Namespace, flag: str, *options: str) -> None:
    """Refuse options that only apply with ``flag`` (they would be ignored without a word).

    Parameters
    ----------
    args
        The parsed command line.
    flag
        The switch the ``options`` depend on, e.g. ``--instances``.
    *options
        Flags that only mean something with ``flag``.

    Raises
    ------
    SlideSegError
        When one of ``options`` is given without ``flag``.
    """
    if getattr(args, flag.lstrip("-").replace("-", "_")):
        return
    given = [o for o in options if getattr(args, o.lstrip("-").replace("-", "_"), None)]
    if given:
        raise SlideSegError(
            f"{' and '.join(given)} only apply with {flag}; add {flag} or drop them"
        )


def stem(path: str) -> str:
    """A file or folder name without its suffixes (``a/p.ome.zarr/`` -> ``p``).

    Parameters
    ----------
    path
        A path as given on the command line.

    Returns
    -------
    str
        The name before its first dot.
    """
    from pathlib import Path

    return Path(path.rstrip("/")).name.split(".")[0]


def checked(validator: Callable[..., Any], flag: str, *args: Any, **kwargs: Any) -> Callable:
    """An argparse ``type`` checking ``flag``'s value with a shared validator.

    Parameters
    ----------
    validator
        A function of :mod:`napari_slideseg.validate` (``positive_int``, ``fraction``...).
    flag
        The option, named in the error message.
    *args, **kwargs
        Passed on to ``validator`` (bounds, ``hi_open``...).

    Returns
    -------
    Callable
        ``parse(text)`` giving the checked value or raising ``ArgumentTypeError``.
    """
    from ..validate import arg_type

    return arg_type(validator, flag, *args, **kwargs)


def positive_float(text: str) -> float:
    """A finite number ``> 0`` (an argparse ``type``).

    Parameters
    ----------
    text
        The option's text.

    Returns
    -------
    float
        The number.

    Raises
    ------
    argparse.ArgumentTypeError
        When the text is not a finite positive number.
    """
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return v


def zoom_value(text: str) -> float | str:
    """``auto`` or a positive number (``--zoom``; an argparse ``type``).

    Parameters
    ----------
    text
        The option's text.

    Returns
    -------
    float or str
        ``"auto"`` or the number.

    Raises
    ------
    argparse.ArgumentTypeError
        When the text is neither ``auto`` nor a positive number.
    """
    return "auto" if text.strip().lower() == "auto" else positive_float(text)


def positive_ints(flag: str) -> Callable[[str], list[int]]:
    """An argparse ``type`` for comma-separated integers >= 1 (``--decoder-channels 128,64``).

    Parameters
    ----------
    flag
        The option (kept for symmetry with :func:`checked`; argparse names it).

    Returns
    -------
    Callable
        ``parse(text)`` giving the list of integers.
    """
    from ..validate import OptionError, positive_int

    def parse(text: str) -> list[int]:
        out = []
        for i, item in enumerate(text.split(",")):
            t = item.strip()
            try:
                value: Any = int(t)
            except ValueError:
                value = t
            try:
                out.append(positive_int(f"value {i + 1}", value))
            except OptionError as err:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated integers >= 1, e.g. 128,64,32 ({err})"
                ) from None
        return out

    return parse


def class_weights(text: str) -> list[float] | str:
    """``--class-weights``: ``auto`` or comma-separated positive numbers (an argparse ``type``).

    Parameters
    ----------
    text
        The option's text.

    Returns
    -------
    list of float or str
        The weights, or ``"auto"``.

    Raises
    ------
    argparse.ArgumentTypeError
        When a value is not a number > 0.
    """
    if text.strip().lower() == "auto":
        return "auto"
    out = []
    for i, t in enumerate(text.split(",")):
        try:
            f = float(t)
        except ValueError:
            f = math.nan
        if not (math.isfinite(f) and f > 0):
            raise argparse.ArgumentTypeError(
                f"expected 'auto' or comma-separated numbers > 0 (one per class), "
                f"not {text!r} (value {i + 1}: {t.strip()!r})"
            )
        out.append(f)
    return out


def shared_options() -> dict[str, dict[str, Any]]:
    """The options several commands share: ``{flag: add_argument keywords}``.

    Returns
    -------
    dict
        ``--mpp`` (the image's level-0 microns per pixel, stated or
        overridden), ``--min-class-share`` (colour masks read without a class
        map), ``--tolerance`` (JPEG colour masks), ``--partial`` (an
        unfinished prediction), ``--quiet`` (no progress bars) and ``--backend``
        (the slide reader).
    """
    from ..options import SlideBackend, values
    from ..validate import fraction, nonneg

    return {
        "--mpp": {
            "type": positive_float,
            "metavar": "UM",
            "help": "microns per pixel of the image's level 0, for files that do not state it "
            "(JPEG/PNG tiles) or to override what they state",
        },
        "--min-class-share": {
            "type": checked(fraction, "--min-class-share"),
            "metavar": "SHARE",
            "help": "without --classmap: colours under this share of a mask's pixels are "
            "refused, not made classes (default 0.001; 0 makes every colour a class)",
        },
        "--tolerance": {
            "type": checked(nonneg, "--tolerance"),
            "help": "nearest-colour tolerance for JPEG colour masks",
        },
        "--partial": {
            "action": "store_true",
            "help": "use an unfinished prediction as it is (missing blocks read as background)",
        },
        "--quiet": {"action": "store_true"},
        "--backend": {
            "choices": values(SlideBackend),
            "default": "auto",
            "help": "the reader of the slide (default auto: chosen from the file's content; "
            "slideseg info says which and why)",
        },
    }


def add_shared(p: argparse.ArgumentParser, *flags: str) -> None:
    """Add options of :func:`shared_options` to a command's parser, in the order given.

    Parameters
    ----------
    p
        The command's parser.
    *flags
        Their flags (``"--mpp"``, ``"--quiet"``...).
    """
    table = shared_options()
    for flag in flags:
        p.add_argument(flag, **table[flag])
