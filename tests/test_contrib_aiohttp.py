"""aiofastread.contrib.aiohttp.FileResponse against aiohttp's own, byte for
byte and header for header, through a real server on loopback and a real
client (aiohttp.ClientSession)."""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

import aiohttp
from aiohttp import web

import aiofastread
from aiofastread import _sendfile
from aiofastread.contrib.aiohttp import FileResponse
from tests.conftest import evict, make_file, open_fd_count, until, warm

SIZE = (2 << 20) + 777
# Headers that must agree (Date differs by the clock, Server by nothing).
COMPARED = (
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "Content-Encoding",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
    "Vary",
    "Transfer-Encoding",
)


def test_importing_aiofastread_does_not_import_aiohttp() -> None:
    import subprocess

    code = "import sys, aiofastread; sys.exit('aiohttp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class Site:
    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root


@pytest.fixture
async def site(data_dir: Path) -> AsyncIterator[Site]:
    """/ours/NAME and /theirs/NAME serve data_dir/NAME; /ours-z/ compresses."""

    def serve(cls: type[web.FileResponse], compress: bool = False) -> object:
        async def handler(request: web.Request) -> web.StreamResponse:
            response = cls(data_dir / request.match_info["name"], chunk_size=64 << 10)
            if compress:
                response.enable_compression()
            return response

        return handler

    app = web.Application()
    app.router.add_get("/ours/{name}", serve(FileResponse))  # type: ignore[arg-type]
    app.router.add_get("/theirs/{name}", serve(web.FileResponse))  # type: ignore[arg-type]
    app.router.add_get("/ours-z/{name}", serve(FileResponse, True))  # type: ignore[arg-type]
    app.router.add_get("/theirs-z/{name}", serve(web.FileResponse, True))  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    try:
        yield Site(f"http://127.0.0.1:{port}", data_dir)
    finally:
        await runner.cleanup()


async def fetch(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers=headers) as response,
    ):
        body = await response.read()
        kept = {k: response.headers[k] for k in COMPARED if k in response.headers}
        return response.status, kept, body


async def both(site: Site, name: str, headers: dict[str, str], z: str = "") -> tuple[int, bytes]:
    """The same request to ours and aiohttp's: identical answers."""
    ours = await fetch(f"{site.url}/ours{z}/{name}", headers)
    theirs = await fetch(f"{site.url}/theirs{z}/{name}", headers)
    assert ours == theirs
    return ours[0], ours[2]


@pytest.fixture
def data(site: Site) -> bytes:
    data = make_file(site.root / "f.bin", SIZE)
    warm(site.root / "f.bin")
    _sendfile.reset_statistics()
    return data


async def test_full_response(site: Site, data: bytes, backend: str) -> None:
    assert await both(site, "f.bin", {}) == (200, data)
    stats = _sendfile.statistics()
    assert stats.calls == 1  # ours went through aiofastread.sendfile
    moved = stats.bytes_inline + stats.bytes_copied
    assert moved == SIZE


@pytest.mark.parametrize(
    ("spec", "status", "part"),
    [
        ("bytes=100-199", 206, slice(100, 200)),
        ("bytes=-500", 206, slice(SIZE - 500, SIZE)),
        (f"bytes=-{SIZE * 2}", 206, slice(0, SIZE)),
        ("bytes=1048576-", 206, slice(1 << 20, SIZE)),
        (f"bytes=5-{SIZE * 3}", 206, slice(5, SIZE)),
        (f"bytes={SIZE}-", 416, slice(0, 0)),
        ("bytes=300-100", 416, slice(0, 0)),
        ("bytes=a-b", 416, slice(0, 0)),
    ],
)
async def test_ranges(site: Site, data: bytes, spec: str, status: int, part: slice) -> None:
    assert await both(site, "f.bin", {"Range": spec}) == (status, data[part])


async def test_conditional_requests(site: Site, data: bytes) -> None:
    _, headers, _ = await fetch(f"{site.url}/ours/f.bin", {})
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert await both(site, "f.bin", {"If-None-Match": etag}) == (304, b"")
    assert await both(site, "f.bin", {"If-Modified-Since": modified}) == (304, b"")
    assert await both(site, "f.bin", {"If-Match": '"nope"'}) == (412, b"")
    assert await both(site, "f.bin", {"If-Match": etag}) == (200, data)
    assert await both(site, "f.bin", {"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}) == (
        412,
        b"",
    )
    stale = {"If-Range": "Thu, 01 Jan 1970 00:00:00 GMT", "Range": "bytes=0-9"}
    assert await both(site, "f.bin", stale) == (200, data)
    fresh = {"If-Range": modified, "Range": "bytes=0-9"}
    assert await both(site, "f.bin", fresh) == (206, data[:10])
    assert (await both(site, "missing.bin", {}))[0] == 404


async def test_precompressed_sibling_and_compression(site: Site, data: bytes) -> None:
    packed = gzip.compress(data[:100_000])
    (site.root / "g.txt").write_bytes(data[:100_000])
    (site.root / "g.txt.gz").write_bytes(packed)
    assert await both(site, "g.txt", {"Accept-Encoding": "gzip"}) == (200, packed)
    assert await both(site, "g.txt", {"Accept-Encoding": "identity"}) == (200, data[:100_000])
    # On-the-fly compression: ours reads through aiofastread, not the executor.
    _sendfile.reset_statistics()
    status, deflated = await both(site, "f.bin", {"Accept-Encoding": "deflate"}, z="-z")
    assert (status, zlib.decompress(deflated)) == (200, data)
    assert _sendfile.statistics().calls == 0
    ranged = {"Range": "bytes=10-99", "Accept-Encoding": "deflate"}
    status, deflated = await both(site, "f.bin", ranged, z="-z")
    assert (status, zlib.decompress(deflated)) == (206, data[10:100])


async def test_cold_file_is_served_with_the_pool(site: Site, data: bytes, backend: str) -> None:
    evict(site.root / "f.bin")
    before = aiofastread.statistics().pool_submissions
    _, _, body = await fetch(f"{site.url}/ours/f.bin", {})
    assert body == data
    assert aiofastread.statistics().pool_submissions > before
    stats = _sendfile.statistics()
    if backend != "pool" and hasattr(os, "sendfile"):
        assert stats.bytes_brought_in == SIZE
        assert stats.bytes_inline == SIZE
    else:
        assert stats.bytes_copied == SIZE


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
async def test_client_gone_mid_body_leaks_no_descriptor(site: Site, cold: bool) -> None:
    path = site.root / "big.bin"
    make_file(path, 32 << 20)
    if cold:
        evict(path)
    else:
        warm(path)
    before = open_fd_count()
    _sendfile.reset_statistics()
    async with aiohttp.ClientSession() as session, session.get(f"{site.url}/ours/big.bin") as r:
        assert len(await r.content.readexactly(1 << 16)) == 1 << 16
        assert _sendfile.statistics().calls == 1
    # The server finds the peer gone (reset or cancelled) and lets go of
    # its reader's descriptor and the socket's dup, after its pool jobs.
    await until(lambda: open_fd_count() <= before, "the server's descriptors closed")
