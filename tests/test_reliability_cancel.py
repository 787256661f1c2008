"""Cancellation, close and concurrent use of one file: nothing leaks, nothing
is read twice or lost, no thread ever touches a closed (or reused) fd.

Operations are held "in flight" deterministically by ``StepExecutor`` (an
``executor=`` whose jobs wait until the test releases them, one by one), so
each test cancels at a known await point. Waiting for a pool thread is done
by a bounded number of loop turns or a blocking wait in the loop's default
executor; never by sleeping.

What a cancelled operation does (docs/migrating.md, docs/reliability.md):
* "rb": the position is unchanged, as if the call never ran.
* every other mode (CPython's io stack, ``_bridge``): the call completes with
  the file lock held, then CancelledError is raised; its data is consumed
  (reads) or written (writes). Calls still waiting for the lock never run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import io
import os
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from tests.conftest import evict, open_fd_count, until, warm

try:  # uvloop opens two process-wide fds with its first loop: not our leak
    import uvloop

    uvloop.new_event_loop().close()
except ImportError:  # pragma: no cover
    pass


class StepExecutor(concurrent.futures.Executor):
    """Jobs are numbered in submission order and each waits for its own gate.

    ``auto`` lets jobs run as they come (setup); ``hold()`` gates new ones.
    """

    def __init__(self, workers: int = 8) -> None:
        self._threads = concurrent.futures.ThreadPoolExecutor(workers)
        self._lock = threading.Lock()
        self.gates: list[threading.Event] = []
        self.started: list[threading.Event] = []
        self.auto = True

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            gate, started = threading.Event(), threading.Event()
            if self.auto:
                gate.set()
            self.gates.append(gate)
            self.started.append(started)
        return self._threads.submit(self._run, gate, started, fn, args, kwargs)

    @staticmethod
    def _run(
        gate: threading.Event, started: threading.Event, fn: Any, args: Any, kwargs: Any
    ) -> Any:
        started.set()
        gate.wait(30)
        return fn(*args, **kwargs)

    def hold(self) -> int:
        """Gate every job submitted from now on; returns the next job number."""
        with self._lock:
            self.auto = False
            return len(self.gates)

    def release(self, index: int | None = None) -> None:
        with self._lock:
            if index is None:
                self.auto = True
                for gate in self.gates:
                    gate.set()
            else:
                self.gates[index].set()

    @property
    def submitted(self) -> int:
        return len(self.gates)

    async def running(self, index: int) -> None:
        """Wait until job ``index`` was submitted and sits in its thread."""
        await until(lambda: self.submitted > index, f"job {index} submitted")
        started = self.started[index]
        ok = await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        assert ok, f"job {index} never started"

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()
        self._threads.shutdown(wait=wait)


@pytest.fixture
def steps() -> Iterator[StepExecutor]:
    executor = StepExecutor()
    aiofastread.configure(fast_path=False)  # every read is a pool job
    try:
        yield executor
    finally:
        aiofastread.configure(fast_path=True)
        executor.shutdown()


async def process_is_clean(fds_before: int) -> None:
    """No pool work left, no descriptor leaked, no ResourceWarning pending."""
    await until(lambda: aiofastread.statistics().misses_in_flight == 0, "pool drained")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert open_fd_count() == fds_before, "file descriptors leaked"


async def expect_cancelled(task: Awaitable[Any]) -> None:
    with pytest.raises(asyncio.CancelledError):
        await task


def lines_file(path: Path, long_line: int = 150_000) -> bytes:
    """A long first line (several pool windows), then short ones."""
    data = b"L" * long_line + b"\n" + b"".join(b"line %d\n" % i for i in range(2000))
    path.write_bytes(data)
    return data


# -- 1. cancellation at every await point ----------------------------------------

OPEN_MODES = [("rb", -1), ("r", -1), ("r+b", -1), ("rb", 0), ("w", -1), ("ab", -1)]


@pytest.mark.parametrize(("mode", "buffering"), OPEN_MODES)
async def test_cancelled_open_leaks_nothing(
    tmp_path: Path, steps: StepExecutor, mode: str, buffering: int
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"content\n")
    before = open_fd_count()
    first = steps.hold()
    opener = asyncio.ensure_future(aiofastread.open(path, mode, buffering, executor=steps))
    await steps.running(first)
    opener.cancel()
    await expect_cancelled(opener)
    steps.release()  # the open completes in its thread, which closes it again
    await process_is_clean(before)
    assert path.read_bytes() == (b"" if mode == "w" else b"content\n")


async def test_cancelled_open_blocked_on_a_fifo_leaks_nothing(tmp_path: Path) -> None:
    """A real blocking open (a FIFO with no writer yet): the awaiter is
    cancelled, the thread stays in open(2); once a writer comes the thread
    closes what it opened."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = open_fd_count()
    in_flight = aiofastread.statistics().misses_in_flight
    opener = asyncio.ensure_future(aiofastread.open(fifo, "rb"))
    await until(lambda: aiofastread.statistics().misses_in_flight > in_flight, "open started")
    opener.cancel()
    await expect_cancelled(opener)
    writer = os.open(fifo, os.O_RDWR)  # a writer: the blocked open returns
    try:
        await process_is_clean(before + 1)
    finally:
        os.close(writer)


