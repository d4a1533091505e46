"""compare --grad's tolerance per gradient (issue 21): it grows with the terms summed into
each gradient, so float32 rounding of long sums passes, and a wrong derivative still fails.

Expected tolerances are worked out here from the rule's formula (forward tolerance x
sqrt(terms)); the measurement behind the rule: benchmarks/GRAD_TOLERANCE.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_cli.core import backward
from rnn_cli.core import compare
from rnn_cli import documents
from rnn_cli.core.config import RunConfig
from rnn_cli.core.tolerance import Tolerance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def wrong_tanh_grad(y: np.ndarray) -> np.ndarray:
    return 1.0 - y  # d tanh(a)/da is 1 - y^2


def grad_checks(cmp) -> dict:
    return {c.name: c for c in cmp.checks if c.name.startswith("grad_")}


def test_issue_example_passes_at_float32():
    """rnn-cli compare --grad --cell rnn --batch 64 --seq-len 200 --hidden-size 128: float32
    rounding of 12800-term sums failed a tolerance made for one step."""
    cfg = RunConfig(cell="rnn", batch=64, seq_len=200, hidden_size=128)
    cmp = compare.run(cfg, grad="sum")
    assert cmp.ok, [(c.name, c.margin) for c in cmp.checks if not c.ok]
    checks = grad_checks(cmp)
    assert checks["grad_weight_ih_l0"].tolerance.atol == pytest.approx(1e-5 * math.sqrt(200 * 64))
    assert checks["grad_input"].tolerance.rtol == pytest.approx(1e-5 * math.sqrt(200))
    assert cmp.checks[0].tolerance == Tolerance(1e-5, 1e-5, "float32, CPU")  # the forward keeps its own


CASES = {
    "rnn": RunConfig(cell="rnn", batch=16, seq_len=40, hidden_size=32),
    "lstm_bidirectional": RunConfig(cell="lstm", batch=8, seq_len=30, hidden_size=16, bidirectional=True),
    "gru_packed": RunConfig(cell="gru", batch=3, seq_len=20, hidden_size=16, lengths=(20, 11, 4)),
}


@pytest.mark.parametrize("cfg", CASES.values(), ids=CASES.keys())
def test_a_planted_wrong_tanh_derivative_fails_where_the_right_one_passes(cfg, monkeypatch):
    assert compare.run(cfg, grad="sum").ok
    monkeypatch.setattr(backward, "tanh_grad", wrong_tanh_grad)
    cmp = compare.run(cfg, grad="sum")
    assert not cmp.ok
    assert all(c.ok for c in cmp.checks if not c.name.startswith("grad_"))  # the forward is untouched
    assert not grad_checks(cmp)["grad_weight_hh_l0"].ok


def test_terms_per_gradient_follow_the_sizes():
    base = Tolerance(1e-5, 1e-5, "float32, CPU")
    plain = RunConfig(seq_len=7, batch=5)
    packed = RunConfig(seq_len=9, batch=3, lengths=(9, 4, 2), cell="lstm")
    for cfg, name, terms in [
        (plain, "weight_hh_l0", 35), (plain, "bias_ih_l0", 35), (plain, "input", 7), (plain, "h_0", 7),
        (packed, "weight_ih_l0", 15), (packed, "c_0", 9),
    ]:
        tol = compare.grad_tolerance(cfg, name, base)
        assert (tol.atol, tol.rtol) == pytest.approx((1e-5 * math.sqrt(terms), 1e-5 * math.sqrt(terms))), name


def test_overrides_reach_the_gradients_and_json_states_each_tolerance():
    cfg = RunConfig(cell="gru", batch=4, seq_len=9)
    cmp = compare.run(cfg, grad="sum", atol=0.5)
    for c in grad_checks(cmp).values():
        assert c.tolerance.atol == 0.5  # --atol as given
    weight = grad_checks(cmp)["grad_weight_ih_l0"].tolerance
    assert weight.rtol == pytest.approx(1e-5 * 6)  # the default rtol, x sqrt(9 * 4)
    doc = {r["tensor"]: r for r in documents.compare_document(compare.run(cfg, grad="sum"), False)["results"]}
    assert doc["grad_weight_ih_l0"]["atol"] == pytest.approx(1e-5 * 6)
    assert doc["grad_input"]["rtol"] == pytest.approx(1e-5 * 3)
    assert doc["output"]["atol"] == 1e-5


def test_on_cuda_an_unmeasured_forward_tolerance_is_not_multiplied():
    """The rule is measured on the CPU: a cuDNN forward tolerance (TF32: 5e-3) is not multiplied
    by sqrt(terms) (that would be 0.57 at L*N = 12800, wide enough to hide a wrong derivative)."""
    cfg = RunConfig(batch=64, seq_len=50)
    tf32 = Tolerance(5e-3, 5e-3, "float32, cuDNN with TF32")
    assert compare.grad_tolerance(cfg, "weight_ih_l0", tf32) == tf32
    plain = Tolerance(1e-4, 1e-4, "float32, cuDNN without TF32")
    assert compare.grad_tolerance(cfg, "weight_ih_l0", plain).atol == pytest.approx(1e-5 * math.sqrt(50 * 64))
    assert compare.grad_tolerance(cfg, "input", plain) == plain  # 1e-5 * sqrt(50) < 1e-4
