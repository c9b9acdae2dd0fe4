"""The "Export for bioimage.io…" button: a model in, a package (``.zip``) out, in the background.

It runs :func:`napari_sa2net.export.export_job` through the job runner like every other job
(progress in the activity dock, one-line errors), so the widget stays responsive while the
network is traced and the package validated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog, QPushButton

from ._runner import start_job

TITLE = "SA2-Net export"


def default_package_path(model: str | Path) -> Path:
    """Beside a checkpoint (``mine.pt`` → ``mine.zip``), else ``~/sa2net-models/<name>.zip``."""
    if isinstance(model, Path):
        return model.with_suffix(".zip")
    return Path.home() / "sa2net-models" / f"{model}.zip"


class ExportButton(QPushButton):
    """Exports the model ``source()`` names (a bundled name or a checkpoint path).

    Parameters
    ----------
    source : callable
        Returns the model to export, or ``None`` when there is none.
    say : callable
        Shows a status line (the widget's run bar).
    """

    def __init__(
        self, source: Callable[[], str | Path | None], say: Callable[[str], None]
    ) -> None:
        super().__init__("Export for bioimage.io…")
        self.setToolTip(
            "Write the finetuned model (before a run: the 'Start from' model) as a bioimage.io "
            "package (.zip) that QuPath, deepImageJ, ilastik and bioimageio.core run, and that "
            "the model lists here open again."
        )
        self._source, self._say = source, say
        self.worker: Any = None
        self.clicked.connect(lambda: self.export())

    def export(self, path: str | Path | None = None) -> None:
        """Export to ``path``, or to the file the user picks in a save dialog."""
        model = self._source()
        if model is None:
            self._say("nothing to export: pick a model or finetune one first")
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export for bioimage.io", str(default_package_path(model)),
                "bioimage.io packages (*.zip)",
            )  # fmt: skip
            if not path:
                return
        path = Path(path) if str(path).endswith(".zip") else Path(f"{path}.zip")
        from ..export import export_job

        self.setEnabled(False)
        self._say(f"exporting {Path(str(model)).name} to {path}…")
        self.worker = start_job(
            export_job(model, path, overwrite=True),  # the save dialog asked before replacing
            title=TITLE,
            on_result=lambda result: self._say(
                f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.seconds:.0f} s)"
            ),
            on_error=lambda err: self._say(f"export failed: {err}"),
            on_finished=self._finished,
        )

    def _finished(self) -> None:
        self.worker = None
        self.setEnabled(True)
