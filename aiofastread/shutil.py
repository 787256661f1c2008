"""Async versions of :mod:`shutil`'s file and tree functions, run in our pool.

Each is an ``async def`` taking aiofiles' ``loop=``/``executor=`` keywords
(``aiofastread.ospath.wrap``), and raises what :mod:`shutil` raises (its
exception classes are re-exported here, the same objects). The copies move
the data with ``copy_file_range``/``sendfile`` (``aiofastread._copy``):
``copyfile``/``copy``/``copy2`` directly, ``copytree``/``move`` by default
(their ``copy_function`` is ``copy2``, as in shutil, but ours; pass your own
to change it). Callbacks (``rmtree``'s ``onerror``/``onexc``, ``copytree``'s
``ignore`` and ``copy_function``) run on a pool thread.

Not here: ``make_archive``, whose custom formats change the process's
working directory, which is not safe off the main thread.
"""

from __future__ import annotations

import functools
import inspect
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

from aiofastread import _copy
from aiofastread.ospath import wrap

__all__ = [
    "Error",
    "ReadError",
    "RegistryError",
    "SameFileError",
    "SpecialFileError",
    "chown",
    "copy",
    "copy2",
    "copyfile",
    "copymode",
    "copystat",
    "copytree",
    "disk_usage",
    "ignore_patterns",
    "move",
    "rmtree",
    "unpack_archive",
    "which",
]

_T = TypeVar("_T")

Error = shutil.Error
ReadError = shutil.ReadError
RegistryError = shutil.RegistryError
SameFileError = shutil.SameFileError
SpecialFileError = shutil.SpecialFileError

ignore_patterns = shutil.ignore_patterns  # pure: makes copytree's ignore callable


def _copying_in_kernel(func: Callable[..., _T]) -> Callable[..., _T]:
    """``func`` with our ``copy2`` as its ``copy_function`` unless one is given."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> _T:
        bound = signature.bind(*args, **kwargs)
        bound.arguments.setdefault("copy_function", _copy.copy2)
        return func(*bound.args, **bound.kwargs)

    return call


chown = wrap(shutil.chown)
copy = wrap(_copy.copy)
copy2 = wrap(_copy.copy2)
copyfile = wrap(_copy.copyfile)
copymode = wrap(shutil.copymode)
copystat = wrap(shutil.copystat)
copytree = wrap(_copying_in_kernel(shutil.copytree))
disk_usage = wrap(shutil.disk_usage)
move = wrap(_copying_in_kernel(shutil.move))
rmtree = wrap(shutil.rmtree)
unpack_archive = wrap(shutil.unpack_archive)
which = wrap(shutil.which)
