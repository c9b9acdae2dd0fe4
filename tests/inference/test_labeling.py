"""Global connected components across chunks, in bounded memory, against scipy on the whole."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_sa2net.inference.labeling import EIGHT, label_mask


@pytest.mark.parametrize("chunks", [(13, 17), (64, 50), (200, 200)])
def test_matches_whole_image_labelling(tmp_path, chunks, same_objects):
    rng = np.random.default_rng(0)
    mask = ndi.gaussian_filter(rng.random((150, 170)), 2) > 0.5
    expected, n = ndi.label(mask, structure=EIGHT)
    result = label_mask(da.from_array(mask, chunks=chunks), tmp_path, "m", scheduler="sync")
    got = result.to_dask().compute()
    assert got.dtype == np.uint32
    assert result.count == n == got.max()
    assert same_objects(got, expected)
    np.testing.assert_array_equal(
        np.sort(result.sizes[1:]), np.sort(np.bincount(expected.ravel())[1:])
    )


def test_drop_small_renumbers(tmp_path):
    mask = np.zeros((40, 40), bool)
    mask[2:4, 2:4] = True  # 4 px
    mask[10:20, 18:25] = True  # 70 px across a chunk border
    result = label_mask(da.from_array(mask, chunks=(15, 20)), tmp_path, "m", scheduler="sync")
    kept = result.drop_small(10)
    got = kept.to_dask().compute()
    assert kept.count == 1 and set(np.unique(got)) == {0, 1}
    assert (got > 0).sum() == 70
