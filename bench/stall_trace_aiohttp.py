"""Where did the aiohttp server loop's worst ticks go? examples/aiohttp_files.py under `perf`.

    python bench/stall_trace_aiohttp.py [--hogs 2] [--keep DIR] -- \\
        --size 64 --rounds 8 --slow-device 300 --engines aiohttp ours --files cold

The example's heartbeat gives, per transfer, the worst tick less the loop
thread's run-queue wait ("own" stall) and when that tick ended
(CLOCK_MONOTONIC). This script records the whole run with
``perf record -a -k CLOCK_MONOTONIC -e sched:sched_switch`` (root, perf) and
says, for each transfer's worst own tick, what the loop thread was doing
(bench/stall_trace.py's attribution: on CPU, stolen, R wait, S sleep and
where, D block) and which other threads of the server ran meanwhile (a loop
thread asleep in futex_wait while another thread of the process runs is
waiting for the GIL; an R wait of that other thread, the GIL holder
preempted, is the machine's stall, though the loop thread's own counter
does not show it).

``--hogs N`` runs N busy processes (``while True: pass``) next to the bench,
to reproduce a loaded machine on purpose. With ``--tree`` (an A/B of two
environments) each server gets a section of its own.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from stall_trace import LINE, SWITCH, Interval, attribute, parse

EXAMPLE = Path(__file__).parent.parent / "examples" / "aiohttp_files.py"
HZ = 1000
COMM = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) .* next_comm=(.*?) next_pid=(\d+) ")


def record(out: Path, rows: Path, bench_args: list[str]) -> None:
    cmd = [
        "perf", "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-o", str(out),
        "-e", "sched:sched_wakeup", "-e", "sched:sched_switch", "--call-graph", "fp",
        "-e", f"cpu-clock/freq={HZ}/",
        "--", sys.executable, str(EXAMPLE), "bench", *bench_args, "--json", str(rows),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


Spans = list[tuple[float, float]]


def threads_of(perf_data: Path, pid: int) -> dict[int, tuple[str, Spans, Spans]]:
    """Every thread of process pid: its name, on-CPU intervals, and the
    intervals it waited for a CPU (woken, or preempted, until it ran)."""
    text = subprocess.run(
        ["perf", "script", "-i", str(perf_data), "-F", "pid,tid,cpu,time,event,trace"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    members: set[int] = set()
    woken = re.compile(r" pid=(\d+) ")
    names: dict[int, str] = {}
    on: dict[int, float] = {}
    preempted: dict[int, float] = {}
    runs: dict[int, Spans] = {}
    waits: dict[int, Spans] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m is None:
            continue
        if m[5].startswith("sched:sched_wakeup"):
            w = woken.search(m[6])
            if w is not None:  # runnable from now: a wait for a CPU until it runs
                preempted.setdefault(int(w[1]), float(m[4]))
            continue
        if not m[5].startswith("sched:sched_switch"):
            continue
        if int(m[1]) == pid:
            members.add(int(m[2]))
        c = COMM.search(m[6])
        if c is None:
            continue
        t, prev, nxt = float(m[4]), int(c[2]), int(c[4])
        names[prev], names[nxt] = c[1], c[3]
        if prev in on:
            runs.setdefault(prev, []).append((on.pop(prev), t))
        s = SWITCH.search(m[6])
        if s is not None and s[2].startswith("R"):
            preempted[prev] = t
        if nxt in preempted:
            waits.setdefault(nxt, []).append((preempted.pop(nxt), t))
        on[nxt] = t
    return {
        tid: (names.get(tid, "?"), runs.get(tid, []), waits.get(tid, [])) for tid in sorted(members)
    }


def _overlap(start: float, end: float, spans: Spans) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans) * 1e3


def others_in(
    start: float, end: float, threads: dict[int, tuple[str, Spans, Spans]], loop: int
) -> str:
    """Per other thread: ms on CPU, and ms preempted (R) in the window."""
    parts = []
    for tid, (name, runs, waits) in threads.items():
        ran, waited = _overlap(start, end, runs), _overlap(start, end, waits)
        if tid != loop and ran + waited >= 0.05:
            parts.append(f"{name}/{tid} {ran:.1f}" + (f" R{waited:.1f}" if waited >= 0.05 else ""))
    return ", ".join(parts) or "-"


SCHED_FRAMES = (
    "__schedule", "schedule", "futex", "__futex", "do_futex", "__x64", "do_syscall",
    "entry_SYSCALL", "[unknown]",
)  # fmt: skip


def loop_sleeps(perf_data: Path, loop: int, intervals: list[Interval]) -> list[str]:
    """The loop thread's sleeps outside epoll_wait (a lock, a condition
    variable, the GIL), by the user-space function it slept in and the
    thread that woke it: count, total and longest."""
    text = subprocess.run(
        ["perf", "script", "-i", str(perf_data), "-F", "pid,tid,cpu,time,event,trace,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    slept_in: dict[float, str] = {}
    wakers: list[tuple[float, int]] = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        m = LINE.match(lines[0]) if lines else None
        if m is None:
            continue
        t = float(m[4])
        if m[5].startswith("sched:sched_wakeup") and f" pid={loop} " in m[6]:
            wakers.append((t, int(m[2])))
        elif m[5].startswith("sched:sched_switch") and f"prev_pid={loop} " in m[6]:
            frames = [ln.split()[1] for ln in lines[1:] if len(ln.split()) > 1]
            user = [f for f in frames if not f.startswith(SCHED_FRAMES)]
            slept_in[round(t, 6)] = user[0] if user else "?"
    wake_times = [w[0] for w in wakers]
    kinds: dict[tuple[str, str], tuple[int, float, float]] = {}
    for iv in intervals:
        if iv.state != "S":
            continue
        where = slept_in.get(round(iv.start, 6), "?")
        if "epoll" in where:
            continue
        k = bisect.bisect_right(wake_times, iv.end) - 1
        waker = wakers[k][1] if k >= 0 and wakers[k][0] >= iv.start else 0
        key = (where, "loop's own process" if waker == 0 else f"thread {waker}")
        n, total, worst = kinds.get(key, (0, 0.0, 0.0))
        ms = (iv.end - iv.start) * 1e3
        kinds[key] = (n + 1, total + ms, max(worst, ms))
    return [
        f"  {n:5d} x, {total:7.1f} ms in all, longest {worst:6.2f} ms: in {where}, woken by {who}"
        for (where, who), (n, total, worst) in sorted(kinds.items(), key=lambda kv: -kv[1][2])
    ]


def report(perf_data: Path, pid: int, rows: list[dict[str, Any]]) -> None:
    intervals, samples = parse(perf_data, pid)
    threads = threads_of(perf_data, pid)
    print(f"server {pid}; threads {len(threads)}; per transfer, its worst own tick (ms):")
    print(
        f"  {'handler':<16} {'late':>6} {'own':>6} {'on-CPU':>7} {'stolen':>7} {'R wait':>7} "
        f"{'S sleep':>7} {'D block':>7}  asleep in (ms) | other server threads: on CPU, R wait"
    )
    for row in rows:
        for late, own, at in zip(
            row["heartbeat_own_late_ms"], row["heartbeat_own_all_ms"], row["heartbeat_own_at"],
            strict=True,
        ):  # fmt: skip
            start = at - (late + 1.0) / 1e3  # the tick's 1 ms sleep and its lateness
            a = attribute(start, at, intervals, samples, HZ)
            print(
                f"  {row['temperature'] + ' ' + row['engine']:<16} {late:6.1f} {own:6.1f} "
                f"{float(a['run']) * 1e3:7.2f} {float(a['stolen']) * 1e3:7.2f} "
                f"{float(a['R']) * 1e3:7.2f} {float(a['S']) * 1e3:7.2f} "
                f"{float(a['D']) * 1e3:7.2f}  {a['asleep_in'] or '-'} | "
                f"{others_in(start, at, threads, pid)}"
            )
    print("loop thread asleep outside epoll_wait (a lock, a condition variable, the GIL):")
    print("\n".join(loop_sleeps(perf_data, pid, intervals)[:12]) or "  -")
    d_all = [iv for iv in intervals if iv.state.startswith("D")]
    print(
        f"loop thread in D state {len(d_all)} times in the whole run, worst "
        f"{max((iv.end - iv.start for iv in d_all), default=0) * 1e3:.2f} ms "
        f"({', '.join(sorted({iv.where for iv in d_all if iv.where})) or '-'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=0, help="busy processes beside the bench")
    parser.add_argument("--keep", type=Path, default=None, help="keep perf.data and rows")
    parser.add_argument(
        "--again", type=Path, default=None, help="only analyse the trace kept in this directory"
    )
    parser.add_argument("bench_args", nargs="*", help="arguments for aiohttp_files.py bench")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("perf") is None:
        print("needs root and perf", file=sys.stderr)
        return 2
    if not os.path.exists("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)
    if args.again is not None:
        work = args.again
    else:
        work = args.keep or Path(tempfile.mkdtemp(prefix="stall-trace-aiohttp-"))
        work.mkdir(parents=True, exist_ok=True)
        hogs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)
        ]
        try:
            record(work / "perf.data", work / "rows.json", args.bench_args)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    rows = json.loads((work / "rows.json").read_text())
    for pid in sorted({int(row["server_pid"]) for row in rows}):
        # The loop runs on the server's main thread: its tid is the pid.
        report(work / "perf.data", pid, [row for row in rows if row["server_pid"] == pid])
    print(f"trace and rows: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
