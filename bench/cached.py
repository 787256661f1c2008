"""Cached reads: aiofastread vs os.pread vs run_in_executor vs aiofiles, per op.

Every engine reads ``size`` bytes at a random 4 KiB-aligned offset of a file
that is entirely in the page cache, the way a user would write it:

``raw``          ``os.pread(fd, n, off)``, called from a coroutine on the same
                 loop (the floor: one syscall, no event-loop machinery);
``raw-preadv``   ``os.preadv(fd, [buf], off)`` into one reused bytearray (the
                 floor of the ``*_into`` rows: no allocation, one copy);
``aiofastread``  ``await f.seek(off); await f.read(n)`` (inline preadv2 NOWAIT);
``afr-pread``    ``await f.pread(n, off)`` (no position, no lock);
``afr-readinto`` ``await f.seek(off); await f.readinto(buf)``, buf reused;
``afr-pread_into`` ``await f.pread_into(buf, off)``, buf reused;
``executor``     ``await loop.run_in_executor(pool, os.pread, fd, n, off)``;
``aiofiles``     ``await f.seek(off); await f.read(n)`` with aiofiles 25.1.

Each op is timed alone with ``time.perf_counter_ns``, so every engine pays
the same timer cost. This is a shared, noisy 2-core VM, so the engines run
interleaved: a round is a batch of ops of each engine in turn (the order
rotates every round), for every size and every loop; drift then hits every
engine alike. The file is re-read right before each round because this VM
drops idle page cache after ~20 s. Ratios are of medians; the per-round
ratio spread (each round pairs engines measured within milliseconds of each
other) shows how much to trust them.

A checking pass first compares every engine's bytes with the file's content.
``aiofastread.statistics()`` deltas around the timed aiofastread ops show
they were inline hits (no pool submissions).

One more thing is reported per op, because it can move a median by 3x on
this AMD EPYC (FSRM) VM: whether a copy hit the 4 KiB-aliasing window, that
is, the destination lies 1..31 bytes after the source modulo 4096, where
``rep movsb`` (kernel copy_to_user and glibc memcpy alike) runs 3-7x slower
(bench/alignment.py). The destination of os.pread is a bytes object placed
by malloc, so whether a run hits the window depends on the heap's layout.

``--breakdown`` instead times each piece of the fast path (coroutines, the
fast-path checks, the cffi call, ffi.unpack) against os.pread.

Run:  python bench/cached.py [--sizes 4KiB,16KiB,1MiB] [--loops asyncio,uvloop]
                             [--rounds N] [--json out.json] [--breakdown]
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import concurrent.futures
import ctypes
import dataclasses
import gc
import json
import mmap
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import types
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Console
from rich.table import Table

import aiofastread
from aiofastread import _native
from aiofastread.benchmark.cli import parse_size
from aiofastread.benchmark.stats import percentile

try:  # the breakdown times the cffi call and ffi.unpack on their own
    from aiofastread import _native_cffi  # type: ignore[attr-defined]
except ImportError:  # not built: the breakdown leaves those pieces out
    _native_cffi = None

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

KIB = 1 << 10
MIB = 1 << 20
PAGE = 4096
DEFAULT_SIZES = (4 * KIB, 16 * KIB, MIB)
# 32 MiB: big enough that random 1 MiB reads rarely repeat and that the
# sources are not all L2-hot, small enough to re-warm every round in ~5 ms.
DEFAULT_FILE_SIZE = 32 * MIB
# 300 rounds x 40 ops = 12000 timed ops per (loop, size, engine): p99 rests
# on 120 samples. The default run (3 sizes, 2 loops) takes ~55 s on this VM
# when it is quiet (~100 s with other test suites running beside it).
DEFAULT_ROUNDS = 300
DEFAULT_BATCH = 40
# Threads of the run_in_executor engine: as many as aiofastread's own pool.
EXECUTOR_WORKERS = 16
# Reads per engine, size and loop in the checking pass.
CHECK_READS = 24
# The 4 KiB-aliasing window measured by bench/alignment.py: a rep movsb copy
# whose destination is this many bytes after its source (mod 4096) is slow.
ALIAS_WINDOW = range(1, 32)
# CPython's bytes object: this many header bytes, then the data.
BYTES_HEADER = sys.getsizeof(b"") - 1
# The bars, for 16 KiB: median <= 1.5x raw (goal 1.3x), and aiofiles
# at least 25x slower than aiofastread.
BAR_SIZE = 16 * KIB
BAR_RAW = 1.5
GOAL_RAW = 1.3
BAR_AIOFILES = 25.0

ENGINES = (
    "raw",
    "raw-preadv",
    "aiofastread",
    "afr-pread",
    "afr-readinto",
    "afr-pread_into",
    "executor",
    "aiofiles",
)
# Each engine's ratio is to the floor doing the same kind of read: a new
# bytes object (os.pread) or a caller's reused buffer (os.preadv).
REFERENCE = {"afr-readinto": "raw-preadv", "afr-pread_into": "raw-preadv"}
LOOPS = ("asyncio", "uvloop")


# -- small helpers -----------------------------------------------------------------


def human(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB and size % MIB == 0 else f"{size // KIB} KiB"


def us(ns: float) -> str:
    return f"{ns / 1000:.2f}" if ns < 100_000 else f"{ns / 1000:.0f}"


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            sys.exit("--loops uvloop: uvloop is not installed (pip install uvloop)")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def data_address(data: bytes) -> int:
    return id(data) + BYTES_HEADER  # CPython: id() is the object's address


def aliased(dst: int, src: int) -> bool:
    """Whether a copy from ``src`` to ``dst`` hits the slow 4 KiB-alias window."""
    return (dst - src) % PAGE in ALIAS_WINDOW


def scratch_address() -> int | None:
    """Where aiofastread's native backend lands the kernel's copy, if it uses
    a scratch buffer (then ffi.unpack copies again into the bytes object).

    A read_nowait written in C (a builtin) is taken to read straight into
    the bytes it returns, like os.pread.
    """
    view = getattr(getattr(_native, "_scratch", None), "view", None)
    builtin = isinstance(_native.backend.read_nowait, types.BuiltinFunctionType)
    if _native.backend.name != "native" or view is None or builtin:
        return None
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


# -- the data file -------------------------------------------------------------------


def make_file(directory: str, size: int, seed: int) -> tuple[str, bytes]:
    """A file of random bytes where preadv2(RWF_NOWAIT) works; and its content."""
    content = random.Random(seed).randbytes(size)
    fd, path = tempfile.mkstemp(prefix="afr-cached-", suffix=".dat", dir=directory)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    probe = os.open(path, os.O_RDONLY)
    try:
        warm(probe)
        os.preadv(probe, [bytearray(PAGE)], 0, os.RWF_NOWAIT)
    except OSError as exc:
        os.unlink(path)
        sys.exit(
            f"{directory}: preadv2(RWF_NOWAIT) fails ({exc.strerror}); pass --dir on "
            "ext4/xfs/btrfs (tmpfs, overlayfs and FUSE have no NOWAIT path)"
        )
    finally:
        os.close(probe)
    return path, content


def warm(fd: int) -> None:
    """Read the whole file so that every page is cached for the next round."""
    chunk = bytearray(MIB)
    offset = 0
    while n := os.preadv(fd, [chunk], offset):
        offset += n


# -- engines --------------------------------------------------------------------------


class Engine(abc.ABC):
    """One way of reading, opened on one loop. ``batch`` is the timed loop:
    each engine writes it out in full so that nothing but the read itself
    sits between the two clock reads."""

    name: ClassVar[str]
    # Whether the alias column means something for this engine.
    tracks_alias: ClassVar[bool] = True

    @abc.abstractmethod
    async def read(self, size: int, offset: int) -> bytes:
        """One read, untimed (checking pass)."""

    @abc.abstractmethod
    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        """Time one read per offset into ``out``; return how many hit the alias window."""

    async def close(self) -> None:
        return None


class Raw(Engine):
    name = "raw"

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def read(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        fd, pread, clock, hits = self.fd, os.pread, time.perf_counter_ns, 0
        for off in offsets:
            t0 = clock()
            data = pread(fd, size, off)
            t1 = clock()
            out.append(t1 - t0)
            hits += aliased(data_address(data), off)
        return hits


class Aiofastread(Engine):
    name = "aiofastread"

    def __init__(self, f: aiofastread.AsyncBufferedReader) -> None:
        self.f = f
        self.scratch = scratch_address()

    async def read(self, size: int, offset: int) -> bytes:
        await self.f.seek(offset)
        return await self.f.read(size)

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        f, clock, scratch, hits = self.f, time.perf_counter_ns, self.scratch, 0
        for off in offsets:
            t0 = clock()
            await f.seek(off)
            data = await f.read(size)
            t1 = clock()
            out.append(t1 - t0)
            dst = data_address(data)
            if scratch is None:  # one copy, page cache -> bytes
                hits += aliased(dst, off)
            else:  # page cache -> scratch, then scratch -> bytes
                hits += aliased(scratch, off) or aliased(dst, scratch)
        return hits

    async def close(self) -> None:
        await self.f.close()


class RawPreadv(Engine):
    name = "raw-preadv"
    tracks_alias = False

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffers: dict[int, bytearray] = {}

    async def read(self, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        return bytes(buf[: os.preadv(self.fd, [buf], offset)])

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        buf = self.buffers.setdefault(size, bytearray(size))
        fd, preadv, clock, bufs = self.fd, os.preadv, time.perf_counter_ns, [buf]
        for off in offsets:
            t0 = clock()
            preadv(fd, bufs, off)
            t1 = clock()
            out.append(t1 - t0)
        return 0


class AfrPread(Aiofastread):
    name = "afr-pread"

    async def read(self, size: int, offset: int) -> bytes:
        return await self.f.pread(size, offset)

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        f, clock, hits = self.f, time.perf_counter_ns, 0
        for off in offsets:
            t0 = clock()
            data = await f.pread(size, off)
            t1 = clock()
            out.append(t1 - t0)
            hits += aliased(data_address(data), off)
        return hits


class AfrReadinto(Aiofastread):
    name = "afr-readinto"
    tracks_alias = False

    async def read(self, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        await self.f.seek(offset)
        return bytes(buf[: await self.f.readinto(buf)])

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        f, clock, buf = self.f, time.perf_counter_ns, bytearray(size)
        for off in offsets:
            t0 = clock()
            await f.seek(off)
            await f.readinto(buf)
            t1 = clock()
            out.append(t1 - t0)
        return 0


class AfrPreadInto(Aiofastread):
    name = "afr-pread_into"
    tracks_alias = False

    async def read(self, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        return bytes(buf[: await self.f.pread_into(buf, offset)])

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        f, clock, buf = self.f, time.perf_counter_ns, bytearray(size)
        for off in offsets:
            t0 = clock()
            await f.pread_into(buf, off)
            t1 = clock()
            out.append(t1 - t0)
        return 0


class Executor(Engine):
    name = "executor"

    def __init__(self, fd: int, pool: concurrent.futures.Executor) -> None:
        self.fd = fd
        self.pool = pool

    async def read(self, size: int, offset: int) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, os.pread, self.fd, size, offset)

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        fd, pool, pread, clock, hits = self.fd, self.pool, os.pread, time.perf_counter_ns, 0
        run = asyncio.get_running_loop().run_in_executor
        for off in offsets:
            t0 = clock()
            data = await run(pool, pread, fd, size, off)
            t1 = clock()
            out.append(t1 - t0)
            hits += aliased(data_address(data), off)
        return hits


class Aiofiles(Engine):
    name = "aiofiles"
    # BufferedReader copies reads below its 8 KiB buffer size through that
    # buffer, so where the kernel's copy lands is not the result's address.
    tracks_alias = False

    def __init__(self, f: Any) -> None:
        self.f = f

    async def read(self, size: int, offset: int) -> bytes:
        await self.f.seek(offset)
        data: bytes = await self.f.read(size)
        return data

    async def batch(self, size: int, offsets: Sequence[int], out: array[int]) -> int:
        f, clock = self.f, time.perf_counter_ns
        for off in offsets:
            t0 = clock()
            await f.seek(off)
            await f.read(size)
            t1 = clock()
            out.append(t1 - t0)
        return 0

    async def close(self) -> None:
        await self.f.close()


AFR_ENGINES: dict[str, type[Aiofastread]] = {
    cls.name: cls for cls in (Aiofastread, AfrPread, AfrReadinto, AfrPreadInto)
}


async def open_engines(
    names: Sequence[str], path: str, fd: int, pool: concurrent.futures.Executor
) -> dict[str, Engine]:
    engines: dict[str, Engine] = {}
    for name in names:
        if name == "raw":
            engines[name] = Raw(fd)
        elif name == "raw-preadv":
            engines[name] = RawPreadv(fd)
        elif name in AFR_ENGINES:
            f = await aiofastread.open(path, "rb")
            if not isinstance(f, aiofastread.AsyncBufferedReader):
                raise TypeError(f"aiofastread.open(path, 'rb') returned {type(f).__name__}")
            engines[name] = AFR_ENGINES[name](f)
        elif name == "executor":
            engines[name] = Executor(fd, pool)
        elif name == "aiofiles":
            try:
                import aiofiles
            except ImportError:
                sys.exit("engine aiofiles: pip install aiofiles==25.1.0")
            engines[name] = Aiofiles(await aiofiles.open(path, "rb"))
    return engines


# -- the measurement ---------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    """Everything measured for one (loop, size, engine)."""

    samples: array[int] = dataclasses.field(default_factory=lambda: array("q"))
    # The first op of each batch follows another engine's batch: its caches
    # and buffers went cold meanwhile, as between requests in an application.
    first: array[int] = dataclasses.field(default_factory=lambda: array("q"))
    round_medians: list[float] = dataclasses.field(default_factory=list)
    alias_hits: int = 0


@dataclasses.dataclass
class StatsDelta:
    """aiofastread.statistics() movement over its timed reads of one cell."""

    reads: int = 0
    inline_hits: int = 0
    inline_misses: int = 0
    short_reads: int = 0
    pool_submissions: int = 0
    pool_reads: int = 0

    def add(self, before: aiofastread.Statistics, after: aiofastread.Statistics, n: int) -> None:
        self.reads += n
        self.inline_hits += after.inline_hits - before.inline_hits
        self.inline_misses += after.inline_misses - before.inline_misses
        self.short_reads += after.short_reads - before.short_reads
        self.pool_submissions += after.pool_submissions - before.pool_submissions
        self.pool_reads += after.pool_reads - before.pool_reads


Key = tuple[str, int, str]  # (loop, size, engine)


async def check(
    engines: dict[str, Engine], sizes: Sequence[int], content: bytes, rng: random.Random
) -> int:
    """Compare every engine's bytes with the file's; return reads checked."""
    total = 0
    file_size = len(content)
    for size in sizes:
        offsets = [0, file_size - size, file_size - size // 2]  # ends: short read at EOF
        offsets += [rng.randrange(0, file_size - size) for _ in range(CHECK_READS - 3)]
        for name, engine in engines.items():
            for off in offsets:
                got = await engine.read(size, off)
                want = content[off : off + size]
                if got != want:
                    raise AssertionError(
                        f"{name}: {size} bytes at {off}: wrong data "
                        f"({len(got)} bytes, expected {len(want)})"
                    )
                total += 1
    return total


async def one_round(
    engines: dict[str, Engine],
    order: Sequence[str],
    size: int,
    offsets: dict[str, list[int]],
    cells: dict[str, Cell],
    delta: StatsDelta,
) -> None:
    for name in order:
        engine, cell = engines[name], cells[name]
        start = len(cell.samples)
        before = aiofastread.statistics() if name in AFR_ENGINES else None
        cell.alias_hits += await engine.batch(size, offsets[name], cell.samples)
        if before is not None:
            delta.add(before, aiofastread.statistics(), len(offsets[name]))
        cell.first.append(cell.samples[start])
        cell.round_medians.append(statistics.median(cell.samples[start:]))


def run_comparison(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    sizes: list[int] = args.sizes
    path, content = make_file(args.dir, args.file_size, args.seed)
    fd = os.open(path, os.O_RDONLY)
    pool = concurrent.futures.ThreadPoolExecutor(EXECUTOR_WORKERS, thread_name_prefix="bench")
    loops = {name: new_loop(name) for name in args.loops}
    rng = random.Random(args.seed)
    cells: dict[Key, Cell] = {}
    deltas: dict[tuple[str, int], StatsDelta] = {}
    opened: dict[str, dict[str, Engine]] = {}
    started = time.monotonic()
    try:
        checked = 0
        for loop_name, loop in loops.items():
            opened[loop_name] = loop.run_until_complete(open_engines(args.engines, path, fd, pool))
            checked += loop.run_until_complete(check(opened[loop_name], sizes, content, rng))
        console.print(f"checking pass: {checked} reads, every engine returned the file's bytes")
        for loop_name in loops:
            for size in sizes:
                deltas[(loop_name, size)] = StatsDelta()
                for name in args.engines:
                    cells[(loop_name, size, name)] = Cell()
        engines, loop_names = list(args.engines), list(loops)
        # Random collections would land in whichever op runs then: off while timing.
        gc.collect()
        gc.disable()
        for r in range(args.rounds):
            warm(fd)
            order = engines[r % len(engines) :] + engines[: r % len(engines)]
            for size in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
                for loop_name in loop_names if r % 2 == 0 else loop_names[::-1]:
                    # Same offsets for every engine within a round: same pages.
                    offs = [
                        rng.randrange(0, (args.file_size - size) // PAGE) * PAGE
                        for _ in range(args.batch)
                    ]
                    loop = loops[loop_name]
                    loop.run_until_complete(
                        one_round(
                            opened[loop_name],
                            order,
                            size,
                            dict.fromkeys(engines, offs),
                            {e: cells[(loop_name, size, e)] for e in engines},
                            deltas[(loop_name, size)],
                        )
                    )
            gc.collect(0)  # keep young objects from piling up (cheap, between rounds)
    finally:
        gc.enable()
        for loop_name, loop in loops.items():
            for engine in opened.get(loop_name, {}).values():
                loop.run_until_complete(engine.close())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
        pool.shutdown()
        os.close(fd)
        os.unlink(path)
    elapsed = time.monotonic() - started
    return summarize(args, cells, deltas, elapsed, checked)


def summarize(
    args: argparse.Namespace,
    cells: dict[Key, Cell],
    deltas: dict[tuple[str, int], StatsDelta],
    elapsed: float,
    checked: int,
) -> dict[str, Any]:
    rows = []
    for (loop_name, size, name), cell in cells.items():
        ordered = sorted(cell.samples)
        raw = cells.get((loop_name, size, REFERENCE.get(name, "raw")))
        raw_median = statistics.median(raw.samples) if raw else 0.0
        median = statistics.median(ordered)
        row: dict[str, Any] = {
            "loop": loop_name,
            "size": size,
            "engine": name,
            "ops": len(ordered),
            "median_ns": median,
            "p90_ns": percentile(ordered, 90),
            "p99_ns": percentile(ordered, 99),
            "mean_ns": statistics.fmean(ordered),
            "first_of_batch_median_ns": statistics.median(cell.first),
            "ratio_vs_raw": median / raw_median if raw_median else None,
            "reference": REFERENCE.get(name, "raw"),
            "alias_share": (
                cell.alias_hits / len(ordered) if ENGINE_CLASSES[name].tracks_alias else None
            ),
        }
        if raw is not None:
            # Per-round paired ratios: both medians come from the same round.
            ratios = sorted(
                m / r for m, r in zip(cell.round_medians, raw.round_medians, strict=True)
            )
            row["round_ratio_p10"] = percentile(ratios, 10)
            row["round_ratio_p90"] = percentile(ratios, 90)
        rows.append(row)
    by_key = {(r["loop"], r["size"], r["engine"]): r for r in rows}
    bars = []
    for loop_name in args.loops:
        afr = by_key.get((loop_name, BAR_SIZE, "aiofastread"))
        raw_row = by_key.get((loop_name, BAR_SIZE, "raw"))
        aiofiles_row = by_key.get((loop_name, BAR_SIZE, "aiofiles"))
        if afr is None or raw_row is None:
            continue
        bar: dict[str, Any] = {
            "loop": loop_name,
            "size": BAR_SIZE,
            "aiofastread_over_raw": afr["median_ns"] / raw_row["median_ns"],
        }
        bar["meets_1_5x"] = bar["aiofastread_over_raw"] <= BAR_RAW
        bar["meets_1_3x"] = bar["aiofastread_over_raw"] <= GOAL_RAW
        if aiofiles_row is not None:
            bar["aiofiles_over_aiofastread"] = aiofiles_row["median_ns"] / afr["median_ns"]
            bar["meets_25x"] = bar["aiofiles_over_aiofastread"] >= BAR_AIOFILES
        bars.append(bar)
    return {
        "environment": environment(),
        "config": {
            "sizes": args.sizes,
            "loops": args.loops,
            "engines": args.engines,
            "rounds": args.rounds,
            "batch": args.batch,
            "file_size": args.file_size,
            "seed": args.seed,
            "offsets": "random, 4 KiB-aligned",
            "elapsed_s": round(elapsed, 1),
            "checked_reads": checked,
        },
        "results": rows,
        "statistics": [
            {"loop": lp, "size": sz, **dataclasses.asdict(d)} for (lp, sz), d in deltas.items()
        ],
        "bars": bars,
    }


ENGINE_CLASSES: dict[str, type[Engine]] = {
    cls.name: cls
    for cls in (
        Raw,
        RawPreadv,
        Aiofastread,
        AfrPread,
        AfrReadinto,
        AfrPreadInto,
        Executor,
        Aiofiles,
    )
}


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "aiofastread_backend": aiofastread.backend(),
        "aiofiles": version("aiofiles"),
        "uvloop": version("uvloop"),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
    }


def print_comparison(report: dict[str, Any], console: Console) -> None:
    rows = report["results"]
    for loop_name in report["config"]["loops"]:
        table = Table(
            title=f"Cached reads on {loop_name}: per-op latency, us "
            "(ratios are of medians, vs raw os.pread; *_into vs os.preadv)"
        )
        for col in (
            "size",
            "engine",
            "median",
            "p99",
            "x raw",
            "per-round x raw p10-p90",
            "1st of batch",
            "4K-alias ops",
        ):
            table.add_column(col, justify="left" if col in ("size", "engine") else "right")
        for size in report["config"]["sizes"]:
            for row in rows:
                if row["loop"] != loop_name or row["size"] != size:
                    continue
                ratio = row["ratio_vs_raw"]
                spread = (
                    f"{row['round_ratio_p10']:.2f}-{row['round_ratio_p90']:.2f}"
                    if "round_ratio_p10" in row
                    else ""
                )
                alias = "-" if row["alias_share"] is None else f"{100 * row['alias_share']:.0f}%"
                table.add_row(
                    human(size),
                    row["engine"],
                    us(row["median_ns"]),
                    us(row["p99_ns"]),
                    f"{ratio:.2f}" if ratio else "",
                    spread,
                    us(row["first_of_batch_median_ns"]),
                    alias,
                )
            table.add_section()
        console.print(table)

    table = Table(title="aiofastread.statistics() deltas over the timed aiofastread reads")
    counts = (
        "reads",
        "inline_hits",
        "inline_misses",
        "short_reads",
        "pool_submissions",
        "pool_reads",
    )
    for col in ("loop", "size", *counts):
        table.add_column(col, justify="right")
    for d in report["statistics"]:
        table.add_row(d["loop"], human(d["size"]), *(str(d[k]) for k in counts))
    console.print(table)

    table = Table(title=f"The issue's bars ({human(BAR_SIZE)} seek + read, medians, one run)")
    for col in (
        "loop",
        "aiofastread / raw",
        f"<= {BAR_RAW}x",
        f"<= {GOAL_RAW}x (goal)",
        "aiofiles / aiofastread",
        f">= {BAR_AIOFILES:.0f}x",
    ):
        table.add_column(col, justify="right")

    def mark(ok: bool | None) -> str:
        return "" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]")

    for bar in report["bars"]:
        over = bar.get("aiofiles_over_aiofastread")
        table.add_row(
            bar["loop"],
            f"{bar['aiofastread_over_raw']:.2f}x",
            mark(bar["meets_1_5x"]),
            mark(bar["meets_1_3x"]),
            f"{over:.0f}x" if over else "",
            mark(bar.get("meets_25x")),
        )
    console.print(table)
    cfg = report["config"]
    backend = report["environment"]["aiofastread_backend"]
    console.print(
        f"{cfg['rounds']} rounds x {cfg['batch']} ops per engine, size and loop; "
        f"{cfg['elapsed_s']} s; offsets {cfg['offsets']} in a "
        f"{human(cfg['file_size'])} file; aiofastread backend {backend}"
    )


# -- breakdown of the fast path ------------------------------------------------------------


async def _noop() -> int:
    return 0


def _breakdown_pieces(
    f: aiofastread.AsyncBufferedReader,
    fd: int,
    size: int,
    offsets: Sequence[int],
    buffer: memoryview,
) -> dict[str, Callable[[], Coroutine[Any, Any, int]]]:
    """Each piece as a coroutine that runs it once per offset and returns total ns.

    A batch is timed as a whole (the clock costs ~70 ns, as much as some
    pieces), so each piece's number is a mean over the batch.
    """
    clock = time.perf_counter_ns
    pread = os.pread
    pieces: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {}

    async def empty_loop() -> int:
        t0 = clock()
        for _off in offsets:
            pass
        return clock() - t0

    async def timer_pair() -> int:
        t0 = clock()
        for _off in offsets:
            clock()
            clock()
        return clock() - t0

    async def await_noop() -> int:
        t0 = clock()
        for _off in offsets:
            await _noop()
        return clock() - t0

    async def seek() -> int:
        t0 = clock()
        for off in offsets:
            await f.seek(off)
        return clock() - t0

    async def seek_read() -> int:
        t0 = clock()
        for off in offsets:
            await f.seek(off)
            await f.read(size)
        return clock() - t0

    async def os_pread() -> int:
        t0 = clock()
        for off in offsets:
            pread(fd, size, off)
        return clock() - t0

    async def os_pread_0() -> int:
        t0 = clock()
        for off in offsets:
            pread(fd, 0, off)
        return clock() - t0

    read_nowait = _native.backend.read_nowait

    async def native_read() -> int:
        t0 = clock()
        for off in offsets:
            read_nowait(fd, size, off)
        return clock() - t0

    canned = bytes(size)

    def stub(_fd: int, _size: int, _offset: int) -> bytes:
        return canned

    async def python_only() -> int:
        # The library's own code with the native read replaced by a stub
        # that hands back a ready bytes: what the fast path costs in Python.
        real = _native.backend
        _native.backend = dataclasses.replace(real, read_nowait=stub)
        try:
            t0 = clock()
            for off in offsets:
                await f.seek(off)
                await f.read(size)
            return clock() - t0
        finally:
            _native.backend = real

    async def stub_call() -> int:
        t0 = clock()
        for off in offsets:
            stub(fd, size, off)
        return clock() - t0

    pieces.update(
        {
            "empty loop": empty_loop,
            "2x perf_counter_ns": timer_pair,
            "await noop()": await_noop,
            "await f.seek(off)": seek,
            "await f.seek(off); await f.read(n)": seek_read,
            "seek+read, native read stubbed": python_only,
            "stub call": stub_call,
            "_native.backend.read_nowait(fd, n, off)": native_read,
            "os.pread(fd, n, off)": os_pread,
            "os.pread(fd, 0, off)": os_pread_0,
        }
    )

    if _native.backend.name == "native" and _native_cffi is not None:
        ffi, lib = _native_cffi.ffi, _native_cffi.lib
        cbuf = ffi.from_buffer("char[]", buffer)
        pread_flags, unpack, nowait = lib.afr_pread_flags, ffi.unpack, _native.RWF_NOWAIT

        async def cffi_read() -> int:
            t0 = clock()
            for off in offsets:
                pread_flags(fd, cbuf, size, off, nowait)
            return clock() - t0

        async def cffi_read_0() -> int:
            t0 = clock()
            for off in offsets:
                pread_flags(fd, cbuf, 0, off, nowait)
            return clock() - t0

        async def cffi_unpack() -> int:
            t0 = clock()
            for _off in offsets:
                unpack(cbuf, size)
            return clock() - t0

        pieces.update(
            {
                "cffi afr_pread_flags(n) into aligned buffer": cffi_read,
                "cffi afr_pread_flags(0)": cffi_read_0,
                "ffi.unpack(buf, n)": cffi_unpack,
            }
        )
    return pieces


def run_breakdown(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    size = args.sizes[0] if len(args.sizes) == 1 else BAR_SIZE
    path, _content = make_file(args.dir, args.file_size, args.seed)
    fd = os.open(path, os.O_RDONLY)
    rng = random.Random(args.seed)
    means: dict[str, dict[str, float]] = {}
    # The bare cffi read's destination, made once (a fresh mapping per round
    # would add its page faults): 64 bytes into a page, like aiofastread's
    # scratch, so clear of the 4 KiB-alias window for page-aligned sources.
    buffer = memoryview(mmap.mmap(-1, size + 64))[64 : 64 + size]
    buffer[:] = bytes(size)
    try:
        for loop_name in args.loops:
            loop = new_loop(loop_name)

            async def measure() -> dict[str, float]:
                f = await aiofastread.open(path, "rb")
                assert isinstance(f, aiofastread.AsyncBufferedReader)
                await f.read(size)  # first read: residency check, file becomes WARM
                totals: dict[str, list[float]] = {}
                try:
                    for r in range(args.rounds):
                        if r % 10 == 0:
                            warm(fd)
                        offsets = [
                            rng.randrange(0, (args.file_size - size) // PAGE) * PAGE
                            for _ in range(args.batch)
                        ]
                        pieces = _breakdown_pieces(f, fd, size, offsets, buffer)
                        names = list(pieces)
                        rng.shuffle(names)
                        for name in names:
                            ns = await pieces[name]()
                            totals.setdefault(name, []).append(ns / len(offsets))
                finally:
                    await f.close()
                return {name: statistics.median(v) for name, v in totals.items()}

            gc.collect()
            gc.disable()
            try:
                means[loop_name] = loop.run_until_complete(measure())
            finally:
                gc.enable()
                loop.close()
    finally:
        os.close(fd)
        os.unlink(path)

    table = Table(
        title=f"Fast path pieces, {human(size)}: mean ns per op (median over rounds of batch means)"
    )
    table.add_column("piece")
    for loop_name in args.loops:
        table.add_column(loop_name, justify="right")
    for name in means[args.loops[0]]:
        table.add_row(name, *(f"{means[lp][name]:.0f}" for lp in args.loops))
    console.print(table)

    derived = {lp: derive(m) for lp, m in means.items()}
    table = Table(
        title="Where the time of `await f.seek(o); await f.read(n)` goes, ns "
        "(derived from the pieces)"
    )
    table.add_column("part")
    for loop_name in args.loops:
        table.add_column(loop_name, justify="right")
    for name in derived[args.loops[0]]:
        table.add_row(name, *(f"{derived[lp][name]:.0f}" for lp in args.loops))
    ratios = {
        lp: d["= aiofastread total (measured)"] / d["= os.pread total (measured)"]
        for lp, d in derived.items()
    }
    table.add_row("aiofastread / os.pread", *(f"{ratios[lp]:.2f}x" for lp in args.loops))
    console.print(table)
    if _native.HAS_HIT_PATH and _native.backend.name == "native":
        # A stubbed read_nowait is a replaced Backend: the C hit path stands
        # aside for it (docs/design.md, "The C hit path"), so the stubbed rows
        # time the Python hit path, not the one the measured total used.
        console.print(
            "note: the C hit path served the measured total; the rows with "
            "read_nowait stubbed time the Python hit path, so the derived "
            "parts describe that path, not the C one."
        )
    return {
        "breakdown": {
            "size": size,
            "pieces": means,
            "derived": derived,
            "ratio": ratios,
            "environment": environment(),
        }
    }


def derive(m: dict[str, float]) -> dict[str, float]:
    """Split the op into parts; each part is a difference of measured pieces."""
    out: dict[str, float] = {}
    full = m["await f.seek(off); await f.read(n)"]
    python_total = m["seek+read, native read stubbed"] - m["stub call"]
    seek = m["await f.seek(off)"] - m["empty loop"]
    out["seek: coroutine + checks"] = seek
    out["read: coroutine + fast-path checks + counters"] = python_total - seek
    native = m["_native.backend.read_nowait(fd, n, off)"] - m["empty loop"]
    builtin = isinstance(_native.backend.read_nowait, types.BuiltinFunctionType)
    if "cffi afr_pread_flags(n) into aligned buffer" in m and not builtin:
        call0 = m["cffi afr_pread_flags(0)"] - m["empty loop"]
        copy = m["cffi afr_pread_flags(n) into aligned buffer"] - m["cffi afr_pread_flags(0)"]
        unpack = m["ffi.unpack(buf, n)"] - m["empty loop"]
        out["cffi call + preadv2 syscall, no bytes copied"] = call0
        out["kernel copy into the scratch buffer"] = copy
        out["ffi.unpack: malloc + memcpy into the bytes"] = unpack
        # The rest: the Python function, its threading.local scratch lookup, and
        # the 1 MiB scratch buffer being colder than the small buffer used above.
        out["read_nowait wrapper + scratch (residual)"] = native - call0 - copy - unpack
    else:  # a C read_nowait: one call, one copy
        out["native read_nowait"] = native
    out["= aiofastread total (measured)"] = full - m["empty loop"]
    pread = m["os.pread(fd, n, off)"] - m["empty loop"]
    out["os.pread: call + pread syscall, no bytes copied"] = (
        m["os.pread(fd, 0, off)"] - m["empty loop"]
    )
    out["os.pread: malloc + kernel copy into the bytes"] = (
        pread - out["os.pread: call + pread syscall, no bytes copied"]
    )
    out["= os.pread total (measured)"] = pread
    return out


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="4KiB,16KiB,1MiB",
        help="comma-separated read sizes (default 4KiB,16KiB,1MiB)",
    )
    parser.add_argument("--loops", default=",".join(LOOPS), help="asyncio,uvloop (default both)")
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)} (default all)"
    )
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="ops per engine per round")
    parser.add_argument("--file-size", default=human(DEFAULT_FILE_SIZE).replace(" ", ""))
    parser.add_argument(
        "--dir",
        default=tempfile.gettempdir(),
        help="where to put the data file (needs RWF_NOWAIT: ext4/xfs/btrfs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time the pieces of the fast path instead (first --sizes "
        "entry if only one is given, else 16 KiB)",
    )
    args = parser.parse_args(argv)
    args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.file_size = parse_size(args.file_size)
    args.loops = [lp.strip() for lp in args.loops.split(",")]
    args.engines = [e.strip() for e in args.engines.split(",")]
    for bad in set(args.loops) - set(LOOPS):
        parser.error(f"--loops: unknown loop {bad!r}")
    for bad in set(args.engines) - set(ENGINES):
        parser.error(f"--engines: unknown engine {bad!r}")
    if max(args.sizes) * 4 > args.file_size:
        parser.error("--file-size must be at least 4x the largest size")

    # Wide tables: piped output (logs, docs) would otherwise wrap at 80 columns.
    console = Console(width=shutil.get_terminal_size((160, 40)).columns)
    if args.breakdown:
        report = run_breakdown(args, console)
    else:
        report = run_comparison(args, console)
        print_comparison(report, console)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
