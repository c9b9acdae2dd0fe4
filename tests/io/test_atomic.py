"""atomic_path: rename on success only, clean up on any exception, refuse to overwrite."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from napari_sa2net.io import atomic_path
from napari_sa2net.io.atomic import remove_stale_partials


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_is_renamed_on_success(tmp_path):
    final = tmp_path / "out.txt"
    with atomic_path(final) as partial:
        assert partial.parent == final.parent and partial.name.startswith(".out.txt.partial-")
        assert not partial.exists()
        partial.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done"
    assert _listing(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_leaves_nothing(tmp_path, error):
    with pytest.raises(type(error)), atomic_path(tmp_path / "out.zarr") as partial:
        partial.mkdir()
        (partial / "chunk").write_bytes(b"half")
        raise error
    assert _listing(tmp_path) == []


def test_closed_generator_cleans_up(tmp_path):
    def job():
        with atomic_path(tmp_path / "out.bin") as partial:
            partial.write_bytes(b"x")
            yield 1
            partial.write_bytes(b"xy")

    gen = job()
    next(gen)
    assert len(_listing(tmp_path)) == 1
    gen.close()  # what a cancelled worker does
    assert _listing(tmp_path) == []


def test_overwrite_refused_then_allowed_for_directories(tmp_path):
    final = tmp_path / "labels.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True"), atomic_path(final):
        pass
    with atomic_path(final, overwrite=True) as partial:
        partial.mkdir()
        (partial / "new").write_text("new")
    assert _listing(final) == ["new"]
    assert _listing(tmp_path) == ["labels.zarr"]  # the old store moved aside was deleted


def test_failed_overwrite_keeps_the_old_output(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(ValueError), atomic_path(final, overwrite=True) as partial:
        partial.write_text("new")
        raise ValueError("model failed")
    assert final.read_text() == "old" and _listing(tmp_path) == ["out.txt"]


def test_read_only_folder_is_named(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if p == tmp_path else real_access(p, m))
    message = f"output folder {tmp_path} is not writable"
    with pytest.raises(PermissionError, match=message), atomic_path(tmp_path / "out.tif"):
        pass


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores chmod")
def test_read_only_folder_for_real(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="ro"), atomic_path(folder / "x.tif"):
            pass
    finally:
        folder.chmod(0o700)


def test_disk_full_is_explained_and_cleaned(tmp_path):
    message = r"no space left.*partial output removed"
    with pytest.raises(OSError, match=message) as info, atomic_path(tmp_path / "big.tif") as tmp:
        tmp.write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC
    assert _listing(tmp_path) == []


def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".a.tif.partial-{pid}-abcd1234"
    stale.write_bytes(b"half")
    aside = tmp_path / f".b.zarr.old-{pid}-abcd1234"
    aside.mkdir()  # died between the two renames: this is the only copy of b.zarr
    live = tmp_path / f".c.tif.partial-{os.getpid()}-abcd1234"
    live.write_bytes(b"being written")
    assert remove_stale_partials(tmp_path) == [stale]
    assert _listing(tmp_path) == sorted([live.name, "b.zarr"])


def test_a_dead_runs_segment_scratch_folder_is_removed(tmp_path):
    from napari_sa2net.io.atomic import new_partial, remove_stale_partials

    scratch = new_partial(tmp_path / "sa2net-scratch")
    stale = scratch.with_name(scratch.name.replace(f"-{os.getpid()}-", "-999999999-"))
    stale.mkdir()
    (stale / "probs").write_bytes(b"x")
    live = new_partial(tmp_path / "sa2net-scratch")
    live.mkdir()
    assert remove_stale_partials(tmp_path) == [stale]
    assert not stale.exists() and live.exists()
