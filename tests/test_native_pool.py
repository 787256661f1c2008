"""The native miss pool: misses read on C threads, finished through a per-loop eventfd.

Runs on every backend: only "native" may use the C threads; the others must
leave them alone. Reads that must stay blocked while a test looks at them
are reads of a FUSE file whose server process is stopped (SIGSTOP), so
nothing here waits on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import aiofastread
from aiofastread import _native, _native_pool, _pool, _read
from tests.conftest import evict, make_file, open_fd_count, until
from tests.test_reliability_fs import fuse_root  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(not _native.HAS_NATIVE_POOL, reason="no compiled native module")

SIZE = 3 << 20


def native_submitted() -> int:
    return _native_pool.counters()[0]


def native_in_flight() -> int:
    return _native_pool.counters()[1]


def native_pool() -> _native_pool.NativeMissPool:
    pool = _pool.default_pool().native
    assert pool is not None
    return pool


def python_submissions() -> int:
    return _pool.default_pool()._submissions


def eventfds() -> int:
    """Our ports' descriptors: eventfds open in this process."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventfd]":
                count += 1
    return count


@contextlib.contextmanager
def stopped(mountpoint: Path) -> Iterator[None]:
    """The FUSE server serving ``mountpoint`` stopped: its reads block."""
    pid = _fuse_server_pid(mountpoint)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _fuse_server_pid(mountpoint: Path) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"tests.fuse_faulty" in argv and os.fsencode(str(mountpoint)) in argv:
            return int(entry)
    raise AssertionError(f"no FUSE server process for {mountpoint}")


@pytest.fixture
def native_only(backend: str) -> None:
    if backend != "native":
        pytest.skip("the native pool is only used by the native backend")


@pytest.fixture
def cold(data_dir: Path) -> tuple[Path, bytes]:
    """A 1 MiB file on ext4, evicted: its reads miss."""
    path = data_dir / "cold"
    data = make_file(path, 1 << 20)
    evict(path)
    return path, data


@pytest.fixture
def one_slot() -> Iterator[None]:
    aiofastread.configure(max_in_flight=1)
    try:
        yield
    finally:
        aiofastread.configure(max_in_flight=_pool.DEFAULT_MAX_IN_FLIGHT)


def fuse_file(mountpoint: Path, name: str) -> Path:
    """A direct-I/O FUSE file: every read reaches the server (stoppable)."""
    path = mountpoint / f"direct-{name}"
    make_file(path, 1 << 20)
    return path


async def hold_the_only_slot(blocked: aiofastread.AsyncBufferedReader) -> asyncio.Future[bytes]:
    """Start a read of ``blocked`` (its server stopped) and wait until it is
    on a C thread, holding the one slot of ``one_slot``."""
    stuck = asyncio.ensure_future(blocked.read(4096))
    await until(lambda: native_in_flight() == 1, "the first read on a C thread")
    return stuck


def turn_until(loop: asyncio.AbstractEventLoop, condition: Callable[[], bool], what: str) -> None:
    """``until`` for a loop driven by hand (tests that close or fork it)."""
    loop.run_until_complete(until(condition, what))


