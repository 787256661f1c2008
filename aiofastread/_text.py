"""When a text ``readline`` may be cut on the loop, without a greenlet.

``io.TextIOWrapper.readline`` stops at the first line ending. If the bytes
that the raw stream has not handed out yet contain that ending, and every
one of those bytes is already in memory (the raw's read-ahead window), the
whole call is served from memory: it can run directly on the loop thread,
which is what makes ``async for line in f`` cost about a microsecond a line.

That reasoning holds only when a line-ending byte in the stream always is a
line ending in the text, whatever surrounds it: ASCII-compatible codecs
(every byte below 0x80 is that ASCII character) and the built-in error
handlers (a custom handler may resume decoding past the newline). For
anything else this module answers ``None`` and each line is read through the
greenlet driver instead, with the same result, just slower.
"""

from __future__ import annotations

import codecs

# Codecs in which a byte 0x0A/0x0D is always "\n"/"\r" (normalized names, as
# codecs.lookup() spells them). UTF-16/32 and EBCDIC are not among them.
_ASCII_COMPATIBLE = frozenset(
    {
        "ascii",
        "utf-8",
        "utf-8-sig",
        "iso8859-1",
        "iso8859-2",
        "iso8859-15",
        "cp1250",
        "cp1251",
        "cp1252",
    }
)

# Decoding error handlers that never move the decoder past the bad bytes by
# more than the bad bytes themselves.
_BUILTIN_ERRORS = frozenset(
    {"strict", "ignore", "replace", "surrogateescape", "backslashreplace", "surrogatepass"}
)

# What readline() stops at, per ``newline`` argument, as bytes.
_TERMINATOR: dict[str | None, bytes] = {
    None: b"\n",  # universal: "\n", "\r\n" and a lone "\r" (see Terminator)
    "": b"\n",
    "\n": b"\n",
    "\r": b"\r",
    "\r\n": b"\r\n",
}


def line_terminator(encoding: str, errors: str | None, newline: str | None) -> bytes | None:
    """The byte sequence that surely ends a text line, or None if unsafe.

    In the universal modes (``newline`` None or "") a lone ``b"\\r"`` also
    ends a line, but only once the next byte is known; the raw accounts for
    that (``universal``).
    """
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    if name not in _ASCII_COMPATIBLE or (errors or "strict") not in _BUILTIN_ERRORS:
        return None
    return _TERMINATOR.get(newline)


def is_universal(newline: str | None) -> bool:
    """Whether a lone carriage return ends lines too."""
    return newline is None or newline == ""
