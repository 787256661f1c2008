"""Framework adapters end to end: throughput and the server loop's worst stall.

    pip install -e ".[test]"
    python bench/adapters.py [--size-mb 32] [--files 4] [--runs 3] [--dir /var/tmp]

For Starlette (served by uvicorn) and Sanic, a server process of its own
serves the same files two ways:

  starlette  theirs: starlette.responses.FileResponse   ours: contrib.starlette.FileResponse
  sanic      theirs: sanic.response.file_stream         ours: contrib.sanic.file_stream
             (64 KiB chunks in both; Sanic's default is 4 KiB)

This process fetches ``--files`` files at once (one connection each, aiohttp)
through each handler, warm (read just before) and cold (evicted with fsync +
POSIX_FADV_DONTNEED). The server's loop runs the tests' heartbeat (sleep 1 ms,
record how late it woke, tests/heartbeat.py); its worst lateness over a
transfer is the loop's worst stall. Rows: median MB/s and the worst stall of
each run. The machine is shared: compare ours and theirs within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHUNK = 64 << 10


def starlette_app(root: str) -> Any:
    import contextlib

    import starlette.responses
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from aiofastread.contrib.starlette import FileResponse
    from tests.heartbeat import Heartbeat

    heartbeat = Heartbeat()

    def serve(cls: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return cls(os.path.join(root, request.path_params["name"]))  # type: ignore[no-any-return]

        return endpoint

    async def beat(request: Request) -> Response:
        return JSONResponse(heartbeat.take())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        task = asyncio.create_task(heartbeat.run())
        yield
        task.cancel()

    return Starlette(
        routes=[
            Route("/ours/{name}", serve(FileResponse)),
            Route("/theirs/{name}", serve(starlette.responses.FileResponse)),
            Route("/_heartbeat", beat),
        ],
        lifespan=lifespan,
    )


def serve_starlette(root: str, fd: int) -> None:
    import uvicorn

    config = uvicorn.Config(starlette_app(root), loop="asyncio", log_level="warning")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


def serve_sanic(root: str, fd: int) -> None:
    from sanic import Sanic
    from sanic.response import file_stream, json

    from aiofastread.contrib import sanic as afr_sanic
    from tests.heartbeat import Heartbeat

    app = Sanic("bench")
    app.config.USE_UVLOOP = False
    heartbeat = Heartbeat()

    def serve(helper: Any) -> Any:
        async def handler(request: Any, name: str) -> Any:
            return await helper(os.path.join(root, name), chunk_size=CHUNK)

        return handler

    app.add_route(serve(afr_sanic.file_stream), "/ours/<name>", name="ours")
    app.add_route(serve(file_stream), "/theirs/<name>", name="theirs")

    @app.get("/_heartbeat")
    async def beat(request: Any) -> Any:
        return json(heartbeat.take())

    @app.after_server_start
    async def start(app: Any) -> None:
        app.add_task(heartbeat.run())

    app.run(sock=socket.socket(fileno=fd), single_process=True, motd=False, access_log=False)


async def heartbeat(client: Any, url: str) -> dict[str, float]:
    async with client.get(f"{url}/_heartbeat") as response:
        return await response.json()  # type: ignore[no-any-return]


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        for _ in range(3):  # pages in another CPU's LRU batch survive one pass
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


async def transfer(client: Any, url: str, names: list[str], size: int) -> float:
    """Fetch every file at once; MB/s over all of them."""

    async def one(name: str) -> None:
        got = 0
        async with client.get(f"{url}/{name}") as response:
            async for chunk in response.content.iter_any():
                got += len(chunk)
        assert got == size, (name, got)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in names))
    return len(names) * size / (time.perf_counter() - start) / 1e6


async def bench(framework: str, root: Path, files: list[Path], runs: int, size: int) -> None:
    import aiohttp

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    code = (
        f"from bench.adapters import serve_{framework}; "
        f"serve_{framework}({str(root)!r}, {sock.fileno()})"
    )
    server = subprocess.Popen(  # noqa: ASYNC220 (once, before anything is measured)
        [sys.executable, "-c", code],
        pass_fds=[sock.fileno()],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    names = [f.name for f in files]
    try:
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            async with client.get(f"{url}/_heartbeat"):  # server up
                pass
            for state in ("warm", "cold"):
                rows: dict[str, tuple[list[float], list[dict[str, float]]]] = {
                    "theirs": ([], []),
                    "ours": ([], []),
                }
                for _ in range(runs):
                    for side in ("theirs", "ours"):
                        for f in files:
                            (warm if state == "warm" else evict)(f)
                        await heartbeat(client, url)
                        rate = await transfer(client, f"{url}/{side}", names, size)
                        rows[side][0].append(rate)
                        rows[side][1].append(await heartbeat(client, url))
                for side, (rates, beats) in rows.items():
                    worst = " ".join(f"{b['worst_ms']:.1f}" for b in beats)
                    less = " ".join(f"{b['worst_less_wait_ms']:.1f}" for b in beats)
                    print(
                        f"| {framework} | {state} | {side} | {statistics.median(rates):.0f} "
                        f"| {worst} | {less} |",
                        flush=True,
                    )
    finally:
        server.kill()
        server.wait()
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--frameworks", default="starlette,sanic")
    args = parser.parse_args()
    size = args.size_mb << 20
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="afr-adapters-") as tmp:
        root = Path(tmp)
        files = []
        for i in range(args.files):
            path = root / f"f{i}.bin"
            path.write_bytes(os.urandom(size))
            files.append(path)
        print(f"{args.files} files x {args.size_mb} MiB at once, {args.runs} runs, {args.dir}")
        print(
            "| framework | files | handler | MB/s median "
            "| worst heartbeat ms per run | less run-queue wait ms |"
        )
        print("|---|---|---|---|---|---|")
        for framework in args.frameworks.split(","):
            asyncio.run(bench(framework, root, files, args.runs, size))


if __name__ == "__main__":
    main()
