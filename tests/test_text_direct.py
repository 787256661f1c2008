"""The direct text path (``_bridge/direct``) against CPython's ``open``.

Text files of a 1:1 codec (latin-1, ASCII) with no newline decoder have
their ``seek(int)`` and ``read(n)`` served without TextIOWrapper; so do
the chunks of pure ASCII with no b"\r" of the ASCII-compatible codecs
(UTF-8: ``open(p, "r")``'s default) under every ``newline`` setting. Every
other operation must then find the TextIOWrapper exactly where CPython's
would be. Hypothesis runs random sequences of direct and other operations
(tell, readline, ``async for``, read(-1), the binary buffer, seeks that
are not direct, ``newlines``) on both and compares every result and
exception, then the final ``tell()``, ``buffer.tell()`` and ``newlines``.
(Asking for ``newlines`` brings the TextIOWrapper up to date: it is an
operation of the sequences, not asked after every step, else what the direct
path must remember over several reads would never be tested.) The counters
prove which path served what.
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
from tests.conftest import LOOPS, evict, outcome, warm

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
    if name == "newlines":
        return ("ok", f.newlines)
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
    if name == "newlines":
        return ("ok", f.newlines)
    return outcome(lambda: f.buffer.read(op[1]))


def check_sequence(
    loop_name: str, path: Path, data: bytes, kwargs: dict[str, Any], seq: list[Any], cold: bool
) -> None:
    path.write_bytes(data)
    (evict if cold else warm)(path)

    async def ours() -> list[Any]:
        out = []
        if not cold:  # the policy learns the file is warm: reads inline (C) at once
            async with aiofastread.open(path, "rb") as g:
                await g.read(1)
        async with aiofastread.open(path, **kwargs) as f:
            for op in seq:
                out.append(await our_op(f, op))
            out.append(f.newlines)
            out.append(await aoutcome(f.tell))
            out.append(outcome(f.buffer.tell))
        return out

    loop = LOOPS[loop_name]()
    try:
        got = loop.run_until_complete(ours())
    finally:
        loop.close()
    with open(path, **kwargs) as f:
        want: list[Any] = [cpython_op(f, op) for op in seq]
        want.append(f.newlines)
        want.append(outcome(f.tell))
        want.append(outcome(f.buffer.tell))
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        step = [*seq, ("newlines",), ("tell",), ("buffer_tell",)][i]
        assert g == w, f"step {i} {step}: {g!r} != {w!r}"


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
        ("ascii", "\n", "ignore", True),  # ASCII chunks only, b2cratio tracked
        ("latin-1", None, None, True),  # chunks with no b"\r" only
        ("latin-1", "", None, True),
        ("utf-8", "\n", None, True),  # ASCII chunks only
        ("utf-8", None, None, True),
        ("UTF8", "", "surrogateescape", True),
        ("cp1252", "\n", None, True),
        ("utf-8-sig", None, None, False),  # its BOM state
        ("utf-16", None, None, False),  # not ASCII-compatible
        ("cp500", "\n", None, False),  # EBCDIC
    ],
)
async def test_direct_path_only_for_ascii_compatible_codecs(
    data_dir: Path, encoding: str, newline: str | None, errors: str | None, direct_path: bool
) -> None:
    path = data_dir / "t.txt"
    path.write_bytes(b"abc\n" * 10)
    async with aiofastread.open(path, encoding=encoding, newline=newline, errors=errors) as f:
        assert (f._runner.direct is not None) == direct_path
    async with aiofastread.open(path, "r+", encoding="latin-1", newline="\n") as f:
        assert f._runner.direct is None  # writable: TextIOWrapper's own
    assert direct_for(io.StringIO(), None, "\n") is None  # type: ignore[arg-type]


# -- the C hit (native/afr_text.c) ------------------------------------------------

C_TEXT = _native.HAS_HIT_PATH


def c_path_on() -> bool:
    """Whether the C hit serves reads in this test (the native backend)."""
    return C_TEXT and _native.backend.name == "native"


async def test_c_hit_serves_whole_chunks(data_dir: Path) -> None:
    """Cached seek + read: one NOWAIT read a chunk, made in C, no coroutine
    of ours; what is left of a chunk is served from its decoded text."""
    path = data_dir / "t.txt"
    data = bytes(range(256)) * 256
    path.write_bytes(data)
    warm(path)
    async with aiofastread.open(path, encoding="latin-1", newline="\n") as f:
        await f.read(1)  # the policy learns the file is warm
        c_reads, py_reads = direct.COUNTERS.c_reads, direct.COUNTERS.python_reads
        syscalls = _native.hit_syscalls()
        assert await f.seek(1000) == 1000
        assert await f.read(16384) == data[1000:17384].decode("latin-1")
        if c_path_on():
            assert direct.COUNTERS.c_reads - c_reads == 1
            assert _native.hit_syscalls() - syscalls == 1
        # The next chunk continues the stream: C or Python, by the binary rule.
        assert await f.read(5) == data[17384:17389].decode("latin-1")
        c_reads, syscalls = direct.COUNTERS.c_reads, _native.hit_syscalls()
        assert await f.read(7) == data[17389:17396].decode("latin-1")  # from that chunk
        if c_path_on():
            assert direct.COUNTERS.c_reads - c_reads == 1
            assert _native.hit_syscalls() == syscalls  # no I/O
            assert direct.COUNTERS.python_reads - py_reads <= 1
            assert type(f.read(3)).__name__ == "Ready"  # answered at once; dropped: undone
        assert await f.read(6) == data[17396:17402].decode("latin-1")
        with open(path, encoding="latin-1", newline="\n") as cpy:
            cpy.seek(1000)
            cpy.read(16384 + 5 + 7 + 6)
            assert await f.tell() == cpy.tell()
            assert await f.readline() == cpy.readline()


@pytest.mark.parametrize("how", ["close", "throw", "drop", "cancel"])
async def test_c_hit_not_delivered_is_undone(data_dir: Path, how: str) -> None:
    """A read or seek whose answer was never delivered leaves the file as if
    it had not run (invariant 4), unless something changed it since."""
    path = data_dir / "t.txt"
    data = bytes(range(256)) * 256
    path.write_bytes(data)
    warm(path)
    if how == "drop" and not c_path_on():
        pytest.skip("a coroutine dropped unawaited is the caller's error")
    async with aiofastread.open(path, encoding="latin-1", newline="\n") as f:
        await f.seek(100)
        assert await f.read(10) == data[100:110].decode("latin-1")
        for call in (
            lambda: f.read(3),  # from the decoded chunk
            lambda: f.seek(5),
            lambda: f.seek(30000),
        ):
            pending = call()
            if how == "close":
                pending.close()
            elif how == "throw":
                with pytest.raises(KeyError):
                    pending.throw(KeyError("x"))
            elif how == "drop":
                del pending
            else:
                task = asyncio.ensure_future(pending)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        assert await f.read(4) == data[110:114].decode("latin-1")
        await f.seek(30000)  # not where the last read ended: a C chunk read
        pending = f.read(16384)
        pending.close()
        assert await f.read(4) == data[30000:30004].decode("latin-1")
        # Something else ran meanwhile: that state stays.
        pending = f.read(3)
        assert await f.seek(200) == 200
        pending.close()
        assert await f.read(2) == data[200:202].decode("latin-1")
        with open(path, encoding="latin-1", newline="\n") as cpy:
            cpy.seek(200)
            cpy.read(2)
            assert await f.tell() == cpy.tell()
            assert f.buffer.tell() == cpy.buffer.tell()


async def test_c_hit_miss_not_tried_twice(data_dir: Path) -> None:
    """A chunk the C hit finds uncached goes to the general path with the
    NOWAIT answer: no second NOWAIT try, and the text is right."""
    path = data_dir / "t.txt"
    data = bytes(range(256)) * 1024
    path.write_bytes(data)
    warm(path)
    async with aiofastread.open(path, encoding="latin-1", newline="\n") as f:
        await f.read(1)  # warm: the policy tries inline from now on
        evict(path)
        syscalls = _native.hit_syscalls()
        stats = aiofastread.statistics()
        assert await f.seek(100000) == 100000
        assert await f.read(16384) == data[100000:116384].decode("latin-1")
        if c_path_on():
            assert _native.hit_syscalls() - syscalls == 1
            after = aiofastread.statistics()
            assert after.inline_misses + after.short_reads > stats.inline_misses + stats.short_reads


async def test_c_hit_ascii_refuses_non_ascii(data_dir: Path) -> None:
    """ASCII with a non-ASCII byte in the chunk: not a hit here (nothing
    counted), and TextIOWrapper raises as CPython's does."""
    path = data_dir / "t.txt"
    data = b"abc\n" * 5000 + b"\xe9" + b"abc\n" * 5000
    path.write_bytes(data)
    warm(path)
    async with aiofastread.open(path, encoding="ascii", newline="\n") as f:
        assert await f.read(100) == "abc\n" * 25
        c_reads = direct.COUNTERS.c_reads
        assert await f.seek(19000) == 19000
        with pytest.raises(UnicodeDecodeError):
            await f.read(16384)
        assert direct.COUNTERS.c_reads == c_reads
    with open(path, encoding="ascii", newline="\n") as cpy:
        cpy.seek(19000)
        with pytest.raises(UnicodeDecodeError):
            cpy.read(16384)


