"""The engines compared: the same reads through four ways of doing file I/O.

Every engine opens one handle per task and serves ``read(offset, size)``.
The code a user would write differs per library, and that is what is
measured:

``aiofastread``  ``await f.seek(off); await f.read(n)``: inline when cached.
``nofast``       the same calls with ``configure(fast_path=False)``: every
                 read goes to the same pool, the pure thread-pool baseline.
``pythreads``    aiofastread with ``configure(native_pool=False)``: misses
                 on Python threads instead of the native miss pool's C
                 threads (not run unless named in ``--engines``; for A/B).
``noahead``      aiofastread with ``configure(readahead=False)``: streams get
                 no readahead off the loop (not run unless named; for A/B).
``text``         aiofastread in text mode (``"r"``, latin-1, so a character is
                 a byte and an offset a seek cookie, ``newline="\n"``): the
                 same calls, served by the direct text path (seek + read of
                 a 1:1 codec with no newline decoder, ``_bridge/direct``)
                 (not run unless named; for the text-vs-binary A/B).
``textuniv``     the same with ``newline=""`` (universal newlines, not
                 translated): CPython's TextIOWrapper over our bridge, in a
                 greenlet, for every call (not run unless named).
``executor``     ``await loop.run_in_executor(pool, os.pread, fd, n, off)``,
                 a ThreadPoolExecutor with as many threads as our pool.
``aiofiles``     ``await f.seek(off); await f.read(n)``: aiofiles has no
                 positional read, so a random read is two thread hops (the
                 seek is skipped when the position is already right, as in
                 sequential reading). Its executor has the same thread count.

Each engine counts its thread-pool submissions, so "pool submissions"
means the same thing in every row.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import dataclasses
import importlib.util
import os
from typing import TYPE_CHECKING, Any, ClassVar

import aiofastread
from aiofastread import _pool

if TYPE_CHECKING:
    from collections.abc import Callable

ENGINE_NAMES: tuple[str, ...] = ("aiofastread", "nofast", "executor", "aiofiles")
# The thread-pool baseline against which total bandwidth is compared: same
# pool, same threads, same call path, only the inline attempt removed.
BASELINE = "nofast"
LABELS: dict[str, str] = {
    "aiofastread": "aiofastread",
    "nofast": "aiofastread, fast path off",
    "executor": "run_in_executor",
    "aiofiles": "aiofiles",
    "pythreads": "aiofastread, Python miss threads",
    "noahead": "aiofastread, no readahead",
    "text": "aiofastread, text mode",
    "textuniv": "aiofastread, text mode, newline=''",
}


def default_workers() -> int:
    """aiofastread's own pool size; every engine gets as many threads."""
    return _pool.DEFAULT_MAX_WORKERS


@dataclasses.dataclass
class ReaderCounters:
    """What one handle saw; summed per workload by the caller."""

    pool_submissions: int = 0


class Reader(abc.ABC):
    """One open file of one task."""

    def __init__(self) -> None:
        self.counters = ReaderCounters()

    @abc.abstractmethod
    async def read(self, offset: int, size: int) -> int:
        """Read ``size`` bytes at ``offset``; return how many came back."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    def file_statistics(self) -> dict[str, Any] | None:
        """The library's per-file counters, where the engine has any."""
        return None


