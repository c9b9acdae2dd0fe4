"""Drive a progress-yielding job with terminal bars (one per nesting level)."""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from .._progress import Job, Progress, run_job

R = TypeVar("R")


def drive(job: Job[R], *, quiet: bool = False) -> R:
    """Run ``job`` to completion, showing a tqdm bar per progress level on stderr."""
    from tqdm.auto import tqdm

    bars: dict[int, Any] = {}
    # What each level's bar counts; a disabled tqdm bar keeps neither desc nor total.
    kinds: dict[int, tuple[str, int | None]] = {}

    def show(event: Progress) -> None:
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
                file=sys.stderr,
                disable=quiet,
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
