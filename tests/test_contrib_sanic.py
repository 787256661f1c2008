"""aiofastread.contrib.sanic against Sanic's own file helpers, byte for byte
and header for header, through real Sanic servers (subprocesses) on
loopback and a real HTTP client (httpx).

Each server process serves /theirs/ (sanic.response.file), /ours/
(contrib file), the same pair for file_stream, app.static under /static/,
and /_stats (aiofastread.statistics() and the loop's heartbeat, then
reset). One server per backend runs without contrib.sanic.install(), one
with it: their /static/ answers must agree (``Servers``).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sanic", reason="needs the sanic extra")
httpx = pytest.importorskip("httpx", reason="needs httpx (test extra)")

from tests.conftest import (  # noqa: E402
    BACKENDS,
    DEFAULT_BACKEND,
    evict,
    make_file,
    supports_nowait,
    warm,
)

SIZE = (2 << 20) + 777
COMPARED = (
    "content-length",
    "content-range",
    "content-type",
    "content-disposition",
    "accept-ranges",
    "last-modified",
    "cache-control",
    "transfer-encoding",
)
REPO = Path(__file__).resolve().parent.parent
COLD_FILES = itertools.count()


def test_importing_aiofastread_does_not_import_sanic() -> None:
    code = "import sys, aiofastread; sys.exit('sanic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- the server process ---------------------------------------------------------


def serve(root: str, fd: int, use_uvloop: bool, installed: bool) -> None:
    """Run in a server process (see ``Servers``) until killed."""
    import dataclasses

    from sanic import Sanic
    from sanic.handlers import ContentRangeHandler
    from sanic.request import Request
    from sanic.response import HTTPResponse, json
    from sanic.response import file as their_file
    from sanic.response import file_stream as their_stream

    import aiofastread
    from aiofastread.contrib import sanic as afr_sanic
    from tests.conftest import no_blocking_on_loop
    from tests.heartbeat import Heartbeat

    # The suite's blockbuster guard (tests/conftest.py), here for the server
    # loop: a blocking call under an aiofastread frame fails the request.
    # (kept referenced: a collected generator would run its finally, which
    # deactivates the guard)
    guard = no_blocking_on_loop.__wrapped__()
    next(guard)
    if installed:
        afr_sanic.install()
    app = Sanic("installed" if installed else "plain")
    app.config.USE_UVLOOP = use_uvloop
    app.config.NOISY_EXCEPTIONS = True
    heartbeat = Heartbeat()

    def ranged(request: Request, path: str) -> tuple[dict[str, str], Any]:
        headers = {"Accept-Ranges": "bytes"}
        if "range" not in request.headers:
            return headers, None
        handler = ContentRangeHandler(request, os.stat(path))  # raises 416
        headers.update(handler.headers)
        return headers, handler

    def whole(helper: Any) -> Any:
        async def handler(request: Request, name: str) -> HTTPResponse:
            path = os.path.join(root, name)
            headers, part = ranged(request, path)
            filename = name if request.args.get("named") else None
            return await helper(  # type: ignore[no-any-return]
                path,
                request_headers=request.headers,
                headers=headers,
                filename=filename,
                _range=part,
            )

        return handler

    def streamed(helper: Any) -> Any:
        async def handler(request: Request, name: str) -> Any:
            path = os.path.join(root, name)
            headers, part = ranged(request, path)
            return await helper(path, chunk_size=64 << 10, headers=headers, _range=part)

        return handler

    app.add_route(whole(their_file), "/theirs/<name>", name="theirs")
    app.add_route(whole(afr_sanic.file), "/ours/<name>", name="ours")
    app.add_route(streamed(their_stream), "/theirs-stream/<name>", name="theirs_stream")
    app.add_route(streamed(afr_sanic.file_stream), "/ours-stream/<name>", name="ours_stream")
    app.static("/static", root, use_content_range=True, name="static")
    app.static("/static-stream", root, stream_large_files=True, name="static_stream")

    @app.get("/_stats")
    async def stats(request: Request) -> HTTPResponse:
        answer = dataclasses.asdict(aiofastread.statistics())
        answer["heartbeat"] = heartbeat.take()
        answer["installed"] = afr_sanic.installed()
        aiofastread.reset_statistics()
        return json(answer)

    @app.after_server_start
    async def start_heartbeat(app: Sanic) -> None:
        app.add_task(heartbeat.run())

    sock = socket.socket(fileno=fd)
    app.run(sock=sock, single_process=True, motd=False, access_log=False)
    guard.close()


# -- the test side --------------------------------------------------------------


class Servers:
    """The server processes, all started at once (Sanic takes seconds to
    import on a loaded machine; they overlap): one plain server per
    backend (uvloop, Sanic's default) and one with install() (the default
    backend, the asyncio loop)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.plain = {backend: self._start(backend, True, False) for backend in BACKENDS}
        self.installed = self._start(DEFAULT_BACKEND, False, True)

    def _start(self, backend: str, use_uvloop: bool, installed: bool) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # connections queue until the server accepts
        code = (
            "from tests.test_contrib_sanic import serve; "
            f"serve({str(self.root)!r}, {sock.fileno()}, {use_uvloop}, {installed})"
        )
        env = dict(os.environ, AIOFASTREAD_BACKEND=backend, PYTHONPATH=str(REPO))
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=[sock.fileno()], env=env, cwd=REPO
            )
        )
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()
        return url

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("sanic")
    if not (hasattr(os, "RWF_NOWAIT") and supports_nowait(root)):
        pytest.skip(f"{root} does not support RWF_NOWAIT (tmpfs/overlayfs?)")
    running = Servers(root)
    try:
        running.start()
        yield running
    finally:
        running.stop()


