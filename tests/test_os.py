"""aiofastread.os: aiofiles.os' surface, run in our pool, same results and errors as os."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import stat as stat_mod
import threading
import types
from typing import TYPE_CHECKING, Any, TypeVar

import aiofiles.os
import pytest
from blockbuster import BlockBuster

import aiofastread.os as aos
import aiofastread.ospath
from aiofastread import _iterate, _pool
from tests.conftest import open_fd_count, until
from tests.trees import cancel_while_iterating, make_big_dir, make_tree

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable, Coroutine, Iterator

T = TypeVar("T")

# What we add to aiofiles.os, each only where the stdlib os has it.
ADDED = ("lstat", "chmod", "fsync", "fdatasync", "utime")
# aiofiles.os wraps these only where os has them (hasattr checks).
PLATFORM_DEPENDENT = ("link", "sendfile", "statvfs", "fdatasync")
# Public members that are not coroutine functions.
NOT_WRAPPED = {"path": types.ModuleType, "wrap": types.FunctionType, "Scandir": type}
# Plain functions wrapping os' function of that name: scandir returns a
# coroutine that is also async-iterable, walk an async iterator.
NOT_COROUTINE_FUNCTIONS = ("scandir", "walk")
# What we add to aiofiles.os that is not a wrapped os function.
ADDED_ITERATORS = ("walk",)


def _public(module: types.ModuleType) -> list[str]:
    return sorted(name for name in dir(module) if not name.startswith("_"))


def _submissions() -> int:
    return _pool.default_pool().statistics().submissions


async def counted(fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
    """Await ``fn(*args, **kwargs)`` and check it went through our pool exactly once."""
    before = _submissions()
    try:
        return await fn(*args, **kwargs)
    finally:
        assert _submissions() == before + 1


async def assert_same_error(
    fn: Callable[..., Coroutine[Any, Any, object]], sync_fn: Callable[..., object], *args: Any
) -> None:
    """``fn(*args)`` raises what ``sync_fn(*args)`` raises: same type, same errno."""
    try:
        sync_fn(*args)
    except OSError as exc:
        expected = exc
    else:
        pytest.fail(f"{sync_fn.__name__}{args!r} did not raise")
    with pytest.raises(type(expected)) as got:
        await counted(fn, *args)
    assert type(got.value) is type(expected)
    assert got.value.errno == expected.errno


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def sentinel_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """tmp_path with a file in it, so removedirs/renames never prune tmp_path itself."""
    (tmp_path / "keep").write_bytes(b"")
    return tmp_path


@pytest.fixture
def fd_pair(tmp_path: pathlib.Path) -> Iterator[tuple[int, int]]:
    """(source fd holding known bytes, empty destination fd)."""
    src_path = tmp_path / "src"
    src_path.write_bytes(bytes(range(256)) * 300)
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        yield src, dst
    finally:
        os.close(src)
        os.close(dst)


# -- the surface ---------------------------------------------------------------


def test_every_aiofiles_name_is_ours() -> None:
    missing = [name for name in _public(aiofiles.os) if not hasattr(aos, name)]
    assert missing == []
    assert set(aiofiles.os.__all__) <= set(aos.__all__)


@pytest.mark.parametrize("name", _public(aiofiles.os))
def test_same_kind_and_signature_as_aiofiles(name: str) -> None:
    theirs, ours = getattr(aiofiles.os, name), getattr(aos, name)
    if name in NOT_COROUTINE_FUNCTIONS:
        # create_task/gather/await take what it returns as they take theirs
        assert inspect.iscoroutinefunction(theirs)
        coroutine = ours(".")
        assert asyncio.iscoroutine(coroutine)
        assert ours.__name__ == theirs.__name__
        assert ours.__wrapped__ is theirs.__wrapped__
        assert inspect.signature(ours) == inspect.signature(theirs)
        return
    assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs)
    if inspect.iscoroutinefunction(theirs):
        assert ours.__name__ == theirs.__name__
        assert ours.__wrapped__ is theirs.__wrapped__
        assert inspect.signature(ours) == inspect.signature(theirs)
    elif inspect.isfunction(theirs):  # wrap
        assert inspect.isfunction(ours)
        assert [(p.name, p.kind) for p in inspect.signature(ours).parameters.values()] == [
            (p.name, p.kind) for p in inspect.signature(theirs).parameters.values()
        ]
    else:  # modules: os, path
        assert isinstance(ours, types.ModuleType)
        assert isinstance(theirs, types.ModuleType)


def test_all_is_true(no_blocking_on_loop: BlockBuster) -> None:
    """Our __all__ names exactly what we define, and each wraps os' function of that name."""
    no_blocking_on_loop.deactivate()  # it wraps os functions: compare with the originals
    assert len(set(aos.__all__)) == len(aos.__all__)
    for name in aos.__all__:
        member = getattr(aos, name)
        if name in NOT_WRAPPED:
            assert isinstance(member, NOT_WRAPPED[name]), name
        elif name in NOT_COROUTINE_FUNCTIONS:
            assert inspect.isfunction(member), name
            assert member.__wrapped__ is getattr(os, name), name
        else:
            assert inspect.iscoroutinefunction(member), name
            assert member.__wrapped__ is getattr(os, name), name
    wrapped = {n for n in _public(aos) if inspect.iscoroutinefunction(getattr(aos, n))}
    assert wrapped == set(aos.__all__) - set(NOT_WRAPPED) - set(NOT_COROUTINE_FUNCTIONS)


