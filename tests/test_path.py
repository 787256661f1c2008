"""aiofastread.Path: anyio's Path surface, pathlib's answers, our pool."""

from __future__ import annotations

import inspect
import os
import pathlib
import sys
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from blockbuster import BlockingError

import aiofastread
from aiofastread import Path, _path, _pool
from aiofastread._file import AsyncBufferedReader
from tests.conftest import open_fd_count, until
from tests.trees import cancel_while_iterating, every_path, make_big_dir, make_tree

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# anyio's members we do not copy, and why.
NOT_FROM_ANYIO = {
    "limiter": "anyio's CapacityLimiter; our pool is set with aiofastread.configure",
}
# pathlib.Path's members anyio leaves out, and so do we.
NOT_FROM_PATHLIB = {"link_to"}  # deprecated in 3.10, gone in 3.12


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _kind(cls: type, name: str) -> str:
    """How a member is called: property, (class) coroutine, async generator, plain."""
    member = inspect.getattr_static(cls, name)
    prefix = ""
    if isinstance(member, classmethod):
        prefix, member = "classmethod ", member.__func__
    if isinstance(member, property):
        return "property"
    if inspect.iscoroutinefunction(member):
        return prefix + "coroutine"
    if inspect.isasyncgenfunction(member):
        return prefix + "async generator"
    if inspect.isfunction(member):
        return prefix + "function"
    return prefix + type(member).__name__


def _parameters(cls: type, name: str) -> list[tuple[str, Any, Any]]:
    params = inspect.signature(getattr(cls, name)).parameters.values()
    return [(p.name, p.kind, p.default) for p in params if p.name not in ("self", "limiter")]


def _submissions() -> int:
    return _pool.default_pool().statistics().submissions


def _in_flight() -> int:
    return _pool.default_pool().statistics().in_flight


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    return make_tree(tmp_path / "tree")


# -- the surface: anyio's, member by member ---------------------------------------


def test_every_public_member_of_anyio_path_is_ours_and_called_the_same_way() -> None:
    theirs = _public(anyio.Path) - set(NOT_FROM_ANYIO)
    assert theirs - _public(Path) == set()
    assert _public(Path) - theirs == set()
    for name in sorted(theirs):
        assert _kind(Path, name) == _kind(anyio.Path, name), name
        if _kind(Path, name) != "property" and callable(getattr(Path, name)):
            assert _parameters(Path, name) == _parameters(anyio.Path, name), name


def test_dunders_of_anyio_path_are_ours() -> None:
    theirs = {n for n in vars(anyio.Path) if n.startswith("__") and n not in ("__slots__",)}
    theirs -= {
        "__module__",
        "__doc__",
        "__annotations__",
        "__firstlineno__",
        "__static_attributes__",
    }
    assert theirs - set(vars(Path)) == set()


def test_pathlib_members_are_all_here_but_the_deprecated_one() -> None:
    assert _public(pathlib.Path) - _public(Path) == NOT_FROM_PATHLIB & _public(pathlib.Path)


def test_version_dependent_members_follow_pathlib() -> None:
    for name in ("walk", "is_junction", "full_match", "from_uri", "parser", "copy", "info"):
        assert hasattr(Path, name) == hasattr(pathlib.Path, name), name
    assert (sys.version_info >= (3, 12)) == hasattr(Path, "walk")


@pytest.mark.asyncio
async def test_listings_are_async_iterators(tree: pathlib.Path) -> None:
    path = Path(tree)
    for listing in (path.iterdir(), path.glob("*"), path.rglob("*")):
        assert isinstance(listing, AsyncIterator)
        assert not inspect.isawaitable(listing)
        await listing.aclose()  # type: ignore[attr-defined]


# -- pure parts: exactly PurePath ----------------------------------------------------

PURE_PATHS = [
    "",
    ".",
    "/",
    "a",
    "a/b.tar.gz",
    "/abs/dir/",
    "./rel/../x.py",
    "//double",
    "\u00fcn\u00efc\u00f8d\u00e9/\u65e5\u672c.txt",
    ".hidden",
]

