"""Sans-I/O per-filesystem policy: may an open or a close run on the loop?

``openat2(RESOLVE_CACHED)`` promises that the path walk does no I/O, not
that the filesystem's own open does none: FUSE asks its daemon, NFS, CIFS,
9p and ceph ask a server. So an open is tried inline only in a directory
whose files were seen (by a pooled open, in the pool) to live on a local
filesystem, and a read-only descriptor is closed inline only on one.

The filesystem of a path is not known before it is opened, so the policy
remembers, per directory (the path's text up to its last slash, made
absolute), the device its files were found on, and per device whether it is
local (``fstatfs`` f_type, in the pool). After an inline open, the device
the descriptor really is on (a symlink can lead elsewhere, a mount can have
appeared) must be a local one, else the open is handed back to the pool and
a directory whose files lie on more than one device, not all local, is
never tried inline again.

``FilesystemPolicy`` is sans-I/O like ``_policy`` (tested as plain
functions); pool threads write to it under a lock, the loop only reads it
(and marks MIXED). The two functions at the end are its I/O edges:
``directory_of`` (a getcwd for a relative path) and ``learn_from`` (fstatfs,
in the pool).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from typing import Final

from aiofastread import _native
from aiofastread._policy import Policy

# Filesystems whose open, fstat and close of a read-only file stay in the
# kernel (f_type magic numbers from linux/magic.h and statfs(2)). It is an
# allowlist: anything else (NFS 0x6969, SMB 0x517B, CIFS 0xFF534D42,
# SMB2 0xFE534D42, FUSE 0x65735546 incl. virtiofs/sshfs/glusterfs, 9p
# 0x01021997, ceph 0x00C36400, AFS 0x5346414F/0x6B414653, coda 0x73757245,
# Lustre 0x0BD00BD0, GPFS 0x47504653, OCFS2 0x7461636F, GFS2 0x01161970,
# autofs 0x0187, and whatever is not named here) keeps its opens in the pool.
LOCAL_FILESYSTEMS: Final = frozenset(
    {
        0xEF53,  # ext2/ext3/ext4
        0x58465342,  # xfs
        0x9123683E,  # btrfs
        0xF2F52010,  # f2fs
        0xCA451A4E,  # bcachefs
        0x2FC12FC1,  # zfs (OpenZFS)
        0x01021994,  # tmpfs (and devtmpfs, /dev/shm)
        0x858458F6,  # ramfs
        0x958458F6,  # hugetlbfs
        0x794C7630,  # overlayfs (container roots; its layers are local here)
        0x73717368,  # squashfs
        0xE0F5E1E2,  # erofs
        0x00009660,  # iso9660
        0x15013346,  # udf
        0x00004D44,  # vfat/msdos
        0x2011BAB0,  # exfat
        0x5346544E,  # ntfs/ntfs3
        0x3153464A,  # jfs
        0x52654973,  # reiserfs
        0x00003434,  # nilfs2
        0x0000482B,  # hfsplus
        0x00009FA0,  # proc
        0x62656572,  # sysfs
    }
)

# A directory whose files were found on more than one device, not all local.
MIXED: Final = -1
# Directories remembered at once (LRU), ~100 bytes each: a web server's
# static tree and templates fit many times over.
MAX_DIRECTORIES: Final = 4096
# Devices remembered: a machine has tens of mounts; the bound only guards
# against a pathological churn of mounts.
MAX_DEVICES: Final = 1024


class FilesystemPolicy:
    """Directory -> device -> local?, learnt from pooled opens."""

    __slots__ = (
        "_dirs",
        "_local",
        "_lock",
        "inline_closes",
        "inline_opens",
        "max_dirs",
        "open_fallbacks",
        "read_policy",
    )

    def __init__(self, max_dirs: int = MAX_DIRECTORIES) -> None:
        self.max_dirs = max_dirs
        self._dirs: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._local: dict[int, bool] = {}
        # Pool threads learn concurrently; the loop only reads (single dict
        # operations, atomic under the GIL) and marks a directory MIXED.
        self._lock = threading.Lock()
        self.inline_opens = 0  # opens done on the loop (openat2 RESOLVE_CACHED)
        self.open_fallbacks = 0  # inline attempts handed to the pool (EAGAIN, ...)
        self.inline_closes = 0  # read-only descriptors closed on the loop
        # The process's read policy (set by _runtime): its ``enabled``.
        self.read_policy: Policy | None = None

    # -- questions (loop) -----------------------------------------------------

    def device_for(self, directory: str) -> int | None:
        """The local device files of ``directory`` were found on, if an open
        there may be tried inline; None if it must go to the pool."""
        dev = self._dirs.get(directory)
        if dev is None or dev == MIXED or not self._local.get(dev, False):
            return None
        return dev

    def is_local(self, dev: int) -> bool:
        """Whether device ``dev`` is known to hold a local filesystem."""
        return self._local.get(dev, False)

    def may_close_inline(self, dev: int) -> bool:
        """Whether a read-only descriptor on ``dev`` may be closed on the
        loop: a local filesystem, and the fast path on (the read policy's
        switch, configure(fast_path=): its thread-pool baseline closes in
        the pool)."""
        policy = self.read_policy
        return (policy is None or policy.enabled) and self._local.get(dev, False)

    def accept(self, directory: str, expected: int, dev: int) -> bool:
        """After an inline open in ``directory`` (expected on ``expected``):
        whether the descriptor, found on ``dev``, may be used on the loop."""
        if dev == expected or self._local.get(dev, False):
            return True
        self._dirs[directory] = MIXED
        return False

    # -- learning (pool threads, from what a pooled open found) ----------------

    def knows_device(self, dev: int) -> bool:
        """Whether ``dev``'s filesystem type is known (no fstatfs needed)."""
        return dev in self._local

    def learn(self, directory: str | None, dev: int, fs_type: int | None) -> None:
        """A file of ``directory`` was opened on ``dev``, of f_type
        ``fs_type`` (None: the device is known already)."""
        with self._lock:
            if fs_type is not None:
                if dev not in self._local and len(self._local) >= MAX_DEVICES:
                    self._local.clear()
                    self._dirs.clear()
                self._local[dev] = fs_type in LOCAL_FILESYSTEMS
            if directory is None or dev not in self._local:
                return
            old = self._dirs.get(directory)
            if old is None:
                self._dirs[directory] = dev
                if len(self._dirs) > self.max_dirs:
                    self._dirs.popitem(last=False)
            elif old not in (dev, MIXED) and not (self.is_local(old) and self.is_local(dev)):
                self._dirs[directory] = MIXED
            else:
                self._dirs.move_to_end(directory)

    # -- bookkeeping ------------------------------------------------------------

    @property
    def local_filesystems(self) -> int:
        return sum(self._local.values())

    @property
    def remote_filesystems(self) -> int:
        return len(self._local) - self.local_filesystems

    def reset(self) -> None:
        """Zero the counters (what was learnt is kept)."""
        self.inline_opens = self.open_fallbacks = self.inline_closes = 0

    def after_fork(self) -> None:
        # A pool thread of the parent may have held the lock: the child has
        # none of those threads. What was learnt stays true (same mounts).
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget everything (tests, a backend switch)."""
        self._dirs.clear()
        self._local.clear()
        self.reset()


FILESYSTEMS = FilesystemPolicy()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=FILESYSTEMS.after_fork)


_FS_ENCODING: Final = sys.getfilesystemencoding()  # os.fsencode's
_FS_ERRORS: Final = sys.getfilesystemencodeerrors()


def directory_of(file: object) -> tuple[str, bytes] | None:
    """``(directory key, path as bytes)`` for a path argument (str, bytes or
    os.PathLike), None for anything else (an fd, a bad path: the pool's
    io.open raises what CPython raises). The key is the text up to the last
    slash, made absolute with the working directory (getcwd reads the
    dentry cache, no I/O)."""
    if type(file) is str:
        path = file
    elif isinstance(file, str):
        path = str(file)
    elif isinstance(file, bytes):
        path = os.fsdecode(file)
    elif isinstance(file, os.PathLike):
        got = file.__fspath__()
        if isinstance(got, bytes):
            got = os.fsdecode(got)
        if not isinstance(got, str):
            return None
        path = got
    else:
        return None
    if not path or "\0" in path:
        return None
    head = path.rpartition("/")[0]
    if path[0] != "/":
        try:
            head = f"{os.getcwd()}/{head}"
        except OSError:  # the working directory was removed
            return None
    return head, path.encode(_FS_ENCODING, _FS_ERRORS)  # os.fsencode, inlined


def learn_from(file: object, fd: int, dev: int) -> None:
    """Pool side, after a pooled open of ``file`` as ``fd`` (on ``dev``):
    remember where its directory lives (one fstatfs per new device)."""
    module = _native.native_module()
    if module is None or not hasattr(module.lib, "afr_fstatfs_type"):
        return  # no inline opens without the C shim: nothing to learn for
    where = directory_of(file)
    fs_type: int | None = None
    if not FILESYSTEMS.knows_device(dev):
        fs_type = int(module.lib.afr_fstatfs_type(fd))
        if fs_type < 0:
            return
    FILESYSTEMS.learn(where[0] if where else None, dev, fs_type)
