"""The fault hook tests kill prediction runs with.

Every block write step calls :func:`fault` with its name just before it
happens; tests set :data:`FAULT` to raise there, which simulates a kill at
that point, and check that resuming gives the uninterrupted result.
"""

from __future__ import annotations

from collections.abc import Callable

#: Fault injection for tests: when set, called with the name of each block write step
#: (``labels``, ``pyramid``, ``instances``, ``instance_pyramid``, ``maps``, ``table``,
#: ``done``) just before it happens; raising there simulates a kill at that point.
FAULT: Callable[[str], None] | None = None


def fault(step: str) -> None:
    """Call the test hook :data:`FAULT` (if set) before write step ``step``."""
    if FAULT is not None:
        FAULT(step)
