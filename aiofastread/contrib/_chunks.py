"""The file side of a framework's file response: an aiofastread reader that
hands the loop back once per ``YIELD_EVERY`` bytes.

Reads of a cached file are served inline and a socket that takes every write
never suspends either, so a large warm file could otherwise go out in one
loop step. Shared by the Starlette and Sanic adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Final

import aiofastread
from aiofastread._file import AsyncBufferedReader

# Bytes a response reads before it yields to the loop once. Inline reads of a
# cached file plus loopback writes move 2-5 GB/s on this VM, so 1 MiB holds the
# loop 0.2-0.5 ms; the same budget as the aiohttp adapter's sendfile steps.
YIELD_EVERY: Final = 1 << 20


class YieldingReader:
    """``read``/``seek``/``close`` of an aiofastread ``"rb"`` file, with a
    ``sleep(0)`` after every ``YIELD_EVERY`` bytes read."""

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


@contextlib.asynccontextmanager
async def reading(path: str | os.PathLike[str]) -> AsyncIterator[YieldingReader]:
    """Open ``path`` for reading in aiofastread's pool; closed on exit, also
    when the response is cancelled (the close finishes in the pool)."""
    file = await aiofastread.open(path, "rb")
    try:
        yield YieldingReader(file)
    finally:
        await file.close()
