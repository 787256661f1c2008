"""The inline rule is stated once; the fast path that writes it out agrees.

``_policy.Policy.decide`` and ``_read._cached`` are the rule: a read is one
preadv2(RWF_NOWAIT) at once, nothing asked first, when the policy says
INLINE and no residency check is due. ``_file.fast_path_takes`` states it
for the fast path (from ``decide`` and ``_read.lookahead_checked``, which
``_cached`` uses too); ``AsyncBufferedReader.read`` writes that out for
speed. For every state hypothesis finds (plus each clause's edge):

1. ``fast_path_takes`` agrees with the general path's rule, with cache maps
   and with or without cachestat: for a WARM file exactly, but for one
   named case the general path serves the same way (``general_path_only``);
   for any other state the fast path declines (the general path then
   applies the rule, with its side effects: a COLD file's re-probe count);
2. ``read()`` takes the fast path exactly when ``fast_path_takes`` says so,
   and its HIT bookkeeping equals ``Policy.record(HIT)`` plus
   ``_read.yield_to_pool``: both the Python hit path (``_file._PythonReader``,
   with a fake read_nowait) and, with the compiled module, the C one
   (native/afr_hit.c, reading a real cached file: its NOWAIT reads are
   counted by ``_native.hit_syscalls()``, its bytes compared with the file's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, assume, example, given, settings

import aiofastread
from aiofastread import _budget, _file, _native, _read, _vectored
from aiofastread._policy import INLINE_MAX, Decision, FileState, InodeState, Outcome
from aiofastread._runtime import POLICY
from aiofastread._window import Window
from tests.conftest import LOOPS, make_file

PAGE = 4096
SPAN = 4 * INLINE_MAX  # positions, stream ends and sizes known fall in here

# Weighted towards the fast path's side of every clause, so that examples
# where all clauses but one hold (where a mirror that drops or changes a
# clause differs from the rule) are common.
states = st.sampled_from([FileState.WARM] * 3 + list(FileState))
rarely = st.integers(0, 4).map(lambda n: n == 0)
int_sizes = st.one_of(
    st.sampled_from([0, 1, PAGE, 16384, INLINE_MAX, INLINE_MAX + 1]),
    st.integers(-2, INLINE_MAX + 2),
)
odd_sizes = st.sampled_from([None, -1, True, 3.0, -1.0, "7"])


def fast_state(**changes: Any) -> dict[str, Any]:
    """A state the fast path takes (a WARM file, a stream read inside the
    lookahead last checked), with ``changes``: each clause's edge."""
    s = {
        "state": FileState.WARM,
        "reads_since_probe": 0,
        "size": 16384,
        "pos": 65536,
        "seq_end": 65536,
        "ahead_ok_to": 65536 + 16384,
        "size_hint": SPAN,
        "enabled": True,
        "direct_io": False,
        "closing": False,
        "locked": False,
        "window": b"",
        "resident": frozenset(),
        "cachestat": True,
        "over_budget": False,
    }
    s.update(changes)
    return s


# One example per clause of the rule, on each side of its edge.
EDGES = [
    fast_state(),
    fast_state(ahead_ok_to=65536 + 16383),
    fast_state(seq_end=65535, ahead_ok_to=0),
    fast_state(size=INLINE_MAX, seq_end=-1),
    fast_state(size=INLINE_MAX + 1, seq_end=-1),
    fast_state(size=0),
    *(fast_state(state=state) for state in FileState if state is not FileState.WARM),
    fast_state(enabled=False),
    fast_state(direct_io=True),
    fast_state(closing=True),
    fast_state(locked=True),
    fast_state(window=b"w"),
    fast_state(size_hint=65536, ahead_ok_to=0),  # the general path's only (below)
    fast_state(cachestat=False, ahead_ok_to=0),
    fast_state(over_budget=True),
]


def with_edges_and(**more: Any) -> Any:
    def decorate(test: Any) -> Any:
        for edge in EDGES:
            test = example(s=edge, **more)(test)
        return test

    return decorate


