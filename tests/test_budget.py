"""The cooperative budget (aiofastread._budget), proven by counters.

A task doing inline hits never suspends; without the budget no other task
runs until it stops. With it, every ~budget of inline work the task yields
once, so a second task's counter moves while the first still reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread import _budget
from tests.conftest import make_file, warm

SIZE = 4096
READS = 10_000
BUDGET_US = 100  # 100 us: 4 KiB hits cost ~2 us each (estimate), a yield every 50 reads
HITS_PER_YIELD = BUDGET_US * _budget.UNITS_PER_US // _budget.cost(SIZE) + 1


@pytest.fixture(autouse=True)
def restore_budget() -> Iterator[None]:
    saved = _budget.BUDGET.limit
    try:
        yield
    finally:
        _budget.BUDGET.limit = saved
        _budget._reset()


async def race(f: Any, op: Callable[[int], Awaitable[object]]) -> tuple[int, int]:
    """A reader doing READS inline ops back to back next to a task counting
    its turns: (the counter when the reader finished, coop_yields made)."""
    turns = 0
    done = False

    async def other() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    async def reader() -> int:
        nonlocal done
        for i in range(READS):
            await op(i)
        done = True
        return turns

    before = aiofastread.statistics().coop_yields
    reading = asyncio.ensure_future(reader())  # first: it runs before the counter starts
    counting = asyncio.ensure_future(other())
    seen = await reading
    await counting
    return seen, aiofastread.statistics().coop_yields - before


def ops(f: Any) -> dict[str, Callable[[int], Awaitable[object]]]:
    buffer = bytearray(SIZE)

    async def seek_read(i: int) -> object:
        await f.seek((i % 64) * SIZE)
        return await f.read(SIZE)

    return {
        "read": seek_read,
        "pread": lambda i: f.pread(SIZE, (i % 64) * SIZE),
        "pread_into": lambda i: f.pread_into(buffer, (i % 64) * SIZE),
    }


@contextlib.asynccontextmanager
async def warm_reader(data_dir: Path, backend: str, budget_us: float) -> AsyncIterator[Any]:
    """An open reader of a cached file, already WARM (every read below it is
    an inline hit), with the budget set to ``budget_us``."""
    if backend == "pool":
        pytest.skip("the pool backend reads nothing inline: every read suspends")
    path = data_dir / "f"
    make_file(path, 64 * SIZE)
    aiofastread.configure(coop_budget_us=budget_us)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.pread(SIZE, 0)
        _budget._reset()
        yield f


@pytest.mark.parametrize("op", ["read", "pread", "pread_into"])
async def test_inline_hits_let_another_task_run(data_dir: Path, backend: str, op: str) -> None:
    async with warm_reader(data_dir, backend, BUDGET_US) as f:
        before = aiofastread.statistics()
        turns, yields = await race(f, ops(f)[op])
        hits = aiofastread.statistics().inline_hits - before.inline_hits
    assert hits == READS
    # One yield per HITS_PER_YIELD hits (the last hits may leave the budget unspent).
    assert READS // HITS_PER_YIELD - 1 <= yields <= READS // HITS_PER_YIELD
    assert turns >= yields - 1  # each yield gave the other task its turn
    assert turns >= 100


async def test_without_the_budget_the_other_task_never_runs(data_dir: Path, backend: str) -> None:
    async with warm_reader(data_dir, backend, 0) as f:
        turns, yields = await race(f, ops(f)["read"])
    assert (turns, yields) == (0, 0)


async def test_the_general_path_yields_too(data_dir: Path, backend: str) -> None:
    """readline fills its window through _read.read_at: charged, and it
    yields before an inline read once the budget is spent."""
    path = data_dir / "lines"
    path.write_bytes(b"x" * 30_000 + b"\n")
    aiofastread.configure(coop_budget_us=BUDGET_US)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.pread(SIZE, 0)
        before = aiofastread.statistics().coop_yields
        for _ in range(40):
            await f.seek(0)
            assert len(await f.readline()) == 30_001
        yields = aiofastread.statistics().coop_yields - before
    if backend == "pool":
        assert yields == 0
    else:  # each fill: 30 KiB (64 KiB asked, 30 KiB there): ~8.5 us; 100 us: 1 yield in ~12
        assert yields >= 2


async def test_a_read_cancelled_at_its_yield_changes_nothing(data_dir: Path, backend: str) -> None:
    path = data_dir / "f"
    data = make_file(path, 64 * SIZE)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.pread(SIZE, 0)
        await f.seek(SIZE)
        await asyncio.sleep(0)  # the reset the pread armed runs
        _budget.charge(4 * _budget.BUDGET.limit)  # spent: the next read yields first
        task = asyncio.ensure_future(f.read(SIZE))
        await asyncio.sleep(0)  # the read is at its yield
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await f.tell() == SIZE
        assert await f.read(SIZE) == data[SIZE : 2 * SIZE]


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError)],
)
def test_configure_refuses_bad_budgets(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="coop_budget_us"):
        aiofastread.configure(coop_budget_us=value)


def test_configure_sets_and_turns_off() -> None:
    aiofastread.configure(coop_budget_us=250)
    assert _budget.BUDGET.limit == 250 * _budget.UNITS_PER_US
    _budget.charge(250 * _budget.UNITS_PER_US)
    assert _budget.over()
    aiofastread.configure(coop_budget_us=0)
    assert not _budget.over()
    _budget.charge(10**15)
    assert not _budget.over()  # off: never spent


async def test_tasks_that_suspend_between_reads_never_yield(data_dir: Path, backend: str) -> None:
    """The f1 shape: many tasks, one hit each per loop iteration. The loop
    iterates between them, so the budget is reset before it is ever spent:
    no yield (a reset that never came would show as a yield every ~50 reads)."""
    async with warm_reader(data_dir, backend, BUDGET_US) as f:
        before = aiofastread.statistics()

        async def handler(seed: int) -> None:
            for i in range(200):
                await f.pread(SIZE, ((seed + i) % 64) * SIZE)
                await asyncio.sleep(0)

        await asyncio.gather(*(handler(t) for t in range(16)))
        after = aiofastread.statistics()
    assert after.inline_hits - before.inline_hits == 16 * 200
    assert after.coop_yields == before.coop_yields


async def test_coop_yields_are_counted_and_reset_with_the_statistics() -> None:
    before = aiofastread.statistics().coop_yields
    await _budget.pause()
    assert aiofastread.statistics().coop_yields == before + 1
    aiofastread.reset_statistics()
    assert aiofastread.statistics().coop_yields == 0
