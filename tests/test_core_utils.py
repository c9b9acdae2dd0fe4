import numpy as np
import pytest

from napari_sa2net._progress import Progress, run_job
from napari_sa2net.normalization import Normalization


def _job():
    for i in range(3):
        yield Progress("tile", i + 1, 3)
    return "done"


def test_run_job_returns_value_and_reports_every_event():
    seen = []
    assert run_job(_job(), seen.append) == "done"
    assert [e.current for e in seen] == [1, 2, 3]
    assert seen[-1].fraction == 1.0


def test_normalization_maps_percentiles_to_unit_range():
    image = np.arange(1000, dtype=np.uint16).reshape(10, 100, 1)
    norm = Normalization(0.0, 100.0)
    out = norm(image)
    assert out.dtype == np.float32
    assert out.min() == pytest.approx(0.0)
    assert out.max() == pytest.approx(1.0)


def test_normalization_constant_and_nan_images_do_not_divide_by_zero():
    norm = Normalization()
    const = np.full((8, 8, 1), 7.0)
    assert np.all(norm(const) == 0)
    nan = np.full((4, 4, 1), np.nan)
    with pytest.raises(ValueError, match="no finite values"):
        norm.statistics(nan)


def test_normalization_subsamples_large_dask_arrays_like_numpy():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, size=(300, 200, 2)).astype(np.uint16)
    norm = Normalization()
    lo_np, hi_np = norm.statistics(image)
    lo_da, hi_da = norm.statistics(da.from_array(image, chunks=(64, 64, 2)))
    np.testing.assert_allclose(lo_np, lo_da)
    np.testing.assert_allclose(hi_np, hi_da)


def test_bad_percentiles_are_rejected_with_the_values():
    with pytest.raises(ValueError, match="low=50"):
        Normalization(50, 10)
