"""Atomic output: every writer of the package finishes a file or folder here.

One temporary-name scheme for the whole package: ``.<name>.<8 hex>.tmp``
beside the target (same folder, so ``os.replace`` is a rename on one file
system). The temporary is removed when the write fails, and a finished
output replaces an existing one only by renames, so the target is never
left missing or half written.

Examples
--------
>>> from pathlib import Path
>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> with atomic_path(d / "out.txt") as tmp:
...     _ = tmp.write_text("done")
>>> (d / "out.txt").read_text()
'done'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def use_default_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the permissions a plain ``open(path, "w")`` would (``0o666 & ~umask``).

    Temporary files (``tempfile.mkstemp``, some library writers) are created
    ``0600``; an output renamed from one would stay unreadable to the
    user's group on a shared server.

    Parameters
    ----------
    path : str or os.PathLike
        A file that exists.
    """
    os.chmod(path, 0o666 & ~_umask())


def temp_name(path: str | os.PathLike, suffix: str = "") -> Path:
    """The temporary sibling of ``path`` an atomic write goes through.

    Parameters
    ----------
    path : str or os.PathLike
        The final output.
    suffix : str
        Appended after ``.tmp`` (``".png"`` for writers that choose the
        format from the extension).

    Returns
    -------
    Path
        ``<folder>/.<name>.<8 hex>.tmp<suffix>``; hidden, and unique per call.
    """
    p = Path(path)
    return p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def replace_path(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the finished ``tmp`` (file or folder) to ``path``, replacing what is there.

    An existing folder is first renamed aside and deleted only once ``tmp``
    is in place; if the second rename fails the old one is put back.

    Parameters
    ----------
    tmp : str or os.PathLike
        The finished output, in the same folder as ``path``.
    path : str or os.PathLike
        The target.
    """
    tmp, path = Path(tmp), Path(path)
    if not path.is_dir() or path.is_symlink():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = "", *, default_mode: bool = True
) -> Iterator[Path]:
    """Write ``path`` atomically: the body writes the yielded temporary path.

    On a clean exit the temporary (a file or a folder the body created) is
    given the default permissions and renamed over ``path``
    (:func:`replace_path`). On any error it is removed and ``path`` is
    untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final output.
    suffix : str
        See :func:`temp_name`.
    default_mode : bool
        Give a file the mode a plain ``open`` would (see
        :func:`use_default_mode`).

    Yields
    ------
    Path
        The temporary path to write; nothing exists there yet.
    """
    tmp = temp_name(path, suffix)
    try:
        yield tmp
        if default_mode and tmp.is_file():
            use_default_mode(tmp)
        replace_path(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    data : bytes
        Its whole content.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))
