"""``WriterCore``: the base of ``AsyncBufferedWriter`` that holds its buffer
state (``_buf``, ``_limit``, ``_done``) and does ``write``'s fast path.

The compiled one (native/afr_write.c: the fields in C, ``write`` a C method,
~2x cheaper than the Python method it replaces) when the native module has
it, else ``PythonWriterCore``, the same in Python. Both buffer exact bytes
that fit at the call and return the length's completed awaitable
(``_writer_ready.Done``) and leave everything else to the subclass's
``_write_slow(data)``. Which one is used does not depend on the read
backend: writing reads nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from aiofastread import _native

if TYPE_CHECKING:
    from aiofastread._writer_ready import Done


class PythonWriterCore:
    """afr_write.c's WriterCore in Python (no compiled module, PyPy)."""

    _buf: bytearray
    _limit: int  # how full a fast-path write may make _buf; -1: none may
    _done: dict[int, Done]  # completed awaitables by write length

    def write(self, data: Any) -> Awaitable[int]:
        """Append ``data`` (at the call, when it fits) and return an
        awaitable of its length: a plain method, not a coroutine function
        (AsyncBufferedWriter._write_slow has the rest)."""
        if type(data) is bytes:
            n = len(data)
            buf = self._buf
            if n + len(buf) <= self._limit:
                done = self._done.get(n)
                if done is not None:
                    buf += data
                    return done
        return self._write_slow(data)

    if TYPE_CHECKING:  # the subclass's (not defined here: it would shadow it)

        def _write_slow(self, data: Any) -> Awaitable[int]: ...


def _compiled() -> type[PythonWriterCore] | None:
    """The C type, fetched as _native fetches read_nowait (cffi cannot
    return Python objects: its address, then ctypes)."""
    module = _native.native_module()
    if module is None or not hasattr(module.lib, "afr_writer_core_type"):
        return None
    address = int(module.ffi.cast("uintptr_t", module.lib.afr_writer_core_type()))
    if not address:
        return None
    core: type[PythonWriterCore] = ctypes.cast(ctypes.c_void_p(address), ctypes.py_object).value
    return core


COMPILED = _compiled()

if TYPE_CHECKING:
    WriterCore = PythonWriterCore
else:
    WriterCore = COMPILED or PythonWriterCore
