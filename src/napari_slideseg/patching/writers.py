"""Writing patch pixels: one :class:`PatchWriter` per output format.

A writer stores the image, mask and (for instance patches) type-map pixels
of each kept patch and returns the reference the manifest records for it.
:func:`patch_writer` picks the writer for a ``fmt``:

``png`` (:class:`PngPatchWriter`)
    One file per patch under ``images/``, ``masks/`` and ``types/``,
    encoded and written atomically on a thread pool.
``zarr`` (:class:`ZarrPatchWriter`)
    Appended to the ``images`` and ``masks`` arrays of ``patches.zarr``,
    one chunk per patch.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> import numpy as np
>>> out = Path(tempfile.mkdtemp())
>>> with PngPatchWriter(out) as w:
...     ref = w.write_image("a.png", np.zeros((4, 4, 3), np.uint8))
...     w.flush()
>>> ref, (out / "images" / "a.png").exists()
('images/a.png', True)
"""

from __future__ import annotations

import abc
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..options import PatchFormat, values
from .config import PatchError
from .png_encode import write_png

FORMATS = tuple(values(PatchFormat))


class PatchWriter(abc.ABC):
    """Where a patch run puts its pixels; a context manager (``open`` ... ``close``).

    Each ``write_*`` method stores one patch's pixels and returns the
    reference the manifest records (a path relative to the run folder).
    Writes may finish in the background: :meth:`flush` waits for them and
    raises the first error.
    """

    def __enter__(self) -> PatchWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the output (folders, arrays, threads)."""

    @abc.abstractmethod
    def write_image(self, name: str, image: np.ndarray) -> str:
        """Store an image patch.

        Parameters
        ----------
        name : str
            The patch's file name (``<slide>_L<level>_y<y>_x<x>.png``).
        image : numpy.ndarray
            Its pixels.

        Returns
        -------
        str
            The manifest's ``image`` entry.
        """

    @abc.abstractmethod
    def write_mask(self, name: str, mask: np.ndarray) -> str:
        """Store the mask patch aligned with an image patch; see :meth:`write_image`.

        Parameters
        ----------
        name : str
            The patch's file name.
        mask : numpy.ndarray
            Its labels.

        Returns
        -------
        str
            The manifest's ``mask`` entry.
        """

    def write_types(self, name: str, types: np.ndarray) -> str:
        """Store the nucleus-type patch of an instance patch.

        Parameters
        ----------
        name : str
            The patch's file name.
        types : numpy.ndarray
            Its type labels (uint8).

        Returns
        -------
        str
            The manifest's ``types`` entry.

        Raises
        ------
        PatchError
            This format holds no type maps.
        """
        raise PatchError("instance patches are written as PNG (fmt='png')")

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Wait for every write so far; raise the first that failed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads and files; pending writes are cancelled."""


