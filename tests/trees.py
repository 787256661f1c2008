"""A small directory tree with every kind of entry the path tests compare on."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
