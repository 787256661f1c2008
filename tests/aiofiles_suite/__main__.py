"""``python -m tests.aiofiles_suite [pytest args]``: run aiofiles' suite on aiofastread."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.aiofiles_suite import command, environment, extract


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="aiofiles-suite-") as tmp:
        suite = extract(Path(tmp))
        return subprocess.run(command(suite, *argv), cwd=suite, env=environment()).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
