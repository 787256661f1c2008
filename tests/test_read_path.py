"""Where each read is served, proven by counters (never by timing)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread import _native, _read, _readahead, _runtime
from aiofastread._policy import REPROBE_EVERY
from tests.conftest import cached_pages, evict, make_file, open_fd_count, warm


def pool_submissions() -> int:
    return aiofastread.statistics().pool_submissions


async def test_warm_reads_are_inline_with_zero_pool_submissions(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "hot.bin"
    data = make_file(path, 1 << 20)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        assert await f.read(4096) == data[:4096]  # first read: cachestat, then inline
        before = aiofastread.statistics()
        for offset in (0, 8192, 500_000, (1 << 20) - 16384):
            await f.seek(offset)
            assert await f.read(16384) == data[offset : offset + 16384]
            assert await f.pread(100, offset) == data[offset : offset + 100]
        after = aiofastread.statistics()
        if backend == "pool":
            assert after.inline_hits == before.inline_hits == 0
            assert after.pool_submissions - before.pool_submissions == 8
        else:
            assert after.pool_submissions == before.pool_submissions
            assert after.inline_hits - before.inline_hits == 8
            assert after.bytes_inline - before.bytes_inline == 4 * 16484
            assert f.statistics().state == "warm"


async def test_evicted_file_is_never_read_inline_without_residency(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "cold.bin"
    data = make_file(path, 256 << 10)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(16384) == data[:16384]
        stats = f.statistics()
        # No NOWAIT attempt on a file not known warm: cachestat said "not
        # resident" and the pool read it.
        assert (stats.inline_hits, stats.inline_misses, stats.short_reads) == (0, 0, 0)
        assert stats.pool_reads == 1
        if backend != "pool":
            assert stats.residency_checks == 1
            assert stats.state == "cold"


async def test_cold_file_is_skipped_then_reprobed(
    data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "pool":
        pytest.skip("the pool backend never probes")
    # These reads are a stream: with readahead under way a COLD file is
    # probed on every read (tests/test_stream.py); here the policy alone.
    monkeypatch.setattr(_readahead, "enabled", False)
    path = data_dir / "cold.bin"
    data = make_file(path, 1 << 20)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        await f.read(4096)  # not resident -> COLD
        assert f.statistics().state == "cold"
        warm(path)  # the file warms up behind our back
        for _ in range(REPROBE_EVERY - 1):
            await f.read(4096)
        stats = f.statistics()
        assert stats.skipped_cold == REPROBE_EVERY - 1  # not even cachestat
        assert stats.residency_checks == 1
        assert stats.inline_hits == 0
        offset = await f.tell()
        assert await f.read(4096) == data[offset : offset + 4096]  # the re-probe
        stats = f.statistics()
        assert (stats.residency_checks, stats.inline_hits, stats.state) == (2, 1, "warm")


@pytest.mark.parametrize("mode", ["rb", "r"])
async def test_a_stream_reads_inline_only_while_the_pages_ahead_are_cached(
    data_dir: Path, backend: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inline hit on a page marked for readahead starts the next window's
    I/O on the loop thread; a stream must go to the pool before that can
    happen (_read._cached). Checked on every inline call: the lookahead
    after the read was resident when it was made."""
    if backend == "pool" or _native.backend.cachestat is None:
        pytest.skip("needs inline reads and cachestat")
    path = data_dir / "stream.txt"
    data = (b"".join(b"line %07d\n" % i for i in range(80_000)) + b"x" * (1 << 20))[: 1 << 20]
    path.write_bytes(data)
    monkeypatch.setitem(_read._readahead_by_dev, os.stat(path).st_dev, 32 << 10)
    ahead = 2 * (32 << 10)
    evict(path)
    fd = os.open(path, os.O_RDONLY)
    try:  # cache exactly the first half: no readahead on this fd
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        os.pread(fd, 512 << 10, 0)
    finally:
        os.close(fd)
    assert cached_pages(path) == 128
    inline_calls: list[tuple[int, int, bool]] = []
    read_nowait = _native.backend.read_nowait

    def checked(fd: int, size: int, offset: int) -> bytes | int:
        length = min(size + ahead, len(data) - offset)
        answer = _native.backend.cachestat(fd, offset, length) if length > 0 else (0, 0)
        assert not isinstance(answer, int)
        inline_calls.append((offset, size, answer[0] >= answer[1]))
        return read_nowait(fd, size, offset)

    monkeypatch.setattr(
        _native, "backend", dataclasses.replace(_native.backend, read_nowait=checked)
    )
    # Readahead off: it would bring the cold half in ahead of the reader
    # (tests/test_stream.py); here the guard alone is under test.
    monkeypatch.setattr(_readahead, "enabled", False)
    got = bytearray()
    pooled = aiofastread.statistics().bytes_pooled
    async with aiofastread.open(path, mode) as f:
        while chunk := await f.read(16 << 10):
            got += chunk.encode() if isinstance(chunk, str) else chunk
    assert bytes(got) == data
    assert inline_calls, "the cached first half was read inline"
    assert all(ok for _, _, ok in inline_calls), [c for c in inline_calls if not c[2]][:3]
    assert aiofastread.statistics().bytes_pooled > pooled  # the cold half: the pool


