"""The shape-flow diagram (issue 7).

Every expected shape is worked out here from the PyTorch documentation's formulas for
nn.RNN/LSTM/GRU, not taken from RunConfig.shapes() (which the diagram itself uses):

    input   (L, N, H_in), or (N, L, H_in) with batch_first, or (L, H_in) unbatched
    output  (L, N, D*H_out), likewise; one direction's part of it has H_out features
    h_n     (D*num_layers, N, H_out), never batch_first; (D*num_layers, H_out) unbatched
    c_n     (D*num_layers, N, H_cell)
    h_n[k]  is layer k // D, direction k % D (0 forward, 1 backward)
    PackedSequence.data (sum(lengths), features), batch_sizes (max(lengths),)
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig
from rnn_cli.views.diagram import flow_diagram

H_IN, H_CELL, PROJ, L, N = 5, 7, 4, 11, 3  # all different, so no shape can pass for another


def fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def make_cfg(cell: str, layers: int, bidirectional: bool, layout: str, lengths=None, proj: int = 0) -> RunConfig:
    return RunConfig(
        cell=cell,
        input_size=H_IN,
        hidden_size=H_CELL,
        num_layers=layers,
        bidirectional=bidirectional,
        batch_first=layout == "batch_first",
       
        proj_size=proj,
        seq_len=L,
        batch=None if layout == "unbatched" else N,
        lengths=lengths,
    )


def docs_shapes(cell: str, layers: int, bidirectional: bool, layout: str, lengths=None, proj: int = 0) -> dict:
    """The PyTorch docs' shapes for these settings, written out independently of rnn_cli."""
    D = 2 if bidirectional else 1
    H_out = proj or H_CELL

    def seq(features: int) -> tuple[int, ...]:
        if layout == "unbatched":
            return (L, features)
        return (N, L, features) if layout == "batch_first" else (L, N, features)

    def state(features: int) -> tuple[int, ...]:
        return (D * layers, features) if layout == "unbatched" else (D * layers, N, features)

    out = {
        "D": D,
        "H_out": H_out,
        "input": seq(H_IN),
        "direction": seq(H_out),
        "concat": seq(D * H_out),
        "output": seq(D * H_out),
        "h_n": state(H_out),
        "c_n": state(H_CELL) if cell == "lstm" else None,
    }
    if lengths is not None:
        total = sum(lengths)
        out.update(
            packed_in=(total, H_IN),
            direction=(total, H_out),
            concat=(total, D * H_out),
            packed_out=(total, D * H_out),
            batch_sizes=(max(lengths),),
        )
    return out


def draw(cfg: RunConfig, plain: bool, width: int = 80) -> str:
    """The diagram as an 80-column console prints it (what a person sees)."""
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=not plain, color_system=None)
    console.print(flow_diagram(cfg, plain=plain, width=width))
    return console.export_text()


def stage_line(lines: list[str], name: str) -> int:
    """Index of the line whose stage label is `name` (e.g. 'layer 1', 'output')."""
    found = [i for i, line in enumerate(lines) if re.match(rf"^\s*{re.escape(name)}\s", line)]
    assert len(found) == 1, (name, found, lines)
    return found[0]