async def test_c_hit_class(data_dir: Path) -> None:
    """The direct path's files are DirectTextIOWrapper (C read/seek with the
    compiled module); the others AsyncTextIOWrapper."""
    from aiofastread.threadpool.text import AsyncTextIOWrapper, DirectTextIOWrapper

    path = data_dir / "t.txt"
    path.write_bytes(b"abc\n" * 10)
    async with aiofastread.open(path, encoding="latin-1", newline="\n") as f:
        assert type(f) is DirectTextIOWrapper
        assert f._direct is f._runner.direct
        assert await f.read() == "abc\n" * 10  # read(-1): the general path
        assert await f.seek(0, 0) == 0
        assert await f.read(2) == "ab"
        with pytest.raises(TypeError):
            await f.read(1, 2)  # type: ignore[call-arg]
    async with aiofastread.open(path, encoding="utf-16") as f:
        assert type(f) is AsyncTextIOWrapper


# Seek + read heavy sequences on a warm file large enough for whole chunks,
# with answers dropped before delivery ("drop": the C hit's undo), against
# CPython; the C hit must have served some of them (native backend).
BIG_LATIN1 = bytes(range(256)) * 820  # 209920 bytes
BIG_ASCII = (bytes(range(32, 127)) + b"\n") * 2187  # 209952 bytes
c_ops = st.one_of(
    st.tuples(st.just("seek"), st.integers(0, 200000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.integers(1, 40000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.integers(1, 300)),
    st.tuples(st.just("drop"), st.sampled_from(("read", "seek")), st.integers(0, 200000)),
    st.tuples(st.just("tell")),
    st.tuples(st.just("readline"), st.sampled_from((-1, 5))),
)


@pytest.mark.parametrize("loop_name", list(LOOPS))
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seq=st.lists(c_ops, min_size=1, max_size=30), ascii_only=st.booleans())
def test_c_hit_sequences_equal_cpython(
    data_dir: Path, loop_name: str, seq: list[Any], ascii_only: bool
) -> None:
    data = BIG_ASCII if ascii_only else BIG_LATIN1
    kwargs = {"encoding": "ascii" if ascii_only else "latin-1", "newline": "\n"}
    check_c_sequence(data_dir / "big.txt", data, kwargs, loop_name, seq)


def check_c_sequence(
    path: Path, data: bytes, kwargs: dict[str, Any], loop_name: str, seq: list[Any]
) -> None:
    """Run ``seq`` (``drop`` steps: a read or seek whose answer is closed,
    never delivered) on our file and the others on CPython's; compare every
    result, then ``newlines``, ``tell()`` and ``buffer.tell()``."""
    ops = [op for op in seq if op[0] != "drop"]

    async def dropping() -> list[Any]:
        out = []
        async with aiofastread.open(path, "rb") as g:
            await g.read(1)  # warm in the policy
        async with aiofastread.open(path, **kwargs) as f:
            for op in seq:
                if op[0] == "drop":
                    pending = f.read(op[2] % 20000 + 1) if op[1] == "read" else f.seek(op[2])
                    pending.close()  # never delivered: as if not called
                else:
                    out.append(await our_op(f, op))
            out.append(f.newlines)
            out.append(await aoutcome(f.tell))
            out.append(outcome(f.buffer.tell))
        return out

    path.write_bytes(data)
    warm(path)
    loop = LOOPS[loop_name]()
    try:
        got = loop.run_until_complete(dropping())
    finally:
        loop.close()
    with open(path, **kwargs) as f:  # type: ignore[call-overload]
        want: list[Any] = [cpython_op(f, op) for op in ops]
        want.append(f.newlines)
        want.append(outcome(f.tell))
        want.append(outcome(f.buffer.tell))
    assert got == want


async def test_c_hit_seek_undone_after_other_operation(data_dir: Path) -> None:
    """Found by the sequences above: after readline (the TextIOWrapper's
    state its own), a seek never delivered must not leave the direct state
    marked known (it was not)."""
    path = data_dir / "big.txt"
    path.write_bytes(BIG_LATIN1)
    warm(path)
    async with aiofastread.open(path, encoding="latin-1", newline="\n") as f:
        line = await f.readline()
        f.seek(0).close()
        got = await f.read(1)
    with open(path, encoding="latin-1", newline="\n") as cpy:
        assert line == cpy.readline()
        assert got == cpy.read(1)


# -- ASCII chunks of the ASCII-compatible codecs (``open(p, "r")``'s default) ------

# What is put into ASCII text, at random offsets and next to chunk edges:
# line endings the newline decoder translates or holds, characters of 2, 3
# and 4 bytes (straddling a chunk's edge when placed there) and bytes that
# are not UTF-8 (or undefined in cp1252).
INSERTS = (
    b"\r",
    b"\r\n",
    b"\n",
    b"\r\r",
    "\u00e9".encode(),
    "\u20ac".encode(),
    "\U0001f600".encode(),
    b"\xff",
    b"\xe2\x82",
    b"\x81",
)
CHUNK_EDGES = tuple(k * 8192 + d for k in range(1, 9) for d in (-3, -2, -1, 0, 1))


@st.composite
def mixed_contents(draw: st.DrawFn) -> bytes:
    """ASCII lines (chunks the direct path takes), with some of INSERTS."""
    size = draw(st.sampled_from((0, 1, 100, 8191, 8192, 8193, 20000, 40000, 70000)))
    # Lines up to 200 bytes, or of 12 KiB: chunks with no line end too.
    line = draw(st.integers(1, 200) | st.just(12288))
    data = bytearray(10 if i % line == line - 1 else 97 + i % 26 for i in range(size))
    count = draw(st.integers(0, 6))
    for _ in range(count):
        if not data:
            break
        near_edge = [e for e in CHUNK_EDGES if e < len(data)]
        at = draw(
            st.sampled_from(near_edge)
            if near_edge and draw(st.booleans())
            else st.integers(0, len(data) - 1)
        )
        insert = draw(st.sampled_from(INSERTS))
        data[at : at + len(insert)] = insert
    return bytes(data[:size])


universal_ops = st.one_of(
    st.tuples(st.just("seek"), st.integers(0, 71000) | st.sampled_from((0, *CHUNK_EDGES))),
    st.tuples(st.just("read"), st.integers(1, 20000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.integers(1, 300)),
    st.tuples(st.just("read"), st.sampled_from((0, -1, None))),
    st.tuples(st.just("tell")),
    st.tuples(st.just("readline"), st.sampled_from((-1, 5, 9000))),
    st.tuples(st.just("next")),
    st.tuples(st.just("seek_cur")),
    st.tuples(st.just("seek_end")),
    st.tuples(st.just("newlines")),
)
# Runs of direct seeks and reads, with nothing else bringing the
# TextIOWrapper up to date between them but ``newlines`` now and then.
direct_ops = st.one_of(
    st.tuples(st.just("seek"), st.integers(0, 71000) | st.sampled_from((0, *CHUNK_EDGES))),
    st.tuples(st.just("read"), st.integers(1, 20000) | st.sampled_from(EDGES)),
    st.tuples(st.just("read"), st.integers(1, 300)),
)
universal_sequences = (
    st.lists(universal_ops, max_size=25)
    | st.lists(universal_ops | buffer_ops, max_size=25)
    | st.lists(direct_ops | st.tuples(st.just("newlines")), max_size=25)
)


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "latin-1"])
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    newline=st.sampled_from((None, "", "\n", "\r", "\r\n")),
    errors=st.sampled_from(("strict", "replace", "surrogateescape", "ignore", "backslashreplace")),
    content=mixed_contents(),
    seq=universal_sequences,
    cold=st.booleans(),
)
def test_ascii_chunks_equal_cpython(
    data_dir: Path,
    loop_name: str,
    encoding: str,
    newline: str | None,
    errors: str,
    content: bytes,
    seq: list[Any],
    cold: bool,
) -> None:
    kwargs = {"mode": "r", "encoding": encoding, "errors": errors, "newline": newline}
    check_sequence(loop_name, data_dir / "t.txt", content, kwargs, seq, cold)


