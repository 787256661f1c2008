"""The read path: policy -> inline preadv2(RWF_NOWAIT) -> pool for the rest.

``read_at`` is shaped like asyncio's ``sock_sendfile``: try the native way,
catch the one named "not now" outcome (a miss or a short read), fall back to
the pool for exactly what is missing. Blocking reads run in the pool, are
positional (``os.pread``) and never touch the OS file offset (invariant 2).
"""

from __future__ import annotations

import errno
import os

from aiofastread import _budget, _native, _native_pool, _readahead
from aiofastread._handle import FileHandle
from aiofastread._policy import INLINE_MAX, UNSUPPORTED_ERRNOS, Decision, FileState, Outcome
from aiofastread._runtime import POLICY

# Reads to EOF of unknown length grow in steps of this size; 256 KiB keeps
# the number of pool hops low without holding much memory per reader.
READALL_STEP = 256 << 10

# A NOWAIT read that *hits* a page the kernel marked for readahead starts
# the next readahead window on the calling thread: page allocation and bio
# submission, 1-4 ms a hit on the 300-IOPS slow device (bench/stall_trace.py,
# docs/benchmarks.md "Where the stalls went"). Streams meet those marks, so
# a read that continues one goes inline only while two readahead windows
# past its end are all cached (cachestat, no I/O): the readahead such a hit
# starts then finds its pages there. The window is the device's
# read_ahead_kb, learnt by the pool at open; unknown devices get 8 MiB, the
# largest seen here (vda; loop devices 128 KiB).
DEFAULT_READAHEAD = 8 << 20
_readahead_by_dev: dict[int, int] = {}
# The largest request each device takes (max_sectors_kb; 0: unknown): the
# readahead jobs ask for ranges in multiples of it (_stream.piece_for).
_request_by_dev: dict[int, int] = {}


def learn_readahead(dev: int) -> None:
    """Blocking (pool side, at open): remember ``dev``'s readahead window."""
    if dev in _readahead_by_dev:
        return
    major, minor = os.major(dev), os.minor(dev)
    _request_by_dev[dev] = _sysfs_kb(
        f"/sys/dev/block/{major}:{minor}/queue/max_sectors_kb",
        f"/sys/dev/block/{major}:{minor}/../queue/max_sectors_kb",  # a partition: its disk's
    )
    # A bdi per whole disk and per virtual filesystem; a partition's is its disk's.
    window = _sysfs_kb(
        f"/sys/class/bdi/{major}:{minor}/read_ahead_kb",
        f"/sys/dev/block/{major}:{minor}/../queue/read_ahead_kb",
    )
    _readahead_by_dev[dev] = max(window, 4 << 10) if window else DEFAULT_READAHEAD


def _sysfs_kb(*paths: str) -> int:
    """Blocking: the first of ``paths`` that holds a number of KiB, in bytes; 0 if none."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                return int(f.read()) << 10
        except (OSError, ValueError):
            continue
    return 0


def lookahead(h: FileHandle) -> int:
    """Bytes past a stream read's end that must be cached for it to go inline."""
    return 2 * _readahead_by_dev.get(h.inode.key[0], DEFAULT_READAHEAD)


def follow_stream(h: FileHandle, offset: int, size: int) -> None:
    """A read starts: if it continues a stream (or ``h`` had one), have the
    pages ahead of it brought in off the loop (``_readahead``). Not with
    the fast path off: readahead feeds inline reads, and the thread-pool
    baseline (configure(fast_path=False)) must stay one."""
    if (offset == h.seq_end or h.stream is not None) and POLICY.enabled:
        dev = h.inode.key[0]
        window = _readahead_by_dev.get(dev, DEFAULT_READAHEAD)
        _readahead.note(h, offset, size, window, _request_by_dev.get(dev, 0))


