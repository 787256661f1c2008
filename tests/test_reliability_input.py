"""Bad input gets CPython io's exception: same type, same message.

Each case runs against CPython (``io.open`` and the object it returns) and
against aiofastread, and the outcomes (exception type and message, or the
result) are compared. Tables:

* ``OPEN_CASES``: wrong types, invalid modes and argument mixes, bad paths
  (directories, missing parents, embedded NUL, unencodable and non-UTF-8
  names), bad descriptors.
* ``CALLS``: every file method with wrong types, negative and huge sizes
  and offsets, invalid whence, on read-only and write-only files, open and
  closed, for every mode (each mode class: the hand-written "rb" reader,
  the bridged buffered/text/unbuffered stacks).
* FIFOs (not regular files: wrapped the aiofiles way) and ``aiofastread.os``.

Paths are all under the test's own temporary directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
import aiofastread.os

Outcome = tuple[str, str]  # ("ok", repr(result)) or (exception type name, message)

CONTENT = b"hello\nworld\n" * 50


def outcome_of(fn: Callable[[], Any]) -> Outcome:
    try:
        return ("ok", repr(fn()))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


async def async_outcome_of(fn: Callable[[], Any]) -> Outcome:
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        return ("ok", repr(result))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def _call(obj: Any, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(obj, method)(*args)


# -- open() --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OpenCase:
    id: str
    path: str  # "{d}" is the test directory, "{f}" an existing file in it
    mode: Any = "rb"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw_path: Any = None  # used as is instead of ``path`` (fds, wrong types)


def _opener_minus_one(path: str, flags: int) -> int:
    return -1


def _opener_str(path: str, flags: int) -> Any:
    return "3"


OPEN_CASES = [
    OpenCase("mode-two-actions", "{f}", "rw"),
    OpenCase("mode-unknown-letter", "{f}", "z"),
    OpenCase("mode-empty", "{f}", ""),
    OpenCase("mode-text-and-binary", "{f}", "rbt"),
    OpenCase("mode-repeated", "{f}", "rr"),
    OpenCase("mode-U", "{f}", "rU"),
    OpenCase("mode-two-plus", "{f}", "r++"),
    OpenCase("mode-int", "{f}", 5),
    OpenCase("mode-bytes", "{f}", b"r"),
    OpenCase("mode-none", "{f}", None),
    OpenCase("buffering-str", "{f}", "r", {"buffering": "1"}),
    OpenCase("buffering-float", "{f}", "r", {"buffering": 1.5}),
    OpenCase("buffering-huge", "{f}", "rb", {"buffering": 2**64}),
    OpenCase("unbuffered-text", "{f}", "r", {"buffering": 0}),
    OpenCase("binary-encoding", "{f}", "rb", {"encoding": "utf-8"}),
    OpenCase("binary-errors", "{f}", "rb", {"errors": "strict"}),
    OpenCase("binary-newline", "{f}", "rb", {"newline": "\n"}),
    OpenCase("newline-illegal", "{f}", "r", {"newline": "x"}),
    OpenCase("newline-int", "{f}", "r", {"newline": 5}),
    OpenCase("encoding-unknown", "{f}", "r", {"encoding": "no-such-codec"}),
    OpenCase("encoding-int", "{f}", "r", {"encoding": 5}),
    OpenCase("errors-int", "{f}", "r", {"errors": 5}),
    OpenCase("closefd-false-with-name", "{f}", "rb", {"closefd": False}),
    OpenCase("opener-not-callable", "{f}", "rb", {"opener": 5}),
    OpenCase("opener-returns-minus-one", "{f}", "rb", {"opener": _opener_minus_one}),
    OpenCase("opener-returns-str", "{f}", "rb", {"opener": _opener_str}),
    OpenCase("path-none", "", raw_path=None),
    OpenCase("path-float", "", raw_path=3.5),
    OpenCase("path-list", "", raw_path=["a"]),
    OpenCase("fd-negative", "", raw_path=-1),
    OpenCase("fd-not-open", "", raw_path=10**6),
    OpenCase("fd-huge", "", raw_path=2**64),
    OpenCase("directory-rb", "{d}", "rb"),
    OpenCase("directory-r", "{d}", "r"),
    OpenCase("directory-wb", "{d}", "wb"),
    OpenCase("directory-r+", "{d}", "r+"),
    OpenCase("directory-a", "{d}", "a"),
    OpenCase("missing-file", "{d}/missing", "rb"),
    OpenCase("missing-parent-w", "{d}/missing/x", "wb"),
    OpenCase("file-as-parent", "{f}/x", "rb"),
    OpenCase("exclusive-exists", "{f}", "xb"),
    OpenCase("embedded-nul", "{d}/a\0b", "rb"),
    OpenCase("unencodable-surrogate", "{d}/\ud800", "wb"),
    OpenCase("missing-non-utf8-bytes", "", "rb", raw_path=b"/nonexistent-\xff\xfe/x"),
]


@pytest.fixture
def test_dir(tmp_path: Path) -> Path:
    (tmp_path / "f").write_bytes(CONTENT)
    return tmp_path


def _resolve(case: OpenCase, d: Path) -> Any:
    if case.path == "":
        return case.raw_path
    return case.path.format(d=d, f=d / "f")


async def test_open_rejects_like_cpython(test_dir: Path) -> None:
    """Every OPEN_CASES row: CPython's io.open and ours fail the same way."""
    mismatches = []
    for case in OPEN_CASES:
        path = _resolve(case, test_dir)
        expected = outcome_of(functools.partial(_open_close, path, case.mode, case.kwargs))
        assert expected[0] != "ok", f"{case.id}: the table wants failing cases"
        got = await async_outcome_of(functools.partial(_aopen_close, path, case.mode, case.kwargs))
        if got != expected:
            mismatches.append(f"{case.id}: CPython {expected}, ours {got}")
    assert not mismatches, "\n".join(mismatches)


