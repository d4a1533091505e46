"""The `sources` section: where h_n (and c_n) come from in output, checked on this run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_cli.core.result import RunResult
from rnn_cli.views.fit import optional_columns
from rnn_cli.views.tables import add_row, is_plain, make_table


def _check(s, plain: bool) -> Text:
    """The verdict cell: equal, differs (by how much), or not checked."""
    if s.ok is None:
        return Text("-" if plain else "—", style="dim")
    if s.ok:
        return Text("equal" if plain else "✓ equal", style="green")
    return Text(f"DIFFERS {s.max_abs_diff:.2g}" if plain else f"✗ {s.max_abs_diff:.2g}", style="bold red")


def _notes(result: RunResult, bwd_note: bool) -> list[str]:
    cfg = result.cfg
    notes = []
    if result.implementation == "manual":
        notes.append("manual copies h_n from these slices: this checks its bookkeeping; `rnn-cli torch` checks torch.")
    if cfg.bidirectional and bwd_note:
        notes.append("bwd ends at step 0: its final state is at output step 0, not the last step.")
    if cfg.num_layers > 1:
        notes.append("layerK_output: layer K's output, not returned; re-computed.")
    return notes


def sources_table(console: Console, result: RunResult, bwd_note: bool = True, compact: bool = False) -> Table:
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
        if s.state == "c_n":
            steps = ""
        elif len(set(s.steps)) == 1:
            steps = str(s.steps[0])
        else:
            steps = ", ".join(str(t) for t in s.steps)
        direction = "bwd" if s.direction == "backward" else "fwd"
        add_row(table, f"{s.state}[{s.index}]", str(s.layer), direction, s.expression, steps, _check(s, plain))
    if compact:  # the short default screen, when narrow: the diagram and h_n's row labels say them
        optional_columns(table, "dir", "layer")
    notes = _notes(result, bwd_note)
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table
