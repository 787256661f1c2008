"""Sans-I/O read policy: per inode, should a read be tried inline?

Every AsyncFile on one inode (st_dev, st_ino) shares one ``InodeState``,
kept in a bounded LRU table. The policy only returns decisions and records
outcomes; it does no I/O and uses neither asyncio nor os (``_native`` only
gives its classes their C bases), so it is tested as plain functions
(tests/test_policy.py).

States::

    UNKNOWN ──resident──▶ WARM ◀──re-probe finds it resident── COLD
       │                   │ hit ratio < COLD_BELOW                ▲
       └──not resident─────┴───────────────────────────────────────┘
    any ──EOPNOTSUPP/ENOSYS/EPERM/EINVAL──▶ UNSUPPORTED (for good)

A file not known to be warm is never read inline on a guess: on kernels
>= ~6.12 a NOWAIT miss starts readahead on the calling thread (10 us to 1 s,
DESIGN.md), so its residency is checked first with cachestat(2), which does
no I/O. Where cachestat is missing the kernel is older than 6.5, where a
NOWAIT miss is a cheap EAGAIN, so a small probe read is tried instead.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import errno
from typing import TYPE_CHECKING, Final

from aiofastread import _native


class FileState(enum.Enum):
    UNKNOWN = "unknown"
    WARM = "warm"
    COLD = "cold"
    UNSUPPORTED = "unsupported"


class Decision(enum.Enum):
    INLINE = "inline"  # try preadv2(RWF_NOWAIT) on the loop thread
    CHECK_RESIDENCY = "check"  # ask cachestat first, then INLINE or POOL
    POOL = "pool"  # blocking read in the miss pool


class Outcome(enum.Enum):
    HIT = "hit"  # the whole range came back inline
    SHORT = "short"  # a cached prefix came back; the pool finishes the rest
    MISS = "miss"  # EAGAIN: nothing was cached at the offset
    RESIDENT = "resident"  # cachestat: the whole range is in the page cache
    NOT_RESIDENT = "not_resident"  # cachestat: some of the range is not
    UNSUPPORTED = "unsupported"  # EOPNOTSUPP & co: never try this file again
    POOLED = "pooled"  # served by the pool without trying inline


# Errors that mean "this file (or filesystem, or kernel) has no NOWAIT path":
# tmpfs/overlayfs/FUSE answer EOPNOTSUPP, old kernels ENOSYS, some seccomp
# profiles EPERM, an unknown flag EINVAL (DESIGN.md, "Facts").
UNSUPPORTED_ERRNOS: Final = frozenset(
    {errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.ENOTSUP}
)

# Weight of the newest outcome in the decaying hit ratio: 1/4 forgets a
# regime in ~8 reads: five misses in a row turn a WARM file COLD.
RATIO_DECAY: Final = 0.25
# A WARM file whose ratio falls below this becomes COLD: below ~1/4, the
# misses' inline cost (EAGAIN plus kernel readahead start, 10-150 us for
# 16 KiB on 6.18) outweighs the hits' savings (~100 us thread hop each).
COLD_BELOW: Final = 0.25
# A COLD file is re-probed (cachestat, no I/O) once every this many reads:
# a probe costs ~1 us; 1 in 16 keeps that under 0.1 us per read while a file
# that warms up is noticed within 16 reads.
REPROBE_EVERY: Final = 16
# Largest read tried inline: about one thread hop of loop time
# (bench/inline_cap.py, docs/performance.md "Inline cap"). With the C read a
# 1 MiB hit holds the loop 80-95 us, 1.0-1.2 hops, and costs the loop less
# CPU than the pool read it replaces (110-140 us: waking threads is
# expensive in this nested VM); 2 MiB is 2-2.5 hops. The cffi fallback pays
# a second copy (1 MiB: ~145 us) and a fresh buffer per read above 1 MiB.
INLINE_MAX: Final = 1 << 20
# Without cachestat, an UNKNOWN file is probed inline only with reads up to
# this size: the page cache either has it (fast) or says EAGAIN at once.
PROBE_MAX_WITHOUT_CACHESTAT: Final = 64 << 10
# Inodes tracked at once; an open file keeps its state even when evicted.
# 4096 states are ~1 MiB; the 10^5-file test proves the bound.
MAX_TRACKED: Final = 4096


COUNTER_FIELDS: Final = (
    "bytes_inline",
    "bytes_pooled",
    "inline_hits",
    "inline_misses",
    "pool_reads",
    "residency_checks",
    "short_reads",
    "skipped_cold",
    "unsupported",
)

# The C hit path (native/afr_hit.c) counts its hits into C fields: with the
# compiled module these classes derive from its types, whose members hold
# the fields it reads (counters, the state and its "warm" flag, enabled);
# without it, from a stand-in, and __slots__ holds them (_native.hit_base).
if TYPE_CHECKING:
    _CountersBase = object
    _InodeBase = object
    _PolicyBase = object
    _COUNTER_SLOTS: tuple[str, ...] = ()
    _INODE_HOT: tuple[str, ...] = ()
else:
    _CountersBase, _COUNTER_SLOTS = _native.hit_base("CountersCore", COUNTER_FIELDS)
    _InodeBase, _INODE_HOT = _native.hit_base("InodeCore", ("counters", "state"))
    _PolicyBase = _native.hit_base("PolicyCore", ())[0]


class Counters(_CountersBase):
    """Event counts for one inode (or, in ``Policy``, for all of them)."""

    __slots__ = _COUNTER_SLOTS

    def __init__(self) -> None:
        self.inline_hits = 0
        self.inline_misses = 0
        self.short_reads = 0
        self.skipped_cold = 0
        self.unsupported = 0
        self.residency_checks = 0
        self.pool_reads = 0
        self.bytes_inline = 0
        self.bytes_pooled = 0

    def add(self, other: Counters) -> None:
        for name in COUNTER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclasses.dataclass(frozen=True)
class FileStatistics:
    """A frozen snapshot of one inode's state and counters."""

    state: str
    hit_ratio: float
    inline_hits: int
    inline_misses: int
    short_reads: int
    skipped_cold: int
    unsupported: int
    residency_checks: int
    pool_reads: int
    bytes_inline: int
    bytes_pooled: int


