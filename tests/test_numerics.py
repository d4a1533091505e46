"""Numbers: the numpy memory cells against torch, and both against hand calculations.

- The matrix: manual vs torch on the same seeded sample, float64 within 1e-10, and torch
  float32 against the float64 manual reference (compare.run) within 1e-5.
- Hand-computable cases, one or more per cell: small sizes, chosen weights, expected
  numbers worked out here from the equations in PyTorch's docs with math.tanh and a
  scalar sigmoid, never by calling either implementation. The LSTM and GRU cases give
  every gate its own weights, and a companion test proves that any other gate order
  would give different numbers, so a swapped order cannot pass.
- Packed sequences: h_n against the output at each sequence's own last step, zeros past
  each length, and each sequence against a run of that sequence alone.
- sources.h_n_sources: its claims hold on both implementations, and it reports a
  corrupted result.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from rnn_cli.core import compare
from rnn_cli.core import manual
from rnn_cli.core import torch_run
from rnn_cli.core.config import RunConfig
from rnn_cli.core.result import RunResult
from rnn_cli.core.sources import h_n_sources
from rnn_cli.core.sample import Sample, draw

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

F64_TOL = 1e-10
F32_TOL = 1e-5
HAND_TOL = 1e-12


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# ---- the matrix ------------------------------------------------------------------------------

VARIANTS = {  # id -> RunConfig fields
    "rnn_tanh": dict(cell="rnn", nonlinearity="tanh"),
    "rnn_relu": dict(cell="rnn", nonlinearity="relu"),
    "lstm": dict(cell="lstm", nonlinearity=None),
    "lstm_proj": dict(cell="lstm", nonlinearity=None, proj_size=2),
    "gru": dict(cell="gru", nonlinearity=None),
}
INPUTS = {  # id -> (batch, batch_first, lengths); seq_len is 5
    "time_major": (3, False, None),
    "batch_first": (3, True, None),
    "unbatched": (None, False, None),
    "packed_sorted": (3, False, (5, 3, 2)),
    "packed_unsorted": (3, True, (2, 4, 3)),  # batch_first; max(lengths) < seq_len: padded back by total_length
    "packed_all_ones": (3, False, (1, 1, 1)),
}
STARTS = {  # id -> (h0, bias)
    "h0_zeros": ("zeros", True),
    "h0_random": ("random", True),
    "h0_random_no_bias": ("random", False),
}


def matrix_cfg(variant, layers, bidir, inputs, start, dtype) -> RunConfig:
    batch, batch_first, lengths = INPUTS[inputs]
    h0, bias = STARTS[start]
    return RunConfig(
        **VARIANTS[variant],
        input_size=3,
        hidden_size=4,
        seq_len=5,
        num_layers=layers,
        bidirectional=bidir,
        batch=batch,
        batch_first=batch_first,
        lengths=lengths,
        h0=h0,
        bias=bias,
        dtype=dtype,
    )


def matrix(starts):
    return [
        pytest.param(
            v, layers, bidir, inputs, start,
            id=f"{v}-{layers}layers-{'bidirectional' if bidir else 'unidirectional'}-{inputs}-{start}",
        )
        for v, layers, bidir, inputs, start in itertools.product(VARIANTS, (1, 2), (False, True), INPUTS, starts)
    ]


def compared_names(cfg: RunConfig) -> list[str]:
    return ["output", "h_n"] + (["c_n"] if cfg.has_c else []) + (["batch_sizes"] if cfg.lengths else [])


@pytest.mark.parametrize("variant, layers, bidir, inputs, start", matrix(STARTS))
def test_float64_manual_matches_torch(variant, layers, bidir, inputs, start):
    cfg = matrix_cfg(variant, layers, bidir, inputs, start, "float64")
    got = torch_run.run(cfg, keep_layers=False)
    ref = manual.run(cfg, keep_layers=False)
    for name in ("input", "h_0"):  # the same start on both sides
        np.testing.assert_array_equal(got.tensors[name], ref.tensors[name], err_msg=name)
    for name in compared_names(cfg):
        assert got.tensors[name].shape == ref.tensors[name].shape, name
        np.testing.assert_allclose(got.tensors[name], ref.tensors[name], rtol=F64_TOL, atol=F64_TOL, err_msg=name)


@pytest.mark.parametrize("steps_per_block", [1, 2])
@pytest.mark.parametrize("variant, bidir, inputs", list(itertools.product(VARIANTS, (False, True), INPUTS)))
def test_float64_manual_in_blocks_of_steps_matches_torch(variant, bidir, inputs, steps_per_block, monkeypatch):
    """The matrix's sizes fit in one block of x_proj (manual.projected_steps): here the blocks
    hold 1 or 2 of the 5 steps (2, 2, 1: a short last block, met first by the backward
    direction). Catches a block whose rows are read for the wrong t (reversed or offset),
    a short block that reads stale buffer rows, a block computed once and not per step range."""
    cfg = matrix_cfg(variant, 2, bidir, inputs, "h0_random", "float64")
    step_bytes = (cfg.batch or 1) * cfg.gates * cfg.hidden_size * 8  # one step of x_proj, float64
    monkeypatch.setattr(manual, "BLOCK_BYTES", steps_per_block * step_bytes)
    got = torch_run.run(cfg, keep_layers=False)
    ref = manual.run(cfg, keep_layers=False)
    for name in compared_names(cfg):
        np.testing.assert_allclose(got.tensors[name], ref.tensors[name], rtol=F64_TOL, atol=F64_TOL, err_msg=name)


# float32 runs the matrix with random h_0 (and c_0) only: bias on/off and zero starts change
# nothing float32-specific, and torch's CPU float32 LSTM goes through oneDNN, whose set-up
# for each new shape costs up to ~1 s.
@pytest.mark.parametrize("variant, layers, bidir, inputs, start", matrix(["h0_random"]))
def test_float32_torch_matches_float64_reference(variant, layers, bidir, inputs, start):
    cfg = matrix_cfg(variant, layers, bidir, inputs, start, "float32")
    cmp = compare.run(cfg)
    assert [c.name for c in cmp.checks] == compared_names(cfg)
    assert (cmp.tolerance.atol, cmp.tolerance.rtol) == (F32_TOL, F32_TOL)
    assert cmp.ok, [c for c in cmp.checks if not c.ok]
    assert cmp.torch.tensors["output"].dtype == np.float32
    assert cmp.reference.tensors["output"].dtype == np.float64
    for name in compared_names(cfg):  # the same rule, checked here without check_tensor
        np.testing.assert_allclose(
            cmp.torch.tensors[name], cmp.reference.tensors[name], rtol=F32_TOL, atol=F32_TOL, err_msg=name
        )


# ---- hand-computable cases ---------------------------------------------------------------------


def sample_of(cfg: RunConfig, params: dict, x, h_0, c_0=None) -> Sample:
    """A Sample with chosen numbers, checked against torch's parameter names and shapes."""
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in params.items()}
    assert {n: a.shape for n, a in arrays.items()} == cfg.parameter_shapes()
    return Sample(
        params={name: arrays[name] for name in cfg.parameter_shapes()},
        x=np.asarray(x, dtype=np.float64),
        h_0=np.asarray(h_0, dtype=np.float64),
        c_0=None if c_0 is None else np.asarray(c_0, dtype=np.float64),
    )


