"""Small file helpers shared by the writers."""

from __future__ import annotations

import os


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def use_default_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the permissions a plain ``open(path, "w")`` would (``0o666 & ~umask``).

    Temporary files (``tempfile.mkstemp``, some library writers) are created
    ``0600``; an output renamed from one would stay unreadable to the
    user's group on a shared server.
    """
    os.chmod(path, 0o666 & ~_umask())
