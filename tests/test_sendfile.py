"""aiofastread.sendfile: byte-identical transfers, asyncio's parameter checks,
cold pages brought in by the pool (never read by os.sendfile on the loop),
the copy fallback, the per-turn budget, and nothing leaked on cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread import _native, _sendfile
from tests.conftest import evict, make_file, until, warm

SIZE = (3 << 20) + 12345  # several CHUNKs and a ragged tail


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    _sendfile.reset_statistics()


def zero_copy(backend: str) -> bool:
    return backend != "pool" and hasattr(os, "sendfile")


class SendfileCalls:
    """os.sendfile calls made, each checked to find its range resident."""

    def __init__(self) -> None:
        self.file_size = 0  # set by the test
        self.calls: list[tuple[int, int]] = []


@pytest.fixture
def resident_only(monkeypatch: pytest.MonkeyPatch) -> SendfileCalls:
    """Wrap os.sendfile: every call must find its range resident, so it
    cannot have read the disk on the loop."""
    real = os.sendfile
    record = SendfileCalls()

    def checked(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        assert _native.backend.cachestat is not None
        length = min(count, record.file_size - offset)
        if length > 0:
            answer = _native.backend.cachestat(in_fd, offset, length)
            assert not isinstance(answer, int)
            assert answer[0] == answer[1], f"os.sendfile of a range not resident: {answer}"
        record.calls.append((offset, count))
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", checked)
    return record


async def socket_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def receive_all(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while chunk := await loop.sock_recv(sock, 1 << 20):
        got += chunk
    return bytes(got)


async def send_over_pair(
    path: Path, offset: int = 0, count: int | None = None
) -> tuple[int, int, bytes]:
    """sendfile through a socketpair; (returned, position after, bytes received)."""
    a, b = await socket_pair()
    receiver = asyncio.ensure_future(receive_all(b))
    try:
        async with aiofastread.open(path, "rb") as f:
            sent = await aiofastread.sendfile(a, f, offset, count)
            position = await f.tell()
        a.close()
        return sent, position, await receiver
    finally:
        a.close()
        b.close()


async def test_warm_file_is_sent_whole_and_inline(data_dir: Path, backend: str) -> None:
    path = data_dir / "warm.bin"
    data = make_file(path, SIZE)
    warm(path)
    sent, position, got = await send_over_pair(path)
    assert (sent, position) == (SIZE, SIZE)
    assert got == data
    stats = _sendfile.statistics()
    if zero_copy(backend):
        assert stats.bytes_inline == SIZE
        assert stats.bytes_copied == 0
    else:  # the pool backend reads nothing inline: read + write through the pool
        assert stats.bytes_copied == SIZE


@pytest.mark.parametrize(
    ("offset", "count"),
    [
        (0, None),
        (1000, None),
        (0, 4096),
        (5000, 1 << 20),
        (SIZE - 10, 100),  # count past EOF: what the file has
        (0, SIZE * 2),
        (SIZE, None),  # at EOF: nothing
        (SIZE + 5, 10),  # past EOF: nothing
    ],
)
async def test_offsets_and_counts(data_dir: Path, offset: int, count: int | None) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, SIZE)
    warm(path)
    sent, position, got = await send_over_pair(path, offset, count)
    stop = len(data) if count is None else offset + count
    expected = data[offset:stop]
    assert got == expected
    assert sent == len(expected)
    # loop.sendfile: position at offset + sent, untouched when nothing was sent.
    assert position == (offset + sent if sent else 0)


async def test_empty_file(data_dir: Path) -> None:
    path = data_dir / "empty.bin"
    path.write_bytes(b"")
    assert await send_over_pair(path) == (0, 0, b"")


async def test_cold_file_is_brought_in_by_the_pool(
    data_dir: Path, backend: str, resident_only: SendfileCalls
) -> None:
    path = data_dir / "cold.bin"
    data = make_file(path, SIZE)
    resident_only.file_size = SIZE
    evict(path)
    before = aiofastread.statistics()
    sent, _, got = await send_over_pair(path)
    assert sent == SIZE
    assert got == data
    after = aiofastread.statistics()
    stats = _sendfile.statistics()
    if zero_copy(backend):
        assert stats.bytes_brought_in == SIZE
        assert stats.bytes_inline == SIZE
        assert resident_only.calls  # every one was checked resident
        jobs = SIZE // _sendfile.WARM_STEP + 1
        if backend == "native" and _native.backend.native_pool:
            # Brought in by C threads of the native pool: no Python pool
            # job, no miss read, each range a readahead job.
            assert (stats.native_jobs, stats.pool_jobs) == (jobs, 0)
            assert after.readahead_jobs - before.readahead_jobs == jobs
            assert after.readahead_bytes - before.readahead_bytes >= SIZE
            assert after.pool_reads == before.pool_reads
        else:
            assert (stats.native_jobs, stats.pool_jobs) == (0, jobs)
            assert after.pool_submissions > before.pool_submissions
            assert after.readahead_jobs == before.readahead_jobs
    else:
        assert stats.bytes_copied == SIZE
        assert not resident_only.calls


async def test_half_cold_file(data_dir: Path, backend: str, resident_only: SendfileCalls) -> None:
    """A warm head, a cold tail: the guard (lookahead not resident) sends it
    through the pool too; every os.sendfile call found its range resident."""
    path = data_dir / "half.bin"
    data = make_file(path, 24 << 20)
    resident_only.file_size = len(data)
    evict(path)
    with open(path, "rb") as f:
        f.read(1 << 20)
    sent, _, got = await send_over_pair(path)
    assert (sent, got) == (len(data), data)
    if zero_copy(backend):
        stats = _sendfile.statistics()
        assert stats.bytes_inline == len(data)
        assert 0 < stats.bytes_brought_in <= len(data)
        assert resident_only.calls


async def test_stream_writer_and_transport_over_tcp(data_dir: Path, backend: str) -> None:
    """Through asyncio streams on loopback TCP: a StreamWriter, and the bare
    transport; bytes written before sendfile come out first."""
    path = data_dir / "tcp.bin"
    data = make_file(path, SIZE)
    warm(path)
    results: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HEAD")
        async with aiofastread.open(path, "rb") as f:
            results.append(await aiofastread.sendfile(writer, f, 10))
            results.append(await aiofastread.sendfile(writer.transport, f, 0, 100))
        writer.write(b"TAIL")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    assert results == [SIZE - 10, 100]
    assert got == b"HEAD" + data[10:] + data[:100] + b"TAIL"
    if zero_copy(backend):
        assert _sendfile.statistics().bytes_inline == SIZE - 10 + 100


async def test_file_without_nowait_path_is_copied(tmpfs_dir: Path, backend: str) -> None:
    """tmpfs answers cachestat but has no NOWAIT path: read + write."""
    path = tmpfs_dir / "shm.bin"
    data = make_file(path, SIZE)
    sent, _, got = await send_over_pair(path)
    assert (sent, got) == (SIZE, data)
    stats = _sendfile.statistics()
    assert (stats.bytes_copied, stats.bytes_inline) == (SIZE, 0)


async def test_no_os_sendfile_is_copied(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = data_dir / "nosendfile.bin"
    data = make_file(path, SIZE)
    warm(path)
    monkeypatch.delattr(os, "sendfile")
    sent, _, got = await send_over_pair(path, 7)
    assert (sent, got) == (SIZE - 7, data[7:])
    assert _sendfile.statistics().bytes_copied == SIZE - 7


async def test_budget_yields_to_the_loop(
    data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket that never fills (a fake sendfile that takes everything)
    still lets other tasks run once per CHUNK."""
    if not zero_copy(backend):
        pytest.skip("the copy path is measured through the read core")
    path = data_dir / "budget.bin"
    make_file(path, 8 << 20)
    warm(path)
    monkeypatch.setattr(os, "sendfile", lambda out, fd, off, n: min(n, (8 << 20) - off))
    turns = 0
    stop = False

    async def ticker() -> None:
        nonlocal turns
        while not stop:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    a, b = await socket_pair()
    try:
        async with aiofastread.open(path, "rb") as f:
            start = turns
            assert await aiofastread.sendfile(a, f) == 8 << 20
            ran = turns - start
    finally:
        stop = True
        await task
        a.close()
        b.close()
    assert _sendfile.statistics().yields >= 7
    assert ran >= 7