def _open_close(path: Any, mode: Any, kwargs: dict[str, Any]) -> str:
    with io.open(path, mode, **kwargs):  # noqa: UP020 - the io function itself
        return "opened"


async def _aopen_close(path: Any, mode: Any, kwargs: dict[str, Any]) -> str:
    async with aiofastread.open(path, mode, **kwargs):
        return "opened"


async def test_non_utf8_names_round_trip(test_dir: Path) -> None:
    """Names that are not UTF-8 (bytes, and str with surrogateescape) work
    as with CPython; the same file is reached both ways."""
    raw_name = os.fsencode(test_dir) + b"/caf\xe9-\xff"
    async with aiofastread.open(raw_name, "wb") as f:
        await f.write(b"bytes path")
    str_name = os.fsdecode(raw_name)
    assert "\udcff" in str_name
    async with aiofastread.open(str_name, "rb") as f:
        assert await f.read() == b"bytes path"
        assert f.name == str_name
    async with aiofastread.open(str_name, "a", encoding="latin-1") as t:
        await t.write("\u00e9")
    with open(raw_name, "rb") as g:
        assert g.read() == b"bytes path\xe9"


# -- methods of open files --------------------------------------------------------

# (method, args). Sizes: negative, huge (allocation fails the same way or
# the file is short), beyond Py_ssize_t; offsets beyond off_t; bad whence.
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("read", ("x",)),
    ("read", (1.5,)),
    ("read", (-2,)),
    ("read", (2**62,)),
    ("read", (2**64,)),
    ("read", (-(2**64),)),
    ("read", (None,)),
    ("read1", ("x",)),
    ("read1", (None,)),
    ("read1", (-2,)),
    ("readline", ("x",)),
    ("readline", (-2,)),
    ("readline", (2**64,)),
    ("readlines", ("x",)),
    ("readlines", (-2,)),
    ("readinto", (b"abc",)),
    ("readinto", ("abc",)),
    ("readinto", (bytearray(3),)),
    ("readinto1", (memoryview(b"ro"),)),
    ("peek", ("x",)),
    ("peek", (-5,)),
    ("seek", ("x",)),
    ("seek", (1.5,)),
    ("seek", (-1,)),
    ("seek", (0, 5)),
    ("seek", (0, -1)),
    ("seek", (0, "x")),
    ("seek", (0, 2**64)),
    ("seek", ("x", 5)),
    ("seek", (-1, os.SEEK_CUR)),
    ("seek", (-(10**6), os.SEEK_END)),
    ("seek", (2**64,)),
    ("seek", (-(2**64),)),
    ("seek", (2**63 - 1,)),
    ("seek", (0, os.SEEK_DATA)),
    ("truncate", (-1,)),
    ("truncate", ("x",)),
    ("write", ("str",)),
    ("write", (b"b",)),
    ("write", (1,)),
    ("write", (memoryview(b"view"),)),
    ("writelines", ([1],)),
    ("writelines", (["s"],)),
    ("writelines", (5,)),
    ("writelines", ([],)),
    ("flush", ()),
    ("tell", ()),
    ("isatty", ()),
    ("readable", ()),
    ("writable", ()),
    ("seekable", ()),
    ("read", ()),
    ("seek", (0,)),
    ("readline", ()),
    ("truncate", ()),
    ("truncate", (3,)),
    ("fileno", ()),
]

