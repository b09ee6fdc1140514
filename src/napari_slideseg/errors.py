"""Errors raised by the core when input files are unusable.

Every error names the file and says what is wrong with it, so a widget can show
``str(err)`` as a notification and a CLI can print it as the whole message.
"""

from __future__ import annotations

import os


class SlideSegError(Exception):
    """Base class for errors about user input (files, parameters)."""


class SlideError(SlideSegError, ValueError):
    """A slide file cannot be opened or read.

    Parameters
    ----------
    path
        The file the problem is about.
    problem
        What is wrong, as a sentence fragment (no file name in it).
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SlideNotFoundError(SlideError, FileNotFoundError):
    """The slide path does not exist."""


class SlideTooLargeError(SlideError, MemoryError):
    """Decoding the file would not fit in the memory available."""
