"""Atomic CSV tables and file listing."""

from __future__ import annotations

from napari_sa2net.io import find_files, read_table, write_table


def test_table_round_trip_and_replacement(tmp_path):
    path = tmp_path / "summary.csv"
    write_table(path, ("file", "objects"), [("a.tif", 3), ("b.tif", None)])
    assert read_table(path) == [
        {"file": "a.tif", "objects": "3"},
        {"file": "b.tif", "objects": ""},
    ]
    write_table(path, ("file", "objects"), [("c.tif", 1)])
    assert read_table(path) == [{"file": "c.tif", "objects": "1"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_missing_or_binary_table_reads_empty(tmp_path):
    assert read_table(tmp_path / "none.csv") == []
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert read_table(tmp_path / "bad.csv") == []


def test_find_files_patterns(tmp_path):
    for name in ("a.tif", "b.TIF", "c.svs", ".d.tif"):
        (tmp_path / name).write_bytes(b"")
    found = find_files(tmp_path, ["*.tif", "*.svs"])
    assert [p.name for p in found] == ["a.tif", "b.TIF", "c.svs"]  # name patterns ignore case
    assert [p.name for p in find_files(tmp_path, "b*")] == ["b.TIF"]