# Stable names for the calls (a bytearray argument changes as it is used).
CALL_IDS = [f"{method}{args!r}" for method, args in CALLS]

# (mode, buffering): the hand-written "rb" reader, bridged Buffered*,
# TextIOWrapper and FileIO stacks, read-only, write-only and both.
MODES = [
    pytest.param("rb", -1, id="rb"),
    pytest.param("r", -1, id="r"),
    pytest.param("wb", -1, id="wb"),
    pytest.param("w", -1, id="w"),
    pytest.param("ab", -1, id="ab"),
    pytest.param("a", -1, id="a"),
    pytest.param("r+b", -1, id="r+b"),
    pytest.param("r+", -1, id="r+"),
    pytest.param("w+b", -1, id="w+b"),
    pytest.param("a+", -1, id="a+"),
    pytest.param("rb", 0, id="rb-unbuffered"),
    pytest.param("wb", 0, id="wb-unbuffered"),
    pytest.param("r+b", 0, id="r+b-unbuffered"),
]


def _prepare(path: Path, mode: str) -> None:
    path.write_bytes(CONTENT)


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize(("mode", "buffering"), MODES)
async def test_calls_fail_like_cpython(
    test_dir: Path, mode: str, buffering: int, closed: bool
) -> None:
    """The whole CALLS sequence on one CPython file and one of ours, side by
    side: each outcome (exception type and message, or result) must match.
    Both see the same sequence, so a call that succeeds moves both alike."""
    theirs_path, ours_path = test_dir / "cpython", test_dir / "ours"
    _prepare(theirs_path, mode)
    _prepare(ours_path, mode)
    theirs = io.open(theirs_path, mode, buffering)  # noqa: SIM115, UP020
    ours = await aiofastread.open(ours_path, mode, buffering)
    mismatches = []
    try:
        if closed:
            theirs.close()
            await ours.close()
        for (method, args), call_id in zip(CALLS, CALL_IDS, strict=True):
            expected = outcome_of(functools.partial(_call, theirs, method, args))
            if method == "fileno" and expected[0] == "ok":
                continue  # different descriptors, both fine
            if not hasattr(ours, method):
                continue  # aiofiles' member lists (tests/test_threadpool.py) lack it
            got = await async_outcome_of(functools.partial(_call, ours, method, args))
            if got != expected:
                mismatches.append(f"{call_id}: CPython {expected}, ours {got}")
    finally:
        theirs.close()
        await ours.close()
    assert not mismatches, "\n".join(mismatches)
    assert ours_path.read_bytes() == theirs_path.read_bytes()


async def test_pread_rejects_bad_arguments(test_dir: Path) -> None:
    """``pread`` is ours (not io): wrong types and negative values raise
    TypeError/ValueError echoing the value, as os.pread's checks do."""
    async with aiofastread.open(test_dir / "f", "rb") as f:
        with pytest.raises(TypeError, match="'str' object cannot be interpreted as an integer"):
            await f.pread("1", 0)
        with pytest.raises(TypeError, match="'float' object cannot be interpreted"):
            await f.pread(1, 0.5)
        with pytest.raises(ValueError, match="pread size must be non-negative, got -1"):
            await f.pread(-1, 0)
        with pytest.raises(ValueError, match="pread offset must be non-negative, got -5"):
            await f.pread(1, -5)
        assert await f.pread(0, 0) == b""
        assert await f.pread(10, 2**40) == b""
    with pytest.raises(ValueError, match="read of closed file"):
        await f.pread(1, 0)


