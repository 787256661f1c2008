"""aiofiles' ``threadpool``: ``open``, ``wrap``, ``sync_open`` and the std streams.

``open`` is aiofastread's own. It looks ``sync_open`` up here at each call,
so ``mock.patch("aiofiles.threadpool.sync_open", ...)`` (aiofiles' README)
works when aiofastread stands in for aiofiles; what a patched opener returns
is handed to ``wrap``, a singledispatch function users may register with.
"""

from __future__ import annotations

import io
import sys
from functools import singledispatch
from typing import TYPE_CHECKING, Any

from aiofastread._open import open
from aiofastread.threadpool._base import AsyncBase as AsyncBase
from aiofastread.threadpool.binary import AsyncBufferedIOBase as AsyncBufferedIOBase
from aiofastread.threadpool.binary import AsyncBufferedReader as AsyncBufferedReader
from aiofastread.threadpool.binary import AsyncFileIO as AsyncFileIO
from aiofastread.threadpool.binary import (
    AsyncIndirectBufferedIOBase as AsyncIndirectBufferedIOBase,
)
from aiofastread.threadpool.binary import (
    AsyncIndirectBufferedReader as AsyncIndirectBufferedReader,
)
from aiofastread.threadpool.binary import AsyncIndirectFileIO as AsyncIndirectFileIO
from aiofastread.threadpool.text import AsyncTextIndirectIOWrapper as AsyncTextIndirectIOWrapper
from aiofastread.threadpool.text import AsyncTextIOWrapper as AsyncTextIOWrapper

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

sync_open = io.open  # the builtin open, as in aiofiles

__all__ = (
    "open",
    "stderr",
    "stderr_bytes",
    "stdin",
    "stdin_bytes",
    "stdout",
    "stdout_bytes",
)


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


# Looked up at each use, so redirecting sys.stdout (pytest's capsys) works.
stdin = AsyncTextIndirectIOWrapper("sys.stdin", None, None, indirect=lambda: sys.stdin)
stdout = AsyncTextIndirectIOWrapper("sys.stdout", None, None, indirect=lambda: sys.stdout)
stderr = AsyncTextIndirectIOWrapper("sys.stderr", None, None, indirect=lambda: sys.stderr)
stdin_bytes = AsyncIndirectBufferedIOBase(
    "sys.stdin.buffer", None, None, indirect=lambda: sys.stdin.buffer
)
stdout_bytes = AsyncIndirectBufferedIOBase(
    "sys.stdout.buffer", None, None, indirect=lambda: sys.stdout.buffer
)
stderr_bytes = AsyncIndirectBufferedIOBase(
    "sys.stderr.buffer", None, None, indirect=lambda: sys.stderr.buffer
)
