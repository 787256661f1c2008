"""Where did the loop's worst stalls go? `aiofastread bench` under `perf`, tick by tick.

    python bench/stall_trace.py [--top 10] [--hz 4000] -- --seconds 10 --slow-device 300

The bench's heartbeat says *how late* the loop ran each 1 ms tick; its
controls (an idle sleeper, the run-queue wait) say how much of that the rest
of the machine explains. This script says what the loop thread itself was
doing during the worst ticks, from a kernel trace (root, ``perf``):

``sched:sched_switch``  every time the loop thread leaves or gets a CPU and
                        in which state it left: R (preempted: waiting for a
                        CPU), S (asleep: the GIL, epoll), D (blocked in the
                        kernel: I/O; must never happen on the loop thread).
``cpu-clock``           a sample every 1/hz s of CPU time, on each CPU. While
                        the guest runs the thread, samples arrive at hz; when
                        the hypervisor takes the vCPU away (steal), the guest
                        scheduler still counts the thread as running but no
                        sample comes. ``missing samples / hz`` estimates it.

Per worst tick it prints: lateness, the thread's on-CPU time, the part of it
with no samples (stolen), and its off-CPU time by state, with the kernel
function it blocked in for D. All timestamps are CLOCK_MONOTONIC, the clock
of the bench's heartbeat (``perf record -k CLOCK_MONOTONIC``).

Only the aiofastread engine is run (``--engines`` is appended). Arguments
after ``--`` go to ``aiofastread bench``.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path

SWITCH = re.compile(
    r"prev_comm=.* prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=.* next_pid=(\d+) "
)
LINE = re.compile(r"^\s*(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):(.*)$")


@dataclasses.dataclass
class Interval:
    start: float
    end: float
    state: str  # "run", or the state the thread left the CPU in: R, S, D, ...
    where: str = ""  # the kernel function it went to sleep in (off-CPU intervals)


def _ensure_tracefs() -> None:
    if not os.path.exists("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)


def record(out: Path, raw: Path, bench_args: list[str], hz: int) -> None:
    cmd = [
        "perf", "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-o", str(out),
        "-e", "sched:sched_switch", "--call-graph", "fp",
        "-e", f"cpu-clock/freq={hz}/",
        "--", sys.executable, "-m", "aiofastread", "bench",
        *bench_args, "--engines", "aiofastread", "--raw", str(raw),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def parse(perf_data: Path, tid: int) -> tuple[list[Interval], array[float]]:
    """The loop thread's on/off-CPU intervals and its cpu-clock sample times."""
    text = subprocess.run(
        ["perf", "script", "-i", str(perf_data), "-F", "pid,tid,cpu,time,event,trace,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    intervals: list[Interval] = []
    samples: array[float] = array("d")
    on_since: float | None = None
    off: Interval | None = None
    pending_stack_for: Interval | None = None
    for line in text.splitlines():
        m = LINE.match(line)
        if m is None:
            # A call-graph line under the previous event: for a switch away
            # from the loop thread keep the first frame below the
            # scheduler's own (futex_wait: the GIL; do_epoll_wait: idle;
            # io_schedule: I/O).
            if pending_stack_for is not None and line.strip():
                sym = line.split()[-1] if len(line.split()) > 1 else ""
                if sym and not sym.startswith(
                    ("__schedule", "schedule", "__traceiter", "__probestub", "[unknown]")
                ):
                    pending_stack_for.where = sym
                    pending_stack_for = None
            continue
        pending_stack_for = None
        t, event, rest = float(m[4]), m[5], m[6]
        if event.startswith("cpu-clock"):
            if int(m[2]) == tid:
                samples.append(t)
            continue
        s = SWITCH.search(rest)
        if s is None:
            continue
        prev_pid, state, next_pid = int(s[1]), s[2], int(s[3])
        if prev_pid == tid:
            if on_since is not None:
                intervals.append(Interval(on_since, t, "run"))
            on_since = None
            off = Interval(t, t, state.rstrip("+"))
            pending_stack_for = off
        elif next_pid == tid:
            if off is not None:
                off.end = t
                intervals.append(off)
                off = None
            on_since = t
    return intervals, samples


def attribute(
    start: float, end: float, intervals: list[Interval], samples: array[float], hz: int
) -> dict[str, float | str]:
    out: dict[str, float | str] = {"run": 0.0, "stolen": 0.0, "R": 0.0, "S": 0.0, "D": 0.0}
    where: dict[str, float] = {}
    starts = [iv.start for iv in intervals]
    i = max(0, bisect.bisect_right(starts, start) - 1)
    for iv in intervals[i:]:
        if iv.start >= end:
            break
        lo, hi = max(start, iv.start), min(end, iv.end)
        if hi <= lo:
            continue
        if iv.state == "run":
            out["run"] = float(out["run"]) + (hi - lo)
            seen = bisect.bisect_left(samples, hi) - bisect.bisect_left(samples, lo)
            out["stolen"] = float(out["stolen"]) + max(0.0, (hi - lo) - seen / hz)
        else:
            key = iv.state[0] if iv.state[0] in "RSD" else "S"
            out[key] = float(out[key]) + (hi - lo)
            if key in "SD":
                name = f"{key}:{iv.where or '?'}"
                where[name] = where.get(name, 0.0) + (hi - lo)
    out["asleep_in"] = ", ".join(
        f"{name} {ms * 1e3:.1f}" for name, ms in sorted(where.items(), key=lambda kv: -kv[1])
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="worst ticks to show")
    parser.add_argument("--hz", type=int, default=4000, help="cpu-clock samples per CPU second")
    parser.add_argument("--keep", type=Path, default=None, help="keep perf.data and raw files")
    parser.add_argument("bench_args", nargs="*", help="arguments for aiofastread bench")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("perf") is None:
        print("needs root and perf (apt install linux-perf)", file=sys.stderr)
        return 2
    _ensure_tracefs()
    work = args.keep or Path(tempfile.mkdtemp(prefix="stall-trace-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw"
    record(work / "perf.data", raw, args.bench_args, args.hz)
    variant_dirs = [d for d in raw.iterdir() if (d / "aiofastread-child.json").exists()]
    for vdir in variant_dirs:
        child = json.loads((vdir / "aiofastread-child.json").read_text())
        tid = int(child["pid"])  # the loop runs on the child's main thread
        late, ends = array("q"), array("q")
        late.frombytes((vdir / "aiofastread-heartbeat.lat").read_bytes())
        ends.frombytes((vdir / "aiofastread-heartbeat-ends.lat").read_bytes())
        intervals, samples = parse(work / "perf.data", tid)
        worst = sorted(range(len(late)), key=lambda k: -late[k])[: args.top]
        print(f"{vdir.name}: {len(late)} ticks, loop thread {tid}; worst {args.top} (ms):")
        print(
            f"  {'late':>7} {'on-CPU':>7} {'stolen':>7} {'R wait':>7} {'S sleep':>7} "
            f"{'D block':>7}  asleep in (ms)"
        )
        for k in worst:
            end = ends[k] / 1e9
            start = end - (late[k] + 1_000_000) / 1e9  # the tick's sleep plus its lateness
            a = attribute(start, end, intervals, samples, args.hz)
            print(
                f"  {late[k] / 1e6:7.2f} {float(a['run']) * 1e3:7.2f} "
                f"{float(a['stolen']) * 1e3:7.2f} {float(a['R']) * 1e3:7.2f} "
                f"{float(a['S']) * 1e3:7.2f} {float(a['D']) * 1e3:7.2f}  {a['asleep_in']}"
            )
        lo, hi = (ends[0] - late[0] - 1_000_000) / 1e9, ends[-1] / 1e9
        d_all = [iv for iv in intervals if iv.state.startswith("D") and lo <= iv.start <= hi]
        print(
            f"  loop thread blocked in D state {len(d_all)} times while measured, "
            f"{sum(iv.end - iv.start for iv in d_all) * 1e3:.2f} ms in all; "
            f"worst {max((iv.end - iv.start for iv in d_all), default=0) * 1e3:.2f} ms "
            f"({', '.join(sorted({iv.where for iv in d_all if iv.where})) or '-'})"
        )
    print(f"trace and raw files: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
