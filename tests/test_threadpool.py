"""aiofiles' surface: member lists, wrap(), sync_open mocking, std streams."""

from __future__ import annotations

import inspect
import io
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import aiofiles.tempfile.temptypes
import aiofiles.threadpool.binary
import aiofiles.threadpool.text
import pytest

import aiofastread
import aiofastread.tempfile.temptypes
from aiofastread import _file
from aiofastread._bridge import Bridge
from aiofastread.threadpool import _members, binary, text
from aiofastread.threadpool._base import PoolRunner

# (aiofiles class, ours, async members, sync members, properties)
SURFACES = [
    (
        aiofiles.threadpool.text.AsyncTextIOWrapper,
        text.DirectTextIOWrapper,  # what a direct-path text open returns
        _members.TEXT_ASYNC,
        _members.TEXT_SYNC,
        _members.TEXT_PROPERTIES,
    ),
    (
        aiofiles.threadpool.binary.AsyncBufferedIOBase,
        binary.AsyncBufferedIOBase,
        _members.BUFFERED_ASYNC,
        _members.BUFFERED_SYNC,
        _members.BUFFERED_PROPERTIES,
    ),
    (
        aiofiles.threadpool.binary.AsyncBufferedReader,
        binary.AsyncBufferedReader,
        _members.BUFFERED_READER_ASYNC,
        _members.BUFFERED_SYNC,
        _members.BUFFERED_PROPERTIES,
    ),
    (
        aiofiles.threadpool.binary.AsyncBufferedReader,
        _file.AsyncBufferedReader,  # what "rb" returns
        _members.BUFFERED_READER_ASYNC,
        _members.BUFFERED_SYNC,
        _members.BUFFERED_PROPERTIES,
    ),
    (
        aiofiles.threadpool.binary.AsyncFileIO,
        binary.AsyncFileIO,
        _members.FILEIO_ASYNC,
        _members.FILEIO_SYNC,
        _members.FILEIO_PROPERTIES,
    ),
    (
        aiofiles.threadpool.text.AsyncTextIOWrapper,
        text.AsyncTextIOWrapper,
        _members.TEXT_ASYNC,
        _members.TEXT_SYNC,
        _members.TEXT_PROPERTIES,
    ),
    (
        aiofiles.threadpool.binary.AsyncIndirectBufferedIOBase,
        binary.AsyncIndirectBufferedIOBase,
        _members.BUFFERED_ASYNC,
        _members.BUFFERED_SYNC,
        _members.BUFFERED_PROPERTIES,
    ),
    (
        aiofiles.threadpool.text.AsyncTextIndirectIOWrapper,
        text.AsyncTextIndirectIOWrapper,
        _members.TEXT_ASYNC,
        _members.TEXT_SYNC,
        _members.TEXT_PROPERTIES,
    ),
    (
        aiofiles.tempfile.temptypes.AsyncSpooledTemporaryFile,
        aiofastread.tempfile.temptypes.AsyncSpooledTemporaryFile,
        _members.SPOOLED_ASYNC,
        _members.SPOOLED_SYNC,
        _members.SPOOLED_PROPERTIES,
    ),
    (
        aiofiles.tempfile.temptypes.AsyncTemporaryDirectory,
        aiofastread.tempfile.temptypes.AsyncTemporaryDirectory,
        _members.TEMPDIR_ASYNC,
        _members.TEMPDIR_SYNC,
        _members.TEMPDIR_PROPERTIES,
    ),
]

# Members every file class has from the shared base, not from the lists.
_BASE = {"__aiter__", "__anext__", "__init__", "__repr__"}


def is_c_hit_path(cls: type, name: str, value: object) -> bool:
    """A method of the reader's C hit path (native/afr_hit.c) or the direct
    text path's (native/afr_text.c): it returns an awaitable, standing for
    the Python coroutine method of its name."""
    python = _file._PythonReader if issubclass(cls, _file._PythonReader) else None
    if issubclass(cls, text.DirectTextIOWrapper):
        python = text.AsyncTextIOWrapper
    return (
        python is not None
        and inspect.ismethoddescriptor(value)
        and inspect.iscoroutinefunction(getattr(python, name, None))
    )


def surface(cls: type) -> tuple[set[str], set[str], set[str]]:
    """(async methods, sync methods, properties) a class exposes publicly."""
    async_, sync, props = set(), set(), set()
    for name in dir(cls):
        if name.startswith("_") or name in _BASE:
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, property):
            props.add(name)
        elif inspect.iscoroutinefunction(value) or is_c_hit_path(cls, name, value):
            async_.add(name)
        elif callable(value):
            sync.add(name)
    return async_, sync, props


@pytest.mark.parametrize(("theirs", "ours", "async_", "sync", "props"), SURFACES)
def test_member_lists(theirs: type, ours: type, async_: Any, sync: Any, props: Any) -> None:
    # The named data is aiofiles' surface...
    assert surface(theirs) == (set(async_), set(sync), set(props))
    # ...and ours has it, sync where theirs is sync (extras are allowed only
    # on the hand-written reader: readall, readinto1, pread, the vectored and
    # into-buffer reads, statistics).
    ours_async, ours_sync, ours_props = surface(ours)
    extras = (
        {"readall", "readinto1", "pread", "pread_into", "read_many", "read_many_into"}
        if ours is _file.AsyncBufferedReader
        else set()
    )
    assert ours_async - extras == set(async_)
    assert ours_sync - {"statistics", "register"} == set(sync)
    assert ours_props == set(props)


