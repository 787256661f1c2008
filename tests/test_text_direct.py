"""The direct text path (``_bridge/direct``) against CPython's ``open``.

Text files of a 1:1 codec (latin-1, ASCII) with no newline decoder have
their ``seek(int)`` and ``read(n)`` served without TextIOWrapper; every
other operation must then find the TextIOWrapper exactly where CPython's
would be. Hypothesis runs random sequences of direct and other operations
(tell, readline, ``async for``, read(-1), the binary buffer, seeks that
are not direct) on both and compares every result and exception, then
the final ``tell()`` and ``buffer.tell()``. The counters prove which path
served what.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiofastread
from aiofastread import _native, _pool
from aiofastread._bridge import direct
from aiofastread._bridge.direct import direct_for
from tests.conftest import evict, warm

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None  # type: ignore[assignment]

LOOPS = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:
    LOOPS["uvloop"] = uvloop.new_event_loop

# Around TextIOWrapper's 8 KiB chunk and the raw's 64 KiB window.
EDGES = (1, 2, 4095, 4096, 8191, 8192, 8193, 16384, 65535, 65536, 65537)
SIZES = (0, 1, 100, 8191, 8192, 8193, 20000, 70000)

ops = st.one_of(
    st.tuples(st.just("seek"), st.integers(0, 71000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.integers(1, 20000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.integers(1, 20000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.sampled_from((0, -1, None))),
    st.tuples(st.just("tell")),
    st.tuples(st.just("readline"), st.sampled_from((-1, 5, 9000))),
    st.tuples(st.just("next")),
    st.tuples(st.just("seek_cur")),  # seek(0, 1): not direct
    st.tuples(st.just("seek_end")),  # seek(0, 2): not direct
)
# Rarely: the binary buffer used directly (the direct path ends for the file).
buffer_ops = st.tuples(st.just("buffer_tell")) | st.tuples(
    st.just("buffer_read"), st.integers(0, 9000)
)
sequences = st.lists(ops, max_size=25) | st.lists(ops | buffer_ops, max_size=25)


@st.composite
def contents(draw: st.DrawFn, ascii_only: bool) -> bytes:
    size = draw(st.sampled_from(SIZES))
    seed = draw(st.integers(0, 255))
    alphabet = bytes(range(32, 127)) + b"\r\n\r\n\t" if ascii_only else bytes(range(256))
    data = bytes(alphabet[(i * 7 + seed + (i >> 5) * 13) % len(alphabet)] for i in range(size))
    if ascii_only and data and draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + b"\xe9" + data[at + 1 :]  # a byte ASCII refuses
    return data


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as exc:
        return (type(exc).__name__, str(exc))


async def aoutcome(call: Any) -> tuple[str, Any]:
    try:
        return ("ok", await call())
    except StopAsyncIteration:
        return ("ok", "")  # CPython's readline gives "" where async for stops
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def cpython_op(f: io.TextIOWrapper, op: tuple[Any, ...]) -> tuple[str, Any]:
    name = op[0]
    if name == "seek":
        return outcome(lambda: f.seek(op[1]))
    if name == "read":
        return outcome(lambda: f.read(op[1]))
    if name == "tell":
        return outcome(f.tell)
    if name == "readline":
        return outcome(lambda: f.readline(op[1]))
    if name == "next":
        return outcome(f.readline)  # aiofiles' __anext__ is readline
    if name == "seek_cur":
        return outcome(lambda: f.seek(0, 1))
    if name == "seek_end":
        return outcome(lambda: f.seek(0, 2))
    if name == "buffer_tell":
        return outcome(f.buffer.tell)
    return outcome(lambda: f.buffer.read(op[1]))


async def our_op(f: Any, op: tuple[Any, ...]) -> tuple[str, Any]:
    name = op[0]
    if name == "seek":
        return await aoutcome(lambda: f.seek(op[1]))
    if name == "read":
        return await aoutcome(lambda: f.read(op[1]))
    if name == "tell":
        return await aoutcome(f.tell)
    if name == "readline":
        return await aoutcome(lambda: f.readline(op[1]))
    if name == "next":
        return await aoutcome(f.__anext__)
    if name == "seek_cur":
        return await aoutcome(lambda: f.seek(0, 1))
    if name == "seek_end":
        return await aoutcome(lambda: f.seek(0, 2))
    if name == "buffer_tell":
        return outcome(f.buffer.tell)  # a sync BufferedReader, as in aiofiles
    return outcome(lambda: f.buffer.read(op[1]))


def check_sequence(
    loop_name: str, path: Path, data: bytes, kwargs: dict[str, Any], seq: list[Any], cold: bool
) -> None:
    path.write_bytes(data)
    (evict if cold else warm)(path)

    async def ours() -> list[Any]:
        out = []
        async with aiofastread.open(path, **kwargs) as f:
            for op in seq:
                out.append(await our_op(f, op))
            out.append(await aoutcome(f.tell))
            out.append(outcome(f.buffer.tell))
        return out

    loop = LOOPS[loop_name]()
    try:
        got = loop.run_until_complete(ours())
    finally:
        loop.close()
    with open(path, **kwargs) as f:
        want = [cpython_op(f, op) for op in seq]
        want.append(outcome(f.tell))
        want.append(outcome(f.buffer.tell))
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"step {i} {([*seq, ('tell',), ('buffer_tell',)])[i]}: {g!r} != {w!r}"


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    newline=st.sampled_from(("\n", "\r", "\r\n")),
    errors=st.sampled_from(("strict", "replace", "surrogateescape")),
    data=st.data(),
    seq=sequences,
    cold=st.booleans(),
)
def test_direct_text_equals_cpython(
    data_dir: Path,
    loop_name: str,
    encoding: str,
    newline: str,
    errors: str,
    data: st.DataObject,
    seq: list[Any],
    cold: bool,
) -> None:
    content = data.draw(contents(encoding == "ascii"))
    kwargs = {"mode": "r", "encoding": encoding, "errors": errors, "newline": newline}
    check_sequence(loop_name, data_dir / "t.txt", content, kwargs, seq, cold)


# Sequences that reached wrong states while this was written, kept as examples.
@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize(
    "seq",
    [
        [("seek", 10), ("read", 100), ("tell",), ("read", 5)],
        [("read", 100), ("buffer_tell",), ("read", 3)],
        [("seek", 69990), ("read", 20), ("read", 5), ("tell",)],
        [("seek", 5), ("read", 8192), ("readline", -1), ("read", 3), ("seek_cur",)],
        [("read", 9000), ("next",), ("seek", 0), ("read", 1), ("buffer_read", 10)],
    ],
)
def test_direct_text_examples(data_dir: Path, loop_name: str, seq: list[Any]) -> None:
    data = bytes(range(256)) * 274  # 70144 bytes, every byte, "\r\n" included
    kwargs = {"mode": "r", "encoding": "latin-1", "newline": "\n"}
    check_sequence(loop_name, data_dir / "t.txt", data, kwargs, seq, cold=False)


async def test_seek_read_served_directly(data_dir: Path) -> None:
    """seek + read never run the C stack; the next other operation replays once."""
    path = data_dir / "t.txt"
    path.write_bytes(bytes(range(256)) * 256)
    warm(path)
    async with aiofastread.open(path, encoding="latin-1", newline="\n") as f:
        reads, syncs = direct.COUNTERS.reads, direct.COUNTERS.syncs
        submissions = _pool.default_pool().statistics().submissions
        for offset in (0, 5000, 60000, 123):
            assert await f.seek(offset) == offset
            assert await f.read(16384) == (bytes(range(256)) * 256)[offset : offset + 16384].decode(
                "latin-1"
            )
        assert direct.COUNTERS.reads - reads == 4
        assert direct.COUNTERS.syncs == syncs  # nothing else asked for the TextIOWrapper
        if _native.backend.can_read_inline:  # cached: each chunk an inline hit
            assert _pool.default_pool().statistics().submissions == submissions
        assert await f.tell() == 123 + 16384
        assert direct.COUNTERS.syncs == syncs + 1
        with open(path, encoding="latin-1", newline="\n") as cpy:
            cpy.seek(123)
            cpy.read(16384)
            assert await f.readline() == cpy.readline()
            assert f.buffer.tell() == cpy.buffer.tell()


@pytest.mark.parametrize(
    ("encoding", "newline", "errors", "direct_path"),
    [
        ("latin-1", "\n", None, True),
        ("iso-8859-1", "\r\n", "strict", True),
        ("ascii", "\r", "replace", True),
        ("ascii", "\n", "ignore", False),  # dropped bytes: not one char a byte
        ("latin-1", None, None, False),  # a newline decoder
        ("latin-1", "", None, False),
        ("utf-8", "\n", None, False),
        ("cp1252", "\n", None, False),  # undefined bytes raise
    ],
)
async def test_direct_path_only_for_one_to_one_codecs(
    data_dir: Path, encoding: str, newline: str | None, errors: str | None, direct_path: bool
) -> None:
    path = data_dir / "t.txt"
    path.write_bytes(b"abc\n" * 10)
    async with aiofastread.open(path, encoding=encoding, newline=newline, errors=errors) as f:
        assert (f._runner.direct is not None) == direct_path
    async with aiofastread.open(path, "r+", encoding="latin-1", newline="\n") as f:
        assert f._runner.direct is None  # writable: TextIOWrapper's own
    assert direct_for(io.StringIO(), None, "\n") is None  # type: ignore[arg-type]