async def test_inline_hits_yield_to_the_pool_only_while_it_has_work(
    data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 16th hit on a file yields the GIL (os.sched_yield) if pool work
    is in flight, so finished misses are not held behind a busy loop."""
    if backend == "pool":
        pytest.skip("the pool backend never reads inline")
    from aiofastread._pool import default_pool

    path = data_dir / "hits.bin"
    data = make_file(path, 1 << 20)
    yields: list[int] = []
    monkeypatch.setattr(os, "sched_yield", lambda: yields.append(1))
    offsets = [(i * 7919 % 250) * 4096 for i in range(64)]  # scattered: not a stream

    async def hits(f: Any) -> int:
        first = f.statistics().inline_hits
        for off in offsets[:32]:
            await f.seek(off)
            assert await f.read(4096) == data[off : off + 4096]  # the written-out fast path
        for off in offsets[32:]:
            assert await f.pread(4096, off) == data[off : off + 4096]  # through _read
        done = f.statistics().inline_hits
        assert done - first == 64  # every read was an inline hit
        return sum(1 for k in range(first + 1, done + 1) if k % 16 == 0)

    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.read(4096)
        pool = default_pool()
        assert not pool.busy
        await hits(f)
        assert yields == []  # nothing in the pool: no yield
        gate = threading.Event()
        job = asyncio.ensure_future(pool.run(gate.wait))
        while not pool.busy:
            await asyncio.sleep(0)
        try:
            expected = await hits(f)
        finally:
            gate.set()
            await job
        assert expected == 4
        assert len(yields) == expected


async def test_partly_cached_range_keeps_prefix_and_pools_the_rest(
    data_dir: Path, backend: str
) -> None:
    if backend == "pool":
        pytest.skip("the pool backend never reads inline")
    path = data_dir / "part.bin"
    data = make_file(path, 1 << 20)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        assert await f.read(4096) == data[:4096]  # WARM now
        evict(path)
        fd = os.open(path, os.O_RDONLY)
        try:  # cache exactly the first 64 KiB: no readahead on this fd
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            os.pread(fd, 65536, 0)
        finally:
            os.close(fd)
        assert cached_pages(path) == 16
        await f.seek(0)
        assert await f.read(256 << 10) == data[: 256 << 10]
        stats = f.statistics()
        prefix = stats.bytes_inline - 4096
        assert prefix + stats.bytes_pooled == 256 << 10
        if stats.short_reads:
            # The cached prefix came inline (at least the 64 KiB we cached),
            # the pool read the rest.
            assert (stats.short_reads, stats.pool_reads) == (1, 1)
            assert 65536 <= prefix < 256 << 10
        else:
            # On Linux >= ~6.12 the NOWAIT read itself starts readahead for
            # the missing tail; on this VM's fast disk it can finish before
            # the read gives up, and the whole range comes back inline.
            assert (stats.inline_hits, stats.pool_reads) == (2, 0)


async def test_short_inline_read_keeps_prefix_and_pools_exactly_the_rest(
    data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The short-read path, made deterministic: the backend answers with a
    cached prefix, as preadv2(RWF_NOWAIT) does when the tail is not cached."""
    if backend == "pool":
        pytest.skip("the pool backend never reads inline")
    path = data_dir / "short.bin"
    data = make_file(path, 1 << 20)
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(4096) == data[:4096]  # WARM now
        real = _native.backend.read_nowait
        calls: list[tuple[int, int]] = []

        def cached_prefix_only(fd: int, size: int, offset: int) -> bytes | int:
            calls.append((size, offset))
            got = real(fd, size, offset)
            return got[:12288] if isinstance(got, bytes) else got

        monkeypatch.setattr(
            _native, "backend", dataclasses.replace(_native.backend, read_nowait=cached_prefix_only)
        )
        await f.seek(100_000)
        assert await f.read(200_000) == data[100_000:300_000]
        assert await f.tell() == 300_000
        stats = f.statistics()
        assert calls == [(200_000, 100_000)]
        assert (stats.short_reads, stats.pool_reads) == (1, 1)
        assert stats.bytes_inline == 4096 + 12288
        assert stats.bytes_pooled == 200_000 - 12288


async def test_eof(data_dir: Path) -> None:
    path = data_dir / "small.bin"
    data = make_file(path, 10_000)
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(4096) == data[:4096]
        await f.seek(9000)
        assert await f.read(4096) == data[9000:]
        assert await f.read(4096) == b""
        assert await f.read() == b""
        await f.seek(50_000)
        assert await f.read(10) == b""
        assert await f.tell() == 50_000
        await f.seek(0)
        assert await f.read() == data
        assert await f.pread(100, 9950) == data[9950:]
        assert await f.pread(100, 20_000) == b""


async def test_file_growing_after_open_is_read_past_old_size(data_dir: Path) -> None:
    path = data_dir / "grow.bin"
    data = make_file(path, 5000)
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read() == data
        with open(path, "ab") as w:
            w.write(b"tail")
        assert await f.read() == b"tail"
        await f.seek(0)
        assert await f.read() == data + b"tail"


async def test_tmpfs_file_is_served_by_pool_and_marked_unsupported(
    tmpfs_dir: Path, backend: str
) -> None:
    path = tmpfs_dir / "f.bin"
    data = make_file(path, 100_000)
    async with aiofastread.open(path, "rb") as f:
        for offset in (0, 4096, 50_000):
            await f.seek(offset)
            assert await f.read(8192) == data[offset : offset + 8192]
        stats = f.statistics()
        if backend == "pool":
            assert stats.unsupported == 0
        else:
            assert stats.state == "unsupported"
            assert stats.unsupported == 1  # tried once, never again
        assert stats.inline_hits == 0
        assert stats.pool_reads == 3


async def test_fast_path_off_sends_everything_to_the_pool(data_dir: Path) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, 100_000)
    warm(path)
    aiofastread.configure(fast_path=False)
    try:
        async with aiofastread.open(path, "rb") as f:
            before = pool_submissions()
            assert await f.read(1000) == data[:1000]
            assert await f.read(1000) == data[1000:2000]
            assert pool_submissions() - before == 2
            assert f.statistics().inline_hits == 0
    finally:
        aiofastread.configure(fast_path=True)


