"""The binary writer ("wb", "ab", "xb"): buffering on the loop, hops, errors,
cancellation, close and garbage collection. CPython equivalence over random
sequences is tests/test_writer_differential.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import gc
import inspect
import io
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from blockbuster import BlockBuster

import aiofastread
from aiofastread import _writer, _writer_core
from aiofastread._writer import AsyncBufferedWriter, buffer_size_for, is_plain_binary_write
from aiofastread._writer_core import PythonWriterCore
from aiofastread._writer_ready import Done
from aiofastread.threadpool import _members
from aiofastread.threadpool.binary import AsyncBufferedIOBase
from tests.conftest import blocking_on_purpose, until

T = TypeVar("T")


def submissions() -> int:
    return aiofastread.statistics().pool_submissions


class GateExecutor(concurrent.futures.ThreadPoolExecutor):
    """An executor whose jobs wait for ``open_gate()``: a hop held in flight."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = 0

    def close_gate(self) -> None:
        self.gate.clear()
        # A failed assertion must not leave close() waiting on a shut gate.
        asyncio.get_running_loop().call_later(10, self.gate.set)

    def open_gate(self) -> None:
        self.gate.set()

    async def hold(self, operation: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``operation`` with the gate shut; return once its hop waits."""
        hops = self.entered  # the open ran here too
        self.close_gate()
        task = asyncio.ensure_future(operation)
        await until(lambda: self.entered == hops + 1, "the hop started")
        return task

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        def held() -> T:
            self.entered += 1
            self.gate.wait()
            return fn(*args, **kwargs)

        return super().submit(held)


class PythonCoreWriter(PythonWriterCore, AsyncBufferedWriter):
    """AsyncBufferedWriter with the Python ``write`` (PythonWriterCore) in
    front of the compiled one: what a build without the native module runs."""


@pytest.fixture(autouse=True)
def writer_core(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs with the python backend use the Python write, the others the
    compiled one (when built): both twins pass every test."""
    if backend == "python":
        monkeypatch.setattr(_writer, "AsyncBufferedWriter", PythonCoreWriter)


def test_the_write_core(data_dir: Path, backend: str) -> None:
    """What the autouse fixture promises: the compiled write when built."""
    want = PythonWriterCore.write
    if backend != "python" and _writer_core.COMPILED is not None:
        want = _writer_core.COMPILED.write
    assert _writer.AsyncBufferedWriter.write is want


@pytest.fixture
def gate() -> Iterator[GateExecutor]:
    executor = GateExecutor()
    yield executor
    executor.open_gate()
    executor.shutdown()


# -- which files get the writer ----------------------------------------------


@pytest.mark.parametrize(
    ("mode", "buffering", "expected"),
    [
        ("wb", -1, True), ("ab", -1, True), ("xb", 8, True), ("bw", -1, True),
        ("wb", 0, False), ("w+b", -1, False), ("rb", -1, False), ("r+b", -1, False),
        ("w", -1, False), ("ab+", -1, False),
    ],
)  # fmt: skip
def test_modes_served(mode: str, buffering: int, expected: bool) -> None:
    assert is_plain_binary_write(mode, buffering) is expected


def test_buffer_size_rule() -> None:
    # io.open's rule when buffering= is given; our default otherwise.
    assert buffer_size_for(8, 4096) == 8
    assert buffer_size_for(2, 4096) == 2
    assert buffer_size_for(1, 4096) == 4096  # binary line buffering: st_blksize
    assert buffer_size_for(-1, 4096) == _writer.DEFAULT_BUFFER_SIZE


def test_configure_write_buffer_size() -> None:
    saved = _writer.DEFAULT_BUFFER_SIZE
    try:
        aiofastread.configure(write_buffer_size=1 << 20)
        assert buffer_size_for(-1, 4096) == 1 << 20
        with pytest.raises(ValueError, match="positive"):
            aiofastread.configure(write_buffer_size=0)
    finally:
        aiofastread.configure(write_buffer_size=saved)


@pytest.mark.parametrize("mode", ["wb", "ab", "xb"])
async def test_open_returns_writer(data_dir: Path, mode: str) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, mode) as f:
        assert type(f) is _writer.AsyncBufferedWriter
        assert isinstance(f, AsyncBufferedIOBase)
        assert (f.name, f.mode, f.closed) == (str(path), mode, False)
        assert isinstance(f.raw, io.FileIO)
    assert f.closed


