"""Sanic: ``file`` and ``file_stream`` reading with aiofastread, and
``install()`` for Sanic's own helpers and ``app.static``.

    from aiofastread.contrib.sanic import file, file_stream   # per handler
    # or, once at start-up, for every file Sanic serves (app.static too):
    from aiofastread.contrib import sanic as afr_sanic
    afr_sanic.install()

Sanic opens files through one name: ``sanic.compat.open_async`` (aiofiles:
one thread hop per read, 4 KiB chunks in ``file_stream`` by default), which
``sanic.response.convenience`` imports and looks up at each call; stats go
through ``stat_async`` (``aiofiles.os.stat``: the loop's default executor).
``file`` and ``file_stream`` here are Sanic's own functions (same code,
signatures, headers, ranges and 304s) bound to this module's
``open_async`` and ``stat_async``: reads are served inline when the pages
are cached and by aiofastread's pool otherwise, with one yield to the loop
per MiB (``_chunks``); stats run in aiofastread's pool. ``install()`` puts
the same two functions into the modules Sanic reads them from, so
``sanic.response.file``/``file_stream`` and the static handler use them;
``uninstall()`` puts Sanic's back. Under trio (hypercorn) Sanic uses trio's
files and ``install()`` refuses.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable
from typing import Any, TypeVar

import sanic.compat
import sanic.mixins.static
import sanic.response.convenience as _convenience

import aiofastread
import aiofastread.os
from aiofastread.contrib._chunks import reading

__all__ = ["file", "file_stream", "install", "installed", "open_async", "stat_async", "uninstall"]

stat_async = aiofastread.os.stat


async def open_async(file: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> Any:
    """``sanic.compat.open_async``: ``async with await open_async(path, "rb")``."""
    if mode == "rb" and not kwargs:
        return reading(file)
    return aiofastread.open(file, mode, **kwargs)


_F = TypeVar("_F", bound=Callable[..., Any])


def _reading_with_aiofastread(func: _F) -> _F:
    """Sanic's ``func``, with ``open_async`` and ``stat_async`` looked up
    in a copy of its module's globals that holds ours."""
    namespace = dict(func.__globals__, open_async=open_async, stat_async=stat_async)
    clone = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__kwdefaults__ = func.__kwdefaults__
    functools.update_wrapper(clone, func)
    clone.__module__ = __name__
    return clone  # type: ignore[return-value]


file = _reading_with_aiofastread(_convenience.file)
file_stream = _reading_with_aiofastread(_convenience.file_stream)

# Where Sanic looks the two names up at call time (the modules imported them
# from sanic.compat with ``from ... import``).
_PATCHED = (
    (_convenience, "open_async"),
    (_convenience, "stat_async"),
    (sanic.mixins.static, "stat_async"),
    (sanic.compat, "open_async"),
    (sanic.compat, "stat_async"),
)
_ours = {"open_async": open_async, "stat_async": stat_async}
_saved: dict[tuple[types.ModuleType, str], Any] = {}


def install() -> None:
    """Make Sanic's own ``file``, ``file_stream`` and static handler open
    and stat files with aiofastread. Idempotent; ``uninstall()`` undoes it."""
    if sanic.compat.use_trio:
        raise RuntimeError("Sanic runs on trio here; aiofastread needs asyncio")
    for module, name in _PATCHED:
        _saved.setdefault((module, name), getattr(module, name))
        setattr(module, name, _ours[name])


def uninstall() -> None:
    """Put back what ``install()`` replaced."""
    while _saved:
        (module, name), original = _saved.popitem()
        setattr(module, name, original)


def installed() -> bool:
    return bool(_saved)
