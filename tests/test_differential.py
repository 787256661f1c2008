"""Differential test: aiofastread against CPython's ``open``, step by step.

A hypothesis state machine opens two copies of one file, one with
``aiofastread.open`` and one with CPython's ``open`` (same mode, buffering,
encoding, errors, newline), runs a random sequence of operations on both and
compares every result and every exception (type, errno or message); after a
flush and at the end it compares the bytes on disk. Each state machine runs
its async side on a private event loop (asyncio or uvloop, parametrized
here); the autouse ``backend`` fixture adds the read backends. Half of the
sequences start with the file evicted from the page cache, half warm, and an
``evict`` rule drops it again mid-sequence.

Where io lets implementations differ (how much ``peek``/``read1`` return),
the comparison checks what io promises instead of equality. Where aiofiles'
surface differs from CPython's, aiofiles wins (../shared/DESIGN.md invariant 5):
``__anext__`` is ``readline`` (CPython's text ``next()`` disables ``tell()``),
and ``readinto1`` may be absent. KNOWN lists divergences reported and not
yet fixed (each with a strict-xfail repro at the end), QUIRKS CPython's own.

Tests: one per mode x loop x backend. Profiles: ``ci`` (default; a fixed seed
per test and no database, so a failure is reproducible and printed) and
``long`` (10^5 random sequences in all): ``AIOFASTREAD_HYPOTHESIS_PROFILE=long``,
or bench/differential_long.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from hypothesis import HealthCheck, note, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

import aiofastread
from tests.conftest import evict, warm

if TYPE_CHECKING:
    from collections.abc import Callable

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None  # type: ignore[assignment]

PROFILE_ENV = "AIOFASTREAD_HYPOTHESIS_PROFILE"
_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# Per test: one mode x loop x backend, 96 of them with uvloop (16 x 2 x 3).
PROFILES: dict[str, settings] = {
    # Seeded per test (reproducible, and each test explores other sequences):
    # ~1150 sequences, about 2 minutes on the 2-core VM.
    "ci": settings(max_examples=12, stateful_step_count=40, **_COMMON),
    # 96 x 1042 >= 10^5 sequences; random, so each run explores new ones.
    "long": settings(max_examples=1042, stateful_step_count=50, **_COMMON),
}
PROFILE = os.environ.get(PROFILE_ENV, "ci")
COUNT_FILE = os.environ.get("AIOFASTREAD_DIFF_COUNT_FILE")  # sequences run, appended
SETTINGS = PROFILES[PROFILE]
if "AIOFASTREAD_HYPOTHESIS_EXAMPLES" in os.environ:  # bench/differential_long.py
    SETTINGS = settings(SETTINGS, max_examples=int(os.environ["AIOFASTREAD_HYPOTHESIS_EXAMPLES"]))
SEEDED = PROFILE == "ci" and SETTINGS.max_examples == PROFILES["ci"].max_examples

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop
}
if uvloop is not None:
    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop

# -- configurations -----------------------------------------------------------

BINARY_MODES = ("rb", "r+b", "wb", "w+b", "ab", "a+b", "xb", "x+b")
TEXT_MODES = ("r", "r+", "w", "w+", "a", "a+", "x", "x+")
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "utf-16", "utf-32")
NEWLINES = (None, "", "\n", "\r", "\r\n")
ERRORS = ("strict", "replace")
READ_MODES = frozenset(("rb", "r+b", "r", "r+"))  # open with content
# AIOFASTREAD_DIFF_MODES=rb,r+ narrows the modes (to chase one failure).
MODES = tuple(
    m
    for m in (*BINARY_MODES, *TEXT_MODES)
    if m in os.environ.get("AIOFASTREAD_DIFF_MODES", m).split(",")
)

# Text pieces: every newline kind, non-ASCII (not latin-1: the euro sign,
# not BMP: the emoji), a BOM, NUL; WRITE_PIECES adds a lone surrogate.
TEXT_PIECES = ("a", "bc", "\n", "\r", "\r\n", "\xe9", "\u20ac", "\U0001f600", "\ufeff", "\x00")
WRITE_PIECES = (*TEXT_PIECES, "\ud800")
BINARY_PIECES = (b"a", b"bc", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xc3\xa9")

# Sizes around the buffers: io.DEFAULT_BUFFER_SIZE (8 KiB: CPython's buffer
# and text chunk) and aiofastread's 64 KiB read-ahead window.
EDGE_SIZES = (4095, 4096, 8191, 8192, 8193, 65535, 65536, 65537)
REPEATS = (1, 1, 2, 150, 1100)  # times a short unit: up to ~70 KB files


@dataclasses.dataclass(frozen=True)
class Setup:
    """One sequence's file and open() arguments; the content is a short unit
    repeated (so the printed reproduction stays short) with junk spliced in."""

    mode: str
    buffering: int
    encoding: str | None
    errors: str | None
    newline: str | None
    unit: str | bytes
    repeat: int
    junk: bytes
    junk_at: int
    evicted: bool
    preexisting: bool  # x modes: open a path that exists (FileExistsError)

    @property
    def binary(self) -> bool:
        return "b" in self.mode

    def content(self) -> bytes:
        if isinstance(self.unit, bytes):
            data = self.unit * self.repeat
        else:
            assert self.encoding is not None
            data = (self.unit * self.repeat).encode(self.encoding, "replace")
        at = min(self.junk_at, len(data))
        return data[:at] + self.junk + data[at:]

    def open_kwargs(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "buffering": self.buffering,
            "encoding": self.encoding,
            "errors": self.errors,
            "newline": self.newline,
        }


@st.composite
def setups(draw: st.DrawFn, mode: str) -> Setup:
    if "b" in mode:
        buffering = draw(st.sampled_from((-1, 0)))
        encoding = errors = newline = None
        unit: str | bytes = draw(
            st.lists(st.sampled_from(BINARY_PIECES), max_size=20).map(b"".join)
            | st.binary(max_size=64)
        )
    else:
        # 0 is refused for text (ValueError on both sides): rarely.
        buffering = draw(st.sampled_from((-1, -1, -1, 1, 1, 1, 0)))
        encoding = draw(st.sampled_from(ENCODINGS))
        errors = draw(st.sampled_from(ERRORS))
        newline = draw(st.sampled_from(NEWLINES))
        unit = draw(st.lists(st.sampled_from(TEXT_PIECES), max_size=20).map("".join))
    return Setup(
        mode=mode,
        buffering=buffering,
        encoding=encoding,
        errors=errors,
        newline=newline,
        unit=unit,
        repeat=draw(st.sampled_from(REPEATS)),
        junk=draw(st.sampled_from((b"",) * 4 + (b"\xff", b"\xc3", b"\x00", b"\xfe\xff\x00"))),
        junk_at=draw(st.integers(0, 70)),
        evicted=draw(st.booleans()),
        preexisting="x" in mode and draw(st.integers(0, 5)) == 0,
    )


# -- arguments ----------------------------------------------------------------

sizes = st.integers(-2, 40) | st.sampled_from((None, *EDGE_SIZES)) | st.sampled_from(("1", 1.5))
limits = st.integers(-2, 40) | st.sampled_from((None, 8193, 70000))
hints = st.integers(-1, 100) | st.sampled_from((None, 9000))
offsets = st.integers(-3, 100) | st.sampled_from(EDGE_SIZES) | st.sampled_from((70000, "0"))
# SEEK_DATA (3) and SEEK_HOLE (4) are valid on Linux; 5 and -1 are not.
whences = st.sampled_from((0, 1, 2, 3, 4, 5, -1))
# What TextIOWrapper.seek allows without a cookie, and what it refuses.
text_seeks = st.sampled_from(((0, 0), (0, 1), (0, 2), (5, 1), (3, 2), (-1, 0), (0, 3), (0, -1)))
truncate_sizes = st.none() | st.integers(-2, 100) | st.sampled_from((8193, 70000, "1"))


@dataclasses.dataclass(frozen=True)
class Arg:
    """A write() argument; ``make()`` builds a fresh object for each side."""

    kind: str  # bytes, bytearray, memoryview, str, or raw (passed as is)
    value: Any

    def make(self) -> Any:
        if self.kind == "bytearray":
            return bytearray(self.value)
        if self.kind == "memoryview":
            return memoryview(bytearray(self.value))
        return self.value

    def __repr__(self) -> str:
        value = self.value
        if isinstance(value, str | bytes) and len(value) > 40:
            value = f"{value[:8]!r}*{len(value)}"
        return f"Arg({self.kind}, {value!r})"


binary_payloads = st.lists(st.sampled_from(BINARY_PIECES), max_size=8).map(
    b"".join
) | st.sampled_from((b"x" * 8193, b"line\n" * 14000))
binary_args = st.builds(
    Arg, st.sampled_from(("bytes", "bytearray", "memoryview")), binary_payloads
) | st.builds(Arg, st.just("raw"), st.sampled_from(("text", 7, None)))
text_payloads = st.lists(st.sampled_from(WRITE_PIECES), max_size=8).map("".join) | st.sampled_from(
    ("x" * 8193, "line\r\n" * 12000)
)
text_args = st.builds(Arg, st.just("str"), text_payloads) | st.builds(
    Arg, st.just("raw"), st.sampled_from((b"bytes", 7, None))
)

# -- outcomes -----------------------------------------------------------------

Outcome = tuple[Any, ...]
STOP: Outcome = ("stop",)
MISSING: Outcome = ("missing",)
# Methods aiofiles 25.1 does not offer either: absent is not a divergence.
OPTIONAL_METHODS = frozenset({"readinto1"})


def message_only(ours: Outcome, cpy: Outcome) -> bool:
    """Same exception type, another message."""
    return ours[:2] == cpy[:2] and ours[0] == "raise"


def anything(ours: Outcome, cpy: Outcome) -> bool:
    return True


def never(ours: Outcome, cpy: Outcome) -> bool:
    return False


def cpy_raised(kind: type[BaseException]) -> Callable[[Outcome, Outcome], bool]:
    return lambda ours, cpy: cpy[:2] == ("raise", kind)


def mode_is(*modes: str, buffering: int | None = None) -> Callable[[Setup], bool]:
    return lambda s: s.mode in modes and buffering in (None, s.buffering)


@dataclasses.dataclass(frozen=True)
class Known:
    """A divergence reported to the library's owner, tolerated here so the
    machine can look past it; a repro below is an xfail(strict) test.

    One that would leave the two files in different states (a position,
    the contents) cannot be looked past: ``avoid`` then says which calls
    the machine must not make while it is open."""

    reason: str
    op: str  # "*": any
    where: Callable[[Setup], bool]
    closed: bool | None  # on a closed file only (True), an open one (False), both
    accept: Callable[[Outcome, Outcome], bool]  # (ours, cpy) -> tolerated?
    avoid: Callable[[tuple[Any, ...]], bool] | None = None  # (args) -> don't call

    def avoids(self, m: DifferentialMachine, op: str, args: tuple[Any, ...]) -> bool:
        assert m.setup is not None
        return (
            self.avoid is not None
            and self.op in (op, "*")
            and self.where(m.setup)
            and self.closed in (None, m.closed)
            and self.avoid(args)
        )

    def matches(self, m: DifferentialMachine, op: str, ours: Outcome, cpy: Outcome) -> bool:
        assert m.setup is not None
        return (
            self.op in (op, "*")
            and self.where(m.setup)
            and self.closed in (None, m.closed)
            and self.accept(ours, cpy)
        )


def _fileio(s: Setup) -> bool:
    return s.buffering == 0


KNOWN: tuple[Known, ...] = ()

# CPython's own quirks: tolerated, not bugs of ours.
QUIRKS: tuple[Known, ...] = (
    # FileIO decides it is not seekable when its first lseek fails
    # (seek(0, SEEK_DATA) on an empty file: ENXIO); we stay seekable.
    Known(
        "CPython: FileIO.seekable() is False after a failed first seek",
        "seekable",
        _fileio,
        None,
        lambda ours, cpy: ours == ok(True) and cpy == ok(False),
    ),
)


def raised(exc: BaseException) -> Outcome:
    if isinstance(exc, OSError) and exc.errno is not None:
        return ("raise", type(exc), exc.errno, exc.strerror)  # the paths differ
    return ("raise", type(exc), str(exc))


def ok(value: Any) -> Outcome:
    return ("ok", type(value), value)


def attribute(obj: object, name: str) -> Outcome:
    try:
        return ok(getattr(obj, name))
    except Exception as exc:
        return raised(exc)


# -- the machine --------------------------------------------------------------


class DifferentialMachine(RuleBasedStateMachine):
    """``ours`` is the aiofastread file, ``cpy`` CPython's; same operations."""

    loop_factory: ClassVar[Callable[[], asyncio.AbstractEventLoop]]
    root: ClassVar[Path]
    mode: ClassVar[str]
    sequences: ClassVar[int] = 0  # machines run (bench/differential_long.py counts them)

    cookies = Bundle("cookies")

    def __init__(self) -> None:
        super().__init__()
        self.loop = type(self).loop_factory()
        self.dir = Path(tempfile.mkdtemp(dir=type(self).root))
        self.ours_path = self.dir / "ours"
        self.cpy_path = self.dir / "cpython"
        self.setup: Setup | None = None
        self.ours: Any = None
        self.cpy: Any = None
        self.closed = False

    # -- plumbing ---------------------------------------------------------

    def run_ours(self, name: str, *args: Any) -> Outcome:
        method = getattr(self.ours, name, None)
        if method is None:
            return MISSING

        async def call() -> Any:
            result = method(*args)
            return await result if inspect.isawaitable(result) else result

        try:
            return ok(self.loop.run_until_complete(call()))
        except StopAsyncIteration:
            return STOP
        except Exception as exc:
            return raised(exc)

    def run_cpy(self, name: str, *args: Any) -> Outcome:
        try:
            return ok(getattr(self.cpy, name)(*args))
        except StopIteration:
            return STOP
        except Exception as exc:
            return raised(exc)

    def both(self, name: str, *args: Any, ours_args: tuple[Any, ...] | None = None) -> Outcome:
        """Call ``name`` on both files; assert the same outcome; return it."""
        if not hasattr(self.cpy, name):
            return MISSING  # not an operation of this mode
        if name in OPTIONAL_METHODS and not hasattr(self.ours, name):
            return MISSING
        if any(k.avoids(self, name, args) for k in KNOWN):
            note(f"known divergence: {name}{args!r} not compared")
            return MISSING
        cpy = self.run_cpy(name, *args)
        ours = self.run_ours(name, *(args if ours_args is None else ours_args))
        self.check(f"{name}{args!r}", ours, cpy, op=name)
        return cpy

    def check(self, what: str, ours: Outcome, cpy: Outcome, op: str = "") -> None:
        if ours != cpy and any(k.matches(self, op, ours, cpy) for k in KNOWN + QUIRKS):
            note(f"known divergence: {what}: aiofastread {ours!r}, CPython {cpy!r}")
            return
        assert ours == cpy, f"{what}: aiofastread {ours!r} != CPython {cpy!r}"

    def compare_disk(self, what: str) -> None:
        ours = self.ours_path.read_bytes() if self.ours_path.exists() else None
        cpy = self.cpy_path.read_bytes() if self.cpy_path.exists() else None
        assert ours == cpy, f"{what}: bytes on disk differ"

    @property
    def text(self) -> bool:
        return self.setup is not None and not self.setup.binary

    # -- open and close ---------------------------------------------------

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        self.open(data.draw(setups(type(self).mode), label="setup"))

    def open(self, setup: Setup) -> None:
        self.setup = setup
        if "x" not in setup.mode or setup.preexisting:
            content = setup.content()
            self.cpy_path.write_bytes(content)
            self.ours_path.write_bytes(content)
            (evict if setup.evicted else warm)(self.ours_path)
        kwargs = setup.open_kwargs()
        try:
            self.cpy = open(self.cpy_path, **kwargs)  # noqa: SIM115 - closed in teardown
            cpy = ok(None)
        except Exception as exc:
            cpy = raised(exc)

        async def open_ours() -> Any:
            return await aiofastread.open(self.ours_path, **kwargs)

        try:
            self.ours = self.loop.run_until_complete(open_ours())
            ours = ok(None)
        except Exception as exc:
            ours = raised(exc)
        self.check("open", ours, cpy, op="open")
        self.closed = self.cpy is None

    @precondition(lambda self: self.cpy is None)
    @rule()
    def open_again(self) -> None:
        """After an open both sides refused: refused again, the same way."""
        assert self.setup is not None
        self.open(self.setup)

    def teardown(self) -> None:
        type(self).sequences += 1
        try:
            if self.ours is not None and self.cpy is not None:
                cpy = self.run_cpy("close")
                ours = self.run_ours("close")
                self.check("close", ours, cpy, op="close")
                self.compare_disk("after close")
        finally:
            try:
                if self.ours is not None:
                    self.run_ours("close")
                if self.cpy is not None:
                    self.cpy.close()
            finally:
                self.loop.close()
                shutil.rmtree(self.dir)

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        """Close mid-sequence: later steps compare closed-file errors."""
        self.both("close")
        self.closed = True

    # -- reading ----------------------------------------------------------

    @precondition(lambda self: self.cpy is not None)
    @rule(size=sizes)
    def read(self, size: Any) -> None:
        self.both("read", size)

    @precondition(lambda self: self.cpy is not None)
    @rule()
    def read_all(self) -> None:
        self.both("read")

    @precondition(lambda self: self.cpy is not None and not self.text)
    @rule()
    def readall(self) -> None:
        self.both("readall")  # FileIO's (buffering=0); not on buffered files

    @precondition(lambda self: self.cpy is not None and not self.text)
    @rule(size=st.integers(-1, 40) | st.sampled_from(EDGE_SIZES))
    def read1(self, size: int) -> None:
        """read1 may return fewer bytes than asked (one raw read at most)."""
        if not hasattr(self.cpy, "read1"):
            return
        cpy = self.run_cpy("read1", size)
        ours = self.run_ours("read1", size)
        if not (ours[0] == cpy[0] == "ok" and ours[2] != cpy[2]):
            self.check(f"read1({size})", ours, cpy, op="read1")
            return
        assert type(ours[2]) is bytes
        self.catch_up(f"read1({size})", ours[2], cpy[2], size)

    def catch_up(self, what: str, o: bytes, c: bytes, size: int) -> None:
        """Two one-raw-read answers of different lengths: both must be the
        file's next bytes, empty only at EOF; the shorter side then reads up
        to the longer, to stay in step."""
        assert o.startswith(c) or c.startswith(o), f"{what}: {o!r} vs {c!r}"
        assert bool(o) == bool(c) or size == 0, f"{what}: {o!r} vs {c!r}"
        if len(o) < len(c):
            self.check("read (catch up)", self.run_ours("read", len(c) - len(o)), ok(c[len(o) :]))
        else:
            self.check("read (catch up)", ok(o[len(c) :]), self.run_cpy("read", len(o) - len(c)))

    @precondition(lambda self: self.cpy is not None and not self.text)
    @rule(
        size=st.integers(0, 40) | st.sampled_from(EDGE_SIZES),
        kind=st.sampled_from(("bytearray", "memoryview", "bytes")),
        name=st.sampled_from(("readinto", "readinto1")),
    )
    def readinto(self, size: int, kind: str, name: str) -> None:
        def buffer() -> Any:
            if kind == "bytes":
                return bytes(size)  # read-only: TypeError
            data = bytearray(b"\xaa" * size)
            return data if kind == "bytearray" else memoryview(data)

        cpy_buf, ours_buf = buffer(), buffer()
        if (
            name == "readinto1"
            and hasattr(self.cpy, name)
            and hasattr(self.ours, name)
            and (kind != "bytes")
        ):
            # Like read1: how much one raw read at most gives depends on the
            # buffer's size (CPython's: st_blksize; ours: a larger window).
            cpy = self.run_cpy(name, cpy_buf)
            ours = self.run_ours(name, ours_buf)
            if ours[0] == cpy[0] == "ok" and ours[2] != cpy[2]:
                o, c = bytes(ours_buf[: ours[2]]), bytes(cpy_buf[: cpy[2]])
                untouched = b"\xaa" * (size - max(len(o), len(c)))
                assert bytes(ours_buf)[len(o) :].endswith(untouched), f"{name}: wrote past"
                assert bytes(cpy_buf)[len(c) :].endswith(untouched), f"{name}: wrote past"
                self.catch_up(f"{name}({size})", o, c, size)
                return
            self.check(f"{name}({kind}[{size}])", ours, cpy, op=name)
            if ours[0] == "ok":
                assert bytes(ours_buf) == bytes(cpy_buf), f"{name}: buffer contents differ"
            return
        if self.both(name, cpy_buf, ours_args=(ours_buf,)) != MISSING:
            assert bytes(ours_buf) == bytes(cpy_buf), f"{name}: buffer contents differ"

    @precondition(lambda self: self.cpy is not None)
    @rule(limit=limits)
    def readline(self, limit: Any) -> None:
        self.both("readline", limit)

    @precondition(lambda self: self.cpy is not None)
    @rule(hint=hints)
    def readlines(self, hint: Any) -> None:
        self.both("readlines", hint)

    @precondition(lambda self: self.cpy is not None and not self.text)
    @rule(size=st.integers(-1, 10))
    def peek(self, size: int) -> None:
        """peek returns what is buffered, at least one byte before EOF: both
        answers must start with the file's next bytes; position unchanged."""
        if not hasattr(self.cpy, "peek"):
            return
        cpy = self.run_cpy("peek", size)
        ours = self.run_ours("peek", size)
        if ours[0] == cpy[0] == "ok":
            o, c = ours[2], cpy[2]
            assert type(o) is bytes
            assert o.startswith(c) or c.startswith(o), f"peek: {o[:20]!r} vs {c[:20]!r}"
            assert bool(o) == bool(c), f"peek: {o[:20]!r} vs {c[:20]!r}"
        else:
            self.check(f"peek({size})", ours, cpy, op="peek")

    @precondition(lambda self: self.cpy is not None)
    @rule()
    def iterate(self) -> None:
        """One step of ``async for`` against one of ``for``; in text mode
        against ``readline()``, which is what aiofiles' ``__anext__`` runs
        (TextIOWrapper's ``next()`` also turns ``tell()`` off, and drops the
        decoder snapshot: a cookie of another form after it)."""
        if self.text:
            cpy = self.run_cpy("readline")
            cpy = STOP if cpy == ok("") else cpy
        else:
            cpy = self.run_cpy("__next__")
        self.check("__anext__", self.run_ours("__anext__"), cpy, op="__anext__")

    # -- position ---------------------------------------------------------

    @precondition(lambda self: self.cpy is not None)
    @rule(target=cookies)
    def tell(self) -> Any:
        cpy = self.run_cpy("tell")
        self.check("tell()", self.run_ours("tell"), cpy, op="tell")
        return cpy[2] if cpy[0] == "ok" else multiple()

    @precondition(lambda self: self.cpy is not None and not self.text)
    @rule(offset=offsets, whence=whences)
    def seek(self, offset: Any, whence: int) -> None:
        self.both("seek", offset, whence)

    @precondition(lambda self: self.cpy is not None and self.text)
    @rule(where=text_seeks)
    def seek_text(self, where: tuple[int, int]) -> None:
        self.both("seek", *where)

    @precondition(lambda self: self.cpy is not None and self.text)
    @rule(cookie=cookies)
    def seek_cookie(self, cookie: int) -> None:
        self.both("seek", cookie)

    # -- writing ----------------------------------------------------------

    @precondition(lambda self: self.cpy is not None)
    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        arg = data.draw(text_args if self.text else binary_args, label="arg")
        self.both("write", arg.make(), ours_args=(arg.make(),))

    @precondition(lambda self: self.cpy is not None)
    @rule(data=st.data())
    def writelines(self, data: st.DataObject) -> None:
        args = data.draw(st.lists(text_args if self.text else binary_args, max_size=3))
        self.both("writelines", [a.make() for a in args], ours_args=([a.make() for a in args],))

    @precondition(lambda self: self.cpy is not None)
    @rule()
    def flush(self) -> None:
        if self.both("flush")[0] == "ok":
            self.compare_disk("after flush")

    @precondition(lambda self: self.cpy is not None)
    @rule(size=truncate_sizes)
    def truncate(self, size: Any) -> None:
        if size is None:
            self.both("truncate")
        else:
            self.both("truncate", size)

    # -- the rest ---------------------------------------------------------

    @precondition(lambda self: self.cpy is not None)
    @rule()
    def evict(self) -> None:
        """Drop our file from the page cache (dirty pages are written first)."""
        evict(self.ours_path)

    @precondition(lambda self: self.cpy is not None)
    @rule(name=st.sampled_from(("readable", "writable", "seekable", "isatty")))
    def query(self, name: str) -> None:
        self.both(name)

    @precondition(lambda self: self.cpy is not None)
    @rule()
    def attributes(self) -> None:
        names = ["closed", "mode"]
        if self.text:
            names += ["encoding", "errors", "newlines", "line_buffering"]
        for name in names:
            self.check(name, attribute(self.ours, name), attribute(self.cpy, name), op=name)


