"""onnx's --save, its progress line on a terminal, and -h's examples and groups (issue 21).

Expected values come from onnxruntime run again on the saved model and inputs, and from
the commands' own docstrings (the help text must carry them whole)."""

from __future__ import annotations

import os
import re
import pty
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "80", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None, "NO_COLOR": None}
COMMANDS = ("manual", "torch", "compare", "bench", "inspect", "onnx")


def test_onnx_save_keeps_inputs_and_both_outputs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    npz, model = tmp_path / "run.npz", tmp_path / "m.onnx"
    args = ["onnx", "--cell", "lstm", "--bidirectional", "--h0", "random", "--save", str(npz), "--save-onnx", str(model)]
    res = runner.invoke(app, args, env=ENV)
    assert res.exit_code == 0, (res.stderr, res.exception)
    z = np.load(npz, allow_pickle=False)
    assert z["input"].shape == (10, 1, 5) and z["h_0"].shape == z["c_0"].shape == (2, 1, 8)
    assert np.abs(z["h_0"]).max() > 0  # --h0 random: the state the run really got
    session = ort.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    feeds = {i.name: z[i.name] for i in session.get_inputs()}
    again = dict(zip((o.name for o in session.get_outputs()), session.run(None, feeds)))
    for name in ("output", "h_n", "c_n"):
        np.testing.assert_array_equal(z[f"onnxruntime_{name}"], again[name])  # what onnxruntime gave on these inputs
        np.testing.assert_allclose(z[f"torch_{name}"], again[name], atol=1e-5, rtol=1e-5)


def _run_on_pty(args: list[str]) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "rnn_cli", *args], stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                         env={**os.environ, "TERM": "xterm", "COLUMNS": "80"})
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    p.stdout.read()
    return p.wait(), err


def test_onnx_shows_a_transient_progress_line_only_on_a_terminal():
    pytest.importorskip("onnxruntime")
    code, err = _run_on_pty(["onnx", "--cell", "gru"])
    assert code == 0
    assert b"rnn-cli onnx: exporting" in err and b"onnxruntime" in err
    assert err.rstrip(b"\r\n").endswith(b"\x1b[2K")  # the line is cleared at the end
    piped = subprocess.run([sys.executable, "-m", "rnn_cli", "onnx", "--cell", "gru"], capture_output=True, timeout=300)
    assert piped.returncode == 0 and piped.stderr == b""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_ends_with_examples_of_itself(command):
    out = runner.invoke(app, [command, "-h"], env=ENV).stdout
    tail = out.split("Examples:\n", 1)[1].splitlines()
    assert tail and all(line.startswith(f"  rnn-cli {command} ") for line in tail), tail
    assert "Other:\n  CHECKPOINT" not in out


def test_inspect_help_puts_its_arguments_in_a_group_of_their_own():
    out = runner.invoke(app, ["inspect", "-h"], env=ENV).stdout
    section = out.split("Arguments:\n", 1)[1].split("\n\n", 1)[0]
    assert "CHECKPOINT " in section and "[CHECKPOINT2]" in section and "--help" not in section


def test_top_level_help_lists_whole_descriptions_at_80_columns():
    out = runner.invoke(app, ["-h"], env=ENV).stdout
    listing = " ".join(out.split("Commands:\n", 1)[1].split())
    assert "..." not in listing
    for name in COMMANDS:
        command = app.registered_commands[[c.name for c in app.registered_commands].index(name)]
        assert " ".join(command.help.split()) in listing, name


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_proj_size_refusal_states_w_as_the_graph_has_it(layers, bidirectional):
    """Bug: the refusal said `W (), not 3` where the graph gives W no shape information."""
    pytest.importorskip("onnxruntime")
    from rnn_cli.formats import onnx_export
    from rnn_cli.core.config import RunConfig
    from rnn_cli.errors import RnnCliError
    from rnn_cli.core.sample import draw

    cfg = RunConfig(cell="lstm", proj_size=3, num_layers=layers, bidirectional=bidirectional)
    with pytest.raises(RnnCliError) as err:
        onnx_export.export(cfg, draw(cfg), "dynamo")
    message = str(err.value)
    assert "W ()" not in message
    if layers == 1:  # dynamo's truncated W: (D, 4 * proj_size, H_in), ONNX's LSTM layout
        assert f"W ({cfg.D}, {4 * cfg.proj_size}, {cfg.input_size})" in message
    else:
        assert re.search(r"W (\(\d+, \d+, \d+\)|of a shape the graph does not state)", message), message
