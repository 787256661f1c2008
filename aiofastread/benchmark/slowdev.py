"""The slow device: a loop-mounted ext4 whose reads are throttled to N IOPS.

On a fast SSD (or a VM disk backed by the host's page cache) an uncached
16 KiB read costs ~150 us, so a miss barely hurts and the experiment shows
little. Disks and network filesystems answer in milliseconds. This module
builds such a device out of parts every Linux root has:

* a sparse image file, attached with ``losetup --direct-io=on`` (so the
  image's own pages are not cached a second time in the page cache of the
  filesystem under it: an evicted page must really be read again);
* ``mkfs.ext4`` and a mount in a temporary directory;
* a cgroup whose reads from that loop device are throttled: cgroup v1
  ``blkio.throttle.read_iops_device`` or, where the io controller is on the
  unified hierarchy, v2 ``io.max riops=``. The benchmark process joins it,
  so its pool threads (which inherit it) are throttled too. Buffered reads
  are issued synchronously by the reading thread, so their bios carry that
  thread's cgroup and the throttle applies to them.

``SlowDevice`` is a context manager: everything set up is torn down in
reverse order on exit, also on Ctrl-C, and the throttle is checked by
measurement before it is used (``verify``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

# The image is sparse; it grows by what is written. Headroom over the data
# set covers ext4's metadata (inode tables, journal: ~3% plus 64-128 MiB at
# these sizes) and the calibration file.
IMAGE_OVERHEAD_BYTES = 256 << 20
IMAGE_OVERHEAD_RATIO = 1.10
# Calibration: serial uncached 16 KiB reads for about this long at the
# limit. blk-throttle lets a slice's budget through in a burst (100 ms slices
# on rotational devices such as loop); the rate is taken over the last two
# thirds, well past it.
CALIBRATION_SECONDS = 0.9
CALIBRATION_READ = 16 << 10
# The throttle counts as working when measured IOPS <= limit * this. The
# unthrottled loop device does ~6000 IOPS on this VM (~150 us a read), so
# for the limits that matter (100s of IOPS) the difference is 10-50x.
VERIFY_TOLERANCE = 1.5
# rmdir of a cgroup can fail with EBUSY for a moment after its last task
# left (the kernel releases it asynchronously); umount likewise right after
# files were closed. Retry this many times, this far apart.
RETRIES = 20
RETRY_SLEEP = 0.05

CGROUP_NAME_PREFIX = "aiofastread-bench-"


class SlowDeviceError(RuntimeError):
    """The slow device cannot be set up here; the message says why."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Serial uncached reads through the throttle.

    ``steady_*`` leaves out the first third of the reads: blk-throttle lets
    a slice's budget (limit x 100 ms) through at once when the cgroup starts,
    and that burst is not what the device does under sustained load.
    """

    reads: int
    seconds: float
    steady_reads: int
    steady_seconds: float

    @property
    def iops(self) -> float:
        if self.steady_seconds <= 0:
            return float("inf")
        return self.steady_reads / self.steady_seconds

    @property
    def mean_ms(self) -> float:
        return self.seconds / self.reads * 1000.0 if self.reads else 0.0


Runner = Callable[[list[str]], str]


def run_tool(argv: list[str]) -> str:
    """Run a system tool; its stderr becomes the error message on failure."""
    try:
        proc = subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SlowDeviceError(f"{argv[0]} not found: {exc}") from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()
        raise SlowDeviceError(f"`{' '.join(argv)}` failed: {detail}") from exc
    return proc.stdout


def _which(tool: str) -> str | None:
    # Root's PATH usually has the sbin directories; sudo -E or a minimal
    # environment may not.
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


# -- throttles ------------------------------------------------------------------


class Throttle:
    """A child cgroup that limits read IOPS on one device; the process joins it."""

    kind = "abstract"

    def __init__(self, root: Path, parent_rel: str) -> None:
        self.root = root
        self.parent = root / parent_rel.lstrip("/")
        self.path = self.parent / f"{CGROUP_NAME_PREFIX}{os.getpid()}"
        self.joined = False

    def create(self, dev: str, iops: int) -> None:
        raise NotImplementedError

    def join(self) -> None:
        """Move the whole process (every thread) into the throttled cgroup."""
        _write(self.path / "cgroup.procs", str(os.getpid()))
        self.joined = True

    def leave(self) -> None:
        """Move the process back where it was (before the cgroup is removed)."""
        if self.joined:
            _write(self.parent / "cgroup.procs", str(os.getpid()))
            self.joined = False

    def remove(self) -> None:
        if not self.path.exists():
            return
        for attempt in range(RETRIES):
            try:
                self.path.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == RETRIES - 1:
                    raise
                time.sleep(RETRY_SLEEP)

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


class CgroupV1Throttle(Throttle):
    kind = "cgroup v1 blkio.throttle.read_iops_device"

    def create(self, dev: str, iops: int) -> None:
        self.path.mkdir()
        _write(self.path / "blkio.throttle.read_iops_device", f"{dev} {iops}")


class CgroupV2Throttle(Throttle):
    kind = "cgroup v2 io.max riops"

    def create(self, dev: str, iops: int) -> None:
        # The io controller must be enabled for children of the parent; in a
        # non-root cgroup that holds processes the kernel refuses (EBUSY,
        # "no internal processes"), which ends up as a clear error below.
        try:
            _write(self.parent / "cgroup.subtree_control", "+io")
        except OSError as exc:
            raise SlowDeviceError(
                f"cannot enable the io controller in {self.parent}: {exc.strerror}"
            ) from exc
        self.path.mkdir()
        _write(self.path / "io.max", f"{dev} riops={iops}")


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every mount."""
    out: list[tuple[str, str, set[str]]] = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) >= 5 and len(rfields) >= 3:
                out.append((fields[4], rfields[0], set(rfields[2].split(","))))
    return out


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup", encoding="ascii") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for controller in parts[1].split(",") if parts[1] else [""]:
                    out[controller] = parts[2]
    return out


