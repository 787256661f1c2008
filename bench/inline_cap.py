"""Inline read cost vs a thread hop, 4 KiB..4 MiB: what should INLINE_MAX be?

``_policy.INLINE_MAX`` (1 MiB) is the largest read tried inline; its comment
says "At 1 MiB a hit copies for ~100 us on this VM, about a thread hop, so
bigger reads gain nothing inline while they hold up the loop". This script
measures the terms of that sentence, per size, on a fully cached file:

``inline``        ``_native.backend.read_nowait(fd, n, off)``: the call the fast path
                  makes, called directly so that sizes above the cap can be
                  measured too. Its time is time the loop is held.
``aiofastread``   ``await f.seek(off); await f.read(n)``: what a user gets
                  today (inline up to INLINE_MAX, the miss pool above).
``pool``          ``await f.seek(off); await f.read(n)`` with
                  ``configure(fast_path=False)``: the same read through
                  aiofastread's own pool, the alternative the cap chooses.
``executor``      ``await loop.run_in_executor(pool, os.pread, fd, n, off)``.
``hop``           the same with n = 0: a thread round trip, no copy.

For the pool engines the loop thread's own CPU time per read is measured
too (``time.thread_time_ns`` around the await: waiting in epoll costs no
CPU), since that, not the latency, is what a pool read takes from other
tasks. Engines run interleaved in rounds, sizes and loops too; the file is
re-read before each round (this VM drops idle page cache after ~20 s).

Run:  python bench/inline_cap.py [--sizes ...] [--loops asyncio,uvloop] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

import aiofastread
from aiofastread import _native, _policy
from aiofastread.benchmark.cli import parse_size
from aiofastread.benchmark.stats import percentile

if TYPE_CHECKING:
    from collections.abc import Sequence

KIB = 1 << 10
MIB = 1 << 20
PAGE = 4096
DEFAULT_SIZES = (4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 512 * KIB, MIB, 2 * MIB, 4 * MIB)
# 64 MiB: 16 distinct 4 MiB reads' worth, re-warmed every round in ~10 ms.
FILE_SIZE = 64 * MIB
# 100 rounds x 8 ops = 800 samples per cell; the default run takes ~20 s.
DEFAULT_ROUNDS = 100
DEFAULT_BATCH = 8
ENGINES = ("inline", "aiofastread", "pool", "executor", "hop")
# Engines whose loop-thread CPU time is measured (inline: CPU == wall).
POOL_ENGINES = ("pool", "executor", "hop")
LOOPS = ("asyncio", "uvloop")


def human(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def us(ns: float) -> str:
    return f"{ns / 1000:.1f}" if ns < 1_000_000 else f"{ns / 1000:.0f}"


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def warm(fd: int) -> None:
    chunk = bytearray(MIB)
    offset = 0
    while n := os.preadv(fd, [chunk], offset):
        offset += n


def make_file(directory: str) -> str:
    fd, path = tempfile.mkstemp(prefix="afr-cap-", suffix=".dat", dir=directory)
    with os.fdopen(fd, "wb") as out:
        for i in range(FILE_SIZE // MIB):
            out.write(random.Random(i).randbytes(MIB))
    probe = os.open(path, os.O_RDONLY)
    try:
        warm(probe)
        os.preadv(probe, [bytearray(PAGE)], 0, os.RWF_NOWAIT)
    except OSError as exc:
        os.unlink(path)
        sys.exit(
            f"{directory}: preadv2(RWF_NOWAIT) fails ({exc.strerror}); pass --dir on ext4/xfs/btrfs"
        )
    finally:
        os.close(probe)
    return path


Samples = dict[str, list[int]]  # "wall" / "cpu" -> ns per op


async def run_batch(
    engine: str,
    f: aiofastread.AsyncBufferedReader,
    fd: int,
    size: int,
    offsets: Sequence[int],
    pool: concurrent.futures.Executor,
    out: Samples,
) -> None:
    """Time one op per offset. Each engine's loop is written out so that only
    the read sits between the clock reads."""
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    wall, busy = out.setdefault("wall", []), out.setdefault("cpu", [])
    if engine == "inline":
        read_nowait = _native.backend.read_nowait
        for off in offsets:
            t0 = clock()
            data = read_nowait(fd, size, off)
            wall.append(clock() - t0)
            if not isinstance(data, bytes) or len(data) != size:
                raise RuntimeError(f"inline read of {size} at {off} missed: {data!r:.40}")
            # Free it now, as the other engines do (they drop the result): a
            # second live MiB-sized buffer would change what malloc does.
            del data
    elif engine in ("aiofastread", "pool"):
        aiofastread.configure(fast_path=engine == "aiofastread")
        try:
            for off in offsets:
                c0, t0 = cpu(), clock()
                await f.seek(off)
                await f.read(size)
                t1, c1 = clock(), cpu()
                wall.append(t1 - t0)
                busy.append(c1 - c0)
        finally:
            aiofastread.configure(fast_path=True)
    else:
        run = asyncio.get_running_loop().run_in_executor
        n = size if engine == "executor" else 0
        for off in offsets:
            c0, t0 = cpu(), clock()
            await run(pool, os.pread, fd, n, off)
            t1, c1 = clock(), cpu()
            wall.append(t1 - t0)
            busy.append(c1 - c0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default=",".join(human(s).replace(" ", "") for s in DEFAULT_SIZES)
    )
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument(
        "--dir",
        default=tempfile.gettempdir(),
        help="where to put the data file (needs RWF_NOWAIT: ext4/xfs/btrfs)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    loop_names = [lp.strip() for lp in args.loops.split(",")]
    if max(sizes) > FILE_SIZE // 4:
        parser.error(f"sizes must be <= {human(FILE_SIZE // 4)}")
    if not _native.backend.can_read_inline:
        sys.exit(f"aiofastread backend {_native.backend.name!r} cannot read inline here")

    path = make_file(args.dir)
    fd = os.open(path, os.O_RDONLY)
    # One thread is enough for one reader at a time; more would only idle.
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cap")
    loops = {name: new_loop(name) for name in loop_names}
    files = {
        name: loop.run_until_complete(aiofastread.open(path, "rb")) for name, loop in loops.items()
    }
    cells: dict[tuple[str, int, str], Samples] = {}
    rng = random.Random(0)
    started = time.monotonic()
    try:
        for name, loop in loops.items():
            loop.run_until_complete(files[name].read(PAGE))  # residency check -> WARM
        gc.collect()
        gc.disable()  # a collection would land in whichever op runs then
        for r in range(args.rounds):
            warm(fd)
            order = list(ENGINES[r % len(ENGINES) :] + ENGINES[: r % len(ENGINES)])
            for size in sizes:
                offsets = [
                    rng.randrange(0, (FILE_SIZE - size) // PAGE) * PAGE for _ in range(args.batch)
                ]
                for name in loop_names if r % 2 == 0 else loop_names[::-1]:
                    for engine in order:
                        loops[name].run_until_complete(
                            run_batch(
                                engine,
                                files[name],
                                fd,
                                size,
                                offsets,
                                pool,
                                cells.setdefault((name, size, engine), {}),
                            )
                        )
    finally:
        gc.enable()
        for name, loop in loops.items():
            loop.run_until_complete(files[name].close())
            loop.close()
        pool.shutdown()
        os.close(fd)
        os.unlink(path)
    elapsed = time.monotonic() - started

    rows: list[dict[str, Any]] = []
    for (loop_name, size, engine), samples in cells.items():
        wall = sorted(samples["wall"])
        row: dict[str, Any] = {
            "loop": loop_name,
            "size": size,
            "engine": engine,
            "ops": len(wall),
            "median_ns": statistics.median(wall),
            "p99_ns": percentile(wall, 99),
        }
        if samples.get("cpu"):
            row["loop_cpu_median_ns"] = statistics.median(samples["cpu"])
        rows.append(row)
    report = analyze(rows, loop_names, sizes)
    report["config"] = {
        "sizes": sizes,
        "loops": loop_names,
        "rounds": args.rounds,
        "batch": args.batch,
        "file_size": FILE_SIZE,
        "inline_max": _policy.INLINE_MAX,
        "backend": _native.backend.name,
        "elapsed_s": round(elapsed, 1),
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def analyze(
    rows: list[dict[str, Any]], loop_names: Sequence[str], sizes: Sequence[int]
) -> dict[str, Any]:
    """Per loop: the largest size whose inline read holds the loop no longer
    than one thread hop, and no longer than the pool read it replaces."""
    by = {(r["loop"], r["size"], r["engine"]): r for r in rows}
    verdicts = []
    for lp in loop_names:
        within_hop = [
            s
            for s in sizes
            if by[(lp, s, "inline")]["median_ns"] <= by[(lp, s, "hop")]["median_ns"]
        ]
        faster = [
            s
            for s in sizes
            if by[(lp, s, "inline")]["median_ns"] <= by[(lp, s, "pool")]["median_ns"]
        ]
        verdicts.append(
            {
                "loop": lp,
                "largest_inline_within_one_hop": max(within_hop, default=None),
                "largest_inline_faster_than_pool": max(faster, default=None),
                "hop_median_ns": statistics.median(by[(lp, s, "hop")]["median_ns"] for s in sizes),
                "hop_loop_cpu_median_ns": statistics.median(
                    by[(lp, s, "hop")]["loop_cpu_median_ns"] for s in sizes
                ),
            }
        )
    return {"results": rows, "verdicts": verdicts}


def print_report(report: dict[str, Any]) -> None:
    # Wide tables: piped output (logs, docs) would otherwise wrap at 80 columns.
    console = Console(width=shutil.get_terminal_size((160, 40)).columns)
    by = {(r["loop"], r["size"], r["engine"]): r for r in report["results"]}
    cfg = report["config"]
    for lp in cfg["loops"]:
        table = Table(
            title=f"{lp}: median (p99) us per read; loop CPU = the loop thread's own "
            f"CPU per pool read; INLINE_MAX = {human(cfg['inline_max'])}"
        )
        for col in (
            "size",
            "inline",
            "aiofastread seek+read",
            "pool (fast path off)",
            "loop CPU per pool read",
            "run_in_executor pread",
            "hop (0 bytes)",
            "inline / hop",
            "inline / pool",
        ):
            table.add_column(col, justify="left" if col == "size" else "right")
        for size in cfg["sizes"]:
            cell = {e: by[(lp, size, e)] for e in ENGINES}

            def fmt(r: dict[str, Any]) -> str:
                return f"{us(r['median_ns'])} ({us(r['p99_ns'])})"

            inline = cell["inline"]["median_ns"]
            table.add_row(
                human(size),
                fmt(cell["inline"]),
                fmt(cell["aiofastread"]),
                fmt(cell["pool"]),
                us(cell["pool"]["loop_cpu_median_ns"]),
                fmt(cell["executor"]),
                fmt(cell["hop"]),
                f"{inline / cell['hop']['median_ns']:.2f}",
                f"{inline / cell['pool']['median_ns']:.2f}",
            )
        console.print(table)
    for v in report["verdicts"]:
        hop = v["largest_inline_within_one_hop"]
        faster = v["largest_inline_faster_than_pool"]
        console.print(
            f"{v['loop']}: a thread hop is {us(v['hop_median_ns'])} us; the largest "
            f"inline read that holds the loop no longer than a hop: "
            f"{human(hop) if hop else 'none'}; the largest inline read faster than "
            f"the pool read: {human(faster) if faster else 'none'}; a hop costs "
            f"the loop thread {us(v['hop_loop_cpu_median_ns'])} us of CPU"
        )
    console.print(
        f"{cfg['rounds']} rounds x {cfg['batch']} ops; {cfg['elapsed_s']} s; "
        f"backend {cfg['backend']}"
    )


if __name__ == "__main__":
    main()
