"""Models saved during this napari session, shared between the finetune and segment widgets.

The finetune widget registers each checkpoint it saves; every model picker lists them after the
bundled models and refreshes when the registry changes.
"""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal


class SessionModels:
    """An ordered, duplicate-free list of checkpoint paths with a ``changed`` signal."""

    changed = Signal()

    def __init__(self) -> None:
        self._paths: list[Path] = []

    def add(self, path: str | Path) -> Path:
        """Register a saved checkpoint (moved to the top if already known) and notify pickers."""
        path = Path(path).resolve()
        if path in self._paths:
            self._paths.remove(path)
        self._paths.insert(0, path)
        self.changed.emit()
        return path

    def paths(self) -> list[Path]:
        """Registered checkpoints, newest first, that still exist on disk."""
        return [path for path in self._paths if path.is_file()]

    def clear(self) -> None:
        """Forget every registered checkpoint (tests)."""
        self._paths.clear()
        self.changed.emit()


#: The registry every widget of this process shares.
SESSION_MODELS = SessionModels()
