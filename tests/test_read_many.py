"""Vectored reads (read_many, read_many_into) and reads into caller memory
(pread_into, readinto's misses): contents against os.pread, the policy's
inline/pool split, the in-flight limit, one loop wakeup per batch, and
cancellation with no leak (a C thread never writes into a released buffer).

Every test runs on each loop and backend (tests/conftest.py); reads that
must stay blocked while a test looks at them are reads of a FUSE file whose
server is stopped, as in tests/test_native_pool.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import os
import random
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread import _native, _native_pool, _pool, _read, _read_ranges, _vectored
from aiofastread._policy import FileState
from tests.conftest import _cachestat, evict, make_file, open_fd_count, until, warm
from tests.test_native_pool import fuse_file, native_submitted, stopped, turn_until
from tests.test_reliability_fs import fuse_root  # noqa: F401 - fixture

SIZE = 2 << 20


def half_cold(path: Path) -> None:
    """Only the first half of ``path`` in the page cache: evict it all, then
    read that half with readahead off (a DONTNEED of a range can keep large
    folios that straddle it)."""
    evict(path)
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for offset in range(0, size // 2, 65536):
            os.pread(fd, 65536, offset)
        answer = _cachestat(fd, size // 2, size) if _cachestat else -1
    finally:
        os.close(fd)
    assert isinstance(answer, int) or answer[0] < answer[1], "the second half is cached"


def random_ranges(seed: int, size: int, count: int = 64) -> list[tuple[int, int]]:
    """Random ranges: some overlap, some cross or start past EOF, some empty."""
    rng = random.Random(seed)
    ranges = [
        (rng.randrange(size + 8192), rng.choice([0, 1, 4096, 16384, 100_000, 300_000]))
        for _ in range(count)
    ]
    return [*ranges, (size - 10, 100), (size, 10), (size + 1, 0), ranges[0], (0, 0)]


def expected(path: Path, ranges: list[tuple[int, int]]) -> list[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return [os.pread(fd, n, o) for o, n in ranges]
    finally:
        os.close(fd)


def resizable(buffer: bytearray) -> bool:
    """Whether no export pins ``buffer`` (gc first: a cycle may hold one)."""
    gc.collect()
    try:
        buffer.append(0)
    except BufferError:
        return False
    del buffer[-1]
    return True


def native_pool() -> _native_pool.NativeMissPool:
    pool = _pool.default_pool().native
    assert pool is not None
    return pool


@pytest.fixture
def native_only(backend: str) -> None:
    if backend != "native":
        pytest.skip("the native pool is only used by the native backend")


@pytest.mark.parametrize("warmth", ["warm", "cold", "half-cold"])
async def test_contents_match_os_pread(data_dir: Path, warmth: str) -> None:
    path = data_dir / "f"
    make_file(path, SIZE)
    ranges = random_ranges({"warm": 1, "cold": 2, "half-cold": 3}[warmth], SIZE)
    if warmth == "half-cold":
        # First a cached range: the unknown file is found warm (cachestat),
        # then its cold ranges miss; else it could be judged cold first.
        ranges.insert(0, (0, 4096))
    if warmth == "cold":
        # Not past EOF: a NOWAIT read there makes a cold file WARM (see
        # test_a_read_past_eof_leaves_a_cold_file_cold).
        ranges = [(o, n) for o, n in ranges if o < SIZE]
    want = expected(path, ranges)
    for into in (False, True):
        if warmth == "warm":
            warm(path)
        elif warmth == "cold":
            evict(path)
        else:
            half_cold(path)
        async with aiofastread.open(path, "rb") as f:
            await f.seek(123)
            if into:
                buffers = [bytearray(n + 7) for _, n in ranges]  # longer: only n may change
                targets = [
                    (o, memoryview(b)[:n]) for (o, n), b in zip(ranges, buffers, strict=True)
                ]
                counts = await f.read_many_into(targets)
                got = [bytes(b[:c]) for b, c in zip(buffers, counts, strict=True)]
                assert all(b[c:] == bytes(len(b) - c) for b, c in zip(buffers, counts, strict=True))
            else:
                got = await f.read_many(ranges)
            assert got == want
            assert await f.tell() == 123  # the position did not move
            stats = f.statistics()
        fast_path = aiofastread.statistics().fast_path
        if warmth == "warm" and fast_path:
            assert stats.pool_reads == 0
        elif warmth == "cold":
            # cachestat rules: a file never known warm gets no NOWAIT read.
            assert (stats.inline_hits, stats.inline_misses) == (0, 0)
        elif fast_path:
            assert stats.inline_hits > 0
            assert stats.pool_reads > 0


async def test_a_warm_file_is_read_inline_and_a_cold_one_in_one_batch(
    data_dir: Path, backend: str
) -> None:
    """The inline/pool split, by counters: a warm file's ranges are all
    NOWAIT hits (no pool submission), a cold file's all go to the pool
    (on the native backend: the C threads)."""
    path = data_dir / "f"
    data = make_file(path, SIZE)
    ranges = [(i * 32768, 16384) for i in range(32)]
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        native_before = native_submitted()
        assert await f.read_many(ranges) == [data[o : o + n] for o, n in ranges]
        stats = f.statistics()
        if backend == "pool":
            assert (stats.inline_hits, stats.pool_reads) == (0, 32)
        else:
            assert (stats.inline_hits, stats.pool_reads) == (32, 0)
            assert native_submitted() == native_before
    path = data_dir / "g"  # a new inode: the policy knows nothing of it
    data = make_file(path, SIZE)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        native_before = native_submitted()
        assert await f.read_many(ranges) == [data[o : o + n] for o, n in ranges]
        stats = f.statistics()
        assert (stats.inline_hits, stats.inline_misses, stats.pool_reads) == (0, 0, 32)
        assert native_submitted() - native_before == (32 if backend == "native" else 0)


async def test_a_warm_files_cached_ranges_are_one_batch_call(
    data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the file is WARM, 64 cached ranges are read by one call of the
    batch reader (the compiled one on the native backend), their hits
    counted once, nothing submitted to the pool."""
    if backend == "pool":
        pytest.skip("the pool backend never reads inline")
    calls: list[Any] = []  # the batch reader of each call made
    chosen = _vectored.read_ranges_for

    def counting(backend_now: Any) -> _read_ranges.ReadRanges:
        read_ranges = chosen(backend_now)

        def counted(*args: Any) -> Any:
            calls.append(read_ranges)
            return read_ranges(*args)

        return counted

    monkeypatch.setattr(_vectored, "read_ranges_for", counting)
    path = data_dir / "f"
    data = make_file(path, SIZE)
    ranges = [((i * 37) % 64 * 16384, 16384) for i in range(64)]
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.read_many(ranges[:4])
        assert f.statistics().state == "warm"
        before, pooled, calls[:] = f.statistics(), aiofastread.statistics().pool_reads, []
        assert await f.read_many(ranges) == [data[o : o + n] for o, n in ranges]
        after = f.statistics()
    assert len(calls) == 1
    want = _read_ranges.COMPILED if backend == "native" else _read_ranges.python_read_ranges
    assert calls[0] is want
    assert after.inline_hits - before.inline_hits == 64
    assert after.inline_misses == before.inline_misses
    assert aiofastread.statistics().pool_reads == pooled