class PngPatchWriter(PatchWriter):
    """One PNG per patch under ``images/``, ``masks/`` and ``types/`` of ``out``.

    Parameters
    ----------
    out : Path
        The run folder.
    skip_existing : bool
        Leave a file that is already there (resuming a run).
    workers : int
        Encoder threads.
    """

    def __init__(self, out: Path, *, skip_existing: bool = False, workers: int = 2) -> None:
        self.out = Path(out)
        self.skip_existing = skip_existing
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def open(self) -> None:
        """Start the encoder threads."""
        self._pool = ThreadPoolExecutor(max_workers=self.workers)

    def _write(self, folder: str, name: str, arr: Any) -> str:
        path = self.out / folder / name
        path.parent.mkdir(exist_ok=True)
        if not (self.skip_existing and path.exists()):
            if self._pool is None:
                raise RuntimeError("PngPatchWriter used outside its with block (call open)")
            self._pending.append(self._pool.submit(write_png, path, arr()))
        return f"{folder}/{name}"

    def write_image(self, name: str, image: np.ndarray) -> str:
        """Queue ``images/<name>``; see :meth:`PatchWriter.write_image`.

        Parameters
        ----------
        name : str
            The file name.
        image : numpy.ndarray
            The pixels.

        Returns
        -------
        str
            ``images/<name>``.
        """
        return self._write("images", name, lambda: image)

    def write_mask(self, name: str, mask: np.ndarray) -> str:
        """Queue ``masks/<name>``: uint8 labels, or uint16 when a label exceeds 255.

        Parameters
        ----------
        name : str
            The file name.
        mask : numpy.ndarray
            The labels.

        Returns
        -------
        str
            ``masks/<name>``.
        """
        return self._write(
            "masks", name, lambda: mask.astype(np.uint16 if mask.max() > 255 else np.uint8)
        )

    def write_types(self, name: str, types: np.ndarray) -> str:
        """Queue ``types/<name>``.

        Parameters
        ----------
        name : str
            The file name.
        types : numpy.ndarray
            The type labels.

        Returns
        -------
        str
            ``types/<name>``.
        """
        return self._write("types", name, lambda: types)

    def flush(self) -> None:
        """Wait for the queued files; raise the first error."""
        for f in self._pending:
            f.result()
        self._pending.clear()

    def close(self) -> None:
        """Stop the threads, cancelling files not started yet."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _empty_array(root: Any, name: str, item: tuple[int, ...], dtype: Any) -> Any:
    """``root[name]`` with no rows, chunked one patch per chunk (a rerun empties it).

    An array of an earlier run (``overwrite="skip"`` rewrites a zarr run from
    its first patch) is emptied; one of another patch shape or dtype is replaced.
    """
    old = root.get(name)
    if old is not None and tuple(old.shape[1:]) == item and old.dtype == np.dtype(dtype):
        old.resize((0, *item))
        return old
    if old is not None:
        del root[name]
    return root.create_array(name, shape=(0, *item), chunks=(1, *item), dtype=dtype)


class ZarrPatchWriter(PatchWriter):
    """Patches appended to the ``images`` (and ``masks``) arrays of ``out/patches.zarr``.

    Opening empties both arrays, so a resumed zarr run writes every patch
    again.

    Parameters
    ----------
    out : Path
        The run folder.
    size : int
        The patch edge.
    channels : tuple of int
        The image's trailing shape (``(3,)`` for RGB, ``()`` for grey).
    dtype : numpy.dtype
        The image dtype.
    mask_dtype : numpy.dtype or None
        The mask array's dtype; ``None``: no mask array.
    """

    def __init__(
        self,
        out: Path,
        *,
        size: int,
        channels: tuple[int, ...],
        dtype: Any,
        mask_dtype: Any | None = None,
    ) -> None:
        self.out = Path(out)
        self.size = size
        self.channels = tuple(channels)
        self.dtype = dtype
        self.mask_dtype = mask_dtype
        self._images: Any = None
        self._masks: Any = None

    def open(self) -> None:
        """Create (or empty) the arrays."""
        import zarr

        root = zarr.open_group(str(self.out / "patches.zarr"), mode="a")
        s, ch = self.size, self.channels
        self._images = _empty_array(root, "images", (s, s, *ch), self.dtype)
        if self.mask_dtype is not None:
            self._masks = _empty_array(root, "masks", (s, s), self.mask_dtype)

    @staticmethod
    def _append(arr: Any, values: np.ndarray) -> int:
        idx = arr.shape[0]
        arr.resize((idx + 1, *arr.shape[1:]))
        arr[idx] = values
        return idx

    def write_image(self, name: str, image: np.ndarray) -> str:
        """Append to ``images``; see :meth:`PatchWriter.write_image`.

        Parameters
        ----------
        name : str
            Unused (zarr patches are numbered).
        image : numpy.ndarray
            The pixels.

        Returns
        -------
        str
            ``patches.zarr/images/<index>``.
        """
        return f"patches.zarr/images/{self._append(self._images, image)}"

    def write_mask(self, name: str, mask: np.ndarray) -> str:
        """Append to ``masks``; see :meth:`PatchWriter.write_mask`.

        Parameters
        ----------
        name : str
            Unused.
        mask : numpy.ndarray
            The labels.

        Returns
        -------
        str
            ``patches.zarr/masks/<index>``.

        Raises
        ------
        PatchError
            The writer was made without a mask array.
        """
        if self._masks is None:
            raise PatchError("this zarr patch writer has no mask array (mask_dtype=None)")
        return f"patches.zarr/masks/{self._append(self._masks, mask)}"


def patch_writer(
    fmt: str,
    out: Path,
    *,
    skip_existing: bool = False,
    workers: int = 2,
    size: int = 512,
    channels: tuple[int, ...] = (),
    dtype: Any = np.uint8,
    mask_dtype: Any | None = None,
) -> PatchWriter:
    """The writer for output format ``fmt`` (not opened yet).

    Parameters
    ----------
    fmt : str
        ``"png"`` or ``"zarr"``.
    out : Path
        The run folder.
    skip_existing, workers
        PNG only: see :class:`PngPatchWriter`.
    size, channels, dtype, mask_dtype
        Zarr only: see :class:`ZarrPatchWriter`.

    Returns
    -------
    PatchWriter
        A :class:`PngPatchWriter` or a :class:`ZarrPatchWriter`.

    Raises
    ------
    PatchError
        ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "png":
        return PngPatchWriter(out, skip_existing=skip_existing, workers=workers)
    if fmt == "zarr":
        return ZarrPatchWriter(
            out, size=size, channels=channels, dtype=dtype, mask_dtype=mask_dtype
        )
    raise PatchError(f"fmt must be 'png' or 'zarr', not {fmt!r}")
