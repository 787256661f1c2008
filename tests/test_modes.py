"""Every mode and buffering against CPython, side by side on two copies.

One script of operations runs on ``aiofastread.open(copy_a)`` and on
``open(copy_b)``; after each step the results (or exception type and
message) and the bytes on disk must be equal, so buffering (what is visible
before flush) is checked too. The hypothesis-driven version of this lives in
test_differential.py; this table is the quick, readable one.
"""

from __future__ import annotations

import inspect
import io
import os
from pathlib import Path
from typing import Any

import pytest

import aiofastread

try:  # uvloop opens two process-wide fds with its first loop: not our leak
    import uvloop

    uvloop.new_event_loop().close()
except ImportError:  # pragma: no cover
    pass

INITIAL = "abc\nd\u00e9f\r\nghi\rjkl\n" * 50 + "no newline at end"

TEXT_SCRIPT: list[tuple[str, tuple[Any, ...]]] = [
    ("readline", ()),
    ("read", (5,)),
    ("tell", ()),
    ("write", ("h\u00e9llo\nw\u00f6rld\r\n",)),
    ("tell", ()),
    ("seek", (0,)),
    ("readline", ()),
    ("read", (3,)),
    ("tell", ()),
    ("seek", (0, 2)),
    ("write", ("tail\n" * 3,)),
    ("flush", ()),
    ("seek", (0,)),
    ("readlines", ()),
    ("seek", (7,)),
    ("readline", (4,)),
    ("truncate", (40,)),
    ("tell", ()),
    ("seek", (0,)),
    ("read", ()),
    ("read", ()),
    ("seek", (0, 1)),
    ("seek", (3, 1)),
    ("seek", (-1,)),
    ("readable", ()),
    ("writable", ()),
    ("seekable", ()),
    ("isatty", ()),
    ("writelines", (["a\n", "b\r\n"],)),
    ("flush", ()),
]

BINARY_SCRIPT: list[tuple[str, tuple[Any, ...]]] = [
    ("readline", ()),
    ("read", (5,)),
    ("read1", (3,)),
    ("peek", (2,)),
    ("tell", ()),
    ("write", (b"hello\nworld\r\n",)),
    ("tell", ()),
    ("seek", (0,)),
    ("readline", ()),
    ("readinto", (bytearray(7),)),
    ("tell", ()),
    ("seek", (-3, 2)),
    ("read", ()),
    ("write", (b"tail\n" * 3,)),
    ("flush", ()),
    ("seek", (0,)),
    ("readlines", ()),
    ("seek", (7,)),
    ("readline", (4,)),
    ("truncate", (40,)),
    ("truncate", ()),
    ("tell", ()),
    ("seek", (0,)),
    ("readall", ()),
    ("read", ()),
    ("seek", (100, 0)),
    ("write", (b"past the end",)),
    ("seek", (-1,)),
    ("seek", (0, 7)),
    ("seek", (0, os.SEEK_DATA)),
    ("readable", ()),
    ("writable", ()),
    ("seekable", ()),
    ("isatty", ()),
    ("writelines", ([b"a\n", memoryview(b"b\r\n")],)),
    ("write", ("not bytes",)),
    ("flush", ()),
]

TEXT_MODES = ["r", "r+", "w", "w+", "a", "a+", "x", "x+", "rt", "w+t"]
BINARY_MODES = ["rb", "r+b", "wb", "w+b", "ab", "a+b", "xb", "x+b"]

# Buffered "rb" is the hand-written reader (aiofastread._file); every other
# combination is CPython's io stack over our raw.
CASES = [(mode, buffering) for mode in TEXT_MODES for buffering in (-1, 1, 16)] + [
    (mode, buffering) for mode in BINARY_MODES for buffering in (-1, 0, 16)
]


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


