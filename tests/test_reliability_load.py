"""Pool exhaustion and backpressure: 10^4 misses at once.

With a small ``max_in_flight`` (aiofastread.configure), 10^4 concurrent
reads of an evicted file must all complete with the right bytes, the pool
must never hold more than the limit, the waiting work must not grow memory
past a bound, and the loop must stay responsive: a read of a cached file
issued in the middle of the storm is served inline, while misses are still
queued, without waiting behind them. The throttled-device version (and the
stall it causes, in milliseconds) is bench/stall.py.

Heavy by nature: these run on the default read backend only (the miss path
is the same pool for every backend once a file is cold).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

import aiofastread
from aiofastread import _pool
from tests.conftest import DEFAULT_BACKEND, evict, make_file, open_fd_count, until, warm

MISSES = 10_000
LIMIT = 8
BLOCK = 4096


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture
def small_pool(backend: str) -> Iterator[int]:
    if backend != DEFAULT_BACKEND:
        pytest.skip("heavy: the pool path is the same for every backend; run once")
    before = _pool.default_pool().statistics()
    aiofastread.configure(max_in_flight=LIMIT)
    try:
        yield LIMIT
    finally:
        aiofastread.configure(max_in_flight=before.max_in_flight)
    assert _pool.default_pool().statistics().max_in_flight == before.max_in_flight


@contextlib.contextmanager
def every_read_to_the_pool() -> Iterator[None]:
    """While a storm starts: no read of it may be served inline. Its reads
    start on C threads at once (the native miss pool needs no GIL), and the
    pages they and the first NOWAIT misses bring in could otherwise let
    later reads of the evicted file hit the cache (seen under load: half of
    them) instead of queueing for a slot."""
    aiofastread.configure(fast_path=False)
    try:
        yield
    finally:
        aiofastread.configure(fast_path=True)


class Sampler:
    """Looks at the pool on every loop iteration while the storm runs."""

    def __init__(self) -> None:
        self.max_in_flight = 0
        self.max_waiting = 0
        self.ticks = 0
        self._stop = False

    async def run(self) -> None:
        # The pool's own counts, which statistics() reports as misses_in_flight
        # and pool_waiting: statistics() also sums every tracked inode's
        # counters (up to 4096 late in the suite), too slow to call per tick.
        pool = _pool.default_pool()
        while not self._stop:
            stats = pool.statistics()
            self.max_in_flight = max(self.max_in_flight, stats.in_flight)
            self.max_waiting = max(self.max_waiting, stats.waiting)
            self.ticks += 1
            await asyncio.sleep(0)

    def stop(self) -> None:
        self._stop = True


async def test_ten_thousand_misses_stay_bounded_and_complete(
    data_dir: Path, small_pool: int
) -> None:
    cold = data_dir / "cold.bin"
    data = make_file(cold, 8 << 20)
    hot = data_dir / "hot.bin"
    hot_data = make_file(hot, 64 << 10)
    evict(cold)
    rng = random.Random(7)
    offsets = [rng.randrange(0, len(data) - BLOCK) for _ in range(MISSES)]
    sampler = Sampler()
    mismatches = 0
    done = 0
    async with aiofastread.open(cold, "rb") as f, aiofastread.open(hot, "rb") as h:
        warm(hot)
        assert await h.read(BLOCK) == hot_data[:BLOCK]  # WARM from now on

        async def one(offset: int) -> None:
            nonlocal mismatches, done
            # Only the check's verdict is kept: memory is what waits, not results.
            if await f.pread(BLOCK, offset) != data[offset : offset + BLOCK]:
                mismatches += 1
            done += 1

        rss_before = rss_bytes()
        sampling = asyncio.ensure_future(sampler.run())
        with every_read_to_the_pool():
            storm = asyncio.ensure_future(asyncio.gather(*(one(o) for o in offsets)))
            await until(lambda: aiofastread.statistics().pool_waiting >= MISSES // 2, "queued")
        # In the middle of the storm: a cached read does not queue behind it.
        hot_before = aiofastread.statistics()
        await h.seek(BLOCK)
        assert await h.read(BLOCK) == hot_data[BLOCK : 2 * BLOCK]
        hot_after = aiofastread.statistics()
        assert hot_after.inline_hits == hot_before.inline_hits + 1
        assert hot_after.pool_waiting > 0  # misses were still queued
        rss_peak = rss_bytes()
        await storm
        sampler.stop()
        await sampling
    assert (mismatches, done) == (0, MISSES)
    assert sampler.max_in_flight <= LIMIT
    assert sampler.max_waiting >= MISSES // 2
    assert sampler.ticks > 1
    # 10^4 waiting reads hold a task and a future each, not a buffer: well
    # under 64 MiB (the buffers themselves are capped by the limit).
    assert rss_peak - rss_before < 64 << 20
    await settle()
    stats = aiofastread.statistics()
    assert stats.misses_in_flight == 0
    assert stats.pool_waiting == 0


async def test_cancelling_half_of_a_storm_frees_every_slot(data_dir: Path, small_pool: int) -> None:
    fds_before = open_fd_count()  # on the running loop: its own fds exist
    cold = data_dir / "cold.bin"
    data = make_file(cold, 4 << 20)
    evict(cold)
    rng = random.Random(11)
    async with aiofastread.open(cold, "rb") as f:
        offsets = [rng.randrange(0, len(data) - BLOCK) for _ in range(MISSES // 2)]
        with every_read_to_the_pool():
            tasks = [asyncio.ensure_future(f.pread(BLOCK, o)) for o in offsets]
            await until(lambda: aiofastread.statistics().pool_waiting >= len(tasks) // 2, "queued")
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, (offset, result) in enumerate(zip(offsets, results, strict=False)):
            if isinstance(result, asyncio.CancelledError):
                assert i % 2 == 0
            else:
                assert result == data[offset : offset + BLOCK]
        # Freed slots went to the waiters behind: nothing is stuck.
        assert await f.pread(BLOCK, 0) == data[:BLOCK]
    assert aiofastread.statistics().pool_waiting == 0
    await settle()
    assert aiofastread.statistics().misses_in_flight == 0
    assert open_fd_count() == fds_before


def test_misses_from_several_loops_share_one_limit(data_dir: Path, small_pool: int) -> None:
    cold = data_dir / "cold.bin"
    data = make_file(cold, 4 << 20)
    evict(cold)
    per_loop = 1500
    peaks: list[int] = []
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        async def main() -> None:
            rng = random.Random(seed)
            sampler = Sampler()
            sampling = asyncio.ensure_future(sampler.run())
            async with aiofastread.open(cold, "rb") as f:
                offsets = [rng.randrange(0, len(data) - BLOCK) for _ in range(per_loop)]
                got = await asyncio.gather(*(f.pread(BLOCK, o) for o in offsets))
            sampler.stop()
            await sampling
            assert all(g == data[o : o + BLOCK] for g, o in zip(got, offsets, strict=False))
            peaks.append(sampler.max_in_flight)

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(peaks) == 3
    # Deferred closes (one per loop here) run outside the limit by design:
    # they are submitted from completion callbacks, which must not wait.
    assert max(peaks) <= LIMIT + len(threads)
    assert aiofastread.statistics().misses_in_flight >= 0


async def test_waiter_cancelled_after_it_was_granted_releases_its_slot_once(
    no_blocking_on_loop: BlockBuster,
) -> None:
    """Regression: the slot of a waiter popped by a finishing job and then
    cancelled before the grant ran on its loop was released twice, so the
    in-flight count went negative and the limit let one more job in."""
    # This test spins on the pool's statistics while a worker thread takes
    # the same (briefly held) lock: contention blockbuster would report.
    no_blocking_on_loop.deactivate()
    pool = _pool.MissPool(max_workers=2, max_in_flight=1)
    gate = threading.Event()
    try:
        holder = asyncio.ensure_future(pool.run(gate.wait, 30))
        waiter = asyncio.ensure_future(pool.run(int, 7))
        while pool.statistics().waiting != 1:
            await asyncio.sleep(0)
        gate.set()  # the holder's thread finishes and pops the waiter...
        for _ in range(10_000_000):  # ...while this loop runs nothing (no await)
            if pool.statistics().waiting == 0:
                break
        assert pool.statistics().in_flight == 1  # the slot is the waiter's now
        waiter.cancel()  # before the grant callback has run on this loop
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await holder is True
        for _ in range(100_000):
            if pool.statistics().in_flight <= 0:
                break
            await asyncio.sleep(0)
        assert pool.statistics().in_flight == 0
        await asyncio.sleep(0)
        assert pool.statistics().in_flight == 0  # not -1
        assert await pool.run(int, 3) == 3
        assert pool.statistics().in_flight >= 0
    finally:
        gate.set()
        pool.shutdown()


async def settle() -> None:
    """Wait until the pool has run its last job (deferred closes finish
    after their awaiters were woken)."""
    for _ in range(100_000):
        if aiofastread.statistics().misses_in_flight == 0:
            return
        await asyncio.sleep(0)
