"""``async for`` over lines decoded ahead (``_bridge/lines``) against CPython.

The batch hands out lines cut from whole chunks it decoded itself, while the
TextIOWrapper stays behind; any other operation must then find it exactly
where ``readline()`` calls would have left it. Hypothesis runs random
sequences of partial ``async for`` (then ``break``), readline, read, tell,
seeks (to told cookies and to plain offsets), ``newlines`` and the binary
buffer, on files with "\\r\\n", lone "\\r", non-ASCII and invalid bytes, and
compares every result and exception with ``io.open``'s, then the final
``tell()`` and ``buffer.tell()``. The counters prove which path served what.
"""

from __future__ import annotations

import types
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiofastread
from aiofastread import _native, _pool
from aiofastread._bridge import lines
from tests.conftest import LOOPS, evict, outcome, warm

# 0 to 3 TextIOWrapper chunks (8 KiB) and past a refill (64 KiB).
SIZES = (0, 1, 100, 8191, 8192, 8193, 16384, 20000, 30000, 70000)
PIECES = (b"ab", b"\n", b"\r\n", b"\r", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"xyz")

ops = st.one_of(
    st.tuples(st.just("iter"), st.sampled_from((1, 2, 150, 1000, 3000, 5000, 20000))),
    st.tuples(st.just("iter"), st.integers(1, 400)),
    st.tuples(st.just("readline"), st.sampled_from((-1, 5, 9000))),
    st.tuples(st.just("read"), st.integers(1, 20000) | st.sampled_from((0, -1, 1, 8192))),
    st.tuples(st.just("tell")),
    st.tuples(st.just("seek_told")),
    st.tuples(st.just("seek"), st.sampled_from((0, 1, 8192, 8193, 20000))),
    st.tuples(st.just("newlines")),
)
buffer_ops = st.tuples(st.just("buffer_tell"))
sequences = st.lists(ops, max_size=12) | st.lists(ops | buffer_ops, max_size=12)


@st.composite
def contents(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from(SIZES))
    seed = draw(st.integers(0, 1 << 16))
    out = bytearray()
    i = 0
    while len(out) < size:
        out += PIECES[(i * 7 + seed + (i >> 4) * 3) % len(PIECES)]
        i += 1
    data = bytes(out[:size])
    bad = draw(st.integers(0, 3))
    if data and bad == 0:  # an invalid byte somewhere
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + b"\xff" + data[at + 1 :]
    return data


async def aoutcome(call: Any) -> tuple[str, Any]:
    try:
        return ("ok", await call())
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def cpython_iter(f: Any, k: int) -> tuple[list[str], tuple[str, Any]]:
    got: list[str] = []
    try:
        for _ in range(k):
            line = f.readline()
            if not line:
                break
            got.append(line)
    except Exception as exc:
        return got, (type(exc).__name__, str(exc))
    return got, ("ok", None)


async def our_iter(f: Any, k: int) -> tuple[list[str], tuple[str, Any]]:
    got: list[str] = []
    if k == 0:
        return got, ("ok", None)
    try:
        async for line in f:
            got.append(line)
            if len(got) == k:
                break
    except Exception as exc:
        return got, (type(exc).__name__, str(exc))
    return got, ("ok", None)


def cpython_run(f: Any, seq: list[Any]) -> list[Any]:
    out: list[Any] = []
    told = 0
    for op in seq:
        name = op[0]
        if name == "iter":
            out.append(cpython_iter(f, op[1]))
        elif name == "readline":
            out.append(outcome(partial(f.readline, op[1])))
        elif name == "read":
            out.append(outcome(partial(f.read, op[1])))
        elif name == "tell":
            res = outcome(f.tell)
            if res[0] == "ok":
                told = res[1]
            out.append(res)
        elif name == "seek_told":
            out.append(outcome(partial(f.seek, told)))
        elif name == "seek":
            out.append(outcome(partial(f.seek, op[1])))
        elif name == "newlines":
            out.append(outcome(lambda: f.newlines))
        else:
            out.append(outcome(f.buffer.tell))
    out.append(outcome(f.tell))
    out.append(outcome(f.buffer.tell))
    return out


