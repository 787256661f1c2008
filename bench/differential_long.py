"""The long differential run (not in CI): 10^5 random sequences against CPython io.

    python bench/differential_long.py [--sequences 100000] [--jobs 2]

Runs tests/test_differential.py::test_differential with the "long" hypothesis
profile (random, no database), each of its parametrizations (mode x event
loop x read backend) in its own pytest process, ``--jobs`` at a time, with
an equal share of the sequences. Prints per-parametrization results
(sequences run, time; a failure is in its log) and exits non-zero if any
failed. Logs go to ``--logs`` (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/test_differential.py::test_differential"


def parametrizations() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", TEST],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.startswith(TEST)]


def log_name(node: str) -> str:
    """A file name per parametrization ("a" and "a+" must not collide)."""
    return re.sub(r"\W+", "_", node.replace("+", "plus"))


def run_one(node: str, examples: int, log: Path) -> tuple[str, bool, int, float]:
    counts = log.with_suffix(".count")
    env = dict(
        os.environ,
        AIOFASTREAD_HYPOTHESIS_PROFILE="long",
        AIOFASTREAD_HYPOTHESIS_EXAMPLES=str(examples),
        AIOFASTREAD_DIFF_COUNT_FILE=str(counts),
    )
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    # Sequences the state machine ran (a failing test also counts its
    # shrinking runs).
    ran = (
        sum(int(line.split()[-1]) for line in counts.read_text().splitlines())
        if (counts.exists())
        else 0
    )
    return node, code == 0, ran, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--logs", type=Path, default=None)
    args = parser.parse_args()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="differential-long-"))
    logs.mkdir(parents=True, exist_ok=True)
    nodes = parametrizations()
    each = math.ceil(args.sequences / len(nodes))
    print(f"{len(nodes)} parametrizations x {each} sequences; logs in {logs}", flush=True)
    failed = 0
    total = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_one, node, each, logs / f"{log_name(node)}.log") for node in nodes
        ]
        for future in concurrent.futures.as_completed(futures):
            node, ok, ran, seconds = future.result()
            total += ran
            failed += not ok
            print(
                f"{'PASS' if ok else 'FAIL'} {node}: {ran} sequences, {seconds:.0f} s", flush=True
            )
    print(f"total: {total} sequences, {failed} parametrization(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
