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
``_pool.MissPool``. ``submit`` returns None when it cannot take a read (no
compiled module, a loop without ``add_reader``, the C pool's in-flight limit,
no fd left for the dup): the caller then uses the Python pool as before.

A port exists only while its loop has reads in flight: the last reap
removes the reader and closes the eventfd, so an idle loop holds no fd of
ours and nothing outlives a closed loop but the reads still running.
"""

from __future__ import annotations

import asyncio
import errno
import os
import weakref
from collections.abc import Callable
from typing import Any

from aiofastread import _native

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


class _Port:
    """One loop's completion queue: an eventfd, and the futures it owes."""

    # Only the loop's reader callback holds a port (_ports has a weak
    # reference): closing the loop drops it, and __del__ releases the C side.
    __slots__ = ("__weakref__", "c_port", "done", "fd", "futures", "next_token")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        c_port = _lib.afr_port_new()
        if c_port == _ffi.NULL:
            err = _ffi.errno
            raise OSError(err, os.strerror(err))
        self.c_port = c_port
        self.fd: int = _lib.afr_port_fd(c_port)
        self.futures: dict[int, asyncio.Future[bytes]] = {}
        self.next_token = 0
        self.done = _ffi.new("struct afr_done[]", _REAP_BATCH)
        try:
            loop.add_reader(self.fd, self.reap)
        except BaseException:
            _lib.afr_port_release(c_port)
            self.c_port = _ffi.NULL  # not again in __del__
            raise

    def submit(
        self, loop: asyncio.AbstractEventLoop, fd: int, size: int, offset: int
    ) -> asyncio.Future[bytes] | None:
        token = self.next_token
        rc = _lib.afr_submit(self.c_port, fd, size, offset, token)
        if rc < 0:
            return None
        self.next_token = token + 1
        future: asyncio.Future[bytes] = loop.create_future()
        self.futures[token] = future
        return future

    def reap(self) -> None:
        """The eventfd fired: resolve every finished read (loop thread)."""
        done, futures = self.done, self.futures
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
                        if result >= 0:
                            future.set_result(_ffi.unpack(buf, result))
                        else:
                            err = -result
                            future.set_exception(OSError(err, os.strerror(err)))
                finally:
                    _lib.afr_free(buf)
            if count < _REAP_BATCH:
                break
        if not futures:
            self.close(asyncio.get_running_loop())
        if taken and on_slots_freed is not None:
            on_slots_freed(taken)

    def __del__(self) -> None:
        # Its loop was closed (or dropped) with reads in flight: the C side
        # frees what they leave as they finish, and nobody will take their
        # results, so their slots are free now.
        if _lib is not None and _ffi is not None and self.c_port != _ffi.NULL:
            _lib.afr_port_release(self.c_port)
            self.c_port = _ffi.NULL
            if self.futures and on_slots_freed is not None:
                on_slots_freed(len(self.futures))

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """No read in flight: give the eventfd back (loop thread)."""
        if _port_of(loop) is self:
            del _ports[loop]
        loop.remove_reader(self.fd)
        _lib.afr_port_release(self.c_port)
        self.c_port = _ffi.NULL


# One port per loop while it has reads in flight, weak both ways: a loop
# closed with reads in flight drops its reader callback and with it the
# port (whose futures still reference the loop); the C side frees what those
# reads leave behind as they finish.
_ports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[_Port]] = (
    weakref.WeakKeyDictionary()
)


def _port_of(loop: asyncio.AbstractEventLoop) -> _Port | None:
    ref = _ports.get(loop)
    return None if ref is None else ref()


# Loops that refused add_reader (no selector: not worth asking again).
_refused: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


# Called with a count when that many reads gave back their slots (results
# taken, or their loop gone): the Python pool, which keeps the one in-flight
# limit of both pools, then hands the slots to its waiters.
on_slots_freed: Callable[[int], object] | None = None


def submit(fd: int, size: int, offset: int) -> asyncio.Future[bytes] | None:
    """Start a blocking read of ``size`` bytes at ``offset`` (fewer only at
    EOF) on a C thread; None if this pool cannot take it now."""
    if _lib is None or size > MAX_READ:
        return None
    loop = asyncio.get_running_loop()
    port = _port_of(loop)
    if port is None:
        if loop in _refused:
            return None
        try:
            port = _Port(loop)
        except NotImplementedError:  # a loop without add_reader
            _refused.add(loop)
            return None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                return None
            raise
        _ports[loop] = weakref.ref(port)
    future = port.submit(loop, fd, size, offset)
    if future is None and not port.futures:
        port.close(loop)
    return future


def configure(max_workers: int | None, max_in_flight: int | None) -> None:
    if _lib is not None:
        _lib.afr_pool_configure(max_workers or 0, max_in_flight or 0)


def counters() -> tuple[int, int]:
    """(reads submitted ever, reads holding a slot now: queued, running, or
    finished and not yet taken by their loop)."""
    if _lib is None:
        return 0, 0
    submitted = _ffi.new("unsigned long long *")
    in_flight = _ffi.new("long *")
    threads = _ffi.new("int *")
    _lib.afr_pool_stats(submitted, in_flight, threads)
    return int(submitted[0]), int(in_flight[0])


def _forget_after_fork() -> None:
    # The parent's ports are not ours to touch (C side: afr_after_fork_child).
    for ref in list(_ports.values()):
        port = ref()
        if port is not None:
            port.c_port = _ffi.NULL
    _ports.clear()


if _native.HAS_NATIVE_POOL and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