def constant_params(cfg: RunConfig, value: float, reverse_value: float | None = None) -> dict:
    out = {}
    for name, shape in cfg.parameter_shapes().items():
        v = reverse_value if reverse_value is not None and name.endswith("_reverse") else value
        out[name] = np.full(shape, v)
    return out


def run_both(cfg: RunConfig, sample: Sample):
    return [manual.run(cfg, sample), torch_run.run(cfg, sample)]


def assert_result(result: RunResult, expected: dict[str, list]) -> None:
    for name, want in expected.items():
        np.testing.assert_allclose(
            result.tensors[name], np.asarray(want), rtol=0, atol=HAND_TOL, err_msg=f"{result.implementation}: {name}"
        )


def test_hand_rnn_constant_weights():
    """All weights and biases 0.1, H_in=2, hidden 3, two steps, h_0 = 0:
    h_t = tanh(0.1*sum(x_t) + 0.1 + 0.1 + 0.1*sum(h_{t-1}))."""
    cfg = RunConfig(input_size=2, hidden_size=3, seq_len=2, batch=1, dtype="float64")
    sample = sample_of(cfg, constant_params(cfg, 0.1), x=[[[1.0, 2.0]], [[0.5, -1.0]]], h_0=np.zeros((1, 1, 3)))
    h1 = math.tanh(0.1 * 3.0 + 0.2)  # tanh(0.5)
    h2 = math.tanh(0.1 * -0.5 + 0.2 + 0.1 * 3 * h1)
    for result in run_both(cfg, sample):
        assert_result(result, {"output": [[[h1] * 3], [[h2] * 3]], "h_n": [[[h2] * 3]]})


