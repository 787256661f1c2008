"""aiofiles 25.1's own test suite passes against aiofastread (``aiofiles`` aliased).

Runs their suite in a subprocess (their pytest config, our alias plugin; on
asyncio and uvloop) once per read backend, and requires every test to pass
except the ones that cannot pass as root (tests.aiofiles_suite.ROOT_ONLY_FAILURES).
The sdist is fetched with pip on first use and cached; without network the
test skips, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest

from tests import aiofiles_suite

if TYPE_CHECKING:
    from pathlib import Path

# Their suite has 219 tests (most async, so doubled by uvloop): fewer means
# something went wrong in collection.
MIN_TESTS = 200


def results(report: Path) -> dict[str, tuple[str, str]]:
    """junit xml -> {node id: (outcome, one-line message)}."""
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/")
        node = f"{path}.py::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                message = (child.get("message") or "").partition("\n")[0][:200]
        out[node] = (outcome, message)
    return out


def test_aiofiles_suite(tmp_path: Path, backend: str) -> None:
    try:
        suite = aiofiles_suite.extract(tmp_path)
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot fetch the aiofiles {aiofiles_suite.VERSION} sdist: {exc}")
    report = tmp_path / "report.xml"
    run = subprocess.run(
        aiofiles_suite.command(suite, "-q", f"--junitxml={report}"),
        cwd=suite,
        env=aiofiles_suite.environment(backend),
        capture_output=True,
        text=True,
    )
    assert report.is_file(), f"their pytest produced no report:\n{run.stdout}\n{run.stderr}"
    got = results(report)
    assert len(got) >= MIN_TESTS, run.stdout
    allowed = dict(aiofiles_suite.KNOWN_BUGS)
    if os.geteuid() == 0:
        allowed |= aiofiles_suite.ROOT_ONLY_FAILURES
    failed = {
        node: message for node, (outcome, message) in got.items() if outcome in ("failed", "error")
    }
    unexpected = [
        f"  {node}: {message}"
        for node, message in sorted(failed.items())
        if re.sub(r"\[.*\]$", "", node) not in allowed
    ]
    # Strict, like xfail_strict: a known bug that passes must leave the list.
    fixed = [
        f"  {node}: passes now, remove it from KNOWN_BUGS"
        for node, (outcome, _) in sorted(got.items())
        if outcome == "passed" and re.sub(r"\[.*\]$", "", node) in aiofiles_suite.KNOWN_BUGS
    ]
    assert not unexpected + fixed, "\n".join(
        [f"aiofiles' suite on aiofastread ({backend}):", *unexpected, *fixed]
    )
