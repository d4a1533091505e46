"""bench's screen: what was timed (sizes, work, threads, backends), one row per
implementation with its speed relative to the first, and what could not be timed. Computes
nothing: the timings come from rnn_cli.core.bench."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_cli.core.config import TORCH_CLASS
from rnn_cli.views.fit import print_parts
from rnn_cli.views.header import data_line, symbols_line
from rnn_cli.views.tables import add_row, make_table


def format_ms(ms: float) -> str:
    """About three significant digits, never in scientific notation."""
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def format_flops(flops: int) -> str:
    """1234 -> '1.23 kFLOP', 2.7e10 -> '27.1 GFLOP'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if flops >= scale:
            return f"{flops / scale:.3g} {prefix}FLOP"
    return f"{flops} FLOP"


def _threads_line(threads) -> str:
    torch = "not installed" if threads.torch is None else str(threads.torch)
    if threads.numpy is not None:
        numpy = f"{threads.numpy} ({threads.blas}, via threadpoolctl)"
    else:  # the BLAS chooses: say which one and what it reads
        blas = threads.blas or "its BLAS"
        if threads.blas_env:
            numpy = f"{blas}, as set by " + " ".join(threads.blas_env)
        elif "openblas" in blas.lower() and threads.cpus:
            numpy = f"{blas}, its default: one per CPU ({threads.cpus} here)"
        else:
            numpy = f"{blas}, its default"
    return f"Threads: torch {torch}, numpy {numpy}"


def _backend(t) -> str:
    tf32 = "" if t.tf32 is None else (", TF32" if t.tf32 else ", no TF32")
    return f"{t.name} {t.device}: {t.backend}{tf32}"


def _head(bench) -> list:
    """What was timed: the module and passes, the sizes, the work, the threads, the backends."""
    cfg = bench.cfg
    passes = "forward" if bench.grad is None else f"forward + backward (--loss {bench.grad})"
    layout = [symbols_line(cfg)]
    if cfg.lengths is not None:
        layout.append(f"lengths={','.join(map(str, cfg.lengths))} " + ("(packed)" if cfg.packed else "(not packed)"))
    if cfg.batch_first:
        layout.append("batch_first")
    return [
        Text(f"rnn-cli bench: nn.{TORCH_CLASS[cfg.cell]} {passes}, {cfg.dtype}, {data_line(cfg, bench.provenance)}", style="bold"),
        Text("  ".join(layout)),
        Text(f"Work: {format_flops(bench.flops)} per forward (products and element-wise work, as --show cost counts)"),
        Text(_threads_line(bench.threads)),
        Text("Backends: " + "; ".join(_backend(t) for t in bench.timings)),
    ]


def timings_table(console: Console, bench) -> Table:
    """One row per implementation timed, then one per implementation that could not be."""
    table = make_table(
        console,
        caption=(
            f"{bench.repeat} timed run(s) after {bench.warmup} warm-up run(s), "
            + ("forward only, inference mode; " if bench.grad is None else "forward and backward; ")
            + "speed = first row's median / this row's median."
        ),
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("implementation", style="bold", no_wrap=True)
    table.add_column("device", no_wrap=True)
    table.add_column("dtype", no_wrap=True)
    for name in ("median ms", "min ms", "max ms", "GFLOP/s", "speed"):
        table.add_column(name, justify="right", no_wrap=True)
    for t in bench.timings:
        gflops = bench.gflops(t)
        rel = bench.relative_speed(t)
        add_row(
            table,
            t.name,
            t.device,
            t.dtype,
            format_ms(t.median_s * 1e3),
            format_ms(t.min_s * 1e3),
            format_ms(t.max_s * 1e3),
            "-" if gflops is None else f"{gflops:.3g}",
            "-" if rel is None else f"{rel:.2f}x",
        )
    for n in bench.not_timed:
        add_row(table, n.name, n.device, bench.cfg.dtype, n.status, "-", "-", "-", "-")
    return table


def show_bench(console: Console, bench) -> None:
    """The human table: one row per implementation, speed relative to the first row."""
    parts = _head(bench) + [Text(""), timings_table(console, bench)]
    parts += [Text(f"{n.name} {n.device} not timed, {n.status}: {n.reason}") for n in bench.not_timed]
    parts += [Text(note) for note in bench.notes]
    busy = bench.busy
    if busy:
        from rnn_cli.core.timing import SPREAD_LIMIT

        rows = ", ".join(f"{t.name} {t.device} {t.spread:.1f}x" if t.spread else f"{t.name} {t.device}" for t in busy)
        parts.append(Text(f"Warning: the slowest run took more than {SPREAD_LIMIT}x the fastest ({rows}): "
                          "the machine was busy; rerun.", style="yellow"))
    print_parts(console, parts)
