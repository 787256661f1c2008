"""``Done``: the completed awaitable ``AsyncBufferedWriter.write`` returns
when the bytes were buffered at the call.

``await`` of a done ``asyncio.Future`` runs in C (the Future's own
iterator answers at once): ~20-30 ns less than creating and awaiting a
coroutine, on a write that costs ~0.2 us in all (bench/writes.py,
docs/performance.md). The subclass behaves as a finished coroutine
everywhere asyncio takes one, so that code written for aiofiles, whose
``write`` is a coroutine function, keeps working:

- it is registered as a ``collections.abc.Coroutine`` and has ``send``,
  ``throw`` and ``close``: ``asyncio.create_task(f.write(b))`` and
  ``asyncio.run`` take it, and ``send(None)`` returns its value at once;
- ``_asyncio_future_blocking`` is ``None``, so ``asyncio.isfuture`` says no:
  ``ensure_future``/``wait_for``/``gather`` wrap it in a task of the running
  loop instead of checking which loop the future was made on.
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, NoReturn


class Done(asyncio.Future[int]):
    """A finished write: ``await`` gives its byte count."""

    _asyncio_future_blocking = None  # type: ignore[assignment]

    @classmethod
    def of(cls, n: int) -> Done | Coroutine[Any, Any, int]:
        """``n`` as a completed awaitable (a coroutine outside a loop: a
        Future needs one)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return _already(n)
        done = cls(loop=loop)
        done.set_result(n)
        return done

    # -- the coroutine protocol, as a coroutine that has returned -----------

    def send(self, value: object) -> NoReturn:
        raise StopIteration(self.result())

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> NoReturn:
        # A task cancelled before its first step throws in here: raise it.
        exc = val if val is not None else typ() if isinstance(typ, type) else typ
        raise exc.with_traceback(tb) if tb is not None else exc

    def close(self) -> None:
        pass


collections.abc.Coroutine.register(Done)


async def _already(n: int) -> int:
    return n
