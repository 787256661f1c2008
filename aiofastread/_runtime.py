"""Process-wide state: the policy table, the miss pool, and their knobs."""

from __future__ import annotations

import dataclasses

from aiofastread import _budget, _native, _policy, _pool, _readahead
from aiofastread._fspolicy import FILESYSTEMS

POLICY = _policy.Policy(has_cachestat=_native.backend.cachestat is not None)
FILESYSTEMS.read_policy = POLICY  # configure(fast_path=False) keeps closes in the pool too


@dataclasses.dataclass(frozen=True)
class Statistics:
    """A frozen snapshot of every counter, taken by ``aiofastread.statistics()``.

    inline_hits       reads served whole by preadv2(RWF_NOWAIT) on the loop
    inline_misses     inline attempts that found nothing cached (EAGAIN)
    short_reads       inline attempts that got a cached prefix only
    skipped_cold      reads of COLD files sent to the pool without trying
    unsupported       files found to have no NOWAIT path (tmpfs, FUSE, ...)
    residency_checks  cachestat(2) calls made before a first inline read
    pool_submissions  every job the miss pool ran (reads, opens, closes, ...)
    pool_reads        reads (or read remainders) served by the pool
    misses_in_flight  pool jobs submitted and not finished, right now
    bytes_inline      bytes returned by inline reads
    bytes_pooled      bytes returned by pool reads
    readahead_jobs    ranges read ahead of streaming readers by the native pool
    readahead_bytes   bytes those ranges cover (docs/streams.md)
    tracked_files     inodes in the policy table
    coop_yields       times a task yielded to the loop because its inline
                      work used up the cooperative budget (coop_budget_us)
    inline_opens      opens done on the loop (openat2 RESOLVE_CACHED)
    open_fallbacks    inline opens tried and handed to the pool (EAGAIN, ...)
    inline_closes     read-only descriptors closed on the loop
    local_filesystems   filesystems seen, known local (inline opens allowed)
    remote_filesystems  filesystems seen, network/FUSE/unknown (pool only)
    """

    backend: str
    fast_path: bool
    inline_hits: int
    inline_misses: int
    short_reads: int
    skipped_cold: int
    unsupported: int
    residency_checks: int
    pool_submissions: int
    pool_reads: int
    misses_in_flight: int
    pool_waiting: int
    bytes_inline: int
    bytes_pooled: int
    tracked_files: int
    readahead_jobs: int
    readahead_bytes: int
    coop_yields: int
    inline_opens: int
    open_fallbacks: int
    inline_closes: int
    local_filesystems: int
    remote_filesystems: int


def statistics() -> Statistics:
    totals = POLICY.totals()
    pool = _pool.default_pool().statistics()
    return Statistics(
        backend=_native.backend.name,
        fast_path=POLICY.enabled and _native.backend.can_read_inline,
        inline_hits=totals.inline_hits,
        inline_misses=totals.inline_misses,
        short_reads=totals.short_reads,
        skipped_cold=totals.skipped_cold,
        unsupported=totals.unsupported,
        residency_checks=totals.residency_checks,
        pool_submissions=pool.submissions,
        pool_reads=totals.pool_reads,
        misses_in_flight=pool.in_flight,
        pool_waiting=pool.waiting,
        bytes_inline=totals.bytes_inline,
        bytes_pooled=totals.bytes_pooled,
        tracked_files=len(POLICY),
        readahead_jobs=_readahead.jobs,
        readahead_bytes=_readahead.nbytes,
        coop_yields=_budget.BUDGET.yields,
        inline_opens=FILESYSTEMS.inline_opens,
        open_fallbacks=FILESYSTEMS.open_fallbacks,
        inline_closes=FILESYSTEMS.inline_closes,
        local_filesystems=FILESYSTEMS.local_filesystems,
        remote_filesystems=FILESYSTEMS.remote_filesystems,
    )


def reset_statistics() -> None:
    """Zero the counters (file states are kept)."""
    POLICY.reset()
    FILESYSTEMS.reset()
    _pool.default_pool().reset_counters()
    _readahead.reset_counters()
    _budget.BUDGET.yields = 0


def configure(
    *,
    max_workers: int | None = None,
    max_in_flight: int | None = None,
    fast_path: bool | None = None,
    native_pool: bool | None = None,
    readahead: bool | None = None,
    write_buffer_size: int | None = None,
    coop_budget_us: float | None = None,
) -> None:
    """Tune the library for this process.

    max_workers    threads in the miss pool (default 16)
    max_in_flight  pool jobs submitted at once before awaiters wait (1024)
    fast_path      False sends every read to the pool: the thread-pool
                   baseline, for comparison and for debugging
    native_pool    False reads misses on Python threads instead of the native
                   miss pool's C threads (which need no GIL); for comparison
    readahead      False stops reading ahead of streaming readers
                   (docs/streams.md); for comparison
    write_buffer_size  bytes buffered by files opened "wb"/"ab"/"xb" without
                   buffering= (default 256 KiB; see aiofastread/_writer.py)
    coop_budget_us inline work (us, estimated) a task may do without
                   suspending before its next inline operation yields to the
                   loop once (default 1000); 0 turns the budget off
    """
    _pool.default_pool().configure(max_workers=max_workers, max_in_flight=max_in_flight)
    if fast_path is not None:
        if not isinstance(fast_path, bool):
            raise TypeError(f"fast_path must be a bool, not {type(fast_path).__name__}")
        POLICY.enabled = fast_path
    if native_pool is not None:
        if not isinstance(native_pool, bool):
            raise TypeError(f"native_pool must be a bool, not {type(native_pool).__name__}")
        _native.want_native_pool(native_pool)
    if readahead is not None:
        if not isinstance(readahead, bool):
            raise TypeError(f"readahead must be a bool, not {type(readahead).__name__}")
        _readahead.enabled = readahead
    if write_buffer_size is not None:
        from aiofastread import _writer  # imports _file, which imports this module

        _writer.set_default_buffer_size(write_buffer_size)
    if coop_budget_us is not None:
        _budget.set_limit(coop_budget_us)


def use_backend(name: str) -> None:
    """Switch the read backend ("native", "python" or "pool"); for tests and
    benchmarks. Normally chosen once at import (AIOFASTREAD_BACKEND)."""
    _native.use(name)
    POLICY.has_cachestat = _native.backend.cachestat is not None
    POLICY.clear()
    _readahead.reset_counters()
    FILESYSTEMS.clear()


def backend() -> str:
    """Which read backend is in use: "native", "python" or "pool"."""
    return _native.backend.name