async def test_many_ranges_over_the_in_flight_limit(data_dir: Path, backend: str) -> None:
    path = data_dir / "f"
    make_file(path, SIZE)
    evict(path)
    ranges = random_ranges(11, SIZE, count=40)
    want = expected(path, ranges)
    aiofastread.configure(max_in_flight=4)
    try:
        async with aiofastread.open(path, "rb") as f:
            reads = [f.read_many(ranges), f.read_many_into([(o, bytearray(n)) for o, n in ranges])]
            got, counts = await asyncio.gather(*reads)
        assert got == want
        assert counts == [len(w) for w in want]

        # Every slot comes back (none leaked), if not all by the time gather
        # returned: 1 in flight was seen then once in ~20 runs on the pool
        # backend (a release that lands after the awaiters; not root-caused).
        def drained() -> bool:
            stats = aiofastread.statistics()
            return (stats.misses_in_flight, stats.pool_waiting) == (0, 0)

        await until(drained, "every slot released")
        assert _native_pool.counters()[1] == 0
    finally:
        aiofastread.configure(max_in_flight=_pool.DEFAULT_MAX_IN_FLIGHT)


async def test_pread_into_and_readinto_fill_the_callers_buffer(data_dir: Path) -> None:
    path = data_dir / "f"
    data = make_file(path, SIZE)
    for cached in (True, False):
        warm(path) if cached else evict(path)
        async with aiofastread.open(path, "rb") as f:
            buffer = bytearray(300_000)
            assert await f.pread_into(buffer, 5000) == len(buffer)
            assert buffer == data[5000 : 5000 + len(buffer)]
            assert await f.tell() == 0
            assert await f.pread_into(memoryview(buffer)[:10], SIZE - 4) == 4
            assert buffer[:4] == data[-4:]
            assert await f.pread_into(bytearray(), 0) == 0
            assert await f.pread_into(bytearray(5), SIZE + 1) == 0
            # readinto: the window's bytes first, the rest into the buffer.
            assert await f.read(10) == data[:10]
            await f.peek()
            big = bytearray(1 << 21)
            assert await f.readinto(big) == SIZE - 10
            assert big[: SIZE - 10] == data[10:]
            assert await f.tell() == SIZE
            assert await f.readinto(big) == 0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda f: f.read_many([(-1, 1)]), ValueError, "read_many offset must be non-negative"),
        (lambda f: f.read_many([(0, -1)]), ValueError, "read_many size must be non-negative"),
        (lambda f: f.read_many([(0, 1.5)]), TypeError, "'float' object cannot be interpreted"),
        (lambda f: f.read_many([(0, 1, 2)]), TypeError, r"items must be \(offset, size\) pairs"),
        (lambda f: f.read_many(5), TypeError, "must be an iterable of"),
        (
            lambda f: f.read_many_into([(0, b"ro")]),
            TypeError,
            "read_many_into\\(\\) argument must be read-write bytes-like object, not bytes",
        ),
        (lambda f: f.read_many_into([(0, 5)]), TypeError, "read-write bytes-like object, not int"),
        (lambda f: f.read_many_into([(-2, bytearray(1))]), ValueError, "non-negative, got -2"),
        (lambda f: f.pread_into(b"x", 0), TypeError, "pread_into\\(\\) argument must be read-wr"),
        (lambda f: f.pread_into(bytearray(1), -1), ValueError, "pread_into offset must be non-"),
        (lambda f: f.readinto(memoryview(b"x")), TypeError, "readinto\\(\\) argument must be"),
    ],
)
async def test_bad_arguments_raise_clear_errors(
    data_dir: Path, call: Any, error: type[Exception], message: str
) -> None:
    path = data_dir / "f"
    make_file(path, 4096)
    async with aiofastread.open(path, "rb") as f:
        with pytest.raises(error, match=message):
            await call(f)
    with pytest.raises(ValueError, match="read of closed file"):
        await f.read_many([(0, 1)])
    with pytest.raises(ValueError, match="read of closed file"):
        await f.pread_into(bytearray(1), 0)


