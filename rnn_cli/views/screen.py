"""Views of a result: rich tables for people (the JSON documents are in documents.py).
Computes nothing: every number and every check comes from a result.

Human output is coloured only on a terminal; piped output is plain ASCII (rich drops the
styles, and `plain` picks ASCII boxes). NO_COLOR is honoured by rich itself.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Callable
from dataclasses import dataclass

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.style import Style
from rich.table import Table
from rich.text import Text

from rnn_cli.views.fit import NBSP, Verbatim, _min_width, fit, keep, optional_columns, print_parts  # noqa: F401 - their home was here
from rnn_cli.core.config import GATE_NAMES, SECTION_NAMES, TORCH_CLASS, RunConfig, View, shape_str
from rnn_cli.core.result import RunResult

MAX_ROWS = 12  # value-table rows shown before truncating
COMPACT_STEPS = 3  # output rows on the default screen: t=0, a cut, t=L-1 (where h_n's slices sit)
WIDE = 200  # piped output without COLUMNS: wide enough that grep finds whole lines


def stdout_width(is_terminal: bool, environ) -> int | None:
    """The width to draw at: COLUMNS when it is a positive integer (0, negative or not a number
    count as unset); else the terminal's (None: rich asks it); piped, WIDE so lines stay whole."""
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if is_terminal else WIDE


def is_plain(console: Console) -> bool:
    """Not a terminal: ASCII only, no colour."""
    return not console.is_terminal


# A rule under the header and nothing else; the ASCII twin is for piped output.
ASCII_SIMPLE_HEAD = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)


def _box(console: Console) -> box.Box:
    return ASCII_SIMPLE_HEAD if is_plain(console) else box.SIMPLE_HEAD


def add_row(table: Table, *cells: str | Text, **kwargs) -> None:
    """Add a row whose strings are literal text: "[0, :, 0:8]" is an index, not rich markup."""
    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)


def make_table(console: Console, title: str | None = None, caption: str | None = None, **kwargs) -> Table:
    return Table(
        title=title,
        caption=caption,
        box=_box(console),
        title_justify="left",
        caption_justify="left",
        show_edge=False,
        **kwargs,
    )


# ---- 1. the equivalent PyTorch code -------------------------------------------------------


def pytorch_code(cfg: RunConfig, device: str = "cpu") -> str:
    """Copy-pastable PyTorch that builds the same module and runs input of the same shape."""
    shapes = cfg.shapes()
    layouts = cfg.layouts()
    var = cfg.cell
    kwargs = [f"{k}={v!r}" for k, v in cfg.constructor_kwargs().items()]
    extra = []
    if device != "cpu":
        extra.append(f'device="{device}"')
    if cfg.dtype != "float32":
        extra.append(f"dtype=torch.{cfg.dtype}")
    tensor_kw = "".join(", " + e for e in extra)

    lines = ["import torch", "from torch import nn"]
    if cfg.packed:
        lines.append("from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence")
    lines.append("")
    lines.append(_call(f"{var} = nn.{TORCH_CLASS[cfg.cell]}", kwargs + extra))
    lines.append(f"x = torch.randn{shape_str(shapes['input'])[:-1]}{tensor_kw})  # {layouts['input']}")
    args = "x"
    if cfg.h0 == "random":
        lines.append(f"h_0 = torch.randn{shape_str(shapes['h_0'])[:-1]}{tensor_kw})  # {layouts['h_0']}")
        if cfg.has_c:
            lines.append(f"c_0 = torch.randn{shape_str(shapes['c_0'])[:-1]}{tensor_kw})  # {layouts['c_0']}")
            args += ", (h_0, c_0)"
        else:
            args += ", h_0"
    state = "(h_n, c_n)" if cfg.has_c else "h_n"
    if cfg.packed:
        lines.append(f"lengths = torch.tensor({list(cfg.lengths)})  # real steps of each sequence")
        pack_args = ["x", "lengths"] + (["batch_first=True"] if cfg.batch_first else []) + ["enforce_sorted=False"]
        lines.append(_call("packed = pack_padded_sequence", pack_args))
        lines.append(f"packed_out, {state} = {var}({args.replace('x', 'packed', 1)})")
        lines.append(f"# packed_out.data {shape_str(shapes['packed_data'])}")
        lines.append(f"# packed_out.batch_sizes {cfg.batch_sizes()}")
        unpack_args = ["packed_out"] + (["batch_first=True"] if cfg.batch_first else []) + [f"total_length={cfg.seq_len}"]
        lines.append(_call("output, _ = pad_packed_sequence", unpack_args))
    else:
        lines.append(f"output, {state} = {var}({args})")
    result = f"# output {shape_str(shapes['output'])}, h_n {shape_str(shapes['h_n'])}"
    if cfg.has_c:
        result += f", c_n {shape_str(shapes['c_n'])}"
    lines.append(result)
    return "\n".join(lines)


