"""Miss reads on C threads that never take the GIL (the native miss pool).

A read served by a Python pool thread takes the GIL three or four times
(wake-up, after pread, resolving the future, waking the loop). Next to a
loop busy with inline hits each of those can wait CPython's 5 ms switch
interval, and each handoff can make the loop wait in turn: misses crawl and
the loop stalls (docs/benchmarks.md, "Misses behind a saturated loop"). The
C pool in native/ reads into a buffer of its own on threads that run no
Python, and queues the result on a per-loop *port* whose eventfd the loop
watches with ``add_reader``: the loop takes finished reads in one call, and
the only GIL holder involved is the loop thread itself.

Used for plain positional reads (``_read.read_at``'s miss) up to
``MAX_READ`` bytes on the native backend; everything else (opens, writes,
metadata, reads to EOF, callers with their own executor) stays in
``_pool.MissPool``, which owns the one ``NativeMissPool`` and hands it its
``SlotLimiter``: a read takes a slot there, and gives it back when its loop
takes the result (or its loop is gone). ``start_read`` returns None when the
C side cannot take a read (a loop without ``add_reader``, the C pool's
in-flight limit, no fd left for the dup): the caller then uses the Python
pool as before.

``start_read_into`` reads into the caller's memory instead (``pread_into``,
``readinto``, ``read_many_into``): the C thread preads straight into it, so
the loop copies nothing. The port holds the buffer export (a cffi
``from_buffer``, which pins the buffer: a bytearray cannot resize, an mmap
cannot close) until the loop reaps the job, even if its awaiter was
cancelled. A port dropped with such jobs still running (its loop closed)
becomes an *orphan*: it keeps the exports and is reaped by the next
submission or ``counters()`` call, so no C thread ever writes into memory
that was given back.

A port exists only while its loop has reads in flight: the last reap
removes the reader and closes the eventfd, so an idle loop holds no fd of
ours and nothing outlives a closed loop but the reads still running.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import weakref
from typing import Any

from aiofastread import _native
from aiofastread._slots import SlotLimiter

# Bigger misses stay in the Python pool. This pool's result is copied once
# more (C buffer -> bytes) and that copy runs on the loop thread: a 1 MiB
# inline hit, mostly such a copy, holds the loop 139-145 us on this VM
# (docs/performance.md, "Inline cap"); 8 MiB would be a millisecond stall.
# Reads that big also amortise the few GIL handoffs a Python thread costs
# per read. 1 MiB covers read()'s one-shot
# read of a whole file below the inline cap (its size + 1).
MAX_READ = 1 << 20

# Finished reads taken per C call; more are taken by looping.
_REAP_BATCH = 64

_ffi: Any = None
_lib: Any = None
if _native.HAS_NATIVE_POOL:
    _ffi, _lib = _native.native_module().ffi, _native.native_module().lib


class NativeMissPool:
    """The C miss pool, reading on the slots of the ``SlotLimiter`` it is handed."""

    def __init__(self, slots: SlotLimiter) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self.in_flight = 0  # of the limiter's slots: reads here (a racy hint)
        self._submitted_base = 0  # C submissions before reset_counters()
        # One port per loop while it has reads in flight, weak both ways: a
        # loop closed with reads in flight drops its reader callback and with
        # it the port (whose futures still reference the loop); the C side
        # frees what those reads leave behind as they finish.
        self._ports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[_Port]] = (
            weakref.WeakKeyDictionary()
        )
        # Loops that refused add_reader (no selector: not worth asking again).
        self._refused: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        # Times a loop's eventfd fired and its reader took finished reads:
        # reads finishing together cost one wakeup (tests count them).
        self.wakeups = 0

    async def start_read(self, fd: int, size: int, offset: int) -> asyncio.Future[bytes] | None:
        """Start a positional read once a slot is ours (FIFO, as the Python
        pool's ``run`` waits); the slot is given back when the loop takes the
        result. None if the C side refused (the caller uses the Python pool).
        The fd must stay open until this returns: the read works on a dup."""
        return await self._start(fd, size, offset, None)

    async def start_read_into(
        self, fd: int, buffer: memoryview, offset: int
    ) -> asyncio.Future[int] | None:
        """``start_read`` into ``buffer`` (writable, format "B"): the future
        gives the count read (fewer than ``len(buffer)`` only at EOF). The
        buffer stays exported until the loop reaps the read."""
        return await self._start(fd, len(buffer), offset, buffer)

    async def start_bring_in(self, fd: int, size: int, offset: int) -> asyncio.Future[int] | None:
        """Bring ``size`` bytes at ``offset`` into the page cache on a C thread
        (native/afr_readahead.c: read through to /dev/null, no buffer): the
        future gives the count brought in (fewer only at EOF). As
        ``start_read`` otherwise; counted as a readahead job, not a read."""
        return await self._start(fd, size, offset, None, bring_in=True)

    async def _start(
        self, fd: int, size: int, offset: int, into: memoryview | None, *, bring_in: bool = False
    ) -> asyncio.Future[Any] | None:
        await self._slots.acquire()
        with self._lock:
            self.in_flight += 1
        future = self._submit(fd, size, offset, into, bring_in=bring_in)
        if future is None:
            self._release(1)
        return future

    def port_of(self, loop: asyncio.AbstractEventLoop) -> _Port | None:
        ref = self._ports.get(loop)
        return None if ref is None else ref()

    def submissions(self) -> int:
        """Reads submitted since ``reset_counters``."""
        return counters()[0] - self._submitted_base

    def reset_counters(self) -> None:
        self._submitted_base = counters()[0]

    def configure(self, max_workers: int | None, max_in_flight: int | None) -> None:
        _lib.afr_pool_configure(max_workers or 0, max_in_flight or 0)

    def reset_after_fork(self) -> None:
        # The parent's ports are not ours to touch (C side: afr_after_fork_child).
        for ref in list(self._ports.values()):
            port = ref()
            if port is not None:
                port.c_port = _ffi.NULL
        self._ports.clear()
        global _sweeping
        _orphans.clear()  # no C thread of the parent's runs here
        _sweeping = threading.Lock()  # may have been held by a parent's thread
        self._lock = threading.Lock()
        self.in_flight = 0

    def _release(self, count: int) -> None:
        """``count`` reads gave back their slots (results taken, or their
        loop gone): hand them on to the limiter's waiters."""
        with self._lock:
            self.in_flight -= count
        self._slots.release(count)

    def _submit(
        self,
        fd: int,
        size: int,
        offset: int,
        into: memoryview | None = None,
        *,
        bring_in: bool = False,
    ) -> asyncio.Future[Any] | None:
        if size > MAX_READ and into is None and not bring_in:  # no copy on the loop otherwise
            return None
        if _orphans:
            sweep_orphans()
        loop = asyncio.get_running_loop()
        port = self.port_of(loop)
        if port is None:
            if loop in self._refused:
                return None
            try:
                port = _Port(loop, self)
            except NotImplementedError:  # a loop without add_reader
                self._refused.add(loop)
                return None
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                    return None
                raise
            self._ports[loop] = weakref.ref(port)
        future = port.submit(loop, fd, size, offset, into, bring_in=bring_in)
        if future is None and not port.futures:
            port.close(loop)
        return future

    def _forget(self, port: _Port, loop: asyncio.AbstractEventLoop) -> None:
        if self.port_of(loop) is port:
            del self._ports[loop]


class _Port:
    """One loop's completion queue: an eventfd, and the futures it owes."""

    # Only the loop's reader callback holds a port (the pool's map has a
    # weak reference): closing the loop drops it, and __del__ releases the
    # C side.
    __slots__ = (
        "__weakref__",
        "c_port",
        "done",
        "fd",
        "futures",
        "held",
        "next_token",
        "owner",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: NativeMissPool) -> None:
        c_port = _lib.afr_port_new()
        if c_port == _ffi.NULL:
            err = _ffi.errno
            raise OSError(err, os.strerror(err))
        self.c_port = c_port
        self.owner = owner
        self.fd: int = _lib.afr_port_fd(c_port)
        self.futures: dict[int, asyncio.Future[Any]] = {}
        # Buffer exports of reads into the caller's memory, by token: held
        # until the C side is done with them.
        self.held: dict[int, Any] = {}
        self.next_token = 0
        self.done = _ffi.new("struct afr_done[]", _REAP_BATCH)
        try:
            loop.add_reader(self.fd, self.reap)
        except BaseException:
            _lib.afr_port_release(c_port)
            self.c_port = _ffi.NULL  # not again in __del__
            raise

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        size: int,
        offset: int,
        into: memoryview | None = None,
        *,
        bring_in: bool = False,
    ) -> asyncio.Future[Any] | None:
        token = self.next_token
        if bring_in:
            rc = _lib.afr_submit_bring_in(self.c_port, fd, size, offset, token)
        elif into is None:
            rc = _lib.afr_submit(self.c_port, fd, size, offset, token)
        else:
            # The export: pins the buffer (no resize, no close) while it lives.
            pinned = _ffi.from_buffer("char[]", into, require_writable=True)
            rc = _lib.afr_submit_into(self.c_port, fd, pinned, size, offset, token)
            if rc >= 0:
                self.held[token] = pinned
        if rc < 0:
            return None
        self.next_token = token + 1
        future: asyncio.Future[Any] = loop.create_future()
        self.futures[token] = future
        return future

    def reap(self) -> None:
        """The eventfd fired: resolve every finished read (loop thread)."""
        done, futures, held = self.done, self.futures, self.held
        self.owner.wakeups += 1
        taken = 0
        while True:
            count = _lib.afr_port_reap(self.c_port, done, _REAP_BATCH)
            taken += count
            for i in range(count):
                item = done[i]
                result, buf = item.result, item.buf
                future = futures.pop(item.token)
                try:
                    if not future.done():  # not cancelled meanwhile
                        if result < 0:
                            err = -result
                            future.set_exception(OSError(err, os.strerror(err)))
                        elif buf == _ffi.NULL:  # read into the caller's memory, or brought in
                            future.set_result(result)
                        else:
                            future.set_result(_ffi.unpack(buf, result))
                finally:
                    if buf == _ffi.NULL:
                        held.pop(item.token, None)  # the C side is done with it
                    else:
                        _lib.afr_free(buf)
            if count < _REAP_BATCH:
                break
        if not futures:
            self.close(asyncio.get_running_loop())
        if taken:
            self.owner._release(taken)

    def __del__(self) -> None:
        # Its loop was closed (or dropped) with reads in flight: the C side
        # frees what they leave as they finish, and nobody will take their
        # results, so their slots are free now.
        if _lib is not None and _ffi is not None and self.c_port != _ffi.NULL:
            if self.held:
                # C threads may still write into these buffers: keep them
                # pinned, and the port unreleased, until they are reaped.
                _orphans.append(_Orphan(self.c_port, self.held))
            else:
                _lib.afr_port_release(self.c_port)
            self.c_port = _ffi.NULL
            if self.futures:
                self.owner._release(len(self.futures))

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """No read in flight: give the eventfd back (loop thread)."""
        self.owner._forget(self, loop)
        loop.remove_reader(self.fd)
        _lib.afr_port_release(self.c_port)
        self.c_port = _ffi.NULL


