"""Invariant 1: the loop thread does no blocking I/O (blockbuster).

blockbuster raises when a wrapped call runs on a thread with a running event
loop. We add the descriptor calls it does not wrap by default and allow
exactly one: ``os.preadv`` inside the pure-Python backend's NOWAIT read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, BlockBusterFunction, blockbuster_ctx

import aiofastread
from tests.conftest import evict, make_file, warm

EXTRA_BLOCKING = ("pread", "preadv", "pwrite", "fstat", "open", "close", "fsync", "ftruncate")


@pytest.fixture
def blockbuster() -> Iterator[BlockBuster]:
    with blockbuster_ctx(["aiofastread"]) as bb:
        for name in EXTRA_BLOCKING:
            func = BlockBusterFunction(None, f"os.{name}", scanned_modules=["aiofastread"])
            if name == "preadv":
                func.can_block_in("aiofastread/_native.py", "_py_read_nowait")
            bb.functions[f"os.{name}"] = func
            func.activate()
        yield bb


async def test_blockbuster_catches_a_blocking_call(blockbuster: BlockBuster) -> None:
    """The guard itself works: a pread on the loop thread is caught."""
    from blockbuster import BlockingError

    from aiofastread import _read

    fd = os.open(__file__, os.O_RDONLY)
    try:
        with pytest.raises(BlockingError):
            _read.pread_full(fd, 10, 0)
    finally:
        os.close(fd)


async def test_reads_of_warm_and_cold_files_never_block_the_loop(
    data_dir: Path, blockbuster: BlockBuster
) -> None:
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