def _call(prefix: str, args: list[str], width: int = 78) -> str:
    """`prefix(a, b, c)` on one line, or one argument per line when that is too wide."""
    line = f"{prefix}({', '.join(args)})"
    if len(line) <= width:
        return line
    return f"{prefix}(\n" + "".join(f"    {a},\n" for a in args) + ")"


# ---- 2. shapes ------------------------------------------------------------------------------

MEANINGS = {
    "input": "random, drawn from the seed",
    "h_0": "initial hidden state",
    "c_0": "initial cell state",
    "output": "last layer's h_t, every step",
    "h_n": "final h per layer, direction",
    "c_n": "final c per layer, direction",
    "packed_data": "PackedSequence .data: real steps",
    "batch_sizes": "sequences running at each step",
}


def _meaning(cfg: RunConfig, name: str) -> str:
    text = MEANINGS[name]
    if name == "input" and cfg.input == "file":
        text = "from --input"
    if name in ("h_0", "c_0"):
        text += {"zeros": " (zeros)", "random": " (random)", "file": " (from --h0/--c0)"}[cfg.h0]
    if name == "input" and cfg.lengths is not None:
        text += "; zero past each length"
    if name == "output":
        if cfg.packed:
            text += "; zero past each length"
    return text


def symbols_line(cfg: RunConfig) -> str:
    parts = [] if cfg.unbatched else [f"N={cfg.N}"]
    parts += [f"L={cfg.seq_len}", f"D={cfg.D}", f"H_in={cfg.input_size}"]
    if cfg.proj_size:
        parts.append(f"H_cell={cfg.hidden_size}")
    parts += [f"H_out={cfg.H_out}", f"num_layers={cfg.num_layers}"]
    return "  ".join(parts)


def shape_notes(cfg: RunConfig) -> list[str]:
    notes = []
    if cfg.batch_first and not cfg.unbatched:
        notes.append(
            "batch_first=True applies to input and output only: h_n is still (D*num_layers, N, H_out)"
            + (" and c_n (D*num_layers, N, H_cell)" if cfg.has_c else "")
            + "."
        )
    if cfg.unbatched:
        notes.append("Unbatched input: no N dimension in any tensor.")
    if cfg.proj_size:
        notes.append(
            f"proj_size={cfg.proj_size}: h is projected from H_cell={cfg.hidden_size} to H_out={cfg.proj_size}; "
            "c keeps H_cell; layers above the first take D*proj_size inputs."
        )
    if cfg.packed:
        notes.append(
            "Packed: each sequence ends at its own length; h_n holds each sequence's state at its last real step."
        )
    elif cfg.lengths is not None:
        notes.append(
            "Not packed (--no-pack): the zero padding runs through the module like real steps, so h_n is the "
            "state after step L-1 for every sequence, and the backward direction starts in the padding."
        )
    return notes


