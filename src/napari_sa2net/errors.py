"""Which errors a user can cause, and the one line that says what happened and how to fix it.

The ``sa2net`` command and the napari job runner both call :func:`user_message`: a user error
(a bad value or path, a full or read-only disk, an unreachable dask scheduler, a damaged file, too
little memory) becomes one line ``<problem>; <fix>``; anything else is a bug and keeps its
traceback. This module imports only the standard library, so importing it costs nothing.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

#: Errors our own code raises with a message that already names the problem and the fix.
MESSAGE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileExistsError,
    FileNotFoundError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
)

#: Libraries whose own exception types mean the bytes of a file could not be decoded.
CODEC_MODULES = frozenset(
    {"imagecodecs", "numcodecs", "tifffile", "zlib", "lzma", "bz2", "blosc", "zstd", "yaml"}
)
#: Libraries in whose code a plain error of :data:`_DECODE_ERRORS` means damaged data (zarr's
#: own types are left out: most of them mean a wrong call, i.e. a bug).
_DECODING_CODE = CODEC_MODULES | {"zarr"}
_DECODE_ERRORS = (RuntimeError, ValueError, SystemError, OverflowError, EOFError)

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded")
_CONNECTION_TEXT = ("timed out trying to connect", "connection refused")
_CONNECTION_NAMES = frozenset({"CommClosedError", "gaierror", "timeout"})
_FIX_SPACE = "free some space or write to another folder"
_FIX_MEMORY = "close other programs, or choose a smaller tile or batch size, and run again"
_TOO_MANY_FILES = "too many open files; process fewer files at once or raise the limit (ulimit -n)"
#: What an OS error number means to a user, and the fix (``{where}``: " (path)" or "").
_OS_FIXES = {
    errno.EROFS: "the file system is read-only{where}; write to another folder",
    errno.EIO: "input/output error{where}; check the disk or network share, or copy the file",
    errno.EMFILE: _TOO_MANY_FILES,
    errno.ENFILE: _TOO_MANY_FILES,
    errno.ENAMETOOLONG: "file name too long{where}; choose a shorter path",
    errno.ENOMEM: "out of memory; " + _FIX_MEMORY,
    errno.EACCES: "permission denied{where}; choose a file or folder you may read or write",
    errno.EPERM: "operation not permitted{where}; choose a file or folder you may read or write",
    errno.ENOENT: "no such file or folder{where}; check the path",
    errno.ENOTDIR: "not a folder{where}; check the path",
    errno.EISDIR: "is a folder, not a file{where}; check the path",
}


def one_line(text: object) -> str:
    """``text`` as a single line: lines joined by ``"; "`` (by a space after a colon)."""
    joined = ""
    for line in (part.strip() for part in str(text).splitlines()):
        if line:
            joined += line if not joined else (" " if joined.endswith(":") else "; ") + line
    return joined


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _root_module(obj: object) -> str:
    return (getattr(obj, "__module__", "") or "").split(".")[0]


def _where(exc: BaseException) -> str:
    name = getattr(exc, "filename", None)
    return f" ({name})" if name else ""


def _disk_full(exc: BaseException) -> str | None:
    for link in chain(exc):
        text = str(link).lower()
        code = getattr(link, "errno", None)
        if code not in _DISK_FULL and not any(t in text for t in _DISK_FULL_TEXT):
            continue
        if _own_text(link):  # io.atomic's message already says what to do
            return _own_text(link)
        return f"no space left on the device{_where(link)}; {_FIX_SPACE}"
    return None


def _own_text(exc: BaseException) -> str | None:
    """The text of an ``OSError(errno, text)`` our code raised with its fix (``"...; ..."``)."""
    text = getattr(exc, "strerror", None)
    return one_line(text) if isinstance(exc, OSError) and text and "; " in text else None


def _file_system(exc: BaseException) -> str | None:
    """An OS refusal (``OSError`` with an errno) as what it means and what to do."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    if _own_text(exc):
        return _own_text(exc)
    template = _OS_FIXES.get(exc.errno)
    if template is not None:
        return template.format(where=_where(exc))
    if exc.filename is not None:  # any other OS refusal about a named path
        return f"{exc.strerror or one_line(exc)}{_where(exc)}; check the path and its folder"
    return None


def _connection(exc: BaseException) -> str | None:
    for link in chain(exc):
        text = str(link).lower()
        named = type(link).__name__ in _CONNECTION_NAMES
        if (
            isinstance(link, (ConnectionError, TimeoutError))
            or named
            or (isinstance(link, OSError) and any(t in text for t in _CONNECTION_TEXT))
        ):
            return (
                f"cannot reach the dask scheduler ({one_line(exc)}); start it or correct its "
                "address (--scheduler), or leave the scheduler out to compute on this machine"
            )
    return None


def _memory(exc: BaseException) -> str | None:
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without torch
        return (
            "out of accelerator memory; choose a smaller tile or batch size, or run on the CPU "
            "(--device cpu)"
        )
    if isinstance(exc, MemoryError):
        return f"out of memory; {_FIX_MEMORY}"
    if type(exc).__name__ == "KilledWorker":  # dask.distributed: usually a worker out of memory
        return "a dask worker died while computing (often out of memory); " + _FIX_MEMORY
    return None


def _from_codec(exc: BaseException) -> bool:
    """Whether a codec library raised ``exc`` (its own type, or a plain error in its code)."""
    if _root_module(type(exc)) in CODEC_MODULES:
        return True
    return isinstance(exc, _DECODE_ERRORS) and _innermost_module(exc) in _DECODING_CODE


def _codec(exc: BaseException) -> str | None:
    for link in chain(exc):
        if _from_codec(link):
            return (
                f"cannot decode the file's data ({one_line(link)[:200]}); the file is damaged "
                "or incomplete: copy or export it again"
            )
    return None


def _innermost_module(exc: BaseException) -> str:
    """Top-level package of the code that raised ``exc`` (``""`` when unknown)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_globals.get("__name__", "") or ""
    if name in ("", "__main__") or name.startswith("_cython"):
        name = tb.tb_frame.f_code.co_filename.replace("\\", "/").split("site-packages/")[-1]
        name = name.replace("/", ".")
    return name.split(".")[0]


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error a user can cause and fix, ``None`` for a bug.

    Parameters
    ----------
    exc : BaseException
        The exception that ended a command or a napari job (not ``KeyboardInterrupt``).

    Returns
    -------
    str or None
        ``"<problem>; <fix>"`` on one line; ``None`` when ``exc`` is a genuine bug whose
        traceback must be shown.
    """
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return None
    for check in (_memory, _disk_full, _connection, _file_system):
        message = check(exc)
        if message is not None:
            return message
    if isinstance(exc, MESSAGE_ERRORS) and not _from_codec(exc):
        return one_line(exc)  # ours (or a library's complaint about a value we passed on)
    return _codec(exc)
