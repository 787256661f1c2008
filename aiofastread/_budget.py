"""The cooperative budget: a task that keeps completing inline work yields.

An inline hit never suspends, so a task reading a cached file in a loop
(a warm stream: ``while chunk := await f.read(n)``) would hold the event
loop until it stops reading: a 1 ms heartbeat beside a 256 MiB warm stream
was late by 208-248 ms (issue 10). As tokio's coop budget does for its
tasks, inline work is charged here, and an operation that finds the budget
spent first awaits one ready result (``asyncio.sleep(0)``), which lets
every other ready callback of the loop run, then proceeds.

The contract (shared with every inline operation, see /work/notes/BUDGET.md):

- ``charge(nbytes)`` after each inline operation: cost = an estimate,
  ``COST_PER_OP_NS + nbytes / BYTES_PER_NS`` (deterministic, so tests count
  operations, not time). Once the spent work passes a quarter of the
  budget, ``_reset`` is scheduled with ``loop.call_soon``: when the loop
  gets to run callbacks it iterated, and the budget starts again.
  Scheduling at a quarter rather than at the first charge of every loop
  iteration pays the callback once per ~250 us of inline work instead of
  once per iteration (f1's 16 tasks do ~50-80 us an iteration); work left
  from earlier iterations can then cut a streak short by up to a quarter.
- ``over()`` before an inline operation: the budget is spent, so the caller
  awaits ``pause()`` first, then does the operation. Yielding *before* the
  operation (rather than after it, with the bytes in hand) keeps invariant
  4: a task cancelled at the yield has read nothing and moved nothing.

One budget per process in this module (the compiled hit path, when built,
keeps one per thread): threading.local costs ~300 ns an access here against
~30 ns for a slot, on a path that costs ~1.5 us. Several threads each
running an event loop therefore share it; a loop's reset then also resets
another loop's streak, so fairness across threads is approximate (one loop
per process, the common case, is exact).
"""

from __future__ import annotations

import asyncio
from asyncio import events
from typing import Final

# Default budget: ~1 ms of inline work per task streak (issue 10: a 1 ms
# heartbeat should be late by ~1 ms, not 200 ms). configure(coop_budget_us=).
DEFAULT_BUDGET_NS: Final = 1_000_000
# Cost estimate of one inline operation: ~1 us of calls and checks plus the
# copy at 4 GB/s (a 16 KiB hit is 1.5-3 us on this VM, a 1 MiB hit 80-95 us:
# docs/performance.md), as BUDGET.md states it; the shift is nbytes / 4.
COST_PER_OP_NS: Final = 1000
BYTES_PER_NS_SHIFT: Final = 2
# The limit while the budget is off: never reached, and never armed.
OFF: Final = 1 << 62
# A reset is scheduled once this fraction of the budget is spent (above).
ARM_FRACTION: Final = 4


class Budget:
    """The process's inline-work account (see the module docstring)."""

    __slots__ = ("arm_at", "limit", "spent", "yields")

    def __init__(self) -> None:
        self.spent = 0  # estimated ns of inline work since the last reset
        self.limit = DEFAULT_BUDGET_NS  # OFF when turned off
        # Spent past this, a reset is scheduled (and this is OFF until it ran).
        self.arm_at = DEFAULT_BUDGET_NS // ARM_FRACTION
        self.yields = 0  # pauses taken (statistics().coop_yields)


BUDGET: Final = Budget()


def cost(nbytes: int) -> int:
    """Estimated ns of one inline operation that moved ``nbytes``."""
    return COST_PER_OP_NS + (nbytes >> BYTES_PER_NS_SHIFT)


def over() -> bool:
    """Whether the budget is spent: the next inline operation yields first."""
    return BUDGET.spent > BUDGET.limit


def charge(nbytes: int) -> None:
    """Account one inline operation (the fast paths write this out)."""
    b = BUDGET
    spent = b.spent = b.spent + COST_PER_OP_NS + (nbytes >> BYTES_PER_NS_SHIFT)
    if spent > b.arm_at:
        arm()


def arm() -> None:
    """A quarter of the budget spent: start again when the loop iterates."""
    loop = events._get_running_loop()
    if loop is not None:  # None: a coroutine driven by hand, no loop to yield to
        BUDGET.arm_at = OFF
        loop.call_soon(_reset)


def _reset() -> None:
    b = BUDGET
    b.spent = 0
    b.arm_at = b.limit // ARM_FRACTION if b.limit < OFF else OFF


async def pause() -> None:
    """Yield to the loop once (the budget was spent), then start again."""
    _reset()  # also if a reset is pending on a loop that will never run it
    BUDGET.yields += 1
    await asyncio.sleep(0)


def set_limit(budget_us: float) -> None:
    """``configure(coop_budget_us=)``: the budget in us; 0 turns it off."""
    if isinstance(budget_us, bool) or not isinstance(budget_us, int | float):
        raise TypeError(f"coop_budget_us must be a number, not {type(budget_us).__name__}")
    if not budget_us >= 0:  # also refuses NaN
        raise ValueError(f"coop_budget_us must be >= 0, got {budget_us}")
    BUDGET.limit = min(int(budget_us * 1000), OFF) if budget_us else OFF
    _reset()
