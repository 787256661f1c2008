"""Errors from below reach the caller as CPython's would.

* EIO from a FUSE filesystem that injects it (tests/fuse_faulty.py),
* EINTR from that filesystem, and a signal storm on the loop thread,
* ENOSPC on write, flush and close, on a tiny loop-mounted ext4,
* EMFILE on open, with RLIMIT_NOFILE lowered in a subprocess.

Each case runs the same steps on CPython's io and on aiofastread and
compares, step by step, the result or the exception (type and errno), the
file's closed state, and what ends up on disk: nothing buffered may be
dropped silently. Root-only fixtures skip with the reason elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from tests.conftest import evict, make_file
from tests.fuse_faulty import EIO_END, EIO_START
from tests.test_reliability_fs import (  # noqa: F401 - fixtures
    REPO,
    _need_root_and,
    _umount,
    fuse_root,
    no_blocking_in_aiofastread,
)

Outcome = tuple[Any, ...]


def sync_outcome(fn: Callable[[], Any]) -> Outcome:
    try:
        return ("ok", fn())
    except OSError as exc:
        return ("error", type(exc), exc.errno)
    except ValueError as exc:
        return ("error", type(exc), str(exc))


async def async_outcome(fn: Callable[[], Awaitable[Any]]) -> Outcome:
    try:
        return ("ok", await fn())
    except OSError as exc:
        return ("error", type(exc), exc.errno)
    except ValueError as exc:
        return ("error", type(exc), str(exc))


# -- EIO ----------------------------------------------------------------------------------


def eio_steps() -> list[tuple[str, tuple[Any, ...]]]:
    return [
        ("read", (4096,)),
        ("seek", (EIO_START - 8192,)),
        ("read", (20_000,)),  # runs into the bad range
        ("tell", ()),
        ("seek", (EIO_END + 4096,)),
        ("read", (10_000,)),  # past it: the file is still usable
        ("seek", (0,)),
        ("read", ()),  # read to EOF crosses the bad range
        ("seek", (EIO_END,)),
        ("read", ()),
        ("tell", ()),
    ]


@pytest.mark.parametrize("mode", ["rb", "r"])
async def test_eio_reaches_the_caller_as_cpythons_and_the_file_stays_usable(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    mode: str,
) -> None:
    path = fuse_root / f"eio-{mode}.bin"
    data = bytes(range(256)) * 1024  # 256 KiB, latin-1 text too
    path.write_bytes(data)
    kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "latin-1", "newline": ""}
    theirs = open(path, mode, **kwargs)  # noqa: SIM115 - driven step by step
    ours = await aiofastread.open(path, mode, **kwargs)
    try:
        for name, args in eio_steps():
            expected = sync_outcome(lambda n=name, a=args: getattr(theirs, n)(*a))
            got = await async_outcome(lambda n=name, a=args: getattr(ours, n)(*a))
            assert got == expected, (name, args)
            assert ours.closed is theirs.closed is False
    finally:
        theirs.close()
        await ours.close()
    path.unlink()


# Each failure path of the bridged raw, around the bad range: a read-ahead
# that runs into it where the request does not, a read to EOF with window
# bytes in front, a line read across its start, reads that touch its edges.
EIO_PATH_STEPS: list[tuple[str, tuple[Any, ...]]] = [
    ("seek", (10_000,)),
    ("read", (100,)),  # the request is good; a 64 KiB read-ahead would not be
    ("tell", ()),
    ("seek", (0,)),
    ("read", (8192,)),
    ("read", ()),  # to EOF, from inside a window that ends before the bad range
    ("tell", ()),
    ("seek", (EIO_START - 100,)),
    ("readline", ()),  # the line runs into the bad range
    ("tell", ()),
    ("seek", (EIO_START - 1,)),
    ("read", (1,)),
    ("read", (1,)),
    ("tell", ()),
    ("seek", (20_000,)),
    ("read", (70_000,)),
    ("tell", ()),
    ("seek", (EIO_START - 3000,)),
    ("readlines", ()),
    ("tell", ()),
    ("seek", (EIO_END - 1,)),
    ("read", (2,)),
    ("tell", ()),
    ("seek", (EIO_END,)),
    ("readline", (300,)),
    ("tell", ()),
]


@pytest.mark.parametrize(
    ("mode", "kwargs"),
    [
        ("r", {"encoding": "latin-1", "newline": ""}),
        ("r", {"encoding": "latin-1"}),
        ("r+", {"encoding": "latin-1", "newline": ""}),
        ("r+b", {}),
        ("rb", {"buffering": 0}),
        ("r+b", {"buffering": 0}),
    ],
    ids=["r-newline-empty", "r", "r+", "r+b", "rb-unbuffered", "r+b-unbuffered"],
)
async def test_eio_failure_paths_match_cpython(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    mode: str,
    kwargs: dict[str, Any],
) -> None:
    path = fuse_root / "eio-paths.bin"
    path.write_bytes(bytes(range(256)) * 1024)
    theirs = open(path, mode, **kwargs)  # noqa: SIM115 - driven step by step
    ours = await aiofastread.open(path, mode, **kwargs)
    try:
        for i, (name, args) in enumerate(EIO_PATH_STEPS):
            expected = sync_outcome(lambda n=name, a=args: getattr(theirs, n)(*a))
            got = await async_outcome(lambda n=name, a=args: getattr(ours, n)(*a))
            assert got == expected, (i, name, args)
    finally:
        theirs.close()
        await ours.close()
    path.unlink()


async def test_eio_in_pread_and_the_inline_path_is_not_involved(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    backend: str,
) -> None:
    path = fuse_root / "eio-pread.bin"
    data = make_file(path, 256 << 10)
    async with aiofastread.open(path, "rb") as f:
        with pytest.raises(OSError) as info:
            await f.pread(4096, EIO_START)
        assert type(info.value) is OSError
        assert info.value.errno == 5
        assert await f.pread(4096, 0) == data[:4096]
        results = await asyncio.gather(
            *(f.pread(4096, off) for off in range(0, 256 << 10, 32 << 10)),
            return_exceptions=True,
        )
        for off, result in zip(range(0, 256 << 10, 32 << 10), results, strict=False):
            if EIO_START <= off < EIO_END:
                assert isinstance(result, OSError)
                assert result.errno == 5
            else:
                assert result == data[off : off + 4096]
        assert f.statistics().inline_hits == 0
    path.unlink()


# -- EINTR --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["rb", "r", "r+b"])
async def test_eintr_from_the_filesystem_is_retried_as_cpython_does(
    fuse_root: Path,  # noqa: F811 - the fixture imported above
    mode: str,
) -> None:
    """PEP 475: a read interrupted with no Python signal handler to run is
    retried. The FUSE file fails the first read of each open with EINTR."""
    path = fuse_root / f"eintr-{mode}.bin"
    data = bytes(range(256)) * 512
    path.write_bytes(data)
    kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "latin-1", "newline": ""}
    with open(path, mode, **kwargs) as theirs:
        expected = theirs.read()
    async with aiofastread.open(path, mode, **kwargs) as ours:
        assert await ours.read() == expected
    path.unlink()


async def test_signal_storm_on_the_loop_thread(data_dir: Path) -> None:
    """SIGALRM every 200 us while files are opened, read cold and warm,
    written and closed: no InterruptedError escapes, every byte is right."""
    paths = [data_dir / f"f{i}.bin" for i in range(4)]
    blobs = [make_file(p, 300_000) for p in paths]
    for p in paths[:2]:
        evict(p)
    hits = 0

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal hits
        hits += 1

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        for _ in range(3):
            for p, blob in zip(paths, blobs, strict=False):
                async with aiofastread.open(p, "rb") as f:
                    assert await f.read(100_000) == blob[:100_000]
                    assert await f.read() == blob[100_000:]
                async with aiofastread.open(p, "r+b") as g:
                    await g.seek(1000)
                    await g.write(blob[:5000])
                    await g.flush()
                    await g.seek(0)
                    assert await g.read(6000) == blob[:1000] + blob[:5000]
                    await g.seek(1000)
                    await g.write(blob[1000:6000])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert hits > 0
    for p, blob in zip(paths, blobs, strict=False):
        assert p.read_bytes() == blob


# -- ENOSPC -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_fs() -> Iterator[Path]:
    """An 8 MiB ext4 on a loop device, to be filled up."""
    _need_root_and("losetup", "mkfs.ext4", "mount", "umount")
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no loop devices here (/dev/loop-control is missing)")
    base = Path(tempfile.mkdtemp(prefix="aiofastread-tiny-"))
    image, mountpoint = base / "fs.img", base / "mnt"
    mountpoint.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(8 << 20)
    loop_dev = ""
    mounted = False
    try:
        proc = subprocess.run(
            ["losetup", "--find", "--show", str(image)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot attach a loop device: {proc.stderr.strip()}")
        loop_dev = proc.stdout.strip()
        subprocess.run(["mkfs.ext4", "-q", "-F", loop_dev], check=True, capture_output=True)
        subprocess.run(["mount", loop_dev, str(mountpoint)], check=True, capture_output=True)
        mounted = True
        yield mountpoint
    finally:
        if mounted:
            _umount(mountpoint)
        if loop_dev:
            subprocess.run(["losetup", "-d", loop_dev], check=True)
        shutil.rmtree(base, ignore_errors=True)


def fill(directory: Path, leave: int) -> None:
    """Fill the filesystem, then free ``leave`` bytes (rounded to blocks)."""
    filler = directory / "filler"
    # ext4 hands back a file's unused preallocation when it is closed, so
    # "full" is only full once a pass after a close writes nothing more
    # (one pass left a few blocks free: the two runs compared then saw
    # different space).
    for _ in range(8):
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        wrote = 0
        try:
            for step in (1 << 16, 4096, 1024):
                block = b"\0" * step
                with contextlib.suppress(OSError):  # ENOSPC: full at this granularity
                    while True:
                        wrote += os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not wrote:
            break
    fd = os.open(filler, os.O_WRONLY)
    try:
        os.ftruncate(fd, max(os.fstat(fd).st_size - leave, 0))
        os.fsync(fd)
    finally:
        os.close(fd)


def unfill(directory: Path) -> None:
    (directory / "filler").unlink(missing_ok=True)
    os.sync()


# Steps: (method, args) or ("free", ()) to delete the filler midway.
ENOSPC_CASES: dict[str, tuple[str, int, list[tuple[str, tuple[Any, ...]]]]] = {
    # A write too big to buffer fails part way; what was written stays.
    "big-write": (
        "wb",
        64 << 10,
        [("write", (b"a" * 1000,)), ("write", (b"b" * (1 << 20),)), ("flush", ()), ("close", ())],
    ),
    # Small writes sit in the buffer; flush fails; the buffer is kept and a
    # flush after space was freed writes it.
    "flush-then-retry": (
        "wb",
        0,
        [
            ("write", (b"c" * 3000,)),
            ("write", (b"d" * 3000,)),
            ("flush", ()),
            ("tell", ()),
            ("free", ()),
            ("flush", ()),
            ("close", ()),
        ],
    ),
    # close() flushes, fails, and still closes the file.
    "close-fails": ("wb", 0, [("write", (b"e" * 5000,)), ("close", ()), ("close", ())]),
    "text": (
        "w",
        0,
        [("write", ("é" * 3000,)), ("flush", ()), ("free", ()), ("write", ("z",)), ("close", ())],
    ),
    "append": ("ab", 0, [("write", (b"f" * 6000,)), ("flush", ()), ("close", ())]),
}


@pytest.mark.parametrize("case", sorted(ENOSPC_CASES))
async def test_enospc_on_write_flush_and_close_matches_cpython(
    tiny_fs: Path, case: str, backend: str
) -> None:
    if backend != "native":
        pytest.skip("writes take the same path on every read backend: once is enough")
    mode, leave, steps = ENOSPC_CASES[case]
    # Binary files: CPython's default buffer (st_blksize) on both sides; the
    # writer's own default is larger, and errors land where a BufferedWriter
    # of the same size reports them (tests/test_writer_differential.py).
    kwargs: dict[str, Any] = (
        {"encoding": "utf-8"} if "b" not in mode else {"buffering": tiny_fs.stat().st_blksize}
    )
    runs: list[tuple[list[Outcome], bool, bytes]] = []
    for which in ("cpython", "aiofastread"):
        path = tiny_fs / f"{case}-{which}"
        if "a" in mode:
            path.write_bytes(b"start")
        fill(tiny_fs, leave)
        outcomes: list[Outcome] = []
        try:
            f: Any = (
                open(path, mode, **kwargs)  # noqa: SIM115
                if which == "cpython"
                else await aiofastread.open(path, mode, **kwargs)
            )
            for name, args in steps:
                if name == "free":
                    unfill(tiny_fs)
                    continue
                if which == "cpython":
                    outcomes.append(sync_outcome(lambda n=name, a=args, f=f: getattr(f, n)(*a)))
                else:
                    outcomes.append(
                        await async_outcome(lambda n=name, a=args, f=f: getattr(f, n)(*a))
                    )
            closed = f.closed
            if not closed:
                if which == "cpython":
                    sync_outcome(f.close)
                else:
                    await async_outcome(f.close)
        finally:
            unfill(tiny_fs)
        runs.append((outcomes, closed, path.read_bytes()))
        path.unlink()
    (theirs, their_closed, their_bytes), (ours, our_closed, our_bytes) = runs
    assert ours == theirs
    assert our_closed == their_closed
    if case == "big-write" and our_bytes != their_bytes:
        # How much of a write that runs out of space lands depends on the
        # free-block count to the block, which two fills do not reproduce
        # exactly (ext4's delayed-allocation reserves): both must then be a
        # prefix of what was written, nothing lost or garbled before the end.
        intended = b"".join(args[0] for name, args in steps if name == "write")
        assert intended.startswith(our_bytes), "aiofastread's bytes are not what was written"
        assert intended.startswith(their_bytes)
        assert len(our_bytes) > 1000  # the small write landed, and some of the big one
        assert len(their_bytes) > 1000
    else:
        assert our_bytes == their_bytes
    assert any(o[:3] == ("error", OSError, 28) for o in theirs), theirs  # the case did hit ENOSPC


# -- EMFILE -------------------------------------------------------------------------------

EMFILE_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, resource, sys
    import aiofastread

    path, loop_name = sys.argv[1], sys.argv[2]

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def outcome(fn):
        try:
            fn()
            return "ok"
        except OSError as exc:
            return (type(exc).__name__, exc.errno)

    async def main():
        await (await aiofastread.open(path, "rb")).close()  # pool threads exist
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (fds() + 8, hard))
        base = fds()  # counts the descriptor that lists them
        hog = []
        try:
            while True:
                hog.append(os.open(path, os.O_RDONLY))
        except OSError:
            pass
        cpython = outcome(lambda: open(path, "rb"))
        results = {"cpython": cpython}
        for mode in ("rb", "r", "wb", "r+b"):
            try:
                f = await aiofastread.open(path, mode)
                await f.close()
                results[mode] = "ok"
            except OSError as exc:
                results[mode] = (type(exc).__name__, exc.errno)
        os.close(hog.pop())
        os.close(hog.pop())
        results["leaked"] = fds() - (base + len(hog))
        async with aiofastread.open(path, "rb") as f:
            results["after"] = len(await f.read())
        # close() returns once the fd is closed; the close job's pool slot is
        # freed a moment later, on its thread: give it bounded loop turns.
        for _ in range(5000):
            if not aiofastread.statistics().misses_in_flight:
                break
            await asyncio.sleep(0.001)
        results["in_flight"] = aiofastread.statistics().misses_in_flight
        for fd in hog:
            os.close(fd)
        print(results)

    if loop_name == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
    """
)


def current_loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def test_emfile_on_open_is_cpythons_oserror_and_leaks_nothing(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    env = dict(os.environ, AIOFASTREAD_BACKEND=backend)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-c",
        EMFILE_SCRIPT,
        str(path),
        current_loop_name(),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    results = eval(out.decode())  # a dict literal printed by the script
    emfile = ("OSError", 24)
    assert results["cpython"] == emfile
    assert results == {
        "cpython": emfile,
        "rb": emfile,
        "r": emfile,
        "wb": emfile,
        "r+b": emfile,
        "leaked": 0,
        "after": 1000,
        "in_flight": 0,
    }
