"""Argument checks, limits and seek resolution shared by both readers.

``_file.AsyncBufferedReader`` (BufferedReader's face) and
``_bridge.raw.BridgeRaw`` (FileIO's face) convert arguments with CPython's
exact exception types and messages (tests/test_differential.py compares
them), and resolve seeks the same way: a target they can trust is taken
without a syscall, anything else is asked of the kernel with
``lseek_restoring`` in the pool.
"""

from __future__ import annotations

import errno
import io
import operator
import os
import sys

# Seek targets past this ask the kernel (lseek) instead of being taken on
# trust: ext4 refuses offsets beyond its 16 TiB file limit with EINVAL, as
# BufferedReader.seek and FileIO.seek would report.
TRUSTED_SEEK_MAX = 1 << 40

WHENCES = (
    os.SEEK_SET,
    os.SEEK_CUR,
    os.SEEK_END,
    *(getattr(os, name) for name in ("SEEK_DATA", "SEEK_HOLE") if hasattr(os, name)),
)


def check_limit(size: object) -> int:
    """Convert a size the way CPython converts an optional Py_ssize_t
    (None means -1; any negative means "no limit" to readline/readlines)."""
    if size is None:
        return -1
    try:
        value = operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"argument should be integer or None, not '{type(size).__name__}'"
        ) from None
    if not -sys.maxsize - 1 <= value <= sys.maxsize:
        raise OverflowError("cannot fit 'int' into an index-sized integer")
    return value


def check_size(size: object) -> int:
    """Validate a read size the way BufferedReader does (None means -1)."""
    value = check_limit(size)
    if value < -1:
        raise ValueError("read length must be non-negative or -1")
    return value


def check_index(value: object) -> int:
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"'{type(value).__name__}' object cannot be interpreted as an integer"
        ) from None


def c_integer(value: object, bits: int, c_name: str) -> int:
    """``value`` as a signed C integer of ``bits``, with CPython's errors."""
    number = operator.index(value)  # type: ignore[arg-type]
    if not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
        raise OverflowError(f"Python int too large to convert to C {c_name}")
    return number


def resolve_seek(pos: int, offset: int, whence: int) -> tuple[int, int, int]:
    """Where a seek from ``pos`` lands, as ``(target, offset, whence)``.

    A ``target`` of -1 means the kernel decides: the caller runs
    ``lseek_restoring(fd, offset, whence)`` in the pool (SEEK_END, DATA,
    HOLE, unknown whences, and targets past TRUSTED_SEEK_MAX, where the
    filesystem's size limit answers EINVAL). A negative absolute target
    raises EINVAL here, as lseek would.
    """
    if whence == os.SEEK_SET:
        target = offset
    elif whence == os.SEEK_CUR:
        target = pos + offset
    else:
        return -1, offset, whence
    if 0 <= target <= TRUSTED_SEEK_MAX:
        return target, offset, whence
    if target < 0:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    return -1, target, os.SEEK_SET


def lseek_restoring(fd: int, offset: int, whence: int) -> int:
    """Where lseek(offset, whence) would land, leaving f_pos untouched.

    The OS offset is never used for reading (all reads are positional), but
    a detached or fileno()-borrowed descriptor should find it unchanged."""
    saved = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        return os.lseek(fd, offset, whence)
    finally:
        os.lseek(fd, saved, os.SEEK_SET)


def fileio_readinto_error(buffer: object) -> TypeError:
    """The TypeError ``FileIO.readinto(buffer)`` raises for a buffer it
    cannot write into, in this interpreter's words (3.12 made it "argument
    1"): asked of a FileIO never opened, whose argument check runs first."""
    try:
        io.FileIO.__new__(io.FileIO).readinto(buffer)  # type: ignore[arg-type]
    except TypeError as exc:
        return exc
    except ValueError:  # "closed file": the buffer was fine after all
        pass
    return TypeError(
        f"readinto() argument must be read-write bytes-like object, not {type(buffer).__name__}"
    )


def writable_view(buffer: object, what: str) -> memoryview:
    """``buffer`` as a flat writable view of bytes, or io's TypeError
    (``what``: the method's name, as io names it)."""
    try:
        view = memoryview(buffer)  # type: ignore[arg-type]
    except TypeError:
        view = None
    if view is None or view.readonly:
        raise TypeError(
            f"{what}() argument must be read-write bytes-like object, not {type(buffer).__name__}"
        )
    return view.cast("B")
