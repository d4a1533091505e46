"""The `values` section: output, h_n and c_n of one batch element as tables of numbers,
cut to the console's width and a number of rows (the cut stated), coloured by heat.py on a
colour terminal."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_cli.core.config import View
from rnn_cli.core.result import RunResult
from rnn_cli.views.heat import heat_legend, heat_style, use_heatmap
from rnn_cli.views.tables import add_row, make_table

MAX_ROWS = 12  # value-table rows shown before truncating
COMPACT_STEPS = 3  # output rows on the default screen: t=0, a cut, t=L-1 (where h_n's slices sit)


def shown_indices(n: int, limit: int) -> list[int | None]:
    """Indices to show of n, with None where an ellipsis goes."""
    if n <= limit:
        return list(range(n))
    head = (limit + 1) // 2
    tail = limit - head - 1
    return list(range(head)) + [None] + list(range(n - tail, n))


def _cut_note(shape: tuple[int, ...], rows: list, cols: list, more: str) -> str:
    """`2 of 10 rows, 6 of 16 columns shown; all: --show values`, or "" when nothing is cut."""
    shown = []
    if None in rows:
        shown.append(f"{sum(r is not None for r in rows)} of {shape[0]} rows")
    if None in cols:
        shown.append(f"{sum(c is not None for c in cols)} of {shape[1]} columns")
    return f"{', '.join(shown)} shown; all: {more}" if shown else ""


def _shown(console: Console, matrix: np.ndarray, label_width: int, number_width: int, view: View,
           max_rows: int) -> tuple[list, list]:
    """The rows and columns shown (None: the cut), as many columns as the width holds."""
    # Each shown column costs its width and 1 of divider; the ellipsis column 4.
    room = console.width - label_width - (1 if view.compact else 0)  # compact: the labels' own left pad
    if matrix.shape[1] * (number_width + 1) <= room:
        max_cols = matrix.shape[1]
    else:
        max_cols = max(2, min((room - 4) // (number_width + 1) + 1, matrix.shape[1] - 1))
    rows = shown_indices(matrix.shape[0], MAX_ROWS)
    if max_rows < MAX_ROWS and matrix.shape[0] > max_rows:  # the compact screen: first, cut, last
        rows = list(range(max_rows // 2)) + [None] + list(range(matrix.shape[0] - (max_rows - 1) // 2, matrix.shape[0]))
    return rows, shown_indices(matrix.shape[1], max_cols)


def _title_and_caption(console: Console, title: str, caption: str, cut: str, short_cut: str, view: View,
                       legend: Text | None) -> tuple[str | Text, Text | None]:
    """Where the caption, the cut and the colour legend go: under the table, or on the short
    default screen beside the title where that fits."""
    if view.compact and caption and cut and len(f"{caption}; {cut}") > console.width:
        title, caption = f"{title} ({caption})", ""  # the short screen: one line of caption, not two
    elif view.compact and not caption and short_cut:
        if len(f"{title} ({short_cut})") <= console.width:  # the short screen: the cut beside the title
            title, cut = f"{title} ({short_cut})", ""
    notes: list[str | Text] = [caption] if caption else []
    if legend is not None and view.compact:  # the short default screen: the scale beside the title, not a line
        if len(title) + 3 + legend.cell_len <= console.width:  # of its own; where that does not fit, the
            title = Text.assemble(title, "   ", legend)  # cells' own numbers say what each colour means
    elif legend is not None:
        notes.append(legend)
    if cut:
        if notes and isinstance(notes[0], str):  # one line with the caption: the screen is short
            notes[0] = f"{notes[0]}; {cut}"
        else:
            notes.append(cut)
    return title, Text("\n").join(Text(n) if isinstance(n, str) else n for n in notes) if notes else None


def _add_rows(table: Table, matrix: np.ndarray, rows: list, cols: list, row_labels: list[str], dim_rows: set[int],
              precision: int, heat: tuple[float, str | None] | None) -> None:
    """The shown cells, a `:` row and a `...` column where cut; heat: (vmax, colour system)."""
    for r in rows:
        if r is None:
            add_row(table, ":", *["" for _ in cols])
            continue
        cells: list[Text | str] = [Text(row_labels[r], style="dim" if r in dim_rows else "")]
        for c in cols:
            if c is None:
                cells.append("...")
                continue
            v = float(matrix[r, c])
            text = Text(f"{v:.{precision}f}")
            if heat:
                text.stylize(heat_style(v, *heat))
            elif r in dim_rows:
                text.stylize("dim")
            cells.append(text)
        add_row(table, *cells)


def value_table(
    console: Console,
    title: str,
    matrix: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    view: View,
    caption: str = "",
    dim_rows: set[int] | None = None,
    max_rows: int = MAX_ROWS,
) -> Table:
    """A 2-D slice as a table, truncated to fit the console's width and max_rows (the cut stated)."""
    finite = np.abs(matrix[np.isfinite(matrix)])
    vmax = float(finite.max()) if finite.size else 0.0
    number_width = max(view.precision + 3, len(f"-{vmax:.{view.precision}f}"))  # "-0.1234"
    rows, cols = _shown(console, matrix, max(len(s) for s in row_labels), number_width, view, max_rows)
    heat = use_heatmap(console, view)
    cut = _cut_note(matrix.shape, rows, cols, "--show values" if max_rows < MAX_ROWS else "--json or --save PATH.npz")
    short = _cut_note(matrix.shape, rows, cols, "--json").replace(" shown", "") if max_rows >= MAX_ROWS else ""
    legend = heat_legend(vmax, view.precision, console.color_system) if heat else None
    title, caption_text = _title_and_caption(console, title, caption, cut, short, view, legend)
    table = make_table(console, title, caption_text, padding=0)
    if view.compact:  # the short default screen: no rule under the column labels, a space between
        table.box, table.padding = None, (0, 0, 0, 1)
    table.add_column("", style="bold", no_wrap=True)
    for c in cols:
        width = 3 if c is None else number_width
        table.add_column("..." if c is None else col_labels[c], justify="right", no_wrap=True, min_width=width)
    _add_rows(table, matrix, rows, cols, row_labels, dim_rows or set(), view.precision,
              (vmax, console.color_system) if heat else None)
    return table


