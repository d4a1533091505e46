"""The real CLI under fuzz: hypothesis-generated argument lists for manual, torch, compare
and bench, run in-process through the Typer app exactly as the console script runs it.

The only acceptable outcomes:
* exit 0 with valid output: --json gives one JSON document; otherwise plain text (no
  colour codes when not on a terminal), or the help text when -h/--help was asked for;
* compare's exit 1 (a mismatch, e.g. --atol 0), with valid output that says so;
* exit 2 with exactly one line on stderr, `rnn-cli: error: ...`, and nothing on stdout.
Anything else (another exit code, an uncaught exception, a traceback, output on the wrong
stream) fails. Every example runs in a fresh temporary directory, which is also where every
--save/--export-svg path points; afterwards no temporary file may be left there, a failed
run must have left the directory as it was, and every .npz there must load.

Numbers are mostly small, so accepted runs stay fast; the huge ones (>= 10**12) must all be
refused (by range checks or by the memory estimate).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rnn_cli.cli.app import app

EXAMPLES = settings.default.max_examples // 2  # per command: 4 x 50 = 200 per CI run
OLD_BYTES = b"an existing file that a failed run must not touch\n"

# ---- values -------------------------------------------------------------------------------

HUGE = [10**12, 10**18, 2**63, 2**64 + 1, 10**40, -(10**20), int("9" * 400)]
NON_NUMBERS = ["", " ", "abc", "1.5", "2.0", "1e3", "0x10", "0b1", "−3", "٣", "３", "1,2", "nan", "inf", "-", "--",
               "3 4", "½", "1_0", "+2", " 4 ", "4\n", "None", "true"]
ODD_TEXT = ["\u202e", "ｌｓｔｍ", "🙂", "\udcff", "e\u0301", "\t", "a\nb", "\x1b[31m", "'", '"', "\\", "%s", "{}",
            "\u200b", "-h-", "--cell", "=", "\r"]


def text_values() -> st.SearchStrategy[str]:
    """Odd unicode: argv can hold anything but NUL (surrogate escapes included)."""
    return st.one_of(
        st.sampled_from(ODD_TEXT),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=6),
    )


@st.composite
def numbers(draw, small=st.integers(1, 6)) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return str(draw(small))
    if kind == 6:
        return str(draw(st.integers(-5, 0)))
    if kind == 7:
        return str(draw(st.sampled_from(HUGE)))
    if kind == 8:
        return draw(st.sampled_from(NON_NUMBERS))
    return draw(text_values())


def choices(*valid: str) -> st.SearchStrategy[str]:
    wrong = [v.upper() for v in valid] + ["", "foo", "none", "float16", "Tanh", "random "]
    return st.integers(0, 4).flatmap(
        lambda k: st.sampled_from(valid) if k <= 2 else (st.sampled_from(wrong) if k == 3 else text_values())
    )


DEVICES = st.integers(0, 4).flatmap(
    lambda k: st.sampled_from(["cpu", "auto"])
    if k <= 2
    else st.sampled_from(["cuda", "cuda:0", "cuda:7", "gpu", "", "cuda:", "cuda:-1", "CPU", "mps", "cuda:99999",
                          "cpu:0", "cuda:1 ", "cuda:٣"])
    if k == 3
    else text_values()
)


@st.composite
def lengths_values(draw) -> str:
    kind = draw(st.integers(0, 3))
    if kind <= 1:
        return ",".join(str(n) for n in draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    if kind == 2:
        return ",".join(draw(st.lists(numbers(), min_size=1, max_size=4)))
    return draw(st.sampled_from(["", ",", "1,,2", "1;2", "a", " 1 , 2 ", "1,", "[1, 2]", "１,２"]))


TOLERANCES = st.sampled_from(
    ["1e-3", "0.5", "1", "0", "1e-12", "nan", "inf", "-inf", "-1", "1e-400", "1e400", "abc", "", "1e-3e", "0x1p-3"]
)
_AWKWARD_PATHS = ["adir", ".", "", "-", "--json", "\udcff"]
SAVE_PATHS = st.sampled_from(
    ["run.npz", "existing.npz", "ünï cödé 🙂.npz", "missing/run.npz", "a" * 300 + ".npz", "adir/nested.npz",
     "run.npz/x.npz", *_AWKWARD_PATHS]
)
SVG_PATHS = st.sampled_from(
    ["out.svg", "existing.svg", "ünï cödé 🙂.svg", "missing/out.svg", "a" * 300 + ".svg", "adir/nested.svg",
     *_AWKWARD_PATHS]
)

# ---- options, per command (name -> value strategy; None for a flag) ----------------------

COMMON = {
    "--cell": choices("rnn", "lstm", "gru", "LSTM", "Gru"),
    "--input-size": numbers(),
    "--hidden-size": numbers(),
    "--layers": numbers(st.integers(1, 3)),
    "--num-layers": numbers(st.integers(1, 3)),
    "--bidirectional": None,
    "--nonlinearity": choices("tanh", "relu"),
    "--no-bias": None,
    "--proj-size": numbers(st.integers(0, 5)),
    "--seq-len": numbers(),
    "--batch": numbers(st.integers(1, 4)),
    "--unbatched": None,
    "--batch-first": None,
    "--lengths": lengths_values(),
    "--h0": choices("zeros", "random", "RANDOM", "h.npy", "missing.npy", "ones"),
    "--c0": choices("c.npy", "missing.npy"),
    "--no-pack": None,
    "--params": choices("missing.pt", "existing.npz", "existing.npz:nope", "notes.txt"),
    "--input": choices("x.npy", "missing.npy", "existing.npz"),
    "--grad": None,
    "--loss": choices("sum", "last", "mean"),
    "--seed": numbers(st.integers(0, 2**40)),
    "--dtype": choices("float32", "float64"),
    "--device": DEVICES,
    "--json": None,
    "--export-svg": SVG_PATHS,
}
RUN_VIEWS = {  # manual, torch and compare only
    "--save": SAVE_PATHS,
    "--no-diagram": None,
    "--no-values": None,
    "--precision": numbers(st.integers(0, 12)),
    "--batch-index": numbers(st.integers(0, 3)),
    "--no-heatmap": None,
    "--show": choices("all", "shapes", "diagram,code", "params,values,sources", "code,bogus", ""),
    "--brief": None,
}
OPTIONS = {
    "manual": {**COMMON, **RUN_VIEWS},
    "torch": {**COMMON, **RUN_VIEWS, "--no-tf32": None},
    "compare": {**COMMON, **RUN_VIEWS, "--no-tf32": None, "--atol": TOLERANCES, "--rtol": TOLERANCES},
    "bench": {**COMMON, "--no-tf32": None, "--repeat": numbers(st.integers(1, 3)),
              "--warmup": numbers(st.integers(0, 2))},
}
ALL_OPTIONS = {name: strategy for options in OPTIONS.values() for name, strategy in options.items()}
CONFLICTS = [  # and other combinations worth meeting often
    ["--atol", "0", "--rtol", "0"],  # compare: a mismatch, exit 1
    ["--unbatched", "--batch", "2"],
    ["--unbatched", "--lengths", "2"],
    ["--json", "--export-svg", "out.svg"],
    ["--cell", "lstm", "--nonlinearity", "relu"],
    ["--cell", "gru", "--proj-size", "2"],
    ["--cell", "lstm", "--proj-size", "8"],
    ["--batch", "2", "--lengths", "3,2,1"],
    ["--cell", "rnn", "--cell", "gru"],
    ["--json", "--json"],
]
GARBAGE = ["--bogus", "--hidden_size", "-x", "foo", "--", "--version", "-h", "--help", "--cell=lstm",
           "--hidden-size=3", "--seq-len=", "--=", "-", "--no-bias=1", "--JSON"]


@st.composite
def chunks(draw, command: str) -> list[str]:
    kind = draw(st.integers(0, 11))
    if kind <= 7:
        name, strategy = draw(st.sampled_from(sorted(OPTIONS[command].items(), key=lambda kv: kv[0])))
    elif kind == 8:
        name, strategy = draw(st.sampled_from(sorted(ALL_OPTIONS.items(), key=lambda kv: kv[0])))
    elif kind == 9:
        return list(draw(st.sampled_from(CONFLICTS)))
    elif kind == 10:
        return [draw(st.sampled_from(GARBAGE))]
    else:
        return [draw(text_values())]
    if strategy is None:
        return [name]
    value = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        return [f"{name}={value}"]
    return [name, value]


@st.composite
def argument_lists(draw, command: str) -> list[str]:
    args = [command]
    if command == "compare" and draw(st.integers(0, 3)) == 0:
        args += ["--atol", "0", "--rtol", "0"]  # a tolerance nothing meets: exit 1 must stay clean too
    for chunk in draw(st.lists(chunks(command), max_size=5)):
        args.extend(chunk)
    return args


# ---- running one and judging the outcome ---------------------------------------------------

TAKES_VALUE = {name for options in OPTIONS.values() for name, strategy in options.items() if strategy is not None}


def json_asked(args: list[str]) -> bool:
    """Whether --json is a flag here, rather than the value of an option before it."""
    i = 1
    while i < len(args):
        if args[i] == "--":
            return False
        if args[i] == "--json":
            return True
        i += 2 if args[i] in TAKES_VALUE else 1
    return False


def prepare(directory: Path) -> dict[str, bytes]:
    (directory / "existing.npz").write_bytes(OLD_BYTES)
    (directory / "existing.svg").write_bytes(OLD_BYTES)
    (directory / "adir").mkdir()
    return snapshot(directory)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(directory.rglob("*"))
    }


def run_cli(args: list[str], directory: Path):
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return CliRunner().invoke(app, args, env={"NO_COLOR": None})  # no colour even without NO_COLOR
    finally:
        os.chdir(cwd)


# --batch-first with --unbatched runs (batch_first changes nothing for 2-D input) and says so.
BATCH_FIRST_NOTE = "rnn-cli: batch_first has no effect on 2-D (unbatched) input\n"


def judge(command: str, args: list[str], result, directory: Path, before: dict[str, bytes]) -> int:
    out, err, code = result.stdout, result.stderr, result.exit_code
    where = f"rnn-cli {args!r} -> exit {code}\nstdout: {out[:2000]!r}\nstderr: {err[:2000]!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{where}\nuncaught {result.exception!r}"
    )
    assert "Traceback" not in out and "Traceback" not in err, where
    after = snapshot(directory)
    assert not [name for name in after if name.startswith(".") or "/." in name], f"{where}\nleft {list(after)}"
    if BATCH_FIRST_NOTE in err:  # the one note that is not an error, first on stderr, with both flags only
        assert {"--batch-first", "--unbatched"} <= set(args) and err.startswith(BATCH_FIRST_NOTE), where
        err = err[len(BATCH_FIRST_NOTE):]
    if code == 2:
        assert out == "", where
        assert err.startswith("rnn-cli: error: ") and err.endswith("\n") and err.count("\n") == 1, where
        assert after == before, f"{where}\na refused run changed the directory: {sorted(set(after) ^ set(before))}"
        return 2
    assert code == 0 or (code == 1 and command == "compare"), where
    assert err == "", where
    assert out.strip(), where
    if out.lstrip().startswith("Usage:"):
        assert code == 0 and {"-h", "--help"} & set(args), where
        return 0
    if json_asked(args):
        doc = json.loads(out)  # exactly one document: json.loads refuses anything after it
        assert out.endswith("\n") and out.count("\n") == 1, where
        assert isinstance(doc, dict), where
        if command != "bench":
            assert doc["command"] == command, where
        if command == "compare":
            assert doc["ok"] is (code == 0), where
    else:
        assert "\x1b[" not in out, f"{where}\ncolour codes in piped output"
        if command == "compare":  # the verdict: MISMATCH under the table; --brief marks each failing tensor
            assert (("FAIL" if "--brief" in args else "MISMATCH") in out) == (code == 1), where
    for name, content in after.items():
        if content == before.get(name):
            continue
        if name.endswith(".npz"):
            with np.load(directory / name, allow_pickle=False) as npz:
                assert "config" in npz.files and "output" in npz.files, where
        elif name.endswith(".svg"):
            assert content.startswith(b"<svg") and content.rstrip().endswith(b"</svg>"), where
    return code


def fuzz(command: str) -> Counter:
    """Run EXAMPLES argument lists for `command`; return how many ended with each exit code."""
    outcomes: Counter = Counter()

    @settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(args=argument_lists(command))
    def one(args: list[str]) -> None:
        with tempfile.TemporaryDirectory(prefix="rnn-cli-fuzz-") as tmp:
            directory = Path(tmp)
            before = prepare(directory)
            result = run_cli(args, directory)
            outcomes[judge(command, args, result, directory, before)] += 1

    one()
    return outcomes


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Tiny tensors gain nothing from threads, and a busy 2-core machine makes them stall."""


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_fuzzed_arguments_end_cleanly(command: str) -> None:
    outcomes = fuzz(command)
    # The fuzz must reach both sides of the wall, or it tests nothing.
    assert outcomes[0] >= 3 and outcomes[2] >= 3, outcomes