MATRIX = [
    (cell, layers, bidirectional, layout)
    for cell in ("rnn", "lstm")
    for layers in (1, 2, 3)
    for bidirectional in (False, True)
    for layout in ("time_major", "batch_first", "unbatched")
]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "terminal"])
@pytest.mark.parametrize("cell, layers, bidirectional, layout", MATRIX)
def test_diagram_lists_every_shape_and_every_state_slot(cell, layers, bidirectional, layout, plain):
    proj = PROJ if cell == "lstm" else 0  # LSTM with projection: H_out != H_cell shows in h_n vs c_n
    want = docs_shapes(cell, layers, bidirectional, layout, proj=proj)
    D = want["D"]
    text = draw(make_cfg(cell, layers, bidirectional, layout, proj=proj), plain)
    lines = text.splitlines()

    assert lines[0].startswith("Shape flow")
    assert "compact" not in text  # up to 4 layers are drawn in full
    assert fmt(want["input"]) in lines[stage_line(lines, "input")]
    out_line = lines[stage_line(lines, "output")]
    assert fmt(want["output"]) in out_line
    assert f"h_n {fmt(want['h_n'])}" in out_line
    if cell == "lstm":
        assert f"c_n {fmt(want['c_n'])}" in out_line
    else:
        assert "c_n" not in text

    # What enters each layer: H_in features, then D*H_out.
    assert text.count(f"{H_IN} features (H_in)") == 1
    assert text.count(f"{D * want['H_out']} features (D*H_out)") == layers - 1

    forward, backward = ("->", "<-") if plain else ("→", "←")
    for layer in range(layers):
        first = stage_line(lines, f"layer {layer}")
        for d in range(D):
            line = lines[first + d]
            k = layer * D + d  # the docs: h_n is ordered layer by layer, direction within
            assert (f"{forward} forward" if d == 0 else f"{backward} backward") in line, line
            assert fmt(want["direction"]) in line, line
            assert f"h_n[{k}]" in line, line
            assert (f"c_n[{k}]" in line) == (cell == "lstm"), line
        if D == 2:
            assert f"concat {fmt(want['concat'])}" in lines[first + 1]
    # every slot exactly once, and none beyond D*num_layers - 1
    for k in range(D * layers):
        assert text.count(f"h_n[{k}]") == 1
    assert f"h_n[{D * layers}]" not in text


@pytest.mark.parametrize("layout", ["time_major", "batch_first"])
@pytest.mark.parametrize("cell, bidirectional", [("lstm", True), ("gru", False)])
def test_packed_lengths_show_the_packed_sequence_in_the_flow(cell, bidirectional, layout):
    lengths = (11, 6, 2)
    proj = PROJ if cell == "lstm" else 0
    want = docs_shapes(cell, 2, bidirectional, layout, lengths=lengths, proj=proj)
    text = draw(make_cfg(cell, 2, bidirectional, layout, lengths=lengths, proj=proj), plain=True)
    lines = text.splitlines()
    i_in, i_out = stage_line(lines, "input"), stage_line(lines, "output")
    packed = [i for i, line in enumerate(lines) if "PackedSequence.data" in line]
    assert len(packed) == 2
    # order of the flow: input -> pack -> packed data -> layers -> packed data -> unpack -> output
    pack, unpack = text.index("pack_padded_sequence"), text.index("pad_packed_sequence")
    assert i_in < packed[0] < stage_line(lines, "layer 0") < packed[1] < i_out
    assert pack < unpack
    assert fmt(want["input"]) in lines[i_in]
    assert f"PackedSequence.data {fmt(want['packed_in'])}" in lines[packed[0]]
    assert f"batch_sizes {fmt(want['batch_sizes'])}" in lines[packed[0]]
    assert f"PackedSequence.data {fmt(want['packed_out'])}" in lines[packed[1]]
    assert fmt(want["output"]) in lines[i_out]
    directions = [line for line in lines if "forward" in line or "backward" in line]
    assert len(directions) == 2 * want["D"]
    assert all(fmt(want["direction"]) in line for line in directions)  # every layer-direction, as .data
    assert "[11, 6, 2]" in text  # the lengths packed


WIDE_CASES = [
    make_cfg("rnn", 4, True, "time_major"),
    make_cfg("lstm", 4, True, "batch_first", proj=PROJ),
    make_cfg("lstm", 4, True, "time_major", lengths=(11, 6, 2), proj=PROJ),
    make_cfg("gru", 3, True, "unbatched"),
    RunConfig(cell="lstm", nonlinearity=None, num_layers=2, bidirectional=True, proj_size=3, lengths=(10, 7), batch=2),
    RunConfig(num_layers=2, bidirectional=True),
]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "terminal"])
@pytest.mark.parametrize("cfg", WIDE_CASES, ids=lambda c: f"{c.cell}-l{c.num_layers}-D{c.D}")
def test_80_columns_hold_the_full_diagram_up_to_four_layers(cfg, plain):
    at80 = draw(cfg, plain, width=80)
    assert max(len(line) for line in at80.splitlines()) <= 80
    # rich wraps what is too wide, so also: nothing was wrapped or swapped for the compact
    # list at 80 columns (the same words, line for line, as on a 200-column console).
    at200 = draw(cfg, plain, width=200)
    assert [line.split() for line in at80.splitlines()] == [line.split() for line in at200.splitlines()]
    assert "compact" not in at80
    assert f"layer {cfg.num_layers - 1}" in at80