# A file of 8 KiB chunks: ASCII with b"\n" (direct), ASCII with no line end,
# a chunk with "\r\n", one with a lone b"\r" at its last byte, one with a
# UTF-8 character straddling its end, ASCII again.
def _chunk(fill: bytes, tail: bytes = b"") -> bytes:
    body = (fill * 8192)[: 8192 - len(tail)]
    return body + tail


MIXED = (
    _chunk(b"abcdefg\n")
    + _chunk(b"x")
    + _chunk(b"abc\r\n")
    + _chunk(b"abcdefg\n", b"\r")
    + _chunk(b"abcdefg\n", "\u20ac".encode()[:2])
    + "\u20ac".encode()[2:]
    + _chunk(b"abcdefg\n")[1:]
    + _chunk(b"q")
)


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("newline", [None, ""])
@pytest.mark.parametrize(
    "seq",
    [
        # newlines from a direct chunk, then a seek elsewhere: it stays
        [("read", 10), ("seek", 8192), ("read", 10), ("tell",)],
        [("read", 10), ("seek", 8192), ("read", 10), ("seek", 100), ("readline", -1)],
        # seek(0) forgets it; seek(other) keeps it
        [("seek", 100), ("read", 10), ("seek", 0), ("seek", 8192), ("read", 5), ("tell",)],
        [("seek", 100), ("read", 10), ("seek", 0), ("read", 5), ("seek", 8192), ("tell",)],
        [("read", 10), ("seek", 0), ("seek", 9000), ("tell",)],
        [("read", 10), ("tell",), ("seek", 0), ("seek", 8192), ("read", 5), ("newlines",)],
        [("seek", 16384), ("read", 10), ("seek", 0), ("seek", 8192), ("read", 5)],
        [("seek", 16384), ("read", 10), ("seek", 8192), ("read", 5), ("newlines",)],
        # "\r\n" and the lone "\r" at a chunk's end: the general path
        [("seek", 16384), ("read", 10), ("seek", 8192), ("read", 20000), ("tell",)],
        [("seek", 3 * 8192 - 5), ("read", 10), ("read", 10), ("tell",), ("read", 3)],
        [("seek", 3 * 8192), ("read", 8192), ("seek", 6 * 8192), ("read", 16384), ("tell",)],
        # a character straddling a chunk's end; b2cratio > 1 after it
        [("seek", 4 * 8192), ("read", 9000), ("seek", 0), ("read", 16384), ("tell",)],
        [("seek", 4 * 8192), ("read", 8000), ("seek", 100), ("read", 1000), ("tell",)],
        [("seek", 5 * 8192 - 1), ("read", 3), ("tell",), ("seek", 6 * 8192), ("read", 2)],
        # tell() at a chunk that starts at 0 resets the decoder (C tell)
        [("read", 10), ("tell",), ("seek", 8192), ("read", 10), ("seek", 50)],
        # ... and `newlines` names only the part of the chunk used: a replay
        # of the whole chunk after it would name more (found by hypothesis)
        [("read", 1), ("tell",), ("read", 1), ("newlines",)],
        [("read", 1), ("tell",), ("read", 5000), ("tell",), ("newlines",)],
        [("read", 5000), ("next",), ("seek", 0), ("read", 1), ("buffer_read", 10)],
        [("next",), ("next",), ("seek", 8192), ("read", 10), ("next",), ("tell",)],
        # a tell() cookie that feeds the decoder (the lone "\r" at chunk 3's
        # end, translated with the next chunk's first byte): the BufferedReader
        # holds bytes after the seek to it, no direct seek until they are gone
        [
            ("seek", 3 * 8192),
            ("read", 8192),
            ("seek_cur",),
            ("seek", 3 * 8192 + 100),
            ("read", 10),
            ("read", 9000),
            ("tell",),
            ("newlines",),
        ],
        [
            ("seek", 3 * 8192),
            ("read", 8192),
            ("seek_cur",),
            ("read", 3),
            ("seek", 4 * 8192 + 7),
            ("read", 5),
            ("buffer_tell",),
        ],
    ],
)
def test_ascii_chunks_examples(
    data_dir: Path, loop_name: str, newline: str | None, seq: list[Any]
) -> None:
    kwargs = {"mode": "r", "encoding": "utf-8", "newline": newline}
    check_sequence(loop_name, data_dir / "t.txt", MIXED, kwargs, seq, cold=False)


