"""Cached ``seek`` + ``read(16 KiB)`` on ASCII text: ``open(p, "r")`` against ``"rb"``.

The default text mode (``encoding="utf-8"``, ``newline=None``) is what most
users open. Its reads of chunks of pure ASCII with no b"\\r" are served by
the direct text path (``_bridge/direct.py``, ``native/afr_text.c``); before
that they ran TextIOWrapper in a worker greenlet. This measures the cost of
one op, the way a user would write it::

    await f.seek(offset); await f.read(16384)

on a cached ASCII file (lines of text, b"\\n" line ends), for four engines
opened side by side: ``rb`` (the binary reader), ``r`` (default text mode),
``latin1`` (``encoding="latin-1", newline="\\n"``: the direct path of
before), ``io`` (CPython's own ``open(p, "r")``, synchronous: the floor of
what a text read costs without any event loop).

Each op is timed alone with ``time.perf_counter_ns``; engines run
interleaved in batches (the order rotates every round), the file is re-read
before each round (this VM drops idle page cache). With ``--pythons`` the
rounds alternate between interpreters (e.g. main's venv and a branch's), each
a child process running one round: before and after in one run. Ratios are of
medians. A checking pass first compares every engine's text with CPython's.

Run:  python bench/text_default.py [--rounds 6] [--ops 2000] [--loops asyncio,uvloop]
                                   [--pythons /work/venv/bin/python,...] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiofastread

SIZE = 16384
FILE_BYTES = 8 << 20
ENGINES: dict[str, dict[str, Any]] = {
    "rb": {"mode": "rb"},
    "r": {"mode": "r"},
    "latin1": {"mode": "r", "encoding": "latin-1", "newline": "\n"},
}


def make_file(directory: Path) -> Path:
    path = directory / "ascii.txt"
    if not path.exists() or path.stat().st_size != FILE_BYTES:
        line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
        data = (line * (FILE_BYTES // len(line) + 1))[:FILE_BYTES]
        path.write_bytes(data)
    return path


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


async def check(path: Path) -> None:
    """Every engine reads what CPython's open reads."""
    offsets = [0, 4096, 8192 * 3 + 5, FILE_BYTES - SIZE, FILE_BYTES - 100]
    with open(path, encoding="utf-8") as cpy:
        want = []
        for o in offsets:
            cpy.seek(o)
            want.append(cpy.read(SIZE))
    for name, kwargs in ENGINES.items():
        async with aiofastread.open(path, **kwargs) as f:
            for o, w in zip(offsets, want, strict=True):
                await f.seek(o)
                got = await f.read(SIZE)
                if isinstance(got, bytes):
                    got = got.decode("ascii")
                assert got == w, (name, o)


async def one_round(path: Path, ops: int, seed: int) -> dict[str, list[int]]:
    """``ops`` timed ops of each engine, interleaved in batches of 250."""
    rng = random.Random(seed)
    limit = (FILE_BYTES - SIZE) // 4096
    offsets = [rng.randrange(limit) * 4096 for _ in range(ops)]
    times: dict[str, list[int]] = {name: [] for name in [*ENGINES, "io"]}
    files = {name: aiofastread.open(path, **kw) for name, kw in ENGINES.items()}
    opened = {name: await ctx.__aenter__() for name, ctx in files.items()}
    cpy = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    clock = time.perf_counter_ns
    try:
        for f in opened.values():
            await f.read(1)  # the policy learns the file is warm
        order = [*ENGINES, "io"]
        for start in range(0, ops, 250):
            batch = offsets[start : start + 250]
            order = order[1:] + order[:1]
            for name in order:
                out = times[name]
                if name == "io":
                    for o in batch:
                        t0 = clock()
                        cpy.seek(o)
                        cpy.read(SIZE)
                        out.append(clock() - t0)
                    continue
                f = opened[name]
                for o in batch:
                    t0 = clock()
                    await f.seek(o)
                    await f.read(SIZE)
                    out.append(clock() - t0)
    finally:
        cpy.close()
        for ctx in files.values():
            await ctx.__aexit__(None, None, None)
    return times


def child(args: argparse.Namespace) -> None:
    """One round per loop; medians (ns) and what served the reads, as JSON."""
    path = make_file(Path(args.dir))
    result: dict[str, Any] = {"python": sys.executable, "package": aiofastread.__file__}
    for loop_name in args.loops.split(","):
        if loop_name == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(check(path))
            warm(path)
            before = aiofastread.statistics()
            from aiofastread._bridge import direct

            reads = direct.COUNTERS.reads
            times = loop.run_until_complete(one_round(path, args.ops, args.seed))
            after = aiofastread.statistics()
            result[loop_name] = {
                "median_ns": {k: statistics.median(v) for k, v in times.items()},
                "pool_submissions": after.pool_submissions - before.pool_submissions,
                "direct_reads": direct.COUNTERS.reads - reads,
            }
        finally:
            loop.close()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--pythons", default=sys.executable)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    pythons = args.pythons.split(",")
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    packages: dict[str, str] = {}
    for r in range(args.rounds):
        order = pythons if r % 2 == 0 else pythons[::-1]
        for py in order:
            cmd = [
                py,
                __file__,
                "--child",
                "--ops",
                str(args.ops),
                "--loops",
                args.loops,
                "--dir",
                args.dir,
                "--seed",
                str(r + 1),
            ]
            done = subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                cwd=tempfile.gettempdir(),
                env={**os.environ, "PYTHONPATH": ""},
            )
            out = json.loads(done.stdout)
            packages[py] = out["package"]
            for loop_name in args.loops.split(","):
                got = out[loop_name]
                assert got["pool_submissions"] == 0, got
                rows.setdefault((py, loop_name), []).append(
                    {**got["median_ns"], "direct": got["direct_reads"]}
                )
    print(
        f"cached seek + read({SIZE}) on an ASCII file, {args.rounds} rounds x {args.ops} ops,"
        f" medians of round medians (us); text/binary ratio per round in brackets"
    )
    for py, package in packages.items():
        print(f"{py}: {package}")
    for (py, loop_name), rounds in rows.items():
        med = {k: statistics.median(r[k] for r in rounds) / 1000 for k in [*ENGINES, "io"]}
        ratios = [r["r"] / r["rb"] for r in rounds]
        print(
            f"{py:32s} {loop_name:8s} rb {med['rb']:5.2f}  r {med['r']:5.2f}"
            f"  latin1 {med['latin1']:5.2f}  io.open r {med['io']:5.2f}"
            f"  r/rb {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
            f"  direct reads/round {rounds[0]['direct']}"
        )


if __name__ == "__main__":
    main()
