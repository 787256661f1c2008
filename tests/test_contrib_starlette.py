"""aiofastread.contrib.starlette against Starlette's own FileResponse and
StaticFiles, byte for byte and header for header, through a real uvicorn
server on loopback and a real HTTP client (httpx).

uvicorn runs in a thread of this process with a loop of its own (the same
kind as the test's), so blockbuster (tests/conftest.py) watches the server
loop too and aiofastread.statistics() shows how the bodies were read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="needs the starlette extra")
pytest.importorskip("uvicorn", reason="needs uvicorn (test extra)")
httpx = pytest.importorskip("httpx", reason="needs httpx (test extra)")

import starlette.responses  # noqa: E402
import starlette.staticfiles  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

import aiofastread  # noqa: E402
from aiofastread.contrib import starlette as ours  # noqa: E402
from tests.conftest import evict, make_file, supports_nowait, until, warm  # noqa: E402
from tests.heartbeat import Heartbeat  # noqa: E402

SIZE = (2 << 20) + 777  # several 64 KiB chunks, the last one short
# Headers that must agree (date and server come from uvicorn).
COMPARED = (
    "content-length",
    "content-range",
    "content-type",
    "content-disposition",
    "accept-ranges",
    "etag",
    "last-modified",
)
NAMED = "naïve résumé.bin"  # content-disposition with filename*=utf-8''


def test_importing_aiofastread_does_not_import_starlette() -> None:
    code = "import sys, aiofastread; sys.exit(bool({'starlette', 'anyio'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def make_app(root: Path) -> Starlette:
    heartbeat = Heartbeat()

    def serve(cls: type[starlette.responses.FileResponse]) -> Route:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            filename = NAMED if request.query_params.get("named") else None
            return cls(root / name, filename=filename)

        prefix = "ours" if cls is ours.FileResponse else "theirs"
        return Route(f"/{prefix}/{{name}}", endpoint, methods=["GET", "HEAD"])

    async def beat(request: Request) -> Response:
        return JSONResponse(heartbeat.take())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(heartbeat.run())
        yield
        task.cancel()

    return Starlette(
        routes=[
            serve(ours.FileResponse),
            serve(starlette.responses.FileResponse),
            Route("/_heartbeat", beat),
            Mount("/static-ours", ours.StaticFiles(directory=root, html=True)),
            Mount("/static-theirs", starlette.staticfiles.StaticFiles(directory=root, html=True)),
        ],
        lifespan=lifespan,
    )


class Server:
    """uvicorn in a thread, with a loop of its own, on a socket that already
    listens (connections queue until the server accepts: no start-up wait)."""

    def __init__(self, root: Path, loop: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            make_app(root), loop=loop, log_level="warning", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("starlette")
    if not (hasattr(os, "RWF_NOWAIT") and supports_nowait(path)):
        pytest.skip(f"{path} does not support RWF_NOWAIT (tmpfs/overlayfs?)")
    return path


@pytest.fixture(scope="module")
def servers(root: Path) -> Iterator[dict[str, Server]]:
    """One server per loop kind, started on first use, for the whole module
    (each test's backend is the process's, which the server reads with)."""
    running: dict[str, Server] = {}
    try:
        yield running
    finally:
        for server in running.values():
            server.stop()


@pytest.fixture
async def client(root: Path, servers: dict[str, Server]) -> AsyncIterator[httpx.AsyncClient]:
    loop = "uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else "asyncio"
    if loop not in servers:
        servers[loop] = Server(root, loop)
    async with httpx.AsyncClient(base_url=servers[loop].url, timeout=30) as session:
        yield session


@pytest.fixture
def data(root: Path) -> bytes:
    data = make_file(root / "f.bin", SIZE)
    (root / "404.html").write_bytes(b"<p>not here</p>")
    warm(root / "f.bin")
    aiofastread.reset_statistics()
    return data


def normalized(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, compared headers and body, with a multipart boundary (random
    per response) replaced by a fixed one."""
    headers = {k: response.headers[k] for k in COMPARED if k in response.headers}
    body = response.content
    found = re.search(r"boundary=(\w+)", headers.get("content-type", ""))
    if found:
        boundary = found.group(1)
        headers["content-type"] = headers["content-type"].replace(boundary, "B")
        body = body.replace(boundary.encode(), b"B")
    return response.status_code, headers, body


