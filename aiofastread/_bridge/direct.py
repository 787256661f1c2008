"""Text ``seek`` + ``read`` served by the binary core, as TextIOWrapper would.

A text read through the bridge runs CPython's TextIOWrapper in a greenlet:
seek, a chunk through BufferedReader.read1 into our raw, decode, snapshot
for tell(). When a chunk decodes to one character a byte with the decoder
fresh before and after it, the result of ``seek(cookie)`` and ``read(n)`` is
plain arithmetic on byte offsets, so ``DirectText`` serves them itself: the
chunks TextIOWrapper would read, at the offsets it would read them, through
the binary reader's positional hit path (``AsyncBufferedReader.pread``:
inline when cached, the native pool otherwise, with its stream readahead),
decoded here. Which chunks:

- latin-1 with ``newline`` "\\n", "\\r" or "\\r\\n" (no newline decoder): all;
- the other ASCII-compatible codecs (``_text``: UTF-8, ``open(p, "r")``'s
  default, ASCII, cp125x, iso8859-x; not utf-8-sig, whose BOM state is not
  fresh after a seek), any error handler: chunks of pure ASCII, which every
  one of them decodes to the same characters without calling the handler;
- with ``newline`` None or "" (a newline decoder, latin-1 too): chunks with
  no b"\\r" (the decoder translates it, or holds it back for the next chunk).

Any other chunk makes ``read`` answer None: TextIOWrapper's own read then,
after ``sync`` (its bytes are handed to the raw's window, not read twice).

The TextIOWrapper is left behind meanwhile. Before any other operation
reaches it (``Bridge.run``, the line fast path, ``buffer``/``detach``,
``newlines``), ``sync`` brings it to the state the same calls would have
left: a seek to the start of the last chunk, and a read of what was used of
it, served from the raw's window (no I/O). Its state then is exactly
CPython's: decoded characters left over, snapshot, buffer and raw positions.
Why that replay suffices (C ``textiowrapper_read_chunk``, 3.10-3.13): a chunk
is ``max(_CHUNK_SIZE, wanted * max(b2cratio, 1))`` bytes, b2cratio being the
last decoded chunk's bytes per character; after a chunk served here it is 1
(0 for the empty one at EOF), so the next is ``max(_CHUNK_SIZE, wanted)``;
BufferedReader.read1 on an empty buffer is one raw read of that size (nothing
is kept in its buffer); and the state after a read depends only on its last
chunk. Three more things make it exact:

- ``newlines``: the newline decoder ORs in what each chunk it decodes holds,
  until a reset, which a seek to cookie 0 makes and a seek to another does
  not (C ``_textiowrapper_decoder_setstate``). Replaying the last chunk alone
  would lose the b"\\n" of the chunks before it: ``lf`` remembers it, and
  ``sync`` shows the decoder one b"\\n" (read at offset 1 from the window)
  before its final seek; ``reset`` remembers a seek to 0 in between, which
  ``sync`` makes too.
- b2cratio after TextIOWrapper's own chunks (a UTF-8 chunk with non-ASCII
  characters, or with "\\r\\n" under translation, leaves it above 1, and it
  survives seeks): the chunk grid above holds only while it is <= 1
  (``ratio_ok``), or while ``wanted`` is small enough that no ratio the codec
  can leave makes the chunk larger than ``_CHUNK_SIZE`` (``_ratio_room``).
  ``ratio_ok`` is learnt again at the next seek here from the last chunk the
  raw handed to TextIOWrapper (``BridgeRaw.chunk_ok``: one this path would
  take decodes to at least a character a byte).
- a seek to a cookie that feeds the decoder (a tell() of TextIOWrapper's
  own) leaves bytes in the BufferedReader: its chunks are not the raw's then,
  and no seek is taken here until they are gone (``after``).

``tests/test_text_direct.py`` checks all of it against ``io.open``
(hypothesis, random operation sequences and files).

The ``async for`` batch (_bridge/lines) lives beside it, for the same files:
it describes the TextIOWrapper from a clean state on, and is disarmed (its
lines replayed) before a seek or read here (``Bridge.take_over``); the next
``async for`` after a seek here arms it again at that offset
(``LineBatch._rearm``). Lines are served by the batch, seek + read here.
"""

