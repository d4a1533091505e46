"""rnn_cli.inputs: what to run (a Request) -> RunConfig and Sample, with no CLI in between.

Expected values come from torch's own modules run on the same files, and from the README's
defaults written out here."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from rnn_cli import inputs
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Provenance
from rnn_cli.errors import RnnCliError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The whole path from files to a result, driven as a script would drive it: rnn_cli.inputs and
# the core only. It prints the run's output, h_n and c_n, and whether anything of rnn_cli.cli
# was imported on the way.
DRIVE = r"""
import json, sys
import numpy as np
from rnn_cli import inputs
from rnn_cli.core import runs
request = inputs.Request(params=sys.argv[1] + ":lstm", input=sys.argv[2], h0=sys.argv[3], c0=sys.argv[4], batch_first=True)
prepared = inputs.prepare(request)
result = runs.run("manual", prepared.cfg, prepared.drawn(), keep_layers=False)
out = {k: result.tensors[k].tolist() for k in ("output", "h_n", "c_n")}
out["cli"] = sorted(m for m in sys.modules if m.startswith("rnn_cli.cli"))
print(json.dumps(out))
"""


def _lstm_files(tmp_path):
    torch.manual_seed(3)
    holder = nn.Module()
    holder.lstm = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True).double().eval()
    x = torch.randn(3, 5, 4, dtype=torch.float64)  # (N, L, H_in): batch_first
    h_0, c_0 = torch.randn(4, 3, 6, dtype=torch.float64), torch.randn(4, 3, 6, dtype=torch.float64)
    torch.save(holder.state_dict(), tmp_path / "model.pt")
    for name, t in (("x", x), ("h0", h_0), ("c0", c_0)):
        np.save(tmp_path / f"{name}.npy", t.numpy())
    with torch.no_grad():
        want = holder.lstm(x, (h_0, c_0))
    return [str(tmp_path / n) for n in ("model.pt", "x.npy", "h0.npy", "c0.npy")], want


def test_the_core_runs_a_checkpoint_on_the_users_files_without_the_cli(tmp_path):
    """Bug: loading --params/--input/--h0/--c0 only inside a CLI flag class (Network.prepare),
    so no script or test can run a checkpoint on its own input without building typer flags;
    or rnn_cli.inputs importing rnn_cli.cli to get there. A child process, so that no other test
    has imported the CLI already."""
    paths, (want, (h_n, c_n)) = _lstm_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", DRIVE, *paths], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    got = json.loads(r.stdout)
    assert got["cli"] == []
    np.testing.assert_allclose(got["output"], want.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got["h_n"], h_n.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got["c_n"], c_n.numpy(), rtol=1e-10, atol=1e-10)


def test_the_sample_says_where_its_numbers_came_from(tmp_path):
    """Bug: a run on the user's files reported as seeded (or the reverse): provenance kept
    apart from the numbers it describes. Files for weights, input and states; then a draw."""
    (model, x, h0, c0), _ = _lstm_files(tmp_path)
    prepared = inputs.prepare(inputs.Request(params=model + ":lstm", input=x, h0=h0, c0=c0, batch_first=True))
    assert prepared.sample.provenance == Provenance(weights=model + ":lstm", input="file", h_0="file")
    assert not prepared.sample.provenance.drawn
    seeded = inputs.prepare(inputs.Request(cell="lstm", h0="random"))
    assert seeded.sample is None  # drawn when the run starts, after the memory guard
    assert seeded.drawn().provenance == Provenance(weights="seed", input="seed", h_0="random")
    only_input = inputs.prepare(inputs.Request(input=x, batch_first=True))
    assert only_input.sample.provenance == Provenance(weights="seed", input="file", h_0="zeros")
    assert only_input.cfg.input_size == 4 and (only_input.cfg.seq_len, only_input.cfg.batch) == (5, 3)


def test_a_request_with_nothing_given_is_the_readmes_default_network():
    """Bug: a default moved (or lost) when the defaults left the CLI's flag class: the README
    says rnn, H_in 5, H_cell 8, one layer, L 10, N 1, float32, tanh, seed 0."""
    cfg = inputs.prepare(inputs.Request()).cfg
    assert cfg == RunConfig(cell="rnn", input_size=5, hidden_size=8, num_layers=1, seq_len=10, batch=1,
                            dtype="float32", nonlinearity="tanh", seed=0)
    assert inputs.prepare(inputs.Request(lengths=(4, 2, 3))).cfg.seq_len == 4  # max(lengths)
    assert inputs.prepare(inputs.Request(lengths=(4, 2, 3))).cfg.batch == 3  # one per length


def test_what_reading_a_file_noticed_comes_back_as_data(tmp_path, capsys):
    """Bug: the note on renamed weights written to stderr from below the edge (or lost): it is
    the CLI's to print. Weights under other names (enc_w_ih, ...), mapped by their shapes."""
    cell = nn.GRUCell(3, 5)
    np.savez(tmp_path / "port.npz", **{f"enc_{k.replace('weight', 'w').replace('bias', 'b')}": v.detach().numpy()
                                       for k, v in cell.state_dict().items()})
    prepared = inputs.prepare(inputs.Request(params=str(tmp_path / "port.npz"), seq_len=2))
    (note,) = prepared.notes
    assert note.startswith("--params: enc is renamed weights") and "enc_w_ih -> weight_ih" in note
    assert capsys.readouterr().err == ""
    assert (prepared.cfg.cell, prepared.cfg.input_size, prepared.cfg.hidden_size) == ("gru", 3, 5)


def test_a_request_that_contradicts_the_checkpoint_is_refused_naming_both(tmp_path):
    """Bug: a given field silently overridden by the checkpoint's (or the reverse)."""
    (model, *_), _ = _lstm_files(tmp_path)
    with pytest.raises(RnnCliError, match=r"^--hidden-size 7 but lstm in model\.pt has hidden_size 6$"):
        inputs.prepare(inputs.Request(params=model, hidden_size=7))
    with pytest.raises(RnnCliError, match=r"^--nonlinearity applies to nn\.RNN only"):
        inputs.prepare(inputs.Request(params=model, nonlinearity="relu"))
