"""The CLI through typer's CliRunner: exit codes, what a person sees, what must never appear.

Expected shapes come from the PyTorch documentation's formulas (output (L, N, D*H_out),
h_n (D*num_layers, N, H_out)), parameter totals from a torch module built here, and
value digits from the --json document of the same run (a different view of the result).
typer's CliRunner keeps stdout and stderr apart (result.stdout / result.stderr).
"""

from __future__ import annotations

import json
import os
import re

import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app

runner = CliRunner()

# Not a terminal, 80 columns, and nothing in the environment forcing colour on.
PLAIN_ENV = {"COLUMNS": "80", "LINES": "50", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}

ANSI = re.compile(r"\x1b[\[\]]")
NUMBER = re.compile(r"-?\d+\.\d+")

# issue 2's table: the options every run command shares (the interface scripts rely on).
SHARED_OPTIONS = [
    "--input-size", "--hidden-size", "--seq-len", "--batch", "--unbatched", "--layers",
    "--bidirectional", "--batch-first", "--nonlinearity", "--no-bias", "--h0", "--seed",
    "--dtype", "--device", "--json", "--save", "--no-values", "--precision",
]  # fmt: skip
# bench times forwards and shows no value tables and saves nothing: these three are not its flags.
NOT_BENCH = {"--save", "--no-values", "--precision"}


def invoke(*args: str, columns: int = 80, env: dict | None = None):
    return runner.invoke(app, list(args), env={**PLAIN_ENV, "COLUMNS": str(columns), **(env or {})})


def flat(text: str) -> str:
    """Whitespace collapsed: phrases that rich wrapped at 80 columns read as one line again."""
    return " ".join(text.split())


