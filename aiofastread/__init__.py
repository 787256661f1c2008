"""aiofastread: asyncio files that read the page cache inline.

``import aiofastread as aiofiles`` is the whole migration; see
docs/migrating.md. ``statistics()``, ``configure()`` and ``backend()`` are
what aiofastread adds.
"""

from aiofastread._file import AsyncBufferedReader
from aiofastread._open import AiofilesContextManager, open
from aiofastread._policy import FileStatistics
from aiofastread._runtime import Statistics, backend, configure, reset_statistics, statistics

__all__ = [
    "AiofilesContextManager",
    "AsyncBufferedReader",
    "FileStatistics",
    "Statistics",
    "backend",
    "configure",
    "open",
    "reset_statistics",
    "statistics",
]
