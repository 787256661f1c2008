from pathlib import Path

import aiofastread
from tests.conftest import make_file, warm


async def test_read_whole_file(data_dir: Path) -> None:
    path = data_dir / "f.bin"
    data = make_file(path, 100_000)
    warm(path)
    async with aiofastread.open(path, "rb") as f:
        assert await f.read() == data