class _Orphan:
    """A port whose loop is gone while reads into caller memory ran on it."""

    __slots__ = ("c_port", "held")

    def __init__(self, c_port: Any, held: dict[int, Any]) -> None:
        self.c_port, self.held = c_port, held


# Orphaned ports, reaped by any thread that submits (or reads counters());
# one sweep at a time (a port is released once).
_orphans: list[_Orphan] = []
_sweeping = threading.Lock()


def sweep_orphans() -> None:
    """Take what orphaned ports' reads finished: unpin the caller buffers
    the C side is done with, free its own; release a port once no caller
    buffer is left on it (the C side frees its remaining reads)."""
    with _sweeping:
        _sweep_locked()


def _sweep_locked() -> None:
    done = _ffi.new("struct afr_done[]", _REAP_BATCH)
    for orphan in list(_orphans):
        while True:
            count = _lib.afr_port_reap(orphan.c_port, done, _REAP_BATCH)
            for i in range(count):
                if done[i].buf == _ffi.NULL:
                    orphan.held.pop(done[i].token, None)
                else:
                    _lib.afr_free(done[i].buf)
            if count < _REAP_BATCH:
                break
        if not orphan.held:
            _lib.afr_port_release(orphan.c_port)
            _orphans.remove(orphan)


def pending(port: _Port) -> int:
    """Reads of ``port`` finished and not yet taken by its loop."""
    return int(_lib.afr_port_pending(port.c_port))


