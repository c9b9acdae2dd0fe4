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
