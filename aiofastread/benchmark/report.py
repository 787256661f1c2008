"""Numbers and their presentation: the JSON report, the rich tables, markdown.

Everything shown is computed once into a plain dict (``variant_report``),
which is both what ``--json`` writes and what the tables render, so the
screen and the file can never disagree.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from rich import box
from rich.table import Table

from aiofastread.benchmark import stats
from aiofastread.benchmark.engines import BASELINE, LABELS

if TYPE_CHECKING:
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


# -- the tables: one column list each, drawn by rich (terminal) and as markdown --------
# Markdown (docs/benchmarks.md) has room for longer headers and labels and two
# more columns; a header of None leaves a column out of that renderer.

R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Column(Generic[R]):
    """A table column: its header in each renderer and how a row's cell reads."""

    header: str | None  # in the terminal table
    md_header: str | None  # in the markdown table
    cell: Callable[[R], str]
    md_cell: Callable[[R], str] | None = None  # markdown's cell, where it differs

    def text(self, row: R, markdown: bool) -> str:
        if markdown and self.md_cell is not None:
            return self.md_cell(row)
        return self.cell(row)


class WorkloadRow(NamedTuple):
    """A row of an engine's table: one workload, or the engine's total."""

    label: str
    numbers: Mapping[str, Any]


class EngineRow(NamedTuple):
    """A row of a variant's comparison table."""

    name: str
    engine: Mapping[str, Any]
    comparison: Mapping[str, Any]


def _latency_column(key: str) -> Column[WorkloadRow]:
    return Column(key, key, lambda r: fmt_us(r.numbers["latency_us"][key]))


def _cached_cell(r: WorkloadRow) -> str:
    row = r.numbers
    if "cached_at_start" not in row:
        return ""
    pinned = " pinned" if row["pinned"] == "pinned" else ""
    return f"{_pct(row['cached_at_start'])}→{_pct(row['cached_at_end'])}{pinned}"


WORKLOAD_COLUMNS: tuple[Column[WorkloadRow], ...] = (
    Column(
        "",
        "workload",
        lambda r: (
            f"{r.label} {r.numbers['pattern'][:4]}" if "pattern" in r.numbers else "[bold]total[/]"
        ),
        md_cell=lambda r: (
            f"{r.label} ({r.numbers['pattern']})" if "pattern" in r.numbers else "**total**"
        ),
    ),
    Column("MB/s", "MB/s", lambda r: f"{r.numbers['mb_per_s']:.1f}"),
    Column("reads", "reads", lambda r: f"{r.numbers['reads']:,}"),
    Column("share", "share", lambda r: _pct(r.numbers.get("read_share", 1.0))),
    *(_latency_column(key) for key in ("p50", "p90", "p99", "p99.9")),
    Column("<10us", "< 10 us", lambda r: _pct(r.numbers["under_10us"])),
    Column(
        "hit",
        "hit ratio",
        lambda r: _pct(fp["hit_ratio"]) if (fp := r.numbers["fast_path"]) else "—",
    ),
    Column("pool", "pool subm.", lambda r: f"{r.numbers['pool_submissions']:,}"),
    Column(None, "cached at start", _cached_cell),
)


def _f1_column(header: str, md_header: str, cell: Callable[[Any], str]) -> Column[EngineRow]:
    """A column of the f1 workload's numbers ("—" for an engine without f1)."""

    def f1_cell(r: EngineRow) -> str:
        f1 = r.engine["workloads"].get("f1")
        return cell(f1) if f1 else "—"

    return Column(header, md_header, f1_cell)


def _fast_path_column(header: str, md_header: str, key: str) -> Column[EngineRow]:
    """A count of the engine's fast path ("—" for an engine without one)."""

    def fast_cell(r: EngineRow) -> str:
        fp = r.engine["total"]["fast_path"]
        return f"{fp[key]:,}" if fp else "—"

    return Column(header, md_header, fast_cell)


def _ratio_cell(r: EngineRow) -> str:
    ratio = r.comparison["bandwidth_ratio"].get(r.name)
    return "—" if ratio is None else f"{ratio:.2f}x"


