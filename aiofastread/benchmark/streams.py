"""The stream workload: tasks that read whole files, start to end.

``aiofastread bench --workload stream``: each of N tasks opens a file of its
own and reads it to EOF the way an application streams a file::

    while chunk := await f.read(n):
        ...

with no other await between reads (a read served inline does not suspend:
the loop is the engine's to keep fair). A 1 ms heartbeat task runs next to
them. One cell per engine x cache state (warm: every page cached first;
cold: evicted first) x chunk size; per cell: MB/s (all tasks' bytes over the
time until the last one finished), the share of bytes served inline, the
worst heartbeat lateness (how long the loop could not run anything) and its
controls: the loop thread's worst run-queue wait in one tick (other
processes holding the CPU) and the worst lateness of an idle sleeper
process meanwhile (the machine's own stalls, noise.py).

Engines run in this process one after the other (``aiofastread``, the
thread-pool baseline ``nofast``, ``aiofiles``); each cell starts from a
cleared policy table and fresh counters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

import aiofastread
from aiofastread import _runtime
from aiofastread.benchmark import dataset, engines, noise, runner, workload

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

ENGINES: tuple[str, ...] = ("aiofastread", "nofast", "aiofiles")
# Run only when named in --engines: aiofastread with readahead off (A/B).
OPTIONAL_ENGINES: tuple[str, ...] = ("noahead",)
BASELINE = "nofast"
CACHES: tuple[str, ...] = ("warm", "cold")
# 64 KiB (a typical copy buffer), 256 KiB (aiohttp's FileResponse chunk),
# 1 MiB (the inline cap: larger reads always go to the pool).
DEFAULT_CHUNKS: tuple[int, ...] = (64 << 10, 256 << 10, 1 << 20)
DEFAULT_TASKS = 4
# 64 MiB a task: four cold ones take ~10 s on the 300-IOPS slow device.
DEFAULT_FILE_SIZE = 64 << 20
_WRITE_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    tasks: int
    file_size: int
    chunks: tuple[int, ...]
    caches: tuple[str, ...]
    engines: tuple[str, ...]
    workers: int
    loop: str


@dataclasses.dataclass
class Cell:
    """One engine streaming every file once, in one cache state and chunk size."""

    engine: str
    cache: str
    chunk: int
    seconds: float
    nbytes: int
    inline_bytes: int | None  # None: the engine has no inline path
    stall_ns: int  # worst heartbeat lateness
    stall_p99_ns: int
    runq_ns: int  # worst run-queue wait of the loop thread in one tick
    idle_stall_ns: int  # worst lateness of the idle sleeper process meanwhile
    readahead_jobs: int = 0
    pool_reads: int = 0  # reads (or remainders) the miss pool served
    device_reads: int = 0  # read requests the files' block device completed
    device_bytes: int = 0  # and their bytes (/sys/dev/block/M:m/stat)
    window: tuple[int, int] = (0, 0)  # perf_counter_ns at its start and end

    @property
    def mb_s(self) -> float:
        return self.nbytes / max(self.seconds, 1e-9) / 1e6

    @property
    def inline_share(self) -> float | None:
        return None if self.inline_bytes is None else self.inline_bytes / max(self.nbytes, 1)


def device_reads(path: Path) -> tuple[int, int] | None:
    """Blocking: (read requests completed, bytes read) so far by the block
    device holding ``path`` (the kernel's block stat file, which counts the
    device's own requests: an IOPS-limited device is limited in these), or
    None where there is no such file (tmpfs, overlay...)."""
    dev = os.stat(path).st_dev
    try:
        with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat", encoding="ascii") as fh:
            fields = fh.read().split()
    except OSError:
        return None
    return int(fields[0]), int(fields[2]) * 512


def stream_files(directory: Path, cfg: StreamConfig) -> list[Path]:
    """One file per task (blocking; reused while the size matches)."""
    paths = []
    block = os.urandom(_WRITE_BLOCK)
    for i in range(cfg.tasks):
        path = directory / f"stream-{i}.dat"
        if not path.exists() or path.stat().st_size != cfg.file_size:
            with open(path, "wb") as fh:
                left = cfg.file_size
                while left > 0:
                    left -= fh.write(block[: min(left, _WRITE_BLOCK)])
        paths.append(path)
    return paths


async def _heartbeat(stop: asyncio.Event, lateness: list[int], waits: list[int]) -> None:
    clock = time.perf_counter_ns
    period = workload.HEARTBEAT_NS / 1e9
    run_queue = workload.RunQueueWait()
    before = run_queue()
    try:
        while not stop.is_set():
            t0 = clock()
            await asyncio.sleep(period)
            lateness.append(max(clock() - t0 - workload.HEARTBEAT_NS, 0))
            after = run_queue()
            waits.append(after - before)
            before = after
    finally:
        run_queue.close()


async def _stream_aiofastread(path: Path, chunk: int) -> int:
    n = 0
    async with aiofastread.open(path, "rb") as f:
        while data := await f.read(chunk):
            n += len(data)
    return n


async def _stream_aiofiles(path: Path, chunk: int, executor: concurrent.futures.Executor) -> int:
    import aiofiles  # optional: only this engine needs it

    n = 0
    async with aiofiles.open(path, "rb", executor=executor) as f:
        while data := await f.read(chunk):
            n += len(data)
    return n


async def _run_cell(
    engine: str, paths: list[Path], chunk: int, executor: concurrent.futures.Executor | None
) -> tuple[float, int, list[int], list[int]]:
    stop = asyncio.Event()
    lateness: list[int] = []
    waits: list[int] = []
    beat = asyncio.create_task(_heartbeat(stop, lateness, waits))
    await asyncio.sleep(0.01)  # the heartbeat is ticking before the clock starts
    start = time.perf_counter()
    if engine == "aiofiles":
        assert executor is not None
        counts = await asyncio.gather(*(_stream_aiofiles(p, chunk, executor) for p in paths))
    else:
        counts = await asyncio.gather(*(_stream_aiofastread(p, chunk) for p in paths))
    seconds = time.perf_counter() - start
    stop.set()
    await beat
    return seconds, sum(counts), lateness, waits


def run_cell(cfg: StreamConfig, engine: str, cache: str, chunk: int, paths: list[Path]) -> Cell:
    """Set the cache state, stream every file once with ``engine``, measure
    (``idle_stall_ns`` is filled in by ``run_all``, from the sleeper)."""
    aiofastread.configure(
        max_workers=cfg.workers, fast_path=engine != "nofast", readahead=engine != "noahead"
    )
    _runtime.POLICY.clear()
    aiofastread.reset_statistics()
    for path in paths:
        (dataset.warm if cache == "warm" else dataset.evict)(str(path))
    executor = (
        concurrent.futures.ThreadPoolExecutor(cfg.workers, "bench-aiofiles")
        if engine == "aiofiles"
        else None
    )
    try:
        dev_before = device_reads(paths[0])
        begin = time.perf_counter_ns()
        seconds, nbytes, lateness, waits = _run(cfg.loop, _run_cell(engine, paths, chunk, executor))
        end = time.perf_counter_ns()
        dev_after = device_reads(paths[0])
    finally:
        aiofastread.configure(fast_path=True, readahead=True)
        if executor is not None:
            executor.shutdown(wait=True)
    stats = aiofastread.statistics()
    ordered = sorted(lateness)
    return Cell(
        engine=engine,
        cache=cache,
        chunk=chunk,
        seconds=seconds,
        nbytes=nbytes,
        inline_bytes=stats.bytes_inline if engine != "aiofiles" else None,
        stall_ns=ordered[-1] if ordered else 0,
        stall_p99_ns=ordered[int(len(ordered) * 0.99)] if ordered else 0,
        runq_ns=max(waits, default=0),
        idle_stall_ns=0,
        readahead_jobs=stats.readahead_jobs if engine != "aiofiles" else 0,
        pool_reads=stats.pool_reads,
        device_reads=dev_after[0] - dev_before[0] if dev_before and dev_after else 0,
        device_bytes=dev_after[1] - dev_before[1] if dev_before and dev_after else 0,
        window=(begin, end),
    )


def _run(loop: str, coro: Any) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


# The sleeper is a fresh interpreter: give it this long to start sleeping.
_SLEEPER_START_S = 0.5


def run_all(
    cfg: StreamConfig, paths: list[Path], on_cell: Callable[[Cell], None] | None = None
) -> list[Cell]:
    """Every cell, with an idle sleeper process alongside as the control
    for stalls (noise.py; its clock is the heartbeat's)."""
    cells = []
    with tempfile.TemporaryDirectory(prefix="aiofastread-stream-") as tmp:
        noise_file = Path(tmp) / "noise.bin"
        sleeper = subprocess.Popen(
            [sys.executable, "-m", "aiofastread.benchmark.noise", str(noise_file)],
            stdin=subprocess.PIPE,
        )
        try:
            time.sleep(_SLEEPER_START_S)
            for cache in cfg.caches:
                for chunk in cfg.chunks:
                    for engine in cfg.engines:
                        cell = run_cell(cfg, engine, cache, chunk, paths)
                        cells.append(cell)
                        if on_cell is not None:
                            on_cell(cell)
        finally:
            if sleeper.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    sleeper.stdin.close()
            sleeper.wait()
        if noise_file.exists():
            ends, lates = noise.load(str(noise_file))
            for cell in cells:
                begin, end = cell.window
                cell.idle_stall_ns = max(
                    (late for t, late in zip(ends, lates, strict=True) if begin <= t <= end),
                    default=0,
                )
    return cells


# -- report -----------------------------------------------------------------------


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.2f} ms"


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n >> 10} KiB"


