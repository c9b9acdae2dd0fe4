"""Running the engine on ``dask.distributed`` workers: torch threads sized to each worker's share.

A worker process that runs forward passes with torch's default thread count (every core of its
machine) fights the other worker processes on that machine: two single-threaded worker processes
on 2 cores each ran 2 torch threads, and a 4096² slide took 2× as long as with local threads.
:func:`share_cores` gives every worker ``usable cores of its host ÷ worker processes on that
host`` threads, once per run, before the predictor is sent to them; like a local run, the
workers keep freed pages for the next forward pass (on a worker without it a 512² tile took
1.0 s instead of 0.45-0.6 s) and hand them back at the end (:func:`release`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def _identity() -> tuple[str, int, int]:
    """``(host, pid, usable cores)`` of the process this runs in."""
    import os
    import socket

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return socket.gethostname(), os.getpid(), cores


def threads_per_worker(identities: dict[str, tuple[str, int, int]]) -> dict[str, int]:
    """Torch threads per worker address from each worker's ``(host, pid, cores)``.

    Worker processes on one host split its cores evenly (workers of one process, as in an
    in-process cluster, count once); at least one thread each.
    """
    processes: dict[str, set[int]] = defaultdict(set)
    for host, pid, _ in identities.values():
        processes[host].add(pid)
    return {
        address: max(1, cores // len(processes[host]))
        for address, (host, _, cores) in identities.items()
    }


def _set_threads(plan: dict[str, int], dask_worker: Any = None) -> int:
    import torch

    from ..memory import keep_freed_memory

    threads = plan[dask_worker.address]
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    keep_freed_memory()  # as in a local run: forward passes reuse their pages
    return threads


def release(client: Any) -> None:
    """Hand the workers' freed memory back to their systems (the end of a run)."""
    from ..memory import release_memory

    client.run(release_memory)


def share_cores(client: Any) -> dict[str, int]:
    """Set torch's thread count (and keep freed pages) on every worker; returns the counts."""
    plan = threads_per_worker(client.run(_identity))
    if plan:
        client.run(_set_threads, plan)
    return plan