def find_throttle() -> Throttle:
    """The read throttle this machine offers, or SlowDeviceError saying why not."""
    mounts = _mounts()
    own = _own_cgroups()
    for mount_point, fstype, opts in mounts:
        if fstype == "cgroup" and "blkio" in opts:
            root = Path(mount_point)
            if (root / "blkio.throttle.read_iops_device").exists():
                return CgroupV1Throttle(root, own.get("blkio", "/"))
    for mount_point, fstype, _opts in mounts:
        if fstype == "cgroup2":
            root = Path(mount_point)
            rel = own.get("", "/")
            try:
                controllers = (root / rel.lstrip("/") / "cgroup.controllers").read_text()
            except OSError:
                continue
            if "io" in controllers.split():
                return CgroupV2Throttle(root, rel)
    raise SlowDeviceError(
        "no block I/O throttle: neither a cgroup v1 blkio hierarchy with "
        "blkio.throttle.read_iops_device nor a cgroup v2 hierarchy with the io controller "
        "available to this process (kernel built without CONFIG_BLK_DEV_THROTTLING, or the "
        "controller is bound elsewhere)"
    )


# -- the device -------------------------------------------------------------------


def check_supported() -> Throttle:
    """Refuse early, with one clear reason, where a slow device cannot be made."""
    if os.geteuid() != 0:
        raise SlowDeviceError(
            "--slow-device needs root (it attaches a loop device, mounts it and creates a "
            "cgroup); run as root or drop --slow-device"
        )
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if _which(tool) is None:
            raise SlowDeviceError(f"--slow-device needs `{tool}`, which is not installed")
    if not os.path.exists("/dev/loop-control"):
        raise SlowDeviceError(
            "--slow-device needs loop devices and /dev/loop-control is missing "
            "(try `modprobe loop`; containers often have none)"
        )
    return find_throttle()