def rows(cells: list[Cell]) -> list[list[str]]:
    """One row per cell, with MB/s against the baseline's in the same cache
    state and chunk size."""
    base = {(c.cache, c.chunk): c.mb_s for c in cells if c.engine == BASELINE}
    out = []
    for c in cells:
        ref = base.get((c.cache, c.chunk))
        share = c.inline_share
        out.append(
            [
                c.cache,
                _size(c.chunk),
                c.engine,
                f"{c.mb_s:.1f}",
                f"{c.mb_s / ref:.2f}x" if ref else "-",
                "-" if share is None else f"{share:.0%}",
                _ms(c.stall_ns),
                _ms(c.stall_p99_ns),
                _ms(c.runq_ns),
                _ms(c.idle_stall_ns),
                str(c.readahead_jobs),
                str(c.pool_reads),
                str(c.device_reads),
                f"{c.device_bytes / c.device_reads / 1024:.0f}" if c.device_reads else "-",
            ]
        )
    return out


HEADERS = [
    "cache",
    "chunk",
    "engine",
    "MB/s",
    f"vs {BASELINE}",
    "inline",
    "worst stall",
    "p99 stall",
    "worst run-queue wait",
    "idle process stall",
    "readahead jobs",
    "pool reads",
    "device reads",
    "KiB/device read",
]


