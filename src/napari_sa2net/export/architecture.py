"""One self-contained Python file holding the network, for bioimage.io ``pytorch_state_dict``.

The spec describes an architecture as a single source file plus a callable and its keyword
arguments. The file is generated from this package's own modules (normalization, blocks, SA2,
AuA, SA2Net and the probability wrapper), concatenated in import order with their relative
imports removed: the network a package carries is the code that trained it, never a second copy
that could drift from it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from typing import Any

#: Modules of ``napari_sa2net`` that make up the network, each after the ones it imports.
MODULES = (
    "normalization",
    "model.blocks",
    "model.sa2",
    "model.aua",
    "model.sa2net",
    "export.network",
)

#: The callable of the generated file that builds the network.
CALLABLE = "SA2NetProbabilities"

#: File name of the generated source inside a package.
FILE_NAME = "sa2net_architecture.py"

HEADER = '''"""SA2-Net as exported by napari-sa2net {version} (the paper is cited below).

Generated from the napari-sa2net modules {modules}; needs only torch and numpy.
`{callable}(width, in_channels, num_classes, name, centre)` builds the network; its forward maps
an N x C x H x W normalized float tensor (H, W multiples of 16 for the TorchScript weights, any
size here) to probabilities N x K x H x W (the classes, then the centre map if there is one).
"""
'''


def architecture_source() -> str:
    """The text of the self-contained architecture file."""
    from .. import __version__

    names = ", ".join(MODULES)
    parts = [HEADER.format(version=__version__, modules=names, callable=CALLABLE)]
    parts.append("from __future__ import annotations\n")
    for name in MODULES:
        module = importlib.import_module(f"napari_sa2net.{name}")
        parts.append(f"# --- napari_sa2net.{name} ---\n\n{_without_package_imports(module)}")
    return "\n\n".join(parts)


def architecture_kwargs(model: Any) -> dict[str, Any]:
    """Keyword arguments of :data:`CALLABLE` that rebuild ``model``'s network."""
    return {
        "width": int(model.config.width),
        "in_channels": int(model.in_channels),
        "num_classes": int(model.num_classes),
        "name": str(model.config.name),
        "centre": bool(model.centre),
    }


def _without_package_imports(module: Any) -> str:
    """A module's source without its relative and ``__future__`` imports (top level only)."""
    text = inspect.getsource(module)
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.parse(text).body:
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__"):
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)
