"""The driver: runs one file's C io calls in greenlets, one call at a time.

``Bridge.run`` starts the call in a new greenlet. If the raw must block, it
switches back here with a request (an async callable and its arguments);
we await it, in the pool, and switch back in with the result or throw the
exception in. ``Bridge.readline_now`` is the line fast path: no greenlet,
no await, when the whole line is in the raw's window already.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import greenlet

if TYPE_CHECKING:
    from aiofastread._bridge.raw import BridgeRaw

T = TypeVar("T")

# A request from a suspended greenlet: an async callable and its arguments.
Request = tuple[Callable[..., Coroutine[Any, Any, Any]], tuple[Any, ...]]


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
        is then the C readline itself (docs/performance.md, "Lines").
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
