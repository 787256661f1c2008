"""Whole-file writes and file copies, each one pool hop.

``write_bytes`` / ``write_text`` are pathlib's (same checks, same results,
same exceptions), with ``atomic=True`` to replace the file in one step:
the data goes to a new file in the same directory, is fsynced, and is
renamed over the target (then the directory is fsynced so the rename
survives a crash). The temporary file never outlives the call: it is
removed on any error, and on cancellation unless the rename already
happened. ``copyfile`` / ``copy`` are :mod:`shutil`'s with the data moved by
``copy_file_range``/``sendfile`` (``_copy``).

A write runs as one blocking call on a pool thread: a cancelled plain write
still completes there (as anyio's); ``data`` must not change until the
call returns.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
import threading
from typing import IO, TYPE_CHECKING, Any

from aiofastread import _copy
from aiofastread._pool import run_blocking

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrPath

__all__ = ["copy", "copyfile", "write_bytes", "write_text"]

# Attempts at an unused temporary name (O_EXCL) before giving up; with 64
# random bits a clash is already a sign of something else going on.
_TEMP_NAME_TRIES = 100


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _create_temp(target: str, mode: str, options: dict[str, Any]) -> tuple[IO[Any], str]:
    """A new file next to ``target``, open for writing as ``open(target, mode)`` would be.

    Made with ``open``'s exclusive mode ("x"): io does the cleanup of a
    failed open, and a name someone else holds is never touched.
    """
    directory, name = os.path.split(target)
    for _ in range(_TEMP_NAME_TRIES):
        temp = os.path.join(directory, f".{name}.{os.urandom(8).hex()}.tmp")
        try:
            return builtins.open(temp, mode.replace("w", "x"), **options), temp
        except FileExistsError:
            continue
        except OSError as err:
            _remove(temp)  # text setup can fail after the file was made
            if err.filename == temp:  # name the file the caller asked for
                err.filename = target
            raise
        except BaseException:
            _remove(temp)
            raise
    raise FileExistsError(f"no unused temporary name next to {target!r}")


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_plain(target: str, mode: str, data: Any, options: dict[str, Any]) -> int:
    with builtins.open(target, mode, **options) as f:
        return f.write(data)


def _write_atomic(
    target: str, mode: str, data: Any, options: dict[str, Any], abandoned: threading.Event
) -> int:
    if abandoned.is_set():  # cancelled before this thread started
        raise _Abandoned
    f, temp = _create_temp(target, mode, options)
    try:
        with f:
            with contextlib.suppress(FileNotFoundError):  # an existing file keeps its mode
                os.fchmod(f.fileno(), os.stat(target).st_mode & 0o7777)
            written: int = f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if abandoned.is_set():  # the caller was cancelled: leave the target alone
            raise _Abandoned
        os.replace(temp, target)
    except BaseException:
        _remove(temp)
        raise
    _fsync_directory(os.path.dirname(target))
    return written


class _Abandoned(Exception):
    """Raised in the pool thread for an atomic write whose caller left."""


async def _write(
    path: StrPath, mode: str, data: object, options: dict[str, Any], atomic: bool
) -> int:
    target = os.fspath(path)
    if not atomic:
        return await run_blocking(_write_plain, target, mode, data, options)
    abandoned = threading.Event()
    try:
        return await run_blocking(_write_atomic, target, mode, data, options, abandoned)
    except BaseException:
        abandoned.set()
        raise


async def write_bytes(path: StrPath, data: ReadableBuffer, *, atomic: bool = False) -> int:
    """Write ``data`` to ``path`` (``pathlib.Path.write_bytes``); the number of bytes.

    ``atomic=True``: readers see the old content or the new, never a part.
    """
    view = memoryview(data)  # pathlib's check: TypeError for str and the like
    return await _write(path, "wb", view, {}, atomic)


async def write_text(
    path: StrPath,
    data: str,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    *,
    atomic: bool = False,
) -> int:
    """Write ``data`` to ``path`` (``pathlib.Path.write_text``); the number of characters.

    ``atomic=True``: readers see the old content or the new, never a part.
    """
    if not isinstance(data, str):
        raise TypeError(f"data must be str, not {type(data).__name__}")
    options = {"encoding": encoding, "errors": errors, "newline": newline}
    return await _write(path, "w", data, options, atomic)


async def copyfile(src: StrPath, dst: StrPath, *, follow_symlinks: bool = True) -> StrPath:
    """:func:`shutil.copyfile` in the pool, the data moved inside the kernel."""
    copy_data = functools.partial(_copy.copyfile, follow_symlinks=follow_symlinks)
    return await run_blocking(copy_data, src, dst)


async def copy(src: StrPath, dst: StrPath, *, follow_symlinks: bool = True) -> StrPath:
    """:func:`shutil.copy` (data and mode bits) in the pool."""
    copy_file = functools.partial(_copy.copy, follow_symlinks=follow_symlinks)
    return await run_blocking(copy_file, src, dst)