def test_hand_rnn_relu():
    """relu, not tanh: step 0's pre-activation is -0.2, so h_1 = 0 (tanh would give -0.197)."""
    cfg = RunConfig(input_size=2, hidden_size=3, seq_len=2, batch=1, nonlinearity="relu", dtype="float64")
    sample = sample_of(cfg, constant_params(cfg, 0.1), x=[[[-3.0, -1.0]], [[1.0, 2.0]]], h_0=np.zeros((1, 1, 3)))
    h1 = max(0.0, 0.1 * -4.0 + 0.2)  # 0
    h2 = max(0.0, 0.1 * 3.0 + 0.2 + 0.1 * 3 * h1)  # 0.5
    for result in run_both(cfg, sample):
        assert_result(result, {"output": [[[h1] * 3], [[h2] * 3]], "h_n": [[[h2] * 3]]})


def test_hand_rnn_weight_hh_orientation():
    """h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T) with a non-symmetric W_hh, no bias:
    h_1 = (tanh 1, 0); h_2 = tanh(W_hh h_1) = (tanh(0.5 tanh 1), tanh(2 tanh 1)).
    Using W_hh instead of W_hh^T would give tanh(-0.25 tanh 1) in unit 1."""
    cfg = RunConfig(input_size=1, hidden_size=2, seq_len=2, batch=1, bias=False, dtype="float64")
    params = {"weight_ih_l0": [[1.0], [0.0]], "weight_hh_l0": [[0.5, -0.25], [2.0, 1.0]]}
    sample = sample_of(cfg, params, x=[[[1.0]], [[0.0]]], h_0=np.zeros((1, 1, 2)))
    t1 = math.tanh(1.0)
    h2 = [math.tanh(0.5 * t1), math.tanh(2.0 * t1)]
    for result in run_both(cfg, sample):
        assert_result(result, {"output": [[[t1, 0.0]], [h2]], "h_n": [[h2]]})


def test_hand_rnn_bidirectional():
    """Forward weights 0.1, backward weights 0.2 (so mixing up the directions fails).
    The backward direction runs t = 1 then t = 0; output[t] = [forward_t, backward_t];
    h_n = [forward at t=1, backward at t=0]."""
    cfg = RunConfig(input_size=2, hidden_size=3, seq_len=2, batch=1, bidirectional=True, dtype="float64")
    params = constant_params(cfg, 0.1, reverse_value=0.2)
    sample = sample_of(cfg, params, x=[[[1.0, 2.0]], [[0.5, -1.0]]], h_0=np.zeros((2, 1, 3)))
    s0, s1 = 3.0, -0.5  # sum(x_t)
    f0 = math.tanh(0.1 * s0 + 0.2)
    f1 = math.tanh(0.1 * s1 + 0.2 + 0.1 * 3 * f0)
    b1 = math.tanh(0.2 * s1 + 0.4)
    b0 = math.tanh(0.2 * s0 + 0.4 + 0.2 * 3 * b1)
    for result in run_both(cfg, sample):
        assert_result(
            result,
            {"output": [[[f0] * 3 + [b0] * 3], [[f1] * 3 + [b1] * 3]], "h_n": [[[f1] * 3], [[b0] * 3]]},
        )


