"""The answer on one screen: --show sections, --brief, narrow and piped output, copyable code,
compare's margin, and the flags people try.

Expected words come from the config (cfg.shapes(), cfg.layouts(), cfg.parameter_shapes()) or
from the run's own result (h_n sources), never from the printed text; margins from a hand
calculation; the pasted code is run by torch and its shapes checked against the docs' formulas.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.core import compare
from rnn_cli.core import manual
from rnn_cli.views import tables as views
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig, shape_str
from rnn_cli.core.sources import h_n_sources
from rnn_cli.core.tolerance import Tolerance

runner = CliRunner()
PLAIN_ENV = {"LINES": "50", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None, "NO_COLOR": None}
COLOUR_ENV = {**PLAIN_ENV, "TTY_COMPATIBLE": "1", "COLORTERM": "truecolor", "TERM": "xterm-256color"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FIRST_EXAMPLE = ("torch", "--layers", "2", "--bidirectional")


def invoke(*args: str, columns: int | None = 80, env: dict | None = None):
    return runner.invoke(app, list(args), env={**PLAIN_ENV, "COLUMNS": None if columns is None else str(columns), **(env or {})})


def ok(res):
    assert res.exit_code == 0, (res.exit_code, res.stderr, res.exception)
    assert "Traceback" not in res.stdout
    return res.stdout


# ---- one screen ---------------------------------------------------------------------------


def test_first_example_fits_50_lines_at_80_columns_and_answers_shapes_sources_values():
    out = ok(invoke(*FIRST_EXAMPLE))
    lines = out.splitlines()
    assert len(lines) <= 50, len(lines)
    cfg = RunConfig(num_layers=2, bidirectional=True)
    words = set(out.split())
    for name, shape in cfg.shapes().items():  # output (10, 1, 16), h_n (4, 1, 8), ...
        assert name in words and shape_str(shape) in out, name
    assert "Where h_n comes from" in out
    for k in range(cfg.D * cfg.num_layers):  # every h_n slice's source ...
        assert f"h_n[{k}]" in out
    h_n_rows = [line for line in lines if re.match(r"^\s*\d+ l\d (fwd|bwd) ", line)]
    assert len(h_n_rows) == cfg.D * cfg.num_layers  # ... and h_n whole
    steps = [line for line in lines if re.match(r"^\s*t=\d+ ", line)]
    assert [s.split()[0] for s in steps] == ["t=0", f"t={cfg.seq_len - 1}"]  # output cut to its ends,
    assert f"2 of {cfg.seq_len} rows" in out  # and the cut stated
    assert lines[-1] == "more: --show recipes,params,cost,code or --show all"  # recipes: summed up above
    assert "import torch" not in out and "Parameters" not in out


@pytest.mark.parametrize("columns", [60, 80])
def test_first_example_fits_50_lines_on_a_colour_terminal_too(columns):
    """Bug caught: the heatmap's colour-scale legends, drawn only on a colour terminal, added
    two lines under the value tables (at 60 columns: wrapped under their titles), so the
    answer's first lines scrolled away."""
    out = ok(invoke(*FIRST_EXAMPLE, columns=columns, env=COLOUR_ENV))
    assert ";48;2;" in out  # really the heatmap (truecolor backgrounds)
    assert len(ANSI.sub("", out).splitlines()) <= 50


def test_show_all_draws_every_section_and_no_closing_line():
    out = ok(invoke(*FIRST_EXAMPLE, "--show", "all"))
    for title in ("Shape flow", "Shapes", "Where h_n comes from", "output, batch element 0", "Parameters", "Equivalent PyTorch"):
        assert title in out, title
    assert len([line for line in out.splitlines() if re.match(r"^t=\d+ ", line)]) == 10  # every step
    assert "more:" not in out


def test_show_picks_sections_case_insensitively_and_names_the_rest():
    out = ok(invoke(*FIRST_EXAMPLE, "--show", "Params,CODE"))
    assert "Parameters" in out and "import torch" in out
    assert "Shapes" not in out and "Where h_n" not in out and "Shape flow" not in out
    assert out.splitlines()[-1] == "more: --show diagram,shapes,sources,values,recipes,cost or --show all"