async def both(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    mine: str = "ours",
    theirs: str = "theirs",
) -> tuple[int, dict[str, str], bytes]:
    """The same request to ours and Starlette's: identical answers."""
    a = normalized(await client.request(method, f"/{mine}/{path}", headers=headers))
    b = normalized(await client.request(method, f"/{theirs}/{path}", headers=headers))
    assert a == b
    return a


def read_by_us() -> int:
    stats = aiofastread.statistics()
    return stats.bytes_inline + stats.bytes_pooled


async def test_full_file(client: httpx.AsyncClient, data: bytes) -> None:
    status, headers, body = await both(client, "f.bin")
    assert (status, body) == (200, data)
    assert headers["accept-ranges"] == "bytes"
    assert read_by_us() == SIZE  # our response read the body through aiofastread


async def test_warm_file_is_read_inline(
    client: httpx.AsyncClient, data: bytes, backend: str
) -> None:
    if backend == "pool":
        pytest.skip("the pool backend reads everything in the pool")
    await client.get("/ours/f.bin")
    stats = aiofastread.statistics()
    assert stats.bytes_inline == SIZE
    assert stats.pool_reads == 0  # the pool only opened and closed the file


RANGES = [
    ("bytes=100-199", 206, slice(100, 200)),
    ("bytes=-500", 206, slice(SIZE - 500, SIZE)),
    ("bytes=1000000-", 206, slice(1000000, SIZE)),
    (f"bytes=0-{SIZE + 10}", 206, slice(0, SIZE)),
    (f"bytes={SIZE}-", 416, slice(0, 0)),
    ("bytes=abc", 400, None),  # no range in it
    ("bytes=200-100", 400, None),
    ("lines=1-2", 400, None),
]


async def test_single_ranges(client: httpx.AsyncClient, data: bytes) -> None:
    for spec, status, part in RANGES:
        aiofastread.reset_statistics()
        got_status, headers, body = await both(client, "f.bin", {"Range": spec})
        assert got_status == status, spec
        if status == 206:
            assert part is not None
            assert body == data[part]
            assert headers["content-range"] == f"bytes {part.start}-{part.stop - 1}/{SIZE}"
        elif status == 416:
            assert (body, headers["content-range"]) == (b"", f"bytes */{SIZE}")
        assert read_by_us() == (0 if part is None else part.stop - part.start), spec


async def test_multiple_ranges(client: httpx.AsyncClient, data: bytes) -> None:
    status, headers, body = await both(client, "f.bin", {"Range": "bytes=0-9, 100-199, -5"})
    assert status == 206
    assert headers["content-type"] == "multipart/byteranges; boundary=B"
    for part in (data[0:10], data[100:200], data[-5:]):
        assert b"\r\n\r\n" + part + b"\r\n" in body
    assert read_by_us() == 10 + 100 + 5


async def test_if_range(client: httpx.AsyncClient, data: bytes) -> None:
    etag = (await client.get("/theirs/f.bin")).headers["etag"]
    assert (await both(client, "f.bin", {"Range": "bytes=5-9", "If-Range": etag}))[2] == data[5:10]
    stale = {"Range": "bytes=5-9", "If-Range": '"stale"'}
    assert (await both(client, "f.bin", stale))[:3:2] == (200, data)


async def test_head(client: httpx.AsyncClient, data: bytes) -> None:
    status, headers, body = await both(client, "f.bin", method="HEAD")
    assert (status, headers["content-length"], body) == (200, str(SIZE), b"")
    ranged = await both(client, "f.bin", {"Range": "bytes=0-9"}, method="HEAD")
    assert ranged[0] == 206
    assert read_by_us() == 0


