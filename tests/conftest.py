"""Shared pytest setup: markers for slow and GPU tests, small deterministic seeds."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("QT_API", "pyside6")

# torch from PyPI (the CUDA build, what pip installs on Python 3.10 / 3.12 here) brings triton,
# whose bundled LLVM segfaults when it loads after Mesa's libLLVM (loaded by napari's OpenGL
# canvas under Xvfb). The first torch optimizer imports it (torch._dynamo): load it now,
# before any test makes a canvas. The CPU build of torch has no triton and skips this.
if importlib.util.find_spec("triton") is not None:
    import torch._dynamo  # noqa: F401


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--runslow"):
        skip_slow = pytest.mark.skip(reason="slow: pass --runslow to run it")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


class _Payload:
    """Unpickling this creates ``marker``: what a hostile file could do with any callable."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def write_payload():
    """``write(path, marker, legacy=False, wrap=None)``: a hostile ``.pt`` / pickle file.

    Loading it unsafely creates ``marker``. ``legacy`` writes a bare pickle instead of torch's
    zip format; ``wrap(payload)`` embeds the payload in a larger object (a checkpoint dict).
    """
    import pickle

    import torch

    def write(path, marker, *, legacy=False, wrap=None):
        obj = _Payload(marker) if wrap is None else wrap(_Payload(marker))
        if legacy:
            path.write_bytes(pickle.dumps(obj))
        else:
            torch.save(obj, path)
        return path

    return write
