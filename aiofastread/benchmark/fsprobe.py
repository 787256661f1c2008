"""Find a directory whose filesystem serves preadv2(..., RWF_NOWAIT).

The benchmark measures the inline fast path, so its data set must live where
that path exists: ext4, xfs, btrfs do; tmpfs, /dev/shm, overlayfs (container
root filesystems), FUSE answer EOPNOTSUPP (../shared/DESIGN.md, "Facts"). The only
reliable test is to try: write a small file, read it back with RWF_NOWAIT.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# Bytes written by the probe: one page, so the NOWAIT read has something
# cached to return right after the write.
_PROBE_BYTES = 4096


class NoNowaitDirError(RuntimeError):
    """No usable directory: the message says what was tried and what to do."""


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    path: Path
    fstype: str
    supported: bool
    reason: str  # "ok", or why not ("EOPNOTSUPP", "not a directory", ...)


def filesystem_type(path: str | os.PathLike[str]) -> str:
    """The type of the filesystem holding ``path``, from /proc/self/mountinfo.

    The longest mount point that contains the resolved path wins (what
    ``df -T`` shows); "unknown" where mountinfo is missing.
    """
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return best_type
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        mount_point = _unescape(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, right.split()[0]
    return best_type


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def probe_dir(path: str | os.PathLike[str]) -> ProbeResult:
    """Whether a file created in ``path`` can be read with RWF_NOWAIT."""
    p = Path(path)
    if not p.is_dir():
        return ProbeResult(p, "unknown", False, "not a directory")
    fstype = filesystem_type(p)
    rwf_nowait = getattr(os, "RWF_NOWAIT", None)
    if rwf_nowait is None or not hasattr(os, "preadv"):
        return ProbeResult(p, fstype, False, "this Python has no os.preadv/RWF_NOWAIT")
    try:
        fd, name = tempfile.mkstemp(prefix=".aiofastread-probe-", dir=p)
    except OSError as exc:
        return ProbeResult(p, fstype, False, f"cannot create a file: {exc.strerror}")
    try:
        os.write(fd, b"\x5a" * _PROBE_BYTES)
        buf = bytearray(_PROBE_BYTES)
        try:
            os.preadv(fd, [buf], 0, rwf_nowait)
        except BlockingIOError:
            pass  # EAGAIN: supported, the page just is not cached
        except OSError as exc:
            return ProbeResult(p, fstype, False, f"RWF_NOWAIT read fails with {_errno_name(exc)}")
        return ProbeResult(p, fstype, True, "ok")
    finally:
        os.close(fd)
        os.unlink(name)


def _errno_name(exc: OSError) -> str:
    # EOPNOTSUPP and ENOTSUP are one number on Linux and errorcode names it
    # ENOTSUP; the kernel and the docs speak of EOPNOTSUPP.
    if exc.errno == errno.EOPNOTSUPP:
        return "EOPNOTSUPP (the filesystem has no non-blocking buffered read)"
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def default_candidates() -> list[Path]:
    """Where to put the data set when --dir is not given, best first.

    /var/tmp is meant for large temporary files and is on disk where /tmp
    is often tmpfs; then the user's cache directory; then the working one.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path("/var/tmp"), Path(cache), Path(tempfile.gettempdir()), Path.cwd()]


def find_nowait_dir(candidates: Iterable[str | os.PathLike[str]]) -> ProbeResult:
    """The first candidate that supports RWF_NOWAIT, or NoNowaitDirError."""
    tried: list[ProbeResult] = []
    for candidate in candidates:
        result = probe_dir(candidate)
        if result.supported:
            return result
        tried.append(result)
    raise NoNowaitDirError(unsupported_message(tried))


def unsupported_message(tried: Sequence[ProbeResult]) -> str:
    """The error shown when no directory qualifies: what failed, what to do."""
    lines = [
        "no directory found on a filesystem that supports preadv2(RWF_NOWAIT), "
        "which this benchmark measures:"
    ]
    lines.extend(f"  {r.path} ({r.fstype}): {r.reason}" for r in tried)
    lines.append(
        "tmpfs, /dev/shm, overlayfs (container root filesystems) and FUSE do not support it; "
        "pass --dir DIR with DIR on ext4, xfs or btrfs (or use --slow-device as root)."
    )
    return "\n".join(lines)
