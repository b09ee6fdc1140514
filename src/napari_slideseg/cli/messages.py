"""How ``slideseg`` reports problems: one ``slideseg: error:`` or ``warning:`` line."""

from __future__ import annotations

import errno
import os
import re
import sys
import warnings

SHOW_WARNING = warnings.showwarning

#: What to do about an OSError, by errno.
HINTS = {
    errno.ENOSPC: " (disk full: free space or write elsewhere)",
    errno.EACCES: " (check the folder's permissions or write elsewhere)",
    errno.EROFS: " (a read-only file system: write elsewhere)",
    errno.ENOTDIR: " (a part of the path is a file, not a folder)",
}


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """User-facing warnings as one ``slideseg: warning:`` line (no source line).

    A drop-in for :func:`warnings.showwarning`: other warnings (not
    ``UserWarning``) keep the standard format.

    Parameters
    ----------
    message, category, filename, lineno, file, line
        As :func:`warnings.showwarning` receives them.
    """
    if not issubclass(category, UserWarning):
        SHOW_WARNING(message, category, filename, lineno, file, line)
        return
    print(f"slideseg: warning: {message}", file=sys.stderr)


def one_line(err: BaseException) -> str:
    """The error's message on one line (worker tracebacks and extra lines dropped).

    Parameters
    ----------
    err
        The exception.

    Returns
    -------
    str
        Its message's lines joined with ``; `` (its type's name when it has none).
    """
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        # an error re-raised by a torch DataLoader worker: its own message is the last line
        text = text.splitlines()[-1].split(": ", 1)[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(err).__name__


def _target(name: str) -> str:
    """The file a writer's hidden temporary (``.NAME[.pid].tmp`` / ``.part``) stands for."""
    head, tail = os.path.split(name)
    m = re.fullmatch(r"\.(.+?)(?:\.(?:[0-9a-f]{6,}|\d+))?\.(?:tmp|part)", tail) or re.fullmatch(
        r"(.+\.[A-Za-z]{2,8})\.(?:[0-9a-f]{8,32}|\d+)(?:\.(?:tmp|part))?", tail
    )
    return os.path.join(head, m.group(1)) if m else os.path.join(head, tail)


def os_error(err: OSError) -> str:
    """``<file>: <problem>`` for an OSError (permission, missing folder, disk full...).

    Parameters
    ----------
    err
        The error.

    Returns
    -------
    str
        The file(s) it names (the target, not a hidden temporary), its
        problem and what to do about it.
    """
    problem = err.strerror or one_line(err)
    names = [_target(os.fsdecode(f)) for f in (err.filename, err.filename2) if f is not None]
    hint = HINTS.get(err.errno or -1, "")
    if err.errno == errno.ENOENT and names:
        parent = os.path.dirname(names[0])
        if parent and not os.path.isdir(parent) and not os.path.exists(parent):
            hint = f" (the folder {parent} does not exist)"
    if err.errno == errno.EEXIST and names and os.path.isfile(names[0]):
        hint = " (a file is in the way where a folder is needed)"
    if names:
        return f"{' -> '.join(names)}: {problem}{hint}"
    return f"{problem}{hint}"
