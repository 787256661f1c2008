"""``sendfile``: a file to a socket or transport, never waiting for the disk on the loop.

asyncio's ``loop.sendfile`` (and aiohttp's ``FileResponse`` over it) calls
``os.sendfile`` on the loop thread: pages not in the page cache are read
from the disk right there (25-45 ms heartbeat stalls on this VM's fast disk,
DESIGN.md "Facts"), and one large call holds the loop for as long as it
copies. Here, the shape of every inline path (docs/design.md):

- A range goes out inline with ``os.sendfile`` only when ``cachestat(2)``
  (no I/O) reports it resident, and, so that the call meets no readahead
  mark and no page still under I/O, either the pool has just read exactly
  that range or the ``lookahead`` after it is resident too (the read core's
  guard, ``_read._cached``). Each call sends at most ``CHUNK`` bytes, and
  after ``CHUNK`` bytes sent without suspending the task yields to the loop
  once (invariant 7).
- Anything else is brought into the page cache first by a pool thread
  (``_bring_in``: a blocking positional read into a discarded buffer), then
  sent inline, while the next range is read (``_PoolReads``). Once a
  transfer needed the pool, its later ranges all go through the pool first,
  with the kernel's readahead off for the descriptor meanwhile
  (POSIX_FADV_RANDOM): that readahead leaves marks, and pages that
  ``cachestat`` counts as cached while their I/O is still in flight.
- Where zero-copy is not possible (a TLS transport, no ``os.sendfile``, no
  ``cachestat``, a file without a NOWAIT path such as tmpfs or FUSE, the
  pool backend, ``configure(fast_path=False)``), the file is read through
  the read core (inline when cached, else the pool) and written.

The socket side waits on the loop (``add_writer``) as asyncio's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import mmap
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any, Final, Protocol

from aiofastread import _native, _pool, _read, _readahead
from aiofastread._file import AsyncBufferedReader
from aiofastread._handle import FileHandle, is_direct_io
from aiofastread._policy import UNSUPPORTED_ERRNOS, FileState
from aiofastread._runtime import POLICY

# Largest os.sendfile call on the loop, and the bytes a task sends inline
# before it yields to the loop once. Warm sendfile over loopback moves 2-5
# GB/s here, so 1 MiB holds the loop 0.2-0.5 ms (one 256 MiB call held it
# 49 ms, DESIGN.md); examples/aiohttp_files.py measures the heartbeat and the
# throughput with it (docs/streams.md).
CHUNK: Final = 1 << 20
# What one pool job brings into the page cache: 4 MiB is one thread hop
# (80-150 us here) per 4 MiB, which keeps the hop under 5% of a cold
# transfer's time even on the fast disk (~1 GB/s), and is a few readahead
# windows on most devices (vda: 8 MiB, loop devices 128 KiB).
WARM_STEP: Final = 4 << 20
# Reads of the read + write fallback: 256 KiB goes inline when cached (under
# the policy's INLINE_MAX) and keeps the bytes in flight per transfer small.
COPY_CHUNK: Final = 256 << 10


@dataclasses.dataclass(frozen=True)
class SendfileStatistics:
    """A frozen snapshot of ``sendfile`` counters (``_sendfile.statistics()``).

    calls             sendfile() calls that sent or tried to send
    bytes_inline      bytes os.sendfile moved on the loop (resident ranges)
    bytes_brought_in  bytes read into the page cache first, off the loop
    native_jobs       bring-ins by readahead jobs of the native pool (C
                      threads, no buffer; also in statistics().readahead_jobs)
    pool_jobs         Python pool jobs (bring-ins where there is no native
                      pool, reads of re-evicted ranges)
    bytes_copied      bytes read through the read core and written (fallback)
    yields            times a transfer yielded to the loop on its budget
    """

    calls: int = 0
    bytes_inline: int = 0
    bytes_brought_in: int = 0
    native_jobs: int = 0
    pool_jobs: int = 0
    bytes_copied: int = 0
    yields: int = 0


class _Counters:
    __slots__ = (
        "bytes_brought_in",
        "bytes_copied",
        "bytes_inline",
        "calls",
        "native_jobs",
        "pool_jobs",
        "yields",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.bytes_inline = 0
        self.bytes_brought_in = 0
        self.native_jobs = 0
        self.pool_jobs = 0
        self.bytes_copied = 0
        self.yields = 0


_counters = _Counters()


def statistics() -> SendfileStatistics:
    return SendfileStatistics(**{n: getattr(_counters, n) for n in _Counters.__slots__})


def reset_statistics() -> None:
    _counters.__init__()  # type: ignore[misc]


# -- the output side -----------------------------------------------------------


class _Sink(Protocol):
    """Where the bytes go: a descriptor for os.sendfile (or None: copy only)."""

    fd: int | None

    async def ready(self) -> None:
        """Before the first os.sendfile: what was written earlier is out."""

    async def writable(self) -> None:
        """After EAGAIN: wait until the socket takes more."""

    async def send_bytes(self, data: bytes) -> None:
        """The copy path: write ``data`` with flow control."""

    def close(self) -> None: ...


async def _wait_writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    waiter = loop.create_future()
    loop.add_writer(fd, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _SocketSink:
    """A non-blocking SOCK_STREAM socket, as ``loop.sock_sendfile`` takes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop, self._sock = loop, sock
        self.fd: int | None = sock.fileno()

    async def ready(self) -> None:
        pass

    async def writable(self) -> None:
        assert self.fd is not None
        await _wait_writable(self._loop, self.fd)

    async def send_bytes(self, data: bytes) -> None:
        await self._loop.sock_sendall(self._sock, data)

    def close(self) -> None:
        pass


