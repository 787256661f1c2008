"""What every async file object shares (aiofiles' ``base.AsyncBase``).

An object either *wraps* a sync file it did not open (``threadpool.wrap``,
std streams, spooled temporary files): every call runs in the pool, as in
aiofiles. Or it is *bridged* (what ``open()`` returns for regular files):
``_bridge`` runs each call of CPython's C io stack on the loop, in a
greenlet that awaits the pool only when the call must block.
"""

from __future__ import annotations

import abc
import asyncio
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aiofastread import _pool

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from typing_extensions import Self

    from aiofastread._bridge import Bridge

T = TypeVar("T")
R = TypeVar("R")


class AsyncBase(Generic[T], metaclass=abc.ABCMeta):
    """Base of the async file classes; ``async for`` yields lines of type T."""

    _file: Any
    _bridge: Bridge | None = None

    def __init__(
        self,
        file: Any,
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
    ) -> None:
        self._file = file
        self._executor = executor
        self._ref_loop = loop

    @classmethod
    def _bridged(
        cls,
        file: Any,
        bridge: Bridge,
        loop: asyncio.AbstractEventLoop | None,
        executor: concurrent.futures.Executor | None,
    ) -> Self:
        obj = cls(file, loop, executor)
        obj._bridge = bridge
        return obj

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return self._ref_loop or asyncio.get_running_loop()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        bridge = self._bridge
        if bridge is None:
            line: T = await self.readline()
        else:
            # The hot path of `async for`: from memory on the loop when it can.
            line = bridge.readline_now(-1)
            if line is None:
                line = await bridge.run(self._file.readline)
        if line:
            return line
        raise StopAsyncIteration

    async def readline(self, size: Any = -1, /) -> T:
        line: T = await self._readline(size)
        return line

    def __repr__(self) -> str:
        return super().__repr__() + " wrapping " + repr(self._file)

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)``, a method of the file: bridged, or in the pool."""
        bridge = self._bridge
        if bridge is not None:
            return await bridge.run(fn, *args)
        return await _pool.default_pool().run(fn, *args, executor=self._executor)

    async def _readline(self, size: Any) -> Any:
        bridge = self._bridge
        if bridge is not None:
            line = bridge.readline_now(size)
            if line is not None:
                return line
        return await self._run(self._file.readline, size)

    async def _close(self) -> None:
        bridge = self._bridge
        if bridge is not None:
            await bridge.close()
        else:
            await self._run(self._file.close)


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

    @property
    def _file(self) -> Any:
        return self._indirect()

    @_file.setter
    def _file(self, value: Any) -> None:
        pass  # discard writes, as aiofiles does
