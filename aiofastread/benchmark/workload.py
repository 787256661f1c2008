"""The f1/f2/f3 mix as asyncio tasks, and the heartbeat that watches the loop.

The mix is the fio experiment from the issue, with 16 KiB reads:

``f1``  random reads, zipf-distributed, over a data set kept in the page
        cache (the "hot" part of a database);
``f2``  uniform random reads over a large uncached file;
``f3``  sequential reads over a large uncached file.

Each workload runs N tasks; each task owns one handle and loops: pick an
offset, time one read, record the latency. Tasks yield to the loop after
every read (``await asyncio.sleep(0)``), as a request handler would between
requests: a read served inline does not suspend, so without the yield one
task with a warm file would keep the loop to itself for the whole run.

The heartbeat task sleeps 1 ms in a loop and records how late it wakes:
its worst lateness is the longest the loop was unable to run anything.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import os
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from aiofastread.benchmark import dataset, stats

if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable, Iterator

    from aiofastread.benchmark.engines import Engine, Reader

WORKLOADS: tuple[str, ...] = ("f1", "f2", "f3")
PATTERNS: dict[str, str] = {"f1": "zipf", "f2": "uniform", "f3": "sequential"}
# Heartbeat period: 1 ms, the finest sleep asyncio and uvloop honour (both
# wait in whole milliseconds in epoll_wait), and 5x finer than the 5 ms stall
# bar of the issue.
HEARTBEAT_NS = 1_000_000
# Distinct zipf ranks kept in the sampling table. Beyond ~64k blocks the
# tail of a zipf(1.2) has negligible mass per block, so larger files are
# sampled over their first 64k ranks of a random permutation of all blocks.
ZIPF_TABLE_MAX = 1 << 16


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    name: str
    path: str
    file_size: int
    tasks: int
    pattern: str  # "zipf" | "uniform" | "sequential"
    rate: float = 0.0  # reads/s for the whole workload; 0: closed loop, as fast as it goes


@dataclasses.dataclass
class WorkloadResult:
    name: str
    samples: array[int]  # latency of every read, ns, in completion order
    bytes: int = 0
    reads: int = 0
    pool_submissions: int = 0
    file_statistics: dict[str, Any] | None = None


@dataclasses.dataclass
class RunResult:
    """One engine's run of the mix."""

    engine: str
    seconds: float  # from the start to the last completed read
    workloads: dict[str, WorkloadResult]
    heartbeat: array[int]  # lateness of every 1 ms tick, ns
    heartbeat_ends: array[int]  # perf_counter_ns when each tick woke
    heartbeat_waits: array[int]  # ns the loop thread waited for a CPU during each tick
    heartbeat_misses: array[int]  # inline reads that missed during each tick
    counters: dict[str, Any]
    cache_before: dict[str, float | None]  # residency right before the start
    cache_after: dict[str, float | None] = dataclasses.field(default_factory=dict)
    pinned: dict[str, str] = dataclasses.field(default_factory=dict)  # warm file -> pin status
    evictions: int = 0  # keep-cold passes done during the run
    loop: str = ""  # the event loop class that ran it
    backend: str = ""  # aiofastread.backend() in the process that ran it
    window: tuple[int, int] = (0, 0)  # perf_counter_ns of start and last completion
    steal_ms: float | None = None  # CPU time the hypervisor took from the VM meanwhile
    noise: dict[str, float] | None = None  # noise.analyse() of the run, if measured


# -- offsets --------------------------------------------------------------------


def zipf_table(nblocks: int, theta: float) -> list[float]:
    """Cumulative zipf(theta) weights of ranks 1..n: rank k weighs 1/k**theta."""
    ranks = min(nblocks, ZIPF_TABLE_MAX)
    return list(itertools.accumulate(1.0 / (k**theta) for k in range(1, ranks + 1)))


def zipf_offsets(
    cum: list[float], block: int, rng: random.Random, permutation: list[int]
) -> Iterator[int]:
    """Offsets of blocks whose popularity follows the zipf table ``cum``.

    Ranks are mapped to blocks through a fixed random permutation, so hot
    blocks are scattered over the file as fio's zipf is (it hashes ranks),
    not packed at its start.
    """
    total = cum[-1]
    last = len(cum) - 1
    while True:
        rank = bisect.bisect_left(cum, rng.random() * total)
        yield permutation[min(rank, last)] * block


def uniform_offsets(nblocks: int, block: int, rng: random.Random) -> Iterator[int]:
    while True:
        yield rng.randrange(nblocks) * block


