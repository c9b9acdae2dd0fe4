"""Run / Cancel wiring shared by the widgets: one core job at a time, reported on a RunBar."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._runner import start_job


class JobPanel:
    """Mixin for a widget with a ``bar`` (:class:`._form.RunBar`) and a ``_progress`` slot.

    Subclasses build their job's arguments, call :meth:`launch`, and may override
    :meth:`on_aborted` to say what a cancelled run left behind.
    """

    worker: Any = None
    _started: float = 0.0

    def job_arguments_or_error(self, title: str) -> dict[str, Any] | None:
        """``self.job_arguments()``, or ``None`` after showing a user error in one line.

        User errors are those of :func:`napari_sa2net.errors.user_message` (a bad value, an
        output folder that cannot be created); anything else is a bug and propagates.
        """
        from napari.utils.notifications import show_error

        from ..errors import user_message

        try:
            return self.job_arguments()
        except Exception as err:
            message = user_message(err)
            if message is None:
                raise
            show_error(f"{title}: {message}")
            return None

    def launch(
        self, job: Any, title: str, on_result: Callable[[Any], Any], status: str = "starting…"
    ) -> None:
        """Run ``job`` in a worker thread; progress goes to ``_progress``, errors to the bar."""
        self._started = time.monotonic()
        self.bar.busy(True)
        self.bar.say(status)
        self.worker = start_job(
            job,
            title=title,
            on_result=on_result,
            on_progress=self._progress,
            on_error=lambda err: self.bar.say(f"failed: {err}"),
            on_finished=self._job_finished,
        )

    def request_stop(self, status: str = "cancelling…") -> None:
        """Ask the running job to stop at its next yield (one batch); its cleanup runs first."""
        if self.worker is not None:
            self.bar.say(status)
            self.worker.quit()

    def elapsed(self) -> float:
        """Seconds since the current job started."""
        return time.monotonic() - self._started

    def on_aborted(self) -> None:
        """Called on the main thread when a job ended because the user stopped it."""

    def _job_finished(self) -> None:
        if self.worker is not None and self.worker.abort_requested:
            self.on_aborted()
        self.worker = None
        self.bar.busy(False)
