"""The ``aiofastread`` console command: ``aiofastread bench [options]``.

Kept apart from the library: importing aiofastread never imports rich,
argparse or the benchmark.
"""

from __future__ import annotations

import sys

USAGE = """usage: aiofastread <command> [options]

commands:
  bench    reproduce the RWF_NOWAIT experiment (aiofastread bench --help)
"""

# What the bench imports that the library does not depend on (the bench extra).
BENCH_EXTRA = "aiofastread[bench]"
BENCH_ONLY_MODULES = frozenset({"rich"})


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "bench":
        try:
            from aiofastread.benchmark import cli
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in BENCH_ONLY_MODULES:
                raise
            sys.stderr.write(
                f"aiofastread bench needs {missing}, which is not installed: "
                f"pip install '{BENCH_EXTRA}' (in a checkout: pip install -e '.[bench]')\n"
            )
            return 2
        return cli.main(rest)
    sys.stderr.write(f"aiofastread: unknown command {command!r}\n\n{USAGE}")
    return 2