def test_members_as_aiofiles() -> None:
    """The same surface as aiofiles' AsyncBufferedIOBase (sync vs async)."""
    for name in _members.BUFFERED_ASYNC - {"write"}:
        assert inspect.iscoroutinefunction(getattr(AsyncBufferedWriter, name)), name
    # write is a plain method returning an awaitable that asyncio takes as
    # a coroutine (test_write_returns_a_finished_coroutine).
    assert not inspect.iscoroutinefunction(AsyncBufferedWriter.write)
    for name in _members.BUFFERED_SYNC:
        member = getattr(AsyncBufferedWriter, name)
        assert callable(member), name
        assert not inspect.iscoroutinefunction(member), name
    for name in _members.BUFFERED_PROPERTIES:
        assert isinstance(getattr(AsyncBufferedWriter, name), property), name


# -- buffering on the loop ---------------------------------------------------


async def test_small_writes_stay_on_the_loop(data_dir: Path) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=1000) as f:
        before = submissions()
        for _ in range(10):
            assert await f.write(b"x" * 100) == 100  # exactly full: still buffered
        assert await f.tell() == 1000
        assert submissions() == before
        assert path.read_bytes() == b""
        assert await f.write(b"y") == 1  # does not fit: one hop writes the 1000
        assert submissions() == before + 1
        assert path.read_bytes() == b"x" * 1000
        await f.flush()
        assert submissions() == before + 2
        assert path.read_bytes() == b"x" * 1000 + b"y"
        await f.flush()  # nothing buffered: no hop
        assert submissions() == before + 2


async def test_write_returns_a_finished_coroutine(data_dir: Path) -> None:
    """A buffered write happens at the call; what it returns is awaitable
    (once or more), a coroutine to asyncio (create_task, ensure_future,
    wait_for, gather) and the same object for the same length."""
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=1000) as f:
        before = submissions()
        pending = f.write(b"abc")
        assert await f.tell() == 3  # buffered at the call
        assert asyncio.iscoroutine(pending)
        assert not asyncio.isfuture(pending)
        assert await pending == 3
        assert await pending == 3
        assert f.write(b"xyz") is pending  # one completed awaitable per length
        assert await asyncio.create_task(f.write(b"1234")) == 4
        assert await asyncio.ensure_future(f.write(b"1")) == 1
        assert await asyncio.wait_for(f.write(b"22"), 10) == 2
        assert await asyncio.gather(f.write(b"a"), f.write(b"bc")) == [1, 2]
        with pytest.raises(StopIteration) as stop:
            pending.send(None)
        assert stop.value.value == 3
        with pytest.raises(KeyError):
            pending.throw(KeyError("thrown"))
        assert submissions() == before  # all buffered on the loop
        # A task cancelled before its first step: the coroutine protocol's
        # throw raises the CancelledError (the bytes were buffered already).
        task = asyncio.create_task(f.write(b"q"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await f.tell() == 17
    assert path.read_bytes() == b"abcxyz1234122abcq"


async def test_write_that_cannot_buffer_is_lazy(data_dir: Path) -> None:
    """Everything but bytes that fit is a coroutine doing nothing until
    awaited (its errors at the await, as before)."""
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=8) as f:
        pending = f.write(bytearray(b"ab"))
        assert asyncio.iscoroutine(pending)
        assert not isinstance(pending, Done)
        assert await f.tell() == 0
        assert await pending == 2
        big = f.write(b"0123456789")  # does not fit: the hop, when awaited
        assert await f.tell() == 2
        assert await big == 10
    assert path.read_bytes() == b"ab0123456789"


async def test_writes_land_in_call_order(data_dir: Path) -> None:
    """A write returned as a coroutine (it needs the hop) is not overtaken
    by later writes that would fit: they wait their turn until it starts."""
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=8) as f:
        await f.write(b"1234")
        big, small = f.write(b"abcdefgh"), f.write(b"z")
        assert asyncio.iscoroutine(small)
        assert not isinstance(small, Done)  # queued behind big
        assert await asyncio.gather(big, small) == [8, 1]
        assert await f.write(b"y") == 1  # both started: the fast path again
        assert isinstance(f.write(b""), Done)
    assert path.read_bytes() == b"1234abcdefghzy"


