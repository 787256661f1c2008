"""File copies by shutil's rules, with the data moved inside the kernel.

Blocking functions, called on pool threads (``_whole``, ``shutil``).
``copyfile``, ``copy`` and ``copy2`` behave as :mod:`shutil`'s (same checks
in the same order, same exceptions: ``SameFileError``, ``SpecialFileError``
for a named pipe, ``IsADirectoryError``, ``FileNotFoundError`` for a missing
destination directory; same audit event). Only the transfer differs:
``copy_file_range(2)`` first (no copy through user space, a reflink or a
server-side copy where the filesystem offers one, as shutil does from 3.14),
then ``sendfile(2)`` (shutil's way on Linux before 3.14), then read/write.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import StrPath

# Bytes per kernel call: shutil's rule (the file size, at least 8 MiB) so a
# file normally moves in one call; capped at 1 GiB on 32-bit (bpo-38319).
_MIN_BLOCK = 1 << 23
_MAX_BLOCK_32BIT = 1 << 30

# copy_file_range errors meaning "not between these two files": fall back.
_NOT_SUPPORTED = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.ETXTBSY}
)


class _GiveUp(Exception):
    """The kernel way does not apply here; nothing was written yet."""


def _block_size(fd: int) -> int:
    try:
        size = max(os.fstat(fd).st_size, _MIN_BLOCK)
    except OSError:
        size = _MIN_BLOCK
    return min(size, _MAX_BLOCK_32BIT) if sys.maxsize < 2**32 else size


def _nothing_written(fdst: BinaryIO) -> bool:
    return os.lseek(fdst.fileno(), 0, os.SEEK_CUR) == 0


def _copy_file_range(fsrc: BinaryIO, fdst: BinaryIO) -> None:
    infd, outfd = fsrc.fileno(), fdst.fileno()
    block = _block_size(infd)
    copied = 0
    while True:
        try:
            n = os.copy_file_range(infd, outfd, block)
        except OSError as err:
            err.filename, err.filename2 = fsrc.name, fdst.name
            if err.errno == errno.ENOSPC:
                raise err from None
            if copied == 0 and err.errno in _NOT_SUPPORTED and _nothing_written(fdst):
                raise _GiveUp from err
            raise
        if n == 0:
            # 0 on the first call can also be a file whose size says 0 but
            # that has content (procfs, sysfs): let read/write decide.
            if copied == 0:
                raise _GiveUp
            return
        copied += n


def _sendfile(fsrc: BinaryIO, fdst: BinaryIO) -> None:
    infd, outfd = fsrc.fileno(), fdst.fileno()
    block = _block_size(infd)
    offset = 0
    while True:
        try:
            sent = os.sendfile(outfd, infd, offset, block)
        except OSError as err:
            err.filename, err.filename2 = fsrc.name, fdst.name
            if err.errno == errno.ENOSPC:
                raise err from None
            if offset == 0 and _nothing_written(fdst):
                raise _GiveUp from err
            raise
        if sent == 0:
            return
        offset += sent


def transfer(fsrc: BinaryIO, fdst: BinaryIO) -> None:
    """Copy everything from ``fsrc``'s position on to ``fdst``: kernel first."""
    if hasattr(os, "copy_file_range"):
        try:
            return _copy_file_range(fsrc, fdst)
        except _GiveUp:
            pass
    if hasattr(os, "sendfile"):
        try:
            return _sendfile(fsrc, fdst)
        except _GiveUp:
            pass
    shutil.copyfileobj(fsrc, fdst)
    return None


def _same_file(src: StrPath, dst: StrPath) -> bool:
    if isinstance(src, os.DirEntry):
        try:
            return os.path.samestat(src.stat(), os.stat(dst))
        except OSError:
            return False
    try:
        return os.path.samefile(src, dst)
    except OSError:
        return False


def _stat(path: StrPath) -> os.stat_result:
    return path.stat() if isinstance(path, os.DirEntry) else os.stat(path)


def _is_link(path: StrPath) -> bool:
    return path.is_symlink() if isinstance(path, os.DirEntry) else os.path.islink(path)


def copyfile(src: StrPath, dst: StrPath, *, follow_symlinks: bool = True) -> StrPath:
    """:func:`shutil.copyfile` with :func:`transfer` moving the data."""
    sys.audit("shutil.copyfile", src, dst)
    if _same_file(src, dst):
        raise shutil.SameFileError(f"{src!r} and {dst!r} are the same file")
    for name in (src, dst):
        try:
            mode = _stat(name).st_mode
        except OSError:
            continue  # most likely missing: open() says so below
        if stat.S_ISFIFO(mode):
            shown = name.path if isinstance(name, os.DirEntry) else name
            raise shutil.SpecialFileError(f"`{shown}` is a named pipe")
    if not follow_symlinks and _is_link(src):
        os.symlink(os.readlink(src), dst)
        return dst
    with open(src, "rb") as fsrc:
        try:
            with open(dst, "wb") as fdst:
                transfer(fsrc, fdst)
        except IsADirectoryError as e:  # shutil's wording (bpo-43219)
            if not os.path.exists(dst):
                raise FileNotFoundError(f"Directory does not exist: {dst}") from e
            raise
    return dst


def _into(src: StrPath, dst: StrPath) -> StrPath:
    """``dst``, or the name ``src`` gets inside ``dst`` if that is a directory."""
    if os.path.isdir(dst):
        return os.path.join(dst, os.path.basename(src))
    return dst


def copy(src: StrPath, dst: StrPath, *, follow_symlinks: bool = True) -> StrPath:
    """:func:`shutil.copy`: data and mode bits."""
    dst = _into(src, dst)
    copyfile(src, dst, follow_symlinks=follow_symlinks)
    shutil.copymode(src, dst, follow_symlinks=follow_symlinks)
    return dst


def copy2(src: StrPath, dst: StrPath, *, follow_symlinks: bool = True) -> StrPath:
    """:func:`shutil.copy2`: data and all metadata."""
    dst = _into(src, dst)
    copyfile(src, dst, follow_symlinks=follow_symlinks)
    shutil.copystat(src, dst, follow_symlinks=follow_symlinks)
    return dst
