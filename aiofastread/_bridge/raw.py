"""The positional raw stream under CPython's io layers.

``BridgeRaw`` looks like FileIO to the C Buffered/TextIOWrapper code above
it, but its position is a Python int and its reads come from a read-ahead
window: filled inline (preadv2 RWF_NOWAIT) when the page cache has the
bytes, else from the pool. Whatever must block runs through ``_block``,
which suspends the greenlet of the running operation (``driver.Bridge``)
or, outside one (finalizers, synchronous use of a detached stream), simply
makes the call, as FileIO would.
"""

from __future__ import annotations

import errno
import io
import operator
import os
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import greenlet

from aiofastread._checks import (
    c_integer,
    check_limit,
    fileio_readinto_error,
    lseek_restoring,
    resolve_seek,
    writable_view,
)
from aiofastread._handle import FileHandle
from aiofastread._policy import INLINE_MAX
from aiofastread._read import (
    pool_read,
    pread_full,
    pread_to_eof_or_error,
    record_pooled,
    try_inline,
)
from aiofastread._window import WINDOW_SIZE, Window

# Read-ahead on a miss, for sequential reads: one pool hop (~100 us) per
# 256 KiB keeps hop overhead below the device time of that much data, while
# a random reader (first read after a seek) only fetches WINDOW_SIZE (what
# is fetched when the page cache has the bytes).
POOL_WINDOW = 256 << 10
# The least a read after a seek fetches: a page costs the same syscall as
# a byte (a raw readline after a seek asks for one byte at a time).
RANDOM_MIN = 4 << 10


