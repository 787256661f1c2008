"""The package's modules import one another one way: no cycle.

The graph is read from the source with ``ast``, not from ``sys.modules``,
so every import counts whether or not a test ran it: module level and
inside functions alike (an in-function import is a cycle that only waits
for its first call). Imports under ``if TYPE_CHECKING:`` are left out:
they never run, and annotations naming each other's types (a file object
and its opener) are no dependency at run time.

Importing ``aiofastread.a.b`` runs the package ``aiofastread.a`` first, so
such an import is also an edge to ``aiofastread.a`` (unless the importer is
inside that package already). The root package is the exception: every
import of the package starts there, so its own imports run first and in
order, and an edge to it from each module would only restate that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aiofastread

ROOT = "aiofastread"
PACKAGE_DIR = Path(aiofastread.__file__).parent


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their __init__)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Dotted names this module imports when it runs (absolute; for ``from
    X import y``, both X and X.y: y may be a submodule)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules importing it runs (see the docstring)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: set[str] = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            for end in range(2, len(parts) + 1):  # the target and its packages, not the root
                target = ".".join(parts[:end])
                inside = module == target or module.startswith(target + ".")
                if target in files and not inside:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            nxt = todo.pop(0)
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                stack.append((nxt, sorted(graph[nxt])))
                path.append(nxt)
                on_path.add(nxt)
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_module_level_in_function_and_package_imports() -> None:
    graph = import_graph()
    # A module-level import, and the package an import of a submodule runs.
    assert "aiofastread._policy" in graph["aiofastread._read"]
    assert {"aiofastread.threadpool", "aiofastread.threadpool._base"} <= graph[
        "aiofastread.tempfile.temptypes"
    ]
    source = (
        "def f():\n    from aiofastread import _pool\n"
        "if TYPE_CHECKING:\n    import aiofastread._read\n"
    )
    names = imported_names(ast.parse(source), "aiofastread.x", is_package=False)
    assert "aiofastread._pool" in names
    assert "aiofastread._read" not in names


def test_find_cycle_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
