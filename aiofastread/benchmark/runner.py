"""The benchmark from start to end: place, build, run each engine, report.

Order of work (each step is one module's job):
    fsprobe / slowdev   where the data set lives (and how slow misses are)
    dataset             the files, built once and reused while sizes match
    child (per engine)  a fresh process sets the cache state and runs the mix
    report / plot       numbers, tables, JSON, PNG

Engines run one after the other, never together: each one gets the whole
machine and the same starting cache state (f1 warm, f2/f3 evicted, set by
the child right before its clock starts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

import aiofastread
from aiofastread.benchmark import (
    dataset,
    engines,
    fsprobe,
    noise,
    plot,
    report,
    slowdev,
    workload,
)
from aiofastread.benchmark.child import ChildConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.console import Console

VARIANTS: tuple[str, ...] = ("mixed", "all-cold")
# Warn above this 1-minute load average per CPU: half the machine is already
# taken by something else, which is enough to shift thread-pool numbers.
BUSY_LOAD_PER_CPU = 0.5
MiB = 1 << 20


class BenchError(RuntimeError):
    """A problem the user can fix; the CLI prints the message, no traceback."""


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    seconds: float
    directory: Path | None
    f1_size: int
    f2_size: int
    f3_size: int
    read_size: int
    tasks: dict[str, int]
    rates: dict[str, float]  # reads/s per workload; 0 = closed loop
    workers: int
    engines: list[str]
    engines_explicit: bool
    loop: str
    variants: list[str]
    theta: float
    seed: int
    keep_cold_interval: float
    pin: bool
    slow_device: int | None
    json_path: Path | None
    plot_path: Path | None
    markdown_path: Path | None
    progress: bool
    raw_dir: Path | None = None  # keep the children's raw files (bench/stall_trace.py reads them)
    switch_interval: float | None = None  # sys.setswitchinterval in each child, s

    def spec(self) -> dataset.DataSetSpec:
        return dataset.DataSetSpec(self.f1_size, self.f2_size, self.f3_size)


def _raw_directory(keep: Path | None) -> contextlib.AbstractContextManager[str]:
    """Where the children write their raw samples: ``keep`` (left in place)
    or a temporary directory removed afterwards."""
    if keep is None:
        return tempfile.TemporaryDirectory(prefix="aiofastread-bench-")
    keep.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(keep))


def _load_samples(path: str) -> array[int]:
    out: array[int] = array("q")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        out.fromfile(fh, size // out.itemsize)
    return out


def _child_env() -> dict[str, str]:
    # The child imports this very package, also from a source checkout that
    # is not installed: put its parent directory first on the path.
    env = dict(os.environ)
    root = str(Path(aiofastread.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run_child(
    cfg: ChildConfig, on_progress: Callable[[float, int], None] | None = None
) -> workload.RunResult:
    """Run one engine in a fresh interpreter and load what it measured.

    An independent sleeper process runs alongside as the control for loop
    stalls (noise.py).
    """
    noise_file = Path(cfg.out_dir) / f"{cfg.engine}-noise.bin"
    with contextlib.ExitStack() as stack:
        sleeper = stack.enter_context(
            subprocess.Popen(
                [sys.executable, "-m", "aiofastread.benchmark.noise", str(noise_file)],
                stdin=subprocess.PIPE,
                env=_child_env(),
            )
        )
        stack.callback(_stop_sleeper, sleeper)
        result = _run_engine_process(cfg, on_progress)
    run = _load_result(result)
    if noise_file.exists():
        ends, lates = noise.load(str(noise_file))
        run.noise = noise.analyse(
            run.heartbeat_ends,
            run.heartbeat,
            ends,
            lates,
            run.window,
            run.heartbeat_waits,
            run.heartbeat_misses,
        )
    return run


def _stop_sleeper(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()  # EOF: it writes its file and exits
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_engine_process(
    cfg: ChildConfig, on_progress: Callable[[float, int], None] | None
) -> dict[str, Any]:
    with tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiofastread.benchmark.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_child_env(),
        )
        try:
            result = _talk(proc, cfg, on_progress)
            code = proc.wait()
        finally:
            if proc.poll() is None:  # Ctrl-C or an error here: do not leave it running
                proc.kill()
                proc.wait()
        if code != 0 or result is None:
            err.seek(0)
            tail = err.read()[-3000:]
            raise BenchError(f"engine {cfg.engine} failed (exit code {code}):\n{tail}")
    return result


def _load_result(result: dict[str, Any]) -> workload.RunResult:
    return workload.RunResult(
        engine=result["engine"],
        seconds=float(result["seconds"]),
        workloads={
            name: workload.WorkloadResult(
                name,
                _load_samples(w["samples_file"]),
                bytes=int(w["bytes"]),
                reads=int(w["reads"]),
                pool_submissions=int(w["pool_submissions"]),
                file_statistics=w["file_statistics"],
            )
            for name, w in result["workloads"].items()
        },
        heartbeat=_load_samples(result["heartbeat_file"]),
        heartbeat_ends=_load_samples(result["heartbeat_ends_file"]),
        heartbeat_waits=_load_samples(result["heartbeat_waits_file"]),
        heartbeat_misses=_load_samples(result["heartbeat_misses_file"]),
        counters=result["counters"],
        cache_before=result["cache_before"],
        cache_after=result["cache_after"],
        pinned=result["pinned"],
        evictions=int(result["evictions"]),
        loop=str(result["loop"]),
        backend=str(result["backend"]),
        window=(int(result["window"][0]), int(result["window"][1])),
        steal_ms=result["steal_ms"],
    )


def _talk(
    proc: subprocess.Popen[str],
    cfg: ChildConfig,
    on_progress: Callable[[float, int], None] | None,
) -> dict[str, Any] | None:
    stdin: IO[str] | None = proc.stdin
    stdout: IO[str] | None = proc.stdout
    assert stdin is not None
    assert stdout is not None
    with contextlib.suppress(BrokenPipeError):
        stdin.write(cfg.to_json())
        stdin.close()
    result: dict[str, Any] | None = None
    for line in stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            continue  # stray output: not ours
        if "result" in msg:
            result = msg["result"]
        elif "progress" in msg and on_progress is not None:
            on_progress(float(msg["progress"]), int(msg["reads"]))
    return result


# -- placement ---------------------------------------------------------------------


def data_directory(cfg: BenchConfig) -> fsprobe.ProbeResult:
    """The probed directory for the data set (or the slow device's image)."""
    if cfg.directory is not None:
        result = fsprobe.probe_dir(cfg.directory)
        if not result.supported and cfg.slow_device is None:
            raise BenchError(fsprobe.unsupported_message([result]))
        if not result.path.is_dir():
            raise BenchError(f"--dir {cfg.directory}: not a directory")
        return result
    try:
        return fsprobe.find_nowait_dir(fsprobe.default_candidates())
    except fsprobe.NoNowaitDirError as exc:
        raise BenchError(str(exc)) from None


@contextlib.contextmanager
def placement(
    cfg: BenchConfig, console: Console
) -> Iterator[tuple[Path, str, slowdev.SlowDevice | None]]:
    """(data directory, its filesystem type, the slow device or None)."""
    where = data_directory(cfg)
    if cfg.slow_device is None:
        yield where.path, where.fstype, None
        return
    try:
        with slowdev.SlowDevice(cfg.slow_device, cfg.spec().total(), where.path) as dev:
            assert dev.mount_point is not None
            console.print(
                f"slow device: {dev.loop_dev} ({dev.dev_numbers}, direct-io "
                f"{'on' if dev.direct_io else 'off'}) mounted on {dev.mount_point}, "
                f"reads throttled to {cfg.slow_device} IOPS by {dev.throttle and dev.throttle.kind}"
            )
            cal = dev.verify()
            console.print(
                f"throttle verified: uncached 16 KiB reads at {cal.iops:.0f} IOPS "
                f"({cal.mean_ms:.2f} ms each on average, burst included)"
            )
            try:
                yield dev.mount_point, fsprobe.filesystem_type(dev.mount_point), dev
            finally:
                dev.leave()
        for problem in dev.teardown_errors:
            console.print(f"[red]slow device teardown:[/] {problem}")
    except slowdev.SlowDeviceError as exc:
        raise BenchError(f"--slow-device: {exc}") from None


# -- the run -----------------------------------------------------------------------


def select_engines(cfg: BenchConfig) -> tuple[list[str], dict[str, str]]:
    """Engines to run and those skipped (with why). An engine asked for by
    name that cannot run is an error; a default one is skipped with a note."""
    run: list[str] = []
    skipped: dict[str, str] = {}
    for name in cfg.engines:
        reason = engines.ENGINES[name].unavailable_reason()
        if reason is None:
            run.append(name)
        elif cfg.engines_explicit:
            raise BenchError(f"engine {name}: {reason}")
        else:
            skipped[name] = reason
    return run, skipped


def machine_info(fstype: str, directory: Path) -> dict[str, Any]:
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "aiofastread": getattr(aiofastread, "__version__", None) or _dist_version(),
        "backend": aiofastread.backend(),
        "filesystem": fstype,
        "directory": str(directory),
        "loadavg_start": _loadavg(),
    }


