"""Tests of ``aiofastread bench`` (aiofastread/benchmark/): math, probe, data
set, report, and a short end-to-end run of the command. No timing asserts:
the numbers are checked for presence and consistency, never for speed."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import pytest

from aiofastread import _native, _native_pool
from aiofastread._cli import main as cli_main
from aiofastread.benchmark import cli, dataset, fsprobe, noise, report, slowdev, stats, workload
from aiofastread.benchmark import engines as engines_mod

HAS_MATPLOTLIB = __import__("importlib").util.find_spec("matplotlib") is not None
HAS_CACHESTAT = dataset.residency(__file__) is not None
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def backend() -> str:
    """Overrides conftest's per-backend parametrization: the benchmark runs its
    engines in subprocesses with the default backend, so once is enough."""
    return _native.backend.name


@pytest.fixture
def nowait_dir(tmp_path: Path) -> Path:
    result = fsprobe.probe_dir(tmp_path)
    if not result.supported:
        pytest.skip(f"{tmp_path} ({result.fstype}) has no RWF_NOWAIT: {result.reason}")
    return tmp_path


# -- stats --------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    data = list(range(1, 101))  # 1..100
    assert stats.percentile(data, 50) == 50
    assert stats.percentile(data, 90) == 90
    assert stats.percentile(data, 99) == 99
    assert stats.percentile(data, 99.9) == 100
    assert stats.percentile(data, 100) == 100
    assert stats.percentile(data, 0) == 1
    assert stats.percentile([7], 50) == 7
    assert stats.percentile([], 50) == 0
    # Always an observed value, never interpolated.
    assert stats.percentile([10, 20], 50) == 10
    assert stats.percentile([10, 20], 51) == 20
    with pytest.raises(ValueError, match="within"):
        stats.percentile(data, 101)


def test_share_below() -> None:
    data = [1_000, 5_000, 9_999, 10_000, 20_000]
    assert stats.share_below(data, stats.FAST_THRESHOLD_NS) == pytest.approx(3 / 5)
    assert stats.share_below(data, 0) == 0.0
    assert stats.share_below(data, 10**9) == 1.0
    assert stats.share_below([], 10) == 0.0


def test_summarize_in_microseconds() -> None:
    ns = sorted([2_000] * 70 + [150_000] * 29 + [5_000_000])
    s = stats.summarize(ns)
    assert s.count == 100
    assert s.p50_us == 2.0
    assert s.p90_us == 150.0
    assert s.p99_us == 150.0
    assert s.p999_us == 5000.0
    assert s.min_us == 2.0
    assert s.max_us == 5000.0
    assert s.under_10us == pytest.approx(0.70)
    assert s.mean_us == pytest.approx((70 * 2_000 + 29 * 150_000 + 5_000_000) / 100 / 1000)
    assert stats.summarize([]) == stats.LatencySummary.empty()


def test_cdf_points() -> None:
    rng = random.Random(3)
    ns = sorted(rng.randrange(1_000, 10_000_000) for _ in range(5_000))
    pts = stats.cdf_points(ns, points=50)
    assert len(pts) == 50
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    assert xs == sorted(xs)
    assert ys == sorted(ys)
    assert xs[0] == pytest.approx(ns[0] / 1000)
    assert xs[-1] == pytest.approx(ns[-1] / 1000)
    assert ys[-1] == 1.0
    for x, y in pts[::7]:  # each point is the exact empirical CDF at x
        assert y == sum(1 for v in ns if v <= x * 1000) / len(ns)
    assert stats.cdf_points([]) == []
    assert stats.cdf_points([5_000, 5_000]) == [(5.0, 1.0)]


def test_merge_sorted() -> None:
    assert stats.merge_sorted([array("q", [3, 1]), array("q", [2])]) == [1, 2, 3]


# -- offsets ----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["zipf", "uniform", "sequential"])
def test_offsets_are_aligned_in_range_and_reproducible(pattern: str) -> None:
    spec = workload.WorkloadSpec("fx", "/nonexistent", 100 * 16384 + 100, 3, pattern)

    def take() -> list[list[int]]:
        streams = workload.offset_streams(spec, 16384, 1.2, seed=5)
        return [[next(s) for _ in range(300)] for s in streams]

    first = take()
    assert first == take()
    assert len(first) == 3
    for offsets in first:
        assert all(o % 16384 == 0 and 0 <= o < 100 * 16384 for o in offsets)
    if pattern == "sequential":
        # Evenly spread starts, then +1 block, wrapping at the end.
        assert [o[0] // 16384 for o in first] == [0, 33, 66]
        assert first[0][:101] == [b * 16384 for b in [*range(100), 0]]


def test_zipf_is_skewed() -> None:
    spec = workload.WorkloadSpec("f1", "/nonexistent", 1000 * 16384, 1, "zipf")
    stream = workload.offset_streams(spec, 16384, 1.2, seed=1)[0]
    counts: dict[int, int] = {}
    for _ in range(20_000):
        o = next(stream)
        counts[o] = counts.get(o, 0) + 1
    top = sorted(counts.values(), reverse=True)
    # zipf(1.2) over 1000 ranks: rank 1 has ~22% of the mass, the top 10 ~56%.
    assert top[0] / 20_000 == pytest.approx(0.22, abs=0.03)
    assert sum(top[:10]) / 20_000 == pytest.approx(0.56, abs=0.04)


# -- noise control ----------------------------------------------------------------------


def test_noise_overlap_and_analysis() -> None:
    # Sleeper stalls: [100, 150] and [300, 400] (end, lateness pairs).
    ends, lates = [150, 400], [50, 100]
    assert noise.overlap_ns(0, 1000, ends, lates) == 150
    assert noise.overlap_ns(120, 350, ends, lates) == 30 + 50
    assert noise.overlap_ns(160, 290, ends, lates) == 0
    # Loop stalls: [90, 160] (70, of which 50 overlap) and [500, 530] (30).
    out = noise.analyse([160, 530], [70, 30], ends, lates, window=(0, 1000))
    assert out == {
        "machine_worst": 100 / 1e6,
        "run_queue_worst": 0.0,
        "run_queue_total": 0.0,
        "unexplained_worst": 30 / 1e6,
        "unexplained_worst_with_miss": 0.0,
    }
    assert noise.analyse([], [], ends, lates, window=(200, 350))["machine_worst"] == 0.0
    # The loop thread waited 25 ns for a CPU in the second stall: 5 unexplained;
    # in the first, 60 ns of run-queue wait beat the 50 ns overlap: 10 left.
    out = noise.analyse(
        [160, 530], [70, 30], ends, lates, (0, 1000), tick_waits=[60, 25], tick_misses=[0, 2]
    )
    assert out["unexplained_worst"] == 10 / 1e6
    assert out["unexplained_worst_with_miss"] == 5 / 1e6
    assert out["run_queue_worst"] == 60 / 1e6
    assert out["run_queue_total"] == 85 / 1e6


# -- fs probe ---------------------------------------------------------------------------


def test_probe_accepts_ext4(nowait_dir: Path) -> None:
    result = fsprobe.probe_dir(nowait_dir)
    assert result.supported
    assert result.reason == "ok"
    if fsprobe.filesystem_type(nowait_dir) != "ext4":
        pytest.skip(f"{nowait_dir} is {result.fstype}, not ext4")
    assert result.fstype == "ext4"
    assert fsprobe.find_nowait_dir(["/nonexistent-dir", nowait_dir]).path == nowait_dir
    assert list(nowait_dir.iterdir()) == []  # the probe file is gone


def test_probe_rejects_tmpfs_with_a_clear_message() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or fsprobe.filesystem_type(shm) != "tmpfs":
        pytest.skip("no /dev/shm on tmpfs here")
    result = fsprobe.probe_dir(shm)
    assert not result.supported
    assert result.fstype == "tmpfs"
    assert "EOPNOTSUPP" in result.reason
    with pytest.raises(fsprobe.NoNowaitDirError) as info:
        fsprobe.find_nowait_dir([shm])
    message = str(info.value)
    assert "/dev/shm (tmpfs)" in message
    assert "RWF_NOWAIT" in message
    assert "--dir" in message


def test_bench_refuses_tmpfs_dir_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    if fsprobe.filesystem_type("/dev/shm") != "tmpfs":
        pytest.skip("no /dev/shm on tmpfs here")
    code = cli_main(["bench", "--dir", "/dev/shm", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "EOPNOTSUPP" in err
    assert "--dir" in err


# -- data set ---------------------------------------------------------------------------


def test_dataset_builds_files_of_the_asked_sizes(nowait_dir: Path) -> None:
    spec = dataset.DataSetSpec(f1_size=3 << 20, f2_size=(5 << 20) + 123, f3_size=1 << 20)
    written: list[int] = []
    ds = dataset.build(nowait_dir, spec, progress=written.append)
    assert set(ds.files) == {"f1", "f2", "f3"}
    for name, size in spec.sizes().items():
        st = ds.path(name).stat()
        assert st.st_size == size
        assert st.st_blocks * 512 >= size  # real data, not a sparse file
    assert sum(written) == spec.total()
    # A second build with the same sizes reuses the files.
    mtimes = {n: ds.path(n).stat().st_mtime_ns for n in ds.files}
    ds2 = dataset.build(nowait_dir, spec)
    assert {n: ds2.path(n).stat().st_mtime_ns for n in ds2.files} == mtimes
    if HAS_CACHESTAT:  # residency by cachestat(2), never by timing
        assert dataset.residency(ds.path("f2")) == 0.0
        dataset.warm(ds.path("f1"))
        assert dataset.residency(ds.path("f1")) == 1.0
        dataset.evict(ds.path("f1"))
        assert dataset.residency(ds.path("f1")) == 0.0


def test_dataset_refuses_when_space_is_short(
    nowait_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = type("usage", (), {"free": 1 << 20, "total": 1 << 30, "used": 0})
    monkeypatch.setattr("shutil.disk_usage", lambda _p: usage)
    with pytest.raises(dataset.DataSetError, match="--dir"):
        dataset.build(nowait_dir, dataset.DataSetSpec(1 << 20, 1 << 20, 1 << 20))


# -- slow device ------------------------------------------------------------------------


def test_slow_device_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(slowdev.SlowDeviceError, match="needs root"):
        slowdev.check_supported()


def test_slow_device_refuses_without_loop_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(slowdev, "_which", lambda tool: f"/usr/sbin/{tool}")
    real_exists = os.path.exists
    monkeypatch.setattr(
        "os.path.exists", lambda p: False if p == "/dev/loop-control" else real_exists(p)
    )
    with pytest.raises(slowdev.SlowDeviceError, match="loop devices"):
        slowdev.check_supported()


def test_slow_device_refuses_without_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slowdev, "_mounts", lambda: [("/", "ext4", {"rw"})])
    with pytest.raises(slowdev.SlowDeviceError, match="no block I/O throttle"):
        slowdev.find_throttle()


def _slow_device_possible() -> str | None:
    try:
        slowdev.check_supported()
    except slowdev.SlowDeviceError as exc:
        return str(exc)
    return None


@pytest.mark.root
def test_slow_device_is_throttled_and_torn_down(nowait_dir: Path) -> None:
    reason = _slow_device_possible()
    if reason is not None:
        pytest.skip(reason)
    iops = 200
    with slowdev.SlowDevice(iops, 64 << 20, nowait_dir) as dev:
        assert dev.mount_point is not None
        assert dev.mount_point.is_dir()
        assert fsprobe.probe_dir(dev.mount_point).supported
        cal = dev.verify()
        assert cal.reads > 0
        loop_dev, mount_point = dev.loop_dev, dev.mount_point
        cgroup = dev.throttle.path if dev.throttle else None
    assert dev.teardown_errors == []
    assert not mount_point.exists()
    assert cgroup is not None
    assert not cgroup.exists()
    attached = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert f"{loop_dev}:" not in attached
    assert list(nowait_dir.iterdir()) == []  # the image is gone


# -- report -----------------------------------------------------------------------------


def _fake_run(engine: str, f1_fast: bool) -> workload.RunResult:
    rng = random.Random(engine)
    results = {}
    for name in ("f1", "f2", "f3"):
        base = 3_000 if (name == "f1" and f1_fast) else 200_000
        samples = array("q", (base + rng.randrange(base) for _ in range(1_000)))
        fs = None
        if engine in ("aiofastread", "nofast"):
            hits = 1_000 if (name == "f1" and f1_fast) else 0
            fs = {
                "state": "warm",
                "hit_ratio": 1.0,
                "inline_hits": hits,
                "inline_misses": 0,
                "short_reads": 0,
                "skipped_cold": 0,
                "unsupported": 0,
                "residency_checks": 1,
                "pool_reads": 1_000 - hits,
                "bytes_inline": hits * 16384,
                "bytes_pooled": (1_000 - hits) * 16384,
            }
        results[name] = workload.WorkloadResult(
            name,
            samples,
            bytes=1_000 * 16384,
            reads=1_000,
            pool_submissions=1_000,
            file_statistics=fs,
        )
    return workload.RunResult(
        engine=engine,
        seconds=2.0,
        workloads=results,
        heartbeat=array("q", [100_000, 2_000_000, 50_000]),
        heartbeat_ends=array("q", [1, 2, 3]),
        heartbeat_waits=array("q", [0, 0, 0]),
        heartbeat_misses=array("q", [0, 1, 0]),
        counters={"pool_submissions": 2_000},
        cache_before={"f1": 1.0, "f2": 0.0, "f3": 0.0},
        cache_after={"f1": 1.0, "f2": 0.01, "f3": 0.2},
        pinned={"f1": "pinned"},
        loop="asyncio.unix_events._UnixSelectorEventLoop",
        backend="native",
        noise={
            "machine_worst": 1.5,
            "run_queue_worst": 0.2,
            "run_queue_total": 0.3,
            "unexplained_worst": 0.5,
            "unexplained_worst_with_miss": 0.5,
        },
        steal_ms=0.0,
    )


LAYOUT = {
    "f1": {"pattern": "zipf", "tasks": 16, "file_size": 1 << 20},
    "f2": {"pattern": "uniform", "tasks": 4, "file_size": 1 << 20},
    "f3": {"pattern": "sequential", "tasks": 2, "file_size": 1 << 20},
}
WORKLOAD_FIELDS = {
    "pattern", "tasks", "rate", "file_size", "reads", "bytes", "mb_per_s", "read_share",
    "latency_us", "under_10us", "fast_path", "pool_submissions", "cached_at_start", "cached_at_end",
    "pinned", "wrapped",
    "cdf",
}  # fmt: skip
LATENCY_FIELDS = {"count", "mean", "min", "p50", "p90", "p99", "p99.9", "max"}
STALL_FIELDS = {
    "worst", "p99.9", "p99", "p50", "ticks", "machine_worst", "run_queue_worst",
    "run_queue_total", "unexplained_worst", "unexplained_worst_with_inline_miss", "cpu_steal",
    "ticks_with_inline_miss",
    "worst_with_inline_miss",
}  # fmt: skip
FAST_PATH_FIELDS = {
    "hit_ratio", "inline_hits", "inline_misses", "short_reads", "attempts", "attempts_avoided",
    "skipped_cold", "residency_checks", "state_after",
}  # fmt: skip


def check_report(data: dict[str, Any], engines: list[str], variants: list[str]) -> None:
    """Every field the issue asks for, in every engine and workload."""
    assert {"version", "command", "started", "machine", "config", "slow_device", "variants"} <= set(
        data
    )
    assert list(data["variants"]) == variants
    for v in data["variants"].values():
        assert list(v["engines"]) == engines
        assert set(v["comparison"]) == {"baseline", "bandwidth_ratio", "f1_p50_ratio"}
        assert set(v["comparison"]["bandwidth_ratio"]) == set(engines)
        for name, e in v["engines"].items():
            assert set(e["stall_ms"]) == STALL_FIELDS
            assert set(e["total"]) >= {"reads", "bytes", "mb_per_s", "latency_us", "fast_path"}
            assert e["total"]["reads"] == sum(w["reads"] for w in e["workloads"].values())
            for w in e["workloads"].values():
                assert set(w) == WORKLOAD_FIELDS
                assert set(w["latency_us"]) == LATENCY_FIELDS
                assert w["latency_us"]["count"] == w["reads"] > 0
                assert w["cdf"]
                assert w["cdf"][-1][1] == 1.0
                if name in ("aiofastread", "nofast"):
                    assert set(w["fast_path"]) == FAST_PATH_FIELDS
                else:
                    assert w["fast_path"] is None


def test_report_has_every_field(tmp_path: Path) -> None:
    runs = [
        _fake_run("aiofastread", True),
        _fake_run("nofast", False),
        _fake_run("executor", False),
    ]
    v = report.variant_report("mixed", runs, LAYOUT, slow=True)
    data = {
        "version": report.REPORT_VERSION,
        "command": ["aiofastread", "bench"],
        "started": "now",
        "machine": {},
        "config": {},
        "slow_device": None,
        "variants": {"mixed": v},
    }
    path = tmp_path / "out.json"
    report.write_json(path, data)
    loaded = json.loads(path.read_text())
    check_report(loaded, ["aiofastread", "nofast", "executor"], ["mixed"])
    e = loaded["variants"]["mixed"]["engines"]
    assert e["aiofastread"]["workloads"]["f1"]["fast_path"]["hit_ratio"] == 1.0
    assert e["aiofastread"]["workloads"]["f1"]["fast_path"]["attempts_avoided"] == 0
    assert e["nofast"]["workloads"]["f1"]["fast_path"]["attempts_avoided"] == 1_000
    assert e["aiofastread"]["stall_ms"]["worst"] == 2.0
    assert e["aiofastread"]["stall_ms"]["worst_with_inline_miss"] == 2.0
    assert e["aiofastread"]["stall_ms"]["ticks_with_inline_miss"] == 1
    assert e["aiofastread"]["total"]["mb_per_s"] == pytest.approx(3 * 16.384 / 2, abs=1e-3)
    comp = loaded["variants"]["mixed"]["comparison"]
    assert comp["baseline"] == "nofast"
    assert comp["bandwidth_ratio"]["nofast"] == 1.0
    criteria = {c["what"]: c for c in loaded["variants"]["mixed"]["criteria"]}
    assert criteria["aiofastread f1 p50"]["passed"] is True
    assert criteria["baseline f1 p50"]["passed"] is True
    assert criteria["aiofastread worst loop stall"]["passed"] is True


def test_report_renders() -> None:
    from rich.console import Console

    runs = [_fake_run("aiofastread", True), _fake_run("nofast", False)]
    data = {"variants": {"mixed": report.variant_report("mixed", runs, LAYOUT, slow=False)}}
    console = Console(width=120, record=True)
    report.render(console, data)
    text = console.export_text()
    assert "aiofastread, fast path off" in text
    assert "f1 zipf" in text
    assert "worst loop stall" in text


def test_markdown_shows_the_terminal_tables_numbers() -> None:
    """One column list, two renderers: each markdown row has its header's cell
    count, and a workload's row carries the terminal row's cells in order."""
    import re

    from rich.console import Console

    runs = [_fake_run("aiofastread", True), _fake_run("nofast", False)]
    v = report.variant_report("mixed", runs, LAYOUT, slow=True)
    markdown = report.to_markdown({"variants": {"mixed": v}})
    tables = [t.splitlines() for t in re.findall(r"(?:^\|.*\|\n?)+", markdown, re.M)]
    assert len(tables) == 3  # the comparison, then one per engine
    for table in tables:
        assert {line.count(" | ") for line in table} == {table[0].count(" | ")}
    console = Console(width=200, record=True)
    console.print(report.engine_table("aiofastread", v["engines"]["aiofastread"], "mixed"))
    terminal = next(line for line in console.export_text().splitlines() if "f1 zipf" in line)
    md_row = next(line for line in tables[1] if line.startswith("| f1 (zipf) |"))
    md_cells = [c.strip() for c in md_row.strip("|").split("|")]
    assert re.split(r"\s{2,}", terminal.strip())[1:] == md_cells[1:-1]  # less "cached at start"


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed")
def test_plot_writes_png(tmp_path: Path) -> None:
    from aiofastread.benchmark import plot

    runs = [_fake_run("aiofastread", True), _fake_run("nofast", False)]
    data = {"variants": {"mixed": report.variant_report("mixed", runs, LAYOUT, slow=False)}}
    path = tmp_path / "cdf.png"
    plot.plot_cdfs(data, path, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- command line -------------------------------------------------------------------------


def test_parse_size() -> None:
    assert cli.parse_size("16K") == 16384
    assert cli.parse_size("256M") == 256 << 20
    assert cli.parse_size("1G") == 1 << 30
    assert cli.parse_size("1.5g") == 3 << 29
    assert cli.parse_size("4096") == 4096
    assert cli.parse_size("64KiB") == 64 << 10
    for bad in ("", "x", "-1K", "0"):
        with pytest.raises(Exception, match="size"):
            cli.parse_size(bad)


def test_cli_usage_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert cli_main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert cli_main([]) == 2


def test_config_defaults_follow_the_issue() -> None:
    args = cli.build_parser().parse_args([])
    cfg = cli.config_from_args(args)
    assert cfg.read_size == 16384
    assert cfg.tasks == {"f1": 16, "f2": 4, "f3": 2}  # 73/18/9 % of the tasks
    assert cfg.engines == ["aiofastread", "nofast", "executor", "aiofiles"]
    assert cfg.variants == ["mixed"]
    assert cli.config_from_args(cli.build_parser().parse_args(["--all-cold"])).variants == [
        "all-cold"
    ]
    assert dataclasses.asdict(cfg)  # serializable for the JSON report


def test_switch_interval_reaches_the_child_config(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["--switch-interval", "0.5"])
    cli._check(args, parser)
    assert cli.config_from_args(args).switch_interval == pytest.approx(0.0005)
    assert cli.config_from_args(parser.parse_args([])).switch_interval is None
    with pytest.raises(SystemExit):
        cli._check(parser.parse_args(["--switch-interval", "0"]), parser)
    assert "--switch-interval must be a positive" in capsys.readouterr().err


def test_end_to_end_short_run(nowait_dir: Path) -> None:
    """`python -m aiofastread bench` for 1 s per engine and variant, tiny sizes."""
    out_json = nowait_dir / "out.json"
    out_png = nowait_dir / "out.png"
    data_dir = nowait_dir / "data"
    data_dir.mkdir()
    argv = [
        sys.executable, "-m", "aiofastread", "bench",
        "--seconds", "1", "--dir", str(data_dir),
        "--f1-size", "1M", "--f2-size", "4M", "--f3-size", "2M",
        "--f1-tasks", "4", "--f2-tasks", "2", "--f3-tasks", "1", "--workers", "4",
        "--json", str(out_json), "--no-progress", "--raw", str(nowait_dir / "raw"),
    ]  # fmt: skip
    if HAS_MATPLOTLIB:
        argv += ["--plot", str(out_png)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out_json.read_text())
    engines = ["aiofastread", "nofast", "executor"]
    if __import__("importlib").util.find_spec("aiofiles") is not None:
        engines.append("aiofiles")
    check_report(data, engines, ["mixed"])
    for v in data["variants"].values():
        for e in v["engines"].values():
            for w in e["workloads"].values():
                assert w["reads"] > 0
    mixed = data["variants"]["mixed"]["engines"]
    # The fast path ran where it should and nowhere else (counters, not timing).
    assert mixed["nofast"]["total"]["fast_path"]["attempts"] == 0
    assert mixed["aiofastread"]["workloads"]["f1"]["cached_at_start"] in (1.0, None)
    assert data["config"]["seconds"] == 1.0
    assert "engines compared" in proc.stdout
    # --raw kept each child's files: its pid (not ours) and one lateness per tick.
    for engine in engines:
        child = json.loads((nowait_dir / "raw" / "mixed" / f"{engine}-child.json").read_text())
        assert child["pid"] != os.getpid()
        lates = (nowait_dir / "raw" / "mixed" / f"{engine}-heartbeat.lat").stat().st_size
        ends = (nowait_dir / "raw" / "mixed" / f"{engine}-heartbeat-ends.lat").stat().st_size
        assert lates == ends > 0
    if HAS_MATPLOTLIB:
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The saved report renders again without running anything.
    out_md = nowait_dir / "out.md"
    assert cli_main(["bench", "--from-json", str(out_json), "--markdown", str(out_md)]) == 0
    assert "engines compared" in out_md.read_text()


@pytest.mark.asyncio
@pytest.mark.parametrize("engine_name", ["aiofastread", "executor", "pythreads"])
async def test_all_cold_run_keeps_files_cold(
    nowait_dir: Path, engine_name: str, backend: str
) -> None:
    """The all-cold variant in-process: every read counted, keep-cold passes
    made, and nothing stays cached (residency by cachestat, not timing).
    Misses reach the native miss pool's C threads only from the aiofastread
    engine on the native backend ("pythreads" is that engine without them)."""
    spec = dataset.DataSetSpec(1 << 20, 2 << 20, 1 << 20)
    ds = dataset.build(nowait_dir, spec)
    specs = [
        workload.WorkloadSpec(n, str(ds.path(n)), spec.sizes()[n], 2, workload.PATTERNS[n])
        for n in workload.WORKLOADS
    ]
    engine = engines_mod.make_engine(engine_name, 2)
    native_before = _native_pool.counters()[0]
    engine.start()
    try:
        run = await workload.run_mix(
            engine, specs, seconds=0.3, read_size=16384, theta=1.2, seed=1, warm=[],
            cold=[s.path for s in specs], keep_cold_interval=0.01,
        )  # fmt: skip
    finally:
        engine.stop()
    native_reads = _native_pool.counters()[0] - native_before
    assert (native_reads > 0) == (engine_name == "aiofastread" and backend == "native")
    assert (backend == "native") == _native.backend.native_pool  # stop() turned it back on
    assert run.evictions > 0
    assert all(w.reads > 0 for w in run.workloads.values())
    assert sum(w.reads for w in run.workloads.values()) == len(
        stats.merge_sorted([w.samples for w in run.workloads.values()])
    )
    if HAS_CACHESTAT:
        assert all(v == 0.0 for v in run.cache_before.values())


def test_errno_names() -> None:
    err = OSError(errno.EOPNOTSUPP, "x")
    assert fsprobe._errno_name(err).startswith("EOPNOTSUPP")
    assert fsprobe._errno_name(OSError(errno.EPERM, "x")) == "EPERM"


def test_stream_workload_end_to_end(nowait_dir: Path) -> None:
    """`aiofastread bench --workload stream`, tiny files: every cell streams
    every byte; the thread-pool baseline reads nothing inline and asks for
    no readahead; warm aiofastread is served inline (counters, not timing)."""
    out_json = nowait_dir / "stream.json"
    out_md = nowait_dir / "stream.md"
    data_dir = nowait_dir / "data"
    data_dir.mkdir()
    argv = [
        sys.executable, "-m", "aiofastread", "bench", "--workload", "stream",
        "--dir", str(data_dir), "--stream-tasks", "2", "--stream-size", "2M",
        "--stream-chunks", "64K,1M", "--engines", "aiofastread,nofast,noahead",
        "--json", str(out_json), "--markdown", str(out_md), "--no-progress",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(out_json.read_text())["cells"]
    keys = {(c["engine"], c["cache"], c["chunk"]) for c in cells}
    assert keys == {
        (e, cache, chunk)
        for e in ("aiofastread", "nofast", "noahead")
        for cache in ("warm", "cold")
        for chunk in (64 << 10, 1 << 20)
    }
    for c in cells:
        assert c["nbytes"] == 2 * (2 << 20)
        if c["engine"] == "nofast":
            assert (c["inline_share"], c["readahead_jobs"]) == (0.0, 0)
        if c["engine"] == "noahead":
            assert c["readahead_jobs"] == 0
        if c["engine"] == "aiofastread" and c["cache"] == "warm" and _native.backend.name != "pool":
            assert c["inline_share"] > 0.5
    assert "| warm | 64 KiB | aiofastread |" in out_md.read_text()
