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
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import greenlet

if TYPE_CHECKING:
    from aiofastread._bridge.direct import DirectText
    from aiofastread._bridge.lines import LineBatch
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

    __slots__ = ("after_close", "batch", "direct", "file", "lines", "lock", "raw", "text")

    def __init__(
        self, file: Any, raw: BridgeRaw, *, lines: bool, direct: DirectText | None = None
    ) -> None:
        self.file = file  # the top of the C stack
        self.raw = raw
        # Text seek + read served without the C stack (_bridge/direct), which
        # is brought up to date before anything else runs on it.
        self.direct = direct
        self.lines = lines  # readline() may be served on the loop (see _text)
        self.text = isinstance(file, io.TextIOWrapper)
        self.lock = FileLock()
        if direct is not None:
            direct.lock = self.lock  # the C hit checks it (native/afr_text.c)
        # Lines decoded ahead for `async for` (_bridge/lines), set by
        # bridge_opened; the TextIOWrapper is brought up to date before
        # anything else runs on it.
        self.batch: LineBatch | None = None
        # Blocking cleanup to run in the pool after close (temporary files).
        self.after_close: Callable[[], object] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` with this file's raw able to await the pool."""
        lock = self.lock
        if lock.busy:
            await lock.acquire()
        else:
            lock.busy = True
        raw = self.raw
        try:
            batch = self.batch
            if batch is not None and batch.armed:
                name = getattr(fn, "__name__", None)
                if name == "close":
                    batch.stop()
                else:
                    batch.hide(keep=name in _STATE_KEEPING)
            worker = _take_worker()
            raw.owner = worker
            direct = self.direct
            if direct is not None and getattr(fn, "__name__", None) != "close":
                fn, args = _after_sync, (direct, fn, args)
            out = worker.switch(fn, args)
            cancelled = False
            if out is not _DONE:
                cancelled = await _resume(worker, out)
            value, error = worker.value, worker.error
            worker.value = worker.error = None
            _park(worker)
            if error is not None:
                if cancelled and not isinstance(error, asyncio.CancelledError):
                    raise asyncio.CancelledError() from error
                raise error
            if cancelled:
                raise asyncio.CancelledError()
            return value  # type: ignore[no-any-return]
        finally:
            raw.owner = None
            lock.release()

    def readline_now(self, size: Any) -> Any:
        """``file.readline(size)`` if it can be served from memory, else None.

        Runs on the loop with no greenlet and no await: the cost of a line
        is then the C readline itself (docs/performance.md, "Lines").
        """
        raw = self.raw
        if not self.lines or self.lock.busy or raw.closed:
            return None
        batch = self.batch
        if batch is not None and batch.armed:
            batch.hide(keep=False)  # a readline of its own: lines from it on
        direct = self.direct
        if direct is not None and direct.dirty:
            return None  # Bridge.run brings the TextIOWrapper up to date first
        if raw.fits_at != raw._pos:  # else: known to fit since the raw last moved
            chunk = self.file._CHUNK_SIZE if self.text else 1
            if not raw.line_fits(chunk) and not (raw.extend_inline() and raw.line_fits(chunk)):
                return None
            raw.fits_at = raw._pos
        # Served from the window: nothing here may block (tests: blockbuster
        # flags any blocking call under this frame on the loop).
        if direct is None:
            return self.file.readline(size)
        direct.lose()  # the TextIOWrapper reads on: its state is its own
        try:
            return self.file.readline(size)
        except BaseException:
            raw.chunk = None  # (DirectText.after)
            raise

    def leave_direct(self) -> None:
        """No more direct seek/read: the TextIOWrapper is about to be used
        from outside (``buffer``, ``detach``); bring it up to date now."""
        batch = self.batch
        if batch is not None:
            batch.leave()  # (an operation in flight has brought it up to date)
        direct = self.direct
        if direct is None:
            return
        direct.leave()
        if not self.lock.busy:  # else the operation in flight is followed by a sync
            direct.sync()

    def sync_lines(self) -> None:
        """Bring the TextIOWrapper up to date with the lines handed out and
        the direct path's reads, for a read of its state (``newlines``); both
        go on after."""
        batch = self.batch
        if batch is not None:
            batch.sync()  # (a no-op while an operation is in flight: it did)
        direct = self.direct
        if direct is not None and not self.lock.busy:  # (else: followed by a sync)
            direct.sync()

    def take_over(self) -> None:
        """A seek or read of the direct path is about to run: the line batch,
        if armed, brings the TextIOWrapper up to date with its lines and
        stops (it describes the TextIOWrapper from a clean state on, which
        the direct path's calls leave behind; ``LineBatch.rearm`` after)."""
        batch = self.batch
        if batch is not None and batch.armed:
            batch.hide(keep=False)

    async def close(self) -> None:
        try:
            await self.run(self.file.close)
        finally:
            cleanup, self.after_close = self.after_close, None
            if cleanup is not None:
                await self.raw._h.pool.run(cleanup, executor=self.raw._h.executor)


# TextIOWrapper methods that leave its decoding state as it was.
_STATE_KEEPING: Final = frozenset(
    {"tell", "seekable", "readable", "writable", "isatty", "fileno", "flush"}
)


def _after_sync(direct: DirectText, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """``fn(*args)`` on a TextIOWrapper the direct path has brought up to date."""
    direct.before(fn)
    try:
        out = fn(*args)
    except BaseException:
        direct.after(fn, failed=True)
        raise
    direct.after(fn, failed=False)
    return out


async def _resume(g: Worker, request: Request) -> bool:
    """Serve a suspended call's requests until it returns (the worker
    answers ``_DONE``); whether the awaiting task was cancelled meanwhile.

    Cancellation does not abort the C call midway (that could lose decoded
    characters or half-written buffers): the call completes under the file
    lock, then the caller raises CancelledError. Only if this coroutine is
    closed outright (GeneratorExit) is the call unwound by throwing into it.
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
        if task.cancelled():
            out = g.throw(asyncio.CancelledError())
        elif (exc := task.exception()) is not None:
            out = g.throw(exc)
        else:
            out = g.switch(task.result())
        if out is _DONE:
            return cancelled
        request = out


def _unwind(g: Worker) -> None:
    """Abandon a suspended C call: raise GreenletExit in it until its
    worker ends (it is not parked again)."""
    for _ in range(8):  # each try may stop at one more suspension (close)
        if g.dead:
            return
        try:
            g.throw()
        except BaseException:
            return


# What a worker answers when its call has returned (its outcome is in its
# ``value`` and ``error``); anything else it switches out is a Request.
_DONE: Final = object()
# Idle workers kept per thread: one is busy per file operation in flight,
# a few dozen cover the concurrency of a busy loop; past it they are freed.
IDLE_WORKERS_MAX: Final = 64


# A worker: a greenlet that runs one C io call after another, parked
# between them, with the outcome of its last call in ``value`` and
# ``error``. Reused because a new greenlet that runs Python code (our raw)
# gets a fresh CPython data stack: an mmap + munmap and page faults per
# call, ~5-13 us against ~1 us for a switch into a parked worker (3.11;
# docs/benchmarks.md, text-mode readers).
Worker: TypeAlias = greenlet.greenlet


def _serve(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A worker's body. blockbuster (tests/conftest.py) lets the C io calls
    made under it through: whatever would block in them suspends here."""
    me = greenlet.getcurrent()
    while True:
        try:
            me.value = fn(*args)
        except greenlet.GreenletExit:
            raise  # unwound (_unwind) or collected: this worker ends
        except BaseException as exc:
            me.error = exc
        fn = args = None  # type: ignore[assignment]  # hold nothing while parked
        fn, args = me.parent.switch(_DONE)


class _Workers(threading.local):
    def __init__(self) -> None:
        self.idle: list[Worker] = []


_WORKERS: Final = _Workers()


def _park(worker: Worker) -> None:
    """``worker`` finished its call: keep it for the next one (or free it)."""
    idle = _WORKERS.idle
    if len(idle) < IDLE_WORKERS_MAX:
        idle.append(worker)


def _take_worker() -> Worker:
    """A parked worker of this thread (or a new one), child of the caller."""
    idle = _WORKERS.idle
    if idle:
        worker = idle.pop()
    else:
        worker = Worker(_serve)
        worker.value = worker.error = None
    worker.parent = greenlet.getcurrent()
    return worker
