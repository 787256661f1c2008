"""Whole-file helpers: ``read_bytes(path)`` and ``read_text(path, ...)``.

The commonest thing an application does with a file is read a small one
whole (a template, a config, a certificate). Done as ``open``, ``read``,
``close`` through a thread pool that is two or three thread hops for a few
microseconds of work. Here, when everything is cached, all of it happens on
the loop: the open from the dentry cache (``_inline_open``), the read by
preadv2(RWF_NOWAIT) under the per-file policy (``_read``), the close of a
read-only descriptor on a local filesystem (``_handle``). When the open
cannot be done inline, ONE pool job opens, reads and closes; when only the
read misses, that read is the one pool job.

Results and exceptions are ``pathlib.Path.read_bytes``/``read_text``'s: the
pool job is CPython's ``io.open(path, "rb").read()``, and text is decoded by
CPython's own ``TextIOWrapper`` over the bytes. A cached file whose size is
known is read by one NOWAIT read of size + 1 on the bare descriptor: no file
object is built unless something has to go to the pool.
"""

from __future__ import annotations

import io
import os
from typing import Union

from aiofastread import _native, _pool
from aiofastread._fspolicy import FILESYSTEMS, learn_from
from aiofastread._handle import FileHandle
from aiofastread._inline_open import open_cached
from aiofastread._policy import INLINE_MAX, Decision, InodeState, Outcome
from aiofastread._read import YIELD_EVERY_MASK, read_at, read_to_eof
from aiofastread._runtime import POLICY

StrOrBytesPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


async def read_bytes(path: StrOrBytesPath) -> bytes:
    """The whole contents of the file at ``path``, as ``Path.read_bytes``."""
    check_path(path, "read_bytes")
    found = open_cached(path)
    if found is None:
        pool = _pool.default_pool()
        data: bytes = await pool.run(read_blocking, path)
        return data
    fd, _mode, size, dev, ino = found
    try:
        inode = POLICY.state_for(dev, ino)
        attempt = read_whole_nowait(fd, size, inode)
        if type(attempt) is bytes and len(attempt) == size and at_eof(fd, size):
            # All of it: the descriptor was only read, on a local filesystem.
            POLICY.record(inode, Outcome.HIT, size)
            if not inode.counters.inline_hits & YIELD_EVERY_MASK and _pool.default_pool().busy:
                os.sched_yield()  # as _read.yield_to_pool: let pool threads have the GIL
            FILESYSTEMS.inline_closes += 1
            os.close(fd)
            return attempt
        raw = io.FileIO(fd, "r")
    except BaseException:  # MemoryError, KeyboardInterrupt: not the fd too
        os.close(fd)  # read-only, local: cannot block
        raise
    handle = FileHandle(
        raw, inode, size=size, direct_io=False, pool=_pool.default_pool(), executor=None
    )
    try:
        if attempt is None:
            return await read_to_eof(handle, 0)
        # The NOWAIT answer is judged and the pool reads what is missing,
        # without a second NOWAIT try. An errno (a miss, no NOWAIT on this
        # filesystem) holds for size + 1 as well: the pool job then sees EOF.
        ask = size + 1 if isinstance(attempt, int) else size
        data = await read_at(handle, 0, ask, attempt=attempt)
        if len(data) == ask and (ask > size or not at_eof(fd, size)):  # it grew
            data += await read_to_eof(handle, len(data))
        return data
    finally:
        # Inline when no pool read is in flight; else once it has finished
        # (a cancelled read's thread may still use the fd: invariant 3).
        await handle.close()


def read_whole_nowait(fd: int, size: int, inode: InodeState) -> bytes | int | None:
    """One preadv2(RWF_NOWAIT) of ``size`` bytes at 0, if the policy lets
    the file be read inline and (for a file not known warm) cachestat finds
    it all resident: its answer (bytes or -errno; residency recorded, the
    read not yet), or None when it was not tried.

    Exactly ``size``, not size + 1 as read_to_eof asks: the C read answers
    a short read with a second bytes object and a copy, and two live
    allocations over glibc's mmap threshold cost ~200 us on this VM (256 KiB:
    220 us against 11 us). ``at_eof`` then asks for one byte more."""
    backend = _native.backend
    if not 0 < size < INLINE_MAX or not backend.can_read_inline:
        return None
    decision = POLICY.decide(inode, size)
    if decision is Decision.POOL:
        return None
    if decision is Decision.CHECK_RESIDENCY:
        cachestat = backend.cachestat
        answer = cachestat(fd, 0, size) if cachestat is not None else -1
        if isinstance(answer, int) or answer[0] < answer[1]:
            POLICY.record(inode, Outcome.NOT_RESIDENT)
            return None
        POLICY.record(inode, Outcome.RESIDENT)
    return backend.read_nowait(fd, size, 0)


def at_eof(fd: int, offset: int) -> bool:
    """Whether ``offset`` is the end of the file: a NOWAIT read there
    answers b"" at once (no I/O at or past EOF; docs/design.md)."""
    return _native.backend.read_nowait(fd, 1, offset) == b""


async def read_text(
    path: StrOrBytesPath,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> str:
    """The file at ``path`` decoded, as ``Path.read_text`` (3.13's
    ``newline`` included): universal newlines unless ``newline`` says
    otherwise, the locale's encoding when none is given."""
    data = await read_bytes(path)
    return decode(data, encoding, errors, newline)


def decode(data: bytes, encoding: str | None, errors: str | None, newline: str | None) -> str:
    """What ``open(path, "r", ...).read()`` returns for a file holding
    ``data`` (CPython's TextIOWrapper over memory: no I/O)."""
    with io.TextIOWrapper(io.BytesIO(data), encoding, errors, newline) as text:
        return text.read()


def read_blocking(path: StrOrBytesPath) -> bytes:
    """Pool side: open, read and close in one job (``Path.read_bytes``)."""
    with open(path, "rb") as f:
        fd = f.fileno()
        learn_from(path, fd, os.fstat(fd).st_dev)  # so that the next open may be inline
        return f.read()


def check_path(path: object, what: str) -> None:
    """A path, not a descriptor: these helpers open and close what they read."""
    if isinstance(path, int) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{what}() takes a path (str, bytes or os.PathLike), not {type(path).__name__}"
        )
