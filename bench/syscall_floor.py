"""The kernel's floor under a cached read: pread against preadv2(RWF_NOWAIT), in C.

bench/cached.py compares ``await f.pread(n, off)`` with ``os.pread``. Part of
the difference is not Python's: the inline read must be ``preadv2`` with
``RWF_NOWAIT`` (the only call that will not wait for the device), and the
kernel's vectored path costs more than ``pread64``'s (it copies and checks an
iovec, ``import_iovec``, and walks ``vfs_readv``). This measures that part
alone: a C loop, compiled here with cffi, times ``count`` reads of ``n``
bytes at the same cached offsets with

``pread``          ``pread64(fd, buf, n, off)`` (what ``os.pread`` calls),
``preadv2``        ``preadv2(fd, &iov, 1, off, 0)``,
``preadv2-nowait`` ``preadv2(fd, &iov, 1, off, RWF_NOWAIT)`` (the inline hit),

into one reused buffer, so the copies are the same. The three loops run
interleaved, the order rotating every round (this VM is shared and noisy);
the ratios are of medians. The file is made, read into the page cache, and
removed here.

Run:  python bench/syscall_floor.py [--sizes 4KiB,16KiB] [--rounds 40] [--count 20000]
                                    [--dir DIR] [--json out.json]
Needs a C compiler (cffi builds the loop) and a filesystem with NOWAIT reads.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import cffi

KINDS = ("pread", "preadv2", "preadv2-nowait")

_CDEF = (
    "long long afr_floor_loop(int kind, int fd, char *buf, long n, long long *offs, long count);"
)
_SOURCE = r"""
#include <sys/uio.h> /* preadv2, RWF_NOWAIT: _GNU_SOURCE comes with Python.h */
#include <time.h>
#include <unistd.h>

/* Total ns of `count` reads (kind 0: pread; 1: preadv2, no flags; 2: preadv2
 * RWF_NOWAIT); -1 if one read came back short (the file was not all cached). */
long long afr_floor_loop(int kind, int fd, char *buf, long n, long long *offs, long count)
{
    struct timespec a, b;
    long i;
    ssize_t got;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < count; i++) {
        if (kind == 0) {
            got = pread(fd, buf, (size_t)n, offs[i]);
        } else {
            struct iovec iov = {buf, (size_t)n};
            got = preadv2(fd, &iov, 1, offs[i], kind == 2 ? RWF_NOWAIT : 0);
        }
        if (got != n)
            return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}
"""


def build(tmp: Path) -> Any:
    """Compile the timing loop; returns the module (its ffi and lib)."""
    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    ffi.set_source("_afr_floor", _SOURCE)
    library = ffi.compile(tmpdir=str(tmp), verbose=False)
    spec = importlib.util.spec_from_file_location("_afr_floor", library)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {library}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20}
    for suffix, scale in units.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * scale
    return int(text)


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def measure(module: Any, fd: int, size: int, file_size: int, rounds: int, count: int) -> dict:
    ffi, lib = module.ffi, module.lib
    rng = random.Random(size)
    blocks = (file_size - size) // 4096
    offs = ffi.new("long long[]", [rng.randrange(blocks) * 4096 for _ in range(count)])
    buf = ffi.new("char[]", size + 4096)
    per_op: dict[str, list[float]] = {kind: [] for kind in KINDS}
    order = list(range(len(KINDS)))
    lib.afr_floor_loop(2, fd, buf, size, offs, count)  # warm-up, and NOWAIT must hit
    for r in range(rounds):
        for k in order[r % len(order) :] + order[: r % len(order)]:
            total = lib.afr_floor_loop(k, fd, buf, size, offs, count)
            if total < 0:
                raise RuntimeError("a read came back short: the file is not all cached")
            per_op[KINDS[k]].append(total / count)
    medians = {kind: statistics.median(v) for kind, v in per_op.items()}
    return {
        "size": size,
        "ns_per_op": medians,
        "x_pread": {kind: medians[kind] / medians["pread"] for kind in KINDS},
        "per_round_x_pread_nowait": sorted(
            a / b for a, b in zip(per_op["preadv2-nowait"], per_op["pread"], strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="4KiB,16KiB")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--count", type=int, default=20000, help="reads per timed loop")
    parser.add_argument("--dir", default="/var/tmp", help="needs NOWAIT reads (ext4/xfs/btrfs)")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    file_size = 32 << 20
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        module = build(Path(tmp))
        path = Path(tmp) / "data"
        path.write_bytes(os.urandom(file_size))
        warm(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            for size in sizes:
                warm(path)  # this VM drops idle page cache after ~20 s
                results.append(measure(module, fd, size, file_size, args.rounds, args.count))
        finally:
            os.close(fd)
    print(f"Python {platform.python_version()}, Linux {platform.release()}; {args.rounds} rounds")
    print(f"x {args.count} reads per loop, random 4 KiB-aligned offsets in a cached 32 MiB file")
    for res in results:
        ns, x = res["ns_per_op"], res["x_pread"]
        spread = res["per_round_x_pread_nowait"]
        p10, p90 = spread[len(spread) // 10], spread[(len(spread) * 9) // 10]
        cells = ", ".join(f"{k} {ns[k]:.0f} ns ({x[k]:.2f}x)" for k in KINDS)
        spread_text = f"nowait/pread per round p10-p90 {p10:.2f}-{p90:.2f}x"
        print(f"{res['size'] >> 10:>4} KiB: {cells}; {spread_text}")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps({"argv": sys.argv, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