async def test_a_write_never_awaited_does_not_stop_the_fast_path(data_dir: Path) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=8) as f:
        lost = f.write(bytearray(b"never"))
        queued = f.write(b"x")
        assert not isinstance(queued, Done)
        for coroutine in (lost, queued):
            coroutine.close()  # type: ignore[attr-defined]  # dropped unawaited (no warning)
        del lost, queued, coroutine
        gc.collect()
        assert await f.write(b"ab") == 2  # runs, and sets the fast path back
        assert isinstance(f.write(b"c"), Done)
    assert path.read_bytes() == b"abc"


def test_done_outside_a_loop_is_a_coroutine() -> None:
    """A Future needs a loop: outside one, Done.of gives a coroutine."""
    pending = Done.of(5)
    assert not isinstance(pending, Done)
    assert asyncio.run(pending) == 5  # type: ignore[arg-type]


async def test_done_cache_is_bounded(data_dir: Path) -> None:
    async with aiofastread.open(data_dir / "f", "wb") as f:
        for n in range(1, 200):
            assert await f.write(b"x" * n) == n
        assert 0 < len(f._done) <= _writer._DONE_CACHE


async def test_large_write_is_one_hop(data_dir: Path) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=1000) as f:
        await f.write(b"a" * 10)
        before = submissions()
        # The buffer and the new bytes down to a buffer's worth, in one hop;
        # the last 500 stay buffered (as C's BufferedWriter leaves them).
        assert await f.write(b"b" * 2500) == 2500
        assert submissions() == before + 1
        assert path.read_bytes() == b"a" * 10 + b"b" * 2500
        assert await f.write(bytearray(b"c" * 600)) == 600
        assert path.read_bytes() == b"a" * 10 + b"b" * 2500
        assert await f.tell() == 3110
    assert path.read_bytes() == b"a" * 10 + b"b" * 2500 + b"c" * 600


async def test_default_buffer_amortizes(data_dir: Path) -> None:
    path = data_dir / "f"
    pieces = _writer.DEFAULT_BUFFER_SIZE // 100 + 1
    async with aiofastread.open(path, "wb") as f:
        before = submissions()
        for _ in range(pieces):
            await f.write(b"z" * 100)
        assert submissions() == before + 1  # one hop for the whole buffer
    assert path.read_bytes() == b"z" * 100 * pieces


async def test_buffer_snapshot_of_mutable_input(data_dir: Path) -> None:
    path = data_dir / "f"
    data = bytearray(b"abc")
    async with aiofastread.open(path, "wb") as f:
        await f.write(data)
        await f.write(memoryview(b"def"))
        data[:] = b"XYZ"  # written is written: the buffer holds a copy
    assert path.read_bytes() == b"abcdef"


async def test_append_lands_at_the_end(data_dir: Path) -> None:
    path = data_dir / "f"
    path.write_bytes(b"0123")
    async with aiofastread.open(path, "ab") as f:
        assert await f.tell() == 4
        await f.write(b"ours")
        with open(path, "ab") as other:
            other.write(b"theirs")
        await f.flush()
        assert await f.tell() == 14  # where O_APPEND left the fd
    assert path.read_bytes() == b"0123theirsours"


