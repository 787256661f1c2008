"""The one importer of the compiled module; picks the read backend once.

Backends, best first:

``native``  the cffi module built from native/: ``preadv2`` through
            ``syscall(2)`` returning ``-errno`` (a miss costs no exception),
            and ``cachestat(2)``.
``python``  ``os.preadv(..., os.RWF_NOWAIT)``; cachestat through ctypes.
``pool``    no inline reads at all: everything goes to the miss pool.

``AIOFASTREAD_BACKEND=native|python|pool`` forces one (an unavailable forced
backend is an error, not a silent downgrade). Tests switch with ``use()``.
This module knows nothing of asyncio or of the policy.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import mmap
import os
import platform
import sys
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any, Final

ENV_VAR: Final = "AIOFASTREAD_BACKEND"
BACKENDS: Final = ("native", "python", "pool")

# Linux 5.9/5.10 can answer 0 before EOF to a NOWAIT read (tokio reverted
# its fast path over it); the fix is in 5.11. DESIGN.md, "Facts".
MIN_KERNEL_FOR_NOWAIT: Final = (5, 11)

# Reads up to this size reuse one buffer per thread; bigger inline reads get
# a buffer of their own. Equal to the policy's inline cap.
_SCRATCH_SIZE: Final = 1 << 20

# cachestat(2): Linux >= 6.5; 451 on x86_64 and on the generic syscall table.
_SYS_CACHESTAT: Final = 451

ReadNowait = Callable[[int, int, int], "bytes | int"]
# (fd, buffer, size, offset) -> bytes read into buffer[:size], or -errno.
ReadNowaitInto = Callable[[int, Any, int, int], int]
Cachestat = Callable[[int, int, int], "tuple[int, int] | int"]


def _kernel_version() -> tuple[int, int]:
    release = platform.release()
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


KERNEL: Final = _kernel_version()
IS_LINUX: Final = platform.system() == "Linux"
KERNEL_NOWAIT_OK: Final = IS_LINUX and KERNEL >= MIN_KERNEL_FOR_NOWAIT
RWF_NOWAIT: Final[int] = getattr(os, "RWF_NOWAIT", 0x8)

try:  # the only import of the compiled part
    from aiofastread import _native_cffi  # type: ignore[attr-defined]
except ImportError:  # built without a compiler, or not built (source tree)
    _native_cffi = None

HAS_NATIVE: Final = _native_cffi is not None and bool(_native_cffi.lib.AFR_HAS_PREADV2)
HAS_OS_PREADV: Final = hasattr(os, "preadv") and hasattr(os, "RWF_NOWAIT")


# rep movsb (the kernel's copy_to_user and glibc's memcpy alike) runs 2-7x
# slower on this Zen 3 VM when the destination lies 1..31 bytes after the
# source modulo 4 KiB: 7.3 us instead of 2.5 us for 16 KiB (4 KiB aliasing,
# bench/alignment.py). The page-cache source of a 4 KiB-aligned read starts
# at page offset 0, so the scratch starts 64 bytes into a page: clear of the
# window and of the exact alias (distance 0 costs up to 1.3x).
_PAGE_OFFSET: Final = 64


def _aligned_view(size: int) -> memoryview:
    """A writable view of ``size`` bytes starting 64 bytes into a page."""
    pages = mmap.mmap(-1, size + _PAGE_OFFSET)  # anonymous: page-aligned, zeroed
    return memoryview(pages)[_PAGE_OFFSET : _PAGE_OFFSET + size]  # keeps the mmap alive


class _Scratch(threading.local):
    """One reusable read buffer per thread (several loops may each read)."""

    def __init__(self) -> None:
        self.view = _aligned_view(_SCRATCH_SIZE)
        self.cdata: object = None


_scratch = _Scratch()


# -- native (cffi) -----------------------------------------------------------


def _capi_read_nowait() -> ReadNowait | None:
    """The compiled module's CPython-level read_nowait, if it has one.

    It reads straight into the bytes object it returns (one copy, as
    os.pread does), where the cffi call needs our scratch buffer and a
    second copy: 16 KiB hits went from 1.9x to 1.4x of os.pread
    (docs/performance.md). cffi cannot return Python objects, so the C side
    hands out the function object's address once and ctypes turns it into
    the object; the C side keeps it alive for the life of the process.
    """
    assert _native_cffi is not None
    ffi, lib = _native_cffi.ffi, _native_cffi.lib
    if not getattr(lib, "AFR_HAS_CAPI_READ", 0):
        return None
    address = int(ffi.cast("uintptr_t", lib.afr_read_nowait_function()))
    if not address:
        return None
    function: ReadNowait = ctypes.cast(ctypes.c_void_p(address), ctypes.py_object).value
    return function


def _cffi_read_nowait_into(fd: int, buffer: Any, size: int, offset: int) -> int:
    """The inline read into any writable buffer: cffi's from_buffer pins it
    and the kernel copies straight in (the C read_nowait_into hands every
    buffer but a bytearray to this)."""
    assert _native_cffi is not None
    cbuf = _native_cffi.ffi.from_buffer("char[]", buffer, require_writable=True)
    n: int = _native_cffi.lib.afr_pread_flags(fd, cbuf, size, offset, RWF_NOWAIT)
    return n


def _make_native_into() -> ReadNowaitInto:
    """The C read_nowait_into when the module has it (a bytearray costs no
    cffi conversion), else the cffi one; handed out as read_nowait is."""
    assert _native_cffi is not None
    ffi, lib = _native_cffi.ffi, _native_cffi.lib
    if getattr(lib, "AFR_HAS_CAPI_READ", 0):
        address = int(ffi.cast("uintptr_t", lib.afr_read_nowait_into_function()))
        if address:
            function: ReadNowaitInto = ctypes.cast(ctypes.c_void_p(address), ctypes.py_object).value
            return function
    return _cffi_read_nowait_into


def _make_native() -> tuple[ReadNowait, Cachestat | None]:
    assert _native_cffi is not None
    ffi, lib = _native_cffi.ffi, _native_cffi.lib
    pread_flags = lib.afr_pread_flags
    unpack = ffi.unpack
    from_buffer = ffi.from_buffer
    scratch = _scratch

    def cffi_read_nowait(fd: int, size: int, offset: int) -> bytes | int:
        """``size`` bytes at ``offset`` if cached, else ``-errno``."""
        if size <= _SCRATCH_SIZE:
            cbuf = scratch.cdata
            if cbuf is None:
                cbuf = scratch.cdata = from_buffer("char[]", scratch.view)
        else:
            cbuf = from_buffer("char[]", _aligned_view(size))
        n: int = pread_flags(fd, cbuf, size, offset, RWF_NOWAIT)
        if n < 0:
            return n
        return unpack(cbuf, n)  # type: ignore[no-any-return]

    read_nowait = _capi_read_nowait() or cffi_read_nowait

    cachestat: Cachestat | None = None
    if lib.AFR_HAS_CACHESTAT:
        cached_p = ffi.new("unsigned long long *")
        pages_p = ffi.new("unsigned long long *")
        lock = threading.Lock()

        def cachestat(fd: int, offset: int, length: int) -> tuple[int, int] | int:
            with lock:
                rc: int = lib.afr_cachestat(fd, offset, length, cached_p, pages_p)
                if rc < 0:
                    return rc
                return int(cached_p[0]), int(pages_p[0])

    return read_nowait, cachestat


# -- the reader's C hit path (native/afr_hit.c) ---------------------------------


def _load_hit_objects() -> dict[str, Any] | None:
    """The compiled hit path's types and functions (None: not compiled, or
    no CPython C API); handed out as read_nowait is (see above)."""
    if _native_cffi is None or not getattr(_native_cffi.lib, "AFR_HAS_HIT_PATH", 0):
        return None
    address = int(_native_cffi.ffi.cast("uintptr_t", _native_cffi.lib.afr_hit_objects()))
    if not address:
        return None
    objects: dict[str, Any] = ctypes.cast(ctypes.c_void_p(address), ctypes.py_object).value
    return objects


_hit = _load_hit_objects()
HAS_HIT_PATH: Final = _hit is not None


class NoCore:
    """The pure-Python stand-in for a C base of the hit path: no fields; the
    class deriving from it declares them in its ``__slots__``."""

    __slots__ = ()


def hit_base(name: str, fields: tuple[str, ...]) -> tuple[type, tuple[str, ...]]:
    """The base a class whose ``fields`` the C hit path reads derives from,
    and the ``__slots__`` it still declares for them: the C type ``name``
    (``ReaderCore``, ``HandleCore``, ...: native/afr_hit.c), whose members
    they are, and none; or ``NoCore`` and ``fields`` without the module."""
    if _hit is None:
        return NoCore, fields
    base: type = _hit[name]
    return base, ()


def bind_hit_path(*objects: object) -> None:
    """Hand the C hit path what it reads (``_file`` at import): the policy,
    the budget, FileState.WARM, _budget.crossed, _read.yield_to_pool, and
    the Python hit path's six methods (taken when the C path stands aside)."""
    if _hit is not None:
        *state, paths = objects
        _hit["bind"](*state, paths)


