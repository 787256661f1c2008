"""Async spooled temporary files and temporary directories (aiofiles' temptypes).

A SpooledTemporaryFile lives in memory until it rolls over to disk; until
then its calls are plain memory operations and run right here, after that
in the pool, exactly as aiofiles does it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiofastread import _pool
from aiofastread.threadpool._base import AsyncBase

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    import tempfile
    from collections.abc import Callable, Iterable

__all__ = ["AsyncSpooledTemporaryFile", "AsyncTemporaryDirectory"]


class AsyncSpooledTemporaryFile(AsyncBase[Any]):
    """Async wrapper for tempfile.SpooledTemporaryFile."""

    _file: tempfile.SpooledTemporaryFile[Any]

    async def _cond(self, fn: Callable[..., Any], *args: Any) -> Any:
        # In memory: no I/O, call it here. Rolled to disk: in the pool.
        if self._file._rolled:  # type: ignore[attr-defined]
            return await self._run(fn, *args)
        return fn(*args)

    async def _check(self) -> None:
        if self._file._rolled:  # type: ignore[attr-defined]
            return
        max_size = self._file._max_size  # type: ignore[attr-defined]
        if max_size and self._file.tell() > max_size:
            await self.rollover()

    async def __anext__(self) -> Any:
        # Lines as readline gives them: in memory, here (not the runner's pool).
        line = await self.readline()
        if line:
            return line
        raise StopAsyncIteration

    async def fileno(self) -> int:
        return await self._run(self._file.fileno)

    async def rollover(self) -> None:
        await self._run(self._file.rollover)

    async def close(self) -> None:
        await self._cond(self._file.close)

    async def flush(self) -> None:
        await self._cond(self._file.flush)

    async def isatty(self) -> bool:
        result: bool = await self._cond(self._file.isatty)
        return result

    async def read(self, *args: Any) -> Any:
        return await self._cond(self._file.read, *args)

    async def readline(self, *args: Any) -> Any:
        return await self._cond(self._file.readline, *args)

    async def readlines(self, *args: Any) -> Any:
        return await self._cond(self._file.readlines, *args)

    async def seek(self, *args: Any) -> int:
        result: int = await self._cond(self._file.seek, *args)
        return result

    async def tell(self) -> int:
        result: int = await self._cond(self._file.tell)
        return result

    async def truncate(self, *args: Any) -> Any:
        return await self._cond(self._file.truncate, *args)

    async def write(self, s: Any) -> int:
        if self._file._rolled:  # type: ignore[attr-defined]
            return await self._run(self._file.write, s)
        rv: int = self._file._file.write(s)
        await self._check()
        return rv

    async def writelines(self, iterable: Iterable[Any]) -> None:
        if self._file._rolled:  # type: ignore[attr-defined]
            await self._run(self._file.writelines, iterable)
            return
        self._file._file.writelines(iterable)
        await self._check()

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def encoding(self) -> str:
        return self._file.encoding

    @property
    def mode(self) -> str:
        return self._file.mode

    @property
    def name(self) -> Any:
        return self._file.name

    @property
    def newlines(self) -> Any:
        return self._file.newlines


class AsyncTemporaryDirectory:
    """Async wrapper for tempfile.TemporaryDirectory."""

    def __init__(
        self,
        file: tempfile.TemporaryDirectory[Any],
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
    ) -> None:
        self._file = file
        self._loop = loop
        self._executor = executor

    async def cleanup(self) -> None:
        await _pool.default_pool().run(self._file.cleanup, executor=self._executor)

    async def close(self) -> None:
        await self.cleanup()

    @property
    def name(self) -> Any:
        return self._file.name
