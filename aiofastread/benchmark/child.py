"""One engine's run, in a process of its own (``python -m aiofastread.benchmark.child``).

Each engine runs in a fresh interpreter so that none inherits another's
state: aiofastread's per-file policy (what it learned about f1/f2/f3), pool
threads, executor threads still winding down, heap and GC generations. The
parent also draws the progress bar from its own process, so rendering never
takes the GIL from the loop being measured.

Protocol: a JSON config on stdin; JSON lines on stdout, ``{"progress": f,
"reads": n}`` while running and one ``{"result": {...}}`` at the end.
Latency samples go to files in ``out_dir`` (raw native int64 arrays).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiofastread
from aiofastread.benchmark import engines, workload

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ChildConfig:
    engine: str
    workers: int
    loop: str  # "asyncio" | "uvloop"
    seconds: float
    read_size: int
    theta: float
    seed: int
    specs: list[workload.WorkloadSpec]
    warm: list[str]
    cold: list[str]
    keep_cold_interval: float | None
    pin: bool
    out_dir: str
    progress: bool
    switch_interval: float | None = None  # sys.setswitchinterval for the run, s

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ChildConfig:
        raw = json.loads(text)
        raw["specs"] = [workload.WorkloadSpec(**s) for s in raw["specs"]]
        return cls(**raw)


def run_loop(loop_name: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new asyncio or uvloop loop (Python 3.10 has no Runner)."""
    factory: Callable[[], asyncio.AbstractEventLoop]
    if loop_name == "uvloop":
        import uvloop  # optional: only --loop uvloop needs it

        factory = uvloop.new_event_loop
    elif loop_name == "asyncio":
        factory = asyncio.new_event_loop
    else:
        main.close()
        raise ValueError(f"loop must be 'asyncio' or 'uvloop', got {loop_name!r}")
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(cfg: ChildConfig) -> dict[str, Any]:
    """Run the mix once with ``cfg.engine``; return the result message."""
    engine = engines.make_engine(cfg.engine, cfg.workers)
    loop_impl = ""
    if cfg.switch_interval is not None:
        # How soon a pool thread waiting for the GIL makes a busy loop thread
        # hand it over (docs/benchmarks.md, "Misses behind a saturated loop").
        sys.setswitchinterval(cfg.switch_interval)

    def tick(fraction: float, reads: int) -> None:
        _emit({"progress": fraction, "reads": reads})

    async def main() -> workload.RunResult:
        nonlocal loop_impl
        cls = type(asyncio.get_running_loop())
        loop_impl = f"{cls.__module__}.{cls.__qualname__}"
        return await workload.run_mix(
            engine,
            cfg.specs,
            seconds=cfg.seconds,
            read_size=cfg.read_size,
            theta=cfg.theta,
            seed=cfg.seed,
            warm=cfg.warm,
            cold=cfg.cold,
            keep_cold_interval=cfg.keep_cold_interval,
            pin=cfg.pin,
            tick=tick if cfg.progress else None,
        )

    engine.start()
    try:
        result = run_loop(cfg.loop, main())
    finally:
        engine.stop()
    out = Path(cfg.out_dir)
    workloads: dict[str, Any] = {}
    for name, w in result.workloads.items():
        samples_file = out / f"{cfg.engine}-{name}.lat"
        with open(samples_file, "wb") as fh:
            w.samples.tofile(fh)
        workloads[name] = {
            "bytes": w.bytes,
            "reads": w.reads,
            "pool_submissions": w.pool_submissions,
            "file_statistics": w.file_statistics,
            "samples_file": str(samples_file),
        }
    heartbeat_file = out / f"{cfg.engine}-heartbeat.lat"
    with open(heartbeat_file, "wb") as fh:
        result.heartbeat.tofile(fh)
    heartbeat_ends_file = out / f"{cfg.engine}-heartbeat-ends.lat"
    with open(heartbeat_ends_file, "wb") as fh:
        result.heartbeat_ends.tofile(fh)
    heartbeat_waits_file = out / f"{cfg.engine}-heartbeat-waits.lat"
    with open(heartbeat_waits_file, "wb") as fh:
        result.heartbeat_waits.tofile(fh)
    heartbeat_misses_file = out / f"{cfg.engine}-heartbeat-misses.lat"
    with open(heartbeat_misses_file, "wb") as fh:
        result.heartbeat_misses.tofile(fh)
    # Who ran the loop, and when (bench/stall_trace.py matches it to a trace).
    with open(out / f"{cfg.engine}-child.json", "w", encoding="utf-8") as meta:
        json.dump({"pid": os.getpid(), "window": list(result.window)}, meta)
    return {
        "engine": cfg.engine,
        "seconds": result.seconds,
        "counters": result.counters,
        "cache_before": result.cache_before,
        "cache_after": result.cache_after,
        "pinned": result.pinned,
        "evictions": result.evictions,
        "workloads": workloads,
        "heartbeat_file": str(heartbeat_file),
        "heartbeat_ends_file": str(heartbeat_ends_file),
        "heartbeat_waits_file": str(heartbeat_waits_file),
        "heartbeat_misses_file": str(heartbeat_misses_file),
        "window": list(result.window),
        "steal_ms": result.steal_ms,
        "loop": loop_impl,
        "backend": aiofastread.backend(),
        "pid": os.getpid(),
    }


def main() -> int:
    cfg = ChildConfig.from_json(sys.stdin.read())
    _emit({"result": run(cfg)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        sys.exit(130)
