"""The miss pool: our own threads for every blocking call.

Cached reads never come here; misses, opens, closes, writes and metadata
calls do. ``MissPool`` runs them on daemon threads (``DaemonThreadPool``,
``max_workers`` of them) under the in-flight limit of its ``SlotLimiter``
(_slots: FIFO backpressure across loops), which it hands to its native miss
pool (_native_pool) so that both count against one limit. ``run_undoable``
hands a result nobody took (a cancelled open) to its undo.

The pool knows nothing of the read policy. It works with any number of event
loops (in any threads), keeps working after a loop closes, starts fresh in a
forked child, and never holds up interpreter exit (daemon threads).
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import dataclasses
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiofastread import _native
from aiofastread._native_pool import NativeMissPool
from aiofastread._slots import SlotLimiter

T = TypeVar("T")

# Threads for blocking work. Misses on a slow device want queue depth more
# than CPU; 16 keeps a disk's or network filesystem's queue full while the
# GIL handoffs stay cheap. A judgement, not a measured optimum: no sweep
# exists; docs/benchmarks.md runs every engine with 16 threads (--workers).
DEFAULT_MAX_WORKERS = 16

# Operations submitted and not yet finished. Each holds at most one caller
# buffer, so this bounds memory; 1024 is far above what 16 threads drain in
# one device latency, so it only bites under overload (tests/test_pool.py).
DEFAULT_MAX_IN_FLIGHT = 1024


@dataclasses.dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of the pool's counters."""

    max_workers: int
    max_in_flight: int
    in_flight: int
    waiting: int
    submissions: int


