"""Run a progress-yielding core job in a napari thread worker.

A job is a generator that yields :class:`napari_sa2net._progress.Progress` events and returns its
result (see ``DEVELOPING.md``). :func:`start_job` runs it in a worker thread, shows one nested
``napari.utils.progress`` bar per event level (0: files / epochs, 1: tiles / batches), turns
expected errors into notifications and hands the result to a callback on the main thread.
Cancelling stops the generator at its next ``yield`` and closes it in the worker thread, so the
job's own ``finally`` / ``GeneratorExit`` cleanup removes partial output before ``on_finished``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import notification_manager, show_error, show_warning
from superqt.utils._qthreading import GeneratorWorker

from .._progress import Cancelled, Job, Progress

#: Errors a user can cause and fix (bad path, existing output, bad value): shown as a one-line
#: notification with the job's message, never as a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileExistsError,
    FileNotFoundError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
)


class JobWorker(GeneratorWorker):
    """A generator worker that closes its generator in the worker thread when it stops.

    superqt's worker only breaks out of its loop on ``quit()``; closing the generator here raises
    ``GeneratorExit`` at the job's current ``yield`` so its cleanup runs before ``finished``.
    """

    def work(self) -> Any:
        try:
            return super().work()
        finally:
            self._gen.close()


def _drive(job: Job[Any]) -> Job[Any]:
    return (yield from job)


class ProgressBars:
    """Nested napari progress bars, one per event level, re-created when a stage changes."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._bars: dict[int, progress] = {}

    def show(self, event: Progress) -> None:
        """Move the bar of ``event.level`` to ``event.current``, creating it when needed."""
        total = int(event.total or 0)
        bar = self._bars.get(event.level)
        if bar is None or bar.total != total or not bar.desc.startswith(self._desc(event)):
            self.close(from_level=event.level)
            parent = self._bars.get(event.level - 1)
            bar = progress(total=total, desc=self._desc(event), nest_under=parent)
            self._bars[event.level] = bar
        if event.current != bar.n:
            bar.update(event.current - bar.n)
        if event.message:
            bar.set_description(f"{self._desc(event)}: {event.message}")

    def _desc(self, event: Progress) -> str:
        return f"{self.title} {event.stage}" if event.level == 0 else event.stage

    def close(self, from_level: int = 0) -> None:
        """Close the bars of ``from_level`` and every deeper level."""
        for level in sorted(self._bars, reverse=True):
            if level >= from_level:
                self._bars.pop(level).close()


def notify_error(exc: BaseException, title: str) -> None:
    """Show ``exc`` as a napari notification: one line for expected errors, else the traceback."""
    if isinstance(exc, Cancelled):
        show_warning(f"{title}: cancelled")
    elif isinstance(exc, EXPECTED_ERRORS):
        show_error(f"{title}: {exc}")
    elif isinstance(exc, MemoryError):
        show_error(f"{title}: out of memory; choose a smaller tile or batch size and run again.")
    else:
        notification_manager.receive_error(type(exc), exc, exc.__traceback__)


def start_job(
    job: Job[Any],
    *,
    title: str,
    on_result: Callable[[Any], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    show_progress: bool = True,
) -> JobWorker:
    """Run a job generator in a napari worker thread and start it.

    Parameters
    ----------
    job : generator
        A started-nothing-yet job, e.g. ``segment_job(image, model=...)``; it yields ``Progress``
        events and returns its result.
    title : str
        Short name shown on the progress bars and in error notifications ("SA2-Net segment").
    on_result : callable, optional
        Called on the main thread with the job's return value when it completes (not when it is
        cancelled or fails).
    on_progress : callable, optional
        Called on the main thread with each ``Progress`` event, after the bars are updated.
    on_error : callable, optional
        Called on the main thread with the exception after the notification was shown.
    on_finished : callable, optional
        Called on the main thread last, in every case (done, cancelled, failed), after the job's
        cleanup has run: re-enable buttons here.
    show_progress : bool
        Show napari progress bars (the activity dock).

    Returns
    -------
    JobWorker
        The running worker; ``worker.quit()`` cancels the job at its next ``yield``.
    """
    bars = ProgressBars(title) if show_progress else None

    def yielded(event: Progress) -> None:
        if bars is not None and isinstance(event, Progress):
            bars.show(event)
        if on_progress is not None:
            on_progress(event)

    def errored(exc: BaseException) -> None:
        notify_error(exc, title)
        if on_error is not None:
            on_error(exc)

    def finished() -> None:
        if bars is not None:
            bars.close()
        if on_finished is not None:
            on_finished()

    connect: dict[str, Any] = {"yielded": yielded, "errored": errored, "finished": finished}
    if on_result is not None:
        connect["returned"] = on_result
    worker = create_worker(_drive, job, _worker_class=JobWorker, _connect=connect)
    return worker