def test_hand_rnn_two_layers_bidirectional():
    """Hidden 1, one constant per layer and direction (0.1, 0.2 | 0.3, 0.4): layer 1 reads
    [forward_t, backward_t] of layer 0; h_n is ordered layer*D + direction:
    [layer 0 forward at t=1, layer 0 backward at t=0, layer 1 forward at t=1, layer 1 backward at t=0]."""
    cfg = RunConfig(input_size=1, hidden_size=1, seq_len=2, batch=1, num_layers=2, bidirectional=True, dtype="float64")
    value = {"l0": 0.1, "l0_reverse": 0.2, "l1": 0.3, "l1_reverse": 0.4}
    params = {n: np.full(s, value[n.split("_", 2)[2]]) for n, s in cfg.parameter_shapes().items()}
    sample = sample_of(cfg, params, x=[[[1.0]], [[2.0]]], h_0=np.zeros((4, 1, 1)))
    x0, x1 = 1.0, 2.0
    f00 = math.tanh(0.1 * x0 + 0.2)  # layer 0 forward, t = 0
    f01 = math.tanh(0.1 * x1 + 0.2 + 0.1 * f00)
    b01 = math.tanh(0.2 * x1 + 0.4)  # layer 0 backward starts at t = 1
    b00 = math.tanh(0.2 * x0 + 0.4 + 0.2 * b01)
    f10 = math.tanh(0.3 * (f00 + b00) + 0.6)  # layer 1 reads both directions of layer 0
    f11 = math.tanh(0.3 * (f01 + b01) + 0.6 + 0.3 * f10)
    b11 = math.tanh(0.4 * (f01 + b01) + 0.8)
    b10 = math.tanh(0.4 * (f00 + b00) + 0.8 + 0.4 * b11)
    for result in run_both(cfg, sample):
        assert_result(
            result,
            {"output": [[[f10, b10]], [[f11, b11]]], "h_n": [[[f01]], [[b00]], [[f11]], [[b10]]]},
        )


# LSTM, hidden 1, input 1: each gate block is one row with its own numbers. PyTorch's docs:
#   i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     f = sigmoid(W_if x + b_if + W_hf h + b_hf)
#   g = tanh(W_ig x + b_ig + W_hg h + b_hg)        o = sigmoid(W_io x + b_io + W_ho h + b_ho)
#   c' = f*c + i*g                                   h' = o*tanh(c')
LSTM_GATES = ("i", "f", "g", "o")
LSTM_BLOCKS = {  # per gate: (W_i*, W_h*, b_i*, b_h*)
    "i": (0.5, 0.1, 0.05, 0.01),
    "f": (-0.3, 0.2, 0.1, -0.02),
    "g": (0.8, -0.4, -0.05, 0.03),
    "o": (1.2, 0.3, 0.2, 0.04),
}
LSTM_X, LSTM_H0, LSTM_C0 = (1.0, -0.5), 0.3, -0.6


def lstm_by_hand(blocks: dict) -> tuple[list[float], float, float]:
    """Two steps of the docs' equations on scalars: ([h_1, h_2], h_n, c_n)."""
    h, c, hs = LSTM_H0, LSTM_C0, []
    for x in LSTM_X:
        a = {k: w_i * x + b_i + w_h * h + b_h for k, (w_i, w_h, b_i, b_h) in blocks.items()}
        i, f, g, o = sigmoid(a["i"]), sigmoid(a["f"]), math.tanh(a["g"]), sigmoid(a["o"])
        c = f * c + i * g
        h = o * math.tanh(c)
        hs.append(h)
    return hs, h, c


def test_hand_lstm_gate_order_i_f_g_o():
    cfg = RunConfig(cell="lstm", nonlinearity=None, input_size=1, hidden_size=1, seq_len=2, batch=1, h0="random", dtype="float64")
    column = lambda j: [[LSTM_BLOCKS[k][j]] for k in LSTM_GATES]  # noqa: E731  rows stacked i, f, g, o
    params = {
        "weight_ih_l0": column(0),
        "weight_hh_l0": column(1),
        "bias_ih_l0": [LSTM_BLOCKS[k][2] for k in LSTM_GATES],
        "bias_hh_l0": [LSTM_BLOCKS[k][3] for k in LSTM_GATES],
    }
    sample = sample_of(cfg, params, x=[[[LSTM_X[0]]], [[LSTM_X[1]]]], h_0=[[[LSTM_H0]]], c_0=[[[LSTM_C0]]])
    hs, h_n, c_n = lstm_by_hand(LSTM_BLOCKS)
    for result in run_both(cfg, sample):
        assert_result(result, {"output": [[[hs[0]]], [[hs[1]]]], "h_n": [[[h_n]]], "c_n": [[[c_n]]]})


