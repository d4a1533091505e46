"""memory_limit(): the smallest of MemAvailable, RLIMIT_AS - VmSize, RLIMIT_DATA - VmData and the
memory cgroup's limit - usage (this cgroup and its ancestors), read from fake /proc and
/sys/fs/cgroup trees whose expected answer is worked out by hand, and once under a real
`prlimit --as`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnn_cli.core.limits import memory_limit

KiB, MiB, GiB = 1024, 1024**2, 1024**3
HEADER = "Limit                     Soft Limit           Hard Limit           Units     \n"


def limits_row(name: str, soft: int | None, hard: int | None = None) -> str:
    def show(v: int | None) -> str:
        return "unlimited" if v is None else str(v)

    return f"{name:<26}{show(soft):<21}{show(hard):<21}bytes     \n"


def fake(
    tmp_path: Path,
    available_kib: int | None = 16 * MiB,  # 16 GiB
    vm_size_kib: int = 500_000,
    vm_data_kib: int = 100_000,
    rlimit_as: int | None = None,
    rlimit_data: int | None = None,
    cgroup_lines: str = "0::/\n",
    cgroup_files: dict[str, str] | None = None,
) -> tuple[str, str]:
    proc, sys_cg = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    sys_cg.mkdir()
    if available_kib is not None:
        (proc / "meminfo").write_text(f"MemTotal:       32000000 kB\nMemFree: 1 kB\nMemAvailable:   {available_kib} kB\n")
    (proc / "self" / "status").write_text(
        f"Name:\tpython\nUmask:\t0022\nVmPeak:\t 999999999 kB\nVmSize:\t{vm_size_kib:>10} kB\nVmData:\t{vm_data_kib:>10} kB\n"
    )
    (proc / "self" / "limits").write_text(
        HEADER + limits_row("Max cpu time", None) + limits_row("Max data size", rlimit_data)
        + limits_row("Max stack size", 8388608) + limits_row("Max address space", rlimit_as, None)
    )  # fmt: skip
    (proc / "self" / "cgroup").write_text(cgroup_lines)
    for rel, text in (cgroup_files or {}).items():
        (sys_cg / rel).parent.mkdir(parents=True, exist_ok=True)
        (sys_cg / rel).write_text(text)
    return str(proc), str(sys_cg)


def test_mem_available_alone(tmp_path: Path) -> None:
    assert memory_limit(*fake(tmp_path, available_kib=1_000_000)) == (1_000_000 * KiB, "MemAvailable")


def test_ulimit_v_counts_what_the_process_already_maps(tmp_path: Path) -> None:
    # RLIMIT_AS bounds VmSize, which already holds 500000 kB of libraries and heap
    roots = fake(tmp_path, rlimit_as=2_000_000_000, vm_size_kib=500_000)
    assert memory_limit(*roots) == (2_000_000_000 - 500_000 * KiB, "ulimit -v")


def test_ulimit_d_counts_vm_data_not_vm_size(tmp_path: Path) -> None:
    roots = fake(tmp_path, rlimit_data=1 * GiB, vm_size_kib=900_000, vm_data_kib=100_000)
    assert memory_limit(*roots) == (GiB - 100_000 * KiB, "ulimit -d")


def test_an_ulimit_above_mem_available_does_not_count(tmp_path: Path) -> None:
    roots = fake(tmp_path, available_kib=1_000_000, rlimit_as=64 * GiB)
    assert memory_limit(*roots) == (1_000_000 * KiB, "MemAvailable")


def test_cgroup_v2_limit_of_an_ancestor_applies(tmp_path: Path) -> None:
    roots = fake(
        tmp_path,
        cgroup_lines="0::/user.slice/job\n",
        cgroup_files={
            "user.slice/job/memory.max": "max\n",  # no limit of its own
            "user.slice/job/memory.current": "104857600\n",
            "user.slice/memory.max": f"{GiB}\n",
            "user.slice/memory.current": f"{300 * MiB}\n",
            "memory.max": "max\n",
        },
    )
    assert memory_limit(*roots) == (GiB - 300 * MiB, "cgroup memory.max")


def test_nested_cgroups_the_tightest_limit_wins_wherever_it_sits(tmp_path: Path) -> None:
    """Bug caught: the loosest limit was taken; every other fixture has one finite limit."""
    roots = fake(
        tmp_path,
        cgroup_lines="0::/outer/middle/inner\n",
        cgroup_files={
            "outer/memory.max": f"{8 * GiB}\n", "outer/memory.current": f"{2 * GiB}\n",  # 6 GiB left
            "outer/middle/memory.max": f"{GiB}\n", "outer/middle/memory.current": f"{700 * MiB}\n",  # 324 MiB
            "outer/middle/inner/memory.max": f"{3 * GiB}\n", "outer/middle/inner/memory.current": f"{600 * MiB}\n",
            "memory.max": "max\n",
        },
    )
    assert memory_limit(*roots) == (GiB - 700 * MiB, "cgroup memory.max")


def test_a_limit_on_the_root_cgroup_counts(tmp_path: Path) -> None:
    """`0::/` with memory.max at the root, as a container's cgroup namespace shows it.
    Bug caught: the walk stopped below the root."""
    roots = fake(tmp_path, cgroup_lines="0::/\n",
                 cgroup_files={"memory.max": f"{2 * GiB}\n", "memory.current": f"{512 * MiB}\n"})  # fmt: skip
    assert memory_limit(*roots) == (2 * GiB - 512 * MiB, "cgroup memory.max")


def test_cgroup_v2_on_a_hybrid_host_lives_under_unified(tmp_path: Path) -> None:
    roots = fake(
        tmp_path,
        cgroup_lines="4:memory:/other\n0::/job\n",
        cgroup_files={"unified/job/memory.max": f"{2 * GiB}\n", "unified/job/memory.current": f"{GiB}\n"},
    )
    assert memory_limit(*roots) == (GiB, "cgroup memory.max")


def test_cgroup_v1_limit_and_its_unlimited_sentinel(tmp_path: Path) -> None:
    roots = fake(
        tmp_path,
        cgroup_lines="5:devices:/\n4:memory:/docker/abc\n0::/\n",
        cgroup_files={
            "memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",  # PAGE_COUNTER_MAX: none
            "memory/docker/abc/memory.usage_in_bytes": f"{5 * GiB}\n",
            "memory/docker/memory.limit_in_bytes": f"{6 * GiB}\n",
            "memory/docker/memory.usage_in_bytes": f"{5 * GiB + 7 * MiB}\n",
        },
    )
    assert memory_limit(*roots) == (GiB - 7 * MiB, "cgroup memory.limit_in_bytes")


def test_a_cgroup_over_its_limit_leaves_zero(tmp_path: Path) -> None:
    roots = fake(tmp_path, cgroup_lines="0::/job\n",
                 cgroup_files={"job/memory.max": f"{GiB}\n", "job/memory.current": f"{GiB + 1}\n"})  # fmt: skip
    assert memory_limit(*roots) == (0, "cgroup memory.max")


def test_nothing_readable_is_a_generous_guess(tmp_path: Path) -> None:
    assert memory_limit(str(tmp_path / "none"), str(tmp_path / "none")) == (8 * GiB, "unknown")


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_real_prlimit_as_is_seen() -> None:
    code = (
        "from rnn_cli.core.limits import memory_limit\n"
        "n, source = memory_limit()\n"
        "size = int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmSize:')][0]) * 1024\n"
        "print(n, source.replace(' ', '_'), size)\n"
    )
    proc = subprocess.run(["prlimit", "--as=2000000000", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    n, source, size = proc.stdout.split()
    assert source == "ulimit_-v"
    # VmSize moves a little between the two reads (the list comprehension allocates)
    assert abs(int(n) - (2_000_000_000 - int(size))) < 4 * MiB
