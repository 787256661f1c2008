"""Text ``seek`` + ``read`` served by the binary core, as TextIOWrapper would.

A text read through the bridge runs CPython's TextIOWrapper in a greenlet:
seek, a chunk through BufferedReader.read1 into our raw, decode, snapshot
for tell(). For codecs where a byte is a character and decoding needs no
state, with no newline decoder (``newline`` "\\n", "\\r" or "\\r\\n": nothing
is translated or recorded), the result of ``seek(cookie)`` and ``read(n)`` is
plain arithmetic on byte offsets, so ``DirectText`` serves them itself: the
chunks TextIOWrapper would read, at the offsets it would read them, through
the binary reader's positional hit path (``AsyncBufferedReader.pread``: inline
when cached, the native pool otherwise, with its stream readahead), decoded
here. Nothing else is served here.

The TextIOWrapper is left behind meanwhile. Before any other operation
reaches it (``Bridge.run``, the line fast path, ``buffer``/``detach``),
``sync`` brings it to the state the same calls would have left: a seek to
the start of the last chunk, and a read of what was used of it, served from
the raw's window (no I/O). Its state then is exactly CPython's: decoded
characters left over, snapshot, buffer and raw positions. Why that replay
suffices (C ``textiowrapper_read_chunk``, 3.11-3.13): with a 1:1 codec the
bytes-to-characters ratio is 0 or 1, so a chunk is ``max(_CHUNK_SIZE, wanted)``
bytes, BufferedReader.read1 on an empty buffer is one raw read of that size
(nothing is kept in its buffer), and the state after a read depends only on
its last chunk. ``tests/test_text_direct.py`` checks all of it against
``io.open`` (hypothesis, random operation sequences).
"""

from __future__ import annotations

import codecs
import io
from typing import TYPE_CHECKING, Any, Final

from aiofastread import _native
from aiofastread._checks import TRUSTED_SEEK_MAX
from aiofastread._file import AsyncBufferedReader

if TYPE_CHECKING:
    from aiofastread._bridge.driver import FileLock
    from aiofastread._bridge.raw import BridgeRaw

# Codecs that decode every byte string to one character a byte, with no
# state. ASCII only while the bytes are ASCII (else the general path, which
# raises or replaces as CPython does); not with errors="ignore", whose
# dropped bytes would make a chunk's ratio exceed 1.
_ONE_TO_ONE: Final = frozenset({"iso8859-1", "ascii"})
_NO_NEWLINE_DECODER: Final = frozenset({"\n", "\r", "\r\n"})
# TextIOWrapper methods that leave its decoding state as it was: after one
# of them the direct path may go on reading where it was.
_STATE_KEEPING: Final = frozenset(
    {"tell", "seekable", "readable", "writable", "isatty", "fileno", "flush"}
)


class Counters:
    """Direct-path events that tests assert on (process-wide; an instance:
    setting a class attribute per read cost ~1 us here, 3.11)."""

    __slots__ = ("python_reads", "syncs")

    def __init__(self) -> None:
        self.python_reads = 0  # read() calls served by DirectText.read
        self.syncs = 0  # replays into the TextIOWrapper before another operation

    @property
    def c_reads(self) -> int:
        """read() calls served by the C hit (native/afr_text.c)."""
        return _native.text_reads()

    @property
    def reads(self) -> int:
        """read() calls served by the direct path, in Python or in C."""
        return self.python_reads + _native.text_reads()


COUNTERS: Final = Counters()


def direct_for(file: Any, raw: BridgeRaw, newline: str | None) -> DirectText | None:
    """The direct path for ``file`` (a TextIOWrapper over ``raw``), or None
    when its settings need TextIOWrapper's own decoding."""
    if not isinstance(file, io.TextIOWrapper) or raw._writable:
        return None
    if newline not in _NO_NEWLINE_DECODER:
        return None
    try:
        codec = codecs.lookup(file.encoding).name
    except LookupError:
        return None
    if codec not in _ONE_TO_ONE or (codec == "ascii" and file.errors == "ignore"):
        return None
    return DirectText(file, raw, ascii_only=codec == "ascii")


# The fields the C hit (native/afr_text.c) reads: TextCore's members there.
_C_FIELDS: Final = (
    "_ascii_only",
    "_chunk_size",
    "_core",
    "dirty",
    "enabled",
    "gen",
    "known",
    "lock",
    "raw",
    "short",
    "start",
    "text",
    "used",
)
if TYPE_CHECKING:

    class _TextCore:
        """DirectText's C base, as the type checker sees it: nothing."""

    _SLOTS: tuple[str, ...] = ()
else:
    _TextCore, _SLOTS = _native.hit_base("TextCore", _C_FIELDS)


