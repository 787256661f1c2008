"""``aiofastread bench``: the RWF_NOWAIT experiment, runnable by anyone.

Modules, one job each:

``fsprobe``   find a directory whose filesystem supports RWF_NOWAIT
``dataset``   build the files, warm f1, evict f2/f3, measure residency
``slowdev``   root: a throttled loop-mounted ext4 (set up, verified, torn down)
``engines``   aiofastread, its pool-only baseline, run_in_executor, aiofiles
``workload``  the f1/f2/f3 tasks and the heartbeat that measures loop stalls
``child``     one engine's run in a fresh process
``stats``     percentiles, shares, CDF points
``report``    the JSON report and the rich tables
``plot``      latency CDFs (matplotlib)
``runner``    the order of all of the above
``cli``       the argparse front end
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``aiofastread bench`` with ``argv`` (the arguments after ``bench``)."""
    from aiofastread.benchmark import cli

    return cli.main(argv)
