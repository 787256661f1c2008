"""``aiofastread.Path``: :class:`pathlib.Path` with the filesystem awaited.

The model is anyio's ``Path`` (anyio 4.16, ``_core/_fileio.py``): the same
members under the same Python-version guards, awaitable where anyio's are,
plain where anyio's are (the pure parts answer exactly as ``PurePath``).
What differs is where the work runs:

- every filesystem call runs in aiofastread's pool (``_pool``), never in the
  loop's default executor and never on the loop thread;
- ``open`` returns aiofastread's file objects, and ``read_bytes`` /
  ``read_text`` go through ``_readfile`` (a cached file is read inline);
- ``iterdir``, ``glob``, ``rglob`` and ``walk`` advance in the pool a batch
  at a time (``_iterate``), not a hop per entry; ``walk`` top-down steps one
  directory per hop, so pruning ``dirnames`` works as in pathlib.

Version-dependent members, as anyio (4.16) decides them: ``walk``,
``is_junction``, ``exists(follow_symlinks=)``, ``relative_to(walk_up=)``
and ``glob``/``rglob(case_sensitive=)`` from 3.12; ``from_uri``,
``full_match``, ``parser``, ``match(case_sensitive=)``,
``is_dir``/``is_file``/``owner``/``group(follow_symlinks=)``,
``read_text(newline=)`` and
``glob``/``rglob(recurse_symlinks=)`` from 3.13; ``copy``, ``copy_into``,
``move``, ``move_into`` and ``info`` from 3.14; ``with_stem`` has 3.13's
rule everywhere; ``with_segments`` exists everywhere. Not taken from anyio:
its ``limiter`` (a ``CapacityLimiter``); the pool is configured with
``aiofastread.configure``. Callbacks (``walk``'s ``on_error``) run on a pool
thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from aiofastread import _iterate, _readfile, _whole
from aiofastread._pool import run_blocking
from aiofastread.threadpool import open as async_open

if TYPE_CHECKING:
    from types import ModuleType

    from _typeshed import (
        OpenBinaryModeReading,
        OpenTextMode,
        ReadableBuffer,
        StrOrBytesPath,
        StrPath,
    )

    from aiofastread._file import AsyncBufferedReader
    from aiofastread.threadpool.text import AsyncTextIOWrapper

    if sys.version_info >= (3, 14):
        from pathlib.types import PathInfo

__all__ = ["Path"]

P = TypeVar("P", bound="Path")


def _as_paths(cls: type[P], paths: Iterator[pathlib.Path]) -> Iterator[P]:
    """pathlib results as ours (in the pool); closing this closes ``paths``."""
    try:
        if cls.__init__ is not Path.__init__:  # a subclass may set more up
            yield from map(cls, paths)
            return
        # Ours around the path pathlib made, without parsing it again: a
        # quarter of the cost of cls(path) in a listing (bench/listings.py).
        new = object.__new__
        for path in paths:
            ours = new(cls)
            ours._path = path
            yield ours
    finally:
        _iterate.close_iterator(paths)  # a generator, or from 3.13 a map


def _plain(path: StrOrBytesPath | Path) -> Any:
    """What pathlib and os take: the pathlib.Path inside ours, else as given."""
    return path._path if isinstance(path, Path) else path


class Path:
    """An asynchronous :class:`pathlib.Path` (anyio's ``Path`` surface).

    Not a ``PurePath`` subclass (as anyio's is not), but ``os.PathLike``:
    ``os.fspath``, ``open``, ``pathlib.Path(p)`` and ``str`` all take it,
    and it compares, sorts and hashes as the ``pathlib.Path`` it wraps.
    """

    __slots__ = ("__weakref__", "_path")

    def __init__(self, *args: StrPath) -> None:
        self._path: pathlib.Path = pathlib.Path(*args)

    # -- pure: as PurePath ----------------------------------------------------

    def __fspath__(self) -> str:
        return self._path.__fspath__()

    def __str__(self) -> str:
        return str(self._path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.as_posix()!r})"

    def __bytes__(self) -> bytes:
        return bytes(self._path)

    def __hash__(self) -> int:
        return hash(self._path)

    def __eq__(self, other: object) -> bool:
        return self._path == (other._path if isinstance(other, Path) else other)

    def __lt__(self, other: pathlib.PurePath | Path) -> bool:
        return self._path < _plain(other)  # type: ignore[no-any-return]

    def __le__(self, other: pathlib.PurePath | Path) -> bool:
        return self._path <= _plain(other)  # type: ignore[no-any-return]

    def __gt__(self, other: pathlib.PurePath | Path) -> bool:
        return self._path > _plain(other)  # type: ignore[no-any-return]

    def __ge__(self, other: pathlib.PurePath | Path) -> bool:
        return self._path >= _plain(other)  # type: ignore[no-any-return]

    def __truediv__(self: P, other: StrPath) -> P:
        return type(self)(self._path / other)

    def __rtruediv__(self: P, other: StrPath) -> P:
        return type(self)(other) / self

    @property
    def parts(self) -> tuple[str, ...]:
        return self._path.parts

    @property
    def drive(self) -> str:
        return self._path.drive

    @property
    def root(self) -> str:
        return self._path.root

    @property
    def anchor(self) -> str:
        return self._path.anchor

    @property
    def parents(self: P) -> Sequence[P]:
        return tuple(type(self)(p) for p in self._path.parents)

    @property
    def parent(self: P) -> P:
        return type(self)(self._path.parent)

    @property
    def name(self) -> str:
        return self._path.name

    @property
    def suffix(self) -> str:
        return self._path.suffix

    @property
    def suffixes(self) -> list[str]:
        return self._path.suffixes

    @property
    def stem(self) -> str:
        return self._path.stem

    def as_posix(self) -> str:
        return self._path.as_posix()

    def as_uri(self) -> str:
        return self._path.as_uri()

    def is_absolute(self) -> bool:
        return self._path.is_absolute()

    def is_relative_to(self, other: StrPath) -> bool:
        try:
            self.relative_to(other)
        except ValueError:
            return False
        return True

    if sys.version_info < (3, 15):

        def is_reserved(self) -> bool:
            return self._path.is_reserved()

    def joinpath(self: P, *args: StrPath) -> P:
        return type(self)(self._path.joinpath(*args))

    if sys.version_info >= (3, 13):
        parser: ClassVar[ModuleType] = pathlib.Path.parser

        @classmethod
        def from_uri(cls: type[P], uri: str) -> P:
            return cls(pathlib.Path.from_uri(uri))

        def full_match(self, path_pattern: str, *, case_sensitive: bool | None = None) -> bool:
            return self._path.full_match(path_pattern, case_sensitive=case_sensitive)

        def match(self, path_pattern: str, *, case_sensitive: bool | None = None) -> bool:
            return self._path.match(path_pattern, case_sensitive=case_sensitive)

    else:

        def match(self, path_pattern: str) -> bool:
            return self._path.match(path_pattern)

    if sys.version_info >= (3, 12):

        def relative_to(self: P, *other: StrPath, walk_up: bool = False) -> P:
            others = [pathlib.Path(o) for o in other]  # pathlib takes no os.PathLike here
            return type(self)(self._path.relative_to(*others, walk_up=walk_up))

    else:

        def relative_to(self: P, *other: StrPath) -> P:
            return type(self)(self._path.relative_to(*other))

    def with_name(self: P, name: str) -> P:
        return type(self)(self._path.with_name(name))

    def with_stem(self: P, stem: str) -> P:
        # 3.13's rule on every version (as anyio): an empty stem is refused
        # while there is a suffix, instead of giving a name like ".txt".
        suffix = self._path.suffix
        if suffix and not stem:
            raise ValueError(f"{self!r} has a non-empty suffix")
        return self.with_name(stem + suffix)

    def with_suffix(self: P, suffix: str) -> P:
        return type(self)(self._path.with_suffix(suffix))

    def with_segments(self: P, *pathsegments: StrPath) -> P:
        return type(self)(*pathsegments)

    # -- in the pool: one hop each ---------------------------------------------

    async def absolute(self: P) -> P:
        return type(self)(await run_blocking(self._path.absolute))

    async def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        chmod = functools.partial(os.chmod, follow_symlinks=follow_symlinks)
        await run_blocking(chmod, self._path, mode)

    @classmethod
    async def cwd(cls: type[P]) -> P:
        return cls(await run_blocking(pathlib.Path.cwd))

    if sys.version_info >= (3, 12):

        async def exists(self, *, follow_symlinks: bool = True) -> bool:
            exists = functools.partial(self._path.exists, follow_symlinks=follow_symlinks)
            return await run_blocking(exists)

    else:

        async def exists(self) -> bool:
            return await run_blocking(self._path.exists)

    async def expanduser(self: P) -> P:
        return type(self)(await run_blocking(self._path.expanduser))

    if sys.version_info >= (3, 13):

        async def group(self, *, follow_symlinks: bool = True) -> str:
            group = functools.partial(self._path.group, follow_symlinks=follow_symlinks)
            return await run_blocking(group)

    else:

        async def group(self) -> str:
            return await run_blocking(self._path.group)

    async def hardlink_to(self, target: StrOrBytesPath | Path) -> None:
        await run_blocking(os.link, _plain(target), self._path)

    @classmethod
    async def home(cls: type[P]) -> P:
        return cls(await run_blocking(pathlib.Path.home))

    async def is_block_device(self) -> bool:
        return await run_blocking(self._path.is_block_device)

    async def is_char_device(self) -> bool:
        return await run_blocking(self._path.is_char_device)

    if sys.version_info >= (3, 13):

        async def is_dir(self, *, follow_symlinks: bool = True) -> bool:
            is_dir = functools.partial(self._path.is_dir, follow_symlinks=follow_symlinks)
            return await run_blocking(is_dir)

        async def is_file(self, *, follow_symlinks: bool = True) -> bool:
            is_file = functools.partial(self._path.is_file, follow_symlinks=follow_symlinks)
            return await run_blocking(is_file)

    else:

        async def is_dir(self) -> bool:
            return await run_blocking(self._path.is_dir)

        async def is_file(self) -> bool:
            return await run_blocking(self._path.is_file)

    async def is_fifo(self) -> bool:
        return await run_blocking(self._path.is_fifo)

    if sys.version_info >= (3, 12):

        async def is_junction(self) -> bool:
            return await run_blocking(self._path.is_junction)

    async def is_mount(self) -> bool:
        return await run_blocking(os.path.ismount, self._path)

    async def is_socket(self) -> bool:
        return await run_blocking(self._path.is_socket)

    async def is_symlink(self) -> bool:
        return await run_blocking(self._path.is_symlink)

    async def lchmod(self, mode: int) -> None:
        await run_blocking(self._path.lchmod, mode)

    async def lstat(self) -> os.stat_result:
        return await run_blocking(self._path.lstat)

    async def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        await run_blocking(self._path.mkdir, mode, parents, exist_ok)

    @overload
    async def open(
        self,
        mode: OpenTextMode = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> AsyncTextIOWrapper: ...
    @overload
    async def open(
        self,
        mode: OpenBinaryModeReading,
        buffering: Literal[-1, 1] = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> AsyncBufferedReader: ...
    @overload
    async def open(
        self,
        mode: str,
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any: ...
    async def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """``aiofastread.open(self, ...)``: our file objects, opened in the pool."""
        return await async_open(self._path, mode, buffering, encoding, errors, newline)

    if sys.version_info >= (3, 13):

        async def owner(self, *, follow_symlinks: bool = True) -> str:
            owner = functools.partial(self._path.owner, follow_symlinks=follow_symlinks)
            return await run_blocking(owner)

    else:

        async def owner(self) -> str:
            return await run_blocking(self._path.owner)

    async def read_bytes(self) -> bytes:
        return await _readfile.read_bytes(self._path)

    if sys.version_info >= (3, 13):

        async def read_text(
            self,
            encoding: str | None = None,
            errors: str | None = None,
            newline: str | None = None,
        ) -> str:
            return await _readfile.read_text(self._path, encoding, errors, newline)

    else:

        async def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
            return await _readfile.read_text(self._path, encoding, errors)

    async def readlink(self: P) -> P:
        return type(self)(await run_blocking(os.readlink, self._path))

    async def rename(self: P, target: str | pathlib.PurePath | Path) -> P:
        target = _plain(target)
        await run_blocking(self._path.rename, target)
        return type(self)(target)

    async def replace(self: P, target: str | pathlib.PurePath | Path) -> P:
        target = _plain(target)
        await run_blocking(self._path.replace, target)
        return type(self)(target)

    async def resolve(self: P, strict: bool = False) -> P:
        return type(self)(await run_blocking(self._path.resolve, strict))

    async def rmdir(self) -> None:
        await run_blocking(self._path.rmdir)

    async def samefile(self, other_path: StrPath) -> bool:
        return await run_blocking(self._path.samefile, _plain(other_path))

    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        stat = functools.partial(os.stat, follow_symlinks=follow_symlinks)
        return await run_blocking(stat, self._path)

    async def symlink_to(
        self, target: StrOrBytesPath | Path, target_is_directory: bool = False
    ) -> None:
        await run_blocking(self._path.symlink_to, _plain(target), target_is_directory)

    async def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        await run_blocking(self._path.touch, mode, exist_ok)

    async def unlink(self, missing_ok: bool = False) -> None:
        await run_blocking(self._path.unlink, missing_ok)

    async def write_bytes(self, data: ReadableBuffer) -> int:
        return await _whole.write_bytes(self._path, data)

    async def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> int:
        return await _whole.write_text(
            self._path, data, encoding=encoding, errors=errors, newline=newline
        )

    if sys.version_info >= (3, 14):

        @property
        def info(self) -> PathInfo:
            return self._path.info

        async def copy(
            self: P,
            target: StrPath,
            *,
            follow_symlinks: bool = True,
            preserve_metadata: bool = False,
        ) -> P:
            copy = functools.partial(
                self._path.copy,
                follow_symlinks=follow_symlinks,
                preserve_metadata=preserve_metadata,
            )
            return type(self)(await run_blocking(copy, pathlib.Path(target)))

        async def copy_into(
            self: P,
            target_dir: StrPath,
            *,
            follow_symlinks: bool = True,
            preserve_metadata: bool = False,
        ) -> P:
            copy_into = functools.partial(
                self._path.copy_into,
                follow_symlinks=follow_symlinks,
                preserve_metadata=preserve_metadata,
            )
            return type(self)(await run_blocking(copy_into, pathlib.Path(target_dir)))

        async def move(self: P, target: StrPath) -> P:
            return type(self)(await run_blocking(self._path.move, pathlib.Path(target)))

        async def move_into(self: P, target_dir: StrPath) -> P:
            return type(self)(await run_blocking(self._path.move_into, pathlib.Path(target_dir)))

    # -- directory listings: async iterators, a batch per hop ------------------

    async def iterdir(self: P) -> AsyncIterator[P]:
        # pathlib's own iterdir (its fast child paths), started in the pool:
        # from 3.13 it opens the directory when called.
        cls, path = type(self), self._path
        found = _iterate.batches(lambda: _as_paths(cls, path.iterdir()))
        async with contextlib.aclosing(found):
            async for children in found:
                for child in children:
                    yield child

    if sys.version_info >= (3, 13):

        def glob(
            self: P,
            pattern: StrPath,
            *,
            case_sensitive: bool | None = None,
            recurse_symlinks: bool = False,
        ) -> AsyncIterator[P]:
            found = self._path.glob(
                pattern,  # type: ignore[arg-type]  # 3.13 takes os.PathLike too
                case_sensitive=case_sensitive,
                recurse_symlinks=recurse_symlinks,
            )
            return _iterate.in_pool(_as_paths(type(self), found))

        def rglob(
            self: P,
            pattern: StrPath,
            *,
            case_sensitive: bool | None = None,
            recurse_symlinks: bool = False,
        ) -> AsyncIterator[P]:
            found = self._path.rglob(
                pattern,  # type: ignore[arg-type]
                case_sensitive=case_sensitive,
                recurse_symlinks=recurse_symlinks,
            )
            return _iterate.in_pool(_as_paths(type(self), found))

    elif sys.version_info >= (3, 12):

        def glob(self: P, pattern: str, *, case_sensitive: bool | None = None) -> AsyncIterator[P]:
            found = self._path.glob(pattern, case_sensitive=case_sensitive)
            return _iterate.in_pool(_as_paths(type(self), found))

        def rglob(self: P, pattern: str, *, case_sensitive: bool | None = None) -> AsyncIterator[P]:
            found = self._path.rglob(pattern, case_sensitive=case_sensitive)
            return _iterate.in_pool(_as_paths(type(self), found))

    else:

        def glob(self: P, pattern: str) -> AsyncIterator[P]:
            return _iterate.in_pool(_as_paths(type(self), self._path.glob(pattern)))

        def rglob(self: P, pattern: str) -> AsyncIterator[P]:
            return _iterate.in_pool(_as_paths(type(self), self._path.rglob(pattern)))

    if sys.version_info >= (3, 12):

        async def walk(
            self: P,
            top_down: bool = True,
            on_error: Callable[[OSError], object] | None = None,
            follow_symlinks: bool = False,
        ) -> AsyncIterator[tuple[P, list[str], list[str]]]:
            steps = self._path.walk(top_down, on_error, follow_symlinks)
            # Top-down, the caller may prune dirnames before the walk goes on:
            # advance one directory per hop. Bottom-up nothing steers it.
            batch = 1 if top_down else _iterate.DEFAULT_BATCH
            walked = _iterate.batches(steps, batch)
            async with contextlib.aclosing(walked):
                async for some in walked:
                    for root, dirnames, filenames in some:
                        yield type(self)(root), dirnames, filenames


os.PathLike.register(Path)