async def async_outcome(fn: Any, *args: Any) -> Any:
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return ("ok", result)
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def copies(tmp: Path, mode: str) -> tuple[Path, Path]:
    a, b = tmp / "ours.txt", tmp / "cpython.txt"
    if "x" not in mode:
        for p in (a, b):
            p.write_bytes(INITIAL.encode("utf-8"))
    return a, b


def fresh_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # Buffers are mutated by readinto: each side gets its own.
    return tuple(bytearray(len(x)) if isinstance(x, bytearray) else x for x in args)


@pytest.mark.parametrize(("mode", "buffering"), CASES)
async def test_mode_against_cpython(
    data_dir: Path, mode: str, buffering: int, fd_leak_check: None
) -> None:
    ours_path, theirs_path = copies(data_dir, mode)
    kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8"}
    script = BINARY_SCRIPT if "b" in mode else TEXT_SCRIPT
    theirs = open(theirs_path, mode, buffering, **kwargs)  # noqa: SIM115
    try:
        ours = await aiofastread.open(ours_path, mode, buffering, **kwargs)
        try:
            assert ours.mode == theirs.mode
            assert ours.closed is False
            for step, (name, args) in enumerate(script):
                if not hasattr(theirs, name):
                    continue
                want = outcome(getattr(theirs, name), *fresh_args(args))
                got = await async_outcome(getattr(ours, name), *fresh_args(args))
                if name == "peek" and got[0] == want[0] == "ok":
                    # io lets peek return any amount: both must be the next bytes.
                    common = min(len(got[1]), len(want[1]))
                    got, want = got[1][:common], want[1][:common]
                assert got == want, f"step {step}: {name}{args}"
                assert ours_path.read_bytes() == theirs_path.read_bytes(), f"on disk after {name}"
            if "b" not in mode:
                assert ours.newlines == theirs.newlines
                assert (ours.encoding, ours.errors) == (theirs.encoding, theirs.errors)
                assert ours.line_buffering == theirs.line_buffering
        finally:
            await ours.close()
    finally:
        theirs.close()
    assert ours.closed
    assert ours_path.read_bytes() == theirs_path.read_bytes()


@pytest.mark.parametrize("mode", ["r", "r+", "a+", "rb", "r+b", "a+b"])
async def test_inherited_descriptor_offset(data_dir: Path, mode: str) -> None:
    """open(fd) starts where the descriptor is, as io.open does."""
    path = data_dir / "f.txt"
    path.write_bytes(INITIAL.encode())
    fds = [os.open(path, os.O_RDWR) for _ in range(2)]
    for fd in fds:
        os.lseek(fd, 10, os.SEEK_SET)
    with open(fds[1], mode) as theirs:
        want = (theirs.tell(), theirs.readline(), theirs.tell())
    async with aiofastread.open(fds[0], mode) as f:
        assert (await f.tell(), await f.readline(), await f.tell()) == want


@pytest.mark.parametrize(
    ("mode", "cls"),
    [
        ("r", "AsyncTextIOWrapper"),
        ("w", "AsyncTextIOWrapper"),
        ("rb", "AsyncBufferedReader"),
        ("r+b", "AsyncBufferedReader"),
        ("wb", "AsyncBufferedIOBase"),
        ("ab", "AsyncBufferedIOBase"),
    ],
)
async def test_classes_as_aiofiles(data_dir: Path, mode: str, cls: str) -> None:
    path = data_dir / "f"
    path.write_bytes(b"x")
    async with aiofastread.open(path, mode) as f:
        assert isinstance(f, getattr(aiofastread.threadpool, cls))
    async with aiofastread.open(path, mode if "b" in mode else "rb", 0) as f:
        assert isinstance(f, aiofastread.threadpool.AsyncFileIO)


