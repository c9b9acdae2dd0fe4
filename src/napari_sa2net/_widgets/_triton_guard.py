"""Keep triton's LLVM out of a napari process whose OpenGL has already loaded a system LLVM.

torch from PyPI (the CUDA build) ships triton, which carries its own LLVM. The first torch
optimizer imports ``torch._dynamo``, which imports triton only to learn whether
``torch.compile`` could use it. When napari's canvas runs on Mesa (software rendering under
Xvfb or remote desktops, Intel and AMD graphics), Mesa's ``libLLVM`` is already in the process,
and loading triton's LLVM after it crashes napari (segmentation fault; reproduced with torch
2.13 + triton, napari 0.7 and Mesa's libLLVM-15). We never use ``torch.compile``, so in that
case the widgets hide triton from torch; training and inference, CUDA included, are unaffected.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def system_llvm_loaded(maps: str | None = None) -> bool:
    """True if a shared ``libLLVM`` (Mesa's) is mapped into this process (Linux; else False)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return False
    return any("libLLVM" in line for line in maps.splitlines())


def block_triton_after_mesa(maps: str | None = None) -> bool:
    """Make ``import triton`` fail when a system LLVM is loaded and triton is not yet.

    Returns True when it blocked triton. Does nothing when triton is already imported (then
    it was loaded first, which is safe) or when no system LLVM is present.
    """
    if "triton" in sys.modules or not system_llvm_loaded(maps):
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
    log.info("napari-sa2net: triton hidden from torch (Mesa's LLVM is loaded; it would crash)")
    return True
