"""Small writes: ``await f.write(100 bytes)`` per engine, per write.

Engines, each writing ``--size``-byte pieces to a fresh file opened "wb":

``sync``         CPython's ``open(path, "wb")`` and ``f.write(b)`` (a C
                 BufferedWriter, no event loop machinery);
``await floor``  ``await`` of a coroutine that only returns ``len(b)``: the
                 least any ``await f.write(b)`` can cost on this loop;
``aiofastread``  ``await f.write(b)`` (buffers on the loop, one pool hop per
                 buffer; ``--buffers`` adds rows for other buffer sizes);
``Python write``  the same with the Python ``write`` (_writer_core's
                 PythonWriterCore: what runs without the compiled module)
                 instead of the C one (native/afr_write.c);
``coroutine write``  the same with ``write`` as the ``async def`` it was
                 before it returned a completed awaitable (_writer_ready),
                 to show what both steps save in the same run;
``bridge``       the same through the bridge (CPython's C BufferedWriter over
                 our raw, in a greenlet), what "wb" used before _writer;
``aiofiles``     ``await f.write(b)`` with aiofiles (a thread hop per write).

Each engine writes a batch of pieces then flushes, timed as a whole, so the
pool hops that write the buffer out are included: per write = batch time /
pieces. Engines run interleaved, round after round (the order rotates), on
each loop; medians of the per-round figures are printed, with the ratio to
aiofiles. ``pool hop`` is one ``await`` of an empty job in aiofastread's pool
(what each buffer flush costs on top of the write itself): the number the
default buffer size is chosen against (aiofastread/_writer.py).

This is a shared 2-core VM: compare ratios within one run only.

Run:  python bench/writes.py [--loops asyncio,uvloop] [--rounds 7] [--size 100]
                             [--buffers 65536,1048576]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiofiles

import aiofastread
from aiofastread import _pool, _writer
from aiofastread._writer_core import PythonWriterCore
from aiofastread.threadpool import _make

try:
    import uvloop
except ImportError:  # pragma: no cover - in the bench extra
    uvloop = None  # type: ignore[assignment]

# Pieces per batch: enough for aiofastread to fill its buffer many times
# (2 MB at 100 B), and few enough that the thread-hop engines finish a round
# in about a second.
FAST_PIECES = 20_000
SLOW_PIECES = 2_000


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        if uvloop is None:
            raise SystemExit("uvloop is not installed")
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@contextlib.contextmanager
def through_bridge() -> Iterator[None]:
    """Open "wb" files the way aiofastread did before _writer: the bridge."""
    saved = _make.is_plain_binary_write
    _make.is_plain_binary_write = lambda mode, buffering: False  # type: ignore[assignment]
    try:
        yield
    finally:
        _make.is_plain_binary_write = saved


async def coroutine_write(self: _writer.AsyncBufferedWriter, data: Any) -> int:
    """AsyncBufferedWriter.write as it was: the fast path in a coroutine."""
    buf = self._buf
    if type(data) is bytes and len(data) + len(buf) <= self._limit:
        buf += data
        return len(data)
    return await self._write(data)


class PythonCoreWriter(PythonWriterCore, _writer.AsyncBufferedWriter):
    """The writer with the Python write in front of the C one."""


@contextlib.contextmanager
def python_write() -> Iterator[None]:
    saved = _writer.AsyncBufferedWriter
    _writer.AsyncBufferedWriter = PythonCoreWriter  # type: ignore[misc]
    try:
        yield
    finally:
        _writer.AsyncBufferedWriter = saved  # type: ignore[misc]


@contextlib.contextmanager
def as_coroutine() -> Iterator[None]:
    saved = _writer.AsyncBufferedWriter.write
    _writer.AsyncBufferedWriter.write = coroutine_write  # type: ignore[method-assign]
    try:
        yield
    finally:
        _writer.AsyncBufferedWriter.write = saved  # type: ignore[method-assign]


async def time_sync(path: str, piece: bytes, n: int) -> float:
    with open(path, "wb") as f:
        start = time.perf_counter_ns()
        for _ in range(n):
            f.write(piece)
        f.flush()
        elapsed = time.perf_counter_ns() - start
    return elapsed / n


async def time_await_floor(piece: bytes, n: int) -> float:
    """An ``await`` of a coroutine that only returns: what any async
    write costs at the least on this loop."""

    async def write(data: bytes) -> int:
        return len(data)

    start = time.perf_counter_ns()
    for _ in range(n):
        await write(piece)
    return (time.perf_counter_ns() - start) / n


async def time_async(f: Any, piece: bytes, n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        await f.write(piece)
    await f.flush()
    elapsed = time.perf_counter_ns() - start
    await f.close()
    return elapsed / n


def engines(
    directory: str, piece: bytes, buffers: list[int]
) -> dict[str, Callable[[], Awaitable[float]]]:
    path = os.path.join(directory, "out")

    async def ours(buffering: int = -1) -> float:
        f = await aiofastread.open(path, "wb", buffering=buffering)
        return await time_async(f, piece, FAST_PIECES)

    async def ours_python_write() -> float:
        with python_write():
            f = await aiofastread.open(path, "wb")
        return await time_async(f, piece, FAST_PIECES)

    async def ours_as_coroutine() -> float:
        with as_coroutine():
            return await ours()

    async def bridge() -> float:
        with through_bridge():
            f = await aiofastread.open(path, "wb")
        return await time_async(f, piece, SLOW_PIECES * 5)

    async def theirs() -> float:
        f = await aiofiles.open(path, "wb")
        return await time_async(f, piece, SLOW_PIECES)

    async def sync() -> float:
        return await time_sync(path, piece, FAST_PIECES)

    async def floor() -> float:
        return await time_await_floor(piece, FAST_PIECES)

    table: dict[str, Callable[[], Awaitable[float]]] = {
        "sync": sync,
        "await floor": floor,
        f"aiofastread ({_writer.DEFAULT_BUFFER_SIZE >> 10} KiB)": ours,
    }
    for size in buffers:
        table[f"aiofastread ({size >> 10} KiB)"] = lambda size=size: ours(size)  # type: ignore[misc]
    table["Python write"] = ours_python_write
    table["coroutine write"] = ours_as_coroutine
    table["bridge"] = bridge
    table["aiofiles"] = theirs
    return table


async def pool_hop(n: int = 200) -> float:
    pool = _pool.default_pool()
    times = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await pool.run(int)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times)


def run(loop_name: str, args: argparse.Namespace) -> dict[str, float]:
    piece = b"x" * args.size
    per_round: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        table = engines(directory, piece, args.buffers)
        names = list(table)
        loop = new_loop(loop_name)
        try:
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    per_round.setdefault(name, []).append(loop.run_until_complete(table[name]()))
                per_round.setdefault("pool hop", []).append(loop.run_until_complete(pool_hop()))
        finally:
            loop.close()
    return {name: statistics.median(values) for name, values in per_round.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=100, help="bytes per write")
    parser.add_argument("--buffers", default="", help="more aiofastread buffer sizes (bytes)")
    parser.add_argument("--dir", default=None, help="where to write (default: $TMPDIR)")
    args = parser.parse_args()
    args.buffers = [int(b) for b in args.buffers.split(",") if b]
    print(
        f"# bench/writes.py, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC,"
        f" {args.size} B writes, {args.rounds} rounds, load {os.getloadavg()[0]:.1f}"
    )
    for loop_name in args.loops.split(","):
        result = run(loop_name, args)
        base = result["aiofiles"]
        print(f"\n{loop_name}:")
        print(f"  {'engine':24} {'per write':>12} {'aiofiles / engine':>18}")
        for name, ns in result.items():
            ratio = "" if name == "pool hop" else f"{base / ns:17.1f}x"
            print(f"  {name:24} {ns / 1000:10.2f}us {ratio}")


if __name__ == "__main__":
    main()