def _dist_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("aiofastread")
    except metadata.PackageNotFoundError:
        return None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def make_progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What ``run`` will do, checked before anything is built or started."""

    engines: list[str]
    skipped: dict[str, str]  # engine -> why it cannot run here
    layout: dict[str, dict[str, Any]]  # workload -> pattern, tasks, rate, file_size


def plan(cfg: BenchConfig) -> RunPlan:
    """Validate ``cfg``: a BenchError now rather than after the data set is built."""
    _check_plot(cfg)
    names, skipped = select_engines(cfg)
    if not names:
        raise BenchError("no engine to run")
    layout: dict[str, dict[str, Any]] = {
        name: {
            "pattern": workload.PATTERNS[name],
            "tasks": cfg.tasks[name],
            "rate": cfg.rates[name],
            "file_size": cfg.spec().sizes()[name],
        }
        for name in workload.WORKLOADS
        if cfg.tasks[name] > 0
    }
    if not layout:
        raise BenchError("every workload has 0 tasks: nothing to run")
    return RunPlan(names, skipped, layout)


def _check_plot(cfg: BenchConfig) -> None:
    if cfg.plot_path is not None and not plot.available():
        raise BenchError(plot.unavailable_message())


def warn_if_busy(err: Console) -> None:
    load = _loadavg()
    cpus = os.cpu_count() or 1
    if load is not None and load[0] > BUSY_LOAD_PER_CPU * cpus:
        err.print(
            f"[yellow]warning:[/] the machine is busy (load average {load[0]:.2f} on {cpus} "
            "CPUs): other processes take CPU time from the engines and the numbers will be noisy"
        )


def _build_data_set(
    cfg: BenchConfig, directory: Path, layout: dict[str, dict[str, Any]], bar: Progress
) -> list[workload.WorkloadSpec]:
    """The files (built or reused) and each workload's spec on them."""
    build = bar.add_task("building the data set", total=cfg.spec().total(), info="")
    ds = dataset.build(directory, cfg.spec(), progress=lambda n: bar.advance(build, n))
    bar.update(build, info=str(ds.directory))
    return [
        workload.WorkloadSpec(
            name,
            str(ds.path(name)),
            int(meta["file_size"]),
            int(meta["tasks"]),
            str(meta["pattern"]),
            float(meta["rate"]),
        )
        for name, meta in layout.items()
    ]


