"""Drive a progress-yielding job: tqdm bars on a terminal, plain lines in a log file.

On a terminal every event level gets its own tqdm bar (outer loop above inner loop). When stderr
is not a terminal (``sa2net segment ... 2> run.log``, a cluster job's log, a pipe) bars would
fill the file with carriage returns and escape codes, so the same events are written as plain
lines instead: every level-0 step (file, epoch, plane), and an inner step when its stage starts,
when it ends, and at most every :data:`LINE_EVERY_S` seconds between.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO, TypeVar

from .._progress import Job, Progress, run_job

R = TypeVar("R")

#: Seconds between two lines of one inner stage in a log file.
LINE_EVERY_S = 30.0


def drive(
    job: Job[R], *, quiet: bool = False, stream: TextIO | None = None, record: bool = False
) -> R:
    """Run ``job`` to completion, showing its progress on ``stream`` (default stderr).

    ``record=True`` also keeps a line on stdout for each outer step that carries figures (a
    finished epoch with its validation scores), which a bar would forget; a log file gets those
    lines anyway, so they are not written twice there.
    """
    stream = sys.stderr if stream is None else stream
    if quiet:
        return run_job(job, _record_line if record else None)
    if not is_terminal(stream):
        return run_job(job, LineLog(stream))
    return _drive_bars(job, stream, record)


def _record_line(event: Progress, write=print) -> None:
    if event.level == 0 and event.metrics:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in event.metrics.items())
        write(f"{event.stage} {event.current}: {scores}")


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` shows bars (a tty); a log file or pipe gets plain lines."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


def _figures(event: Progress) -> str:
    return "".join(f" {k}={v:.4g}" for k, v in event.metrics.items())


class LineLog:
    """Progress events as plain lines (no carriage returns, no escape codes)."""

    def __init__(self, stream: TextIO, every_s: float = LINE_EVERY_S) -> None:
        self.stream = stream
        self.every_s = every_s
        self._last: dict[int, tuple[tuple[str, int | None], float]] = {}

    def __call__(self, event: Progress) -> None:
        kind = (event.stage, event.total)
        now = time.monotonic()
        last = self._last.get(event.level)
        finished = event.total is not None and event.current >= event.total
        due = (
            event.level == 0
            or last is None
            or last[0] != kind
            or finished
            or now - last[1] >= self.every_s
        )
        if not due:
            return
        self._last[event.level] = (kind, now)
        count = f"{event.current}/{event.total}" if event.total else f"{event.current}"
        indent = "  " * event.level
        self.stream.write(f"{indent}{event.stage} {count}{_figures(event)}\n")
        self.stream.flush()


def _drive_bars(job: Job[R], stream: TextIO, record: bool = False) -> R:
    from tqdm.auto import tqdm

    bars: dict[int, Any] = {}
    # What each level's bar counts (a new stage or total gets a new bar).
    kinds: dict[int, tuple[str, int | None]] = {}

    def show(event: Progress) -> None:
        if record:
            _record_line(event, tqdm.write)  # above the bars, kept when they move on
        bar = bars.get(event.level)
        if bar is None or kinds[event.level] != (event.stage, event.total):
            if bar is not None:
                bar.close()
            kinds[event.level] = (event.stage, event.total)
            bar = tqdm(
                total=event.total,
                desc=event.stage,
                position=event.level,
                leave=event.level == 0,
                file=stream,
            )
            bars[event.level] = bar
        bar.n = event.current
        postfix = {k: f"{v:.4g}" for k, v in event.metrics.items()}
        if postfix:
            bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        return run_job(job, show)
    finally:
        for bar in bars.values():
            bar.close()
