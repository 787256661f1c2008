"""The reader's C hit path (native/afr_hit.c, issue 11 items 1-3).

With the compiled module, ``read``/``seek``/``tell``/``pread``/``readinto``/
``pread_into`` are C methods: a cached read returns a ``Ready`` (an
awaitable already done), anything else the Python general path's coroutine.
These tests prove, with counters and contents:

- hits are made by the C path (``_native.hit_syscalls()``), counted as the
  policy counts them, and never reach the pool;
- a Ready is a coroutine to asyncio (create_task, ensure_future, wait_for,
  gather) and to ``collections.abc.Coroutine``;
- cancellation: a Ready thrown into (a task cancelled before its first
  step) or never awaited leaves the position as it was; a task cancelled
  while the general path runs leaves it too;
- errors: the same exceptions, messages, and moment (call or await) as the
  Python hit path, open and closed;
- nothing leaks: references and traced memory stay flat over many hits;
- the python backend leaves the C path aside, and so does any rebinding of
  ``_native.backend`` (a test's monkeypatch), at once and until undone;
- Readys reused from the free list start afresh: never shared while alive,
  undone when dropped whatever the one before them was.

The rule itself (when the C path takes a read) is proved in
tests/test_inline_rule.py against ``fast_path_takes``.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import dataclasses
import gc
import importlib.util
import inspect
import sys
import threading
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread import _budget, _checks, _native, _policy, _read, _runtime
from aiofastread._policy import FileState
from tests.conftest import evict, make_file, warm

SIZE = 256 << 10


@pytest.fixture
def native(backend: str) -> None:
    if backend != "native" or not _native.HAS_HIT_PATH:
        pytest.skip("the C hit path runs with the compiled module's native backend")


@contextlib.contextmanager
def python_hit_path() -> Iterator[None]:
    """The Python hit path: a Backend that is not the one the C path was
    bound to makes it stand aside (_native._stand_for)."""
    saved = _native.backend
    _native.backend = dataclasses.replace(saved)
    try:
        yield
    finally:
        _native.backend = saved


@contextlib.asynccontextmanager
async def warm_file(
    data_dir: Path,
) -> AsyncIterator[tuple[aiofastread.AsyncBufferedReader, bytes]]:
    """A reader open on a new file whose pages are cached and known WARM,
    and the file's bytes; closed after."""
    path = data_dir / "f"
    data = make_file(path, SIZE)
    f = await aiofastread.open(path, "rb")
    try:
        warm(path)
        await f.pread(4096, 0)  # a first inline hit makes the file WARM
        yield f, data
    finally:
        await f.close()


def test_the_c_constants_are_the_python_ones(native: None) -> None:
    hit = _native._hit
    assert hit is not None
    assert hit["INLINE_MAX"] == _policy.INLINE_MAX
    assert hit["TRUSTED_SEEK_MAX"] == _checks.TRUSTED_SEEK_MAX
    assert hit["COST_PER_OP"] == _budget.COST_PER_OP
    assert hit["YIELD_EVERY_MASK"] == _read.YIELD_EVERY_MASK


async def test_hits_are_made_in_c_counted_and_never_pooled(data_dir: Path, native: None) -> None:
    async with warm_file(data_dir) as (f, data):
        before = aiofastread.statistics()
        c_before = _native.hit_syscalls()
        ready = f.read(4096)
        assert type(ready).__name__ == "Ready"
        assert await ready == data[:4096]
        assert await f.seek(10_000) == 10_000
        assert await f.read(16384) == data[10_000:26_384]
        assert await f.tell() == 26_384
        assert await f.pread(100, 7) == data[7:107]
        buffer = bytearray(5000)
        assert await f.readinto(buffer) == 5000
        assert buffer == data[26_384:31_384]
        assert await f.pread_into(buffer, 3) == 5000
        assert buffer == data[3:5003]
        assert await f.tell() == 31_384
        after = aiofastread.statistics()
    assert _native.hit_syscalls() - c_before == 5
    assert after.inline_hits - before.inline_hits == 5
    assert after.bytes_inline - before.bytes_inline == 4096 + 16384 + 100 + 5000 + 5000
    assert after.pool_submissions == before.pool_submissions


async def test_read_of_the_rest_is_the_general_paths(data_dir: Path, native: None) -> None:
    """read() / read(-1) / read(None): the C path hands them to the general
    path (its whole-file read: one NOWAIT read of the rest known + 1)."""
    async with warm_file(data_dir) as (f, data):
        for size in ((), (-1,), (None,)):
            await f.seek(SIZE - 5000)
            c_before = _native.hit_syscalls()
            hits = aiofastread.statistics().inline_hits
            assert await f.read(*size) == data[-5000:]
            assert _native.hit_syscalls() == c_before
            assert aiofastread.statistics().inline_hits == hits + 1
            assert await f.tell() == SIZE


