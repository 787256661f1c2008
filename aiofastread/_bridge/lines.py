"""``async for line in f`` on text lines decoded ahead of the TextIOWrapper.

Cutting each line with ``TextIOWrapper.readline`` costs ~0.3 us a line over
the bridge plus an ``async def __anext__`` (~0.2 us): docs/performance.md,
"Lines". Here whole chunks are decoded at once and the lines handed out by
``LinesCore.__anext__`` (native/afr_lines.c: a slice and a Ready, no
coroutine), while the TextIOWrapper stays behind, untouched.

Why the lines are CPython's. TextIOWrapper's ``readline`` reads its buffer
in chunks of ``_CHUNK_SIZE`` bytes (C ``textiowrapper_read_chunk`` with no
size hint), decodes each with its decoder (the codec's incremental decoder,
inside an ``IncrementalNewlineDecoder(translate=True)`` for ``newline=None``)
and cuts at "\\n". From a *clean* state (fresh decoder, nothing decoded, the
BufferedReader empty, at byte offset B: right after open, or after
``seek(cookie)`` with a plain int cookie) BufferedReader.read1 on an empty
buffer is one raw read, which our raw fills whole unless at EOF: the chunks
are [B, B+chunk), [B+chunk, B+2*chunk), ... We read the same bytes inline,
feed the same chunks to the same decoder stack, and cut at the same "\\n".
Only whole chunks are used (the chunk at EOF goes through the per-line
path, as does everything after a cache miss), and a chunk whose decoding
raised is not used: the lines from it on come from the real readline, which
raises at the same line as CPython's.

Bringing the TextIOWrapper up to date (``sync``) before anything else uses
it: it must be in the state k ``readline()`` calls would have left. The
replay puts the chunks' bytes in the raw's window (no I/O, the same bytes)
and calls ``read(m)`` so that every chunk it reads is read by
``textiowrapper_read_chunk`` with a size hint of 1 character (``read(1)``
when nothing decoded is left), i.e. ``max(_CHUNK_SIZE, max(b2cratio, 1) * 1)``
= ``_CHUNK_SIZE`` bytes: the same chunk grid, the same decoder calls, the
same snapshot for ``tell()`` and the same ``b2cratio``; it stops within the
chunk holding the last character handed out, as readline does (3.10-3.13:
the chunk logic is the same). ``b2cratio`` after a seek is what the last
chunk left (bounded by ~4 for the codecs and handlers taken here: "ignore"
is not, its dropped bytes could make a hint exceed a chunk). The replay runs
at each refill too, so only the chunks of the line in progress stay ahead.
Most replays read only their last chunk, after a seek to it
(``_sync_last_chunk``: when the decoder stack is fresh there and the
TextIOWrapper already knows every newline kind the skipped chunks hold):
one chunk decoded twice per refill instead of all of them.
tests/test_lines_batch.py checks it against ``io.open`` (hypothesis, random
operations and files).

The direct text path (_bridge/direct: ``seek`` + ``read`` without the
TextIOWrapper) may serve the same file: ``lines_armed`` on it says the batch
is armed, and its seek/read disarm the batch first (``Bridge.take_over``);
after a direct seek, the next ``async for`` arms it again there (``_rearm``).
"""

from __future__ import annotations

import codecs
import io
from typing import TYPE_CHECKING, Any, Final

from aiofastread import _native
from aiofastread._checks import TRUSTED_SEEK_MAX
from aiofastread._read import try_inline
from aiofastread._text import _ASCII_COMPATIBLE, _BUILTIN_ERRORS

if TYPE_CHECKING:
    from aiofastread._bridge.driver import Bridge

# Chunks read and decoded per refill: 64 KiB with the default 8 KiB chunk.
BLOCK_CHUNKS: Final = 8
# A line in progress longer than this (characters) ends the batch: the per-
# line path keeps only its own copy of it.
CARRY_MAX: Final = 1 << 20
# getstate() of a decoder stack with nothing pending (codecs' incremental
# decoders, and IncrementalNewlineDecoder: flag 0 = no "\r" pending).
_FRESH: Final = (b"", 0)


def _kinds(newlines: object) -> set[object]:
    """The newline kinds a ``newlines`` value names (None, a str, a tuple)."""
    if newlines is None:
        return set()
    if isinstance(newlines, tuple):
        return set(newlines)
    return {newlines}


