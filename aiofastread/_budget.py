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
  1 us + nbytes at 4 GB/s, counted in units of 1/4 ns (the bytes moved plus
  ``COST_PER_OP`` = 4000 for the 1 us: no shift or multiply on the hit
  path), deterministic, so tests count operations, not time. Once the
  spent work passes a quarter of the budget, ``_reset`` is scheduled with
  ``loop.call_soon``: when the loop gets to run callbacks it iterated, and
  the budget starts again. Scheduling at a quarter rather than at the first
  charge of every loop iteration pays the callback once per ~250 us of
  inline work instead of once per iteration (f1's 16 tasks do ~50-80 us an
  iteration); work left from earlier iterations can then cut a streak
  short by up to a quarter.
- ``over()`` (``not BUDGET.ok``: one attribute on the hit path) before an
  inline operation: the budget is spent, so the caller awaits ``pause()``
  first, then does the operation. Yielding *before* the operation (rather
  than after it, with the bytes in hand) keeps invariant 4: a task
  cancelled at the yield has read nothing and moved nothing.

With the compiled module, ``spent``, ``next`` and ``ok`` are each thread's
(C thread-local fields of ``BUDGET``, native/afr_hit.c: one loop per thread,
as the contract says; ``limit`` and ``yields`` are the process's). Without
it, one budget per process: threading.local costs ~300 ns an access here
against ~30 ns for a slot, on a path that costs ~1.5 us; several threads each
running an event loop then share it, and a loop's reset also resets another
loop's streak, so fairness across threads is approximate there (one loop per
process, the common case, is exact).
"""

from __future__ import annotations

import asyncio
from asyncio import events
from typing import TYPE_CHECKING, Final

from aiofastread import _native

# Default budget: ~1 ms of inline work per task streak (issue 10: a 1 ms
# heartbeat should be late by ~1 ms, not 200 ms). configure(coop_budget_us=).
DEFAULT_BUDGET_US: Final = 1000
# Work is counted in units of 1/4 ns: a byte copied at 4 GB/s is one unit.
UNITS_PER_US: Final = 4000
# Cost estimate of one inline operation besides its bytes: ~1 us of calls
# and checks (a 16 KiB hit is 1.5-3 us on this VM, a 1 MiB hit 80-95 us,
# docs/performance.md; the estimate says 5.1 us and 263 us: conservative).
COST_PER_OP: Final = UNITS_PER_US
# The limit while the budget is off: never reached, and never armed.
OFF: Final = 1 << 62
# A reset is scheduled once this fraction of the budget is spent (above).
ARM_FRACTION: Final = 4


# The reader's C hit path (native/afr_hit.c) checks ``ok`` and charges
# ``spent`` in C fields (_native.hit_base); the rest of this module is the same.
if TYPE_CHECKING:
    _BudgetBase = object
    _HOT_SLOTS: tuple[str, ...] = ()
else:
    _BudgetBase, _HOT_SLOTS = _native.hit_base(
        "BudgetCore", ("epoch", "limit", "next", "ok", "spent", "yields")
    )


class Budget(_BudgetBase):
    """The process's inline-work account (see the module docstring)."""

    __slots__ = _HOT_SLOTS

    def __init__(self) -> None:
        self.spent = 0  # estimated work (units) since the last reset
        self.limit = DEFAULT_BUDGET_US * UNITS_PER_US  # OFF when turned off
        # The next threshold ``spent`` may pass: a quarter of the limit
        # (schedule a reset), then the limit (the next operation yields).
        self.next = self.limit // ARM_FRACTION
        self.ok = True  # False once spent passed the limit
        self.yields = 0  # pauses taken (statistics().coop_yields)
        # Moved by set_limit: with per-thread state (module docstring),
        # every thread then starts again.
        self.epoch = 0


BUDGET: Final = Budget()


def cost(nbytes: int) -> int:
    """Estimated work (units) of one inline operation that moved ``nbytes``."""
    return nbytes + COST_PER_OP


def over() -> bool:
    """Whether the budget is spent: the next inline operation yields first."""
    return not BUDGET.ok


def charge(nbytes: int) -> None:
    """Account one inline operation (the fast paths write this out)."""
    b = BUDGET
    spent = b.spent = b.spent + nbytes + COST_PER_OP
    if spent > b.next:
        crossed()


def crossed() -> None:
    """``spent`` passed ``next``: past the limit, the budget is spent; past
    a quarter of it, start again when the loop next iterates."""
    b = BUDGET
    if b.spent > b.limit:
        b.ok = False
        b.next = OFF
        return
    b.next = b.limit
    loop = events._get_running_loop()
    if loop is not None:  # None: a coroutine driven by hand, no loop to yield to
        loop.call_soon(_reset)


def _reset() -> None:
    b = BUDGET
    b.spent = 0
    b.ok = True
    b.next = b.limit // ARM_FRACTION if b.limit < OFF else OFF


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
    BUDGET.limit = min(int(budget_us * UNITS_PER_US), OFF) if budget_us else OFF
    BUDGET.epoch += 1
    _reset()
