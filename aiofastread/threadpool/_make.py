"""``make_async``: the async object for what ``open()`` (or ``tempfile``) opened.

One place picks it, on the loop, with no I/O: ``"rb"`` on a regular file
gets our hand-written reader (``_file``), ``"wb"``/``"ab"``/``"xb"`` our
writer (``_writer``); every other mode on a regular
file CPython's own io stack over our raw (``_bridge``), inside the
aiofiles class for the stack's top; anything else (pipes, ttys, what a
patched ``sync_open`` returned) aiofiles' ``wrap``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, cast

from aiofastread._bridge import BridgeRaw, bridge_opened
from aiofastread._file import AsyncBufferedReader as HandWrittenReader
from aiofastread._handle import FileHandle
from aiofastread._open import Opened, is_plain_binary_read
from aiofastread._runtime import POLICY
from aiofastread._writer import is_plain_binary_write, open_writer
from aiofastread.threadpool._wrap import wrap
from aiofastread.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader, AsyncFileIO
from aiofastread.threadpool.text import AsyncTextIOWrapper, DirectTextIOWrapper

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

    from aiofastread._pool import MissPool
    from aiofastread.threadpool._base import AsyncBase

__all__ = ["make_async"]

# The aiofiles class for the top of a bridged stack (what io.open would
# have returned there, with our raw in place of the FileIO).
_BRIDGED_CLASS: dict[type, type[AsyncBase[Any]]] = {
    io.TextIOWrapper: AsyncTextIOWrapper,
    io.BufferedReader: AsyncBufferedReader,
    io.BufferedRandom: AsyncBufferedReader,
    io.BufferedWriter: AsyncBufferedIOBase,
    BridgeRaw: AsyncFileIO,
}


def make_async(
    opened: Opened,
    *,
    mode: str,
    buffering: int,
    newline: str | None,
    pool: MissPool,
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
) -> Any:
    """The async object for what was opened (on the loop, no I/O)."""
    if not opened.bridgeable:
        return wrap(opened.obj, loop=loop, executor=executor)
    inode = POLICY.state_for(opened.dev, opened.ino)
    # A new open re-probes a COLD file at its first read (cachestat, no
    # I/O): the file may have warmed since, or the inode number may be a
    # new file's (the table is keyed by (dev, ino)).
    POLICY.probe_next(inode)
    if is_plain_binary_read(mode, buffering) and (
        opened.raw_for_reader or type(opened.obj) is io.BufferedReader
    ):
        raw = opened.obj if opened.raw_for_reader else cast(io.FileIO, opened.obj.detach())
        handle = FileHandle(
            raw, inode, size=opened.size, direct_io=opened.direct_io, pool=pool, executor=executor
        )
        reader = HandWrittenReader(
            handle, name=raw.name, mode=raw.mode, loop=loop, executor=executor
        )
        reader._pos = opened.pos  # an inherited fd may not be at offset 0
        return reader
    if is_plain_binary_write(mode, buffering) and type(opened.obj) is io.BufferedWriter:
        return open_writer(
            opened, inode, buffering=buffering, pool=pool, loop=loop, executor=executor
        )
    bridge = bridge_opened(
        opened.obj,
        inode,
        size=opened.size,
        direct_io=opened.direct_io,
        pool=pool,
        executor=executor,
        pos=opened.pos,
        buffering=buffering,
        newline=newline,
    )
    cls = DirectTextIOWrapper if bridge.direct is not None else _BRIDGED_CLASS[type(bridge.file)]
    return cls._over(bridge.file, bridge, loop, executor)
