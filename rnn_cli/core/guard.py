"""The memory guard: refuse a run before it allocates. The estimate is the sample
(config.sample_bytes), the value tables, the command's OVERHEAD, and the peak each runner states
beside the code that allocates (manual, runs, compare, bench, onnx_export `.peak_bytes`,
torch_peak): imported when the guard asks, since they import numpy. This module imports nothing
heavy; the runners never import it (no circle).
"""

from __future__ import annotations

from rnn_cli.core.config import ITEMSIZE, RunConfig, _format_bytes, _seq, sample_bytes
from rnn_cli.errors import RnnCliError


def available_memory() -> tuple[int, str]:
    """(bytes this process may still allocate, what limits it): the smallest of MemAvailable,
    ulimit -v / -d and the cgroup's memory.max (rnn_cli.core.limits)."""
    from rnn_cli.core.limits import memory_limit

    return memory_limit()


# What importing torch adds to the process (peak RSS of `torch` at the smallest size minus
# `manual`'s, ~195 MiB with torch 2.x on the CPU), counted by check_memory, not the estimate.
TORCH_IMPORT = 256 * 1024**2
# Address space that importing a library maps (VmSize growth), which is what `ulimit -v` /
# `prlimit --as` counts: measured 121 MiB for numpy 2.4 and 483 MiB for torch 2.13 (CPU) on
# Linux x86-64, with margin; tests/test_import_cost.py measures them on the machine it runs on
# and fails when a constant is below the measurement or more than 1.5x it.
IMPORT_ADDRESS_SPACE = {"numpy": 128 * 1024**2, "torch": 512 * 1024**2}
COMMANDS = ("manual", "torch", "compare", "bench", "onnx")
# Peak RSS the measured runs reach beyond the arrays their runners count, per command: the
# BLAS's own packing buffers (numpy's big products touched up to ~25 MiB more than the tiny
# run's), allocator slack (torch's freed temporaries kept in the heap while the numpy
# reference runs: ~10% of compare's peak), the JSON writer's chunk (documents.CHUNK, ~6 MiB),
# small per-step arrays. tests/test_memory_calibration.py measures them.
OVERHEAD = {"manual": 8 * 1024**2, "torch": 16 * 1024**2, "compare": 32 * 1024**2, "bench": 8 * 1024**2,
            "onnx": 32 * 1024**2}
# --grad's numpy backward: allocator slack beyond the arrays backward.peak_bytes names (the
# per-step caches are many small arrays; glibc keeps freed ones), measured by the calibration test.
GRAD_SLACK = 24 * 1024**2
# --json: the document is written array by array; one array's text in chunks (documents.CHUNK)
# and its list of Python floats are held at a time.
JSON_CHUNK = 8 * 1024**2
# Bytes per time step the human view of the values spends beyond the arrays: a label
# f"t={t}" per row (a str and its list slot) for the output table.
LABEL_BYTES = 72


def _human_values_bytes(cfg: RunConfig, itemsize: int) -> int:
    """The value tables: row labels, and finite/abs copies of one batch element's (L, D*H_out)."""
    return cfg.seq_len * (LABEL_BYTES + cfg.D * cfg.H_out * (1 + 2 * itemsize))


def _run_bytes(cfg: RunConfig, command: str, values: bool, grad: bool) -> int:
    """The peak of what the command runs, beyond the sample, as each runner states it beside
    the code that allocates (imported here, when the guard asks: they import numpy)."""
    if command in ("manual", "torch"):
        from rnn_cli.core import runs

        return runs.peak_bytes(command, cfg, keep_layers=values, grad=grad)
    if command == "compare":
        from rnn_cli.core import compare

        return compare.peak_bytes(cfg, grad)
    if command == "bench":
        from rnn_cli.core import bench

        return bench.peak_bytes(cfg, grad)
    from rnn_cli.formats import onnx_export

    return onnx_export.peak_bytes(cfg)


def estimate_bytes(cfg: RunConfig, command: str = "manual", json: bool = False, values: bool = True,
                   grad: bool = False) -> int:
    """Peak bytes the command holds beyond the interpreter and its imports: the sample
    (sample_bytes), then the larger of the draw's float64 input (drawn, then rounded) and the
    peak of the runners the command calls (runs, compare, bench, onnx_export .peak_bytes),
    the rendering of the values for people, and the command's fixed OVERHEAD. --json adds
    only OVERHEAD: the document is streamed array by array (documents.write_document).
    Measured against the real peak by tests/test_memory_calibration.py (benchmarks/memory.py,
    MEMORY.md)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    item = ITEMSIZE[cfg.dtype]
    draw = 8 * _seq(cfg, cfg.input_size)
    render = _human_values_bytes(cfg, item) if values and not json and command in ("manual", "torch") else 0
    slack = (GRAD_SLACK if grad and command == "manual" else 0) + (JSON_CHUNK if json else 0)
    return sample_bytes(cfg) + max(draw, _run_bytes(cfg, command, values, grad)) + render + OVERHEAD[command] + slack


def check_memory(
    cfg: RunConfig,
    command: str = "manual",
    json: bool = False,
    values: bool = True,
    available: int | None = None,
    grad: bool = False,
) -> None:
    """Refuse, before anything is allocated, a run whose estimate exceeds what is available."""
    # What is available, and under `ulimit -v` which imports are still to come, read before the
    # estimate, whose formulas (in the runners' modules) import numpy: as the guard always has.
    have, source = available_memory() if available is None else (available, "given")
    space = None if available is not None else _address_space(command)
    need = estimate_bytes(cfg, command, json, values, grad)
    total = need + (TORCH_IMPORT if command != "manual" else 0)  # the check runs before torch is imported
    if total > have:
        where = "" if source in ("MemAvailable", "given") else f" under {source}"
        raise RnnCliError(
            f"this configuration needs about {_format_bytes(total)} of memory, more than the "
            f"{_format_bytes(have)} available{where}; reduce --hidden-size, --seq-len, --batch or --layers"
        )
    if space is not None:
        _check_address_space(need, *space)


def _address_space(command: str) -> tuple[int, list[str]] | None:
    """(address space left under `ulimit -v`, the imports the command still has to make), or
    None without a limit."""
    import sys

    from rnn_cli.core.limits import address_space_headroom

    headroom = address_space_headroom()
    if headroom is None:
        return None
    return headroom, [m for m in ["numpy"] + ([] if command == "manual" else ["torch"]) if m not in sys.modules]


def _check_address_space(need: int, headroom: int, missing: list[str]) -> None:
    """Under `ulimit -v` the imports still to come count by the address space they map (torch's
    is about twice what it touches): refuse before `import torch` rather than fail inside it."""
    imports = sum(IMPORT_ADDRESS_SPACE[m] for m in missing)
    if need + imports > headroom:
        loading = f" ({_format_bytes(imports)} of it to load {' and '.join(missing)})" if missing else ""
        raise RnnCliError(
            f"this configuration needs about {_format_bytes(need + imports)} of address space{loading}, "
            f"more than the {_format_bytes(headroom)} left under ulimit -v; raise the limit or "
            "reduce --hidden-size, --seq-len, --batch or --layers"
        )
