"""Count log lines matching a word across many files, with `async for line in f`.

    python examples/scan_logs.py ERROR /var/log/*.log

Each file is scanned by its own task. On cached files every line is cut on
the loop from a read-ahead window filled inline: no thread hop per line.
"""

from __future__ import annotations

import asyncio
import sys

import aiofastread


async def count(path: str, word: str) -> int:
    hits = 0
    async with aiofastread.open(path, encoding="utf-8", errors="replace") as f:
        async for line in f:
            hits += word in line
    return hits


async def main(word: str, paths: list[str]) -> None:
    results = await asyncio.gather(*(count(p, word) for p in paths), return_exceptions=True)
    for path, result in zip(paths, results, strict=True):
        print(f"{path}: {result}")
    print(aiofastread.statistics())


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