@pytest.mark.parametrize(
    "order",
    [pytest.param(p, id="".join(p)) for p in itertools.permutations(LSTM_GATES) if p != LSTM_GATES],
)
def test_hand_lstm_case_rejects_every_other_gate_order(order):
    """An implementation that read the stacked blocks in `order` would see gate order[j]
    get the numbers of block j; its result must differ from the expected one, so the
    hand case above cannot pass with a swapped gate order."""
    misread = {order[j]: LSTM_BLOCKS[LSTM_GATES[j]] for j in range(4)}
    (_, right_h, right_c), (_, wrong_h, wrong_c) = lstm_by_hand(LSTM_BLOCKS), lstm_by_hand(misread)
    assert max(abs(right_h - wrong_h), abs(right_c - wrong_c)) > 1e-3


def test_hand_lstm_proj():
    """proj_size 1, hidden 2: each unit j has its own gate rows (block k, row k*2 + j);
    h' = W_hr (o * tanh(c')), a scalar fed back through weight_hh of shape (8, 1); c keeps 2 units."""
    cfg = RunConfig(
        cell="lstm", nonlinearity=None, input_size=1, hidden_size=2, proj_size=1, seq_len=2, batch=1, h0="random", dtype="float64"
    )
    w_i = [0.3, -0.2, 0.5, 0.1, 0.7, -0.6, 0.2, 0.4]  # rows i0 i1 f0 f1 g0 g1 o0 o1
    w_h = [0.1, 0.2, -0.3, 0.4, 0.5, -0.1, 0.2, 0.3]
    b_i = [0.05, -0.05, 0.1, 0.0, -0.1, 0.2, 0.0, 0.1]
    b_h = [0.02, 0.01, -0.03, 0.04, 0.0, 0.05, -0.01, 0.02]
    w_r = [0.6, -0.9]
    params = {
        "weight_ih_l0": [[v] for v in w_i],
        "weight_hh_l0": [[v] for v in w_h],
        "bias_ih_l0": b_i,
        "bias_hh_l0": b_h,
        "weight_hr_l0": [w_r],
    }
    xs, h, c = (1.0, -0.5), 0.2, [0.5, -0.4]
    hs = []
    for x in xs:
        a = [[w_i[k * 2 + j] * x + b_i[k * 2 + j] + w_h[k * 2 + j] * h + b_h[k * 2 + j] for j in (0, 1)] for k in range(4)]
        i = [sigmoid(v) for v in a[0]]
        f = [sigmoid(v) for v in a[1]]
        g = [math.tanh(v) for v in a[2]]
        o = [sigmoid(v) for v in a[3]]
        c = [f[j] * c[j] + i[j] * g[j] for j in (0, 1)]
        h_cell = [o[j] * math.tanh(c[j]) for j in (0, 1)]
        h = w_r[0] * h_cell[0] + w_r[1] * h_cell[1]
        hs.append(h)
    sample = sample_of(cfg, params, x=[[[xs[0]]], [[xs[1]]]], h_0=[[[0.2]]], c_0=[[[0.5, -0.4]]])
    for result in run_both(cfg, sample):
        assert_result(result, {"output": [[[hs[0]]], [[hs[1]]]], "h_n": [[[hs[1]]]], "c_n": [[c]]})


# GRU, hidden 1, input 1. PyTorch's docs:
#   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
#   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h
GRU_GATES = ("r", "z", "n")
GRU_BLOCKS = {  # per gate: (W_i*, W_h*, b_i*, b_h*); b_hn != 0 so its place inside r*(...) matters
    "r": (0.6, 0.3, 0.1, -0.1),
    "z": (-0.4, 0.5, -0.2, 0.15),
    "n": (0.9, -0.7, 0.05, 0.25),
}
GRU_X, GRU_H0 = (1.0, -0.5), 0.4


