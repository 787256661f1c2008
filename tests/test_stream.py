"""Readahead off the loop for streaming readers (_stream, _readahead).

The planning is sans-I/O and tested as plain functions, the whole state
after each step. The rest runs real streams over evicted files on a
filesystem with RWF_NOWAIT and proves with counters (statistics()'s
readahead_jobs/readahead_bytes, inline hits) and page-cache contents
(cachestat) where the bytes came from, never with timing. blockbuster
wraps every test (conftest): the readahead adds no blocking call on the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import pytest

import aiofastread
from aiofastread import _native, _native_pool, _read, _stream
from aiofastread._stream import (
    AHEAD_CHUNKS_MAX,
    CHUNK_MAX,
    CHUNK_MIN,
    RATE_SAMPLE_NS,
    STREAK_MIN,
    Stream,
)
from tests.conftest import cached_pages, evict, make_file, until

MIB = 1 << 20
KIB = 1 << 10


# -- planning, as plain functions ---------------------------------------------


def test_a_read_that_does_not_continue_the_last_one_is_no_stream() -> None:
    assert _stream.observe(None, 4096, -1, 0) is None
    assert _stream.observe(None, 4096, 0, 0) is None
    stream = Stream(ahead_to=8 * MIB, mark_pos=0, mark_ns=0, streak=5, rate=1e8)
    assert _stream.observe(stream, 123, 4096, 1) is None  # turned random: forgotten


def test_a_stream_is_followed_and_its_rate_measured() -> None:
    s = _stream.observe(None, 64 * KIB, 64 * KIB, 1000)
    assert s == Stream(ahead_to=64 * KIB, mark_pos=64 * KIB, mark_ns=1000, streak=1, rate=0.0)
    # Within one sample period: only the streak moves.
    assert _stream.observe(s, 128 * KIB, 128 * KIB, 2000) is s
    assert (s.streak, s.rate, s.mark_pos) == (2, 0.0, 64 * KIB)
    # 1 MiB more after 10 ms: 100 MiB/s (the first sample is taken whole).
    t = 1000 + RATE_SAMPLE_NS
    _stream.observe(s, 64 * KIB + MIB, 64 * KIB + MIB, t)
    assert s == Stream(
        ahead_to=64 * KIB, mark_pos=64 * KIB + MIB, mark_ns=t, streak=3, rate=MIB * 100
    )
    # The next sample is averaged in: 0 B/s for 10 ms halves it.
    _stream.observe(s, 64 * KIB + MIB, 64 * KIB + MIB, t + RATE_SAMPLE_NS)
    assert s.rate == MIB * 50


def test_pieces_are_whole_device_requests_within_a_kernel_step() -> None:
    assert _stream.piece_for(1280 * KIB) == 1280 * KIB  # a loop device: 1 request
    assert _stream.piece_for(768 * KIB) == 1536 * KIB  # 2 requests
    assert _stream.piece_for(128 * KIB) == 2 * MIB  # 16 requests
    assert _stream.piece_for(4 * MIB) == _stream.KERNEL_STEP  # vda: larger than a step
    assert _stream.piece_for(0) == _stream.KERNEL_STEP  # unknown


def test_chunks_are_the_device_window_in_whole_pieces() -> None:
    assert _stream.chunk_for(128 * KIB, PIECE) == CHUNK_MIN
    assert _stream.chunk_for(4 * MIB, PIECE) == 4 * MIB
    assert _stream.chunk_for(64 * MIB, PIECE) == CHUNK_MAX
    assert _stream.chunk_for(2560 * KIB, 1280 * KIB) == 2560 * KIB  # the slow device
    assert _stream.chunk_for(128 * KIB) == 2 * MIB  # default piece: one kernel step
    assert _stream.chunk_for(3 * MIB, 2 * MIB) == 4 * MIB


def test_no_readahead_before_the_streak() -> None:
    s = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN - 1)
    assert plan(s, 64 * KIB) == []


GIB = 1 << 30
PIECE = 128 * KIB  # with a 128 KiB window: 1 MiB chunks


def plan(s: Stream, end: int, size_hint: int = GIB) -> list[tuple[int, int]]:
    """_stream.plan for a device with a 128 KiB window (lookahead 256 KiB)."""
    return _stream.plan(
        s, end, window=128 * KIB, lookahead=256 * KIB, size_hint=size_hint, piece=PIECE
    )


def test_plan_covers_the_lookahead_and_a_lead_in_chunks_on_boundaries() -> None:
    s = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN)
    end = 64 * KIB
    jobs = plan(s, end)
    # Rate unknown: a lead of one chunk (1 MiB) past the 256 KiB lookahead,
    # the first job up to the next chunk boundary.
    assert jobs == [(end, MIB - end), (MIB, MIB)]
    for offset, length in jobs:
        _stream.submitted(s, offset, length)
    assert s.ahead_to == 2 * MIB
    # The reader moves 128 KiB on: nothing new is due yet.
    assert plan(s, end + 128 * KIB) == []
    # It moves past the first chunk: the next one is asked for.
    assert plan(s, end + MIB) == [(2 * MIB, MIB)]


def test_a_refused_job_is_asked_for_again_at_the_next_read() -> None:
    s = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN)
    jobs = plan(s, 0)
    _stream.submitted(s, *jobs[0])  # the second was refused
    assert plan(s, 0) == jobs[1:]


def test_the_lead_grows_with_the_rate_up_to_the_per_file_bound() -> None:
    lookahead = 256 * KIB
    slow = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN, rate=1e6)
    assert _stream.depth(slow, 128 * KIB, lookahead, PIECE) == lookahead + CHUNK_MIN
    mid = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN, rate=8 * MIB)
    assert (
        _stream.depth(mid, 128 * KIB, lookahead, PIECE) == lookahead + 2 * MIB
    )  # 8 MiB/s x 0.25 s
    fast = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN, rate=1e12)
    assert (
        _stream.depth(fast, 128 * KIB, lookahead, PIECE) == lookahead + AHEAD_CHUNKS_MAX * CHUNK_MIN
    )
    jobs = plan(fast, 0)
    assert sum(n for _, n in jobs) <= lookahead + (AHEAD_CHUNKS_MAX + 1) * CHUNK_MIN


def test_plan_never_goes_past_the_size_known() -> None:
    s = Stream(ahead_to=0, mark_pos=0, mark_ns=0, streak=STREAK_MIN, rate=1e12)
    size = 2 * MIB + 5
    jobs = plan(s, MIB, size_hint=size)
    assert jobs == [(MIB, MIB), (2 * MIB, 5)]
    for job in jobs:
        _stream.submitted(s, *job)
    assert plan(s, 2 * MIB, size_hint=size) == []


def test_a_plan_is_submitted_as_one_range() -> None:
    assert _stream.one_job([]) is None
    assert _stream.one_job([(3 * MIB, MIB)]) == (3 * MIB, MIB)
    jobs = [(MIB + 4096, MIB - 4096), (2 * MIB, MIB), (3 * MIB, 1000)]
    assert _stream.one_job(jobs) == (MIB + 4096, 2 * MIB - 4096 + 1000)


def test_a_reader_ahead_of_the_readahead_is_not_read_behind() -> None:
    s = Stream(ahead_to=MIB, mark_pos=0, mark_ns=0, streak=STREAK_MIN)
    assert plan(s, 3 * MIB)[0][0] == 3 * MIB


# -- real streams -------------------------------------------------------------

WINDOW = 32 * KIB  # the device window the tests pretend: 1 MiB chunks, 64 KiB lookahead


@pytest.fixture
def recorded_jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Every readahead job submitted (fd, offset, length), still submitted."""
    jobs: list[tuple[int, int, int]] = []
    submit = _native_pool.submit_readahead

    def recording(fd: int, offset: int, length: int, stream: int) -> bool:
        taken = submit(fd, offset, length, stream)
        if taken:
            jobs.append((fd, offset, length))
        return taken

    monkeypatch.setattr(_native_pool, "submit_readahead", recording)
    return jobs


