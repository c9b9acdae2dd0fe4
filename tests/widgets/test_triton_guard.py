"""The triton guard hides triton only when a system LLVM is loaded and triton is not yet."""

from __future__ import annotations

import sys

import pytest

from napari_sa2net._widgets._triton_guard import block_triton_after_mesa, system_llvm_loaded

MESA = "7f0000-7f1000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n"
PLAIN = "7f0000-7f1000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"


def test_detects_a_system_llvm():
    assert system_llvm_loaded(MESA) and not system_llvm_loaded(PLAIN)


@pytest.fixture
def no_triton():
    """sys.modules without triton during the test, restored exactly afterwards."""
    saved = sys.modules.pop("triton", "absent")
    yield
    sys.modules.pop("triton", None)
    if saved != "absent":
        sys.modules["triton"] = saved


def test_blocks_triton_only_next_to_mesa(no_triton):
    assert not block_triton_after_mesa(PLAIN)
    assert "triton" not in sys.modules
    assert block_triton_after_mesa(MESA)
    assert sys.modules["triton"] is None
    with pytest.raises(ImportError):
        import triton  # noqa: F401


def test_leaves_an_already_loaded_triton(monkeypatch):
    sentinel = object()
    monkeypatch.setitem(sys.modules, "triton", sentinel)
    assert not block_triton_after_mesa(MESA)
    assert sys.modules["triton"] is sentinel
