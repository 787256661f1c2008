"""readinto / pread_into / pread: contents, counters, errors (issue 11 items 2-3)."""

from __future__ import annotations

import array
import mmap
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from tests.conftest import evict, make_file, warm

SIZE = 256 << 10


def buffers(n: int) -> list[Any]:
    """Writable buffers of ``n`` bytes a caller may reuse."""
    return [bytearray(n), memoryview(bytearray(n)), array.array("B", bytes(n)), mmap.mmap(-1, n)]


async def test_pread_into_and_readinto_fill_the_callers_buffer_inline(
    data_dir: Path, backend: str
) -> None:
    path = data_dir / "f"
    data = make_file(path, SIZE)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.pread(4096, 0)  # WARM from here
        before = aiofastread.statistics()
        reads = 0
        for buffer in buffers(16384):
            for offset in (0, 4096, 100_000):
                assert await f.pread_into(buffer, offset) == 16384
                assert bytes(buffer) == data[offset : offset + 16384]
                await f.seek(offset + 1)
                assert await f.readinto(buffer) == 16384
                assert bytes(buffer) == data[offset + 1 : offset + 16385]
                assert await f.tell() == offset + 16385
                reads += 2
        after = aiofastread.statistics()
    if backend == "pool":
        assert after.inline_hits == before.inline_hits
    else:
        assert after.pool_submissions == before.pool_submissions
        assert after.inline_hits - before.inline_hits == reads


async def test_reads_into_stop_at_eof(data_dir: Path) -> None:
    path = data_dir / "f"
    data = make_file(path, SIZE)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        buffer = bytearray(b"z" * 8192)
        assert await f.pread_into(buffer, SIZE - 100) == 100
        assert buffer[:100] == data[-100:]
        assert buffer[100:] == b"z" * 8092
        assert await f.pread_into(buffer, SIZE + 5) == 0
        await f.seek(SIZE - 10)
        assert await f.readinto(buffer) == 10
        assert await f.tell() == SIZE
        assert await f.readinto(bytearray()) == 0
        assert await f.pread_into(bytearray(), 0) == 0


async def test_a_miss_is_finished_by_the_pool_into_the_buffer(data_dir: Path, backend: str) -> None:
    path = data_dir / "f"
    data = make_file(path, SIZE)
    async with aiofastread.open(path, "rb") as f:
        warm(path)
        await f.pread(4096, 0)
        evict(path)  # WARM, but nothing cached: the NOWAIT read misses
        buffer = bytearray(16384)
        assert await f.pread_into(buffer, 65536) == 16384
        assert buffer == data[65536 : 65536 + 16384]
        await f.seek(131072)
        assert await f.readinto(buffer) == 16384
        assert buffer == data[131072 : 131072 + 16384]
        assert await f.tell() == 131072 + 16384


async def test_bad_arguments_raise_as_io_does(data_dir: Path) -> None:
    path = data_dir / "f"
    make_file(path, 4096)
    f = await aiofastread.open(path, "rb")
    with pytest.raises(TypeError, match="read-write bytes-like object"):
        await f.pread_into(b"readonly", 0)
    with pytest.raises(TypeError, match="read-write bytes-like object"):
        await f.readinto("text")
    with pytest.raises(ValueError, match="non-negative"):
        await f.pread_into(bytearray(4), -1)
    with pytest.raises(TypeError):
        await f.pread_into(bytearray(4), 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        await f.pread(4, -1)
    await f.close()
    for call in (f.pread_into(bytearray(4), 0), f.readinto(bytearray(4)), f.pread(4, 0)):
        with pytest.raises(ValueError, match="closed file"):
            await call


@pytest.mark.parametrize("buffer", [b"abc", "abc", 3, memoryview(b"ab"), None])
async def test_unbuffered_readinto_refuses_as_fileio(data_dir: Path, buffer: object) -> None:
    """readinto of an unbuffered "rb" file (FileIO's semantics) raises
    FileIO's TypeError for a buffer it cannot write, in this Python's words
    (3.12 made it "argument 1")."""
    path = data_dir / "f"
    make_file(path, 100)
    with open(path, "rb", buffering=0) as cpy, pytest.raises(TypeError) as want:
        cpy.readinto(buffer)  # type: ignore[arg-type]
    async with aiofastread.open(path, "rb", buffering=0) as f:
        with pytest.raises(TypeError) as got:
            await f.readinto(buffer)
    assert str(got.value) == str(want.value)
