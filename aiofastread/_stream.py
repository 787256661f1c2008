"""When and how far to read ahead of a handle that streams a file (sans-I/O).

A stream read goes inline only while the pages after it are cached
(``_read._cached``). The readahead jobs of ``_readahead`` bring those pages
in off the loop; this module decides which ranges to ask for, from nothing
but offsets, sizes and a clock reading given to it. It imports neither
asyncio nor os, and is tested as plain functions (tests/test_stream.py).

The window ahead of a reader at ``end`` (the end of its current read)::

    end                 end + lookahead                 ahead_to
     |--- lookahead ---|------ lead (>= 1 chunk) -------|
     must be cached for  asked for, arriving; grows with
     the read to go      the reader's rate, at most
     inline (_read)      AHEAD_CHUNKS_MAX chunks

Jobs are chunks from ``ahead_to`` on, on chunk boundaries, never past the
size known (``size_hint``). A read that does not start where the last one ended
forgets the stream: a reader that turned random gets no readahead.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Final

# One readahead job's bytes: the device's readahead window, but at least
# 1 MiB, so that a device with a small window (loop devices: 128 KiB) gets
# few, large jobs (the kernel then submits the range in requests as large
# as the device takes: fewer I/Os on an IOPS-bound device), and at most
# 8 MiB (the largest read_ahead_kb seen here, vda).
CHUNK_MIN: Final = 1 << 20
CHUNK_MAX: Final = 8 << 20
# The lead past the lookahead is the bytes the reader consumes in this
# long, at its measured rate: a job on the 300-IOPS slow device takes
# 10-100 ms (docs/streams.md); a quarter second covers the slow end twice.
LEAD_NS: Final = 250_000_000
# At most this many chunks past the lookahead per reader (the per-file
# bound; the process-wide bound is the C pool's, afr_readahead.c).
AHEAD_CHUNKS_MAX: Final = 4
# Reads that continue a stream before the first readahead: one read after
# another at the next offset can be a header and its body; three in a row
# is a stream (the kernel's own readahead serves the first reads).
STREAK_MIN: Final = 2
# The rate is sampled at most this often (one sample per 10 ms of reading),
# and averaged with this weight for the newest sample.
RATE_SAMPLE_NS: Final = 10_000_000
RATE_DECAY: Final = 0.5


# Streams are numbered for the C pool, which runs one job per stream at a
# time (native/afr_readahead.c says why).
_idents = itertools.count(1)


@dataclasses.dataclass(slots=True)
class Stream:
    """One handle's stream: how far readahead was asked for, how fast it reads."""

    ahead_to: int  # readahead asked for up to here (exclusive)
    mark_pos: int  # offset and clock of the last rate sample
    mark_ns: int
    streak: int = 0  # reads in a row that continued the stream
    rate: float = 0.0  # bytes/s, decaying average
    ident: int = dataclasses.field(default_factory=_idents.__next__, compare=False)


# The kernel's largest step of readahead (force_page_cache_ra): the unit of
# a chunk when the device's request size is not known.
KERNEL_STEP: Final = 2 << 20


def piece_for(request: int) -> int:
    """The unit chunks are whole multiples of, for a device whose largest
    request is ``request`` bytes (0: unknown): the most whole requests in
    one kernel step, so a job's range ends where a request would (the
    kernel's readahead inside a job splits it into such requests)."""
    if request <= 0 or request >= KERNEL_STEP:
        return KERNEL_STEP
    return request * (KERNEL_STEP // request)


def chunk_for(window: int, piece: int = KERNEL_STEP) -> int:
    """One job's bytes for a device whose readahead window is ``window``:
    a whole number of ``piece``s."""
    chunk = min(max(window, CHUNK_MIN), CHUNK_MAX)
    return -(-chunk // piece) * piece


def observe(stream: Stream | None, offset: int, seq_end: int, now_ns: int) -> Stream | None:
    """A read at ``offset`` starts; ``seq_end`` is where the handle's last
    read ended. Returns the stream (new, or updated in place), or None when
    the read does not continue one (the handle turned random: forgotten)."""
    if offset != seq_end:
        return None
    if stream is None:
        return Stream(ahead_to=offset, mark_pos=offset, mark_ns=now_ns, streak=1)
    stream.streak += 1
    elapsed = now_ns - stream.mark_ns
    if elapsed >= RATE_SAMPLE_NS:
        sample = (offset - stream.mark_pos) * 1e9 / elapsed
        rate = stream.rate
        stream.rate = rate + RATE_DECAY * (sample - rate) if rate else sample
        stream.mark_pos, stream.mark_ns = offset, now_ns
    return stream


def depth(stream: Stream, window: int, lookahead: int, piece: int = KERNEL_STEP) -> int:
    """How far past the reader's read end readahead should have been asked for."""
    chunk = chunk_for(window, piece)
    lead = min(max(int(stream.rate * LEAD_NS / 1e9), chunk), AHEAD_CHUNKS_MAX * chunk)
    return lookahead + lead


def plan(
    stream: Stream,
    end: int,
    *,
    window: int,
    lookahead: int,
    size_hint: int,
    piece: int = KERNEL_STEP,
) -> list[tuple[int, int]]:
    """The readahead jobs ``(offset, length)`` to submit now, for a reader
    whose current read ends at ``end``; submit them in order and call
    ``submitted`` for each one taken (a refused job and those after it are
    asked for again at the next read). Jobs end on chunk boundaries (the
    first one may start between two); ``one_job`` makes them one range."""
    if stream.streak < STREAK_MIN:
        return []
    target = min(end + depth(stream, window, lookahead, piece), size_hint)
    start = max(stream.ahead_to, end)
    chunk = chunk_for(window, piece)
    jobs: list[tuple[int, int]] = []
    while start < target:
        length = min(chunk - start % chunk, size_hint - start)
        jobs.append((start, length))
        start += length
    return jobs


def one_job(jobs: list[tuple[int, int]]) -> tuple[int, int] | None:
    """``plan``'s jobs as one range ``(offset, length)`` (they are contiguous):
    a stream has one job in flight at a time, read through in order."""
    if not jobs:
        return None
    start = jobs[0][0]
    last_offset, last_length = jobs[-1]
    return start, last_offset + last_length - start


def submitted(stream: Stream, offset: int, length: int) -> None:
    """The job ``(offset, length)`` of ``plan`` was taken."""
    stream.ahead_to = max(stream.ahead_to, offset + length)