async def test_content_disposition(client: httpx.AsyncClient, data: bytes) -> None:
    status, headers, _ = await both(client, "f.bin?named=1")
    assert status == 200
    assert headers["content-disposition"].startswith("attachment; filename*=utf-8''na%C3%AFve")


async def test_static_files(client: httpx.AsyncClient, data: bytes) -> None:
    pair = {"mine": "static-ours", "theirs": "static-theirs"}
    status, headers, body = await both(client, "f.bin", **pair)
    assert (status, body) == (200, data)
    assert read_by_us() == SIZE
    assert (await both(client, "f.bin", {"Range": "bytes=-500"}, **pair))[2] == data[-500:]
    assert (await both(client, "f.bin", {"If-None-Match": headers["etag"]}, **pair))[0] == 304
    since = {"If-Modified-Since": headers["last-modified"]}
    assert (await both(client, "f.bin", since, **pair))[0] == 304
    assert (await both(client, "f.bin", method="HEAD", **pair))[2] == b""
    # html mode: a missing file is answered with 404.html, through our response
    aiofastread.reset_statistics()
    assert (await both(client, "missing.bin", **pair))[:3:2] == (404, b"<p>not here</p>")
    assert read_by_us() == len(b"<p>not here</p>")


async def test_static_files_missing_without_html(root: Path, data: bytes) -> None:
    app = Starlette(routes=[Mount("/s", ours.StaticFiles(directory=root))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as session:
        assert (await session.get("/s/missing.bin")).status_code == 404
        assert (await session.get("/s/f.bin")).content == data


async def test_cold_file_goes_to_the_pool(
    client: httpx.AsyncClient, data: bytes, root: Path, record_property: object
) -> None:
    """A cold file is read by the pool, never inline; the server loop's worst
    heartbeat lateness for ours and for Starlette's goes to the report."""
    lateness = {}
    for side in ("theirs", "ours"):
        evict(root / "f.bin")
        await client.get("/_heartbeat")  # restart the count
        aiofastread.reset_statistics()
        response = await client.get(f"/{side}/f.bin")
        assert response.content == data
        lateness[side] = (await client.get("/_heartbeat")).json()
    stats = aiofastread.statistics()
    assert stats.bytes_pooled > 0
    assert stats.bytes_inline + stats.bytes_pooled == SIZE
    assert stats.inline_misses == 0  # no NOWAIT read met a missing page on the loop
    assert lateness["ours"]["ticks"] > 0
    record_property("heartbeat", lateness)  # type: ignore[operator]


def holding(path: Path) -> bool:
    """Whether this process has ``path`` open."""
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing (the server runs in a thread)
            continue
        if target == str(path):
            return True
    return False


async def test_client_gone_mid_body_closes_the_file(client: httpx.AsyncClient, root: Path) -> None:
    # larger than loopback's socket buffers: the server is mid-body when the
    # client goes
    big = root / "big.bin"
    data = make_file(big, 32 << 20)
    async with client.stream("GET", "/ours/big.bin") as response:
        async for chunk in response.aiter_raw():
            assert data.startswith(chunk)
            break
        assert holding(big)
    # the connection is closed with the body unread; the server sees the
    # disconnect and cancels the response, which closes the file
    await until(lambda: not holding(big), "the server closed big.bin")
    big.unlink()


def test_under_trio_the_responses_are_starlettes(root: Path) -> None:
    """aiofastread is asyncio only: under anyio's trio backend our classes
    read as Starlette's do (and still answer the same)."""
    pytest.importorskip("trio", reason="needs trio (test extra)")
    import anyio

    data = make_file(root / "t.bin", 300_000)

    async def fetch_all() -> list[bytes]:
        app = Starlette(
            routes=[
                Route("/f", lambda request: ours.FileResponse(root / "t.bin")),
                Mount("/s", ours.StaticFiles(directory=root)),
            ]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as session:
            full = (await session.get("/f")).content
            part = (await session.get("/s/t.bin", headers={"Range": "bytes=-10"})).content
        return [full, part]

    aiofastread.reset_statistics()
    assert anyio.run(fetch_all, backend="trio") == [data, data[-10:]]
    assert read_by_us() == 0