async def test_default_mode_served_directly(data_dir: Path) -> None:
    """``open(p, "r")`` on cached ASCII text: seek + read in C (native
    backend) or in Python, no pool job, no TextIOWrapper; chunks with a
    non-ASCII byte or a b"\r" go to the TextIOWrapper, with CPython's
    results and ``newlines``."""
    path = data_dir / "t.txt"
    data = MIXED
    path.write_bytes(data)
    warm(path)
    async with aiofastread.open(path, "rb") as g:
        await g.read(1)  # the policy learns the file is warm
    cpy = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    async with aiofastread.open(path, "r", encoding="utf-8") as f:
        assert type(f._runner.direct) is direct.DirectText
        reads, c_reads, syncs = (
            direct.COUNTERS.reads,
            direct.COUNTERS.c_reads,
            direct.COUNTERS.syncs,
        )
        submissions = _pool.default_pool().statistics().submissions
        for offset, size in ((0, 100), (100, 8000), (6 * 8192, 16384), (8192, 8192)):
            assert await f.seek(offset) == cpy.seek(offset)
            assert await f.read(size) == cpy.read(size)
        assert direct.COUNTERS.reads - reads == 4
        assert direct.COUNTERS.syncs == syncs  # the TextIOWrapper was not needed
        if c_path_on():
            assert direct.COUNTERS.c_reads - c_reads >= 3  # the first disarms the line batch
        if _native.backend.can_read_inline:
            assert _pool.default_pool().statistics().submissions == submissions
        assert f.newlines == cpy.newlines == "\n"  # learnt from direct chunks
        assert await f.tell() == cpy.tell()
        # Not for this path: "\r\n" (chunk 2), a lone "\r" (3), a 3-byte
        # character across 4 and 5.
        for offset, size in ((2 * 8192, 100), (3 * 8192 + 10, 100), (4 * 8192 + 8000, 300)):
            reads = direct.COUNTERS.reads
            assert await f.seek(offset) == cpy.seek(offset)
            assert await f.read(size) == cpy.read(size)
            assert direct.COUNTERS.reads == reads
            assert f.newlines == cpy.newlines
            assert await f.tell() == cpy.tell()
        assert f.newlines == ("\r", "\n", "\r\n")
        # b2cratio > 1 now (the chunk with the 3-byte character): a want
        # over _CHUNK_SIZE / 7 characters is not sized by this path...
        reads = direct.COUNTERS.reads
        assert await f.seek(0) == cpy.seek(0)
        assert await f.read(5000) == cpy.read(5000)
        assert direct.COUNTERS.reads == reads
        # ...but that read's chunk was ASCII: b2cratio is 1 again, learnt
        # at the next seek (BridgeRaw.chunk_ok).
        assert await f.seek(100) == cpy.seek(100)
        assert await f.read(8000) == cpy.read(8000)
        assert await f.seek(200) == cpy.seek(200)
        assert await f.read(50) == cpy.read(50)
        assert direct.COUNTERS.reads == reads + 2
        assert f.newlines == cpy.newlines
        assert await f.tell() == cpy.tell()
        assert f.buffer.tell() == cpy.buffer.tell()
    cpy.close()