class Site:
    def __init__(self, client: httpx.AsyncClient, plain: str, installed: str, root: Path):
        self.client, self.plain, self.installed, self.root = client, plain, installed, root

    async def get(
        self, url: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        response = await self.client.request(method, url, headers=headers)
        kept = {k: response.headers[k] for k in COMPARED if k in response.headers}
        return response.status_code, kept, response.content

    async def same(
        self, ours: str, theirs: str, headers: dict[str, str] | None, method: str
    ) -> tuple[int, dict[str, str], bytes]:
        answer = await self.get(ours, headers, method)
        assert answer == await self.get(theirs, headers, method)
        return answer

    async def both(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET", z: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """The same request to ours and Sanic's: identical answers."""
        ours, theirs = f"{self.plain}/ours{z}/{path}", f"{self.plain}/theirs{z}/{path}"
        return await self.same(ours, theirs, headers, method)

    async def static(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET", z: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """app.static with install() and without: identical answers."""
        ours, theirs = f"{self.installed}/static{z}/{path}", f"{self.plain}/static{z}/{path}"
        return await self.same(ours, theirs, headers, method)

    async def stats(self, which: str = "plain") -> dict[str, Any]:
        base = self.plain if which == "plain" else self.installed
        return (await self.client.get(f"{base}/_stats")).json()  # type: ignore[no-any-return]


@pytest.fixture
async def site(servers: Servers, backend: str) -> AsyncIterator[Site]:
    async with httpx.AsyncClient(timeout=120) as client:
        s = Site(client, servers.plain[backend], servers.installed, servers.root)
        assert (await s.stats("installed"))["installed"]
        assert not (await s.stats())["installed"]
        yield s


@pytest.fixture
async def data(site: Site) -> bytes:
    data = make_file(site.root / "f.bin", SIZE)
    warm(site.root / "f.bin")
    await site.stats()
    await site.stats("installed")  # counters from zero
    return data


def read_by_us(stats: dict[str, Any]) -> int:
    return int(stats["bytes_inline"] + stats["bytes_pooled"])


@pytest.mark.parametrize("z", ["", "-stream"])
async def test_full_file(site: Site, data: bytes, z: str, backend: str) -> None:
    status, _, body = await site.both("f.bin", z=z)
    assert (status, body) == (200, data)
    stats = await site.stats()
    assert read_by_us(stats) == SIZE  # ours read it through aiofastread, theirs did not
    if backend != "pool" and z:
        assert stats["bytes_inline"] == SIZE  # warm: 64 KiB chunks served inline
        assert stats["pool_reads"] == 0


RANGES = [
    ("bytes=100-199", 206, slice(100, 200)),
    ("bytes=-500", 206, slice(SIZE - 500, SIZE)),
    ("bytes=1000000-", 206, slice(1000000, SIZE)),
    (f"bytes={SIZE}-", 416, None),
]


@pytest.mark.parametrize("z", ["", "-stream"])
async def test_ranges(site: Site, data: bytes, z: str) -> None:
    for spec, status, part in RANGES:
        got, headers, body = await site.both("f.bin", {"Range": spec}, z=z)
        assert got == status, spec
        if part is not None:
            assert body == data[part]
            assert headers["content-range"] == f"bytes {part.start}-{part.stop - 1}/{SIZE}"
    expected = sum(p.stop - p.start for _, _, p in RANGES if p is not None)
    assert read_by_us(await site.stats()) == expected


async def test_not_modified_and_filename(site: Site, data: bytes) -> None:
    _, headers, _ = await site.both("f.bin")
    since = {"If-Modified-Since": headers["last-modified"]}
    assert (await site.both("f.bin", since))[:3:2] == (304, b"")
    named = (await site.both("f.bin?named=1"))[1]
    assert named["content-disposition"] == 'attachment; filename="f.bin"'


async def test_static_with_install(site: Site, data: bytes) -> None:
    status, headers, body = await site.static("f.bin")
    assert (status, body) == (200, data)
    assert read_by_us(await site.stats("installed")) == SIZE
    assert (await site.static("f.bin", {"Range": "bytes=-500"}))[2] == data[-500:]
    assert (await site.static("f.bin", {"Range": f"bytes={SIZE}-"}))[0] == 416
    since = {"If-Modified-Since": headers["last-modified"]}
    assert (await site.static("f.bin", since))[0] == 304
    assert (await site.static("f.bin", method="HEAD"))[:3:2] == (200, b"")
    assert (await site.static("missing.bin"))[0] == 404
    assert (await site.static("f.bin", z="-stream"))[2] == data
    assert read_by_us(await site.stats("installed")) == 500 + SIZE
    assert read_by_us(await site.stats()) == 0  # the plain server never used us


async def test_cold_file_goes_to_the_pool(site: Site, data: bytes, record_property: Any) -> None:
    """A cold file is read by the pool, never inline; the server loop's worst
    heartbeat lateness for ours and for Sanic's goes to the report. Each side
    gets a new file that the server has never seen (a file it knew warm
    would cost one inline miss before the policy turns it COLD); the files
    stay until the module ends, so no inode number the server's policy
    remembers is reused."""
    lateness = {}
    for side in ("theirs-stream", "ours-stream", "theirs", "ours"):
        name = f"cold-{side}-{next(COLD_FILES)}.bin"
        make_file(site.root / name, SIZE)
        evict(site.root / name)
        await site.stats()
        status, _, body = await site.get(f"{site.plain}/{side}/{name}")
        assert (status, body) == (200, (site.root / name).read_bytes())
        stats = await site.stats()
        lateness[side] = stats["heartbeat"]
        if side.startswith("ours"):
            assert stats["bytes_pooled"] > 0
            assert read_by_us(stats) == SIZE
            assert stats["inline_misses"] == 0  # no NOWAIT read met a missing page
    record_property("heartbeat", lateness)


def test_install_and_uninstall() -> None:
    import sanic.compat
    import sanic.mixins.static
    import sanic.response.convenience as convenience

    from aiofastread.contrib import sanic as afr_sanic

    original = convenience.open_async, convenience.stat_async, sanic.mixins.static.stat_async
    afr_sanic.install()
    afr_sanic.install()  # idempotent: uninstall still restores Sanic's
    try:
        assert afr_sanic.installed()
        assert convenience.open_async is afr_sanic.open_async
        assert sanic.compat.open_async is afr_sanic.open_async
        assert sanic.mixins.static.stat_async is afr_sanic.stat_async
    finally:
        afr_sanic.uninstall()
    assert not afr_sanic.installed()
    assert (convenience.open_async, convenience.stat_async, sanic.mixins.static.stat_async) == (
        original
    )


async def test_open_async_is_used_as_sanic_uses_its_own(data_dir: Path) -> None:
    from aiofastread.contrib import sanic as afr_sanic

    data = make_file(data_dir / "f.bin", 1000)
    async with await afr_sanic.open_async(data_dir / "f.bin", mode="rb") as f:
        assert await f.read(10) == data[:10]
        assert await f.tell() == 10  # the other methods are the file's
        await f.seek(990)
        assert await f.read() == data[990:]
    (data_dir / "t.txt").write_text("line\n")
    async with await afr_sanic.open_async(data_dir / "t.txt", mode="r") as t:
        assert await t.read() == "line\n"