def _unexplained_cell(r: EngineRow) -> str:
    unexplained = r.engine["stall_ms"].get("unexplained_worst")
    return "—" if unexplained is None else f"{unexplained:.2f} ms"


SUMMARY_COLUMNS: tuple[Column[EngineRow], ...] = (
    Column("engine", "engine", lambda r: str(r.engine["label"])),
    Column("MB/s", "total MB/s", lambda r: f"{r.engine['total']['mb_per_s']:.1f}"),
    Column("vs base", "vs baseline", _ratio_cell),
    _f1_column("f1 p50", "f1 p50", lambda f1: fmt_us(f1["latency_us"]["p50"])),
    _f1_column("f1 p99", "f1 p99", lambda f1: fmt_us(f1["latency_us"]["p99"])),
    _f1_column("f1 <10us", "f1 < 10 us", lambda f1: _pct(f1["under_10us"])),
    Column("stall", "worst loop stall", lambda r: f"{r.engine['stall_ms']['worst']:.2f} ms"),
    Column(None, "of which unexplained", _unexplained_cell),
    _fast_path_column("tries", "NOWAIT tries", "attempts"),
    _fast_path_column("avoided", "avoided", "attempts_avoided"),
)


def _shown(columns: Sequence[Column[R]], markdown: bool) -> list[tuple[str, Column[R]]]:
    """(header, column) of the columns the renderer shows."""
    out: list[tuple[str, Column[R]]] = []
    for col in columns:
        header = col.md_header if markdown else col.header
        if header is not None:
            out.append((header, col))
    return out


def workload_rows(e: Mapping[str, Any]) -> list[WorkloadRow]:
    return [
        *(WorkloadRow(w, row) for w, row in e["workloads"].items()),
        WorkloadRow("total", e["total"]),
    ]


def engine_rows(v: Mapping[str, Any]) -> list[EngineRow]:
    return [EngineRow(name, e, v["comparison"]) for name, e in v["engines"].items()]


# -- rich ----------------------------------------------------------------------------


def _rich_columns(table: Table, columns: Sequence[Column[R]], **first: Any) -> list[Column[R]]:
    """Add the terminal's columns: the first (row labels) left with ``first``'s
    options, the numbers right-aligned and never wrapped."""
    shown = _shown(columns, markdown=False)
    for i, (header, _) in enumerate(shown):
        if i == 0:
            table.add_column(header, justify="left", **first)
        else:
            table.add_column(header, justify="right", no_wrap=True)
    return [col for _, col in shown]


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
    columns = _rich_columns(table, WORKLOAD_COLUMNS, no_wrap=True)
    rows = workload_rows(e)
    for i, row in enumerate(rows):
        # a rule between the workloads and the total
        table.add_row(*(c.text(row, False) for c in columns), end_section=i == len(rows) - 2)
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
    base = v["comparison"]["baseline"]
    table = Table(
        title=f"[bold]{variant}: engines compared[/] (baseline: {LABELS.get(base, base)})",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
    )
    columns = _rich_columns(table, SUMMARY_COLUMNS, ratio=1)
    for row in engine_rows(v):
        table.add_row(*(c.text(row, False) for c in columns))
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


def _md_table(columns: Sequence[Column[R]], rows: Sequence[R]) -> list[str]:
    shown = _shown(columns, markdown=True)
    return [
        _md_row([header for header, _ in shown]),
        _md_row(["---"] + ["--:"] * (len(shown) - 1)),
        *(_md_row([col.text(row, True) for _, col in shown]) for row in rows),
    ]


def to_markdown(report: Mapping[str, Any]) -> str:
    """The report's tables as GitHub markdown: per variant, the comparison
    and then one table per engine (``--markdown``; docs/benchmarks.md)."""
    lines: list[str] = []
    for variant, v in report["variants"].items():
        base = v["comparison"]["baseline"]
        lines += [f"**{variant}: engines compared** (baseline: {LABELS.get(base, base)})", ""]
        lines += [*_md_table(SUMMARY_COLUMNS, engine_rows(v)), ""]
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
            lines += [*_md_table(WORKLOAD_COLUMNS, workload_rows(e)), ""]
    return "\n".join(lines)