class _TransportSink:
    """An asyncio (or uvloop) stream transport over a socket.

    Zero-copy writes go to a dup of the transport's socket, which the loop
    can watch without touching the transport's own registration (asyncio
    refuses ``add_writer`` on a descriptor a transport uses). They start once
    the transport's buffer is empty and check, between calls, that the
    transport was not closed meanwhile. TLS transports only get the copy.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: Any) -> None:
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        sock = transport.get_extra_info("socket")
        if sock is None:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        self.type: int = sock.type
        self._loop, self._transport = loop, transport
        tls = any(transport.get_extra_info(key) is not None for key in ("sslcontext", "ssl_object"))
        self._watch = os.dup(sock.fileno())  # no I/O; closed in close()
        self.fd: int | None = None if tls else self._watch

    def _check_open(self) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("Connection lost")

    async def ready(self) -> None:
        await self._drain_to(0)

    async def writable(self) -> None:
        self._check_open()
        await _wait_writable(self._loop, self._watch)
        self._check_open()

    async def send_bytes(self, data: bytes) -> None:
        self._check_open()
        self._transport.write(data)
        await self._drain_to(_high_water(self._transport))

    async def _drain_to(self, limit: int) -> None:
        # The transport flushes its buffer when its socket is writable: wait
        # for that on our dup, then give the transport its turn.
        while self._transport.get_write_buffer_size() > limit:
            await self.writable()
            await asyncio.sleep(0)
        self._check_open()

    def close(self) -> None:
        _close_dup(self._watch)


def _close_dup(fd: int) -> None:
    """Close our dup of a socket its transport still holds: that releases a
    descriptor and never the connection, so it does no I/O (conftest allows
    os.close here)."""
    os.close(fd)


def _high_water(transport: Any) -> int:
    try:
        return int(transport.get_write_buffer_limits()[1])
    except (AttributeError, NotImplementedError):
        return 64 << 10  # asyncio's default high-water mark


def _sink_for(loop: asyncio.AbstractEventLoop, out: object) -> tuple[_Sink, int]:
    """The sink for ``out`` and its socket type; asyncio's checks, in its order."""
    if isinstance(out, asyncio.StreamWriter):
        out = out.transport
    if isinstance(out, socket.socket):
        if out.gettimeout() != 0:  # asyncio checks this in debug mode only
            raise ValueError("the socket must be non-blocking")
        _check_ssl_socket(out)
        return _SocketSink(loop, out), out.type
    if all(hasattr(out, name) for name in ("get_extra_info", "is_closing", "write")):
        sink = _TransportSink(loop, out)
        return sink, sink.type
    raise TypeError(
        f"out must be a socket, an asyncio transport or a StreamWriter, not {type(out).__name__}"
    )


