"""The bridge: CPython's own C io stack over a positional raw of ours.

``io.open`` builds TextIOWrapper -> Buffered{Reader,Writer,Random} -> FileIO.
We keep the C layers on top (so every semantic is CPython's own: decoding,
newline translation, buffering, tell cookies, exceptions) and replace the
FileIO with ``BridgeRaw``. Its position is a Python int; reads are served
from a read-ahead window filled with preadv2(RWF_NOWAIT) on the loop when
the page cache has the bytes. Whatever must block (a miss, a write,
SEEK_END, truncate, close) *suspends the greenlet* the C call runs in:
``Bridge.run`` awaits the pool for it and switches back in with the result
(or throws the exception in). The C code never knows it was paused.

Called outside its operation's greenlet (a finalizer flushing at garbage
collection, or a user driving a detached stream synchronously) the raw does
the blocking call directly, as FileIO would.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import io
import operator
import os
import warnings
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import greenlet

from aiofastread._file import check_size, lseek_restoring
from aiofastread._handle import FileHandle
from aiofastread._policy import INLINE_MAX, InodeState, Outcome
from aiofastread._read import pread_full, pread_to_eof, try_inline
from aiofastread._runtime import POLICY
from aiofastread._text import is_universal, line_terminator

if TYPE_CHECKING:
    import concurrent.futures

    from aiofastread._pool import MissPool
    from aiofastread.threadpool._base import AsyncBase

T = TypeVar("T")

# Read-ahead when the page cache has the bytes: 64 KiB inline is ~10 us on
# this VM and holds hundreds of lines, so line iteration refills rarely
# (the same figure as _file.WINDOW_SIZE).
INLINE_WINDOW = 64 << 10
# Read-ahead on a miss, for sequential reads: one pool hop (~100 us) per
# 256 KiB keeps hop overhead below the device time of that much data, while
# a random reader (first read after a seek) only fetches INLINE_WINDOW.
POOL_WINDOW = 256 << 10
# Seek targets past this ask the kernel (lseek) instead of being taken on
# trust: ext4 refuses offsets beyond its 16 TiB file limit with EINVAL, as
# FileIO.seek would report.
TRUSTED_SEEK_MAX = 1 << 40

# A request from a suspended greenlet: an async callable and its arguments.
Request = tuple[Callable[..., Coroutine[Any, Any, Any]], tuple[Any, ...]]


class Counters:
    """Bridge-wide events that tests assert on."""

    # Blocking calls made on the loop by a line served from memory (always
    # 0 if _text's reasoning holds; a bug would still return right results).
    speculation_blocked = 0


# -- the raw -------------------------------------------------------------------


class BridgeRaw(io.RawIOBase):
    """A FileIO look-alike whose I/O goes through the inline path and the pool."""

    # A plain attribute, not a property: TextIOWrapper.readline asks the raw
    # whether it is closed on every call, and a property costs ~0.3 us a line.
    closed: bool = False

    def __init__(self, handle: FileHandle, pos: int, line_end: bytes | None, universal: bool):
        super().__init__()
        self._h = handle
        self._fio = handle.raw
        self._readable = self._fio.readable()
        self._writable = self._fio.writable()
        self._append = "a" in self._fio.mode
        self._pos = pos
        # The read-ahead window: file bytes [_wpos, _wpos + len(_win)); the
        # position is always inside it or at its end.
        self._win = b""
        self._wview = memoryview(b"")
        self._wpos = pos
        self._seq_end = -1  # where the last fetch ended: sequential reads fetch more
        self._win_eof = False  # the window ends where the file did when read
        self._line_end = line_end
        self._universal = universal
        # Line fast path cache: where the first line from _scan_pos ends
        # (file offset, -1 if not in the window).
        self._scan_pos = -1
        self._scan_end = -1
        self.fits_at = -1  # position at which line_fits() last said yes
        # The greenlet of the operation running now (set by Bridge.run).
        self.owner: greenlet.greenlet | None = None
        self.speculating = False

    # -- attributes (FileIO's) -------------------------------------------------

    @property
    def name(self) -> Any:
        return self._fio.name

    @name.setter
    def name(self, value: Any) -> None:
        self._fio.name = value

    @property
    def mode(self) -> str:
        return self._fio.mode

    @property
    def closefd(self) -> bool:
        return self._fio.closefd

    @property
    def _blksize(self) -> int:
        return self._fio._blksize  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        if self.closed:
            return "<aiofastread BridgeRaw [closed]>"
        return (
            f"<aiofastread BridgeRaw name={self.name!r} mode={self.mode!r} "
            f"closefd={self.closefd!r}>"
        )

    def fileno(self) -> int:
        self._check_closed()
        return self._h.fd

    def readable(self) -> bool:
        self._check_closed()
        return self._readable

    def writable(self) -> bool:
        self._check_closed()
        return self._writable

    def seekable(self) -> bool:
        self._check_closed()
        return True  # only regular files are bridged

    def isatty(self) -> bool:
        self._check_closed()
        return False  # a regular file never is

    # -- reading ---------------------------------------------------------------

    def readinto(self, buffer: Any) -> int:
        try:
            view = memoryview(buffer)
        except TypeError:
            view = None
        if view is None or view.readonly:
            raise TypeError(
                "readinto() argument must be read-write bytes-like object, "
                f"not {type(buffer).__name__}"
            )
        self._check_readable()
        return self._read_into(view.cast("B"))

    def read(self, size: int | None = -1) -> bytes:
        n = check_size(size)
        self._check_readable()
        if n < 0:
            return self.readall()
        off = self._pos - self._wpos
        if n <= len(self._win) - off:  # all in the window: one copy
            self._pos += n
            return self._win[off : off + n]
        buf = bytearray(n)
        del buf[self._read_into(memoryview(buf)) :]
        return bytes(buf)

    def readall(self) -> bytes:
        self._check_closed()
        if not self._readable:  # FileIO.readall just tries, and read(2) says:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        head = self._win[self._pos - self._wpos :]
        pos = self._pos + len(head)
        h = self._h
        left = max(h.size_hint - pos, 0)
        data, complete = b"", False
        if left < INLINE_MAX:
            # +1 sees EOF, or that the file grew, in the same call.
            data, complete = try_inline(h, pos, left + 1)
        if not complete or len(data) > left:
            rest: bytes = self._block(pread_to_eof, h.fd, pos + len(data))
            POLICY.record(h.inode, Outcome.POOLED, len(rest))
            data += rest
        pos += len(data)
        h.size_hint = max(h.size_hint, pos)
        self._pos = pos
        self._set_window(pos, b"")
        return head + data

    def readline(self, size: int | None = -1) -> bytes:
        limit = check_size(size)
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            self._check_readable()
            off = self._pos - self._wpos
            if off >= len(self._win):
                self._refill(1)
                if not self._win:
                    break
                off = 0
            win = self._win
            stop = len(win) if limit < 0 else min(len(win), off + limit - got)
            newline = win.find(b"\n", off, stop)
            end = stop if newline < 0 else newline + 1
            parts.append(win[off:end])
            got += end - off
            self._pos = self._wpos + end
            if newline >= 0:
                break
        return b"".join(parts)

    def _read_into(self, view: memoryview) -> int:
        """Fill ``view`` from the position, short only at EOF, as FileIO
        does on a regular file: CPython's layers above then see the same
        chunks (decode errors, ``newlines`` and cookies depend on them)."""
        n = len(view)
        got = 0
        while got < n:
            off = self._pos - self._wpos
            avail = len(self._win) - off
            if avail <= 0:
                if self.speculating and self._win_eof:
                    break  # EOF as the window saw it; no I/O on the loop
                self._refill(n - got)
                off, avail = 0, len(self._win)
                if not avail:
                    break
            k = min(avail, n - got)
            view[got : got + k] = self._wview[off : off + k]
            got += k
            self._pos += k
        return got

    def _refill(self, want: int) -> None:
        """Make the window start at the position: inline if cached, else pool."""
        h = self._h
        pos = self._pos
        size = max(want, INLINE_WINDOW)
        data, complete = try_inline(h, pos, size)
        if not data and not complete:
            size = max(want, POOL_WINDOW if pos == self._seq_end else INLINE_WINDOW)
            data = self._block(pread_full, h.fd, size, pos)
            complete = True
            POLICY.record(h.inode, Outcome.POOLED, len(data))
            h.size_hint = max(h.size_hint, pos + len(data))
        self._set_window(pos, data, eof=complete and len(data) < size)
        self._seq_end = pos + len(data)

    # -- the line fast path (Bridge.readline_now) ----------------------------

    def line_fits(self, chunk: int) -> bool:
        """Whether a readline from here is served by the window alone.

        The layers above ask for ``chunk`` bytes at a time (TextIOWrapper's
        _CHUNK_SIZE); every request up to the one holding the line end must
        be filled whole, as FileIO would, or the window must end at EOF.
        """
        pos = self._pos
        if self._scan_pos != pos:
            self._scan_pos = pos
            self._scan_end = self._first_line_end(pos)
        if self._scan_end < 0:
            return self._win_eof
        need = -(-(self._scan_end - pos) // chunk) * chunk
        return pos + need <= self._wpos + len(self._win) or self._win_eof

    def _first_line_end(self, pos: int) -> int:
        """File offset just past the first line end at or after ``pos``,
        including the byte a universal-newline decoder must see after a
        "\r"; -1 if the window has none."""
        assert self._line_end is not None
        win = self._win
        off = pos - self._wpos
        i = win.find(self._line_end, off)
        end = -1 if i < 0 else i + len(self._line_end)
        if self._universal:
            j = win.find(b"\r", off, i if i >= 0 else len(win) - 1)
            if j >= 0:
                end = j + 2
        return -1 if end < 0 else self._wpos + end

    def extend_inline(self) -> bool:
        """Append the next cached bytes to the window, without blocking.

        On the loop, for the line fast path; True if the window changed.
        """
        if self._win_eof or not self._readable or self.closed:
            return False
        end = self._wpos + len(self._win)
        data, complete = try_inline(self._h, end, INLINE_WINDOW)
        if not data and not complete:
            return False
        keep = self._win[self._pos - self._wpos :]
        self._set_window(self._pos, keep + data, eof=complete and len(data) < INLINE_WINDOW)
        self._seq_end = self._wpos + len(self._win)
        return True

    def _set_window(self, start: int, data: bytes, *, eof: bool = False) -> None:
        self._win = data
        self._wview = memoryview(data)
        self._wpos = start
        self._win_eof = eof
        self._scan_pos = self.fits_at = -1

    def _drop_window(self) -> None:
        self._set_window(self._pos, b"")

    # -- writing ---------------------------------------------------------------

    def write(self, b: Any) -> int:
        try:
            data = bytes(memoryview(b))
        except TypeError:
            raise TypeError(f"a bytes-like object is required, not '{type(b).__name__}'") from None
        self._check_closed()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")
        if not data:
            return 0
        self._drop_window()
        h = self._h
        n: int
        if self._append:
            # O_APPEND writes land at the end wherever we are; the offset the
            # kernel leaves is the new position, as FileIO would report it.
            n, self._pos = self._block(append_write, h.fd, data)
        else:
            n = self._block(os.pwrite, h.fd, data, self._pos)
            self._pos += n
        h.size_hint = max(h.size_hint, self._pos)
        self._drop_window()
        return n

    def truncate(self, size: int | None = None) -> int:
        self._check_closed()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")
        target = self._pos if size is None else operator.index(size)
        self._block(os.ftruncate, self._h.fd, target)
        self._drop_window()
        self._h.size_hint = target
        return target

    # -- position --------------------------------------------------------------

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if isinstance(pos, float):
            raise TypeError("an integer is required")
        offset = operator.index(pos)
        whence = operator.index(whence)
        self._check_closed()
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        else:
            target = -1  # SEEK_END/DATA/HOLE or invalid: the kernel decides
        if not 0 <= target <= TRUSTED_SEEK_MAX:
            if whence == os.SEEK_CUR:
                whence, offset = os.SEEK_SET, target
            if whence == os.SEEK_SET and target < 0:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            target = self._block(lseek_restoring, self._h.fd, offset, whence)
        if not self._wpos <= target <= self._wpos + len(self._win):
            self._set_window(target, b"")
        self._pos = target
        return target

    def tell(self) -> int:
        self._check_closed()
        return self._pos

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        if getattr(self, "_finalizing", False):
            self._dealloc_warn(self)
        self.closed = True  # shadows the class attribute from now on
        self._set_window(self._pos, b"")
        if self._in_owner():
            assert self.owner is not None
            try:
                self.owner.parent.switch((self._h.close, ()))
            except BaseException:
                self._h.start_close()  # still closes, once pool users are done
                raise
        else:
            self._h.close_blocking()

    def _dealloc_warn(self, source: object) -> None:
        # C Buffered/TextIOWrapper finalizers call this, as FileIO's does.
        if not self.closed and self.closefd:
            warnings.warn(f"unclosed file {source!r}", ResourceWarning, stacklevel=2, source=source)

    # -- helpers ---------------------------------------------------------------

    def _in_owner(self) -> bool:
        return self.owner is not None and greenlet.getcurrent() is self.owner

    def _block(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking call: from the pool if we can suspend, else here."""
        if self._in_owner():
            assert self.owner is not None
            return self.owner.parent.switch((self._h.run, (fn, *args)))
        if self.speculating:
            Counters.speculation_blocked += 1
        return fn(*args)

    def _check_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_closed()
        if not self._readable:
            raise io.UnsupportedOperation("File not open for reading")


