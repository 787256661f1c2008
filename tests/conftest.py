"""Shared fixtures: every test runs on each event loop and each read backend.

Loops come from pytest-asyncio's ``pytest_asyncio_loop_factories`` hook
(asyncio, and uvloop where installed). Backends (native, python, pool; those
this machine has) come from the autouse ``backend`` fixture, the way
markupsafe runs its suite against its speedups and without them.

Page cache: files are made on a filesystem that supports RWF_NOWAIT (probed;
tmpfs does not), warmed by reading and evicted with fsync + fadvise
DONTNEED. This VM also drops page cache by itself after ~20 s, so tests warm
right before they rely on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, BlockBusterFunction

from aiofastread import _native, _runtime

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None


# Every event loop the tests run on (uvloop when installed), by name: for
# pytest-asyncio and for tests that make their own loop (hypothesis).
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:
    LOOPS["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return dict(LOOPS)


BACKENDS = _native.available()
DEFAULT_BACKEND = _native.backend.name


@pytest.fixture(params=BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The read backend for this test; the policy table starts empty."""
    _runtime.use_backend(request.param)
    _runtime.POLICY.enabled = True
    try:
        yield request.param
    finally:
        _runtime.use_backend(DEFAULT_BACKEND)
        _runtime.POLICY.enabled = True


# Invariant 1 (docs/design.md): the loop thread does no blocking I/O.
# blockbuster wraps time.sleep, locks, io reads/writes, os.read/write (on
# blocking descriptors), os.stat, listdir, ...; these are the descriptor
# calls it does not wrap by default.
EXTRA_BLOCKING = (
    "pread",
    "preadv",
    "pwrite",
    "pwritev",
    "fstat",
    "open",
    "close",
    "fsync",
    "fdatasync",
    "ftruncate",
    "lseek",
)


SCANNED = ["aiofastread"]
NOT_SCANNED = ["aiofastread.benchmark"]


@pytest.fixture(autouse=True)
def no_blocking_on_loop() -> Iterator[BlockBuster]:
    """blockbuster around every test (docs/design.md invariant 1).

    Scanned module is aiofastread: a wrapped call raises BlockingError when
    it runs on a thread with a running event loop and an aiofastread frame
    is on its stack. The test code's own blocking calls (making, warming,
    evicting files) are not flagged, nor are the benchmark harness's (it
    builds, warms and evicts its data set on the loop before its clock
    starts); library frames under either still are. Each allowance below
    names the one function where the call cannot block, and why.
    """
    bb = BlockBuster(SCANNED, excluded_modules=NOT_SCANNED)
    for name in EXTRA_BLOCKING:
        bb.functions[f"os.{name}"] = BlockBusterFunction(
            None, f"os.{name}", scanned_modules=SCANNED, excluded_modules=NOT_SCANNED
        )
    # The pure-Python fast path: preadv2(RWF_NOWAIT) never waits for I/O.
    bb.functions["os.preadv"].can_block_in("aiofastread/_native.py", "_py_read_nowait")
    bb.functions["os.preadv"].can_block_in("aiofastread/_native.py", "_py_read_nowait_into")
    # detach() of an rb file: lseek(SEEK_SET) only sets the offset, no I/O.
    bb.functions["os.lseek"].can_block_in("aiofastread/_file.py", "detach")
    # Inline opens (issue 12). openat2(RESOLVE_CACHED), statx(DONT_SYNC) and
    # fcntl run in C (native/afr_open.c), unseen here. getcwd reads the
    # dentry cache (d_path), no I/O: it makes a relative path's directory key.
    bb.functions["os.getcwd"].can_block_in("aiofastread/_fspolicy.py", "directory_of")
    # Closing a read-only descriptor of a regular file on a local filesystem
    # (the only kind opened inline) cannot wait: error paths right after an
    # inline open close it on the loop.
    bb.functions["os.close"].can_block_in("aiofastread/_inline_open.py", "build_stack")
    # ... and a directory or a FIFO opened inline (O_NONBLOCK) and declined:
    # nothing to flush, no one to wait for.
    bb.functions["os.close"].can_block_in("aiofastread/_inline_open.py", "open_cached")
    bb.functions["os.close"].can_block_in("aiofastread/_readfile.py", "read_bytes")
    # sendfile: os.sendfile only of ranges cachestat found resident, and
    # close of a dup of a socket its transport still holds.
    bb.functions["os.sendfile"].can_block_in("aiofastread/_sendfile.py", "_send_resident")
    bb.functions["os.close"].can_block_in("aiofastread/_sendfile.py", "_close_dup")
    for key, func in bb.functions.items():
        if key.startswith("io."):
            func.can_block_predicate = _closed_file_cannot_block(func.can_block_predicate)
    allow_bridge_io(bb)
    bb.activate()
    try:
        yield bb
    finally:
        bb.deactivate()


