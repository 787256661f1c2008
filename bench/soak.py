"""Soak: a random mix of opens, reads, writes, cancellations and closes.

Several event loops (asyncio and uvloop, one per thread) run many tasks
each, for ``--minutes``, against files on ext4 and on tmpfs. Every result is
checked against a reference model of each file's bytes held in memory:

* each loop owns some files (it writes, appends, truncates and reads them,
  one operation sequence per file at a time) and every loop reads a set of
  shared files that nobody writes;
* reads are cancelled at random points (the position must not move);
  opens are cancelled too (the descriptor must not leak);
* files are evicted from the page cache now and then, so reads take the
  inline path, the residency check and the pool in turn;
* streams: whole large files (``--stream-mib``, on ext4) read start to end
  in 64 KiB-1 MiB reads (readahead jobs ahead of them), some stopped or
  cancelled half way, and sent with ``aiofastread.sendfile`` over a socket
  pair (cold ranges brought in by the native pool); the samples follow the
  process's threads and the readahead jobs in flight.

At the end: zero data mismatches, zero leaked descriptors (count after the
pool settles equals the count before), and RSS over time less the model's
own bytes (bounded: the last quarter's maximum against the first quarter's). Exit status 1 if any
check fails. Usage::

    python bench/soak.py --minutes 10 [--loops 4] [--tasks 24] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import aiofastread
from aiofastread import _native_pool

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor


def os_thread_count() -> int:
    """Threads of this process, the native pool's C threads included."""
    return len(os.listdir("/proc/self/task"))


def evict(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@dataclasses.dataclass
class Totals:
    ops: int = 0
    reads: int = 0
    writes: int = 0
    opens: int = 0
    cancelled_reads: int = 0
    cancelled_opens: int = 0
    evictions: int = 0
    streams: int = 0
    stream_bytes: int = 0
    sendfiles: int = 0
    mismatches: int = 0
    errors: int = 0
    worst_stall_ms: float = 0.0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    first_errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def fail(self, what: str) -> None:
        with self.lock:
            self.mismatches += 1
            if len(self.first_errors) < 20:
                self.first_errors.append(what)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.first_errors) < 20:
                self.first_errors.append(what)


