"""No item is broken across lines, at any width (issue 21).

Every command's default screen, `--show all` and `-h` are rendered in-process (typer's
CliRunner, COLUMNS set) at 40, 60, 80 and 120 columns, plain and on a colour terminal. A token
from the fixed lists below (expressions, shapes, numbers, flags) is split when the lines,
stripped and joined by a space or by nothing, hold more of it than the lines one by one do:
`h_n.view(num_layers, D, N, H_out)[-1,` / `1]`, `--proj-` / `size`, `+0.9130` moved away
from its `..`. Numbers are also checked generically: every number drawn at 120 columns must
be whole at the narrower widths.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app

runner = CliRunner()
PLAIN_ENV = {"LINES": "50", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None, "NO_COLOR": None}
COLOUR_ENV = {**PLAIN_ENV, "TTY_COMPATIBLE": "1", "COLORTERM": "truecolor", "TERM": "xterm-256color"}
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b]*\x1b\\")
WIDTHS = (40, 60, 80, 120)
HEADLINE = ("torch", "--layers", "2", "--bidirectional")

# Written here, not taken from the code: what a user reads or copies as one.
EXPRESSIONS = [
    "h_n.view(num_layers, D, N, H_out)[-1, 1]",
    "h_n.view(num_layers, D, N, H_out)[-1]",
    "h_n.view(D, num_layers, N, H_out)[:, -1]",
    "torch.cat((h_n[-2], h_n[-1]), dim=1)",
    "output[-1, :, H_out:]",
    "layer0_output[9, :, 0:8]",
    "layer0_output[0, :, 8:16]",
    "output[0, :, 8:16]",
    "|torch - ref| <= ",
]
SHAPES = [
    "(D*num_layers, N, H_out)", "(D*num_layers, N, H_cell)", "(L, N, D*H_out)", "(N, L, D*H_out)", "(L, N, H_in)",
    "(N, L, H_in)", "(L, H_in)", "(N, L, ...)", "(10, 1, 16)", "(10, 1, 5)", "(4, 1, 8)", "(4, 2, 3)", "(4, 2, 6)", "(2, 7, 6)",
]
FLAGS = [
    "--proj-size", "--hidden-size", "--input-size", "--num-layers", "--batch-first", "--no-pack", "--batch-index",
    "--export-svg", "--no-heatmap", "--no-values", "--no-diagram", "--install-completion", "--show-completion",
    "--save-onnx", "--no-tf32", "--seq-len", "--show values", "--show recipes", "--save PATH.npz",
]
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]\d+)?(?![\w.])")
LEGEND = re.compile(r"colour scale -\d+\.\d+ \.\. 0 \.\. \+\d+\.\d+")

RUNS = {  # the commands whose screens have --show
    "headline": HEADLINE,
    "manual-lstm-proj": ("manual", "--cell", "lstm", "--proj-size", "3", "--lengths", "7,3", "--layers", "2",
                         "--bidirectional", "--batch-first", "--hidden-size", "6", "--seq-len", "7"),
    "compare": ("compare", "--cell", "gru", "--layers", "2", "--bidirectional"),
    "compare-grad": ("compare", "--grad", "--cell", "lstm", "--seq-len", "6", "--batch", "2"),
}
OTHERS = {  # no --show
    "bench": ("bench", "--repeat", "2", "--warmup", "0"),
    "inspect": ("inspect", "docs/examples/model.pt"),
    "onnx": ("onnx", "--cell", "gru", "--layers", "2", "--bidirectional"),
}
HELP = [(), ("manual",), ("torch",), ("compare",), ("bench",), ("inspect",), ("onnx",)]


def split_tokens(text: str, tokens: list[str]) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    whole = {t: sum(line.count(t) for line in lines) for t in tokens}
    joined = (" ".join(lines), "".join(lines))
    return sorted({t for t in tokens if any(j.count(t) > whole[t] for j in joined)})


@lru_cache(maxsize=None)
def _onnx_report(*args):
    from rnn_cli.formats import onnx_export

    return onnx_export.__dict__["_real_report"](*args)


@pytest.fixture
def cached_onnx(monkeypatch):
    """onnx exports once per process (seconds); each width only draws it again."""
    from rnn_cli.formats import onnx_export

    onnx_export.__dict__.setdefault("_real_report", onnx_export.report)
    monkeypatch.setattr(onnx_export, "report", lambda *a, **progress: _onnx_report(*a))


def render(args: tuple[str, ...], columns: int, colour: bool = False) -> str:
    env = {**(COLOUR_ENV if colour else PLAIN_ENV), "COLUMNS": str(columns)}
    res = runner.invoke(app, list(args), env=env)
    assert res.exit_code in (0, 1), (args, res.exit_code, res.stderr, res.exception)
    assert "Traceback" not in res.stdout
    return ANSI.sub("", res.stdout)


def drawn_part(text: str) -> str:
    """All but the copyable code, whose long lines stay long on purpose (test_screen)."""
    return text.split("Equivalent PyTorch:")[0]


def check(text: str, columns: int, wide: str) -> None:
    text = drawn_part(text)
    tokens = EXPRESSIONS + SHAPES + FLAGS + sorted(set(NUMBER.findall(drawn_part(wide))))
    assert not split_tokens(text, tokens), split_tokens(text, tokens)
    too_wide = [line for line in text.splitlines() if len(line.rstrip()) > columns]
    assert not too_wide, too_wide
    assert "…" not in text
    assert "<rich." not in text  # a cell drawn as its repr (a Group in a table turned into a list)


def variants(args: tuple[str, ...]) -> list[tuple[tuple[str, ...], bool]]:
    """The default screen (plain and in colour: the heatmap's legend) and --show all."""
    return [(args, False), (args, True), (args + ("--show", "all"), False)]


@pytest.mark.parametrize("case", sorted(RUNS))
def test_run_screens_split_no_token(case):
    for args, colour in variants(RUNS[case]):
        wide = render(args, 120, colour)
        for columns in WIDTHS:
            check(render(args, columns, colour) if columns != 120 else wide, columns, wide)
            if colour and columns != 120:
                assert all(LEGEND.search(line) for line in render(args, columns, colour).splitlines() if "colour" in line)


@pytest.mark.parametrize("case", sorted(OTHERS))
def test_other_screens_split_no_token(case, cached_onnx):
    if case == "onnx":
        pytest.importorskip("onnxruntime")
    wide = render(OTHERS[case], 120)
    for columns in WIDTHS:
        check(render(OTHERS[case], columns), columns, wide)


@pytest.mark.parametrize("command", HELP, ids=lambda c: " ".join(c) or "top")
def test_help_splits_no_flag_and_fits_the_width(command):
    for columns in WIDTHS:
        text = render(command + ("-h",), columns)
        assert not split_tokens(text, FLAGS + SHAPES), (columns, split_tokens(text, FLAGS + SHAPES))
        assert max(len(line) for line in text.splitlines()) <= columns, columns


def test_the_token_lists_are_not_stale():
    """Each listed token is drawn whole somewhere, so its check can fail."""
    texts = [render(args, 120, colour) for case in RUNS.values() for args, colour in variants(case)]
    texts += [render(c + ("-h",), 80) for c in HELP]
    seen = "\n".join(texts)
    missing = [t for t in EXPRESSIONS + SHAPES + FLAGS if t not in seen]
    assert not missing, missing


@pytest.mark.parametrize("columns", [60, 80])
def test_headline_fits_50_lines_with_shapes_and_sources(columns):
    text = render(HEADLINE, columns)
    lines = text.splitlines()
    assert len(lines) <= 50, len(lines)
    for shape in ("(10, 1, 5)", "(10, 1, 16)", "(4, 1, 8)", "(D*num_layers, N, H_out)"):
        assert shape in text, shape
    assert "Where h_n comes from" in text
    for k, expr in enumerate(["layer0_output[9, :, 0:8]", "layer0_output[0, :, 8:16]", "output[9, :, 0:8]", "output[0, :, 8:16]"]):
        row = next(line for line in lines if line.split()[:1] == [f"h_n[{k}]"])  # one row per slice, not a key: value list
        assert expr in row, row


def test_split_tokens_finds_splits():
    """The detector itself: a break inside an item, at a space or a hyphen, is found."""
    assert split_tokens("a h_n.view(num_layers, D, N, H_out)[-1,\n  1] b", EXPRESSIONS) == ["h_n.view(num_layers, D, N, H_out)[-1, 1]"]
    assert split_tokens("  --proj-\n  size INT", FLAGS) == ["--proj-size"]
    assert split_tokens("--proj-size INT\n(4, 1, 8)", FLAGS + SHAPES) == []