def gru_by_hand(blocks: dict) -> tuple[list[float], float]:
    h, hs = GRU_H0, []
    for x in GRU_X:
        (wir, whr, bir, bhr), (wiz, whz, biz, bhz), (win, whn, bin_, bhn) = blocks["r"], blocks["z"], blocks["n"]
        r = sigmoid(wir * x + bir + whr * h + bhr)
        z = sigmoid(wiz * x + biz + whz * h + bhz)
        n = math.tanh(win * x + bin_ + r * (whn * h + bhn))
        h = (1 - z) * n + z * h
        hs.append(h)
    return hs, h


def test_hand_gru_gate_order_r_z_n():
    cfg = RunConfig(cell="gru", nonlinearity=None, input_size=1, hidden_size=1, seq_len=2, batch=1, h0="random", dtype="float64")
    params = {
        "weight_ih_l0": [[GRU_BLOCKS[k][0]] for k in GRU_GATES],
        "weight_hh_l0": [[GRU_BLOCKS[k][1]] for k in GRU_GATES],
        "bias_ih_l0": [GRU_BLOCKS[k][2] for k in GRU_GATES],
        "bias_hh_l0": [GRU_BLOCKS[k][3] for k in GRU_GATES],
    }
    sample = sample_of(cfg, params, x=[[[GRU_X[0]]], [[GRU_X[1]]]], h_0=[[[GRU_H0]]])
    hs, h_n = gru_by_hand(GRU_BLOCKS)
    for result in run_both(cfg, sample):
        assert_result(result, {"output": [[[hs[0]]], [[hs[1]]]], "h_n": [[[h_n]]]})


@pytest.mark.parametrize(
    "order",
    [pytest.param(p, id="".join(p)) for p in itertools.permutations(GRU_GATES) if p != GRU_GATES],
)
def test_hand_gru_case_rejects_every_other_gate_order(order):
    misread = {order[j]: GRU_BLOCKS[GRU_GATES[j]] for j in range(3)}
    assert abs(gru_by_hand(GRU_BLOCKS)[1] - gru_by_hand(misread)[1]) > 1e-3


def test_hand_gru_b_hn_sits_inside_r():
    """The GRU case above also fails if b_hn were added outside r * (...), as in the
    original GRU paper's variant: the two formulas differ by (1 - r) * b_hn inside tanh."""
    (wir, whr, bir, bhr), _, (win, whn, bin_, bhn) = GRU_BLOCKS["r"], GRU_BLOCKS["z"], GRU_BLOCKS["n"]
    x, h = GRU_X[0], GRU_H0
    r = sigmoid(wir * x + bir + whr * h + bhr)
    inside = math.tanh(win * x + bin_ + r * (whn * h + bhn))
    outside = math.tanh(win * x + bin_ + bhn + r * whn * h)
    assert abs(inside - outside) > 1e-3


# ---- packed sequences: semantics -------------------------------------------------------------

PACKED_VARIANTS = ("rnn_tanh", "lstm", "lstm_proj", "gru")
PACKED_LENGTHS = {"packed_sorted": (5, 3, 2), "packed_unsorted": (2, 5, 3), "packed_all_ones": (1, 1, 1)}


def packed_cfg(variant, batch_first, lengths_id) -> RunConfig:
    return RunConfig(
        **VARIANTS[variant],
        input_size=3,
        hidden_size=4,
        seq_len=5,
        num_layers=2,
        bidirectional=True,
        batch=3,
        batch_first=batch_first,
        lengths=PACKED_LENGTHS[lengths_id],
        h0="random",
        dtype="float64",
    )


def time_major(cfg: RunConfig, a: np.ndarray) -> np.ndarray:
    return a.transpose(1, 0, 2) if cfg.batch_first else a


PACKED_MATRIX = [
    pytest.param(v, bf, lid, id=f"{v}-{'batch_first' if bf else 'time_major'}-{lid}")
    for v, bf, lid in itertools.product(PACKED_VARIANTS, (False, True), PACKED_LENGTHS)
]


