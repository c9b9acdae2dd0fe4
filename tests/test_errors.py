"""errors.user_message: which errors a user can cause, and their one line."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from napari_sa2net.errors import one_line, user_message


def raised(fn):
    """The exception ``fn()`` raises (with its traceback, as a command would see it)."""
    try:
        fn()
    except BaseException as err:  # the point is to catch anything
        return err
    raise AssertionError("nothing was raised")


def test_our_messages_pass_through_on_one_line():
    assert user_message(ValueError("tile 7 is too small; use 64")) == "tile 7 is too small; use 64"
    assert user_message(ValueError("no fit. Problems:\n  missing a\n  missing b")) == (
        "no fit. Problems: missing a; missing b"
    )
    assert user_message(FileExistsError("out.tif exists; pass --overwrite")).endswith("overwrite")


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device", "/data/out.zarr/0/0.0"),
        OSError("[Errno 28] No space left on device"),  # re-raised by a library without errno
    ],
)
def test_a_full_disk_says_free_some_space(exc):
    message = user_message(exc)
    assert message.startswith("no space left on the device") and "free some space" in message


def test_a_full_disk_behind_another_error_is_found():
    def write():
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from err

    assert "free some space" in user_message(raised(write))


def test_read_only_and_other_file_system_refusals():
    message = user_message(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out.tif"))
    assert message == "the file system is read-only (/mnt/ro/out.tif); write to another folder"
    assert "input/output error" in user_message(OSError(errno.EIO, "I/O error", "/nfs/a.tif"))
    assert "ulimit" in user_message(OSError(errno.EMFILE, "Too many open files"))
    missing = raised(lambda: Path("/no/such/x.tif").read_bytes())
    assert user_message(missing) == "no such file or folder (/no/such/x.tif); check the path"
    denied = PermissionError(errno.EACCES, "Permission denied", "/root/x")
    assert user_message(denied).startswith("permission denied (/root/x); choose a file")
    ours = "the output folder /a is not writable; choose another one"  # no errno: kept as is
    assert user_message(PermissionError(ours)) == ours
    assert user_message(FileNotFoundError("no image at a.tif")) == "no image at a.tif"


def test_an_unreachable_scheduler_is_one_line():
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.comm.timeouts.connect": "0.3s"}):
        err = raised(lambda: distributed.Client("tcp://127.0.0.1:1", timeout="0.5s"))
    message = user_message(err)
    assert message.startswith("cannot reach the dask scheduler") and "\n" not in message
    assert "--scheduler" in message
    assert "dask scheduler" in user_message(ConnectionRefusedError(111, "Connection refused"))


def test_codec_errors_of_damaged_data():
    imagecodecs = pytest.importorskip("imagecodecs")
    blosc = pytest.importorskip("numcodecs.blosc")
    chunk = bytearray(blosc.Blosc(cname="zstd").encode(bytes(range(256)) * 64))
    chunk[16:40] = b"\xa5" * 24  # a damaged zarr chunk
    for fail in (
        lambda: imagecodecs.zlib_decode(b"this is no zlib stream"),  # imagecodecs.ZlibError
        lambda: blosc.Blosc().decode(bytes(chunk)),  # a plain RuntimeError from numcodecs
        lambda: blosc.Blosc().decode(b"\x02\x01\x21\x08" + b"\xff" * 28),  # SystemError
    ):
        message = user_message(raised(fail))
        assert message.startswith("cannot decode the file's data") and "damaged" in message


def test_memory():
    assert user_message(MemoryError()).startswith("out of memory;")
    torch = pytest.importorskip("torch")
    assert "--device cpu" in user_message(torch.OutOfMemoryError("CUDA out of memory"))


@pytest.mark.parametrize(
    "exc", [KeyError("bug"), TypeError("bad call"), RuntimeError("bug"), AttributeError("x")]
)
def test_bugs_are_no_user_errors(exc):
    assert user_message(exc) is None
    assert user_message(KeyboardInterrupt()) is None


def test_one_line_and_a_light_import():
    assert one_line("a\n\n  b  \n") == "a; b"
    code = "import sys, napari_sa2net.errors; sys.exit('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
