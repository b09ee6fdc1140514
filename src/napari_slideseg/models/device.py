"""Which torch device to run on (no Qt, no napari).

Training and inference both resolve ``"auto"`` / ``"cpu"`` / ``"cuda[:N]"`` /
``"mps"`` here, so inference does not import training for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SlideSegError

if TYPE_CHECKING:
    import torch


class DeviceError(SlideSegError, ValueError):
    """A device that is unknown or not present on this machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda > mps > cpu; explicit names are checked and explained.

    Parameters
    ----------
    name : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    DeviceError
        For an unknown name or a device this machine does not have.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r} ({exc})") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            hint = " (this torch is a CPU-only build)" if torch.version.cuda is None else ""
            raise DeviceError(f"device {name!r} asked for but CUDA is not available{hint}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise DeviceError("device 'mps' asked for but MPS is not available")
    return dev


def list_devices() -> list[tuple[str, str]]:
    """``(value, description)`` of every device torch sees (for a dropdown).

    Returns
    -------
    list of tuple of str
        ``auto`` and ``cpu`` first, then each CUDA device (with its free
        memory) and MPS when present.
    """
    import torch

    out = [("auto", "auto (cuda > mps > cpu)"), ("cpu", "cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            out.append(
                (
                    f"cuda:{i}",
                    f"cuda:{i} {torch.cuda.get_device_name(i)} ({free / 2**30:.1f}/{total / 2**30:.1f} GiB free)",
                )
            )
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(("mps", "mps (Apple GPU)"))
    return out


def cpu_only_build() -> bool:
    """Whether torch is a CPU-only build (no CUDA compiled in, none available).

    Returns
    -------
    bool
        True for a CPU-only torch.
    """
    import torch

    return torch.version.cuda is None and not torch.cuda.is_available()
