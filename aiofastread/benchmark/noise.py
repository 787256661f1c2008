"""The machine's own stalls: controls for the heartbeat's "worst loop stall".

A virtual machine (or a busy laptop) sometimes does not run a process for
milliseconds at a time: the host deschedules a vCPU, other processes take
the CPU. The heartbeat inside the measured process cannot tell that from a
stall its event loop caused. So while each engine runs, an independent
process (``python -m aiofastread.benchmark.noise``, almost idle) sleeps 1 ms
in a loop and records when it woke late. A loop stall that overlaps one of
those was, at least in part, the machine's. The sleeper wakes briefly and
the scheduler favours it, so it misses one cause: a busy loop thread that
other processes push off the CPU. For that, the heartbeat also records the
loop thread's run-queue wait per tick (/proc/thread-self/schedstat).
``unexplained`` subtracts the larger explanation. All numbers are reported;
none replaces the raw worst stall.

Clocks: ``perf_counter_ns`` is CLOCK_MONOTONIC on Linux, one clock for every
process, so the sleeper's and the heartbeat's timestamps compare directly.
"""

from __future__ import annotations

import bisect
import select
import sys
import time
from array import array

# Same period as the heartbeat (workload.HEARTBEAT_NS), so both see the
# same kind of delay.
PERIOD_S = 0.001
# Lateness below this is timer slack and epoll's millisecond rounding, not a
# stall; only events above it are recorded (keeps the file small).
RECORD_ABOVE_NS = 200_000


def sleeper_main(out_path: str) -> int:
    """Sleep 1 ms at a time until stdin closes; write (end_ns, late_ns) pairs."""
    ends: array[int] = array("q")
    lates: array[int] = array("q")
    clock = time.perf_counter_ns
    period_ns = int(PERIOD_S * 1e9)
    stdin = sys.stdin
    while True:
        t0 = clock()
        # select doubles as the sleep and as the stop signal: stdin becomes
        # readable (EOF) when the parent closes it.
        ready, _, _ = select.select([stdin], [], [], PERIOD_S)
        t1 = clock()
        if ready:
            break
        late = t1 - t0 - period_ns
        if late > RECORD_ABOVE_NS:
            ends.append(t1)
            lates.append(late)
    with open(out_path, "wb") as fh:
        ends.tofile(fh)
        lates.tofile(fh)
    return 0


def load(path: str) -> tuple[array[int], array[int]]:
    """(end_ns, late_ns) arrays written by ``sleeper_main``."""
    data: array[int] = array("q")
    with open(path, "rb") as fh:
        data.frombytes(fh.read())
    half = len(data) // 2
    return data[:half], data[half:]


def overlap_ns(
    start: int, end: int, ends: array[int] | list[int], lates: array[int] | list[int]
) -> int:
    """Length of [start, end] covered by the intervals [e - l, e] (sorted by e).

    The sleeper's intervals do not overlap one another (each starts after
    the previous one ended), so their covered lengths simply add up.
    """
    total = 0
    i = bisect.bisect_left(ends, start)
    while i < len(ends):
        e, l_ = ends[i], lates[i]
        s = e - l_
        if s >= end:
            break
        total += max(0, min(end, e) - max(start, s))
        i += 1
    return total


def analyse(
    tick_ends: array[int] | list[int],
    tick_lates: array[int] | list[int],
    ends: array[int] | list[int],
    lates: array[int] | list[int],
    window: tuple[int, int],
    tick_waits: array[int] | list[int] | None = None,
    tick_misses: array[int] | list[int] | None = None,
) -> dict[str, float]:
    """The machine's part in the loop's stalls, in ms.

    ``machine_worst``: the idle sleeper's worst stall within ``window``.
    ``run_queue_worst``: the most the loop thread waited for a CPU (other
    processes running) during one tick. ``unexplained_worst``: the loop's
    worst stall minus the larger of the two explanations for that tick (the
    larger, not the sum: they may be the same delay seen twice).
    ``unexplained_worst_with_miss``: the same, over ticks in which an inline
    read missed (``tick_misses``): what the fast path itself may have cost.
    """
    lo, hi = window
    machine = max((lt for e, lt in zip(ends, lates, strict=True) if lo <= e <= hi), default=0)
    waits = tick_waits if tick_waits is not None else [0] * len(tick_lates)
    misses = tick_misses if tick_misses is not None else [0] * len(tick_lates)
    unexplained = unexplained_miss = 0
    for e, lt, w, m in zip(tick_ends, tick_lates, waits, misses, strict=True):
        if lt > 0:
            explained = max(overlap_ns(e - lt, e, ends, lates), w)
            unexplained = max(unexplained, lt - explained)
            if m:
                unexplained_miss = max(unexplained_miss, lt - explained)
    return {
        "machine_worst": machine / 1e6,
        "run_queue_worst": max(waits, default=0) / 1e6,
        "run_queue_total": sum(waits) / 1e6,
        "unexplained_worst": max(unexplained, 0) / 1e6,
        "unexplained_worst_with_miss": max(unexplained_miss, 0) / 1e6,
    }


if __name__ == "__main__":
    try:
        sys.exit(sleeper_main(sys.argv[1]))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group
        sys.exit(130)