class MissPool:
    """Python threads of our own under an in-flight limit.

    ``run`` is the only entry point used on the event loop. The slot of an
    operation is released when its thread finishes, not when its awaiter is
    cancelled: a cancelled awaiter does not let more work pile up behind a
    thread that is still busy.
    """

    def __init__(
        self,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        *,
        with_native_pool: bool = False,
    ) -> None:
        _check_positive("max_workers", max_workers)
        _check_positive("max_in_flight", max_in_flight)
        self.slots = SlotLimiter(max_in_flight)
        # Plain reads of this pool's files may go to the native miss pool,
        # on this pool's slots. Its C side is process-wide (one set of
        # threads, limits and counters): only the default pool has one.
        self.native: NativeMissPool | None = (
            NativeMissPool(self.slots) if with_native_pool and _native.HAS_NATIVE_POOL else None
        )
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._executor: DaemonThreadPool | None = None
        self._submissions = 0

    # -- public -------------------------------------------------------------

    async def run(
        self,
        fn: Callable[..., T],
        *args: object,
        executor: concurrent.futures.Executor | None = None,
        on_done: Callable[[], object] | None = None,
    ) -> T:
        """Run ``fn(*args)`` in a thread and return its result.

        ``executor`` (aiofiles' ``executor=``) replaces our threads for this
        call; the in-flight limit still applies. ``on_done`` runs (in any
        thread) when the work has finished or was dropped before it started,
        also if the awaiter was cancelled: fd lifetime hangs on it.
        """
        await self.slots.acquire(on_done)  # runs on_done itself if it raises
        with self._lock:
            self._submissions += 1
        try:
            future = (executor or self._get_executor()).submit(fn, *args)
        except BaseException:
            self.slots.release()
            if on_done is not None:
                on_done()
            raise
        # One callback, run by the pool thread: each costs GIL time there.
        if on_done is None:
            future.add_done_callback(self._on_done)
        else:

            def done(_f: concurrent.futures.Future[T]) -> None:
                self.slots.release()
                on_done()

            future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    async def run_undoable(
        self,
        fn: Callable[..., T],
        *args: object,
        undo: Callable[[T], object],
        executor: concurrent.futures.Executor | None = None,
    ) -> T:
        """``run(fn, *args)`` whose result is handed to ``undo`` if nobody takes it.

        For opens: when the awaiter is cancelled (or its loop closes) while
        the thread is still opening, the descriptor it opens must not leak.
        The thread itself undoes a result that arrives after its awaiter
        left, so this holds even when no event loop is left to run anything.
        """
        handoff = _Handoff[T]()

        def job() -> T:
            result = fn(*args)
            with handoff.lock:
                if handoff.abandoned:
                    undo(result)
                else:
                    handoff.result, handoff.ready = result, True
            return result

        try:
            return await self.run(job, executor=executor)
        except BaseException:
            with handoff.lock:
                handoff.abandoned = True
                late = handoff.ready
            if late:  # finished, but we left before taking the result
                self.submit_detached(undo, handoff.result)
            raise

    def submit_detached(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn`` in a thread with nobody awaiting it (deferred closes).

        Not subject to the in-flight limit: it is called from completion
        callbacks, which must never wait.
        """
        self.slots.take()
        with self._lock:
            self._submissions += 1
        future = self._get_executor().submit(fn, *args)
        future.add_done_callback(self._on_done)

    @property
    def busy(self) -> bool:
        """Whether a Python thread has a job (a racy read, as a hint).

        Reads in the native miss pool do not count: they need no GIL."""
        native = self.native
        return self.slots.in_flight > (0 if native is None else native.in_flight)

    def statistics(self) -> PoolStatistics:
        native = self.native
        native_submissions = 0 if native is None else native.submissions()
        max_in_flight, in_flight, waiting = self.slots.snapshot()
        with self._lock:
            return PoolStatistics(
                max_workers=self._max_workers,
                max_in_flight=max_in_flight,
                in_flight=in_flight,  # native reads hold slots here too
                waiting=waiting,
                submissions=self._submissions + native_submissions,
            )

    def configure(
        self, *, max_workers: int | None = None, max_in_flight: int | None = None
    ) -> None:
        """Change limits. A new thread count takes effect for new work: the
        old executor finishes what it has and its threads exit."""
        if max_workers is not None:
            _check_positive("max_workers", max_workers)
        if max_in_flight is not None:
            _check_positive("max_in_flight", max_in_flight)
        with self._lock:
            if max_workers is not None and max_workers != self._max_workers:
                self._max_workers = max_workers
                old, self._executor = self._executor, None
                if old is not None:
                    old.shutdown(wait=False)
        if self.native is not None:
            self.native.configure(max_workers, max_in_flight)
        if max_in_flight is not None:
            self.slots.configure(max_in_flight)

    def reset_counters(self) -> None:
        with self._lock:
            self._submissions = 0
        if self.native is not None:
            self.native.reset_counters()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)

    # -- internals ----------------------------------------------------------

    def _on_done(self, _future: concurrent.futures.Future[Any]) -> None:
        self.slots.release()

    def _get_executor(self) -> DaemonThreadPool:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = DaemonThreadPool(
                        max_workers=self._max_workers,
                        thread_name_prefix="aiofastread",
                    )
                executor = self._executor
        return executor

    def _reset_after_fork(self) -> None:
        # The child has none of the parent's threads; their work is gone.
        self._lock = threading.Lock()
        self._executor = None
        self.slots.reset_after_fork()
        if self.native is not None:
            self.native.reset_after_fork()


_WorkItem = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DaemonThreadPool(concurrent.futures.Executor):
    """ThreadPoolExecutor's job, with daemon threads.

    concurrent.futures joins its (non-daemon) workers at interpreter exit
    after they have run everything queued: one read stuck on a dead network
    filesystem, or an open(2) of a FIFO nobody writes, then hangs exit
    forever, and a long queue of misses delays it. Whatever is still in
    this pool at exit belongs to event loops that are gone and could not
    take the result; it is abandoned, as a killed process would abandon it
    (tests/test_reliability_process.py).

    Workers are started with ``_thread.start_new_thread``, not
    ``threading.Thread.start``: ``submit`` runs on the event loop, and
    ``Thread.start`` waits there until the new thread has been scheduled and
    has run its bootstrap (84 us median, 4 ms p90, 6 ms worst on this loaded
    2-vCPU VM; ``start_new_thread`` returned within 71 us). Each worker names
    its ``threading.current_thread()`` itself, and ``shutdown(wait=True)``
    waits on the lock each one releases when it leaves.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        # Workers waiting for work (a plain count under _lock: a Semaphore's
        # release is Python code a worker would run with the GIL every job).
        self._idle = 0
        self._lock = threading.Lock()
        # One per worker started, held until that worker has left _work.
        self._exits: list[_thread.LockType] = []
        self._shutdown = False

    def submit(  # type: ignore[override]
        self, fn: Callable[..., T], /, *args: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((future, fn, args))
            if self._idle:
                self._idle -= 1
            elif len(self._exits) < self._max_workers:
                exited = _thread.allocate_lock()
                exited.acquire()
                name = f"{self._prefix}_{len(self._exits)}"
                _thread.start_new_thread(self._work, (name, exited))
                self._exits.append(exited)
        return future

    def _work(self, name: str, exited: _thread.LockType) -> None:
        try:
            threading.current_thread().name = name  # a _DummyThread: daemon
            self._serve()
        finally:
            exited.release()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.put(None)  # let the next worker see it too
                return
            future, fn, args = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            exits = list(self._exits)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        self._queue.put(None)
        if wait:
            for exited in exits:
                with exited:  # released when its worker left _work
                    pass


class _Handoff(Generic[T]):
    """A result passed from a pool thread to an awaiter that may have left."""

    __slots__ = ("abandoned", "lock", "ready", "result")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.ready = False
        self.result: T | None = None


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")


_default_pool = MissPool(with_native_pool=True)


def default_pool() -> MissPool:
    """The process-wide pool used by every file unless told otherwise."""
    return _default_pool


async def run_blocking(
    fn: Callable[..., T],
    *args: object,
    executor: concurrent.futures.Executor | None = None,
) -> T:
    """Run a blocking call in the default pool (helper for os, ospath...)."""
    return await _default_pool.run(fn, *args, executor=executor)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _default_pool._reset_after_fork())