async def test_the_python_backend_leaves_the_c_path_aside(data_dir: Path, backend: str) -> None:
    if backend != "python":
        pytest.skip("the python backend's test")
    async with warm_file(data_dir) as (f, data):
        before = aiofastread.statistics()
        c_before = _native.hit_syscalls()
        for offset in (0, 4096, 9000):
            assert await f.pread(4096, offset) == data[offset : offset + 4096]
            await f.seek(offset)
            assert await f.read(4096) == data[offset : offset + 4096]
        after = aiofastread.statistics()
    assert _native.hit_syscalls() == c_before
    assert after.inline_hits - before.inline_hits == 6


async def test_a_ready_is_a_coroutine_to_asyncio(data_dir: Path, native: None) -> None:
    async with warm_file(data_dir) as (f, data):
        ready = f.pread(10, 0)
        assert asyncio.iscoroutine(ready)
        assert isinstance(ready, collections.abc.Coroutine)
        assert inspect.isawaitable(ready)
        assert await asyncio.create_task(ready) == data[:10]
        assert await asyncio.ensure_future(f.pread(10, 5)) == data[5:15]
        assert await asyncio.wait_for(f.pread(10, 20), timeout=60) == data[20:30]
        first, second = await asyncio.gather(f.read(5), f.read(5))
        assert (first, second) == (data[:5], data[5:10])
        # The coroutine protocol by hand: send/__await__ end at once.
        with pytest.raises(StopIteration) as stop:
            f.pread(3, 1).send(None)
        assert stop.value.value == data[1:4]
        with pytest.raises(StopIteration) as stop:
            next(f.tell().__await__())
        assert stop.value.value == 10
        with pytest.raises(KeyError, match="thrown"):
            f.pread(3, 1).throw(KeyError("thrown"))
        assert f.pread(3, 1).close() is None


async def test_a_ready_cancelled_or_never_awaited_leaves_the_position(
    data_dir: Path, native: None
) -> None:
    async with warm_file(data_dir) as (f, data):
        await f.seek(100)
        task = asyncio.create_task(f.read(1000))  # read, answer not delivered
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await f.tell() == 100
        f.read(50)  # never awaited: as a coroutine never run
        gc.collect()
        assert await f.tell() == 100
        buffer = bytearray(10)
        ready = f.readinto(buffer)
        ready.close()
        assert await f.tell() == 100
        seek = f.seek(7)
        del seek
        assert await f.tell() == 100
        assert await f.read(10) == data[100:110]


async def test_a_task_cancelled_in_the_general_path_leaves_the_position(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "f"
    data = make_file(path, SIZE)
    evict(path)
    async with aiofastread.open(path, "rb") as f:
        await f.seek(4096)
        read = f.read(8192)  # not cached: the general path's coroutine
        assert inspect.iscoroutine(read)
        task = asyncio.ensure_future(read)
        await asyncio.sleep(0)  # it starts: its read is in the pool
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await f.tell() == 4096
        assert await f.read(8192) == data[4096:12288]


# Calls with bad arguments, or on a closed file: what the C path hands to
# Python must raise what the Python hit path raises, when it raises it.
BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("read", ("x",), {}),
    ("read", (-2,), {}),
    ("read", (3.0,), {}),
    ("read", (1, 2), {}),
    ("read", (), {"size": 3}),
    ("read", (), {"bogus": 3}),
    ("seek", (0, 7), {}),
    ("seek", (-1,), {}),
    ("seek", ("a",), {}),
    ("seek", (2**70,), {}),
    ("seek", (), {}),
    ("tell", (1,), {}),
    ("pread", (-1, 0), {}),
    ("pread", (1, -1), {}),
    ("pread", (1, 2**70), {}),
    ("pread", (1,), {}),
    ("pread", ("1", 0), {}),
    ("readinto", (b"abc",), {}),
    ("readinto", ("x",), {}),
    ("readinto", (), {}),
    ("pread_into", (bytearray(3), -1), {}),
    ("pread_into", (b"x", 0), {}),
    ("pread_into", (bytearray(3), "0"), {}),
]
ON_CLOSED = [
    ("read", (1,), {}),
    ("read", (), {}),
    ("pread", (1, 0), {}),
    ("readinto", (bytearray(1),), {}),
    ("pread_into", (bytearray(1), 0), {}),
    ("seek", (0,), {}),
    ("tell", (), {}),
]


