"""``FileResponse``: aiohttp's, with a body that never waits for the disk on the loop.

    from aiofastread.contrib.aiohttp import FileResponse

    async def handler(request):
        return FileResponse(path)          # same arguments as aiohttp's

A subclass of ``aiohttp.web.FileResponse``: the path, stat and open in a
thread, conditional requests (If-Match, If-None-Match, If-Modified-Since,
If-Unmodified-Since, If-Range -> 200/206/304/412), ranges (416), the
``.gz``/``.br`` siblings for Accept-Encoding, headers and ``chunk_size`` are
all aiohttp's code. Only the part that sends the body is replaced:
aiohttp's calls ``loop.sendfile``, which reads a cold file on the loop
thread; this one calls ``aiofastread.sendfile`` (pages brought in by pool
threads, resident ranges sent with ``os.sendfile`` in bounded steps), and
where aiohttp reads in its executor (compression, ``AIOHTTP_NOSENDFILE``,
uvloop, which has no ``loop.sendfile``) this one reads through aiofastread:
inline when cached, in ``chunk_size`` pieces.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO, TYPE_CHECKING, Any

from aiohttp import web
from aiohttp import web_fileresponse as _aiohttp_files

from aiofastread import _sendfile

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.web_request import BaseRequest

__all__ = ["FileResponse"]


class FileResponse(web.FileResponse):
    """``aiohttp.web.FileResponse`` whose file side never blocks the loop."""

    _afr_stat: os.stat_result | None = None

    async def _prepare_open_file(
        self,
        request: BaseRequest,
        fobj: Any,
        st: os.stat_result,
        file_encoding: str | None,
    ) -> AbstractStreamWriter | None:
        self._afr_stat = st  # the fstat of fobj, for the reader over it
        return await super()._prepare_open_file(request, fobj, st, file_encoding)

    async def _sendfile(
        self, request: BaseRequest, fobj: IO[Any], offset: int, count: int
    ) -> AbstractStreamWriter:
        # What aiohttp's _sendfile does, in its order, with our file side.
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        # aiohttp < 3.10 has no _prepare_open_file: fstat of the open file
        # (no I/O on a local filesystem, DESIGN.md invariant 1).
        st = self._afr_stat or os.fstat(fobj.fileno())
        with _sendfile.borrowed_reader(fobj.fileno(), st, str(self._path)) as reader:
            if _aiohttp_files.NOSENDFILE or self.compression:
                return await self._write_chunks(writer, reader, offset, count)
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("Connection lost")
            await _sendfile.sendfile(transport, reader, offset, count)
        await web.StreamResponse.write_eof(self)
        return writer

    async def _write_chunks(
        self, writer: AbstractStreamWriter, reader: Any, offset: int, count: int
    ) -> AbstractStreamWriter:
        """aiohttp's _sendfile_fallback: chunk_size pieces through the
        writer (which compresses), read inline when cached; yields to the
        loop once per ``_sendfile.CHUNK`` bytes that never suspended."""
        await reader.seek(offset)
        budget = _sendfile.CHUNK
        while count > 0:
            chunk: bytes = await reader.read(min(self._chunk_size, count))
            if not chunk:
                break
            await writer.write(chunk)
            count -= len(chunk)
            budget -= len(chunk)
            if budget <= 0:
                await asyncio.sleep(0)
                budget = _sendfile.CHUNK
        await writer.drain()
        return writer