def test_added_names_and_platform_conditions() -> None:
    for name in ADDED:
        assert (name in aos.__all__) == hasattr(os, name), name
    for name in PLATFORM_DEPENDENT:
        assert (name in aos.__all__) == hasattr(os, name), name
        assert hasattr(aos, name) == hasattr(os, name), name
    extra = set(aos.__all__) - set(aiofiles.os.__all__)
    assert extra == {name for name in ADDED if hasattr(os, name)} | set(ADDED_ITERATORS)


def test_path_is_our_ospath_and_wrap_is_shared() -> None:
    assert aos.path is aiofastread.ospath
    assert aos.wrap is aiofastread.ospath.wrap
    assert aos.os is os


# -- where the call runs -------------------------------------------------------


@pytest.mark.asyncio
async def test_wrap_runs_in_our_pool_off_the_loop_thread() -> None:
    current_thread = aos.wrap(threading.current_thread)
    assert current_thread.__name__ == "current_thread"
    assert current_thread.__wrapped__ is threading.current_thread
    thread = await counted(current_thread)
    assert thread is not threading.current_thread()
    assert thread.name.startswith("aiofastread")


@pytest.mark.asyncio
async def test_executor_keyword_is_honoured_and_still_counted() -> None:
    current_thread = aos.wrap(threading.current_thread)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="callers") as executor:
        thread = await counted(current_thread, executor=executor)
    assert thread.name.startswith("callers")


@pytest.mark.asyncio
async def test_loop_keyword_is_accepted(tmp_path: pathlib.Path) -> None:
    loop = asyncio.get_running_loop()
    assert await counted(aos.stat, tmp_path, loop=loop) == os.stat(tmp_path)
    assert await counted(aos.stat, tmp_path, loop=None, executor=None) == os.stat(tmp_path)


@pytest.mark.asyncio
async def test_keyword_arguments_are_passed_through(tmp_path: pathlib.Path) -> None:
    """functools.partial carries kwargs: here follow_symlinks and exist_ok."""
    target = tmp_path / "target"
    target.write_bytes(b"x")
    link = tmp_path / "link"
    os.symlink(target, link)
    assert await counted(aos.stat, link, follow_symlinks=False) == os.lstat(link)
    assert await counted(aos.stat, link) == os.stat(target)
    await counted(aos.makedirs, tmp_path, exist_ok=True)


# -- behaviour on real files ---------------------------------------------------


