"""aiofastread.ospath: aiofiles.ospath's surface, run in our pool, same answers as os.path."""

from __future__ import annotations

import inspect
import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import aiofiles.ospath
import pytest
from blockbuster import BlockBuster

import aiofastread.ospath as apath
from aiofastread import _pool

if TYPE_CHECKING:
    import pathlib
    import types
    from collections.abc import Callable, Coroutine

T = TypeVar("T")

PREDICATES = ("exists", "isfile", "isdir", "islink", "ismount")
KINDS = ("file", "dir", "symlink_to_file", "symlink_to_dir", "broken_symlink", "missing")


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


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """One path of each kind in KINDS."""
    paths = {kind: tmp_path / kind for kind in KINDS}
    paths["file"].write_bytes(b"0123456789")
    paths["dir"].mkdir()
    os.symlink(paths["file"], paths["symlink_to_file"])
    os.symlink(paths["dir"], paths["symlink_to_dir"])
    os.symlink(tmp_path / "nowhere", paths["broken_symlink"])
    return paths


# -- the surface ---------------------------------------------------------------


def test_every_aiofiles_name_is_ours() -> None:
    missing = [name for name in _public(aiofiles.ospath) if not hasattr(apath, name)]
    assert missing == []
    assert set(aiofiles.ospath.__all__) <= set(apath.__all__)


@pytest.mark.parametrize("name", _public(aiofiles.ospath))
def test_same_kind_and_signature_as_aiofiles(name: str) -> None:
    theirs, ours = getattr(aiofiles.ospath, name), getattr(apath, name)
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
    else:  # path: the os.path module
        assert ours is theirs is os.path


def test_all_is_true(no_blocking_on_loop: BlockBuster) -> None:
    """__all__ is exactly our coroutine functions, each wrapping os.path's namesake."""
    no_blocking_on_loop.deactivate()  # it wraps os.path functions: compare with originals
    assert len(set(apath.__all__)) == len(apath.__all__)
    assert set(apath.__all__) == set(aiofiles.ospath.__all__)
    for name in apath.__all__:
        member = getattr(apath, name)
        assert inspect.iscoroutinefunction(member), name
        assert member.__wrapped__ is getattr(os.path, name), name
    wrapped = {n for n in _public(apath) if inspect.iscoroutinefunction(getattr(apath, n))}
    assert wrapped == set(apath.__all__)
    assert inspect.isfunction(apath.wrap)
    assert not inspect.iscoroutinefunction(apath.wrap)


# -- behaviour -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("predicate", PREDICATES)
async def test_predicates_agree_with_os_path(
    tree: dict[str, pathlib.Path], kind: str, predicate: str
) -> None:
    path = tree[kind]
    expected = getattr(os.path, predicate)(path)
    assert await counted(getattr(apath, predicate), path) is expected
    assert await counted(getattr(apath, predicate), str(path).encode()) is expected


@pytest.mark.asyncio
async def test_predicates_on_each_kind(tree: dict[str, pathlib.Path]) -> None:
    """Spell out the expected table, so agreement with os.path is not vacuous."""
    got = {kind: [await apath.exists(p), await apath.isfile(p), await apath.isdir(p),
                  await apath.islink(p)] for kind, p in tree.items()}  # fmt: skip
    assert got == {
        "file": [True, True, False, False],
        "dir": [True, False, True, False],
        "symlink_to_file": [True, True, False, True],
        "symlink_to_dir": [True, False, True, True],
        "broken_symlink": [False, False, False, True],
        "missing": [False, False, False, False],
    }


@pytest.mark.asyncio
async def test_ismount() -> None:
    assert await counted(apath.ismount, "/") is True


@pytest.mark.asyncio
async def test_exists_on_an_fd(tree: dict[str, pathlib.Path]) -> None:
    fd = os.open(tree["file"], os.O_RDONLY)
    try:
        assert await counted(apath.exists, fd) is True
    finally:
        os.close(fd)


@pytest.mark.asyncio
async def test_sizes_and_times(tree: dict[str, pathlib.Path]) -> None:
    path = tree["file"]
    os.utime(path, ns=(1_500_000_000, 2_500_000_000))
    assert await counted(apath.getsize, path) == 10 == os.path.getsize(path)
    assert await counted(apath.getatime, path) == 1.5 == os.path.getatime(path)
    assert await counted(apath.getmtime, path) == 2.5 == os.path.getmtime(path)
    assert await counted(apath.getctime, path) == os.path.getctime(path)
    assert await counted(apath.getsize, tree["symlink_to_file"]) == 10  # follows links


@pytest.mark.asyncio
async def test_samefile_and_sameopenfile(tree: dict[str, pathlib.Path]) -> None:
    assert await counted(apath.samefile, tree["file"], tree["symlink_to_file"]) is True
    assert await counted(apath.samefile, tree["file"], tree["dir"]) is False
    fd1 = os.open(tree["file"], os.O_RDONLY)
    fd2 = os.open(tree["symlink_to_file"], os.O_RDONLY)
    fd3 = os.open(tree["dir"], os.O_RDONLY)
    try:
        assert await counted(apath.sameopenfile, fd1, fd2) is True
        assert await counted(apath.sameopenfile, fd1, fd3) is False
    finally:
        for fd in (fd1, fd2, fd3):
            os.close(fd)


@pytest.mark.asyncio
async def test_abspath(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert await counted(apath.abspath, "a/../b") == os.path.abspath("a/../b")
    assert await counted(apath.abspath, "a/../b") == str(tmp_path / "b")
    assert await counted(apath.abspath, b"c") == os.fsencode(tmp_path / "c")


@pytest.mark.asyncio
async def test_errors_match_the_stdlib(tree: dict[str, pathlib.Path]) -> None:
    missing = tree["missing"]
    for name in ("getsize", "getatime", "getmtime", "getctime"):
        with pytest.raises(FileNotFoundError):
            getattr(os.path, name)(missing)
        with pytest.raises(FileNotFoundError):
            await counted(getattr(apath, name), missing)
    with pytest.raises(FileNotFoundError):
        await counted(apath.samefile, tree["file"], missing)
    with pytest.raises(TypeError):
        await counted(apath.getsize, None)


# -- where the call runs -------------------------------------------------------


@pytest.mark.asyncio
async def test_wrap_runs_in_our_pool_and_passes_kwargs() -> None:
    def whereami(*, tag: str) -> tuple[str, str]:
        return tag, threading.current_thread().name

    wrapped = apath.wrap(whereami)
    assert wrapped.__name__ == "whereami"
    assert wrapped.__wrapped__ is whereami
    assert inspect.signature(wrapped) == inspect.signature(whereami)
    tag, thread_name = await counted(wrapped, tag="t", loop=None, executor=None)
    assert tag == "t"
    assert thread_name.startswith("aiofastread")
    assert thread_name != threading.current_thread().name
