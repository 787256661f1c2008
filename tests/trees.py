"""Directory trees for the listing tests, and a cancellation helper."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from aiofastread import _iterate, _pool
from tests.conftest import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

FILES = {
    "file.txt": b"hello\n",
    "\u00fcn\u00efc\u00f8d\u00e9.txt": "gr\u00fc\u00dfe\n".encode(),
    ".hidden": b"",
    "sub/inner.bin": bytes(range(256)),
    "sub/deeper/leaf.txt": b"leaf\n",
    "\u65e5\u672c/\u30d5\u30a1\u30a4\u30eb.txt": b"nihon\n",
}
DIRS = ("empty", "sub", "sub/deeper", "\u65e5\u672c")
LINKS = {"link_to_file": "file.txt", "link_to_dir": "sub", "broken": "missing"}


def make_tree(root: Path) -> Path:
    """Files, directories, symlinks to each and a broken one, unicode names."""
    for name in DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    for name, target in LINKS.items():
        os.symlink(target, root / name)
    return root


def every_path(root: Path) -> list[Path]:
    """root, every entry under it (links not followed), and one missing name."""
    found = [root, root / "missing", root / "file.txt" / "not-a-dir"]
    for top, dirnames, filenames in os.walk(root):
        found += [root.joinpath(top, name) for name in dirnames + filenames]
    return sorted(found)


def make_big_dir(root: Path) -> Path:
    """More entries than a batch: a listing is still open after its first hop."""
    for number in range(_iterate.DEFAULT_BATCH + 10):
        (root / f"f{number}").write_bytes(b"")
    return root


async def cancel_while_iterating(
    listing: Callable[[], AsyncIterator[object]],
    while_parked: Callable[[], object] = lambda: None,
) -> None:
    """Cancel a task parked inside ``async for`` over a ``listing()`` it made
    (calling ``while_parked`` first); wait until the listing has been
    finalized and closed in the pool (no more descriptors than before)."""
    started = asyncio.Event()
    before = len(os.listdir("/proc/self/fd"))

    async def consume() -> None:
        async for _ in listing():
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(consume())
    await started.wait()
    while_parked()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the task was not cancelled")
    await until(
        lambda: (
            _pool.default_pool().statistics().in_flight == 0
            and len(os.listdir("/proc/self/fd")) <= before
        ),
        "the listing to be closed",
    )