def shapes_table(console: Console, result: RunResult, compact: bool = False) -> Table:
    cfg = result.cfg
    layouts = cfg.layouts()
    table = make_table(console, "Shapes  " + symbols_line(cfg))
    if compact:  # the short default screen: no rule under the column labels
        table.box = None
    table.add_column("tensor", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("layout", no_wrap=True)
    table.add_column("meaning")
    for name, shape in result.shapes().items():
        meaning = _meaning(cfg, name)
        if name == "batch_sizes":
            meaning += ": " + str([int(v) for v in result.tensors["batch_sizes"]])
        add_row(table, name, shape_str(shape), layouts[name], meaning)
    # The short default screen, when narrow: the diagram and notes say what each tensor is.
    return optional_columns(table, "meaning") if compact else table


# ---- 3. parameters --------------------------------------------------------------------------


def gate_label(cfg: RunConfig, name: str) -> str:
    gates = GATE_NAMES[cfg.cell]
    if not gates or name.startswith("weight_hr"):
        return "projection" if name.startswith("weight_hr") else ""
    return f"{len(gates)} gates ({', '.join(gates)}) x {cfg.hidden_size}"


def parameter_table(console: Console, result: RunResult) -> Table:
    cfg = result.cfg
    table = make_table(console, "Parameters")
    table.add_column("name", style="bold", no_wrap=True)  # identifiers never wrap: fit() lists them instead
    table.add_column("shape", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    if cfg.cell != "rnn" or cfg.proj_size:
        table.add_column("rows")
    total = 0
    for i, (name, p) in enumerate(result.params.items()):
        total += p.size
        row = [name, shape_str(p.shape), f"{p.size:,}"]
        if cfg.cell != "rnn" or cfg.proj_size:
            row.append(gate_label(cfg, name))
        add_row(table, *row, end_section=i == len(result.params) - 1)
    add_row(table, "total", "", f"{total:,}", *([""] if cfg.cell != "rnn" or cfg.proj_size else []))
    return table


# ---- 4. values ------------------------------------------------------------------------------


def _shown_indices(n: int, limit: int) -> list[int | None]:
    """Indices to show of n, with None where an ellipsis goes."""
    if n <= limit:
        return list(range(n))
    head = (limit + 1) // 2
    tail = limit - head - 1
    return list(range(head)) + [None] + list(range(n - tail, n))


HEAT_ZERO = (48, 48, 48)  # dark grey: the white digits read on it on dark and light terminals
HEAT_POSITIVE = (215, 48, 39)  # red; white on it and on the blue keeps > 4.5:1 contrast
HEAT_NEGATIVE = (44, 110, 190)  # blue
# 256-colour steps (xterm palette numbers), zero then 4 deeper: rich's own rounding of the
# blends to that palette would turn the dark reds olive and the blues teal.
HEAT_256 = {1: (236, 52, 88, 124, 160), -1: (236, 17, 18, 19, 20)}


def heat_style(value: float, vmax: float, color_system: str | None = "truecolor") -> Style:
    """Diverging background centred on 0: blue below, red above, dark grey at zero; white digits.

    Blended on truecolor terminals, in 4 steps a side on 256-colour ones. The 16 standard
    colours cannot shade, so there only |value| >= vmax/2 is coloured, white on red or blue."""
    if not math.isfinite(value) or vmax <= 0:
        return Style()
    t = max(-1.0, min(1.0, value / vmax))
    if color_system in ("standard", "windows"):
        return Style(bgcolor="red" if t > 0 else "blue", color="bright_white") if abs(t) >= 0.5 else Style()
    from rich.color import Color

    white = Color.from_rgb(255, 255, 255)
    if color_system == "256":
        step = HEAT_256[1 if t > 0 else -1][int(abs(t) * 4 + 0.5)]
        return Style(bgcolor=Color.from_ansi(step), color=white)
    end = HEAT_POSITIVE if t > 0 else HEAT_NEGATIVE
    rgb = tuple(int(round(b + abs(t) * (e - b))) for b, e in zip(HEAT_ZERO, end))
    return Style(bgcolor=Color.from_rgb(*rgb), color=white)


def heat_legend(vmax: float, precision: int, color_system: str | None) -> Text:
    """The caption line that states the range, its ends and middle drawn as the cells are."""
    lo, hi = f"-{vmax:.{precision}f}", f"+{vmax:.{precision}f}"  # the cells' own format
    return Text.assemble(  # one item: NBSPs, so a narrow screen moves it whole, never `+0.9130` alone
        f"colour{NBSP}scale{NBSP}",
        (lo, heat_style(-vmax, vmax, color_system)),
        f"{NBSP}..{NBSP}",
        ("0", heat_style(0.0, vmax, color_system)),
        f"{NBSP}..{NBSP}",
        (hi, heat_style(vmax, vmax, color_system)),
    )


def use_heatmap(console: Console, view: View) -> bool:
    return view.heatmap and console.color_system is not None and not console.no_color and not is_plain(console)


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
    label_width = max(len(s) for s in row_labels)
    # Each shown column costs its width and 1 of divider; the ellipsis column 4.
    room = console.width - label_width - (1 if view.compact else 0)  # compact: the labels' own left pad
    if matrix.shape[1] * (number_width + 1) <= room:
        max_cols = matrix.shape[1]
    else:
        max_cols = max(2, min((room - 4) // (number_width + 1) + 1, matrix.shape[1] - 1))
    rows = _shown_indices(matrix.shape[0], MAX_ROWS)
    if max_rows < MAX_ROWS and matrix.shape[0] > max_rows:  # the compact screen: first, cut, last
        rows = list(range(max_rows // 2)) + [None] + list(range(matrix.shape[0] - (max_rows - 1) // 2, matrix.shape[0]))
    cols = _shown_indices(matrix.shape[1], max_cols)
    heat = use_heatmap(console, view)
    cut = _cut_note(matrix.shape, rows, cols, "--show values" if max_rows < MAX_ROWS else "--json or --save PATH.npz")
    if view.compact and caption and cut and len(f"{caption}; {cut}") > console.width:
        title, caption = f"{title} ({caption})", ""  # the short screen: one line of caption, not two
    elif view.compact and not caption and cut and max_rows >= MAX_ROWS:
        short = _cut_note(matrix.shape, rows, cols, "--json").replace(" shown", "")
        if len(f"{title} ({short})") <= console.width:  # the short screen: the cut beside the title
            title, cut = f"{title} ({short})", ""
    notes: list[str | Text] = [caption] if caption else []
    if heat and view.compact:  # the short default screen: the scale beside the title, not a line of its own;
        legend = heat_legend(vmax, view.precision, console.color_system)  # where that does not fit, the cells'
        if len(title) + 3 + legend.cell_len <= console.width:  # own numbers say what each colour means
            title = Text.assemble(title, "   ", legend)
    elif heat:
        notes.append(heat_legend(vmax, view.precision, console.color_system))
    if cut:
        if notes and isinstance(notes[0], str):  # one line with the caption: the screen is short
            notes[0] = f"{notes[0]}; {cut}"
        else:
            notes.append(cut)
    caption_text = Text("\n").join(Text(n) if isinstance(n, str) else n for n in notes) if notes else None
    table = make_table(console, title, caption_text, padding=0)
    if view.compact:  # the short default screen: no rule under the column labels, a space between
        table.box, table.padding = None, (0, 0, 0, 1)
    table.add_column("", style="bold", no_wrap=True)
    for c in cols:
        width = 3 if c is None else number_width
        table.add_column("..." if c is None else col_labels[c], justify="right", no_wrap=True, min_width=width)
    for r in rows:
        if r is None:
            add_row(table, ":", *["" for _ in cols])
            continue
        cells: list[Text | str] = [Text(row_labels[r], style="dim" if dim_rows and r in dim_rows else "")]
        for c in cols:
            if c is None:
                cells.append("...")
                continue
            v = float(matrix[r, c])
            text = Text(f"{v:.{view.precision}f}")
            if heat:
                text.stylize(heat_style(v, vmax, console.color_system))
            elif dim_rows and r in dim_rows:
                text.stylize("dim")
            cells.append(text)
        add_row(table, *cells)
    return table


def _cut_note(shape: tuple[int, ...], rows: list, cols: list, more: str) -> str:
    """`2 of 10 rows, 6 of 16 columns shown; all: --show values`, or "" when nothing is cut."""
    shown = []
    if None in rows:
        shown.append(f"{sum(r is not None for r in rows)} of {shape[0]} rows")
    if None in cols:
        shown.append(f"{sum(c is not None for c in cols)} of {shape[1]} columns")
    return f"{', '.join(shown)} shown; all: {more}" if shown else ""


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


# ---- 5. where h_n comes from ------------------------------------------------------------


def sources_table(console: Console, result: RunResult, bwd_note: bool = True, compact: bool = False) -> Table:
    cfg = result.cfg
    plain = is_plain(console)
    table = make_table(console, "Where h_n comes from (checked on this run)")
    if compact:  # the short default screen: no rule under the column labels
        table.box = None
    table.add_column("state", style="bold", no_wrap=True)
    table.add_column("layer", justify="right")
    table.add_column("dir")
    table.add_column("equals", no_wrap=True)
    table.add_column("step t", no_wrap=False)
    table.add_column("check", no_wrap=True)
    for s in result.sources:
        if s.ok is None:
            check = Text("-" if plain else "—", style="dim")
        elif s.ok:
            check = Text("equal" if plain else "✓ equal", style="green")
        else:
            check = Text(f"DIFFERS {s.max_abs_diff:.2g}" if plain else f"✗ {s.max_abs_diff:.2g}", style="bold red")
        if s.state == "c_n":
            steps = ""
        elif len(set(s.steps)) == 1:
            steps = str(s.steps[0])
        else:
            steps = ", ".join(str(t) for t in s.steps)
        direction = "bwd" if s.direction == "backward" else "fwd"
        add_row(table, f"{s.state}[{s.index}]", str(s.layer), direction, s.expression, steps, check)
    if compact:  # the short default screen, when narrow: the diagram and h_n's row labels say them
        optional_columns(table, "dir", "layer")
    notes = []
    if result.implementation == "manual":
        notes.append("manual copies h_n from these slices: this checks its bookkeeping; `rnn-cli torch` checks torch.")
    if cfg.bidirectional and bwd_note:
        notes.append("bwd ends at step 0: its final state is at output step 0, not the last step.")
    if cfg.num_layers > 1:
        notes.append("layerK_output: layer K's output, not returned; re-computed.")
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


# ---- whole views -------------------------------------------------------------------------


def _lift_caption(table: Table) -> list:
    """The table, then its caption as text at the console's width (a caption under a narrow
    table would wrap at the table's width)."""
    caption, table.caption = table.caption, None
    if caption is None:
        return [table]
    return [table, caption if isinstance(caption, Text) else Text(str(caption))]


def code_lines(console: Console, cfg: RunConfig, device: str) -> list:
    """The code as plain lines under a title: no frame, highlighted only on a colour terminal.
    show() prints these with soft_wrap, so long lines stay long and copy as written."""
    code = pytorch_code(cfg, device)
    if console.is_terminal and console.color_system is not None and not console.no_color:
        from rich.syntax import Syntax  # pygments: imported only when it will colour something

        body = Syntax(code, "python", theme="ansi_dark", background_color="default").highlight(code)
        body.rstrip()
    else:
        body = Text(code)
    return [Text("Equivalent PyTorch:", style="bold"), Text(""), Verbatim(body)]


def tf32_line(tf32: bool) -> str:
    return "TF32 in cuDNN: " + ("allowed (torch's default; --no-tf32 turns it off)" if tf32 else "off (--no-tf32)")


def data_line(cfg: RunConfig) -> str:
    """Where the numbers came from: `seed 0`, or `weights model.pt:lstm, input x.npy, seed 0`."""
    parts = [] if cfg.weights == "seed" else [f"weights {cfg.weights}"]
    parts += ["input from --input"] if cfg.input == "file" else []
    parts += ["h_0 from --h0"] if cfg.h0 == "file" else []
    drawn = cfg.weights == "seed" or cfg.input == "seed" or cfg.h0 == "random"
    return ", ".join(parts + ([f"seed {cfg.seed}"] if drawn or not parts else []))


def header(result: RunResult, command: str) -> Text:
    cfg = result.cfg
    what = "numpy memory cell" if result.implementation == "manual" else f"nn.{TORCH_CLASS[cfg.cell]}"
    from rnn_cli.views.cost import parameters_text

    # short enough for one line at 60 columns, with the parameter count
    text = Text(f"rnn-cli {command}: {what}, {result.device}, {cfg.dtype}, {data_line(cfg)}", style="bold")
    text.append("; " + parameters_text(result))  # split per layer and direction: --show params
    if result.tf32 is not None:
        text.append("\n" + tf32_line(result.tf32))
    return text


def _diagram_section(console: Console, result: RunResult, view: View) -> list:
    from rnn_cli.views.diagram import flow_diagram

    from rnn_cli.views.fit import Whole

    # A line wider than the console continues under its second column, not at the margin.
    return [Whole(flow_diagram(result.cfg, plain=is_plain(console), width=console.width), hang=None)]


def _shapes_section(console: Console, result: RunResult, view: View) -> list:
    return [shapes_table(console, result, view.compact)] + [Text(n, style="italic") for n in shape_notes(result.cfg)]


def _sources_section(console: Console, result: RunResult, view: View) -> list:
    # On the short default screen the recipes' summary says where bwd ends; say it once.
    said_below = view.compact and bool(result.recipes)
    return _lift_caption(sources_table(console, result, bwd_note=not said_below, compact=view.compact))


def _values_section(console: Console, result: RunResult, view: View) -> list:
    parts: list = []
    for table in value_tables(console, result, view):  # the short screen: titled tables, no blank between
        parts += ([Text("")] if parts and not view.compact else []) + _lift_caption(table)
    return parts


def _params_section(console: Console, result: RunResult, view: View) -> list:
    from rnn_cli.views.cost import per_direction_table

    return [parameter_table(console, result), Text(""), per_direction_table(console, result)]


def _cost_section(console: Console, result: RunResult, view: View) -> list:
    from rnn_cli.views.cost import cost_table

    return _lift_caption(cost_table(console, result))


def _code_section(console: Console, result: RunResult, view: View) -> list:
    return code_lines(console, result.cfg, result.device)


def _recipes_section(console: Console, result: RunResult, view: View) -> list:
    """The final-state recipes: by default only where the configuration has a trap (runs.Extras)."""
    if not result.recipes:
        return []
    from rnn_cli.views.recipes import recipes_summary, recipes_table

    if view.compact:
        return recipes_summary(result.cfg, result.recipes, is_plain(console))
    return _lift_caption(recipes_table(console, result.cfg, result.recipes))


def _padding_section(console: Console, result: RunResult, view: View) -> list:
    if result.padding_effect is None:
        return [Text("padding: only with --lengths and --no-pack", style="dim")] if view.asked else []
    from rnn_cli.views.recipes import padding_table

    return _lift_caption(padding_table(console, result.padding_effect))


def _grad_section(console: Console, result: RunResult, view: View) -> list:
    if result.gradients is None:
        return [Text("grad: only with --grad", style="dim")] if view.asked else []
    from rnn_cli.views.grad import grad_renderables

    return grad_renderables(console, result.cfg, result.gradients, view.precision, view.batch_index)


# The --show sections, in the order they are drawn (config.SECTION_NAMES). A new section
# joins by adding a row here and its name there.
SECTIONS: dict[str, Callable[[Console, RunResult, View], list]] = {
    "diagram": _diagram_section,
    "shapes": _shapes_section,
    "sources": _sources_section,
    "values": _values_section,
    "recipes": _recipes_section,
    "padding": _padding_section,
    "grad": _grad_section,
    "params": _params_section,
    "cost": _cost_section,
    "code": _code_section,
}
assert tuple(SECTIONS) == SECTION_NAMES


def more_line(view: View, width: int, result: RunResult | None = None) -> Text | None:
    """The closing line: the sections left out or only summed up (the recipes' one line per
    target), and how to see them. The --show list is one word to copy, so where it would not
    fit the line, the names are listed apart from it."""
    summed_up = ["recipes"] if result is not None and result.recipes and view.compact and view.shows("recipes") else []
    left = [name for name in SECTIONS if (name in summed_up or not view.shows(name)) and name not in ("padding", "grad")]
    if not left:
        return None
    line = f"more: --show {','.join(left)} or --show all"
    if len(line) > width:
        line = f"more: --show all, or --show with any of: {', '.join(left)}"
    return Text(line, style="dim")


def _sections(console: Console, result: RunResult, view: View) -> list:
    parts: list = []
    for name, section in SECTIONS.items():
        if view.shows(name):
            drawn = section(console, result, view)
            if drawn:
                parts += [Text("")] + drawn
    return parts


def brief_lines(result: RunResult) -> list[str]:
    """--brief: one line per tensor, `output (10, 1, 16)  (L, N, D*H_out)`."""
    layouts = result.cfg.layouts()
    rows = [(name, shape_str(shape), layouts[name]) for name, shape in result.shapes().items()]
    if result.gradients is not None:  # --grad: each gradient's shape and norm
        from rnn_cli.formats.grad_export import user_layout_gradients

        norms = result.gradients.norms
        rows += [(f"grad_{n}", shape_str(a.shape), f"norm {norms[n]:.3e}")
                 for n, a in user_layout_gradients(result.cfg, result.gradients).items()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"{n:<{w0}} {s:<{w1}}  {lay}" for n, s, lay in rows]


def show_run(console: Console, result: RunResult, command: str, view: View) -> None:
    if view.brief:
        for line in brief_lines(result):
            console.print(Text(line), soft_wrap=True)
        return
    parts: list = [header(result, command)] + _sections(console, result, view)
    more = more_line(view, console.width, result)
    if more is not None:
        parts.append(more)
    print_parts(console, parts)


def compare_rule_caption() -> str:
    return (
        "margin = max(|torch - ref| - (atol + rtol*|ref|)) over the tensor: <= 0 passes, > 0 fails "
        "(batch_sizes: exact, atol = rtol = 0). Relative differences: --json."
    )


def checks_parts(console: Console, checks) -> list:
    """compare's table of TensorChecks (its caption lifted under it), then a line per tensor
    with NaN/Inf: compare's view, and convert's (the converted module against the source)."""
    table = make_table(console, caption=compare_rule_caption())
    table.add_column("tensor", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)  # one shape when both sides agree
    table.add_column("max abs diff", justify="right", no_wrap=True)
    table.add_column("margin", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for c in checks:
        verdict = Text("pass", style="green") if c.ok else Text("FAIL", style="bold red")
        shapes = shape_str(c.torch_shape)
        if c.torch_shape != c.reference_shape:
            shapes += " vs " + shape_str(c.reference_shape)
        add_row(
            table,
            c.name,
            shapes,
            "shape" if c.max_abs_diff is None else f"{c.max_abs_diff:.2e}",
            _margin(c),
            verdict,
        )
    return _lift_caption(table) + [Text(f"{c.name}:{_nonfinite(c)}") for c in checks if c.nonfinite_agree or c.nonfinite_mismatch]


def show_compare(console: Console, cmp, view: View) -> None:
    """compare's human view: a header, the comparison table and the verdict (then any --show section)."""
    from rnn_cli.views.cost import parameters_text

    got = cmp.torch
    cfg = got.cfg
    tol = cmp.tolerance
    if view.brief:
        w = max(len(c.name) for c in cmp.checks)
        ws = max(len(shape_str(c.torch_shape)) for c in cmp.checks)
        for c in cmp.checks:
            margin = "shape" if c.margin is None and c.max_abs_diff is None else f"margin {_margin(c)}"
            line = f"{c.name:<{w}} {shape_str(c.torch_shape):<{ws}}  {'pass' if c.ok else 'FAIL'}  {margin}{_nonfinite(c)}"
            console.print(Text(line), soft_wrap=True)
        return
    parts: list = [
        Text(
            f"rnn-cli compare: nn.{TORCH_CLASS[cfg.cell]} ({got.device}, {cfg.dtype}) "
            f"vs numpy reference (float64), {data_line(cfg)}",
            style="bold",
        ),
        Text(symbols_line(cfg) + "  " + parameters_text(got)),
    ]
    if got.tf32 is not None:
        parts.append(Text(tf32_line(got.tf32)))
    parts.append(Text(f"Tolerance: {keep(f'|torch - ref| <= {tol.atol:g} + {tol.rtol:g} * |ref|')}  ({tol.why})"))
    parts += grad_tolerance_lines(cmp.checks, tol)
    parts += [Text("")] + checks_parts(console, cmp.checks)
    if cmp.ok:
        parts.append(Text("OK: torch matches the numpy reference within tolerance.", style="bold green"))
    else:
        parts.append(Text("MISMATCH: torch and the numpy reference disagree (exit status 1).", style="bold red"))
    parts += _sections(console, got, view)
    more = more_line(view, console.width, got)
    if more is not None:
        parts.append(more)
    print_parts(console, parts)


def grad_tolerance_lines(checks, tol) -> list[Text]:
    """Gradients held to their own tolerance (compare.grad_tolerance): one line per distinct
    tolerance, naming the gradients it applies to."""
    groups: dict = {}
    for c in checks:
        if c.name.startswith("grad_") and c.tolerance is not None and c.tolerance != tol:
            groups.setdefault(c.tolerance, []).append(c.name)
    lines = []
    for t, names in groups.items():
        params = [n for n in names if n[5:] not in ("input", "h_0", "c_0")]
        shown = (["every parameter"] if params else []) + [n for n in names if n not in params]
        scale = re.search(r"sqrt\((?:[^()]|\([^()]*\))*\)", t.why)  # the terms (compare.grad_tolerance), where not overridden
        lines.append(Text(f"  {', '.join(shown)}: {t.atol:.3g} + {t.rtol:.3g} * |ref|" + (f"  (x {scale[0]})" if scale else "")))
    if lines:
        lines.insert(0, Text("Gradients sum many rounded terms: that tolerance x sqrt(terms)"))
    return lines


def _nonfinite(c) -> str:
    """NaN/Inf said plainly: where both sides have it, they agree; where one side has it, they do not."""
    out = ""
    if c.nonfinite_agree:
        out += f"  {c.nonfinite_agree:,} NaN/Inf on both sides at the same places: agree"
    if c.nonfinite_mismatch:
        out += f"  {c.nonfinite_mismatch:,} NaN/Inf on one side only: mismatch"
    return out


def _margin(c) -> str:
    return "" if c.margin is None else f"{c.margin:+.2e}"


# ---- bench --------------------------------------------------------------------------------



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


def show_bench(console: Console, bench) -> None:
    """The human table: one row per implementation, speed relative to the first row."""
    cfg = bench.cfg
    passes = "forward" if bench.grad is None else f"forward + backward (--loss {bench.grad})"
    what = f"rnn-cli bench: nn.{TORCH_CLASS[cfg.cell]} {passes}, {cfg.dtype}, {data_line(cfg)}"
    layout = [symbols_line(cfg)]
    if cfg.lengths is not None:
        layout.append(f"lengths={','.join(map(str, cfg.lengths))} " + ("(packed)" if cfg.packed else "(not packed)"))
    if cfg.batch_first:
        layout.append("batch_first")
    parts: list = [
        Text(what, style="bold"),
        Text("  ".join(layout)),
        Text(f"Work: {format_flops(bench.flops)} per forward (products and element-wise work, as --show cost counts)"),
        Text(_threads_line(bench.threads)),
        Text("Backends: " + "; ".join(_backend(t) for t in bench.timings)),
    ]
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
        add_row(table, n.name, n.device, cfg.dtype, n.status, "-", "-", "-", "-")
    parts += [Text(""), table]
    parts += [Text(f"{n.name} {n.device} not timed, {n.status}: {n.reason}") for n in bench.not_timed]
    parts += [Text(note) for note in bench.notes]
    busy = bench.busy
    if busy:
        from rnn_cli.core.bench import SPREAD_LIMIT

        rows = ", ".join(f"{t.name} {t.device} {t.spread:.1f}x" if t.spread else f"{t.name} {t.device}" for t in busy)
        parts.append(Text(f"Warning: the slowest run took more than {SPREAD_LIMIT}x the fastest ({rows}): "
                          "the machine was busy; rerun.", style="yellow"))
    print_parts(console, parts)


# ---- progress (stderr) ----------------------------------------------------------------------


class LazyProgress:
    """A transient progress bar on a terminal console (stderr), started only once the whole
    job looks longer than `after_s` (projected from the work done so far). Call it as
    progress(label, done, total); close() when the work ends. Not a terminal: nothing."""

    def __init__(self, console: Console | None, after_s: float = 1.0) -> None:
        self.console = console if console is not None and console.is_terminal else None
        self.after_s = after_s
        self.start = time.perf_counter()
        self.progress = self.task = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=label, completed=done, total=total)
            return
        if self.console is None or done <= 0 or done >= total:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed / done * total > self.after_s:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(label, total=total, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
