"""The views of rnn_cli.core.cost: the parameter line of the default screen, `--show params`'
split per layer and direction, and `--show cost`. Computes nothing beyond formatting."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rnn_cli.core.config import _format_bytes
from rnn_cli.core.cost import Cost, Part, cost, saved_bytes_source
from rnn_cli.core.result import RunResult
from rnn_cli.views.tables import add_row, make_table


def format_count(n: int) -> str:
    """Exact with thousands separators below a million; else three digits and k/M/G/T."""
    if n < 1_000_000:
        return f"{n:,}"
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if n >= scale:
            return f"{n / scale:.3g} {prefix}"
    raise AssertionError  # pragma: no cover


def parameters_text(result: RunResult) -> str:
    """For the default screen's first lines: the count torchinfo shows first, and its bytes."""
    total = cost(result.cfg).total
    return f"{total.params:,} parameters"  # bytes: --show params, --show cost


def _where(p: Part) -> list[str]:
    return ["total", ""] if p.layer is None else [str(p.layer), p.direction or ""]


def per_direction_table(console: Console, result: RunResult) -> Table:
    """--show params: the parameters of each layer and direction."""
    c = cost(result.cfg)
    table = make_table(console, "Parameters per layer and direction")
    for name in ("layer", "direction"):
        table.add_column(name, no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    for i, p in enumerate(c.parts + (c.total,)):
        add_row(table, *_where(p), f"{p.params:,}", _format_bytes(p.param_bytes), end_section=i == len(c.parts) - 1)
    return table


def cost_caption(result: RunResult, c: Cost) -> str:
    cfg = result.cfg
    steps = "sum(lengths)" if cfg.packed else ("N*L (padding too: --no-pack)" if cfg.lengths is not None else "N*L")
    lines = [
        f"{c.sequence_steps:,} sequence-steps per layer and direction: {steps}.",
        "MACs: multiply-accumulates of the input, recurrent and projection products.",
        f"FLOPs: 2*MACs + {c.elementwise_per_step:,} element-wise operations per sequence-step.",
        "kept: what one training step keeps for backpropagation through time.",
    ]
    grads = result.gradients
    if grads is not None and grads.saved_bytes is not None:
        lines.append(f"--grad measured {_format_bytes(grads.saved_bytes)} kept against "
                     f"{_format_bytes(c.total.activation_bytes)} counted ({saved_bytes_source(result.implementation)}).")
    return "\n".join(lines)


def cost_table(console: Console, result: RunResult) -> Table:
    """--show cost: per layer and direction and in total."""
    c = cost(result.cfg)
    table = make_table(console, f"Cost of one forward ({c.dtype})", caption=cost_caption(result, c))
    for name in ("layer", "direction"):
        table.add_column(name, no_wrap=True)
    for name in ("params", "MACs", "FLOPs", "kept"):
        table.add_column(name, justify="right", no_wrap=True)
    for i, p in enumerate(c.parts + (c.total,)):
        add_row(table, *_where(p), format_count(p.params), format_count(p.macs), format_count(p.flops),
                _format_bytes(p.activation_bytes), end_section=i == len(c.parts) - 1)
    return table