async def test_default_mode_async_for_keeps_line_batch(data_dir: Path) -> None:
    """A default-mode file has both the direct path and ``async for``'s
    lines decoded ahead: a direct seek disarms the batch, the next
    ``async for`` arms it again at the seek's offset."""
    from aiofastread._bridge import lines

    path = data_dir / "t.txt"
    text = "".join(f"{i:05d} line\n" for i in range(20000))
    path.write_text(text, encoding="utf-8")
    warm(path)
    async with aiofastread.open(path) as f:
        assert f._runner.direct is not None
        assert f._runner.batch is not None
        blocks = lines.COUNTERS.blocks
        got = [line async for line in f]
        assert "".join(got) == text
        if _native.backend.can_read_inline:
            assert lines.COUNTERS.blocks > blocks  # the batch served them
        assert await f.seek(11 * 100) == 1100
        assert await f.read(11) == text[1100:1111]
        assert await f.seek(11 * 200) == 2200
        blocks = lines.COUNTERS.blocks
        got = []
        async for line in f:
            got.append(line)
            if len(got) == 3000:
                break
        assert "".join(got) == text[2200 : 2200 + 3000 * 11]
        if _native.backend.can_read_inline:  # armed again at the direct seek's offset
            assert lines.COUNTERS.blocks > blocks
        assert await f.read(11) == text[2200 + 3000 * 11 : 2200 + 3001 * 11]
        assert f.newlines == "\n"
        with open(path, encoding="utf-8") as cpy:
            cpy.seek(2200)
            for _ in range(3000):
                cpy.readline()
            cpy.read(11)
            assert await f.tell() == cpy.tell()
            assert f.buffer.tell() == cpy.buffer.tell()


