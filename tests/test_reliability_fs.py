"""Filesystems without a NOWAIT path, files changing under an open reader, O_DIRECT.

* tmpfs, overlayfs (mounted here) and FUSE (``tests/fuse_faulty.py`` over
  mfusepy, with and without FOPEN_DIRECT_IO) answer preadv2(RWF_NOWAIT) with
  EOPNOTSUPP (overlayfs' cachestat also reports nothing resident): every
  read is served by the pool, with the right bytes, in every mode.
* A file replaced by rename, truncated or extended while open; a reader
  that reads across EOF while another writer appends.
* O_DIRECT descriptors are never read inline; their reads meet the kernel's
  alignment rules exactly as CPython's do.

Mounts need root (and ``mount``; FUSE needs /dev/fuse, mfusepy and libfuse):
each fixture skips with the reason where that is missing, and unmounts in
``finally``. Where a read was served is proven by counters, never timing.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import errno
import importlib.util
import io
import itertools
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, BlockBusterFunction, blockbuster_ctx

import aiofastread
from tests.conftest import allow_bridge_io, make_file, open_fd_count, warm

REPO = Path(__file__).resolve().parent.parent

# Blocking calls that aiofastread must never make on the loop thread (the
# descriptor calls blockbuster does not wrap by default); only the pure
# Python NOWAIT read may call os.preadv there.
EXTRA_BLOCKING = ("pread", "preadv", "pwrite", "fstat", "open", "close", "fsync", "ftruncate")


@pytest.fixture(autouse=True)
def no_blocking_in_aiofastread() -> Iterator[BlockBuster]:
    """blockbuster around every test of this module (docs/design.md invariant 1)."""
    with blockbuster_ctx(["aiofastread"]) as bb:
        for name in EXTRA_BLOCKING:
            func = BlockBusterFunction(None, f"os.{name}", scanned_modules=["aiofastread"])
            if name == "preadv":
                func.can_block_in("aiofastread/_native.py", "_py_read_nowait")
            bb.functions[f"os.{name}"] = func
            func.activate()
        allow_bridge_io(bb)
        yield bb


# -- mounts -----------------------------------------------------------------------


def _need_root_and(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a filesystem")
    for tool in tools:
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            pytest.skip(f"needs `{tool}`, which is not installed")


def _umount(mountpoint: Path) -> None:
    if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


@pytest.fixture(scope="module")
def overlay_root() -> Iterator[Path]:
    """An overlayfs mount (lower and upper on the test filesystem)."""
    _need_root_and("mount", "umount")
    base = Path(tempfile.mkdtemp(prefix="aiofastread-ovl-"))
    lower, upper, work, merged = (base / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        capture_output=True,
        text=True,
    )
    try:
        if proc.returncode != 0:
            pytest.skip(f"cannot mount overlayfs: {proc.stderr.strip()}")
        try:
            yield merged
        finally:
            _umount(merged)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fuse_unavailable() -> str | None:
    """Why the FUSE filesystem cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to mount a FUSE filesystem"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel or container)"
    if importlib.util.find_spec("mfusepy") is None:
        return "mfusepy is not installed (pip install mfusepy)"
    if ctypes.util.find_library("fuse3") is None and ctypes.util.find_library("fuse") is None:
        return "libfuse is not installed (apt-get install libfuse3-3)"
    return None