@pytest.mark.parametrize("variant, batch_first, lengths_id", PACKED_MATRIX)
def test_packed_h_n_and_padding(variant, batch_first, lengths_id):
    """Last layer: h_n forward = output at t = length-1, first H_out features;
    h_n backward = output at t = 0, last H_out features; output is zero past each length."""
    cfg = packed_cfg(variant, batch_first, lengths_id)
    H, last = cfg.H_out, 2 * (cfg.num_layers - 1)  # h_n index of the last layer's forward direction
    for result in (manual.run(cfg, keep_layers=False), torch_run.run(cfg, keep_layers=False)):
        out = time_major(cfg, result.tensors["output"])  # (L, N, 2*H_out)
        h_n = result.tensors["h_n"]
        for n, length in enumerate(cfg.lengths):
            what = f"{result.implementation}, n={n}"
            np.testing.assert_allclose(h_n[last, n], out[length - 1, n, :H], rtol=0, atol=1e-14, err_msg=f"{what}: forward")
            np.testing.assert_allclose(h_n[last + 1, n], out[0, n, H:], rtol=0, atol=1e-14, err_msg=f"{what}: backward")
            assert np.all(out[length:, n] == 0), f"{result.implementation}: output past length {length} of n={n}"
            assert np.all(out[:length, n] != 0), f"{result.implementation}: real steps of n={n} are not padding"


@pytest.mark.parametrize("variant, batch_first, lengths_id", PACKED_MATRIX)
def test_packed_sequence_equals_that_sequence_alone(variant, batch_first, lengths_id):
    """Sequence n of a packed batch gives what the same sequence, cut to its length and run
    alone (batch 1, seq_len = length, no packing), gives, in either implementation."""
    cfg = packed_cfg(variant, batch_first, lengths_id)
    sample = draw(cfg)
    packed = [impl.run(cfg, sample, keep_layers=False) for impl in (manual, torch_run)]
    for n, length in enumerate(cfg.lengths):
        alone_cfg = replace(cfg, batch=1, seq_len=length, lengths=None, batch_first=False)
        alone_sample = Sample(
            params=sample.params,
            x=sample.x[:length, n : n + 1],
            h_0=sample.h_0[:, n : n + 1],
            c_0=None if sample.c_0 is None else sample.c_0[:, n : n + 1],
        )
        alone = [impl.run(alone_cfg, alone_sample, keep_layers=False) for impl in (manual, torch_run)]
        for p, a in itertools.product(packed, alone):
            what = f"packed {p.implementation} vs alone {a.implementation}, n={n}"
            out = time_major(cfg, p.tensors["output"])
            np.testing.assert_allclose(out[:length, n], a.tensors["output"][:, 0], rtol=F64_TOL, atol=F64_TOL, err_msg=what)
            for state in ("h_n", "c_n") if cfg.has_c else ("h_n",):
                np.testing.assert_allclose(
                    p.tensors[state][:, n], a.tensors[state][:, 0], rtol=F64_TOL, atol=F64_TOL, err_msg=f"{what}: {state}"
                )


def test_hand_rnn_packed():
    """Hidden 1, weights 0.1, lengths (2, 1): sequence 1 stops after step 0, so its h_n is
    its step-0 state, its output at step 1 is 0, and its backward direction starts at t=0."""
    cfg = RunConfig(input_size=1, hidden_size=1, seq_len=2, batch=2, lengths=(2, 1), bidirectional=True, dtype="float64")
    x = [[[1.0], [3.0]], [[2.0], [0.0]]]  # (L, N, H_in); sequence 1's step 1 is padding
    sample = sample_of(cfg, constant_params(cfg, 0.1), x=x, h_0=np.zeros((2, 2, 1)))
    f00 = math.tanh(0.1 * 1.0 + 0.2)  # sequence 0, forward
    f01 = math.tanh(0.1 * 2.0 + 0.2 + 0.1 * f00)
    b01 = math.tanh(0.1 * 2.0 + 0.2)  # sequence 0, backward from t=1
    b00 = math.tanh(0.1 * 1.0 + 0.2 + 0.1 * b01)
    f1 = b1 = math.tanh(0.1 * 3.0 + 0.2)  # sequence 1: one real step, both directions
    output = [[[f00, b00], [f1, b1]], [[f01, b01], [0.0, 0.0]]]
    for result in run_both(cfg, sample):
        assert_result(result, {"output": output, "h_n": [[[f01], [f1]], [[b00], [b1]]]})