async def test_buffer_size_as_io_open(data_dir: Path) -> None:
    """Rebuilt buffers have io.open's size (an explicit one, else _blksize)."""
    path = data_dir / "f"
    path.write_bytes(b"x")
    for buffering in (-1, 1, 100, 70000):
        mode = "r+" if buffering == 1 else "r+b"
        with open(path, mode, buffering) as sync:
            want = _buffer_size(sync if "b" in mode else sync.buffer)
        async with aiofastread.open(path, mode, buffering) as f:
            got = _buffer_size(f._file if "b" in mode else f._file.buffer)
        assert got == want


def _buffer_size(buffered: Any) -> int:
    # C Buffered objects count their buffer in __sizeof__.
    size: int = buffered.__sizeof__() - type(buffered).__basicsize__
    return size


async def test_open_errors_are_cpythons(data_dir: Path) -> None:
    for mode, kwargs in [
        ("rw", {}),
        ("rb", {"encoding": "utf-8"}),
        ("r", {"buffering": 0}),
        ("r", {"newline": "x"}),
        ("r", {"encoding": "no-such-codec"}),
    ]:
        with pytest.raises(Exception) as want:
            open(data_dir / "missing", mode, **kwargs)  # noqa: SIM115
        with pytest.raises(type(want.value)) as got:
            await aiofastread.open(data_dir / "missing", mode, **kwargs)
        assert str(got.value) == str(want.value)
    (data_dir / "exists").write_text("x")
    with pytest.raises(FileExistsError):
        await aiofastread.open(data_dir / "exists", "x")


async def test_line_buffering(data_dir: Path) -> None:
    path = data_dir / "f.txt"
    async with aiofastread.open(path, "w", buffering=1) as f:
        assert f.line_buffering
        await f.write("partial")
        assert path.read_bytes() == b""
        await f.write(" line\nnext")  # a newline flushes all of it, as in CPython
        assert path.read_bytes() == b"partial line\nnext"
        await f.write("!")
    assert path.read_bytes() == b"partial line\nnext!"


async def test_unbuffered_writes_visible_at_once(data_dir: Path) -> None:
    path = data_dir / "f.bin"
    async with aiofastread.open(path, "wb", buffering=0) as f:
        assert await f.write(b"abc") == 3
        assert path.read_bytes() == b"abc"
        await f.seek(1)
        await f.write(bytearray(b"Z"))
        assert path.read_bytes() == b"aZc"
        assert io.UnsupportedOperation is type(await _raised(f.read()))


async def _raised(aw: Any) -> BaseException:
    try:
        await aw
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


CLOSED_SCRIPT: list[tuple[str, tuple[Any, ...]]] = [
    ("read", ()),
    ("read", ("x",)),
    ("readline", ()),
    ("readlines", ()),
    ("readall", ()),
    ("read1", ()),
    ("readinto", (bytearray(2),)),
    ("peek", ()),
    ("write", (b"x",)),
    ("write", ("x",)),
    ("writelines", ([],)),
    ("seek", (0,)),
    ("seek", ("0",)),
    ("seek", (0, "x")),
    ("tell", ()),
    ("truncate", ()),
    ("flush", ()),
    ("fileno", ()),
    ("readable", ()),
    ("writable", ()),
    ("seekable", ()),
    ("isatty", ()),
    ("detach", ()),
]


@pytest.mark.parametrize(("mode", "buffering"), [("r", -1), ("w+", -1), ("r+b", -1), ("r+b", 0)])
async def test_closed_file_against_cpython(data_dir: Path, mode: str, buffering: int) -> None:
    ours_path, theirs_path = copies(data_dir, mode)
    theirs = open(theirs_path, mode, buffering)  # noqa: SIM115
    theirs.close()
    ours = await aiofastread.open(ours_path, mode, buffering)
    await ours.close()
    for name, args in CLOSED_SCRIPT:
        if hasattr(theirs, name) and hasattr(ours, name):
            want = outcome(getattr(theirs, name), *fresh_args(args))
            assert await async_outcome(getattr(ours, name), *fresh_args(args)) == want, name
    with pytest.raises(ValueError, match="closed file"):
        await ours.__anext__()
