"""The binary core: ``AsyncBufferedReader``, what ``open(path, "rb")`` returns.

It owns the file position (a Python int: ``seek`` and ``tell`` make no
syscall) and a small read-ahead window for ``readline``/``peek``/iteration.
Reads go through ``_read.read_at``: inline when the page cache has the
bytes, else the pool. The position moves only once a read has its bytes, so
a cancelled read leaves the file as if it had not happened (invariant 4).
Operations that use the position are serialized per file; ``pread`` is
positional and runs in parallel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiofastread import _budget, _native, _read, _vectored
from aiofastread._checks import (
    TRUSTED_SEEK_MAX,
    WHENCES,
    check_index,
    check_limit,
    check_size,
    lseek_restoring,
    resolve_seek,
    writable_view,
)
from aiofastread._handle import FileHandle
from aiofastread._policy import INLINE_MAX, Decision, FileState, FileStatistics
from aiofastread._runtime import POLICY
from aiofastread._window import WINDOW_SIZE, Window

# What read1(-1) and peek() return at most, like io.DEFAULT_BUFFER_SIZE.
BUFFER_SIZE = io.DEFAULT_BUFFER_SIZE

_WARM = FileState.WARM
_SEEK_SET = os.SEEK_SET
_BUDGET = _budget.BUDGET


# With the compiled module, the C hit path (native/afr_hit.c) reads the
# reader's position, its window's length and its lock's flag from C fields:
# ReaderCore's and LockCore's members, which the Python code below (and
# asyncio.Lock's own) reads and writes as attributes (_native.hit_base).
if TYPE_CHECKING:

    class _ReaderCore:
        """The reader's C base, as the type checker sees it: nothing."""

    class _LockCore:
        """The lock's C base, as the type checker sees it: nothing."""
else:
    _ReaderCore = _native.hit_base("ReaderCore", ())[0]
    _LockCore = _native.hit_base("LockCore", ())[0]


class _FileLock(_LockCore, asyncio.Lock):
    """asyncio.Lock, declaring the flag the fast paths read directly:
    ``_locked`` as an attribute costs ~60 ns less than ``locked()``; with
    the compiled module it is a C field (LockCore) asyncio.Lock sets."""

    _locked: bool


def fast_path_takes(reader: _PythonReader, size: object) -> bool:
    """Whether ``reader.read(size)`` is one preadv2(RWF_NOWAIT) at once.

    The rule for a read nothing stands before (no window, no other
    operation on the file, not closed): the policy reads a WARM file inline
    (``Policy.decide``) and no look ahead is due (``_read.lookahead_checked``).
    ``read`` writes this out (a call costs ~0.1 us against a ~1.6 us cached
    read); tests/test_inline_rule.py proves the two agree for every state.
    """
    if reader._win.data or reader._lock._locked:
        return False
    if size is None or (type(size) is int and size == -1):
        # read(): the rest of a small file in one read (_read.whole_read_size).
        size = _read.whole_read_size(reader._h, reader._pos)
    return pread_fast_path_takes(reader, size, reader._pos)


def pread_fast_path_takes(reader: _PythonReader, size: object, offset: object) -> bool:
    """Whether ``reader.pread(size, offset)`` is one preadv2(RWF_NOWAIT) at
    once: the rule of ``fast_path_takes`` without the position's clauses
    (a positional read needs no window and no lock), and with the
    cooperative budget's (a task over it yields first: ``_budget``).
    ``readinto``/``pread_into`` of a bytearray follow the same rules with
    ``size = len(buffer)``."""
    h = reader._h
    if type(size) is not int or size <= 0 or type(offset) is not int or offset < 0:
        return False
    if h.closing or _budget.over():
        return False
    return (
        h.inode.state is _WARM
        and POLICY.decide(h.inode, size, direct_io=h.direct_io) is Decision.INLINE
        and _read.lookahead_checked(h, offset, size)
    )


def _count_hit(h: FileHandle, end: int, size: int) -> None:
    """The HIT bookkeeping of a fast path (``read`` and ``pread`` write it
    out): Policy.record(HIT), where the stream ends, _read.yield_to_pool,
    and the cooperative budget's charge (_budget.charge)."""
    c = h.inode.counters
    hits = c.inline_hits = c.inline_hits + 1
    c.bytes_inline += size
    h.seq_end = end
    if not hits & 15 and h.pool.busy:
        os.sched_yield()
    b = _BUDGET
    spent = b.spent = b.spent + size + 4000  # _budget.charge (4000: COST_PER_OP)
    if spent > b.next:
        _budget.crossed()


