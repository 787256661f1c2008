"""Directory listings and file copies: aiofastread vs anyio vs aiofiles, per call.

Listings of a directory of ``--entries`` files (all cached), as a user
writes them:

``sync``         ``[e.name for e in os.scandir(d)]`` on the loop (the floor,
                 and what must not happen in a server);
``aiofastread``  ``[p async for p in aiofastread.Path(d).iterdir()]``
                 (a scandir in our pool, a batch of 256 per hop);
``anyio``        ``[p async for p in anyio.Path(d).iterdir()]`` (a thread
                 hop per entry);
``aiofiles``     ``await aiofiles.os.listdir(d)`` (one hop, names only).

Copies of a ``--copy-size`` file: ``aiofastread.copyfile`` (copy_file_range
on a pool thread) vs ``anyio.to_thread.run_sync(shutil.copyfile)`` (sendfile
on 3.11-3.13).

The engines run interleaved, a round of each in turn (order rotating), so a
shared, noisy machine's drift hits each alike; ratios are of medians.

Run:  python bench/listings.py [--entries 2000] [--copy-size 64MiB] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiofiles.os
import anyio
import anyio.to_thread

import aiofastread
from aiofastread.benchmark.cli import parse_size

Engine = Callable[[], Awaitable[object]]


async def timed(engine: Engine) -> float:
    start = time.perf_counter_ns()
    await engine()
    return (time.perf_counter_ns() - start) / 1e3


async def race(engines: dict[str, Engine], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in engines}
    names = list(engines)
    for number in range(rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            times[name].append(await timed(engines[name]))
    return times


def report(title: str, times: dict[str, list[float]], base: str) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{title}")
    print(f"{'engine':<14}{'median us':>12}{'vs ' + base:>12}")
    for name, median in medians.items():
        print(f"{name:<14}{median:>12.0f}{median / medians[base]:>12.2f}")


async def main(entries: int, copy_size: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as scratch:
        listing = Path(scratch, "listing")
        listing.mkdir()
        for number in range(entries):
            (listing / f"entry-{number:06d}").write_bytes(b"")

        async def sync() -> object:
            with os.scandir(listing) as it:
                return [entry.name for entry in it]

        async def ours() -> object:
            return [p async for p in aiofastread.Path(listing).iterdir()]

        async def theirs_anyio() -> object:
            return [p async for p in anyio.Path(listing).iterdir()]

        async def theirs_aiofiles() -> object:
            return await aiofiles.os.listdir(listing)

        for engine in (sync, ours, theirs_anyio, theirs_aiofiles):  # check and warm
            assert len(await engine()) == entries  # type: ignore[arg-type]
        times = await race(
            {"sync": sync, "aiofastread": ours, "anyio": theirs_anyio, "aiofiles": theirs_aiofiles},
            rounds,
        )
        report(f"iterdir of {entries} cached entries", times, "aiofastread")

        source = Path(scratch, "source")
        source.write_bytes(os.urandom(copy_size))

        async def copy_ours() -> object:
            return await aiofastread.copyfile(source, Path(scratch, "a"))

        async def copy_anyio() -> object:
            return await anyio.to_thread.run_sync(shutil.copyfile, source, Path(scratch, "b"))

        await copy_ours()
        await copy_anyio()
        assert Path(scratch, "a").read_bytes() == Path(scratch, "b").read_bytes()
        times = await race({"aiofastread": copy_ours, "anyio+shutil": copy_anyio}, rounds)
        report(f"copyfile of {copy_size >> 20} MiB", times, "aiofastread")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--copy-size", type=parse_size, default=64 << 20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.entries, args.copy_size, args.rounds))