def asyncio_error(sock: socket.socket, file: Any, offset: Any, count: Any) -> Exception:
    """What CPython's loop.sock_sendfile raises for these parameters (its
    check, called directly: uvloop's sock_sendfile is not implemented)."""
    check = asyncio.base_events.BaseEventLoop._check_sendfile_params  # type: ignore[attr-defined]
    try:
        check(None, sock, file, offset, count)
    except Exception as exc:
        return exc
    raise AssertionError("asyncio accepted it")  # pragma: no cover


@pytest.mark.parametrize(
    ("offset", "count"),
    [(-1, None), (1.5, None), ("0", None), (0, 0), (0, -5), (0, 2.0), (0, "10")],
)
async def test_bad_parameters_raise_what_asyncio_raises(
    data_dir: Path, offset: Any, count: Any
) -> None:
    path = data_dir / "p.bin"
    make_file(path, 100)
    a, b = await socket_pair()
    try:
        with open(path, "rb") as plain:
            theirs = asyncio_error(a, plain, offset, count)
        async with aiofastread.open(path, "rb") as f:
            with pytest.raises(type(theirs)) as ours:
                await aiofastread.sendfile(a, f, offset, count)
            assert await f.tell() == 0
    finally:
        a.close()
        b.close()
    assert str(ours.value) == str(theirs)


