"""Top-level helpers: write_bytes/write_text (atomic=), copyfile/copy."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
import threading
from typing import TYPE_CHECKING, Any

import pytest

import aiofastread
from aiofastread import _pool
from tests.conftest import open_fd_count, until

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Awaitable, Callable


def _submissions() -> int:
    return _pool.default_pool().statistics().submissions


def _in_flight() -> int:
    return _pool.default_pool().statistics().in_flight


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def _raised(call: Awaitable[object]) -> BaseException:
    try:
        await call
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def _raised_sync(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def assert_same_error(ours: BaseException, theirs: BaseException) -> None:
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)


# -- write_bytes / write_text ----------------------------------------------------------

TEXT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain\n", {"encoding": "utf-8"}),
    ("a\nb\r\nc\n", {"encoding": "utf-8", "newline": "\r\n"}),
    ("a\nb\n", {"encoding": "utf-8", "newline": ""}),
    ("gr\u00fc\u00dfe \u65e5\u672c", {"encoding": "utf-16"}),
    ("caf\u00e9", {"encoding": "ascii", "errors": "replace"}),
    ("", {"encoding": "utf-8"}),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("atomic", [False, True])
async def test_write_text_and_bytes_match_pathlib_in_one_hop(
    tmp_path: pathlib.Path, atomic: bool
) -> None:
    for number, (text, options) in enumerate(TEXT_CASES):
        ours, theirs = tmp_path / f"ours{number}", tmp_path / f"theirs{number}"
        before = _submissions()
        assert await aiofastread.write_text(
            ours, text, **options, atomic=atomic
        ) == theirs.write_text(text, **options)
        assert _submissions() == before + 1
        assert ours.read_bytes() == theirs.read_bytes()
    for data in (b"", b"\x00\xff" * 5000, bytearray(b"ba"), memoryview(b"mv")):
        ours, theirs = tmp_path / "ours.bin", tmp_path / "theirs.bin"
        assert await aiofastread.write_bytes(ours, data, atomic=atomic) == theirs.write_bytes(data)
        assert ours.read_bytes() == theirs.read_bytes()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"ours{n}" for n in range(len(TEXT_CASES))]
        + [f"theirs{n}" for n in range(len(TEXT_CASES))]
        + ["ours.bin", "theirs.bin"]
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("atomic", [False, True])
async def test_write_errors_match_pathlib(tmp_path: pathlib.Path, atomic: bool) -> None:
    target = tmp_path / "t"
    for ours, theirs in (
        (aiofastread.write_bytes(target, "str", atomic=atomic), lambda: target.write_bytes("str")),  # type: ignore[arg-type]
        (aiofastread.write_text(target, b"b", atomic=atomic), lambda: target.write_text(b"b")),  # type: ignore[arg-type]
        (
            aiofastread.write_text(target, "x", "no-such-codec", atomic=atomic),
            lambda: target.write_text("x", "no-such-codec"),
        ),
    ):
        assert_same_error(await _raised(ours), _raised_sync(theirs))
    missing = tmp_path / "missing" / "t"
    got = await _raised(aiofastread.write_bytes(missing, b"", atomic=atomic))
    expected = _raised_sync(lambda: missing.write_bytes(b""))
    assert type(got) is type(expected) is FileNotFoundError
    assert got.errno == expected.errno  # type: ignore[attr-defined]
    assert got.filename == expected.filename == str(missing)  # type: ignore[attr-defined]
    got = await _raised(aiofastread.write_text(tmp_path, "x", atomic=atomic))
    expected = _raised_sync(lambda: tmp_path.write_text("x"))
    assert type(got) is type(expected)
    assert [name for name in os.listdir(tmp_path.parent) if name.endswith(".tmp")] == []
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


@pytest.mark.asyncio
async def test_atomic_encode_error_leaves_the_old_file_whole(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "t"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        await aiofastread.write_text(target, "caf\u00e9", "ascii", atomic=True)
    assert target.read_text() == "old"  # a plain write would have emptied it
    assert os.listdir(tmp_path) == ["t"]


@pytest.mark.asyncio
async def test_atomic_keeps_an_existing_files_mode_and_makes_new_ones_as_open(
    tmp_path: pathlib.Path,
) -> None:
    existing = tmp_path / "existing"
    existing.write_bytes(b"old")
    existing.chmod(0o640)
    inode = existing.stat().st_ino
    await aiofastread.write_bytes(existing, b"new", atomic=True)
    assert existing.read_bytes() == b"new"
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert existing.stat().st_ino != inode  # replaced, not rewritten in place
    new = tmp_path / "new"
    await aiofastread.write_bytes(new, b"x", atomic=True)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_umask()


@pytest.fixture
def gated_fsync(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """os.fsync that waits for the test: (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        entered.set()
        release.wait(timeout=30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return entered, release


@pytest.mark.asyncio
async def test_atomic_write_cancelled_leaves_the_old_file_and_no_temporary(
    tmp_path: pathlib.Path,
    gated_fsync: tuple[threading.Event, threading.Event],
    fd_leak_check: None,
) -> None:
    entered, release = gated_fsync
    target = tmp_path / "t"
    target.write_bytes(b"old")
    before = open_fd_count()
    task = asyncio.create_task(aiofastread.write_bytes(target, b"new", atomic=True))
    await until(entered.is_set, "the write to reach fsync")
    assert len(os.listdir(tmp_path)) == 2  # target and the temporary
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await until(lambda: _in_flight() == 0, "the pool thread to finish")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["t"]
    assert open_fd_count() == before


@pytest.mark.asyncio
async def test_atomic_write_not_cancelled_replaces(
    tmp_path: pathlib.Path, gated_fsync: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = gated_fsync
    target = tmp_path / "t"
    task = asyncio.create_task(aiofastread.write_text(target, "new", atomic=True))
    await until(entered.is_set, "the write to reach fsync")
    release.set()
    assert await task == 3
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["t"]


# -- copyfile / copy ---------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "src.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    path.chmod(0o604)
    return path


@pytest.mark.asyncio
async def test_copyfile_and_copy_give_shutils_results(
    tmp_path: pathlib.Path, source: pathlib.Path
) -> None:
    before = _submissions()
    dst = await aiofastread.copyfile(source, tmp_path / "a")
    assert _submissions() == before + 1
    assert dst == tmp_path / "a" == shutil.copyfile(source, tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == source.read_bytes()
    (tmp_path / "dir").mkdir()
    assert await aiofastread.copy(source, tmp_path / "dir") == shutil.copy(source, tmp_path / "dir")
    copied = tmp_path / "dir" / "src.bin"
    assert copied.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(copied.stat().st_mode) == 0o604
    assert await aiofastread.copy(str(source), str(tmp_path / "c")) == str(tmp_path / "c")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    await aiofastread.copyfile(empty, tmp_path / "empty2")
    assert (tmp_path / "empty2").read_bytes() == b""


@pytest.mark.asyncio
async def test_copy_without_following_links_copies_the_link(tmp_path: pathlib.Path) -> None:
    (tmp_path / "target").write_bytes(b"t")
    os.symlink("target", tmp_path / "link")
    await aiofastread.copyfile(tmp_path / "link", tmp_path / "l2", follow_symlinks=False)
    assert os.readlink(tmp_path / "l2") == "target"
    await aiofastread.copy(tmp_path / "link", tmp_path / "l3")
    assert not (tmp_path / "l3").is_symlink()
    assert (tmp_path / "l3").read_bytes() == b"t"


@pytest.mark.asyncio
async def test_copy_errors_are_shutils(tmp_path: pathlib.Path, source: pathlib.Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    os.symlink(source, tmp_path / "link")
    cases = [
        (source, source),  # SameFileError
        (source, tmp_path / "link"),  # SameFileError through a link
        (tmp_path / "missing", tmp_path / "x"),  # FileNotFoundError
        (source, tmp_path / "nodir" / "x"),  # FileNotFoundError
        (source, tmp_path / "dir"),  # IsADirectoryError
        (tmp_path / "dir", tmp_path / "x"),  # IsADirectoryError
        (tmp_path / "fifo", tmp_path / "x"),  # SpecialFileError
        (source, tmp_path / "fifo"),  # SpecialFileError
    ]
    for src, dst in cases:
        got = await _raised(aiofastread.copyfile(src, dst))
        assert_same_error(got, _raised_sync(lambda: shutil.copyfile(src, dst)))  # noqa: B023
    got = await _raised(aiofastread.copy(source, source))
    assert_same_error(got, _raised_sync(lambda: shutil.copy(source, source)))
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo", "link", "src.bin"]


@pytest.mark.asyncio
async def test_data_moves_by_copy_file_range(
    tmp_path: pathlib.Path, source: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = os.copy_file_range

    def counting(*args: Any) -> int:
        calls.append("copy_file_range")
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", counting)
    await aiofastread.copyfile(source, tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == source.read_bytes()
    assert calls[0] == "copy_file_range"


@pytest.mark.asyncio
@pytest.mark.parametrize("refused", [("copy_file_range",), ("copy_file_range", "sendfile")])
async def test_falls_back_when_the_kernel_refuses(
    tmp_path: pathlib.Path,
    source: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    refused: tuple[str, ...],
) -> None:
    tried: list[str] = []

    def refuse(name: str) -> Callable[..., int]:
        def call(*args: Any) -> int:
            tried.append(name)
            raise OSError(errno.EXDEV if name == "copy_file_range" else errno.EINVAL, name)

        return call

    for name in refused:
        monkeypatch.setattr(os, name, refuse(name))
    await aiofastread.copyfile(source, tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == source.read_bytes()
    assert tried == list(refused)


@pytest.mark.asyncio
async def test_a_procfs_file_is_copied(tmp_path: pathlib.Path) -> None:
    """procfs files report 0 bytes (and copy_file_range refuses them)."""
    await aiofastread.copyfile("/proc/version", tmp_path / "v")
    with open("/proc/version", "rb") as f:
        assert (tmp_path / "v").read_bytes() == f.read()


@pytest.mark.asyncio
async def test_copy_file_range_copying_nothing_at_the_start_is_not_taken_as_eof(
    tmp_path: pathlib.Path, source: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux 5.3-5.18 return 0 for procfs/sysfs files across filesystems."""
    monkeypatch.setattr(os, "copy_file_range", lambda *args: 0)
    await aiofastread.copyfile(source, tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == source.read_bytes()


@pytest.mark.asyncio
async def test_disk_full_is_raised_with_both_names(
    tmp_path: pathlib.Path, source: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full)
    with pytest.raises(OSError) as got:
        await aiofastread.copyfile(source, tmp_path / "a")
    assert got.value.errno == errno.ENOSPC
    assert (got.value.filename, got.value.filename2) == (str(source), str(tmp_path / "a"))
