"""The in-flight limit: slots for blocking work, handed out in FIFO order.

One ``SlotLimiter`` bounds the operations submitted and not yet finished,
whoever runs them (the Python thread pool in _pool, the native miss pool in
_native_pool): each holds at most one caller buffer, so this bounds memory.
When every slot is taken, awaiters wait in FIFO order (backpressure), each
on its own event loop: a freed slot is handed to the oldest waiter through
``call_soon_threadsafe``, and a waiter whose loop has closed is undone on
the spot. Works with any number of loops in any threads.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable


class SlotLimiter:
    """At most ``max_in_flight`` slots taken at once; FIFO waiters."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # read without the lock only as a hint
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def snapshot(self) -> tuple[int, int, int]:
        """(max_in_flight, in_flight, waiting), read together."""
        with self._lock:
            return self.max_in_flight, self.in_flight, len(self._waiters)

    async def acquire(self, on_done: Callable[[], object] | None = None) -> None:
        """Take a slot, waiting in FIFO order. If this raises, ``on_done``
        has been run (here, or by ``_wake_waiters`` for a dead loop)."""
        try:
            with self._lock:
                if self.in_flight < self.max_in_flight and not self._waiters:
                    self.in_flight += 1
                    return
                loop = asyncio.get_running_loop()
                entry = _Waiter(loop, loop.create_future(), on_done)
                self._waiters.append(entry)
        except BaseException:
            if on_done is not None:
                on_done()
            raise
        try:
            await entry.future
        except BaseException:
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    granted = False
                except ValueError:
                    # Popped: a slot was handed to us as we were cancelled,
                    # or our loop was found closed (then all is undone).
                    granted = not entry.dead
            if granted:
                self.release()
            if on_done is not None and not entry.dead:
                on_done()
            raise

    def take(self) -> None:
        """Take a slot without waiting, even over the limit: for work started
        from completion callbacks (deferred closes), which must never wait."""
        with self._lock:
            self.in_flight += 1

    def release(self, count: int = 1) -> None:
        """Give back ``count`` slots (any thread) and hand them on."""
        with self._lock:
            self.in_flight -= count
            waiting = bool(self._waiters)
        if waiting:
            self._wake_waiters()

    def configure(self, max_in_flight: int) -> None:
        with self._lock:
            self.max_in_flight = max_in_flight
        self._wake_waiters()

    def reset_after_fork(self) -> None:
        # The child has none of the parent's threads; their work is gone.
        self._lock = threading.Lock()
        self.in_flight = 0
        self._waiters.clear()

    def _wake_waiters(self) -> None:
        """Hand free slots to waiters, oldest first, on their own loops."""
        while True:
            with self._lock:
                if not self._waiters or self.in_flight >= self.max_in_flight:
                    return
                entry = self._waiters.popleft()
                self.in_flight += 1
            try:
                entry.loop.call_soon_threadsafe(_grant, entry.future)
            except RuntimeError:
                # That waiter's loop is closed: its operation can never run.
                # Undo it now (its fd user registration too, or a close of
                # the file would wait for it forever).
                with self._lock:
                    self.in_flight -= 1
                    entry.dead = True
                if entry.on_done is not None:
                    entry.on_done()


def _grant(waiter: asyncio.Future[None]) -> None:
    # A waiter cancelled after it was popped owns the slot all the same:
    # its awaiter finds itself gone from the queue and releases the slot
    # (SlotLimiter.acquire). Releasing here too would count the slot twice.
    if not waiter.done():
        waiter.set_result(None)


class _Waiter:
    """An operation waiting for a slot, on its event loop."""

    __slots__ = ("dead", "future", "loop", "on_done")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[None],
        on_done: Callable[[], object] | None,
    ) -> None:
        self.loop, self.future, self.on_done = loop, future, on_done
        self.dead = False  # its loop was closed: undone by _wake_waiters
