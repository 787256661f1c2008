"""``aiofastread bench``: the command line of the benchmark."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from aiofastread.benchmark import engines, runner, streams, workload

if TYPE_CHECKING:
    from types import FrameType

# Defaults. The mix is the fio experiment: 16 KiB reads, f1 ~73%,
# f2 ~18%, f3 ~9%. With closed-loop tasks the shares of reads depend on the
# engine, so the defaults give the three workloads task counts in those
# proportions (16/4/2 of 22 tasks = 72.7/18.2/9.1%).
DEFAULT_SECONDS = 10.0  # x4 engines + ~1 s of setup each: about a minute
DEFAULT_READ_SIZE = "16K"
DEFAULT_TASKS = {"f1": 16, "f2": 4, "f3": 2}
# f1 "medium" and cached: 256 MiB is 16k blocks of 16 KiB for zipf to spread
# over, and small enough to stay cached on any laptop. f2 and f3 "large":
# 1 GiB each, more than a 10 s run reads of them on a local SSD at these
# queue depths, so f2 stays uncached and f3 does not wrap around into pages
# it read earlier. Slow-device image: ~2.7 GiB sparse.
DEFAULT_SIZES = {"f1": "256M", "f2": "1G", "f3": "1G"}
# fio's documentation uses zipf:1.2 as its example skew; fio's own default
# zipf theta is not defined (the parameter is required), so we take that.
DEFAULT_THETA = 1.2
# All-cold: evict every file every 50 ms, so what the reads bring into the
# page cache does not stay there (one fadvise per file per pass; tens of us).
DEFAULT_KEEP_COLD_MS = 50.0

# Width of the tables when stdout is not a terminal (logs, CI, docs).
REPORT_WIDTH = 120

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'16K', '256M', '1G', '1.5G', '4096' -> bytes (binary units; 'KiB' ok)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 16K, 256M, 1G)")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be > 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return value


def _engine_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in engines.ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown engine(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {','.join(engines.ENGINES)}"
        )
    return list(dict.fromkeys(names))


def _size_list(text: str) -> tuple[int, ...]:
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


def _cache_list(text: str) -> tuple[str, ...]:
    states = tuple(part.strip() for part in text.split(",") if part.strip())
    for state in states:
        if state not in streams.CACHES:
            raise argparse.ArgumentTypeError(f"cache state must be warm or cold, got {state!r}")
    return states


def build_parser(prog: str = "aiofastread bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Reproduce the RWF_NOWAIT experiment: a database-like mix of 16 KiB reads "
            "(f1 zipf over a cached file, f2 uniform over an uncached one, f3 sequential "
            "over an uncached one) run as asyncio tasks against several engines in turn."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--seconds",
        type=_positive_float,
        default=DEFAULT_SECONDS,
        help="measured time per engine (and per variant)",
    )
    g.add_argument(
        "--engines",
        type=_engine_list,
        default=None,
        help=f"comma-separated, from {','.join(engines.ENGINES)} "
        f"(default: {','.join(engines.ENGINE_NAMES)}; aiofiles only when installed)",
    )
    g.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop implementation"
    )
    g.add_argument(
        "--variant",
        choices=(*runner.VARIANTS, "both"),
        default="mixed",
        help="mixed: f1 warm, f2/f3 cold; all-cold: every file evicted and kept "
        "cold (what the per-file hit/miss gate buys)",
    )
    g.add_argument(
        "--all-cold",
        action="store_const",
        const="all-cold",
        dest="variant",
        help="short for --variant all-cold",
    )
    g.add_argument(
        "--workers",
        type=_positive_int,
        default=engines.default_workers(),
        help="threads in every engine's pool",
    )
    g.add_argument(
        "--slow-device",
        type=_positive_int,
        metavar="IOPS",
        default=None,
        help="root only: put the data set on a loop-mounted ext4 whose reads are "
        "throttled to IOPS (cgroup blkio/io.max), like a disk or network fs",
    )
    g.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="MS",
        help="sys.setswitchinterval for each engine's process, in ms (CPython's default: 5): "
        "how long a pool thread waits for the GIL held by a busy event loop",
    )
    d = p.add_argument_group("data set")
    d.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="directory for the data set, on a filesystem with RWF_NOWAIT "
        "(ext4, xfs, btrfs); default: the first of /var/tmp, ~/.cache, "
        "$TMPDIR, . that has it. With --slow-device: where the image goes",
    )
    for name, size in DEFAULT_SIZES.items():
        d.add_argument(
            f"--{name}-size",
            type=parse_size,
            default=parse_size(size),
            metavar="SIZE",
            help=f"size of {name}'s file ({size})",
        )
    d.add_argument(
        "--read-size",
        type=parse_size,
        default=parse_size(DEFAULT_READ_SIZE),
        metavar="SIZE",
        help="bytes per read (16K)",
    )
    for name, count in DEFAULT_TASKS.items():
        d.add_argument(
            f"--{name}-tasks",
            type=_count,
            default=count,
            metavar="N",
            help=f"concurrent tasks reading {name} ({workload.PATTERNS[name]}; 0 leaves it out)",
        )
    for name in DEFAULT_TASKS:
        d.add_argument(
            f"--{name}-rate",
            type=_non_negative_float,
            default=0.0,
            metavar="READS/S",
            help=f"pace {name} to this many reads/s (open loop, fio's rate); "
            "0: each task reads as fast as it can (closed loop)",
        )
    d.add_argument(
        "--zipf-theta",
        type=_positive_float,
        default=DEFAULT_THETA,
        help="skew of f1's zipf distribution",
    )
    d.add_argument("--seed", type=int, default=1, help="seed of every offset stream")
    d.add_argument(
        "--keep-cold-ms",
        type=_positive_float,
        default=DEFAULT_KEEP_COLD_MS,
        help="all-cold variant: evict every file this often",
    )
    d.add_argument(
        "--no-pin",
        action="store_true",
        help="do not lock f1 in memory (mmap+mlock) after warming it; where the machine "
        "reclaims idle page cache on its own, f1 then partly falls out of cache mid-run",
    )
    s = p.add_argument_group(
        "stream workload (--workload stream: tasks that read whole files to EOF, docs/streams.md)"
    )
    s.add_argument(
        "--workload",
        choices=("mix", "stream"),
        default="mix",
        help="mix: the f1/f2/f3 mix; stream: N tasks each stream a file of its own, "
        "warm and cold, per chunk size, engines aiofastread,nofast,aiofiles",
    )
    s.add_argument("--stream-tasks", type=_positive_int, default=streams.DEFAULT_TASKS, metavar="N")
    s.add_argument(
        "--stream-size",
        type=parse_size,
        default=streams.DEFAULT_FILE_SIZE,
        metavar="SIZE",
        help="each task's file",
    )
    s.add_argument(
        "--stream-chunks",
        type=_size_list,
        default=streams.DEFAULT_CHUNKS,
        metavar="SIZES",
        help="comma-separated read sizes, one cell each",
    )
    s.add_argument(
        "--stream-cache",
        type=_cache_list,
        default=streams.CACHES,
        metavar="STATES",
        help="comma-separated, from warm,cold",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write every number as JSON"
    )
    o.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help="draw latency CDFs per workload and engine as PNG (needs matplotlib)",
    )
    o.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the tables as markdown (what docs/benchmarks.md shows)",
    )
    o.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="run nothing: show (and --plot, --markdown) the report saved by an earlier --json",
    )
    o.add_argument(
        "--raw",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep every engine's raw files in DIR: per-read latencies, heartbeat ticks and "
        "the child's pid (bench/stall_trace.py reads them)",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> runner.BenchConfig:
    variants = list(runner.VARIANTS) if args.variant == "both" else [args.variant]
    return runner.BenchConfig(
        seconds=args.seconds,
        directory=args.dir,
        f1_size=args.f1_size,
        f2_size=args.f2_size,
        f3_size=args.f3_size,
        read_size=args.read_size,
        tasks={"f1": args.f1_tasks, "f2": args.f2_tasks, "f3": args.f3_tasks},
        rates={"f1": args.f1_rate, "f2": args.f2_rate, "f3": args.f3_rate},
        workers=args.workers,
        engines=args.engines or list(engines.ENGINE_NAMES),
        engines_explicit=args.engines is not None,
        loop=args.loop,
        variants=variants,
        theta=args.zipf_theta,
        seed=args.seed,
        keep_cold_interval=args.keep_cold_ms / 1000.0,
        pin=not args.no_pin,
        slow_device=args.slow_device,
        json_path=args.json,
        plot_path=args.plot,
        markdown_path=args.markdown,
        progress=not args.no_progress,
        raw_dir=args.raw,
        switch_interval=None if args.switch_interval is None else args.switch_interval / 1000.0,
    )


def stream_config(args: argparse.Namespace, cfg: runner.BenchConfig) -> streams.StreamConfig:
    known = streams.ENGINES + streams.OPTIONAL_ENGINES
    names = [n for n in cfg.engines if n in known] if cfg.engines_explicit else None
    return streams.StreamConfig(
        tasks=args.stream_tasks,
        file_size=args.stream_size,
        chunks=args.stream_chunks,
        caches=args.stream_cache,
        engines=tuple(names) if names else streams.ENGINES,
        workers=cfg.workers,
        loop=cfg.loop,
    )


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for name in DEFAULT_SIZES:
        if getattr(args, f"{name}_size") < args.read_size:
            parser.error(f"--{name}-size must be at least --read-size ({args.read_size} bytes)")
    if args.switch_interval is not None and not args.switch_interval > 0:
        parser.error("--switch-interval must be a positive number of milliseconds")
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            parser.error("--loop uvloop needs uvloop: pip install 'aiofastread[uvloop]'")


def _sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into the same unwinding as Ctrl-C: every finally block
    # (child processes, mount, loop device, cgroup) runs.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, prog: str = "aiofastread bench") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check(args, parser)
    cfg = config_from_args(args)
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:
        # Piped or captured: no terminal width to fit, do not fold the tables.
        out = Console(width=REPORT_WIDTH)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.workload == "stream":
            streams.run(stream_config(args, cfg), cfg, ["bench", *argv], out, err)
        elif args.from_json is not None:
            runner.show_saved(cfg, args.from_json, out, err)
        else:
            runner.run(cfg, ["bench", *argv], out, err)
    except runner.BenchError as exc:
        err.print(f"[bold red]aiofastread bench:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; everything set up was torn down[/]")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
