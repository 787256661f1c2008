"""Lines: ``async for line in f`` over a cached text file, aiofastread vs aiofiles.

Both libraries iterate the same 100k-line UTF-8 file, opened in text mode
the way a user would write it::

    async with lib.open(path) as f:
        async for line in f:
            ...

The file is read into the page cache right before every round (this VM
drops idle page cache after ~20 s). Rounds interleave the two libraries and
alternate which goes first, on each event loop, so drift hits both alike;
the ratio reported is of medians, with the smallest per-round ratio next to
it. A checking pass first compares every line with CPython's, and
``aiofastread.statistics()`` around each aiofastread run shows where its
reads were served (a cached file should make no pool submissions).

Run:  python bench/lines.py [--lines 100000] [--rounds 3] [--loops asyncio,uvloop]
                            [--dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiofiles

import aiofastread


def make_file(directory: Path, count: int) -> Path:
    path = directory / "lines.txt"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            f.write(f"{i:06d} the quick brown fox jumps over the lazy dog \u00e9\u20ac\n")
    return path


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


async def iterate(lib: Any, path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    async with lib.open(path, encoding="utf-8") as f:
        async for _line in f:
            count += 1
    return time.perf_counter() - start, count


async def check(path: Path) -> None:
    with open(path, encoding="utf-8") as f:
        want = f.readlines()
    for lib in (aiofastread, aiofiles):
        async with lib.open(path, encoding="utf-8") as f:
            got = [line async for line in f]
        if got != want:
            sys.exit(f"{lib.__name__}: lines differ from CPython's")


async def run_loop(path: Path, rounds: int) -> dict[str, Any]:
    await check(path)
    times: dict[str, list[float]] = {"aiofastread": [], "aiofiles": []}
    pool_submissions = []
    libs = [("aiofastread", aiofastread), ("aiofiles", aiofiles)]
    for r in range(rounds):
        for name, lib in libs if r % 2 == 0 else libs[::-1]:
            warm(path)
            aiofastread.reset_statistics()
            elapsed, _count = await iterate(lib, path)
            times[name].append(elapsed)
            if name == "aiofastread":
                # open + close are the only pool jobs of a cached iteration
                pool_submissions.append(aiofastread.statistics().pool_submissions)
    per_round = [b / a for a, b in zip(times["aiofastread"], times["aiofiles"], strict=True)]
    return {
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio": statistics.median(times["aiofiles"]) / statistics.median(times["aiofastread"]),
        "min_round_ratio": min(per_round),
        "pool_submissions": pool_submissions,
    }


def new_loop(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the file")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = make_file(Path(tmp), args.lines)
        size = path.stat().st_size
        print(
            f"{args.lines} lines, {size} bytes; aiofastread {aiofastread.backend()} backend, "
            f"aiofiles {importlib.metadata.version('aiofiles')}; "
            f"Python {platform.python_version()}, "
            f"{platform.machine()} {platform.release()}"
        )
        results = {}
        for loop_name in args.loops.split(","):
            loop = new_loop(loop_name)()
            try:
                res = loop.run_until_complete(run_loop(path, args.rounds))
            finally:
                loop.close()
            results[loop_name] = res
            s = res["seconds"]
            print(
                f"{loop_name:8} aiofastread {s['aiofastread'] * 1e3:8.1f} ms "
                f"({s['aiofastread'] / args.lines * 1e6:6.2f} us/line)   "
                f"aiofiles {s['aiofiles'] * 1e3:8.1f} ms "
                f"({s['aiofiles'] / args.lines * 1e6:6.1f} us/line)   "
                f"{res['ratio']:6.1f}x faster (worst round {res['min_round_ratio']:.1f}x); "
                f"pool jobs per aiofastread run: {res['pool_submissions']}"
            )
    if args.json:
        args.json.write_text(json.dumps({"lines": args.lines, "results": results}, indent=2))


if __name__ == "__main__":
    main()