def json_doc(*args: str) -> dict:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def table_rows(text: str, title: str) -> list[str]:
    """The body lines of the plain table titled `title`: after its header (and ---- rule), until an empty line
    (a section break inside a table is a line of spaces, not an empty one)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rule = start + 2 if set(lines[start + 2].strip()) == {"-"} else start + 1  # the default screen: no rule
    rows = []
    for line in lines[rule + 1 :]:
        if line == "":
            break
        rows.append(line)
    return rows


def first_cells(rows: list[str]) -> dict[str, str]:
    """First cell -> row, for the rows that start a table row (not wrapped continuation lines)."""
    return {m.group(1): row for row in rows if (m := re.match(r"^ (\S+)\s", row))}


def assert_clean_success(res) -> None:
    assert res.exit_code == 0, (res.exit_code, res.stderr, res.exception)
    assert res.stderr == ""
    assert "Traceback" not in res.stdout
    assert not ANSI.search(res.stdout), "escape codes in output that is not a terminal"


@pytest.fixture(scope="module")
def example():
    """`rnn-cli torch --layers 2 --bidirectional`: the example everyone types first."""
    res = invoke("torch", "--layers", "2", "--bidirectional")
    assert_clean_success(res)
    return res.stdout


# ---- the first example -----------------------------------------------------------------------


def test_example_shows_pytorch_code_and_the_shapes_from_the_docs(example):
    L, N, D, H_in, H_out, layers = 10, 1, 2, 5, 8, 2
    code = invoke("torch", "--layers", "2", "--bidirectional", "--show", "code")
    assert_clean_success(code)
    assert "nn.RNN(" in code.stdout
    assert "num_layers=2" in code.stdout and "bidirectional=True" in code.stdout
    shapes = first_cells(table_rows(example, "Shapes"))
    assert f"({L}, {N}, {H_in})" in shapes["input"]
    assert f"({L}, {N}, {D * H_out})" in shapes["output"]  # (10, 1, 16)
    assert "(L, N, D*H_out)" in shapes["output"]
    assert f"({D * layers}, {N}, {H_out})" in shapes["h_n"]  # (4, 1, 8)
    assert "(D*num_layers, N, H_out)" in shapes["h_n"]
    assert f"({D * layers}, {N}, {H_out})" in shapes["h_0"]


def _pytorch_code(text: str) -> str:
    """The 'Equivalent PyTorch' block of plain output: from `import torch` to the `# output` line."""
    lines = text.splitlines()
    start = lines.index("import torch")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("# output"))
    return "\n".join(lines[start : end + 1])


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--layers", "2", "--bidirectional"], {"output": (10, 1, 16), "h_n": (4, 1, 8)}),
        (["--batch-first", "--batch", "3", "--seq-len", "4"], {"output": (3, 4, 8), "h_n": (1, 3, 8)}),
        (["--unbatched", "--nonlinearity", "relu", "--no-bias"], {"output": (10, 8), "h_n": (1, 8)}),
        (
            ["--cell", "lstm", "--proj-size", "3", "--layers", "2", "--bidirectional", "--h0", "random"],
            {"output": (10, 1, 6), "h_n": (4, 1, 3), "c_n": (4, 1, 8)},
        ),
        (
            ["--cell", "gru", "--lengths", "5,2,4", "--batch", "3", "--seq-len", "5", "--batch-first"],
            {"output": (3, 5, 8), "h_n": (1, 3, 8)},
        ),
    ],
    ids=["bidir-2-layers", "batch-first", "unbatched-relu-nobias", "lstm-proj-h0", "gru-lengths"],
)
def test_pytorch_code_is_copy_pastable_and_gives_the_documented_shapes(args, expect):
    import torch
    res = invoke("torch", "--show", "code", *args)
    assert_clean_success(res)
    namespace: dict = {}
    exec(compile(_pytorch_code(res.stdout), "<pasted>", "exec"), namespace)  # what a user would paste
    assert isinstance(namespace["x"], torch.Tensor)
    got = {"output": tuple(namespace["output"].shape), "h_n": tuple(namespace["h_n"].shape)}
    if "c_n" in expect:
        got["c_n"] = tuple(namespace["c_n"].shape)
    assert got == expect


def test_batch_first_note_says_h_n_keeps_its_layout():
    res = invoke("torch", "--batch-first", "--batch", "3", "--no-values")
    assert_clean_success(res)
    assert "h_n is still (D*num_layers, N, H_out)" in flat(res.stdout)
    rows = first_cells(table_rows(res.stdout, "Shapes"))
    assert "(3, 10, 5)" in rows["input"] and "(N, L, H_in)" in rows["input"]
    assert "(1, 3, 8)" in rows["h_n"] and "(D*num_layers, N, H_out)" in rows["h_n"]

    without = invoke("torch", "--batch", "3", "--no-values")
    assert_clean_success(without)
    assert "h_n is still" not in flat(without.stdout)


@pytest.mark.parametrize(
    "flags, cls, kwargs",
    [
        (["--layers", "2", "--bidirectional"], "RNN", dict(input_size=5, hidden_size=8, num_layers=2, bidirectional=True)),
        (["--no-bias", "--input-size", "3", "--hidden-size", "4"], "RNN", dict(input_size=3, hidden_size=4, bias=False)),
        (
            ["--cell", "lstm", "--layers", "2", "--bidirectional", "--proj-size", "3"],
            "LSTM",
            dict(input_size=5, hidden_size=8, num_layers=2, bidirectional=True, proj_size=3),
        ),
        (["--cell", "gru", "--layers", "3", "--hidden-size", "40"], "GRU", dict(input_size=5, hidden_size=40, num_layers=3)),
    ],
    ids=["rnn-bidir", "rnn-nobias", "lstm-proj", "gru-3-layers"],
)
def test_parameter_table_matches_a_torch_module_built_here(flags, cls, kwargs):
    import torch
    module = getattr(torch.nn, cls)(**kwargs)
    expected_total = sum(p.numel() for p in module.parameters())
    for command in ("manual", "torch"):
        res = invoke(command, "--show", "params", *flags)
        assert_clean_success(res)
        rows = table_rows(res.stdout, "Parameters")
        totals = [r for r in rows if r.split()[:1] == ["total"]]
        assert len(totals) == 1, rows
        assert int(totals[0].split()[1].replace(",", "")) == expected_total
        by_name = {r.split()[0]: r for r in rows if r.strip()}
        for name, p in module.named_parameters():
            shape = "(" + ", ".join(map(str, p.shape)) + ("," if p.dim() == 1 else "") + ")"
            assert name in by_name, f"{command}: {name} missing from the parameter table"
            assert shape in by_name[name], (name, shape, by_name[name])
            assert f"{p.numel():,}" in by_name[name].split()


def test_where_h_n_comes_from_table_is_checked_on_the_run(example):
    assert "Where h_n comes from" in example
    rows = table_rows(example, "Where h_n comes from")
    states = [r for r in rows if r.split()[:1] and r.split()[0].startswith("h_n[")]
    assert [r.split()[0] for r in states] == ["h_n[0]", "h_n[1]", "h_n[2]", "h_n[3]"]
    assert all("equal" in r.split() for r in states), states
    # The docs: last layer forward = output at the last step, first H_out features;
    # backward = output at step 0, the last H_out features.
    assert "output[9, :, 0:8]" in states[2]
    assert "output[0, :, 8:16]" in states[3]
    assert "DIFFERS" not in example


# ---- exit codes, cleanliness ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_runs_exit_0_plain_text_and_no_traceback(command):
    res = invoke(command, "--layers", "2", "--bidirectional", "--cell", "lstm")
    assert_clean_success(res)
    assert "rnn-cli " + command in res.stdout


def test_compare_passes_by_default():
    res = invoke("compare", "--layers", "2", "--bidirectional")
    assert_clean_success(res)
    assert "OK" in res.stdout and "FAIL" not in res.stdout
    assert re.search(r"Tolerance: .*1e-05", res.stdout)  # float32 on the CPU, printed


def test_compare_exit_1_on_mismatch():
    # float32 torch against the float64 reference can never be exact over 10 steps.
    res = invoke("compare", "--atol", "0", "--rtol", "0")
    assert res.exit_code == 1, (res.stdout, res.stderr)
    assert res.stderr == ""
    assert "FAIL" in res.stdout and "MISMATCH" in res.stdout
    assert "Traceback" not in res.stdout and not ANSI.search(res.stdout)

    doc = json.loads(invoke("compare", "--atol", "0", "--rtol", "0", "--json").stdout)
    assert doc["ok"] is False
    assert any(not r["ok"] for r in doc["results"])


# ---- help and version ----------------------------------------------------------------------


def _help_text(text: str) -> str:
    """Help as flat text: rich's panel borders removed, whitespace collapsed."""
    return flat(re.sub(r"[│╭╮╰╯─┃━┏┓┗┛|]", " ", text))


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", [None, "manual", "torch", "compare", "bench"])
def test_help_exits_0_and_names_every_shared_option(command, flag):
    args = [flag] if command is None else [command, flag]
    res = invoke(*args, columns=200)
    assert res.exit_code == 0, res.stderr
    assert res.stderr == ""
    assert "Traceback" not in res.stdout
    text = _help_text(res.stdout)
    assert "Usage:" in text
    if command is None:
        for name in ("manual", "torch", "compare", "bench", "--version"):
            assert name in text.split()
        return
    expected = [o for o in SHARED_OPTIONS if command != "bench" or o not in NOT_BENCH]
    missing = [o for o in expected if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    assert not missing, f"{command} {flag} does not mention {missing}"
    if command == "compare":
        assert "--atol" in text and "--rtol" in text


@pytest.mark.parametrize(
    "command, phrase",
    [
        ("manual", "rnn only. [default: tanh]"),
        ("torch", "N: sequences in the batch. [default: one per --lengths, else 1 (bench: 32), or --input's]"),
        ("compare", "Absolute tolerance. [default: by dtype and device]"),
    ],
)
def test_help_shows_defaults_written_in_brackets(command, phrase):
    # Defaults written by hand into the help text (issue 2's table: tanh, 1) must survive
    # rich's markup, which reads "[default: ...]" as a style tag and drops it.
    res = invoke(command, "--help", columns=200)
    assert res.exit_code == 0
    assert phrase in _help_text(res.stdout)


def test_version():
    from rnn_cli import __version__

    res = invoke("--version")
    assert res.exit_code == 0 and res.stderr == ""
    assert res.stdout == f"rnn-cli {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", __version__)