class Engine(abc.ABC):
    name: ClassVar[str]

    def __init__(self, workers: int) -> None:
        self.workers = workers

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why this engine cannot run here, or None."""
        return None

    @abc.abstractmethod
    def start(self) -> None:
        """Prepare, before the event loop runs (threads, configuration)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Release what ``start`` made."""

    @abc.abstractmethod
    async def open(self, path: str) -> Reader: ...

    @abc.abstractmethod
    def reset_counters(self) -> None:
        """Zero the engine-wide counters at the start of the measurement."""

    @abc.abstractmethod
    def counters(self) -> dict[str, Any]:
        """Engine-wide counters since ``reset_counters``."""

    def inline_misses(self) -> int:
        """Inline reads that found their bytes (or part) uncached, so far;
        called every heartbeat tick, so it must be cheap. 0 without a fast path."""
        return 0


# -- aiofastread ------------------------------------------------------------------


class _AiofastreadReader(Reader):
    def __init__(self, f: Any) -> None:
        super().__init__()
        self.f = f
        self.pos = 0

    async def read(self, offset: int, size: int) -> int:
        f = self.f
        if offset != self.pos:
            await f.seek(offset)  # bookkeeping only in aiofastread: no syscall
        n = len(await f.read(size))
        self.pos = offset + n
        return n

    async def close(self) -> None:
        await self.f.close()

    def file_statistics(self) -> dict[str, Any] | None:
        statistics = getattr(self.f, "statistics", None)  # text files have none
        return None if statistics is None else dataclasses.asdict(statistics())


class AiofastreadEngine(Engine):
    name = "aiofastread"
    fast_path = True
    native_pool = True
    readahead = True

    def start(self) -> None:
        aiofastread.configure(
            max_workers=self.workers,
            fast_path=self.fast_path,
            native_pool=self.native_pool,
            readahead=self.readahead,
        )

    def stop(self) -> None:
        aiofastread.configure(fast_path=True, native_pool=True, readahead=True)

    async def open(self, path: str) -> Reader:
        f = await aiofastread.open(path, "rb")
        if not isinstance(f, aiofastread.AsyncBufferedReader):
            raise TypeError(f"aiofastread.open(..., 'rb') gave {type(f).__name__}")
        return _AiofastreadReader(f)

    def reset_counters(self) -> None:
        aiofastread.reset_statistics()

    def counters(self) -> dict[str, Any]:
        stats = dataclasses.asdict(aiofastread.statistics())
        stats["pool_submissions"] = _pool.default_pool().statistics().submissions
        return stats

    def inline_misses(self) -> int:
        s = aiofastread.statistics()
        return s.inline_misses + s.short_reads


class NoFastPathEngine(AiofastreadEngine):
    name = "nofast"
    fast_path = False


class PythonThreadsEngine(AiofastreadEngine):
    name = "pythreads"
    native_pool = False


class TextModeEngine(AiofastreadEngine):
    name = "text"
    newline = "\n"

    async def open(self, path: str) -> Reader:
        # latin-1 decodes every byte to one character: offsets stay byte offsets.
        f = await aiofastread.open(path, "r", encoding="latin-1", newline=self.newline)
        return _AiofastreadReader(f)


class UniversalTextModeEngine(TextModeEngine):
    name = "textuniv"
    newline = ""


class NoReadaheadEngine(AiofastreadEngine):
    name = "noahead"
    readahead = False


# -- run_in_executor ------------------------------------------------------------------


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor that counts submissions (the GIL makes += safe
    enough here: submit is only called from the loop thread)."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.submissions = 0

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        self.submissions += 1
        return super().submit(fn, *args, **kwargs)


class _ExecutorReader(Reader):
    def __init__(self, fd: int, executor: CountingExecutor) -> None:
        super().__init__()
        self.fd = fd
        self.executor = executor

    async def read(self, offset: int, size: int) -> int:
        loop = asyncio.get_running_loop()
        self.counters.pool_submissions += 1
        data = await loop.run_in_executor(self.executor, os.pread, self.fd, size, offset)
        return len(data)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, os.close, self.fd)


class ExecutorEngine(Engine):
    name = "executor"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.executor: CountingExecutor | None = None
        self._base = 0

    def start(self) -> None:
        self.executor = CountingExecutor(self.workers, f"bench-{self.name}")

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def _executor(self) -> CountingExecutor:
        if self.executor is None:
            raise RuntimeError(f"engine {self.name} used before start()")
        return self.executor

    async def open(self, path: str) -> Reader:
        ex = self._executor()
        fd = await asyncio.get_running_loop().run_in_executor(ex, os.open, path, os.O_RDONLY)
        return _ExecutorReader(fd, ex)

    def reset_counters(self) -> None:
        self._base = self._executor().submissions

    def counters(self) -> dict[str, Any]:
        return {"pool_submissions": self._executor().submissions - self._base}


# -- aiofiles -------------------------------------------------------------------------


class _AiofilesReader(Reader):
    def __init__(self, f: Any) -> None:
        super().__init__()
        self.f = f
        self.pos = 0

    async def read(self, offset: int, size: int) -> int:
        if offset != self.pos:
            self.counters.pool_submissions += 1
            await self.f.seek(offset)
        self.counters.pool_submissions += 1
        n = len(await self.f.read(size))
        self.pos = offset + n
        return n

    async def close(self) -> None:
        await self.f.close()


class AiofilesEngine(ExecutorEngine):
    name = "aiofiles"

    @staticmethod
    def unavailable_reason() -> str | None:
        if importlib.util.find_spec("aiofiles") is None:
            return "aiofiles is not installed (pip install 'aiofastread[bench]')"
        return None

    async def open(self, path: str) -> Reader:
        import aiofiles  # optional: only this engine needs it

        f = await aiofiles.open(path, "rb", executor=self._executor())
        return _AiofilesReader(f)


ENGINES: dict[str, type[Engine]] = {
    cls.name: cls
    for cls in (
        AiofastreadEngine,
        NoFastPathEngine,
        ExecutorEngine,
        AiofilesEngine,
        PythonThreadsEngine,
        NoReadaheadEngine,
        TextModeEngine,
        UniversalTextModeEngine,
    )
}


def make_engine(name: str, workers: int) -> Engine:
    try:
        cls = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}") from None
    return cls(workers)