@pytest.mark.parametrize("loop_name", list(LOOP_FACTORIES))
@pytest.mark.parametrize("mode", MODES)
def test_differential(mode: str, loop_name: str, data_dir: Path, backend: str) -> None:
    machine: type[DifferentialMachine] = type(
        "Differential",
        (DifferentialMachine,),
        {"loop_factory": staticmethod(LOOP_FACTORIES[loop_name]), "root": data_dir, "mode": mode},
    )
    # Both read paths must be compared: inline (page cache) and the pool.
    # Which one a read takes also depends on this VM's page cache (it reclaims
    # idle pages by itself), so a seeded run that happened to miss one is
    # followed by the next seed, at most 3 in all; the last one must cover both.
    for attempt in range(3 if SEEDED else 1):
        run = machine
        if SEEDED:
            run = seed(zlib.crc32(f"{mode} {loop_name} {backend} {attempt}".encode()))(machine)
        aiofastread.reset_statistics()
        try:
            run_state_machine_as_test(run, settings=SETTINGS)  # type: ignore[no-untyped-call]
        finally:
            if COUNT_FILE:
                with open(COUNT_FILE, "a") as out:
                    out.write(f"{mode} {loop_name} {backend} {machine.sequences}\n")
        stats = aiofastread.statistics()
        if not (SEEDED and mode in READ_MODES):
            break
        if stats.pool_reads > 0 and (backend == "pool" or stats.inline_hits > 0):
            break
    if SEEDED and mode in READ_MODES:
        assert stats.pool_reads > 0, stats
        if backend != "pool":
            assert stats.inline_hits > 0, stats


