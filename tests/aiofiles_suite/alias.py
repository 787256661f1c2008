"""pytest plugin (``-p tests.aiofiles_suite.alias``): ``aiofiles`` is aiofastread.

Loaded before collection, it binds ``sys.modules["aiofiles"]`` to aiofastread
and puts a finder first on ``sys.meta_path`` that answers every
``aiofiles.X`` import with the module ``aiofastread.X`` itself (the same
object, so their monkeypatching reaches our code). A submodule aiofastread
lacks fails with ModuleNotFoundError; the real aiofiles is never imported.
It also runs their async tests on uvloop as well as asyncio.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import TYPE_CHECKING

import aiofastread

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None  # type: ignore[assignment]

# Every module of aiofiles 25.1 (src/aiofiles in the sdist).
AIOFILES_MODULES = (
    "aiofiles",
    "aiofiles.base",
    "aiofiles.os",
    "aiofiles.ospath",
    "aiofiles.tempfile",
    "aiofiles.tempfile.temptypes",
    "aiofiles.threadpool",
    "aiofiles.threadpool.binary",
    "aiofiles.threadpool.text",
    "aiofiles.threadpool.utils",
)


def ours(name: str) -> str:
    """aiofiles.X -> aiofastread.X"""
    return "aiofastread" + name[len("aiofiles") :]


class _AliasLoader(importlib.abc.Loader):
    """Leaves the real module in sys.modules: the import system returns
    ``sys.modules[name]`` after exec_module, so aiofastread's module keeps
    its own ``__spec__`` and ``__name__``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "aiofiles" and not fullname.startswith("aiofiles."):
            return None
        real = ours(fullname)
        if importlib.util.find_spec(real) is None:
            raise ModuleNotFoundError(
                f"aiofastread has no {real!r} (for {fullname!r})", name=fullname
            )
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real))


def install() -> dict[str, str]:
    """Alias every aiofiles module that aiofastread has; returns the missing
    ones with the reason."""
    sys.meta_path.insert(0, _AliasFinder())
    sys.modules["aiofiles"] = aiofastread
    missing: dict[str, str] = {}
    for name in AIOFILES_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing[name] = str(exc)
    return missing


MISSING = install()


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"aiofiles -> aiofastread ({aiofastread.__file__}), backend {aiofastread.backend()}"]
    lines += [f"aiofiles alias missing: {name}: {why}" for name, why in MISSING.items()]
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    """No real aiofiles module may have been imported by collection."""
    for name, module in list(sys.modules.items()):
        if name == "aiofiles" or name.startswith("aiofiles."):
            assert module.__name__.startswith("aiofastread"), f"{name} is {module!r}"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories
