"""The batch of inline reads in ``read_many``'s pass: full NOWAIT hits of a
WARM file, one range after another, until one is not.

``read_ranges(fd, ranges, start, results, inline_max, seq_end, ahead_ok_to)
-> (stop, hits, nbytes, seq_end, got)``: the compiled
``read_ranges_nowait`` (native/afr_read_many.c: one call for the whole run
of hits, ~os.pread's cost a range) with the native backend, else
``python_read_ranges``, the same loop over the backend's ``read_nowait``.
The contract is in afr_read_many.c; ``_vectored._inline_pass`` is the caller.
``plain_ranges(ranges) -> bool``: read_many's argument check, also in C
when compiled (any backend: it reads nothing).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from aiofastread import _native

_LLONG_MAX = (1 << 63) - 1

# (fd, ranges, start, results, inline_max, seq_end, ahead_ok_to)
#   -> (stop, hits, nbytes, seq_end, got)
ReadRanges = Callable[
    [int, list[tuple[int, int]], int, list[bytes], int, int, int],
    "tuple[int, int, int, int, bytes | int | None]",
]


def python_read_ranges(
    fd: int,
    ranges: list[tuple[int, int]],
    start: int,
    results: list[bytes],
    inline_max: int,
    seq_end: int,
    ahead_ok_to: int,
) -> tuple[int, int, int, int, bytes | int | None]:
    """afr_read_many.c's loop over ``_native.backend.read_nowait``."""
    read_nowait = _native.backend.read_nowait
    append = results.append
    hits = nbytes = 0
    for index in range(start, len(ranges)):
        offset, size = ranges[index]
        if size == 0:
            append(b"")
            continue
        if (
            size > inline_max
            or offset > _LLONG_MAX  # past C's offsets: the general path's
            or (offset == seq_end and offset + size > ahead_ok_to)
        ):
            return index, hits, nbytes, seq_end, None
        got = read_nowait(fd, size, offset)
        if type(got) is not bytes or len(got) != size:
            return index, hits, nbytes, seq_end, got
        append(got)
        hits += 1
        nbytes += size
        seq_end = offset + size
    return len(ranges), hits, nbytes, seq_end, None


def _compiled(getter: str) -> Any:
    """A C function object of afr_read_many.c, fetched as _native fetches
    read_nowait (cffi cannot return Python objects: the address, then
    ctypes); None without the compiled module or on PyPy."""
    module = _native.native_module()
    if module is None or not hasattr(module.lib, getter):
        return None
    address = int(module.ffi.cast("uintptr_t", getattr(module.lib, getter)()))
    if not address:
        return None
    return ctypes.cast(ctypes.c_void_p(address), ctypes.py_object).value


COMPILED: ReadRanges | None = _compiled("afr_read_ranges_function")


def python_plain_ranges(ranges: object) -> bool:
    """Whether ``ranges`` is a list of exact ``(int, int)`` tuples >= 0,
    what _vectored.check_ranges accepts without a closer look (~0.4 us a
    range here: afr_read_many.c's plain_ranges does it in C)."""
    return type(ranges) is list and all(
        type(item) is tuple
        and len(item) == 2
        and type(item[0]) is int
        and type(item[1]) is int
        and item[0] >= 0
        and item[1] >= 0
        for item in ranges
    )


plain_ranges: Callable[[object], bool] = (
    _compiled("afr_plain_ranges_function") or python_plain_ranges
)


def read_ranges_for(backend: Any) -> ReadRanges:
    """The batch reader for ``backend`` (a ``_native.Backend``)."""
    if backend.name == "native" and COMPILED is not None:
        return COMPILED
    return python_read_ranges