# -- divergences the machine found: minimal repros ----------------------------
# A KNOWN entry above gets its repro here marked xfail(strict): once the
# library is fixed the repro XPASSes, which fails the run; then the entry goes
# and the repro stays, unmarked, as a regression test.


async def ours_outcome(
    path: Path, mode: str, name: str, args: tuple[Any, ...], closed: bool
) -> Outcome:
    f = await aiofastread.open(path, mode)
    try:
        if closed:
            await f.close()
        result = getattr(f, name)(*args)
        return ok(await result if inspect.isawaitable(result) else result)
    except StopAsyncIteration:
        return STOP
    except Exception as exc:
        return raised(exc)
    finally:
        await f.close()


def cpy_outcome(path: Path, mode: str, name: str, args: tuple[Any, ...], closed: bool) -> Outcome:
    with open(path, mode) as f:
        if closed:
            f.close()
        try:
            return ok(getattr(f, name)(*args))
        except StopIteration:
            return STOP
        except Exception as exc:
            return raised(exc)


@pytest.mark.parametrize(
    ("name", "cpy_name", "args", "closed"),
    [
        pytest.param("__anext__", "__next__", (), True),
        pytest.param("flush", "flush", (), True),
        pytest.param("readinto1", "readinto1", (bytearray(1),), True),
        pytest.param("write", "write", (b"x",), True),
        pytest.param("writable", "writable", (), True),
        pytest.param("writelines", "writelines", ([],), False),
        pytest.param("seek", "seek", (0, 5), False),
        pytest.param("seek", "seek", (0, 5), True),
    ],
)
async def test_rb_fixed_divergence(
    data_dir: Path, name: str, cpy_name: str, args: tuple[Any, ...], closed: bool
) -> None:
    path = data_dir / "f"
    path.write_bytes(b"line\n")
    ours = await ours_outcome(path, "rb", name, args, closed)
    assert ours == cpy_outcome(path, "rb", cpy_name, args, closed)