def test_no_values_and_no_diagram_are_aliases_of_show_without_them():
    # the default screen less those two sections; the rest (recipes' summary too) as by default
    default = ok(invoke(*FIRST_EXAMPLE))
    aliased = ok(invoke(*FIRST_EXAMPLE, "--no-values", "--no-diagram"))
    assert "Shape flow" in default and "output, batch element 0" in default
    assert "Shape flow" not in aliased and "output, batch element 0" not in aliased and "h_n, batch element" not in aliased
    for kept in ("Shapes", "Where h_n comes from", "forward final state: h_n[-2]"):
        assert kept in aliased and kept in default
    assert aliased.splitlines()[-1] == "more: --show diagram,values,recipes,params,cost,code or --show all"


def test_json_is_complete_whatever_show_says():
    full = json.loads(ok(invoke(*FIRST_EXAMPLE, "--json")))
    picked = json.loads(ok(invoke(*FIRST_EXAMPLE, "--json", "--show", "shapes")))
    assert picked == full
    assert "values" in full["tensors"]["output"] and full["h_n_sources"]


@pytest.mark.parametrize(
    "args, cfg",
    [
        (FIRST_EXAMPLE, RunConfig(num_layers=2, bidirectional=True)),
        (("manual", "--cell", "lstm", "--proj-size", "3", "--lengths", "7,3"), RunConfig(cell="lstm", proj_size=3, batch=2, lengths=(7, 3), seq_len=7)),
        (("torch", "--unbatched", "--cell", "gru"), RunConfig(cell="gru", batch=None)),
    ],
    ids=["rnn-bidir", "lstm-proj-packed", "gru-unbatched"],
)
def test_brief_is_one_line_per_tensor(args, cfg):
    out = ok(invoke(*args, "--brief"))
    layouts = cfg.layouts()
    expected = [(name, shape_str(shape), layouts[name]) for name, shape in cfg.shapes().items()]
    got = [re.split(r"\s{2,}|\s(?=\()", line.strip(), maxsplit=2) for line in out.splitlines()]
    assert sorted(got) == sorted(list(e) for e in expected)


def test_compare_brief_says_pass_and_margin_per_tensor():
    out = ok(invoke("compare", "--cell", "lstm", "--brief"))
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["output", "h_n", "c_n"]
    assert all(" pass " in line and re.search(r"margin -\d", line) for line in out.splitlines())


# ---- narrow and wide terminals: no word lost ---------------------------------------------------

CASES = {
    "rnn-bidir": (FIRST_EXAMPLE, dict(num_layers=2, bidirectional=True)),
    "lstm-proj-packed": (
        ("torch", "--cell", "lstm", "--proj-size", "3", "--lengths", "7,3", "--layers", "3", "--bidirectional", "--batch-first"),
        dict(cell="lstm", proj_size=3, lengths=(7, 3), seq_len=7, batch=2, num_layers=3, bidirectional=True, batch_first=True),
    ),
    "gru-unbatched": (("manual", "--cell", "gru", "--unbatched", "--h0", "random"), dict(cell="gru", batch=None, h0="random")),
    # --grad adds tables of numbers like -6.657e-02: they must narrow by columns, never cut a number
    "lstm-grad": (("manual", "--cell", "lstm", "--grad", "--seq-len", "6"), dict(cell="lstm", seq_len=6)),
}


def expected_words(cfg: RunConfig) -> set[str]:
    """Every word the shapes, sources and parameter tables must carry, from the config and the run."""
    phrases = ["Shapes", "Where h_n comes from", "Parameters"]
    layouts = cfg.layouts()
    for name, shape in cfg.shapes().items():
        phrases += [name, shape_str(shape), layouts[name]]
    for name, shape in cfg.parameter_shapes().items():
        phrases += [name, shape_str(shape)]
    for s in h_n_sources(manual.run(cfg, keep_layers=True)):
        phrases += [f"{s.state}[{s.index}]", s.expression]
    return {w for p in phrases for w in p.split()}