def counters() -> tuple[int, int]:
    """(reads submitted ever, reads holding a slot now: queued, running, or
    finished and not yet taken by their loop), process-wide."""
    if _lib is None:
        return 0, 0
    if _orphans:
        sweep_orphans()
    submitted = _ffi.new("unsigned long long *")
    in_flight = _ffi.new("long *")
    threads = _ffi.new("int *")
    _lib.afr_pool_stats(submitted, in_flight, threads)
    return int(submitted[0]), int(in_flight[0])


# The C pool's process-wide bounds on readahead in flight (queued or
# running), set in native/afr_readahead.c: 8 jobs, half of the pool's 16
# threads, so that misses always find threads; 64 MiB of pages being read
# at once (16 streams each 4 MiB ahead on a loop device's 1 MiB chunks).
READAHEAD_MAX_JOBS = 8
READAHEAD_MAX_BYTES = 64 << 20


def configure_readahead(max_jobs: int = 0, max_bytes: int = 0) -> None:
    """Change the process-wide bounds (0 keeps one as it is)."""
    if _lib is not None:
        _lib.afr_readahead_configure(max_jobs, max_bytes)


def submit_readahead(fd: int, offset: int, length: int, stream: int) -> bool:
    """Queue a readahead of ``length`` bytes at ``offset`` on a C thread
    (native/afr_readahead.c: read through on a description of its own,
    waking no loop) for the stream numbered ``stream`` (> 0). False when the
    C pool refused it: a job of that stream still in flight, over its
    process-wide bounds, no thread, no fd left for the dup. Never blocks."""
    if _lib is None:
        return False
    return bool(_lib.afr_submit_readahead(fd, offset, length, stream) == 0)


def readahead_in_flight() -> tuple[int, int]:
    """(readahead jobs, their bytes) queued or running now, process-wide."""
    _, _, _, jobs, nbytes = readahead_stats()
    return jobs, nbytes


def readahead_stats() -> tuple[int, int, int, int, int]:
    """(jobs ever, their bytes, jobs that read on a description of their own,
    jobs in flight now, their bytes), process-wide."""
    if _lib is None:
        return 0, 0, 0, 0, 0
    submitted = _ffi.new("unsigned long long *")
    submitted_bytes = _ffi.new("unsigned long long *")
    reopened = _ffi.new("unsigned long long *")
    jobs = _ffi.new("long *")
    nbytes = _ffi.new("long long *")
    _lib.afr_readahead_stats(submitted, submitted_bytes, reopened, jobs, nbytes)
    return (
        int(submitted[0]),
        int(submitted_bytes[0]),
        int(reopened[0]),
        int(jobs[0]),
        int(nbytes[0]),
    )
