"""``read()`` with no size (issue 12): the rest of a small cached file in one
NOWAIT read of the size known + 1, as FileIO.readall asks, on the fast path
when the rule allows (tests/test_inline_rule.py proves it mirrors the rule).
Proven here with contents and counters: a file that grew or shrank since its
size was learnt reads as CPython reads it, and a read at EOF needs no pool.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aiofastread
from aiofastread import _native
from tests.conftest import make_file, warm


def submissions() -> int:
    return aiofastread.statistics().pool_submissions


@pytest.fixture
def small(data_dir: Path) -> tuple[Path, bytes]:
    path = data_dir / "whole"
    data = make_file(path, 10_000)
    warm(path)
    return path, data


def inline_reads() -> bool:
    return _native.backend.can_read_inline


async def test_read_rest_after_a_read_is_inline(small: tuple[Path, bytes]) -> None:
    path, data = small
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(100) == data[:100]  # a hit: the file is WARM
        before = f.statistics().inline_hits
        pooled = submissions()
        assert await f.read() == data[100:]
        assert await f.tell() == len(data)
        assert await f.read() == b""  # at EOF: a 1-byte NOWAIT read answers b""
        assert await f.read(None) == b""
        if inline_reads():
            assert f.statistics().inline_hits - before == 3
            assert submissions() == pooled


async def test_read_of_a_file_that_grew_returns_the_new_bytes(small: tuple[Path, bytes]) -> None:
    path, data = small
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(100) == data[:100]
        more = os.urandom(5000)
        with open(path, "ab") as w:
            w.write(more)
        assert await f.read() == data[100:] + more
        assert await f.read() == b""
    with open(path, "rb") as sync:
        assert sync.read() == data + more


async def test_read_of_a_file_that_shrank_returns_what_is_left(
    small: tuple[Path, bytes],
) -> None:
    path, data = small
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(100) == data[:100]
        os.truncate(path, 500)
        assert await f.read() == data[100:500]
        os.truncate(path, 50)
        assert await f.read() == b""
        assert await f.tell() == 500


async def test_read_after_seek_and_peek(small: tuple[Path, bytes]) -> None:
    path, data = small
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(1) == data[:1]
        assert await f.seek(-10, os.SEEK_END) == len(data) - 10
        assert await f.read() == data[-10:]
        await f.seek(3)
        assert (await f.peek())[:5] == data[3:8]  # a window: read() takes it first
        assert await f.read() == data[3:]


@pytest.mark.parametrize("size", [None, -1, True - 2])
async def test_none_and_minus_one_read_to_eof(small: tuple[Path, bytes], size: int | None) -> None:
    path, data = small
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(10) == data[:10]
        assert await f.read(size) == data[10:]


async def test_other_negative_sizes_raise_what_io_raises(small: tuple[Path, bytes]) -> None:
    path, _ = small
    async with aiofastread.open(path, "rb") as f:
        assert await f.read(10)  # WARM: the fast path's rule is asked first
        with pytest.raises(ValueError, match="read length must be non-negative or -1"):
            await f.read(-7)
        with pytest.raises(TypeError, match="argument should be integer or None, not 'float'"):
            await f.read(-1.0)
        assert await f.tell() == 10
