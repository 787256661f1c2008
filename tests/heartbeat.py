"""A heartbeat for a server loop in the adapter tests: a task that sleeps
1 ms at a time and keeps the worst lateness of its wake-ups. The tests
report it (docs/adapters.md); they never assert on it."""

from __future__ import annotations

import asyncio
import time


class Heartbeat:
    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - start - 0.001)
            self.ticks += 1

    def take(self) -> dict[str, float]:
        """The worst lateness (ms) and ticks since the last take."""
        answer = {"worst_ms": self.worst * 1e3, "ticks": self.ticks}
        self.worst, self.ticks = 0.0, 0
        return answer