def allow_bridge_io(bb: BlockBuster) -> None:
    """The io calls that cannot block although blockbuster wraps them."""
    for key, func in bb.functions.items():
        if key.startswith("io."):
            # CPython's io layers over our BridgeRaw, run by a bridge worker
            # greenlet: what would block there suspends to the pool instead
            # (the raw's own os.* calls stay checked).
            func.can_block_in("aiofastread/_bridge/driver.py", "_serve")
            # The direct text path's replay into TextIOWrapper reads the raw's
            # window only (its EOF included): it runs on the loop for f.buffer.
            func.can_block_in("aiofastread/_bridge/direct.py", "sync")
            # So does the line batch's (_bridge/lines: the chunks it decoded
            # are put in the raw's window first), and its seek check asks the
            # BufferedReader's tell, which asks the raw's (a field).
            func.can_block_in("aiofastread/_bridge/lines.py", "sync")
            func.can_block_in("aiofastread/_bridge/lines.py", "after_seek")


def _closed_file_cannot_block(predicate: Callable[..., bool]) -> Callable[..., bool]:
    """blockbuster's io predicates ask file.fileno(), which raises ValueError
    on a closed or detached file: that error would replace the one the call
    itself raises (at once, without I/O), and the CPython differential tests
    compare those messages."""

    def can_block(file: object, *args: object, **kwargs: object) -> bool:
        try:
            return predicate(file, *args, **kwargs)
        except ValueError:
            return True

    return can_block


@contextlib.contextmanager
def blocking_on_purpose(bb: BlockBuster) -> Iterator[None]:
    """Pause the guard for blocking the test itself asks for through
    aiofastread: synchronous calls on a detached stream, or a finalizer
    flushing an unclosed file (both block as CPython's FileIO would)."""
    bb.deactivate()
    try:
        yield
    finally:
        bb.activate()


def supports_nowait(directory: Path) -> bool:
    """Whether files in ``directory`` answer preadv2(RWF_NOWAIT)."""
    probe = directory / ".nowait-probe"
    probe.write_bytes(b"x" * 4096)
    fd = os.open(probe, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(16)], 0, os.RWF_NOWAIT)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    finally:
        os.close(fd)
        probe.unlink()
    return True


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A directory whose filesystem supports RWF_NOWAIT (ext4 here)."""
    if not (hasattr(os, "RWF_NOWAIT") and supports_nowait(tmp_path)):
        pytest.skip(f"{tmp_path} does not support RWF_NOWAIT (tmpfs/overlayfs?)")
    return tmp_path


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    """A directory on tmpfs (no RWF_NOWAIT): a mount of our own if root,
    else /dev/shm."""
    mountpoint = Path(tempfile.mkdtemp(prefix="aiofastread-tmpfs-"))
    mounted = False
    if os.geteuid() == 0:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mountpoint)],
                capture_output=True,
            ).returncode
            == 0
        )
    try:
        if mounted:
            yield mountpoint
        elif Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
            with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
                yield Path(shm)
        else:
            pytest.skip("no tmpfs: not root (cannot mount) and no writable /dev/shm")
    finally:
        if mounted:
            subprocess.run(["umount", str(mountpoint)], check=True)
        mountpoint.rmdir()


def make_file(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path``; returns them."""
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def warm(path: Path) -> None:
    """Pull the whole file into the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


_cachestat = _native._make_ctypes_cachestat()


def cached_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (cachestat), -1 if unknown."""
    if _cachestat is None:
        return -1
    fd = os.open(path, os.O_RDONLY)
    try:
        answer = _cachestat(fd, 0, max(os.fstat(fd).st_size, 1))
    finally:
        os.close(fd)
    return -1 if isinstance(answer, int) else answer[0]


def evict(path: Path) -> None:
    """Drop the file's pages: fsync first (dirty pages stay), then DONTNEED.

    DONTNEED skips pages still sitting in another CPU's LRU batch, so it is
    repeated until cachestat reports none left."""
    for _ in range(50):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        if cached_pages(path) <= 0:
            return
    raise AssertionError(f"could not evict {path}: {cached_pages(path)} pages stay cached")


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """``call()``'s result, or its exception's type name and message: what a
    differential test compares with CPython's."""
    try:
        return ("ok", call())
    except Exception as exc:
        return (type(exc).__name__, str(exc))


async def until(
    condition: Callable[[], bool], what: str, turns: int = 200_000, patience: float = 30.0
) -> None:
    """Poll ``condition`` for a bounded number of loop turns, then (only when
    threads are still to run: 200k uvloop turns pass in ~0.3 s, less than a
    loaded 2-vCPU VM may take to start 4 pool threads) for up to ``patience``
    seconds more, 1 ms apart. A bound, not a timing: the condition is what is
    asserted."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture
def fd_leak_check() -> Iterator[None]:
    """Fails the test if it leaves more descriptors open than it found."""
    before = open_fd_count()
    yield
    assert open_fd_count() <= before, "file descriptors leaked"