# -- FIFOs ------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with a reader-and-writer descriptor held open, so opening
    either end never blocks."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    keep = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        yield path
    finally:
        os.close(keep)


FIFO_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("seek", (0,)),
    ("seek", (0, os.SEEK_END)),
    ("tell", ()),
    ("truncate", (0,)),
    ("seekable", ()),
    ("peek", ("x",)),
    ("read", ("x",)),
    ("write", (b"x",)),
    ("isatty", ()),
    ("readable", ()),
]


@pytest.mark.parametrize(("mode", "buffering"), [("rb", -1), ("r", -1), ("wb", 0)])
async def test_fifo_calls_fail_like_cpython(fifo: Path, mode: str, buffering: int) -> None:
    """A FIFO has no offsets: seek/tell/truncate fail as CPython's do."""
    theirs = io.open(fifo, mode, buffering)  # noqa: SIM115, UP020
    ours = await aiofastread.open(fifo, mode, buffering)
    mismatches = []
    try:
        for method, args in FIFO_CALLS:
            expected = outcome_of(functools.partial(_call, theirs, method, args))
            if expected[0] == "ok" and method in ("write", "read", "peek"):
                continue  # would move data through the pipe
            if not hasattr(ours, method):
                continue  # aiofiles' member lists (tests/test_threadpool.py) lack it
            got = await async_outcome_of(functools.partial(_call, ours, method, args))
            if got != expected:
                mismatches.append(f"{method}{args!r}: CPython {expected}, ours {got}")
    finally:
        theirs.close()
        await ours.close()
    assert not mismatches, "\n".join(mismatches)


async def test_fifo_reads_and_writes_through(fifo: Path) -> None:
    async with aiofastread.open(fifo, "wb") as w, aiofastread.open(fifo, "rb") as r:
        await w.write(b"one\ntwo\n")
        await w.flush()
        assert await r.readline() == b"one\n"
        assert await r.read(4) == b"two\n"


# -- aiofastread.os ------------------------------------------------------------------


OS_CASES: list[tuple[str, str, tuple[Any, ...]]] = [
    ("stat-none", "stat", (None,)),
    ("stat-missing", "stat", ("{d}/missing",)),
    ("stat-nul", "stat", ("{d}/a\0b",)),
    ("remove-directory", "remove", ("{d}",)),
    ("rmdir-file", "rmdir", ("{f}",)),
    ("rmdir-not-empty", "rmdir", ("{d}",)),
    ("rename-missing", "rename", ("{d}/missing", "{d}/other")),
    ("mkdir-exists", "mkdir", ("{d}",)),
    ("listdir-file", "listdir", ("{f}",)),
    ("readlink-file", "readlink", ("{f}",)),
    ("scandir-missing", "scandir", ("{d}/missing",)),
]


@pytest.mark.parametrize(("name", "args"), [c[1:] for c in OS_CASES], ids=[c[0] for c in OS_CASES])
async def test_os_functions_fail_like_os(test_dir: Path, name: str, args: tuple[Any, ...]) -> None:
    real = tuple(a.format(d=test_dir, f=test_dir / "f") if isinstance(a, str) else a for a in args)
    expected = outcome_of(lambda: getattr(os, name)(*real))
    assert expected[0] != "ok"
    assert await async_outcome_of(lambda: getattr(aiofastread.os, name)(*real)) == expected


async def test_configure_rejects_bad_values() -> None:
    for kwargs, exc in [
        ({"max_workers": 0}, ValueError),
        ({"max_workers": "4"}, TypeError),
        ({"max_in_flight": -1}, ValueError),
        ({"max_in_flight": True}, TypeError),
        ({"fast_path": 1}, TypeError),
    ]:
        with pytest.raises(exc):
            aiofastread.configure(**kwargs)
    stats = aiofastread.statistics()
    assert stats.fast_path == (aiofastread.backend() != "pool")


def test_loop_is_not_needed_to_build_the_opener(test_dir: Path) -> None:
    """``open()`` outside a loop returns the awaitable; nothing runs until it
    is awaited (aiofiles' behaviour), and closing it unawaited leaks nothing."""
    opener = aiofastread.open(test_dir / "f", "rb")
    assert asyncio.iscoroutine(opener._coro)
    opener.close()  # no "never awaited" RuntimeWarning, no descriptor
