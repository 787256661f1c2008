"""Async versions of the file functions of :mod:`os`, run in our pool.

Mirrors ``aiofiles.os`` (aiofiles 25.1): the same names under the same
platform conditions, each an ``async def`` taking aiofiles' extra ``loop=``
and ``executor=`` keywords, plus ``lstat``, ``chmod``, ``fsync``,
``fdatasync`` (where :mod:`os` has it) and ``utime``. The blocking call runs
in :mod:`aiofastread._pool`, never in the loop's default executor.

``scandir`` returns the stdlib iterator, as aiofiles does: iterating it
reads the directory on the calling thread. Use ``listdir`` to keep all the
I/O in the pool.
"""

from __future__ import annotations

import os

from aiofastread import ospath as path
from aiofastread.ospath import wrap

__all__ = [
    "access",
    "chmod",
    "fsync",
    "getcwd",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "path",
    "readlink",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "scandir",
    "stat",
    "symlink",
    "unlink",
    "utime",
    "wrap",
]

access = wrap(os.access)

chmod = wrap(os.chmod)

fsync = wrap(os.fsync)

getcwd = wrap(os.getcwd)

listdir = wrap(os.listdir)
lstat = wrap(os.lstat)

makedirs = wrap(os.makedirs)
mkdir = wrap(os.mkdir)

readlink = wrap(os.readlink)
remove = wrap(os.remove)
removedirs = wrap(os.removedirs)
rename = wrap(os.rename)
renames = wrap(os.renames)
replace = wrap(os.replace)
rmdir = wrap(os.rmdir)

scandir = wrap(os.scandir)
stat = wrap(os.stat)
symlink = wrap(os.symlink)

unlink = wrap(os.unlink)
utime = wrap(os.utime)


if hasattr(os, "link"):
    __all__ += ["link"]
    link = wrap(os.link)
if hasattr(os, "sendfile"):
    __all__ += ["sendfile"]
    sendfile = wrap(os.sendfile)
if hasattr(os, "statvfs"):
    __all__ += ["statvfs"]
    statvfs = wrap(os.statvfs)
if hasattr(os, "fdatasync"):
    __all__ += ["fdatasync"]
    fdatasync = wrap(os.fdatasync)