@pytest.mark.parametrize("columns", [40, 60, 80, 120])
@pytest.mark.parametrize("case", sorted(CASES))
def test_no_word_is_lost_at_any_width(case, columns):
    args, kwargs = CASES[case]
    out = ok(invoke(*args, "--show", "all", columns=columns))
    words = set(out.split())
    missing = sorted(expected_words(RunConfig(**kwargs)) - words)
    assert not missing, missing
    assert "…" not in out
    drawn = out.split("Equivalent PyTorch:")[0]  # the code after it keeps its long lines on purpose
    too_wide = [line for line in drawn.splitlines() if len(line.rstrip()) > columns]
    assert not too_wide, too_wide[0]


@pytest.mark.parametrize("columns", [40, 60, 80, 120])
def test_compare_table_keeps_every_word(columns):
    out = ok(invoke("compare", "--cell", "lstm", "--layers", "2", columns=columns))
    words = {w.rstrip(":") for w in out.split()}  # a narrow table becomes `header: value` lines
    for word in ("tensor", "shape", "abs", "Relative", "diff", "atol", "rtol", "margin", "result", "output", "h_n", "c_n", "pass"):
        assert word in words, word
    assert "…" not in out


# ---- the code: no frame, never wrapped, runs -----------------------------------------------------


def pasted_code(text: str) -> str:
    """What a user copies: from `import torch` to the `# output` line."""
    lines = ANSI.sub("", text).splitlines()
    start = lines.index("import torch")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("# output"))
    return "\n".join(lines[start : end + 1])


@pytest.mark.parametrize("env", [{}, COLOUR_ENV], ids=["piped", "colour-terminal"])
def test_code_copied_from_a_60_column_run_runs_and_gives_the_documented_shapes(env):
    import torch
    from tests.test_compare import exec_snippet

    args = ("--cell", "lstm", "--lengths", "6,3,5", "--layers", "2", "--bidirectional", "--proj-size", "2", "--h0", "random")
    out = ok(invoke("torch", *args, "--show", "code", columns=60, env=env))
    code = pasted_code(out)
    assert max(len(line) for line in code.splitlines()) > 60  # a long line stayed long
    assert not set("│╭╮╰╯─") & set(code)  # no frame came along
    ns = exec_snippet(code)
    cfg = RunConfig(cell="lstm", lengths=(6, 3, 5), seq_len=6, batch=3, num_layers=2, bidirectional=True, proj_size=2, h0="random")
    shapes = cfg.shapes()
    assert isinstance(ns["output"], torch.Tensor)
    for name in ("output", "h_n", "c_n"):
        assert tuple(ns[name].shape) == shapes[name], name
    if env:
        assert ANSI.search(out), "highlighted on a colour terminal"


# ---- piped output: for grep ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "is_terminal, columns, width",
    [
        (False, None, views.WIDE), (False, "100", 100), (False, "0", views.WIDE), (False, "-5", views.WIDE),
        (False, "abc", views.WIDE), (False, "", views.WIDE), (True, None, None), (True, "0", None), (True, "70", 70),
    ],
)  # fmt: skip
def test_stdout_width_uses_valid_columns_else_the_terminal_else_wide(is_terminal, columns, width):
    environ = {} if columns is None else {"COLUMNS": columns}
    assert views.stdout_width(is_terminal, environ) == width


@pytest.mark.parametrize("columns", [None, "0", "abc"])
def test_piped_output_keeps_long_lines_whole(columns):
    args = ("torch", "--lengths", "5,2,4", "--bidirectional", "--show", "shapes,sources,code")
    out = ok(runner.invoke(app, list(args), env={**PLAIN_ENV, "COLUMNS": columns}))
    assert "from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence" in out.splitlines()
    assert any(len(line) > 80 for line in out.splitlines())
    assert "…" not in out and not ANSI.search(out)


# ---- compare: the rule that decided each row ----------------------------------------------------