async def test_policy_table_stays_bounded(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime.POLICY, "max_tracked", 20)
    for i in range(60):
        path = data_dir / f"f{i}"
        path.write_bytes(b"x" * 100)
        async with aiofastread.open(path, "rb") as f:
            assert await f.read() == b"x" * 100
    stats = aiofastread.statistics()
    assert stats.tracked_files == 20
    # Counters of inodes that left the table still count in the totals.
    assert stats.inline_hits + stats.pool_reads == 60


class GatedExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs jobs only once ``gate`` is set: holds a pool read in flight."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.gate = threading.Event()
        self.started = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def gated() -> Any:
            self.started.set()
            self.gate.wait(30)
            return fn(*args, **kwargs)

        return super().submit(gated)


@pytest.fixture
def gated() -> Iterator[GatedExecutor]:
    executor = GatedExecutor()
    yield executor
    executor.gate.set()
    executor.shutdown(wait=True)


async def wait_started(executor: GatedExecutor) -> None:
    while not executor.started.is_set():
        await asyncio.sleep(0)


async def test_close_with_a_miss_in_flight_keeps_fd_until_it_finishes(
    data_dir: Path, gated: GatedExecutor, fd_leak_check: None
) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, 100_000)
    evict(path)
    gated.gate.set()
    f = await aiofastread.open(path, "rb", executor=gated)
    gated.gate.clear()
    gated.started.clear()
    fd = f.fileno()
    reader = asyncio.ensure_future(f.read(50_000))
    await wait_started(gated)
    closer = asyncio.ensure_future(f.close())
    await asyncio.sleep(0)
    assert f.closed
    os.fstat(fd)  # still open: the read in the pool holds it
    with pytest.raises(ValueError, match="read of closed file"):
        await f.read(10)
    gated.gate.set()
    assert await reader == data[:50_000]
    await closer
    with pytest.raises(OSError):
        os.fstat(fd)


