"""The job runner, driven by a fake job generator: results, progress, errors and cancel."""

from __future__ import annotations

import errno
import threading

import pytest

from napari_sa2net._progress import Progress

pytestmark = pytest.mark.gui

runner = pytest.importorskip("napari_sa2net._widgets._runner")


def counting_job(n: int, log: list[str], gate: threading.Event | None = None):
    """A job with an outer and an inner level that records its cleanup."""
    try:
        for i in range(n):
            yield Progress("file", i, n, level=0, message=f"file {i}")
            for j in range(3):
                if gate is not None:
                    gate.wait(5)
                yield Progress("tile", j + 1, 3, level=1)
        return n * 10
    finally:
        log.append("cleanup")


def failing_job(exc: BaseException):
    yield Progress("tile", 1, 2, level=1)
    raise exc


def run(qtbot, job, **callbacks):
    """Start ``job``; return the worker and a function that waits until it has finished."""
    finished: list[int] = []
    worker = runner.start_job(
        job, title="SA2-Net test", on_finished=lambda: finished.append(1), **callbacks
    )
    return worker, lambda: qtbot.waitUntil(lambda: bool(finished), timeout=10_000)


def test_result_and_progress_reach_the_main_thread(qtbot):
    results, events, log = [], [], []
    main = threading.get_ident()
    _, wait = run(
        qtbot,
        counting_job(2, log),
        on_result=lambda r: results.append((r, threading.get_ident())),
        on_progress=lambda e: events.append((e, threading.get_ident())),
    )
    wait()
    assert results == [(20, main)]
    assert [e.stage for e, _ in events].count("tile") == 6
    assert {thread for _, thread in events} == {main}
    assert log == ["cleanup"]


@pytest.mark.parametrize(
    "exc", [ValueError("tile 3 is too small; use 64 or more"), FileExistsError("out.zarr exists")]
)
def test_expected_errors_become_one_line_notifications(qtbot, monkeypatch, exc):
    shown, errors = [], []
    monkeypatch.setattr(runner, "show_error", shown.append)
    _, wait = run(qtbot, failing_job(exc), on_error=errors.append, on_result=pytest.fail)
    wait()
    assert errors == [exc]
    assert shown == [f"SA2-Net test: {exc}"]


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out.zarr"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        MemoryError(),
    ],
)
def test_user_errors_read_as_on_the_command_line(monkeypatch, exc):
    from napari_sa2net.errors import user_message

    shown = []
    monkeypatch.setattr(runner, "show_error", shown.append)
    runner.notify_error(exc, "SA2-Net test")
    assert shown == [f"SA2-Net test: {user_message(exc)}"] and "; " in shown[0]


def test_unexpected_errors_keep_their_traceback(qtbot, monkeypatch):
    received, shown = [], []
    monkeypatch.setattr(runner, "show_error", shown.append)
    monkeypatch.setattr(
        runner.notification_manager, "receive_error", lambda *a: received.append(a[1])
    )
    _, wait = run(qtbot, failing_job(KeyError("bug")))
    wait()
    assert [type(e) for e in received] == [KeyError]
    assert shown == []


def test_cancel_stops_at_the_next_yield_and_runs_cleanup_first(qtbot):
    log, results, events, seen_at_finish = [], [], [], []
    gate = threading.Event()
    worker = runner.start_job(
        counting_job(100, log, gate),
        title="SA2-Net test",
        on_result=results.append,
        on_progress=events.append,
        on_finished=lambda: seen_at_finish.append(list(log)),
    )
    qtbot.waitUntil(lambda: bool(events), timeout=5000)
    worker.quit()
    gate.set()
    qtbot.waitUntil(lambda: bool(seen_at_finish), timeout=10_000)
    # The job's cleanup ran (in the worker thread) before on_finished; no result was delivered.
    assert seen_at_finish == [["cleanup"]]
    assert results == []
    assert len(events) < 10


def test_progress_bars_follow_levels_and_stages():
    bars = runner.ProgressBars("job")
    bars.show(Progress("epoch", 1, 3, level=0))
    bars.show(Progress("batch", 2, 5, level=1, message="loss 0.3"))
    outer, inner = bars._bars[0], bars._bars[1]
    assert (outer.n, outer.total, inner.n, inner.total) == (1, 3, 2, 5)
    assert inner.nest_under is (outer if runner.NEST else None)
    assert inner.desc.startswith("batch: loss 0.3")
    bars.show(Progress("batch", 1, 5, level=1))  # a new epoch restarts the inner count
    assert bars._bars[1] is inner and inner.n == 1
    bars.show(Progress("validate", 1, 2, level=1))  # a new stage re-labels the same bar
    assert bars._bars[1] is inner and (inner.total, inner.n) == (2, 1)
    assert inner.desc.startswith("validate")
    bars.close()
    assert bars._bars == {}


def test_a_close_requested_inside_an_update_happens_after_it():
    bars = runner.ProgressBars("job")
    bars.show(Progress("tile", 1, 4, level=1))
    bar = bars._bars[1]
    update, seen = bar.update, []

    def update_that_processes_events(n):
        update(n)
        bars.close()  # napari's bar ran the event loop and the job's ``finished`` arrived
        seen.append(dict(bars._bars))

    bar.update = update_that_processes_events
    bars.show(Progress("tile", 2, 4, level=1, message="predicting"))
    assert seen == [{1: bar}]  # still open while its update was running
    assert bars._bars == {} and bar not in runner.progress._all_instances
    bars.show(Progress("tile", 3, 4, level=1))  # late events after the close are dropped
    assert bars._bars == {}