async def test_rb_read_from_window_moves_position(data_dir: Path) -> None:
    path = data_dir / "f"
    path.write_bytes(b"line1\nline2\n")
    async with aiofastread.open(path, "rb") as f:
        ours = [await f.readline(), await f.read(2), await f.read(2), await f.tell()]
    with open(path, "rb") as g:
        assert ours == [g.readline(), g.read(2), g.read(2), g.tell()]


async def test_fileio_flush_when_closed(data_dir: Path) -> None:
    path = data_dir / "f"
    path.write_bytes(b"")
    f = await aiofastread.open(path, "rb", buffering=0)
    await f.close()
    with pytest.raises(ValueError, match="closed file"):
        await f.flush()


async def test_fileio_closed_checked_first(data_dir: Path) -> None:
    path = data_dir / "f"
    path.write_bytes(b"")
    f = await aiofastread.open(path, "rb", buffering=0)
    await f.close()
    with pytest.raises(ValueError, match="closed file"):
        await f.seek("0")  # type: ignore[arg-type]


async def test_rb_readlines_hint(data_dir: Path) -> None:
    path = data_dir / "f"
    path.write_bytes(b"a\nb\nc\n")
    async with aiofastread.open(path, "rb") as f:
        ours = [await f.readlines(2), await f.tell()]
    with open(path, "rb") as g:
        assert ours == [g.readlines(2), g.tell()]
