"""Run a progress-yielding core job in a worker thread (superqt's worker, as napari's is).

A job is a generator that yields :class:`napari_sa2net._progress.Progress` events and returns its
result (see ``DEVELOPING.md``). :func:`start_job` runs it in a worker thread, shows one nested
``napari.utils.progress`` bar per event level (0: files / epochs, 1: tiles / batches), turns
user errors into one-line notifications and hands the result to a callback on the main thread.
Cancelling stops the generator at its next ``yield`` and closes it in the worker thread, so the
job's own ``finally`` / ``GeneratorExit`` cleanup removes partial output before ``on_finished``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.utils import progress
from napari.utils.notifications import notification_manager, show_error, show_warning
from superqt.utils import GeneratorWorker, create_worker

from .._progress import Cancelled, Job, Progress
from ..errors import user_message


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


#: Group the inner bar under the outer one (``nest_under``) in napari's activity dialog. Off:
#: with napari 0.9.2 the dialog's grouped bars segfault when the group is deleted (its
#: ``maybe_hide_progress_indicator`` visits half-destroyed bars when the job ends); stacked
#: bars in level order show the same information safely.
NEST = False


class ProgressBars:
    """napari progress bars, one per event level (outer first), reused for the whole job.

    napari's Qt progress bars call ``processEvents`` while updating, so the next event can
    arrive while one is being shown; such events are queued and applied afterwards, and bars
    are never closed and re-created mid-job (a new stage re-labels and resets its level's bar),
    which keeps napari's activity dialog from touching half-deleted bars.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._bars: dict[int, progress] = {}
        self._pending: dict[int, Progress] = {}
        self._busy = False
        self._closing = False

    def show(self, event: Progress) -> None:
        """Move the bar of ``event.level`` to ``event.current``, creating it when needed."""
        if self._closing:
            return
        self._pending[event.level] = event
        if self._busy:
            return
        self._busy = True
        try:
            while self._pending and not self._closing:
                level = min(self._pending)
                self._apply(self._pending.pop(level))
        finally:
            self._busy = False
        if self._closing:
            self.close()

    def _apply(self, event: Progress) -> None:
        total = int(event.total or 0)
        label = self._desc(event)
        if event.message:
            label = f"{label}: {event.message}"
        bar = self._bars.get(event.level)
        if bar is None:
            parent = self._bars.get(event.level - 1)
            bar = progress(total=total, desc=label, nest_under=parent if NEST else None)
            self._bars[event.level] = bar
        elif bar.total != total:
            bar.total = total
        if event.current != bar.n:
            bar.update(event.current - bar.n)
        if bar.desc.rstrip(": ") != label:
            bar.set_description(label)

    def _desc(self, event: Progress) -> str:
        return f"{self.title} {event.stage}" if event.level == 0 else event.stage

    def close(self) -> None:
        """Close every bar, deepest level first (after the update in progress, if any)."""
        self._closing = True
        self._pending.clear()
        if self._busy:
            return
        for level in sorted(self._bars, reverse=True):
            self._bars.pop(level).close()


def notify_error(exc: BaseException, title: str) -> None:
    """Show ``exc`` as a napari notification: one line for user errors, else the traceback.

    What counts as a user error, and its text, is :func:`napari_sa2net.errors.user_message`
    (the same as on the command line).
    """
    if isinstance(exc, Cancelled):
        show_warning(f"{title}: cancelled")
        return
    message = user_message(exc)
    if message is not None:
        show_error(f"{title}: {message}")
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
    ended: list[bool] = []  # napari's bars process events while updating: re-entrant calls

    def yielded(event: Progress) -> None:
        if ended:
            return  # ``finished`` already ran inside a bar update; drop the stale event
        if on_progress is not None:
            on_progress(event)
        if bars is not None and isinstance(event, Progress) and not ended:
            bars.show(event)

    def errored(exc: BaseException) -> None:
        notify_error(exc, title)
        if on_error is not None:
            on_error(exc)

    def finished() -> None:
        ended.append(True)
        if bars is not None:
            bars.close()
        if on_finished is not None:
            on_finished()

    connect: dict[str, Any] = {"yielded": yielded, "errored": errored, "finished": finished}
    if on_result is not None:
        connect["returned"] = on_result
    # superqt's create_worker, not napari's: napari 0.9.2's wrapper connects a two-argument
    # lambda to ``errored`` (a TypeError in the event loop whenever a job fails in a viewer).
    return create_worker(_drive, job, _worker_class=JobWorker, _connect=connect)