from __future__ import annotations

import codecs
import io
from typing import TYPE_CHECKING, Any, Final

from aiofastread import _native
from aiofastread._checks import TRUSTED_SEEK_MAX
from aiofastread._file import AsyncBufferedReader
from aiofastread._text import _ASCII_COMPATIBLE, _BUILTIN_ERRORS

if TYPE_CHECKING:
    from aiofastread._bridge.driver import FileLock
    from aiofastread._bridge.raw import BridgeRaw

# Codecs whose byte 0x00-0x7F is that ASCII character, one byte each, with
# a fresh decoder after it (_text: ASCII-compatible; utf-8-sig is not fresh
# after a seek, its BOM state). A chunk of pure ASCII decodes the same under
# all of them, whatever the error handler; latin-1 decodes every byte so.
_CODECS: Final = _ASCII_COMPATIBLE - {"utf-8-sig"}
_LATIN1: Final = "iso8859-1"
# The ``newline`` arguments: None and "" have a newline decoder (it
# translates and holds b"\r", and records what it saw in ``newlines``).
_NEWLINES: Final = frozenset({None, "", "\n", "\r", "\r\n"})
# The largest bytes-to-characters ratio a chunk of these codecs can leave
# in TextIOWrapper's b2cratio (which sizes the next chunk, surviving seeks):
# single-byte codecs 1 (a byte gives one character, or four with
# backslashreplace, or raises); UTF-8 7 (a 4-byte character plus 3 bytes of
# the next one, held by the decoder, in a short chunk at EOF; a long chunk
# nears 4). "ignore" and handlers of the user's may drop bytes: no bound.
_MAX_RATIO: Final = {"utf-8": 7}
_BOUNDED_ERRORS: Final = _BUILTIN_ERRORS - {"ignore"}
# A ratio_room that never refuses (b2cratio is always <= 1).
_ANY_ROOM: Final = 1 << 62
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
    if not isinstance(file, io.TextIOWrapper) or raw._writable or newline not in _NEWLINES:
        return None
    try:
        codec = codecs.lookup(file.encoding).name
    except LookupError:
        return None
    if codec not in _CODECS:
        return None
    errors = file.errors
    if codec == _LATIN1:
        room = _ANY_ROOM  # every byte one character: b2cratio <= 1
    elif errors not in _BOUNDED_ERRORS:
        room = 0  # b2cratio unbounded after a chunk of the general path
    else:
        ratio = _MAX_RATIO.get(codec, 1)
        room = _ANY_ROOM if ratio == 1 else file._CHUNK_SIZE // ratio  # type: ignore[attr-defined]
    return DirectText(
        file,
        raw,
        ascii_only=codec != _LATIN1,
        no_cr=newline is None or newline == "",
        ratio_room=room,
        learns_ratio=errors in _BUILTIN_ERRORS,
    )