def text_reads() -> int:
    """Text reads the C direct path (native/afr_text.c) served so far."""
    return int(_hit["text_reads"]()) if _hit is not None else 0


def hit_syscalls() -> int:
    """NOWAIT reads the C hit path made so far (tests count them)."""
    return int(_hit["hit_syscalls"]()) if _hit is not None else 0


def sum_counters(states: Iterable[Any], total: Any) -> None:
    """Add every state's ``counters`` into ``total`` (a ``Counters``): in C
    when the compiled module is there (``Policy.totals``)."""
    if _hit is not None:
        _hit["sum_counters"](states, total)
        return
    for st in states:
        total.add(st.counters)


def adopt_c_methods(cls: type) -> None:
    """Make the C methods of ``cls``'s C base (ReaderCore or TextFileCore)
    ``cls``'s own: CPython specialises a call of a C method only on an
    object of exactly the method's type (native/afr_hit.c, ``adopt``)."""
    if _hit is not None:
        _hit["adopt"](cls)


def _stand_for(selected: Backend) -> None:
    """The C hit path reads for the native backend while it is the one in
    use; any other (the python backend, a test's fake read_nowait: a Backend
    that is not this one) makes it hand every call to the Python hit path."""
    if _hit is not None:
        _hit["expect_backend"](selected if selected.name == "native" else None)
        _hit["backend_is"](selected)


