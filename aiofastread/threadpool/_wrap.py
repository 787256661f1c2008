"""aiofiles' ``threadpool.wrap``: an async object over a sync file we did not open.

A singledispatch function users may register their own types with; every
call of the object it returns runs in the pool (``_base.PoolRunner``).
"""

from __future__ import annotations

import io
from functools import singledispatch
from typing import TYPE_CHECKING, Any

from aiofastread.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader, AsyncFileIO
from aiofastread.threadpool.text import AsyncTextIOWrapper

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

__all__ = ["wrap"]


@singledispatch
def wrap(
    file: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """Wrap an open sync file object; its calls then run in the pool."""
    raise TypeError(f"Unsupported io type: {file}.")


@wrap.register(io.TextIOBase)
def _(
    file: io.TextIOBase,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AsyncTextIOWrapper:
    return AsyncTextIOWrapper(file, loop=loop, executor=executor)


@wrap.register(io.BufferedWriter)
@wrap.register(io.BufferedIOBase)
def _(
    file: io.BufferedIOBase,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AsyncBufferedIOBase:
    return AsyncBufferedIOBase(file, loop=loop, executor=executor)


@wrap.register(io.BufferedReader)
@wrap.register(io.BufferedRandom)
def _(
    file: io.BufferedReader,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AsyncBufferedReader:
    return AsyncBufferedReader(file, loop=loop, executor=executor)


@wrap.register(io.FileIO)
def _(
    file: io.FileIO,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AsyncFileIO:
    return AsyncFileIO(file, loop=loop, executor=executor)
