"""aiofiles' ``threadpool``: ``open``, ``wrap``, ``sync_open`` and the std streams.

``open`` is defined here, as in aiofiles, and reads this module's
``sync_open`` at each call, so ``mock.patch("aiofiles.threadpool.sync_open",
...)`` (aiofiles' README) works when aiofastread stands in for aiofiles;
what a patched opener returns is handed to ``wrap``, a singledispatch
function users may register with. The opening runs in the pool (``_open``);
``_make.make_async`` picks the object for what was opened.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from aiofastread import _pool
from aiofastread._file import AsyncBufferedReader as _HandWrittenReader
from aiofastread._inline_open import try_open
from aiofastread._open import AiofilesContextManager, open_shielded
from aiofastread.threadpool._base import AsyncBase as AsyncBase
from aiofastread.threadpool._make import make_async
from aiofastread.threadpool._wrap import wrap as wrap
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

    from _typeshed import (
        FileDescriptorOrPath,
        OpenBinaryMode,
        OpenBinaryModeReading,
        OpenBinaryModeUpdating,
        OpenBinaryModeWriting,
        OpenTextMode,
    )

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

_Opener = Callable[[str, int], int]


@overload
def open(
    file: FileDescriptorOrPath,
    mode: OpenTextMode = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[AsyncTextIOWrapper]: ...
@overload
def open(
    file: FileDescriptorOrPath,
    mode: OpenBinaryMode,
    buffering: Literal[0],
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[AsyncFileIO]: ...
@overload
def open(
    file: FileDescriptorOrPath,
    mode: OpenBinaryModeReading,
    buffering: Literal[-1, 1] = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[_HandWrittenReader]: ...
@overload
def open(
    file: FileDescriptorOrPath,
    mode: OpenBinaryModeUpdating,
    buffering: Literal[-1, 1] = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[AsyncBufferedReader]: ...
@overload
def open(
    file: FileDescriptorOrPath,
    mode: OpenBinaryModeWriting,
    buffering: Literal[-1, 1] = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[AsyncBufferedIOBase]: ...
@overload
def open(
    file: FileDescriptorOrPath,
    mode: str,
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AiofilesContextManager[Any]: ...


def open(
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
        _open(
            file,
            mode,
            buffering,
            encoding,
            errors,
            newline,
            closefd,
            opener,
            loop=loop,
            executor=executor,
        )
    )


async def _open(
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[str, int], int] | None,
    *,
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
) -> Any:
    pool = _pool.default_pool()
    args = (file, mode, buffering, encoding, errors, newline, closefd, opener)
    # sync_open: this module's global, read now (tests patch it). Read-only
    # opens of cached paths on local filesystems need no thread (_inline_open).
    opened = try_open(*args, sync_open)
    if opened is None:
        opened = await open_shielded(pool, executor, sync_open, *args)
    return make_async(
        opened,
        mode=mode,
        buffering=buffering,
        newline=newline,
        pool=pool,
        loop=loop,
        executor=executor,
    )


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