async def our_run(f: Any, seq: list[Any]) -> list[Any]:
    out: list[Any] = []
    told = 0
    for op in seq:
        name = op[0]
        if name == "iter":
            out.append(await our_iter(f, op[1]))
        elif name == "readline":
            out.append(await aoutcome(partial(f.readline, op[1])))
        elif name == "read":
            out.append(await aoutcome(partial(f.read, op[1])))
        elif name == "tell":
            res = await aoutcome(f.tell)
            if res[0] == "ok":
                told = res[1]
            out.append(res)
        elif name == "seek_told":
            out.append(await aoutcome(partial(f.seek, told)))
        elif name == "seek":
            out.append(await aoutcome(partial(f.seek, op[1])))
        elif name == "newlines":
            out.append(outcome(lambda: f.newlines))
        else:
            out.append(outcome(f.buffer.tell))
    out.append(await aoutcome(f.tell))
    out.append(outcome(f.buffer.tell))
    return out


def check_sequence(
    loop_name: str, path: Path, data: bytes, kwargs: dict[str, Any], seq: list[Any], cold: bool
) -> None:
    path.write_bytes(data)
    (evict if cold else warm)(path)

    async def ours() -> list[Any]:
        async with aiofastread.open(path, **kwargs) as f:
            return await our_run(f, seq)

    loop = LOOPS[loop_name]()
    try:
        got = loop.run_until_complete(ours())
    finally:
        loop.close()
    with open(path, **kwargs) as f:
        want = cpython_run(f, seq)
    names = [*seq, ("tell",), ("buffer_tell",)]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"step {i} {names[i]}: {g!r} != {w!r}"


@pytest.mark.parametrize("loop_name", list(LOOPS))
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    encoding=st.sampled_from(("utf-8", "cp1252", "latin-1", "ascii")),
    newline=st.sampled_from((None, "\n")),
    errors=st.sampled_from(("strict", "replace", "surrogateescape", "backslashreplace")),
    data=st.data(),
    seq=sequences,
    cold=st.sampled_from((False, False, False, True)),
)
def test_lines_batch_equals_cpython(
    data_dir: Path,
    loop_name: str,
    encoding: str,
    newline: str | None,
    errors: str,
    data: st.DataObject,
    seq: list[Any],
    cold: bool,
) -> None:
    content = data.draw(contents())
    kwargs = {"mode": "r", "encoding": encoding, "errors": errors, "newline": newline}
    check_sequence(loop_name, data_dir / "t.txt", content, kwargs, seq, cold)


def sample(count: int) -> bytes:
    return b"".join(
        f"{i:06d} fox \u00e9\u20ac".encode() + (b"\n", b"\r\n", b"\r")[i % 3] for i in range(count)
    )


# Sequences that reached wrong states while this was written, kept as examples.
@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize(
    "seq",
    [
        [("iter", 1000), ("tell",), ("newlines",), ("iter", 3000), ("read", 100), ("tell",)],
        [("iter", 2500), ("newlines",)],
        [("iter", 7000), ("read", 5)],
        [("iter", 5000), ("seek_told",), ("iter", 10), ("buffer_tell",), ("iter", 10)],
        [("iter", 1), ("seek", 0), ("iter", 100000), ("tell",)],
        [("readline", -1), ("iter", 10), ("seek", 8192), ("iter", 4000), ("read", 1)],
    ],
)
def test_lines_batch_examples(data_dir: Path, loop_name: str, seq: list[Any]) -> None:
    kwargs = {"mode": "r", "encoding": "utf-8", "newline": None}
    check_sequence(loop_name, data_dir / "t.txt", sample(9000), kwargs, seq, cold=False)


