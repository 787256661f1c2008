"""The backend seam: -errno instead of exceptions, cachestat, selection."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from aiofastread import _native
from tests.conftest import evict, make_file, warm


def test_read_nowait_returns_cached_bytes_or_negative_errno(data_dir: Path, backend: str) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, 100_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        warm(path)
        got = _native.backend.read_nowait(fd, 4096, 1000)
        if backend == "pool":
            assert got == -errno.EOPNOTSUPP
            return
        assert got == data[1000:5096]
        assert _native.backend.read_nowait(fd, 4096, 100_000) == b""  # EOF
        assert _native.backend.read_nowait(fd, 50_000, 90_000) == data[90_000:]  # short at EOF
        evict(path)
        # Since ~6.12 a NOWAIT miss starts readahead on the calling thread; on a
        # fast device that I/O can finish before the kernel re-checks the page,
        # so the call may legitimately return the data (DESIGN.md, "Facts").
        # What it must never do is return anything else.
        after_evict = _native.backend.read_nowait(fd, 4096, 0)
        assert after_evict in (-errno.EAGAIN, data[:4096])
    finally:
        os.close(fd)


def test_read_nowait_on_tmpfs_is_eopnotsupp(tmpfs_dir: Path, backend: str) -> None:
    path = tmpfs_dir / "f.bin"
    make_file(path, 10_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _native.backend.read_nowait(fd, 100, 0) == -errno.EOPNOTSUPP
    finally:
        os.close(fd)


def test_read_nowait_on_a_bad_fd_is_ebadf(backend: str) -> None:
    if backend == "pool":
        pytest.skip("the pool backend refuses before any syscall")
    assert _native.backend.read_nowait(987_654, 10, 0) == -errno.EBADF


def test_cachestat_tells_residency_without_io(data_dir: Path) -> None:
    if _native.backend.cachestat is None:
        pytest.skip("no cachestat(2) here (Linux < 6.5 or not x86_64/aarch64)")
    path = data_dir / "f.bin"
    make_file(path, 1 << 20)
    fd = os.open(path, os.O_RDONLY)
    try:
        warm(path)
        assert _native.backend.cachestat(fd, 0, 1 << 20) == (256, 256)
        evict(path)
        assert _native.backend.cachestat(fd, 0, 1 << 20) == (0, 256)
        assert _native.backend.cachestat(fd, 4096, 8192) == (0, 2)
        assert _native.backend.cachestat(-1, 0, 10) == -errno.EBADF
    finally:
        os.close(fd)


def test_unknown_or_unavailable_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        _native.use("turbo")
    assert "pool" in _native.available()
