"""The binary writer: ``AsyncBufferedWriter``, what "wb", "ab" and "xb" return.

``write`` copies into a buffer on the loop: no greenlet, no syscall, no
await point, until the buffer is full or ``flush``/``seek``/``truncate``/
``close`` needs it written. Then one pool hop writes the whole buffer
(pwrite at our position; write(2) for O_APPEND, which lands at the end).
Its fast path (exact bytes that fit: buffered at the call, a completed
awaitable returned) is the base class's, ``_writer_core.WriterCore`` (C when
compiled); the rest starts at ``_write_slow``.

Semantics are CPython's C ``BufferedWriter`` with the same buffer size, step
for step (Modules/_io/bufferedio.c): a write that fits is buffered, even to
exactly full; one that does not first flushes the buffer, then writes itself
directly while more than a buffer's worth is left, and buffers the rest. A
failed flush keeps its unwritten bytes buffered, and the bytes it did write
still count against the buffer's room until a flush succeeds (C keeps them
as its buffer's head). So every error (ENOSPC, EIO, EBADF, EFBIG) surfaces
at the call where CPython's writer would raise it (tests/test_writer_*).

Cancellation: a ``write``/``flush``/``seek``/``truncate`` cancelled while
waiting for the file lock did nothing. One cancelled while its pool hop runs
waits for the hop (threads cannot be stopped), applies its outcome exactly
as an uncancelled call would (the bytes are written, or stay buffered on an
error; never written twice), then raises CancelledError, chained from the
write error if there was one. This is the bridge's rule too (_bridge/driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aiofastread._checks import (
    WHENCES,
    c_integer,
    check_index,
    check_limit,
    lseek_restoring,
    resolve_seek,
)
from aiofastread._handle import FileHandle
from aiofastread._writer_core import WriterCore
from aiofastread._writer_ready import Done

if TYPE_CHECKING:
    import concurrent.futures

    from aiofastread._open import Opened
    from aiofastread._policy import InodeState
    from aiofastread._pool import MissPool

T = TypeVar("T")

# Default buffer when open() was not given buffering= (io.open's own default
# would be st_blksize, 4 KiB here). A flush costs a pool hop (40-80 us on
# this VM, bench/writes.py's "pool hop"), the pwrite (~30 us for 128 KiB of
# new pages) and the task/wait around it: 100-170 us for 128 KiB in all,
# ~0.1 us on each of its ~1300 100 B writes, as much as half the write's own
# cost. 256 KiB halves that share, while a task writing 100 B pieces in a
# loop still yields (at the hop) every ~0.5-0.7 ms, under the cooperative
# budget's 1 ms (_budget); 1 MiB would hold the loop ~2.5 ms
# (docs/performance.md, "Small writes").
DEFAULT_BUFFER_SIZE = 256 << 10

_C_LONG = 1 << 63  # offsets: a C off_t

# Completed awaitables a writer keeps, one per write length it has seen: a
# loop of writes has a few lengths; one of many (lines) only remakes them.
_DONE_CACHE = 64

# BufferedWriter.write in 3.13+ sends a write of buffer_size bytes or more
# straight to the file instead of buffering one that exactly fits (both
# where it first tries the buffer and after a flush): 1 there, else 0
# (measured against 3.11/3.12/3.13 here; tests/test_writer_differential.py).
_FULL_GOES_OUT = 1 if sys.version_info >= (3, 13) else 0

# A BufferedWriter never initialised, with no file behind it: it answers
# read/read1/readinto exactly as every BufferedWriter does (3.12 moved their
# argument checks before the "not readable" error), so ours ask it.
_NOT_A_READER = io.BufferedWriter.__new__(io.BufferedWriter)


def default_buffer_size() -> int:
    return DEFAULT_BUFFER_SIZE


def set_default_buffer_size(size: int) -> None:
    """The buffer of files opened for writing without buffering= (configure)."""
    global DEFAULT_BUFFER_SIZE
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"write_buffer_size must be a positive int, got {size!r}")
    DEFAULT_BUFFER_SIZE = size


def buffer_size_for(buffering: int, blksize: int) -> int:
    """io.open's rule when buffering= was given (1 in binary mode: the
    default, st_blksize), else our larger default."""
    if buffering > 1:
        return buffering
    return blksize if buffering == 1 else DEFAULT_BUFFER_SIZE


class _Ticket:
    """Stands for a write returned as a coroutine, until it starts."""

    __slots__ = ("__weakref__",)


class _FileLock(asyncio.Lock):
    """asyncio.Lock, declaring the flag the fast path reads directly."""

    _locked: bool


class AsyncBufferedWriter(WriterCore):
    """The asyncio version of io.BufferedWriter, buffering on the loop."""

    def __init__(
        self,
        handle: FileHandle,
        *,
        name: Any,
        mode: str,
        buffer_size: int,
        pos: int,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self._h = handle
        self._name = name
        self._mode = mode
        self._loop = loop
        self._executor = executor
        self._size = buffer_size
        self._buf = bytearray()
        # Bytes a failed flush did write from the head of the buffer: they
        # count against its room until a flush succeeds, as in C.
        self._dead = 0
        self._pos = pos  # file offset of _buf[0] (for O_APPEND: the fd's offset)
        self._append = "a" in mode
        self._lock = _FileLock()
        self._usable = True  # not closed, not detached
        # The fast path's one check: how full the buffer may get by a write
        # that just appends; -1 while closed, detached or mid-operation.
        self._limit = buffer_size - _FULL_GOES_OUT
        self._closed = False
        self._detached = False
        # write()'s completed awaitables by length (write's fast path).
        self._done = {}
        # Writes returned as coroutines that have not started: while any is
        # left, no write takes the fast path (it would overtake them). Weak:
        # one never awaited is dropped with its coroutine, and the next
        # write that runs sets _limit again.
        self._lazy: weakref.WeakSet[_Ticket] = weakref.WeakSet()
        # Blocking cleanup to run in the pool after close (temporary files).
        self.after_close: Callable[[], object] | None = None

    # -- properties (sync, as in aiofiles) -----------------------------------

    @property
    def closed(self) -> bool:
        self._check_attached()
        return self._closed

    @property
    def name(self) -> Any:
        self._check_attached()
        return self._name

    @property
    def mode(self) -> str:
        self._check_attached()
        return self._mode

    @property
    def raw(self) -> io.FileIO | None:
        return None if self._detached else self._h.raw

    @property
    def _file(self) -> io.FileIO:  # aiofiles exposes the wrapped object here
        return self._h.raw

    def fileno(self) -> int:
        self._check_open("I/O operation on closed file")
        return self._h.fd

    def readable(self) -> bool:
        return False  # IOBase.readable: no checks

    def detach(self) -> io.FileIO:
        """Flush and hand the raw FileIO back, positioned where we are.

        Synchronous (as in aiofiles): a non-empty buffer is written here, on
        the calling thread, as CPython's detach() would do."""
        self._check_attached()
        if self._closed:
            raise ValueError("flush of closed file")
        if self._lock._locked:
            raise RuntimeError("detach() while another operation on this file is running")
        if self._buf:
            try:
                self._apply(
                    write_out(self._h.fd, self._pos, self._append, self._buf, None, 0), None
                )
            finally:
                self._refresh_limit()
        self._dead = 0
        os.lseek(self._h.fd, self._pos, os.SEEK_SET)  # no I/O: sets the offset
        self._detached = True
        self._usable = False
        self._limit = -1
        self._h.closing = True
        return self._h.raw

    def __repr__(self) -> str:
        return f"<aiofastread.AsyncBufferedWriter name={self._name!r} mode={self._mode!r}>"

    # -- writing ---------------------------------------------------------------

    # write(data) -> Awaitable[int] is WriterCore's (_writer_core: in C when
    # compiled): exact bytes that fit, nobody mid-operation, are buffered at
    # the call and the length's completed awaitable returned (_writer_ready:
    # a finished coroutine to asyncio). Everything else comes here.

    def _write_slow(self, data: Any) -> Awaitable[int]:
        """``write`` off its fast path: bytes that fit but whose length has
        no completed awaitable yet are buffered (one is made); the rest is
        the coroutine ``_write``, which does nothing until awaited, as
        before. Until it starts, later writes come here too (``_lazy``), so
        writes land in the order they were called (``gather(f.write(a),
        f.write(b))``)."""
        if type(data) is bytes:
            n = len(data)
            buf = self._buf
            if self._limit >= 0 and self._fits(n):
                buf += data
                return self._done_for(n)
        ticket = _Ticket()
        self._lazy.add(ticket)
        self._limit = -1
        return self._write(data, ticket)

    def _done_for(self, n: int) -> Awaitable[int]:
        """The completed awaitable of ``n``, made once per length (the cache
        is bounded: a writer of many lengths starts it over)."""
        done = Done.of(n)
        if isinstance(done, Done):
            if len(self._done) >= _DONE_CACHE:
                self._done.clear()
            self._done[n] = done
        return done

    async def _write(self, data: Any, ticket: _Ticket | None = None) -> int:
        if ticket is not None:  # started: the lock orders it from here
            self._lazy.discard(ticket)
            self._refresh_limit()
        view = bytes_view(data)
        self._check_attached()
        await self._acquire()
        try:
            if self._closed:
                raise ValueError("write to closed file")
            n = len(view)
            if self._fits(n):
                self._buf += view
                return n
            # C: flush, then write it directly while more than a buffer's
            # worth is left, then buffer the rest; all in one hop here.
            await self._write_out(view)
            return n
        finally:
            self._release()

    async def writelines(self, lines: Iterable[Any]) -> None:
        # IOBase.writelines: closed check, then write() for each item.
        self._check_open("I/O operation on closed file.")
        for line in lines:
            await self.write(line)

    async def flush(self) -> None:
        self._check_open("flush of closed file")
        if not self._buf and not self._lock._locked:
            self._dead = 0
            self._refresh_limit()
            return
        await self._acquire()
        try:
            self._check_open("flush of closed file")
            await self._flush_locked()
        finally:
            self._release()

    async def _flush_locked(self) -> None:
        if self._buf:
            await self._write_out(None)
        self._dead = 0

    async def truncate(self, size: int | None = None) -> int:
        self._check_open("truncate of closed file")
        await self._acquire()
        try:
            self._check_open("truncate of closed file")
            await self._flush_locked()
            # FileIO.truncate: the fd's position by default, a C long else.
            target = self._pos if size is None else c_integer(size, 64, "long")
            await self._h.run(os.ftruncate, self._h.fd, target)
            return target
        finally:
            self._release()

    # -- position --------------------------------------------------------------

    async def tell(self) -> int:
        self._check_open("I/O operation on closed file")
        return self._pos + len(self._buf)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # BufferedWriter.seek's order: whence converted, detached, whence
        # checked, closed, then the offset.
        whence = c_integer(whence, 32, "int")
        self._check_attached()
        if whence not in WHENCES:
            raise ValueError(f"whence value {whence} unsupported")
        self._check_open("seek of closed file")
        offset = check_index(offset)
        if not -_C_LONG <= offset < _C_LONG:
            raise ValueError("cannot fit 'int' into an offset-sized integer")
        await self._acquire()
        try:
            self._check_open("seek of closed file")
            await self._flush_locked()
            target, offset, whence = resolve_seek(self._pos, offset, whence)
            if target < 0:  # the kernel decides, in the pool
                target = await self._run(lseek_restoring, self._h.fd, offset, whence)
            self._pos = target
            return target
        finally:
            self._release()

    # -- inquiries -------------------------------------------------------------

    async def writable(self) -> bool:
        self._check_open("I/O operation on closed file")
        return True

    async def seekable(self) -> bool:
        self._check_open("I/O operation on closed file")
        return True  # only regular files get this class

    async def isatty(self) -> bool:
        self._check_open("I/O operation on closed file")
        return await self._run(os.isatty, self._h.fd)

    # -- what a BufferedWriter does not do -------------------------------------

    async def read(self, size: int | None = -1) -> bytes:
        return _NOT_A_READER.read(size)  # raises as BufferedWriter.read does

    async def read1(self, size: int = -1) -> bytes:
        return _NOT_A_READER.read1(size)

    async def readinto(self, buffer: Any) -> int:
        return _NOT_A_READER.readinto(buffer)

    async def readline(self, size: int | None = -1) -> bytes:
        # IOBase.readline: the size is checked, then read() raises.
        if check_limit(size) == 0:
            return b""
        raise io.UnsupportedOperation("read")

    async def readlines(self, hint: int | None = -1) -> list[bytes]:
        check_limit(hint)
        self._check_open("I/O operation on closed file.")  # IOBase.__iter__
        raise io.UnsupportedOperation("read")

    def __aiter__(self) -> AsyncBufferedWriter:
        return self

    async def __anext__(self) -> bytes:
        return await self.readline()  # aiofiles' __anext__ is readline

    # -- closing ---------------------------------------------------------------

    async def close(self) -> None:
        """Flush, then close the fd (after any pool work on it). The fd is
        closed even if the flush fails (its error is raised after), as
        BufferedWriter.close does."""
        self._check_attached()
        if self._closed:
            return
        await self._acquire()
        try:
            if not self._usable:  # closed by another task meanwhile
                return
            try:
                await self._flush_locked()
            finally:
                self._closed = True
                self._usable = False
                self._buf = bytearray()
                try:
                    await self._h.close()
                finally:
                    cleanup, self.after_close = self.after_close, None
                    if cleanup is not None:
                        await self._h.pool.run(cleanup, executor=self._h.executor)
        finally:
            self._release()

    async def __aenter__(self) -> AsyncBufferedWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        # As CPython's finalizer: warn, then flush and close, here and now
        # (even if the warning is made an error).
        if not getattr(self, "_usable", False):
            return
        self._usable = False
        self._limit = -1
        try:
            if self._h.raw.closefd:  # as FileIO's: no warning for a borrowed fd
                warnings.warn(f"unclosed file {self!r}", ResourceWarning, stacklevel=2, source=self)
        finally:
            try:
                if self._buf and not self._lock._locked:
                    write_out(self._h.fd, self._pos, self._append, self._buf, None, 0)
            finally:
                self._closed = True
                self._h.close_blocking()

    # -- helpers ---------------------------------------------------------------

    async def _write_out(self, new: memoryview | None) -> None:
        """One hop: the buffer, then ``new`` down to a buffer's worth, which
        is then buffered. Called with the lock held; see the module's note
        on cancellation."""
        job = asyncio.ensure_future(
            self._h.run(
                write_out,
                self._h.fd,
                self._pos,
                self._append,
                self._buf,
                new,
                self._size - _FULL_GOES_OUT,
            )
        )
        cancelled = False
        try:
            while not job.done():
                try:
                    await asyncio.wait((job,))
                except asyncio.CancelledError:
                    cancelled = True  # the hop goes on: wait for it, then raise
        except BaseException:
            # Torn down (GeneratorExit, KeyboardInterrupt): the thread still
            # writes the buffer; take it as written so nothing is written twice.
            self._buf = bytearray()
            self._dead = 0
            raise
        outcome: Written = job.result()  # type: ignore[assignment]
        try:
            self._apply(outcome, new)
        except OSError as exc:
            if cancelled:
                raise asyncio.CancelledError from exc
            raise
        if cancelled:
            raise asyncio.CancelledError

    def _apply(self, outcome: Written, new: memoryview | None) -> None:
        """Take a write_out's outcome into the state; raise its error."""
        old_written, new_written, pos, error = outcome
        self._pos = pos
        if old_written == len(self._buf):
            self._buf = bytearray()
            self._dead = 0
            if error is None and new is not None:
                self._buf += new[new_written:]
        else:
            del self._buf[:old_written]
            self._dead += old_written
        if error is not None:
            raise error

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._h.run(fn, *args)  # type: ignore[assignment]
        return result

    async def _acquire(self) -> None:
        await self._lock.acquire()
        self._limit = -1

    def _release(self) -> None:
        self._lock.release()
        self._refresh_limit()

    def _refresh_limit(self) -> None:
        # The C fast path's one comparison (afr_write.c): under 3.13's rule
        # it refuses writes that would fill the buffer exactly, which
        # _write_slow then buffers when _fits says so.
        self._limit = (
            self._size - self._dead - _FULL_GOES_OUT
            if self._usable and not self._lock._locked and not self._lazy
            else -1
        )

    def _fits(self, n: int) -> bool:
        """Whether BufferedWriter.write buffers ``n`` more bytes now."""
        return n <= self._size - self._dead - len(self._buf) and not (
            _FULL_GOES_OUT and n >= self._size
        )

    def _check_attached(self) -> None:
        if self._detached:
            raise ValueError("raw stream has been detached")

    def _check_open(self, message: str) -> None:
        if not self._usable:
            self._check_attached()
            raise ValueError(message)