class Counters:
    """Batch events that tests assert on (process-wide)."""

    __slots__ = ("blocks", "finishes", "shortcuts", "syncs")

    def __init__(self) -> None:
        self.blocks = 0  # refills that decoded at least one chunk
        self.syncs = 0  # replays into the TextIOWrapper
        self.shortcuts = 0  # replays that read only the last chunk (_sync_last_chunk)
        self.finishes = 0  # batches handed over to the per-line path


COUNTERS: Final = Counters()


class _PyLinesCore:
    """LinesCore without the compiled module: the same, as a coroutine."""

    __slots__ = ("_pos", "_text")

    def __init__(self) -> None:
        self._text = ""
        self._pos = 0

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> str:
        text, pos = self._text, self._pos
        i = text.find("\n", pos)
        if i >= 0:
            self._pos = i + 1
            return text[pos : i + 1]
        line: str = await self._more()
        return line

    async def _more(self) -> str:
        raise NotImplementedError


if TYPE_CHECKING:
    _LinesCore = _PyLinesCore  # the C type has the same fields
else:
    _hit = _native._hit
    _LinesCore = _hit["LinesCore"] if _hit is not None else _PyLinesCore


def batch_for(bridge: Bridge, newline: str | None) -> LineBatch | None:
    """The line batch of a bridged text file, or None when its settings (or
    its mode) need the per-line path."""
    file = bridge.file
    if not bridge.text or not bridge.lines:
        return None
    if newline is not None and newline != "\n":
        return None
    try:
        codec = codecs.lookup(file.encoding).name
    except LookupError:
        return None
    errors = file.errors
    if codec not in _ASCII_COMPATIBLE or codec == "utf-8-sig":
        return None  # utf-8-sig: its BOM state is not a fresh decoder's after a seek
    if errors not in _BUILTIN_ERRORS or errors == "ignore":
        return None
    return LineBatch(bridge, universal=newline is None)