async def test_seek_flushes_then_moves(data_dir: Path) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, "wb") as f:
        await f.write(b"hello world")
        assert await f.seek(0) == 0
        assert path.read_bytes() == b"hello world"
        await f.write(b"J")
        assert await f.seek(0, os.SEEK_END) == 11
        await f.write(b"!")
        assert await f.truncate(5) == 5
        assert await f.tell() == 12  # truncate does not move the position
    assert path.read_bytes() == b"Jello"


async def test_detach_flushes_and_positions(
    data_dir: Path, no_blocking_on_loop: BlockBuster
) -> None:
    path = data_dir / "f"
    f = await aiofastread.open(path, "wb")
    await f.write(b"abc")
    with blocking_on_purpose(no_blocking_on_loop):  # a sync flush, as CPython's
        raw = f.detach()
    try:
        assert path.read_bytes() == b"abc"
        assert raw.tell() == 3
        with pytest.raises(ValueError, match="raw stream has been detached"):
            await f.write(b"x")
        assert f.raw is None
    finally:
        raw.close()


# -- errors at the calls CPython raises them ----------------------------------


def test_bad_input_messages_as_cpython() -> None:
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
        _writer.bytes_view("text")
    with pytest.raises(TypeError, match="not 'int'"):
        _writer.bytes_view(7)


async def test_write_after_close(data_dir: Path) -> None:
    f = await aiofastread.open(data_dir / "f", "wb")
    await f.close()
    with pytest.raises(ValueError, match=r"^write to closed file$"):
        await f.write(b"x")
    with pytest.raises(TypeError, match="not 'str'"):
        await f.write("x")  # the argument is checked first, as in C
    with pytest.raises(ValueError, match=r"^flush of closed file$"):
        await f.flush()
    await f.close()  # twice is fine


@contextlib.contextmanager
def failing(fd: int, device: str = "/dev/full", flags: int = os.O_WRONLY) -> Iterator[None]:
    """Make writes to ``fd`` fail (ENOSPC from /dev/full; EBADF from a
    read-only descriptor), then put the file back (same open file, offset)."""
    saved = os.dup(fd)
    bad = os.open(device, flags)
    try:
        os.dup2(bad, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(bad)
        os.close(saved)


@pytest.mark.parametrize(("device", "flags", "code"), [
    ("/dev/full", os.O_WRONLY, errno.ENOSPC), ("/dev/null", os.O_RDONLY, errno.EBADF),
])  # fmt: skip
async def test_failed_flush_keeps_bytes(data_dir: Path, device: str, flags: int, code: int) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, "wb") as f:
        await f.write(b"kept")
        with failing(f.fileno(), device, flags):
            with pytest.raises(OSError) as info:
                await f.flush()
            assert info.value.errno == code
            assert await f.tell() == 4
            await f.write(b"+more")  # still buffered on the loop
        await f.flush()  # the same bytes, once
    assert path.read_bytes() == b"kept+more"


async def test_close_closes_even_if_flush_fails(data_dir: Path) -> None:
    f = await aiofastread.open(data_dir / "f", "wb")
    await f.write(b"lost")
    fd = f.fileno()
    with failing(fd):
        with pytest.raises(OSError) as info:
            await f.close()
        assert info.value.errno == errno.ENOSPC
    os.close(fd)  # failing() put the file back on the number close() freed
    assert f.closed
    assert f.raw is not None
    assert f.raw.closed
    assert (data_dir / "f").read_bytes() == b""  # as CPython: the buffer is gone


# -- cancellation -------------------------------------------------------------


async def test_cancel_during_hop_writes_once(data_dir: Path, gate: GateExecutor) -> None:
    """Cancelled while its hop runs: the hop completes, its outcome is kept
    (nothing lost, nothing written twice), then CancelledError."""
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", buffering=8, executor=gate) as f:
        await f.write(b"12345678")
        task = await gate.hold(f.write(b"abcdefghij"))  # flush + direct write
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # waits for the hop it cannot stop
        gate.open_gate()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await f.tell() == 18
        assert path.read_bytes() == b"12345678abcdefghij"
    assert path.read_bytes() == b"12345678abcdefghij"