@pytest.mark.parametrize("cfg", WIDE_CASES[:3] + [make_cfg("lstm", 7, True, "time_major", lengths=(11, 6, 2))],
                         ids=lambda c: f"{c.cell}-l{c.num_layers}")
def test_plain_mode_is_ascii_and_terminal_mode_draws_boxes(cfg):
    plain = flow_diagram(cfg, plain=True).plain
    fancy = flow_diagram(cfg, plain=False).plain
    assert plain.isascii(), [c for c in plain if not c.isascii()]
    assert not fancy.isascii()
    assert not flow_diagram(cfg, plain=True).spans  # no styles in piped output


@pytest.mark.parametrize("layers", [5, 6, 40])  # issue 7: beyond 4 layers
@pytest.mark.parametrize("cell, bidirectional", [("rnn", True), ("lstm", False)])
def test_more_than_four_layers_gives_a_compact_list(layers, cell, bidirectional):
    want = docs_shapes(cell, layers, bidirectional, "time_major")
    D = want["D"]
    text = draw(make_cfg(cell, layers, bidirectional, "time_major"), plain=True)
    lines = text.splitlines()
    assert "compact list" in lines[0]
    assert len(lines) <= 10  # whatever the depth
    assert not any(re.match(r"^\s*layer [1-9]\d*\s", line) for line in lines)  # no per-layer lines
    assert max(len(line) for line in lines) <= 80
    assert f"layers 0-{layers - 1}" in text and f"layers 1-{layers - 1}" in text
    assert fmt(want["input"]) in text and fmt(want["output"]) in text and fmt(want["direction"]) in text
    assert f"h_n {fmt(want['h_n'])}" in text
    assert f"take {D * want['H_out']} (D*H_out)" in text and f"takes {H_IN} (H_in)" in text
    assert ("i = 2*k + d" if D == 2 else "i = k") in text
    assert f"k = 0..{layers - 1}" in text
    if D == 2:
        assert f"concat {fmt(want['concat'])}" in text
    assert ("c_n[i]" in text) == (cell == "lstm")


def test_too_wide_for_the_console_falls_back_to_the_compact_list():
    cfg = RunConfig(
        cell="lstm", nonlinearity=None, hidden_size=1024, seq_len=1000, batch=512, num_layers=2, bidirectional=True
    )
    assert "compact list" not in draw(cfg, plain=True, width=200)
    text = draw(cfg, plain=True, width=80)
    assert "compact list" in text
    assert "(1000, 512, 2048)" in text and "(4, 512, 1024)" in text


# ---- in the commands' output --------------------------------------------------------------

runner = CliRunner()
ENV = {"COLUMNS": "80", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}


def test_manual_shows_the_diagram_and_no_diagram_hides_it():
    shown = runner.invoke(app, ["manual", "--layers", "2", "--bidirectional"], env=ENV)
    hidden = runner.invoke(app, ["manual", "--layers", "2", "--bidirectional", "--no-diagram"], env=ENV)
    assert shown.exit_code == 0 and hidden.exit_code == 0, (shown.stderr, hidden.stderr)
    assert "Shape flow" in shown.stdout and "Shape flow" not in hidden.stdout
    assert "concat (10, 1, 16)" in shown.stdout and "concat (10, 1, 16)" not in hidden.stdout
    assert "Shapes" in hidden.stdout  # only the diagram goes
    diagram = shown.stdout[shown.stdout.index("Shape flow") : shown.stdout.index("\nShapes")]
    assert diagram.isascii()  # piped: plain characters
    assert diagram.index("Shape flow") < diagram.index("h_n[3]")