def lf_file_with_one_crlf(crlf_chunk: int, chunks: int) -> bytes:
    """ASCII lines of 64 bytes (128 to a chunk: every chunk boundary is clean)
    ending in "\n", but one ending in "\r\n" in chunk ``crlf_chunk``."""
    out = []
    for i in range(chunks * 128):
        line = f"{i:06d}".ljust(63, "x").encode()
        if i == crlf_chunk * 128 + 50:
            out.append(line[:62] + b"\r\n")
        else:
            out.append(line + b"\n")
    return b"".join(out)


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("crlf_chunk", [1, 9, 14])
def test_newline_kinds_of_skipped_chunks(data_dir: Path, loop_name: str, crlf_chunk: int) -> None:
    """A "\r\n" in a chunk that the replay's shortcut would skip: newlines
    must still name it (the shortcut is not taken then), as CPython's does."""
    data = lf_file_with_one_crlf(crlf_chunk, chunks=20)
    seq = [
        ("iter", 128 * 8 + 5),  # into the second 64 KiB refill: a first replay
        ("newlines",),
        ("iter", 128 * 8),  # through chunk 16: a replay ending in chunk 15 or 16
        ("newlines",),
        ("tell",),
        ("iter", 600),
        ("newlines",),
    ]
    kwargs = {"mode": "r", "encoding": "utf-8", "newline": None}
    check_sequence(loop_name, data_dir / "t.txt", data, kwargs, seq, cold=False)


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("newline", [None, "\n"])
@pytest.mark.parametrize("across", [b"\xc3\xa9", b"\r\n", b"\rx"])
def test_replay_across_a_pending_boundary(
    data_dir: Path, loop_name: str, newline: str | None, across: bytes
) -> None:
    """Chunk 10 starts in the middle of something the decoder stack holds
    pending (a character's bytes, a "\r" waiting for its "\n"): a replay
    that ends in chunk 10 must read chunks 9 and 10 in order, as CPython's
    readline does, not chunk 10 alone."""
    data = bytearray(b"x" * 31 + b"\n" + lf_file_with_one_crlf(-1, chunks=20))
    at = 10 * 8192 - 1  # the middle of a line: the first one is 32 bytes
    data[at : at + len(across)] = across
    seq = [
        ("iter", 128 * 8 + 5),  # into the second refill: the first replay
        ("iter", 128 * 2),  # into chunk 10
        ("tell",),  # a replay ending in chunk 10
        ("read", 70),
        ("newlines",),
        ("buffer_tell",),
    ]
    kwargs = {"mode": "r", "encoding": "utf-8", "newline": newline}
    check_sequence(loop_name, data_dir / "t.txt", bytes(data), kwargs, seq, cold=False)


@pytest.mark.parametrize("errors", ["strict", "replace"])
async def test_decode_error_at_cpythons_line(data_dir: Path, errors: str) -> None:
    """An invalid byte 3 chunks in: the lines before it come from the batch,
    the error (or the replaced line) from the real readline, at CPython's line."""
    path = data_dir / "t.txt"
    data = bytearray(sample(3000))
    data[30000] = 0xFF
    path.write_bytes(bytes(data))
    warm(path)
    with open(path, encoding="utf-8", errors=errors) as f:
        want = cpython_iter(f, 10**6)
    async with aiofastread.open(path, encoding="utf-8", errors=errors) as f:
        got = await our_iter(f, 10**6)
    assert got == want
    assert (got[1][0] == "ok") == (errors == "replace")


