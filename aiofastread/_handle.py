"""fd lifetime: one open file descriptor, its users, and its deferred close.

Every pool operation that uses the fd registers with ``begin()`` and is
released from its thread's completion (not from its awaiter, which may be
cancelled while the thread still runs). ``close()`` stops new operations at
once and closes the fd only after the last registered one has finished, in
the pool, so a thread can never read a descriptor number that was closed and
reused by another open (DESIGN.md invariant 3).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import threading
from typing import TYPE_CHECKING

from aiofastread import _native, _policy, _stream
from aiofastread._fspolicy import FILESYSTEMS

if TYPE_CHECKING:
    from aiofastread._native_pool import NativeMissPool
    from aiofastread._pool import MissPool


# The fields the C hit path reads (native/afr_hit.c): members of its
# HandleCore with the compiled module, slots here without (_native.hit_base).
HOT_FIELDS = ("ahead_ok_to", "closing", "direct_io", "fd", "inode", "seq_end", "size_hint")
if TYPE_CHECKING:
    _HandleBase = object
    _HOT_SLOTS: tuple[str, ...] = ()
else:
    _HandleBase, _HOT_SLOTS = _native.hit_base("HandleCore", HOT_FIELDS)


class FileHandle(_HandleBase):
    """An owned ``io.FileIO`` plus what the fast path needs to know of it."""

    __slots__ = (
        "_close_future",
        "_lock",
        "_users",
        "close_inline",
        "executor",
        "native_pool",
        "pool",
        "raw",
        "stream",
        *_HOT_SLOTS,
    )

    def __init__(
        self,
        raw: io.FileIO,
        inode: _policy.InodeState,
        *,
        size: int,
        direct_io: bool,
        pool: MissPool,
        executor: concurrent.futures.Executor | None,
    ) -> None:
        self.raw = raw
        self.fd = raw.fileno()
        self.inode = inode
        self.size_hint = size  # st_size at open, raised as reads see more
        # Where the last read ended, -1 before the first (a read starting
        # there continues a stream: _read._cached looks ahead of it, the
        # bridge fetches more), and up to where a stream's reads may end
        # without a new look at the pages ahead.
        self.seq_end = -1
        self.ahead_ok_to = 0
        self.stream: _stream.Stream | None = None  # _readahead follows it
        self.direct_io = direct_io
        self.pool = pool
        self.executor = executor
        # Where misses may go instead of Python threads: the pool's native
        # miss pool, unless the caller brought an executor (they asked for
        # those threads) or O_DIRECT (its buffers must be aligned as the
        # device wants). Used while _native.backend.native_pool is on.
        self.native_pool: NativeMissPool | None = (
            None if executor is not None or direct_io else pool.native
        )
        # Closed on the loop when idle: a descriptor that was only read, on a
        # filesystem known local (_fspolicy), cannot block in close(2).
        self.close_inline = (
            _native.backend.name == "native"
            and not raw.writable()
            and FILESYSTEMS.may_close_inline(inode.key[0])
        )
        self.closing = False
        self._users = 0
        self._lock = threading.Lock()
        self._close_future: concurrent.futures.Future[None] | None = None

    # -- users ----------------------------------------------------------------

    def begin(self) -> None:
        """Register one pool operation on the fd (call on the loop thread)."""
        with self._lock:
            self._users += 1

    def end(self) -> None:
        """Release one operation (any thread); runs a deferred close."""
        with self._lock:
            self._users -= 1
            run_close = self.closing and self._users == 0 and self._close_future is not None
        if run_close:
            self.pool.submit_detached(self._close_now)

    async def run(self, fn: object, *args: object) -> object:
        """Run ``fn(*args)`` in the pool as a registered user of the fd."""
        self.begin()
        return await self.pool.run(fn, *args, executor=self.executor, on_done=self.end)  # type: ignore[arg-type]

    # -- close ----------------------------------------------------------------

    def start_close(self) -> concurrent.futures.Future[None]:
        """Refuse new work now; close the fd once current users are done.

        Idempotent: every caller gets the same future.
        """
        with self._lock:
            self.closing = True
            if self._close_future is None:
                self._close_future = concurrent.futures.Future()
                idle = self._users == 0
            else:
                return self._close_future
        if idle:
            self.pool.submit_detached(self._close_now)
        return self._close_future

    async def close(self) -> None:
        """Close and wait for it. Cancelling the wait does not stop the close."""
        if self.close_inline and self._close_idle_inline():
            return
        future = self.start_close()
        await asyncio.shield(asyncio.wrap_future(future))

    def _close_idle_inline(self) -> bool:
        """Close now, on the loop, if no pool work uses the fd (invariant 3)."""
        with self._lock:
            if self._users or self._close_future is not None:
                return False
            self.closing = True
            self._close_future = _CLOSED
        FILESYSTEMS.inline_closes += 1
        try:
            self.raw.close()
        except BaseException as exc:
            failed: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._close_future = failed
            failed.set_exception(exc)
            raise
        return True

    def _close_now(self) -> None:
        assert self._close_future is not None
        try:
            self.raw.close()
        except BaseException as exc:
            self._close_future.set_exception(exc)
        else:
            self._close_future.set_result(None)

    def close_blocking(self) -> None:
        """Close from synchronous code (finalizers, detach, errors at open)."""
        with self._lock:
            self.closing = True
        if not self.raw.closed:
            self.raw.close()


# What start_close() hands out for a handle closed inline: done, shared (a
# concurrent Future's set_result costs more than the close itself).
_CLOSED: concurrent.futures.Future[None] = concurrent.futures.Future()
_CLOSED.set_result(None)


def is_direct_io(fd: int) -> bool:
    """Whether ``fd`` was opened with O_DIRECT (never read inline)."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return False
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & direct)
