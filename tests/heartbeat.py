"""A heartbeat for a server loop in the adapter tests and bench/adapters.py:
a task that sleeps 1 ms at a time and keeps the worst lateness of its
wake-ups. The tests report it (docs/adapters.md); they never assert on it.

It also keeps the worst lateness less the loop thread's own wait for a CPU
in that tick (run-queue wait from /proc/thread-self/schedstat: other
processes running on this shared 2-core VM), the part the loop itself may
have caused (aiofastread/benchmark/noise.py explains the controls)."""

from __future__ import annotations

import asyncio
import time

SCHEDSTAT = "/proc/thread-self/schedstat"


def run_queue_wait_ns() -> int:
    """Time this thread has waited for a CPU so far (0 where unknown)."""
    try:
        with open(SCHEDSTAT) as f:  # procfs: no disk I/O
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class Heartbeat:
    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_less_wait = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            start, waited = time.perf_counter(), run_queue_wait_ns()
            await asyncio.sleep(0.001)
            late = time.perf_counter() - start - 0.001
            self.worst = max(self.worst, late)
            wait = (run_queue_wait_ns() - waited) / 1e9
            self.worst_less_wait = max(self.worst_less_wait, late - wait)
            self.ticks += 1

    def take(self) -> dict[str, float]:
        """The worst lateness (ms), the same less run-queue wait (ms) and the
        ticks since the last take."""
        answer = {
            "worst_ms": self.worst * 1e3,
            "worst_less_wait_ms": self.worst_less_wait * 1e3,
            "ticks": self.ticks,
        }
        self.worst = self.worst_less_wait = 0.0
        self.ticks = 0
        return answer
