"""Latency statistics: percentiles, shares and CDF points from raw samples.

Samples are integer nanoseconds in an ``array('q')`` (8 bytes a read, no
per-read objects: a million fast-path reads cost 8 MB and no GC work while the
loop is being measured). numpy is not required, so percentiles are computed
on a sorted list with the nearest-rank method, the one fio reports.
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Sequence

# The table columns: p50/p90/p99/p99.9.
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
# "Share of reads under 10 us": 10 us is a few cached preadv2 calls (2.9 us
# each, ../shared/DESIGN.md) and well under one thread hop (80-130 us), so reads below
# it were served without leaving the loop thread.
FAST_THRESHOLD_NS = 10_000
# Points kept per CDF in the JSON and the plot: enough for a smooth curve on
# a log axis over six decades, small enough for a readable JSON file.
CDF_POINTS = 200


def new_samples() -> array[int]:
    """An empty sample buffer of signed 64-bit nanoseconds."""
    return array("q")


Number = TypeVar("Number", int, float)


def percentile(sorted_ns: Sequence[Number], pct: float) -> Number:
    """Nearest-rank percentile of ascending ``sorted_ns`` (0 for no samples).

    The nearest rank is the smallest sample such that at least ``pct`` percent
    of the samples are <= it: always an observed value, never interpolated
    (also for float samples: bench/cached.py takes it of ratios).
    """
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"pct must be within [0, 100], got {pct!r}")
    n = len(sorted_ns)
    if n == 0:
        return 0
    rank = max(1, math.ceil(pct / 100.0 * n))
    return sorted_ns[rank - 1]


def share_below(sorted_ns: Sequence[int], threshold_ns: int) -> float:
    """Fraction of samples strictly below ``threshold_ns`` (0.0 for none)."""
    n = len(sorted_ns)
    if n == 0:
        return 0.0
    lo, hi = 0, n
    while lo < hi:  # bisect_left without a key, works on any sequence
        mid = (lo + hi) // 2
        if sorted_ns[mid] < threshold_ns:
            lo = mid + 1
        else:
            hi = mid
    return lo / n


def cdf_points(sorted_ns: Sequence[int], points: int = CDF_POINTS) -> list[tuple[float, float]]:
    """(latency in us, fraction of reads <= it), log-spaced in latency.

    Log spacing because the interesting part spans microseconds (inline hits)
    to hundreds of milliseconds (throttled misses). Always includes the
    minimum and the maximum so the curve starts and ends where the data do.
    """
    n = len(sorted_ns)
    if n == 0:
        return []
    lo = max(int(sorted_ns[0]), 1)
    hi = max(int(sorted_ns[-1]), lo)
    out: list[tuple[float, float]] = []
    if hi == lo:
        return [(lo / 1000.0, 1.0)]
    step = math.log(hi / lo) / (points - 1)
    idx = 0
    for i in range(points):
        x = hi if i == points - 1 else lo * math.exp(step * i)
        while idx < n and sorted_ns[idx] <= x:
            idx += 1
        out.append((x / 1000.0, idx / n))
    return out


@dataclasses.dataclass(frozen=True)
class LatencySummary:
    """What the report shows of one set of samples (all times in us)."""

    count: int
    mean_us: float
    min_us: float
    max_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    under_10us: float  # share of reads below FAST_THRESHOLD_NS

    @classmethod
    def empty(cls) -> LatencySummary:
        return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def summarize(sorted_ns: Sequence[int]) -> LatencySummary:
    """Summary of ascending samples in ns."""
    n = len(sorted_ns)
    if n == 0:
        return LatencySummary.empty()
    p50, p90, p99, p999 = (percentile(sorted_ns, p) / 1000.0 for p in PERCENTILES)
    return LatencySummary(
        count=n,
        mean_us=sum(sorted_ns) / n / 1000.0,
        min_us=sorted_ns[0] / 1000.0,
        max_us=sorted_ns[-1] / 1000.0,
        p50_us=p50,
        p90_us=p90,
        p99_us=p99,
        p999_us=p999,
        under_10us=share_below(sorted_ns, FAST_THRESHOLD_NS),
    )


def merge_sorted(parts: Sequence[Sequence[int]]) -> list[int]:
    """All samples of ``parts`` in one ascending list (for the total row)."""
    out: list[int] = []
    for part in parts:
        out.extend(part)
    out.sort()
    return out