# ---- views: --no-values, --precision, --batch-index, width ---------------------------------


def _value_rows(text: str) -> list[str]:
    """Rows of the output value table: they start with the step label t=K."""
    return [line for line in text.splitlines() if re.match(r"^\s*t=\d+\b", line)]


def test_no_values_hides_value_tables_but_keeps_shapes_and_parameters():
    full = invoke("manual", "--show", "all")
    bare = invoke("manual", "--show", "all", "--no-values")
    assert_clean_success(full)
    assert_clean_success(bare)
    assert "batch element 0" in full.stdout and _value_rows(full.stdout)
    assert "batch element" not in bare.stdout
    assert _value_rows(bare.stdout) == []
    assert "Where h_n comes from" in bare.stdout  # its own section: --no-values takes values only
    assert "Shapes" in bare.stdout and "Parameters" in bare.stdout
    assert re.search(r"^\s*total\s+120\s*$", bare.stdout, re.M)  # 8*5 + 8*8 + 8 + 8


@pytest.mark.parametrize("precision", [2, 4, 7])
def test_precision_sets_the_digits_of_every_value(precision):
    res = invoke("manual", "--precision", str(precision), "--hidden-size", "4", "--show", "values")
    assert_clean_success(res)
    rows = _value_rows(res.stdout)
    assert len(rows) == 10
    numbers = [n for row in rows for n in NUMBER.findall(row)]
    assert numbers and all(len(n.split(".")[1]) == precision for n in numbers), numbers[:5]
    # the same numbers as the --json document of the same run, rounded
    values = json_doc("manual", "--hidden-size", "4")["tensors"]["output"]["values"]
    first = [float(n) for n in NUMBER.findall(rows[0])]
    assert first == pytest.approx(values[0][0], abs=0.5 * 10**-precision + 1e-12)