@pytest.mark.parametrize(
    "got, ref, atol, rtol, margin, passed",
    [
        # allowed = atol + rtol*|ref| = [0.11, 0.22]; |got - ref| = [0, 0.1]; worst of diff - allowed = -0.11
        ([1.0, 2.0], [1.0, 2.1], 0.01, 0.1, -0.11, True),
        # allowed = [0.001, 0.001]; diff = [0.5, 0]: 0.5 - 0.001 = 0.499 over
        ([1.5, 2.0], [1.0, 2.0], 0.001, 0.0, 0.499, False),
        # exactly on the bound: margin 0, which passes (the rule is <=)
        ([1.25], [1.0], 0.25, 0.0, 0.0, True),
    ],
    ids=["pass", "fail", "boundary"],
)
def test_margin_is_the_worst_elements_distance_to_its_bound(got, ref, atol, rtol, margin, passed):
    c = compare.check_tensor("output", np.array(got), np.array(ref), Tolerance(atol, rtol, "test"))
    assert c.margin == pytest.approx(margin, abs=1e-12)
    assert c.ok is passed and (c.margin <= 0) is passed


def test_huge_tolerances_do_not_warn_and_pass():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare.check_tensor("output", np.array([1.0, -3e300]), np.array([2.0, 3e300]), Tolerance(1e308, 1e308, "t"))
    assert c.ok and c.margin < 0
    res = invoke("compare", "--atol", "1e308", "--rtol", "1e308")
    assert ok(res) and res.stderr == ""


def test_compare_table_and_json_show_the_margin():
    out = ok(invoke("compare", "--cell", "gru"))
    assert "margin = max(|torch - ref| - (atol + rtol*|ref|))" in " ".join(out.split())
    doc = json.loads(ok(invoke("compare", "--cell", "gru", "--json")))
    for r in doc["results"]:
        if r["tensor"] in ("output", "h_n"):
            assert r["margin"] <= 0 and r["ok"]
            row = next(line for line in out.splitlines() if line.split() and line.split()[0] == r["tensor"])
            assert f"{r['margin']:+.2e}" in row  # the same number, in the row it decided
    failing = json.loads(invoke("compare", "--atol", "0", "--rtol", "0", "--json").stdout)
    assert any(r["margin"] > 0 and not r["ok"] for r in failing["results"])


# ---- flags people try -----------------------------------------------------------------------------


def config_of(*args: str) -> dict:
    return json.loads(ok(invoke("manual", *args, "--json", "--no-values")))["config"]


def test_num_layers_is_an_alias_of_layers():
    assert config_of("--num-layers", "3")["num_layers"] == 3 == config_of("--layers", "3")["num_layers"]


@pytest.mark.parametrize("args, key, value", [(("--cell", "LSTM"), "cell", "lstm"), (("--dtype", "Float64"), "dtype", "float64"), (("--h0", "RANDOM"), "h0", "random")])
def test_choices_are_case_insensitive(args, key, value):
    assert config_of(*args)[key] == value


def test_batch_is_inferred_from_lengths():
    cfg = config_of("--lengths", "7,3,5")
    assert cfg["batch"] == 3 and cfg["lengths"] == [7, 3, 5]


def test_batch_first_with_unbatched_says_so_once_and_runs():
    res = invoke("manual", "--unbatched", "--batch-first", "--brief")
    assert res.exit_code == 0
    assert res.stderr == "rnn-cli: batch_first has no effect on 2-D (unbatched) input\n"
    assert res.stdout.splitlines()[0].split()[:3] == ["input", "(10,", "5)"]


def test_dash_capital_v_prints_the_version():
    from rnn_cli import __version__

    assert ok(invoke("-V")) == f"rnn-cli {__version__}\n"


def test_shell_completion_is_offered():
    out = ok(invoke("--help", columns=200))
    assert "--install-completion" in out and "--show-completion" in out