async def test_a_batch_that_finishes_together_costs_one_wakeup(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    native_only: None,
) -> None:
    """Eight misses finish while the loop is busy: the eventfd is written
    once (the first completion of an empty queue), the loop wakes once and
    takes all eight."""
    path = fuse_file(fuse_root, "batch")
    data = path.read_bytes()
    ranges = [(i * 70_000, 4096) for i in range(8)]
    async with aiofastread.open(path, "rb") as f:
        base = native_submitted()
        with stopped(fuse_root):
            task = asyncio.ensure_future(f.read_many(ranges))
            await until(lambda: native_submitted() == base + 8, "all eight on C threads")
        port = native_pool().port_of(asyncio.get_running_loop())
        assert port is not None
        wakeups = native_pool().wakeups
        # The loop thread does not run its reader until all eight are done.
        for _ in range(10_000_000):
            if _native_pool.pending(port) == 8:
                break
            os.sched_yield()
        assert _native_pool.pending(port) == 8
        assert await task == [data[o : o + n] for o, n in ranges]
        assert native_pool().wakeups == wakeups + 1


async def test_a_cancelled_read_many_into_keeps_buffers_pinned_until_reaped(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    backend: str,
) -> None:
    """Cancelled while its reads are blocked: the buffers stay exported (a
    bytearray cannot be resized: no thread can write into freed memory);
    once the reads finish the buffers are free again, and every fd, slot
    and port is given back."""
    path = fuse_file(fuse_root, "cancel-many")
    fds_before = open_fd_count()
    buffers = [bytearray(4096) for _ in range(4)]
    async with aiofastread.open(path, "rb") as f:
        base = aiofastread.statistics().pool_reads
        with stopped(fuse_root):
            task = asyncio.ensure_future(
                f.read_many_into([(i * 8192, b) for i, b in enumerate(buffers)])
            )
            await until(lambda: aiofastread.statistics().misses_in_flight == 4, "4 in flight")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gc.collect()
            for b in buffers:
                with pytest.raises(BufferError):
                    b.extend(b"x")  # still pinned by the read in flight
        await until(lambda: aiofastread.statistics().misses_in_flight == 0, "reads finished")
        await until(lambda: _native_pool.counters()[1] == 0, "reads reaped")
        # Released (a Python pool thread lets go of its view just after
        # it resolves the read).
        await until(lambda: all(resizable(b) for b in buffers), "buffers released")
        assert aiofastread.statistics().pool_reads == base  # the cancelled read took nothing
        assert aiofastread.statistics().pool_waiting == 0
        if backend == "native":
            assert native_pool().port_of(asyncio.get_running_loop()) is None
    assert open_fd_count() == fds_before