def test_batch_index_picks_the_batch_element_shown():
    args = ("manual", "--batch", "3", "--hidden-size", "4", "--seed", "7")
    values = json_doc(*args)["tensors"]["output"]["values"]  # (L, N, H)
    for b in (0, 2):
        res = invoke(*args, "--batch-index", str(b), "--show", "values")
        assert_clean_success(res)
        assert f"output, batch element {b}" in res.stdout
        shown = [float(n) for row in _value_rows(res.stdout) for n in NUMBER.findall(row)]
        expected = [v for t in range(10) for v in values[t][b]]  # output[t, b, :]
        assert shown == pytest.approx(expected, abs=0.5e-4 + 1e-9)
    # and the elements really differ, so the check above can tell them apart
    assert values[0][0] != values[0][2]


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize(
    "args",
    [
        ("manual",),
        ("torch", "--layers", "2", "--bidirectional"),
        ("manual", "--cell", "lstm", "--layers", "2", "--bidirectional", "--batch-first", "--batch", "2"),
        ("torch", "--lengths", "10,7,3", "--batch", "3", "--bidirectional", "--hidden-size", "32"),
        ("manual", "--precision", "8", "--hidden-size", "20", "--seq-len", "30"),
        ("compare", "--cell", "gru", "--layers", "2", "--bidirectional"),
    ],
    ids=["manual", "torch-bidir", "lstm-batch-first", "lengths-h32", "precision8", "compare"],
)
def test_every_line_fits_the_terminal_and_no_number_is_cut(args, columns):
    res = invoke(*args, columns=columns)
    assert_clean_success(res)
    too_wide = [line for line in res.stdout.splitlines() if len(line) > columns]
    assert not too_wide, f"{len(too_wide)} line(s) wider than {columns}: {too_wide[0]!r}"
    # Value tables: every number printed in full (a cropped "-0.5" for "-0.5011" would hide data).
    precision = int(args[args.index("--precision") + 1]) if "--precision" in args else 4
    for line in res.stdout.splitlines():
        if re.match(r"^\s*(t=\d+|\[\d+\] l\d+ (fwd|bwd))\b", line):
            cells = line.split()
            numbers = [c for c in cells if re.fullmatch(r"-?\d+\.\d*", c)]
            assert numbers, line
            assert all(len(c.split(".")[1]) == precision for c in numbers), f"cut value in {line!r}"
            assert "…" not in line, f"squeezed label in {line!r}"


# ---- bad input: exit 2, one line on stderr, nothing on stdout -------------------------------