class BridgeRaw(io.RawIOBase):
    """A FileIO look-alike whose I/O goes through the inline path and the pool."""

    # A plain attribute, not a property: TextIOWrapper.readline asks the raw
    # whether it is closed on every call, and a property costs ~0.3 us a line.
    closed: bool = False

    def __init__(self, handle: FileHandle, pos: int, line_end: bytes | None, universal: bool):
        super().__init__()
        self._h = handle
        self._fio = handle.raw
        self._readable = self._fio.readable()
        self._writable = self._fio.writable()
        self._append = "a" in self._fio.mode
        # FileIO learns seekable() from its first lseek, even a failed one, and
        # keeps the answer (an append-mode open seeks to the end: True).
        self._seekable: bool | None = True if self._append else None
        self._pos = pos
        # The read-ahead window: the position is always inside it or at its end.
        self._win = Window(pos)
        self._line_end = line_end
        self._universal = universal
        # Line fast path cache: where the first line from _scan_pos ends
        # (file offset, -1 if not in the window).
        self._scan_pos = -1
        self._scan_end = -1
        self.fits_at = -1  # position at which line_fits() last said yes
        # The greenlet of the operation running now (set by Bridge.run).
        self.owner: greenlet.greenlet | None = None
        # _bridge/direct replays reads into the layers above from the window,
        # whose ``eof`` then stands for what the original read found.
        self.replaying = False
        # For _bridge/direct (a text file with a ratio to learn): where the
        # last chunk handed to readinto lies (what TextIOWrapper decodes,
        # through BufferedReader.read1 on its empty buffer), (offset, size),
        # None if unknown; ``chunk_check`` judges a chunk's bytes
        # (``chunk_ok``). Judged when asked, from the window: a check at
        # every readinto cost ~0.5 us a chunk (bench/lines.py).
        self.chunk_check: Callable[[bytes], bool] | None = None
        self.chunk: tuple[int, int] | None = (pos, 0)  # none yet: b2cratio 0

    # -- attributes (FileIO's) -------------------------------------------------

    @property
    def name(self) -> Any:
        return self._fio.name

    @name.setter
    def name(self, value: Any) -> None:
        self._fio.name = value

    @property
    def mode(self) -> str:
        return self._fio.mode

    @property
    def closefd(self) -> bool:
        return self._fio.closefd

    @property
    def _blksize(self) -> int:
        return self._fio._blksize  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        if self.closed:
            return "<aiofastread BridgeRaw [closed]>"
        return (
            f"<aiofastread BridgeRaw name={self.name!r} mode={self.mode!r} "
            f"closefd={self.closefd!r}>"
        )

    def fileno(self) -> int:
        self._check_closed()
        return self._h.fd

    def readable(self) -> bool:
        self._check_closed()
        return self._readable

    def writable(self) -> bool:
        self._check_closed()
        return self._writable

    def seekable(self) -> bool:
        self._check_closed()
        if self._seekable is None:
            self._seekable = True  # only regular files are bridged
        return self._seekable

    def isatty(self) -> bool:
        self._check_closed()
        return False  # a regular file never is

    # -- reading ---------------------------------------------------------------

    def readinto(self, buffer: Any) -> int:
        try:
            view = writable_view(buffer, "readinto")
        except TypeError:
            raise fileio_readinto_error(buffer) from None
        self._check_readable()
        start = self._pos
        n = self._read_into(view)
        if self.chunk_check is not None:
            self.chunk = (start, n)
        return n

    @property
    def chunk_ok(self) -> bool:
        """Whether the last chunk readinto handed out is known, still in the
        window, and passes ``chunk_check`` (False when unsure)."""
        chunk, check = self.chunk, self.chunk_check
        if chunk is None or check is None:
            return False
        start, n = chunk
        if not n:
            return True  # an empty chunk: b2cratio 0
        win = self._win
        off = start - win.start
        if off < 0 or off + n > len(win.data):
            return False
        return check(win.data[off : off + n])

    def read(self, size: int | None = -1) -> bytes:
        n = check_limit(size)
        self._check_readable()
        if n < 0:
            return self.readall()
        win = self._win
        off = self._pos - win.start
        if n <= len(win.data) - off:  # all in the window: one copy
            self._pos += n
            return win.data[off : off + n]
        buf = bytearray(n)
        del buf[self._read_into(memoryview(buf)) :]
        return bytes(buf)

    def readall(self) -> bytes:
        self._check_closed()
        if not self._readable:  # FileIO.readall just tries, and read(2) says:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        head = self._win.take(self._pos, -1)
        pos = self._pos + len(head)
        h = self._h
        left = max(h.size_hint - pos, 0)
        data, complete = b"", False
        if left < INLINE_MAX:
            # +1 sees EOF, or that the file grew, in the same call.
            data, complete = try_inline(h, pos, left + 1)
        error: OSError | None = None
        if not complete or len(data) > left:
            rest: bytes
            rest, error = self._block(pread_to_eof_or_error, h.fd, pos + len(data))
            if error is not None and (head or data):
                # Redo it as FileIO would have, from the position: the window
                # and the inline read must not decide where the error lands.
                head, data, pos = b"", b"", self._pos
                rest, error = self._block(pread_to_eof_or_error, h.fd, pos)
            data += rest
            record_pooled(h, pos + len(data), len(rest))
        pos += len(data)
        self._pos = pos
        self._set_window(pos, b"")
        if error is not None:
            # FileIO.readall reads in a loop and raises at the first failed
            # read: the bytes before it are lost, the position is past them.
            raise error
        return head + data

    def readline(self, size: int | None = -1) -> bytes:
        limit = check_limit(size)
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            self._check_readable()
            win = self._win
            if self._pos - win.start >= len(win.data):
                try:
                    self._refill(1)
                except OSError:
                    # The read-ahead failed: go on as FileIO's readline (IOBase's)
                    # does, one byte a read; if one fails, the bytes of the line
                    # read so far are lost and the position is past them.
                    tail = self._read_line_bytewise(-1 if limit < 0 else limit - got)
                    parts.append(tail)
                    break
                if not win.data:
                    break
            piece, ended = win.cut_line(self._pos, limit - got if limit >= 0 else -1)
            parts.append(piece)
            got += len(piece)
            self._pos += len(piece)
            if ended:
                break
        return b"".join(parts)

    def _read_into(self, view: memoryview) -> int:
        """Fill ``view`` from the position, short only at EOF, as FileIO
        does on a regular file: CPython's layers above then see the same
        chunks (decode errors, ``newlines`` and cookies depend on them)."""
        n = len(view)
        got = 0
        start = self._pos
        win = self._win
        while got < n:
            off = self._pos - win.start
            avail = len(win.data) - off
            if avail <= 0:
                if self.replaying and win.eof:
                    break
                try:
                    self._refill(n - got)
                except OSError:
                    # The window (or its read-ahead) failed: answer with what
                    # FileIO would have done from the start, one read of ``n``
                    # bytes at ``start``: its bytes (maybe short) or its error,
                    # with the position not moved (a read that fails moves
                    # nothing, so none of the bytes copied above count).
                    self._pos = start
                    return self._read_into_once(view)
                off, avail = 0, len(win.data)
                if not avail:
                    break
            k = min(avail, n - got)
            view[got : got + k] = win.view[off : off + k]
            got += k
            self._pos += k
        return got

    def _read_into_once(self, view: memoryview) -> int:
        """FileIO.readinto as it is: one read, no read-ahead (failure paths)."""
        h = self._h
        pos = self._pos
        data: bytes = self._block(os.pread, h.fd, len(view), pos)
        n = len(data)
        view[:n] = data
        self._pos = pos + n
        record_pooled(h, self._pos, n)
        self._drop_window()
        return n

    def _read_line_bytewise(self, limit: int) -> bytes:
        """The rest of a line, as IOBase.readline reads it from a FileIO
        (which has no peek): a byte a read, stopping at a newline, ``limit``
        bytes, EOF or the first error (raised, with the position past the
        bytes read before it)."""
        h = self._h
        line: bytes
        line, error = self._block(read_line_bytewise, h.fd, self._pos, limit)
        self._pos += len(line)
        record_pooled(h, self._pos, len(line))
        self._drop_window()
        if error is not None:
            raise error
        return line

    def _refill(self, want: int) -> None:
        """Make the window start at the position: inline if cached, else pool."""
        h = self._h
        pos = self._pos
        # A read that continues the last one fills the window ahead; one
        # after a seek reads what it wants, as the binary reader does (a
        # random 16 KiB text read filling 64 KiB cost ~10 us more).
        size = max(want, WINDOW_SIZE if pos == h.seq_end else RANDOM_MIN)
        data, complete = try_inline(h, pos, size)
        if not data and not complete:
            size = max(want, POOL_WINDOW if pos == h.seq_end else WINDOW_SIZE)
            data = self._pool_read(size, pos)
            complete = True
            # sequential: an inline read sets seq_end in try_inline.
            record_pooled(h, pos + len(data), len(data), sequential=True)
        self._set_window(pos, data, eof=complete and len(data) < size)

    # -- the line fast path (Bridge.readline_now) ----------------------------

    def line_fits(self, chunk: int) -> bool:
        """Whether a readline from here is served by the window alone.

        The layers above ask for ``chunk`` bytes at a time (TextIOWrapper's
        _CHUNK_SIZE); every request up to the one holding the line end must
        be filled whole from the window, as FileIO would fill it. A line
        that runs to EOF does not fit: at EOF the file must be asked again
        (a writer may have appended), which the greenlet path does.
        """
        pos = self._pos
        if self._scan_pos != pos:
            self._scan_pos = pos
            self._scan_end = self._first_line_end(pos)
        if self._scan_end < 0:
            return False
        need = -(-(self._scan_end - pos) // chunk) * chunk
        return pos + need <= self._win.start + len(self._win.data)

    def _first_line_end(self, pos: int) -> int:
        """File offset just past the first line end at or after ``pos``,
        including the byte a universal-newline decoder must see after a
        "\r"; -1 if the window has none."""
        assert self._line_end is not None
        win = self._win.data
        off = pos - self._win.start
        i = win.find(self._line_end, off)
        end = -1 if i < 0 else i + len(self._line_end)
        if self._universal:
            j = win.find(b"\r", off, i if i >= 0 else len(win) - 1)
            if j >= 0:
                end = j + 2
        return -1 if end < 0 else self._win.start + end

    def extend_inline(self) -> bool:
        """Append the next cached bytes to the window, without blocking.

        On the loop, for the line fast path; True if the window changed.
        """
        win = self._win
        if win.eof or not self._readable or self.closed:
            return False
        data, complete = try_inline(self._h, win.start + len(win.data), WINDOW_SIZE)
        if not data and not complete:
            return False
        keep = win.take(self._pos, -1)
        self._set_window(self._pos, keep + data, eof=complete and len(data) < WINDOW_SIZE)
        return True

    def _set_window(self, start: int, data: bytes, *, eof: bool = False) -> None:
        self._win.set(start, data, eof=eof)
        self._scan_pos = self.fits_at = -1

    def _drop_window(self) -> None:
        self._set_window(self._pos, b"")

    # -- writing ---------------------------------------------------------------

    def write(self, b: Any) -> int:
        try:
            data = bytes(memoryview(b))
        except TypeError:
            raise TypeError(f"a bytes-like object is required, not '{type(b).__name__}'") from None
        self._check_closed()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")
        if not data:
            return 0
        self._drop_window()
        h = self._h
        n: int
        if self._append:
            # O_APPEND writes land at the end wherever we are; the offset the
            # kernel leaves is the new position, as FileIO would report it.
            n, self._pos = self._block(append_write, h.fd, data)
        else:
            n = self._block(os.pwrite, h.fd, data, self._pos)
            self._pos += n
        h.size_hint = max(h.size_hint, self._pos)
        self._drop_window()
        return n

    def truncate(self, size: int | None = None) -> int:
        self._check_closed()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")
        target = self.tell() if size is None else operator.index(size)
        self._block(os.ftruncate, self._h.fd, target)
        self._drop_window()
        self._h.size_hint = target
        return target

    # -- position --------------------------------------------------------------

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        # FileIO's order: whence is converted (a C int), closed is checked,
        # then pos (a C long).
        whence = c_integer(whence, 32, "int")
        self._check_closed()
        offset = c_integer(pos, 64, "long")
        try:
            target, offset, whence = resolve_seek(self._pos, offset, whence)
            if target < 0:  # the kernel decides
                target = self._block(lseek_restoring, self._h.fd, offset, whence)
        except OSError:
            if self._seekable is None:
                self._seekable = False
            raise
        if self._seekable is None:
            self._seekable = True
        if not self._win.holds(target):
            self._set_window(target, b"")
        self._pos = target
        return target

    def flush(self) -> None:
        # IOBase.flush checks its own closed flag, which our close() never
        # sets; FileIO's message has the final dot.
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def tell(self) -> int:
        self._check_closed()
        if self._seekable is None:
            self._seekable = True
        return self._pos

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        if getattr(self, "_finalizing", False):
            self._dealloc_warn(self)
        self.closed = True  # shadows the class attribute from now on
        self._set_window(self._pos, b"")
        if self._in_owner():
            assert self.owner is not None
            try:
                self.owner.parent.switch((self._h.close, ()))
            except BaseException:
                self._h.start_close()  # still closes, once pool users are done
                raise
        else:
            self._h.close_blocking()

    def _dealloc_warn(self, source: object) -> None:
        # C Buffered/TextIOWrapper finalizers call this, as FileIO's does.
        if not self.closed and self.closefd:
            warnings.warn(f"unclosed file {source!r}", ResourceWarning, stacklevel=2, source=source)

    # -- helpers ---------------------------------------------------------------

    def _in_owner(self) -> bool:
        return self.owner is not None and greenlet.getcurrent() is self.owner

    def _block(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking call: from the pool if we can suspend, else here."""
        if self._in_owner():
            return self._await(self._h.run, fn, *args)
        return fn(*args)

    def _pool_read(self, size: int, pos: int) -> bytes:
        """``size`` bytes at ``pos`` (fewer only at EOF) read off the loop as
        the binary reader's misses are (``_read.pool_read``: the native miss
        pool when it can take them), or here if we cannot suspend."""
        if self._in_owner():
            data: bytes = self._await(pool_read, self._h, size, pos)
            return data
        data = self._block(pread_full, self._h.fd, size, pos)
        return data

    def _await(self, coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """Suspend this operation's greenlet until the driver has awaited
        ``coro_fn(*args)`` on the loop; its result, or its exception raised."""
        assert self.owner is not None
        return self.owner.parent.switch((coro_fn, args))

    def _check_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_closed()
        if not self._readable:
            raise io.UnsupportedOperation("File not open for reading")


def append_write(fd: int, data: bytes) -> tuple[int, int]:
    """Blocking (pool): an O_APPEND write and the offset it left."""
    n = os.write(fd, data)
    return n, os.lseek(fd, 0, os.SEEK_CUR)


def read_line_bytewise(fd: int, offset: int, limit: int) -> tuple[bytes, OSError | None]:
    """Blocking (pool): a line read a byte at a time from ``offset``, as
    IOBase.readline reads a FileIO; the error that stopped it, if any."""
    line = bytearray()
    while limit < 0 or len(line) < limit:
        try:
            byte = os.pread(fd, 1, offset + len(line))
        except OSError as exc:
            return bytes(line), exc
        if not byte:
            break
        line += byte
        if byte == b"\n":
            break
    return bytes(line), None