class LineBatch(_LinesCore):
    """The lines of one text file decoded ahead of its TextIOWrapper.

    ``armed``: the fields below describe the TextIOWrapper (from a clean
    state on, only our lines were taken); false after any other operation
    but a state-keeping one, until the next clean seek. ``_text[_pos:]``
    (C fields) holds the lines not handed out, then the line in progress;
    while another operation runs they are kept in ``_rest`` (``_hidden``)
    and ``_text`` is empty, so no line is handed out meanwhile.

    Character counts are from the clean state on: ``_base`` is that of
    ``_text[0]``, ``_tw_chars`` how many the TextIOWrapper has taken,
    ``_avail`` how many it still holds decoded; ``_counts`` are the
    characters of the chunks decoded here and not by it, whose bytes are
    ``_ahead``, from the raw's position on; ``_next`` is the next chunk's
    offset. Per chunk of ``_counts`` too: ``_clean``, whether the decoder
    stack was in its fresh state before it (nothing pending: no partial
    character, no "\r" waiting for its "\n"), and ``_seen``, the decoder's
    ``newlines`` after it (universal newlines only).
    """

    __slots__ = (
        "_ahead",
        "_avail",
        "_base",
        "_bridge",
        "_chunk",
        "_clean",
        "_counts",
        "_dec",
        "_ended",
        "_file",
        "_hidden",
        "_next",
        "_raw",
        "_rest",
        "_seen",
        "_tw_chars",
        "_universal",
        "armed",
        "enabled",
    )

    def __init__(self, bridge: Bridge, *, universal: bool) -> None:
        # (no base __init__: _disarm sets the base's fields, C or Python)
        self._bridge = bridge
        self._file: io.TextIOWrapper = bridge.file
        self._raw = bridge.raw
        self._universal = universal
        self._chunk = 0
        self.enabled = True  # false for good once the buffer was handed out
        self._disarm()
        self._arm(self._raw._pos)  # a TextIOWrapper fresh from open() is clean

    # -- states ------------------------------------------------------------------

    def _arm(self, pos: int) -> None:
        """The TextIOWrapper is clean at byte offset ``pos``."""
        file = self._file
        self._chunk = file._CHUNK_SIZE  # type: ignore[attr-defined]
        dec: Any = codecs.getincrementaldecoder(file.encoding)(file.errors or "strict")
        if self._universal:
            dec = io.IncrementalNewlineDecoder(dec, translate=True)
        self._dec: Any = dec
        self._text, self._pos = "", 0
        self._rest, self._hidden = "", False
        self._base = self._tw_chars = self._avail = 0
        self._counts: list[int] = []
        self._clean: list[bool] = []
        self._seen: list[object] = []
        self._ahead = bytearray()
        self._next = pos
        self._ended = False
        self.armed = True
        direct = self._bridge.direct
        if direct is not None:
            direct.lines_armed = True  # its seek/read disarm this first

    def _rearm(self) -> None:
        """Arm where the direct path (_bridge/direct) left the file, if that
        is a clean state: right after its seek, nothing read since. (A seek
        of the direct path disarmed the batch; bringing the TextIOWrapper up
        to date is then its seek, which leaves it clean.)"""
        bridge = self._bridge
        direct = bridge.direct
        if (
            direct is None
            or not self.enabled
            or not direct.known
            or direct.text
            or bridge.lock.busy
            or self._raw.closed
        ):
            return
        direct.sync()
        self.after_seek(direct.start, 0)

    def _disarm(self) -> None:
        self.armed = False
        direct = self._bridge.direct
        if direct is not None:
            direct.lines_armed = False
        self._text, self._pos = "", 0
        self._rest, self._hidden = "", False
        self._counts = []
        self._clean = []
        self._seen = []
        self._ahead = bytearray()
        self._dec = None
        self._ended = True

    def stop(self) -> None:
        """The file is closing: no more lines, nothing to bring up to date."""
        if self.armed:
            self._disarm()

    def hide(self, *, keep: bool) -> None:
        """Another operation is about to use the TextIOWrapper: bring it up to
        date, hand out no line until it is done; ``keep``: it leaves the
        decoding state as it is (tell...), the batch goes on after it."""
        if not self.armed:
            return
        self.sync()
        if not self._hidden:
            pos = self._pos
            self._rest = self._text[pos:]
            self._base += pos
            self._text, self._pos = "", 0
            self._hidden = True
        if not keep:
            self._disarm()

    def leave(self) -> None:
        """The buffer is used from outside (``buffer``, ``detach``): for good."""
        self.hide(keep=False)
        self.enabled = False

    def after_seek(self, cookie: object, whence: object) -> None:
        """``seek(cookie, whence)`` just returned on the TextIOWrapper: arm
        if that left it clean (a plain offset, nothing buffered)."""
        if (
            not self.enabled
            or type(cookie) is not int
            or type(whence) is not int
            or whence != 0
            or not 0 <= cookie <= TRUSTED_SEEK_MAX
        ):
            return
        raw = self._raw
        if self._bridge.lock.busy or raw.closed or raw._pos != cookie:
            return
        # The BufferedReader keeps its buffer on a seek inside it: then it
        # reads from there, not in our chunk grid. Empty iff it tells the
        # raw's position (the raw's tell is a field, no I/O).
        buffer: Any = self._file.buffer
        if buffer.tell() != cookie:
            return
        self._arm(cookie)

    # -- the TextIOWrapper brought up to date ----------------------------------------

    def sync(self) -> None:
        """Replay into the TextIOWrapper the characters handed out since it
        was last brought up to date (module docstring: why this is exact)."""
        if not self.armed:
            return
        handed = self._base + self._pos
        need = handed - self._tw_chars
        if need <= 0:
            return
        COUNTERS.syncs += 1
        if need > self._avail and self._sync_last_chunk(handed, need - self._avail):
            return
        raw = self._raw
        counts = self._counts
        # The bytes the TextIOWrapper reads next are the chunks decoded here:
        # from the window, as they were (the raw has not moved since).
        if self._ahead:
            raw._set_window(raw._pos, bytes(self._ahead))
        read = self._file.read
        avail = self._avail
        used = 0  # chunks of ``counts`` the TextIOWrapper has read
        while need > 0:
            if avail:
                m = avail if avail < need else need
                read(m)
                avail -= m
                need -= m
            else:
                # Nothing decoded left: read(1) reads one chunk (its size hint
                # is max(b2cratio, 1) bytes), or more if one decodes to nothing.
                read(1)
                while not counts[used]:
                    used += 1
                avail = counts[used] - 1
                used += 1
                need -= 1
        self._tw_chars = handed
        self._avail = avail
        self._forget_chunks(used)

    def _sync_last_chunk(self, handed: int, rest: int) -> bool:
        """``sync`` by reading only the chunk that holds the last character
        handed out, when that leaves the TextIOWrapper as the whole replay
        would (then True). ``rest``: the characters to take past those it
        holds decoded.

        Reading chunk j after ``seek(its offset)`` instead of chunks 0..j
        after one another: the seek (an int cookie, not 0: no reset) puts
        the decoder stack in its fresh state, which is the state it would
        have before chunk j if it was fresh there (``_clean``); the chunk is
        read with the same ``read(1)`` (so the same size, the same raw read),
        decoded to the same characters, leaves the same snapshot, the same
        ``b2cratio`` (chunk j's) and the same buffer and raw positions. The
        one thing the skipped chunks would have left is ``newlines``: the
        newline kinds they held (the decoder's ``seennl``, kept across such a
        seek). So the shortcut is taken only when the TextIOWrapper has seen
        every kind ``_seen`` says the chunks up to j hold. Saves re-decoding
        all but one chunk at every refill: ~50 of ~185 ns a line
        (docs/performance.md, "Lines").
        """
        counts = self._counts
        j, before = 0, 0
        while before + counts[j] < rest:
            before += counts[j]
            j += 1
        if j == 0 or not self._clean[j]:
            return False  # chunk 0 is read next anyway; or state pending there
        file = self._file
        if self._universal and not _kinds(self._seen[j]) <= _kinds(file.newlines):
            return False
        raw = self._raw
        chunk = self._chunk
        start = raw._pos + j * chunk
        # The same bytes the chunks are (no I/O): from chunk j on, as they were.
        raw._set_window(start, bytes(self._ahead[j * chunk :]))
        file.seek(start)
        file.read(1)  # a size hint of 1 character: one _CHUNK_SIZE chunk
        used = rest - before
        if used > 1:
            file.read(used - 1)  # from the chunk decoded: no more reads
        COUNTERS.shortcuts += 1
        self._tw_chars = handed
        self._avail = counts[j] - used
        self._forget_chunks(j + 1)
        return True

    def _forget_chunks(self, n: int) -> None:
        """The first ``n`` chunks are the TextIOWrapper's now."""
        del self._counts[:n]
        del self._clean[:n]
        del self._seen[:n]
        del self._ahead[: n * self._chunk]

    # -- refills -------------------------------------------------------------------

    def _refill(self) -> bool:
        """Decode the next cached chunks after the line in progress; whether
        any was (else the batch has ended: EOF, a miss, a decode error)."""
        if self._ended:
            return False
        direct = self._bridge.direct
        if direct is not None:
            direct.lose()  # the lines handed out move the TextIOWrapper on
        self.sync()  # the TextIOWrapper catches up: only the carry stays ahead
        pos = self._pos
        rest = self._text[pos:]
        self._base += pos
        self._text, self._pos = rest, 0
        raw = self._raw
        if len(rest) > CARRY_MAX or raw.closed:
            self._ended = True
            return False
        chunk = self._chunk
        want = chunk * BLOCK_CHUNKS
        try:
            data, complete = try_inline(raw._h, self._next, want)
        except OSError:
            # The per-line path reads on, and fails where FileIO would.
            self._ended = True
            return False
        full = len(data) // chunk * chunk
        if complete and len(data) < want:
            self._ended = True  # EOF within: the last chunk goes per line
        if not full:
            self._ended = True
            return False
        dec = self._dec
        decode, getstate = dec.decode, dec.getstate
        universal = self._universal
        view = memoryview(data)
        parts = [rest]
        counts, clean, seen = self._counts, self._clean, self._seen
        for off in range(0, full, chunk):
            fresh = getstate() == _FRESH
            try:
                text = decode(view[off : off + chunk])
            except Exception:
                # From this chunk on, the real readline: it raises where
                # CPython's does. The decoder's state is unknown now.
                self._ended = True
                full = off
                break
            counts.append(len(text))
            clean.append(fresh)
            seen.append(dec.newlines if universal else None)
            parts.append(text)
        if not full:
            return False
        COUNTERS.blocks += 1
        self._ahead += view[:full]
        self._next += full
        self._text = "".join(parts)
        return True

    async def _more(self) -> str:
        """``__anext__`` when the decoded text has no whole line left."""
        bridge = self._bridge
        if not self.armed:
            self._rearm()
        while self.armed and not bridge.lock.busy:
            if self._hidden:  # the operation that hid the lines is over
                self._text, self._pos = self._rest, 0
                self._rest, self._hidden = "", False
            text, pos = self._text, self._pos
            i = text.find("\n", pos)
            if i >= 0:
                self._pos = i + 1
                return text[pos : i + 1]
            if not self._refill():
                COUNTERS.finishes += 1
                self.hide(keep=False)
                break
        # The per-line path (AsyncBase.__anext__'s).
        line: str | None = bridge.readline_now(-1)
        if line is None:
            line = await bridge.run(self._file.readline)
        if line:
            return line
        raise StopAsyncIteration


__all__ = ["COUNTERS", "LineBatch", "batch_for"]