PURE_QUERIES: dict[str, Callable[[Any], object]] = {
    "str": str,
    "fspath": os.fspath,
    "bytes": bytes,
    "hash": hash,
    "parts": lambda p: p.parts,
    "drive": lambda p: p.drive,
    "root": lambda p: p.root,
    "anchor": lambda p: p.anchor,
    "name": lambda p: p.name,
    "suffix": lambda p: p.suffix,
    "suffixes": lambda p: p.suffixes,
    "stem": lambda p: p.stem,
    "parent": lambda p: str(p.parent),
    "parents": lambda p: [str(q) for q in p.parents],
    "as_posix": lambda p: p.as_posix(),
    "is_absolute": lambda p: p.is_absolute(),
    "is_reserved": lambda p: p.is_reserved(),
    "div": lambda p: str(p / "child"),
    "rdiv": lambda p: str("base" / p),
    "joinpath": lambda p: str(p.joinpath("x", "y")),
    "with_name": lambda p: str(p.with_name("new")),
    "with_suffix": lambda p: str(p.with_suffix(".new")),
    "with_suffix_bad": lambda p: str(p.with_suffix("bad")),
    "with_stem": lambda p: str(p.with_stem("st")),
    "relative_to": lambda p: str(p.relative_to("a")),
    "is_relative_to": lambda p: p.is_relative_to("a"),
    "match": lambda p: p.match("*.gz"),
    "as_uri": lambda p: p.as_uri(),
    "eq": lambda p: p == pathlib.PurePosixPath("a"),
    "eq_str": lambda p: p == "a",
    "lt": lambda p: p < pathlib.Path("m"),
    "ge": lambda p: p >= pathlib.Path("m"),
}


def _outcome(call: Callable[[], object]) -> tuple[object, ...]:
    try:
        return ("value", call())
    except Exception as exc:
        return ("raised", type(exc), str(exc))


@pytest.mark.parametrize("text", PURE_PATHS)
def test_pure_parts_answer_as_pathlib(text: str) -> None:
    for name, query in PURE_QUERIES.items():
        ours = _outcome(lambda: query(Path(text)))  # noqa: B023
        theirs = _outcome(lambda: query(pathlib.Path(text)))  # noqa: B023
        assert ours == theirs, name


def test_pure_results_are_ours_and_compare_with_pathlib() -> None:
    path = Path("/a/b.txt")
    for derived in (
        path / "c",
        "x" / Path("y"),
        path.parent,
        path.parents[0],
        path.with_suffix(".py"),
        path.with_name("n"),
        path.with_stem("s"),
        path.relative_to("/a"),
        path.joinpath("z"),
        path.with_segments("q", "r"),
    ):
        assert type(derived) is Path
    assert path == pathlib.Path("/a/b.txt") == Path("/a/b.txt")
    assert {path: 1}[pathlib.Path("/a/b.txt")] == 1
    assert sorted([Path("b"), Path("a")]) == [Path("a"), Path("b")]
    assert isinstance(path, os.PathLike)
    assert pathlib.Path(path) == pathlib.Path("/a/b.txt")
    assert Path(path, "c") == pathlib.Path("/a/b.txt/c")
    assert repr(path) == "Path('/a/b.txt')"


def test_with_stem_keeps_3_13s_rule_on_every_version() -> None:
    """As anyio: an empty stem with a suffix is refused (3.13 pathlib), not '.txt'."""
    with pytest.raises(ValueError, match="non-empty suffix"):
        Path("a/b.txt").with_stem("")
    assert Path("a/b").with_stem("c") == pathlib.Path("a/c")


# -- queries: pathlib's answers, from our pool ----------------------------------------

QUERIES = (
    "exists",
    "is_dir",
    "is_file",
    "is_symlink",
    "is_mount",
    "is_fifo",
    "is_socket",
    "is_block_device",
    "is_char_device",
    "stat",
    "lstat",
    "owner",
    "group",
    "absolute",
    "expanduser",
)


async def _async_outcome(call: Callable[[], Awaitable[object]]) -> tuple[object, ...]:
    try:
        return ("value", _comparable(await call()))
    except Exception as exc:
        return ("raised", type(exc), getattr(exc, "errno", None), str(exc))


def _sync_outcome(call: Callable[[], object]) -> tuple[object, ...]:
    try:
        return ("value", _comparable(call()))
    except Exception as exc:
        return ("raised", type(exc), getattr(exc, "errno", None), str(exc))


def _normalize(value: object, root: pathlib.Path) -> object:
    """``value`` with ``root`` spelt "<root>" (errors and results name paths)."""
    if isinstance(value, str):
        return value.replace(str(root), "<root>")
    if isinstance(value, tuple):
        return tuple(_normalize(item, root) for item in value)
    return value


def _comparable(value: object) -> object:
    if isinstance(value, (Path, pathlib.PurePath)):
        return ("path", str(value))
    if isinstance(value, os.stat_result):  # atime moves as the test reads
        return (value.st_mode, value.st_ino, value.st_dev, value.st_nlink, value.st_size)
    return value