@pytest.mark.parametrize("loop_name", list(LOOPS))
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seq=st.lists(
        c_ops | st.tuples(st.just("next")) | st.tuples(st.just("newlines")), min_size=1, max_size=30
    ),
    newline=st.sampled_from((None, "")),
)
def test_c_hit_utf8_sequences_equal_cpython(
    data_dir: Path, loop_name: str, seq: list[Any], newline: str | None
) -> None:
    """The C hit's sequences (dropped answers included) on a UTF-8 file
    with ASCII chunks and chunks that are not, comparing ``newlines`` too."""
    kwargs = {"encoding": "utf-8", "newline": newline}
    check_c_sequence(data_dir / "big.txt", MIXED * 3, kwargs, loop_name, seq)  # 196608 bytes


async def test_no_direct_seek_while_the_buffer_holds_bytes(data_dir: Path) -> None:
    """A seek to a cookie that feeds the decoder reads ahead into the
    BufferedReader: its next chunks come from there, not from the raw, so no
    seek is taken directly until a read has drained it."""
    path = data_dir / "t.txt"
    path.write_bytes(MIXED)
    warm(path)
    with open(path, encoding="utf-8") as cpy:
        cpy.seek(3 * 8192)
        text = cpy.read(8192)  # ends with the lone "\r", translated with chunk 4's "a"
        cookie = cpy.tell()
        assert cookie > 1 << 64  # bytes to feed
        async with aiofastread.open(path, encoding="utf-8") as f:
            assert await f.seek(3 * 8192) == 3 * 8192
            assert await f.read(8192) == text
            assert await f.tell() == cookie
            assert await f.seek(cookie) == cpy.seek(cookie)
            direct_text = f._runner.direct
            assert not direct_text.enabled  # BufferedReader.read(bytes to feed) read ahead
            assert await f.read(20000) == cpy.read(20000)  # through the buffer and on
            assert await f.seek(6 * 8192 + 1) == cpy.seek(6 * 8192 + 1)
            assert direct_text.enabled  # drained by that read: direct seeks again
            reads = direct.COUNTERS.reads
            assert await f.read(100) == cpy.read(100)
            assert direct.COUNTERS.reads == reads + 1
            assert await f.tell() == cpy.tell()
            assert f.newlines == cpy.newlines