class _NativeModule(types.ModuleType):
    """This module's class: it tells the C hit path whenever ``backend`` is
    rebound from outside (a test's ``monkeypatch.setattr(_native,
    "backend", ...)``, bench/cached.py's breakdown), so that the C path knows
    whether it stands for the backend in use from a flag rather than a dict
    lookup on every call (~1% of a cached 4 KiB hit). Inside this module
    ``use`` and ``want_native_pool`` rebind it as a global, then call
    ``_stand_for`` themselves."""

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "backend" and _hit is not None:
            _hit["backend_is"](value)

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name == "backend" and _hit is not None:
            _hit["backend_is"](None)


sys.modules[__name__].__class__ = _NativeModule


# -- pure Python -------------------------------------------------------------


def _py_read_nowait(fd: int, size: int, offset: int) -> bytes | int:
    view = _scratch.view[:size] if size <= _SCRATCH_SIZE else _aligned_view(size)
    try:
        n = os.preadv(fd, [view], offset, RWF_NOWAIT)
    except OSError as exc:
        return -(exc.errno or errno.EIO)
    return bytes(view[:n])


def _py_read_nowait_into(fd: int, buffer: Any, size: int, offset: int) -> int:
    view = memoryview(buffer)
    try:
        return os.preadv(fd, [view[:size] if size < view.nbytes else view], offset, RWF_NOWAIT)
    except OSError as exc:
        return -(exc.errno or errno.EIO)


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _CachestatResult(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")
    ]