_Reader = TypeVar("_Reader", bound="_PythonReader")


class _PythonReader:
    """AsyncBufferedReader's Python side: everything, its hit paths written
    out in Python (``read``, ``seek``, ``tell``, ``pread``, ``readinto``,
    ``pread_into``). With the compiled module the C ones of ``_ReaderCore``
    come first (AsyncBufferedReader below) and call these only when they
    stand aside (another backend in use, or calls they do not take)."""

    def __init__(
        self,
        handle: FileHandle,
        *,
        name: Any,
        mode: str,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self._h = handle
        self._name = name
        self._mode = mode
        self._loop = loop
        self._executor = executor
        self._pos = 0
        self._win = Window()  # for readline/peek/iteration
        self._lock = _FileLock()
        self._detached = False

    # -- properties (sync, as in aiofiles) -----------------------------------

    @property
    def closed(self) -> bool:
        return self._h.closing

    @property
    def name(self) -> Any:
        return self._name

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def raw(self) -> io.FileIO:
        return self._h.raw

    @property
    def _file(self) -> io.FileIO:  # aiofiles exposes the wrapped object here
        return self._h.raw

    def fileno(self) -> int:
        self._check_open("I/O operation on closed file")
        return self._h.fd

    def readable(self) -> bool:
        self._check_open("I/O operation on closed file")
        return True

    def detach(self) -> io.FileIO:
        """Hand the raw FileIO back, positioned where this reader was."""
        self._check_open("raw stream has been detached")
        os.lseek(self._h.fd, self._pos, os.SEEK_SET)  # no I/O: sets f_pos
        self._detached = True
        self._h.closing = True
        return self._h.raw

    def statistics(self) -> FileStatistics:
        """This file's (inode's) fast-path counters, as a frozen snapshot."""
        return self._h.inode.snapshot()

    def __repr__(self) -> str:
        return f"<aiofastread.AsyncBufferedReader name={self._name!r} mode={self._mode!r}>"

    # -- reading --------------------------------------------------------------

    async def read(self, size: int | None = -1) -> bytes:
        # The fast path: fast_path_takes() written out, and the HIT
        # bookkeeping of _read.judge_inline; tests/test_inline_rule.py
        # proves both equal the rule for every state.
        h = self._h
        pos = self._pos
        b = _BUDGET
        if (
            type(size) is int
            and 0 < size <= INLINE_MAX
            and not self._win.data
            and h.inode.state is _WARM
            and not h.closing
            and not self._lock._locked  # locked() as an attribute: ~60 ns less a read
            and POLICY.enabled
            and not h.direct_io
            and (pos != h.seq_end or pos + size <= h.ahead_ok_to)
            and b.ok  # else _read.read_at yields first (_budget)
        ):
            # Loaded, then called: a call straight off the Backend's slot
            # is not specialised by CPython 3.11 (~20 ns more a read).
            read_nowait = _native.backend.read_nowait
            got = read_nowait(h.fd, size, pos)
            if type(got) is bytes and len(got) == size:
                c = h.inode.counters  # the ratio folds these in lazily
                hits = c.inline_hits = c.inline_hits + 1
                c.bytes_inline += size
                self._pos = h.seq_end = pos + size
                # _read.yield_to_pool written out (15: YIELD_EVERY_MASK, a literal
                # saves a global lookup a read; the tests count the yields).
                if not hits & 15 and h.pool.busy:
                    os.sched_yield()
                # _budget.charge written out (4000: _budget.COST_PER_OP).
                spent = b.spent = b.spent + size + 4000
                if spent > b.next:
                    _budget.crossed()
                return got
            return await self._read_general(size, got, pos)
        return await self._read_general(size)

    async def _read_general(
        self, size: int | None, attempt: bytes | int | None = None, pos: int = -1
    ) -> bytes:
        """``read`` past its fast path (Python's or C's). ``attempt``: what
        the fast path's NOWAIT read at ``pos`` answered (a miss, a short
        read): finished from there, not tried inline again (on this kernel a
        second NOWAIT miss starts readahead again)."""
        if attempt is not None:
            async with self._lock:
                # Unless something ran between the call and its await.
                if self._pos == pos and not self._win.data and not self._h.closing:
                    data = await _read.read_at(self._h, pos, size, attempt=attempt)  # type: ignore[arg-type]
                    self._pos += len(data)
                    return data
        if size is None or (type(size) is int and size == -1):
            # read() of a small file: one NOWAIT read of the rest known + 1
            # (_read.whole_read_size: a file that grew shows it); all the
            # bytes we know of: at EOF. fast_path_takes(self, -1) written out.
            h = self._h
            pos = self._pos
            b = _BUDGET
            left = h.size_hint - pos
            if (
                0 <= left < INLINE_MAX
                and not self._win.data
                and h.inode.state is _WARM
                and not h.closing
                and not self._lock._locked
                and POLICY.enabled
                and not h.direct_io
                and (pos != h.seq_end or pos + left < h.ahead_ok_to)
                and b.ok
            ):
                read_nowait = _native.backend.read_nowait
                got = read_nowait(h.fd, left + 1, pos)
                if type(got) is bytes and len(got) == left:
                    _count_hit(h, pos + left, left)
                    self._pos = pos + left
                    return got
                async with self._lock:  # free (checked above): taken without a wait
                    return await self._read_all(attempt=got)
        # Anything else takes the general path.
        size = check_size(size)
        self._check_open("read of closed file")
        async with self._lock:
            self._check_open("read of closed file")
            if size < 0:
                return await self._read_all()
            return await self._read_locked(size)

    async def _read_locked(self, size: int) -> bytes:
        if size == 0:
            return b""
        head = self._win.take(self._pos, size)
        if len(head) == size:
            self._pos += size
            self._consume_window()
            return head
        data = await _read.read_at(self._h, self._pos + len(head), size - len(head))
        self._win.drop()
        self._pos += len(head) + len(data)
        return head + data if head else data

    async def _read_all(self, attempt: bytes | int | None = None) -> bytes:
        head = self._win.take(self._pos, -1)
        data = await _read.read_to_eof(self._h, self._pos + len(head), attempt)
        self._win.drop()
        self._pos += len(head) + len(data)
        return head + data if head else data

    async def readall(self) -> bytes:
        return await self.read(-1)

    async def read1(self, size: int = -1) -> bytes:
        size = check_index(size)
        self._check_open("read of closed file")
        async with self._lock:
            self._check_open("read of closed file")
            if size < 0:
                size = BUFFER_SIZE
            if size == 0:
                return b""
            head = self._win.take(self._pos, size)
            if head:
                self._pos += len(head)
                self._consume_window()
                return head
            data = await _read.read_at(self._h, self._pos, size)
            self._pos += len(data)
            return data

    async def readinto(self, buffer: Any) -> int:
        # The fast path for a bytearray (len() is its size in bytes): the
        # kernel copies into the caller's buffer, nothing else copies.
        # The rule is fast_path_takes' with size = len(buffer).
        if type(buffer) is bytearray and not self._win.data and not self._lock._locked:
            pos = self._pos
            size = len(buffer)
            got = self._inline_into(buffer, size, pos)
            if got == size:
                self._pos = pos + size
                return size
            if got is not None:  # a miss or a short read: the general path finishes
                return await self._readinto_general(buffer, got, pos)
        return await self._readinto_general(buffer)

    async def _readinto_general(
        self, buffer: Any, attempt: int | None = None, pos: int = -1
    ) -> int:
        """``readinto`` past its fast path; ``attempt``: as ``_read_general``'s
        (the count or -errno a NOWAIT read into ``buffer`` at ``pos`` answered)."""
        if attempt is not None:
            async with self._lock:
                if self._pos == pos and not self._win.data and not self._h.closing:
                    return await self._finish_into(memoryview(buffer), attempt)
        return await self._readinto(buffer, "readinto")

    async def _finish_into(self, view: memoryview, got: int) -> int:
        """Finish a read into ``view`` at the position whose NOWAIT attempt
        answered ``got`` (a short count or -errno); the lock is held. The
        rest is read into ``view`` by a pool thread: no copy on the loop."""
        count = await _vectored.read_into_at(self._h, view, self._pos, attempt=got)
        self._pos += count
        return count

    async def pread_into(self, buffer: Any, offset: int) -> int:
        """Read into ``buffer`` (any writable bytes-like object) the file's
        bytes at ``offset``, without moving the position; the count read
        (fewer than ``len(buffer)`` only at EOF).

        Not part of io, like ``pread``. A cached read goes straight into
        the buffer (the kernel's copy only): for callers who reuse buffers.
        """
        got: int | None = None
        if type(buffer) is bytearray:
            got = self._inline_into(buffer, len(buffer), offset)
            if got == len(buffer):
                return got
        return await self._pread_into_general(buffer, offset, got)

    async def _pread_into_general(
        self, buffer: Any, offset: int, attempt: int | None = None
    ) -> int:
        """``pread_into`` past its fast path; ``attempt``: as ``_read_general``'s."""
        view = writable_view(buffer, "pread_into")
        offset = check_index(offset)
        if offset < 0:
            raise ValueError(f"pread_into offset must be non-negative, got {offset}")
        self._check_open("read of closed file")
        size = len(view)
        if attempt is None and type(buffer) is not bytearray:
            attempt = self._inline_into(view, size, offset)
            if attempt == size:
                return size
        # The rest is read into the buffer by a pool thread: no copy on the loop.
        return await _vectored.read_into_at(self._h, view, offset, attempt=attempt)

    async def read_many(self, ranges: Iterable[tuple[int, int]]) -> list[bytes]:
        """The bytes of every ``(offset, size)`` range, in order (short only
        at EOF), without moving the position: cached ranges at once, the
        rest together on the pool (docs/design.md, "Vectored reads")."""
        checked = _vectored.check_ranges(ranges)
        self._check_open("read of closed file")
        return await _vectored.read_many(self._h, checked)

    async def read_many_into(self, targets: Iterable[tuple[int, Any]]) -> list[int]:
        """``read_many`` into caller buffers: fill each ``(offset, buffer)``
        pair's writable buffer; the counts (short only at EOF)."""
        checked = _vectored.check_targets(targets)
        self._check_open("read of closed file")
        return await _vectored.read_many_into(self._h, checked)

    def _inline_into(self, buffer: Any, size: int, offset: int) -> int | None:
        """One preadv2(RWF_NOWAIT) of ``size`` bytes at ``offset`` into
        ``buffer`` if the rule (``pread_fast_path_takes``) allows it: what
        it answered (bytes read, or -errno), with the HIT bookkeeping done
        when all came; None if the rule sends the read the general way."""
        h = self._h
        b = _BUDGET
        if (
            0 < size <= INLINE_MAX
            and type(offset) is int
            and offset >= 0
            and h.inode.state is _WARM
            and not h.closing
            and POLICY.enabled
            and not h.direct_io
            and (offset != h.seq_end or offset + size <= h.ahead_ok_to)
            and b.ok
        ):
            read_nowait_into = _native.backend.read_nowait_into
            got = read_nowait_into(h.fd, buffer, size, offset)
            if got == size:
                _count_hit(h, offset + size, size)
            return got
        return None

    async def readinto1(self, buffer: Any) -> int:
        return await self._readinto(buffer, "readinto1")

    async def _readinto(self, buffer: Any, what: str) -> int:
        view = writable_view(buffer, what)
        self._check_open("readinto of closed file")
        async with self._lock:
            self._check_open("readinto of closed file")
            if not self._win.data and what == "readinto":
                # numpy arrays, mmaps, memoryviews: straight in when cached.
                got = self._inline_into(view, len(view), self._pos)
                if got is not None:
                    if got == len(view):
                        self._pos += got
                        return got
                    return await self._finish_into(view, got)
            # What the window holds, then the rest straight into the buffer.
            head = self._win.take(self._pos, len(view))
            got = len(head)
            view[:got] = head
            if got == len(view):
                self._pos += got
                self._consume_window()
                return got
            got += await _vectored.read_into_at(self._h, view[got:], self._pos + got)
            self._win.drop()
            self._pos += got
            return got

    async def peek(self, size: int = 0) -> bytes:
        check_index(size)
        self._check_open("peek of closed file")
        async with self._lock:
            self._check_open("peek of closed file")
            head = self._win.take(self._pos, -1)
            if head:
                return head
            await self._fill_window()
            return self._win.take(self._pos, -1)

    async def _fill_window(self) -> bool:
        """Make the window start at the position; False at EOF."""
        data = await _read.read_at(self._h, self._pos, WINDOW_SIZE)
        self._win.set(self._pos, data)
        return bool(data)

    def _consume_window(self) -> None:
        win = self._win
        if win.data and self._pos >= win.start + len(win.data):
            win.drop()

    async def readline(self, size: int | None = -1) -> bytes:
        limit = check_limit(size)
        self._check_open("readline of closed file")
        async with self._lock:
            self._check_open("readline of closed file")
            return await self._readline_locked(limit)

    async def _readline_locked(self, limit: int) -> bytes:
        # Fast case: the window holds the whole line.
        win = self._win
        wbuf = win.data
        if wbuf:
            start = self._pos - win.start
            end = wbuf.find(b"\n", start) + 1
            if end and (limit < 0 or end - start <= limit):
                self._pos = win.start + end
                if end == len(wbuf):
                    win.drop()
                return wbuf[start:end]
        parts: list[bytes] = []
        got = 0
        begin = self._pos
        while limit < 0 or got < limit:
            try:
                filled = bool(win.take(self._pos, 1)) or await self._fill_window()
            except BaseException:
                # Cancelled (or failed) after earlier pieces of a long line
                # were taken: put them back, as if the call never ran.
                self._seek_to(begin)
                raise
            if not filled:
                break
            piece, ended = win.cut_line(self._pos, limit - got if limit >= 0 else -1)
            parts.append(piece)
            got += len(piece)
            self._pos += len(piece)
            self._consume_window()
            if ended:
                break
        return b"".join(parts)

    async def readlines(self, hint: int | None = -1) -> list[bytes]:
        limit = check_limit(hint)
        lines: list[bytes] = []
        total = 0
        self._check_open("I/O operation on closed file.")
        async with self._lock:
            self._check_open("I/O operation on closed file.")
            begin = self._pos
            try:
                while True:
                    line = await self._readline_locked(-1)
                    if not line:
                        break
                    lines.append(line)
                    total += len(line)
                    if 0 < limit < total:  # IOBase: stop once the total exceeds hint
                        break
            except BaseException:
                self._seek_to(begin)  # no line is lost to a cancellation
                raise
        return lines

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        self._check_open("readline of closed file")
        async with self._lock:
            self._check_open("readline of closed file")
            line = await self._readline_locked(-1)
        if line:
            return line
        raise StopAsyncIteration

    async def pread(self, size: int, offset: int) -> bytes:
        """``size`` bytes at ``offset`` without moving the position.

        Not part of io: safe to run from many tasks at once on one file.
        """
        # The fast path: pread_fast_path_takes() written out (no position,
        # no lock, no window), with read()'s HIT bookkeeping.
        h = self._h
        b = _BUDGET
        if (
            type(size) is int
            and type(offset) is int
            and 0 < size <= INLINE_MAX
            and offset >= 0
            and h.inode.state is _WARM
            and not h.closing
            and POLICY.enabled
            and not h.direct_io
            and (offset != h.seq_end or offset + size <= h.ahead_ok_to)
            and b.ok
        ):
            read_nowait = _native.backend.read_nowait
            got = read_nowait(h.fd, size, offset)
            if type(got) is bytes and len(got) == size:
                c = h.inode.counters
                hits = c.inline_hits = c.inline_hits + 1
                c.bytes_inline += size
                h.seq_end = offset + size
                if not hits & 15 and h.pool.busy:
                    os.sched_yield()
                spent = b.spent = b.spent + size + 4000
                if spent > b.next:
                    _budget.crossed()
                return got
            return await self._pread_general(size, offset, got)
        return await self._pread_general(size, offset)

    async def _pread_general(
        self, size: int, offset: int, attempt: bytes | int | None = None
    ) -> bytes:
        """``pread`` past its fast path; ``attempt``: as ``_read_general``'s."""
        if attempt is not None:
            return await _read.read_at(self._h, offset, size, attempt=attempt)
        size = check_index(size)
        offset = check_index(offset)
        if size < 0:
            raise ValueError(f"pread size must be non-negative, got {size}")
        if offset < 0:
            raise ValueError(f"pread offset must be non-negative, got {offset}")
        self._check_open("read of closed file")
        return await _read.read_at(self._h, offset, size)

    # -- position -------------------------------------------------------------

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # The common case written out, without method calls (each costs
        # ~0.1 us against a ~1.6 us cached read): docs/performance.md.
        if (
            type(offset) is int
            and whence is _SEEK_SET
            and 0 <= offset <= TRUSTED_SEEK_MAX
            and not self._lock._locked
            and not self._h.closing
        ):
            win = self._win
            if win.data and not win.start <= offset <= win.start + len(win.data):
                win.drop()
            self._pos = offset
            return offset
        return await self._seek_general(offset, whence)

    async def _seek_general(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """``seek`` past its fast path."""
        # BufferedReader.seek's order: whence, closed, then the offset.
        whence = check_index(whence)
        if not -(2**31) <= whence < 2**31:
            raise OverflowError("Python int too large to convert to C int")
        if whence not in WHENCES:
            raise ValueError(f"whence value {whence} unsupported")
        self._check_open("seek of closed file")
        offset = check_index(offset)
        if not -(2**63) <= offset < 2**63:
            raise ValueError("cannot fit 'int' into an offset-sized integer")
        async with self._lock:
            self._check_open("seek of closed file")
            target, offset, whence = resolve_seek(self._pos, offset, whence)
            if target < 0:  # the kernel decides, in the pool
                target = await self._h.run(lseek_restoring, self._h.fd, offset, whence)  # type: ignore[assignment]
            self._seek_to(target)
            return target

    def _seek_to(self, target: int) -> None:
        if self._win.data and not self._win.holds(target):
            self._win.drop()
        self._pos = target

    async def tell(self) -> int:
        return await self._tell_general()

    async def _tell_general(self) -> int:
        self._check_open("I/O operation on closed file")
        return self._pos

    async def seekable(self) -> bool:
        self._check_open("I/O operation on closed file")
        return True

    async def writable(self) -> bool:
        return False  # IOBase.writable: no closed check

    async def isatty(self) -> bool:
        self._check_open("I/O operation on closed file")
        result: bool = await self._h.run(os.isatty, self._h.fd)  # type: ignore[assignment]
        return result

    async def write(self, data: object) -> int:
        raise io.UnsupportedOperation("write")  # BufferedIOBase.write: no closed check

    async def writelines(self, lines: Iterable[object]) -> None:
        # IOBase.writelines: closed check, then write() for each item.
        self._check_open("I/O operation on closed file.")
        for _line in lines:
            raise io.UnsupportedOperation("write")

    async def truncate(self, size: int | None = None) -> int:
        self._check_open("truncate of closed file")
        raise io.UnsupportedOperation("truncate")

    async def flush(self) -> None:
        self._check_open("I/O operation on closed file.")

    # -- closing --------------------------------------------------------------

    async def close(self) -> None:
        """Close the file; the fd outlives any read still in the pool."""
        if self._detached:  # as BufferedReader.close() after detach()
            raise ValueError("raw stream has been detached")
        self._win.drop()
        h = self._h
        if h.close_inline and h._close_idle_inline():  # FileHandle.close's first step
            return
        await h.close()

    async def __aenter__(self: _Reader) -> _Reader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self, message: str) -> None:
        if self._h.closing:
            if self._detached:
                raise ValueError("raw stream has been detached")
            raise ValueError(message)


class AsyncBufferedReader(_ReaderCore, _PythonReader):
    """The asyncio version of io.BufferedReader, reading inline when cached.

    With the compiled module, ``read``, ``seek``, ``tell``, ``pread``,
    ``readinto`` and ``pread_into`` are ReaderCore's C methods
    (native/afr_hit.c): a cached read is checked, made and counted in C and
    answered with an awaitable already done, at the syscall's cost; anything
    else returns the coroutine of ``_PythonReader``'s general path.
    """


_native.adopt_c_methods(AsyncBufferedReader)

_native.bind_hit_path(
    POLICY,
    _BUDGET,
    _WARM,
    _budget.crossed,
    _read.yield_to_pool,
    (
        _PythonReader.read,
        _PythonReader.seek,
        _PythonReader.tell,
        _PythonReader.pread,
        _PythonReader.readinto,
        _PythonReader.pread_into,
    ),
)
