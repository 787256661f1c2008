"""Serving big files with aiohttp, end to end: throughput and the loop's worst stall.

    pip install -e ".[examples,bench]"
    python examples/aiohttp_files.py bench                      # files in /var/tmp
    python examples/aiohttp_files.py bench --slow-device 300    # root: a throttled disk
    python examples/aiohttp_files.py serve --root DIR --port 8081   # the server alone
    python examples/aiohttp_files.py bench --engines afr-loop --files warm \
        --tree new=.venv/bin/python --tree old=../old/.venv/bin/python   # A/B of two trees

``bench`` starts the server in a process of its own (asyncio loop), then,
from this process, fetches one file with a real HTTP client
(aiohttp.ClientSession over loopback) through each handler, warm and cold:

  aiohttp     aiohttp.web.FileResponse (loop.sendfile -> os.sendfile on the loop)
  ours        aiofastread.contrib.aiohttp.FileResponse
  aiofiles    a read/write loop: aiofiles reads of 256 KiB, response.write
  afr-loop    the same loop reading with aiofastread (inline when cached)

The server runs a heartbeat task (sleep 1 ms, record how late it woke); the
worst lateness per transfer is the loop's worst stall. The machine's own
stalls are measured beside it by an idle process that only sleeps 1 ms at a
time (aiofastread.benchmark.noise): the "idle control" column. Cold means
evicted from the page cache (fsync + POSIX_FADV_DONTNEED) before the request.

``--tree LABEL=PYTHON`` (repeatable) starts one server per Python environment
(each with its own aiofastread, e.g. a worktree of an older commit with its
own venv) and interleaves them in every round: an A/B of two versions of the
library side by side, in the same time window. The server side of this file
imports only what its handlers need, so an older aiofastread without
``contrib.aiohttp`` serves every handler but ``ours``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ENGINES = ("aiohttp", "ours", "aiofiles", "afr-loop")
CHUNK = 256 << 10  # the read/write loops' read size (as in issue 10's measurement)
HEARTBEAT_S = 0.001
HEADER = (
    "| file | handler | MB/s median (runs) | worst heartbeat ms (runs) "
    "| less run-queue wait ms | idle control ms | MB per server CPU s |"
)


# -- server ------------------------------------------------------------------------


class RunQueueWait:
    """ns the calling thread has waited for a CPU while runnable
    (/proc/thread-self/schedstat, second field; 0 where it is missing).
    A copy of aiofastread.benchmark.workload's, so that a server running an
    older aiofastread measures the same way."""

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


class Heartbeat:
    """Sleeps 1 ms at a time on the server's loop; records the worst lateness,
    and the worst lateness left once the loop thread's own wait for a CPU in
    that tick (run-queue wait, other processes running) is taken off."""

    def __init__(self) -> None:
        self.worst = self.worst_own = 0.0
        # When the worst own tick ended (perf_counter: CLOCK_MONOTONIC on Linux,
        # the clock of `perf record -k CLOCK_MONOTONIC`, to find it in a trace).
        self.worst_own_at = self.worst_own_late = 0.0
        self.cpu = time.process_time()  # the server's CPU time (all its threads)

    async def run(self) -> None:
        clock = time.perf_counter
        run_queue_wait = RunQueueWait()  # opened on the loop thread: its counter
        while True:
            t0, w0 = clock(), run_queue_wait()
            await asyncio.sleep(HEARTBEAT_S)
            late = clock() - t0 - HEARTBEAT_S
            own = late - (run_queue_wait() - w0) / 1e9
            self.worst = max(self.worst, late)
            if own > self.worst_own:
                self.worst_own, self.worst_own_late = own, late
                self.worst_own_at = t0 + HEARTBEAT_S + late

    def take(self) -> dict[str, float]:
        cpu = time.process_time()
        answer = {
            "worst_ms": self.worst * 1e3,
            "worst_own_ms": self.worst_own * 1e3,
            "worst_own_at": self.worst_own_at,
            "worst_own_late_ms": self.worst_own_late * 1e3,
            "server_pid": os.getpid(),
            "cpu_s": cpu - self.cpu,
        }
        self.worst = self.worst_own = self.worst_own_at = self.worst_own_late = 0.0
        self.cpu = cpu
        return answer


def make_app(root: Path) -> web.Application:
    import aiofiles

    import aiofastread

    heartbeat = Heartbeat()

    def file_of(request: web.Request) -> Path:
        return root / request.match_info["name"]

    async def with_aiohttp(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(file_of(request))

    async def ours(request: web.Request) -> web.StreamResponse:
        from aiofastread.contrib.aiohttp import FileResponse  # not in older versions

        return FileResponse(file_of(request))

    def read_write_loop(files: Any) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            path = file_of(request)
            response = web.StreamResponse()
            response.content_type = "application/octet-stream"
            async with files.open(path, "rb") as f:
                response.content_length = (await f.seek(0, os.SEEK_END)) or 0
                await f.seek(0)
                await response.prepare(request)
                while chunk := await f.read(CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response

        return handler

    async def beat(request: web.Request) -> web.Response:
        # Which aiofastread this server runs (an A/B must not compare a tree with itself).
        return web.json_response({**heartbeat.take(), "library": aiofastread.__file__})

    async def start_heartbeat(app: web.Application) -> Any:
        task = asyncio.ensure_future(heartbeat.run())
        yield
        task.cancel()

    app = web.Application()
    app.cleanup_ctx.append(start_heartbeat)
    app.router.add_get("/heartbeat", beat)
    app.router.add_get("/aiohttp/{name}", with_aiohttp)
    app.router.add_get("/ours/{name}", ours)
    app.router.add_get("/aiofiles/{name}", read_write_loop(aiofiles))
    app.router.add_get("/afr-loop/{name}", read_write_loop(aiofastread))
    return app


def serve(root: Path, port: int) -> None:
    web.run_app(make_app(root), host="127.0.0.1", port=port, print=None)


# -- load ----------------------------------------------------------------------------


def evict(path: Path) -> None:
    """Drop the file's pages, checked with cachestat where there is one.

    DONTNEED skips pages that are locked, under I/O or still in another CPU's
    LRU batch (the last transfer's readahead), so it is repeated for up to
    ~3 s; pages that stay are reported, not hidden."""
    from aiofastread import _native

    cachestat = _native.backend.cachestat
    left = 0
    for _ in range(300):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            answer = cachestat(fd, 0, os.fstat(fd).st_size) if cachestat else None
        finally:
            os.close(fd)
        if not isinstance(answer, tuple) or answer[0] == 0:
            return
        left = answer[0]
        time.sleep(0.01)
    print(f"(evict: {left} pages of {path.name} stayed cached)", file=sys.stderr)


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


@contextlib.contextmanager
def idle_control() -> Iterator[Callable[[], float]]:
    """An idle process sleeping 1 ms at a time; yields its worst lateness (ms)."""
    from aiofastread.benchmark import noise

    with tempfile.NamedTemporaryFile(prefix="aiofastread-idle-", delete=False) as out:
        name = out.name
    child = subprocess.Popen(
        [sys.executable, "-m", "aiofastread.benchmark.noise", name], stdin=subprocess.PIPE
    )
    result = {"worst": 0.0}
    try:
        yield lambda: result["worst"]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        _, lates = noise.load(name)
        os.unlink(name)
        result["worst"] = max(lates, default=0) / 1e6


async def fetch(session: aiohttp.ClientSession, url: str) -> int:
    got = 0
    async with session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_chunked(1 << 20):
            got += len(chunk)
    return got


async def measure(
    targets: list[tuple[str, str]],
    path: Path,
    rounds: int,
    engines: tuple[str, ...],
    temperatures: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Rounds interleave the handlers (one transfer each per round), and the
    servers (label, base URL) when there are several, so that the load other
    processes put on this shared machine falls on all alike."""
    size = path.stat().st_size
    rows = []
    cells = [(label, base, engine) for engine in engines for label, base in targets]
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for label, base in targets:  # connect, import, warm code paths
            await fetch(session, f"{base}/{engines[0]}/{path.name}")
            async with session.get(f"{base}/heartbeat") as r:
                print(f"server {label or '-'} runs {(await r.json())['library']}", flush=True)
        for temperature in temperatures:
            runs: dict[tuple[str, str], list[tuple[float, ...]]] = {
                (label, engine): [] for label, _, engine in cells
            }
            for _ in range(rounds):
                for label, base, engine in cells:
                    (warm if temperature == "warm" else evict)(path)
                    with idle_control() as idle_worst:
                        async with session.get(f"{base}/heartbeat") as r:
                            await r.json()  # reset
                        t0 = time.perf_counter()
                        got = await fetch(session, f"{base}/{engine}/{path.name}")
                        elapsed = time.perf_counter() - t0
                        async with session.get(f"{base}/heartbeat") as r:
                            beat = await r.json()
                    assert got == size, (engine, got, size)
                    mb = size / 1e6
                    runs[label, engine].append(
                        (
                            mb / elapsed,
                            beat["worst_ms"],
                            beat["worst_own_ms"],
                            idle_worst(),
                            mb / max(beat["cpu_s"], 1e-6),
                            beat["worst_own_at"],
                            beat["worst_own_late_ms"],
                            beat["server_pid"],
                        )
                    )
            for label, _, engine in cells:
                speeds, beats, owns, idles, per_cpu, owns_at, owns_late, pids = zip(
                    *runs[label, engine], strict=True
                )
                rows.append(
                    {
                        "temperature": temperature,
                        "engine": f"{label}/{engine}" if label else engine,
                        "mb_s": statistics.median(speeds),
                        "mb_s_all": speeds,
                        "heartbeat_worst_ms": max(beats),
                        "heartbeat_all_ms": beats,
                        "heartbeat_own_all_ms": owns,
                        "heartbeat_own_worst_ms": max(owns),
                        "heartbeat_own_at": owns_at,  # CLOCK_MONOTONIC s, the tick's end
                        "heartbeat_own_late_ms": owns_late,  # that tick's raw lateness
                        "server_pid": pids[0],
                        "idle_control_all_ms": idles,
                        "idle_control_worst_ms": max(idles),
                        "mb_per_server_cpu_s": statistics.median(per_cpu),
                    }
                )
                print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['temperature']} | {r['engine']} | {r['mb_s']:.0f} "
        f"({', '.join(f'{s:.0f}' for s in r['mb_s_all'])}) | {r['heartbeat_worst_ms']:.1f} "
        f"({', '.join(f'{b:.1f}' for b in r['heartbeat_all_ms'])}) "
        f"| {r['heartbeat_own_worst_ms']:.1f} | {r['idle_control_worst_ms']:.1f} "
        f"| {r['mb_per_server_cpu_s']:.0f} |"
    )


def wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    import socket

    for _ in range(600):
        if server.poll() is not None:
            raise SystemExit("the server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("the server did not start")


def bench(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        join: Callable[[], None] = lambda: None  # noqa: E731
        leave: Callable[[], None] = lambda: None  # noqa: E731
        if args.slow_device:
            from aiofastread.benchmark.slowdev import SlowDevice

            dev = stack.enter_context(SlowDevice(args.slow_device, args.size << 20, args.dir))
            assert dev.mount_point is not None
            cal = dev.verify()  # refuses a throttle that has no effect
            print(f"slow device: {cal.iops:.0f} IOPS measured ({args.slow_device} asked)")
            root = dev.mount_point
            join, leave = dev.join, dev.leave
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir)))
        path = root / "big.bin"
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.size):
                f.write(block)
        join()  # the servers (and their pool threads) read under the throttle
        trees = [t.split("=", 1) for t in args.tree] or [["", sys.executable]]
        servers = [
            subprocess.Popen(
                [python, __file__, "serve", "--root", str(root), "--port", str(args.port + i)]
            )
            for i, (_, python) in enumerate(trees)
        ]
        leave()
        try:
            for i, server in enumerate(servers):
                wait_for_port(args.port + i, server)
            print(f"{args.size} MiB in {root}; load pid {os.getpid()}")
            for (label, python), server in zip(trees, servers, strict=True):
                print(f"server {label or '-'}: pid {server.pid}, {python}")
            print(HEADER)
            print("|---|---|---|---|---|---|---|")
            rows = asyncio.run(
                measure(
                    [
                        (label, f"http://127.0.0.1:{args.port + i}")
                        for i, (label, _) in enumerate(trees)
                    ],
                    path,
                    args.rounds,
                    tuple(args.engines),
                    tuple(args.files),
                )
            )
        finally:
            for server in servers:
                server.terminate()
                server.wait()
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="the server alone")
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--port", type=int, default=8081)
    b = sub.add_parser("bench", help="server process + HTTP load from this one")
    b.add_argument("--size", type=int, default=256, help="file size, MiB")
    b.add_argument("--rounds", type=int, default=3)
    b.add_argument("--port", type=int, default=8081)
    b.add_argument("--dir", default="/var/tmp", help="where the file (or slow image) goes")
    b.add_argument("--slow-device", type=int, default=0, metavar="IOPS")
    b.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    b.add_argument("--files", nargs="+", default=["warm", "cold"], choices=["warm", "cold"])
    b.add_argument("--json", help="also write the rows here")
    b.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="a server per Python environment, interleaved in every round (A/B)",
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.root, args.port)
    else:
        bench(args)


if __name__ == "__main__":
    main()
