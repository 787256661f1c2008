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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "bench":
        from aiofastread.benchmark import cli

        return cli.main(rest)
    sys.stderr.write(f"aiofastread: unknown command {command!r}\n\n{USAGE}")
    return 2
