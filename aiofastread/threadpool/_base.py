"""What every async file object shares (aiofiles' ``base.AsyncBase``).

Each object hands its file's calls to a *runner*. A file it did not open
(``threadpool.wrap``, std streams, spooled temporary files) has a
``PoolRunner``: every call runs in the pool, as in aiofiles. A regular file
``open()`` opened has a ``_bridge.Bridge``: each call of CPython's C io
stack runs on the loop, in a greenlet that awaits the pool only when the
call must block, and lines already in memory are cut without an await.
"""

from __future__ import annotations

import abc
import asyncio
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from aiofastread import _pool

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Awaitable, Callable

    from typing_extensions import Self

    from aiofastread._bridge.direct import DirectText
    from aiofastread._bridge.driver import FileLock
    from aiofastread._bridge.lines import LineBatch

T = TypeVar("T")
R = TypeVar("R")


class Runner(Protocol):
    """How an async file object's calls reach its sync file."""

    def run(self, fn: Callable[..., R], *args: Any) -> Awaitable[R]:
        """``fn(*args)``, a method of the file, where it may block."""
        ...

    def readline_now(self, size: Any) -> Any:
        """``file.readline(size)`` if it needs no await, else None."""
        ...

    def close(self) -> Awaitable[None]:
        """Close the file (and release what the runner holds for it)."""
        ...

    def leave_direct(self) -> None:
        """The file is about to be used from outside: no direct text path."""
        ...

    def sync_lines(self) -> None:
        """Bring the file up to date with the lines ``async for`` took and
        the direct path's reads."""
        ...

    def take_over(self) -> None:
        """The direct text path is about to seek or read: ``async for``'s
        lines decoded ahead stop."""
        ...

    @property
    def direct(self) -> DirectText | None:
        """The direct text seek/read path (``_bridge.direct``), if any."""
        ...

    @property
    def batch(self) -> LineBatch | None:
        """The lines decoded ahead for ``async for`` (``_bridge.lines``), if any."""
        ...

    @property
    def lock(self) -> FileLock:
        """The lock each operation on the file holds."""
        ...


class PoolRunner:
    """Every call in the pool: aiofiles' way, for files we did not open."""

    __slots__ = ("_executor", "_file_of")

    direct: None = None
    batch: None = None

    def __init__(
        self, file_of: Callable[[], Any], executor: concurrent.futures.Executor | None
    ) -> None:
        self._file_of = file_of  # the file, looked up at close (sys.stdout may change)
        self._executor = executor

    def run(self, fn: Callable[..., R], *args: Any) -> Awaitable[R]:
        return _pool.default_pool().run(fn, *args, executor=self._executor)

    def readline_now(self, size: Any) -> None:
        return None  # every line is a pool job

    def leave_direct(self) -> None:
        pass

    def sync_lines(self) -> None:
        pass

    def take_over(self) -> None:
        pass

    @property
    def lock(self) -> FileLock:
        raise AssertionError("only bridged files have a direct path")

    def close(self) -> Awaitable[None]:
        return self.run(self._file_of().close)


class AsyncBase(Generic[T], metaclass=abc.ABCMeta):
    """Base of the async file classes; ``async for`` yields lines of type T."""

    _file: Any

    def __init__(
        self,
        file: Any,
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
    ) -> None:  # aiofiles' signature (tests/test_threadpool.py compares them)
        self._file = file
        self._executor = executor
        self._ref_loop = loop
        self._runner: Runner = PoolRunner(lambda: file, executor)

    @classmethod
    def _over(
        cls,
        file: Any,
        runner: Runner,
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
    ) -> Self:
        """The object for ``file``, its calls run by ``runner`` (a Bridge)."""
        obj = cls(file, loop, executor)
        obj._runner = runner
        return obj

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return self._ref_loop or asyncio.get_running_loop()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        # The hot path of `async for`: from memory on the loop when it can.
        runner = self._runner
        line: T = runner.readline_now(-1)
        if line is None:
            line = await runner.run(self._file.readline)
        if line:
            return line
        raise StopAsyncIteration

    async def readline(self, size: Any = -1, /) -> T:
        line: T = await self._readline(size)
        return line

    def __repr__(self) -> str:
        return super().__repr__() + " wrapping " + repr(self._file)

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)``, a method of the file, through this object's runner."""
        return await self._runner.run(fn, *args)

    async def _readline(self, size: Any) -> Any:
        runner = self._runner
        line = runner.readline_now(size)
        if line is None:
            line = await runner.run(self._file.readline, size)
        return line

    async def _close(self) -> None:
        await self._runner.close()


class AsyncIndirectBase(AsyncBase[T]):
    """A wrapper whose file is looked up at each use (``sys.stdin``...)."""

    def __init__(
        self,
        name: str,
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
        indirect: Callable[[], Any],
    ) -> None:
        self._indirect = indirect
        self._name = name
        super().__init__(None, loop, executor)
        self._runner = PoolRunner(indirect, executor)

    @property
    def _file(self) -> Any:
        return self._indirect()

    @_file.setter
    def _file(self, value: Any) -> None:
        pass  # discard writes, as aiofiles does
