"""The bridge: CPython's own C io stack over a positional raw of ours.

``io.open`` builds TextIOWrapper -> Buffered{Reader,Writer,Random} -> FileIO.
We keep the C layers on top (so every semantic is CPython's own: decoding,
newline translation, buffering, tell cookies, exceptions) and replace the
FileIO with ``BridgeRaw``. Its position is a Python int; reads are served
from a read-ahead window filled with preadv2(RWF_NOWAIT) on the loop when
the page cache has the bytes. Whatever must block (a miss, a write,
SEEK_END, truncate, close) *suspends the greenlet* the C call runs in:
``Bridge.run`` awaits the pool for it and switches back in with the result
(or throws the exception in). The C code never knows it was paused.

Called outside its operation's greenlet (a finalizer flushing at garbage
collection, or a user driving a detached stream synchronously) the raw does
the blocking call directly, as FileIO would.

raw.py holds BridgeRaw, driver.py the greenlet driver (Bridge), and this
module rebuilds the stack (bridge_opened). The Bridge is the runner of the
async object ``threadpool._make`` builds over the stack's top.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from aiofastread._bridge.direct import direct_for
from aiofastread._bridge.driver import Bridge
from aiofastread._bridge.lines import batch_for
from aiofastread._bridge.raw import BridgeRaw
from aiofastread._handle import FileHandle
from aiofastread._text import is_universal, line_terminator

if TYPE_CHECKING:
    import concurrent.futures

    from aiofastread._policy import InodeState
    from aiofastread._pool import MissPool

__all__ = ["Bridge", "BridgeRaw", "bridge_opened"]


def bridge_opened(
    obj: Any,
    inode: InodeState,
    *,
    size: int,
    direct_io: bool,
    pool: MissPool,
    executor: concurrent.futures.Executor | None,
    pos: int = 0,
    buffering: int = -1,
    newline: str | None = None,
) -> Bridge:
    """Rebuild what ``io.open`` returned over a BridgeRaw; its driver.

    ``obj`` is io.open's object for a regular file (TextIOWrapper, Buffered*
    or FileIO); ``pos`` its descriptor's offset; ``buffering`` and
    ``newline`` the arguments it was opened with (neither is readable back
    from the object). The Bridge's ``file`` is the rebuilt stack's top: a
    TextIOWrapper, a Buffered{Reader,Writer,Random} or the BridgeRaw itself.
    """
    text = obj if isinstance(obj, io.TextIOWrapper) else None
    buffered = text.buffer if text is not None else obj
    fio: io.FileIO = buffered if isinstance(buffered, io.FileIO) else buffered.raw
    if text is not None:
        settings = (text.encoding, text.errors, text.line_buffering, text.write_through)
        mode = text.mode
        text.detach()
    if buffered is not fio:
        buffered.detach()
    try:
        handle = FileHandle(
            fio, inode, size=size, direct_io=direct_io, pool=pool, executor=executor
        )
        read_only = fio.readable() and not fio.writable()
        line_end = line_terminator(settings[0], settings[1], newline) if text is not None else b"\n"
        # Lines on the loop: text (see _text), or our own raw readline; a
        # binary Buffered layer would read in buffer-size chunks instead.
        lines = read_only and line_end is not None and (text is not None or buffered is fio)
        raw = BridgeRaw(
            handle, pos, line_end if lines else None, text is not None and is_universal(newline)
        )
        if buffered is fio:
            top: Any = raw
        else:
            # io.open's rule: an explicit size, else the raw's _blksize.
            buffer_size = buffering if buffering > 1 else fio._blksize  # type: ignore[attr-defined]
            top = type(buffered)(raw, buffer_size)
            if text is not None:
                encoding, errors, line_buffering, write_through = settings
                top = io.TextIOWrapper(
                    top, encoding, errors, newline, line_buffering, write_through
                )
                top.mode = mode
    except BaseException:
        pool.submit_detached(fio.close)
        raise
    bridge = Bridge(top, raw, lines=lines, direct=direct_for(top, raw, newline))
    bridge.batch = batch_for(bridge, newline)
    return bridge
