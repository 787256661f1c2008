"""Async text files: aiofiles' ``threadpool/text.py`` classes.

For files ``open()`` opened, the wrapped object is CPython's own
io.TextIOWrapper over our bridged raw, so decoding, newline translation
and tell()/seek() cookies are CPython's; ``readline`` and ``async for`` are
served on the loop when the bytes of the line are in memory already.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from aiofastread import _native
from aiofastread._bridge.direct import takes_seek
from aiofastread.threadpool._base import AsyncBase, AsyncIndirectBase

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    from collections.abc import Iterable

    from aiofastread._bridge.direct import DirectText
    from aiofastread.threadpool._base import Runner

__all__ = ["AsyncTextIOWrapper", "AsyncTextIndirectIOWrapper", "DirectTextIOWrapper"]


class AsyncTextIOWrapper(AsyncBase[str]):
    """The asyncio version of io.TextIOWrapper."""

    _file: io.TextIOWrapper

    def __aiter__(self) -> Any:
        # Lines decoded ahead, one per __anext__ without a coroutine
        # (_bridge/lines), when the file has them; else this object.
        batch = self._runner.batch
        return self if batch is None else batch

    async def close(self) -> None:
        await self._close()

    async def flush(self) -> None:
        await self._run(self._file.flush)

    async def isatty(self) -> bool:
        return await self._run(self._file.isatty)

    async def read(self, size: int | None = -1, /) -> str:
        return await self._read_general(size)

    async def _read_general(
        self, size: int | None = -1, attempt: bytes | int | None = None, gen: int = -1, /
    ) -> str:
        """``read``; with the compiled module also what DirectTextIOWrapper's
        C ``read`` hands on (``attempt`` and ``gen``: DirectText.read's)."""
        runner = self._runner
        direct = runner.direct
        if direct is not None and type(size) is int and size > 0 and direct.known:
            lock = runner.lock
            if not lock.busy and not direct.raw.closed:
                runner.take_over()  # the `async for` batch steps aside
                lock.busy = True
                try:
                    text = await direct.read(size, attempt, gen)
                finally:
                    lock.release()
                if text is not None:
                    return text
        return await self._run(self._file.read, size)

    async def readable(self) -> bool:
        return await self._run(self._file.readable)

    async def readline(self, size: int = -1, /) -> str:
        line: str = await self._readline(size)
        return line

    async def readlines(self, hint: int = -1, /) -> list[str]:
        return await self._run(self._file.readlines, hint)

    async def seek(self, cookie: int, whence: int = io.SEEK_SET, /) -> int:
        return await self._seek_general(cookie, whence)

    async def _seek_general(self, cookie: int, whence: int = io.SEEK_SET, /) -> int:
        runner = self._runner
        direct = runner.direct
        if takes_seek(direct, cookie, whence) and not runner.lock.busy:
            runner.take_over()  # the `async for` batch steps aside
            direct.seek(cookie)  # type: ignore[union-attr]
            return cookie
        pos = await self._run(self._file.seek, cookie, whence)
        batch = runner.batch
        if batch is not None:
            batch.after_seek(cookie, whence)  # lines decoded ahead again, if clean
        return pos

    async def seekable(self) -> bool:
        return await self._run(self._file.seekable)

    async def tell(self) -> int:
        return await self._run(self._file.tell)

    async def truncate(self, pos: int | None = None, /) -> int:
        return await self._run(self._file.truncate, pos)

    async def write(self, s: str, /) -> int:
        return await self._run(self._file.write, s)

    async def writable(self) -> bool:
        return await self._run(self._file.writable)

    async def writelines(self, lines: Iterable[str], /) -> None:
        await self._run(self._file.writelines, lines)

    def detach(self) -> BinaryIO:
        self._runner.leave_direct()
        return self._file.detach()  # type: ignore[return-value]

    def fileno(self) -> int:
        return self._file.fileno()

    @property
    def buffer(self) -> BinaryIO:
        # Used directly, the buffer must be where CPython's would be; and
        # what is done with it is not seen here: no direct path after.
        self._runner.leave_direct()
        return cast(BinaryIO, self._file.buffer)

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def encoding(self) -> str:
        return self._file.encoding

    @property
    def errors(self) -> str | None:
        return self._file.errors

    @property
    def line_buffering(self) -> bool:
        return self._file.line_buffering

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        self._runner.sync_lines()  # the newline decoder has seen what we handed out
        return self._file.newlines

    @property
    def name(self) -> Any:
        return self._file.name

    @property
    def mode(self) -> str:
        return self._file.mode


# With the compiled module: TextFileCore (native/afr_text.c), whose C
# ``read`` and ``seek`` serve the direct path's common case (a whole chunk
# from the page cache) and hand the rest to ``_read_general``/``_seek_general``.
if TYPE_CHECKING:

    class _TextFileCore:
        """DirectTextIOWrapper's C base, as the type checker sees it: nothing."""
else:
    _TextFileCore = _native.hit_base("TextFileCore", ())[0]


class DirectTextIOWrapper(_TextFileCore, AsyncTextIOWrapper):
    """AsyncTextIOWrapper for a file the direct text path serves
    (``_bridge.direct``): what ``open()`` returns for it. Without the
    compiled module it is AsyncTextIOWrapper itself."""

    _direct: DirectText
    # The C read's fallback for calls other than read(size): AsyncTextIOWrapper's
    # own, with its defaults and its TypeErrors.
    _read_any = AsyncTextIOWrapper.read

    @classmethod
    def _over(
        cls,
        file: Any,
        runner: Runner,
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
    ) -> DirectTextIOWrapper:
        obj = super()._over(file, runner, loop, executor)
        assert runner.direct is not None
        obj._direct = runner.direct
        return obj


# TextFileCore's read/seek as DirectTextIOWrapper's own: a call of an
# inherited C method is not specialised (_native.adopt_c_methods).
_native.adopt_c_methods(DirectTextIOWrapper)


class AsyncTextIndirectIOWrapper(AsyncIndirectBase[str], AsyncTextIOWrapper):
    """AsyncTextIOWrapper over a stream looked up at each use (sys.stdout...)."""