def assert_bad_input(res, *must_mention: str) -> str:
    assert res.exit_code == 2, (res.exit_code, res.stdout[-500:], res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and res.stderr.endswith("\n"), res.stderr
    assert lines[0].startswith("rnn-cli: error: ")
    assert "Traceback" not in res.stderr
    for word in must_mention:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
@pytest.mark.parametrize(
    "args, option",
    [
        (["--input-size", "0"], "--input-size"),
        (["--hidden-size", "0"], "--hidden-size"),
        (["--hidden-size", "-3"], "--hidden-size"),
        (["--seq-len", "0"], "--seq-len"),
        (["--batch", "0"], "--batch"),
        (["--batch", "-1"], "--batch"),
        (["--layers", "0"], "--layers"),
        (["--batch", "2", "--unbatched"], "--unbatched"),
        (["--device", "tpu"], "--device"),
        (["--device", "cuda:x"], "--device"),
    ],
    ids=["input0", "hidden0", "hidden-neg", "seqlen0", "batch0", "batch-neg", "layers0", "batch+unbatched", "device-tpu", "device-cuda-x"],
)
def test_bad_input_one_line_exit_2(command, args, option):
    line = assert_bad_input(invoke(command, *args), option)
    if option == "--unbatched":
        assert "--batch" in line  # a conflict names both flags


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_bad_input_in_json_mode_too(command):
    assert_bad_input(invoke(command, "--layers", "0", "--json"), "--layers")


@pytest.mark.parametrize("command", ["torch", "compare"])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_asked_for_but_absent(command, device):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    line = assert_bad_input(invoke(command, "--device", device), "--device", device)
    assert "cpu" in line  # says what is allowed instead


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_manual_refuses_cuda_and_points_to_torch(device):
    line = assert_bad_input(invoke("manual", "--device", device), "--device")
    assert "torch" in line or "compare" in line


def test_save_into_missing_directory(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "run.npz"
    for command in ("manual", "torch"):
        assert_bad_input(invoke(command, "--save", str(target)), "--save")
    assert not (tmp_path / "no").exists()


def test_save_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_bad_input(invoke("manual", "--save", str(blocker / "run.npz")), "--save")
    assert blocker.read_text() == "x"


def test_save_onto_a_directory(tmp_path):
    assert_bad_input(invoke("manual", "--save", str(tmp_path)), "--save")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_save_into_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert_bad_input(invoke("manual", "--save", str(ro / "run.npz")), "--save")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_save_where_no_file_can_be_created():
    assert_bad_input(invoke("manual", "--save", "/proc/rnn-cli-test.npz"), "--save")


_SIZE = re.compile(r"(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB|PiB)")
_UNIT = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


@pytest.mark.parametrize(
    "command, args, lower_bound",
    [
        # parameters alone: hidden*hidden + hidden*input + 2*hidden floats of 4 bytes
        ("manual", ["--hidden-size", str(10**6)], 4 * (10**12 + 5 * 10**6)),
        ("torch", ["--hidden-size", str(10**6)], 4 * (10**12 + 5 * 10**6)),
        # 999 layers of (H x H) twice plus the first layer
        ("manual", ["--layers", "1000", "--hidden-size", str(10**5)], 4 * 1000 * 2 * 10**10 * 0.99),
        # input (L*H_in) and output (L*H_out) floats alone
        ("manual", ["--seq-len", str(10**9)], 4 * 10**9 * (5 + 8)),
        ("compare", ["--seq-len", str(10**9)], 4 * 10**9 * (5 + 8)),
    ],
    ids=["hidden-1e6", "torch-hidden-1e6", "layers-1000", "seq-len-1e9", "compare-seq-len-1e9"],
)
def test_absurd_sizes_are_refused_with_the_estimated_size(monkeypatch, command, args, lower_bound):
    # Pretend this machine has 16 GiB available so the outcome does not depend on where it runs
    # (and nothing ever tries to allocate these sizes).
    import rnn_cli.core.guard

    monkeypatch.setattr(rnn_cli.core.guard, "available_memory", lambda: (16 * 2**30, "MemAvailable"))
    line = assert_bad_input(invoke(command, *args))
    # the first size is the estimate, printed with one decimal: allow for that rounding
    sizes = [(float(n) + 0.05) * _UNIT[u] for n, u in _SIZE.findall(line)]
    assert len(sizes) >= 1, f"no size in {line!r}"
    assert sizes[0] >= lower_bound, (line, lower_bound)
    assert "memory" in line


def test_absurd_hidden_size_is_refused_on_this_machine_as_it_is():
    # 10**6 hidden units need terabytes for the weights: no machine this runs on has that.
    line = assert_bad_input(invoke("manual", "--hidden-size", str(10**6)))
    assert _SIZE.search(line) and "TiB" in line


def test_main_builds_only_the_invoked_command_yet_behaves_like_the_app(capsys, monkeypatch):
    # Bugs: main()'s one-command shortcut building every command after all, dropping an option
    # or the exit code, or trimming the module's app itself (every later call, --help
    # included, would lose the other commands).
    import typer.main

    from rnn_cli.cli.app import main

    for key, value in PLAIN_ENV.items():
        monkeypatch.delenv(key, raising=False) if value is None else monkeypatch.setenv(key, value)
    built: list[list[str]] = []
    get_command = typer.main.get_command

    def counting(typer_app):
        group = get_command(typer_app)
        built.append(sorted(group.commands))
        return group

    monkeypatch.setattr(typer.main, "get_command", counting)
    for args, code in ((["manual", "--brief", "--cell", "gru", "--layers", "2"], 0), (["compare", "--brief", "--rtol", "-1"], 2)):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        out, err = capsys.readouterr()
        assert built.pop() == [args[0]]
        via_app = invoke(*args)
        assert (exit_.value.code, via_app.exit_code) == (code, code) and (out if code == 0 else err), args
        assert (out, err) == (via_app.stdout, via_app.stderr), args
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    listed = re.findall(r"^  (\w+) ", capsys.readouterr().out.split("Commands:")[1], re.M)
    assert (exit_.value.code, listed) == (0, ["manual", "torch", "compare", "bench", "inspect", "onnx", "convert"])
    assert len(app.registered_commands) == 7
