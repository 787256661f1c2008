"""Loop stalls on a throttled device: a fragmented cold file, and 10^4 misses.

../shared/DESIGN.md: on kernels >= ~6.12 a NOWAIT miss starts readahead on the
calling thread, and on a fragmented file whose extent tree is not cached
that means reading index blocks from the device first, up to 0.5-1 s on a
slow one. aiofastread never tries a file inline unless cachestat says the
range is resident, so the loop should never pay for that. This script
measures it on the throttled loop-mounted ext4 of
``aiofastread.benchmark.slowdev`` (root, loop devices, a blkio/io cgroup):

``fragmented``  a file written even blocks first, odd blocks later, so
                every 4 KiB block is an extent of its own (tens of thousands;
                a multi-level extent tree), then every cache dropped
                (``drop_caches``: data, inodes and the extent tree's blocks).
                Phase A reads it at random offsets through aiofastread while a
                heartbeat (1 ms timer) records how late the loop ran; phase B
                (``--naive``) times what one inline ``preadv2(RWF_NOWAIT)``
                per read would have held the loop, the path avoided.
``storm``       10^4 concurrent preads of an evicted file on the same device:
                the worst heartbeat lateness, the peak RSS growth, the pool's
                peak in-flight count (never above ``max_in_flight``), and
                completion.

The heartbeat's lateness is the stall: the longest time the loop could not
run a ready callback. Results print as JSON (``--json FILE`` also writes it).

Run as root:  python bench/stall.py [--iops 200] [--extents 20000] [--misses 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import aiofastread
from aiofastread import _native, _pool
from aiofastread.benchmark.slowdev import SlowDevice, SlowDeviceError

BLOCK = 4096


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def drop_caches() -> None:
    """Every clean page, dentry and inode, and the block device's buffers
    (the extent tree's index blocks live there)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
        fh.write("3\n")


def extent_count(path: Path) -> int:
    """Extents of ``path`` (FIEMAP through filefrag, if installed), else -1."""
    import subprocess

    try:
        out = subprocess.run(["filefrag", str(path)], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return -1
    # "<path>: N extents found"
    try:
        return int(out.stdout.rsplit(":", 1)[1].split()[0])
    except (IndexError, ValueError):
        return -1


def make_fragmented(path: Path, blocks: int) -> bytes:
    """A file whose 4 KiB blocks are scattered: an extent tree of thousands.

    Free space is first cut into one-block holes (the rest of the device
    taken by a preallocated filler, then 2 x ``blocks`` one-block files, every
    other one deleted), so the file can only be allocated hole by hole. The
    helpers are deleted afterwards; the file keeps its layout."""
    data = random.Random(3).randbytes(blocks * BLOCK)
    work = path.parent / "frag-work"
    work.mkdir()
    filler = work / "filler"
    st = os.statvfs(path.parent)
    spare = 2 * blocks * BLOCK + (16 << 20)  # the small files, and ext4's own needs
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, max(st.f_bavail * st.f_frsize - spare, BLOCK))
    finally:
        os.close(fd)
    block = b"\xa5" * BLOCK
    smalls = []
    for i in range(2 * blocks + 2048):
        small = work / f"s{i}"
        try:
            small.write_bytes(block)
        except OSError:  # ENOSPC: the device is full, as planned
            small.unlink(missing_ok=True)
            break
        smalls.append(small)
    os.sync()
    for small in smalls[::2]:
        small.unlink()
    os.sync()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for b in range(blocks):  # synced in steps: delalloc cannot merge much
            os.pwrite(fd, data[b * BLOCK : (b + 1) * BLOCK], b * BLOCK)
            if b % 64 == 63:
                os.fdatasync(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    for small in smalls[1::2]:
        small.unlink()
    filler.unlink()
    work.rmdir()
    return data


class Watchdog(threading.Thread):
    """Samples the loop thread's stack whenever the heartbeat is late by more
    than ``threshold``: where the worst stalls were spent."""

    def __init__(self, beat: Heartbeat, loop_thread: int, threshold: float = 0.02) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.beat, self.loop_thread, self.threshold = beat, loop_thread, threshold
        self.samples: collections.Counter[str] = collections.Counter()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):
            if time.monotonic() - self.beat.last > self.threshold:
                frame = sys._current_frames().get(self.loop_thread)
                stack = traceback.extract_stack(frame)[-3:] if frame else []
                where = " < ".join(
                    f"{Path(fs.filename).name}:{fs.lineno} {fs.name}" for fs in reversed(stack)
                )
                self.samples[where] += 1


class Heartbeat:
    """A 1 ms timer on the loop; records how late each tick ran."""

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.lateness: list[float] = []
        self.last = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.watchdog: Watchdog | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            self.last = time.monotonic() + self.period
            await asyncio.sleep(self.period)
            self.lateness.append(loop.time() - start - self.period)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self.watchdog = Watchdog(self, threading.get_ident())
        self.watchdog.start()

    async def stop(self) -> dict[str, Any]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        out: dict[str, Any] = summarize_ms(self.lateness)
        if self.watchdog is not None:
            self.watchdog.done.set()
            out["late_stacks"] = self.watchdog.samples.most_common(5)
        return out


def summarize_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(values),
        "p50_ms": round(pick(0.5) * 1000, 3),
        "p99_ms": round(pick(0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def fragmented_phase(path: Path, data: bytes, reads: int) -> dict[str, Any]:
    rng = random.Random(5)
    offsets = [rng.randrange(0, len(data) // BLOCK) * BLOCK for _ in range(reads)]
    beat = Heartbeat()
    beat.start()
    before = aiofastread.statistics()
    t0 = time.perf_counter()
    mismatches = 0
    async with aiofastread.open(path, "rb") as f:
        # Sequential and random: the two ways a cold file is first touched.
        for off in offsets:
            if await f.pread(16384, off) != data[off : off + 16384]:
                mismatches += 1
        await f.seek(0)
        for _ in range(64):
            chunk = await f.read(16384)
            if not chunk:
                break
    elapsed = time.perf_counter() - t0
    after = aiofastread.statistics()
    return {
        "reads": reads,
        "seconds": round(elapsed, 3),
        "mismatches": mismatches,
        "heartbeat": await beat.stop(),
        "inline_hits": after.inline_hits - before.inline_hits,
        "inline_misses": after.inline_misses - before.inline_misses,
        "pool_reads": after.pool_reads - before.pool_reads,
        "residency_checks": after.residency_checks - before.residency_checks,
    }


def naive_phase(path: Path, size: int, reads: int) -> dict[str, Any]:
    """Time one inline NOWAIT read per offset on the cold file: the stall
    an inline-first design would put on the loop (not what aiofastread does)."""
    if _native.backend.read_nowait is None:  # type: ignore[comparison-overlap]
        return {"skipped": "no NOWAIT backend"}
    rng = random.Random(6)
    fd = os.open(path, os.O_RDONLY)
    times: list[float] = []
    try:
        for _ in range(reads):
            off = rng.randrange(0, size // BLOCK) * BLOCK
            t0 = time.perf_counter()
            _native.backend.read_nowait(fd, 16384, off)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return {"reads": reads, "nowait_call": summarize_ms(times)}


async def storm_phase(path: Path, data: bytes, misses: int) -> dict[str, Any]:
    rng = random.Random(9)
    offsets = [rng.randrange(0, len(data) // BLOCK) * BLOCK for _ in range(misses)]
    peak_in_flight = 0
    peak_waiting = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak_in_flight, peak_waiting
        while sampling:
            stats = aiofastread.statistics()
            peak_in_flight = max(peak_in_flight, stats.misses_in_flight)
            peak_waiting = max(peak_waiting, stats.pool_waiting)
            await asyncio.sleep(0.001)

    mismatches = 0
    rss0 = rss_bytes()
    rss_peak = rss0
    beat = Heartbeat()
    beat.start()
    sampler = asyncio.ensure_future(sample())
    t0 = time.perf_counter()
    async with aiofastread.open(path, "rb") as f:

        async def one(off: int) -> None:
            nonlocal mismatches, rss_peak
            if await f.pread(BLOCK, off) != data[off : off + BLOCK]:
                mismatches += 1
            rss_peak = max(rss_peak, rss_bytes()) if rng.random() < 0.01 else rss_peak

        # Start the reads 100 per loop iteration: all 10^4 are pending at
        # once, but the heartbeat measures the library, not the loop running
        # ten thousand task first-steps in one iteration.
        tasks = []
        for i in range(0, len(offsets), 100):
            tasks.extend(asyncio.ensure_future(one(o)) for o in offsets[i : i + 100])
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    sampling = False
    await sampler
    pool = aiofastread.statistics()
    return {
        "misses": misses,
        "completed_seconds": round(elapsed, 3),
        "mismatches": mismatches,
        "heartbeat": await beat.stop(),
        "peak_in_flight": peak_in_flight,
        "peak_waiting": peak_waiting,
        "max_in_flight": _pool.default_pool().statistics().max_in_flight,
        "rss_growth_mib": round((rss_peak - rss0) / 2**20, 1),
        "in_flight_after": pool.misses_in_flight,
    }


def run_loop(coro: Any, loop_name: str) -> Any:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iops", type=int, default=200, help="read IOPS limit of the device")
    parser.add_argument(
        "--extents", type=int, default=20_000, help="blocks (= extents) of the fragmented file"
    )
    parser.add_argument(
        "--reads", type=int, default=200, help="random reads of the fragmented file"
    )
    parser.add_argument("--misses", type=int, default=10_000)
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--naive", action="store_true", help="also time inline NOWAIT on the cold file"
    )
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the device image lives")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.max_in_flight:
        aiofastread.configure(max_in_flight=args.max_in_flight)

    storm_bytes = max(args.misses * BLOCK * 2, 64 << 20)
    report: dict[str, Any] = {"backend": aiofastread.backend(), "loop": args.loop}
    try:
        with SlowDevice(args.iops, args.extents * BLOCK + storm_bytes, args.dir) as dev:
            assert dev.mount_point is not None
            report["device"] = dev.describe()
            frag = dev.mount_point / "fragmented.bin"
            frag_data = make_fragmented(frag, args.extents)
            report["fragmented_extents"] = extent_count(frag)
            storm = dev.mount_point / "storm.bin"
            storm_data = random.Random(4).randbytes(storm_bytes)
            storm.write_bytes(storm_data)
            cal = dev.verify()
            report["device"]["calibration_iops"] = round(cal.iops, 1)

            drop_caches()
            dev.join()
            try:
                report["fragmented"] = run_loop(
                    fragmented_phase(frag, frag_data, args.reads), args.loop
                )
                if args.naive:
                    drop_caches()
                    report["naive_inline"] = naive_phase(frag, len(frag_data), min(args.reads, 50))
                drop_caches()
                report["storm"] = run_loop(storm_phase(storm, storm_data, args.misses), args.loop)
            finally:
                dev.leave()
            if dev.teardown_errors:
                report["teardown_errors"] = dev.teardown_errors
    except SlowDeviceError as exc:
        print(f"stall: no slow device here: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    ok = report["fragmented"]["mismatches"] == 0 and report["storm"]["mismatches"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