async def test_lines_served_by_the_batch(data_dir: Path) -> None:
    """A cached file: every whole chunk's lines from the batch, decoded in
    64 KiB refills, nothing replayed when the file is closed after, and no
    pool job; the TextIOWrapper is replayed once for a tell() after a break."""
    path = data_dir / "t.txt"
    data = sample(20000)
    path.write_bytes(data)
    warm(path)
    with open(path, encoding="utf-8") as f:
        want = f.readlines()
    blocks, finishes = lines.COUNTERS.blocks, lines.COUNTERS.finishes
    shortcuts = lines.COUNTERS.shortcuts
    async with aiofastread.open(path, encoding="utf-8") as f:
        batch = f._runner.batch
        assert batch is not None
        assert f.__aiter__() is batch
        submissions = _pool.default_pool().statistics().submissions
        got = [line async for line in f]
        pooled = _pool.default_pool().statistics().submissions - submissions
    assert got == want
    if _native.backend.can_read_inline:
        assert lines.COUNTERS.blocks - blocks == -(-len(data) // 65536)
        assert lines.COUNTERS.finishes - finishes == 1  # the chunk at EOF: per line
        assert pooled == 0
        # Once the TextIOWrapper has seen every newline kind (the first replay),
        # a replay reads only its last chunk where the chunk before ends clean.
        assert lines.COUNTERS.shortcuts - shortcuts >= 1
    async with aiofastread.open(path, encoding="utf-8") as f:
        syncs = lines.COUNTERS.syncs
        n = 0
        async for _line in f:
            n += 1
            if n == 10:
                break
        assert lines.COUNTERS.syncs == syncs  # nothing asked for the TextIOWrapper yet
        told = await f.tell()
        if _native.backend.can_read_inline:
            assert lines.COUNTERS.syncs == syncs + 1
        with open(path, encoding="utf-8") as cpy:
            for _ in range(10):
                cpy.readline()
            assert told == cpy.tell()
            assert await f.readline() == cpy.readline()


@pytest.mark.parametrize(
    ("kwargs", "batched"),
    [
        ({"encoding": "utf-8"}, True),
        ({"encoding": "utf-8", "newline": "\n"}, True),
        ({"encoding": "cp1252", "errors": "replace"}, True),
        ({"encoding": "latin-1"}, True),
        ({"encoding": "latin-1", "newline": "\n"}, True),  # beside the direct path
        ({"encoding": "utf-8", "newline": ""}, False),
        ({"encoding": "utf-8", "newline": "\r\n"}, False),
        ({"encoding": "utf-8", "errors": "ignore"}, False),
        ({"encoding": "utf-8-sig"}, False),
        ({"encoding": "utf-16"}, False),
    ],
)
async def test_batch_only_for_its_settings(
    data_dir: Path, kwargs: dict[str, Any], batched: bool
) -> None:
    path = data_dir / "t.txt"
    path.write_bytes(b"abc\n" * 10)
    async with aiofastread.open(path, **kwargs) as f:
        assert (f._runner.batch is not None) == batched
    async with aiofastread.open(path, "r+", encoding="utf-8") as f:
        assert f._runner.batch is None  # writable: TextIOWrapper's own


async def test_close_mid_iteration(data_dir: Path) -> None:
    path = data_dir / "t.txt"
    path.write_bytes(sample(3000))
    warm(path)
    f = await aiofastread.open(path, encoding="utf-8")
    async for _line in f:
        break
    await f.close()
    with pytest.raises(ValueError, match="closed file"):
        async for _line in f:
            pass


def python_batch_class() -> type:
    """LineBatch over the pure-Python base (no compiled module, PyPy)."""
    members = {
        k: v
        for k, v in vars(lines.LineBatch).items()
        if k not in ("__dict__", "__weakref__") and not isinstance(v, types.MemberDescriptorType)
    }
    return type("PyLineBatch", (lines._PyLinesCore,), members)


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize(
    "seq",
    [
        [("iter", 1000), ("tell",), ("newlines",), ("iter", 3000), ("read", 100), ("tell",)],
        [("iter", 7000), ("read", 5)],
        [("iter", 100000)],
    ],
)
def test_python_base_equals_cpython(
    data_dir: Path, loop_name: str, seq: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = python_batch_class()
    monkeypatch.setattr(lines, "LineBatch", cls)
    blocks = lines.COUNTERS.blocks
    kwargs = {"mode": "r", "encoding": "utf-8", "newline": None}
    check_sequence(loop_name, data_dir / "t.txt", sample(9000), kwargs, seq, cold=False)
    if _native.backend.can_read_inline:
        assert lines.COUNTERS.blocks > blocks
