"""Numbers and their presentation: the JSON report and the rich tables.

Everything shown is computed once into a plain dict (``variant_report``),
which is both what ``--json`` writes and what the tables render, so the
screen and the file can never disagree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from aiofastread.benchmark import stats
from aiofastread.benchmark.engines import BASELINE, LABELS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import Console

    from aiofastread.benchmark.workload import RunResult

REPORT_VERSION = 1
MB = 1_000_000  # MB/s in SI megabytes, as fio and dd print them
ALT_BASELINE = "executor"  # when the same-pool baseline was not run

# The bar, checked and shown with every report (not used to tune
# anything): slow device f1 p50 <= 10 us against >= 100 us for the baseline,
# bandwidth >= 0.95x, worst stall < 5 ms; all-cold bandwidth >= 0.95x.
BAR_F1_P50_US = 10.0
BAR_BASELINE_F1_P50_US = 100.0
BAR_BANDWIDTH_RATIO = 0.95
BAR_STALL_MS = 5.0


def _round(x: float, digits: int = 3) -> float:
    return round(x, digits)


def workload_report(
    run: RunResult,
    name: str,
    meta: Mapping[str, Any],
    total_reads: int,
) -> dict[str, Any]:
    w = run.workloads[name]
    ordered = sorted(w.samples)
    summary = stats.summarize(ordered)
    seconds = run.seconds or 1.0
    fs = w.file_statistics
    fast_path: dict[str, Any] | None = None
    if fs is not None:
        attempts = int(fs["inline_hits"]) + int(fs["inline_misses"]) + int(fs["short_reads"])
        fast_path = {
            "hit_ratio": _round(fs["inline_hits"] / w.reads, 4) if w.reads else 0.0,
            "inline_hits": fs["inline_hits"],
            "inline_misses": fs["inline_misses"],
            "short_reads": fs["short_reads"],
            "attempts": attempts,
            # Reads that went to the pool without a NOWAIT attempt: what the
            # per-file hit/miss gate (cachestat, COLD state) saved.
            "attempts_avoided": max(w.reads - attempts, 0),
            "skipped_cold": fs["skipped_cold"],
            "residency_checks": fs["residency_checks"],
            "state_after": fs["state"],
        }
    return {
        "pattern": str(meta["pattern"]),
        "tasks": int(meta["tasks"]),
        "rate": float(meta.get("rate", 0.0)),
        "file_size": int(meta["file_size"]),
        "reads": w.reads,
        "bytes": w.bytes,
        "mb_per_s": _round(w.bytes / seconds / MB),
        "read_share": _round(w.reads / total_reads, 4) if total_reads else 0.0,
        "latency_us": _latency(summary),
        "under_10us": _round(summary.under_10us, 4),
        "fast_path": fast_path,
        "pool_submissions": w.pool_submissions,
        "cached_at_start": run.cache_before.get(name),
        "cached_at_end": run.cache_after.get(name),
        "pinned": run.pinned.get(name),
        # Sequential tasks start evenly spread; once the workload has read
        # more than the file, a task has reached pages another one read
        # earlier in the run (cached now), so some of its reads are hits.
        "wrapped": meta["pattern"] == "sequential" and w.bytes > int(meta["file_size"]),
        "cdf": [[_round(x, 3), _round(y, 5)] for x, y in stats.cdf_points(ordered)],
    }


def _latency(s: stats.LatencySummary) -> dict[str, float | int]:
    return {
        "count": s.count,
        "mean": _round(s.mean_us),
        "min": _round(s.min_us),
        "p50": _round(s.p50_us),
        "p90": _round(s.p90_us),
        "p99": _round(s.p99_us),
        "p99.9": _round(s.p999_us),
        "max": _round(s.max_us),
    }


def engine_report(run: RunResult, layout: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """All numbers of one engine's run. ``layout``: workload -> pattern, tasks, file_size."""
    total_reads = sum(w.reads for w in run.workloads.values())
    workloads = {
        name: workload_report(run, name, meta, total_reads)
        for name, meta in layout.items()
        if name in run.workloads
    }
    merged = stats.merge_sorted([w.samples for w in run.workloads.values()])
    total_summary = stats.summarize(merged)
    total_bytes = sum(w.bytes for w in run.workloads.values())
    seconds = run.seconds or 1.0
    fast = [w["fast_path"] for w in workloads.values() if w["fast_path"] is not None]
    total_fast: dict[str, Any] | None = None
    if fast:
        hits = sum(int(f["inline_hits"]) for f in fast)
        total_fast = {
            "hit_ratio": _round(hits / total_reads, 4) if total_reads else 0.0,
            "inline_hits": hits,
            "attempts": sum(int(f["attempts"]) for f in fast),
            "attempts_avoided": sum(int(f["attempts_avoided"]) for f in fast),
            "skipped_cold": sum(int(f["skipped_cold"]) for f in fast),
            "residency_checks": sum(int(f["residency_checks"]) for f in fast),
        }
    hb = sorted(run.heartbeat)
    return {
        "label": LABELS.get(run.engine, run.engine),
        "loop": run.loop,
        "backend": run.backend,
        "seconds": _round(run.seconds),
        "workloads": workloads,
        "total": {
            "reads": total_reads,
            "bytes": total_bytes,
            "mb_per_s": _round(total_bytes / seconds / MB),
            "latency_us": _latency(total_summary),
            "under_10us": _round(total_summary.under_10us, 4),
            "fast_path": total_fast,
            "pool_submissions": int(run.counters.get("pool_submissions", 0)),
        },
        "stall_ms": {
            "worst": _round(hb[-1] / 1e6 if hb else 0.0),
            "p99.9": _round(stats.percentile(hb, 99.9) / 1e6),
            "p99": _round(stats.percentile(hb, 99.0) / 1e6),
            "p50": _round(stats.percentile(hb, 50.0) / 1e6),
            "ticks": len(hb),
            # The control (noise.py): the worst stall of an idle process in
            # the same window, and the loop's worst stall minus the overlap.
            # And what the loop thread waited for a CPU (other processes):
            # worst single tick and the whole run.
            "machine_worst": _noise(run, "machine_worst"),
            "run_queue_worst": _noise(run, "run_queue_worst"),
            "run_queue_total": _noise(run, "run_queue_total"),
            "unexplained_worst": _noise(run, "unexplained_worst"),
            "unexplained_worst_with_inline_miss": _noise(run, "unexplained_worst_with_miss"),
            "cpu_steal": _round(run.steal_ms) if run.steal_ms is not None else None,
            # Stalls in ticks during which an inline read missed: the ones
            # the fast path could have caused (a miss starts readahead on
            # the calling thread on new kernels).
            "ticks_with_inline_miss": sum(1 for m in run.heartbeat_misses if m),
            "worst_with_inline_miss": _round(
                max(
                    (
                        lt / 1e6
                        for lt, m in zip(run.heartbeat, run.heartbeat_misses, strict=False)
                        if m
                    ),
                    default=0.0,
                )
            ),
        },
        "keep_cold_passes": run.evictions,
        "counters": dict(run.counters),
    }