def _make_ctypes_cachestat() -> Cachestat | None:
    if not (IS_LINUX and platform.machine() in ("x86_64", "aarch64")):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    page = os.sysconf("SC_PAGE_SIZE")

    def cachestat(fd: int, offset: int, length: int) -> tuple[int, int] | int:
        rng = _CachestatRange(offset, length)
        res = _CachestatResult()
        rc = syscall(
            ctypes.c_long(_SYS_CACHESTAT),
            ctypes.c_uint(fd),
            ctypes.byref(rng),
            ctypes.byref(res),
            ctypes.c_uint(0),
        )
        if rc < 0:
            return -ctypes.get_errno()
        first = offset // page
        last = (offset + length + page - 1) // page
        return int(res.nr_cache), max(0, last - first)

    return cachestat


# -- selection ---------------------------------------------------------------


def _refuse(fd: int, size: int, offset: int) -> bytes | int:
    return -errno.EOPNOTSUPP


def _refuse_into(fd: int, buffer: Any, size: int, offset: int) -> int:
    return -errno.EOPNOTSUPP


def available() -> tuple[str, ...]:
    """Backends this interpreter and kernel can use, best first."""
    names = []
    if KERNEL_NOWAIT_OK and HAS_NATIVE:
        names.append("native")
    if KERNEL_NOWAIT_OK and HAS_OS_PREADV:
        names.append("python")
    names.append("pool")
    return tuple(names)


# The compiled module has the native miss pool (_native_pool): a capability.
HAS_NATIVE_POOL: Final[bool] = _native_cffi is not None and hasattr(_native_cffi.lib, "afr_submit")


def native_module() -> Any:
    """The compiled cffi module (None when not built): for _native_pool."""
    return _native_cffi


@dataclasses.dataclass(frozen=True, slots=True)
class Backend:
    """The selected backend: what the read path calls, read as one object.

    Replaced whole (``use``, ``want_native_pool``), never changed in place,
    so a reader sees one consistent selection. The fast path loads
    ``backend.read_nowait`` into a local and calls that: a slot load costs
    ~5 ns more than the module global it replaced, a call straight off the
    slot ~20 ns (CPython 3.11 does not specialise it).
    """

    name: str
    read_nowait: ReadNowait
    read_nowait_into: ReadNowaitInto  # readinto/pread_into: the caller's buffer
    cachestat: Cachestat | None
    can_read_inline: bool  # False for "pool": read_nowait refuses every read
    # Misses read on the native miss pool's C threads: the native backend
    # with the compiled pool, unless configure(native_pool=False).
    native_pool: bool


backend: Backend = Backend(
    "pool", _refuse, _refuse_into, None, can_read_inline=False, native_pool=False
)
_native_pool_wanted = True  # configure(native_pool=), kept across use()


def use(name: str) -> None:
    """Select a backend by name (at import, from the environment or tests)."""
    global backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name not in available():
        raise RuntimeError(
            f"aiofastread backend {name!r} is not available here "
            f"(available: {', '.join(available())}; kernel {KERNEL[0]}.{KERNEL[1]})"
        )
    read_nowait: ReadNowait
    read_nowait_into: ReadNowaitInto
    cachestat: Cachestat | None
    if name == "native":
        read_nowait, cachestat = _make_native()
        read_nowait_into = _make_native_into()
        if cachestat is None:
            cachestat = _make_ctypes_cachestat()
    elif name == "python":
        read_nowait, cachestat = _py_read_nowait, _make_ctypes_cachestat()
        read_nowait_into = _py_read_nowait_into
    else:
        read_nowait, cachestat = _refuse, _make_ctypes_cachestat()
        read_nowait_into = _refuse_into
    backend = Backend(
        name,
        read_nowait,
        read_nowait_into,
        cachestat,
        can_read_inline=name != "pool",
        native_pool=_native_pool_for(name),
    )
    _stand_for(backend)


def want_native_pool(wanted: bool) -> None:
    """Allow (default) or forbid the native miss pool (configure(native_pool=))."""
    global backend, _native_pool_wanted
    _native_pool_wanted = wanted
    backend = dataclasses.replace(backend, native_pool=_native_pool_for(backend.name))
    _stand_for(backend)


def _native_pool_for(name: str) -> bool:
    return name == "native" and HAS_NATIVE_POOL and _native_pool_wanted


use(os.environ.get(ENV_VAR) or available()[0])