class DirectText(_TextCore):
    """The state of a TextIOWrapper that seek/read here would have left.

    ``start``: file offset of the last chunk read (or of the last seek);
    ``text``: its characters, one a byte (only its text is kept: keeping its
    bytes too cost ~1 us a read in allocations); ``used``: how many of them
    were handed out. ``known``: the
    fields describe the file (false after any other operation, until the
    next seek here); ``dirty``: the TextIOWrapper lags behind them;
    ``enabled``: false once the buffer was handed out (``leave_direct``).
    ``gen``: moves with every change (C: a dropped Ready undoes its change
    only if nothing changed since; in Python it stays 0). ``lock``: the
    Bridge's FileLock (set by the Bridge).

    With the compiled module these are TextCore's C fields, and the file
    object's ``read``/``seek`` (DirectTextIOWrapper) serve the common case
    in C: native/afr_text.c.
    """

    __slots__ = ("file", *_SLOTS)

    _ascii_only: bool
    _chunk_size: int
    _core: AsyncBufferedReader
    dirty: bool
    enabled: bool
    gen: int
    known: bool
    lock: FileLock
    raw: BridgeRaw
    short: bool
    start: int
    text: str
    used: int

    def __init__(self, file: io.TextIOWrapper, raw: BridgeRaw, *, ascii_only: bool) -> None:
        self.file = file
        self.raw = raw
        self._ascii_only = ascii_only
        # TextIOWrapper's chunk size, read once (its getter cost ~1-2 us a
        # read here; it is only changed through the private _CHUNK_SIZE).
        self._chunk_size: int = file._CHUNK_SIZE  # type: ignore[attr-defined]
        # The binary reader's positional hit path, over the raw's handle; never
        # closed itself (the raw owns the handle).
        self._core = AsyncBufferedReader(raw._h, name=raw.name, mode="rb")
        # A TextIOWrapper fresh from open() reads as after seek(position).
        self.start = raw._pos
        self.text = ""
        self.used = 0
        self.short = False  # the chunk ended at EOF (fewer bytes than asked)
        self.known = True
        self.dirty = False
        self.enabled = True  # false for good once the buffer is used directly
        if not _native.HAS_HIT_PATH:
            self.gen = 0

    def seek(self, cookie: int) -> None:
        """``file.seek(cookie)``, for an int in [0, TRUSTED_SEEK_MAX]: with a
        stateless decoder such a cookie is the byte offset, nothing else."""
        self.start = cookie
        self.text = ""
        self.used = 0
        self.short = False
        self.known = self.dirty = True

    async def read(self, n: int, attempt: bytes | int | None = None, gen: int = -1) -> str | None:
        """``file.read(n)`` for ``n`` > 0 from the known state; None when the
        bytes need TextIOWrapper's own decoding (nothing changed then).
        ``attempt``: the answer of the NOWAIT read the C hit made for the
        next chunk when the state's ``gen`` was ``gen`` (not made again)."""
        text, used = self.text, self.used
        avail = len(text) - used
        if n <= avail:
            self.used = used + n
            self.dirty = True
            COUNTERS.python_reads += 1
            return text[used : used + n]
        # textiowrapper_read_chunk: the next chunk, of max(_CHUNK_SIZE, wanted).
        remaining = n - avail
        end = self.start + len(text)
        size = self._chunk_size if remaining < self._chunk_size else remaining
        if attempt is not None and gen == self.gen:  # the same state: the same chunk
            data = await self._core._pread_general(size, end, attempt)
        else:
            data = await self._core.pread(size, end)
        if len(data) == size and not self._ascii_only:
            # The common case, written out: one whole chunk ends the read.
            new = data.decode("latin-1")
            self.start, self.text, self.used = end, new, remaining
            self.short = False
            self.dirty = True
            COUNTERS.python_reads += 1
            piece = new[:remaining]
            return text[used:] + piece if avail else piece
        return await self._read_chunks(text[used:], remaining, end, size, data)

    async def _read_chunks(
        self, head: str, remaining: int, end: int, size: int, data: bytes
    ) -> str | None:
        """The rest of ``read``, from its first chunk ``data`` (``size`` bytes
        asked at ``end``): the chunks after a short one, until EOF."""
        parts = [head] if head else []
        start, text, used, short = self.start, self.text, self.used, self.short
        while True:
            if not data:  # EOF: an empty chunk is the last one
                start, text, used, short = end, "", 0, True
                break
            if self._ascii_only and not data.isascii():
                return None
            text = data.decode("latin-1")  # == the codec's, for these bytes
            used = min(remaining, len(text))
            parts.append(text[:used])
            remaining -= used
            start, short = end, len(data) < size
            end += len(data)
            if remaining <= 0:
                break
            size = max(self._chunk_size, remaining)
            data = await self._core.pread(size, end)
        self.start, self.text, self.used = start, text, used
        self.short = short
        self.dirty = True
        COUNTERS.python_reads += 1
        return "".join(parts)

    def sync(self) -> None:
        """Bring the TextIOWrapper to the state held here (in the operation's
        greenlet, or outside one for ``buffer``/``detach``). The chunk's bytes
        are put in the raw's window, with EOF after them if the original read
        met it there: the replayed read does no I/O and gets the same bytes.
        (tests/conftest.py lets blockbuster know.)"""
        if not self.dirty:
            return
        self.dirty = False
        COUNTERS.syncs += 1
        file = self.file
        file.seek(self.start)
        if self.used:  # a chunk was read and some of it used
            raw = self.raw
            # The chunk's bytes again: a 1:1 codec encodes its text back to them.
            raw._set_window(self.start, self.text.encode("latin-1"), eof=self.short)
            raw.replaying = True
            try:
                file.read(self.used)
            finally:
                raw.replaying = False

    def before(self, fn: Any) -> None:
        """``fn``, a method of the TextIOWrapper, is about to run on it."""
        self.sync()
        if getattr(fn, "__name__", None) not in _STATE_KEEPING:
            self.known = False


def takes_seek(direct: DirectText | None, cookie: object, whence: object) -> bool:
    """Whether ``seek(cookie, whence)`` is one for the direct path."""
    return (
        direct is not None
        and direct.enabled
        and type(cookie) is int
        and type(whence) is int
        and whence == 0
        and 0 <= cookie <= TRUSTED_SEEK_MAX
        and not direct.raw.closed
    )


__all__ = ["COUNTERS", "Counters", "DirectText", "direct_for", "takes_seek"]
