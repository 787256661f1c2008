"""aiofiles 25.1's own test suite, run against aiofastread.

Nothing of aiofiles is committed here: ``sdist()`` fetches the sdist with pip
(into ``~/.cache/aiofastread``, checked against a pinned sha256),
``extract()`` unpacks it, and ``command()`` runs its ``tests/`` with its own
pytest configuration plus our ``alias`` plugin, which makes every
``import aiofiles...`` import aiofastread. ``python -m tests.aiofiles_suite``
runs it by hand; tests/test_aiofiles_suite.py runs it in CI.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "25.1.0"
SDIST_NAME = f"aiofiles-{VERSION}.tar.gz"
# PyPI's digest of aiofiles-25.1.0.tar.gz.
SDIST_SHA256 = "a8d728f0a29de45dc521f18f07297428d56992a742f0cd2701ba86e44d23d5b2"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiofastread"

# Tests that cannot pass when run as root, with the reason.
ROOT_ONLY_FAILURES: dict[str, str] = {
    "tests/test_os.py::test_access": (
        "chmods a file and directory to 0 and expects access(R_OK/W_OK/X_OK) to be "
        "False; root has CAP_DAC_OVERRIDE, so access() is True (aiofiles itself fails "
        "it as root)"
    ),
}

# aiofastread bugs that fail one of their tests: reported, tolerated until
# fixed, and required to fail while listed (like xfail_strict).
KNOWN_BUGS: dict[str, str] = {}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sdist() -> Path:
    """The aiofiles sdist, from the cache or downloaded (raises on failure)."""
    cached = CACHE_DIR / SDIST_NAME
    if cached.is_file() and _sha256(cached) == SDIST_SHA256:
        return cached
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        subprocess.run(
            # --no-binary aiofiles, not :all: (which would build hatchling
            # from source too, for the sdist's metadata: minutes, not seconds).
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                "aiofiles",
                "--no-deps",
                f"aiofiles=={VERSION}",
                "-d",
                tmp,
            ],
            check=True,
        )
        got = Path(tmp) / SDIST_NAME
        digest = _sha256(got)
        if digest != SDIST_SHA256:
            raise RuntimeError(f"{SDIST_NAME}: sha256 {digest}, expected {SDIST_SHA256}")
        got.replace(cached)  # same filesystem: atomic
    return cached


def extract(dest: Path) -> Path:
    """Unpack the sdist under ``dest``; returns the aiofiles-x.y.z directory."""
    with tarfile.open(sdist()) as tar:
        tar.extractall(dest, filter="data")
    return dest / f"aiofiles-{VERSION}"


def command(suite: Path, *pytest_args: str) -> list[str]:
    """pytest on their tests, with their config and our alias plugin."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "-c",
        str(suite / "pyproject.toml"),
        "--rootdir",
        str(suite),
        "-p",
        "tests.aiofiles_suite.alias",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]


def environment(backend: str | None = None) -> dict[str, str]:
    """Our repo importable (for the plugin); optionally a forced read backend."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    if backend is not None:
        env["AIOFASTREAD_BACKEND"] = backend
    return env
