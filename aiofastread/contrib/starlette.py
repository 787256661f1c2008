"""Starlette/FastAPI: ``FileResponse`` and ``StaticFiles`` whose file bodies
are read with aiofastread.

    from aiofastread.contrib.starlette import FileResponse, StaticFiles

Both are Starlette's own classes with one part replaced. Starlette reads a
body in 64 KiB chunks through ``anyio.open_file``: one hop through anyio's
thread limiter per chunk, cached or not. Here the chunks are read with
aiofastread: inline when the pages are cached, in aiofastread's pool
otherwise, with one yield to the loop per MiB (``_chunks``). Everything
else (stat, headers, ETag, Last-Modified, ranges and multipart ranges, 416,
If-Range, HEAD, content-disposition, pathsend, ``StaticFiles``' 304 and
404) is Starlette's code. Under trio the responses are Starlette's as is.

Needs Starlette >= 1.8, whose ``FileResponse`` opens its file in one place
(``_open_file``); this module refuses to import with an older one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import starlette.responses
import starlette.staticfiles
from starlette.types import Scope

from aiofastread.contrib._chunks import YieldingReader, reading

if not hasattr(starlette.responses.FileResponse, "_open_file"):  # pragma: no cover
    raise ImportError(
        "aiofastread.contrib.starlette needs starlette>=1.8 "
        "(FileResponse._open_file); pip install 'aiofastread[starlette]'"
    )

__all__ = ["FileResponse", "StaticFiles"]


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio (anyio's other backend): no asyncio loop
        return False
    return True


class FileResponse(starlette.responses.FileResponse):
    """``starlette.responses.FileResponse`` (same arguments and behaviour)
    whose body is read with aiofastread."""

    @contextlib.asynccontextmanager
    async def _open_file(self) -> AsyncIterator[YieldingReader]:  # type: ignore[override]
        # Starlette calls only read(n) and seek(offset) on what this yields.
        if not _on_asyncio():
            async with super()._open_file() as file:
                yield file  # type: ignore[misc]
            return
        async with reading(self.path) as file:
            yield file


_StarletteFileResponse = starlette.responses.FileResponse


class StaticFiles(starlette.staticfiles.StaticFiles):
    """``starlette.staticfiles.StaticFiles`` (same arguments and behaviour)
    that serves files with this module's ``FileResponse``.

    Its path lookup and stat already run in anyio's worker threads, off the
    loop; they are left as they are."""

    async def get_response(self, path: str, scope: Scope) -> starlette.responses.Response:
        response = await super().get_response(path, scope)
        # Starlette builds its FileResponse in two places (file_response and
        # the html-mode 404.html); ours adds no state to the instance, so the
        # response keeps every header and argument Starlette gave it.
        if type(response) is _StarletteFileResponse:
            response.__class__ = FileResponse
        return response
