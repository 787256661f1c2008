"""Readahead off the loop for handles that stream a file.

``note`` is called by the read path (``_read``) when a read starts at the
offset where the handle's last read ended, or while the handle has a
stream: ``_stream`` decides which range to bring in, and it becomes a job
of the native pool (``_native_pool.submit_readahead``: a C thread reads the
range through on a description of its own, and wakes no loop), one job per
stream at a time.
The reader's later reads find the pages cached and go inline under
``_read._cached``'s guard.

Only the native backend reads ahead: the ``python`` and ``pool`` backends
do nothing here (the kernel's own readahead on their pool threads is what
they have). A Python thread could do the same job, but each would hold a
pool thread and take the GIL next to a busy loop, the cost the native pool
exists to avoid.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiofastread import _native, _native_pool, _stream

if TYPE_CHECKING:
    from aiofastread._handle import FileHandle

# configure(readahead=False) turns it off (for comparison).
enabled = True
# Jobs and bytes asked for since the last reset (statistics()).
jobs = 0
nbytes = 0


def note(h: FileHandle, offset: int, size: int, window: int, request: int) -> None:
    """A read of ``size`` bytes at ``offset`` starts on ``h`` (loop thread):
    follow its stream and ask for the ranges ahead of it. ``window`` is the
    device's readahead window (the lookahead is two), ``request`` the largest
    request it takes (0: unknown)."""
    stream = h.stream = _stream.observe(h.stream, offset, h.seq_end, time.monotonic_ns())
    if (
        stream is None
        or not enabled
        or h.closing
        or h.native_pool is None
        or not _native.backend.native_pool
    ):
        return
    job = _stream.one_job(
        _stream.plan(
            stream,
            offset + size,
            window=window,
            lookahead=2 * window,
            size_hint=h.size_hint,
            piece=_stream.piece_for(request),
        )
    )
    if job is None:
        return
    start, length = job
    # Refused while the stream's last job runs, or over the process-wide
    # bound: asked again (from where that one ended) at the next read.
    if _native_pool.submit_readahead(h.fd, start, length, stream.ident):
        _stream.submitted(stream, start, length)
        count(length)


def count(length: int) -> None:
    """A range of ``length`` bytes was brought in by a readahead job for
    another reader (``_sendfile``): counted with the streams' jobs."""
    global jobs, nbytes
    jobs += 1
    nbytes += length


def active(h: FileHandle) -> bool:
    """Whether readahead is bringing in the pages ahead of ``h``'s reads."""
    stream = h.stream
    return stream is not None and stream.ahead_to > h.seq_end


def reset_counters() -> None:
    global jobs, nbytes
    jobs = nbytes = 0
