"""Small whole files: open + read + close per file, many different files in turn.

The commonest use of files in an asyncio service is reading a small one whole
(a template, a config, a static asset). Engines, each reading every file of
a set in turn, the way a user would write it:

``sync``          ``with open(p, "rb") as f: f.read()`` on the loop (blocks: the floor)
``executor``      ``await loop.run_in_executor(None, read_file, p)``: one job per file
``aiofiles``      ``async with aiofiles.open(p, "rb") as f: await f.read()``
``aiofastread``   ``async with aiofastread.open(p, "rb") as f: await f.read()``
``read_bytes``    ``await aiofastread.read_bytes(p)``

Warm: every file is in the page cache and its dentry in the dentry cache
(read right before each round). Cold: before each engine's batch the
batch's pages are dropped (fsync + fadvise DONTNEED) and so are the
dentries and inodes (``echo 2 > /proc/sys/vm/drop_caches``: root only,
machine-wide), so the open must look the path up again (from directory
blocks still in the block device's cache: ``echo 3`` would drop every
other user's page cache too) and the read goes to the disk.

A round runs one batch of each engine (order rotated every round), each
batch reading ``--batch`` different files; per-file time = batch time /
batch size. Reported: the median over rounds and the median of the
per-round ratio to ``sync`` (engines of one round ran within milliseconds
of each other, so the ratio is what survives a noisy, shared machine).
Pool submissions per file for the aiofastread engines come from
``aiofastread.statistics()`` (warm: 0 means no thread hop at all).

Run:  python bench/smallfiles.py [--sizes 1KiB,16KiB,256KiB,1MiB]
          [--loops asyncio,uvloop] [--files 3000] [--rounds 60] [--batch 25]
          [--cold] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiofastread
from aiofastread.benchmark.cli import parse_size

try:
    import aiofiles
except ImportError:  # pragma: no cover - in the bench extra
    aiofiles = None

# Files of one size in one set: at most this many bytes (3,000 x 1 MiB would
# be 3 GiB of page cache on a shared VM); at least --batch files.
MAX_SET_BYTES = 512 << 20

Engine = Callable[[str], Awaitable[bytes]]
OURS = ("aiofastread", "read_bytes")  # the engines whose pool jobs are counted


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def engines(loop: asyncio.AbstractEventLoop) -> dict[str, Engine]:
    async def sync(path: str) -> bytes:
        return read_file(path)

    async def executor(path: str) -> bytes:
        return await loop.run_in_executor(None, read_file, path)

    async def fast(path: str) -> bytes:
        async with aiofastread.open(path, "rb") as f:
            return await f.read()

    out: dict[str, Engine] = {"sync": sync, "executor": executor}
    if aiofiles is not None:

        async def with_aiofiles(path: str) -> bytes:
            async with aiofiles.open(path, "rb") as f:
                return await f.read()

        out["aiofiles"] = with_aiofiles
    out["aiofastread"] = fast
    out["read_bytes"] = aiofastread.read_bytes
    return out


def make_set(root: Path, size: int, count: int) -> list[str]:
    directory = root / f"s{size}"
    directory.mkdir()
    block = os.urandom(size)
    paths = []
    for i in range(count):
        path = directory / f"f{i:05d}"
        path.write_bytes(block[i % 7 :] + block[: i % 7])  # distinct contents
        paths.append(str(path))
    return paths


def warm(paths: Sequence[str]) -> None:
    for path in paths:
        read_file(path)


def evict(paths: Sequence[str]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages would stay
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    with open("/proc/sys/vm/drop_caches", "w") as f:  # dentries and inodes
        f.write("2\n")


async def batch(engine: Engine, paths: Sequence[str]) -> float:
    start = time.perf_counter_ns()
    for path in paths:
        await engine(path)
    return (time.perf_counter_ns() - start) / len(paths) / 1000


async def run_loop(args: argparse.Namespace, sets: dict[int, list[str]]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    table = engines(loop)
    # Checking pass: every engine returns the file's bytes (and aiofastread
    # learns the directories' filesystem from its first pooled open).
    for paths in sets.values():
        for name, engine in table.items():
            for path in paths[:3]:
                assert await engine(path) == read_file(path), name
    results: dict[str, Any] = {}
    names = list(table)
    for size, paths in sets.items():
        per_file: dict[str, list[float]] = {name: [] for name in names}
        ratios: dict[str, list[float]] = {name: [] for name in names}
        pool_jobs: dict[str, int] = dict.fromkeys(names, 0)
        start = 0
        for rnd in range(args.rounds):
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            times: dict[str, float] = {}
            for name in order:
                chunk = [paths[(start + i) % len(paths)] for i in range(args.batch)]
                start += args.batch
                if args.cold:
                    evict(chunk)
                else:
                    warm(chunk)
                before = aiofastread.statistics().pool_submissions
                times[name] = await batch(table[name], chunk)
                pool_jobs[name] += aiofastread.statistics().pool_submissions - before
            for name in names:
                per_file[name].append(times[name])
                ratios[name].append(times[name] / times["sync"])
        results[str(size)] = {
            name: {
                "us_per_file": statistics.median(per_file[name]),
                "ratio_to_sync": statistics.median(ratios[name]),
                "ratio_min": min(ratios[name]),
                "ratio_max": max(ratios[name]),
                "pool_jobs_per_file": pool_jobs[name] / (args.rounds * args.batch),
            }
            for name in names
        }
    return results


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1KiB,16KiB,256KiB,1MiB")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--files", type=int, default=3000)
    # Many short rounds: on a shared 2-core VM one preemption spoils a batch;
    # the median over 60 rounds of 25 files each was stable to ~10% here.
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--cold", action="store_true", help="drop pages and dentries first")
    parser.add_argument("--dir", default=None, help="where to make the files (default: a temp dir)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = parser.parse_args(argv)
    if args.cold and os.geteuid() != 0:
        sys.exit("--cold drops dentries through /proc/sys/vm/drop_caches: run as root")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    report: dict[str, Any] = {
        "command": "python bench/smallfiles.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "backend": aiofastread.backend(),
        "cold": args.cold,
        "loops": {},
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        sets = {}
        for size in sizes:
            count = max(args.batch, min(args.files, MAX_SET_BYTES // size))  # 3000, 512 at 1 MiB
            sets[size] = make_set(Path(root), size, count)
        for loop_name in args.loops.split(","):
            loop = new_loop(loop_name)
            try:
                report["loops"][loop_name] = loop.run_until_complete(run_loop(args, sets))
            finally:
                loop.close()
    print_report(report)
    if args.markdown:
        print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def print_report(report: dict[str, Any]) -> None:
    print(
        f"# {report['command']}  ({report['date']}, kernel {report['kernel']}, "
        f"Python {report['python']}, {'cold' if report['cold'] else 'warm'})"
    )
    for loop_name, sizes in report["loops"].items():
        print(
            f"\n{loop_name}: us per file (ratio to sync, min-max over rounds; pool jobs per file)"
        )
        for size, cells in sizes.items():
            row = ", ".join(
                f"{name} {c['us_per_file']:.1f} ({c['ratio_to_sync']:.2f}x "
                f"{c['ratio_min']:.2f}-{c['ratio_max']:.2f}; {c['pool_jobs_per_file']:.2f})"
                for name, c in cells.items()
            )
            print(f"  {int(size) >> 10} KiB: {row}")


def cell(name: str, c: dict[str, float]) -> str:
    jobs = f"; {c['pool_jobs_per_file']:g} jobs" if name in OURS else ""
    return f"{c['us_per_file']:.1f} us ({c['ratio_to_sync']:.2f}x{jobs})"


def markdown(report: dict[str, Any]) -> str:
    """One row per loop and size: us per file (median ratio to sync; for
    aiofastread's engines, pool jobs per file)."""
    loops = report["loops"]
    names = list(next(iter(next(iter(loops.values())).values())))
    lines = [
        "| loop | size | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for loop_name, sizes in loops.items():
        for size, cells in sizes.items():
            row = " | ".join(cell(name, c) for name, c in cells.items())
            lines.append(f"| {loop_name} | {int(size) >> 10} KiB | {row} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