async def warm_mixed(data_dir: Path, needs: str) -> Path:
    """MIXED in a cached file the policy knows warm (skipped, saying what it
    ``needs``, when the C hit path is not on)."""
    if not c_path_on():
        pytest.skip(needs)
    path = data_dir / "t.txt"
    path.write_bytes(MIXED)
    warm(path)
    async with aiofastread.open(path, "rb") as g:
        await g.read(1)
    return path


@pytest.mark.parametrize("how", ["close", "drop"])
async def test_c_hit_undo_keeps_newline_flags(data_dir: Path, how: str) -> None:
    """A seek to 0 or a read never delivered puts back what ``newlines``
    must learn at the next sync (``lf``, ``reset``) and ``ratio_ok``."""
    path = await warm_mixed(data_dir, "the C hit's Ready")
    async with aiofastread.open(path, encoding="utf-8") as f:
        await f.seek(100)
        assert await f.read(10) == MIXED[100:110].decode()  # a b"\n" seen: lf
        pending = f.seek(0)  # would reset `newlines`
        if how == "close":
            pending.close()
        del pending
        await f.seek(8192)
        pending = f.read(8000)  # a chunk of "x": nothing for `newlines`
        if how == "close":
            pending.close()
        del pending
        assert await f.read(5) == "xxxxx"
        assert f.newlines == "\n"  # as CPython's: seek(100), read(10), seek(8192), read(5)
        with open(path, encoding="utf-8") as cpy:
            cpy.seek(100)
            cpy.read(10)
            cpy.seek(8192)
            cpy.read(5)
            assert f.newlines == cpy.newlines
            assert await f.tell() == cpy.tell()


async def test_refused_chunk_is_read_once(data_dir: Path) -> None:
    """A chunk the C hit read and this path refused (a b"\\r" here) is what
    TextIOWrapper then decodes, from the raw's window: one NOWAIT read."""
    path = await warm_mixed(data_dir, "the C hit's NOWAIT read")
    async with aiofastread.open(path, encoding="utf-8") as f:
        await f.seek(50)
        await f.read(10)
        stats, syscalls = aiofastread.statistics(), _native.hit_syscalls()
        reads = direct.COUNTERS.reads
        assert await f.seek(2 * 8192 + 10) == 2 * 8192 + 10
        got = await f.read(100)
        after = aiofastread.statistics()
        assert direct.COUNTERS.reads == reads  # refused: TextIOWrapper's read
        assert _native.hit_syscalls() - syscalls == 1
        assert after.inline_hits - stats.inline_hits == 1
        assert after.pool_reads == stats.pool_reads
    with open(path, encoding="utf-8") as cpy:
        cpy.seek(2 * 8192 + 10)
        assert got == cpy.read(100)
