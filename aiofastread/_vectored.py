"""Vectored reads and reads into caller memory.

``read_many`` / ``read_many_into`` serve many positional ranges at once:
one pass on the loop reads every range the page cache has (the policy's
rules as ``_read.try_inline`` applies them: a file not known warm is never
read inline on a guess), then every miss, and the rest of every short read,
is started on the pool in that same step. The native miss pool's threads
queue their results on the loop's port, whose eventfd is written once per
batch (afr_pool.c, ``afr_complete``): reads finishing together cost the
loop one wakeup (``NativeMissPool.wakeups`` counts them).

``read_into_at`` (``pread_into``, ``readinto``, ``read_many_into``) fills
a caller's buffer without a copy on the loop: an inline hit is a NOWAIT
read straight into it, and a miss is read into it by a C thread, which
holds the buffer pinned until the loop takes the result
(``NativeMissPool.start_read_into``). A Python pool thread (other
backends) holds it through the memoryview it is handed.

Nothing here takes the file's lock or moves its position: like ``pread``,
any number may run at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any, cast

from aiofastread import _budget, _native, _read_ranges
from aiofastread._checks import check_index, writable_view
from aiofastread._handle import FileHandle
from aiofastread._policy import INLINE_MAX, Decision, FileState
from aiofastread._read import (
    YIELD_EVERY_MASK,
    _cached,
    judge_inline,
    pool_read,
    record_pooled,
    try_inline,
)
from aiofastread._read_ranges import read_ranges_for
from aiofastread._runtime import POLICY

_WARM = FileState.WARM


# -- argument checks ----------------------------------------------------------


def check_offset(offset: object, what: str) -> int:
    value = check_index(offset)
    if value < 0:
        raise ValueError(f"{what} offset must be non-negative, got {value}")
    return value


def check_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``read_many``'s ranges as ``(offset, size)`` ints, checked up front."""
    if _read_ranges.plain_ranges(ranges):  # the common case, in one pass
        return ranges  # type: ignore[return-value]  # (a list, checked)
    checked = []
    for offset, size in _pairs(ranges, "read_many", "(offset, size)"):
        size = check_index(size)
        if size < 0:
            raise ValueError(f"read_many size must be non-negative, got {size}")
        checked.append((check_offset(offset, "read_many"), size))
    return checked


def check_targets(targets: Iterable[tuple[int, Any]]) -> list[tuple[int, memoryview]]:
    """``read_many_into``'s ``(offset, buffer)`` pairs, checked up front."""
    return [
        (check_offset(offset, "read_many_into"), writable_view(buffer, "read_many_into"))
        for offset, buffer in _pairs(targets, "read_many_into", "(offset, buffer)")
    ]


def _pairs(items: Iterable[Any], what: str, shape: str) -> list[tuple[Any, Any]]:
    try:
        listed = list(items)
    except TypeError:
        raise TypeError(
            f"{what}() argument must be an iterable of {shape} pairs, not {type(items).__name__}"
        ) from None
    pairs = []
    for item in listed:
        if type(item) is not tuple or len(item) != 2:
            try:
                first, second = item
            except (TypeError, ValueError):
                raise TypeError(f"{what}() items must be {shape} pairs, got {item!r}") from None
            item = (first, second)
        pairs.append(item)
    return pairs


# -- bytes results --------------------------------------------------------------


async def read_many(h: FileHandle, ranges: list[tuple[int, int]]) -> list[bytes]:
    """Every range's bytes (short only at EOF), in order."""
    if _budget.over():  # before the reads: a cancelled yield reads nothing
        await _budget.pause()
    results, misses = _inline_pass(h, ranges)
    if misses:
        rests = await _all(
            [pool_read(h, size - len(p), offset + len(p)) for _, offset, size, p in misses]
        )
        for (index, offset, _size, prefix), rest in zip(misses, rests, strict=True):
            record_pooled(h, offset + len(prefix) + len(rest), len(rest))
            results[index] = prefix + rest if prefix else rest
    return results


def _inline_pass(
    h: FileHandle, ranges: list[tuple[int, int]]
) -> tuple[list[bytes], list[tuple[int, int, int, bytes]]]:
    """Read what the page cache has: the results so far, and the misses as
    ``(index, offset, size, cached prefix)``.

    ``_read.try_inline`` for each range, with a WARM file's runs of full
    hits read by one ``read_ranges`` call (``_read_ranges``: in C with the
    native backend) under ``AsyncBufferedReader.read``'s fast-path rule
    (tests/test_inline_rule.py) and their counters added once a run; the
    run's hits are counted before anything else is recorded, so the policy
    sees the same sequence as with one read at a time. The range a run
    stops at is judged by the general path, with what the run read of it.
    """
    st = h.inode
    backend = _native.backend
    read_ranges = read_ranges_for(backend)
    fd = h.fd
    fast = st.state is _WARM and POLICY.enabled and not h.direct_io and backend.can_read_inline
    results: list[bytes] = []
    misses: list[tuple[int, int, int, bytes]] = []
    index, count = 0, len(ranges)
    while index < count:
        got: bytes | int | None = None
        if fast:
            index, hits, nbytes, h.seq_end, got = read_ranges(
                fd, ranges, index, results, INLINE_MAX, h.seq_end, h.ahead_ok_to
            )
            if hits:
                _count_hits(h, hits, nbytes)
            if index == count:
                break
        offset, size = ranges[index]
        index += 1
        if size == 0:  # (a fast run serves these itself)
            results.append(b"")
            continue
        if got is None:
            prefix, complete = try_inline(h, offset, size)
        else:
            prefix, complete = judge_inline(h, offset, size, got)
        if not complete:
            misses.append((len(results), offset, size, prefix))
        results.append(prefix)
        fast = st.state is _WARM and fast  # a miss may have turned it COLD
    return results, misses


