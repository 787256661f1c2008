"""aiofiles' ``tempfile``: the same four factories, created in the pool.

TemporaryFile and NamedTemporaryFile are regular files, so they get what
``open()`` returns (CPython's io stack over our raw): reading back what was
just written is served from the page cache inline. A named file's deletion
stays with CPython's own wrapper: once we have closed the file, its close
runs in the pool (unlinking per ``delete``/``delete_on_close``), and at
context exit its ``__exit__`` (3.12's deferred delete).
"""

from __future__ import annotations

import functools
import io
import sys
import tempfile as _tempfile
from functools import singledispatch
from typing import TYPE_CHECKING, Any

from aiofastread import _pool
from aiofastread._bridge import Bridge
from aiofastread._open import (
    AiofilesContextManager,
    Opened,
    describe,
    is_plain_binary_read,
    run_undoing_late,
)
from aiofastread._writer import AsyncBufferedWriter
from aiofastread.tempfile.temptypes import AsyncSpooledTemporaryFile, AsyncTemporaryDirectory
from aiofastread.threadpool._make import make_async
from aiofastread.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader, AsyncFileIO
from aiofastread.threadpool.text import AsyncTextIOWrapper

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    from collections.abc import Callable
    from types import TracebackType

    from aiofastread.threadpool._base import AsyncBase

__all__ = ["NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile"]


class AiofilesContextManagerTempDir(AiofilesContextManager[AsyncTemporaryDirectory]):
    """``async with`` gives the directory's name, as the sync one does."""

    async def __aenter__(self) -> Any:
        self._obj = await self._coro
        return self._obj.name


