"""What every view draws with: the console's width, plain (piped) or terminal output, and the
one table style. Human output is coloured only on a terminal; piped output is plain ASCII
(rich drops the styles, and `_box` picks ASCII rules). NO_COLOR is honoured by rich itself.
Fitting a table to the console is fit.py's."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def lift_caption(table: Table) -> list:
    """The table, then its caption as text at the console's width (a caption under a narrow
    table would wrap at the table's width)."""
    caption, table.caption = table.caption, None
    if caption is None:
        return [table]
    return [table, caption if isinstance(caption, Text) else Text(str(caption))]
