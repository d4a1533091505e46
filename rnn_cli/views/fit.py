"""Every view's text and tables laid out so that no item is broken across lines.

An item is what a user reads or copies as one: an expression (`h_n.view(num_layers, D, N,
H_out)[-1, 1]`), a shape (`(10, 1, 16)`), a number, a flag. rich wraps text at any space and
folds or cuts table cells; here text breaks only at spaces outside brackets (a bracketed
group longer than the line may break inside), never at a no-break space (NBSP joins words
that belong together, such as a colour scale's ends), and a table that cannot keep its cells
whole drops its optional columns, then becomes a compact list: one line per row where it fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

NBSP = "\u00a0"  # never a break; printed as a space
OPENING, CLOSING = "([{", ")]}"


PROSE_WORD = re.compile(r"[a-z]{3,}")


def _prose(group: str) -> bool:
    """A bracketed group of words, `(every recipe: --show recipes)`, not code nor a shape."""
    return any(PROSE_WORD.fullmatch(w.strip(",;:.()[]{}")) for w in group.split())


def break_points(plain: str, limit: int, glue: bool = True) -> list[int]:
    """The spaces where a line may break: outside brackets, inside a bracketed group of prose,
    or inside a group longer than `limit` (the line); never an NBSP. With `glue`, not after a
    `--flag` (it keeps its value: `--save PATH.npz`) nor between a word and the bracket that
    follows it (`c_n (2, 1, 8)`, `features (H_in)`): those give way only to an item too long
    for the line (wrap_whole). Unclosed brackets close at the end."""
    stack: list[int] = []
    inner: dict[int, int] = {}  # space index -> start of its innermost bracketed group
    ends: dict[int, int] = {}
    for i, ch in enumerate(plain):
        if ch in OPENING:
            stack.append(i)
        elif ch in CLOSING and stack:
            ends[stack.pop()] = i
        elif ch == " ":
            inner[i] = stack[-1] if stack else -1
    breaks = []
    for i, start in inner.items():
        if glue and _glued(plain, i):
            continue
        end = ends.get(start, len(plain) - 1)
        if start < 0 or end - start + 1 > limit or _prose(plain[start : end + 1]):
            breaks.append(i)
    return breaks


def _glued(plain: str, i: int) -> bool:
    """The space at i joins a flag to its value, or a name to the bracket after it."""
    word = plain[max(plain.rfind(" ", 0, i), plain.rfind(NBSP, 0, i)) + 1 : i]
    return word.startswith("--") or (i + 1 < len(plain) and plain[i + 1] == "(" and (word[-1:].isalnum() or word[-1:] == "_"))


def keep(text: str) -> str:
    """text as one item: its spaces made no-break (a formula, `|a - b| <= 1e-05 + 1e-05 * |b|`)."""
    return text.replace(" ", NBSP)


def _plain_text(line: Text) -> Text:
    """The line as printed: NBSPs turned back into spaces, styles kept."""
    if NBSP not in line.plain:
        return line
    return Text(line.plain.replace(NBSP, " "), style=line.style, spans=list(line.spans), end="")


def _more_breaks(plain: str, breaks: list[int], width: int, extra) -> list[int]:
    """breaks, plus extra(a, b) inside each chunk (between breaks) wider than the line."""
    cuts = [-1] + breaks + [len(plain)]
    more = set(breaks)
    for a, b in zip(cuts, cuts[1:]):
        if cell_len(plain[a + 1 : b]) > width:
            more |= set(extra(a, b))
    return sorted(more)


def _breaks(plain: str, indent: int, width: int) -> list[int]:
    """Where a line wider than `width` may break, the gentlest first: break_points; then, in
    an item still too long, its glued spaces; then before its trailing punctuation (`h_n[-1];`
    -> `h_n[-1]` / `;`); then after a comma in it, as code breaks; then any space in it."""
    spaces = [i for i, ch in enumerate(plain) if ch == " " and i > indent]
    breaks = [b for b in break_points(plain, width) if b > indent]
    loose = set(break_points(plain, width, glue=False))
    breaks = _more_breaks(plain, breaks, width, lambda a, b: [i for i in spaces if a < i < b and i in loose])

    def punctuation(a: int, b: int) -> list[int]:
        chunk = plain[a + 1 : b]
        return [b - 1] if chunk[-1:] in (";", ",", ":", ".") and cell_len(chunk) - 1 <= width else []

    breaks = _more_breaks(plain, breaks, width, punctuation)
    breaks = _more_breaks(plain, breaks, width, lambda a, b: [i for i in spaces if a < i < b and plain[i - 1] == ","])
    return _more_breaks(plain, breaks, width, lambda a, b: [i for i in spaces if a < i < b])


def _hang(plain: str, hang: int | None, width: int) -> int:
    """Continuation lines' indent: the line's own plus `hang`; None: under the line's second
    column (the text after its first gap of two spaces), as in `  layer 1     takes ...`."""
    indent = len(plain) - len(plain.lstrip(" "))
    if hang is not None:
        return indent + hang
    match = re.match(r"\s*\S.*?\S {2,}(?=\S)", plain)
    return match.end() if match and match.end() <= width // 2 else indent


def wrap_whole(text: Text, width: int, hang: int | None = 0) -> list[Text]:
    """text's lines, each broken (where wider than width) only at break_points; continuation
    lines indented by _hang. An item wider than the line breaks as _breaks says."""
    out: list[Text] = []
    for line in text.split("\n", allow_blank=True):
        plain = line.plain
        if cell_len(plain) <= width:
            out.append(line)
            continue
        indent = len(plain) - len(plain.lstrip(" "))
        cont = min(_hang(plain, hang, width), max(width // 2, 0))
        breaks = _breaks(plain, indent, width - cont)
        start, prefix = 0, 0
        while prefix + cell_len(plain[start:]) > width:
            later = [b for b in breaks if b > start]
            fitting = [b for b in later if prefix + cell_len(plain[start:b].rstrip()) <= width]
            cut = fitting[-1] if fitting else (later[0] if later else None)
            if cut is None:
                break
            piece = line[start:cut]
            piece.rstrip()
            if piece.plain.strip():
                out.append(Text(" " * prefix) + piece)
            start = cut
            while start < len(plain) and plain[start] == " ":
                start += 1
            prefix = cont
        out.append(Text(" " * prefix) + line[start:])
    return out


@dataclass
class Whole:
    """Text that rich lays out with wrap_whole at the width it is given (the console's, or a
    table cell's); its minimum width is its longest unbreakable item."""

    text: Text
    hang: int | None = 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in wrap_whole(self.text, options.max_width, self.hang):
            yield from _plain_text(line).render(console, end="")
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        plain = self.text.plain
        lines = plain.split("\n")
        widest = max(cell_len(x) for x in lines)
        longest_item = 0
        for x in lines:
            cuts = [-1] + break_points(x, options.max_width) + [len(x)]
            longest_item = max([longest_item] + [cell_len(x[a + 1 : b]) for a, b in zip(cuts, cuts[1:])])
        return Measurement(min(longest_item, widest), widest)


def unbreakable(cell) -> int:
    """The width a cell needs to keep its items whole."""
    plain = cell.plain if isinstance(cell, Text) else str(cell)
    cuts_of = lambda x: [-1] + break_points(x, 10**6) + [len(x)]  # noqa: E731 - brackets never break here
    return max((cell_len(x[a + 1 : b]) for x in plain.split("\n") for a, b in zip(cuts_of(x), cuts_of(x)[1:])), default=0)


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
                    value = _plain_text(value).copy()
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
