"""The file side of a framework's file response: an aiofastread reader that
hands the loop back once per ``YIELD_EVERY`` bytes.

Reads of a cached file are served inline and a socket that takes every write
never suspends either, so a large warm file could otherwise go out in one
loop step. Shared by the Starlette and Sanic adapters.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

import aiofastread
from aiofastread._file import AsyncBufferedReader
from aiofastread._open import AiofilesContextManager

# Bytes a response reads before it yields to the loop once. Inline reads of a
# cached file plus loopback writes move 2-5 GB/s on this VM, so 1 MiB holds the
# loop 0.2-0.5 ms; the same budget as the aiohttp adapter's sendfile steps.
YIELD_EVERY: Final = 1 << 20


class YieldingReader:
    """An aiofastread ``"rb"`` file whose ``read`` yields to the loop once
    per ``YIELD_EVERY`` bytes; every other attribute is the file's."""

    __slots__ = ("_budget", "_file")

    def __init__(self, file: AsyncBufferedReader) -> None:
        self._file = file
        self._budget = YIELD_EVERY

    async def read(self, size: int | None = -1) -> bytes:
        data = await self._file.read(size)
        self._budget -= len(data)
        if self._budget <= 0:
            self._budget = YIELD_EVERY
            await asyncio.sleep(0)
        return data

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await self._file.seek(offset, whence)

    async def close(self) -> None:
        """Closes the file; cancelling the wait does not stop the close."""
        await self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


async def _open(path: str | os.PathLike[str]) -> YieldingReader:
    return YieldingReader(await aiofastread.open(path, "rb"))


def reading(path: str | os.PathLike[str]) -> AiofilesContextManager[YieldingReader]:
    """Open ``path`` for reading in aiofastread's pool: awaitable, and an
    async context manager that closes the file, as ``aiofiles.open``."""
    return AiofilesContextManager(_open(path))