def append_write(fd: int, data: bytes) -> tuple[int, int]:
    """Blocking (pool): an O_APPEND write and the offset it left."""
    n = os.write(fd, data)
    return n, os.lseek(fd, 0, os.SEEK_CUR)


# -- the driver ----------------------------------------------------------------


class FileLock:
    """A FIFO mutex for one file's operations, taken without awaiting when free.

    Release hands ownership straight to the oldest waiter, so ``busy`` stays
    true until that waiter has run: the line fast path, which only checks
    ``busy``, can never slip in between.
    """

    __slots__ = ("_waiters", "busy")

    def __init__(self) -> None:
        self.busy = False
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if not self.busy:
            self.busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed to us just as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy = False


class Bridge:
    """Runs one file's C io calls in greenlets, one at a time."""

    __slots__ = ("_lock", "after_close", "file", "lines", "raw", "text")

    def __init__(self, file: Any, raw: BridgeRaw, *, lines: bool) -> None:
        self.file = file  # the top of the C stack
        self.raw = raw
        self.lines = lines  # readline() may be served on the loop (see _text)
        self.text = isinstance(file, io.TextIOWrapper)
        self._lock = FileLock()
        # Blocking cleanup to run in the pool after close (temporary files).
        self.after_close: Callable[[], object] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` with this file's raw able to await the pool."""
        lock = self._lock
        if lock.busy:
            await lock.acquire()
        else:
            lock.busy = True
        raw = self.raw
        try:
            g = greenlet.greenlet(fn)
            raw.owner = g
            out = g.switch(*args)
            if not g.dead:
                out = await _resume(g, out)
            return out  # type: ignore[no-any-return]
        finally:
            raw.owner = None
            lock.release()

    def readline_now(self, size: Any) -> Any:
        """``file.readline(size)`` if it can be served from memory, else None.

        Runs on the loop with no greenlet and no await: the cost of a line
        is then the C readline itself (DESIGN: lines are cut on the loop).
        """
        raw = self.raw
        if not self.lines or self._lock.busy or raw.closed:
            return None
        if raw.fits_at != raw._pos:  # else: known to fit since the raw last moved
            chunk = self.file._CHUNK_SIZE if self.text else 1
            if not raw.line_fits(chunk) and not (raw.extend_inline() and raw.line_fits(chunk)):
                return None
            raw.fits_at = raw._pos
        raw.speculating = True
        try:
            return self.file.readline(size)
        finally:
            raw.speculating = False

    async def close(self) -> None:
        try:
            await self.run(self.file.close)
        finally:
            cleanup, self.after_close = self.after_close, None
            if cleanup is not None:
                await self.raw._h.pool.run(cleanup, executor=self.raw._h.executor)


async def _resume(g: greenlet.greenlet, request: Request) -> Any:
    """Serve a suspended greenlet's requests until its C call returns.

    Cancellation does not abort the C call midway (that could lose decoded
    characters or half-written buffers): the call completes under the file
    lock, then CancelledError is raised. Only if this coroutine is closed
    outright (GeneratorExit) is the call unwound by throwing into it.
    """
    cancelled = False
    while True:
        coro_fn, args = request
        task = asyncio.ensure_future(coro_fn(*args))
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                cancelled = True
            except BaseException:
                _unwind(g)
                raise
        g.parent = greenlet.getcurrent()  # resume from wherever the loop runs now
        try:
            if task.cancelled():
                out = g.throw(asyncio.CancelledError())
            elif (exc := task.exception()) is not None:
                out = g.throw(exc)
            else:
                out = g.switch(task.result())
        except BaseException as exc:
            if cancelled and not isinstance(exc, asyncio.CancelledError):
                raise asyncio.CancelledError() from exc
            raise
        if g.dead:
            if cancelled:
                raise asyncio.CancelledError()
            return out
        request = out


def _unwind(g: greenlet.greenlet) -> None:
    """Abandon a suspended C call: raise GreenletExit in it until it ends."""
    for _ in range(8):  # each try may stop at one more suspension (close)
        if g.dead:
            return
        try:
            g.throw()
        except BaseException:
            return


# -- building the stack ----------------------------------------------------------


def wrap_opened(
    obj: Any,
    inode: InodeState,
    *,
    size: int,
    direct_io: bool,
    pool: MissPool,
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
    pos: int = 0,
    buffering: int = -1,
    newline: str | None = None,
) -> AsyncBase[Any]:
    """Rebuild what ``io.open`` returned over a BridgeRaw; the async wrapper.

    ``obj`` is io.open's object for a regular file (TextIOWrapper, Buffered*
    or FileIO); ``pos`` its descriptor's offset; ``buffering`` and
    ``newline`` the arguments it was opened with (neither is readable back
    from the object).
    """
    from aiofastread.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader, AsyncFileIO
    from aiofastread.threadpool.text import AsyncTextIOWrapper

    text = obj if isinstance(obj, io.TextIOWrapper) else None
    buffered = text.buffer if text is not None else obj
    fio: io.FileIO = buffered if isinstance(buffered, io.FileIO) else buffered.raw
    if text is not None:
        settings = (text.encoding, text.errors, text.line_buffering, text.write_through)
        mode = text.mode
        text.detach()
    if buffered is not fio:
        buffered.detach()
    try:
        handle = FileHandle(
            fio, inode, size=size, direct_io=direct_io, pool=pool, executor=executor
        )
        read_only = fio.readable() and not fio.writable()
        line_end = line_terminator(settings[0], settings[1], newline) if text is not None else b"\n"
        # Lines on the loop: text (see _text), or our own raw readline; a
        # binary Buffered layer would read in buffer-size chunks instead.
        lines = read_only and line_end is not None and (text is not None or buffered is fio)
        raw = BridgeRaw(
            handle, pos, line_end if lines else None, text is not None and is_universal(newline)
        )
        cls: type[AsyncBase[Any]]
        if buffered is fio:
            top: Any = raw
            cls = AsyncFileIO
        else:
            # io.open's rule: an explicit size, else the raw's _blksize.
            buffer_size = buffering if buffering > 1 else fio._blksize  # type: ignore[attr-defined]
            top = type(buffered)(raw, buffer_size)
            cls = AsyncBufferedIOBase if isinstance(top, io.BufferedWriter) else AsyncBufferedReader
            if text is not None:
                encoding, errors, line_buffering, write_through = settings
                top = io.TextIOWrapper(
                    top, encoding, errors, newline, line_buffering, write_through
                )
                top.mode = mode
                cls = AsyncTextIOWrapper
    except BaseException:
        pool.submit_detached(fio.close)
        raise
    return cls._bridged(top, Bridge(top, raw, lines=lines), loop, executor)