def _read_ops() -> list[
    tuple[str, Callable[[Any], Awaitable[Any]], Callable[[io.BufferedReader], Any]]
]:
    async def anext_(f: Any) -> Any:
        return await f.__anext__()

    async def readinto(f: Any) -> Any:
        buf = bytearray(100_000)
        n = await f.readinto(buf)
        return bytes(buf[:n])

    def sync_readinto(g: io.BufferedReader) -> bytes:
        buf = bytearray(100_000)
        return bytes(buf[: g.readinto(buf)])

    return [
        ("read(n)", lambda f: f.read(100_000), lambda g: g.read(100_000)),
        ("read()", lambda f: f.read(), lambda g: g.read()),
        ("read1", lambda f: f.read1(5000), lambda g: g.read(5000)),
        ("readinto", readinto, sync_readinto),
        ("readline", lambda f: f.readline(), lambda g: g.readline()),
        ("readline(limit)", lambda f: f.readline(140_000), lambda g: g.readline(140_000)),
        ("readlines", lambda f: f.readlines(), lambda g: g.readlines()),
        ("anext", anext_, lambda g: next(g)),
        ("seek(END)", lambda f: f.seek(-10, os.SEEK_END), lambda g: g.seek(-10, os.SEEK_END)),
    ]


READ_OPS = _read_ops()


@pytest.mark.parametrize("op", READ_OPS, ids=[op[0] for op in READ_OPS])
async def test_rb_cancelled_at_each_pool_job_leaves_position_unchanged(
    tmp_path: Path, steps: StepExecutor, op: Any
) -> None:
    """For each pool job the operation makes, cancel while that job runs:
    the position stays where it was, and the operation then returns what
    CPython's does from there (nothing lost, nothing read twice)."""
    _, call, sync_call = op
    path = tmp_path / "f"
    lines_file(path)
    with open(path, "rb") as g:
        g.seek(10)
        expected = sync_call(g)
    before = open_fd_count()
    async with aiofastread.open(path, "rb", executor=steps) as f:
        await f.seek(10)
        first = steps.submitted
        assert await call(f) == expected
        jobs = steps.submitted - first
    assert jobs >= 1
    for k in range(jobs):
        async with aiofastread.open(path, "rb", executor=steps) as f:
            await f.seek(10)
            base = steps.hold()
            task = asyncio.ensure_future(call(f))
            for j in range(k):
                await steps.running(base + j)
                steps.release(base + j)
            await steps.running(base + k)
            task.cancel()
            steps.release()
            await expect_cancelled(task)
            assert await f.tell() == 10, f"cancelled at job {k} of {jobs}"
            assert await call(f) == expected
    await process_is_clean(before)


async def test_rb_read_cancelled_while_waiting_for_the_file_lock(
    data_dir: Path, fd_leak_check: None
) -> None:
    """A read that would be an inline hit, queued behind an operation in
    the pool, is cancelled: it never runs and the position is unchanged."""
    path = data_dir / "f"
    data = os.urandom(100_000)
    path.write_bytes(data)
    steps = StepExecutor()
    try:
        async with aiofastread.open(path, "rb", executor=steps) as f:
            warm(path)
            assert await f.read(10) == data[:10]
            job = steps.hold()
            seeker = asyncio.ensure_future(f.seek(-100, os.SEEK_END))  # pool, holds the lock
            await steps.running(job)
            reader = asyncio.ensure_future(f.read(1000))
            await asyncio.sleep(0)  # the reader is now waiting for the lock
            reader.cancel()
            await expect_cancelled(reader)
            steps.release()
            assert await seeker == len(data) - 100
            assert await f.tell() == len(data) - 100
            assert await f.read() == data[-100:]
    finally:
        steps.shutdown()