class InodeState(_InodeBase):
    """What the policy knows of one inode."""

    __slots__ = ("__weakref__", "hit_ratio", "hits_folded", "key", "reads_since_probe", *_INODE_HOT)

    def __init__(self, key: tuple[int, int]) -> None:
        self.key = key
        self.state = FileState.UNKNOWN
        self.hit_ratio = 0.0
        self.reads_since_probe = 0
        self.counters = Counters()
        # Hits already folded into hit_ratio. The fast path only counts hits;
        # the ratio catches up here, when it is next needed (a miss, a
        # snapshot): k hits in a row move it by 1 - (1 - r) * (1 - decay)^k.
        self.hits_folded = 0

    def fold_hits(self) -> None:
        pending = self.counters.inline_hits - self.hits_folded
        if pending > 0:
            self.hit_ratio = 1.0 - (1.0 - self.hit_ratio) * (1.0 - RATIO_DECAY) ** pending
        self.hits_folded = self.counters.inline_hits

    def snapshot(self) -> FileStatistics:
        self.fold_hits()
        c = self.counters
        return FileStatistics(
            state=self.state.value,
            hit_ratio=self.hit_ratio,
            inline_hits=c.inline_hits,
            inline_misses=c.inline_misses,
            short_reads=c.short_reads,
            skipped_cold=c.skipped_cold,
            unsupported=c.unsupported,
            residency_checks=c.residency_checks,
            pool_reads=c.pool_reads,
            bytes_inline=c.bytes_inline,
            bytes_pooled=c.bytes_pooled,
        )


