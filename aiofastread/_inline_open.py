"""Open a file for reading on the loop thread, when the kernel can do it without I/O.

``try_open`` is the inline counterpart of the pool's ``io.open``: it asks
``openat2(RESOLVE_CACHED)`` (native/afr_open.c) to open the path from the
dentry cache only, statx's the descriptor with ``AT_STATX_DONT_SYNC``, and
builds the objects ``io.open`` would have built over it. It returns the
same ``Opened`` the pool path returns, or None: then the caller opens in the
pool exactly as before, so every case it declines (and every error: a
missing file, a directory, EACCES) gets CPython's own exception from
``io.open``. A missing file is rare on a hot path; one pool hop for it is
the price of raising exactly what CPython raises.

Declined up front: modes other than plain reading, a custom ``opener``, a
patched ``threadpool.sync_open`` (tests and users who patch it must see
their function called), ``closefd=False`` and descriptors (no path to
open), argument combinations for which ``io.open`` would warn or raise,
backends other than ``native``, ``configure(fast_path=False)``, and
directories not yet seen to live on a local filesystem (``_fspolicy``).
After the open: anything but a regular file, or a file on a device that is
not known local (a symlink can lead anywhere), is closed in the pool and
opened there again.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from typing import Any, Final

from aiofastread import _native, _pool
from aiofastread._fspolicy import FILESYSTEMS, directory_of
from aiofastread._open import Opened, is_plain_binary_read
from aiofastread._read import learn_readahead
from aiofastread._runtime import POLICY

# io.open modes that only read (text or binary; "U" is gone since 3.11).
READ_MODES: Final = frozenset({"r", "rt", "tr", "rb", "br"})

_module = _native.native_module()
_lib = _module.lib if _module is not None and hasattr(_module.lib, "afr_open_cached") else None
_ffi: Any = _module.ffi if _lib is not None else None


def open_cached(file: object) -> tuple[int, int, int, int, int] | None:
    """Open ``file`` read-only on the loop if the kernel and the filesystem
    policy allow it: ``(fd, mode, size, dev, ino)`` of a regular file on a
    local filesystem, else None (counted in ``open_fallbacks`` when tried).
    The caller owns the descriptor (O_CLOEXEC, blocking mode restored)."""
    if _lib is None or _native.backend.name != "native" or not POLICY.enabled:
        return None
    where = directory_of(file)
    if where is None:
        return None
    directory, path = where
    expected = FILESYSTEMS.device_for(directory)
    if expected is None:
        return None  # not learnt yet (or not local): the pool learns it
    out = _ffi.new("long long[4]")
    fd: int = _lib.afr_open_cached(path, out)
    if fd < 0:
        # EAGAIN (not all cached), ENOENT, EACCES, ...: the pool's io.open
        # does it again and raises what CPython raises.
        FILESYSTEMS.open_fallbacks += 1
        return None
    mode, size, dev, ino = _ffi.unpack(out, 4)
    if not stat.S_ISREG(mode) or not FILESYSTEMS.accept(directory, expected, dev):
        # A directory or a FIFO (io.open raises IsADirectoryError, or waits
        # for a writer), a device, or a file on a filesystem not known local
        # (a symlink can lead anywhere): the pool opens it as before.
        FILESYSTEMS.open_fallbacks += 1
        if stat.S_ISDIR(mode) or stat.S_ISFIFO(mode):
            os.close(fd)  # nothing to flush or to wait for in either
        else:
            _pool.default_pool().submit_detached(os.close, fd)  # a device's close can wait
        return None
    if dev != expected:
        # A symlink to another local filesystem: its readahead window is
        # read from sysfs, in the pool (the read path assumes 8 MiB meanwhile).
        _pool.default_pool().submit_detached(learn_readahead, dev)
    FILESYSTEMS.inline_opens += 1
    return fd, mode, size, dev, ino


def try_open(
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[str, int], int] | None,
    sync_open: Callable[..., Any],
) -> Opened | None:
    """``io.open(file, mode, ...)`` done on the loop, as the pool would have
    done it; None when it cannot be done without a thread hop."""
    if mode not in READ_MODES or opener is not None or not closefd or sync_open is not io.open:
        return None
    binary = "b" in mode
    if binary:
        # io.open raises (encoding...) or warns (buffering=1) for these.
        if encoding is not None or errors is not None or newline is not None or buffering == 1:
            return None
    elif buffering == 0:
        return None  # io.open: "can't have unbuffered text I/O"
    found = open_cached(file)
    if found is None:
        return None
    fd, _mode, size, dev, ino = found
    # Plain "rb": the reader threadpool._make builds takes the FileIO alone
    # (a BufferedReader built only to be detached costs ~1 us an open).
    for_reader = is_plain_binary_read(mode, buffering)
    obj = build_stack(fd, file, "" if for_reader else mode, buffering, encoding, errors, newline)
    return Opened(obj, dev, ino, size, False, 0, bridgeable=True, raw_for_reader=for_reader)


def build_stack(
    fd: int,
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """What ``io.open(file, mode, buffering, ...)`` returns, over ``fd``
    (a regular file, read-only); closes ``fd`` if that raises."""
    try:
        raw = io.FileIO(fd, "r")  # on failure it leaves an int fd open
    except BaseException:
        os.close(fd)  # read-only, local: cannot block
        raise
    try:
        raw.name = os.fspath(file)  # io.open names it by the path
        if buffering == 0 or not mode:
            return raw  # "rb" unbuffered (text refused it in try_open), or mode "": raw wanted
        # io.open's rules: buffering 1 is line buffering (text only here),
        # else an explicit size, else the file's st_blksize.
        buffer_size = buffering if buffering > 1 else raw._blksize  # type: ignore[attr-defined]
        buffer = io.BufferedReader(raw, buffer_size)
        if "b" in mode:
            return buffer
        text = io.TextIOWrapper(buffer, encoding, errors, newline, buffering == 1)
        text.mode = mode  # type: ignore[misc]  # as io.open sets it
        return text
    except BaseException:
        raw.close()
        raise