@st.composite
def file_states(draw: st.DrawFn, sizes: st.SearchStrategy[Any]) -> dict[str, Any]:
    """One reader's whole state: the policy's, the handle's, the reader's."""
    pos = draw(st.integers(0, SPAN))
    size = draw(sizes)
    near = pos + (size if type(size) is int else 0)
    return {
        "state": draw(states),
        "reads_since_probe": draw(st.integers(0, 20)),
        "size": size,
        "pos": pos,
        # A stream continues at seq_end: make "pos == seq_end" common.
        "seq_end": draw(st.one_of(st.just(pos), st.just(-1), st.integers(0, SPAN))),
        "ahead_ok_to": draw(
            st.one_of(st.integers(near - 2, near + 2), st.just(0), st.integers(0, SPAN))
        ),
        "size_hint": draw(st.integers(0, SPAN)),
        "enabled": not draw(rarely),
        "direct_io": draw(rarely),
        "closing": draw(rarely),
        "locked": draw(rarely),
        "window": draw(st.sampled_from([b"", b"", b"w", b"w" * 100])),
        # Resident pages, for the cachestat the rule may ask.
        "resident": draw(st.frozensets(st.integers(0, SPAN // PAGE), max_size=64)),
        "cachestat": not draw(rarely),  # cachestat(2) exists (Linux >= 6.5)
        "over_budget": draw(rarely),  # the cooperative budget is spent
    }


@contextlib.contextmanager
def policy_enabled(enabled: bool) -> Iterator[None]:
    saved = POLICY.enabled
    POLICY.enabled = enabled
    try:
        yield
    finally:
        POLICY.enabled = saved


@contextlib.contextmanager
def budget(over: bool) -> Iterator[None]:
    """The cooperative budget at its default limit, spent or not."""
    saved = _budget.BUDGET.limit
    _budget.BUDGET.limit = _budget.DEFAULT_BUDGET_US * _budget.UNITS_PER_US
    _budget._reset()
    set_budget(over)
    try:
        yield
    finally:
        _budget.BUDGET.limit = saved
        _budget._reset()


def set_budget(over: bool) -> None:
    _budget._reset()
    if over:
        _budget.charge(_budget.BUDGET.limit)


@contextlib.contextmanager
def fake_cachestat(s: dict[str, Any], asked: list[tuple[int, int]]) -> Iterator[None]:
    """cachestat answering from a map of resident pages, noting each
    question; none at all for a kernel without it."""
    resident = s["resident"]

    def cachestat(fd: int, offset: int, length: int) -> tuple[int, int]:
        asked.append((offset, length))
        pages = range(offset // PAGE, (offset + length + PAGE - 1) // PAGE)
        return sum(p in resident for p in pages), len(pages)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            _native,
            "backend",
            dataclasses.replace(_native.backend, cachestat=cachestat if s["cachestat"] else None),
        )
        yield


def the_rule(s: dict[str, Any], inode: InodeState) -> bool:
    """What the general path does with this read, from the rule itself:
    True if it is one NOWAIT read made at once (no cachestat first)."""
    size = s["size"]
    if size is None or (type(size) is int and size == -1):
        # read(): read_to_eof's first read asks the rest known + 1 (none
        # past the EOF known or over INLINE_MAX: the pool reads to EOF).
        left = s["size_hint"] - s["pos"]
        size = left + 1 if 0 <= left < INLINE_MAX else 0
    if size <= 0 or s["window"] or s["closing"] or s["locked"]:
        return False  # nothing to read, the window serves it, or it waits/raises
    if s["over_budget"]:
        return False  # the general path's read_at yields to the loop first
    h = types.SimpleNamespace(
        inode=inode,
        fd=-1,
        seq_end=s["seq_end"],
        ahead_ok_to=s["ahead_ok_to"],
        size_hint=s["size_hint"],
        direct_io=s["direct_io"],
        stream=None,  # no readahead under way (tests/test_stream.py)
    )
    decision = POLICY.decide(inode, size, direct_io=s["direct_io"])
    if decision is Decision.POOL or not _native.backend.can_read_inline:
        return False
    asked: list[tuple[int, int]] = []
    with fake_cachestat(s, asked):
        cached = _read._cached(cast(Any, h), s["pos"], size, known_warm=decision is Decision.INLINE)
    return cached and not asked


def fake_reader(s: dict[str, Any], inode: InodeState) -> Any:
    h = types.SimpleNamespace(
        inode=inode,
        seq_end=s["seq_end"],
        ahead_ok_to=s["ahead_ok_to"],
        size_hint=s["size_hint"],
        closing=s["closing"],
        direct_io=s["direct_io"],
    )
    lock = types.SimpleNamespace(_locked=s["locked"])
    win = Window()
    win.set(s["pos"], s["window"])
    return types.SimpleNamespace(_h=h, _pos=s["pos"], _win=win, _lock=lock)


def inode_in(s: dict[str, Any]) -> InodeState:
    inode = InodeState((1, 2))
    inode.state = s["state"]
    inode.reads_since_probe = s["reads_since_probe"]
    return inode


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(s=file_states(int_sizes))
@with_edges_and()
@example(s=fast_state(size=-1, size_hint=65536 + 100))  # read() of the rest
@example(s=fast_state(size=-1, size_hint=65536))  # read() at the EOF known
@example(s=fast_state(size=-1, size_hint=65536 + 16384))  # + 1 past the lookahead checked
@example(s=fast_state(size=-1, size_hint=65536 - 1))  # past the EOF known
def test_fast_path_condition_is_the_rule(s: dict[str, Any]) -> None:
    # Only an inline HIT makes a file WARM, and switching backends clears
    # the table: a backend that cannot read inline never sees WARM.
    assume(_native.backend.can_read_inline or s["state"] is not FileState.WARM)
    with policy_enabled(s["enabled"]), budget(s["over_budget"]):
        fast = _file.fast_path_takes(fake_reader(s, inode_in(s)), s["size"])
        rule = the_rule(s, inode_in(s))
    assert not fast or rule  # what the fast path takes, the rule reads at once
    if s["state"] is FileState.WARM:
        assert fast == (rule and not general_path_only(s))
    else:
        assert not fast


def general_path_only(s: dict[str, Any]) -> bool:
    """The one kind of read the rule makes at once and the fast path leaves
    to the general path (which then makes it, the same way): a stream read
    past the lookahead last checked, where ``_read._cached`` finds nothing
    to ask (at or past the EOF known, or no cachestat). Telling those apart
    would cost every fast read a comparison or two."""
    size = s["size"]
    if size is None or (type(size) is int and size == -1):
        size = s["size_hint"] - s["pos"] + 1  # read(): the rest known + 1
    stream_past_lookahead = s["pos"] == s["seq_end"] and s["pos"] + size > s["ahead_ok_to"]
    return stream_past_lookahead and (s["pos"] >= s["size_hint"] or not s["cachestat"])


def test_the_fast_paths_literal_is_yield_every_mask() -> None:
    assert _read.YIELD_EVERY_MASK == 15  # written as 15 in AsyncBufferedReader.read


# Every read the rule may take lies inside the file: the C path's hits are
# whole (the file is written just before, so its pages are cached).
FILE_SIZE = SPAN + INLINE_MAX + 4 * PAGE


@pytest.fixture(params=list(LOOPS))
def opened(
    request: pytest.FixtureRequest, data_dir: Path
) -> Iterator[tuple[asyncio.AbstractEventLoop, aiofastread.AsyncBufferedReader]]:
    path = data_dir / "f"
    make_file(path, FILE_SIZE)
    loop = LOOPS[request.param]()
    f = loop.run_until_complete(aiofastread.open(path, "rb"))
    try:
        yield loop, f
    finally:
        loop.run_until_complete(f.close())
        loop.close()


class Fakes:
    """read_nowait (on the Python hit path) and the general path's reads,
    noted instead of made. The C hit path makes its NOWAIT reads itself:
    with ``fake_nowait`` False the backend is left alone (a replaced one
    makes the C path stand aside, _native._stand_for)."""

    def __init__(self, mp: pytest.MonkeyPatch, *, fake_nowait: bool = True) -> None:
        self.nowait: list[tuple[int, int]] = []
        self.eof: int | None = None  # set: the file ends there (read() tests)
        self.general: list[str] = []
        self.attempts: list[Any] = []
        self.yields = 0
        if fake_nowait:
            mp.setattr(
                _native,
                "backend",
                dataclasses.replace(
                    _native.backend,
                    read_nowait=self.read_nowait,
                    read_nowait_into=self.read_nowait_into,
                ),
            )
        mp.setattr(_read, "read_at", self.read_at)
        mp.setattr(_vectored, "read_into_at", self.read_into_at)  # readinto's general path
        mp.setattr(_read, "read_to_eof", self.read_to_eof)
        mp.setattr(os, "sched_yield", self.sched_yield)

    def read_nowait(self, fd: int, size: int, offset: int) -> bytes:
        self.nowait.append((size, offset))
        if self.eof is not None:
            size = max(0, min(size, self.eof - offset))
        return b"n" * size

    def read_nowait_into(self, fd: int, buffer: Any, size: int, offset: int) -> int:
        self.nowait.append((size, offset))
        memoryview(buffer)[:size] = b"n" * size
        return size

    async def read_at(self, h: Any, offset: int, size: int, attempt: Any = None) -> bytes:
        self.general.append("read_at")
        self.attempts.append(attempt)
        return b"g" * size

    async def read_into_at(self, h: Any, view: Any, offset: int, attempt: Any = None) -> int:
        self.general.append("read_into_at")
        self.attempts.append(attempt)
        view[:] = b"g" * len(view)
        return len(view)

    async def read_to_eof(self, h: Any, offset: int, attempt: Any = None) -> bytes:
        self.general.append("read_to_eof")
        return b""

    def sched_yield(self) -> None:
        self.yields += 1


# Each fast path, the rule it mirrors, and whether it moves the position.
METHODS = ("read", "readinto", "pread", "pread_into")


def call(f: aiofastread.AsyncBufferedReader, method: str, size: Any, pos: int, buffer: Any) -> Any:
    if method == "read":
        return f.read(size)
    if method == "readinto":
        return f.readinto(buffer)
    if method == "pread":
        return f.pread(size, pos)
    return f.pread_into(buffer, pos)


def predict(f: aiofastread.AsyncBufferedReader, method: str, size: Any, pos: int) -> bool:
    if method in ("read", "readinto"):
        return _file.fast_path_takes(f, size)
    return _file.pread_fast_path_takes(f, size, pos)


def call_once(
    loop: asyncio.AbstractEventLoop,
    f: aiofastread.AsyncBufferedReader,
    method: str,
    s: dict[str, Any],
    fakes: Fakes,
) -> tuple[bool, int, int, Any]:
    """Run the method once (another task holding the file's lock if
    ``locked``, the budget spent if ``over_budget``): what the rule
    predicted just before it, the NOWAIT reads its first step made (the
    fast path, whole: the fake's, or the C path's), the budget spent after
    that step, and what the call returned (bytes read, or the buffer)."""

    async def go() -> tuple[bool, int, int, Any]:
        if s["locked"]:
            await f._lock.acquire()
        set_budget(s["over_budget"])  # here: a reset pending on the loop ran
        predicted = predict(f, method, s["size"], s["pos"])
        c_reads = _native.hit_syscalls()
        size = s["size"]
        buffer = bytearray(size) if method in ("readinto", "pread_into") else None
        awaitable = call(f, method, size, s["pos"], buffer)
        # The C path reads when called (its answer awaits in a Ready): the
        # budget it charged is seen now, before a reset it may schedule runs.
        spent_by_c = _budget.BUDGET.spent
        task = asyncio.ensure_future(awaitable)
        await asyncio.sleep(0)  # the call's first step
        c_made = _native.hit_syscalls() - c_reads
        nowait = len(fakes.nowait) + c_made
        first_step = (predicted, nowait, spent_by_c if c_made else _budget.BUDGET.spent)
        if s["locked"]:
            f._lock.release()
        result = None
        with contextlib.suppress(ValueError, TypeError):
            result = await task
        return (*first_step, buffer if buffer is not None else result)

    return loop.run_until_complete(go())


# The Python hit path (its read_nowait faked), and the C one where it is
# compiled: it runs with the native backend only (_native._stand_for).
HIT_PATHS = ("python", "c")


@pytest.fixture(autouse=True)
def c_path_needs_native(request: pytest.FixtureRequest, backend: str) -> None:
    c_path = "hit_path" in request.fixturenames and request.getfixturevalue("hit_path") == "c"
    if c_path and (backend != "native" or not _native.HAS_HIT_PATH):
        pytest.skip("the C hit path runs with the compiled module's native backend")


@pytest.mark.parametrize("hit_path", HIT_PATHS)
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(METHODS),
    s=file_states(st.one_of(int_sizes, odd_sizes)),
    hits=st.integers(0, 64),
    pool_busy=st.booleans(),
)
@example(method="read", s=fast_state(), hits=15, pool_busy=True)  # the 16th hit yields
@example(method="pread", s=fast_state(), hits=31, pool_busy=True)
@example(method="readinto", s=fast_state(), hits=14, pool_busy=True)
@example(method="pread_into", s=fast_state(), hits=15, pool_busy=False)
@example(method="read", s=fast_state(size=-1, size_hint=65536 + 100), hits=3, pool_busy=False)
@example(method="read", s=fast_state(size=None, size_hint=65536), hits=3, pool_busy=False)  # at EOF
@example(method="read", s=fast_state(size=-1, size_hint=65536 + 16384), hits=3, pool_busy=False)
@with_edges_and(method="read", hits=3, pool_busy=False)
@with_edges_and(method="pread", hits=3, pool_busy=False)
@with_edges_and(method="readinto", hits=3, pool_busy=False)
@with_edges_and(method="pread_into", hits=3, pool_busy=False)
def test_each_fast_path_is_taken_exactly_when_its_condition_says(
    opened: tuple[asyncio.AbstractEventLoop, aiofastread.AsyncBufferedReader],
    hit_path: str,
    method: str,
    s: dict[str, Any],
    hits: int,
    pool_busy: bool,
) -> None:
    size = s["size"]
    # readinto/pread_into take a buffer: its length is the size.
    assume(method in ("read", "pread") or (type(size) is int and 0 <= size <= INLINE_MAX + 2))
    loop, f = opened
    h = f._h
    inode = h.inode
    inode.state, inode.reads_since_probe = s["state"], s["reads_since_probe"]
    inode.counters.inline_hits = inode.hits_folded = hits
    inode.hit_ratio = 0.75
    h.seq_end, h.ahead_ok_to, h.size_hint = s["seq_end"], s["ahead_ok_to"], s["size_hint"]
    h.closing, h.direct_io = s["closing"], s["direct_io"]
    f._pos = s["pos"]
    f._win.set(s["pos"], s["window"])
    with pytest.MonkeyPatch.context() as mp, policy_enabled(s["enabled"]), budget(False):
        whole = method == "read" and (size is None or (type(size) is int and size == -1))
        # read() of the rest: the C path hands it to the general path, whose
        # whole-file read is Python's (proved on the Python side).
        assume(hit_path == "python" or not whole)
        fakes = Fakes(mp, fake_nowait=hit_path == "python")
        if whole:
            fakes.eof = s["size_hint"]  # read() reads the rest known + 1: EOF answers
        mp.setattr(h, "pool", types.SimpleNamespace(busy=pool_busy))
        reference = inode_in(s)
        reference.counters.inline_hits = reference.hits_folded = hits
        reference.hit_ratio = inode.hit_ratio
        bytes_before = inode.counters.bytes_inline
        try:
            predicted, nowait_reads, spent, result = call_once(loop, f, method, s, fakes)
        finally:
            h.closing = False
    # The C path reads the real file: a page dropped by the VM meanwhile
    # makes its read a miss, handed on to the general path (not this test's).
    assume(not any(isinstance(a, int) and a < 0 for a in fakes.attempts))
    took_fast = nowait_reads > 0
    assert took_fast == predicted
    if took_fast:
        asked = size
        if whole:  # read(): one read of the rest known + 1, answered up to EOF
            asked = s["size_hint"] - s["pos"] + 1
            size = asked - 1
        assert nowait_reads == 1
        if hit_path == "python":
            assert fakes.nowait == [(asked, s["pos"])]
        else:
            assert bytes(result) == os.pread(h.fd, size, s["pos"])
        assert not fakes.general
        # The HIT bookkeeping written out equals the policy's and yield_to_pool's.
        POLICY.record(reference, Outcome.HIT, size)
        assert (inode.counters.inline_hits, inode.counters.bytes_inline - bytes_before) == (
            reference.counters.inline_hits,
            size,
        )
        assert (inode.state, inode.hit_ratio, inode.hits_folded) == (
            reference.state,
            reference.hit_ratio,
            reference.hits_folded,
        )
        assert h.seq_end == s["pos"] + size
        moves = method in ("read", "readinto")
        assert f._pos == s["pos"] + size if moves else f._pos == s["pos"]
        yielded = not reference.counters.inline_hits & _read.YIELD_EVERY_MASK and pool_busy
        assert fakes.yields == int(yielded)
        # ...and _budget.charge's: one inline operation of ``size`` bytes.
        assert spent == _budget.cost(size)


@settings(max_examples=200, deadline=None)
@given(s=file_states(int_sizes))
@with_edges_and()
def test_pread_condition_is_the_rule_without_the_position(s: dict[str, Any]) -> None:
    """pread needs no window and no lock: its rule is read's without them."""
    assume(_native.backend.can_read_inline or s["state"] is not FileState.WARM)
    with policy_enabled(s["enabled"]), budget(s["over_budget"]):
        fast = _file.pread_fast_path_takes(fake_reader(s, inode_in(s)), s["size"], s["pos"])
        positional = dict(s, window=b"", locked=False)
        rule = the_rule(positional, inode_in(s))
    if s["state"] is FileState.WARM:
        assert fast == (rule and not general_path_only(s))
    else:
        assert not fast
