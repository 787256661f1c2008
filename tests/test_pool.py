"""The miss pool: in-flight limit, FIFO backpressure, several loops, cancellation."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from aiofastread._pool import DaemonThreadPool, MissPool


def blocker(gate: threading.Event, value: int, running: threading.Event | None = None) -> int:
    if running is not None:
        running.set()
    gate.wait(30)
    return value


async def until_running(running: threading.Event) -> None:
    """Until a pool thread runs the job (a worker starts without the loop
    waiting for it: the job may still be queued when its awaiter moves on)."""
    await asyncio.to_thread(running.wait, 30)
    assert running.is_set(), "the job never ran"


async def settle(pool: MissPool, in_flight: int, waiting: int) -> None:
    for _ in range(10_000):
        stats = pool.statistics()
        if (stats.in_flight, stats.waiting) == (in_flight, waiting):
            return
        await asyncio.sleep(0)
    raise AssertionError(f"pool never reached {in_flight=} {waiting=}: {pool.statistics()}")


async def test_in_flight_limit_makes_awaiters_wait_in_order() -> None:
    pool = MissPool(max_workers=2, max_in_flight=3)
    gate = threading.Event()
    try:
        tasks = [asyncio.ensure_future(pool.run(blocker, gate, i)) for i in range(10)]
        await settle(pool, in_flight=3, waiting=7)
        gate.set()
        assert await asyncio.gather(*tasks) == list(range(10))
        stats = pool.statistics()
        assert (stats.in_flight, stats.waiting, stats.submissions) == (0, 0, 10)
    finally:
        gate.set()
        await asyncio.to_thread(pool.shutdown)  # joins its threads: not on the loop


async def test_cancelled_waiter_gives_up_its_place_and_running_job_keeps_its_slot() -> None:
    pool = MissPool(max_workers=1, max_in_flight=1)
    gate = threading.Event()
    try:
        started = threading.Event()
        running = asyncio.ensure_future(pool.run(blocker, gate, 1, started))
        waiting = asyncio.ensure_future(pool.run(blocker, gate, 2))
        await until_running(started)
        await settle(pool, in_flight=1, waiting=1)
        waiting.cancel()
        running.cancel()  # its thread is busy: the slot stays taken
        await settle(pool, in_flight=1, waiting=0)
        gate.set()
        await settle(pool, in_flight=0, waiting=0)
        assert await pool.run(blocker, gate, 3) == 3
        assert pool.statistics().submissions == 2
    finally:
        gate.set()
        await asyncio.to_thread(pool.shutdown)  # joins its threads: not on the loop


async def test_undoable_result_is_undone_when_awaiter_leaves() -> None:
    pool = MissPool(max_workers=1)
    gate = threading.Event()
    undone: list[int] = []
    try:
        started = threading.Event()
        task = asyncio.ensure_future(
            pool.run_undoable(blocker, gate, 7, started, undo=undone.append)
        )
        await until_running(started)
        await settle(pool, in_flight=1, waiting=0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        await settle(pool, in_flight=0, waiting=0)
        assert undone == [7]
        assert await pool.run_undoable(blocker, gate, 8, undo=undone.append) == 8
        assert undone == [7]
    finally:
        gate.set()
        await asyncio.to_thread(pool.shutdown)  # joins its threads: not on the loop


def test_one_pool_serves_several_loops_in_several_threads() -> None:
    pool = MissPool(max_workers=2, max_in_flight=2)
    gate = threading.Event()
    gate.set()
    results: dict[int, list[int]] = {}

    def run_loop(n: int) -> None:
        async def main() -> list[int]:
            return list(
                await asyncio.gather(*(pool.run(blocker, gate, n * 100 + i) for i in range(20)))
            )

        results[n] = asyncio.run(main())

    threads = [threading.Thread(target=run_loop, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert results == {n: [n * 100 + i for i in range(20)] for n in range(4)}
        assert pool.statistics().in_flight == 0
    finally:
        pool.shutdown()


def test_pool_outlives_a_closed_loop() -> None:
    pool = MissPool(max_workers=1)
    gate = threading.Event()
    gate.set()
    try:
        assert asyncio.run(pool.run(blocker, gate, 1)) == 1
        assert asyncio.run(pool.run(blocker, gate, 2)) == 2
    finally:
        pool.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_workers": 0}, ValueError),
        ({"max_in_flight": -1}, ValueError),
        ({"max_workers": 1.5}, TypeError),
        ({"max_in_flight": True}, TypeError),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match="max_"):
        MissPool(**kwargs)  # type: ignore[arg-type]


def test_submit_does_not_wait_for_a_new_worker_to_start() -> None:
    """DaemonThreadPool.submit runs on the loop: starting a worker must not
    wait for it to be scheduled (threading.Thread.start does: 4-6 ms on a
    loaded VM). With a switch interval of 100 s this thread keeps the GIL
    until it blocks, so a worker that ran before submit returned could only
    have run because submit waited for it."""
    pool = DaemonThreadPool(max_workers=1, thread_name_prefix="afr-test")
    ran: list[str] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100)
    try:
        future = pool.submit(lambda: ran.append(threading.current_thread().name))
        assert ran == []  # the worker has not run a line yet
        future.result(30)  # blocks: the worker takes the GIL and runs the job
    finally:
        sys.setswitchinterval(interval)
        pool.shutdown(wait=True)
    assert ran == ["afr-test_0"]
