"""What makes a 16 KiB copy 3-5x slower on this VM: 4 KiB aliasing, not alignment.

On the AMD EPYC (Zen 3, FSRM) VM this project is measured on, ``rep movsb``
runs 3-5x slower when the destination lies 1..31 bytes *after* the source
modulo 4096. Both copies of a cached read use ``rep movsb``:

* the kernel's ``copy_to_user`` (page cache -> the buffer given to
  ``preadv2``), measured here through the cffi module:
  ``lib.afr_pread_flags(fd, ptr, n, off, RWF_NOWAIT)`` into an anonymous
  mmap at ``page + offset``;
* glibc's ``memcpy``/``memmove`` (what ``ffi.unpack`` and ``bytes(...)``
  use) from 2112 bytes up (``x86_rep_movsb_threshold``), measured with
  ``ctypes.memmove``.

Section 1 is the measurement first reported ("a destination 8 or 16 bytes
past a 32-byte boundary is slow"): destination offsets 0/8/16/32/48/64 from
a page boundary, source page-aligned. Section 2 shows what it really is: with
the source anywhere in its page, only the distance (dst - src) mod 4096
matters; 16 mod 64 is fast when it is not 1..31 bytes after the source.
Section 3 shows where malloc puts the bytes objects that os.pread and
aiofastread return, and whether their copies fall in that window.

Section 1 is repeated in a child started with ``GLIBC_TUNABLES=
glibc.cpu.x86_rep_movsb_threshold=...`` above every size: glibc then uses
its vector loop instead of ``rep movsb``, and the userland penalty goes
away. The kernel's copy does not change (the tunable is userland only and
is read once at process start, so a library cannot set it for itself).

Run:  python bench/alignment.py [--json out.json]   (~10 s)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Sequence

try:
    from aiofastread import _native, _native_cffi  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the bench needs the built module
    sys.exit("bench/alignment.py needs aiofastread's cffi module: pip install -e .")

FFI, LIB = _native_cffi.ffi, _native_cffi.lib
RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 8)

KIB = 1 << 10
MIB = 1 << 20
PAGE = 4096
# The data file: 16 MiB of random bytes. Copies read from random pages of it
# so that a source is not always the same (L2-hot) page.
FILE_SIZE = 16 * MIB
# Section 1: the offsets first reported; sizes around the ones that matter.
DEFAULT_OFFSETS = (0, 8, 16, 32, 48, 64)
DEFAULT_SIZES = (4 * KIB, 16 * KIB, 64 * KIB, MIB)
# Section 2: 16 KiB copies at these distances (dst - src) mod 4096, for
# sources at these offsets within their page. 80 and 2064 are 16 mod 64.
DISTANCE_SIZE = 16 * KIB
DISTANCES = (0, 1, 8, 16, 24, 31, 32, 48, 64, 80, 2064, 4064, 4088)
SOURCE_OFFSETS = (0, 40, 2072)
# The window measured: destination 1..31 bytes after the source, mod 4096.
ALIAS_WINDOW = range(1, 32)
# Far above any size measured: glibc then never takes its rep movsb path.
TUNABLE = "glibc.cpu.x86_rep_movsb_threshold=0x100000000"
# CPython's bytes object: this many header bytes, then the data.
BYTES_HEADER = sys.getsizeof(b"") - 1
# Section 3: fresh processes sampled, and reads per producer in each.
CHILD_PROCESSES = 6
PLACEMENT_READS = 200
# Shown in red: a median more than this many times the fastest in its row.
SLOW_FACTOR = 1.5

Cell = tuple[int, int, int]  # (size, destination page offset, source page offset)
Stats = dict[Cell, tuple[int, int]]  # -> (median ns, p99 ns)


def percentile(sorted_ns: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile: an observed sample, never interpolated."""
    if not sorted_ns:
        return 0
    rank = max(1, -(-len(sorted_ns) * pct // 100))
    return int(sorted_ns[int(rank) - 1])


def parse_size(text: str) -> int:
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = {"k": KIB, "m": MIB}.get(text[-1:], 1)
    return int(text[:-1] if scale != 1 else text) * scale


def human(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def address_of(buf: mmap.mmap | bytearray | memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


# -- the data file ---------------------------------------------------------------


def make_file(directory: str) -> tuple[str, int]:
    """A cached file of random bytes on a filesystem that serves RWF_NOWAIT."""
    fd_out, path = tempfile.mkstemp(prefix="afr-align-", suffix=".dat", dir=directory)
    with os.fdopen(fd_out, "wb") as out:
        out.write(random.Random(1).randbytes(FILE_SIZE))
    fd = os.open(path, os.O_RDONLY)
    warm(fd)
    rc = LIB.afr_pread_flags(fd, FFI.new("char[]", PAGE), PAGE, 0, RWF_NOWAIT)
    if rc < 0:
        os.close(fd)
        os.unlink(path)
        sys.exit(
            f"{directory}: preadv2(RWF_NOWAIT) fails ({os.strerror(-rc)}); pass --dir on "
            "ext4/xfs/btrfs (tmpfs, overlayfs and FUSE have no NOWAIT path)"
        )
    return path, fd


def warm(fd: int) -> None:
    """Read the whole file: this VM evicts idle page cache after ~20 s."""
    chunk = bytearray(MIB)
    offset = 0
    while n := os.preadv(fd, [chunk], offset):
        offset += n


# -- sections 1 and 2: the copies ------------------------------------------------------


def measure(
    cells: Sequence[Cell], *, fd: int, rounds: int, batch: int
) -> dict[str, dict[Cell, list[int]]]:
    """Nanoseconds per copy, kernel and userland, for every cell.

    Cells run in rounds of ``batch`` copies each, in a new random order every
    round, so that drift on this shared VM spreads over all of them.
    """
    largest = max(size for size, _, _ in cells) + 2 * PAGE
    dst = mmap.mmap(-1, largest)  # page-aligned, so base + offset is exact
    src = mmap.mmap(-1, FILE_SIZE + largest)
    src.write(random.Random(2).randbytes(FILE_SIZE))
    dst.write(bytes(largest))  # fault the pages in before timing
    dst_base, src_base = address_of(dst), address_of(src)
    clock, memmove, pread = time.perf_counter_ns, ctypes.memmove, LIB.afr_pread_flags
    kernel: dict[Cell, list[int]] = {}
    user: dict[Cell, list[int]] = {}
    order = list(cells)
    rng = random.Random(3)
    for _ in range(rounds):
        warm(fd)
        rng.shuffle(order)
        for cell in order:
            size, dst_off, src_off = cell
            pages = (FILE_SIZE - size) // PAGE - 1
            ptr = FFI.cast("char *", dst_base + dst_off)
            ktimes = kernel.setdefault(cell, [])
            utimes = user.setdefault(cell, [])
            for _ in range(batch):
                where = rng.randrange(pages) * PAGE + src_off
                t0 = clock()
                got = pread(fd, ptr, size, where, RWF_NOWAIT)
                t1 = clock()
                memmove(dst_base + dst_off, src_base + where, size)
                t2 = clock()
                if got != size:
                    raise RuntimeError(f"NOWAIT read of {size} at {where} returned {got}")
                ktimes.append(t1 - t0)
                utimes.append(t2 - t1)
    dst.close()
    src.close()
    return {"kernel": kernel, "userland": user}


def summarize(samples: dict[Cell, list[int]]) -> Stats:
    out: Stats = {}
    for cell, values in samples.items():
        ordered = sorted(values)
        out[cell] = (percentile(ordered, 50), percentile(ordered, 99))
    return out


def offset_cells(sizes: Sequence[int], offsets: Sequence[int]) -> list[Cell]:
    return [(size, off, 0) for size in sizes for off in offsets]


def distance_cells() -> list[Cell]:
    return [(DISTANCE_SIZE, (s + d) % PAGE, s) for s in SOURCE_OFFSETS for d in DISTANCES]


# -- section 3: where malloc puts bytes objects -------------------------------------------


def scratch_address() -> int | None:
    """aiofastread's scratch buffer, when its read_nowait copies through one."""
    view = getattr(getattr(_native, "_scratch", None), "view", None)
    if (
        _native.backend.name != "native"
        or view is None
        or isinstance(_native.backend.read_nowait, types.BuiltinFunctionType)
    ):
        return None
    return address_of(view)


def placement(fd: int, size: int, count: int) -> dict[str, dict[str, Any]]:
    """Where each producer's bytes land, as copy distances mod 4096.

    Each loop keeps its last result until the next one exists, as a reading
    loop does, so the same two heap chunks alternate the way they would there.
    """
    scratch = scratch_address()
    result: dict[str, dict[str, Any]] = {}
    for name in ("os.pread", "aiofastread read_nowait"):
        pages: dict[int, int] = {}
        distances: dict[int, int] = {}
        data: bytes | int = b""
        for i in range(count):
            offset = (i * 16 + 1) * PAGE  # 4 KiB-aligned: the source sits at page offset 0
            data = (
                os.pread(fd, size, offset)
                if name == "os.pread"
                else _native.backend.read_nowait(fd, size, offset)
            )
            assert isinstance(data, bytes)
            dst = id(data) + BYTES_HEADER  # CPython: id() is the object's address
            pages[dst % PAGE] = pages.get(dst % PAGE, 0) + 1
            copies = (
                [dst - offset]
                if name == "os.pread" or scratch is None
                else [scratch - offset, dst - scratch]
            )  # page cache -> scratch -> bytes
            for d in copies:
                distances[d % PAGE] = distances.get(d % PAGE, 0) + 1
        del data
        in_window = sum(n for d, n in distances.items() if d in ALIAS_WINDOW)
        result[name] = {
            "page_offsets": dict(sorted(pages.items())),
            "distances": dict(sorted(distances.items())),
            "copies_in_window": in_window,
            "copies": sum(distances.values()),
        }
    return result


def run_child(args: list[str], env: dict[str, str] | None = None) -> Any:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# -- report ------------------------------------------------------------------------------


def us(ns: float) -> str:
    return f"{ns / 1000:.1f}"


def offsets_table(title: str, stats: Stats, sizes: Sequence[int], offsets: Sequence[int]) -> Table:
    table = Table(title=title)
    table.add_column("size")
    for off in offsets:
        table.add_column(f"page+{off}", justify="right")
    for size in sizes:
        base = stats[(size, 0, 0)][0]
        row = [human(size)]
        for off in offsets:
            med, p99 = stats[(size, off, 0)]
            cell = f"{us(med)} / {us(p99)} ({med / base:.1f}x)"
            row.append(f"[bold red]{cell}[/]" if med > SLOW_FACTOR * base else cell)
        table.add_row(*row)
    return table


def distance_table(title: str, stats: Stats) -> Table:
    table = Table(title=title)
    table.add_column("src page offset")
    for d in DISTANCES:
        table.add_column(str(d), justify="right")
    for s in SOURCE_OFFSETS:
        fast = min(stats[(DISTANCE_SIZE, (s + d) % PAGE, s)][0] for d in DISTANCES)
        row = [str(s)]
        for d in DISTANCES:
            med = stats[(DISTANCE_SIZE, (s + d) % PAGE, s)][0]
            row.append(f"[bold red]{us(med)}[/]" if med > SLOW_FACTOR * fast else us(med))
        table.add_row(*row)
    return table


def placement_table(samples: list[tuple[str, dict[str, dict[str, Any]]]]) -> Table:
    table = Table(
        title=f"Where 16 KiB bytes objects land ({PLACEMENT_READS} reads per "
        "producer): data page offsets, and copies 1..31 bytes after their "
        "source mod 4096"
    )
    table.add_column("process")
    table.add_column("producer")
    table.add_column("data page offset: count")
    table.add_column("copy distance: count")
    table.add_column("in slow window", justify="right")
    for label, result in samples:
        for producer, info in result.items():
            share = info["copies_in_window"] / max(info["copies"], 1)
            table.add_row(
                label,
                producer,
                ", ".join(f"{k}: {v}" for k, v in info["page_offsets"].items()),
                ", ".join(f"{k}: {v}" for k, v in info["distances"].items()),
                f"[bold red]{share:.0%}[/]" if share else "0%",
            )
    return table


def to_json(stats: Stats) -> list[dict[str, int]]:
    return [
        {"size": n, "dst_page_offset": d, "src_page_offset": s, "median_ns": med, "p99_ns": p99}
        for (n, d, s), (med, p99) in sorted(stats.items())
    ]


def from_json(rows: list[dict[str, int]]) -> Stats:
    return {
        (r["size"], r["dst_page_offset"], r["src_page_offset"]): (r["median_ns"], r["p99_ns"])
        for r in rows
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="4KiB,16KiB,64KiB,1MiB", help="section 1 sizes, comma-separated"
    )
    parser.add_argument(
        "--offsets",
        default=",".join(map(str, DEFAULT_OFFSETS)),
        help="section 1 destination offsets from a page boundary",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=15, help="copies per cell per round")
    parser.add_argument(
        "--dir",
        default=tempfile.gettempdir(),
        help="where to put the data file (needs RWF_NOWAIT: ext4/xfs/btrfs)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--no-tunables", action="store_true", help="skip the GLIBC_TUNABLES child process"
    )
    parser.add_argument("--child", choices=["offsets", "placement"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    offsets = sorted({0, *(int(o) for o in args.offsets.split(","))})  # +0: the reference

    path, fd = make_file(args.dir)
    try:
        if args.child == "placement":
            print(json.dumps(placement(fd, 16 * KIB, PLACEMENT_READS)))
            return
        by_offset = measure(
            offset_cells(sizes, offsets), fd=fd, rounds=args.rounds, batch=args.batch
        )
        if args.child == "offsets":
            print(json.dumps({side: to_json(summarize(s)) for side, s in by_offset.items()}))
            return
        by_distance = measure(distance_cells(), fd=fd, rounds=args.rounds, batch=args.batch)
        here = placement(fd, 16 * KIB, PLACEMENT_READS)
    finally:
        os.close(fd)
        os.unlink(path)

    tuned: dict[str, Stats] = {}
    if not args.no_tunables:
        env = dict(os.environ)
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), TUNABLE]))
        child = [
            "--sizes",
            args.sizes,
            "--offsets",
            ",".join(map(str, offsets)),
            "--rounds",
            str(args.rounds),
            "--batch",
            str(args.batch),
            "--dir",
            args.dir,
        ]
        tuned = {
            side: from_json(rows)
            for side, rows in run_child([*child, "--child", "offsets"], env).items()
        }
    fresh = [
        (f"fresh #{i + 1}", run_child(["--dir", args.dir, "--child", "placement"]))
        for i in range(CHILD_PROCESSES)
    ]

    # Wide tables: piped output (logs, docs) would otherwise wrap at 80 columns.
    console = Console(width=shutil.get_terminal_size((160, 40)).columns)
    offset_stats = {side: summarize(s) for side, s in by_offset.items()}
    distance_stats = {side: summarize(s) for side, s in by_distance.items()}
    note = "median / p99 us (median vs page+0); source page-aligned; red: > 1.5x page+0"
    console.print(
        offsets_table(
            f"1. copy_to_user: preadv2(NOWAIT) into page+offset. {note}",
            offset_stats["kernel"],
            sizes,
            offsets,
        )
    )
    console.print(
        offsets_table(
            f"1. userland: ctypes.memmove to page+offset. {note}",
            offset_stats["userland"],
            sizes,
            offsets,
        )
    )
    for side, side_stats in tuned.items():
        console.print(
            offsets_table(
                f"1. {side}, child with GLIBC_TUNABLES={TUNABLE}", side_stats, sizes, offsets
            )
        )
    for side in ("kernel", "userland"):
        console.print(
            distance_table(
                f"2. {side}, 16 KiB: median us by distance (dst - src) mod 4096 (columns) for "
                "sources at three page offsets (rows); red: > 1.5x the row's fastest",
                distance_stats[side],
            )
        )
    console.print(placement_table([("this one", here), *fresh]))

    if args.json:
        out = {
            "sizes": sizes,
            "offsets": offsets,
            "rounds": args.rounds,
            "batch": args.batch,
            "by_offset": {side: to_json(s) for side, s in offset_stats.items()},
            "by_offset_with_tunable": {
                "tunable": TUNABLE,
                **{side: to_json(s) for side, s in tuned.items()},
            },
            "by_distance": {side: to_json(s) for side, s in distance_stats.items()},
            "placement": {"this_process": here, "fresh_processes": [r for _, r in fresh]},
        }
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
