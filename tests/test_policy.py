"""The policy as plain functions: the whole state after each step (h11 style)."""

from __future__ import annotations

import pytest

from aiofastread import _native
from aiofastread._policy import (
    COLD_BELOW,
    COUNTER_FIELDS,
    INLINE_MAX,
    PROBE_MAX_WITHOUT_CACHESTAT,
    REPROBE_EVERY,
    Decision,
    FileState,
    Outcome,
    Policy,
)


def fresh(has_cachestat: bool = True) -> tuple[Policy, object]:
    policy = Policy(has_cachestat=has_cachestat)
    return policy, policy.state_for(1, 2)


def test_unknown_file_is_checked_before_any_inline_read() -> None:
    policy, st = fresh()
    assert st.state is FileState.UNKNOWN
    assert policy.decide(st, 16384) is Decision.CHECK_RESIDENCY


def test_resident_then_hit_makes_file_warm() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.RESIDENT)
    assert st.state is FileState.UNKNOWN  # residency alone proves nothing yet
    policy.record(st, Outcome.HIT, 16384)
    assert (st.state, st.hit_ratio) == (FileState.WARM, 1.0)
    assert policy.decide(st, 16384) is Decision.INLINE
    snap = st.snapshot()
    assert (snap.inline_hits, snap.residency_checks, snap.bytes_inline) == (1, 1, 16384)


def test_not_resident_makes_unknown_file_cold() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.NOT_RESIDENT)
    assert (st.state, st.hit_ratio) == (FileState.COLD, 0.0)


def test_warm_file_turns_cold_after_consecutive_misses() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.HIT, 1)
    misses = 0
    while st.state is FileState.WARM:
        policy.record(st, Outcome.MISS)
        misses += 1
        assert misses < 50
    assert st.state is FileState.COLD
    assert st.hit_ratio < COLD_BELOW
    # 1.0 decays by 3/4 per miss: 0.75^5 = 0.237 is the first below 0.25.
    assert misses == 5
    assert st.snapshot().inline_misses == 5


def test_cold_file_skips_then_reprobes() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.NOT_RESIDENT)
    decisions = [policy.decide(st, 4096) for _ in range(REPROBE_EVERY)]
    assert decisions[:-1] == [Decision.POOL] * (REPROBE_EVERY - 1)
    assert decisions[-1] is Decision.CHECK_RESIDENCY
    assert st.snapshot().skipped_cold == REPROBE_EVERY - 1
    # The re-probe finds it resident and the inline read hits: warm again.
    policy.record(st, Outcome.RESIDENT)
    policy.record(st, Outcome.HIT, 4096)
    assert st.state is FileState.WARM
    assert policy.decide(st, 4096) is Decision.INLINE


@pytest.mark.parametrize("outcome_state", [FileState.UNKNOWN, FileState.WARM, FileState.COLD])
def test_unsupported_is_for_good(outcome_state: FileState) -> None:
    policy, st = fresh()
    st.state = outcome_state
    policy.record(st, Outcome.UNSUPPORTED)
    assert st.state is FileState.UNSUPPORTED
    for _ in range(3 * REPROBE_EVERY):
        assert policy.decide(st, 100) is Decision.POOL
    policy.record(st, Outcome.HIT, 100)  # even a stray hit does not revive it
    assert st.state is FileState.UNSUPPORTED


def test_no_inline_for_direct_io_big_reads_or_disabled_fast_path() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.HIT, 1)
    assert policy.decide(st, 4096, direct_io=True) is Decision.POOL
    assert policy.decide(st, INLINE_MAX + 1) is Decision.POOL
    assert policy.decide(st, INLINE_MAX) is Decision.INLINE
    policy.enabled = False
    assert policy.decide(st, 4096) is Decision.POOL


def test_without_cachestat_small_reads_probe_inline_big_ones_pool() -> None:
    policy, st = fresh(has_cachestat=False)
    assert policy.decide(st, PROBE_MAX_WITHOUT_CACHESTAT) is Decision.INLINE
    assert policy.decide(st, PROBE_MAX_WITHOUT_CACHESTAT + 1) is Decision.POOL


def test_states_are_shared_per_inode_and_table_is_bounded() -> None:
    policy = Policy(has_cachestat=True, max_tracked=100)
    a = policy.state_for(1, 1)
    assert policy.state_for(1, 1) is a
    assert policy.state_for(2, 1) is not a
    for ino in range(100_000):
        st = policy.state_for(9, ino)
        policy.record(st, Outcome.POOLED, 10)
    assert len(policy) == 100
    # Counters of evicted states are kept in the totals.
    assert policy.totals().pool_reads == 100_000
    assert policy.totals().bytes_pooled == 1_000_000


def test_reset_keeps_states_and_zeroes_counters() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.HIT, 10)
    policy.reset()
    assert st.state is FileState.WARM
    assert policy.totals().inline_hits == 0


def test_hits_on_a_warm_file_fold_into_the_ratio_lazily() -> None:
    policy, st = fresh()
    policy.record(st, Outcome.HIT, 1)
    policy.record(st, Outcome.MISS)
    policy.record(st, Outcome.MISS)
    assert st.hit_ratio == pytest.approx(0.75**2)
    # The fast path only counts hits; a snapshot (or the next miss) folds them.
    st.counters.inline_hits += 3
    assert st.snapshot().hit_ratio == pytest.approx(1 - (1 - 0.75**2) * 0.75**3)
    st.counters.inline_hits += 2
    policy.record(st, Outcome.MISS)
    expected = 1 - (1 - 0.75**2) * 0.75**5
    assert st.hit_ratio == pytest.approx(expected * 0.75)
    assert st.state is FileState.WARM


@pytest.mark.parametrize("compiled", [True, False])
def test_totals_add_every_counter_of_every_state(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy.totals sums the nine counters over the table (in C with the
    compiled module, else in Python) plus those of evicted states."""
    if not compiled:
        monkeypatch.setattr(_native, "_hit", None)
    elif _native._hit is None:
        pytest.skip("no compiled module here")
    policy = Policy(has_cachestat=True, max_tracked=50)
    want = dict.fromkeys(COUNTER_FIELDS, 0)
    for ino in range(80):  # 30 evicted into the retired counters
        counters = policy.state_for(3, ino).counters
        for k, name in enumerate(COUNTER_FIELDS):
            value = ino * 10 + k
            setattr(counters, name, value)
            want[name] += value
    total = policy.totals()
    assert {name: getattr(total, name) for name in COUNTER_FIELDS} == want
