"""Text decoding over the bridge equals CPython's, at every boundary.

The raw's read-ahead window is shrunk to a few hundred (odd) bytes so that
multibyte sequences, BOMs and "\\r\\n" pairs fall across window, buffer
and TextIOWrapper chunk boundaries many times in a small file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import aiofastread
from aiofastread._bridge import raw as bridge_raw

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1"]
NEWLINES = [None, "", "\n", "\r", "\r\n"]
ENDINGS = ["\n", "\r\n", "\r"]


def sample_text(encoding: str) -> str:
    chars = "ab\u00e9\u00ff" if encoding == "latin-1" else "ab\u00e9\u20ac\U0001f600"
    lines = []
    for i in range(400):
        body = (chars * (i % 9)) + str(i)
        lines.append(body + ENDINGS[i % 3])
    return "".join(lines) + "tail without newline"


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_raw, "WINDOW_SIZE", 333)
    monkeypatch.setattr(bridge_raw, "POOL_WINDOW", 1001)


def cpython_lines(path: Path, **kwargs: Any) -> tuple[list[tuple[int, str]], Any]:
    with open(path, **kwargs) as f:
        out = []
        while True:
            cookie = f.tell()
            line = f.readline()
            if not line:
                return out, f.newlines
            out.append((cookie, line))


@pytest.mark.parametrize("newline", NEWLINES)
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_lines_tell_and_seek(data_dir: Path, encoding: str, newline: str | None) -> None:
    path = data_dir / "t.txt"
    path.write_bytes(sample_text(encoding).encode(encoding))
    kwargs = {"encoding": encoding, "newline": newline}
    want, want_newlines = cpython_lines(path, **kwargs)
    async with aiofastread.open(path, **kwargs) as f:
        got = []
        while True:
            cookie = await f.tell()
            line = await f.readline()
            if not line:
                break
            got.append((cookie, line))
        assert got == want
        assert f.newlines == want_newlines
        # Cookies are CPython's: seeking back to any of them resumes there.
        for cookie, line in reversed(want[::37]):
            assert await f.seek(cookie) == cookie
            assert await f.readline() == line
        await f.seek(0)
        assert [line async for line in f] == [line for _, line in want]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_read_sizes(data_dir: Path, encoding: str) -> None:
    path = data_dir / "t.txt"
    path.write_bytes(sample_text(encoding).encode(encoding))
    with open(path, encoding=encoding) as f:
        whole = f.read()
        f.seek(0)
        pieces = list(iter(lambda: f.read(7), ""))
    async with aiofastread.open(path, encoding=encoding) as f:
        assert await f.read() == whole
        assert await f.read() == ""
        await f.seek(0)
        got = []
        while piece := await f.read(7):
            got.append(piece)
        assert got == pieces
        await f.seek(0)
        assert await f.readlines() == io.StringIO(whole).readlines()


@pytest.mark.parametrize(
    "errors", [None, "strict", "replace", "surrogateescape", "ignore", "backslashreplace"]
)
async def test_errors_handlers(data_dir: Path, errors: str | None) -> None:
    path = data_dir / "bad.txt"
    good = sample_text("utf-8").encode()
    # Invalid and truncated sequences, some next to line ends.
    path.write_bytes(good[:500] + b"\xff\n\xe2\x82\n" + good[500:900] + b"\xc3" + good[900:])

    def run_sync() -> list[Any]:
        out: list[Any] = []
        with open(path, encoding="utf-8", errors=errors) as f:
            try:
                while line := f.readline():
                    out.append(line)
            except UnicodeDecodeError as exc:
                out.append((type(exc), str(exc)))
        return out

    got: list[Any] = []
    async with aiofastread.open(path, encoding="utf-8", errors=errors) as f:
        try:
            async for line in f:
                got.append(line)
        except UnicodeDecodeError as exc:
            got.append((type(exc), str(exc)))
    assert got == run_sync()


async def test_lines_interleaved_with_other_calls(data_dir: Path) -> None:
    """tell()/read(n) between lines see the position the lines left."""
    path = data_dir / "t.txt"
    path.write_bytes(sample_text("utf-8").encode())
    with open(path, encoding="utf-8") as f:
        want = [(f.readline(), f.tell(), f.read(3)) for _ in range(100)]
    async with aiofastread.open(path, encoding="utf-8") as f:
        got = [(await f.readline(), await f.tell(), await f.read(3)) for _ in range(100)]
    assert got == want