@pytest.mark.asyncio
async def test_stat_and_lstat(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    link = tmp_path / "l"
    os.symlink(path, link)
    result = await counted(aos.stat, path)
    assert result == os.stat(path)
    assert result.st_size == 5
    assert result.st_mtime_ns == os.stat(path).st_mtime_ns
    assert await counted(aos.stat, str(path).encode()) == os.stat(path)
    lresult = await counted(aos.lstat, link)
    assert lresult == os.lstat(link)
    assert stat_mod.S_ISLNK(lresult.st_mode)
    with open(path, "rb") as f:  # stat of an fd
        assert await counted(aos.stat, f.fileno()) == os.fstat(f.fileno())


@pytest.mark.asyncio
async def test_rename_replace_renames_move_files(sentinel_dir: pathlib.Path) -> None:
    a, b, c = sentinel_dir / "a", sentinel_dir / "b", sentinel_dir / "c"
    a.write_bytes(b"A")
    assert await counted(aos.rename, a, b) is None
    assert not a.exists()
    assert b.read_bytes() == b"A"

    c.write_bytes(b"C")
    await counted(aos.replace, b, c)  # replaces an existing file
    assert not b.exists()
    assert c.read_bytes() == b"A"

    nested = sentinel_dir / "x" / "y" / "z"
    await counted(aos.renames, c, nested)  # creates the intermediate directories
    assert nested.read_bytes() == b"A"
    await counted(aos.renames, nested, sentinel_dir / "back")  # prunes them again
    assert not (sentinel_dir / "x").exists()
    assert (sentinel_dir / "back").read_bytes() == b"A"
    assert (sentinel_dir / "keep").exists()


@pytest.mark.asyncio
async def test_remove_and_unlink(tmp_path: pathlib.Path) -> None:
    for fn in (aos.remove, aos.unlink):
        path = tmp_path / fn.__name__
        path.write_bytes(b"")
        assert await counted(fn, path) is None
        assert not path.exists()


@pytest.mark.asyncio
async def test_listdir_and_scandir(tmp_path: pathlib.Path) -> None:
    for name in ("one", "two", "three"):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "sub").mkdir()
    names = await counted(aos.listdir, tmp_path)
    assert sorted(names) == sorted(os.listdir(tmp_path)) == ["one", "sub", "three", "two"]
    assert sorted(await counted(aos.listdir, bytes(tmp_path))) == sorted(
        os.listdir(bytes(tmp_path))
    )

    with await counted(aos.scandir, tmp_path) as entries:
        found = {entry.name: entry.is_dir() for entry in entries}
    assert found == {"one": False, "two": False, "three": False, "sub": True}


