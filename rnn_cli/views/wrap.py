"""Text laid out so that no item is broken across lines.

An item is what a user reads or copies as one: an expression (`h_n.view(num_layers, D, N,
H_out)[-1, 1]`), a shape (`(10, 1, 16)`), a number, a flag. rich wraps text at any space;
here text breaks only at spaces outside brackets (a bracketed group longer than the line may
break inside), never at a no-break space (NBSP joins words that belong together, such as a
colour scale's ends). fit.py fits tables with the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
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


def plain_text(line: Text) -> Text:
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
            yield from plain_text(line).render(console, end="")
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
