"""The bridge's own promises: where reads are served, writes, errors,
cancellation, concurrency and descriptor lifetime.

Where a read was served is proven by counters (statistics()), never by time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster

import aiofastread
from aiofastread import _native_pool, _pool
from aiofastread._bridge import raw as bridge_raw
from aiofastread.threadpool._base import PoolRunner
from tests.conftest import blocking_on_purpose, evict, open_fd_count, warm

try:  # uvloop opens two process-wide fds with its first loop: not our leak
    import uvloop

    uvloop.new_event_loop().close()
except ImportError:  # pragma: no cover
    pass


def write_lines(path: Path, count: int, encoding: str = "utf-8") -> list[str]:
    lines = [f"line {i} \u00e9 some text to make it realistic\n" for i in range(count)]
    path.write_bytes("".join(lines).encode(encoding))
    return lines


@pytest.fixture
def fast_path() -> None:
    if not aiofastread.statistics().fast_path:
        pytest.skip("this backend has no inline reads")


# -- where reads are served -----------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "latin-1"])
async def test_cached_text_reads_make_no_pool_hops(
    data_dir: Path, fast_path: None, encoding: str
) -> None:
    path = data_dir / "lines.txt"
    lines = write_lines(path, 5000, encoding)
    async with aiofastread.open(path, encoding=encoding) as f:
        warm(path)
        aiofastread.reset_statistics()
        got = [line async for line in f]
        await f.seek(0)
        first = await f.readline()
        rest = await f.read(100) + await f.read()
        await f.seek(0)
        again = await f.readlines()
        stats = aiofastread.statistics()
    assert got == lines == again
    assert first + rest == "".join(lines)
    assert stats.pool_submissions == 0
    assert stats.bytes_pooled == 0
    assert stats.inline_hits > 0


async def test_cached_binary_modes_make_no_pool_hops(data_dir: Path, fast_path: None) -> None:
    path = data_dir / "f.bin"
    data = os.urandom(300_000)
    path.write_bytes(data)
    for mode, buffering in (("r+b", -1), ("rb", 0)):
        async with aiofastread.open(path, mode, buffering) as f:
            warm(path)
            aiofastread.reset_statistics()
            got = await f.read(1000) + await f.readline()
            await f.seek(0)
            got2 = await f.read()
            assert aiofastread.statistics().pool_submissions == 0
        assert got == data[: len(got)]
        assert got2 == data


async def test_uncached_lines_cost_one_pool_hop_per_window(data_dir: Path) -> None:
    path = data_dir / "lines.txt"
    lines = write_lines(path, 40_000)
    size = path.stat().st_size
    async with aiofastread.open(path) as f:
        evict(path)
        aiofastread.reset_statistics()
        got = [line async for line in f]
        stats = aiofastread.statistics()
    assert got == lines
    # The first fetch after open is WINDOW_SIZE, then POOL_WINDOW each;
    # at EOF the file is asked again each time, as FileIO does (+2).
    assert stats.pool_reads <= size // bridge_raw.POOL_WINDOW + 4


@pytest.mark.parametrize("mode", ["r", "r+b"])
async def test_bridge_misses_go_where_binary_misses_go(
    data_dir: Path, backend: str, mode: str
) -> None:
    """Text-mode and r+b misses go through _read.pool_read, as rb's do: to
    the native miss pool's C threads on the native backend, else to Python
    threads."""
    path = data_dir / "lines.txt"
    lines = write_lines(path, 40_000)
    want: Any = "".join(lines) if "b" not in mode else "".join(lines).encode()
    evict(path)
    async with aiofastread.open(path, mode) as f:
        native_before = _native_pool.counters()[0]
        python_before = _pool.default_pool()._submissions
        pooled_before = aiofastread.statistics().pool_reads
        chunks = []
        while chunk := await f.read(100_000):
            chunks.append(chunk)
        pooled = aiofastread.statistics().pool_reads - pooled_before
        native = _native_pool.counters()[0] - native_before
        python = _pool.default_pool()._submissions - python_before
    assert chunks[0][:0].join(chunks) == want
    assert pooled > 0, "the file was evicted: some reads must miss"
    if backend == "native":
        assert (native, python) == (pooled, 0)
    else:
        assert (native, python) == (0, pooled)


async def test_lines_appended_after_eof_are_seen(data_dir: Path) -> None:
    """tail -f: at EOF the file is asked again, never the stale window."""
    path = data_dir / "log.txt"
    path.write_text("a\nb\n")
    async with aiofastread.open(path) as f, aiofastread.open(path, "rb", buffering=0) as g:
        assert [line async for line in f] == ["a\n", "b\n"]
        assert [line async for line in g] == [b"a\n", b"b\n"]
        with open(path, "a") as writer:
            writer.write("c\n")
        assert await f.readline() == "c\n"
        assert await g.readline() == b"c\n"
        assert [line async for line in f] == []


# -- writes ---------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "data"), [("w", "text\n"), ("wb", b"bytes\n")])
async def test_writes_invisible_until_flush(data_dir: Path, mode: str, data: Any) -> None:
    path = data_dir / "out"
    encoded = data if isinstance(data, bytes) else data.encode()
    async with aiofastread.open(path, mode) as f:
        assert await f.write(data) == len(data)
        assert path.read_bytes() == b""
        await f.flush()
        assert path.read_bytes() == encoded
        await f.write(data)
        assert path.read_bytes() == encoded
    assert path.read_bytes() == encoded * 2


async def test_close_writes_everything(data_dir: Path) -> None:
    path = data_dir / "big"
    chunk = "x" * 1000 + "\n"
    async with aiofastread.open(path, "w") as f:
        for _ in range(300):  # several buffers' worth: some reach the raw early
            await f.write(chunk)
    assert path.read_text() == chunk * 300


async def test_append_goes_to_the_end(data_dir: Path) -> None:
    path = data_dir / "log"
    path.write_bytes(b"start\n")
    async with aiofastread.open(path, "a+b") as f:
        await f.seek(0)
        assert await f.read(5) == b"start"
        # Someone else appends meanwhile; O_APPEND still lands after it.
        with open(path, "ab") as other:
            other.write(b"other\n")
        await f.write(b"ours\n")
        await f.flush()
        assert await f.tell() == len(b"start\nother\nours\n")
        await f.seek(0)
        assert await f.read() == b"start\nother\nours\n"


@pytest.mark.parametrize("mode", ["r+", "w+", "r+b", "w+b"])
async def test_reads_see_earlier_writes(data_dir: Path, mode: str) -> None:
    path = data_dir / "f"
    path.write_bytes(b"0123456789\n" * 100)
    conv: Callable[[str], Any] = (lambda s: s.encode()) if "b" in mode else (lambda s: s)
    async with aiofastread.open(path, mode) as f:
        await f.read(3)  # fill the read-ahead window first
        await f.seek(0)
        await f.write(conv("abc"))
        await f.seek(0)
        assert await f.read(4) == conv("abc") + (conv("") if "w" in mode else conv("3"))
        await f.truncate(2)
        await f.seek(0)
        assert await f.read() == conv("ab")


async def test_flush_error_surfaces(data_dir: Path) -> None:
    """A write that the kernel refuses reaches the caller, as in CPython.

    The descriptor is swapped for a read-only one of the same file (dup2):
    the pwrite fails with EBADF, a real failed write, not a mock.
    """
    outcomes = []
    for name, opener in (("cpython", _sync_file), ("ours", _async_file)):
        path = data_dir / name
        f = await opener(path)
        read_only = os.open(path, os.O_RDONLY)
        os.dup2(read_only, f.fileno())
        os.close(read_only)
        await _maybe(f.write("never reaches the disk"))
        errors = []
        for call in (f.flush, f.close):
            try:
                await _maybe(call())
            except OSError as exc:
                errors.append((type(exc), exc.errno))
        outcomes.append((errors, f.closed, path.read_bytes()))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0][0] == (OSError, 9)


async def _sync_file(path: Path) -> Any:
    return open(path, "w")


async def _async_file(path: Path) -> Any:
    return await aiofastread.open(path, "w")


async def _maybe(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


# -- cancellation, concurrency, lifetime ----------------------------------------


class GatedExecutor(concurrent.futures.Executor):
    """Runs jobs on its own threads, holding them while the gate is shut."""

    def __init__(self) -> None:
        self._threads = concurrent.futures.ThreadPoolExecutor(2)
        self._open = threading.Event()
        self._open.set()
        self.submitted: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self._open.clear()
        self.submitted = asyncio.Event()
        return self.submitted

    def release(self) -> None:
        self._open.set()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if self.submitted is not None:
            self.submitted.set()  # pool.run submits from the loop thread
        return self._threads.submit(self._gated, fn, args, kwargs)

    def _gated(self, fn: Any, args: Any, kwargs: Any) -> Any:
        self._open.wait()
        return fn(*args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._open.set()
        self._threads.shutdown(wait=wait)


@pytest.fixture
def gated() -> Iterator[GatedExecutor]:
    executor = GatedExecutor()
    aiofastread.configure(fast_path=False)  # every read waits on the pool
    try:
        yield executor
    finally:
        aiofastread.configure(fast_path=True)
        executor.shutdown()


async def test_cancelled_read_completes_then_raises(data_dir: Path, gated: GatedExecutor) -> None:
    path = data_dir / "lines.txt"
    lines = write_lines(path, 100)
    async with aiofastread.open(path, executor=gated) as f:
        submitted = gated.hold()
        read = asyncio.create_task(f.readline())
        await submitted.wait()
        read.cancel()
        behind = asyncio.create_task(f.tell())  # queued behind the file lock
        gated.release()
        with pytest.raises(asyncio.CancelledError):
            await read
        # The C readline was not cut midway: it consumed its line whole, and
        # the file is consistent for whoever comes next.
        assert await behind == len(lines[0].encode())
        assert await f.readline() == lines[1]


async def test_cancelled_write_is_done_when_cancellation_is_seen(
    data_dir: Path, gated: GatedExecutor
) -> None:
    path = data_dir / "out.bin"
    async with aiofastread.open(path, "wb", buffering=0, executor=gated) as f:
        submitted = gated.hold()
        write = asyncio.create_task(f.write(b"payload"))
        await submitted.wait()
        write.cancel()
        gated.release()
        with pytest.raises(asyncio.CancelledError):
            await write
        assert path.read_bytes() == b"payload"
        assert await f.tell() == 7


async def test_concurrent_calls_are_serialized(data_dir: Path, gated: GatedExecutor) -> None:
    path = data_dir / "lines.txt"
    lines = write_lines(path, 50)
    async with aiofastread.open(path, executor=gated) as f:
        got = await asyncio.gather(*(f.readline() for _ in range(50)))
    assert got == lines


async def test_close_while_reads_wait(data_dir: Path, gated: GatedExecutor) -> None:
    path = data_dir / "lines.txt"
    write_lines(path, 10)
    before = open_fd_count()
    f = await aiofastread.open(path, executor=gated)
    submitted = gated.hold()
    read = asyncio.create_task(f.read())
    await submitted.wait()
    close = asyncio.create_task(f.close())
    gated.release()
    assert len(await read) > 0
    await close
    assert f.closed
    assert open_fd_count() == before
    with pytest.raises(ValueError, match="closed file"):
        await f.read()


async def test_unclosed_file_warns_and_flushes(
    data_dir: Path, no_blocking_on_loop: BlockBuster
) -> None:
    """As with CPython: the finalizer warns, flushes and closes. Synchronously,
    on whatever thread drops the last reference (here the loop's): the one
    place a forgotten close() makes the library block the loop."""
    path = data_dir / "forgotten.txt"
    before = open_fd_count()
    f = await aiofastread.open(path, "w")
    await f.write("buffered")
    with (  # noqa: PT031
        blocking_on_purpose(no_blocking_on_loop),
        pytest.warns(ResourceWarning, match="unclosed file"),
    ):
        del f  # the last reference: finalized right here
        gc.collect()
    assert path.read_text() == "buffered"
    assert open_fd_count() == before


async def test_detached_stream_works_synchronously(
    data_dir: Path, no_blocking_on_loop: BlockBuster
) -> None:
    path = data_dir / "f.txt"
    path.write_text("abc\ndef\n")
    f = await aiofastread.open(path, "r+")
    assert await f.readline() == "abc\n"
    buffer = f.detach()
    with pytest.raises(ValueError, match="detached"):
        await f.read()
    # Outside any greenlet the raw makes plain blocking calls (the test
    # asks for them, on the loop thread: the guard is paused for them).
    theirs = open(path, "r+")  # noqa: SIM115
    theirs.readline()
    their_buffer = theirs.detach()
    with blocking_on_purpose(no_blocking_on_loop):
        assert buffer.tell() == their_buffer.tell()
        their_buffer.close()
        buffer.seek(0)
        assert buffer.read() == b"abc\ndef\n"
        buffer.write(b"more")
        buffer.close()
    assert path.read_bytes() == b"abc\ndef\nmore"


async def test_non_regular_files_are_wrapped(data_dir: Path) -> None:
    """A pipe has no offsets: aiofiles' thread-pool wrapping, same results."""
    read_fd, write_fd = os.pipe()
    async with aiofastread.open(read_fd, "rb") as r, aiofastread.open(write_fd, "wb") as w:
        assert isinstance(r._runner, PoolRunner)
        assert isinstance(r, aiofastread.threadpool.AsyncBufferedReader)
        await w.write(b"through the pipe\n")
        await w.flush()
        assert await r.readline() == b"through the pipe\n"


async def test_sync_properties(data_dir: Path) -> None:
    path = data_dir / "f.txt"
    path.write_text("x")
    async with aiofastread.open(path, "r+", encoding="latin-1", errors="replace") as f:
        assert f.name == str(path)
        assert f.mode == "r+"
        assert (f.encoding, f.errors, f.line_buffering) == ("latin-1", "replace", False)
        assert isinstance(f.buffer, io.BufferedRandom)
        assert f.fileno() > 2
        assert await f.readable()
        assert await f.writable()
        assert await f.seekable()
        assert not await f.isatty()
        assert "wrapping" in repr(f)
    assert f.closed
    with pytest.raises(ValueError, match="closed"):
        f.fileno()


# -- invariant 1 -------------------------------------------------------------------


@pytest.mark.parametrize("cached", [True, False])
async def test_bridged_calls_never_block_the_loop(data_dir: Path, cached: bool) -> None:
    """Under tests/conftest.py's blockbuster guard (every test is)."""
    path = data_dir / "lines.txt"
    lines = write_lines(path, 20_000)
    (warm if cached else evict)(path)
    async with aiofastread.open(path, "r+") as f:
        assert [line async for line in f] == lines
        await f.seek(0)
        assert await f.read(10) == lines[0][:10]
        await f.seek(0, os.SEEK_END)
        await f.write("appended\n")
        await f.flush()
        await f.truncate(100)
    async with aiofastread.open(path, "ab", buffering=0) as g:
        await g.write(b"more")
    async with aiofastread.open(path) as h:
        assert len((await h.read()).encode()) == 104


# -- worker greenlets -------------------------------------------------------------


async def test_calls_reuse_parked_workers(data_dir: Path) -> None:
    """Each call runs in a parked worker of this thread (a new greenlet per
    call paid a fresh CPython data stack), also after a call that raised."""
    from aiofastread._bridge import driver

    path = data_dir / "w.txt"
    path.write_text("line\n" * 100)
    driver._WORKERS.idle.clear()
    async with aiofastread.open(path, "r+") as f:
        await f.read(3)
        assert len(driver._WORKERS.idle) == 1
        worker = driver._WORKERS.idle[0]
        with pytest.raises(io.UnsupportedOperation):
            await f.seek(1, 1)  # a text file refuses a nonzero relative seek
        assert driver._WORKERS.idle == [worker]
        assert worker.value is None  # holds nothing while parked
        assert worker.error is None
        assert await f.read(2) == "e\n"
        assert driver._WORKERS.idle == [worker]