@pytest.mark.asyncio
async def test_listdir_and_getcwd_without_arguments(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").write_bytes(b"")
    assert await counted(aos.getcwd) == os.getcwd() == str(tmp_path)
    assert await counted(aos.listdir) == ["here"]


@pytest.mark.asyncio
async def test_mkdir_makedirs_rmdir_removedirs(sentinel_dir: pathlib.Path) -> None:
    single = sentinel_dir / "single"
    await counted(aos.mkdir, single, 0o700)
    assert single.is_dir()
    assert stat_mod.S_IMODE(os.stat(single).st_mode) == 0o700 & ~_umask()
    await counted(aos.rmdir, single)
    assert not single.exists()

    deep = sentinel_dir / "a" / "b" / "c"
    await counted(aos.makedirs, deep)
    assert deep.is_dir()
    await counted(aos.removedirs, deep)
    assert not (sentinel_dir / "a").exists()
    assert sentinel_dir.is_dir()


@pytest.mark.asyncio
async def test_symlink_readlink_link(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"data")
    sym = tmp_path / "sym"
    await counted(aos.symlink, target, sym)
    assert sym.is_symlink()
    assert await counted(aos.readlink, sym) == os.readlink(sym) == str(target)
    assert await counted(aos.readlink, bytes(sym)) == bytes(target)

    dir_sym = tmp_path / "dirsym"
    await counted(aos.symlink, tmp_path, dir_sym, target_is_directory=True)
    assert dir_sym.is_dir()

    hard = tmp_path / "hard"
    await counted(aos.link, target, hard)
    assert os.stat(hard).st_ino == os.stat(target).st_ino
    assert os.stat(target).st_nlink == 2
    assert hard.read_bytes() == b"data"


@pytest.mark.asyncio
async def test_access(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    assert await counted(aos.access, path, os.R_OK | os.W_OK) is True
    assert await counted(aos.access, path, os.F_OK) is True
    assert await counted(aos.access, tmp_path / "missing", os.F_OK) is False


@pytest.mark.asyncio
async def test_chmod_and_utime(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    await counted(aos.chmod, path, 0o640)
    assert stat_mod.S_IMODE(os.stat(path).st_mode) == 0o640
    await counted(aos.utime, path, ns=(1_000_000_000, 2_000_000_000))
    result = os.stat(path)
    assert (result.st_atime_ns, result.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
    await counted(aos.utime, path, (5, 6))
    assert (os.stat(path).st_atime, os.stat(path).st_mtime) == (5, 6)


@pytest.mark.asyncio
async def test_fsync_and_fdatasync(fd_pair: tuple[int, int]) -> None:
    _src, dst = fd_pair
    os.write(dst, b"durable")
    assert await counted(aos.fsync, dst) is None
    if hasattr(aos, "fdatasync"):
        assert await counted(aos.fdatasync, dst) is None
    with open(os.dup(dst), "rb") as f:  # fsync also takes objects with fileno()
        assert await counted(aos.fsync, f) is None


@pytest.mark.skipif(not hasattr(os, "sendfile"), reason="os.sendfile is missing here")
@pytest.mark.asyncio
async def test_sendfile_copies_bytes_between_fds(
    tmp_path: pathlib.Path, fd_pair: tuple[int, int]
) -> None:
    src, dst = fd_pair
    data = (tmp_path / "src").read_bytes()
    offset = 1000
    while offset < len(data):
        sent = await counted(aos.sendfile, dst, src, offset, len(data) - offset)
        assert sent > 0
        offset += sent
    assert os.lseek(src, 0, os.SEEK_CUR) == 0  # an explicit offset leaves src's own alone
    assert (tmp_path / "dst").read_bytes() == data[1000:]


@pytest.mark.skipif(not hasattr(os, "statvfs"), reason="os.statvfs is missing here")
@pytest.mark.asyncio
async def test_statvfs(tmp_path: pathlib.Path) -> None:
    result = await counted(aos.statvfs, tmp_path)
    expected = os.statvfs(tmp_path)
    assert (result.f_bsize, result.f_frsize, result.f_blocks, result.f_namemax) == (
        expected.f_bsize,
        expected.f_frsize,
        expected.f_blocks,
        expected.f_namemax,
    )


# -- errors are the stdlib's ---------------------------------------------------


@pytest.mark.asyncio
async def test_errors_match_the_stdlib(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing"
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    a_dir = tmp_path / "dir"
    (a_dir / "child").mkdir(parents=True)

    await assert_same_error(aos.stat, os.stat, missing)
    await assert_same_error(aos.lstat, os.lstat, missing)
    await assert_same_error(aos.remove, os.remove, missing)
    await assert_same_error(aos.unlink, os.unlink, a_dir)
    await assert_same_error(aos.rename, os.rename, missing, tmp_path / "x")
    await assert_same_error(aos.rmdir, os.rmdir, a_dir)
    await assert_same_error(aos.rmdir, os.rmdir, a_file)
    await assert_same_error(aos.mkdir, os.mkdir, a_dir)
    await assert_same_error(aos.makedirs, os.makedirs, a_dir)
    await assert_same_error(aos.listdir, os.listdir, a_file)
    await assert_same_error(aos.scandir, os.scandir, missing)
    await assert_same_error(aos.readlink, os.readlink, a_file)
    await assert_same_error(aos.symlink, os.symlink, a_file, a_file)
    await assert_same_error(aos.link, os.link, missing, tmp_path / "y")
    await assert_same_error(aos.chmod, os.chmod, missing, 0o600)
    await assert_same_error(aos.utime, os.utime, missing)


@pytest.mark.asyncio
async def test_bad_arguments_raise_the_stdlib_type_error() -> None:
    with pytest.raises(TypeError):
        os.stat(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await counted(aos.stat, 1.5)
    with pytest.raises(TypeError):
        await aos.stat("x", no_such_keyword=True)


@pytest.mark.asyncio
async def test_bad_fd_raises_oserror(fd_pair: tuple[int, int]) -> None:
    src, _dst = fd_pair
    closed = os.dup(src)
    os.close(closed)
    await assert_same_error(aos.fsync, os.fsync, closed)


# -- async iterators: scandir and walk -------------------------------------------


def _entry_facts(entry: os.DirEntry[str]) -> tuple[object, ...]:
    return (
        entry.name,
        entry.path,
        entry.is_dir(),
        entry.is_file(),
        entry.is_symlink(),
        entry.is_dir(follow_symlinks=False),
        entry.inode(),
    )


@pytest.mark.asyncio
async def test_scandir_iterates_as_os_scandir_in_two_hops(tmp_path: pathlib.Path) -> None:
    make_tree(tmp_path)
    before = _submissions()
    ours = [_entry_facts(entry) async for entry in aos.scandir(tmp_path)]
    # one hop opens the directory, one reads all of it (fewer than a batch)
    assert _submissions() == before + 2
    with os.scandir(tmp_path) as entries:
        theirs = [_entry_facts(entry) for entry in entries]
    assert sorted(ours) == sorted(theirs)
    assert len(ours) == len(os.listdir(tmp_path)) > 5


@pytest.mark.asyncio
async def test_scandir_reads_a_batch_per_hop(tmp_path: pathlib.Path) -> None:
    count = 2 * _iterate.DEFAULT_BATCH + 7
    for number in range(count):
        (tmp_path / f"f{number}").write_bytes(b"")
    before = _submissions()
    names = [entry.name async for entry in aos.scandir(str(tmp_path))]
    assert sorted(names) == sorted(os.listdir(tmp_path))
    assert _submissions() == before + 1 + 3  # open, then 256 + 256 + 7


@pytest.mark.asyncio
async def test_scandir_of_bytes_and_of_a_missing_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "x").write_bytes(b"")
    assert [entry.name async for entry in aos.scandir(bytes(tmp_path))] == [b"x"]
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as got:
        async for _ in aos.scandir(missing):
            pass
    assert got.value.filename == str(missing)


@pytest.mark.asyncio
async def test_scandir_awaited_is_aiofiles_and_a_task_can_run_it(tmp_path: pathlib.Path) -> None:
    (tmp_path / "x").write_bytes(b"")
    task = asyncio.create_task(aos.scandir(tmp_path))
    with await task as entries:
        assert type(entries).__name__ == "ScandirIterator"
        assert [entry.name for entry in entries] == ["x"]


@pytest.fixture
def big_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return make_big_dir(tmp_path)


@pytest.mark.asyncio
async def test_scandir_left_early_closes_the_directory(
    big_dir: pathlib.Path, fd_leak_check: None
) -> None:
    before = open_fd_count()
    async with aos.scandir(big_dir) as entries:
        async for _ in entries:
            assert open_fd_count() == before + 1  # the directory is open
            break
    await until(lambda: _pool.default_pool().statistics().in_flight == 0, "the close")
    assert open_fd_count() == before


@pytest.mark.asyncio
async def test_scandir_cancelled_mid_iteration_leaks_nothing(
    big_dir: pathlib.Path, fd_leak_check: None
) -> None:
    before = open_fd_count()

    def directory_is_open() -> None:
        assert open_fd_count() == before + 1

    await cancel_while_iterating(lambda: aos.scandir(big_dir).__aiter__(), directory_is_open)


def _walk_sorted(steps: list[tuple[Any, list[Any], list[Any]]]) -> list[tuple[Any, ...]]:
    return sorted((top, sorted(dirs), sorted(files)) for top, dirs, files in steps)


@pytest.mark.asyncio
@pytest.mark.parametrize("topdown", [True, False])
@pytest.mark.parametrize("followlinks", [False, True])
async def test_walk_matches_os_walk(
    tmp_path: pathlib.Path, topdown: bool, followlinks: bool
) -> None:
    make_tree(tmp_path)
    ours = [step async for step in aos.walk(tmp_path, topdown, followlinks=followlinks)]
    theirs = list(os.walk(tmp_path, topdown, followlinks=followlinks))
    assert ours == theirs  # same order too: the same generator runs
    assert _walk_sorted(ours) == _walk_sorted(theirs)


@pytest.mark.asyncio
async def test_walk_top_down_takes_a_hop_per_directory_and_can_be_pruned(
    tmp_path: pathlib.Path,
) -> None:
    make_tree(tmp_path)
    before = _submissions()
    visited = []
    async for top, dirnames, _ in aos.walk(str(tmp_path)):
        visited.append(os.path.relpath(top, tmp_path))
        if "sub" in dirnames:
            dirnames.remove("sub")  # not entered: no sub, no sub/deeper
    assert sorted(visited) == sorted([".", "empty", "\u65e5\u672c"])
    assert _submissions() == before + len(visited) + 1  # + the hop that finds the end


@pytest.mark.asyncio
async def test_walk_errors_go_to_onerror_as_in_os_walk(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing"
    errors: list[OSError] = []
    assert [step async for step in aos.walk(missing, onerror=errors.append)] == []
    assert len(errors) == 1
    assert isinstance(errors[0], FileNotFoundError)
    assert errors[0].filename == str(missing)
    assert [step async for step in aos.walk(missing)] == []


@pytest.mark.asyncio
async def test_walk_left_early_leaks_nothing(tmp_path: pathlib.Path, fd_leak_check: None) -> None:
    make_tree(tmp_path)
    walked = aos.walk(tmp_path)
    async for _ in walked:
        break
    await walked.aclose()
    await until(lambda: _pool.default_pool().statistics().in_flight == 0, "the close")
