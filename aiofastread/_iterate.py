"""Drive a blocking iterator from the event loop, a batch per pool hop.

Directory listings (``os.scandir``, pathlib's ``glob``, ``os.walk``) read
the disk when they advance, so they advance only in our pool: each hop takes
up to ``batch`` items, and the loop hands them out one by one. A hop is
80-150 us on this VM (docs/design.md facts), a cached ``readdir`` entry well
under 1 us, so a hop per entry (anyio's way) would cost a hundred times the
listing itself.

The iterator is used by one thread at a time: every step and the final
close hold its lock, so closing an iterator (a consumer that breaks out,
is cancelled or is collected) waits in the pool for a step still running
there, and never closes a directory under a ``readdir`` in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Generic, TypeVar

from aiofastread import _pool

T = TypeVar("T")

# Entries per hop: 256 DirEntry objects are ~30 KiB held at once, and a hop
# per 256 names keeps the hop cost well below the listing cost (see above).
DEFAULT_BATCH = 256


class _Stepper(Generic[T]):
    """A blocking iterator, stepped and closed under one lock (pool side)."""

    __slots__ = ("_iterator", "_lock")

    def __init__(self, iterator: Iterator[T]) -> None:
        self._iterator = iterator
        self._lock = threading.Lock()

    def take(self, count: int) -> list[T]:
        with self._lock:
            return list(itertools.islice(self._iterator, count))

    def close(self) -> None:
        with self._lock:
            close_iterator(self._iterator)


def close_iterator(iterator: Iterator[object]) -> None:
    """Close a generator or scandir iterator (what has ``close``)."""
    close: Callable[[], object] | None = getattr(iterator, "close", None)
    if close is not None:
        close()


async def batches(
    iterator: Iterator[T] | Callable[[], Iterator[T]], batch: int = DEFAULT_BATCH
) -> AsyncGenerator[list[T], None]:
    """Yield what ``iterator`` yields, ``batch`` items a hop, advancing it only in our pool.

    Pass a callable to have the iterator itself made in the pool (an
    ``os.scandir`` opens the directory); an iterator it made but nobody took
    (the awaiter was cancelled) is closed there too. ``batch=1`` advances the
    iterator exactly as far as the consumer has read: needed when the
    consumer steers it between items (``os.walk``'s ``dirnames``).
    """
    pool = _pool.default_pool()
    if callable(iterator):
        made = await pool.run_undoable(iterator, undo=close_iterator)
        stepper = _Stepper(made)
    else:
        stepper = _Stepper(iterator)
    done = False
    try:
        while True:
            items = await pool.run(stepper.take, batch)
            if not items:
                done = True
                return
            yield items
            if len(items) < batch:  # islice stopped early: the iterator ended
                done = True
                return
    finally:
        if not done:  # left early: close where it may block, not awaited
            pool.submit_detached(stepper.close)


async def in_pool(
    iterator: Iterator[T] | Callable[[], Iterator[T]], batch: int = DEFAULT_BATCH
) -> AsyncGenerator[T, None]:
    """:func:`batches`, item by item."""
    lists = batches(iterator, batch)
    async with contextlib.aclosing(lists):
        async for items in lists:
            for item in items:
                yield item