def _check_ssl_socket(sock: socket.socket) -> None:
    try:
        import ssl
    except ImportError:  # pragma: no cover - CPython without ssl
        return
    if isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_params(sock_type: int, file: object, offset: object, count: object) -> None:
    """asyncio's ``_check_sendfile_params``, same messages."""
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not sock_type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
    if not isinstance(file, AsyncBufferedReader):
        raise TypeError(
            "file must be a file opened with aiofastread.open(path, 'rb'), "
            f"not {type(file).__name__}"
        )


# -- the public call -------------------------------------------------------------


class _Transfer:
    __slots__ = ("pos", "sent")

    def __init__(self, offset: int) -> None:
        self.pos = offset
        self.sent = 0

    def advance(self, n: int) -> None:
        self.pos += n
        self.sent += n


async def sendfile(out: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    """Send ``file`` to ``out``, waiting for the disk only in pool threads.

    ``out``: a non-blocking ``socket.socket`` (SOCK_STREAM, not TLS), an
    asyncio or uvloop stream transport (TLS ones too: they get the copy), or
    an ``asyncio.StreamWriter``. Nothing else may write to it meanwhile.
    ``file``: a file opened with ``aiofastread.open(path, "rb")`` (not a
    path: the caller owns the open, its errors and the close). ``offset`` and
    ``count`` as ``loop.sendfile``: from ``offset``, ``count`` bytes or to
    EOF when None; same checks, same exceptions.

    Returns the number of bytes sent. As ``loop.sendfile``, the file
    position is left at ``offset`` + bytes sent, on return and on error or
    cancellation alike, and is untouched when nothing was sent.
    """
    loop = asyncio.get_running_loop()
    sink, sock_type = _sink_for(loop, out)
    try:
        _check_params(sock_type, file, offset, count)
        reader: AsyncBufferedReader = file
        async with reader._lock:  # one user of the position at a time
            reader._check_open("I/O operation on closed file")
            _counters.calls += 1
            end = None if count is None else offset + count
            transfer = _Transfer(offset)
            try:
                if sink.fd is not None and _zero_copy_possible(reader._h):
                    await _send_zero_copy(sink, sink.fd, reader._h, transfer, end)
                else:
                    await _send_copies(sink, reader._h, transfer, end)
            finally:
                if transfer.sent:
                    reader._seek_to(offset + transfer.sent)
            return transfer.sent
    finally:
        sink.close()


def _zero_copy_possible(h: FileHandle) -> bool:
    return (
        hasattr(os, "sendfile")
        and _native.backend.cachestat is not None
        and _native.backend.can_read_inline
        and POLICY.enabled
        and not h.direct_io
        and h.inode.state is not FileState.UNSUPPORTED
    )


@contextlib.contextmanager
def borrowed_reader(fd: int, st: os.stat_result, name: object) -> Iterator[AsyncBufferedReader]:
    """An ``AsyncBufferedReader`` over a dup of someone else's open ``fd``.

    For code that opened the file itself (aiohttp's ``FileResponse``) and
    closes it when it likes: the reader works on its own descriptor, closed
    after the last pool job that uses it (invariant 3), so the owner's close
    can never race a pool thread still reading. ``st`` is the fd's stat.
    """
    import io

    raw = io.FileIO(os.dup(fd), "rb")  # dup and FileIO's fstat: no I/O
    handle = FileHandle(
        raw,
        POLICY.state_for(st.st_dev, st.st_ino),
        size=st.st_size,
        direct_io=is_direct_io(raw.fileno()),
        pool=_pool.default_pool(),
        executor=None,
    )
    try:
        yield AsyncBufferedReader(handle, name=name, mode="rb")
    finally:
        handle.start_close()  # in the pool, once no job uses it


# -- zero-copy -----------------------------------------------------------------


class _Residency:
    """Which ranges of one transfer may go to os.sendfile on the loop."""

    def __init__(self, h: FileHandle) -> None:
        self._h = h
        self._cachestat = _native.backend.cachestat
        self._lookahead = _read.lookahead(h)
        self.ok_to = 0  # guard checked: ranges ending here go inline
        self.pooled = False  # the pool has read for this transfer: trust only its reads
        self.checked_nowait = h.inode.state is FileState.WARM

    def resident(self, offset: int, length: int) -> bool | None:
        """cachestat: the whole range cached; None if refused."""
        assert self._cachestat is not None
        if length <= 0:
            return True
        answer = self._cachestat(self._h.fd, offset, length)
        if isinstance(answer, int):
            return None
        return answer[0] >= answer[1]

    def guard(self, offset: int, size: int, file_size: int) -> bool | None:
        """Whether [offset, offset+size) may go out inline without the pool."""
        if self.pooled:
            return False
        if offset + size <= self.ok_to:
            # Seen resident at most one lookahead of sending ago (milliseconds):
            # no cachestat per call, as the read core trusts ahead_ok_to. Each
            # call on the loop releases the GIL, and under load getting it
            # back can take milliseconds (docs/streams.md).
            return True
        # As _read._cached: the range and two lookaheads after it.
        length = min(size + 2 * self._lookahead, file_size - offset)
        answer = self.resident(offset, length)
        if answer:
            end = offset + length
            self.ok_to = end - self._lookahead if end < file_size else end
        return answer

    def nowait_path(self, offset: int) -> bool:
        """Whether this file has a NOWAIT path (not tmpfs, FUSE, ...): a
        one-byte NOWAIT read of a resident page answers at once."""
        if self.checked_nowait:
            return True
        got = _native.backend.read_nowait(self._h.fd, 1, offset)
        if isinstance(got, int) and -got in UNSUPPORTED_ERRNOS:
            return False
        self.checked_nowait = True
        return True


async def _send_zero_copy(
    sink: _Sink, out_fd: int, h: FileHandle, t: _Transfer, end: int | None
) -> None:
    await sink.ready()
    residency = _Residency(h)
    reads = _PoolReads(h, end)
    file_size = h.size_hint
    warmed_to = -1  # the pool has just read [.., warmed_to)
    verified_to = -1  # ... and cachestat found [.., verified_to) resident after
    budget = CHUNK
    try:
        while True:
            want = CHUNK if end is None else min(CHUNK, end - t.pos)
            if want <= 0:
                return
            _check_open(h)  # closed meanwhile: its fd may be another file's now
            pos = t.pos
            size = min(want, file_size - pos)
            if pos < warmed_to:
                size = min(size, warmed_to - pos)  # the rest of what the pool read
            inline: bool | None
            if size > 0 and pos + size <= verified_to:
                inline = True  # the pool read it, and cachestat saw it all since
            elif size > 0 and pos + size <= warmed_to:
                # Checked once for all the pool read: every cachestat on the
                # loop releases the GIL, and getting it back can wait for a
                # pool thread (5-11 ms seen on this loaded VM).
                inline = residency.resident(pos, warmed_to - pos)
                if inline:
                    verified_to = warmed_to
            elif size > 0:
                inline = residency.guard(pos, size, file_size)
            elif reads.eof_at == pos:
                return  # a bring-in just read to EOF here: nothing to confirm
            else:
                inline = False  # at or past the size we know: the pool looks
            if inline is None or (inline and not residency.nowait_path(pos)):
                # cachestat refused, or no NOWAIT path (tmpfs, FUSE): copy the rest.
                await _send_copies(sink, h, t, end)
                return
            if not inline:
                if pos + size <= warmed_to:
                    # Evicted between the pool's read and now (memory pressure):
                    # send the bytes the pool reads instead of trying again.
                    data = await _pool_read(h, pos, size)
                    if not data:
                        return
                    await sink.send_bytes(data)
                    t.advance(len(data))
                    continue
                residency.pooled = True
                warmed_to, file_size = await reads.bring_in(pos, file_size)
                if pos >= file_size:
                    return  # EOF
                continue
            try:
                sent = _send_resident(out_fd, h.fd, pos, size)
            except (BlockingIOError, InterruptedError):
                await sink.writable()
                budget = CHUNK
                continue
            if sent == 0:
                return  # EOF: the file shrank
            t.advance(sent)
            _counters.bytes_inline += sent
            budget -= sent
            if budget <= 0:
                _counters.yields += 1
                await asyncio.sleep(0)
                budget = CHUNK
    finally:
        reads.close()


class _PoolReads:
    """The pool jobs of one transfer: the range the sender waits for, and
    the next one, started at the same time, so the disk works while the
    loop sends (without it a cold transfer alternated the two: half the
    throughput of aiohttp's on the fast disk, docs/streams.md)."""

    def __init__(self, h: FileHandle, end: int | None) -> None:
        self._h, self._end = h, end
        self._next: tuple[int, int, asyncio.Future[int]] | None = None
        self._random = False  # POSIX_FADV_RANDOM set on the fd's description
        self.eof_at: int | None = None  # where a bring-in came back short (EOF)

    def _start(self, pos: int) -> tuple[int, int, asyncio.Future[int]]:
        step = WARM_STEP if self._end is None else min(WARM_STEP, self._end - pos)
        # Python threads read on the caller's description (see _bring_in);
        # the native pool's jobs on their own.
        python = self._h.native_pool is None or not _native.backend.native_pool
        first = python and not self._random
        self._random = self._random or python
        job = _pool_bring_in(self._h, pos, step, first=first)
        return pos, step, asyncio.ensure_future(job)

    async def bring_in(self, pos: int, file_size: int) -> tuple[int, int]:
        """Read [pos, pos + step) in; returns (its end, the file size)."""
        if self._next is not None and self._next[0] == pos:
            job, self._next = self._next, None
        else:
            self.drop()
            job = self._start(pos)
        _, step, future = job
        following = pos + step
        if following < file_size and (self._end is None or following < self._end):
            self._next = self._start(following)
        size = await future
        if size < pos + step:
            self.eof_at = size
        return min(pos + step, size), size

    def close(self) -> None:
        """Drop the read ahead; give the fd its readahead back (in the pool)."""
        self.drop()
        h = self._h
        if self._random and not h.closing:  # closing: the fd goes, and its mode
            self._random = False
            h.begin()
            h.pool.submit_detached(_advise_normal, h)

    def drop(self) -> None:
        """Forget the read ahead (its pool job finishes; the fd outlives it)."""
        if self._next is None:
            return
        future = self._next[2]
        self._next = None
        if future.done():
            if not future.cancelled():
                future.exception()  # retrieved: an error of a read we no longer need
        else:
            future.cancel()


def _send_resident(out_fd: int, in_fd: int, offset: int, size: int) -> int:
    """os.sendfile of a range found resident (and past its readahead marks):
    the one call of it on the loop (tests/conftest.py allows it here)."""
    return os.sendfile(out_fd, in_fd, offset, size)


def _check_open(h: FileHandle) -> None:
    if h.closing:
        raise ValueError("I/O operation on closed file")


def _discard_buffer() -> memoryview:
    """Where pool threads read what only has to land in the page cache: one
    buffer for all of them (what it holds is never looked at, so concurrent
    reads may overwrite each other), anonymous memory made on first use."""
    global _discard
    if _discard is None:
        with _discard_lock:
            if _discard is None:
                _discard = memoryview(mmap.mmap(-1, WARM_STEP))
    return _discard


_discard: memoryview | None = None
_discard_lock = threading.Lock()


def _advise_normal(h: FileHandle) -> None:
    """Blocking (pool): undo _bring_in's POSIX_FADV_RANDOM."""
    try:
        os.posix_fadvise(h.fd, 0, 0, os.POSIX_FADV_NORMAL)
    finally:
        h.end()


def _bring_in(fd: int, offset: int, length: int, first: bool) -> int:
    """Blocking (pool): read [offset, offset+length) into the page cache.

    One preadv for the whole range: each syscall costs the thread a GIL
    round trip, and every one can make the loop wait up to the 5 ms switch
    interval (DESIGN.md); four 1 MiB reads plus a fadvise and an fstat per
    job made 10-24 ms heartbeat stalls here. When it returns the pages are
    up to date and the readahead marks among them consumed. Returns the
    bytes read: fewer than ``length`` only at EOF.

    The first job of a transfer sets POSIX_FADV_RANDOM on the descriptor
    (undone at its end): the kernel's own readahead, started by these reads,
    left readahead marks and pages under I/O that os.sendfile then met on
    the loop thread (4-15 ms sleeps inside the call, not waiting for a CPU
    nor the GIL, on the 300-IOPS device; gone with RANDOM). Our reads ahead
    (``_PoolReads``) replace it."""
    if first:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    view = _discard_buffer()[:length]
    done = 0
    while done < length:
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


async def _pool_bring_in(h: FileHandle, offset: int, length: int, *, first: bool) -> int:
    """Bring a range in off the loop; returns the file size as far as that
    read tells (exact when it reached EOF). A C thread of the native pool
    where there is one (``_native_bring_in``), else a Python pool thread."""
    read = await _native_bring_in(h, offset, length)
    if read is None:
        _counters.pool_jobs += 1
        read = await h.run(_bring_in, h.fd, offset, length, first)  # type: ignore[assignment]
    assert read is not None
    _counters.bytes_brought_in += read
    if read < length:
        return offset + read  # EOF
    end = offset + read
    if end > h.size_hint:
        h.size_hint = end
    return max(h.size_hint, end)


async def _native_bring_in(h: FileHandle, offset: int, length: int) -> int | None:
    """The range brought in by a readahead job of the native pool (read
    through to /dev/null on a C thread and a description of its own: no
    Python thread, no buffer, no GIL; native/afr_readahead.c): the bytes
    brought in, or None where the native pool is not there or refused."""
    native = h.native_pool
    if native is None or not _native.backend.native_pool:
        return None
    h.begin()  # a close meanwhile must not free the fd number before the dup
    try:
        future = await native.start_bring_in(h.fd, length, offset)
    finally:
        h.end()
    if future is None:
        return None
    _counters.native_jobs += 1
    _readahead.count(length)
    return await future


async def _pool_read(h: FileHandle, offset: int, size: int) -> bytes:
    _counters.pool_jobs += 1
    data: bytes = await h.run(_read.pread_full, h.fd, size, offset)  # type: ignore[assignment]
    return data


# -- read + write ----------------------------------------------------------------


async def _send_copies(sink: _Sink, h: FileHandle, t: _Transfer, end: int | None) -> None:
    """Read through the read core (inline when cached) and write."""
    budget = CHUNK
    while True:
        want = COPY_CHUNK if end is None else min(COPY_CHUNK, end - t.pos)
        if want <= 0:
            return
        _check_open(h)
        data = await _read.read_at(h, t.pos, want)
        if not data:
            return
        await sink.send_bytes(data)
        t.advance(len(data))
        _counters.bytes_copied += len(data)
        budget -= len(data)
        if budget <= 0:
            _counters.yields += 1
            await asyncio.sleep(0)
            budget = CHUNK