# (bytes of the old buffer written, of the new data written, position after,
# the error that stopped it)
Written = tuple[int, int, int, "OSError | None"]


def write_out(
    fd: int, pos: int, append: bool, old: bytearray, new: memoryview | None, keep: int
) -> Written:
    """Blocking (pool): write ``old`` whole, then ``new`` while more than
    ``keep`` bytes of it are left, one write(2) call at a time as
    BufferedWriter does: at ``pos``, or at the end for O_APPEND."""
    old_written = new_written = 0
    error: OSError | None = None
    try:
        while old_written < len(old):
            old_written += _write_from(fd, old, old_written, append, pos + old_written)
        if new is not None:
            while len(new) - new_written > keep:
                done = old_written + new_written
                new_written += _write_from(fd, new, new_written, append, pos + done)
    except OSError as exc:
        error = exc
    pos += old_written + new_written
    if append and old_written + new_written:
        with contextlib.suppress(OSError):
            pos = os.lseek(fd, 0, os.SEEK_CUR)  # where O_APPEND writes left the fd
    return old_written, new_written, pos, error


def _write_from(
    fd: int, data: bytearray | memoryview, start: int, append: bool, offset: int
) -> int:
    """One write(2) of ``data[start:]``. The slice is released before
    returning, also on an error (whose traceback outlives this call): an
    exported view would stop the buffer from growing again."""
    with memoryview(data)[start:] as chunk:
        return os.write(fd, chunk) if append else os.pwrite(fd, chunk, offset)


def bytes_view(data: Any) -> memoryview:
    """``data`` as C's "y*" takes it: any C-contiguous bytes-like object."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") from None
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def is_plain_binary_write(mode: str, buffering: int) -> bool:
    """ "wb", "ab", "xb" (any order), buffered: the modes this writer serves."""
    return (
        "b" in mode
        and "+" not in mode
        and "r" not in mode
        and len(set(mode) & set("wax")) == 1
        and buffering != 0
    )


def open_writer(
    opened: Opened,
    inode: InodeState,
    *,
    buffering: int,
    pool: MissPool,
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
) -> AsyncBufferedWriter:
    """The writer for what io.open opened (its BufferedWriter is detached)."""
    raw = cast(io.FileIO, opened.obj.detach())
    handle = FileHandle(
        raw, inode, size=opened.size, direct_io=opened.direct_io, pool=pool, executor=executor
    )
    size = buffer_size_for(buffering, raw._blksize)  # type: ignore[attr-defined]
    return AsyncBufferedWriter(
        handle,
        name=raw.name,
        mode=raw.mode,
        buffer_size=size,
        pos=opened.pos,
        loop=loop,
        executor=executor,
    )