# ---- where h_n comes from ------------------------------------------------------------------------

SOURCE_CONFIGS = {
    "default": dict(),
    "2layers_bidirectional": dict(num_layers=2, bidirectional=True),
    "3layers_batch_first": dict(num_layers=3, batch_first=True, batch=2, h0="random"),
    "unbatched_2layers_bidirectional": dict(num_layers=2, bidirectional=True, batch=None),
    "lstm_proj_2layers_bidirectional": dict(**VARIANTS["lstm_proj"], num_layers=2, bidirectional=True, batch=2),
    "gru_packed_unsorted_batch_first": dict(
        **VARIANTS["gru"], num_layers=2, bidirectional=True, batch=3, lengths=(4, 10, 1), batch_first=True, h0="random"
    ),
    "lstm_packed_float64": dict(
        **VARIANTS["lstm"], num_layers=2, bidirectional=True, batch=3, lengths=(3, 7, 5), dtype="float64"
    ),
}


@pytest.mark.parametrize("impl", [manual, torch_run], ids=["manual", "torch"])
@pytest.mark.parametrize("name", SOURCE_CONFIGS)
def test_h_n_sources_hold(name, impl):
    cfg = RunConfig(**SOURCE_CONFIGS[name])
    sources = h_n_sources(impl.run(cfg, keep_layers=True))
    h_sources = [s for s in sources if s.state == "h_n"]
    assert [s.index for s in h_sources] == list(range(cfg.D * cfg.num_layers))
    assert all(s.ok is True for s in h_sources), [s for s in h_sources if not s.ok]
    lengths = cfg.lengths or (cfg.seq_len,) * cfg.N
    for s in h_sources:
        assert s.steps == (tuple(n - 1 for n in lengths) if s.direction == "forward" else (0,) * cfg.N)
        assert s.returned == (s.layer == cfg.num_layers - 1)
    c_sources = [s for s in sources if s.state == "c_n"]
    assert len(c_sources) == (len(h_sources) if cfg.has_c else 0)
    assert all(s.ok is None for s in c_sources)  # the cell state appears in no output


@pytest.mark.parametrize(
    "index, what",
    [
        pytest.param(0, "layer0_forward", id="lower_layer_forward"),
        pytest.param(1, "layer0_backward", id="lower_layer_backward"),
        pytest.param(2, "last_layer_forward", id="last_layer_forward"),
        pytest.param(3, "last_layer_backward", id="last_layer_backward"),
    ],
)
@pytest.mark.parametrize("impl", [manual, torch_run], ids=["manual", "torch"])
def test_h_n_sources_report_a_corrupted_h_n(impl, index, what):
    cfg = RunConfig(num_layers=2, bidirectional=True, batch=2, lengths=(6, 10), dtype="float64")
    result = impl.run(cfg, keep_layers=True)
    h_n = result.tensors["h_n"].copy()
    h_n[index, 1, 0] += 1e-3
    corrupted = replace(result, tensors={**result.tensors, "h_n": h_n})
    by_index = {s.index: s for s in h_n_sources(corrupted) if s.state == "h_n"}
    assert by_index[index].ok is False, what
    assert by_index[index].max_abs_diff == pytest.approx(1e-3, rel=1e-6)
    assert all(s.ok for k, s in by_index.items() if k != index)


def test_h_n_sources_report_a_corrupted_output():
    """Moving the last real step of a sequence breaks the forward claim."""
    cfg = RunConfig(bidirectional=True, batch=2, lengths=(6, 10), dtype="float64")
    result = manual.run(cfg)
    output = result.tensors["output"].copy()
    output[5, 0, 0] = 0.0  # sequence 0's last real step, forward features
    sources = h_n_sources(replace(result, tensors={**result.tensors, "output": output}))
    assert [s.ok for s in sources] == [False, True]
