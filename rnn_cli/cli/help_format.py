"""-h as click writes it, with every flag, shape and expression kept whole on a line.

click's wrapper breaks at hyphens (`--proj-` / `size`) and cuts words longer than the line,
and it never draws narrower than 50 columns (a 40-column terminal then wraps its lines again,
anywhere). This formatter draws at the terminal's width, breaks only at spaces, and where a
definition list's second column would be too narrow for its words, puts the text under the
term instead of beside it.
"""

from __future__ import annotations

import os
import shutil
from typing import Sequence

from typer import _click
from typer._click._compat import term_len
from typer._click._textwrap import TextWrapper

MIN_TEXT = 24  # a definition's text narrower than this goes under its term, indented by 4


def wrap_words(text: str, width: int, initial_indent: str = "", subsequent_indent: str = "") -> list[str]:
    """text's paragraphs (split by blank lines) filled to width, broken only at spaces: a word
    longer than the line stands on a line of its own, whole."""
    wrapper = TextWrapper(
        max(width, 1),
        initial_indent=initial_indent,
        subsequent_indent=subsequent_indent,
        replace_whitespace=False,
        break_on_hyphens=False,
        break_long_words=False,
    )
    lines: list[str] = []
    for paragraph in text.expandtabs().split("\n\n"):
        if lines:
            lines.append("")
        lines += wrapper.wrap(" ".join(paragraph.split())) or [initial_indent.rstrip()]
    return lines


class WholeWordsFormatter(_click.HelpFormatter):
    """click's HelpFormatter, at the terminal's width (up to max_width) and without broken words."""

    def __init__(self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None) -> None:
        if width is None:  # COLUMNS first, as for the views (click's test runner forces 80 otherwise)
            env = os.environ.get("COLUMNS", "")
            columns = int(env) if env.isdigit() and int(env) > 0 else None
            columns = columns or _click.formatting.FORCED_WIDTH or shutil.get_terminal_size().columns
            width = max(min(columns, max_width or 80) - 2, 20)
        super().__init__(indent_increment, width, max_width)

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        prefix = "Usage: " if prefix is None else prefix
        head = f"{prefix:>{self.current_indent}}{prog} "
        indent = " " * (term_len(head) if self.width - term_len(head) >= 20 else self.current_indent + 4)
        lines = wrap_words(args, self.width, initial_indent=indent, subsequent_indent=indent)
        if indent == " " * term_len(head):
            lines[0] = head + lines[0][len(indent):]
        else:
            lines.insert(0, head.rstrip())
        self.write("\n".join(lines) + "\n")

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write("\n".join(wrap_words(text, self.width, indent, indent)) + "\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first_width = min(max((term_len(r[0]) for r in rows), default=0), col_max) + col_spacing
        side_by_side = self.width - self.current_indent - first_width >= MIN_TEXT
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if side_by_side:
                column = self.current_indent + first_width
                if term_len(first) <= first_width - col_spacing:
                    self.write(" " * (first_width - term_len(first)))
                else:
                    self.write("\n" + " " * column)
            else:
                column = self.current_indent + 4
                self.write("\n" + " " * column)
            lines = wrap_words(second, self.width - column)
            self.write("\n".join(lines[:1] + [" " * column + line if line else "" for line in lines[1:]]) + "\n")


class WholeWordsContext(_click.Context):
    formatter_class = WholeWordsFormatter


def command_rows(group: _click.Group, ctx: _click.Context) -> list[tuple[str, str]]:
    """(name, description) per visible command: the help's first paragraph in full, never
    shortened to `...` (the definition list wraps it)."""
    rows = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is not None and not cmd.hidden:
            text = cmd.short_help or (cmd.help or "").split("\n\n")[0]
            rows.append((name, " ".join(text.split())))
    return rows


def example_lines(examples: Sequence[str], width: int, indent: str = "  ") -> list[str]:
    """Each example on one line where it fits; else continued with ` \\` (the shell's own line
    continuation, so the lines still paste as one command), broken between flags, each flag
    kept with its value."""
    lines: list[str] = []
    for example in examples:
        words = example.split()
        items: list[str] = []
        for word in words:  # `--cell lstm` is one item; `rnn-cli torch` too
            if items and not word.startswith("-") and (items[-1].startswith("-") or len(items) == 1) and " " not in items[-1]:
                items[-1] += " " + word
            else:
                items.append(word)
        line = indent + items[0]
        for item in items[1:]:
            if len(line) + 1 + len(item) + 2 > width:  # room for the ` \\`
                lines.append(line + " \\")
                line = indent + "    " + item
            else:
                line += " " + item
        lines.append(line)
    return lines
