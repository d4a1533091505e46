"""The recipes and --no-pack sections: rich tables for people (their JSON: documents.py).

Computes nothing: every number comes from rnn_cli.core.recipes. Piped output is ASCII; the
tables fit 80 columns (expressions fold rather than being cut, notes wrap between words).
"""

from __future__ import annotations


from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from rnn_cli.core.config import RunConfig, shape_str
from rnn_cli.core.recipes import PaddingRow, RecipeRow, control_sizes, describe_control
from rnn_cli.views.tables import make_table

# A rule under the header and nothing else; the ASCII twin is for piped output.
# (title, caption, columns) of the two tables
RECIPES = (
    "Taking the final state: recipes evaluated on this run",
    "truth from the definitions: forward = output at each sequence's last real step, backward = output at step 0",
    {"expression": {"no_wrap": False}, "shape": {}, "verdict": {}},
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


def recipes_title(cfg: RunConfig) -> str:
    """Which run the recipes were judged on, and the control draw beside it."""
    control = describe_control(control_sizes(cfg))
    if cfg.lengths is not None and not cfg.pack:
        return f"Taking the final state: recipes on this unpacked run (--no-pack) against the packed truth, and at {control}"
    return f"Taking the final state: recipes evaluated on this run and at {control}"


def verdict(row: RecipeRow) -> Text:
    if row.coincidence:
        return Text("equal here only", style="bold yellow")
    if row.correct:
        return Text("equal", style="green")
    if row.max_abs_diff is None:
        return Text("WRONG shape", style="bold red")
    return Text(f"WRONG {_number(row.max_abs_diff)} off", style="bold red")


def recipes_table(console: Console, cfg: RunConfig, rows: list[RecipeRow]) -> Table:
    """One group of rows per target; a wrong row says why under its expression."""
    table = _table(console, recipes_title(cfg), *RECIPES[1:])
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


# The targets' names in the summary, under a heading that says "of the last layer".
SHORT = {"final": "final state", "forward": "forward final state", "backward": "backward final state",
         "both": "both concatenated", "per_direction": "one per direction", "last_output": "output at last real step"}


def _wrong(row: RecipeRow) -> str:
    """How far off, shortly: "is the backward one (1.1 off)", "0.5 off", "wrong shape", or the coincidence's own words."""
    if row.coincidence:  # its own verdict, in full: "equal here only because N=1; 1.2 off at N=3"
        return row.note
    if row.max_abs_diff is None:
        return "wrong shape"
    why = row.note.split(":")[0]  # what it gives instead, where that is short; the table has all
    return f"{why} ({_number(row.max_abs_diff)} off)" if len(why) <= 20 else f"{_number(row.max_abs_diff)} off"


def recipes_summary(cfg: RunConfig, rows: list[RecipeRow], plain: bool) -> list[Text]:
    """The default screen's short form: one line per target, its right spellings ticked and
    its wrong ones crossed with what they give instead (the table: --show recipes). Plain
    text that wraps between items, never cut."""
    right_mark, wrong_mark = ("ok", "WRONG") if plain else ("\u2713", "\u2717")
    lines = []
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target]
        line = Text.assemble((f"{SHORT[target]}: ", "bold"))
        # the shortest right spelling (all of them: --show recipes)
        right = sorted((r for r in mine if r.correct), key=lambda r: len(r.torch_expression))[:1]
        for r in right:
            line.append(r.torch_expression + " ")
            line.append(right_mark, style="green")
        wrong = [r for r in mine if not r.correct]
        for i, r in enumerate(wrong):
            line.append(("; " if right or i else "") + r.torch_expression + " ")
            line.append(wrong_mark, style="bold red")
            line.append(f" {_wrong(r)}", style="yellow" if r.coincidence else "")
        lines.append(line)
    control = describe_control(control_sizes(cfg))
    lines[-1].append(f" ({right_mark}: also at {control})", style="dim")  # every recipe: the more line
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
