"""Inline opens, closes and whole-file reads (issue 12).

Where an open, a read and a close were served is proven with counters
(``aiofastread.statistics()``: inline_opens, open_fallbacks, inline_closes,
pool_submissions), never with timing. blockbuster is on in every test
(conftest): an open, fstat or close on the loop outside the allowed shims
would fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from unittest import mock

import pytest

import aiofastread
from aiofastread import _fspolicy, _inline_open, _native, _runtime
from aiofastread._fspolicy import MIXED, FilesystemPolicy
from tests.conftest import evict, make_file, open_fd_count, until, warm
from tests.test_reliability_fs import fuse_root  # noqa: F401 - fixture

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
HAS_SHIM = (
    _native.native_module() is not None
    and getattr(_native.native_module().lib, "AFR_HAS_OPENAT2", 0) == 1
)


def stats() -> aiofastread.Statistics:
    return aiofastread.statistics()


def delta(before: aiofastread.Statistics, name: str) -> int:
    value: int = getattr(stats(), name) - getattr(before, name)
    return value


@pytest.fixture
def inline(backend: str) -> bool:
    """Whether this backend opens inline (native only; python and pool
    never do: for them openat2 is "not supported", the ENOSYS path)."""
    return backend == "native" and HAS_SHIM


async def learn(directory: Path) -> None:
    """One pooled open in ``directory``: the pool learns its filesystem."""
    probe = directory / ".learn"
    probe.write_bytes(b"x")
    async with aiofastread.open(probe, "rb") as f:
        assert await f.read() == b"x"


@pytest.fixture
def small(data_dir: Path) -> tuple[Path, bytes]:
    """A warm 16 KiB file on a filesystem with NOWAIT reads (ext4 here)."""
    path = data_dir / "small"
    data = make_file(path, 16 << 10)
    warm(path)
    return path, data


async def cached_try(step: Callable[[], Awaitable[T]]) -> tuple[aiofastread.Statistics, T]:
    """Run ``step`` (which opens cached files) and return the statistics
    from before it, and its result. RESOLVE_CACHED walks in RCU mode only: a
    mount or unmount anywhere on the machine during the walk (other tests
    mount tmpfs and FUSE) turns it into EAGAIN and a pool open. Up to three
    tries for one that no such event disturbed (open_fallbacks unchanged)."""
    for _ in range(3):
        before = stats()
        result = await step()
        if delta(before, "open_fallbacks") == 0:
            break
    return before, result


def drop_dentries() -> None:
    """Drop every unused dentry and inode of the machine (root only)."""
    if os.geteuid() != 0:
        pytest.skip("dropping dentries (/proc/sys/vm/drop_caches) needs root")
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


# -- the policy, as plain functions ---------------------------------------------


def test_policy_learns_directories_and_devices() -> None:
    fs = FilesystemPolicy(max_dirs=2)
    assert fs.device_for("/a") is None  # nothing learnt: pool
    fs.learn("/a", 1, 0xEF53)  # ext4
    assert (fs.device_for("/a"), fs.is_local(1), fs.local_filesystems) == (1, True, 1)
    fs.learn("/nfs", 2, 0x6969)  # NFS
    assert (fs.device_for("/nfs"), fs.is_local(2), fs.remote_filesystems) == (None, False, 1)
    fs.learn("/b", 1, None)  # device known: no fstatfs needed
    assert fs.device_for("/b") == 1
    assert fs.device_for("/a") is None  # max_dirs=2: the oldest went
    assert fs.knows_device(1)
    assert not fs.knows_device(3)


def test_policy_unknown_filesystem_types_are_not_local() -> None:
    fs = FilesystemPolicy()
    for dev, magic in enumerate((0x65735546, 0xFF534D42, 0x01021997, 0x00C36400, 0x1234), 1):
        fs.learn(f"/d{dev}", dev, magic)  # FUSE, CIFS, 9p, ceph, unknown
        assert fs.device_for(f"/d{dev}") is None
    assert fs.remote_filesystems == 5


def test_policy_directory_on_two_devices_not_all_local_is_mixed() -> None:
    fs = FilesystemPolicy()
    fs.learn("/d", 1, 0xEF53)
    fs.learn("/d", 2, 0x58465342)  # a symlink to xfs: both local, keeps the first
    assert fs.device_for("/d") == 1
    assert fs.accept("/d", 1, 2)  # the file turned out to be on xfs: fine
    fs.learn("/d", 3, 0x6969)  # a file of /d is on NFS
    assert fs.device_for("/d") is None
    fs.learn("/e", 1, None)
    assert not fs.accept("/e", 1, 4)  # an inline open found an unknown device
    assert fs.device_for("/e") is None
    assert fs._dirs["/e"] == MIXED


def test_directory_of() -> None:
    cwd = os.getcwd()
    assert _fspolicy.directory_of("/a/b/c") == ("/a/b", b"/a/b/c")
    assert _fspolicy.directory_of("/c") == ("", b"/c")
    assert _fspolicy.directory_of("c") == (f"{cwd}/", b"c")
    assert _fspolicy.directory_of(b"/a/\xff") == ("/a", b"/a/\xff")
    assert _fspolicy.directory_of(Path("/a/b")) == ("/a", b"/a/b")
    for bad in (3, "", "a\0b", None, 1.5):
        assert _fspolicy.directory_of(bad) is None


# -- open + read + close ------------------------------------------------------


async def test_cached_open_read_close_makes_no_pool_submission(
    small: tuple[Path, bytes], inline: bool
) -> None:
    path, _ = small
    await learn(path.parent)
    for mode in ("rb", "r"):
        warm(path)
        kwargs = {"encoding": "latin-1"} if mode == "r" else {}

        async def whole(mode: str = mode, kwargs: dict[str, str] = kwargs) -> str | bytes:
            async with aiofastread.open(path, mode, **kwargs) as f:
                assert f.name == str(path)
                got: str | bytes = await f.read()
                return got

        before, got = await cached_try(whole)
        with open(path, mode, **kwargs) as sync:
            assert got == sync.read()
        if inline:
            assert delta(before, "pool_submissions") == 0
            assert delta(before, "inline_opens") == 1
            assert delta(before, "inline_closes") == 1
        else:
            assert delta(before, "inline_opens") == 0
            assert delta(before, "inline_closes") == 0
            assert delta(before, "pool_submissions") >= 2  # open and close


async def test_first_open_of_a_directory_goes_to_the_pool(small: tuple[Path, bytes]) -> None:
    path, data = small
    before = stats()
    async with aiofastread.open(path, "rb") as f:
        assert await f.read() == data
    assert delta(before, "inline_opens") == 0
    assert delta(before, "pool_submissions") >= 1


async def test_read_bytes_and_read_text_cached_make_no_pool_submission(
    data_dir: Path, inline: bool
) -> None:
    path = data_dir / "text"
    path.write_bytes("é\r\nline\rlast\n".encode() * 100)
    await learn(data_dir)
    for newline in (None, "", "\n", "\r", "\r\n"):
        warm(path)
        before, got = await cached_try(
            lambda newline=newline: aiofastread.read_text(path, encoding="utf-8", newline=newline)
        )
        with open(path, encoding="utf-8", newline=newline) as f:
            assert got == f.read()
        if inline:
            assert delta(before, "pool_submissions") == 0
            assert delta(before, "inline_opens") == 1
            assert delta(before, "inline_closes") == 1
    warm(path)
    before, got = await cached_try(lambda: aiofastread.read_bytes(str(path).encode()))
    assert got == path.read_bytes()
    assert delta(before, "pool_submissions") == (0 if inline else 1)


async def test_read_bytes_cold_is_one_pool_submission(data_dir: Path, inline: bool) -> None:
    path = data_dir / "cold"
    data = make_file(path, 64 << 10)
    await learn(data_dir)
    evict(path)
    drop_dentries()
    before = stats()
    assert await aiofastread.read_bytes(path) == data
    assert delta(before, "pool_submissions") == 1
    assert delta(before, "inline_opens") + delta(before, "open_fallbacks") == int(inline)


async def test_resolve_cached_answers_eagain_after_dentries_are_dropped(
    data_dir: Path, inline: bool
) -> None:
    if not inline:
        pytest.skip("the openat2 shim is the native backend's")
    path = data_dir / "f"
    data = make_file(path, 4096)
    await learn(data_dir)
    drop_dentries()
    before = stats()
    async with aiofastread.open(path, "rb") as f:
        assert await f.read() == data
    assert delta(before, "open_fallbacks") == 1  # EAGAIN: opened in the pool
    assert delta(before, "inline_opens") == 0


async def test_read_bytes_inline_open_and_pool_read_is_one_submission(
    small: tuple[Path, bytes], inline: bool
) -> None:
    path, data = small
    await learn(path.parent)
    warm(path)
    async with aiofastread.open(path, "rb") as f:  # the dentry is cached now
        await f.read()
    evict(path)
    # Forget the file was warm: cachestat, not a NOWAIT read, finds it out
    # (a NOWAIT miss starts readahead, which a fast disk can finish in time).
    _runtime.POLICY.clear()
    before = stats()
    assert await aiofastread.read_bytes(path) == data
    assert delta(before, "pool_submissions") == 1
    assert delta(before, "inline_opens") == int(inline)


async def test_read_text_matches_pathlib(data_dir: Path) -> None:
    path = data_dir / "t"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\xff\rc")
    for encoding, errors in (("utf-8-sig", "replace"), ("latin-1", None), ("utf-16-le", "ignore")):
        expected = path.read_text(encoding=encoding, errors=errors)
        assert await aiofastread.read_text(path, encoding=encoding, errors=errors) == expected
    with pytest.raises(UnicodeDecodeError) as theirs:
        path.read_text(encoding="utf-8")
    with pytest.raises(UnicodeDecodeError) as ours:
        await aiofastread.read_text(path, encoding="utf-8")
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(LookupError, match="no-such-codec"):
        await aiofastread.read_text(path, encoding="no-such-codec")


async def test_read_bytes_refuses_descriptors() -> None:
    with pytest.raises(TypeError, match=r"read_bytes\(\) takes a path .* not int"):
        await aiofastread.read_bytes(0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not float"):
        await aiofastread.read_text(1.5)  # type: ignore[arg-type]


async def test_procfs_file_of_size_zero_is_read_whole() -> None:
    expected = Path("/proc/self/status").read_bytes()[:10]
    got = await aiofastread.read_bytes("/proc/self/status")
    assert got[:10] == expected
    assert len(got) > 100


# -- errors are CPython's -------------------------------------------------------


def same_error(ours: BaseException, theirs: BaseException) -> None:
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)
    assert getattr(ours, "filename", None) == getattr(theirs, "filename", None)


def pathlib_read_bytes(path: str | Path) -> bytes:
    return pathlib.Path(path).read_bytes()


def read_whole(path: bytes) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("kind", [str, bytes, Path])
async def test_missing_file_and_directory_raise_what_open_raises(
    data_dir: Path, kind: type
) -> None:
    await learn(data_dir)
    (data_dir / "sub").mkdir()
    for name in ("missing", "sub", "small/x"):
        target = data_dir / name
        arg = os.fsencode(target) if kind is bytes else kind(target)
        with pytest.raises(OSError) as theirs:
            open(arg, "rb")  # noqa: SIM115 - the exception is the point
        with pytest.raises(OSError) as ours:
            await aiofastread.open(arg, "rb")
        same_error(ours.value, theirs.value)
        whole = read_whole if kind is bytes else pathlib_read_bytes  # pathlib takes no bytes
        with pytest.raises(OSError) as theirs:
            whole(arg)
        with pytest.raises(OSError) as ours:
            await aiofastread.read_bytes(arg)
        same_error(ours.value, theirs.value)


async def test_permission_denied_raises_what_open_raises(tmp_path: Path) -> None:
    """Root bypasses permission checks: the check runs as nobody, in a child."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:
        os.chmod(shared, 0o755)
        (Path(shared) / "readable").write_bytes(b"x")
        os.chmod(Path(shared) / "readable", 0o644)
        secret = Path(shared) / "secret"
        secret.write_bytes(b"y")
        os.chmod(secret, 0)
        script = textwrap.dedent(
            f"""
            import asyncio, os, pathlib
            import aiofastread, aiofastread._bridge  # the stdlib is root's: import first
            os.setgid(65534); os.setuid(65534)
            async def main():
                async with aiofastread.open({shared!r} + "/readable", "rb") as f:
                    await f.read()  # learns the directory
                for call in (
                    lambda: aiofastread.open({str(secret)!r}, "rb"),
                    lambda: aiofastread.read_bytes({str(secret)!r}),
                ):
                    try:
                        await call()
                    except PermissionError as exc:
                        print(type(exc).__name__, exc.errno, exc.filename)
                try:
                    pathlib.Path({str(secret)!r}).read_bytes()
                except PermissionError as exc:
                    print(type(exc).__name__, exc.errno, exc.filename)
                print(aiofastread.statistics().open_fallbacks)
            asyncio.run(main())
            """
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    expected = f"PermissionError {errno.EACCES} {secret}"
    assert lines[:3] == [expected] * 3
    if aiofastread.backend() == "native" and HAS_SHIM:
        assert int(lines[3]) == 2  # both tried inline, EACCES: the pool raised it


# -- what is never opened inline ---------------------------------------------------


async def test_no_inline_open_for_writes_opener_patched_open_or_descriptors(
    small: tuple[Path, bytes], inline: bool
) -> None:
    path, data = small
    await learn(path.parent)
    before = stats()
    async with aiofastread.open(path, "r+b") as f:
        assert await f.read() == data
    async with aiofastread.open(path, "rb", opener=os.open) as f:
        assert await f.read() == data
    fd = os.open(path, os.O_RDONLY)
    async with aiofastread.open(fd, "rb") as f:
        assert await f.read() == data
    with mock.patch("aiofastread.threadpool.sync_open", side_effect=io.open) as patched:
        async with aiofastread.open(path, "rb") as f:
            assert await f.read() == data
    assert patched.call_count == 1
    assert delta(before, "inline_opens") == 0
    # Closes of what was only read are inline all the same; not r+b's.
    assert delta(before, "inline_closes") == (3 if inline else 0)


async def test_fast_path_off_opens_and_closes_in_the_pool(small: tuple[Path, bytes]) -> None:
    path, data = small
    await learn(path.parent)
    aiofastread.configure(fast_path=False)
    try:
        before = stats()
        assert await aiofastread.read_bytes(path) == data
        async with aiofastread.open(path, "rb") as f:
            assert await f.read() == data
        assert delta(before, "inline_opens") == delta(before, "inline_closes") == 0
    finally:
        aiofastread.configure(fast_path=True)


async def test_fifo_is_declined_without_blocking(data_dir: Path, inline: bool) -> None:
    await learn(data_dir)
    fifo = data_dir / "fifo"
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer: the pool's open returns
    try:
        os.write(keep, b"hello")
        before = stats()
        async with aiofastread.open(fifo, "rb", buffering=0) as f:
            assert await f.read(5) == b"hello"
        assert delta(before, "open_fallbacks") == int(inline)
        assert delta(before, "inline_opens") == 0
    finally:
        os.close(keep)


async def test_fuse_is_never_opened_inline(fuse_root: Path, inline: bool) -> None:  # noqa: F811
    path = fuse_root / f"inline-{os.getpid()}-{id(inline)}"  # the server has no mkdir
    data = make_file(path, 8192)
    await learn(fuse_root)
    before = stats()
    for _ in range(2):
        async with aiofastread.open(path, "rb") as f:
            assert await f.read() == data
        assert await aiofastread.read_bytes(path) == data
    assert delta(before, "inline_opens") == delta(before, "open_fallbacks") == 0
    assert delta(before, "inline_closes") == 0
    assert stats().remote_filesystems == int(HAS_SHIM)  # learnt whatever the backend


async def test_tmpfs_opens_inline_and_reads_in_the_pool(tmpfs_dir: Path, inline: bool) -> None:
    path = tmpfs_dir / "f"
    data = make_file(path, 8192)
    await learn(tmpfs_dir)
    before, got = await cached_try(lambda: aiofastread.read_bytes(path))
    assert got == data
    assert delta(before, "inline_opens") == int(inline)
    # No NOWAIT reads on tmpfs: the read itself is the one pool job.
    assert delta(before, "pool_submissions") == 1


async def test_symlinks(small: tuple[Path, bytes], tmpfs_dir: Path, inline: bool) -> None:
    path, data = small
    await learn(path.parent)
    same = path.parent / "same"
    same.symlink_to(path.name)
    before, got = await cached_try(lambda: aiofastread.read_bytes(same))
    assert got == data
    assert delta(before, "inline_opens") == int(inline)
    # A symlink to a filesystem this directory's files are not on: the open
    # is handed back to the pool and the directory is not tried again.
    other = tmpfs_dir / "other"
    other_data = make_file(other, 4096)
    away = path.parent / "away"
    away.symlink_to(other)
    directory = str(path.parent)
    for _ in range(3):
        # An inline open that a mount elsewhere turned into EAGAIN (see
        # cached_try) falls back before it sees where the symlink leads, and
        # the directory stays trusted: try again for one that saw it.
        before = stats()
        assert await aiofastread.read_bytes(away) == other_data
        assert delta(before, "open_fallbacks") == int(inline)
        if not inline or _fspolicy.FILESYSTEMS.device_for(directory) is None:
            break
    if inline:  # the symlink was seen leading off the directory's filesystem
        assert _fspolicy.FILESYSTEMS.device_for(directory) is None
    before = stats()
    assert await aiofastread.read_bytes(path) == data
    assert delta(before, "inline_opens") == 0


# -- fd lifetime ----------------------------------------------------------------


async def test_close_waits_for_pool_users(small: tuple[Path, bytes], inline: bool) -> None:
    if not inline:
        pytest.skip("inline closes are the native backend's")
    path, _ = small
    await learn(path.parent)
    f = await aiofastread.open(path, "rb")
    handle = f._h
    handle.begin()  # a pool operation in flight on the fd
    before = stats()
    closing = asyncio.ensure_future(f.close())
    await asyncio.sleep(0)
    assert not closing.done()  # invariant 3
    assert not handle.raw.closed
    assert delta(before, "inline_closes") == 0
    handle.end()  # its thread finished: the close runs in the pool now
    await closing
    assert handle.raw.closed


async def test_cancellation_leaks_no_descriptor(small: tuple[Path, bytes]) -> None:
    """Not the fd_leak_check fixture: its count starts before the loop
    exists, and uvloop opens descriptors of its own (io_uring, pipes) on
    first use during a test, closed only with the loop."""
    path, _ = small
    await learn(path.parent)
    fds = open_fd_count()

    async def settle() -> None:
        # The pool thread finishes the cancelled work (a deferred close is
        # submitted as its read ends): every descriptor closes in the end.
        await until(lambda: open_fd_count() <= fds, "the descriptors to be closed")
        await until(lambda: stats().misses_in_flight == 0, "the pool to finish")

    async def cancel_in_the_pool() -> None:
        task = asyncio.ensure_future(aiofastread.read_bytes(path))
        await asyncio.sleep(0)  # its first step: waiting for the pool
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        await settle()

    # Before the first step.
    for call in (lambda: aiofastread.read_bytes(path), lambda: aiofastread.open(path, "rb")):
        task = asyncio.ensure_future(call())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await settle()
    # During the one pool job of a cold read_bytes (open, read and close in it).
    evict(path)
    with contextlib.suppress(pytest.skip.Exception):
        drop_dentries()
    await cancel_in_the_pool()
    # During the pool read after an inline open (the dentry is cached).
    async with aiofastread.open(path, "rb") as f:
        await f.read(1)
    evict(path)
    await cancel_in_the_pool()


@pytest.mark.parametrize("change", [-100, 100])
async def test_read_bytes_of_a_file_that_changed_size_since_its_statx(
    small: tuple[Path, bytes], inline: bool, change: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NOWAIT read asks for the size seen + 1: a file that grew (or
    shrank) since is still read to its end, as Path.read_bytes reads it."""
    path, data = small
    await learn(path.parent)
    from aiofastread import _readfile

    def stale(file: object) -> tuple[int, int, int, int, int] | None:
        found = _inline_open.open_cached(file)
        if found is None:
            return None
        fd, mode, size, dev, ino = found
        return fd, mode, size + change, dev, ino

    monkeypatch.setattr(_readfile, "open_cached", stale)
    for _ in range(2):  # UNKNOWN (cachestat first), then WARM
        warm(path)
        assert await aiofastread.read_bytes(path) == data


async def test_read_bytes_nowait_miss_is_not_tried_twice(
    small: tuple[Path, bytes], inline: bool
) -> None:
    path, data = small
    await learn(path.parent)
    assert await aiofastread.read_bytes(path) == data  # WARM now
    evict(path)
    before = stats()
    assert await aiofastread.read_bytes(path) == data
    # One NOWAIT try: EAGAIN, then the pool; or, when the readahead that
    # miss starts (kernels >= ~6.12) finished at once, a hit and no job.
    tries = delta(before, "inline_misses") + delta(before, "inline_hits")
    assert tries == int(inline)
    assert delta(before, "pool_submissions") == 1 - delta(before, "inline_hits")