def _noise(run: RunResult, key: str) -> float | None:
    if run.noise is None or key not in run.noise:
        return None
    return _round(run.noise[key])


def baseline_of(engines: Mapping[str, Any]) -> str | None:
    """The engine the others are compared with: the same-pool baseline."""
    for name in (BASELINE, ALT_BASELINE):
        if name in engines:
            return name
    return None


def comparisons(engines: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    base = baseline_of(engines)
    out: dict[str, Any] = {"baseline": base, "bandwidth_ratio": {}, "f1_p50_ratio": {}}
    if base is None:
        return out
    base_mb = float(engines[base]["total"]["mb_per_s"])
    base_f1 = engines[base]["workloads"].get("f1")
    for name, e in engines.items():
        out["bandwidth_ratio"][name] = _round(e["total"]["mb_per_s"] / base_mb) if base_mb else None
        f1 = e["workloads"].get("f1")
        if f1 is not None and base_f1 is not None and f1["latency_us"]["p50"]:
            out["f1_p50_ratio"][name] = _round(
                base_f1["latency_us"]["p50"] / f1["latency_us"]["p50"], 1
            )
    return out


def criteria(
    variant: str, engines: Mapping[str, Mapping[str, Any]], slow: bool
) -> list[dict[str, Any]]:
    """The issue's bar, measured: each item says what, the value, pass or not."""
    base = baseline_of(engines)
    fast = engines.get("aiofastread")
    if fast is None or base is None:
        return []
    ratio = (
        fast["total"]["mb_per_s"] / base_mb
        if (base_mb := engines[base]["total"]["mb_per_s"])
        else 0.0
    )
    out: list[dict[str, Any]] = [
        _criterion("total bandwidth vs baseline", ratio, ">=", BAR_BANDWIDTH_RATIO, "x"),
    ]
    if variant == "mixed" and slow and "f1" in fast["workloads"]:
        out.append(
            _criterion(
                "aiofastread f1 p50",
                fast["workloads"]["f1"]["latency_us"]["p50"],
                "<=",
                BAR_F1_P50_US,
                "us",
            )
        )
        out.append(
            _criterion(
                "baseline f1 p50",
                engines[base]["workloads"]["f1"]["latency_us"]["p50"],
                ">=",
                BAR_BASELINE_F1_P50_US,
                "us",
            )
        )
        out.append(
            _criterion(
                "aiofastread worst loop stall", fast["stall_ms"]["worst"], "<", BAR_STALL_MS, "ms"
            )
        )
    return out


def _criterion(what: str, value: float, op: str, bound: float, unit: str) -> dict[str, Any]:
    ok = {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[op]
    return {
        "what": what,
        "value": _round(value),
        "op": op,
        "bound": bound,
        "unit": unit,
        "passed": ok,
    }


def variant_report(
    variant: str,
    runs: Sequence[RunResult],
    layout: Mapping[str, Mapping[str, Any]],
    *,
    slow: bool,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    engines = {run.engine: engine_report(run, layout) for run in runs}
    return {
        "engines": engines,
        "skipped_engines": dict(skipped or {}),
        "comparison": comparisons(engines),
        "criteria": criteria(variant, engines, slow),
    }


def write_json(path: str | os.PathLike[str], report: Mapping[str, Any]) -> None:
    tmp = Path(f"{os.fspath(path)}.partial")
    tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


# -- rendering ---------------------------------------------------------------------


def fmt_us(us: float) -> str:
    """Latency for humans: 2.9 us, 143 us, 12.3 ms, 1.20 s."""
    if us < 10:
        return f"{us:.1f} us"
    if us < 1000:
        return f"{us:.0f} us"
    if us < 1_000_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1e6:.2f} s"


def _pct(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.0f}%" if x in (0.0, 1.0) else f"{100 * x:.1f}%"


def engine_table(name: str, e: Mapping[str, Any], variant: str) -> Table:
    stall = e["stall_ms"]
    wrapped = [w for w, row in e["workloads"].items() if row.get("wrapped")]
    cached = ", ".join(
        f"{w} {_pct(row['cached_at_start'])}→{_pct(row['cached_at_end'])}"
        + (" (pinned)" if row["pinned"] == "pinned" else "")
        for w, row in e["workloads"].items()
        if row["cached_at_start"] is not None
    )
    table = Table(
        title=f"[bold]{e['label']}[/] ({variant}, {e['seconds']:.1f} s)",
        caption=(
            f"worst loop stall [bold]{stall['worst']:.2f} ms[/] (p99 {stall['p99']:.2f} ms, "
            f"{stall['ticks']:,} heartbeats{_control(stall)}) · "
            f"cached at start→end: {cached or '?'} · "
            f"{(e['loop'] or '?').split('.')[0]} loop · backend {e['backend']}"
            + "".join(f" · {w} read past its file size (re-read cached pages)" for w in wrapped)
        ),
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
        caption_justify="left",
    )
    for col in ("", "MB/s", "reads", "share", "p50", "p90", "p99", "p99.9", "<10us", "hit", "pool"):
        table.add_column(col, justify="left" if not col else "right", no_wrap=True)
    rows = [(w, e["workloads"][w]) for w in e["workloads"]]
    for label, row in [*rows, ("total", e["total"])]:
        lat = row["latency_us"]
        fp = row["fast_path"]
        table.add_row(
            f"{label} {row['pattern'][:4]}" if "pattern" in row else "[bold]total[/]",
            f"{row['mb_per_s']:.1f}",
            f"{row['reads']:,}",
            _pct(row.get("read_share", 1.0)),
            fmt_us(lat["p50"]),
            fmt_us(lat["p90"]),
            fmt_us(lat["p99"]),
            fmt_us(lat["p99.9"]),
            _pct(row["under_10us"]),
            _pct(fp["hit_ratio"]) if fp else "—",
            f"{row['pool_submissions']:,}",
            end_section=label != "total" and label == rows[-1][0],
        )
    return table


def _control(stall: Mapping[str, Any]) -> str:
    misses = ""
    if stall.get("ticks_with_inline_miss"):
        misses = (
            f"; worst in a tick with an inline miss {stall['worst_with_inline_miss']:.2f} ms "
            f"({stall['ticks_with_inline_miss']} such ticks, unexplained "
            f"{stall.get('unexplained_worst_with_inline_miss') or 0:.2f} ms)"
        )
    if stall.get("machine_worst") is None:
        return misses
    return misses + (
        f"; meanwhile an idle process stalled up to {stall['machine_worst']:.2f} ms and the "
        f"loop thread waited for a CPU up to {stall['run_queue_worst']:.2f} ms per tick; "
        f"unexplained by these {stall['unexplained_worst']:.2f} ms"
    )


def summary_table(variant: str, v: Mapping[str, Any]) -> Table:
    comp = v["comparison"]
    base = comp["baseline"]
    table = Table(
        title=f"[bold]{variant}: engines compared[/] (baseline: {LABELS.get(base, base)})",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
    )
    for col in (
        "engine",
        "MB/s",
        "vs base",
        "f1 p50",
        "f1 p99",
        "f1 <10us",
        "stall",
        "tries",
        "avoided",
    ):
        if col == "engine":
            table.add_column(col, justify="left", ratio=1)
        else:
            table.add_column(col, justify="right", no_wrap=True)
    for name, e in v["engines"].items():
        f1 = e["workloads"].get("f1")
        fp = e["total"]["fast_path"]
        ratio = comp["bandwidth_ratio"].get(name)
        table.add_row(
            e["label"],
            f"{e['total']['mb_per_s']:.1f}",
            "—" if ratio is None else f"{ratio:.2f}x",
            fmt_us(f1["latency_us"]["p50"]) if f1 else "—",
            fmt_us(f1["latency_us"]["p99"]) if f1 else "—",
            _pct(f1["under_10us"]) if f1 else "—",
            f"{e['stall_ms']['worst']:.2f} ms",
            f"{fp['attempts']:,}" if fp else "—",
            f"{fp['attempts_avoided']:,}" if fp else "—",
        )
    return table


def render(console: Console, report: Mapping[str, Any]) -> None:
    for variant, v in report["variants"].items():
        for name, e in v["engines"].items():
            console.print(engine_table(name, e, variant))
        console.print(summary_table(variant, v))
        console.print(
            "  stall: worst event-loop stall (heartbeat); tries: preadv2(RWF_NOWAIT) calls; "
            "avoided: reads sent to the pool without one (the per-file hit/miss gate)"
        )
        for name, reason in v["skipped_engines"].items():
            console.print(f"[yellow]skipped {name}[/]: {reason}")
        for c in v["criteria"]:
            mark = "[green]pass[/]" if c["passed"] else "[red]MISS[/]"
            bar = f"{c['op']} {c['bound']}{c['unit']}"
            console.print(f"  {mark} {c['what']}: {c['value']}{c['unit']} (bar {bar})")
        console.print()


# -- markdown (docs/benchmarks.md is made of these) -----------------------------------------


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(report: Mapping[str, Any]) -> str:
    """The report's tables as GitHub markdown: per variant, the comparison
    and then one table per engine (``--markdown``; docs/benchmarks.md)."""
    lines: list[str] = []
    for variant, v in report["variants"].items():
        comp = v["comparison"]
        base = comp["baseline"]
        lines += [f"**{variant}: engines compared** (baseline: {LABELS.get(base, base)})", ""]
        lines.append(
            _md_row(
                [
                    "engine",
                    "total MB/s",
                    "vs baseline",
                    "f1 p50",
                    "f1 p99",
                    "f1 < 10 us",
                    "worst loop stall",
                    "of which unexplained",
                    "NOWAIT tries",
                    "avoided",
                ]
            )
        )
        lines.append(_md_row(["---"] + ["--:"] * 9))
        for name, e in v["engines"].items():
            f1 = e["workloads"].get("f1")
            fp = e["total"]["fast_path"]
            ratio = comp["bandwidth_ratio"].get(name)
            st = e["stall_ms"]
            control = "—"
            if st.get("unexplained_worst") is not None:
                control = f"{st['unexplained_worst']:.2f} ms"
            lines.append(
                _md_row(
                    [
                        e["label"],
                        f"{e['total']['mb_per_s']:.1f}",
                        "—" if ratio is None else f"{ratio:.2f}x",
                        fmt_us(f1["latency_us"]["p50"]) if f1 else "—",
                        fmt_us(f1["latency_us"]["p99"]) if f1 else "—",
                        _pct(f1["under_10us"]) if f1 else "—",
                        f"{st['worst']:.2f} ms",
                        control,
                        f"{fp['attempts']:,}" if fp else "—",
                        f"{fp['attempts_avoided']:,}" if fp else "—",
                    ]
                )
            )
        lines.append("")
        for c in v["criteria"]:
            mark = "pass" if c["passed"] else "**MISS**"
            lines.append(
                f"- {mark}: {c['what']} = {c['value']}{c['unit']} "
                f"(bar {c['op']} {c['bound']}{c['unit']})"
            )
        if v["criteria"]:
            lines.append("")
        for e in v["engines"].values():
            lines += [f"*{e['label']}* ({variant}, {e['seconds']:.1f} s)", ""]
            lines.append(
                _md_row(
                    [
                        "workload",
                        "MB/s",
                        "reads",
                        "share",
                        "p50",
                        "p90",
                        "p99",
                        "p99.9",
                        "< 10 us",
                        "hit ratio",
                        "pool subm.",
                        "cached at start",
                    ]
                )
            )
            lines.append(_md_row(["---"] + ["--:"] * 11))
            rows = [*e["workloads"].items(), ("total", e["total"])]
            for label, row in rows:
                lat = row["latency_us"]
                fp = row["fast_path"]
                lines.append(
                    _md_row(
                        [
                            f"{label} ({row['pattern']})" if "pattern" in row else "**total**",
                            f"{row['mb_per_s']:.1f}",
                            f"{row['reads']:,}",
                            _pct(row.get("read_share", 1.0)),
                            fmt_us(lat["p50"]),
                            fmt_us(lat["p90"]),
                            fmt_us(lat["p99"]),
                            fmt_us(lat["p99.9"]),
                            _pct(row["under_10us"]),
                            _pct(fp["hit_ratio"]) if fp else "—",
                            f"{row['pool_submissions']:,}",
                            (
                                f"{_pct(row['cached_at_start'])}→{_pct(row['cached_at_end'])}"
                                + (" pinned" if row["pinned"] == "pinned" else "")
                            )
                            if "cached_at_start" in row
                            else "",
                        ]
                    )
                )
            lines.append("")
    return "\n".join(lines)
