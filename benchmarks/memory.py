"""The memory guard's estimate (rnn_cli.core.guard.estimate_bytes, which asks each runner's
peak_bytes) against the peak real runs reach: the cases of tests/test_memory_calibration.py,
each at its small and medium size, measured as that test measures them (tests/memory_peak.py:
peak RSS above the same command at the smallest size, in a child forked per run). Goal, and
what the test asserts: estimate / peak within [1.0, 1.5] for every case.

    PYTHONPATH=$PWD python benchmarks/memory.py [--only TEXT] [--out benchmarks/MEMORY.md]

About 2 minutes of CPU on 2 cores (the same runs as the test file).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from memory_peak import Peaks, args_of  # noqa: E402
from test_memory_calibration import CASES  # noqa: E402

MiB = 2**20


def measure(only: str = "") -> list[tuple[str, str, str, int, int]]:
    """(id, size, command line, held, estimate) for every case whose id contains `only`."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Peaks(tmp) as peaks:
        for name, small in CASES.items():
            if only not in name:
                continue
            for size in ("small", "medium"):
                case = small.sized(size)
                held = peaks.held(case.command, case.cfg, case.flags)
                line = " ".join(_short(args_of(case.command, case.cfg, case.flags)))
                rows.append((name, size, line, held, case.estimate()))
                print(f"{rows[-1][4] / held:5.2f}  {held / MiB:7.1f} MiB held  {rows[-1][4] / MiB:7.1f} MiB est  "
                      f"{name} ({size})", flush=True)
    return rows


def _short(args: list[str]) -> list[str]:
    """--lengths' value cut to its first numbers."""
    if "--lengths" in args:
        i = args.index("--lengths") + 1
        n = args[i].count(",") + 1
        args = args[:i] + [",".join(args[i].split(",")[:3]) + f",...({n} values)"] + args[i + 1:]
    return args


def report(rows, command_line: str) -> str:
    ratios = [est / held for *_, held, est in rows]
    lines = [
        "# Memory: the guard's estimate against the measured peak",
        "",
        f"Produced by `{command_line}` (benchmarks/memory.py), on the cases of",
        "tests/test_memory_calibration.py. *held*: peak RSS above the same command at the",
        "smallest size (tests/memory_peak.py: VmHWM, reset after the small run, in a child forked",
        "from a process that imported numpy, torch and rnn-cli; one BLAS thread). *estimate*:",
        "`rnn_cli.core.guard.estimate_bytes(cfg, command, json, values, grad)`: the sample, the",
        "peak each runner states beside its code (manual, backward, runs, torch_peak, compare,",
        "bench, onnx_export `.peak_bytes`), the value tables and the command's OVERHEAD.",
        "check_memory adds the torch import (TORCH_IMPORT) for the commands that need it.",
        "",
        f"**estimate / held: {min(ratios):.2f} to {max(ratios):.2f}** over {len(rows)} runs "
        f"(goal: within [1.0, 1.5]; {sum(1.0 <= x <= 1.5 for x in ratios)} of {len(rows)} are).",
        "",
        "| case | size | command | held MiB | estimate MiB | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, size, line, held, est in rows:
        lines.append(f"| {name} | {size} | `{line}` | {held / MiB:.1f} | {est / MiB:.1f} | {est / held:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="the cases whose id contains this")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    args = parser.parse_args()
    start, cpu = time.perf_counter(), os.times()
    rows = measure(args.only)
    now = os.times()
    used = now.children_user + now.children_system - cpu.children_user - cpu.children_system
    print(f"{time.perf_counter() - start:.0f} s wall, {used:.0f} s CPU in the children")
    if args.out is not None:
        args.out.write_text(report(rows, "PYTHONPATH=$PWD python " + " ".join(sys.argv)))


if __name__ == "__main__":
    main()