def test_a_loop_closed_with_reads_into_buffers_in_flight_keeps_them_pinned(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    native_only: None,
) -> None:
    """The port of a closed loop is dropped while a C thread still reads
    into a caller's buffer: the buffer stays pinned (an orphaned port) until
    the read finishes and a later call sweeps it; nothing leaks."""
    path = fuse_file(fuse_root, "orphan")
    fds_before = open_fd_count()
    buffer = bytearray(4096)
    loop = asyncio.new_event_loop()
    f = loop.run_until_complete(aiofastread.open(path, "rb"))
    base = native_submitted()
    with stopped(fuse_root):
        try:
            task = loop.create_task(f.pread_into(buffer, 0))
            turn_until(loop, lambda: native_submitted() == base + 1, "the read on a C thread")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
        finally:
            loop.close()  # the read is still blocked in the server
        del loop, task
        gc.collect()
        assert _native_pool._orphans, "the dropped port is kept as an orphan"
        with pytest.raises(BufferError):
            buffer.extend(b"x")
    asyncio.run(until(lambda: _native_pool.counters()[1] == 0, "swept"))
    gc.collect()
    buffer.extend(b"x")  # released once the C thread was done
    assert not _native_pool._orphans
    asyncio.run(f.close())
    assert open_fd_count() == fds_before


