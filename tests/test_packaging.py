"""What installing and importing aiofastread pulls in (issue 13: a library's dependencies).

The release script (scripts/release.sh) checks the same on the built wheel in a
fresh venv; these tests keep the source tree honest between releases.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Imported by the bench, the adapters or their tests, never by `import aiofastread`.
HEAVY = ("rich", "matplotlib", "aiohttp", "starlette", "fastapi", "sanic", "uvicorn", "anyio")
# What `pip install aiofastread` (no extras) installs; a new hard dependency is a decision.
HARD_DEPENDENCIES = {"cffi", "greenlet"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    # From outside the source tree: the installed package, as a user has it.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60
    )


def test_import_loads_no_bench_or_framework_module() -> None:
    proc = _run(
        "import aiofastread, sys; "
        f"print(' '.join(m for m in {HEAVY!r} if any("
        "n == m or n.startswith(m + '.') for n in sys.modules)))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_the_check_sees_a_heavy_import() -> None:
    """The test above can fail: the same probe after importing the bench finds rich."""
    proc = _run("import aiofastread.benchmark.report, sys; print('rich' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def _project() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]
    return project


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower()


def test_plain_install_needs_only_the_hard_dependencies() -> None:
    assert {_name(r) for r in _project()["dependencies"]} == HARD_DEPENDENCIES


def test_bench_extra_brings_rich() -> None:
    extras = _project()["optional-dependencies"]
    assert "rich" in {_name(r) for r in extras["bench"]}
    assert {"aiohttp", "starlette", "sanic"} <= set(extras)


def test_bench_without_rich_says_what_to_install() -> None:
    proc = _run(
        "import sys; sys.modules['rich'] = None; "  # import rich -> ModuleNotFoundError
        "from aiofastread._cli import main; sys.exit(main(['bench', '--help']))"
    )
    assert proc.returncode == 2
    assert "needs rich" in proc.stderr
    assert "pip install 'aiofastread[bench]'" in proc.stderr
    assert "Traceback" not in proc.stderr
