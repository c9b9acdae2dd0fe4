"""One thread for a job's CPU torch work: the model load, the reach measurement and the runs.

torch runs its CPU operators on an OpenMP team of the thread that calls them, and libgomp
spin-waits at a team's barriers only while the process holds no more OpenMP threads than CPUs.
A job that loaded its model in the caller's thread and predicted in a runner thread held two
teams: on 2 cores the runner then slept on a futex ~250 times per forward pass of a 512² tile,
and each pass took about a tenth longer (0.31-0.35 s against 0.29-0.31 s, alternated processes).
Work handed to :func:`call` and :func:`start` runs on one persistent thread instead, so a CPU job
has one team. Only CPU work comes here: an accelerator's runs keep their own threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

PREFIX = "sa2net-compute"
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix=PREFIX)
        return _pool


def on_compute_thread() -> bool:
    return threading.current_thread().name.startswith(PREFIX)


def uses_compute_thread(device: Any) -> bool:
    """Whether work for ``device`` goes to the compute thread (the CPU's; not accelerators')."""
    return getattr(device, "type", str(device).split(":")[0]) == "cpu"


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on the compute thread, waited for (at once when already there)."""
    if on_compute_thread():
        return fn(*args, **kwargs)
    return _executor().submit(fn, *args, **kwargs).result()


def call_for(where: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """:func:`call` for work on the CPU device ``where``, ``fn(*args, **kwargs)`` in place for an
    accelerator."""
    if uses_compute_thread(where):
        return call(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def start(fn: Callable[..., Any], *args: Any) -> Future:
    """Start ``fn(*args)`` on the compute thread and return its future.

    Called from the compute thread itself (a run nested in another, such as the size estimate's
    sample runs inside a plan), ``fn`` gets a thread of its own (:func:`in_own_thread`): the
    compute thread is busy waiting for it.
    """
    if not on_compute_thread():
        return _executor().submit(fn, *args)
    return in_own_thread(fn, *args)


def in_own_thread(fn: Callable[..., Any], *args: Any) -> Future:
    """Start ``fn(*args)`` in a new daemon thread and return its future."""
    future: Future = Future()

    def body() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # handed to whoever waits on the future
            future.set_exception(err)

    threading.Thread(target=body, daemon=True).start()
    return future
