"""Vectored reads: ``await f.read_many(ranges)`` against its references.

Cached (the bar: read_many of 64 cached 16 KiB ranges <= 1.3x 64 os.pread):

``os.pread``     64 ``os.pread(fd, n, off)`` calls in a coroutine, results
                 kept in a list as read_many keeps them (the floor);
``read_many``    one ``await f.read_many(ranges)``;
``pread``        64 ``await f.pread(n, off)`` one after the other;
``os.pread, results dropped``  the same calls dropping each result: its
                 16 KiB block is reused, hot in cache, by the next call.
                 About 3x faster than keeping 64 results (1 MiB of fresh
                 memory a call: malloc gives freed 16 KiB blocks back to the
                 kernel past its trim threshold, so they fault in again);
                 shown to say what the floor is made of, not as the bar.

Each call is timed alone (perf_counter_ns), engines interleaved round by
round with the order rotated, the file re-read before each round (this VM
drops idle page cache after ~20 s). Ratios are of medians, both loops.
Statistics deltas check that every range was an inline hit.

``--slow`` (root): the same 64 ranges on a loop-mounted ext4 throttled to
``--iops`` (aiofastread.benchmark.slowdev), half of them cold (evicted
before each round, the other half read back with readahead off):

``threads``      the 32 cold ranges as one batch of ``os.pread`` on 16
                 threads (ThreadPoolExecutor): the time of the batch;
``read_many``    one ``await f.read_many(ranges)``, reporting the loop
                 wakeups it took (NativeMissPool.wakeups);
``pread``        64 ``await f.pread(n, off)`` one after the other.

``--copy`` times the loop-side cost of one 16 KiB miss result: the C
thread's malloc'd buffer copied into bytes (``ffi.unpack``, what read_many
does) against bytes allocated on the loop and pinned for the C thread to
fill (``ffi.from_buffer``, the alternative).

Run:  python bench/read_many.py [--loops asyncio,uvloop] [--rounds N]
                                [--slow --iops 300] [--copy]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiofastread
from aiofastread import _native, _pool

RANGES = 64
RANGE_SIZE = 16 << 10
FILE_SIZE = 64 << 20


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def read_back(path: Path, ranges: list[tuple[int, int]] | None = None) -> None:
    """Pull the file (or only ``ranges``, readahead off) into the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if ranges is None:
            offset = 0
            while os.pread(fd, 1 << 20, offset):
                offset += 1 << 20
        else:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            for offset, size in ranges:
                os.pread(fd, size, offset)
    finally:
        os.close(fd)


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        for _ in range(5):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def random_ranges(seed: int) -> list[tuple[int, int]]:
    """64 distinct 4 KiB-aligned 16 KiB ranges, 1 MiB apart at least (no
    range is another's readahead)."""
    rng = random.Random(seed)
    slots = rng.sample(range(FILE_SIZE >> 20), RANGES)
    return [((s << 20) + rng.randrange(0, (1 << 20) - RANGE_SIZE, 4096), RANGE_SIZE) for s in slots]


Engine = Callable[[], Awaitable[object]]


async def timed(engine: Engine) -> int:
    start = time.perf_counter_ns()
    await engine()
    return time.perf_counter_ns() - start


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def report(title: str, results: dict[str, list[int]], reference: str) -> None:
    ref = median_us(results[reference])
    print(f"  {title}")
    for name, samples in results.items():
        med = median_us(samples)
        print(f"    {name:<26} median {med:9.1f} us   {med / ref:5.2f}x {reference}")


# -- cached --------------------------------------------------------------------


async def cached(path: Path, data: bytes, rounds: int) -> dict[str, list[int]]:
    ranges = random_ranges(1)
    want = [data[o : o + n] for o, n in ranges]
    async with aiofastread.open(path, "rb") as f:
        fd = f.fileno()

        async def raw() -> list[bytes]:
            pread = os.pread
            return [pread(fd, size, offset) for offset, size in ranges]

        async def raw_dropped() -> None:
            pread = os.pread
            for offset, size in ranges:
                pread(fd, size, offset)

        async def many() -> None:
            await f.read_many(ranges)

        async def one_by_one() -> None:
            for offset, size in ranges:
                await f.pread(size, offset)

        engines: dict[str, Engine] = {
            "os.pread": raw,
            "read_many": many,
            "pread": one_by_one,
            "os.pread, results dropped": raw_dropped,
        }
        read_back(path)
        assert await f.read_many(ranges) == want
        results: dict[str, list[int]] = {name: [] for name in engines}
        pooled = aiofastread.statistics().pool_reads
        names = list(engines)
        for r in range(rounds):
            read_back(path)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                for _ in range(20):
                    results[name].append(await timed(engines[name]))
        assert aiofastread.statistics().pool_reads == pooled, "a cached range went to the pool"
    return results


