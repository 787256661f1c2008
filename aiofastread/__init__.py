"""aiofastread: asyncio files that read the page cache inline.

``import aiofastread as aiofiles`` is the whole migration; see
docs/migrating.md. ``statistics()``, ``configure()`` and ``backend()`` are
what aiofastread adds.
"""

from aiofastread import tempfile, threadpool
from aiofastread._file import AsyncBufferedReader
from aiofastread._open import AiofilesContextManager
from aiofastread._path import Path
from aiofastread._policy import FileStatistics
from aiofastread._readfile import read_bytes, read_text
from aiofastread._runtime import Statistics, backend, configure, reset_statistics, statistics
from aiofastread._sendfile import sendfile
from aiofastread._whole import copy, copyfile, write_bytes, write_text
from aiofastread._writer import AsyncBufferedWriter
from aiofastread.threadpool import (
    open,
    stderr,
    stderr_bytes,
    stdin,
    stdin_bytes,
    stdout,
    stdout_bytes,
)

__all__ = [
    "AiofilesContextManager",
    "AsyncBufferedReader",
    "AsyncBufferedWriter",
    "FileStatistics",
    "Path",
    "Statistics",
    "backend",
    "configure",
    "copy",
    "copyfile",
    "open",
    "read_bytes",
    "read_text",
    "reset_statistics",
    "sendfile",
    "statistics",
    "stderr",
    "stderr_bytes",
    "stdin",
    "stdin_bytes",
    "stdout",
    "stdout_bytes",
    "tempfile",
    "threadpool",
    "write_bytes",
    "write_text",
]
