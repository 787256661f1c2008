"""The data set: build the three files, warm one, evict the others.

The cache state is the experiment: f1 is read from the page cache, f2 and
f3 from the device. Files are written with real data (not sparse, not
fallocated: holes and unwritten extents read as zeros without any I/O, so an
"uncached" read of them would be free). Page-cache residency is measured
with cachestat(2) through ctypes, independently of the library under test.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

# Write and warm in 1 MiB chunks: large enough that syscall overhead is
# negligible, small enough to keep the writer's memory trivial.
CHUNK = 1 << 20
# cachestat(2): Linux >= 6.5; number 451 on x86_64 and the generic table.
_SYS_CACHESTAT = 451
SUBDIR = "aiofastread-bench"
FILE_NAMES = {"f1": "f1-hot.dat", "f2": "f2-cold.dat", "f3": "f3-seq.dat"}

Progress = Callable[[int], None]  # called with bytes just written


@dataclasses.dataclass(frozen=True)
class DataSetSpec:
    f1_size: int
    f2_size: int
    f3_size: int

    def sizes(self) -> dict[str, int]:
        return {"f1": self.f1_size, "f2": self.f2_size, "f3": self.f3_size}

    def total(self) -> int:
        return self.f1_size + self.f2_size + self.f3_size


@dataclasses.dataclass(frozen=True)
class DataSet:
    directory: Path
    files: dict[str, Path]  # workload name -> file

    def path(self, name: str) -> Path:
        return self.files[name]


class DataSetError(RuntimeError):
    pass


def build(
    directory: str | os.PathLike[str],
    spec: DataSetSpec,
    *,
    progress: Progress | None = None,
) -> DataSet:
    """Create (or reuse, when the sizes match) the files under ``directory``.

    Every file ends evicted from the page cache, so building leaves the same
    state whether the files were written now or found.
    """
    base = Path(directory) / SUBDIR
    base.mkdir(parents=True, exist_ok=True)
    files = {name: base / fname for name, fname in FILE_NAMES.items()}
    missing = sum(size for name, size in spec.sizes().items() if _size_of(files[name]) != size)
    free = shutil.disk_usage(base).free
    if missing > free:
        raise DataSetError(
            f"the data set needs {missing / 2**20:.0f} MiB more in {base}, "
            f"only {free / 2**20:.0f} MiB are free: use smaller --f1-size/--f2-size/--f3-size "
            "or another --dir"
        )
    block = random.Random(0x5EED).randbytes(CHUNK)  # incompressible, reproducible
    for name, size in spec.sizes().items():
        path = files[name]
        if _size_of(path) == size:
            if progress is not None:
                progress(size)
        else:
            _write(path, size, block, progress)
        evict(path)
    return DataSet(base, files)


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _write(path: Path, size: int, block: bytes, progress: Progress | None) -> None:
    tmp = path.with_suffix(".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        view = memoryview(block)
        while done < size:
            n = os.write(fd, view[: min(CHUNK, size - done)])
            done += n
            if progress is not None:
                progress(n)
        os.fsync(fd)  # dirty pages cannot be evicted; make them clean now
    finally:
        os.close(fd)
    os.replace(tmp, path)  # a half-written file is never taken for a good one


def warm(path: str | os.PathLike[str]) -> None:
    """Read the whole file so every page is in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        buf = bytearray(CHUNK)
        offset = 0
        while n := os.preadv(fd, [buf], offset):
            offset += n
    finally:
        os.close(fd)


def evict(path: str | os.PathLike[str]) -> None:
    """Drop the file's pages from the page cache (fsync, then DONTNEED)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # DONTNEED skips dirty pages
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def drop(path: str | os.PathLike[str]) -> None:
    """DONTNEED without the fsync: for files known clean (keep-cold passes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


_PROT_READ = 0x1
_MAP_SHARED = 0x01
_MAP_FAILED = ctypes.c_void_p(-1).value


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


_libc = _load_libc()


class Pinned:
    """A file's pages locked in memory (mmap + mlock) until ``close()``.

    Why: a "cached" file must stay cached for the run, and some machines
    reclaim page cache on their own within seconds (this benchmark's VM runs
    DAMON-based pageout of pages it sees as idle: a zipf tail touched once
    in a while is). Locked pages are unevictable; reads of them are ordinary
    page-cache hits for every engine alike.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.addr = 0
        self.size = os.stat(path).st_size
        assert _libc is not None
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = _libc.mmap(None, self.size, _PROT_READ, _MAP_SHARED, fd, 0)
        finally:
            os.close(fd)  # the mapping keeps the file
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap failed")
        self.addr = int(addr)
        if _libc.mlock(ctypes.c_void_p(self.addr), ctypes.c_size_t(self.size)) != 0:
            err = ctypes.get_errno()
            self.close()
            raise OSError(err, os.strerror(err))

    def close(self) -> None:
        if self.addr and _libc is not None:
            _libc.munmap(ctypes.c_void_p(self.addr), ctypes.c_size_t(self.size))
            self.addr = 0


def pin(path: str | os.PathLike[str]) -> tuple[Pinned | None, str]:
    """Lock the file in the page cache; (None, why not) where that fails
    (no root and a small RLIMIT_MEMLOCK, say)."""
    if _libc is None or os.stat(path).st_size == 0:
        return None, "not pinned: no libc mmap/mlock"
    try:
        return Pinned(path), "pinned"
    except OSError as exc:
        return None, f"not pinned: mlock failed ({exc.strerror})"


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [
        ("nr_cache", ctypes.c_uint64),
        ("nr_dirty", ctypes.c_uint64),
        ("nr_writeback", ctypes.c_uint64),
        ("nr_evicted", ctypes.c_uint64),
        ("nr_recently_evicted", ctypes.c_uint64),
    ]


def _libc_syscall() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[..., int] = libc.syscall
    except (OSError, AttributeError):
        return None
    return fn


_syscall = _libc_syscall()


def residency(path: str | os.PathLike[str]) -> float | None:
    """Fraction of the file's pages in the page cache; None without cachestat."""
    if _syscall is None:
        return None
    size = os.stat(path).st_size
    if size == 0:
        return 1.0
    fd = os.open(path, os.O_RDONLY)
    try:
        rng = _CachestatRange(0, 0)  # len 0: to the end of the file
        out = _Cachestat()
        if _syscall(_SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(out), 0) != 0:
            return None  # ENOSYS (kernel < 6.5) or a seccomp filter
    finally:
        os.close(fd)
    pages = -(-size // os.sysconf("SC_PAGE_SIZE"))
    return min(float(out.nr_cache) / pages, 1.0)
