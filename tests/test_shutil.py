"""aiofastread.shutil: shutil's results and exceptions, each call one pool hop."""

from __future__ import annotations

import inspect
import os
import shutil
import stat
import threading
from typing import TYPE_CHECKING, Any

import pytest
from blockbuster import BlockBuster

import aiofastread.shutil as ashutil
from aiofastread import _copy, _pool
from tests.trees import make_tree

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable, Coroutine, Iterator

# Re-exported as they are: exception classes and the pure ignore_patterns.
SAME_OBJECTS = ("Error", "ReadError", "RegistryError", "SameFileError", "SpecialFileError")
# Ours: the data moves by copy_file_range (aiofastread._copy).
KERNEL_COPIES = ("copyfile", "copy", "copy2")


@pytest.fixture(autouse=True)
def os_supports_sets_hold_blockbusters_wrappers(
    no_blocking_on_loop: BlockBuster,
) -> Iterator[None]:
    """blockbuster swaps os.stat & co for wrappers that os.supports_* do not hold,
    so shutil (copystat of a symlink: ``fn in os.supports_follow_symlinks``)
    takes them for missing. Put the wrappers next to the originals meanwhile."""
    sets = (os.supports_follow_symlinks, os.supports_fd, os.supports_dir_fd)
    added: list[tuple[set[Any], object]] = []
    for func in no_blocking_on_loop.functions.values():
        current = getattr(func.module, func.func_name, None)
        for supported in sets:
            if func.original_func in supported and current not in supported:
                supported.add(current)
                added.append((supported, current))
    yield
    for supported, current in added:
        supported.discard(current)


def _submissions() -> int:
    return _pool.default_pool().statistics().submissions


async def counted(fn: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, **kwargs: Any) -> Any:
    before = _submissions()
    try:
        return await fn(*args, **kwargs)
    finally:
        assert _submissions() == before + 1


