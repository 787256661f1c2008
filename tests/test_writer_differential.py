"""Differential test of the writer: aiofastread against CPython's BufferedWriter
with the same buffer size, write errors included.

A hypothesis state machine (the style of tests/test_differential.py) opens
one file with ``aiofastread.open(path, mode, buffering=N)`` and another with
``io.open(path, mode, buffering=N)``, for "wb", "ab" and "xb" and small N (so
buffers fill and flush often), runs a random sequence of writes, writelines,
flushes, seeks, tells, truncates and closes on both, and compares every
return value and every exception (type, errno or message), and the bytes on
disk after each successful flush and at the end.

Write errors are made for real, on both files at once:

``fail``   puts /dev/full (ENOSPC) or a read-only /dev/null (EBADF) on the
           file's descriptor number (dup2), so every write fails; ``heal``
           puts the file back (the same open file: its offset is kept).
           While failing, only writes, flushes and closes are compared (a
           seek or tell would ask /dev/full for its offset, 0).
``limit``  sets RLIMIT_FSIZE a few bytes past the files' size (SIGXFSZ
           ignored), so a write crossing it is partial and the next fails
           with EFBIG: this checks that partly flushed buffers behave as C's.

The writer does not read, so the read backends make no difference: the
default one runs with the compiled write (native/afr_write.c, when built),
"python" with the Python twin (_writer_core.PythonWriterCore), "pool" is
skipped. Profiles as test_differential's (ci: seeded).
"""

from __future__ import annotations

import asyncio
import io
import os
import resource
import shutil
import signal
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

import aiofastread
from aiofastread import _writer
from tests.conftest import DEFAULT_BACKEND
from tests.test_differential import LOOP_FACTORIES, Arg, Outcome, ok, raised
from tests.test_writer import PythonCoreWriter

PROFILE = os.environ.get("AIOFASTREAD_HYPOTHESIS_PROFILE", "ci")
_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
SETTINGS = {
    "ci": settings(max_examples=40, stateful_step_count=40, **_COMMON),
    "long": settings(max_examples=2000, stateful_step_count=60, **_COMMON),
}[PROFILE]
SEEDED = PROFILE == "ci"

MODES = ("wb", "ab", "xb")
BUFFERINGS = (2, 3, 8, 16, 100, 4096)
PIECES = (b"a", b"bc", b"\n", b"\x00", b"\xff" * 5, b"0123456789")


def payloads(buffering: int) -> st.SearchStrategy[Arg]:
    # Sizes around the buffer: fits, fills it exactly, one more, several buffers.
    around = st.sampled_from(
        sorted({0, 1, buffering - 1, buffering, buffering + 1, 2 * buffering + 1, 3 * buffering})
    ).map(lambda n: bytes(i % 251 for i in range(n)))
    data = st.lists(st.sampled_from(PIECES), max_size=6).map(b"".join) | around
    good = st.builds(Arg, st.sampled_from(("bytes", "bytes", "bytearray", "memoryview")), data)
    bad = st.builds(Arg, st.just("raw"), st.sampled_from(("text", 7, None)))
    return st.integers(0, 7).flatmap(lambda i: bad if i == 7 else good)  # 1 in 8 bad


@pytest.fixture(scope="module", autouse=True)
def ignore_sigxfsz() -> Iterator[None]:
    """Past RLIMIT_FSIZE a write gets EFBIG instead of the process dying."""
    saved = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGXFSZ, saved)


