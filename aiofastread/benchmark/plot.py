"""Latency CDFs per workload and engine, one PNG (``--plot``; matplotlib extra).

Drawn from the report dict, so the picture shows exactly the JSON's CDFs.
A log x axis because the story spans five decades: inline hits in single
microseconds, thread hops in a hundred, throttled misses in tens of ms.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

# One colour per engine, the same in every panel (matplotlib's tab10).
COLORS = {
    "aiofastread": "tab:green",
    "nofast": "tab:blue",
    "executor": "tab:orange",
    "aiofiles": "tab:red",
}
# Marks on the x axis for orientation: 10 us (a handful of inline reads) and
# 100 us (about one thread hop on this VM, ../shared/DESIGN.md).
GUIDES_US = (10.0, 100.0)


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def unavailable_message() -> str:
    return "--plot needs matplotlib: pip install 'aiofastread[plot]'"


def plot_cdfs(report: Mapping[str, Any], path: str | os.PathLike[str], title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is assumed
    import matplotlib.pyplot as plt

    variants = report["variants"]
    workloads: list[str] = []
    for v in variants.values():
        for e in v["engines"].values():
            workloads.extend(w for w in e["workloads"] if w not in workloads)
    rows, cols = len(variants), max(len(workloads), 1)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.0 * cols, 4.6 * rows), squeeze=False, sharex=True, sharey=True
    )
    for r, (variant, v) in enumerate(variants.items()):
        for c, wname in enumerate(workloads):
            ax = axes[r][c]
            pattern = ""
            for ename, e in v["engines"].items():
                w = e["workloads"].get(wname)
                if w is None or not w["cdf"]:
                    continue
                pattern = w["pattern"]
                xs = [p[0] for p in w["cdf"]]
                ys = [p[1] for p in w["cdf"]]
                lat = w["latency_us"]
                ax.step(
                    xs,
                    ys,
                    where="post",
                    color=COLORS.get(ename),
                    linewidth=1.8,
                    label=f"{e['label']} (p50 {_short(lat['p50'])}, {w['mb_per_s']:.0f} MB/s)",
                )
            for g in GUIDES_US:
                ax.axvline(g, color="0.8", linewidth=0.8, zorder=0)
            ax.set_xscale("log")
            ax.set_ylim(0, 1.0)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{variant}: {wname} ({pattern})", fontsize=10)
            ax.set_xlabel("read latency (us, log scale)")
            ax.xaxis.set_tick_params(labelbottom=True)
            if c == 0:
                ax.set_ylabel("fraction of reads <= x")
            # Under the panel, not on it: the curves use the whole width.
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _short(us: float) -> str:
    if us < 1000:
        return f"{us:.0f} us" if us >= 10 else f"{us:.1f} us"
    return f"{us / 1000:.1f} ms"