async def test_misses_go_to_c_threads_only_on_the_native_backend(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "cold"
    data = make_file(path, SIZE)
    evict(path)
    rng = random.Random(7)
    # Random ranges, some crossing EOF, some at or past it.
    ranges = [
        (rng.randrange(SIZE + 4096), rng.choice([1, 4096, 16384, 100_000])) for _ in range(60)
    ]
    async with aiofastread.open(path, "rb") as f:
        native_before, python_before = native_submitted(), python_submissions()
        pooled_before = aiofastread.statistics().pool_reads
        got = await asyncio.gather(*(_read.read_at(f._h, o, n) for o, n in ranges))
        pooled = aiofastread.statistics().pool_reads - pooled_before
        native, python = native_submitted() - native_before, python_submissions() - python_before
    assert got == [data[o : o + n] for o, n in ranges]
    assert pooled > 0, "the file was evicted: some reads must miss"
    if backend == "native":
        assert (native, python) == (pooled, 0)
    else:
        assert (native, python) == (0, pooled)


async def test_configure_native_pool_false_uses_python_threads(
    cold: tuple[Path, bytes], native_only: None
) -> None:
    path, data = cold
    aiofastread.configure(native_pool=False)
    try:
        async with aiofastread.open(path, "rb") as f:
            native_before, python_before = native_submitted(), python_submissions()
            assert await f.read(65536) == data[:65536]  # a miss the C threads would take
            assert native_submitted() == native_before
            assert python_submissions() == python_before + 1
    finally:
        aiofastread.configure(native_pool=True)
    with pytest.raises(TypeError, match="native_pool must be a bool"):
        aiofastread.configure(native_pool=1)  # type: ignore[arg-type]


async def test_a_loop_holds_its_eventfd_only_while_reads_are_in_flight(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "cold"
    data = make_file(path, SIZE)
    evict(path)
    fds_before, eventfds_before = open_fd_count(), eventfds()
    async with aiofastread.open(path, "rb") as f:
        reads = [asyncio.ensure_future(_read.read_at(f._h, i * 65536, 65536)) for i in range(20)]
        await asyncio.sleep(0)  # the reads have started
        in_flight_ports = eventfds() - eventfds_before
        assert await asyncio.gather(*reads) == [
            data[i * 65536 : (i + 1) * 65536] for i in range(20)
        ]
    assert in_flight_ports == (1 if backend == "native" else 0)
    assert native_pool().port_of(asyncio.get_running_loop()) is None
    assert (open_fd_count(), eventfds()) == (fds_before, eventfds_before)


async def test_a_cancelled_read_frees_its_job_and_port(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    native_only: None,
) -> None:
    path = fuse_file(fuse_root, "cancel")
    fds_before = open_fd_count()
    async with aiofastread.open(path, "rb") as f:
        base = native_submitted()
        with stopped(fuse_root):
            task = asyncio.ensure_future(f.read(4096))
            await until(lambda: native_submitted() == base + 1, "the read reached a C thread")
            assert native_in_flight() == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert native_in_flight() == 1  # still blocked in the server
        await until(lambda: native_in_flight() == 0, "the C thread finished")
        await until(lambda: native_pool().port_of(asyncio.get_running_loop()) is None, "closed")
        # The position did not move: the cancelled read took nothing.
        assert await f.tell() == 0
    assert open_fd_count() == fds_before


def test_a_loop_closed_with_a_read_in_flight_leaks_nothing(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    native_only: None,
) -> None:
    path = fuse_file(fuse_root, "closed-loop")
    fds_before, eventfds_before = open_fd_count(), eventfds()
    loop = asyncio.new_event_loop()
    try:
        f = loop.run_until_complete(aiofastread.open(path, "rb"))
        base = native_submitted()
        with stopped(fuse_root):
            task = loop.create_task(f.read(4096))
            turn_until(loop, lambda: native_submitted() == base + 1, "the read on a C thread")
            assert native_in_flight() == 1
            assert eventfds() == eventfds_before + 1  # the loop's port
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
            loop.close()  # the read is still blocked in the server
    finally:
        loop.close()
    # The read finishes after its loop is gone; the C side frees its buffer
    # and, once Python has let go of the port, the eventfd.
    del loop, task
    gc.collect()
    asyncio.run(until(lambda: native_in_flight() == 0, "the C thread finished"))
    asyncio.run(f.close())
    assert (open_fd_count(), eventfds()) == (fds_before, eventfds_before)


async def test_one_in_flight_limit_covers_both_pools(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    cold: tuple[Path, bytes],
    one_slot: None,
    native_only: None,
) -> None:
    """A read on a C thread holds a slot of max_in_flight until its loop
    takes the result; a miss over the limit waits its turn (FIFO, with the
    Python pool's work), is handed the slot when that result is taken, and
    then runs on a C thread too."""
    cold_path, data = cold
    async with (
        aiofastread.open(fuse_file(fuse_root, "limit"), "rb") as blocked,
        aiofastread.open(cold_path, "rb") as f,
    ):
        base, python_base = native_submitted(), python_submissions()
        with stopped(fuse_root):
            stuck = await hold_the_only_slot(blocked)
            second = asyncio.ensure_future(_read.read_at(f._h, 8192, 16384))
            await until(lambda: aiofastread.statistics().pool_waiting == 1, "second waits")
            assert aiofastread.statistics().misses_in_flight == 1
            assert not second.done()
        assert len(await stuck) == 4096
        assert await second == data[8192 : 8192 + 16384]
        assert (native_submitted() - base, python_submissions() - python_base) == (2, 0)


async def test_a_close_waits_for_a_read_still_waiting_for_its_slot(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    cold: tuple[Path, bytes],
    one_slot: None,
    native_only: None,
) -> None:
    """A native read works on a dup taken when it gets its slot: a close
    issued while it still waits must not free the fd number before then
    (else the dup could be of a file opened meanwhile)."""
    cold_path, data = cold
    async with aiofastread.open(fuse_file(fuse_root, "close-wait"), "rb") as blocked:
        f = await aiofastread.open(cold_path, "rb")
        with stopped(fuse_root):
            stuck = await hold_the_only_slot(blocked)
            waiting = asyncio.ensure_future(_read.read_at(f._h, 8192, 16384))
            await until(lambda: aiofastread.statistics().pool_waiting == 1, "read waits")
            closing = asyncio.ensure_future(f.close())
            await until(lambda: f._h.closing, "close started")
            assert os.fstat(f._h.fd).st_ino == cold_path.stat().st_ino  # not closed yet
        assert len(await stuck) == 4096
        assert await waiting == data[8192 : 8192 + 16384]
        await closing


@pytest.mark.filterwarnings("ignore:.*fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_a_forked_child_gets_a_fresh_native_pool(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    cold: tuple[Path, bytes],
    native_only: None,
) -> None:
    """Fork while a C thread is blocked in a read: the child starts with an
    empty pool (none of the parent's threads or jobs) that serves misses."""
    blocked_path = fuse_file(fuse_root, "fork")
    cold_path, data = cold

    async def child_reads() -> bool:
        before = native_submitted()
        async with aiofastread.open(cold_path, "rb") as f:
            ok = await f.read(65536) == data[:65536]
        return ok and native_submitted() > before and native_in_flight() == 0

    loop = asyncio.new_event_loop()
    try:
        f = loop.run_until_complete(aiofastread.open(blocked_path, "rb"))
        with stopped(fuse_root):
            task = loop.create_task(f.read(4096))
            turn_until(loop, lambda: native_in_flight() == 1, "the read on a C thread")
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 2
                try:
                    fresh = native_in_flight() == 0
                    evict(cold_path)
                    code = 0 if fresh and asyncio.run(child_reads()) else 1
                finally:
                    os._exit(code)
        # The child's exit closes its copies of the FUSE descriptors: the
        # server must be running for that (and the child's pool is its own).
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(loop.run_until_complete(task)) == 4096  # the parent's read
        loop.run_until_complete(f.close())
    finally:
        loop.close()


def test_the_native_flag_follows_the_backend(backend: str) -> None:
    assert (backend == "native") == _native.backend.native_pool


class _NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop without add_reader, as Windows' proactor loop is."""

    def add_reader(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_a_loop_without_add_reader_uses_python_threads(
    cold: tuple[Path, bytes], native_only: None
) -> None:
    path, data = cold
    fds_before, eventfds_before = open_fd_count(), eventfds()

    async def read_all() -> tuple[bytes, int, int]:
        native_before, python_before = native_submitted(), python_submissions()
        async with aiofastread.open(path, "rb") as f:
            got = await f.read(65536)
        return got, native_submitted() - native_before, python_submissions() - python_before

    loop = _NoReaderLoop()
    try:
        got, native, python = loop.run_until_complete(read_all())
    finally:
        loop.close()
    assert got == data[:65536]
    assert native == 0
    assert python >= 2  # open, the miss (a read-only local file's close may be inline)
    assert (open_fd_count(), eventfds()) == (fds_before, eventfds_before)


async def test_native_reads_give_slots_back_to_their_own_pool(
    cold: tuple[Path, bytes], native_only: None
) -> None:
    # Each pool hands its own limiter to its native pool: building another
    # (as tests and embedders may) must not take over the default pool's
    # slot accounting (it did while the C pool called back a module global).
    other = _pool.MissPool(with_native_pool=True)
    path, data = cold
    async with aiofastread.open(path, "rb") as f:
        base = native_submitted()
        assert await _read.read_at(f._h, 0, 4096) == data[:4096]
        assert native_submitted() == base + 1
    assert _pool.default_pool().statistics().in_flight == 0
    assert other.statistics().in_flight == 0


def c_threads() -> int:
    """Worker threads the C pool has now (afr_pool_stats)."""
    lib, ffi = _native_pool._lib, _native_pool._ffi
    submitted, in_flight, threads = (
        ffi.new("unsigned long long *"),
        ffi.new("long *"),
        ffi.new("int *"),
    )
    lib.afr_pool_stats(submitted, in_flight, threads)
    return int(threads[0])


async def test_idle_workers_above_a_lowered_count_are_woken_and_leave(
    data_dir: Path, backend: str
) -> None:
    """Idle workers sleep on the pool's semaphore: lowering the count posts
    one wake-up per idle worker, those above the count exit, and the ones
    left still take every new job."""
    if backend != "native":
        pytest.skip("only the native backend has C workers")
    path = data_dir / "cold"
    data = make_file(path, SIZE)
    ranges = [(o, 65536) for o in range(0, SIZE, 65536)]
    try:
        evict(path)
        async with aiofastread.open(path, "rb") as f:
            got = await asyncio.gather(*(_read.read_at(f._h, o, n) for o, n in ranges))
        assert got == [data[o : o + n] for o, n in ranges]
        await until(lambda: native_in_flight() == 0, "every job taken back")
        assert c_threads() >= 2, "concurrent misses start more than one worker"
        native_pool().configure(1, None)
        await until(lambda: c_threads() == 1, "idle workers above the count exit")
        evict(path)
        async with aiofastread.open(path, "rb") as f:
            before = native_submitted()
            got = await asyncio.gather(*(_read.read_at(f._h, o, n) for o, n in ranges[:8]))
            assert native_submitted() > before, "the file was evicted: reads must miss"
        assert got == [data[o : o + n] for o, n in ranges[:8]]
        assert c_threads() == 1
    finally:
        native_pool().configure(16, None)  # the C pool's own default
