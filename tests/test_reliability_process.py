"""Process events: loops closed with work pending, several loops in several
threads, fork, interpreter exit with pool work pending.

These tests drive their own event loops (plain functions, not coroutines),
so each runs once per read backend; where a loop matters, both asyncio and
uvloop are exercised inside the test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread import _native
from tests.conftest import open_fd_count

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None

LOOP_FACTORIES: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
if uvloop is not None:
    LOOP_FACTORIES.append(uvloop.new_event_loop)
    uvloop.new_event_loop().close()  # its process-wide fds exist before we count


class HeldExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs jobs only once ``gate`` is set; ``started`` counts jobs running."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def held() -> Any:
            self.started.release()
            self.gate.wait(30)
            return fn(*args, **kwargs)

        return super().submit(held)


@pytest.fixture
def held() -> Iterator[HeldExecutor]:
    executor = HeldExecutor()
    aiofastread.configure(fast_path=False)  # every read is a pool job
    try:
        yield executor
    finally:
        aiofastread.configure(fast_path=True)
        executor.gate.set()
        executor.shutdown(wait=True)


def wait_pool_drained() -> None:
    """Until the default pool has nothing in flight: a bounded number of
    turns of a fresh event loop (the pool's threads run meanwhile)."""

    async def poll() -> bool:
        for _ in range(200_000):
            if aiofastread.statistics().misses_in_flight == 0:
                return True
            await asyncio.sleep(0)
        return False

    assert asyncio.run(poll()), f"pool still busy: {aiofastread.statistics()}"


# -- loop closed with operations pending -----------------------------------------


@pytest.mark.parametrize("factory", LOOP_FACTORIES, ids=lambda f: f.__module__.split(".")[0])
@pytest.mark.parametrize("mode", ["rb", "r"])
def test_loop_closed_with_a_read_in_flight(
    tmp_path: Path, held: HeldExecutor, factory: Callable[[], asyncio.AbstractEventLoop], mode: str
) -> None:
    """The loop that awaited a read is closed while the read runs in the
    pool: the thread finishes later without error, the fd stays valid until
    then. The abandoned task holds the file's lock until it is collected
    (its coroutine then unwinds, releasing it); after that the file is
    used and closed from another loop."""
    path = tmp_path / "f"
    data = b"0123456789" * 10_000
    path.write_bytes(data)
    before = open_fd_count()
    held.gate.set()
    loop = factory()
    f = loop.run_until_complete(aiofastread.open(path, mode, executor=held))
    held.gate.clear()
    task = loop.create_task(f.read(5000))
    loop.run_until_complete(loop.run_in_executor(None, held.started.acquire))
    loop.close()  # with the task still pending
    os.fstat(f.fileno())  # the fd is still open: the thread holds it
    held.gate.set()
    wait_pool_drained()
    del task
    gc.collect()  # "Task was destroyed but it is pending!" is logged, nothing raised

    async def use_and_close() -> bytes:
        await f.seek(0)
        got = await f.read(10)
        await f.close()
        return got

    got = asyncio.run(use_and_close())  # another loop, later
    assert got == (data[:10] if mode == "rb" else data[:10].decode())
    assert f.closed
    assert open_fd_count() == before


@pytest.mark.parametrize("factory", LOOP_FACTORIES, ids=lambda f: f.__module__.split(".")[0])
def test_loop_closed_while_waiting_for_a_pool_slot_leaks_no_slot(
    tmp_path: Path, held: HeldExecutor, factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """With max_in_flight=1, a second read waits for a slot on a loop that
    is then closed: when the slot frees, it is not lost to the dead loop."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10_000)
    held.gate.set()
    f = asyncio.run(aiofastread.open(path, "rb", executor=held))
    aiofastread.configure(max_in_flight=1)
    try:
        held.gate.clear()
        loop = factory()
        first = loop.create_task(f.pread(10, 0))
        second = loop.create_task(f.pread(10, 100))  # waits for the slot
        loop.run_until_complete(loop.run_in_executor(None, held.started.acquire))
        for _ in range(10):
            loop.run_until_complete(asyncio.sleep(0))
        assert aiofastread.statistics().pool_waiting == 1
        loop.close()
        held.gate.set()
        wait_pool_drained()
        assert aiofastread.statistics().pool_waiting == 0
        # The slot came back: a new loop gets it at once.
        loop2 = asyncio.new_event_loop()
        try:
            assert loop2.run_until_complete(f.pread(5, 0)) == b"xxxxx"
        finally:
            loop2.close()
        asyncio.run(f.close())
        del first, second
    finally:
        aiofastread.configure(max_in_flight=1024)


# -- several loops in several threads ----------------------------------------------


def test_several_loops_in_several_threads_share_files_and_pool(tmp_path: Path) -> None:
    """Four threads, each with its own loop (asyncio and uvloop), read one
    shared file and write their own, with a pool of 2 threads and 2 slots
    so that they queue behind each other across loops."""
    shared = tmp_path / "shared"
    data = os.urandom(300_000)
    shared.write_bytes(data)
    before = open_fd_count()
    results: dict[int, Any] = {}
    aiofastread.configure(max_workers=2, max_in_flight=2)

    async def work(n: int) -> tuple[bytes, list[str], bytes]:
        async with aiofastread.open(shared, "rb") as f:
            chunks = await asyncio.gather(*(f.pread(1000, o) for o in range(0, 300_000, 30_000)))
            whole = await f.read()
        own = tmp_path / f"own{n}"
        async with aiofastread.open(own, "w") as w:
            await asyncio.gather(*(w.write(f"{n}:{i}\n") for i in range(200)))
        async with aiofastread.open(own) as r:
            lines = [line async for line in r]
        assert b"".join(chunks) == b"".join(data[o : o + 1000] for o in range(0, 300_000, 30_000))
        return whole, lines, own.read_bytes()

    def thread_main(n: int) -> None:
        factory = LOOP_FACTORIES[n % len(LOOP_FACTORIES)]
        loop = factory()
        try:
            results[n] = loop.run_until_complete(work(n))
        except BaseException as exc:  # reported by the assertion below
            results[n] = exc
        finally:
            loop.close()

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a loop thread hung"
    finally:
        aiofastread.configure(max_workers=16, max_in_flight=1024)
    for n in range(4):
        whole, lines, raw = results[n]
        assert whole == data
        assert lines == [f"{n}:{i}\n" for i in range(200)]
        assert raw == "".join(lines).encode()
    wait_pool_drained()
    assert open_fd_count() == before


# -- fork --------------------------------------------------------------------------


def _child(path: Path, inherited: Any, out: Path) -> int:
    """In the forked child: use the library from fresh loops. 0 if all is well."""

    async def main(first: bool) -> bool:
        # The pool starts empty in the child. (Checked on the first run only:
        # after a close() returns, its job's slot is freed a moment later on
        # the pool thread, so a second run can start with that slot held.)
        fresh = not first or aiofastread.statistics().misses_in_flight == 0
        data = path.read_bytes()
        ok = await inherited.pread(100, 50) == data[50:150]
        async with aiofastread.open(path, "rb") as f:
            ok = ok and await f.read() == data
        async with aiofastread.open(out, "a") as w:
            await w.write("child wrote this\n")
        return fresh and ok

    results = [asyncio.run(main(first=True))]
    if uvloop is not None:
        loop = uvloop.new_event_loop()
        try:
            results.append(loop.run_until_complete(main(first=False)))
        finally:
            loop.close()
    return 0 if all(results) else 1


@pytest.mark.filterwarnings("ignore:.*fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_forked_child_can_use_the_library(tmp_path: Path) -> None:
    """Fork while a pool thread is blocked (an open of a FIFO nobody writes)
    and a file is open: the child's pool starts empty and works, with the
    inherited file and new ones; the parent's file and pool are untouched."""
    path = tmp_path / "f"
    data = os.urandom(200_000)
    path.write_bytes(data)
    out = tmp_path / "out"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = open_fd_count()

    async def setup() -> tuple[Any, asyncio.Task[Any]]:
        f = await aiofastread.open(path, "rb")
        assert await f.read(10) == data[:10]
        return f, asyncio.ensure_future(aiofastread.open(fifo, "rb"))

    loop = asyncio.new_event_loop()
    try:
        f, blocked = loop.run_until_complete(setup())
        for _ in range(1000):  # until the FIFO open sits in a pool thread
            if aiofastread.statistics().misses_in_flight:
                break
            loop.run_until_complete(asyncio.sleep(0))
        assert aiofastread.statistics().misses_in_flight == 1
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 2
            try:
                code = _child(path, f, out)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert out.read_text() == "child wrote this\n" * (2 if uvloop is not None else 1)
        # The parent: its file still reads from where it was.
        assert loop.run_until_complete(f.read(10)) == data[10:20]
        writer = os.open(fifo, os.O_RDWR)  # unblock the parent's FIFO open
        try:
            reader = loop.run_until_complete(blocked)
            loop.run_until_complete(reader.close())
        finally:
            os.close(writer)
        loop.run_until_complete(f.close())
    finally:
        loop.close()
    wait_pool_drained()
    assert open_fd_count() == before


# -- interpreter exit ----------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import aiofastread

    fifo, path, loop_kind = sys.argv[1:4]

    async def main():
        # Python threads only: the native miss pool's C threads would serve
        # the reads below at once (they cannot be made to block on a FIFO;
        # as detached C threads they never hold up exit either).
        aiofastread.configure(max_workers=2, fast_path=False, native_pool=False)
        f = await aiofastread.open(path, "rb")
        t = await aiofastread.open(path, "r")
        loop = asyncio.get_running_loop()
        # Both pool threads block forever in open(2) of a FIFO nobody writes,
        # and 100 reads and a close queue up behind them.
        pending = [loop.create_task(aiofastread.open(fifo, "rb")) for _ in range(2)]
        pending += [loop.create_task(f.pread(10, 10 * i)) for i in range(50)]
        pending += [loop.create_task(f.read(10)) for _ in range(50)]
        pending.append(loop.create_task(t.close()))
        # In flight: 2 opens, 50 preads, 1 read (the other 49 wait for the
        # file's lock) and the close.
        for _ in range(100_000):
            if aiofastread.statistics().misses_in_flight >= 54:
                break
            await asyncio.sleep(0)
        print("pending", aiofastread.statistics().misses_in_flight, flush=True)

    if loop_kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
        loop.run_until_complete(main())
        loop.close()
    else:
        asyncio.run(main())
    print("exiting", flush=True)
    """
)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"] if uvloop else ["asyncio"])
def test_interpreter_exit_with_pool_work_pending_does_not_hang(
    tmp_path: Path, backend: str, loop_kind: str
) -> None:
    """Pool threads stuck in a syscall and work queued behind them at exit:
    the interpreter exits promptly with status 0."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = tmp_path / "f"
    path.write_bytes(b"0123456789" * 100)
    env = {**os.environ, _native.ENV_VAR: backend, "PYTHONWARNINGS": "error::RuntimeWarning"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(aiofastread.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(fifo), str(path), loop_kind],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "pending 54\nexiting\n", proc.stderr
