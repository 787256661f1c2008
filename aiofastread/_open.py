"""Opening in the pool, under ``open()`` and ``tempfile``.

The open itself (and the fstat that follows) runs in the pool: a path
lookup can block on a cold directory or a network filesystem. CPython's
``io.open`` does the opening (the caller hands in ``threadpool.sync_open``,
which tests patch, as with aiofiles), so every mode, argument check,
exception and warning is CPython's own. ``describe`` notes what the fast
path needs of a regular file; ``threadpool._make`` then builds the async
object on the loop. ``AiofilesContextManager`` is what ``open()`` returns.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from aiofastread._fspolicy import learn_from
from aiofastread._handle import is_direct_io
from aiofastread._read import learn_readahead

if TYPE_CHECKING:
    import concurrent.futures
    from types import TracebackType

    from aiofastread import _pool

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


class Opened:
    """What the pool job hands back to the loop: the object, and for a
    regular file opened by io.open, what the fast path needs to know."""

    __slots__ = (
        "bridgeable",
        "dev",
        "direct_io",
        "ino",
        "obj",
        "owner",
        "pos",
        "raw_for_reader",
        "size",
    )

    def __init__(
        self,
        obj: Any,
        dev: int = 0,
        ino: int = 0,
        size: int = 0,
        direct_io: bool = False,
        pos: int = 0,
        *,
        bridgeable: bool = False,
        raw_for_reader: bool = False,
    ) -> None:
        self.obj, self.dev, self.ino, self.size = obj, dev, ino, size
        self.direct_io, self.pos, self.bridgeable = direct_io, pos, bridgeable
        # obj is the FileIO alone, for our reader: the BufferedReader
        # io.open would put over it was not built (_inline_open).
        self.raw_for_reader = raw_for_reader
        self.owner: Any = obj  # what to close if nobody takes it (a tempfile wrapper)


def _fileio_of(obj: Any) -> io.FileIO | None:
    """The FileIO under an io.open-made stack (exact C types), else None."""
    if type(obj) is io.TextIOWrapper:
        obj = obj.buffer
    if type(obj) in (io.BufferedReader, io.BufferedWriter, io.BufferedRandom):
        obj = obj.raw
    return obj if type(obj) is io.FileIO else None


def describe(obj: Any) -> Opened:
    """Blocking (pool): fstat what was opened. Only regular files take the
    fast path; pipes, ttys, devices and foreign objects are wrapped the
    aiofiles way (positional I/O needs a file with offsets and a size)."""
    raw = _fileio_of(obj)
    if raw is None:
        return Opened(obj)
    fd = raw.fileno()
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return Opened(obj)
    pos = os.lseek(fd, 0, os.SEEK_CUR)  # not 0 for an inherited fd, or "a"
    learn_readahead(st.st_dev)
    return Opened(obj, st.st_dev, st.st_ino, st.st_size, is_direct_io(fd), pos, bridgeable=True)


def open_blocking(
    sync_open: Callable[..., Any],
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[str, int], int] | None,
) -> Opened:
    # Called exactly as aiofiles calls it, so a mock asserting the call matches.
    obj = sync_open(
        file,
        mode=mode,
        buffering=buffering,
        encoding=encoding,
        errors=errors,
        newline=newline,
        closefd=closefd,
        opener=opener,
    )
    try:
        opened = describe(obj)
        if opened.bridgeable and opener is None:  # where the file lives, for inline opens
            learn_from(file, cast(io.FileIO, _fileio_of(obj)).fileno(), opened.dev)
        return opened
    except BaseException:
        obj.close()
        raise


def is_plain_binary_read(mode: str, buffering: int) -> bool:
    return set(mode) <= set("rb") and "b" in mode and buffering != 0


async def open_shielded(
    pool: _pool.MissPool, executor: concurrent.futures.Executor | None, *args: Any
) -> Opened:
    """Open in the pool; if the awaiter is cancelled, close what was opened."""
    opened: Opened = await run_undoing_late(
        pool, executor, lambda o: o.owner.close(), open_blocking, *args
    )
    return opened


async def run_undoing_late(
    pool: _pool.MissPool,
    executor: concurrent.futures.Executor | None,
    undo: Callable[[T], object],
    fn: Callable[..., T],
    *args: Any,
) -> T:
    """``fn(*args)`` in the pool; if the awaiter is cancelled, ``undo`` it.

    The thread may finish after we were cancelled: its result must not leak
    a descriptor (or a temporary file), so a done-callback undoes it, in the
    pool.
    """
    return await pool.run_undoable(fn, *args, undo=undo, executor=executor)
