"""aiofastread.tempfile: aiofiles' four factories, with CPython's deletion rules."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

import aiofastread
from aiofastread import tempfile
from aiofastread._bridge import Bridge
from aiofastread.threadpool._base import PoolRunner

MODES = ["r+", "w+", "rb+", "wb+"]


def sample(mode: str) -> str | bytes:
    return b"Hello World!\n" if "b" in mode else "Hello \u00e9 World!\n"


@pytest.mark.parametrize("mode", MODES)
async def test_temporary_file(mode: str) -> None:
    data = sample(mode)
    async with tempfile.TemporaryFile(mode=mode) as f:
        assert isinstance(f._runner, Bridge)  # a regular file: CPython's io over our raw
        for _ in range(3):
            await f.write(data)
        await f.flush()
        await f.seek(0)
        assert [line async for line in f] == [data] * 3
    assert f.closed


@pytest.mark.parametrize("mode", MODES)
async def test_named_temporary_file(mode: str, tmp_path: Path) -> None:
    data = sample(mode)
    async with tempfile.NamedTemporaryFile(mode=mode, dir=tmp_path) as f:
        await f.write(data)
        await f.flush()
        await f.seek(0)
        assert await f.read() == data
        name = f.name
        assert os.path.isfile(name)
        assert Path(name).parent == tmp_path
        if sys.version_info < (3, 12):
            assert f.delete
    assert f.closed
    assert not os.path.exists(name)


async def test_named_temporary_file_close_deletes(tmp_path: Path) -> None:
    f = await tempfile.NamedTemporaryFile(dir=tmp_path)
    await f.write(b"x")
    name = f.name
    await f.close()
    assert not os.path.exists(name)


async def test_named_temporary_file_kept(tmp_path: Path) -> None:
    async with tempfile.NamedTemporaryFile("w", dir=tmp_path, delete=False) as f:
        await f.write("kept")
    assert Path(f.name).read_text() == "kept"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="delete_on_close is 3.12's")
async def test_delete_on_close_false(tmp_path: Path) -> None:
    async with tempfile.NamedTemporaryFile(  # type: ignore[call-arg]
        "w", dir=tmp_path, delete_on_close=False
    ) as f:
        await f.write("reopen me")
        await f.close()
        # Closed but not deleted: another open can read it (the point of it).
        assert Path(f.name).read_text() == "reopen me"
    assert not os.path.exists(f.name)


@pytest.mark.parametrize("mode", MODES)
async def test_spooled_temporary_file(mode: str) -> None:
    data = sample(mode)
    async with tempfile.SpooledTemporaryFile(max_size=len(data) + 1, mode=mode) as f:
        await f.write(data)
        await f.flush()
        if "b" in mode:
            assert type(f._file._file) is io.BytesIO
        await f.write(data)
        await f.flush()
        if "b" in mode:
            assert type(f._file._file) is not io.BytesIO
        await f.seek(0)
        assert await f.read() == data + data
        assert isinstance(await f.fileno(), int)


@pytest.mark.parametrize("mode", MODES)
async def test_spooled_lines_in_memory_make_no_pool_job(mode: str) -> None:
    lines = ["one\n", "two\n", "three"]
    if "b" in mode:
        lines = [line.encode() for line in lines]  # type: ignore[misc]
    async with tempfile.SpooledTemporaryFile(max_size=1 << 20, mode=mode) as f:
        await f.writelines(lines)
        await f.seek(0)
        before = aiofastread.statistics().pool_submissions
        assert [line async for line in f] == lines
        assert aiofastread.statistics().pool_submissions == before
        await f.rollover()  # on disk: each line is a pool job, as in aiofiles
        await f.seek(0)
        before = aiofastread.statistics().pool_submissions
        assert [line async for line in f] == lines
        assert aiofastread.statistics().pool_submissions > before


async def test_temporary_directory() -> None:
    async with tempfile.TemporaryDirectory() as d:
        assert os.path.isdir(d)
        async with aiofastread.open(os.path.join(d, "f"), "w") as f:
            await f.write("inside")
    assert not os.path.exists(d)


async def test_temporary_directory_object() -> None:
    d = await tempfile.TemporaryDirectory(prefix="afr-")
    assert os.path.basename(d.name).startswith("afr-")
    await d.close()
    assert not os.path.exists(d.name)


async def test_binary_read_only_temporary_file_is_wrapped() -> None:
    """'rb' temporary files keep aiofiles' wrapping (nothing to read fast)."""
    async with tempfile.NamedTemporaryFile("rb") as f:
        assert isinstance(f._runner, PoolRunner)
        assert await f.read() == b""
    assert not os.path.exists(f.name)
