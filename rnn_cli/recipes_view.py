"""The recipes and --no-pack sections: rich tables for people (their JSON: documents.py).

Computes nothing: every number comes from rnn_cli.recipes. Piped output is ASCII; the
tables fit 80 columns (expressions fold rather than being cut, notes wrap between words).
"""

from __future__ import annotations


from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from rnn_cli.config import shape_str
from rnn_cli.recipes import PaddingRow, RecipeRow
from rnn_cli.views import make_table

# A rule under the header and nothing else; the ASCII twin is for piped output.
# (title, caption, columns) of the two tables
RECIPES = (
    "Taking the final state: recipes evaluated on this run",
    "truth from the definitions: forward = output at each sequence's last real step, backward = output at step 0",
    {"expression": {"no_wrap": False}, "shape": {}, "on this run": {}},
)
PADDING = (
    "Padding without packing: the padded batch run straight through the module",
    "max abs diff from the packed run, same weights; the padding value stays zero. h_n[k]: layer k // D",
    {"tensor": {}, "sequence": {"justify": "right"}, "length": {"justify": "right"}, "direction": {},
     "max abs diff": {"justify": "right"}},
)


def _table(console: Console, title: str, caption: str, columns: dict[str, dict]) -> Table:
    table = make_table(console, Text(title), Text(caption))  # Text: "h_n[k]" is an index, not markup
    for header, options in columns.items():
        table.add_column(header, **{"no_wrap": True, **options})
    return table


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"


def verdict(row: RecipeRow) -> Text:
    if row.correct:
        return Text("equal", style="green")
    if row.max_abs_diff is None:
        return Text("WRONG shape", style="bold red")
    return Text(f"WRONG {_number(row.max_abs_diff)} off", style="bold red")


def recipes_table(console: Console, rows: list[RecipeRow]) -> Table:
    """One group of rows per meaning; a wrong row says why under its expression."""
    table = _table(console, *RECIPES)
    meaning = None
    for row in rows:
        if row.meaning != meaning:
            if meaning is not None:
                table.add_section()
            meaning = row.meaning
            table.add_row(Text(meaning, style="bold"), Text(""), Text(""))
        cell = Text(row.expression, overflow="fold")  # code: folded when too long, never cut
        if row.note:
            cell = Group(cell, Padding(Text(row.note, style="dim"), (0, 0, 0, 2)))
        table.add_row(cell, Text(shape_str(row.shape)), verdict(row))
    return table


def recipes_summary(rows: list[RecipeRow]) -> list[Text]:
    """The default screen's short form: the right spelling of each meaning, then every wrong
    one and by how much (the table: --show recipes). Plain text that wraps, never cut."""
    right: dict[str, str] = {}  # the first (the usual) right spelling of each meaning
    for row in rows:
        if row.correct:
            right.setdefault(row.meaning, row.torch_expression)
    wrong = [
        f"{r.torch_expression} ({'wrong shape' if r.max_abs_diff is None else _number(r.max_abs_diff) + ' off'})"
        for r in rows
        if not r.correct
    ]
    order = dict.fromkeys(r.meaning for r in rows)
    lines = [Text.assemble(("Final state on this run, equal: ", "bold green"), "; ".join(right[m] for m in order if m in right))]
    if wrong:
        lines.append(Text.assemble(("WRONG: ", "bold red"), "; ".join(wrong)))
    lines[-1].append(" (every recipe: --show recipes)", style="dim")
    return lines


def padding_table(console: Console, rows: list[PaddingRow]) -> Table:
    table = _table(console, *PADDING)
    tensor = None
    for row in rows:
        if row.tensor != tensor and tensor is not None:
            table.add_section()
        shown = row.tensor if row.tensor != tensor else ""
        tensor = row.tensor
        cells = (shown, str(row.sequence), str(row.length), row.direction, _number(row.max_abs_diff))
        table.add_row(*(Text(c) for c in cells))  # Text: "h_n[3]" is an index, not markup
    return table


# ---- machine output -------------------------------------------------------------------------
