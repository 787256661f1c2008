"""Whole-file reads: ``read_bytes(path)`` and ``read_text(path, ...)``.

Placeholder until the small-files work (issue 12) lands its inline open:
open through :func:`aiofastread.threadpool.open`, read, close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiofastread.threadpool import open as async_open

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath


async def read_bytes(path: StrOrBytesPath) -> bytes:
    """The whole content of ``path`` (``pathlib.Path.read_bytes``)."""
    async with async_open(path, "rb") as f:
        return await f.read()


async def read_text(
    path: StrOrBytesPath,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> str:
    """The whole content of ``path`` decoded (``pathlib.Path.read_text``)."""
    async with async_open(path, encoding=encoding, errors=errors, newline=newline) as f:
        return await f.read()