async def test_text_file_and_datagram_socket_rejected_as_asyncio_does(data_dir: Path) -> None:
    path = data_dir / "t.txt"
    make_file(path, 100)
    a, b = await socket_pair()
    dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dgram.setblocking(False)
    try:
        async with aiofastread.open(path, "r", encoding="latin-1") as text:
            with pytest.raises(ValueError, match="file should be opened in binary mode"):
                await aiofastread.sendfile(a, text)
        async with aiofastread.open(path, "rb") as f:
            with pytest.raises(ValueError, match="only SOCK_STREAM type sockets are supported"):
                await aiofastread.sendfile(dgram, f)
            blocking, other = socket.socketpair()
            with blocking, other, pytest.raises(ValueError, match="must be non-blocking"):
                await aiofastread.sendfile(blocking, f)
            with pytest.raises(TypeError, match="out must be a socket"):
                await aiofastread.sendfile(object(), f)
        with open(path, "rb") as plain, pytest.raises(TypeError, match=r"aiofastread\.open"):
            await aiofastread.sendfile(a, plain)
        f = await aiofastread.open(path, "rb")
        await f.close()
        with pytest.raises(ValueError, match="closed file"):
            await aiofastread.sendfile(a, f)
    finally:
        for s in (a, b, dgram):
            s.close()


async def test_closing_transport_is_refused(data_dir: Path) -> None:
    path = data_dir / "c.bin"
    make_file(path, 100)
    a, b = await socket_pair()
    _, writer = await asyncio.open_connection(sock=a)
    writer.close()
    try:
        async with aiofastread.open(path, "rb") as f:
            with pytest.raises(RuntimeError, match="Transport is closing"):
                await aiofastread.sendfile(writer, f)
    finally:
        await writer.wait_closed()
        b.close()


@pytest.mark.usefixtures("fd_leak_check")
@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
@pytest.mark.parametrize("through", ["socket", "transport"])
async def test_cancelled_mid_transfer_leaks_nothing(
    data_dir: Path, cold: bool, through: str
) -> None:
    """Nobody reads the other end: the transfer waits (for the socket, or
    for a pool job), is cancelled, and leaves the position at what it sent."""
    path = data_dir / "cancel.bin"
    make_file(path, 16 << 20)
    if cold:
        evict(path)
    else:
        warm(path)
    a, b = await socket_pair()
    writer = None
    out: Any = a
    if through == "transport":
        _, writer = await asyncio.open_connection(sock=a)
        out = writer
    try:
        f = await aiofastread.open(path, "rb")
        task = asyncio.ensure_future(aiofastread.sendfile(out, f))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        position = await f.tell()
        assert 0 <= position < 16 << 20
        await f.close()
        # A bring-in under way finishes on its C thread (its descriptors are
        # its own), then gives everything back.
        await until(lambda: aiofastread.statistics().misses_in_flight == 0, "pool jobs to end")
    finally:
        b.close()
        if writer is None:
            a.close()
        else:  # the transport owns a
            writer.close()
            with contextlib.suppress(ConnectionError):  # copies left in its buffer
                await writer.wait_closed()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (openssl CLI) for loopback TLS."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
    command += " -days 1 -nodes -subj /CN=localhost"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_transport_gets_the_copy(data_dir: Path, tls_files: tuple[Path, Path]) -> None:
    """TLS: no os.sendfile (the bytes must be encrypted), read + write
    through the transport, with flow control (the client reads slowly)."""
    import ssl

    cert, key = tls_files
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    path = data_dir / "tls.bin"
    data = make_file(path, SIZE)
    warm(path)
    sent: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with aiofastread.open(path, "rb") as f:
            sent.append(await aiofastread.sendfile(writer, f, 3))
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        got = bytearray()
        while chunk := await reader.read(64 << 10):
            got += chunk
            await asyncio.sleep(0)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    assert sent == [SIZE - 3]
    assert bytes(got) == data[3:]
    stats = _sendfile.statistics()
    assert (stats.bytes_copied, stats.bytes_inline) == (SIZE - 3, 0)