async def test_cancel_flush_during_hop(data_dir: Path, gate: GateExecutor) -> None:
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", executor=gate) as f:
        await f.write(b"data")
        hops = gate.entered
        task = await gate.hold(f.flush())
        task.cancel()
        gate.open_gate()
        with pytest.raises(asyncio.CancelledError):
            await task
        await f.flush()  # nothing left: no second write
        assert gate.entered == hops + 1  # one hop for all
    assert path.read_bytes() == b"data"


async def test_cancel_while_waiting_for_the_file(data_dir: Path, gate: GateExecutor) -> None:
    """A write cancelled before it got the file did nothing."""
    path = data_dir / "f"
    async with aiofastread.open(path, "wb", executor=gate) as f:
        await f.write(b"first")
        flushing = await gate.hold(f.flush())
        waiting = asyncio.ensure_future(f.write(b"never"))
        await asyncio.sleep(0)
        waiting.cancel()
        gate.open_gate()
        await flushing
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await f.tell() == 5
    assert path.read_bytes() == b"first"


# -- garbage collection -------------------------------------------------------


async def test_unclosed_writer_warns_and_flushes(
    data_dir: Path, no_blocking_on_loop: BlockBuster
) -> None:
    path = data_dir / "f"
    f = await aiofastread.open(path, "wb")
    await f.write(b"saved by the finalizer")
    raw = f.raw
    assert raw is not None
    with blocking_on_purpose(no_blocking_on_loop), pytest.warns(ResourceWarning, match="unclosed"):
        del f  # the last reference: finalized now
    assert path.read_bytes() == b"saved by the finalizer"
    assert raw.closed


async def test_named_temporary_file(data_dir: Path) -> None:
    async with aiofastread.tempfile.NamedTemporaryFile("wb", dir=data_dir) as f:
        assert type(f) is _writer.AsyncBufferedWriter
        await f.write(b"temp")
        await f.flush()
        assert Path(f.name).read_bytes() == b"temp"
        name = f.name
    assert not Path(name).exists()  # deleted after our close, in the pool


async def test_borrowed_fd_unclosed_is_quiet(
    data_dir: Path, no_blocking_on_loop: BlockBuster
) -> None:
    """closefd=False: flushed at collection, no warning, the fd stays open."""
    fd = os.open(data_dir / "f", os.O_WRONLY | os.O_CREAT)
    try:
        f = await aiofastread.open(fd, "wb", closefd=False)
        await f.write(b"borrowed")
        with blocking_on_purpose(no_blocking_on_loop):
            del f  # no ResourceWarning: warnings are errors here
        assert (data_dir / "f").read_bytes() == b"borrowed"
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


@pytest.mark.parametrize("method", ["read", "read1", "readinto"])
@pytest.mark.parametrize("arg", [None, 5, -1, "x", 2**70, b"", bytearray(3), 3])
async def test_reading_a_writer_fails_as_cpythons(data_dir: Path, method: str, arg: object) -> None:
    """read/read1/readinto of a "wb" file raise what BufferedWriter's raise,
    argument checks included (3.12 moved them before "not readable")."""

    def outcome(call: Callable[[], object]) -> tuple[str, str]:
        try:
            call()
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return "ok", ""

    with open(data_dir / "cpy", "wb") as cpy:
        want = outcome(lambda: getattr(cpy, method)(arg))
    async with aiofastread.open(data_dir / "ours", "wb") as f:
        assert isinstance(f, AsyncBufferedWriter)
        coro: Any = None

        def call() -> None:
            nonlocal coro
            coro = getattr(f, method)(arg)

        created = outcome(call)
        got = created if coro is None else await _aoutcome(coro)
    assert got == want


async def _aoutcome(coro: Any) -> tuple[str, str]:
    try:
        await coro
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "ok", ""
