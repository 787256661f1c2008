"""A passthrough FUSE filesystem that injects errors, for the reliability tests.

Run as ``python -m tests.fuse_faulty MOUNTPOINT BACKING_DIR`` (root, with
libfuse 3 or 2 and mfusepy installed). It prints ``ready`` on stdout once the
kernel has sent FUSE_INIT, so the caller waits on a line, not on a timer.

File names choose the behaviour (files are stored in BACKING_DIR):

``direct-*``  opened with FOPEN_DIRECT_IO: every read reaches this server
              with the caller's offset and size (no page cache)
``eio-*``     direct I/O, and reads that touch [EIO_START, EIO_END) fail with EIO
``eintr-*``   direct I/O, and the first read of each open fails with EINTR
anything else a plain passthrough through the kernel's page cache
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from typing import Any

EIO_START = 64 << 10
EIO_END = 128 << 10


def _ops(root: str) -> Any:
    import mfusepy

    class Faulty(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def __init__(self) -> None:
            self.root = root
            self.mutex = threading.Lock()
            self.interrupted: set[int] = set()

        def _full(self, path: str) -> str:
            return os.path.join(self.root, path.lstrip("/"))

        def init(self, path: str) -> None:
            print("ready", flush=True)

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            st = os.lstat(self._full(path))
            out = {key: getattr(st, key) for key in ("st_mode", "st_nlink", "st_size", "st_uid")}
            out.update(st_gid=st.st_gid, st_ino=st.st_ino)
            for key in ("st_atime", "st_mtime", "st_ctime"):
                out[key] = getattr(st, key + "_ns" if key != "st_ctime" else "st_ctime_ns")
            out["st_atime"], out["st_mtime"] = st.st_atime_ns, st.st_mtime_ns
            return out

        def readdir(self, path: str, fh: Any) -> list[str]:
            return [".", "..", *os.listdir(self._full(path))]

        def statfs(self, path: str) -> dict[str, int]:
            sv = os.statvfs(self._full(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            out = {key: getattr(sv, key) for key in keys}
            out.update(f_files=sv.f_files, f_frsize=sv.f_frsize, f_namemax=sv.f_namemax)
            return out

        def _setup(self, path: str, fi: Any, fd: int) -> int:
            fi.fh = fd
            name = os.path.basename(path)
            if name.startswith(("direct-", "eio-", "eintr-")):
                fi.direct_io = 1
            return 0

        def open(self, path: str, fi: Any) -> int:
            return self._setup(path, fi, os.open(self._full(path), fi.flags & ~os.O_APPEND))

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            flags = (fi.flags if fi is not None else os.O_WRONLY) | os.O_CREAT
            return self._setup(path, fi, os.open(self._full(path), flags & ~os.O_APPEND, mode))

        def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
            name = os.path.basename(path)
            if name.startswith("eio-") and offset < EIO_END and offset + size > EIO_START:
                raise mfusepy.FuseOSError(errno.EIO)
            if name.startswith("eintr-"):
                with self.mutex:
                    first = fi.fh not in self.interrupted
                    self.interrupted.add(fi.fh)
                if first:
                    raise mfusepy.FuseOSError(errno.EINTR)
            return os.pread(fi.fh, size, offset)

        def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
            return os.pwrite(fi.fh, data, offset)

        def truncate(self, path: str, length: int, fh: Any = None) -> int:
            os.truncate(self._full(path), length)
            return 0

        def flush(self, path: str, fi: Any) -> int:
            return 0

        def fsync(self, path: str, datasync: int, fi: Any) -> int:
            os.fsync(fi.fh)
            return 0

        def release(self, path: str, fi: Any) -> int:
            with self.mutex:
                self.interrupted.discard(fi.fh)
            os.close(fi.fh)
            return 0

        def unlink(self, path: str) -> int:
            os.unlink(self._full(path))
            return 0

        def rename(self, old: str, new: str) -> int:
            os.rename(self._full(old), self._full(new))
            return 0

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self._full(path), mode)
            return 0

        def utimens(self, path: str, times: Any = None) -> int:
            os.utime(self._full(path), ns=times)
            return 0

    return Faulty()


def main(argv: list[str]) -> int:
    import mfusepy

    mountpoint, root = argv
    mfusepy.FUSE(_ops(root), mountpoint, raw_fi=True, foreground=True, fsname="aiofastread-faulty")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
