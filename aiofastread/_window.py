"""The read-ahead window both readers keep in front of their position.

``_file.AsyncBufferedReader`` fills it for readline/peek/iteration and
``_bridge.raw.BridgeRaw`` for everything the C io layers above it ask.
Invariant: the reader's position is inside the window or at its end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiofastread import _native

# Bytes fetched into the window when the page cache has them: 64 KiB inline
# is ~10 us on this VM and holds hundreds of typical lines, so iteration
# makes one read per few hundred lines (bench/lines.py).
WINDOW_SIZE = 64 << 10


# What an empty window's ``view`` is: one shared, read-only (a new
# memoryview costs ~0.6 us, and every reader starts with an empty window).
_NO_VIEW = memoryview(b"")

# AsyncBufferedReader's C hit path reads ``data`` (its length) and ``start``
# from C fields (native/afr_hit.c, _native.hit_base).
if TYPE_CHECKING:
    _WindowBase = object
    _HOT_SLOTS: tuple[str, ...] = ()
else:
    _WindowBase, _HOT_SLOTS = _native.hit_base("WindowCore", ("data", "start"))


class Window(_WindowBase):
    """File bytes ``[start, start + len(data))`` read ahead; empty: ``b""``."""

    __slots__ = ("eof", "view", *_HOT_SLOTS)

    def __init__(self, start: int = 0) -> None:
        self.data = b""
        self.view = _NO_VIEW
        self.start = start
        self.eof = False

    def set(self, start: int, data: bytes, *, eof: bool = False) -> None:
        """Hold ``data``, the file's bytes from ``start``; ``eof``: they end
        at EOF (do not extend them)."""
        self.data = data
        self.view = memoryview(data) if data else _NO_VIEW  # copies out without slicing a bytes
        self.start = start
        self.eof = eof

    def drop(self) -> None:
        self.data = b""
        self.view = _NO_VIEW
        self.eof = False

    def holds(self, pos: int) -> bool:
        """Whether ``pos`` is inside the window or at its end."""
        return self.start <= pos <= self.start + len(self.data)

    def take(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes (all if negative) at ``pos``, not consumed."""
        if not self.data:
            return b""
        off = pos - self.start
        if size < 0:
            return self.data[off:]
        return self.data[off : off + size]

    def cut_line(self, pos: int, room: int) -> tuple[bytes, bool]:
        """The line's bytes from ``pos`` to its newline, the window's end, or
        ``room`` bytes (no limit if negative), whichever comes first; and
        whether they end with the newline."""
        data = self.data
        off = pos - self.start
        stop = len(data) if room < 0 else min(len(data), off + room)
        newline = data.find(b"\n", off, stop)
        end = stop if newline < 0 else newline + 1
        return data[off:end], newline >= 0