def sequential_offsets(nblocks: int, block: int, start_block: int) -> Iterator[int]:
    """From ``start_block`` to the end of the file, then from its start."""
    b = start_block
    while True:
        yield b * block
        b = b + 1 if b + 1 < nblocks else 0


def offset_streams(spec: WorkloadSpec, block: int, theta: float, seed: int) -> list[Iterator[int]]:
    """One offset stream per task; reproducible from ``seed``."""
    nblocks = max(spec.file_size // block, 1)
    streams: list[Iterator[int]] = []
    permutation: list[int] = []
    cum: list[float] = []
    if spec.pattern == "zipf":
        permutation = list(range(nblocks))
        random.Random(seed).shuffle(permutation)
        cum = zipf_table(nblocks, theta)
    for i in range(spec.tasks):
        rng = random.Random(f"{seed}-{spec.name}-{i}")
        if spec.pattern == "zipf":
            streams.append(zipf_offsets(cum, block, rng, permutation))
        elif spec.pattern == "uniform":
            streams.append(uniform_offsets(nblocks, block, rng))
        elif spec.pattern == "sequential":
            # Tasks start evenly spread, so each is its own sequential stream
            # (with its own readahead) rather than all trailing one another.
            streams.append(sequential_offsets(nblocks, block, i * nblocks // spec.tasks))
        else:
            raise ValueError(f"unknown pattern {spec.pattern!r}")
    return streams


# -- the run --------------------------------------------------------------------


class KeepCold:
    """A thread that evicts the given files every ``interval`` seconds.

    For the all-cold variant: what the reads pull into the page cache is
    dropped again, so the files stay (nearly) uncached for the whole run.
    A thread of its own, not the pool under test; posix_fadvise releases the
    GIL, so the loop barely notices it.
    """

    def __init__(self, paths: list[str], interval: float) -> None:
        self.paths = paths
        self.interval = interval
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-keep-cold", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for path in self.paths:
                dataset.drop(path)
            self.passes += 1


async def _read_loop(
    reader: Reader,
    offsets: Iterator[int],
    size: int,
    deadline_ns: int,
    result: WorkloadResult,
    last_done: list[int],
    interval_ns: int = 0,
) -> None:
    """One task. ``interval_ns`` > 0 paces it (open loop): read k starts at
    ``start + k * interval`` or, when the task is behind, right away. The
    latency is timed from the actual start, as fio does with ``rate``."""
    clock = time.perf_counter_ns
    record = result.samples.append
    read = reader.read
    sleep = asyncio.sleep
    nbytes = reads = 0
    due = clock()
    try:
        while clock() < deadline_ns:
            offset = next(offsets)
            t0 = clock()
            nbytes += await read(offset, size)
            t1 = clock()
            record(t1 - t0)
            reads += 1
            if interval_ns:
                due += interval_ns
                await sleep(max(due - t1, 0) / 1e9)
            else:
                await sleep(0)
    finally:
        result.bytes += nbytes
        result.reads += reads
        last_done[0] = max(last_done[0], clock())


async def _heartbeat(
    deadline_ns: int,
    lateness: array[int],
    ends: array[int],
    waits: array[int],
    misses: array[int],
    count_misses: Callable[[], int],
) -> None:
    """Tick every 1 ms; per tick record lateness, wake time, how long the
    loop thread sat runnable in the CPU run queue meanwhile (``waits``: the
    part of a stall that other processes caused, not the loop) and how many
    inline reads missed meanwhile (``misses``: a NOWAIT miss can start
    readahead on the loop thread, ../shared/DESIGN.md, so stalls with one are suspect)."""
    clock = time.perf_counter_ns
    period = HEARTBEAT_NS / 1e9
    read_wait = RunQueueWait()
    before = read_wait()
    missed = count_misses()
    try:
        while clock() < deadline_ns:
            t0 = clock()
            await asyncio.sleep(period)
            t1 = clock()
            lateness.append(max(t1 - t0 - HEARTBEAT_NS, 0))
            ends.append(t1)
            after = read_wait()
            waits.append(after - before)
            before = after
            now_missed = count_misses()
            misses.append(now_missed - missed)
            missed = now_missed
    finally:
        read_wait.close()


class RunQueueWait:
    """ns the calling thread has waited for a CPU while runnable
    (/proc/thread-self/schedstat, second field; 0s where it is missing)."""

    def __init__(self) -> None:
        try:
            # Bound to the thread that opens it: the heartbeat's, the loop's.
            self.fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self.fd = None

    def __call__(self) -> int:
        if self.fd is None:
            return 0
        try:
            return int(os.pread(self.fd, 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            return 0

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def steal_ticks() -> int | None:
    """Jiffies the hypervisor ran something else instead of this VM (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    return int(fields[8]) if len(fields) > 8 and fields[0] == "cpu" else None


async def _ticker(
    deadline_ns: int, results: dict[str, WorkloadResult], tick: Callable[[float, int], None]
) -> None:
    """Report progress every 0.25 s (elapsed fraction, reads so far)."""
    start = time.perf_counter_ns()
    span = max(deadline_ns - start, 1)
    while (now := time.perf_counter_ns()) < deadline_ns:
        tick((now - start) / span, sum(len(r.samples) for r in results.values()))
        await asyncio.sleep(min(0.25, (deadline_ns - now) / 1e9))


async def run_mix(
    engine: Engine,
    specs: list[WorkloadSpec],
    *,
    seconds: float,
    read_size: int,
    theta: float,
    seed: int,
    warm: list[str],
    cold: list[str],
    keep_cold_interval: float | None = None,
    pin: bool = True,
    tick: Callable[[float, int], None] | None = None,
) -> RunResult:
    """Open, set the cache state, run the mix for ``seconds``, close.

    The cache state is set after the files are opened and right before the
    clock starts (the page cache of this VM is reclaimed after ~20 s idle).
    ``pin`` locks the warm files in memory for the run (dataset.Pinned).
    """
    readers: dict[str, list[Reader]] = {}
    pins: list[dataset.Pinned] = []
    pin_status: dict[str, str] = {}  # path -> "pinned" or why not
    try:
        for spec in specs:
            readers[spec.name] = [await engine.open(spec.path) for _ in range(spec.tasks)]
        for path in cold:
            dataset.evict(path)
        for path in warm:
            dataset.warm(path)
            if pin:
                handle, pin_status[path] = dataset.pin(path)
                if handle is not None:
                    pins.append(handle)
        cache_before = {spec.name: dataset.residency(spec.path) for spec in specs}
        results = {s.name: WorkloadResult(s.name, stats.new_samples()) for s in specs}
        streams = {s.name: offset_streams(s, read_size, theta, seed) for s in specs}
        lateness = stats.new_samples()
        tick_ends = stats.new_samples()
        tick_waits = stats.new_samples()
        tick_misses = stats.new_samples()
        keeper = KeepCold(cold, keep_cold_interval) if keep_cold_interval else None

        # Each of a workload's tasks takes an equal part of its rate.
        intervals = {
            s.name: int(s.tasks * 1e9 / s.rate) if s.rate > 0 else 0 for s in specs if s.tasks
        }
        engine.reset_counters()
        steal0 = steal_ticks()
        start = time.perf_counter_ns()
        deadline = start + int(seconds * 1e9)
        last_done = [start]
        if keeper is not None:
            keeper.start()
        try:
            coros = [
                _read_loop(
                    r, stream, read_size, deadline, results[name], last_done, intervals[name]
                )
                for name, rs in readers.items()
                for r, stream in zip(rs, streams[name], strict=False)
            ]
            coros.append(
                _heartbeat(
                    deadline, lateness, tick_ends, tick_waits, tick_misses, engine.inline_misses
                )
            )
            if tick is not None:
                coros.append(_ticker(deadline, results, tick))
            await asyncio.gather(*coros)
        finally:
            if keeper is not None:
                keeper.stop()
        steal1 = steal_ticks()
        cache_after = {spec.name: dataset.residency(spec.path) for spec in specs}
        counters = engine.counters()
        for name, rs in readers.items():
            res = results[name]
            res.pool_submissions = sum(r.counters.pool_submissions for r in rs)
            res.file_statistics = rs[0].file_statistics() if rs else None  # per inode
            if res.file_statistics is not None:
                res.pool_submissions = int(res.file_statistics["pool_reads"])
        return RunResult(
            engine=engine.name,
            seconds=(last_done[0] - start) / 1e9,
            workloads=results,
            heartbeat=lateness,
            heartbeat_ends=tick_ends,
            heartbeat_waits=tick_waits,
            heartbeat_misses=tick_misses,
            counters=counters,
            cache_before=cache_before,
            cache_after=cache_after,
            pinned={s.name: pin_status[s.path] for s in specs if s.path in pin_status},
            evictions=keeper.passes if keeper is not None else 0,
            window=(start, last_done[0]),
            steal_ms=(
                (steal1 - steal0) * 1000.0 / os.sysconf("SC_CLK_TCK")
                if steal0 is not None and steal1 is not None
                else None
            ),
        )
    finally:
        for handle in pins:
            handle.close()
        for rs in readers.values():
            for r in rs:
                await r.close()
