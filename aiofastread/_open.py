"""``open()``: aiofiles' awaitable and ``async with``-able opener.

The open itself (and the fstat that follows) runs in the pool: a path
lookup can block on a cold directory or a network filesystem. CPython's
``io.open`` does the opening, so every mode, argument check, exception and
warning is CPython's own; we then take its FileIO and build our object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

from aiofastread import _pool
from aiofastread._file import AsyncBufferedReader
from aiofastread._handle import FileHandle, is_direct_io
from aiofastread._runtime import POLICY

T = TypeVar("T")


class AiofilesContextManager(Generic[T]):
    """Awaitable (``f = await open(...)``) and ``async with open(...) as f``."""

    __slots__ = ("_coro", "_obj")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._obj: T | None = None

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self._coro.__await__()

    async def __aenter__(self) -> T:
        self._obj = await self._coro
        return self._obj

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = None
        if obj is not None:
            await obj.close()  # type: ignore[attr-defined]


def open(  # noqa: A001 - the point of the library
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[str, int], int] | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[Any]:
    """Open a file; same arguments, results and exceptions as aiofiles.open."""
    return AiofilesContextManager(
        _open(file, mode, buffering, encoding, errors, newline, closefd, opener,
              loop=loop, executor=executor)
    )


class _Opened:
    """What the pool job hands back to the loop."""

    __slots__ = ("direct_io", "dev", "ino", "obj", "size")

    def __init__(self, obj: Any, dev: int, ino: int, size: int, direct_io: bool) -> None:
        self.obj, self.dev, self.ino, self.size, self.direct_io = obj, dev, ino, size, direct_io


def _open_blocking(
    file: Any, mode: str, buffering: int, encoding: str | None, errors: str | None,
    newline: str | None, closefd: bool, opener: Callable[[str, int], int] | None,
) -> _Opened:
    obj = io.open(file, mode, buffering, encoding, errors, newline, closefd, opener)  # noqa: UP020
    try:
        fd = obj.fileno()
        st = os.fstat(fd)
        return _Opened(obj, st.st_dev, st.st_ino, st.st_size, is_direct_io(fd))
    except BaseException:
        obj.close()
        raise


def _is_plain_binary_read(mode: str, buffering: int) -> bool:
    return set(mode) <= set("rb") and "b" in mode and buffering != 0


async def _open(
    file: Any, mode: str, buffering: int, encoding: str | None, errors: str | None,
    newline: str | None, closefd: bool, opener: Callable[[str, int], int] | None,
    *, loop: asyncio.AbstractEventLoop | None, executor: concurrent.futures.Executor | None,
) -> Any:
    pool = _pool.default_pool()
    opened: _Opened = await _open_shielded(
        pool, executor, file, mode, buffering, encoding, errors, newline, closefd, opener
    )
    inode = POLICY.state_for(opened.dev, opened.ino)
    if _is_plain_binary_read(mode, buffering):
        raw = opened.obj.detach()
        handle = FileHandle(raw, inode, size=opened.size, direct_io=opened.direct_io,
                            pool=pool, executor=executor)
        return AsyncBufferedReader(handle, name=raw.name, mode=raw.mode, loop=loop,
                                   executor=executor)
    from aiofastread._bridge import wrap_opened  # the CPython-io layer over our raw

    return wrap_opened(opened.obj, inode, size=opened.size, direct_io=opened.direct_io,
                       pool=pool, loop=loop, executor=executor)


async def _open_shielded(
    pool: _pool.MissPool, executor: concurrent.futures.Executor | None, *args: Any
) -> _Opened:
    """Open in the pool; if the awaiter is cancelled, close what was opened.

    The thread may finish the open after we were cancelled: its result must
    not leak a descriptor, so a done-callback closes it (in the pool).
    """
    task = asyncio.ensure_future(pool.run(_open_blocking, *args, executor=executor))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        def _close_late(t: asyncio.Future[_Opened]) -> None:
            if not t.cancelled() and t.exception() is None:
                pool.submit_detached(t.result().obj.close)
        task.add_done_callback(_close_late)
        raise