class SlowDevice:
    """A throttled loop-mounted ext4; ``mount_point`` holds the data set.

    Use as ``with SlowDevice(iops, size, backing_dir) as dev:``. ``join()``
    puts the process under the throttle, ``leave()`` takes it out again.
    """

    def __init__(
        self,
        iops: int,
        data_bytes: int,
        backing_dir: str | os.PathLike[str],
        *,
        runner: Runner = run_tool,
    ) -> None:
        if iops < 1:
            raise ValueError(f"iops must be >= 1, got {iops!r}")
        self.iops = iops
        self.image_bytes = int(data_bytes * IMAGE_OVERHEAD_RATIO) + IMAGE_OVERHEAD_BYTES
        self.backing_dir = Path(backing_dir)
        self.run = runner
        self.throttle: Throttle | None = None
        self.loop_dev = ""
        self.dev_numbers = ""  # "MAJ:MIN" of the loop device
        self.direct_io = False
        self.image: Path | None = None
        self.mount_point: Path | None = None
        self.calibration: Calibration | None = None
        # Undo steps, pushed as each setup step succeeds, run newest first.
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self.teardown_errors: list[str] = []

    # -- setup --------------------------------------------------------------------

    def __enter__(self) -> SlowDevice:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _setup(self) -> None:
        throttle = check_supported()
        free = shutil.disk_usage(self.backing_dir).free
        if free < self.image_bytes:
            raise SlowDeviceError(
                f"the slow device's image needs {self.image_bytes / 2**20:.0f} MiB in "
                f"{self.backing_dir}, only {free / 2**20:.0f} MiB are free: use --dir or "
                "smaller sizes"
            )
        fd, name = tempfile.mkstemp(
            prefix="aiofastread-slowdev-", suffix=".img", dir=self.backing_dir
        )
        self.image = Path(name)
        self._undo.append(("remove the image", self._unlink_image))
        try:
            os.ftruncate(fd, self.image_bytes)  # sparse: costs nothing until written
        finally:
            os.close(fd)

        self.loop_dev = self.run(
            ["losetup", "--find", "--show", "--direct-io=on", str(self.image)]
        ).strip()
        if not self.loop_dev.startswith("/dev/"):
            raise SlowDeviceError(f"losetup gave no device: {self.loop_dev!r}")
        loop_dev = self.loop_dev
        self._undo.append(("detach " + loop_dev, lambda: self.run(["losetup", "-d", loop_dev])))
        sys_block = Path("/sys/block") / Path(self.loop_dev).name
        self.dev_numbers = (sys_block / "dev").read_text().strip()
        with contextlib.suppress(OSError):
            self.direct_io = (sys_block / "loop" / "dio").read_text().strip() == "1"

        # lazy_*_init=0: initialize inode tables and journal now, so no
        # ext4lazyinit thread writes to the device while it is measured.
        self.run(
            ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", self.loop_dev]
        )
        self.mount_point = Path(tempfile.mkdtemp(prefix="aiofastread-slowdev-mnt-"))
        self._undo.append(("remove the mount point", self._rmdir_mount_point))
        # noatime: reads must not turn into inode writes on the measured device.
        self.run(["mount", "-o", "noatime", self.loop_dev, str(self.mount_point)])
        self._undo.append(("unmount", self._umount))

        throttle.create(self.dev_numbers, self.iops)
        self.throttle = throttle
        self._undo.append(("remove the cgroup", throttle.remove))
        self._undo.append(("leave the cgroup", throttle.leave))  # before it is removed

    def join(self) -> None:
        if self.throttle is not None:
            self.throttle.join()

    def leave(self) -> None:
        if self.throttle is not None:
            self.throttle.leave()

    # -- verification ---------------------------------------------------------------

    def verify(self) -> Calibration:
        """Measure serial uncached 16 KiB reads; refuse if they are not throttled.

        Expected: about ``1/iops`` s each. Reads much faster than the limit
        mean the bios are not charged to our cgroup, and the whole slow-device
        run would silently measure a fast device.
        """
        if self.mount_point is None:
            raise RuntimeError("verify() before setup")
        # Enough distinct blocks that no read repeats (random, so no readahead
        # merges neighbours): 4x the reads planned.
        reads = max(50, int(self.iops * CALIBRATION_SECONDS))
        size = reads * 4 * CALIBRATION_READ
        path = self.mount_point / "calibration.dat"
        block = random.Random(1).randbytes(1 << 20)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            done = 0
            while done < size:
                done += os.write(fd, block[: min(len(block), size - done)])
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            offsets = random.Random(2).sample(range(size // CALIBRATION_READ), reads)
            self.join()
            skip = reads // 3
            try:
                t0 = t_skip = time.perf_counter()
                for i, block_no in enumerate(offsets):
                    if i == skip:
                        t_skip = time.perf_counter()
                    os.pread(fd, CALIBRATION_READ, block_no * CALIBRATION_READ)
                t_end = time.perf_counter()
            finally:
                self.leave()
        finally:
            os.close(fd)
            path.unlink()
        cal = Calibration(reads, t_end - t0, reads - skip, t_end - t_skip)
        self.calibration = cal
        if cal.iops > self.iops * VERIFY_TOLERANCE:
            raise SlowDeviceError(
                f"the read throttle has no effect: {reads} uncached 16 KiB reads ran at "
                f"{cal.iops:.0f} IOPS against a limit of {self.iops} "
                f"({self.throttle.describe() if self.throttle else 'no throttle'} on "
                f"{self.loop_dev} {self.dev_numbers}); the kernel does not charge these reads "
                "to the cgroup"
            )
        return cal

    # -- teardown -------------------------------------------------------------------

    def close(self) -> None:
        """Undo every step that was done, newest first; keep going on errors.

        One failed step must not leave the others behind (a cgroup that
        will not go away is no reason to keep the device attached); the
        errors are kept for the report.
        """
        # A second Ctrl-C during teardown would leave a mounted loop device
        # behind: hold SIGINT/SIGTERM until the undo steps are done.
        blocked = {signal.SIGINT, signal.SIGTERM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            while self._undo:
                what, undo = self._undo.pop()
                try:
                    undo()
                except Exception as exc:
                    self.teardown_errors.append(f"{what}: {exc}")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _umount(self) -> None:
        assert self.mount_point is not None
        for attempt in range(RETRIES):
            try:
                self.run(["umount", str(self.mount_point)])
                return
            except SlowDeviceError:
                if attempt == RETRIES - 1:
                    # Lazy: detach now, finish when the last user is gone,
                    # so losetup -d below can still release the device.
                    self.run(["umount", "--lazy", str(self.mount_point)])
                    return
                time.sleep(RETRY_SLEEP)

    def _rmdir_mount_point(self) -> None:
        if self.mount_point is not None:
            with contextlib.suppress(FileNotFoundError):
                self.mount_point.rmdir()

    def _unlink_image(self) -> None:
        if self.image is not None:
            with contextlib.suppress(FileNotFoundError):
                self.image.unlink()

    def describe(self) -> dict[str, object]:
        """Everything about the device for the report."""
        return {
            "iops_limit": self.iops,
            "loop_device": self.loop_dev,
            "dev": self.dev_numbers,
            "direct_io": self.direct_io,
            "image_bytes": self.image_bytes,
            "throttle": self.throttle.kind if self.throttle else None,
            "calibration_reads": self.calibration.reads if self.calibration else None,
            "calibration_iops": round(self.calibration.iops, 1) if self.calibration else None,
            "calibration_mean_ms": (
                round(self.calibration.mean_ms, 3) if self.calibration else None
            ),
        }