def pread_full(fd: int, size: int, offset: int) -> bytes:
    """Blocking: ``size`` bytes at ``offset``, fewer only at EOF (pool side)."""
    first = os.pread(fd, size, offset)
    if len(first) == size or not first:
        return first
    chunks = [first]
    got = len(first)
    while got < size:
        chunk = os.pread(fd, size - got, offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def pread_to_eof(fd: int, offset: int) -> bytes:
    """Blocking: everything from ``offset`` to EOF (pool side)."""
    data, error = pread_to_eof_or_error(fd, offset)
    if error is not None:
        raise error
    return data


def pread_to_eof_or_error(fd: int, offset: int) -> tuple[bytes, OSError | None]:
    """Blocking: everything from ``offset`` to EOF, read as FileIO.readall
    reads it (the first read asks for the size left + 1), and the error that
    stopped it early, if one did, with the bytes read before it (pool side)."""
    size = os.fstat(fd).st_size
    chunks: list[bytes] = []
    step = max(size - offset, 0) + 1  # +1 sees EOF (or growth) in one call
    while True:
        try:
            chunk = os.pread(fd, step, offset)
        except OSError as exc:
            return b"".join(chunks), exc
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        step = max(step, READALL_STEP)
    return b"".join(chunks), None


# A loop busy with inline hits holds the GIL but for its epoll_wait, from
# which it returns before a woken thread can take it: a pool thread whose
# read is done waits CPython's switch interval (5 ms) for it, and with a few
# queued the misses slow down 10-30x (docs/benchmarks.md, "Misses behind a
# saturated loop"). So every 16th hit on a file while the pool has work,
# the loop thread yields (os.sched_yield releases the GIL and the CPU).
# Slow-device bench, closed loop, two runs each (baseline f2/f3 4.9/11 MB/s):
# every 32nd hit gave f2/f3 2.0-2.4/1.4-1.7 MB/s, every 16th 4.1-4.4/3.0-3.4,
# f1 1000-1080 MB/s against 1120-1320 (p50 4-5 us either way).
YIELD_EVERY_MASK = 16 - 1


def yield_to_pool(h: FileHandle, hits: int) -> None:
    """After an inline hit (``hits``: the file's count): let pool threads in."""
    if not hits & YIELD_EVERY_MASK and h.pool.busy:
        os.sched_yield()


def try_inline(h: FileHandle, offset: int, size: int) -> tuple[bytes, bool]:
    """Serve what the page cache has, without blocking.

    Returns ``(data, complete)``. ``complete`` means ``data`` is the whole
    answer (all ``size`` bytes, or a read that ends at EOF); otherwise
    ``data`` is a cached prefix (maybe empty) and the caller finishes in the
    pool. Records every outcome in the policy.
    """
    follow_stream(h, offset, size)
    st = h.inode
    if h.stream is not None and _readahead.active(h):
        POLICY.probe_next(st)
    decision = POLICY.decide(st, size, direct_io=h.direct_io)
    if decision is Decision.POOL or not _native.backend.can_read_inline:
        return b"", False
    if not _cached(h, offset, size, known_warm=decision is Decision.INLINE):
        return b"", False
    read_nowait = _native.backend.read_nowait  # a call off a slot is slower (see _file)
    return judge_inline(h, offset, size, read_nowait(h.fd, size, offset))


def _cached(h: FileHandle, offset: int, size: int, *, known_warm: bool) -> bool:
    """Whether an inline read of [offset, offset+size) cannot start I/O.

    A file not known warm: the range must be resident (cachestat). A read
    that continues a stream: so must the ``lookahead`` after it, checked once
    per lookahead of progress (``h.ahead_ok_to``).
    """
    if known_warm and lookahead_checked(h, offset, size):
        return True
    stream = offset == h.seq_end
    ahead = lookahead(h) if stream else 0
    length = min(size + 2 * ahead, h.size_hint - offset)
    cachestat = _native.backend.cachestat
    if cachestat is None or length <= 0:
        # At or past EOF as far as we know: nothing to check, and a NOWAIT
        # read there does no I/O. No cachestat (Linux < 6.5): a warm file
        # is read as before (readahead marks cannot be seen, docs/design.md),
        # one not known warm is not read inline.
        if known_warm:
            return True
        return length <= 0 and cachestat is not None
    answer = cachestat(h.fd, offset, length)
    if isinstance(answer, int) or answer[0] < answer[1]:
        # Not all resident, or cachestat refused (ENOSYS under seccomp...):
        # stay safe, use the pool. A stream that caught up with the
        # readahead bringing its pages in says nothing of the file.
        if not (stream and _readahead.active(h)):
            POLICY.record(h.inode, Outcome.NOT_RESIDENT)
        return False
    POLICY.record(h.inode, Outcome.RESIDENT)
    if stream:
        # Checked 2 lookaheads: reads ending up to 1 past this one need no
        # new look; cached to EOF: nothing for readahead to start on.
        end = offset + length
        h.ahead_ok_to = end - ahead if end < h.size_hint else end + ahead
    return True


def lookahead_checked(h: FileHandle, offset: int, size: int) -> bool:
    """Whether a read needs no new look at the pages ahead: it does not
    continue the stream, or it ends within what the last look found cached."""
    return offset != h.seq_end or offset + size <= h.ahead_ok_to


def judge_inline(h: FileHandle, offset: int, size: int, got: bytes | int) -> tuple[bytes, bool]:
    """Record what one NOWAIT read answered; ``(data, complete)`` as above."""
    st = h.inode
    if isinstance(got, int):
        err = -got
        if err == errno.EAGAIN:
            # A stream whose readahead is under way meets pages still being
            # read (cachestat counts them, NOWAIT answers EAGAIN at once, no
            # I/O started): not a sign of a cold file.
            if not (offset == h.seq_end and _readahead.active(h)):
                POLICY.record(st, Outcome.MISS)
        elif err in UNSUPPORTED_ERRNOS:
            POLICY.record(st, Outcome.UNSUPPORTED)
        # Anything else (EIO, ...) is left for the pool's read to raise with
        # the exception CPython would give.
        return b"", False
    n = len(got)
    h.seq_end = offset + n
    _budget.charge(n)
    if n == size:
        POLICY.record(st, Outcome.HIT, n)
        yield_to_pool(h, st.counters.inline_hits)
        return got, True
    end = offset + n
    if end >= h.size_hint:
        # Short at or past the size we know: EOF (0 is trusted as EOF only
        # there; kernels that lied below it are excluded in _native). No
        # byte at all proves nothing of the page cache: it leaves a file
        # that is not WARM as it was (a COLD one made WARM would have its
        # next reads tried inline, and miss).
        if n or st.state is FileState.WARM:
            POLICY.record(st, Outcome.HIT, n)
        return got, True
    POLICY.record(st, Outcome.SHORT, n)
    return got, False


async def read_at(
    h: FileHandle, offset: int, size: int, attempt: bytes | int | None = None
) -> bytes:
    """``size`` bytes at ``offset`` (fewer only at EOF), inline when cached.

    ``attempt`` is the answer of a NOWAIT read the caller already made for
    exactly this range (the fast path): it is not made a second time.
    """
    if size <= 0:
        return b""
    if attempt is None:
        if _budget.over():  # before the read: a cancelled yield reads nothing
            await _budget.pause()
        prefix, complete = try_inline(h, offset, size)
    else:
        follow_stream(h, offset, size)
        prefix, complete = judge_inline(h, offset, size, attempt)
    if complete:
        return prefix
    done = len(prefix)
    rest = await pool_read(h, size - done, offset + done)
    record_pooled(h, offset + done + len(rest), len(rest), sequential=True)
    return prefix + rest if prefix else rest


def record_pooled(h: FileHandle, end: int, nbytes: int, *, sequential: bool = False) -> None:
    """Account ``nbytes`` the pool read for ``h``, ending at offset ``end``:
    the policy's counters, the size we know (a file may have grown) and, for
    a read that continues or starts a stream (``sequential``), where it ends
    (``_cached`` looks ahead of reads that start there)."""
    POLICY.record(h.inode, Outcome.POOLED, nbytes)
    if end > h.size_hint:
        h.size_hint = end
    if sequential:
        h.seq_end = end


async def pool_read(h: FileHandle, size: int, offset: int) -> bytes:
    """A blocking read off the loop: the native miss pool (C threads, no GIL)
    when it can take it, else a Python pool thread."""
    native = h.native_pool
    if native is not None and _native.backend.native_pool and size <= _native_pool.MAX_READ:
        # Registered while it may wait for a slot: a close meanwhile must
        # not free the fd number before the C side has its dup.
        h.begin()
        try:
            future = await native.start_read(h.fd, size, offset)
        finally:
            h.end()
        if future is not None:
            return await future
    data: bytes = await h.run(pread_full, h.fd, size, offset)  # type: ignore[assignment]
    return data


def whole_read_size(h: FileHandle, offset: int) -> int:
    """What ``read_to_eof`` asks its first read for: the bytes left as far
    as we know + 1, as FileIO.readall asks (a file that grew since we
    looked shows it in the same call; at the EOF known, a 1-byte NOWAIT
    read answers b"" without I/O); 0 when that is over INLINE_MAX or the
    offset is past the EOF known: the pool reads to EOF."""
    left = h.size_hint - offset
    return left + 1 if 0 <= left < INLINE_MAX else 0


async def read_to_eof(h: FileHandle, offset: int, attempt: bytes | int | None = None) -> bytes:
    """Everything from ``offset`` to EOF, inline when cached. ``attempt``:
    as ``read_at``'s, for a first read of ``whole_read_size`` bytes."""
    want = whole_read_size(h, offset)
    if want:
        size = want - 1
        data = await read_at(h, offset, want, attempt)
        if offset + len(data) >= h.size_hint and len(data) <= size:
            return data
        rest = await _pool_to_eof(h, offset + len(data))
        return data + rest
    return await _pool_to_eof(h, offset)


async def _pool_to_eof(h: FileHandle, offset: int) -> bytes:
    data: bytes = await h.run(pread_to_eof, h.fd, offset)  # type: ignore[assignment]
    record_pooled(h, offset + len(data), len(data))
    return data
