"""The ``slideseg`` console command.

Every subcommand is a thin driver over one core function, in a module of its
own (:mod:`.info`, :mod:`.patch`, :mod:`.train`, :mod:`.tune_hover`,
:mod:`.pack`, :mod:`.predict`, :mod:`.finetune`, :mod:`.export`, :mod:`.evaluate`,
:mod:`.demo`); progress generators are shown with a terminal progress bar.
Errors print one line (``slideseg: error: <file>: <problem>``), without a
traceback: status 2 for bad input (an option out of range, a file that cannot
be used), status 1 for the system refusing (permission denied, a missing or
read-only folder, disk full, out of memory). Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType

from .. import __version__
from ..io.errors import SlideSegError
from . import demo, evaluate, export, finetune, info, pack, patch, predict, train, tune_hover
from .messages import one_line, os_error, show_warning

#: The subcommands in pipeline order (the order ``slideseg --help`` lists them).
COMMANDS: tuple[ModuleType, ...] = (
    info,
    patch,
    train,
    tune_hover,
    pack,
    predict,
    finetune,
    export,
    evaluate,
    demo,
)

EPILOG = """\
exit status:
  0  done
  1  the system refused: permission denied, a missing or read-only folder,
     disk full, out of memory (the message names the file)
  2  bad input: an option out of its range, a file that cannot be used
     (the message names the option or the file and the problem)
  130  interrupted (Ctrl-C)
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``slideseg`` (each command module adds its options).

    Parameters
    ----------
    only
        Add the options of this command only (by name or alias); the others
        are listed without theirs (``--help`` and ``--version`` need none, and
        the config-driven commands import their core module to build theirs).
        ``None``: every command's options.

    Returns
    -------
    argparse.ArgumentParser
        The parser; ``args.func(args)`` runs the chosen command.
    """
    parser = argparse.ArgumentParser(
        prog="slideseg",
        description="Whole-slide histology segmentation: inspect, patch, train, predict, export.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        kw = {"description": command.DESCRIPTION} if hasattr(command, "DESCRIPTION") else {}
        names = {command.NAME: command.HELP, **getattr(command, "ALIASES", {})}
        for name, help_text in names.items():
            # an alias is a parser of its own: its usage and errors say the name typed
            p = sub.add_parser(name, help=help_text, **kw)
            if only is None or only == name:
                command.add_arguments(p)
            p.set_defaults(func=command.run)
    return parser


def _command_in(argv: Sequence[str]) -> str:
    """The subcommand named in ``argv`` (its first word that is not an option), or ""."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slideseg`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Parameters
    ----------
    argv
        The command line without the program name.

    Returns
    -------
    int
        0 done, 1 the system refused, 2 bad input, 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only=_command_in(argv)).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return func(args)
    except SlideSegError as err:
        print(f"slideseg: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"slideseg: error: {os_error(err)}", file=sys.stderr)
        return 1
    except MemoryError as err:
        detail = f" ({one_line(err)})" if str(err) else ""
        print(
            f"slideseg: error: not enough memory{detail}; try a smaller --block, --tile "
            "or --batch-size, or a coarser --level",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("slideseg: interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "EPILOG", "build_parser", "main"]