def to_markdown(cells: list[Cell], title: str) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(HEADERS) + " |"]
    lines.append("| " + " | ".join("---" if i < 3 else "--:" for i in range(len(HEADERS))) + " |")
    lines += ["| " + " | ".join(r) + " |" for r in rows(cells)]
    return "\n".join(lines) + "\n"


def to_json(cells: list[Cell]) -> list[dict[str, Any]]:
    return [
        {**dataclasses.asdict(c), "mb_s": c.mb_s, "inline_share": c.inline_share} for c in cells
    ]


def run(
    cfg: StreamConfig,
    bench: runner.BenchConfig,
    argv: list[str],
    out: Console,
    err: Console,
) -> dict[str, Any]:
    """``aiofastread bench --workload stream``: place, build, run, report."""
    if "aiofiles" in cfg.engines and engines.AiofilesEngine.unavailable_reason() is not None:
        cfg = dataclasses.replace(cfg, engines=tuple(e for e in cfg.engines if e != "aiofiles"))
    started = time.time()
    runner.warn_if_busy(err)
    with runner.placement(bench, err) as (directory, fstype, dev):
        err.print(f"building {cfg.tasks} files of {_size(cfg.file_size)} in {directory}")
        paths = stream_files(directory, cfg)
        if dev is not None:
            dev.join()  # this process's reads (and its threads') are throttled
        machine = runner.machine_info(fstype, directory)
        cells = run_all(cfg, paths, on_cell=lambda c: err.print(" | ".join(rows([c])[0][:6])))
        machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    title = (
        f"stream: {cfg.tasks} tasks x {_size(cfg.file_size)}, {cfg.loop}, "
        f"{'slow device ' + str(bench.slow_device) + ' IOPS' if dev is not None else fstype}"
    )
    table = Table(title=title)
    for i, head in enumerate(HEADERS):
        table.add_column(head, justify="left" if i < 3 else "right")
    for row in rows(cells):
        table.add_row(*row)
    out.print(table)
    result = {
        "command": ["aiofastread", *argv],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine,
        "config": dataclasses.asdict(cfg),
        "slow_device": dev.describe() if dev is not None else None,
        "cells": to_json(cells),
    }
    if bench.json_path is not None:
        bench.json_path.write_text(json.dumps(result, indent=1), encoding="utf-8")
        err.print(f"JSON report written to {bench.json_path}")
    if bench.markdown_path is not None:
        bench.markdown_path.write_text(to_markdown(cells, title), encoding="utf-8")
        err.print(f"markdown table written to {bench.markdown_path}")
    return result
