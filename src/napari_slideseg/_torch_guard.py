"""Keep torch from importing triton in processes that have no NVIDIA GPU.

CUDA builds of torch ship triton, and the first ``optimizer.step()`` (or
``torch.compile``, or torchvision's ops) imports ``torch._dynamo``, which
imports triton. triton bundles its own LLVM; loaded next to Qt's OpenGL on
Mesa (which loads another LLVM) it crashed the whole napari process here
(segmentation fault under Xvfb): the sample action, the README's console
recipe and the widgets all died that way. triton only runs on NVIDIA GPUs,
so where there is none it is hidden (``import triton`` raises ImportError,
which torch handles) before anything in this package can import torch. The
check reads device nodes, never imports torch, so the npe2 reader hook
stays light. With a GPU, or when triton or torch was already imported by
someone else, nothing is changed.
"""

from __future__ import annotations

import os
import sys

#: Device nodes that exist where an NVIDIA driver is loaded (Linux, WSL's /dev/dxg).
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/proc/driver/nvidia/version")


def has_nvidia_gpu() -> bool:
    """Whether this machine could run triton (an NVIDIA driver is present)."""
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    return any(os.path.exists(p) for p in _GPU_NODES)


def hide_triton_without_gpu() -> bool:
    """Hide triton from this process when it has no NVIDIA GPU; return whether it did."""
    if "triton" in sys.modules or not sys.platform.startswith("linux"):
        return False
    if has_nvidia_gpu():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
    return True