def _count_hits(h: FileHandle, hits: int, nbytes: int) -> None:
    """Add ``hits`` full inline hits of a WARM file (``judge_inline``'s HIT),
    yielding to pool threads as ``_read.yield_to_pool`` does: once if the
    count passed a multiple of 16 (the batch ran without a break anyway)."""
    c = h.inode.counters
    before = c.inline_hits
    c.inline_hits = before + hits
    c.bytes_inline += nbytes
    # The cooperative budget: what _budget.charge would add for each hit.
    b = _budget.BUDGET
    b.spent += nbytes + hits * _budget.COST_PER_OP
    if b.spent > b.next:
        _budget.crossed()
    if (before & ~YIELD_EVERY_MASK) != (c.inline_hits & ~YIELD_EVERY_MASK) and h.pool.busy:
        os.sched_yield()


# -- into caller memory ---------------------------------------------------------


async def read_many_into(h: FileHandle, targets: list[tuple[int, memoryview]]) -> list[int]:
    """Fill each buffer from its offset; the counts (short only at EOF)."""
    if _budget.over():  # before the reads: a cancelled yield reads nothing
        await _budget.pause()
    counts = [0] * len(targets)
    misses: list[tuple[int, int, memoryview, int]] = []  # index, offset, buffer, cached
    for index, (offset, view) in enumerate(targets):
        if not view:
            continue
        n, complete = try_inline_into(h, view, offset)
        counts[index] = n
        if not complete:
            misses.append((index, offset, view, n))
    if misses:
        rests = await _all(
            [pool_read_into(h, view[n:], offset + n) for _, offset, view, n in misses]
        )
        for (index, offset, _, n), rest in zip(misses, rests, strict=True):
            record_pooled(h, offset + n + rest, rest)
            counts[index] = n + rest
    return counts


async def read_into_at(
    h: FileHandle, view: memoryview, offset: int, attempt: int | None = None
) -> int:
    """Fill ``view`` from ``offset`` (fewer bytes only at EOF): the count.

    ``attempt`` is what a NOWAIT read into ``view`` the caller already made
    answered (a count or -errno): it is not made a second time.
    """
    if not view:
        return 0
    if attempt is None:
        if _budget.over():  # before the read: a cancelled yield reads nothing
            await _budget.pause()
        n, complete = try_inline_into(h, view, offset)
    else:
        n, complete = _judge_into(h, view, offset, attempt)
    if complete:
        return n
    rest = await pool_read_into(h, view[n:], offset + n)
    record_pooled(h, offset + n + rest, rest, sequential=True)
    return n + rest


def try_inline_into(h: FileHandle, view: memoryview, offset: int) -> tuple[int, bool]:
    """``_read.try_inline`` into ``view``: ``(count, complete)``, the same
    policy, the same bookkeeping."""
    size = len(view)
    decision = POLICY.decide(h.inode, size, direct_io=h.direct_io)
    if decision is Decision.POOL or not _native.backend.can_read_inline:
        return 0, False
    if not _cached(h, offset, size, known_warm=decision is Decision.INLINE):
        return 0, False
    return _judge_into(h, view, offset, _native.backend.read_nowait_into(h.fd, view, size, offset))


def _judge_into(h: FileHandle, view: memoryview, offset: int, got: int) -> tuple[int, bool]:
    """``_read.judge_inline`` for a NOWAIT read into ``view`` that answered
    ``got``; it looks only at len() of an answer that is not an int."""
    answer = got if got < 0 else cast(bytes, view[:got])
    data, complete = judge_inline(h, offset, len(view), answer)
    return len(data), complete


async def pool_read_into(h: FileHandle, view: memoryview, offset: int) -> int:
    """``_read.pool_read`` into ``view``: the native miss pool's C thread
    reads into it directly (any size: no copy follows on the loop); else a
    Python pool thread."""
    native = h.native_pool
    if native is not None and _native.backend.native_pool:
        h.begin()  # as pool_read: the fd must outlive the wait for a slot
        try:
            future = await native.start_read_into(h.fd, view, offset)
        finally:
            h.end()
        if future is not None:
            return await future
    count: int = await h.run(preadinto_full, h.fd, view, offset)  # type: ignore[assignment]
    return count


def preadinto_full(fd: int, view: memoryview, offset: int) -> int:
    """Blocking: fill ``view`` from ``offset``, fewer only at EOF (pool side)."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if not n:
            break
        got += n
    return got


# -- helpers --------------------------------------------------------------------


async def _all(reads: list[Any]) -> list[Any]:
    """Run ``reads`` (coroutines) at once; their results in order, or the
    first error once every read has finished (none is left running
    unobserved). Cancelling this cancels every read still waiting: a read
    on a C thread finishes there, its buffer held until the loop takes it."""
    results = await asyncio.gather(*reads, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