# The fields the C hit (native/afr_text.c) reads: TextCore's members there.
_C_FIELDS: Final = (
    "_ascii_only",
    "_chunk_size",
    "_core",
    "_no_cr",
    "_ratio_room",
    "dirty",
    "enabled",
    "gen",
    "known",
    "lf",
    "lines_armed",
    "lock",
    "ratio_ok",
    "raw",
    "reset",
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

    Under a newline decoder (``_no_cr``), what its ``newlines`` must learn
    at the next ``sync``: ``lf``, a chunk served here since the last one
    held b"\\n"; ``reset``, a seek to 0 came since (the decoder's reset).
    ``ratio_ok``: TextIOWrapper's b2cratio is <= 1 (its last chunk was
    decoded here, or none was); else only wants of at most ``_ratio_room``
    characters are served here. ``lines_armed``: the ``async for`` batch
    (_bridge/lines) describes the TextIOWrapper; it is disarmed before a
    seek or read here (``take_over``).

    With the compiled module these are TextCore's C fields, and the file
    object's ``read``/``seek`` (DirectTextIOWrapper) serve the common case
    in C: native/afr_text.c.
    """

    __slots__ = ("_held", "_left", "_pending", "file", *_SLOTS)

    _ascii_only: bool
    _chunk_size: int
    _core: AsyncBufferedReader
    _no_cr: bool
    _ratio_room: int
    dirty: bool
    enabled: bool
    gen: int
    known: bool
    lf: bool
    lines_armed: bool
    lock: FileLock
    ratio_ok: bool
    raw: BridgeRaw
    reset: bool
    short: bool
    start: int
    text: str
    used: int

    def __init__(
        self,
        file: io.TextIOWrapper,
        raw: BridgeRaw,
        *,
        ascii_only: bool,
        no_cr: bool = False,
        ratio_room: int = _ANY_ROOM,
        learns_ratio: bool = True,
    ) -> None:
        self.file = file
        self.raw = raw
        self._ascii_only = ascii_only
        self._no_cr = no_cr
        self._ratio_room = ratio_room
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
        self.lf = self.reset = self.lines_armed = False
        self.ratio_ok = True  # b2cratio is 0 at open
        # Bytes read for a chunk this path refused (offset, bytes): handed
        # to the raw's window for the TextIOWrapper's own read (``before``).
        self._pending: tuple[int, bytes] | None = None
        # The BufferedReader holds bytes (a seek to a cookie that feeds the
        # decoder read ahead): its chunks are not the raw's, no seek here.
        self._held = False
        self._left = False  # the buffer was handed out: no direct path again
        if ratio_room != _ANY_ROOM:
            # After other operations, b2cratio is learnt from the last chunk
            # TextIOWrapper read (BridgeRaw.readinto): one this path would
            # take decoded one character a byte, or more (a "\r" held back
            # or a partial character before it, replaced). A handler of the
            # user's might do anything: never learnt then.
            raw.chunk_check = self._takes if learns_ratio else _never
        if not _native.HAS_HIT_PATH:
            self.gen = 0

    def seek(self, cookie: int) -> None:
        """``file.seek(cookie)``, for an int in [0, TRUSTED_SEEK_MAX]: with a
        stateless decoder such a cookie is the byte offset, nothing else.
        Cookie 0 resets the decoder (``newlines`` forgets), another keeps it
        (C ``_textiowrapper_decoder_setstate``)."""
        self.start = cookie
        self.text = ""
        self.used = 0
        self.short = False
        if not self.known:  # b2cratio is what the TextIOWrapper's last chunk left
            self.ratio_ok = self.raw.chunk_ok
        self.known = self.dirty = True
        if cookie == 0:
            self.reset, self.lf = True, False

    def lose(self) -> None:
        """The TextIOWrapper goes on by itself: the fields no longer describe
        it, and its b2cratio is whatever its chunks leave (learnt again at
        the next seek here)."""
        self.known = self.ratio_ok = False

    def leave(self) -> None:
        """The buffer is used from outside: no direct seek/read again."""
        self._left = True
        self.enabled = False
        self.lose()

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
        # textiowrapper_read_chunk: the next chunk, of max(_CHUNK_SIZE,
        # wanted * max(b2cratio, 1)): max(_CHUNK_SIZE, wanted) while b2cratio
        # <= 1, or while wanted * (its bound) <= _CHUNK_SIZE.
        remaining = n - avail
        if remaining > self._ratio_room and not self.ratio_ok:
            return None
        end = self.start + len(text)
        size = self._chunk_size if remaining < self._chunk_size else remaining
        if attempt is not None and gen == self.gen:  # the same state: the same chunk
            data = await self._core._pread_general(size, end, attempt)
        else:
            data = await self._core.pread(size, end)
        if len(data) == size and not self._ascii_only and not self._no_cr:
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
        lf = self.lf
        while True:
            if not data:  # EOF: an empty chunk is the last one
                start, text, used, short = end, "", 0, True
                break
            if not self._takes(data):
                self._pending = (end, data)
                return None
            if self._no_cr and not lf:
                lf = b"\n" in data
            text = data.decode("latin-1")  # == the codec's, for these bytes
            used = min(remaining, len(text))
            parts.append(text[:used])
            remaining -= used
            start, short = end, len(data) < size
            end += len(data)
            if remaining <= 0:
                break
            size = max(self._chunk_size, remaining)  # b2cratio is 1 now
            data = await self._core.pread(size, end)
        self.start, self.text, self.used = start, text, used
        self.short = short
        self.dirty = True
        self.lf = lf
        self.ratio_ok = True  # the last chunk decoded was this one
        COUNTERS.python_reads += 1
        return "".join(parts)

    def _takes(self, data: bytes) -> bool:
        """Whether a chunk's bytes decode here: for codecs but latin-1 pure
        ASCII, and under a newline decoder no b"\\r" (it would translate it,
        or hold it for the next chunk)."""
        if self._ascii_only and not data.isascii():
            return False
        return not (self._no_cr and b"\r" in data)

    def sync(self) -> None:
        """Bring the TextIOWrapper to the state held here (in the operation's
        greenlet, or outside one for ``buffer``/``detach``/``newlines``). The
        chunk's bytes are put in the raw's window, with EOF after them if the
        original read met it there: the replayed read does no I/O and gets
        the same bytes. (tests/conftest.py lets blockbuster know.)"""
        if not self.dirty:
            return
        self.dirty = False
        COUNTERS.syncs += 1
        file = self.file
        if self.start and (self.reset or self.lf):
            # (At offset 0 the seek below resets the newline decoder, and the
            # replayed chunk is all it saw since.)
            if self.reset:
                file.seek(0)  # the seek to 0 it missed: `newlines` forgets
            if self.lf:
                self._replay_lf()
        self.reset = self.lf = False
        file.seek(self.start)  # any other offset: the decoder keeps `newlines`
        if self.used:  # a chunk was read and some of it used
            raw = self.raw
            # The chunk's bytes again: a 1:1 codec encodes its text back to them.
            raw._set_window(self.start, self.text.encode("latin-1"), eof=self.short)
            raw.replaying = True
            try:
                file.read(self.used)
            finally:
                raw.replaying = False

    def _replay_lf(self) -> None:
        """Let the newline decoder see a b"\\n", as it did in the chunks served
        here: one b"\\n" read at offset 1 (not 0: no reset) from the window,
        EOF after it. No I/O; the seek that follows undoes the rest (decoded
        characters, snapshot); b2cratio is left 1, as an ASCII chunk does."""
        file, raw = self.file, self.raw
        win = raw._win
        saved = (win.start, win.data, win.eof)
        file.seek(1)
        raw._set_window(1, b"\n", eof=True)
        raw.replaying = True
        try:
            file.read(1)
        finally:
            raw.replaying = False
            raw._set_window(saved[0], saved[1], eof=saved[2])

    def before(self, fn: Any) -> None:
        """``fn``, a method of the TextIOWrapper, is about to run on it."""
        self.sync()
        pending, self._pending = self._pending, None
        raw = self.raw
        if pending is not None and pending[0] == raw._pos and not self.lines_armed:
            # The chunk this path refused: the TextIOWrapper reads it next,
            # from the window (its bytes are read once).
            raw._set_window(pending[0], pending[1])
        name = getattr(fn, "__name__", None)
        if name not in _STATE_KEEPING or (name == "tell" and self._tell_resets()):
            self.lose()

    def _tell_resets(self) -> bool:
        """Whether ``tell()`` will reset the newline decoder: when the chunk
        it was decoded from starts at 0 (with a fresh decoder there), C
        ``textiowrapper_tell`` rewinds the decoder with ``reset()`` and
        decodes the used part again, so ``newlines`` then names only the
        kinds in that part. A later replay of the whole chunk would name all
        of them: the TextIOWrapper goes on by itself instead."""
        return self._no_cr and self.start == 0 and self.used > 0

    def after(self, fn: Any, *, failed: bool) -> None:
        """``fn`` ran on the TextIOWrapper (``failed``: it raised)."""
        raw = self.raw
        if failed:
            raw.chunk = None  # a chunk that failed to decode left b2cratio as it was
        seek = getattr(fn, "__name__", None) == "seek"
        if seek:
            # What it read for a cookie that feeds the decoder was not a chunk.
            raw.chunk = None
        if seek or self._held:
            try:
                held = self.file.buffer.tell() != raw._pos  # type: ignore[attr-defined]
            except (ValueError, OSError):
                held = True
            if held != self._held:
                self._held = held
                self.enabled = not held and not self._left


def _never(data: bytes) -> bool:
    return False


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
