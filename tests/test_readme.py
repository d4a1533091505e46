"""The README documents every command and every option the CLI has, and its quick start
matches what CI runs."""

from pathlib import Path

import pytest
import typer.main

from rnn_cli.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
GROUP = typer.main.get_command(app)


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_every_command_is_in_the_readme(name):
    assert f"rnn-cli {name}" in README


@pytest.mark.parametrize(
    "name,option",
    [
        (name, opt)
        for name, command in sorted(GROUP.commands.items())
        for param in command.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ],
)
def test_every_option_is_in_the_readme(name, option):
    assert f"`{option}" in README or f", `{option}" in README, f"{name} {option} is not documented"


def test_quick_start_is_clone_venv_and_two_commands_and_ci_runs_the_test_command():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 4
    assert commands[0].startswith("git clone ") and "venv" in commands[1]
    assert commands[2].endswith("rnn-cli torch --layers 2 --bidirectional")
    test_command = commands[3].split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci


def test_quick_start_tells_cpu_only_users_where_the_small_torch_is():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in quick
    assert "CUDA" in quick  # what the public index serves on Linux


def test_readme_has_no_internal_vocabulary():
    import re

    assert not re.search(r"\b(issue|target) \d", README, re.I)


def _update_readme():
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "docs" / "update-readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One test per output block (what `docs/update-readme.py --check` does for all of them), so
# that the blocks' commands spread over the test workers and a stale one is named.
BLOCKS = [m.group(0) for m in _update_readme().BLOCK.finditer(README)]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{i}-{_update_readme().BLOCK.match(b).group('cmd')[:50]}" for i, b in enumerate(BLOCKS)])
def test_readme_outputs_are_what_the_commands_print_now(block):
    update = _update_readme()
    now = update.refresh(block, check=True)
    assert update.masked(now) == update.masked(block), f"README.md is stale: run python docs/update-readme.py; now:\n{now}"


def test_readme_blocks_all_parse_and_includes_are_their_files():
    update = _update_readme()
    assert len(BLOCKS) == README.count("<!-- output") > 10
    includes = list(update.INCLUDE.finditer(README))
    for m in includes:
        assert m.group("body") == (ROOT / m.group("path")).read_text(), f"stale include {m.group('path')}"


def test_an_excerpt_keeps_each_range_whole_and_marks_every_cut():
    lines = ["title", "a", "start 1", "b", "end 1", "c", "start 2", "end 2", "tail"]
    keep = [("start 1", "end 1"), ("start 2", "end 2")]
    assert _update_readme().excerpt(lines, keep, "cmd") == [
        "[...]", "start 1", "b", "end 1", "[...]", "start 2", "end 2", "[...]",
    ]
    # a range at the very start or end leaves no marker there
    assert _update_readme().excerpt(lines, [("title", "a"), ("end 2", "tail")], "cmd") == ["title", "a", "[...]", "end 2", "tail"]


def test_an_excerpt_whose_marker_left_the_output_is_an_error_not_an_empty_block():
    with pytest.raises(SystemExit, match="'gone'"):
        _update_readme().excerpt(["a", "b"], [("a", "gone")], "cmd")


def test_a_mistyped_output_block_is_an_error_not_a_block_left_empty():
    text = '<!-- output keep "a"..."b": rnn-cli manual -->\n<!-- /output -->\n'  # three dots
    with pytest.raises(SystemExit, match="do not parse"):
        _update_readme().refresh(text)


def test_the_example_checkpoints_are_what_make_examples_writes():
    """The README's inspect/compare outputs describe these files: they must match their script."""
    import importlib.util
    import pickle

    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "docs" / "examples" / "make-examples.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    examples = ROOT / "docs" / "examples"
    want = make.model().state_dict()
    got = torch.load(examples / "model.pt", map_location="cpu", weights_only=True)
    assert list(got) == list(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    broken = torch.load(examples / "broken.pt", map_location="cpu", weights_only=True)
    assert set(want) - set(broken) == {"0.weight_ih_l1_reverse"}
    np.testing.assert_array_equal(np.load(examples / "x.npy"), make.x())
    with pytest.raises(pickle.UnpicklingError):
        torch.load(examples / "pickled.pt", map_location="cpu", weights_only=True)
    assert all(p.stat().st_size < 50_000 for p in examples.iterdir())


def test_safetensors_files_are_read_without_the_safetensors_package(tmp_path, monkeypatch):
    """Issue 23: the format is read by hand (its header checked against the file first), so an
    environment without the package reads it too. Expected values: what the package wrote."""
    import sys

    import numpy as np
    from safetensors.numpy import save_file

    from rnn_cli.formats.checkpoint import load_tensors

    arrays = {"weight_ih_l0": np.arange(12, dtype=np.float32).reshape(4, 3), "bias": np.arange(4, dtype=np.int64)}
    path = tmp_path / "model.safetensors"
    save_file(arrays, str(path))
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors -> ImportError
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    got = load_tensors(path).tensors
    assert got.keys() == arrays.keys()
    for k, a in arrays.items():
        assert got[k].dtype == a.dtype and np.array_equal(got[k], a)


BENCH_BLOCK = """<!-- output machine: rnn-cli bench -->
```console
$ rnn-cli bench
implementation  device  dtype    median ms  min ms  max ms  GFLOP/s  speed
--------------------------------------------------------------------------
manual          cpu     float32       2.24    2.09    2.42      6.3  1.00x
torch           cpu     float32      {torch_ms}   0.324   0.345     41.5  {speed}
3 timed run(s) after 3 warm-up run(s), forward only, inference mode; speed
= first row's median / this row's median.
{bar}
```
<!-- /output -->
"""


def test_a_machine_block_is_compared_without_the_widths_its_numbers_cause():
    """Bug caught: --check masked numbers but not widths, so on a busy machine bench's speed
    column went from 6.59x to 12.92x, its rule got one character longer and the README's own
    test failed. Timing numbers, the rules and bars they size and the spaces they move are masked;
    the words are not."""
    update = _update_readme()
    calm = BENCH_BLOCK.format(torch_ms="0.340", speed="6.59x", bar="t=0 ####   1.0e-03")
    busy = BENCH_BLOCK.format(torch_ms="0.1735", speed="12.92x", bar="t=0 ##### 1.25e-03").replace(
        "-" * 74, "-" * 75).replace("  speed\n", "   speed\n")
    assert update.masked(busy) == update.masked(calm)
    # what is not a timing still counts: a word, a line, a plain block's digits
    assert update.masked(busy.replace("inference mode", "training mode")) != update.masked(calm)
    assert update.masked(calm.replace("machine: ", ": ")) != update.masked(calm.replace("machine: ", ": ").replace("6.59x", "6.60x"))
