"""The screen of `manual` and `torch` (and the sections under compare's table): the header,
then each --show section in order, then what more there is to see. Computes nothing: every
number and every check comes from a result."""

from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.text import Text

from rnn_cli.core.config import SECTION_NAMES, View, shape_str
from rnn_cli.core.result import RunResult
from rnn_cli.views.code import code_lines
from rnn_cli.views.fit import print_parts
from rnn_cli.views.header import header
from rnn_cli.views.shapes import parameter_table, shape_notes, shapes_table
from rnn_cli.views.sources import sources_table
from rnn_cli.views.tables import is_plain, lift_caption
from rnn_cli.views.values import value_tables
from rnn_cli.views.wrap import Whole


def _diagram_section(console: Console, result: RunResult, view: View) -> list:
    from rnn_cli.views.diagram import flow_diagram

    # A line wider than the console continues under its second column, not at the margin.
    return [Whole(flow_diagram(result.cfg, plain=is_plain(console), width=console.width), hang=None)]


def _shapes_section(console: Console, result: RunResult, view: View) -> list:
    return [shapes_table(console, result, view.compact)] + [Text(n, style="italic") for n in shape_notes(result.cfg)]


def _sources_section(console: Console, result: RunResult, view: View) -> list:
    # On the short default screen the recipes' summary says where bwd ends; say it once.
    said_below = view.compact and bool(result.recipes)
    return lift_caption(sources_table(console, result, bwd_note=not said_below, compact=view.compact))


def _values_section(console: Console, result: RunResult, view: View) -> list:
    parts: list = []
    for table in value_tables(console, result, view):  # the short screen: titled tables, no blank between
        parts += ([Text("")] if parts and not view.compact else []) + lift_caption(table)
    return parts


def _params_section(console: Console, result: RunResult, view: View) -> list:
    from rnn_cli.views.cost import per_direction_table

    return [parameter_table(console, result), Text(""), per_direction_table(console, result)]


def _cost_section(console: Console, result: RunResult, view: View) -> list:
    from rnn_cli.views.cost import cost_table

    return lift_caption(cost_table(console, result))


def _code_section(console: Console, result: RunResult, view: View) -> list:
    return code_lines(console, result.cfg, result.device)


def _recipes_section(console: Console, result: RunResult, view: View) -> list:
    """The final-state recipes: by default only where the configuration has a trap (runs.Extras)."""
    if not result.recipes:
        return []
    from rnn_cli.views.recipes import recipes_summary, recipes_table

    if view.compact:
        return recipes_summary(result.cfg, result.recipes, is_plain(console))
    return lift_caption(recipes_table(console, result.cfg, result.recipes))


def _padding_section(console: Console, result: RunResult, view: View) -> list:
    if result.padding_effect is None:
        return [Text("padding: only with --lengths and --no-pack", style="dim")] if view.asked else []
    from rnn_cli.views.recipes import padding_table

    return lift_caption(padding_table(console, result.padding_effect))


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


def sections(console: Console, result: RunResult, view: View) -> list:
    """The sections --show asks for, in order, each after a blank line."""
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
    parts: list = [header(result, command)] + sections(console, result, view)
    more = more_line(view, console.width, result)
    if more is not None:
        parts.append(more)
    print_parts(console, parts)