async def test_rb_cancelled_close_still_closes(tmp_path: Path, steps: StepExecutor) -> None:
    path = tmp_path / "f"
    data = os.urandom(10_000)
    path.write_bytes(data)
    before = open_fd_count()
    f = await aiofastread.open(path, "rb", executor=steps)
    job = steps.hold()
    reader = asyncio.ensure_future(f.read(5000))
    await steps.running(job)
    closer = asyncio.ensure_future(f.close())
    await asyncio.sleep(0)
    closer.cancel()
    await expect_cancelled(closer)
    assert f.closed
    steps.release()
    assert await reader == data[:5000]  # it was running: it finishes
    await process_is_clean(before)


BRIDGED_READS = [("r", -1), ("r+b", -1), ("rb", 0), ("r+", -1)]


@pytest.mark.parametrize(("mode", "buffering"), BRIDGED_READS)
async def test_bridged_cancelled_read_completes_and_lock_waiters_never_run(
    tmp_path: Path, steps: StepExecutor, mode: str, buffering: int
) -> None:
    """Bridged modes: the cancelled readline completes (its line is consumed,
    as documented), a readline queued behind it and cancelled never runs;
    the next readline returns the following line: nothing read twice."""
    path = tmp_path / "f"
    lines = [b"first line\n", b"second line\n", b"third line\n"]
    path.write_bytes(b"".join(lines))
    before = open_fd_count()
    async with aiofastread.open(path, mode, buffering, executor=steps) as f:
        job = steps.hold()
        running = asyncio.ensure_future(f.readline())
        await steps.running(job)
        queued = asyncio.ensure_future(f.readline())
        await asyncio.sleep(0)
        running.cancel()
        queued.cancel()
        steps.release()
        await expect_cancelled(running)
        await expect_cancelled(queued)
        assert await f.tell() == len(lines[0])
        second = await f.readline()
        assert second == (lines[1].decode() if "b" not in mode else lines[1])
    await process_is_clean(before)


@pytest.mark.parametrize(("mode", "buffering"), [("w", -1), ("wb", -1), ("a", -1), ("ab", 0)])
async def test_bridged_cancelled_write_flush_close_have_done_their_work(
    tmp_path: Path, steps: StepExecutor, mode: str, buffering: int
) -> None:
    """A write, flush or close cancelled while its pool job runs still
    completes: every byte is written exactly once, the fd is closed."""
    path = tmp_path / "f"
    text = "b" not in mode
    # big: more than any write buffer (the bridge's 8 KiB, the writer's
    # 256 KiB), so its write makes a pool job in every mode.
    big, small, tail = b"big\n" * 80000, b"small\n", b"tail\n"
    before = open_fd_count()
    f = await aiofastread.open(path, mode, buffering, executor=steps)

    def arg(data: bytes) -> Any:
        return data.decode() if text else data

    # (operation, whether it makes a pool job): buffered small writes stay
    # in memory until flush/close; unbuffered ones write at once.
    plan: list[tuple[Callable[[], Awaitable[Any]], bool]] = [
        (lambda: f.write(arg(big)), True),
        (lambda: f.write(arg(small)), buffering == 0),
        (f.flush, buffering != 0),
        (lambda: f.write(arg(tail)), buffering == 0),
        (f.close, buffering != 0),
    ]
    for call, makes_job in plan:
        job = steps.hold()
        task = asyncio.ensure_future(call())
        if makes_job:
            await steps.running(job)
            task.cancel()
            steps.release()
            await expect_cancelled(task)
        else:
            steps.release()
            await task
    if buffering == 0:
        await f.close()
    assert f.closed
    assert path.read_bytes() == big + small + tail
    await process_is_clean(before)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup")
