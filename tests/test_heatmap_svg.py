"""Value-table heatmaps and --export-svg (issue 7).

Heatmap: each value cell gets a background on a diverging scale centred on 0 (blue below,
red above), the range is stated in the caption, the digits stay; only when colour is on.
SVG: --export-svg saves what was printed, as rich recorded it.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from rich.color import Color
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

from rnn_cli.core import runs
from rnn_cli.views import run as views
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig
from rnn_cli.core.config import View
from rnn_cli.views.heat import HEAT_NEGATIVE, HEAT_POSITIVE, HEAT_ZERO, heat_style
from rnn_cli.views.values import value_table

ROOT = Path(__file__).resolve().parent.parent
MATRIX = np.array([[-0.8, -0.2, 0.0], [0.1, 0.4, 0.5], [0.25, -0.05, 0.3]])  # max |value| 0.8, on the blue side


def rgb(style) -> tuple[int, int, int] | None:
    return None if style.bgcolor is None else tuple(style.bgcolor.get_truecolor())


# ---- the scale itself --------------------------------------------------------------------------


def test_scale_is_diverging_and_centred_on_zero():
    vmax = 2.0
    assert rgb(heat_style(0.0, vmax)) == HEAT_ZERO
    assert rgb(heat_style(vmax, vmax)) == HEAT_POSITIVE
    assert rgb(heat_style(-vmax, vmax)) == HEAT_NEGATIVE
    assert rgb(heat_style(5 * vmax, vmax)) == HEAT_POSITIVE  # clipped at the range
    for v in (0.3, 1.0, 1.7):
        r, _, b = rgb(heat_style(v, vmax))
        assert r > b  # red side
        r, _, b = rgb(heat_style(-v, vmax))
        assert b > r  # blue side

    def distance(v: float) -> float:
        return float(np.linalg.norm(np.subtract(rgb(heat_style(v, vmax)), HEAT_ZERO)))

    # deeper with |value|, the same depth for +v and -v relative to each end
    assert distance(0.5) < distance(1.0) < distance(1.5) < distance(2.0)
    assert distance(-0.5) < distance(-1.0) < distance(-1.5) < distance(-2.0)
    for v, end in ((1.0, HEAT_POSITIVE), (-1.0, HEAT_NEGATIVE)):  # half the range: half way
        span = np.subtract(end, HEAT_ZERO)
        moved = np.subtract(rgb(heat_style(v, vmax)), HEAT_ZERO)
        assert np.all(np.abs(moved - span / 2) <= 1)  # within rounding to whole RGB steps
    # white digits on every background
    assert heat_style(1.0, vmax).color.get_truecolor() == (255, 255, 255)


def test_scale_leaves_nan_and_an_all_zero_table_uncoloured():
    assert heat_style(float("nan"), 1.0).bgcolor is None
    assert heat_style(float("inf"), 1.0).bgcolor is None
    assert heat_style(0.0, 0.0).bgcolor is None


def test_sixteen_colour_terminals_get_plain_red_and_blue_not_rounded_blends():
    # rich would round a blended red to yellow on a 16-colour terminal; only the palette's own
    # red and blue are used there, and only past half the range.
    assert heat_style(0.9, 1.0, "standard").bgcolor == Color.parse("red")
    assert heat_style(-0.6, 1.0, "standard").bgcolor == Color.parse("blue")
    assert heat_style(0.3, 1.0, "standard").bgcolor is None
    assert heat_style(-0.3, 1.0, "standard").bgcolor is None


def test_256_colour_terminals_get_red_and_blue_steps_not_rounded_blends():
    # rich would round the dark red blends to olive and brown on the 256-colour palette.
    vmax = 1.0
    steps = [heat_style(v / 8, vmax, "256").bgcolor for v in range(-8, 9)]
    assert all(c.number is not None for c in steps)  # palette colours, sent as such
    rgbs = [tuple(c.get_truecolor()) for c in steps]
    assert rgbs[8] == HEAT_ZERO  # zero
    for r, g, b in rgbs[9:]:  # above zero: pure reds, or the zero grey for tiny values
        assert (g == b == 0 and r > 0) or (r, g, b) == HEAT_ZERO
    for r, g, b in rgbs[:8]:
        assert (r == g == 0 and b > 0) or (r, g, b) == HEAT_ZERO
    reds, blues = [r for r, _, _ in rgbs[9:]], [b for _, _, b in rgbs[7::-1]]
    assert reds == sorted(reds) and blues == sorted(blues)  # deeper with |value|
    assert rgbs[-1] != rgbs[9] and rgbs[0] != rgbs[7]


# ---- only when colour is on ------------------------------------------------------------------


def table_for(console: Console, view: View = View()) -> Table:
    rows = [f"t={i}" for i in range(MATRIX.shape[0])]
    cols = [str(j) for j in range(MATRIX.shape[1])]
    return value_table(console, "output", MATRIX, rows, cols, view, "columns: hidden units")


def value_cells(table: Table) -> list[Text]:
    return [cell for column in table.columns[1:] for cell in column._cells]


def backgrounds(table: Table) -> list:
    return [span.style.bgcolor for cell in value_cells(table) for span in cell.spans if span.style.bgcolor]


def caption(table: Table) -> str:
    return str(table.caption or "")


def colour_console(**kwargs) -> Console:
    return Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor", **kwargs)


def test_heatmap_on_a_colour_terminal():
    console = colour_console()
    table = table_for(console)
    cells = value_cells(table)
    assert len(backgrounds(table)) == MATRIX.size  # every value cell
    # the numbers are still printed, each cell on its own value's colour
    for cell, v in zip(cells, MATRIX.T.ravel()):
        assert cell.plain == f"{v:.4f}"
        assert rgb(cell.spans[0].style) == rgb(heat_style(float(v), 0.8))
    # the range, worked out here: max |value| = 0.8, beside the title on the short default
    # screen, under the table with --show
    assert "colour scale -0.8000 .. 0 .. +0.8000" in str(table.title).replace("\xa0", " ")  # the cells' own precision (NBSP: one item)
    assert "columns: hidden units" in caption(table)
    full = table_for(colour_console(), View(compact=False))
    assert "colour scale -0.8000 .. 0 .. +0.8000" in caption(full).replace("\xa0", " ")
    console.print(table)
    ansi = console.file.getvalue()
    assert "\x1b[" in ansi and ";48;2;" in ansi  # truecolor backgrounds reach the terminal


@pytest.mark.parametrize(
    "console, view",
    [
        (Console(file=io.StringIO(), width=80), View()),  # not a terminal: piped
        (colour_console(no_color=True), View()),  # NO_COLOR
        (colour_console(), View(heatmap=False)),  # --no-heatmap
        (Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None), View()),
    ],
    ids=["piped", "no_color", "no-heatmap", "no-colour-system"],
)
def test_no_heatmap_without_colour(console, view):
    table = table_for(console, view)
    assert backgrounds(table) == []
    assert "colour scale" not in caption(table)
    assert [c.plain for c in value_cells(table)] == [f"{v:.4f}" for v in MATRIX.T.ravel()]
    console.print(table)
    assert "48;2;" not in console.file.getvalue()


def test_piped_output_is_the_same_with_and_without_no_heatmap():
    cfg = RunConfig(num_layers=2, bidirectional=True)
    result = runs.run("manual", cfg, keep_layers=True)  # the whole result: sources checked
    outputs = []
    for view in (View(), View(heatmap=False)):
        console = Console(file=io.StringIO(), width=80)
        views.show_run(console, result, "manual", view)
        outputs.append(console.file.getvalue())
    assert outputs[0] == outputs[1]
    assert "\x1b" not in outputs[0]


def test_show_run_heatmaps_output_h_n_and_c_n_on_a_colour_terminal():
    cfg = RunConfig(cell="lstm", nonlinearity=None, num_layers=2, bidirectional=True)
    result = runs.run("manual", cfg, keep_layers=True)  # the whole result: sources checked
    console = colour_console(record=True)
    views.show_run(console, result, "manual", View())
    text = console.export_text()
    assert text.count("colour scale") == 3  # output, h_n, c_n
    vmax = float(np.abs(result.tensors["h_n"][:, 0, :]).max())  # the h_n table's range
    assert f"-{vmax:.4f} .. 0 .. +{vmax:.4f}" in text


# ---- --export-svg ---------------------------------------------------------------------------------

runner = CliRunner()
PLAIN_ENV = {"COLUMNS": "80", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
COLOUR_ENV = {**PLAIN_ENV, "TTY_COMPATIBLE": "1", "COLORTERM": "truecolor"}
SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_text(path: Path) -> str:
    """The terminal's text in a rich SVG, in order (the window title left out)."""
    root = ET.parse(path).getroot()  # valid XML, or this raises
    assert root.tag == f"{SVG_NS}svg"
    pieces = [el.text or "" for el in root.iter(f"{SVG_NS}text") if "textLength" in el.attrib]
    return "".join(pieces).replace("\xa0", " ")


