"""_iterate.in_pool: a blocking iterator advanced only on pool threads."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

from aiofastread import _iterate, _pool
from tests.conftest import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


def _in_flight() -> int:
    return _pool.default_pool().statistics().in_flight


class Recorder:
    """A generator's life as seen from inside: which thread did what, in order."""

    def __init__(self, count: int, gate: threading.Event | None = None) -> None:
        self.count = count
        self.gate = gate  # when set up, the second step waits for it
        self.events: list[tuple[str, str]] = []
        self.in_step = threading.Event()

    def run(self) -> Iterator[int]:
        try:
            for number in range(self.count):
                self.events.append(("step", threading.current_thread().name))
                if number == 1 and self.gate is not None:
                    self.in_step.set()
                    self.gate.wait(timeout=30)
                yield number
        finally:
            self.events.append(("close", threading.current_thread().name))


async def _drain(items: AsyncIterator[int], into: list[int]) -> None:
    async for item in items:
        into.append(item)


@pytest.mark.asyncio
async def test_items_in_order_a_batch_per_hop_all_off_the_loop() -> None:
    recorder = Recorder(10)
    before = _pool.default_pool().statistics().submissions
    got = [item async for item in _iterate.in_pool(recorder.run(), batch=4)]
    assert got == list(range(10))
    assert _pool.default_pool().statistics().submissions == before + 3  # 4 + 4 + 2
    loop_thread = threading.current_thread().name
    assert all(thread != loop_thread for _, thread in recorder.events)
    assert [what for what, _ in recorder.events] == ["step"] * 10 + ["close"]


@pytest.mark.asyncio
async def test_exact_multiple_of_the_batch_needs_one_more_hop_to_see_the_end() -> None:
    before = _pool.default_pool().statistics().submissions
    got = [item async for item in _iterate.in_pool(iter(range(8)), batch=4)]
    assert got == list(range(8))
    assert _pool.default_pool().statistics().submissions == before + 3


@pytest.mark.asyncio
async def test_batch_of_one_advances_only_as_far_as_read() -> None:
    recorder = Recorder(5)
    items = _iterate.in_pool(recorder.run(), batch=1)
    assert await items.__anext__() == 0
    assert [what for what, _ in recorder.events] == ["step"]
    assert await items.__anext__() == 1
    assert [what for what, _ in recorder.events] == ["step", "step"]
    await items.aclose()
    await until(lambda: _in_flight() == 0, "the close")
    assert recorder.events[-1][0] == "close"
    assert recorder.events[-1][1] != threading.current_thread().name


@pytest.mark.asyncio
async def test_cancelled_during_a_step_closes_after_the_step_in_the_pool() -> None:
    gate = threading.Event()
    recorder = Recorder(5, gate)

    async def consume() -> None:
        async for _ in _iterate.in_pool(recorder.run(), batch=1):
            pass

    task = asyncio.create_task(consume())
    await until(recorder.in_step.is_set, "the second step to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the close is queued behind the step still running: nothing closed yet
    assert [what for what, _ in recorder.events] == ["step", "step"]
    gate.set()
    await until(lambda: _in_flight() == 0, "the step and the close")
    assert [what for what, _ in recorder.events] == ["step", "step", "close"]
    assert recorder.events[-1][1] != threading.current_thread().name


@pytest.mark.asyncio
async def test_made_in_the_pool_and_errors_come_through() -> None:
    made_on: list[str] = []

    def make() -> Iterator[int]:
        made_on.append(threading.current_thread().name)
        return iter([1, 2])

    assert [item async for item in _iterate.in_pool(make)] == [1, 2]
    assert len(made_on) == 1
    assert made_on[0] != threading.current_thread().name

    def broken() -> Iterator[int]:
        yield 1
        raise PermissionError(13, "denied")

    got: list[int] = []
    with pytest.raises(PermissionError):
        await _drain(_iterate.in_pool(broken()), got)
    assert got == []  # the error came with the batch the item was in


@pytest.mark.asyncio
async def test_an_iterator_made_for_a_cancelled_awaiter_is_closed() -> None:
    gate = threading.Event()
    entered = threading.Event()
    closed = threading.Event()

    class Closable:
        def __iter__(self) -> Closable:
            return self

        def __next__(self) -> int:
            raise StopIteration

        def close(self) -> None:
            closed.set()

    def make() -> Closable:
        entered.set()
        gate.wait(timeout=30)
        return Closable()

    task = asyncio.create_task(_iterate.in_pool(make).__anext__())
    await until(entered.is_set, "the make to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    await until(lambda: _in_flight() == 0, "the make and its undo")
    assert closed.is_set()
