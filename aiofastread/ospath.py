"""Async versions of the file functions of :mod:`os.path`, run in our pool.

Mirrors ``aiofiles.ospath`` (aiofiles 25.1): the same names, each an
``async def`` taking aiofiles' extra ``loop=`` and ``executor=`` keywords.
The blocking call runs in :mod:`aiofastread._pool`, never in the loop's
default executor and never on the loop thread.
"""

from __future__ import annotations

import functools
from os import path
from typing import TYPE_CHECKING, Any, TypeVar

from aiofastread import _pool

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    from collections.abc import Callable, Coroutine

__all__ = [
    "abspath",
    "exists",
    "getatime",
    "getctime",
    "getmtime",
    "getsize",
    "isdir",
    "isfile",
    "islink",
    "ismount",
    "samefile",
    "sameopenfile",
]

_T = TypeVar("_T")


def wrap(func: Callable[..., _T]) -> Callable[..., Coroutine[Any, Any, _T]]:
    """Return an ``async def`` that runs ``func(*args, **kwargs)`` in our pool.

    The coroutine also accepts aiofiles' keywords: ``executor`` replaces our
    threads for that call (the pool's in-flight limit still applies);
    ``loop`` is accepted for compatibility, the call always completes on the
    loop that awaits it.
    """

    @functools.wraps(func)
    async def run(
        *args: Any,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
        **kwargs: Any,
    ) -> _T:
        del loop  # the awaiting loop is the one that gets the result
        call = functools.partial(func, *args, **kwargs)
        return await _pool.run_blocking(call, executor=executor)

    return run


abspath = wrap(path.abspath)

getatime = wrap(path.getatime)
getctime = wrap(path.getctime)
getmtime = wrap(path.getmtime)
getsize = wrap(path.getsize)

exists = wrap(path.exists)

isdir = wrap(path.isdir)
isfile = wrap(path.isfile)
islink = wrap(path.islink)
ismount = wrap(path.ismount)

samefile = wrap(path.samefile)
sameopenfile = wrap(path.sameopenfile)