def _snapshot(root: pathlib.Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for top, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(top, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                found[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[key] = ("dir", stat.S_IMODE(os.lstat(path).st_mode))
            else:
                with open(path, "rb") as f:
                    found[key] = ("file", stat.S_IMODE(os.lstat(path).st_mode), f.read())
    return found


def test_surface() -> None:
    for name in ashutil.__all__:
        ours = getattr(ashutil, name)
        if name in SAME_OBJECTS or name == "ignore_patterns":
            assert ours is getattr(shutil, name), name
            continue
        assert inspect.iscoroutinefunction(ours), name
        assert ours.__name__ == name
        wrapped = inspect.unwrap(ours)
        if name in KERNEL_COPIES:
            assert wrapped is getattr(_copy, name)
        else:
            assert wrapped is getattr(shutil, name), name
    assert ashutil.rmtree.avoids_symlink_attacks == shutil.rmtree.avoids_symlink_attacks


@pytest.mark.asyncio
@pytest.mark.parametrize("symlinks", [False, True])
async def test_copytree_as_shutil(tmp_path: pathlib.Path, symlinks: bool) -> None:
    tree = make_tree(tmp_path / "tree")
    os.unlink(tree / "broken")  # shutil raises on it when following links
    ours = await counted(ashutil.copytree, tree, tmp_path / "ours", symlinks)
    theirs = shutil.copytree(tree, tmp_path / "theirs", symlinks)
    assert (ours, theirs) == (tmp_path / "ours", tmp_path / "theirs")
    assert _snapshot(tmp_path / "ours") == _snapshot(tmp_path / "theirs")


@pytest.mark.asyncio
async def test_copytree_options_and_errors(tmp_path: pathlib.Path) -> None:
    tree = make_tree(tmp_path / "tree")
    ignore = ashutil.ignore_patterns("*.txt", "deeper")
    await counted(ashutil.copytree, tree, tmp_path / "ours", symlinks=True, ignore=ignore)
    shutil.copytree(tree, tmp_path / "theirs", symlinks=True, ignore=ignore)
    assert _snapshot(tmp_path / "ours") == _snapshot(tmp_path / "theirs")
    with pytest.raises(FileExistsError):
        await ashutil.copytree(tree, tmp_path / "ours")
    (tmp_path / "existing").mkdir()
    await ashutil.copytree(tree, tmp_path / "existing", symlinks=True, dirs_exist_ok=True)
    assert _snapshot(tmp_path / "existing") == _snapshot(tree)
    # following links, the broken one is an error, collected as shutil collects it
    with pytest.raises(shutil.Error) as ours_error:
        await ashutil.copytree(tree, tmp_path / "follow")
    with pytest.raises(shutil.Error) as theirs_error:
        shutil.copytree(tree, tmp_path / "follow2")
    assert len(ours_error.value.args[0]) == len(theirs_error.value.args[0]) == 1
    await ashutil.copytree(tree, tmp_path / "dangling", ignore_dangling_symlinks=True)


@pytest.mark.asyncio
async def test_copytree_and_move_copy_with_ours_unless_told(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "tree")
    used: list[str] = []
    real = _copy.copy2

    def spy(src: Any, dst: Any, **kwargs: Any) -> Any:
        used.append(os.path.basename(src))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(_copy, "copy2", spy)
    await ashutil.copytree(tree, tmp_path / "a", symlinks=True)
    assert "file.txt" in used
    used.clear()
    copied: list[str] = []
    await ashutil.copytree(
        tree,
        tmp_path / "b",
        True,
        None,
        lambda s, d: copied.append(os.path.basename(s)) or d,
    )
    assert used == []
    assert "file.txt" in copied


@pytest.mark.asyncio
async def test_rmtree_as_shutil(tmp_path: pathlib.Path) -> None:
    tree = make_tree(tmp_path / "tree")
    os.symlink(tree, tmp_path / "link_to_tree")
    await counted(ashutil.rmtree, tree / "sub")
    assert not (tree / "sub").exists()
    with pytest.raises(OSError) as ours:
        await ashutil.rmtree(tmp_path / "link_to_tree")
    with pytest.raises(OSError) as theirs:
        shutil.rmtree(tmp_path / "link_to_tree")
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(FileNotFoundError) as missing:
        await ashutil.rmtree(tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as stdlib_missing:
        shutil.rmtree(tmp_path / "missing")
    assert missing.value.filename == stdlib_missing.value.filename
    await ashutil.rmtree(tmp_path / "missing", ignore_errors=True)
    errors: list[tuple[Any, ...]] = []
    threads: list[str] = []

    def onerror(*args: Any) -> None:
        errors.append(args)
        threads.append(threading.current_thread().name)

    await ashutil.rmtree(tmp_path / "missing", onerror=onerror)
    assert len(errors) == 1
    assert threads[0].startswith("aiofastread")  # callbacks run on our thread
    await ashutil.rmtree(tree)
    assert os.listdir(tmp_path) == ["link_to_tree"]


@pytest.mark.asyncio
async def test_move_file_dir_and_into_dir(tmp_path: pathlib.Path) -> None:
    tree = make_tree(tmp_path / "tree")
    moved = await counted(ashutil.move, tree / "file.txt", tmp_path / "moved.txt")
    assert moved == tmp_path / "moved.txt"
    assert (tmp_path / "moved.txt").read_bytes() == b"hello\n"
    assert await ashutil.move(tree / "sub", tree / "empty") == str(tree / "empty" / "sub")
    assert (tree / "empty" / "sub" / "deeper" / "leaf.txt").read_bytes() == b"leaf\n"
    with pytest.raises(shutil.Error) as ours:
        await ashutil.move(tmp_path / "moved.txt", tmp_path)
    with pytest.raises(shutil.Error) as theirs:
        shutil.move(tmp_path / "moved.txt", tmp_path)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(FileNotFoundError):
        await ashutil.move(tmp_path / "missing", tmp_path / "x")


@pytest.mark.asyncio
async def test_copies_and_metadata_as_shutil(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"data")
    src.chmod(0o640)
    os.utime(src, (1_000_000, 2_000_000))
    for name in ("copyfile", "copy", "copy2"):
        ours = await counted(getattr(ashutil, name), src, tmp_path / f"ours_{name}")
        theirs = getattr(shutil, name)(src, tmp_path / f"theirs_{name}")
        assert os.path.basename(ours).replace("ours", "theirs") == os.path.basename(theirs)
        ours_stat = os.stat(tmp_path / f"ours_{name}")
        theirs_stat = os.stat(tmp_path / f"theirs_{name}")
        assert ours_stat.st_mode == theirs_stat.st_mode
        assert (name == "copy2") == (ours_stat.st_mtime == 2_000_000)
        assert (name == "copy2") == (theirs_stat.st_mtime == 2_000_000)
    dst = tmp_path / "meta"
    dst.write_bytes(b"")
    await counted(ashutil.copymode, src, dst)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o640
    await counted(ashutil.copystat, src, dst)
    assert dst.stat().st_mtime == 2_000_000
    await counted(ashutil.chown, dst, os.getuid(), os.getgid())
    with pytest.raises(ashutil.SameFileError):
        await ashutil.copy2(src, src)


@pytest.mark.asyncio
async def test_disk_usage_which_unpack_archive(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = await counted(ashutil.disk_usage, tmp_path)
    assert usage.total == shutil.disk_usage(tmp_path).total
    with pytest.raises(FileNotFoundError):
        await ashutil.disk_usage(tmp_path / "missing")
    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tool.parent))
    assert await counted(ashutil.which, "mytool") == shutil.which("mytool") == str(tool)
    assert await ashutil.which("no-such-tool") is None
    tree = make_tree(tmp_path / "tree")
    os.unlink(tree / "broken")
    archive = shutil.make_archive(str(tmp_path / "arch"), "gztar", tree)
    # tar's extraction filter (3.12, and 3.11.4+): say it, or 3.12+ warns
    safe = (
        {"filter": "data"}
        if "filter" in inspect.signature(shutil.unpack_archive).parameters
        else {}
    )
    await counted(ashutil.unpack_archive, archive, tmp_path / "out", **safe)
    assert _snapshot(tmp_path / "out") == _snapshot(tree)
    with pytest.raises(ashutil.ReadError):
        await ashutil.unpack_archive(tree / "file.txt", tmp_path / "x", "zip")