def small_window(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setitem(_read._readahead_by_dev, os.stat(path).st_dev, WINDOW)


def evicted_file(path: Path, size: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """``size`` random bytes at ``path``, none cached, on a device whose
    readahead window the read path takes to be ``WINDOW``."""
    data = make_file(path, size)
    small_window(monkeypatch, path)
    evict(path)
    return data


async def readahead_done() -> None:
    await until(lambda: _native_pool.readahead_in_flight() == (0, 0), "readahead jobs to finish")


def reads_ahead(backend: str) -> bool:
    return backend == "native" and _native.backend.native_pool


async def test_an_evicted_stream_is_read_ahead_then_served_inline(
    data_dir: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded_jobs: list[tuple[int, int, int]],
) -> None:
    path = data_dir / "stream.bin"
    size = 4 * MIB + 1000  # not a whole number of chunks: the last job ends at EOF
    data = evicted_file(path, size, monkeypatch)
    step = 64 * KIB
    got = bytearray()
    reopened = _native_pool.readahead_stats()[2]
    async with aiofastread.open(path, "rb") as f:
        for _ in range(STREAK_MIN + 1):
            got += await f.read(step)
        if not reads_ahead(backend):
            assert aiofastread.statistics().readahead_jobs == 0  # python/pool: nothing
            got += await f.read()
            assert bytes(got) == data
            return
        assert recorded_jobs, "the third read of a stream asks for readahead"
        await readahead_done()
        ahead_to = recorded_jobs[-1][1] + recorded_jobs[-1][2]
        assert cached_pages(path) * 4096 >= ahead_to - len(got)  # brought in off the loop
        hits = aiofastread.statistics().inline_hits
        # Every read whose lookahead (2 windows) lies in what was read ahead
        # is an inline hit, the first one included (a COLD file whose stream
        # is read ahead is probed at once).
        inline_reads = (ahead_to - len(got) - 2 * 2 * WINDOW) // step
        assert inline_reads >= 10
        for _ in range(inline_reads):
            got += await f.read(step)
        assert aiofastread.statistics().inline_hits - hits == inline_reads
        while chunk := await f.read(step):
            got += chunk
            # One job of a stream at a time (native/afr_readahead.c).
            assert _native_pool.readahead_in_flight()[0] <= 1
    assert bytes(got) == data
    stats = aiofastread.statistics()
    assert stats.readahead_jobs == len(recorded_jobs) >= 2
    # Each job starts where the last one ended, and the first one found its
    # range not cached and read it on a description of its own.
    assert all(a[1] + a[2] == b[1] for a, b in itertools.pairwise(recorded_jobs))
    await readahead_done()
    assert _native_pool.readahead_stats()[2] > reopened
    assert stats.readahead_bytes == sum(n for _, _, n in recorded_jobs)
    assert all(offset + n <= size for _, offset, n in recorded_jobs)  # never past EOF
    assert max(offset + n for _, offset, n in recorded_jobs) == size  # up to it
    assert stats.inline_misses == 0  # the stream never missed inline (no readahead on the loop)


async def test_a_text_stream_is_read_ahead_too(
    data_dir: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded_jobs: list[tuple[int, int, int]],
) -> None:
    path = data_dir / "stream.txt"
    text = "".join(f"line {i:07d} ünïcode\n" for i in range(200_000))  # ~4.6 MB
    path.write_text(text, encoding="utf-8")
    small_window(monkeypatch, path)
    evict(path)
    lines = 0
    async with aiofastread.open(path, encoding="utf-8") as f:
        async for line in f:
            assert line == f"line {lines:07d} ünïcode\n"
            lines += 1
    assert lines == 200_000
    stats = aiofastread.statistics()
    if reads_ahead(backend):
        assert stats.readahead_jobs == len(recorded_jobs) >= 2
        assert all(offset + n <= path.stat().st_size for _, offset, n in recorded_jobs)
        assert stats.inline_hits > 0
    else:
        assert stats.readahead_jobs == 0


async def test_a_random_reader_gets_no_readahead(
    data_dir: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded_jobs: list[tuple[int, int, int]],
) -> None:
    path = data_dir / "random.bin"
    data = evicted_file(path, 4 * MIB, monkeypatch)
    async with aiofastread.open(path, "rb") as f:
        for i in range(64):
            offset = (i * 7919 % 1000) * 4096
            await f.seek(offset)
            assert await f.read(4096) == data[offset : offset + 4096]
    assert recorded_jobs == []
    assert aiofastread.statistics().readahead_jobs == 0


async def test_a_stream_that_turns_random_is_forgotten(
    data_dir: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded_jobs: list[tuple[int, int, int]],
) -> None:
    if not reads_ahead(backend):
        pytest.skip("only the native backend reads ahead")
    path = data_dir / "mixed.bin"
    evicted_file(path, 8 * MIB, monkeypatch)
    async with aiofastread.open(path, "rb") as f:
        for _ in range(STREAK_MIN + 1):
            await f.read(64 * KIB)
        assert f._h.stream is not None
        assert recorded_jobs
        before = len(recorded_jobs)
        for i in range(16):  # past what was read ahead: the general path
            await f.seek(4 * MIB + (i * 37 % 64) * 65536 + 4096)
            await f.read(4096)
            assert f._h.stream is None
        assert len(recorded_jobs) == before


async def test_readahead_stops_when_the_reader_stops_and_never_reads_a_closed_fd(
    data_dir: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded_jobs: list[tuple[int, int, int]],
) -> None:
    """Jobs work on a dup: after close, the fd number reused by another file
    is never read by them (that file stays uncached)."""
    if not reads_ahead(backend):
        pytest.skip("only the native backend reads ahead")
    path = data_dir / "closed.bin"
    other = data_dir / "other.bin"
    evicted_file(path, 8 * MIB, monkeypatch)
    make_file(other, 8 * MIB)
    evict(other)
    f = await aiofastread.open(path, "rb")
    fd = f.fileno()
    for _ in range(STREAK_MIN + 1):
        await f.read(64 * KIB)
    assert recorded_jobs
    assert all(job_fd == fd for job_fd, _, _ in recorded_jobs)
    submitted = aiofastread.statistics().readahead_jobs
    await f.close()
    reused = await asyncio.to_thread(os.open, other, os.O_RDONLY)
    try:
        await readahead_done()
        assert cached_pages(other) == 0, "a readahead job read the reused fd number"
        assert cached_pages(path) > 0
        # The reader stopped: nothing more was asked for.
        assert aiofastread.statistics().readahead_jobs == submitted
    finally:
        await asyncio.to_thread(os.close, reused)


async def test_readahead_can_be_turned_off(
    data_dir: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded_jobs: list[tuple[int, int, int]],
) -> None:
    path = data_dir / "off.bin"
    data = evicted_file(path, 2 * MIB, monkeypatch)
    aiofastread.configure(readahead=False)
    try:
        async with aiofastread.open(path, "rb") as f:
            assert await f.read() == data
            await f.seek(0)
            while await f.read(64 * KIB):
                pass
    finally:
        aiofastread.configure(readahead=True)
    assert recorded_jobs == []
    with pytest.raises(TypeError, match="readahead must be a bool, not int"):
        aiofastread.configure(readahead=1)  # type: ignore[arg-type]


def test_the_process_wide_bound_refuses_a_job_over_it(data_dir: Path, backend: str) -> None:
    if not _native.HAS_NATIVE_POOL:
        pytest.skip("no native pool")
    path = data_dir / "bound.bin"
    make_file(path, 4 * MIB)
    evict(path)
    _native_pool.configure_readahead(max_jobs=0, max_bytes=MIB)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert not _native_pool.submit_readahead(fd, 0, 2 * MIB, 1)
        assert _native_pool.readahead_in_flight() == (0, 0)
    finally:
        os.close(fd)
        _native_pool.configure_readahead(max_jobs=0, max_bytes=_native_pool.READAHEAD_MAX_BYTES)