@pytest.fixture(scope="module")
def fuse_root() -> Iterator[Path]:
    """The fault-injecting passthrough FUSE filesystem of tests/fuse_faulty.py."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="aiofastread-fuse-"))
    mountpoint, backing = base / "mnt", base / "backing"
    mountpoint.mkdir()
    backing.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fuse_faulty", str(mountpoint), str(backing)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "ready" once FUSE_INIT arrived
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=30)
            pytest.skip(f"the FUSE filesystem did not start: {err.strip()[-500:]}")
        try:
            yield mountpoint
        finally:
            _umount(mountpoint)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(base, ignore_errors=True)


NO_NOWAIT = ("tmpfs", "overlayfs", "fuse", "fuse-direct")
_names = itertools.count()


@pytest.fixture(params=NO_NOWAIT)
def no_nowait_file(request: pytest.FixtureRequest, tmpfs_dir: Path) -> Iterator[Path]:
    """A path on a filesystem without RWF_NOWAIT (the file is not made yet)."""
    kind = request.param
    if kind == "tmpfs":
        directory = tmpfs_dir
    elif kind == "overlayfs":
        directory = request.getfixturevalue("overlay_root")
    else:
        directory = request.getfixturevalue("fuse_root")
    # tests/fuse_faulty.py opens direct-* files with FOPEN_DIRECT_IO.
    path = directory / f"{'direct-' if kind == 'fuse-direct' else ''}{next(_names)}.bin"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _kind(path: Path) -> str:
    text = str(path)
    if "aiofastread-ovl-" in text:
        return "overlayfs"
    if "aiofastread-fuse-" in text:
        return "fuse-direct" if path.name.startswith("direct-") else "fuse"
    return "tmpfs"


# -- no NOWAIT: the pool serves, the bytes are right ----------------------------------------


async def test_filesystems_without_nowait_are_served_by_the_pool(
    no_nowait_file: Path, backend: str
) -> None:
    path = no_nowait_file
    fds_before = open_fd_count()  # on the running loop: its own fds exist by now
    lines = b"".join(b"line %d %s\n" % (i, b"x" * (i % 50)) for i in range(4000))
    path.write_bytes(lines)
    warm(path)  # even a cached file: no inline path on these filesystems
    before = aiofastread.statistics()
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(4096) == lines[:4096]
        await f.seek(50_000)
        assert await f.read(70_000) == lines[50_000:120_000]
        assert await f.pread(1000, 7) == lines[7:1007]
        assert await f.readline() == lines[120_000 : lines.index(b"\n", 120_000) + 1]
        await f.seek(0)
        assert await f.read() == lines
        stats = f.statistics()
    async with aiofastread.open(path) as t:  # text: CPython's stack over our raw
        assert await t.readline() == "line 0 \n"
        assert await t.read() == lines.decode()[8:]
    async with aiofastread.open(path, "r+b") as g:
        await g.seek(100)
        assert await g.read(5000) == lines[100:5100]
    after = aiofastread.statistics()
    assert open_fd_count() == fds_before
    assert after.inline_hits == before.inline_hits
    assert stats.inline_hits == stats.short_reads == stats.inline_misses == 0
    assert stats.pool_reads >= 5
    assert stats.bytes_pooled >= len(lines)
    kind = _kind(path)
    if backend == "pool":
        assert stats.state == "unknown"
    elif kind == "tmpfs":
        # cachestat says "resident", the one NOWAIT try says EOPNOTSUPP.
        assert (stats.state, stats.unsupported) == ("unsupported", 1)
    else:
        # overlayfs' own mapping holds no pages, a FUSE open drops the
        # file's cache (no keep_cache) and a direct-I/O FUSE file has none:
        # cachestat says "not resident", so NOWAIT is not even tried.
        assert stats.state == "cold"
        assert stats.unsupported == 0


async def test_writes_on_filesystems_without_nowait(no_nowait_file: Path) -> None:
    path = no_nowait_file
    async with aiofastread.open(path, "w", encoding="utf-8") as f:
        for i in range(500):
            await f.write(f"{i}\n")
    async with aiofastread.open(path, "ab") as f:
        await f.write(b"tail")
    expected = "".join(f"{i}\n" for i in range(500)) + "tail"
    async with aiofastread.open(path, encoding="utf-8") as t:
        assert await t.read() == expected
    assert path.read_text(encoding="utf-8") == expected


# -- files changing under an open reader ---------------------------------------------


@pytest.fixture(params=["ext4", "tmpfs"])
def any_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "tmpfs":
        return Path(request.getfixturevalue("tmpfs_dir"))
    return Path(request.getfixturevalue("data_dir"))


async def test_file_replaced_by_rename_keeps_serving_the_old_inode(any_dir: Path) -> None:
    fds_before = open_fd_count()  # on the running loop: its own fds exist
    path = any_dir / "f.bin"
    old = make_file(path, 200_000)
    warm(path)
    async with (
        aiofastread.open(path, "rb") as f,
        aiofastread.open(path, encoding="latin-1", newline="") as t,
    ):
        assert await f.read(1000) == old[:1000]
        assert await t.read(1000) == old[:1000].decode("latin-1")
        new = make_file(any_dir / "g.bin", 150_000)
        os.replace(any_dir / "g.bin", path)
        warm(path)
        # The open descriptors still name the old inode, as CPython's do.
        assert await f.read(5000) == old[1000:6000]
        assert await f.read() == old[6000:]
        assert await t.read() == old[1000:].decode("latin-1")
        async with aiofastread.open(path, "rb") as g:
            assert await g.read() == new
            assert g._h.inode is not f._h.inode  # a new inode, a policy state of its own
    assert open_fd_count() == fds_before


async def test_file_truncated_and_extended_while_open(any_dir: Path, backend: str) -> None:
    path = any_dir / "f.bin"
    data = make_file(path, 300_000)
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(4096) == data[:4096]
        assert await f.read(4096) == data[4096:8192]
        os.truncate(path, 1000)
        # No buffer in the way: the next read sees the new size at once.
        assert await f.read(4096) == b""
        assert await f.read() == b""
        await f.seek(0)
        assert await f.read(100_000) == data[:1000]
        assert await f.pread(100, 950) == data[950:1000]
        tail = os.urandom(70_000)
        with open(path, "ab") as w:
            w.write(tail)
        assert await f.read(10) == tail[:10]
        assert await f.read() == tail[10:]
        await f.seek(500)
        assert await f.read() == data[500:1000] + tail
        os.truncate(path, 0)
        await f.seek(0)
        assert await f.read() == b""
        assert await f.readline() == b""


async def test_text_reader_sees_truncation_and_extension_like_cpython(any_dir: Path) -> None:
    """The text stack is CPython's. Bytes already read ahead are a buffer's
    business (ours is the raw's window, CPython's the BufferedReader's), so
    the file changes only where neither holds the bytes at the position."""
    path = any_dir / "f.txt"
    path.write_text("".join(f"line {i}\n" for i in range(40_000)), encoding="utf-8")
    warm(path)
    ours = await aiofastread.open(path, encoding="utf-8")
    theirs = open(path, encoding="utf-8")  # noqa: SIM115 - driven step by step
    try:
        assert await ours.readline() == theirs.readline()
        assert await ours.read() == theirs.read()
        os.truncate(path, 5000)
        assert await ours.read() == theirs.read() == ""
        assert await ours.seek(0) == theirs.seek(0)
        assert await ours.read() == theirs.read()
        with open(path, "a", encoding="utf-8") as w:
            w.write("more\nlines\n" + "x" * 100_000 + "\n")
        assert await ours.readline() == theirs.readline() == "more\n"
        assert await ours.read() == theirs.read()
        assert await ours.tell() == theirs.tell()
    finally:
        theirs.close()
        await ours.close()


# -- reading across EOF while another writer appends --------------------------------------


RECORD = 977  # not a divisor of any buffer size: records straddle reads


def record(i: int) -> bytes:
    body = (b"%06d:" % i) + bytes([65 + i % 26]) * (RECORD - 8)
    return body + b"\n"


def start_appender(path: Path, count: int) -> tuple[threading.Thread, threading.Event]:
    """A thread appending ``count`` records through its own descriptor."""
    done = threading.Event()

    def run() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            for i in range(count):
                os.write(fd, record(i))
        finally:
            os.close(fd)
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


@pytest.mark.parametrize("how", ["read", "readline", "text-readline", "text-read"])
async def test_reads_across_eof_while_a_writer_appends(any_dir: Path, how: str) -> None:
    path = any_dir / "log.txt"
    path.write_bytes(b"")
    count = 3000
    expected = b"".join(record(i) for i in range(count))
    text = how.startswith("text")
    f: Any = await aiofastread.open(path, "r" if text else "rb", encoding="ascii" if text else None)
    got: list[bytes] = []
    total = 0
    thread, done = start_appender(path, count)
    try:
        idle_after_done = 0
        while total < len(expected):
            if how.endswith("readline"):
                piece = await f.readline()
            else:
                piece = await f.read(RECORD * 3 + 5)
            chunk = piece.encode("ascii") if text else piece
            if chunk:
                got.append(chunk)
                total += len(chunk)
                continue
            # At EOF for now: let the writer run, then look again.
            if done.is_set():
                idle_after_done += 1
                # A writer that has finished has written everything; two
                # empty reads after that mean this reader cannot see it.
                assert idle_after_done < 3, f"stuck at EOF after {total} of {len(expected)}"
            await asyncio.sleep(0)
        assert await f.read() == (b"" if not text else "")
    finally:
        thread.join()
        await f.close()
    data = b"".join(got)
    assert data == expected
    if how.endswith("readline"):
        # A line may come in pieces while it is being written, never garbled.
        assert b"".join(got).count(b"\n") == count


# Each step appends through another descriptor (None: nothing), then makes
# one call: the same on a CPython file and on ours, results compared.
AFTER_EOF_STEPS: list[tuple[bytes | None, str, tuple[Any, ...]]] = [
    (None, "readline", ()),  # the first line (fills the window, which sees EOF)
    (None, "readline", ()),  # the second, served from that window
    (None, "readline", ()),  # EOF
    (b"third\n", "readline", ()),  # appended after EOF was seen
    (None, "readline", ()),
    (b"fou", "readline", ()),  # a line with no newline yet: up to EOF
    (b"rth\n", "readline", ()),  # ...then completed
    (None, "read", ()),
    (b"fifth\nsix", "read", ()),
    (b"th\n", "read", (2,)),
    (None, "read", (10,)),
    (None, "read", (5,)),
    (b"seventh\r", "readline", ()),  # universal newlines: a "\r" at EOF
    (b"\neighth", "readline", ()),
    (None, "tell", ()),
    (None, "readline", ()),
    (b"\n", "readline", ()),
    (None, "tell", ()),
]


@pytest.mark.parametrize(
    ("mode", "kwargs"),
    [
        ("r", {"encoding": "ascii"}),
        ("r", {"encoding": "ascii", "newline": ""}),
        ("r", {"encoding": "ascii", "newline": "\n"}),
        ("r+", {"encoding": "ascii"}),
        ("rb", {}),
        ("rb", {"buffering": 0}),
        ("r+b", {}),
    ],
    ids=["r", "r-newline-empty", "r-newline-lf", "r+", "rb", "rb-unbuffered", "r+b"],
)
async def test_reads_at_eof_see_what_is_appended_like_cpython(
    any_dir: Path, mode: str, kwargs: dict[str, Any]
) -> None:
    """Deterministic: reach EOF, append through another descriptor, read
    again; every result (and tell) is compared with CPython's on the same
    file. A read at EOF must ask the file again, never answer from a
    read-ahead window that once ended at EOF."""
    path = any_dir / "appended.txt"
    path.write_bytes(b"first\nsecond\n")
    warm(path)
    theirs: Any = open(path, mode, **kwargs)  # noqa: SIM115 - driven step by step
    ours: Any = await aiofastread.open(path, mode, **kwargs)
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for i, (append, name, args) in enumerate(AFTER_EOF_STEPS):
            if append is not None:
                os.write(writer, append)
            expected = getattr(theirs, name)(*args)
            got = await getattr(ours, name)(*args)
            assert got == expected, (i, append, name, args)
    finally:
        os.close(writer)
        theirs.close()
        await ours.close()


# -- O_DIRECT -----------------------------------------------------------------------------


def _direct(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_DIRECT)


def _cpython_outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except OSError as exc:
        return ("error", type(exc), exc.errno)


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
async def test_o_direct_reads_go_to_the_pool_and_meet_the_kernels_rules(data_dir: Path) -> None:
    """O_DIRECT wants the buffer, offset and size aligned (512 bytes here).

    A plain read lands in a buffer malloc placed, CPython's as ours, so it
    succeeds or fails with EINVAL by chance (either way: the right bytes or
    CPython's exception, and the file stays usable). CPython's readinto() of
    an aligned buffer reads straight into it and always succeeds; ours reads
    in the pool into a buffer of its own, so it is subject to the same
    chance (docs/reliability.md, Departures).
    """
    fds_before = open_fd_count()  # on the running loop: its own fds exist
    path = data_dir / "direct.bin"
    data = make_file(path, 1 << 20)
    warm(path)  # cached or not, an O_DIRECT descriptor is never read inline
    einval = ("error", OSError, errno.EINVAL)
    before = aiofastread.statistics()
    for kwargs in ({}, {"buffering": 0}):
        with open(path, "rb", opener=_direct, **kwargs) as c:  # type: ignore[call-overload]
            cp_read = _cpython_outcome(lambda c=c: c.read(4096))
            c.seek(0)
            aligned = mmap.mmap(-1, 65536)
            assert _cpython_outcome(lambda c=c, b=aligned: c.readinto(b)) == ("ok", 65536)
            assert aligned[:] == data[:65536]
        assert cp_read in (("ok", data[:4096]), einval)
        async with aiofastread.open(path, "rb", opener=_direct, **kwargs) as f:
            try:
                ours_read: Any = ("ok", await f.read(4096))
            except OSError as exc:
                ours_read = ("error", type(exc), exc.errno)
            assert ours_read in (("ok", data[:4096]), einval)
            await f.seek(0)
            ours_buf = mmap.mmap(-1, 65536)
            try:
                ours_readinto: Any = ("ok", await f.readinto(ours_buf))
            except OSError as exc:
                ours_readinto = ("error", type(exc), exc.errno)
            if ours_readinto == einval:
                assert await f.tell() == 0  # a failed read moves nothing
            else:
                assert ours_readinto == ("ok", 65536)
                assert ours_buf[:] == data[:65536]
            assert not f.closed
            await f.seek(512)
            assert await f.tell() == 512  # still usable
    after = aiofastread.statistics()
    assert after.inline_hits == before.inline_hits
    assert after.inline_misses == before.inline_misses
    assert after.pool_submissions > before.pool_submissions
    assert open_fd_count() == fds_before


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
async def test_o_direct_writes_match_cpython(data_dir: Path) -> None:
    """Unaligned O_DIRECT writes fail as CPython's do; the file stays closed cleanly."""
    outcomes = []
    for which in ("cpython", "ours"):
        path = data_dir / f"{which}.bin"
        try:
            if which == "cpython":
                with open(path, "wb", opener=_direct) as c:
                    c.write(b"x" * 1000)
            else:
                async with aiofastread.open(path, "wb", opener=_direct) as f:
                    await f.write(b"x" * 1000)
            outcomes.append(("ok", path.read_bytes()))
        except OSError as exc:
            outcomes.append(("error", type(exc), exc.errno, path.read_bytes()))
    assert outcomes[0] == outcomes[1]


def test_io_module_is_what_we_compare_with() -> None:
    """The comparisons above use CPython's C io (not _pyio)."""
    assert open is io.open