@pytest.mark.skipif(not _native.HAS_NATIVE_POOL, reason="no compiled native module")
async def test_reads_into_buffers_go_to_c_threads_only_on_the_native_backend(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "f"
    data = make_file(path, SIZE)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        before = native_submitted()
        buffer = bytearray(1 << 21)  # over MAX_READ: no copy follows, so C threads take it
        assert await f.pread_into(buffer, 0) == SIZE
        assert buffer == data
        assert native_submitted() - before == (1 if backend == "native" else 0)


async def test_the_inline_pass_records_what_one_read_at_a_time_records(
    data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_many's inline pass counts a WARM file's hits once per call; the
    policy must still end where ``_read.try_inline`` range by range ends
    (state, ratio, counters, stream end) for any pattern of hits, misses
    and short reads. NOWAIT answers are scripted: no page cache involved."""
    if backend == "pool":
        pytest.skip("the pool backend never reads inline")
    rng = random.Random(5)
    ranges = [(rng.randrange(0, 1 << 20, 4096), rng.choice([0, 4096, 16384])) for _ in range(300)]
    misses = {o for o, _ in rng.sample(ranges, 40)}
    shorts = {o for o, _ in rng.sample(ranges, 10)} - misses

    def scripted(fd: int, size: int, offset: int) -> bytes | int:
        if offset in misses:
            return -errno.EAGAIN
        return bytes(size // 2 if offset in shorts else size)

    monkeypatch.setattr(
        _native,
        "backend",
        dataclasses.replace(
            _native.backend, read_nowait=scripted, cachestat=lambda fd, o, n: (n, n)
        ),
    )
    # The runs of hits through the Python twin, which calls the script (the
    # compiled one matches the twin: test_compiled_batch_answers_as_its_python_twin).
    monkeypatch.setattr(_read_ranges, "COMPILED", None)
    ends = []
    for name in ("batched", "one-by-one"):
        path = data_dir / name
        make_file(path, 2 << 20)
        async with aiofastread.open(path, "rb") as f:
            h = f._h
            h.inode.state, h.inode.hit_ratio = FileState.WARM, 1.0
            if name == "batched":
                results, missed = _vectored._inline_pass(h, ranges)
                got = [(len(r), i in {m[0] for m in missed}) for i, r in enumerate(results)]
            else:
                got = []
                for offset, size in ranges:
                    data, complete = _read.try_inline(h, offset, size) if size else (b"", True)
                    got.append((len(data), not complete))
            h.inode.fold_hits()
            ends.append((got, h.inode.snapshot(), h.seq_end, h.ahead_ok_to))
    assert ends[0] == ends[1]
    assert ends[0][1].inline_misses > 0  # the script reached the policy


@pytest.mark.skipif(_read_ranges.COMPILED is None, reason="no compiled native module")
def test_compiled_batch_answers_as_its_python_twin(data_dir: Path, backend: str) -> None:
    """native/afr_read_many.c and _read_ranges.python_read_ranges on the same
    real kernel answers: full hits, empty ranges, a range over the inline
    cap, a stream step past the look-ahead mark, a short read at EOF, a read
    past EOF, a bad descriptor (-EBADF), a start in the middle."""
    if backend != "native":
        pytest.skip("the twin calls the backend's read_nowait: the native one here")
    path = data_dir / "f"
    data = make_file(path, 1 << 20)
    warm(path)
    compiled = _read_ranges.COMPILED
    assert compiled is not None
    hits = [(0, 4096), (8192, 0), (65536, 16384), (4096, 100)]
    cases: list[tuple[list[tuple[int, int]], int, int, int, int]] = [
        # ranges, start, inline_max, seq_end, ahead_ok_to
        (hits, 0, 1 << 20, -1, -1),
        (hits, 2, 1 << 20, -1, -1),
        (hits, 4, 1 << 20, -1, -1),
        ([*hits, (0, 8192), (12288, 4096)], 0, 4096, -1, -1),  # over the cap: stops there
        ([(0, 4096), (4096, 4096), (8192, 4096)], 0, 1 << 20, 0, 8192),  # past the mark
        ([(0, 4096), ((1 << 20) - 100, 4096), (0, 1)], 0, 1 << 20, -1, -1),  # short at EOF
        ([(0, 4096), ((1 << 20) + 4096, 10)], 0, 1 << 20, -1, -1),  # past EOF
        ([], 0, 1 << 20, -1, -1),
    ]
    fd = os.open(path, os.O_RDONLY)
    try:
        for ranges, start, cap, seq_end, ahead in cases:
            answers = []
            for read_ranges in (compiled, _read_ranges.python_read_ranges):
                results: list[bytes] = []
                answer = read_ranges(fd, ranges, start, results, cap, seq_end, ahead)
                answers.append((answer, results))
            assert answers[0] == answers[1], (ranges, start, cap)
            (stop, n_hits, nbytes, _, _), results = answers[0]
            assert results == [data[o : o + n] for o, n in ranges[start:stop]]
            assert n_hits == sum(1 for _, n in ranges[start:stop] if n)
            assert nbytes == sum(n for _, n in ranges[start:stop])
        bad = [(0, 10)]
        for read_ranges in (compiled, _read_ranges.python_read_ranges):
            assert read_ranges(-1, bad, 0, [], 1 << 20, -1, -1) == (0, 0, 0, -1, -errno.EBADF)
        with pytest.raises(TypeError):
            compiled(fd, [(0, 1, 2)], 0, [], 1 << 20, -1, -1)  # type: ignore[list-item]
        huge = [(1 << 70, 10), (0, 1 << 70)]  # past C: left to the general path
        for read_ranges in (compiled, _read_ranges.python_read_ranges):
            assert read_ranges(fd, huge, 0, [], 1 << 20, -1, -1) == (0, 0, 0, -1, None)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("ranges", "plain"),
    [
        ([(0, 1), (5, 0)], True), ([], True), ([(0, -1)], False), ([(-1, 0)], False),
        ([(0, 1.0)], False), ([[0, 1]], False), (((0, 1),), False), ([(True, 1)], False),
        ([(0, 1, 2)], False), ([(0,)], False), ("ab", False),
    ],
)  # fmt: skip
def test_plain_ranges_as_its_python_twin(ranges: Any, plain: bool) -> None:
    """read_many's one-pass check, compiled or not: what it accepts is
    returned as is; the rest gets the Python checks (CPython's errors)."""
    assert _read_ranges.python_plain_ranges(ranges) is plain
    assert _read_ranges.plain_ranges(ranges) is plain
    if plain:
        assert _vectored.check_ranges(ranges) is ranges
    # Ints past C's long long: C says no, the Python checks take them whole.
    huge = [(1 << 70, 1)]
    assert _vectored.check_ranges(huge) == huge


async def test_a_read_past_eof_leaves_a_cold_file_cold(data_dir: Path, backend: str) -> None:
    """A NOWAIT read at or past EOF answers 0 bytes and proves nothing about
    the page cache; counted as a full hit it turns an evicted file WARM, and
    the ranges after it are then tried inline and miss (each miss starts
    readahead on the loop thread on kernels >= 6.12)."""
    if backend == "pool":
        pytest.skip("the pool backend never reads inline")
    path = data_dir / "f"
    make_file(path, SIZE)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        await f.read_many([(SIZE + 4096, 100), *((i << 16, 4096) for i in range(8))])
        stats = f.statistics()
    assert (stats.state, stats.inline_misses) == ("cold", 0)
