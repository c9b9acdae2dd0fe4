"""A CPU job's torch work runs on one persistent thread (one OpenMP team for the process)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sa2net.inference import compute
from napari_sa2net.inference.predictor import ZeroCostPredictor


def test_call_runs_on_the_compute_thread_and_nests_without_deadlock():
    def where():
        return threading.current_thread().name

    def nested():
        inner = compute.call(where)  # already there: runs at once
        other = compute.start(where).result(timeout=10)  # busy thread: a thread of its own
        return where(), inner, other

    outer, inner, other = compute.call(nested)
    assert outer == inner and outer.startswith(compute.PREFIX)
    assert not other.startswith(compute.PREFIX)
    assert compute.call(where) == outer  # the same thread every time


def test_errors_come_back_to_the_caller():
    def fail():
        raise ValueError("bad input; fix it")

    with pytest.raises(ValueError, match="bad input"):
        compute.call(fail)
    with pytest.raises(ValueError, match="bad input"):
        compute.call(lambda: compute.start(fail).result(timeout=10))


def test_a_cpu_run_predicts_on_the_compute_thread():
    from napari_sa2net.inference import segment

    threads = []

    class Recording(ZeroCostPredictor):
        device_type = "cpu"

        def predict(self, tiles, shape, to_host=True):
            threads.append(threading.current_thread().name)
            return super().predict(tiles, shape, to_host)

    image = np.zeros((200, 160), np.float32)
    image[40:80, 50:90] = 1.0
    result = segment(image, device="cpu", tile=128, overlap=32, scale=1.0,
                     skip_background=False,
                     predictor=lambda stats: Recording(3, 2, stats))  # fmt: skip
    assert result.n_objects >= 1
    assert threads and all(name.startswith(compute.PREFIX) for name in threads)


def test_a_run_queued_behind_another_is_dropped_when_its_job_is_closed(tmp_path):
    # Two CPU jobs share the compute thread: the second waits. Closing it while it waits must
    # neither run it later nor wait for the first job to end.
    from napari_sa2net.inference import segment_job
    from napari_sa2net.model import create_model

    net = create_model("sa2net-tiny", 1, 3)  # given: nothing to load on the busy thread
    release = threading.Event()
    blocker = compute.start(release.wait)  # the compute thread is busy
    try:
        image = np.zeros((64, 64), np.float32)
        job = segment_job(image, model=net, device="cpu", tile=64, overlap=16, scale=1.0,
                          predictor=lambda stats: ZeroCostPredictor(3, 1, stats))  # fmt: skip
        first = next(job)  # the plan's line; the run is queued now
        assert first.stage == "segment"
        closed = threading.Thread(target=job.close)
        closed.start()
        closed.join(timeout=10)
        assert not closed.is_alive()  # did not wait for the compute thread
    finally:
        release.set()
        blocker.result(timeout=10)