def svg_columns(path: Path) -> list[int]:
    """The cell column each text piece of a rich SVG ends at (its x and textLength / cell width)."""
    ends = []
    for el in ET.parse(path).getroot().iter(f"{SVG_NS}text"):
        if "textLength" not in el.attrib or not (el.text or "").strip():
            continue  # the window title, line ends
        n = len(el.text or "")
        cell = float(el.attrib["textLength"]) / n
        ends.append(round((float(el.attrib["x"]) + float(el.attrib["textLength"])) / cell))
    return ends


def hex_colour(c: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % c


def no_space(s: str) -> str:
    return re.sub(r"\s+", "", s)


@pytest.mark.parametrize(
    "args, shapes",
    [
        (["torch", "--layers", "2", "--bidirectional"], ["(10, 1, 5)", "(10, 1, 16)", "(4, 1, 8)"]),
        (["manual", "--cell", "lstm", "--batch", "2"], ["(10, 2, 5)", "(10, 2, 8)", "(1, 2, 8)"]),
        (["compare", "--cell", "gru", "--bidirectional"], ["(10, 1, 16)", "(2, 1, 8)"]),
    ],
    ids=["torch", "manual", "compare"],
)
def test_export_svg_saves_what_was_printed(tmp_path, args, shapes):
    path = tmp_path / "out.svg"
    res = runner.invoke(app, [*args, "--export-svg", str(path)], env=PLAIN_ENV)
    assert res.exit_code == 0, res.stderr
    text = svg_text(path)
    for shape in shapes:
        assert shape in text
    assert "Shape flow" in text
    assert no_space(text) == no_space(res.stdout)  # exactly what was printed, character for character


def test_export_svg_on_bench_too(tmp_path):
    path = tmp_path / "bench.svg"
    res = runner.invoke(app, ["bench", "--repeat", "1", "--warmup", "0", "--export-svg", str(path)], env=PLAIN_ENV)
    assert res.exit_code == 0, res.stderr
    text = svg_text(path)
    assert "median" in text
    assert no_space(text) == no_space(res.stdout)


def test_export_svg_without_the_diagram(tmp_path):
    path = tmp_path / "out.svg"
    res = runner.invoke(app, ["manual", "--no-diagram", "--export-svg", str(path)], env=PLAIN_ENV)
    assert res.exit_code == 0, res.stderr
    text = svg_text(path)
    assert "Shape flow" not in text and "(10, 1, 8)" in text


def test_export_svg_of_a_colour_terminal_carries_the_heatmap(tmp_path):
    path, piped = tmp_path / "colour.svg", tmp_path / "piped.svg"
    args = ["manual", "--layers", "2", "--bidirectional", "--export-svg"]
    assert runner.invoke(app, [*args, str(path)], env=COLOUR_ENV).exit_code == 0
    assert runner.invoke(app, [*args, str(piped)], env=PLAIN_ENV).exit_code == 0
    ends = {hex_colour(HEAT_POSITIVE), hex_colour(HEAT_NEGATIVE)}  # each table's largest |value|
    assert ends & set(re.findall(r"#[0-9a-f]{6}", path.read_text()))
    assert not ends & set(re.findall(r"#[0-9a-f]{6}", piped.read_text()))
    assert "colour scale" in svg_text(path) and "colour scale" not in svg_text(piped)
    assert "→ forward" in svg_text(path) and "-> forward" in svg_text(piped)


@pytest.fixture(scope="module")
def script_svg(tmp_path_factory) -> Path:
    """docs/make-svg.sh run as a person would, into a temporary file, with colour switched off
    and a wide terminal in the environment: the script must override both."""
    out = tmp_path_factory.mktemp("docs") / "readme.svg"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHON=sys.executable)
    script = ROOT / "docs" / "make-svg.sh"
    proc = subprocess.run(["bash", str(script), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_docs_script_makes_the_readme_svg_at_80_columns_in_colour(script_svg):
    text = svg_text(script_svg)
    assert "rnn-cli torch: nn.RNN" in text
    assert "(10, 1, 16)" in text and "h_n[3]" in text and "→ forward" in text
    ends = {hex_colour(HEAT_POSITIVE), hex_colour(HEAT_NEGATIVE)}
    assert ends & set(re.findall(r"#[0-9a-f]{6}", script_svg.read_text()))
    # 80 columns: where each piece of text ends, in character cells; a table rule spans all 80
    assert max(svg_columns(script_svg)) == 80


def test_committed_readme_svg_is_what_the_script_makes_now(script_svg):
    committed = ROOT / "docs" / "torch-layers2-bidirectional.svg"
    assert no_space(svg_text(committed)) == no_space(svg_text(script_svg)), "stale: run docs/make-svg.sh"
