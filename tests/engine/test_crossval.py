"""Cross-validation helpers: acquisition-grouped folds and the crowded-window score."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sa2net.engine.crossval import (
    acquisition,
    crowded_counts,
    crowded_mask,
    group_folds,
    touching_objects,
)

from .conftest import touching_nuclei


def test_folds_keep_each_acquisition_whole_and_balance_image_counts():
    names = [f"a__{i}" for i in range(5)] + [f"b__{i}" for i in range(3)]
    names += [f"c__{i}" for i in range(2)] + ["d__0", "e__0", "plain"]
    folds = group_folds(names, 3)
    assert sorted(i for fold in folds for i in fold) == list(range(len(names)))
    owner = {acquisition(names[i]): k for k, fold in enumerate(folds) for i in fold}
    for k, fold in enumerate(folds):
        assert all(owner[acquisition(names[i])] == k for i in fold)
    # Largest first to the emptiest fold (ties: the lower): a (5) | b (3) + e | c (2) + d + plain.
    assert [len(f) for f in folds] == [5, 4, 4]
    assert group_folds(names, 3) == folds  # depends on the names only
    with pytest.raises(ValueError, match="--folds"):
        group_folds(names, 7)


def test_touching_objects_count_a_one_pixel_gap_but_not_two():
    labels = np.zeros((20, 40), np.uint16)
    labels[5:15, 2:10] = 1
    labels[5:15, 10:18] = 2  # touches 1
    labels[5:15, 19:26] = 3  # one background column from 2
    labels[5:15, 28:36] = 4  # two columns from 3
    np.testing.assert_array_equal(touching_objects(labels), [1, 2, 3])


def test_crowded_windows_and_counts_score_only_the_objects_inside():
    labels = np.zeros((128, 256), np.uint32)
    crowd = touching_nuclei((128, 128), n=12, radius=12, seed=1)
    labels[:, :128] = crowd
    labels[40:60, 170:190] = 100  # a lonely object in the right window
    region = crowded_mask(labels, window=128, min_touching=3)
    assert region[:, :128].all() and not region[:, 128:].any()
    inside = len(np.unique(crowd)) - 1
    perfect = crowded_counts(labels, labels, region)
    assert (perfect.n_true, perfect.n_pred, perfect.f1(0.5)) == (inside, inside, 1.0)
    merged = labels.copy()
    first, second = touching_objects(crowd)[:2]
    merged[merged == second] = first  # two touching nuclei predicted as one
    missing = labels.copy()
    missing[missing == 100] = 0  # outside the crowded windows: does not count
    assert crowded_counts(labels, missing, region).f1(0.5) == 1.0
    counts = crowded_counts(labels, merged, region)
    assert counts.n_pred == inside - 1
    assert counts.f1(0.5) < 1.0 and counts.matched_true[0.5] <= inside - 1


def _cross_validate_example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "cross_validate.py"
    spec = importlib.util.spec_from_file_location("cross_validate", path)
    cv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cv)
    return cv


def test_an_interrupted_fold_is_not_taken_for_a_finished_one(tmp_path):
    from napari_sa2net.model import create_model, save_checkpoint

    cv = _cross_validate_example()
    last = tmp_path / "model.last.pt"
    assert not cv.fold_finished(last, epochs=8)
    model = create_model("sa2net-tiny")
    model.metadata = {"training": {"epochs_done": 3, "seconds": 100.0}}
    save_checkpoint(model, last)  # rewritten after every epoch: epoch 3 of 8
    assert not cv.fold_finished(last, epochs=8)
    assert cv.fold_finished(last, epochs=8, minutes=1.5)  # its time budget was spent
    model.metadata = {"training": {"epochs_done": 8, "seconds": 300.0}}
    save_checkpoint(model, last)
    assert cv.fold_finished(last, epochs=8)


def test_the_cv_summary_averages_seeds_per_fold_and_reports_their_spread():
    cv = _cross_validate_example()

    def row(fold, seed, f1, crowd_true=0, hits=0):
        return {"fold": str(fold), "seed": str(seed), "dice": "0.9", "f1_50": str(f1),
                "f1_75": "0.8", "aji": "0.7", "crowd_true": str(crowd_true),
                "crowd_pred": str(crowd_true), "crowd_hit_true_50": str(hits),
                "crowd_hit_pred_50": str(hits), "crowd_hit_true_75": "0",
                "crowd_hit_pred_75": "0", "seconds": "1", "megapixels": "1"}  # fmt: skip

    rows = [row(0, 0, 0.9), row(0, 1, 0.9), row(1, 0, 1.0, 10, 10), row(1, 1, 0.8, 10, 5)]
    cells = [c.strip() for c in cv.summary_line("r", rows).strip("| ").split("|")]
    assert cells[:3] == ["r", "2", "4"]  # seeds, images
    assert cells[4] == "0.900 ± 0.000"  # F1: both folds' seed means are 0.9
    assert cells[7] == "0.071"  # but the seeds' means are 0.95 and 0.85
    assert cells[8] == "0.750"  # crowded F1 pooled over seeds: 30 hits of 40 objects
    old = {k: v for k, v in row(0, 0, 0.9).items() if k != "seed"}
    assert cv._with_defaults(old)["seed"] == "0"  # rows written before seeds were trained


def test_the_robustness_summary_averages_seeds_per_fold_and_reports_their_spread(
    tmp_path, capsys, monkeypatch
):
    import csv
    from pathlib import Path

    examples = Path(__file__).parents[2] / "examples"
    monkeypatch.syspath_prepend(str(examples))
    import robustness

    def row(fold, seed, f1):
        return {"fold": fold, "seed": seed, "image": f"i{fold}", "kind": "blur",
                "denoise": "auto", "sigma": "", "flatten": "auto", "flattened": "False",
                "dice": 0.9, "f1_50": f1, "f1_75": 0.8, "aji": 0.7, "crowd_true": 10,
                "crowd_pred": 10, "crowd_hit": 15}  # fmt: skip

    rows = [row(0, 0, 0.9), row(0, 1, 0.9), row(1, 0, 1.0), row(1, 1, 0.8)]
    path = tmp_path / "robust.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    robustness.summarize([path])
    line = capsys.readouterr().out.splitlines()[1]
    assert "seeds 0,1" in line
    assert "f1_50 0.900 ± 0.000" in line  # both folds' seed means are 0.9
    assert "seed sd of f1_50 0.071" in line  # the seeds' means are 0.95 and 0.85
    assert "crowded F1 0.750 (40 / 40)" in line
