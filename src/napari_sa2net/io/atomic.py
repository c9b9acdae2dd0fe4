"""Write to a hidden temporary sibling, rename over the final path only when everything worked.

A stopped, failed or killed write therefore never leaves a half-written output under the final
name. The temporary name is ``.NAME.partial-<pid>-<random>`` in the same folder (same file
system, so the rename is atomic); :func:`remove_stale_partials` clears those of dead processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-(?P<pid>\d+)-[0-9a-f]+$")


def _sibling(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree if it exists (no error when it is already gone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_writable(final: Path, overwrite: bool) -> None:
    """Fail early when ``final`` exists without ``overwrite`` or its folder is not writable.

    The parent folder is created when missing.
    """
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"{final} already exists; pass overwrite=True (--overwrite on the command line) "
            "to replace it"
        )
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise PermissionError(f"cannot create the output folder {folder}: {err}") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"the output folder {folder} is not writable; choose another one")


def new_partial(final: Path) -> Path:
    """A fresh temporary sibling path for ``final`` (nothing is created)."""
    return _sibling(final, "partial")


def commit(partial: Path, final: Path, overwrite: bool) -> None:
    """Rename ``partial`` to ``final``; an existing ``final`` is replaced only with ``overwrite``.

    An old output is first moved aside and deleted after the rename, so that at every moment
    either the old or the new output exists under the final name or beside it.
    """
    if not partial.exists():
        raise FileNotFoundError(f"nothing was written to {partial} for {final}")
    if not (final.exists() or final.is_symlink()):
        os.replace(partial, final)  # atomic; fails rather than nest if a dir appears meanwhile
        return
    if not overwrite:
        raise FileExistsError(
            f"{final} appeared while writing; pass overwrite=True (--overwrite) to replace it"
        )
    old = _sibling(final, "old")
    os.replace(final, old)
    try:
        os.replace(partial, final)
    except BaseException:
        os.replace(old, final)
        raise
    remove_path(old)


def disk_full_error(final: Path) -> OSError:
    return OSError(
        errno.ENOSPC,
        f"no space left on the device while writing {final} (partial output removed); "
        "free some space or write to another folder",
    )


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to ``final_path`` when the block succeeds.

    Parameters
    ----------
    final_path : path-like
        Where the output (a file or a directory such as a zarr store) must end up.
    overwrite : bool
        Replace an existing ``final_path``. Without it an existing output is a
        ``FileExistsError``, raised before anything is written.

    Yields
    ------
    Path
        A path in the same folder that does not exist yet; write the file or directory there.

    Raises
    ------
    FileExistsError, PermissionError
        Output exists without ``overwrite``; the folder is not writable (naming it).
    OSError
        ``ENOSPC`` (disk full) or ``EROFS`` (read-only file system) with a message saying what
        to do. On any exception, including
        ``KeyboardInterrupt`` and a closed generator, the temporary path is removed first.
    """
    final = Path(final_path).absolute()
    check_writable(final, overwrite)
    partial = new_partial(final)
    try:
        yield partial
        commit(partial, final, overwrite)
    except OSError as err:
        remove_path(partial)
        if err.errno == errno.ENOSPC:
            raise disk_full_error(final) from err
        if err.errno == errno.EROFS:
            raise OSError(
                errno.EROFS,
                f"cannot write {final}: its folder is on a read-only file system (partial output "
                "removed); write to another folder",
            ) from err
        if isinstance(err, PermissionError):
            raise PermissionError(f"cannot write {final} in {final.parent}: {err}") from err
        raise
    except BaseException:
        remove_path(partial)
        raise


def remove_stale_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary outputs in ``folder`` whose writing process is no longer running.

    Returns the removed paths. Partials of live processes (another run) are left alone.
    """
    removed = []
    for path in Path(folder).glob(".*"):
        match = _PARTIAL.match(path.name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        final = path.with_name(match["name"])
        if ".old-" in path.name and not final.exists():
            os.replace(path, final)  # died between the two renames: the old output is the output
            continue
        remove_path(path)
        removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