async def test_cancelled_read_leaves_position_unchanged(
    data_dir: Path, gated: GatedExecutor, fd_leak_check: None
) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, 100_000)
    evict(path)
    gated.gate.set()
    async with aiofastread.open(path, "rb", executor=gated) as f:
        await f.seek(1000)
        gated.gate.clear()
        gated.started.clear()
        reader = asyncio.ensure_future(f.read(5000))
        await wait_started(gated)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert await f.tell() == 1000
        gated.gate.set()
        assert await f.read(5000) == data[1000:6000]


async def test_cancelled_open_leaks_nothing(data_dir: Path, gated: GatedExecutor) -> None:
    path = data_dir / "f.bin"
    make_file(path, 1000)
    before = open_fd_count()
    opener = asyncio.ensure_future(aiofastread.open(path, "rb", executor=gated))
    await wait_started(gated)
    opener.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opener
    gated.gate.set()
    # The open finishes late in its thread, which closes what it opened
    # before it counts as done.
    for _ in range(5000):
        if not aiofastread.statistics().misses_in_flight:
            break
        await asyncio.sleep(0.001)
    assert aiofastread.statistics().misses_in_flight == 0
    assert open_fd_count() == before


async def test_many_readers_of_one_file_see_each_byte_once(data_dir: Path) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, 50 * 3000)
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        chunks = await asyncio.gather(*(f.read(3000) for _ in range(50)))
    assert sorted(chunks) == sorted(data[i : i + 3000] for i in range(0, len(data), 3000))


async def test_a_cold_file_opened_again_is_probed_at_its_first_read(
    data_dir: Path, backend: str
) -> None:
    """A COLD inode is re-probed (cachestat, no I/O) at the first read of a
    new open, not after REPROBE_EVERY reads: it may have warmed meanwhile,
    or its inode number may now be another file's."""
    if not _native.backend.can_read_inline:
        pytest.skip("the pool backend never reads inline")
    path = data_dir / "reopened"
    data = make_file(path, 64 << 10)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(4096) == data[:4096]
        assert f.statistics().state == "cold"
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        hits = f.statistics().inline_hits
        assert await f.read(4096) == data[:4096]
        after = f.statistics()
    assert (after.state, after.inline_hits - hits) == ("warm", 1)