def value_tables(console: Console, result: RunResult, view: View) -> list[Table]:
    cfg = result.cfg
    b = view.batch_index
    H, D = cfg.H_out, cfg.D
    who = "" if cfg.unbatched else f", batch element {b}"
    out = result.time_major("output")[:, b, :]  # (L, D*H_out)
    pad: set[int] = set()
    if cfg.lengths is not None:
        pad = set(range(cfg.lengths[b], cfg.seq_len))
    row_labels = [f"t={t}" + (" pad" if t in pad else "") for t in range(cfg.seq_len)]
    col_labels = [f"{'b' if D == 2 and j >= H else ''}{j % H if D == 2 else j}" for j in range(D * H)]
    caption = f"0-{H - 1} fwd, b0-b{H - 1} bwd" if D == 2 else "columns: hidden units"
    steps = COMPACT_STEPS if view.compact else MAX_ROWS
    tables = [value_table(console, f"output{who}", out, row_labels, col_labels, view, caption, pad, steps)]
    state_labels = [f"l{k // D} {'bwd' if k % D else 'fwd'}" for k in range(D * cfg.num_layers)]
    for name in ("h_n", "c_n"):
        if name in result.tensors:
            m = result.state(name)[:, b, :]  # (D*num_layers, H)
            labels = [f"{k} {s}" for k, s in enumerate(state_labels)]
            cols = [str(j) for j in range(m.shape[1])]
            caption = "" if view.compact else f"rows: {name}[layer*D + direction]"  # the labels say it
            tables.append(value_table(console, f"{name}{who}", m, labels, cols, view, caption))
    return tables
