"""Tables fitted to the console, and the printing of a screen's parts.

A table whose cells cannot all stay whole at the console's width (wrap.py's items) drops
its optional columns, then becomes a compact list: one line per row where it fits. The
width a table needs is worked out here from rich's own rules (padding, collapsed padding,
edges, dividers), so that the choice is made before rich would cut or fold a cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from rnn_cli.views.wrap import NBSP, Whole, keep, plain_text, unbreakable

# ---- tables ---------------------------------------------------------------------------------


def optional_columns(table: Table, *headers: str) -> Table:
    """Mark columns fit() may leave out, first named first, before it turns the table into a list."""
    table.optional_columns = headers  # type: ignore[attr-defined]
    return table


def _without(table: Table, headers: set[str]) -> Table:
    import copy

    narrower = copy.copy(table)  # the table itself stays whole, for compact_list
    narrower.columns = [copy.copy(c) for c in table.columns if str(c.header) not in headers]
    for i, c in enumerate(narrower.columns):
        c._index = i
    return narrower


def _min_width(table: Table, headers: list[str], cells: list[list[str]]) -> int:
    """The narrowest width at which every item stays whole: a no_wrap column's longest cell,
    another column's longest unbreakable item, plus each column's padding."""
    total = 0
    for column, header, column_cells in zip(table.columns, headers, cells):
        texts = [header] + column_cells
        if column.no_wrap:
            widest = max(cell_len(line) for t in texts for line in t.splitlines() or [""])
        else:  # a header is a label: whole
            widest = max([cell_len(header)] + [unbreakable(t) for t in column_cells])
        if str(column.header) in getattr(table, "optional_columns", ()):  # optional: on one line or not at all
            widest = max([widest] + [cell_len(line) for t in column_cells for line in t.splitlines()])
        total += max(widest, column.min_width or 0)
    left, right = table.padding[3], table.padding[1]
    n = len(table.columns)
    padding = (left + right) * n
    if table.collapse_padding:  # neighbours share the smaller of their facing paddings
        padding -= min(left, right) * (n - 1)
    if not table.pad_edge:  # no padding outside the first and last columns
        padding -= left + right
    dividers = n - 1 if table.box is not None else 0  # the box's inner vertical (a space)
    return total + padding + dividers


def _fits(console: Console, table: Table) -> bool:
    headers = [str(c.header) for c in table.columns]
    cells = [[c.plain if isinstance(c, Text) else str(c) for c in col.cells] for col in table.columns]
    return bool(table.columns) and _min_width(table, headers, cells) <= console.width


def _whole_cells(table: Table) -> Table:
    """Cells of wrapping columns laid out by Whole (rich would break inside a shape)."""
    for column in table.columns:
        if not column.no_wrap:
            column._cells = [Whole(c) if isinstance(c, Text) else Whole(Text(c)) if isinstance(c, str) else c
                             for c in column._cells]
    return table


def fit(console: Console, table: Table) -> Table | Group:
    """The table when its narrowest form fits the console, else without its optional columns
    (one at a time), else its rows as a compact list: the same cells, none cut nor broken."""
    dropped: set[str] = set()
    candidate = table
    for header in (None, *getattr(table, "optional_columns", ())):
        if header is not None:
            dropped.add(header)
            candidate = _without(table, dropped)
        if _fits(console, candidate):
            return _whole_cells(candidate)
    return compact_list(table)


def _texts(cell) -> list[Text]:
    """A cell's text: a Text or str itself, a Group's (or Padding's, Whole's) texts in order."""
    from rich.padding import Padding

    if isinstance(cell, Text):
        return [cell]
    if isinstance(cell, Whole):
        return [cell.text]
    if isinstance(cell, Group):
        return [t for part in cell.renderables for t in _texts(part)]
    if isinstance(cell, Padding):
        return _texts(cell.renderable)
    return [Text(str(cell))]


def compact_list(table: Table) -> Group:
    """One line per row, wrapped between cells: the first cell (bold), then `header: value` for
    each other cell that has one; a row with an empty first cell continues the one above. A
    cell's further lines (a note under an expression) follow its row, indented."""
    headers = [str(c.header) for c in table.columns]
    columns = [list(col.cells) for col in table.columns]
    lines: list = []
    if table.title:
        lines.append(Whole(Text(str(table.title), style="bold")))
    for r in range(len(columns[0]) if columns else 0):
        first, *first_notes = _texts(columns[0][r]) or [Text("")]
        items: list[Text] = []
        notes: list[Text] = list(first_notes)
        for h, col in zip(headers[1:], columns[1:]):
            value, *more = _texts(col[r]) or [Text("")]
            if value.plain.strip():
                if len(value.plain) <= 24:  # a short value is read as one: `WRONG 0.89 off`
                    value = plain_text(value).copy()
                    value.plain = keep(value.plain)
                items.append(Text.assemble(f"{h or 'value'}:".replace(" ", NBSP) + NBSP, value))
            notes += more
        keyed = bool(first.plain.strip())
        if not keyed and not items and not notes:
            continue  # an empty row
        row = Text.assemble(first.copy()) if keyed else Text(" " * 4)  # a row that continues the one above
        if keyed:
            row.stylize("bold")
        for i, item in enumerate(items):
            row.append("  " if (i or keyed) else "")
            row.append_text(item)
        lines.append(Whole(row, hang=4 if keyed else 0))
        lines += [Whole(Text.assemble(" " * 4, note), hang=0) for note in notes if note.plain.strip()]
    if table.caption:
        caption = table.caption if isinstance(table.caption, Text) else Text(str(table.caption))
        lines.append(Whole(caption))
    return Group(*lines)


# ---- printing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verbatim:
    """Text printed as it is: never wrapped nor cropped (code to copy) by print_parts."""

    text: Text

    def __rich__(self) -> Text:  # printed any other way: the text itself
        return self.text


def whole(console: Console, part):
    """A renderable laid out item by item: Text by Whole, tables by fit (their title above
    them, at the console's width), groups part by part."""
    if isinstance(part, Text):
        return Whole(part)
    if isinstance(part, Table):
        drawn = fit(console, part)
        if not isinstance(drawn, Table) or drawn.title is None:
            return drawn
        heading = Text(style="table.title")
        heading.append_text(drawn.title if isinstance(drawn.title, Text) else Text(str(drawn.title)))
        drawn.title = None
        return Group(Whole(heading), drawn)
    if isinstance(part, Group):
        return Group(*(whole(console, p) for p in part.renderables))
    return part


def print_parts(console: Console, parts: list) -> None:
    """Print in order: code as it is (soft_wrap: never wrapped nor cropped), every table
    fitted (fit), text broken only between items (Whole)."""
    for part in parts:
        if isinstance(part, Verbatim):
            console.print(part.text, soft_wrap=True)
        else:
            console.print(whole(console, part))