@pytest.mark.parametrize(
    "command, sections",
    [
        ("torch", ["Network:", "Input:", "Run:", "Output:", "Gradients:", "Other:"]),
        ("compare", ["Network:", "Input:", "Run:", "Output:", "Comparison:", "Gradients:", "Other:"]),
        ("bench", ["Network:", "Input:", "Run:", "Output:", "Timing:", "Gradients:", "Other:"]),
    ],
)
def test_help_groups_options_and_ends_with_examples_that_run(command, sections):
    # Bugs: -h's sections lost or out of order (the groups' fields come from the dataclass
    # in reverse order; -h lists them as the flags class names its groups).
    out = ok(invoke(command, "-h", columns=100))
    assert re.findall(r"^([A-Z]\w*:)$", out, re.M) == sections + ["Examples:"]
    examples = out.split("Examples:\n", 1)[1].splitlines()
    assert 2 <= len(examples) <= 3 and all(e.startswith(f"  rnn-cli {command} ") for e in examples)
    if command == "bench":
        return  # timing runs: their flags are covered by the bench tests
    for e in examples:
        argv = e.split()[1:]
        if "cuda" not in argv:
            res = invoke(*argv)
            assert res.exit_code in (0, 1) and "error" not in res.stderr, (e, res.stderr)


@pytest.mark.parametrize("columns", [40, 60])
def test_more_line_keeps_section_names_whole_on_a_narrow_screen(columns):
    # Bug: the comma-joined --show list is one word, so a narrow console cut it mid-name ("pa" / "rams").
    out = ok(invoke("manual", "--show", "grad", columns=columns))
    tail = out.split("more:", 1)[1]
    assert {"diagram", "shapes", "sources", "values", "recipes", "params", "cost", "code"} <= {w.strip(",") for w in tail.split()}
    assert "more: --show params,cost,code or --show all" in ok(invoke("manual", columns=80))  # wide enough: one word to copy


@pytest.mark.parametrize("columns", [60, 80])
def test_bench_table_never_cuts_a_number(columns):
    # Bug: bench's table printed without fit(): at 60 columns rich cut its cells to "0.2…" and "floa…".
    out = ok(invoke("bench", "--repeat", "2", "--warmup", "0", columns=columns))
    assert "…" not in out and "float32" in out
    assert "1.00x" in out  # the first row's speed, whole


@pytest.mark.parametrize(
    "settings",
    [{}, {"pad_edge": False}, {"collapse_padding": True}, {"pad_edge": False, "collapse_padding": True},
     {"box": None}, {"padding": (0, 2)}, {"collapse_padding": True, "padding": (0, 2)}],
)
def test_fit_measures_a_table_as_wide_as_rich_draws_it(settings):
    # Bug: fit() counting every column's padding twice under collapse_padding / pad_edge=False,
    # so bench's 74-column table was listed as key/value pairs on an 80-column screen.
    import io

    from rich.console import Console
    from rich.table import Table

    from rnn_cli.views.fit import _min_width

    table = Table(show_edge=False, **settings)
    headers, cells = ["implementation", "dev", "median ms"], [["manual"], ["cpu"], ["2.24"]]
    for h in headers:
        table.add_column(h, no_wrap=True)
    table.add_row(*(c[0] for c in cells))
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    drawn = max(len(line) for line in console.file.getvalue().splitlines())
    assert _min_width(table, headers, cells) == drawn


def test_fit_lists_every_row_of_a_table_too_wide_for_the_console():
    # Bug: the key/value form skipped rows whose first cell is empty (rows continuing the one
    # above, as in onnx's gate mapping), so their numbers vanished on a narrow console.
    import io

    from rich.console import Console
    from rich.table import Table

    from rnn_cli.views.fit import fit

    table = Table()
    for h in ("node", "ONNX rows", "torch rows"):
        table.add_column(h, no_wrap=True)
    table.add_row("LSTM 0", "W[0] 0:8", "weight_ih_l0 0:8")
    table.add_row("", "W[0] 8:16", "weight_ih_l0 24:32")
    table.add_row("", "", "")
    table.add_row("LSTM 1", "W[0] 0:8", "weight_ih_l1 0:8")
    console = Console(file=io.StringIO(), width=36)  # the table needs 41
    console.print(fit(console, table))
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]
    assert lines == [  # one line per row where it fits, else wrapped between `header: value` items
        "LSTM 0  ONNX rows: W[0] 0:8", "    torch rows: weight_ih_l0 0:8",
        "    ONNX rows: W[0] 8:16", "    torch rows: weight_ih_l0 24:32",
        "LSTM 1  ONNX rows: W[0] 0:8", "    torch rows: weight_ih_l1 0:8",
    ]
