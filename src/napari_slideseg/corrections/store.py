"""The corrections store: a user's edits of a prediction, kept beside it.

A prediction folder (:mod:`napari_slideseg.infer.output`) is never
rewritten; corrections go into its ``corrections`` zarr group::

    corrections/                 attrs["slideseg_corrections"]: format, identity,
                                 version, history
    corrections/<array>/data     (2, H, W), chunks (1, *chunks of <array>): two slots
    corrections/<array>/edited   (2, H, W) bool: pixels that differ from the prediction
    corrections/<array>/index    (ny, nx) int64, one chunk: per chunk of <array>,
                                 ``2 * version + slot`` of its saved correction, 0 none

A chunk's correction holds the whole corrected chunk. A save writes each
changed chunk into the slot its current correction does *not* use, and
only then rewrites ``index`` (one zarr chunk, written to a temporary file
and renamed by zarr's local store): a crash mid-save leaves the index
pointing at the previous, complete slots, so a half-written chunk is never
counted as saved. The history in the attributes is written last; a version
the index holds but the history lacks (a crash between the two) is taken
into the version counter on reopening.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .grid import ATTRS, FORMAT, GROUP, PYRAMIDS, CorrectionsError

logger = logging.getLogger(__name__)


def prediction_identity(attrs: dict[str, Any]) -> dict[str, Any]:
    """What identifies a prediction, for refusing corrections made on another one.

    Parameters
    ----------
    attrs : dict
        The prediction group's attributes.

    Returns
    -------
    dict
        ``config_hash`` (None for predictions that record none), ``slide``,
        ``level``, ``level_shape`` and ``kind`` of ``slideseg_inference``.
    """
    info = attrs.get("slideseg_inference") or {}
    keys = ("config_hash", "slide", "level", "level_shape", "kind")
    return {k: info.get(k) for k in keys}


class Corrections:
    """The corrections of one prediction folder (see the module docstring for the layout).

    Open it with :func:`open_corrections`. Reading never needs the store to
    exist; the first :meth:`record` creates it.

    Parameters
    ----------
    path : str or os.PathLike
        The prediction folder.
    writable : bool
        Whether :meth:`record` may write.
    """

    def __init__(self, path: Any, writable: bool = True) -> None:
        import zarr

        self.path = Path(path)
        self.writable = writable
        self.root: Any = zarr.open_group(str(self.path), mode="r+" if writable else "r")
        self.identity = prediction_identity(dict(self.root.attrs))
        self._meta = self._read_meta()

    # -- reading -----------------------------------------------------------------------
    def _group(self) -> Any | None:
        return self.root.get(GROUP, None)

    def _read_meta(self) -> dict[str, Any]:
        group = self._group()
        meta = dict(group.attrs.get(ATTRS) or {}) if group is not None else {}
        if not meta:
            return {"format": FORMAT, "identity": self.identity, "version": 0, "history": []}
        if meta.get("identity") != self.identity:
            raise CorrectionsError(
                f"{self.path}: its corrections were made on another prediction "
                f"({meta.get('identity')} vs {self.identity}); they are not applied"
            )
        return meta

    def original(self, name: str) -> Any:
        """The prediction's own array ``name`` (zarr, never written here).

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.

        Returns
        -------
        zarr.Array
            The array.

        Raises
        ------
        CorrectionsError
            When the prediction has no 2-D array ``name`` that can be corrected.
        """
        if name not in PYRAMIDS or name not in self.root:
            raise CorrectionsError(f"{self.path}: has no correctable array {name!r}")
        return self.root[name]

    def arrays(self) -> list[str]:
        """The arrays that have saved corrections.

        Returns
        -------
        list of str
            Names among ``labels``, ``instances``.
        """
        group = self._group()
        if group is None:
            return []
        return [n for n in PYRAMIDS if n in group and "index" in group[n]]

    def index(self, name: str) -> np.ndarray:
        """The chunk index of ``name``: ``2 * version + slot`` per saved chunk, 0 elsewhere.

        Parameters
        ----------
        name : str
            The corrected array.

        Returns
        -------
        numpy.ndarray
            ``(ny, nx)`` int64, the grid of the array's chunks.
        """
        arr = self.original(name)
        if name not in self.arrays():
            grid = [-(-s // c) for s, c in zip(arr.shape, arr.chunks, strict=True)]
            return np.zeros(grid, np.int64)
        return np.asarray(self.root[f"{GROUP}/{name}/index"][...], np.int64)

    def slots(self, name: str) -> tuple[Any, Any]:
        """The ``data`` and ``edited`` slot arrays of ``name`` (zarr, ``(2, H, W)``).

        Parameters
        ----------
        name : str
            An array in :meth:`arrays`.

        Returns
        -------
        tuple of zarr.Array
            ``(data, edited)``.
        """
        return self.root[f"{GROUP}/{name}/data"], self.root[f"{GROUP}/{name}/edited"]

    @property
    def version(self) -> int:
        """The latest saved version (0: no corrections).

        A version the index holds but the history lacks (a crash after the
        index was written) counts too.
        """
        held = [int(self.index(n).max()) // 2 for n in self.arrays()]
        return max([int(self._meta.get("version", 0)), *held])

    @property
    def versions(self) -> list[dict[str, Any]]:
        """The history, oldest first: one dict per saved version.

        Each has ``version``, ``time`` (UTC, ISO 8601), ``array``, ``bbox``
        (``[y0, x0, y1, x1]`` of the changed pixels), ``pixels`` (how many
        changed) and ``chunks`` (``[cy, cx]`` of the chunks written).
        """
        return [dict(h) for h in self._meta.get("history", [])]

    def corrected(self, name: str = "labels", factor: int = 1) -> Any:
        """The corrected array: the prediction where not edited, the correction where edited.

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.
        factor : int
            1 for level 0, else a factor of the prediction's pyramid.

        Returns
        -------
        dask.array.Array
            Lazy, chunked as the prediction's array; reads one chunk per block.
        """
        from .lazy import corrected_array

        return corrected_array(self, name, factor)

    def corrected_levels(self, name: str = "labels") -> list[Any]:
        """The corrected pyramid of ``name``, level 0 first (see :meth:`corrected`).

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.

        Returns
        -------
        list of dask.array.Array
            Level 0, then each factor of the prediction's pyramid.
        """
        from .lazy import corrected_levels

        return corrected_levels(self, name)

    def edited_mask(self, name: str = "labels", factor: int = 1) -> Any:
        """Which pixels differ from the prediction, as a lazy bool array.

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.
        factor : int
            1 for level 0, else a factor of the prediction's pyramid.

        Returns
        -------
        dask.array.Array
            bool, the shape and chunks of the array at that level.
        """
        from .lazy import corrected_array

        return corrected_array(self, name, factor, edited=True)

    def regions(self, name: str = "labels") -> list[tuple[int, int, int, int]]:
        """Bounding boxes of the connected edited areas (8-connected edited pixels).

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.

        Returns
        -------
        list of tuple of int
            ``(y0, x0, y1, x1)`` level-0 pixel boxes (end exclusive), sorted.
        """
        from .lazy import edited_regions

        return edited_regions(self, name)

    # -- writing -----------------------------------------------------------------------
    def read_chunk(self, name: str, cy: int, cx: int, index: np.ndarray | None = None) -> Any:
        """The corrected content of chunk ``(cy, cx)`` of ``name``.

        Parameters
        ----------
        name : str
            The array.
        cy, cx : int
            The chunk's position in the chunk grid.
        index : numpy.ndarray, optional
            :meth:`index` when the caller already holds it.

        Returns
        -------
        numpy.ndarray
            The saved correction, or the prediction's chunk when none.
        """
        arr = self.original(name)
        index = self.index(name) if index is None else index
        ch, cw = arr.chunks
        win = (slice(cy * ch, (cy + 1) * ch), slice(cx * cw, (cx + 1) * cw))
        code = int(index[cy, cx])
        if not code:
            return np.asarray(arr[win])
        return np.asarray(self.slots(name)[0][(code & 1, *win)])

    def record(
        self, name: str, y0: int, x0: int, block: np.ndarray, *, note: str | None = None
    ) -> dict[str, Any] | None:
        """Save a corrected window of ``name``: its changed chunks, as one new version.

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.
        y0, x0 : int
            Position of the window's first pixel (level-0 pixels of the array).
        block : numpy.ndarray
            The corrected pixels ``(h, w)``; it is clipped to the array.
        note : str, optional
            Kept in the history entry.

        Returns
        -------
        dict or None
            The history entry of the new version, or None when no pixel changed.

        Raises
        ------
        CorrectionsError
            When the store is read-only or the array cannot be corrected.
        """
        return self.record_blocks(name, [(y0, x0, block)], note=note)

    def record_blocks(
        self,
        name: str,
        blocks: Iterable[tuple[int, int, np.ndarray]],
        *,
        note: str | None = None,
    ) -> dict[str, Any] | None:
        """Save several corrected windows of ``name`` as one version (see :meth:`record`).

        Parameters
        ----------
        name : str
            ``labels`` or ``instances``.
        blocks : iterable of (int, int, numpy.ndarray)
            ``(y0, x0, block)`` windows; later ones win where they overlap.
        note : str, optional
            Kept in the history entry.

        Returns
        -------
        dict or None
            The history entry of the new version, or None when no pixel changed.

        Raises
        ------
        CorrectionsError
            When the store is read-only or the array cannot be corrected.
        """
        if not self.writable:
            raise CorrectionsError(f"{self.path}: corrections are open read-only")
        from .save import save_blocks

        entry, self._meta = save_blocks(self, name, blocks, self._meta, note)
        return entry


def open_corrections(path: Any, *, writable: bool = True) -> Corrections:
    """The corrections of the prediction folder ``path`` (created on the first save).

    Parameters
    ----------
    path : str or os.PathLike
        A prediction folder (``slideseg predict``, the Inference widget).
    writable : bool
        Open for :meth:`Corrections.record` (default); False for reading only.

    Returns
    -------
    Corrections
        The store; empty when nothing was saved yet.

    Raises
    ------
    CorrectionsError
        When its corrections were made on another prediction.
    """
    return Corrections(path, writable=writable)