def _run_variants(
    cfg: BenchConfig,
    todo: RunPlan,
    specs: list[workload.WorkloadSpec],
    bar: Progress,
    *,
    slow: bool,
) -> dict[str, Any]:
    """Each variant's report: every engine run one after the other."""
    variants: dict[str, Any] = {}
    with _raw_directory(cfg.raw_dir) as tmp:
        for variant in cfg.variants:
            runs = [_run_engine(cfg, variant, name, specs, tmp, bar) for name in todo.engines]
            variants[variant] = report.variant_report(
                variant, runs, todo.layout, slow=slow, skipped=todo.skipped
            )
    return variants


def run(cfg: BenchConfig, argv: list[str], out: Console, err: Console) -> dict[str, Any]:
    """Run everything; return the report dict (also written/drawn if asked)."""
    todo = plan(cfg)
    started = time.time()
    warn_if_busy(err)
    with placement(cfg, err) as (directory, fstype, dev), make_progress(err, cfg.progress) as bar:
        machine = machine_info(fstype, directory)
        specs = _build_data_set(cfg, directory, todo.layout, bar)
        if dev is not None:
            dev.join()  # children inherit the cgroup: their reads are throttled
        variants = _run_variants(cfg, todo, specs, bar, slow=dev is not None)
        machine["loadavg_end"] = _loadavg()
    result: dict[str, Any] = {
        "version": report.REPORT_VERSION,
        "command": ["aiofastread", *argv],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine,
        "config": _config_json(cfg),
        "slow_device": dev.describe() if dev is not None else None,
        "variants": variants,
    }
    _output(cfg, result, out, err)
    return result


