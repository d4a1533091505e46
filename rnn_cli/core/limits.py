"""How many more bytes this process may allocate before the kernel says no (stdlib only).

The smallest of:
- MemAvailable (/proc/meminfo): what the machine can give without swapping;
- RLIMIT_AS (`ulimit -v`) minus this process's VmSize, RLIMIT_DATA (`ulimit -d`) minus VmData
  (soft limits from /proc/self/limits; malloc fails with ENOMEM past them: a MemoryError);
- the memory cgroup's limit minus its usage, for this process's cgroup and each ancestor
  (v2 memory.max - memory.current; v1 memory.limit_in_bytes - memory.usage_in_bytes): past it
  the OOM killer ends the run with no message.

`proc` and `cgroup` are the roots read, so tests can hand in a fake /proc and /sys/fs/cgroup.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

UNLIMITED = 1 << 62  # v1 reports "no limit" as PAGE_COUNTER_MAX (9223372036854771712)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _kib_field(text: Optional[str], name: str) -> Optional[int]:
    """`Name:   1234 kB` from /proc/meminfo or /proc/self/status, in bytes."""
    for line in (text or "").splitlines():
        if line.startswith(name + ":"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _soft_limit(limits: Optional[str], name: str) -> Optional[int]:
    """The soft limit of row `name` of /proc/self/limits; None when unlimited or unreadable."""
    for line in (limits or "").splitlines():
        if line.startswith(name):
            soft = line[len(name):].split()[0]
            return None if soft == "unlimited" else int(soft)
    return None


def _rlimits(proc: str) -> tuple[Optional[int], Optional[int]]:
    """(RLIMIT_AS, RLIMIT_DATA) soft limits in bytes, None for unlimited."""
    limits = _read(os.path.join(proc, "self/limits"))
    if limits is not None:
        return _soft_limit(limits, "Max address space"), _soft_limit(limits, "Max data size")
    if proc != "/proc":
        return None, None
    try:
        import resource
    except ImportError:  # pragma: no cover - non-POSIX
        return None, None
    out = []
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft = resource.getrlimit(which)[0]
        out.append(None if soft == resource.RLIM_INFINITY else soft)
    return out[0], out[1]


def _number(text: Optional[str]) -> Optional[int]:
    """A cgroup file's value; None for "max", unlimited or unreadable."""
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= UNLIMITED else value


def _ancestors(root: str, path: str) -> Iterator[str]:
    """`root/a/b/c`, `root/a/b`, `root/a`, `root`: limits of every ancestor apply."""
    parts = [p for p in path.split("/") if p]
    for k in range(len(parts), -1, -1):
        yield os.path.join(root, *parts[:k])


def _cgroup_headroom(proc: str, cgroup: str) -> Optional[tuple[int, str]]:
    """(limit - usage, source) of the tightest memory cgroup this process is in, or None."""
    best: Optional[tuple[int, str]] = None
    for line in (_read(os.path.join(proc, "self/cgroup")) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # v2: one unified hierarchy
            # /sys/fs/cgroup itself on a v2 host, /sys/fs/cgroup/unified on a hybrid one
            roots = [cgroup, os.path.join(cgroup, "unified")]
            files = ("memory.max", "memory.current", "cgroup memory.max")
        elif "memory" in controllers.split(","):  # v1
            roots = [os.path.join(cgroup, "memory")]
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "cgroup memory.limit_in_bytes")
        else:
            continue
        limit_file, usage_file, source = files
        for root in roots:
            for directory in _ancestors(root, path):
                limit = _number(_read(os.path.join(directory, limit_file)))
                usage = _number(_read(os.path.join(directory, usage_file)))
                if limit is None or usage is None:
                    continue
                headroom = max(0, limit - usage)
                if best is None or headroom < best[0]:
                    best = (headroom, source)
    return best


def memory_limit(proc: str = "/proc", cgroup: str = "/sys/fs/cgroup") -> tuple[int, str]:
    """(bytes this process may still allocate, which limit says so).

    source is "MemAvailable", "ulimit -v", "ulimit -d", "cgroup memory.max" or
    "cgroup memory.limit_in_bytes"; ("unknown") with a generous 8 GiB when nothing is readable.
    """
    candidates: list[tuple[int, str]] = []
    available = _kib_field(_read(os.path.join(proc, "meminfo")), "MemAvailable")
    if available is not None:
        candidates.append((available, "MemAvailable"))
    status = _read(os.path.join(proc, "self/status"))
    rlimit_as, rlimit_data = _rlimits(proc)
    for limit, field, source in ((rlimit_as, "VmSize", "ulimit -v"), (rlimit_data, "VmData", "ulimit -d")):
        if limit is not None:
            used = _kib_field(status, field) or 0
            candidates.append((max(0, limit - used), source))
    headroom = _cgroup_headroom(proc, cgroup)
    if headroom is not None:
        candidates.append(headroom)
    if not candidates:
        return 8 * 1024**3, "unknown"
    return min(candidates, key=lambda c: c[0])


def address_space_headroom(proc: str = "/proc") -> Optional[int]:
    """RLIMIT_AS (`ulimit -v`, `prlimit --as`) minus this process's VmSize; None when unlimited.
    Imports count against it by the address space they map, not the memory they touch."""
    rlimit_as, _ = _rlimits(proc)
    if rlimit_as is None:
        return None
    return max(0, rlimit_as - (_kib_field(_read(os.path.join(proc, "self/status")), "VmSize") or 0))
