"""rnn_cli.views.wrap and fit: text broken only between items, tables narrowed before they become lists.

Expected lines are written by hand from the rule (break at spaces outside brackets, never at
an NBSP, a flag with its value, a name with its bracket)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_cli.views.fit import fit, optional_columns
from rnn_cli.views.wrap import NBSP, Whole, wrap_whole


def lines_of(text: str, width: int, hang: int | None = 0) -> list[str]:
    return [line.plain.rstrip() for line in wrap_whole(Text(text), width, hang)]


def drawn(renderable, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width)
    console.print(renderable)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


def test_a_bracketed_expression_moves_whole_to_the_next_line():
    # Bug caught: rich's word wrap gave `h_n.view(num_layers, D, N, H_out)[-1,` / `1];`.
    text = "equal: h_n[-2]; h_n.view(num_layers, D, N, H_out)[-1, 1]; torch.cat((a, b), dim=1)"
    assert lines_of(text, 50) == ["equal: h_n[-2];", "h_n.view(num_layers, D, N, H_out)[-1, 1];", "torch.cat((a, b), dim=1)"]


def test_prose_in_brackets_breaks_like_words():
    assert lines_of("WRONG: x (0.99 off) (every recipe: --show recipes)", 36) == [
        "WRONG: x (0.99 off) (every recipe:", "--show recipes)"]


def test_a_flag_keeps_its_value_and_a_name_its_shape():
    assert lines_of("all: --json or --save PATH.npz", 20) == ["all: --json or", "--save PATH.npz"]
    assert lines_of("output (10, 1, 8)  h_n (2, 1, 8)  c_n (2, 1, 8)", 30) == ["output (10, 1, 8)", "h_n (2, 1, 8)  c_n (2, 1, 8)"]


def test_nbsp_never_breaks_and_prints_as_a_space():
    legend = f"colour{NBSP}scale{NBSP}-0.9130{NBSP}..{NBSP}0{NBSP}..{NBSP}+0.9130"
    out = drawn(Whole(Text(f"h_n, batch element 0   {legend}")), 40)
    assert out == ["h_n, batch element 0", "colour scale -0.9130 .. 0 .. +0.9130"]


def test_continuation_lines_hang_under_the_second_column():
    assert lines_of("  layer 1     takes 16 features (D*H_out)", 34, hang=None) == [
        "  layer 1     takes 16", "              features (D*H_out)"]


def test_an_item_longer_than_the_line_breaks_after_a_comma_first():
    assert lines_of("h_n[-2:].transpose(0, 1).reshape(N, 2 * H_out)", 36) == [
        "h_n[-2:].transpose(0, 1).reshape(N,", "2 * H_out)"]


def _shapes_table() -> Table:
    table = Table(title="Shapes", show_edge=False)
    for header in ("tensor", "shape", "meaning"):
        table.add_column(header, no_wrap=header != "meaning")
    table.add_row("h_n", "(4, 1, 8)", "final h per layer, direction")
    return optional_columns(table, "meaning")


def test_fit_leaves_out_optional_columns_before_listing_the_rows():
    # Bug caught: the optional column wrapped into a tall cell (or the table became a
    # key: value list) where the table without it fits on one line per row.
    narrowed = fit(Console(file=io.StringIO(), width=30), _shapes_table())
    assert isinstance(narrowed, Table) and [str(c.header) for c in narrowed.columns] == ["tensor", "shape"]
    whole = fit(Console(file=io.StringIO(), width=80), _shapes_table())
    assert [str(c.header) for c in whole.columns] == ["tensor", "shape", "meaning"]