async def test_task_group_cancelling_1000_readers_leaves_the_process_clean(
    data_dir: Path,
) -> None:
    """1000 tasks, each with its own file object, reading warm and evicted
    files; their task group is cancelled while ~all are mid-read (held in
    the pool). Afterwards: every fd closed, no ResourceWarning, pool empty,
    and every read that returned got the right bytes. Before the cancel,
    reads of warm files were inline and of evicted ones in the pool; at the
    cancel every reader has one read held in the pool."""
    files = []
    for i in range(20):
        path = data_dir / f"f{i}"
        data = os.urandom(64 << 10)
        path.write_bytes(data)
        files.append((path, data))
    for path, _ in files[::2]:
        evict(path)
    for path, _ in files[1::2]:
        warm(path)
    steps = StepExecutor(workers=16)
    before = open_fd_count()
    opened = 0
    all_open, go = asyncio.Event(), asyncio.Event()
    wrong: list[str] = []

    async def reader(i: int) -> None:
        nonlocal opened
        path, data = files[i % len(files)]
        async with aiofastread.open(path, "rb" if i % 2 else "r+b", executor=steps) as f:
            offset = 0
            while True:
                chunk = await f.read(4096)
                if chunk != data[offset : offset + 4096]:
                    wrong.append(f"reader {i} at {offset}")
                offset += len(chunk)
                if offset >= len(data):
                    await f.seek(0)
                    offset = 0
                if not go.is_set():
                    opened += 1
                    if opened == 1000:
                        all_open.set()
                    await go.wait()
                await asyncio.sleep(0)  # inline hits never suspend by themselves

    async def stopper() -> None:
        await all_open.wait()
        base = steps.hold()  # from now on every pool job is held
        aiofastread.configure(fast_path=False)  # and every read is one
        go.set()
        try:
            # Every "rb" reader has a read held in the pool ("r+b" ones may
            # be served from their buffer, or be held too).
            await until(lambda: steps.submitted >= base + 500, "reads in flight", turns=100)
        finally:
            asyncio.get_running_loop().call_soon(steps.release)
        raise RuntimeError("stop")

    async def run_group() -> None:
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
            for i in range(1000):
                group.create_task(reader(i))
            group.create_task(stopper())

    try:
        with pytest.raises(BaseExceptionGroup) as info:  # noqa: F821 - 3.11+
            await run_group()
        assert [type(e) for e in info.value.exceptions] == [RuntimeError]
        assert opened == 1000
        assert wrong == []
        await process_is_clean(before)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    finally:
        aiofastread.configure(fast_path=True)
        steps.shutdown()


# -- 2. fd lifetime ----------------------------------------------------------------