def test_public_names() -> None:
    import aiofiles

    for name in aiofiles.__all__:
        assert hasattr(aiofastread, name), name
    for name in aiofiles.threadpool.__all__:
        assert hasattr(aiofastread.threadpool, name), name
    for name in aiofiles.tempfile.__all__:
        assert hasattr(aiofastread.tempfile, name), name
    assert aiofastread.threadpool.open is aiofastread.open
    assert aiofastread.threadpool.sync_open is open
    for name, value in vars(aiofiles.threadpool).items():
        if name.startswith("Async"):
            assert shape(getattr(aiofastread.threadpool, name)) == shape(value), name
    assert shape(aiofastread.open) == shape(aiofiles.open)
    for name in aiofiles.tempfile.__all__:
        assert shape(getattr(aiofastread.tempfile, name)) == shape(
            getattr(aiofiles.tempfile, name)
        ), name


def shape(fn: Any) -> list[tuple[str, Any, Any]]:
    """A signature without annotations: names, kinds and defaults."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("entity", [int, [1, 2, 3], lambda x: x, object()])
def test_wrap_rejects_unknown_objects(entity: Any) -> None:
    with pytest.raises(TypeError, match="Unsupported io type"):
        aiofastread.threadpool.wrap(entity)


@pytest.mark.parametrize(
    ("make", "cls"),
    [
        (lambda: io.StringIO("a\nb\n"), text.AsyncTextIOWrapper),
        (lambda: io.BytesIO(b"a\nb\n"), binary.AsyncBufferedIOBase),
    ],
)
async def test_wrap_delegates_to_the_pool(make: Any, cls: type) -> None:
    obj = make()
    f = aiofastread.threadpool.wrap(obj)
    assert type(f) is cls
    assert isinstance(f._runner, PoolRunner)
    before = aiofastread.statistics().pool_submissions
    assert [line async for line in f] == obj.getvalue().splitlines(keepends=True)
    assert aiofastread.statistics().pool_submissions > before
    await f.close()
    assert f.closed


async def test_wrap_open_file_objects(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"xyz")
    for mode, buffering, cls in [
        ("rb", -1, binary.AsyncBufferedReader),
        ("r+b", -1, binary.AsyncBufferedReader),
        ("ab", -1, binary.AsyncBufferedIOBase),
        ("rb", 0, binary.AsyncFileIO),
        ("r", -1, text.AsyncTextIOWrapper),
    ]:
        f = aiofastread.threadpool.wrap(open(path, mode, buffering))  # noqa: SIM115
        assert type(f) is cls
        await f.close()


async def test_readme_mocking_pattern() -> None:
    """aiofiles' README: patch sync_open, register the mock type with wrap."""
    aiofastread.threadpool.wrap.register(mock.MagicMock)(
        lambda *args, **kwargs: aiofastread.threadpool.AsyncBufferedIOBase(*args, **kwargs)
    )
    mock_file = mock.MagicMock()
    with mock.patch("aiofastread.threadpool.sync_open", return_value=mock_file) as mock_open:
        async with aiofastread.open("filename", "w") as f:
            await f.write("data")
    mock_file.write.assert_called_once_with("data")
    mock_open.assert_called_once_with(
        "filename",
        mode="w",
        buffering=-1,
        encoding=None,
        errors=None,
        newline=None,
        closefd=True,
        opener=None,
    )


async def test_patched_opener_returning_a_real_file(tmp_path: Path) -> None:
    """A patched opener that returns a real file still gets the fast path."""
    path = tmp_path / "f.txt"
    path.write_text("hello\n")
    calls = []

    def opener(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return open(*args, **kwargs)

    with mock.patch.object(aiofastread.threadpool, "sync_open", opener):
        async with aiofastread.open(path) as f:
            assert await f.read() == "hello\n"
            assert isinstance(f._runner, Bridge)
    assert calls == [(path,)]


async def test_aiofiles_readme_patch_through_the_alias(tmp_path: Path) -> None:
    """``import aiofastread as aiofiles``, then aiofiles' README patch target.

    The modules are bound as tests/aiofiles_suite/alias.py binds them (the
    same objects), so the string target reaches our ``threadpool`` module.
    """
    path = tmp_path / "f.txt"
    path.write_text("real\n")
    alias = {"aiofiles": aiofastread, "aiofiles.threadpool": aiofastread.threadpool}
    with mock.patch.dict(sys.modules, alias):
        import aiofiles as aliased

        assert aliased is aiofastread
        with mock.patch("aiofiles.threadpool.sync_open", wraps=open) as patched:
            async with aliased.open(path) as f:
                assert await f.read() == "real\n"
    patched.assert_called_once()
    assert patched.call_args.args == (path,)


async def test_std_streams(capsys: pytest.CaptureFixture[str]) -> None:
    await aiofastread.stdout.write("hello")
    await aiofastread.stderr.write("world")
    out, err = capsys.readouterr()
    assert (out, err) == ("hello", "world")
    with pytest.raises(OSError):
        await aiofastread.stdin.read()
    assert aiofastread.stdout._file is sys.stdout  # looked up at each use


async def test_std_streams_bytes(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    await aiofastread.stdout_bytes.write(b"hello")
    await aiofastread.stderr_bytes.write(b"world")
    out, err = capsysbinary.readouterr()
    assert (out, err) == (b"hello", b"world")
    with pytest.raises(OSError):
        await aiofastread.stdin_bytes.read()
