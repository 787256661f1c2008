"""Async binary files: aiofiles' ``threadpool/binary.py`` classes.

Same names, same members, sync where aiofiles is sync (``_members``). Each
method is one call of the wrapped object's method: bridged on the loop for
files ``open()`` opened, in the pool for wrapped ones.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from aiofastread._file import AsyncBufferedReader as HandWrittenReader
from aiofastread._writer import AsyncBufferedWriter
from aiofastread.threadpool._base import AsyncBase, AsyncIndirectBase

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "AsyncBufferedIOBase",
    "AsyncBufferedReader",
    "AsyncFileIO",
    "AsyncIndirectBufferedIOBase",
    "AsyncIndirectBufferedReader",
    "AsyncIndirectFileIO",
]


class AsyncBufferedIOBase(AsyncBase[bytes]):
    """The asyncio version of io.BufferedWriter and BufferedIOBase."""

    _file: io.BufferedReader

    async def close(self) -> None:
        await self._close()

    async def flush(self) -> None:
        await self._run(self._file.flush)

    async def isatty(self) -> bool:
        return await self._run(self._file.isatty)

    async def read(self, size: int | None = -1, /) -> bytes:
        return await self._run(self._file.read, size)

    async def read1(self, size: int = -1, /) -> bytes:
        return await self._run(self._file.read1, size)

    async def readinto(self, buffer: WriteableBuffer, /) -> int:
        return await self._run(self._file.readinto, buffer)

    async def readline(self, size: int | None = -1, /) -> bytes:
        line: bytes = await self._readline(size)
        return line

    async def readlines(self, hint: int = -1, /) -> list[bytes]:
        return await self._run(self._file.readlines, hint)

    async def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return await self._run(self._file.seek, offset, whence)

    async def seekable(self) -> bool:
        return await self._run(self._file.seekable)

    async def tell(self) -> int:
        return await self._run(self._file.tell)

    async def truncate(self, size: int | None = None, /) -> int:
        return await self._run(self._file.truncate, size)

    async def writable(self) -> bool:
        return await self._run(self._file.writable)

    async def write(self, data: ReadableBuffer, /) -> int:
        return await self._run(self._file.write, data)

    async def writelines(self, lines: Iterable[ReadableBuffer], /) -> None:
        await self._run(self._file.writelines, lines)

    def detach(self) -> io.RawIOBase:
        return self._file.detach()

    def fileno(self) -> int:
        return self._file.fileno()

    def readable(self) -> bool:
        return self._file.readable()

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def raw(self) -> Any:
        return self._file.raw

    @property
    def name(self) -> Any:
        return self._file.name

    @property
    def mode(self) -> str:
        return self._file.mode


class AsyncBufferedReader(AsyncBufferedIOBase):
    """The asyncio version of io.BufferedReader and BufferedRandom."""

    async def peek(self, size: int = 0, /) -> bytes:
        return await self._run(self._file.peek, size)


class AsyncFileIO(AsyncBase[bytes]):
    """The asyncio version of io.FileIO (``buffering=0``)."""

    _file: io.FileIO

    async def close(self) -> None:
        await self._close()

    async def flush(self) -> None:
        await self._run(self._file.flush)

    async def isatty(self) -> bool:
        return await self._run(self._file.isatty)

    async def read(self, size: int = -1, /) -> bytes:
        data: bytes = await self._run(self._file.read, size)
        return data

    async def readall(self) -> bytes:
        return await self._run(self._file.readall)

    async def readinto(self, buffer: WriteableBuffer, /) -> int:
        count: int = await self._run(self._file.readinto, buffer)
        return count

    async def readline(self, size: int | None = -1, /) -> bytes:
        line: bytes = await self._readline(size)
        return line

    async def readlines(self, hint: int = -1, /) -> list[bytes]:
        return await self._run(self._file.readlines, hint)

    async def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return await self._run(self._file.seek, offset, whence)

    async def seekable(self) -> bool:
        return await self._run(self._file.seekable)

    async def tell(self) -> int:
        return await self._run(self._file.tell)

    async def truncate(self, size: int | None = None, /) -> int:
        return await self._run(self._file.truncate, size)

    async def writable(self) -> bool:
        return await self._run(self._file.writable)

    async def write(self, data: ReadableBuffer, /) -> int:
        count: int = await self._run(self._file.write, data)
        return count

    async def writelines(self, lines: Iterable[ReadableBuffer], /) -> None:
        await self._run(self._file.writelines, lines)

    def fileno(self) -> int:
        return self._file.fileno()

    def readable(self) -> bool:
        return self._file.readable()

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def name(self) -> Any:
        return self._file.name

    @property
    def mode(self) -> str:
        return self._file.mode


class AsyncIndirectBufferedIOBase(AsyncIndirectBase[bytes], AsyncBufferedIOBase):
    """AsyncBufferedIOBase over a stream looked up at each use."""


class AsyncIndirectBufferedReader(AsyncIndirectBase[bytes], AsyncBufferedReader):
    """AsyncBufferedReader over a stream looked up at each use."""


class AsyncIndirectFileIO(AsyncIndirectBase[bytes], AsyncFileIO):
    """AsyncFileIO over a stream looked up at each use."""


# open(path, "rb") returns aiofastread's own reader; isinstance checks
# written against aiofiles' class should still pass.
AsyncBufferedReader.register(HandWrittenReader)
# and "wb"/"ab"/"xb" the hand-written writer.
AsyncBufferedIOBase.register(AsyncBufferedWriter)