def fd_target(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("use_async_with", [False, True], ids=["close", "async-with"])
async def test_rb_close_with_misses_in_flight_from_other_tasks(
    tmp_path: Path, steps: StepExecutor, use_async_with: bool
) -> None:
    path = tmp_path / "f"
    data = os.urandom(200_000)
    path.write_bytes(data)
    before = open_fd_count()
    f = await aiofastread.open(path, "rb", executor=steps)
    fd = f.fileno()
    base = steps.hold()
    preads = [asyncio.ensure_future(f.pread(1000, off)) for off in (0, 50_000, 150_000)]
    reader = asyncio.ensure_future(f.read(20_000))  # holds the position lock
    for j in range(4):
        await steps.running(base + j)
    queued = asyncio.ensure_future(f.read(10))  # waits for the lock

    async def closing() -> None:
        if use_async_with:
            async with f:
                pass
        else:
            await f.close()

    closer = asyncio.ensure_future(closing())
    await asyncio.sleep(0)
    assert f.closed
    assert fd_target(fd) == str(path), "closed under running threads"
    with pytest.raises(ValueError, match=r"^read of closed file$"):
        await f.read(1)
    with pytest.raises(ValueError, match=r"^read of closed file$"):
        await f.pread(1, 0)
    steps.release()
    assert [await p for p in preads] == [data[o : o + 1000] for o in (0, 50_000, 150_000)]
    assert await reader == data[:20_000]
    with pytest.raises(ValueError, match=r"^read of closed file$"):
        await queued  # CPython's answer for a read after close
    await closer
    assert fd_target(fd) != str(path)
    await process_is_clean(before)


@pytest.mark.parametrize(("mode", "buffering"), [("rb", -1), ("r", -1), ("r+b", -1), ("rb", 0)])
async def test_new_file_reusing_no_fd_of_a_closing_one(
    tmp_path: Path, steps: StepExecutor, mode: str, buffering: int
) -> None:
    """File A has a read in flight (held) and is closed (deferred); file B
    is opened: it must get another fd (A's is not closed yet), and A's read
    returns A's bytes, B's reads B's."""
    a_path, b_path = tmp_path / "a", tmp_path / "b"
    a_data, b_data = b"A" * 100_000, b"B" * 100_000
    a_path.write_bytes(a_data)
    b_path.write_bytes(b_data)
    before = open_fd_count()
    a = await aiofastread.open(a_path, mode, buffering, executor=steps)
    a_fd = a.fileno()
    job = steps.hold()
    a_read = asyncio.ensure_future(a.read(50_000))
    await steps.running(job)
    a_close = asyncio.ensure_future(a.close())
    await asyncio.sleep(0)
    b = await aiofastread.open(b_path, mode, buffering)  # our own pool: not held
    assert b.fileno() != a_fd
    assert fd_target(a_fd) == str(a_path)
    steps.release()
    assert await a_read == (a_data[:50_000] if "b" in mode else a_data[:50_000].decode())
    await a_close
    b_read = await b.read()
    assert b_read == (b_data if "b" in mode else b_data.decode())
    await b.close()
    await process_is_clean(before)


async def test_bridged_close_while_a_read_runs_lets_it_finish(
    tmp_path: Path, steps: StepExecutor
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x\n" * 50_000)
    before = open_fd_count()
    f = await aiofastread.open(path, "r", executor=steps)
    fd = f.fileno()
    job = steps.hold()
    reader = asyncio.ensure_future(f.read())
    await steps.running(job)
    closer = asyncio.ensure_future(f.close())
    after = asyncio.ensure_future(f.readline())  # queued behind close
    await asyncio.sleep(0)
    assert fd_target(fd) == str(path)
    steps.release()
    assert await reader == "x\n" * 50_000
    await closer
    with pytest.raises(ValueError, match=r"^I/O operation on closed file\.$"):
        await after
    await process_is_clean(before)


# -- 3. one file, many tasks -----------------------------------------------------


@pytest.mark.parametrize("cache", ["warm", "cold"])
@pytest.mark.parametrize(("mode", "buffering"), [("rb", -1), ("r+b", -1), ("rb", 0)])
async def test_fifty_tasks_read_each_byte_exactly_once(
    data_dir: Path, cache: str, mode: str, buffering: int
) -> None:
    path = data_dir / "f"
    data = os.urandom(50 * 3000 + 123)
    path.write_bytes(data)
    (warm if cache == "warm" else evict)(path)
    async with aiofastread.open(path, mode, buffering) as f:
        chunks = await asyncio.gather(*(f.read(3000) for _ in range(51)))
        assert await f.read() == b""
    assert sorted(chunks) == sorted(data[i : i + 3000] for i in range(0, len(data), 3000))
    assert sum(map(len, chunks)) == len(data)


@pytest.mark.parametrize(("mode", "buffering"), [("rb", -1), ("r", -1), ("r+b", -1)])
async def test_fifty_tasks_iterating_lines_see_each_line_once(
    data_dir: Path, mode: str, buffering: int
) -> None:
    path = data_dir / "f"
    lines = [b"line %05d %s\n" % (i, b"x" * (i % 300)) for i in range(5000)]
    path.write_bytes(b"".join(lines))
    evict(path)
    async with aiofastread.open(path, mode, buffering) as f:

        async def drain() -> list[Any]:
            return [line async for line in f]

        got = await asyncio.gather(*(drain() for _ in range(50)))
    flat = [line if isinstance(line, bytes) else line.encode() for part in got for line in part]
    assert sorted(flat) == sorted(lines)
    for part in got:  # each task saw its lines in file order
        assert part == sorted(part)


@pytest.mark.parametrize(
    ("mode", "buffering"), [("wb", -1), ("ab", -1), ("r+b", -1), ("w", -1), ("wb", 0)]
)
async def test_fifty_tasks_writing_records_never_interleave(
    tmp_path: Path, mode: str, buffering: int
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    records = [(b"%02d" % i) * 2500 + b"\n" for i in range(50)]
    async with aiofastread.open(path, mode, buffering) as f:
        text = "b" not in mode
        await asyncio.gather(*(f.write(r.decode() if text else r) for r in records))
    written = path.read_bytes()
    assert len(written) == sum(map(len, records))
    assert sorted(written.splitlines(keepends=True)) == sorted(records)


async def test_pread_runs_in_parallel_with_itself_and_positional_reads(
    tmp_path: Path, steps: StepExecutor
) -> None:
    """Three preads and a read all sit in pool threads at the same time:
    pread does not take the position lock."""
    path = tmp_path / "f"
    data = os.urandom(100_000)
    path.write_bytes(data)
    async with aiofastread.open(path, "rb", executor=steps) as f:
        base = steps.hold()
        reader = asyncio.ensure_future(f.read(1000))
        preads = [asyncio.ensure_future(f.pread(100, o)) for o in (10, 20_000, 90_000)]
        for j in range(4):
            await steps.running(base + j)  # all four running at once
        steps.release()
        assert await reader == data[:1000]
        assert [await p for p in preads] == [data[o : o + 100] for o in (10, 20_000, 90_000)]
        assert await f.tell() == 1000