# -- half cold on the slow device ------------------------------------------------


async def half_cold(path: Path, data: bytes, rounds: int) -> tuple[dict[str, list[int]], list[int]]:
    ranges = random_ranges(2)
    warm, cold = ranges[::2], ranges[1::2]
    want = [data[o : o + n] for o, n in ranges]
    native = _pool.default_pool().native
    wakeups: list[int] = []
    threads = concurrent.futures.ThreadPoolExecutor(16)
    loop = asyncio.get_running_loop()
    async with aiofastread.open(path, "rb") as f:
        fd = f.fileno()

        async def batch() -> None:
            await asyncio.gather(
                *(loop.run_in_executor(threads, os.pread, fd, n, o) for o, n in cold)
            )

        async def many() -> None:
            before = native.wakeups if native else 0
            assert await f.read_many(ranges) == want
            wakeups.append((native.wakeups if native else 0) - before)

        async def one_by_one() -> None:
            for offset, size in ranges:
                await f.pread(size, offset)

        engines: dict[str, Engine] = {"threads": batch, "read_many": many, "pread": one_by_one}
        results: dict[str, list[int]] = {name: [] for name in engines}
        names = list(engines)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                evict(path)
                read_back(path, warm)
                results[name].append(await timed(engines[name]))
    threads.shutdown()
    return results, wakeups


# -- the copy on the loop ---------------------------------------------------------


def copy_costs(repeat: int = 200_000) -> None:
    ffi = _native.native_module().ffi
    buf = ffi.new("char[]", RANGE_SIZE)

    def unpack() -> None:
        ffi.unpack(buf, RANGE_SIZE)

    def pin() -> None:
        target = bytes(RANGE_SIZE)  # stands for PyBytes_FromStringAndSize(NULL, n)
        ffi.from_buffer(target)

    def pin_bytearray() -> None:
        ffi.from_buffer(bytearray(RANGE_SIZE))

    print("  loop-side cost of one 16 KiB miss result")
    for name, fn in (
        ("unpack", unpack),
        ("pin bytes", pin),
        ("pin bytearray", pin_bytearray),
    ):
        samples = []
        for _ in range(5):
            start = time.perf_counter_ns()
            for _ in range(repeat):
                fn()
            samples.append((time.perf_counter_ns() - start) / repeat)
        print(f"    {name:<14} {min(samples):7.0f} ns (best of 5)")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--slow", action="store_true", help="half cold on a throttled device")
    parser.add_argument("--iops", type=int, default=300)
    parser.add_argument("--slow-rounds", type=int, default=6)
    parser.add_argument("--copy", action="store_true")
    parser.add_argument("--dir", default=None, help="where the cached file goes (ext4)")
    args = parser.parse_args()
    print(
        f"aiofastread backend {aiofastread.backend()}  "
        f"python {sys.version.split()[0]}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    loops = args.loops.split(",")
    with tempfile.TemporaryDirectory(dir=args.dir or Path.cwd()) as tmp:
        path = Path(tmp) / "cached.dat"
        data = make_file(path, FILE_SIZE)
        for name in loops:
            with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
                results = runner.run(cached(path, data, args.rounds))
            report(f"{name}: {RANGES} cached ranges of 16 KiB, per call", results, "os.pread")
    if args.slow:
        from aiofastread.benchmark.slowdev import SlowDevice

        with (
            tempfile.TemporaryDirectory(dir=args.dir or Path.cwd()) as backing,
            SlowDevice(args.iops, FILE_SIZE, backing) as dev,
        ):
            assert dev.mount_point is not None
            path = dev.mount_point / "half-cold.dat"
            data = make_file(path, FILE_SIZE)
            dev.join()
            try:
                for name in loops:
                    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
                        results, wakeups = runner.run(half_cold(path, data, args.slow_rounds))
                    report(
                        f"{name}: {RANGES} ranges, {RANGES // 2} cold at {args.iops} IOPS",
                        results,
                        "threads",
                    )
                    print(f"    read_many loop wakeups per call: {wakeups}")
            finally:
                dev.leave()
    if args.copy:
        copy_costs()


if __name__ == "__main__":
    main()