def test_fuzzed_bench_arguments_end_cleanly() -> None:
    outcomes = fuzz("bench")
    assert outcomes[0] >= 3 and outcomes[2] >= 3, outcomes


# ---- the judge itself can fail ----------------------------------------------------------------


def test_judge_rejects_what_it_must(tmp_path: Path) -> None:
    """Every rule above fires on a run that breaks it."""

    class Fake:
        def __init__(self, code, out="", err="", exception=None):
            self.exit_code, self.stdout, self.stderr, self.exception = code, out, err, exception

    before = prepare(tmp_path)
    bad = [
        ("manual", Fake(2, out="x", err="rnn-cli: error: a\n")),  # stdout on a refusal
        ("manual", Fake(2, err="rnn-cli: error: a\nsecond line\n")),  # two lines
        ("manual", Fake(2, err="Traceback (most recent call last):\n")),
        ("manual", Fake(1, out="ok\n")),  # exit 1 outside compare
        ("manual", Fake(0, out="ok\n", exception=ValueError("boom"))),
        ("manual", Fake(0, out='{"command": "manual"}\n{}\n')),  # two documents
        ("compare", Fake(1, out='{"command": "compare", "ok": true}\n')),
        ("manual", Fake(0, out="\x1b[31mred\x1b[0m\n")),
        ("manual", Fake(0, out="fine\n", err="UserWarning: noise\n")),
        ("torch", Fake(3, err="rnn-cli: error: a\n")),
    ]
    for command, fake in bad:
        args = [command, "--json"] if fake.stdout.startswith("{") else [command]
        with pytest.raises((AssertionError, json.JSONDecodeError)):
            judge(command, args, fake, tmp_path, before)
    (tmp_path / ".rnn-cli.1.0.tmp").write_bytes(b"partial")
    with pytest.raises(AssertionError):
        judge("manual", ["manual"], Fake(0, out="fine\n"), tmp_path, before)


def test_the_fuzz_knows_every_option_of_every_command() -> None:
    """A new option is fuzzed as soon as it exists; a removed one stops being expected."""
    from typer.main import get_command

    group = get_command(app)
    for command, options in OPTIONS.items():
        real = {opt for p in group.commands[command].params for opt in p.opts if opt.startswith("--")}
        assert set(options) == real - {"--help"}, command
