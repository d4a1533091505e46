"""The `shapes` and `params` sections: each tensor's shape, layout and meaning; each
parameter's shape, count and gate rows."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rnn_cli.core.config import GATE_NAMES, RunConfig, shape_str
from rnn_cli.core.result import RunResult
from rnn_cli.core.sample import Provenance
from rnn_cli.views.fit import optional_columns
from rnn_cli.views.header import symbols_line
from rnn_cli.views.tables import add_row, make_table

MEANINGS = {
    "input": "random, drawn from the seed",
    "h_0": "initial hidden state",
    "c_0": "initial cell state",
    "output": "last layer's h_t, every step",
    "h_n": "final h per layer, direction",
    "c_n": "final c per layer, direction",
    "packed_data": "PackedSequence .data: real steps",
    "batch_sizes": "sequences running at each step",
}


def _meaning(cfg: RunConfig, provenance: Provenance, name: str) -> str:
    text = MEANINGS[name]
    if name == "input" and provenance.input == "file":
        text = "from --input"
    if name in ("h_0", "c_0"):
        text += {"zeros": " (zeros)", "random": " (random)", "file": " (from --h0/--c0)"}[provenance.h_0]
    if name == "input" and cfg.lengths is not None:
        text += "; zero past each length"
    if name == "output":
        if cfg.packed:
            text += "; zero past each length"
    return text


def shape_notes(cfg: RunConfig) -> list[str]:
    notes = []
    if cfg.batch_first and not cfg.unbatched:
        notes.append(
            "batch_first=True applies to input and output only: h_n is still (D*num_layers, N, H_out)"
            + (" and c_n (D*num_layers, N, H_cell)" if cfg.has_c else "")
            + "."
        )
    if cfg.unbatched:
        notes.append("Unbatched input: no N dimension in any tensor.")
    if cfg.proj_size:
        notes.append(
            f"proj_size={cfg.proj_size}: h is projected from H_cell={cfg.hidden_size} to H_out={cfg.proj_size}; "
            "c keeps H_cell; layers above the first take D*proj_size inputs."
        )
    if cfg.packed:
        notes.append(
            "Packed: each sequence ends at its own length; h_n holds each sequence's state at its last real step."
        )
    elif cfg.lengths is not None:
        notes.append(
            "Not packed (--no-pack): the zero padding runs through the module like real steps, so h_n is the "
            "state after step L-1 for every sequence, and the backward direction starts in the padding."
        )
    return notes


def shapes_table(console: Console, result: RunResult, compact: bool = False) -> Table:
    cfg = result.cfg
    layouts = cfg.layouts()
    table = make_table(console, "Shapes  " + symbols_line(cfg))
    if compact:  # the short default screen: no rule under the column labels
        table.box = None
    table.add_column("tensor", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("layout", no_wrap=True)
    table.add_column("meaning")
    for name, shape in result.shapes().items():
        meaning = _meaning(cfg, result.provenance, name)
        if name == "batch_sizes":
            meaning += ": " + str([int(v) for v in result.tensors["batch_sizes"]])
        add_row(table, name, shape_str(shape), layouts[name], meaning)
    # The short default screen, when narrow: the diagram and notes say what each tensor is.
    return optional_columns(table, "meaning") if compact else table


def gate_label(cfg: RunConfig, name: str) -> str:
    gates = GATE_NAMES[cfg.cell]
    if not gates or name.startswith("weight_hr"):
        return "projection" if name.startswith("weight_hr") else ""
    return f"{len(gates)} gates ({', '.join(gates)}) x {cfg.hidden_size}"


def parameter_table(console: Console, result: RunResult) -> Table:
    cfg = result.cfg
    table = make_table(console, "Parameters")
    table.add_column("name", style="bold", no_wrap=True)  # identifiers never wrap: fit() lists them instead
    table.add_column("shape", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    if cfg.cell != "rnn" or cfg.proj_size:
        table.add_column("rows")
    total = 0
    for i, (name, p) in enumerate(result.params.items()):
        total += p.size
        row = [name, shape_str(p.shape), f"{p.size:,}"]
        if cfg.cell != "rnn" or cfg.proj_size:
            row.append(gate_label(cfg, name))
        add_row(table, *row, end_section=i == len(result.params) - 1)
    add_row(table, "total", "", f"{total:,}", *([""] if cfg.cell != "rnn" or cfg.proj_size else []))
    return table
