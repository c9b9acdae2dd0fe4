"""Global connected components across chunks, in bounded memory, against scipy on the whole."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_sa2net.inference.labeling import label_mask
from napari_sa2net.inference.maps import EIGHT


@pytest.mark.parametrize("chunks", [(13, 17), (64, 50), (200, 200), (1, 170), (150, 1)])
def test_matches_whole_image_labelling(chunks, same_objects):
    rng = np.random.default_rng(0)
    mask = ndi.gaussian_filter(rng.random((150, 170)), 2) > 0.5
    expected, n = ndi.label(mask, structure=EIGHT)
    got, ids = label_mask(da.from_array(mask, chunks=chunks))
    assert got.dtype == np.uint32
    assert ids.count == n == got.max()
    assert same_objects(got, expected)
    np.testing.assert_array_equal(got, expected)  # the same ids as scipy's, at any chunking
    np.testing.assert_array_equal(ids.sizes[1:], np.bincount(expected.ravel())[1:])
    boxes = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndi.find_objects(expected)]
    np.testing.assert_array_equal(ids.boxes[1:], boxes)


def test_drop_small_renumbers():
    mask = np.zeros((40, 40), bool)
    mask[2:4, 2:4] = True  # 4 px
    mask[10:20, 18:25] = True  # 70 px across a chunk border
    _, ids = label_mask(da.from_array(mask, chunks=(15, 20)))
    kept = ids.drop_small(10)
    assert kept.count == 1 and kept.sizes[1] == 70
    assert tuple(kept.boxes[1]) == (10, 20, 18, 25)
    assert set(np.unique(kept.lut)) == {0, 1}  # the 4-px object maps to nothing
