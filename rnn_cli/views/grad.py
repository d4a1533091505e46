"""The `grad` section of --show: what BPTT computed, for people.

Computes nothing: the norms and ratios come from rnn_cli.core.backward; this module lays them
out. Piped output (console.is_terminal false) is ASCII only.
"""

from __future__ import annotations

import math

import numpy as np
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from rnn_cli.core.backward import Gradients
from rnn_cli.core.config import RunConfig, shape_str
from rnn_cli.formats.grad_export import user_layout_gradients
from rnn_cli.views.tables import is_plain, make_table
from rnn_cli.views.values import shown_indices

BAR_WIDTH = 44  # characters of the longest bar: "t=49 " + bar + " 1.234e-05" fits 80 columns (shorter where the console is narrower)
MAX_ROWS = 12  # value-table rows shown before eliding the middle
MAX_COLS = 6  # value-table columns shown before eliding the middle (fewer where the console is narrower)
DECADES = 16  # a full bar spans 16 decades below the chart's largest norm (float64's reach)
EIGHTHS = " ▏▎▍▌▋▊▉"


def norms_table(console: Console, cfg: RunConfig, grads: Gradients, precision: int) -> Table:
    table = make_table(console, "Gradient norms ||dL/dparameter||")
    table.add_column("tensor")
    table.add_column("shape")
    table.add_column("||grad||", justify="right")
    shapes = {name: a.shape for name, a in user_layout_gradients(cfg, grads).items()}  # the user's layout
    for name, norm in grads.norms.items():
        table.add_row(Text(name), Text(shape_str(shapes[name])), Text(f"{norm:.{precision}e}"))
    return table


def bar(value: float, hi: float, ascii_only: bool, width: int = BAR_WIDTH) -> str:
    """A log-scale bar: hi gets `width` cells, each decade below it width / DECADES fewer, so
    charts of different runs at one console width share one scale; any positive value shows
    at least an eighth of a cell (ASCII: one '#')."""
    if not math.isfinite(value) or value <= 0:
        return ""
    fraction = max(0.0, 1.0 + math.log10(value / hi) / DECADES)
    eighths = max(1, round(fraction * width * 8))
    if ascii_only:
        return "#" * max(1, round(eighths / 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[part] if part else "")


def ratio_line(norms: np.ndarray, direction: str, ratio: float | None, precision: int) -> str:
    """The fade along the direction's own backprop: from the step where it enters to the one it reaches last."""
    L = len(norms)
    enters, last = (0, L - 1) if direction == "backward" else (L - 1, 0)
    if not np.any(norms):
        return "no gradient reaches this direction: nothing to fade"
    if ratio is None:
        return f"no gradient where this direction's backprop starts (t={enters}): no fade ratio"
    return f"fade, t={last} (backprop ends) / t={enters} (backprop enters): {ratio:.{max(precision - 1, 0)}e}"


def step_chart(console: Console, layer: int, direction: str, norms: np.ndarray, ratio: float | None, precision: int) -> Text:
    """One row per step t: a log-scale bar of ||dL/dh_t|| and its value."""
    finite = norms[np.isfinite(norms)]
    hi = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    plain = is_plain(console)
    digits = len(str(len(norms) - 1))
    values = [f"{v:.{max(precision - 1, 0)}e}" for v in norms]
    # "t=12 " + bar + " 1.234e-05" on one line: the bar gives way on a narrow console
    bar_width = max(8, min(BAR_WIDTH, console.width - (digits + 3) - 1 - max(map(len, values))))
    per_decade = bar_width / DECADES
    title = f"||dL/dh_t|| over the batch, layer {layer} {direction}: log scale, {per_decade:.3g} chars/decade\n"
    text = Text(title, style="bold")
    for t, (v, shown) in enumerate(zip(norms, values)):
        b = bar(float(v), hi, plain, bar_width)
        text.append(f"t={t:<{digits}} ")
        text.append(b.ljust(bar_width), style=None if plain else "cyan")
        text.append(f" {shown}\n")
    text.append(ratio_line(norms, direction, ratio, precision))
    return text


def matrix_table(console: Console, title: str, row_label: str, matrix: np.ndarray, precision: int) -> Table:
    """A (rows, features) matrix, eliding rows past MAX_ROWS and columns past MAX_COLS, and
    more columns where the console is narrower: a number is shown whole or not at all."""
    n = matrix.shape[1]
    for limit in range(min(n, MAX_COLS), min(n, 3) - 1, -1):  # at the least two numbers and the ellipsis
        table = _matrix_table(console, title, row_label, matrix, precision, limit)
        unbounded = console.options.update(max_width=10**6)  # the table's own width, not the console's
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            break
    return table


def _matrix_table(console: Console, title: str, row_label: str, matrix: np.ndarray, precision: int, max_cols: int) -> Table:
    ellipsis = "..." if is_plain(console) else "…"
    table = make_table(console, title)
    table.add_column(row_label, justify="right", no_wrap=True)
    cols = shown_indices(matrix.shape[1], max_cols)
    for j in cols:
        table.add_column(ellipsis if j is None else str(j), justify="right", no_wrap=True)
    for i in shown_indices(matrix.shape[0], MAX_ROWS):
        if i is None:
            table.add_row(*[ellipsis] * (len(cols) + 1))
            continue
        cells = [ellipsis if j is None else f"{matrix[i, j]:.{max(precision - 1, 0)}e}" for j in cols]
        table.add_row(str(i), *cells)
    return table


def value_tables(console: Console, cfg: RunConfig, grads: Gradients, precision: int, batch_index: int = 0) -> list:
    """dL/dh_0 (dL/dc_0) and dL/dinput for one batch element."""
    user = user_layout_gradients(cfg, grads)
    n = "" if cfg.unbatched else f", batch element {batch_index}"
    tables = []
    for name in ("h_0", "c_0"):
        if name in user:
            state = user[name] if cfg.unbatched else user[name][:, batch_index]  # (D*num_layers, F)
            tables.append(matrix_table(console, f"dL/d{name}{n}", "k", state, precision))
    x = grads.input[:, batch_index]  # (L, H_in), time-major
    tables.append(matrix_table(console, f"dL/dinput{n}", "t", x, precision))
    return tables


def grad_renderables(console: Console, cfg: RunConfig, grads: Gradients, precision: int, batch_index: int = 0) -> list:
    """The grad section: norms table, per-step charts (numpy BPTT only), value tables."""
    out: list = [Text(f"loss {grads.loss_kind}: L = {grads.loss:.{precision}e}"), norms_table(console, cfg, grads, precision)]
    for (layer, direction), norms in (grads.norm_per_step or {}).items():
        out.append(step_chart(console, layer, direction, norms, grads.first_last[layer, direction], precision))
    out.extend(value_tables(console, cfg, grads, precision, batch_index))
    return out