def _output(cfg: BenchConfig, result: dict[str, Any], out: Console, err: Console) -> None:
    """The tables on ``out``; the JSON, markdown and plot files asked for."""
    report.render(out, result)
    if cfg.json_path is not None:
        report.write_json(cfg.json_path, result)
        err.print(f"JSON report written to {cfg.json_path}")
    _write_outputs(cfg, result, err)


def show_saved(cfg: BenchConfig, path: Path, out: Console, err: Console) -> dict[str, Any]:
    """``--from-json``: the tables, plot and markdown of a saved report."""
    _check_plot(cfg)
    try:
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"--from-json {path}: {exc}") from None
    if result.get("version") != report.REPORT_VERSION:
        raise BenchError(f"--from-json {path}: not a version {report.REPORT_VERSION} report")
    report.render(out, result)
    _write_outputs(cfg, result, err)
    return result


def _write_outputs(cfg: BenchConfig, result: dict[str, Any], err: Console) -> None:
    if cfg.markdown_path is not None:
        cfg.markdown_path.write_text(report.to_markdown(result), encoding="utf-8")
        err.print(f"markdown tables written to {cfg.markdown_path}")
    if cfg.plot_path is not None:
        plot.plot_cdfs(result, cfg.plot_path, title=_plot_title(result))
        err.print(f"latency CDFs drawn in {cfg.plot_path}")


def _run_engine(
    cfg: BenchConfig,
    variant: str,
    name: str,
    specs: list[workload.WorkloadSpec],
    tmp: str,
    bar: Progress,
) -> workload.RunResult:
    paths = [s.path for s in specs]
    all_cold = variant == "all-cold"
    out_dir = Path(tmp) / variant
    out_dir.mkdir(exist_ok=True)
    child_cfg = ChildConfig(
        engine=name,
        workers=cfg.workers,
        loop=cfg.loop,
        seconds=cfg.seconds,
        read_size=cfg.read_size,
        theta=cfg.theta,
        seed=cfg.seed,
        specs=specs,
        warm=[] if all_cold else [s.path for s in specs if s.name == "f1"],
        cold=paths if all_cold else [s.path for s in specs if s.name != "f1"],
        keep_cold_interval=cfg.keep_cold_interval if all_cold else None,
        pin=cfg.pin,
        out_dir=str(out_dir),
        progress=True,
        switch_interval=cfg.switch_interval,
    )
    task = bar.add_task(f"{variant}: {engines.LABELS[name]}", total=1.0, info="starting")

    def on_progress(fraction: float, reads: int) -> None:
        elapsed = max(fraction * cfg.seconds, 1e-9)
        bar.update(task, completed=fraction, info=f"{reads:,} reads, {reads / elapsed:,.0f}/s")

    result = run_child(child_cfg, on_progress)
    total = sum(w.reads for w in result.workloads.values())
    bar.update(
        task, completed=1.0, info=f"{total:,} reads, {total / max(result.seconds, 1e-9):,.0f}/s"
    )
    return result


def _config_json(cfg: BenchConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    for key in ("directory", "json_path", "plot_path", "markdown_path", "raw_dir"):
        out[key] = None if out[key] is None else str(out[key])
    return out


def _plot_title(result: dict[str, Any]) -> str:
    m = result["machine"]
    cfg = result["config"]
    device = (
        f"slow device {result['slow_device']['iops_limit']} IOPS"
        if result["slow_device"]
        else m["filesystem"]
    )
    tasks = cfg["tasks"]
    return (
        f"aiofastread bench: {cfg['read_size'] // 1024} KiB reads, tasks f1/f2/f3 "
        f"{tasks.get('f1')}/{tasks.get('f2')}/{tasks.get('f3')}, {cfg['workers']} threads, "
        f"{device}, {cfg['loop']}, Linux {m['kernel']}, {m['cpus']} CPUs"
    )