class WriterMachine(RuleBasedStateMachine):
    loop_factory: ClassVar[Callable[[], asyncio.AbstractEventLoop]]
    root: ClassVar[Path]
    mode: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = type(self).loop_factory()
        self.dir = Path(tempfile.mkdtemp(dir=type(self).root))
        self.ours_path = self.dir / "ours"
        self.cpy_path = self.dir / "cpython"
        self.buffering = 0
        self.ours: Any = None
        self.cpy: Any = None
        self.closed = False
        self.saved: list[int] = []  # while failing: the files' own descriptors
        self.fd_pair: tuple[int, int] = (-1, -1)
        self.limited = False
        self.fsize_limit = resource.getrlimit(resource.RLIMIT_FSIZE)

    # -- plumbing ---------------------------------------------------------

    def both(self, name: str, *args: Any, ours_args: tuple[Any, ...] | None = None) -> Outcome:
        try:
            cpy = ok(getattr(self.cpy, name)(*args))
        except Exception as exc:
            cpy = raised(exc)

        async def call() -> Any:
            return await getattr(self.ours, name)(*(args if ours_args is None else ours_args))

        try:
            ours = ok(self.loop.run_until_complete(call()))
        except Exception as exc:
            ours = raised(exc)
        assert ours == cpy, f"{name}{args!r}: aiofastread {ours!r} != CPython {cpy!r}"
        return cpy

    def compare_disk(self, what: str) -> None:
        assert self.ours_path.read_bytes() == self.cpy_path.read_bytes(), f"{what}: disk differs"

    @property
    def failing(self) -> bool:
        return bool(self.saved)

    # -- open, close, teardown -----------------------------------------------

    @initialize(
        buffering=st.sampled_from(BUFFERINGS),
        content=st.sampled_from((b"", b"old", b"old content\n" * 50)),
    )
    def start(self, buffering: int, content: bytes) -> None:
        self.buffering = buffering
        if "x" not in type(self).mode:
            self.ours_path.write_bytes(content)
            self.cpy_path.write_bytes(content)
        mode = type(self).mode
        self.cpy = io.open(self.cpy_path, mode, buffering=buffering)  # noqa: SIM115, UP020

        async def open_ours() -> Any:
            return await aiofastread.open(self.ours_path, mode, buffering=buffering)

        self.ours = self.loop.run_until_complete(open_ours())

    @precondition(lambda self: not self.closed)
    @rule(now=st.integers(0, 7))
    def close(self, now: int) -> None:
        """Close mid-sequence, rarely: later steps compare closed-file errors."""
        if now:
            return
        self.both("close")
        self.closed = True
        self.drop_saved()

    def teardown(self) -> None:
        try:
            self.unlimit_now()
            if self.failing:
                self.heal_now()
            if self.ours is not None:
                self.both("close")
                self.compare_disk("after close")
        finally:
            self.drop_saved()
            self.loop.close()
            shutil.rmtree(self.dir)

    # -- faults ---------------------------------------------------------------

    @precondition(lambda self: not self.closed and not self.failing)
    @rule(device=st.sampled_from(("/dev/full", "/dev/null")))
    def fail(self, device: str) -> None:
        """Every write to either file fails from now: ENOSPC or EBADF."""
        flags = os.O_WRONLY if device == "/dev/full" else os.O_RDONLY
        self.fd_pair = (self.ours.fileno(), self.cpy.fileno())
        bad = os.open(device, flags)
        try:
            for fd in self.fd_pair:
                self.saved.append(os.dup(fd))
                os.dup2(bad, fd)
        finally:
            os.close(bad)

    @precondition(lambda self: self.failing and not self.closed)
    @rule()
    def heal(self) -> None:
        self.heal_now()

    def heal_now(self) -> None:
        if not self.closed:
            for saved, fd in zip(self.saved, self.fd_pair, strict=True):
                os.dup2(saved, fd)
        self.drop_saved()

    def drop_saved(self) -> None:
        for fd in self.saved:
            os.close(fd)
        self.saved = []

    @precondition(lambda self: not self.closed and not self.limited and not self.failing)
    @rule(room=st.integers(0, 12))
    def limit(self, room: int) -> None:
        """Writes past ``room`` more bytes are cut short, then fail (EFBIG)."""
        size = self.ours_path.stat().st_size
        assert size == self.cpy_path.stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + room, self.fsize_limit[1]))
        self.limited = True
        # A flush now is cut short when more than ``room`` bytes are
        # buffered: the partly written buffer is what the next steps probe.
        self.both("flush")

    @precondition(lambda self: self.limited)
    @rule()
    def unlimit(self) -> None:
        self.unlimit_now()

    def unlimit_now(self) -> None:
        if self.limited:
            resource.setrlimit(resource.RLIMIT_FSIZE, self.fsize_limit)
            self.limited = False

    # -- writing ----------------------------------------------------------

    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        arg = data.draw(payloads(self.buffering), label="arg")
        self.both("write", arg.make(), ours_args=(arg.make(),))

    @rule(data=st.data())
    def writelines(self, data: st.DataObject) -> None:
        args = data.draw(st.lists(payloads(self.buffering), max_size=3), label="args")
        self.both("writelines", [a.make() for a in args], ours_args=([a.make() for a in args],))

    @rule()
    def flush(self) -> None:
        if self.both("flush")[0] == "ok" and not self.failing and not self.closed:
            self.compare_disk("after flush")

    # -- position (not while failing: /dev/full has no offsets) -------------

    @precondition(lambda self: not self.failing)
    @rule()
    def tell(self) -> None:
        self.both("tell")

    @precondition(lambda self: not self.failing)
    @rule(
        offset=st.integers(-2, 30) | st.sampled_from(("0", 1 << 64)),
        whence=st.sampled_from((0, 0, 1, 2, 5)),
    )
    def seek(self, offset: Any, whence: int) -> None:
        self.both("seek", offset, whence)

    @precondition(lambda self: not self.failing)
    @rule(size=st.none() | st.integers(-1, 40))
    def truncate(self, size: int | None) -> None:
        self.both("truncate", size)

    @precondition(lambda self: not self.failing)
    @rule(name=st.sampled_from(("writable", "seekable", "isatty")))
    def query(self, name: str) -> None:
        self.both(name)

    @rule(name=st.sampled_from(("read", "readline", "read1")))
    def unsupported(self, name: str) -> None:
        self.both(name, 1)


@pytest.mark.parametrize("loop_name", list(LOOP_FACTORIES))
@pytest.mark.parametrize("mode", MODES)
def test_writer_differential(
    mode: str, loop_name: str, data_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer does not read: the read backends make no difference, but
    # the python one's runs use the Python write (test_writer.writer_core).
    if backend == "python":
        monkeypatch.setattr(_writer, "AsyncBufferedWriter", PythonCoreWriter)
    elif backend != DEFAULT_BACKEND:
        pytest.skip("the writer does not read: the read backend makes no difference")
    machine: type[WriterMachine] = type(
        "WriterDifferential",
        (WriterMachine,),
        {"loop_factory": staticmethod(LOOP_FACTORIES[loop_name]), "root": data_dir, "mode": mode},
    )
    run = machine
    if SEEDED:
        run = seed(zlib.crc32(f"writer {mode} {loop_name}".encode()))(machine)
    run_state_machine_as_test(run, settings=SETTINGS)  # type: ignore[no-untyped-call]
