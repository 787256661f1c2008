"""Invariant 1: the loop thread does no blocking I/O (blockbuster).

blockbuster raises when a wrapped call runs on a thread with a running event
loop. The guard is tests/conftest.py's autouse ``no_blocking_on_loop``: it
wraps every test of the suite, adds the descriptor calls blockbuster does not
wrap by default, and allows only the calls listed there. The tests here prove
the guard catches what it must, and run the read paths under it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blockbuster import BlockBuster, BlockingError

import aiofastread
from aiofastread import _file, _read
from tests.conftest import evict, make_file, warm


async def test_blockbuster_catches_a_blocking_call() -> None:
    """The guard itself works, with no fixture asked for: a pread, fstat or
    lseek(SEEK_END) made by aiofastread on the loop thread is caught."""
    fd = os.open(__file__, os.O_RDONLY)  # the test's own call: not flagged
    try:
        with pytest.raises(BlockingError, match=r"to os\.pread$"):
            _read.pread_full(fd, 10, 0)
        with pytest.raises(BlockingError, match=r"to os\.fstat$"):
            _read.pread_to_eof(fd, 0)
        with pytest.raises(BlockingError, match=r"to os\.lseek$"):
            _file.lseek_restoring(fd, 0, os.SEEK_END)
        assert os.pread(fd, 10, 0)  # the test's own call again: not flagged
    finally:
        os.close(fd)


def test_blockbuster_leaves_threads_without_a_loop_alone() -> None:
    """Off the loop (a pool thread, or no loop at all) blocking is fine."""
    fd = os.open(__file__, os.O_RDONLY)
    try:
        assert _read.pread_full(fd, 10, 0) == Path(__file__).read_bytes()[:10]
    finally:
        os.close(fd)


async def test_blockbuster_guard_can_be_paused(no_blocking_on_loop: BlockBuster) -> None:
    """The fixture is the BlockBuster itself (a test that must spin on a
    lock deactivates it)."""
    fd = os.open(__file__, os.O_RDONLY)
    try:
        no_blocking_on_loop.deactivate()
        assert _read.pread_full(fd, 10, 0)
        no_blocking_on_loop.activate()
        with pytest.raises(BlockingError):
            _read.pread_full(fd, 10, 0)
    finally:
        os.close(fd)


async def test_reads_of_warm_and_cold_files_never_block_the_loop(data_dir: Path) -> None:
    hot, cold = data_dir / "hot.bin", data_dir / "cold.bin"
    hot_data, cold_data = make_file(hot, 300_000), make_file(cold, 300_000)
    warm(hot)
    evict(cold)
    async with aiofastread.open(hot, "rb") as f, aiofastread.open(cold, "rb") as g:
        for offset in (0, 100_000, 290_000):
            await f.seek(offset)
            await g.seek(offset)
            assert await f.read(16384) == hot_data[offset : offset + 16384]
            assert await g.read(16384) == cold_data[offset : offset + 16384]
        await f.seek(0)
        assert await f.readline() == hot_data[: hot_data.find(b"\n") + 1]
        await f.seek(0, os.SEEK_END)
        await g.seek(0)
        assert await g.read() == cold_data
        assert await f.pread(10, 5) == hot_data[5:15]


async def test_detach_of_an_rb_file_is_allowed_its_lseek(data_dir: Path) -> None:
    """The one lseek allowed on the loop: SEEK_SET, which only sets f_pos."""
    path = data_dir / "f.bin"
    data = make_file(path, 100)
    f = await aiofastread.open(path, "rb")
    assert await f.read(10) == data[:10]
    raw = f.detach()
    try:
        assert raw.tell() == 10
        assert raw.read() == data[10:]
    finally:
        raw.close()