async def outcome(
    method: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Where the call failed (at the call, at the await) and how, or its value."""
    try:
        awaitable = method(*args, **kwargs)
    except Exception as exc:
        return ("call", type(exc), str(exc))
    try:
        return ("value", await awaitable)
    except Exception as exc:
        return ("await", type(exc), str(exc))


async def test_bad_calls_fail_as_on_the_python_path(data_dir: Path, native: None) -> None:
    async with warm_file(data_dir) as (f, _):
        for name, args, kwargs in BAD_CALLS:
            method = getattr(f, name)
            c_way = await outcome(method, args, kwargs)
            await f.seek(0)
            with python_hit_path():
                python_way = await outcome(method, args, kwargs)
            await f.seek(0)
            assert c_way == python_way, (name, args, kwargs)
            assert c_way[0] != "value" or name == "read", (name, args, kwargs)
    for name, args, kwargs in ON_CLOSED:
        method = getattr(f, name)
        c_way = await outcome(method, args, kwargs)
        with python_hit_path():
            python_way = await outcome(method, args, kwargs)
        assert c_way == python_way, name
        assert c_way[:2] == ("await", ValueError), name


def hit_calls(
    f: aiofastread.AsyncBufferedReader, buffer: bytearray
) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: f.seek(0),
        lambda: f.read(4096),
        lambda: f.tell(),
        lambda: f.pread(4096, 8192),
        lambda: f.readinto(buffer),
        lambda: f.pread_into(buffer, 100),
        lambda: f.pread(100, SIZE - 10),  # short at EOF: the general path, with its attempt
    ]


async def test_many_hits_leak_nothing(data_dir: Path, native: None) -> None:
    buffer = bytearray(4096)

    async def run(calls: list[Callable[[], Awaitable[Any]]], rounds: int) -> None:
        for _ in range(rounds):
            for call in calls:
                await call()

    async with warm_file(data_dir) as (f, _):
        calls = hit_calls(f, buffer)
        await run(calls, 200)  # caches, freelists and counters settle
        # The Ready type too: a Ready kept on the free list holds no
        # reference to it, a reused one takes one again.
        held = (f, f._h, f._h.inode, buffer, f._win, f._lock, _native._hit["Ready"])
        refs = [sys.getrefcount(x) for x in held]
        gc.collect()
        tracemalloc.start()
        try:
            await run(calls, 50)
            gc.collect()
            baseline = tracemalloc.get_traced_memory()[0]
            await run(calls, 2000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
        assert [sys.getrefcount(x) for x in held] == refs
        # 14000 calls: a leaked object each would be >= 400 KiB.
        assert grown < 64 << 10, grown


async def test_rebinding_the_backend_moves_the_c_path_at_once(
    data_dir: Path, native: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C path knows which backend is in use from a flag that every
    rebinding of ``_native.backend`` sets (_native's module class), not from
    a lookup per call: a monkeypatched Backend gets the next call, and the C
    path the one after the undo; a plain assignment and use_backend too."""
    async with warm_file(data_dir) as (f, data):
        real = _native.backend
        calls: list[tuple[int, int]] = []

        def counting(fd: int, size: int, offset: int) -> bytes | int:
            calls.append((size, offset))
            return real.read_nowait(fd, size, offset)

        def served() -> tuple[int, int]:  # (C path's syscalls, fake's calls)
            return _native.hit_syscalls() - c_before, len(calls)

        c_before = _native.hit_syscalls()
        monkeypatch.setattr(_native, "backend", dataclasses.replace(real, read_nowait=counting))
        assert await f.pread(100, 5) == data[5:105]
        assert served() == (0, 1)
        monkeypatch.undo()
        assert await f.pread(100, 6) == data[6:106]
        assert served() == (1, 1)
        _native.backend = dataclasses.replace(real, read_nowait=counting)
        try:
            await f.seek(300)
            assert await f.read(50) == data[300:350]
            assert served() == (1, 2)
        finally:
            _native.backend = real
        assert await f.pread(50, 9000) == data[9000:9050]  # not where the stream goes on
        assert served() == (2, 2)
        _runtime.use_backend("python")
        try:
            assert await f.pread(10, 0) == data[:10]
            assert served() == (2, 2)
        finally:
            _runtime.use_backend("native")
        f._h.inode.state = FileState.WARM  # use_backend forgot what the policy knew
        assert await f.pread(10, 0) == data[:10]
        assert served() == (3, 2)


async def test_readys_from_the_free_list_start_afresh(data_dir: Path, native: None) -> None:
    """Freed Readys are kept for the next calls: one is reused only after
    its last reference went, with every field set again (delivered, the
    reader, the position to restore, a text Ready's saved state)."""
    async with warm_file(data_dir) as (f, data):
        alive = [f.pread(10, i) for i in range(20)]  # more than the free list holds
        assert len({id(ready) for ready in alive}) == 20
        assert [await ready for ready in reversed(alive)] == [
            data[i : i + 10] for i in reversed(range(20))
        ]
        del alive
        for _ in range(10):  # delivered Readys of read(), freed
            await f.read(10)
        await f.seek(1000)
        f.read(50)  # a reused Ready, never awaited: undone
        assert await f.tell() == 1000
        p = f.pread(10, 0)  # was a read's Ready: no reader to move now
        del p
        assert await f.tell() == 1000
        text_path = data_dir / "t.txt"
        text_path.write_bytes(bytes(range(256)) * 64)
        warm(text_path)
        async with aiofastread.open(text_path, encoding="latin-1", newline="\n") as t:
            await t.read(1)
            await t.seek(100)
            assert await t.read(4000) == (bytes(range(256)) * 64)[100:4100].decode("latin-1")
        await f.seek(2000)  # may reuse the text read's Ready
        f.read(50)
        assert await f.tell() == 2000
        assert await f.read(5) == data[2000:2005]


async def test_a_reader_in_a_cycle_is_collected(data_dir: Path, backend: str) -> None:
    """The C fields (_h, _lock, _win; the handle's inode) are traversed:
    cycles through them are found by the collector."""
    path = data_dir / "f"
    make_file(path, SIZE)
    f = await aiofastread.open(path, "rb")
    await f.read(10)
    await f.close()
    # reader -> (C field _win) window -> reader, and the same through _lock
    # (the handle may outlive the reader a moment in a pool thread's hands).
    f._win.eof = f  # type: ignore[assignment]
    f._lock.owner = f  # type: ignore[attr-defined]
    gone = weakref.ref(f)
    del f
    gc.collect()
    assert gone() is None


def test_the_module_is_built_for_the_stable_abi_of_3_10(backend: str) -> None:
    """The abi3 wheel (cp310-abi3) promises one module for CPython >= 3.10:
    every native file is compiled with the limited API of 3.10, so a call
    outside it fails the build, not a user's import (scripts/release.sh
    builds and installs that wheel)."""
    if backend != "native":
        pytest.skip("a property of the build: checked once")
    spec = importlib.util.spec_from_file_location(
        "build_native", Path(__file__).parent.parent / "native" / "build_native.py"
    )
    assert spec is not None
    assert spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    kwargs = build.ffibuilder._assigned_source[3]
    assert ("Py_LIMITED_API", "0x030A0000") in kwargs["define_macros"]
    if _native.HAS_HIT_PATH:
        assert _native._native_cffi.__file__.endswith(".abi3.so")


def test_the_budget_is_each_threads(backend: str) -> None:
    """With the compiled module the budget's spent/next/ok are per thread
    (one loop per thread, /work/notes/BUDGET.md): a thread that spent its
    budget does not make another thread's reads yield; a new limit starts
    every thread again."""
    if not _native.HAS_HIT_PATH:
        pytest.skip("per-thread budget state is the compiled module's")
    b = _budget.BUDGET
    saved = b.limit
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        seen["fresh"] = (b.spent, b.ok)
        _budget.charge(100)
        seen["charged"] = b.spent

    try:
        _budget.set_limit(1000)
        _budget.charge(b.limit + 1)
        assert _budget.over()
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert seen == {"fresh": (0, True), "charged": _budget.cost(100)}
        assert _budget.over()  # this thread's state is its own
        _budget.set_limit(2000)
        assert not _budget.over()
    finally:
        b.limit = saved
        _budget.set_limit(saved / _budget.UNITS_PER_US if saved < _budget.OFF else 0)


def test_the_c_methods_are_the_classes_own(native: None) -> None:
    """``adopt``: the reader's and the direct text file's C methods are set on
    the classes themselves (CPython specialises a call of a C method only on
    an object of exactly the method's type), and they are the C functions."""
    from aiofastread._file import AsyncBufferedReader
    from aiofastread.threadpool.text import DirectTextIOWrapper

    for cls, names in (
        (AsyncBufferedReader, ("read", "seek", "tell", "pread", "readinto", "pread_into")),
        (DirectTextIOWrapper, ("read", "seek")),
    ):
        for name in names:
            descr = cls.__dict__[name]
            assert type(descr).__name__ == "method_descriptor", (cls, name)
            assert descr.__objclass__ is cls, (cls, name)
    with pytest.raises(TypeError, match="subclass of ReaderCore or TextFileCore"):
        _native.adopt_c_methods(int)