class Policy(_PolicyBase):
    """The bounded table of inode states and the decision rules."""

    def __init__(self, *, has_cachestat: bool, max_tracked: int = MAX_TRACKED) -> None:
        self.has_cachestat = has_cachestat
        self.max_tracked = max_tracked
        self.enabled = True  # configure(fast_path=False) turns every read into POOL
        self._table: collections.OrderedDict[tuple[int, int], InodeState] = (
            collections.OrderedDict()
        )
        # Counters of states that left the table, so totals never go down.
        self._retired = Counters()

    # -- table ----------------------------------------------------------------

    def state_for(self, dev: int, ino: int) -> InodeState:
        """The shared state of inode (dev, ino), created on first use."""
        key = (dev, ino)
        st = self._table.get(key)
        if st is not None:
            self._table.move_to_end(key)
            return st
        st = InodeState(key)
        self._table[key] = st
        if len(self._table) > self.max_tracked:
            _, old = self._table.popitem(last=False)
            self._retired.add(old.counters)
            # An open file may still count into ``old``; totals then include
            # only what it counted before eviction, which is fine for stats.
        return st

    def __len__(self) -> int:
        return len(self._table)

    def totals(self) -> Counters:
        total = Counters()
        total.add(self._retired)
        _native.sum_counters(self._table.values(), total)
        return total

    def reset(self) -> None:
        """Forget counters (not states): for benchmarks between runs."""
        self._retired = Counters()
        for st in self._table.values():
            st.counters = Counters()
            st.hits_folded = 0

    def clear(self) -> None:
        """Forget everything (tests, fork)."""
        self._table.clear()
        self._retired = Counters()

    # -- decisions ------------------------------------------------------------

    def decide(self, st: InodeState, size: int, *, direct_io: bool = False) -> Decision:
        """How to serve a read of ``size`` bytes on a file in state ``st``."""
        state = st.state
        if state is FileState.WARM:
            if size <= INLINE_MAX and self.enabled and not direct_io:
                return Decision.INLINE
            return Decision.POOL
        if state is FileState.UNSUPPORTED or direct_io or size > INLINE_MAX or not self.enabled:
            return Decision.POOL
        if state is FileState.COLD:
            st.reads_since_probe += 1
            if st.reads_since_probe < REPROBE_EVERY:
                st.counters.skipped_cold += 1
                return Decision.POOL
            st.reads_since_probe = 0
        # UNKNOWN, or a COLD file due for a re-probe.
        if self.has_cachestat:
            return Decision.CHECK_RESIDENCY
        if size <= PROBE_MAX_WITHOUT_CACHESTAT:
            return Decision.INLINE
        return Decision.POOL

    def probe_next(self, st: InodeState) -> None:
        """Have the next ``decide`` on a COLD file re-probe it: its pages are
        being read ahead of a stream (``_readahead``), so a probe (cachestat,
        ~1 us) is likely to find them, where waiting for the 16th read would
        send up to 15 cached reads to the pool."""
        if st.state is FileState.COLD:
            st.reads_since_probe = REPROBE_EVERY - 1

    def record(self, st: InodeState, outcome: Outcome, nbytes: int = 0) -> None:
        """Fold the outcome of one decision into the state and counters."""
        c = st.counters
        if outcome is Outcome.HIT:
            c.inline_hits += 1
            c.bytes_inline += nbytes
            if st.state is not FileState.WARM:
                st.hits_folded = c.inline_hits - 1
                self._observe(st, 1.0)
            # A WARM file's hits are folded into the ratio lazily (fold_hits).
        elif outcome is Outcome.SHORT:
            c.short_reads += 1
            c.bytes_inline += nbytes
            self._observe(st, 0.5)
        elif outcome is Outcome.MISS:
            c.inline_misses += 1
            self._observe(st, 0.0)
        elif outcome is Outcome.RESIDENT:
            c.residency_checks += 1
            # Residency alone does not move the ratio: the inline read that
            # follows records its own HIT or MISS.
        elif outcome is Outcome.NOT_RESIDENT:
            c.residency_checks += 1
            self._observe(st, 0.0)
        elif outcome is Outcome.UNSUPPORTED:
            c.unsupported += 1
            st.state = FileState.UNSUPPORTED
        elif outcome is Outcome.POOLED:
            c.pool_reads += 1
            c.bytes_pooled += nbytes

    def _observe(self, st: InodeState, value: float) -> None:
        if st.state is FileState.UNSUPPORTED:
            return
        st.fold_hits()
        if st.state is FileState.UNKNOWN:
            st.hit_ratio = value
        else:
            st.hit_ratio += RATIO_DECAY * (value - st.hit_ratio)
        if value >= 1.0 and st.state is not FileState.WARM:
            # A full hit proves the file is warm now, whatever its history.
            st.state = FileState.WARM
            st.hit_ratio = max(st.hit_ratio, COLD_BELOW * 2)
        elif st.hit_ratio < COLD_BELOW or st.state is FileState.UNKNOWN:
            if st.state is not FileState.COLD:
                st.reads_since_probe = 0
            st.state = FileState.COLD
