"""Async versions of the file functions of :mod:`os`, run in our pool.

Mirrors ``aiofiles.os`` (aiofiles 25.1): the same names under the same
platform conditions, each an ``async def`` taking aiofiles' extra ``loop=``
and ``executor=`` keywords, plus ``lstat``, ``chmod``, ``fsync``,
``fdatasync`` (where :mod:`os` has it) and ``utime``. The blocking call runs
in :mod:`aiofastread._pool`, never in the loop's default executor.

Also async iterators that advance only in the pool, a batch per hop
(``aiofastread._iterate``):

- ``scandir(path)`` is both: ``await scandir(path)`` gives the stdlib
  iterator, as aiofiles' does (iterating that one reads the directory on
  the calling thread), while ``async for entry in scandir(path)`` (or
  ``async with scandir(path) as it: async for entry in it``) reads it in the
  pool. ``DirEntry.is_dir()`` and friends answer from the listing on
  filesystems that report entry types (ext4, xfs, btrfs, tmpfs);
  ``DirEntry.stat()`` is a system call on the calling thread.
- ``walk(top, ...)``: :func:`os.walk`, one directory per hop top-down (so
  pruning ``dirnames`` works), batched bottom-up; ``onerror`` runs on a pool
  thread.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from aiofastread import _iterate, _pool
from aiofastread import ospath as path
from aiofastread.ospath import wrap

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    from types import TracebackType

    from _typeshed import GenericPath

__all__ = [
    "access",
    "chmod",
    "fsync",
    "getcwd",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "path",
    "readlink",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "scandir",
    "stat",
    "symlink",
    "unlink",
    "utime",
    "walk",
    "wrap",
]

access = wrap(os.access)

chmod = wrap(os.chmod)

fsync = wrap(os.fsync)

getcwd = wrap(os.getcwd)

listdir = wrap(os.listdir)
lstat = wrap(os.lstat)

makedirs = wrap(os.makedirs)
mkdir = wrap(os.mkdir)

readlink = wrap(os.readlink)
remove = wrap(os.remove)
removedirs = wrap(os.removedirs)
rename = wrap(os.rename)
renames = wrap(os.renames)
replace = wrap(os.replace)
rmdir = wrap(os.rmdir)

stat = wrap(os.stat)
symlink = wrap(os.symlink)

unlink = wrap(os.unlink)
utime = wrap(os.utime)


class Scandir(Coroutine[Any, Any, "os._ScandirIterator[Any]"]):
    """What :func:`scandir` returns: a coroutine and an async iterable.

    Awaited (or given to ``create_task``, as aiofiles' coroutine can be), it
    gives the stdlib iterator, made in the pool. Iterated with ``async for``,
    it reads the directory in the pool; ``async with`` closes the directory
    early when the block is left. Nothing runs until one of the two starts.
    """

    __slots__ = ("_args", "_awaiting", "_entries", "_executor", "_kwargs")

    def __init__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        executor: concurrent.futures.Executor | None,
    ) -> None:
        self._args, self._kwargs, self._executor = args, kwargs, executor
        self._awaiting: Coroutine[Any, Any, os._ScandirIterator[Any]] | None = None
        self._entries: AsyncGenerator[os.DirEntry[Any], None] | None = None

    def _open(self) -> os._ScandirIterator[Any]:
        return os.scandir(*self._args, **self._kwargs)

    def _coroutine(self) -> Coroutine[Any, Any, os._ScandirIterator[Any]]:
        if self._awaiting is None:
            self._awaiting = _pool.run_blocking(self._open, executor=self._executor)
        return self._awaiting

    def send(self, value: Any) -> Any:
        return self._coroutine().send(value)

    def throw(self, *args: Any) -> Any:
        return self._coroutine().throw(*args)

    def close(self) -> None:
        if self._awaiting is not None:
            self._awaiting.close()

    def __await__(self) -> Generator[Any, None, os._ScandirIterator[Any]]:
        return self._coroutine().__await__()

    def __aiter__(self) -> AsyncGenerator[os.DirEntry[Any], None]:
        if self._entries is None:
            # Not self._open: the generator must not hold this object, which
            # holds it (a cycle would keep the directory open until the gc).
            opener = functools.partial(os.scandir, *self._args, **self._kwargs)
            self._entries = _iterate.in_pool(opener)
        return self._entries

    async def __aenter__(self) -> Scandir:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._entries is not None:
            await self._entries.aclose()


@functools.wraps(os.scandir, assigned=("__name__", "__qualname__"))
def scandir(
    *args: Any,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
    **kwargs: Any,
) -> Scandir:
    """:func:`os.scandir`, awaitable (the stdlib iterator) or async-iterable
    (its entries, read in the pool); ``executor`` applies to ``await``."""
    del loop  # as in wrap: the awaiting loop gets the result
    return Scandir(args, kwargs, executor)


@functools.wraps(os.walk, assigned=("__name__", "__qualname__"))
def walk(
    top: GenericPath[Any],
    topdown: bool = True,
    onerror: Callable[[OSError], object] | None = None,
    followlinks: bool = False,
) -> AsyncGenerator[tuple[Any, list[Any], list[Any]], None]:
    """:func:`os.walk` as an async iterator, advanced in the pool."""
    # Top-down the caller may prune dirnames before the walk goes on: one
    # directory per hop. Bottom-up nothing steers it: batches.
    batch = 1 if topdown else _iterate.DEFAULT_BATCH
    return _iterate.in_pool(os.walk(top, topdown, onerror, followlinks), batch)


if hasattr(os, "link"):
    __all__ += ["link"]
    link = wrap(os.link)
if hasattr(os, "sendfile"):
    __all__ += ["sendfile"]
    sendfile = wrap(os.sendfile)
if hasattr(os, "statvfs"):
    __all__ += ["statvfs"]
    statvfs = wrap(os.statvfs)
if hasattr(os, "fdatasync"):
    __all__ += ["fdatasync"]
    fdatasync = wrap(os.fdatasync)
