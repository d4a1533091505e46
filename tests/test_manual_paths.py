"""manual computes sigmoid and tanh two ways: one np.tanh call for small arrays, exp forms
for arrays above manual.SMALL elements. Both must agree with torch, whatever the size."""

import numpy as np
import pytest

from rnn_cli import manual, torch_run
from rnn_cli.config import RunConfig

CASES = {
    "rnn_bidirectional_packed": dict(cell="rnn", nonlinearity="tanh", bidirectional=True, lengths=(6, 3, 1)),
    "lstm_two_layers": dict(cell="lstm", nonlinearity=None, num_layers=2, h0="random"),
    "lstm_proj_packed": dict(cell="lstm", nonlinearity=None, proj_size=3, bidirectional=True, lengths=(2, 6, 4)),
    "gru_random_h0": dict(cell="gru", nonlinearity=None, h0="random", num_layers=2, bidirectional=True),
}


def agree(cfg: RunConfig) -> float:
    m, t = manual.run(cfg, keep_layers=False), torch_run.run(cfg, keep_layers=False)
    worst = 0.0
    for name in ("output", "h_n", "c_n"):
        if name in m.tensors:
            assert m.tensors[name].shape == t.tensors[name].shape
            worst = max(worst, float(np.max(np.abs(m.tensors[name] - t.tensors[name]))))
    return worst


@pytest.mark.parametrize("path", ["exp_forms", "np_tanh"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_paths_agree_with_torch(monkeypatch, case, path):
    monkeypatch.setattr(manual, "SMALL", 0 if path == "exp_forms" else 10**12)
    cfg = RunConfig(seq_len=6, batch=3, hidden_size=8, dtype="float64", **CASES[case])
    assert agree(cfg) < 1e-10


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_size_above_the_threshold_agrees_with_torch(cell):
    cfg = RunConfig(
        cell=cell, seq_len=5, batch=4, hidden_size=600,
        input_size=16, dtype="float64", h0="random",
    )
    assert cfg.N * cfg.gates * cfg.hidden_size > manual.SMALL  # really on the exp path
    assert agree(cfg) < 1e-10


@pytest.mark.parametrize("z", [-1e4, -60.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 60.0, 1e4])
def test_exp_forms_reach_the_limits_without_nan(monkeypatch, z):
    monkeypatch.setattr(manual, "SMALL", 0)
    a = np.full(4, z)
    with np.errstate(over="ignore"):
        t, s = manual.tanh_(a.copy()), manual.sigmoid_(a.copy())
    assert np.allclose(t, np.tanh(z), rtol=0, atol=1e-15)
    assert np.allclose(s, 0.5 * (1 + np.tanh(z / 2)), rtol=0, atol=1e-15)