class _TempFileContextManager(AiofilesContextManager[Any]):
    """Closes the file, then lets the named wrapper finish (deletion)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = None
        if obj is None:
            return
        try:
            await obj.close()
        finally:
            wrapper = getattr(obj, "_tempfile", None)
            if wrapper is not None:
                await _pool.default_pool().run(
                    wrapper.__exit__, exc_type, exc, tb, executor=obj._executor
                )


class _TakenOver:
    """Stands in for the file inside a NamedTemporaryFile wrapper once we
    have taken the file over: the wrapper's close and cleanup then only
    delete."""

    def close(self) -> None:
        pass

    def __exit__(self, *exc_info: object) -> None:
        return None


def TemporaryFile(
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: str | None = None,
    prefix: str | None = None,
    dir: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[Any]:
    """Async open an unnamed temporary file."""
    return _TempFileContextManager(
        _temporary_file(
            _tempfile.TemporaryFile,
            mode,
            buffering,
            encoding,
            newline,
            loop,
            executor,
            suffix=suffix,
            prefix=prefix,
            dir=dir,
        )
    )


if sys.version_info >= (3, 12):

    def NamedTemporaryFile(
        mode: str = "w+b",
        buffering: int = -1,
        encoding: str | None = None,
        newline: str | None = None,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | None = None,
        delete: bool = True,
        delete_on_close: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> AiofilesContextManager[Any]:
        """Async open a named temporary file."""
        return _TempFileContextManager(
            _temporary_file(
                _tempfile.NamedTemporaryFile,
                mode,
                buffering,
                encoding,
                newline,
                loop,
                executor,
                suffix=suffix,
                prefix=prefix,
                dir=dir,
                delete=delete,
                delete_on_close=delete_on_close,
            )
        )

else:

    def NamedTemporaryFile(
        mode: str = "w+b",
        buffering: int = -1,
        encoding: str | None = None,
        newline: str | None = None,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | None = None,
        delete: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> AiofilesContextManager[Any]:
        """Async open a named temporary file."""
        return _TempFileContextManager(
            _temporary_file(
                _tempfile.NamedTemporaryFile,
                mode,
                buffering,
                encoding,
                newline,
                loop,
                executor,
                suffix=suffix,
                prefix=prefix,
                dir=dir,
                delete=delete,
            )
        )


def SpooledTemporaryFile(
    max_size: int = 0,
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: str | None = None,
    prefix: str | None = None,
    dir: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[AsyncSpooledTemporaryFile]:
    """Async open a spooled temporary file (in memory until max_size)."""
    return AiofilesContextManager(
        _spooled_temporary_file(
            loop,
            executor,
            max_size=max_size,
            mode=mode,
            buffering=buffering,
            encoding=encoding,
            newline=newline,
            suffix=suffix,
            prefix=prefix,
            dir=dir,
        )
    )


def TemporaryDirectory(
    suffix: str | None = None,
    prefix: str | None = None,
    dir: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManagerTempDir:
    """Async create a temporary directory; ``async with`` gives its name."""
    return AiofilesContextManagerTempDir(
        _temporary_directory(suffix, prefix, dir, loop=loop, executor=executor)
    )


def _create_temp(
    factory: Callable[..., Any],
    mode: str,
    buffering: int,
    encoding: str | None,
    newline: str | None,
    kwargs: dict[str, Any],
) -> Opened:
    """Blocking (pool): create the temporary file and describe it."""
    f = factory(mode=mode, buffering=buffering, encoding=encoding, newline=newline, **kwargs)
    base = f.file if isinstance(f, _tempfile._TemporaryFileWrapper) else f
    try:
        opened = describe(base)
    except BaseException:
        f.close()
        raise
    opened.owner = f
    return opened


async def _temporary_file(
    factory: Callable[..., Any],
    mode: str,
    buffering: int,
    encoding: str | None,
    newline: str | None,
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
    **kwargs: Any,
) -> AsyncBase[Any]:
    pool = _pool.default_pool()
    opened: Opened = await run_undoing_late(
        pool,
        executor,
        lambda o: o.owner.close(),
        _create_temp,
        factory,
        mode,
        buffering,
        encoding,
        newline,
        kwargs,
    )
    f, base = opened.owner, opened.obj
    result: AsyncBase[Any]
    if not opened.bridgeable or is_plain_binary_read(mode, buffering):
        result = wrap(base, f, loop=loop, executor=executor)  # aiofiles' way
    else:
        result = make_async(
            opened,
            mode=mode,
            buffering=buffering,
            newline=newline,
            pool=pool,
            loop=loop,
            executor=executor,
        )
        if f is not base:
            # The wrapper keeps deleting (after our close), never closing.
            f.file = f._closer.file = _TakenOver()
            made: object = result
            if isinstance(made, AsyncBufferedWriter):  # "wb", "ab", "xb"
                made.after_close = f.close
            else:
                assert isinstance(result._runner, Bridge)
                result._runner.after_close = f.close
    if f is not base:
        result._tempfile = f  # type: ignore[attr-defined]
        # What aiofiles copies onto the object it returns.
        if sys.version_info >= (3, 12):
            result._closer = f._closer  # type: ignore[attr-defined]
        else:
            result.delete = f.delete  # type: ignore[attr-defined]
    return result


async def _spooled_temporary_file(
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
    **kwargs: Any,
) -> AsyncSpooledTemporaryFile:
    spooled = functools.partial(_tempfile.SpooledTemporaryFile, **kwargs)
    f = await _pool.default_pool().run(spooled, executor=executor)
    return AsyncSpooledTemporaryFile(f, loop=loop, executor=executor)


async def _temporary_directory(
    suffix: str | None,
    prefix: str | None,
    dir: str | None,
    *,
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
) -> AsyncTemporaryDirectory:
    pool = _pool.default_pool()
    d = await run_undoing_late(
        pool, executor, lambda d: d.cleanup(), _tempfile.TemporaryDirectory, suffix, prefix, dir
    )
    return AsyncTemporaryDirectory(d, loop=loop, executor=executor)


@singledispatch
def wrap(
    base_io_obj: Any,
    file: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """Wrap a temporary file object by the type of the io object under it."""
    raise TypeError(f"Unsupported IO type: {base_io_obj}")


@wrap.register(io.TextIOBase)
def _(base_io_obj: Any, file: Any, *, loop: Any = None, executor: Any = None) -> Any:
    return AsyncTextIOWrapper(file, loop=loop, executor=executor)


@wrap.register(io.BufferedWriter)
def _(base_io_obj: Any, file: Any, *, loop: Any = None, executor: Any = None) -> Any:
    return AsyncBufferedIOBase(file, loop=loop, executor=executor)


@wrap.register(io.BufferedReader)
@wrap.register(io.BufferedRandom)
def _(base_io_obj: Any, file: Any, *, loop: Any = None, executor: Any = None) -> Any:
    return AsyncBufferedReader(file, loop=loop, executor=executor)


@wrap.register(io.FileIO)
def _(base_io_obj: Any, file: Any, *, loop: Any = None, executor: Any = None) -> Any:
    return AsyncFileIO(file, loop=loop, executor=executor)
