"""Typed progress events shared by every long job (training, inference, batch runs).

Long jobs are generators that ``yield`` :class:`Progress` events and ``return`` their result.
The CLI drives them with a terminal bar, the napari widgets with a ``thread_worker`` and nested
progress bars; both see the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")

Job = Generator["Progress", None, R]


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    Parameters
    ----------
    stage : str
        What is counted: ``"epoch"``, ``"batch"``, ``"tile"``, ``"file"``, ``"write"``, ...
    current : int
        Steps done so far in this stage (1-based once a step has finished).
    total : int or None
        Steps in this stage, ``None`` when unknown.
    level : int
        Nesting depth: 0 for the outer loop (files, epochs), 1 for the inner one (tiles, batches).
    message : str
        Human-readable status line.
    metrics : Mapping[str, float]
        Figures worth showing (loss, val_dice, MP/s, ...).
    payload : object, optional
        Something a consumer may display, such as a live preview of partial results (e.g.
        ``inference.runner.ProbabilityPreview`` / ``StoredChunk``); ``None`` for most events.
        Consumers that do not know the payload ignore it: the other fields stay meaningful.
        Keyword-only, so subclasses keep adding positional fields after ``metrics``.
    """

    stage: str
    current: int
    total: int | None = None
    level: int = 0
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    payload: Any = field(default=None, kw_only=True)

    @property
    def fraction(self) -> float | None:
        """Fraction done in ``[0, 1]``, or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.current / self.total)


class Cancelled(Exception):
    """Raised inside a job when the user asked it to stop; partial output has been removed."""


def run_job(job: Job[R], on_progress: Callable[[Progress], Any] | None = None) -> R:
    """Exhaust a job generator, passing each event to ``on_progress``, and return its result."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(event)