class Worker:
    """One event loop in one thread, with its own files and many tasks."""

    def __init__(
        self,
        index: int,
        dirs: list[Path],
        shared: dict[Path, bytes],
        streams: dict[Path, bytes],
        totals: Totals,
        deadline: float,
        tasks: int,
        seed: int,
    ) -> None:
        self.index = index
        self.rng = random.Random(seed * 1000 + index)
        self.shared = shared
        self.streams = streams
        self.totals = totals
        self.deadline = deadline
        self.tasks = tasks
        self.model: dict[Path, bytes] = {}
        for d in dirs:
            for j in range(4):
                path = d / f"w{index}-{j}.bin"
                data = self.rng.randbytes(self.rng.randrange(1, 600_000))
                path.write_bytes(data)
                self.model[path] = data
        self.locks: dict[Path, asyncio.Lock] = {}
        self.thread_id = 0
        self.last_beat = time.monotonic()

    # -- the loop -------------------------------------------------------------

    def run(self) -> None:
        use_uvloop = uvloop is not None and self.index % 2 == 1
        if use_uvloop:
            uvloop.run(self.main())
        else:
            asyncio.run(self.main())

    async def main(self) -> None:
        self.thread_id = threading.get_ident()
        self.locks = {p: asyncio.Lock() for p in self.model}
        beat = asyncio.ensure_future(self.heartbeat())
        try:
            await asyncio.gather(*(self.task(i) for i in range(self.tasks)))
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def heartbeat(self) -> None:
        """Worst lateness of a 5 ms timer: how long the loop was blocked."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            self.last_beat = time.monotonic()
            await asyncio.sleep(0.005)
            late = (loop.time() - start - 0.005) * 1000
            if late > self.totals.worst_stall_ms:
                with self.totals.lock:
                    self.totals.worst_stall_ms = max(self.totals.worst_stall_ms, late)

    async def task(self, n: int) -> None:
        rng = random.Random(self.rng.random())
        ops = [
            (self.read_own, 30),
            (self.read_shared, 20),
            (self.read_text, 8),
            (self.write_own, 14),
            (self.append_own, 6),
            (self.truncate_own, 2),
            (self.cancel_read, 8),
            (self.cancel_open, 4),
            (self.evict_some, 3),
            (self.pread_many, 5),
            (self.stream_file, 2),
            (self.sendfile_stream, 1),
        ]
        funcs, weights = zip(*ops, strict=False)
        while time.monotonic() < self.deadline:
            op = rng.choices(funcs, weights)[0]
            try:
                await op(rng)
            except Exception as exc:
                self.totals.error(f"{op.__name__}: {type(exc).__name__}: {exc}")
            self.totals.add(ops=1)

    # -- operations -------------------------------------------------------------

    def check(self, what: str, got: Any, expected: Any) -> None:
        if got != expected:
            self.totals.fail(
                f"{what}: got {len(got) if hasattr(got, '__len__') else got!r} bytes, "
                f"expected {len(expected) if hasattr(expected, '__len__') else expected!r}"
            )

    async def _read_checks(self, rng: random.Random, path: Path, data: bytes) -> None:
        async with aiofastread.open(path, "rb") as f:
            self.totals.add(opens=1)
            for _ in range(rng.randrange(1, 8)):
                kind = rng.random()
                off = rng.randrange(0, len(data) + 100)
                size = rng.choice((1, 100, 4096, 16384, 65536, 300_000))
                if kind < 0.5:
                    await f.seek(off)
                    self.check(f"read {path.name}", await f.read(size), data[off : off + size])
                elif kind < 0.7:
                    self.check(
                        f"pread {path.name}", await f.pread(size, off), data[off : off + size]
                    )
                elif kind < 0.9:
                    await f.seek(off)
                    end = data.find(b"\n", off)
                    line = data[off : end + 1] if end >= 0 else data[off:]
                    self.check(f"readline {path.name}", await f.readline(), line)
                else:
                    await f.seek(off)
                    self.check(f"readall {path.name}", await f.read(), data[off:])
                self.totals.add(reads=1)

    async def read_own(self, rng: random.Random) -> None:
        path = rng.choice(list(self.model))
        async with self.locks[path]:
            await self._read_checks(rng, path, self.model[path])

    async def read_shared(self, rng: random.Random) -> None:
        path = rng.choice(list(self.shared))
        await self._read_checks(rng, path, self.shared[path])

    async def read_text(self, rng: random.Random) -> None:
        path = rng.choice(list(self.shared))
        text = self.shared[path].decode("latin-1")
        async with aiofastread.open(path, encoding="latin-1", newline="") as f:
            self.totals.add(opens=1)
            got = []
            for _ in range(rng.randrange(1, 50)):
                line = await f.readline()
                if not line:
                    break
                got.append(line)
            prefix = "".join(got)
            self.check(f"text lines {path.name}", prefix, text[: len(prefix)])
            self.check(f"text rest {path.name}", await f.read(), text[len(prefix) :])
            self.totals.add(reads=1)

    async def write_own(self, rng: random.Random) -> None:
        path = rng.choice(list(self.model))
        async with self.locks[path]:
            data = bytearray(self.model[path])
            mode = rng.choice(("r+b", "r+b", "rb+"))
            async with aiofastread.open(path, mode) as f:
                self.totals.add(opens=1)
                for _ in range(rng.randrange(1, 6)):
                    off = rng.randrange(0, len(data) + 1)
                    chunk = rng.randbytes(rng.choice((10, 1000, 9000, 70_000)))
                    await f.seek(off)
                    await f.write(chunk)
                    data[off : off + len(chunk)] = chunk
                    if rng.random() < 0.3:
                        await f.flush()
                        await f.seek(0)
                        self.check(f"read-after-write {path.name}", await f.read(), bytes(data))
                    self.totals.add(writes=1)
            self.model[path] = bytes(data)

    async def append_own(self, rng: random.Random) -> None:
        path = rng.choice(list(self.model))
        async with self.locks[path]:
            chunk = b"".join(b"%d appended line\n" % rng.randrange(10**6) for _ in range(50))
            async with aiofastread.open(path, "ab") as f:
                self.totals.add(opens=1)
                await f.write(chunk)
            self.model[path] += chunk
            if len(self.model[path]) > 2_000_000:  # keep files (and memory) bounded
                async with aiofastread.open(path, "r+b") as f:
                    await f.truncate(100_000)
                self.model[path] = self.model[path][:100_000]
            self.totals.add(writes=1)

    async def truncate_own(self, rng: random.Random) -> None:
        path = rng.choice(list(self.model))
        async with self.locks[path]:
            size = rng.randrange(0, len(self.model[path]) + 1000)
            async with aiofastread.open(path, "r+b") as f:
                self.totals.add(opens=1)
                await f.truncate(size)
            old = self.model[path]
            self.model[path] = old[:size] + b"\0" * max(0, size - len(old))
            self.totals.add(writes=1)

    async def cancel_read(self, rng: random.Random) -> None:
        path = rng.choice(list(self.shared))
        data = self.shared[path]
        async with aiofastread.open(path, "rb") as f:
            self.totals.add(opens=1)
            off = rng.randrange(0, len(data))
            await f.seek(off)
            reader = asyncio.ensure_future(f.read(rng.choice((4096, 65536, 500_000))))
            for _ in range(rng.randrange(0, 4)):
                await asyncio.sleep(0)
            reader.cancel()
            try:
                got = await reader
            except asyncio.CancelledError:
                self.totals.add(cancelled_reads=1)
                self.check(f"position after cancel {path.name}", await f.tell(), off)
                got = await f.read(1000)
                self.check(f"read after cancel {path.name}", got, data[off : off + 1000])
            else:
                self.check(f"uncancelled read {path.name}", got, data[off : off + len(got)])

    async def cancel_open(self, rng: random.Random) -> None:
        path = rng.choice(list(self.shared))
        mode = rng.choice(("rb", "r", "r+b"))
        opener = asyncio.ensure_future(aiofastread.open(path, mode))
        for _ in range(rng.randrange(0, 3)):
            await asyncio.sleep(0)
        opener.cancel()
        try:
            f = await opener
        except asyncio.CancelledError:
            self.totals.add(cancelled_opens=1)
        else:
            await f.close()

    async def stream_file(self, rng: random.Random) -> None:
        """Read a large file start to end (or stop, or be cancelled, half way)."""
        path = rng.choice(list(self.streams))
        data = self.streams[path]
        chunk = rng.choice((64 << 10, 256 << 10, 1 << 20))
        stop_at = len(data) if rng.random() < 0.7 else rng.randrange(len(data))
        cancel = rng.random() < 0.2

        async def read() -> int:
            pos = 0
            async with aiofastread.open(path, "rb") as f:
                self.totals.add(opens=1)
                while pos < stop_at:
                    got = await f.read(chunk)
                    if not got:
                        break
                    if got != data[pos : pos + len(got)]:
                        self.check(f"stream {path.name} at {pos}", got, data[pos : pos + chunk])
                        break
                    pos += len(got)
            return pos

        reader = asyncio.ensure_future(read())
        if cancel:
            for _ in range(rng.randrange(1, 40)):
                await asyncio.sleep(0)
            reader.cancel()
        try:
            pos = await reader
        except asyncio.CancelledError:
            if not cancel:
                raise
            return
        if stop_at == len(data):
            self.check(f"stream {path.name} length", pos, len(data))
        self.totals.add(streams=1, stream_bytes=pos)

    async def sendfile_stream(self, rng: random.Random) -> None:
        """aiofastread.sendfile of a large file over a socket pair."""
        path = rng.choice(list(self.streams))
        data = self.streams[path]
        offset = rng.randrange(0, len(data) // 2)
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)

        async def receive() -> bytes:
            parts = []
            while part := await loop.sock_recv(b, 1 << 20):
                parts.append(part)
            return b"".join(parts)

        receiver = asyncio.ensure_future(receive())
        try:
            async with aiofastread.open(path, "rb") as f:
                self.totals.add(opens=1)
                sent = await aiofastread.sendfile(a, f, offset)
            a.close()
            got = await receiver
            self.check(f"sendfile {path.name}", got, data[offset:])
            self.check(f"sendfile {path.name} count", sent, len(data) - offset)
            self.totals.add(sendfiles=1)
        finally:
            a.close()
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await receiver
            b.close()

    async def evict_some(self, rng: random.Random) -> None:
        path = rng.choice(list(self.shared) + list(self.model) + list(self.streams))
        await asyncio.to_thread(evict, path)
        self.totals.add(evictions=1)

    async def pread_many(self, rng: random.Random) -> None:
        path = rng.choice(list(self.shared))
        data = self.shared[path]
        async with aiofastread.open(path, "rb") as f:
            self.totals.add(opens=1)
            offs = [rng.randrange(0, len(data)) for _ in range(rng.randrange(2, 40))]
            results = await asyncio.gather(*(f.pread(4096, o) for o in offs))
            for o, got in zip(offs, results, strict=False):
                self.check(f"gathered pread {path.name}", got, data[o : o + 4096])
            self.totals.add(reads=len(offs))


# -- setup ----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs_dir() -> Any:
    """A tmpfs mount of our own when root, else a directory in /dev/shm."""
    mountpoint = Path(tempfile.mkdtemp(prefix="aiofastread-soak-tmpfs-"))
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(mountpoint)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        if mounted:
            yield mountpoint
        else:
            with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
                yield Path(shm)
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)
        mountpoint.rmdir()


class Watchdog(threading.Thread):
    """Where was a loop thread when its heartbeat was late? Samples its
    stack (sys._current_frames) once a beat is over ``threshold`` late, so
    a stall can be told apart: a blocking call made by the library, or the
    thread waiting for the GIL/CPU behind other threads (no blocking frame)."""

    def __init__(self, workers: list[Worker], threshold: float = 0.1) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.workers = workers
        self.threshold = threshold
        self.samples: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            now = time.monotonic()
            frames = sys._current_frames()
            for w in self.workers:
                if w.thread_id and now - w.last_beat > self.threshold:
                    frame = frames.get(w.thread_id)
                    stack = traceback.extract_stack(frame)[-4:] if frame else []
                    where = " < ".join(
                        f"{Path(fs.filename).name}:{fs.lineno} {fs.name}" for fs in reversed(stack)
                    )
                    self.samples[where] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--loops", type=int, default=4, help="event loops, one per thread")
    parser.add_argument("--tasks", type=int, default=24, help="tasks per loop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="ext4 directory (default: a temp dir)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--stream-mib", type=int, default=24, help="size of each of the 2 stream files (ext4)"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also sample Python's own allocations (slower): tells a leak from allocator growth",
    )
    args = parser.parse_args(argv)

    totals = Totals()
    rng = random.Random(args.seed)
    if args.tracemalloc:
        tracemalloc.start()
    ext4 = Path(tempfile.mkdtemp(prefix="aiofastread-soak-", dir=args.dir or "/var/tmp"))
    with tmpfs_dir() as tmpfs:
        try:
            shared: dict[Path, bytes] = {}
            for d in (ext4, tmpfs):
                for j in range(6):
                    path = d / f"shared-{j}.bin"
                    lines = b"".join(
                        b"%d %s\n" % (i, rng.randbytes(rng.randrange(0, 120)).hex().encode())
                        for i in range(rng.randrange(10, 8000))
                    )
                    data = lines if j % 2 else rng.randbytes(rng.randrange(1, 900_000))
                    path.write_bytes(data)
                    shared[path] = data
            streams: dict[Path, bytes] = {}
            for j in range(2):
                path = ext4 / f"stream-{j}.bin"
                data = rng.randbytes(args.stream_mib << 20)
                path.write_bytes(data)
                streams[path] = data
            if uvloop is not None:
                # libuv opens a process-wide pipe (its signal lock) with the
                # first loop and keeps it: not ours to count as a leak.
                uvloop.new_event_loop().close()
            fds_before = fd_count()
            rss_start = rss_bytes()
            start = time.monotonic()
            deadline = start + args.minutes * 60
            workers = [
                Worker(i, [ext4, tmpfs], shared, streams, totals, deadline, args.tasks, args.seed)
                for i in range(args.loops)
            ]
            threads = [threading.Thread(target=w.run, name=f"loop-{w.index}") for w in workers]
            for t in threads:
                t.start()
            watchdog = Watchdog(workers)
            watchdog.start()
            samples: list[dict[str, Any]] = []
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=args.sample / len(threads))
                stats = aiofastread.statistics()
                model = sum(len(d) for w in workers for d in list(w.model.values()))
                sample = {
                    "t": round(time.monotonic() - start, 1),
                    "rss_mib": round(rss_bytes() / 2**20, 1),
                    # The reference model (files' bytes, which appends grow up
                    # to 2 MB a file) is test data, not the library's memory.
                    "model_mib": round(model / 2**20, 1),
                    "traced_mib": (
                        round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
                        if tracemalloc.is_tracing()
                        else None
                    ),
                    "fds": fd_count(),
                    "threads": os_thread_count(),
                    "readahead_in_flight": _native_pool.readahead_in_flight()[0],
                    "ops": totals.ops,
                    "mismatches": totals.mismatches,
                    "errors": totals.errors,
                    "in_flight": stats.misses_in_flight,
                    "inline_hits": stats.inline_hits,
                    "pool_reads": stats.pool_reads,
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)
            watchdog.stop.set()
            # Deferred closes run in the pool: wait for it to settle.
            settle_deadline = time.monotonic() + 30
            while (
                aiofastread.statistics().misses_in_flight or _native_pool.readahead_in_flight()[0]
            ) and time.monotonic() < settle_deadline:
                time.sleep(0.01)
            fds_after = fd_count()
            rss = [s["rss_mib"] - s["model_mib"] for s in samples]
            quarter = max(1, len(rss) // 4)
            stats = aiofastread.statistics()
            summary = {
                "minutes": args.minutes,
                "loops": args.loops,
                "tasks_per_loop": args.tasks,
                "ops": totals.ops,
                "reads": totals.reads,
                "writes": totals.writes,
                "opens": totals.opens,
                "cancelled_reads": totals.cancelled_reads,
                "cancelled_opens": totals.cancelled_opens,
                "evictions": totals.evictions,
                "streams": totals.streams,
                "stream_mib": round(totals.stream_bytes / 2**20, 1),
                "sendfiles": totals.sendfiles,
                "readahead_jobs": stats.readahead_jobs,
                "threads_first_quarter_max": max(s["threads"] for s in samples[:quarter]),
                "threads_last_quarter_max": max(s["threads"] for s in samples[-quarter:]),
                "mismatches": totals.mismatches,
                "errors": totals.errors,
                "fds_before": fds_before,
                "fds_after": fds_after,
                "fd_leaks": fds_after - fds_before,
                "rss_start_mib": round(rss_start / 2**20, 1),
                "rss_max_mib": max(s["rss_mib"] for s in samples),
                "model_last_mib": samples[-1]["model_mib"],
                # RSS less the model, first and last quarter of the run:
                "rss_less_model_first_quarter_max_mib": round(max(rss[:quarter]), 1),
                "rss_less_model_last_quarter_max_mib": round(max(rss[-quarter:]), 1),
                "worst_loop_stall_ms": round(totals.worst_stall_ms, 2),
                "inline_hits": stats.inline_hits,
                "pool_reads": stats.pool_reads,
                # of which read by the native miss pool's C threads
                "native_pool_reads": _native_pool.counters()[0],
                "unsupported_files": stats.unsupported,
                "tracked_files": stats.tracked_files,
                "first_errors": totals.first_errors,
                "late_heartbeat_stacks": watchdog.samples.most_common(8),
            }
            print("SUMMARY " + json.dumps(summary, indent=1), flush=True)
        finally:
            shutil.rmtree(ext4, ignore_errors=True)
    # Bounded RSS: less the model, the last quarter may not exceed the first
    # by more than 64 MiB (the pool, the policy table and buffers are bounded).
    ok = (
        summary["mismatches"] == 0
        and summary["errors"] == 0
        and summary["fd_leaks"] == 0
        and summary["rss_less_model_last_quarter_max_mib"]
        <= summary["rss_less_model_first_quarter_max_mib"] + 64
    )
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