@pytest.mark.asyncio
async def test_queries_answer_as_pathlib_on_every_kind_of_entry(tree: pathlib.Path) -> None:
    paths = every_path(tree)
    before = _submissions()
    for plain in paths:
        ours = Path(plain)
        for name in QUERIES:
            got = await _async_outcome(getattr(ours, name))
            expected = _sync_outcome(getattr(plain, name))
            assert got == expected, (plain, name)
        for strict in (False, True):
            got = await _async_outcome(lambda: ours.resolve(strict))  # noqa: B023
            expected = _sync_outcome(lambda: plain.resolve(strict))  # noqa: B023
            assert got == expected, (plain, "resolve", strict)
        got = await _async_outcome(ours.readlink)
        assert got == _sync_outcome(plain.readlink), (plain, "readlink")
        for other in (tree / "file.txt", tree / "link_to_file", tree / "missing"):
            got = await _async_outcome(lambda: ours.samefile(other))  # noqa: B023
            assert got == _sync_outcome(lambda: plain.samefile(other)), (plain, other)  # noqa: B023
    per_path = len(QUERIES) + 2 + 1 + 3
    assert _submissions() - before == len(paths) * per_path  # one hop per call


@pytest.mark.asyncio
async def test_classmethods_cwd_and_home(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cwd, home = await Path.cwd(), await Path.home()
    assert type(cwd) is Path
    assert cwd == pathlib.Path.cwd() == tmp_path
    assert home == pathlib.Path.home() == tmp_path / "home"
    assert await Path("~/x").expanduser() == tmp_path / "home" / "x"
    assert await Path("rel").absolute() == tmp_path / "rel"


# -- listings: pathlib's results, a batch per hop --------------------------------------

GLOB_PATTERNS = ["*", "*.txt", "**/*", "**", "*/", "sub/*", "**/*.txt", "\u65e5*/*", "nope*"]


async def _collect(listing: AsyncIterator[Path]) -> list[Path]:
    found = [path async for path in listing]
    assert all(type(path) is Path for path in found)
    return sorted(found)


@pytest.mark.asyncio
async def test_iterdir_glob_rglob_find_what_pathlib_finds(tree: pathlib.Path) -> None:
    path = Path(tree)
    assert await _collect(path.iterdir()) == sorted(tree.iterdir())
    assert await _collect(Path(tree / "sub").iterdir()) == sorted((tree / "sub").iterdir())
    for pattern in GLOB_PATTERNS:
        assert await _collect(path.glob(pattern)) == sorted(tree.glob(pattern)), pattern
        assert await _collect(path.rglob(pattern)) == sorted(tree.rglob(pattern)), pattern


@pytest.mark.asyncio
async def test_iterdir_relative_and_current_directory(
    tree: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    assert await _collect(Path().iterdir()) == sorted(pathlib.Path().iterdir())
    assert await _collect(Path("sub").iterdir()) == sorted(pathlib.Path("sub").iterdir())
    assert await _collect(Path().glob("*")) == sorted(pathlib.Path().glob("*"))


@pytest.mark.asyncio
async def test_listing_errors_are_pathlibs(tree: pathlib.Path) -> None:
    for target in (tree / "missing", tree / "file.txt", tree / "broken"):
        with pytest.raises(OSError) as ours:
            await _collect(Path(target).iterdir())
        with pytest.raises(OSError) as theirs:
            list(target.iterdir())
        assert type(ours.value) is type(theirs.value)
        assert ours.value.errno == theirs.value.errno
    for bad in ("", "/abs"):
        with pytest.raises((ValueError, NotImplementedError)) as ours_bad:
            await _collect(Path(tree).glob(bad))
        with pytest.raises((ValueError, NotImplementedError)) as theirs_bad:
            list(tree.glob(bad))
        assert type(ours_bad.value) is type(theirs_bad.value)
        assert str(ours_bad.value) == str(theirs_bad.value)


@pytest.mark.asyncio
async def test_iterdir_is_two_hops_not_one_per_entry(tmp_path: pathlib.Path) -> None:
    for number in range(100):
        (tmp_path / f"f{number}").write_bytes(b"")
    before = _submissions()
    assert len(await _collect(Path(tmp_path).iterdir())) == 100
    assert _submissions() - before == 2  # one starts the listing, one reads all 100


@pytest.fixture
def big_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return make_big_dir(tmp_path)


@pytest.mark.asyncio
async def test_iterdir_left_or_cancelled_leaks_nothing(
    big_dir: pathlib.Path, fd_leak_check: None
) -> None:
    before = open_fd_count()
    async for _ in Path(big_dir).iterdir():
        break
    await until(lambda: _in_flight() == 0 and open_fd_count() == before, "the close")

    await cancel_while_iterating(lambda: Path(big_dir).rglob("*"))
    await cancel_while_iterating(lambda: Path(big_dir).iterdir())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Path.walk is new in 3.12 (as anyio)")
@pytest.mark.asyncio
async def test_walk_matches_pathlib(tree: pathlib.Path) -> None:  # pragma: no cover - 3.12+
    for top_down in (True, False):
        for follow in (False, True):
            ours = [
                (str(root), dirs, files)
                async for root, dirs, files in Path(tree).walk(top_down, None, follow)  # type: ignore[attr-defined]
            ]
            theirs = [
                (str(root), dirs, files)
                for root, dirs, files in tree.walk(top_down, None, follow)  # type: ignore[attr-defined]
            ]
            assert ours == theirs
    visited = []
    async for root, dirs, _ in Path(tree).walk():  # type: ignore[attr-defined]
        visited.append(root)
        if "sub" in dirs:
            dirs.remove("sub")
    assert Path(tree / "sub") not in visited


# -- changes: the same effects and errors as pathlib -----------------------------------


def _snapshot(root: pathlib.Path) -> dict[str, object]:
    """Every entry under root: kind, link target or content, permission bits."""
    found: dict[str, object] = {}
    for top, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = pathlib.Path(top, name)
            mode = path.lstat().st_mode & 0o7777
            if path.is_symlink():
                found[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif path.is_dir():
                found[str(path.relative_to(root))] = ("dir", mode)
            else:
                found[str(path.relative_to(root))] = ("file", mode, path.read_bytes())
    return found


def _changes(
    root: Any,
) -> list[tuple[str, Callable[[], object]]]:
    """The same sequence of calls, for a pathlib tree or for ours."""
    return [
        ("mkdir", lambda: (root / "made").mkdir()),
        ("mkdir again", lambda: (root / "made").mkdir()),
        ("mkdir exist_ok", lambda: (root / "made").mkdir(exist_ok=True)),
        ("mkdir parents", lambda: (root / "p/q/r").mkdir(0o750, parents=True)),
        ("mkdir no parent", lambda: (root / "x/y").mkdir()),
        ("touch", lambda: (root / "touched").touch()),
        ("touch exclusive", lambda: (root / "touched").touch(exist_ok=False)),
        ("write_bytes", lambda: (root / "w.bin").write_bytes(b"\x00\x01")),
        ("write_bytes str", lambda: (root / "w.bin").write_bytes("text")),
        ("write_text", lambda: (root / "w.txt").write_text("a\nb\u00e9\n", "utf-8")),
        ("write_text newline", lambda: (root / "n.txt").write_text("a\nb\n", newline="\r\n")),
        ("write_text bytes", lambda: (root / "w.txt").write_text(b"x")),
        ("write_text strict", lambda: (root / "w.txt").write_text("\u00e9", "ascii")),
        ("write_text replace", lambda: (root / "r.txt").write_text("\u00e9", "ascii", "replace")),
        ("write into dir", lambda: (root / "sub").write_bytes(b"")),
        ("read_bytes", lambda: (root / "w.bin").read_bytes()),
        ("read_text", lambda: (root / "w.txt").read_text("utf-8")),
        ("read_text bad", lambda: (root / "sub/inner.bin").read_text("ascii")),
        ("read_text replace", lambda: (root / "sub/inner.bin").read_text("ascii", "replace")),
        ("read missing", lambda: (root / "missing").read_bytes()),
        ("read dir", lambda: (root / "sub").read_text()),
        ("chmod", lambda: (root / "w.bin").chmod(0o640)),
        ("chmod missing", lambda: (root / "missing").chmod(0o640)),
        ("symlink_to", lambda: (root / "new_link").symlink_to("w.bin")),
        ("symlink_to dir", lambda: (root / "dir_link").symlink_to("sub", True)),
        ("symlink_to exists", lambda: (root / "new_link").symlink_to("w.bin")),
        ("hardlink_to", lambda: (root / "hard").hardlink_to(root / "w.txt")),
        ("hardlink_to missing", lambda: (root / "hard2").hardlink_to(root / "missing")),
        ("rename", lambda: (root / "touched").rename(root / "renamed")),
        ("rename missing", lambda: (root / "missing").rename(root / "elsewhere")),
        ("replace", lambda: (root / "renamed").replace(root / "w.bin")),
        ("replace onto dir", lambda: (root / "w.txt").replace(root / "sub")),
        ("unlink", lambda: (root / "hard").unlink()),
        ("unlink missing", lambda: (root / "hard").unlink()),
        ("unlink missing_ok", lambda: (root / "hard").unlink(missing_ok=True)),
        ("unlink dir", lambda: (root / "sub").unlink()),
        ("rmdir", lambda: (root / "made").rmdir()),
        ("rmdir not empty", lambda: (root / "sub").rmdir()),
        ("rmdir file", lambda: (root / "w.txt").rmdir()),
        ("broken link", lambda: (root / "broken").read_bytes()),
    ]


@pytest.mark.asyncio
async def test_changes_have_pathlibs_effects_and_errors(tmp_path: pathlib.Path) -> None:
    theirs_root = make_tree(tmp_path / "theirs")
    ours_root = make_tree(tmp_path / "ours")
    theirs_calls = _changes(theirs_root)
    ours_calls = _changes(Path(ours_root))
    for (name, theirs), (_, ours) in zip(theirs_calls, ours_calls, strict=True):
        expected = _normalize(_sync_outcome(theirs), theirs_root)
        got = _normalize(await _async_outcome(ours), ours_root)  # type: ignore[arg-type]
        assert got == expected, name
    assert _snapshot(ours_root) == _snapshot(theirs_root)


# -- open: our file objects ------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_gives_our_file_objects(tree: pathlib.Path, fd_leak_check: None) -> None:
    path = Path(tree / "file.txt")
    binary = await path.open("rb")
    try:
        assert type(binary) is AsyncBufferedReader
        assert await binary.read() == b"hello\n"
    finally:
        await binary.close()
    async with aiofastread.open(path) as via_top_level:
        assert await via_top_level.read() == "hello\n"
    text = await path.open(encoding="utf-8")
    try:
        assert type(text) is type(via_top_level)
        assert await text.read() == "hello\n"
    finally:
        await text.close()
    written = await Path(tree / "new").open("w", encoding="utf-8", newline="\r\n")
    try:
        await written.write("a\nb")
    finally:
        await written.close()
    assert (tree / "new").read_bytes() == b"a\r\nb"
    with pytest.raises(FileNotFoundError):
        await Path(tree / "missing").open()
    with pytest.raises(ValueError, match="invalid mode"):
        await path.open("rz")


@pytest.mark.asyncio
async def test_filesystem_calls_run_on_our_threads(tree: pathlib.Path) -> None:
    """Seen from inside: the owner lookup runs on an aiofastread pool thread."""
    threads: list[str] = []
    original = pathlib.Path.owner

    def spy(self: pathlib.Path, **kwargs: Any) -> str:
        threads.append(threading.current_thread().name)
        return original(self, **kwargs)

    pathlib.Path.owner = spy  # type: ignore[method-assign]
    try:
        await Path(tree).owner()
    finally:
        pathlib.Path.owner = original  # type: ignore[method-assign]
    assert len(threads) == 1
    assert threads[0].startswith("aiofastread")


class _Sub(Path):
    __slots__ = ()


class _SubWithInit(Path):
    __slots__ = ("seen",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen = True


@pytest.mark.asyncio
async def test_subclasses_get_their_own_type_back(tree: pathlib.Path) -> None:
    for cls in (_Sub, _SubWithInit):
        root = cls(tree)
        found = [p async for p in root.iterdir()] + [p async for p in root.rglob("*.txt")]
        assert found
        assert all(type(p) is cls for p in found)
        assert type(root / "x") is cls
        assert type(await root.resolve()) is cls
    assert all(p.seen for p in [p async for p in _SubWithInit(tree).iterdir()])


@pytest.mark.asyncio
async def test_the_guard_would_catch_a_filesystem_call_made_on_the_loop(
    tree: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps every test above honest: were a call run inline, blockbuster raises."""

    async def inline(fn: Callable[..., object], *args: object, **kwargs: object) -> object:
        return fn(*args)

    monkeypatch.setattr(_path, "run_blocking", inline)
    # Calls that reach os.* when made (3.10's pathlib bound os.stat & co into
    # its accessor at import, out of blockbuster's reach).
    with pytest.raises(BlockingError):
        await Path(tree).stat()
    with pytest.raises(BlockingError):
        await Path(tree / "link_to_file").readlink()
