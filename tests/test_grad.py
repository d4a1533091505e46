"""--grad's numeric core: the numpy BPTT (rnn_cli.core.backward) against independent oracles.

* torch autograd (rnn_cli.core.torch_grad) over named scenarios, float64, 1e-10;
* central finite differences of manual.forward (not backward.py's own forward), float64,
  for every parameter element, the input and h_0 (c_0);
* one step per cell worked out by hand from the documented equations;
* ||dL/dh_t|| against torch cells unrolled by hand with retain_grad on every h_t;
* a hypothesis property over random configurations against torch;
* the upstream draw: after everything the forward draws, zero where it must be;
* the JSON fragment, the --save arrays (enough to recompute the gradients) and the view.
"""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from rnn_cli.core import backward
from rnn_cli.core import manual
from rnn_cli.core.backward import gradients, record_forward
from rnn_cli.core.loss import Upstream, draw_upstream
from rnn_cli.core.config import RunConfig
from strategies import run_configs
from rnn_cli.errors import RnnCliError
from rnn_cli.documents import grad_document
from rnn_cli.formats.grad_export import grad_arrays
from rnn_cli.views.grad import BAR_WIDTH, DECADES, bar, grad_renderables
from rnn_cli.core.sample import draw, from_user_layout, step_mask
from rnn_cli.core.torch_grad import torch_gradients

CPU = torch.device("cpu")
ATOL = 1e-10


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    yield


def numpy_grads(cfg: RunConfig, loss: str = "sum"):
    sample = draw(cfg)
    upstream = draw_upstream(cfg, loss, sample)
    return sample, upstream, gradients(cfg, sample.params, sample.x, sample.h_0, sample.c_0, upstream)


def assert_same_gradients(ours, theirs, atol: float = ATOL) -> None:
    assert list(ours.params) == list(theirs.params)
    pairs = {f"grad_{n}": (a, theirs.params[n]) for n, a in ours.params.items()}
    pairs["grad_input"] = (ours.input, theirs.input)
    pairs["grad_h_0"] = (ours.h_0, theirs.h_0)
    if ours.c_0 is not None or theirs.c_0 is not None:
        pairs["grad_c_0"] = (ours.c_0, theirs.c_0)
    for name, (a, b) in pairs.items():
        assert a.shape == b.shape, f"{name}: {a.shape} != {b.shape}"
        diff = float(np.max(np.abs(a - b), initial=0.0))
        assert diff <= atol, f"{name}: max |numpy - torch| = {diff:.3g}"
    assert ours.loss == pytest.approx(theirs.loss, abs=1e-9)


# ---- against torch autograd ------------------------------------------------------------------

SCENARIOS = {
    "rnn_tanh_defaults": dict(cell="rnn"),
    "rnn_relu_two_layers_random_h0": dict(cell="rnn", nonlinearity="relu", num_layers=2, h0="random", batch=2),
    "rnn_unbatched_bidirectional": dict(cell="rnn", batch=None, bidirectional=True, num_layers=2, h0="random"),
    "lstm_issue_example": dict(cell="lstm", num_layers=2, bidirectional=True, proj_size=3, lengths=(10, 7, 3), batch=3),
    "lstm_batch_first_proj_no_bias": dict(cell="lstm", batch_first=True, proj_size=2, bias=False, batch=2, h0="random"),
    "lstm_unsorted_lengths": dict(cell="lstm", lengths=(3, 10, 1), batch=3, h0="random", bidirectional=True),
    "gru_defaults": dict(cell="gru", batch=2),
    "gru_batch_first_lengths_no_bias": dict(
        cell="gru", num_layers=3, bidirectional=True, batch_first=True, lengths=(2, 10, 5), batch=3, bias=False, h0="random"
    ),
}


@pytest.mark.parametrize("loss", ["sum", "last"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_numpy_bptt_matches_torch_autograd(scenario: str, loss: str) -> None:
    cfg = RunConfig(dtype="float64", seq_len=10, hidden_size=5, input_size=4, **SCENARIOS[scenario])
    sample, upstream, ours = numpy_grads(cfg, loss)
    theirs = torch_gradients(cfg, sample, upstream, CPU, tf32=False)
    assert_same_gradients(ours, theirs)
    assert theirs.loss_kind == ours.loss_kind == loss


@pytest.mark.parametrize("scenario", ["lstm_issue_example", "gru_batch_first_lengths_no_bias", "rnn_unbatched_bidirectional"])
def test_recorded_forward_is_manual_forward(scenario: str) -> None:
    """backward.py records its own forward; it must not drift from manual.forward."""
    cfg = RunConfig(dtype="float64", **SCENARIOS[scenario])
    s = draw(cfg)
    rec = record_forward(cfg, s.params, s.x, s.h_0, s.c_0)
    fwd = manual.forward(cfg, s.params, s.x, s.h_0, s.c_0)
    np.testing.assert_allclose(rec.output, fwd.output, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec.h_n, fwd.h_n, rtol=0, atol=1e-12)
    if cfg.has_c:
        np.testing.assert_allclose(rec.c_n, fwd.c_n, rtol=0, atol=1e-12)


# ---- against central finite differences of manual.forward ----------------------------------


def manual_loss(cfg: RunConfig, params, x, h_0, c_0, up: Upstream) -> float:
    f = manual.forward(cfg, params, x, h_0, c_0)
    total = np.sum(f.output * up.output) + np.sum(f.h_n * up.h_n)
    return float(total + (np.sum(f.c_n * up.c_n) if cfg.has_c else 0.0))


def finite_difference(fn, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of fn() in every element of a (perturbed in place, restored)."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        plus = fn()
        a[idx] = old - eps
        minus = fn()
        a[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


FD_SCENARIOS = {
    "rnn_tanh_two_layers_bidirectional": dict(cell="rnn", num_layers=2, bidirectional=True),
    "lstm_proj_bidirectional_lengths": dict(cell="lstm", num_layers=2, bidirectional=True, proj_size=1, lengths=(3, 1)),
    "gru_lengths": dict(cell="gru", num_layers=2, lengths=(1, 3)),
}


@pytest.mark.parametrize("scenario", FD_SCENARIOS)
def test_gradients_match_finite_differences_of_manual_forward(scenario: str) -> None:
    cfg = RunConfig(dtype="float64", seq_len=3, batch=2, input_size=2, hidden_size=2, h0="random", seed=3, **FD_SCENARIOS[scenario])
    s = draw(cfg)
    up = draw_upstream(cfg, "sum", s)
    ours = gradients(cfg, s.params, s.x, s.h_0, s.c_0, up)
    params = {n: a.copy() for n, a in s.params.items()}
    x, h_0 = s.x.copy(), s.h_0.copy()
    c_0 = None if s.c_0 is None else s.c_0.copy()

    def loss() -> float:
        return manual_loss(cfg, params, x, h_0, c_0, up)

    assert ours.loss == pytest.approx(loss(), abs=1e-12)
    targets = dict(params, input=x, h_0=h_0)
    if c_0 is not None:
        targets["c_0"] = c_0
    got = dict(ours.params, input=ours.input, h_0=ours.h_0)
    if c_0 is not None:
        got["c_0"] = ours.c_0
    for name, a in targets.items():
        expected = finite_difference(loss, a)
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=1e-7, err_msg=name)


# ---- one step per cell, by hand ---------------------------------------------------------------


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def one_step(cell: str, G_out: float, G_h: float, G_c: float = 0.0, x: float = 1.0, h0: float = 0.5, c0: float = -0.5):
    """L = N = H_in = H_cell = 1, every weight and bias 0.1."""
    cfg = RunConfig(cell=cell, input_size=1, hidden_size=1, seq_len=1, dtype="float64")
    params = {n: np.full(shape, 0.1) for n, shape in cfg.parameter_shapes().items()}
    up = Upstream(
        loss="sum",
        output=np.full((1, 1, 1), G_out),
        h_n=np.full((1, 1, 1), G_h),
        c_n=np.full((1, 1, 1), G_c) if cfg.has_c else None,
    )
    c_0 = np.full((1, 1, 1), c0) if cfg.has_c else None
    return gradients(cfg, params, np.full((1, 1, 1), x), np.full((1, 1, 1), h0), c_0, up)


def test_rnn_one_step_by_hand() -> None:
    # a = 0.1*1 + 0.1 + 0.1*0.5 + 0.1 = 0.35;  h = tanh(a);  output = h_n = h, so dL/dh = 2 + 3
    g = one_step("rnn", G_out=2.0, G_h=3.0)
    da = 5.0 * (1 - math.tanh(0.35) ** 2)
    assert g.params["weight_ih_l0"][0, 0] == pytest.approx(da * 1.0)
    assert g.params["weight_hh_l0"][0, 0] == pytest.approx(da * 0.5)
    assert g.params["bias_ih_l0"][0] == pytest.approx(da)
    assert g.params["bias_hh_l0"][0] == pytest.approx(da)
    assert g.input[0, 0, 0] == pytest.approx(0.1 * da)
    assert g.h_0[0, 0, 0] == pytest.approx(0.1 * da)
    assert g.loss == pytest.approx(5.0 * math.tanh(0.35))
    assert g.norm_per_step[(0, "forward")][0] == pytest.approx(5.0)


def test_lstm_one_step_by_hand() -> None:
    # every gate's pre-activation a = 0.35; i = f = o = sigmoid(a), g = tanh(a)
    # c = f*c0 + i*g;  h = o*tanh(c);  L = 1*h (output) + 0*h_n + 2*c_n
    a = 0.35
    s, g_ = sig(a), math.tanh(a)
    c = s * -0.5 + s * g_
    dh = 1.0
    do = dh * math.tanh(c)
    dc = 2.0 + dh * s * (1 - math.tanh(c) ** 2)
    di, df, dg = dc * g_, dc * -0.5, dc * s
    da = np.array([di * s * (1 - s), df * s * (1 - s), dg * (1 - g_**2), do * s * (1 - s)])  # i, f, g, o
    got = one_step("lstm", G_out=1.0, G_h=0.0, G_c=2.0)
    np.testing.assert_allclose(got.params["weight_ih_l0"][:, 0], da * 1.0, rtol=1e-12)
    np.testing.assert_allclose(got.params["weight_hh_l0"][:, 0], da * 0.5, rtol=1e-12)
    np.testing.assert_allclose(got.params["bias_hh_l0"], da, rtol=1e-12)
    assert got.c_0[0, 0, 0] == pytest.approx(dc * s)
    assert got.h_0[0, 0, 0] == pytest.approx(0.1 * da.sum())
    assert got.input[0, 0, 0] == pytest.approx(0.1 * da.sum())


def test_gru_one_step_by_hand() -> None:
    # r = z = sigmoid(0.35);  n = tanh(0.1*1 + 0.1 + r*(0.1*0.5 + 0.1));  h = (1-z) n + z h0
    h0 = 0.5
    r = z = sig(0.35)
    hn = 0.1 * h0 + 0.1  # W_hn h + b_hn: inside r * (...)
    n = math.tanh(0.2 + r * hn)
    dh = 1.0
    dn, dz = dh * (1 - z), dh * (h0 - n)
    dan = dn * (1 - n**2)
    dar = dan * hn * r * (1 - r)
    daz = dz * z * (1 - z)
    got = one_step("gru", G_out=1.0, G_h=0.0)
    np.testing.assert_allclose(got.params["bias_ih_l0"], [dar, daz, dan], rtol=1e-12)
    np.testing.assert_allclose(got.params["bias_hh_l0"], [dar, daz, dan * r], rtol=1e-12)
    np.testing.assert_allclose(got.params["weight_hh_l0"][:, 0], [dar * h0, daz * h0, dan * r * h0], rtol=1e-12)
    assert got.h_0[0, 0, 0] == pytest.approx(dh * z + 0.1 * (dar + daz + dan * r))
    assert got.input[0, 0, 0] == pytest.approx(0.1 * (dar + daz + dan))


# ---- ||dL/dh_t|| against torch cells unrolled with retain_grad -----------------------------

TORCH_CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def unrolled_state_grad_norms(cfg: RunConfig, sample, up: Upstream) -> dict:
    """||dL/dstate_t|| per layer and direction from torch cells stepped by hand.

    state_t is where(step t is real, cell(x_t, state_{t-1}), state_{t-1}); output_t is
    state_t at real steps and 0 past a sequence's end.
    """
    L = cfg.seq_len
    mask = torch.from_numpy(step_mask(cfg)) if cfg.lengths is not None else torch.ones(L, cfg.N, 1, dtype=torch.bool)
    states: dict = {}
    layer_in = torch.from_numpy(sample.x)
    h_n, c_n = [], []
    for layer in range(cfg.num_layers):
        outs = []
        for d in range(cfg.D):
            k = layer * cfg.D + d
            kw = {"nonlinearity": cfg.nonlinearity} if cfg.cell == "rnn" else {}
            cell = TORCH_CELLS[cfg.cell](cfg.layer_input_size(layer), cfg.hidden_size, bias=cfg.bias, dtype=torch.float64, **kw)
            sfx = f"l{layer}" + ("_reverse" if d else "")
            with torch.no_grad():
                for name, p in cell.named_parameters():
                    p.copy_(torch.from_numpy(sample.params[f"{name}_{sfx}"]))
            state = (torch.from_numpy(sample.h_0[k]),) + ((torch.from_numpy(sample.c_0[k]),) if cfg.has_c else ())
            out = [None] * L
            for t in (range(L - 1, -1, -1) if d else range(L)):
                new = cell(layer_in[t], state if cfg.has_c else state[0])
                new = new if isinstance(new, tuple) else (new,)
                state = tuple(torch.where(mask[t], a, b) for a, b in zip(new, state))
                state[0].retain_grad()
                states[(layer, backward.DIRECTIONS[d], t)] = state[0]
                out[t] = state[0] * mask[t]
            outs.append(torch.stack(out))
            h_n.append(state[0])
            if cfg.has_c:
                c_n.append(state[1])
        layer_in = torch.cat(outs, dim=2)
    loss = (layer_in * torch.from_numpy(up.output)).sum() + (torch.stack(h_n) * torch.from_numpy(up.h_n)).sum()
    if cfg.has_c:
        loss = loss + (torch.stack(c_n) * torch.from_numpy(up.c_n)).sum()
    loss.backward()
    norms: dict = {}
    for (layer, direction, t), s in states.items():
        norms.setdefault((layer, direction), np.zeros(L))[t] = float(s.grad.norm())
    return norms


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("loss", ["sum", "last"])
def test_norm_per_step_is_the_norm_of_dL_dh_t(cell: str, loss: str) -> None:
    cfg = RunConfig(
        cell=cell, num_layers=2, bidirectional=True, seq_len=5, batch=3, lengths=(5, 2, 4), input_size=3, hidden_size=3, h0="random", dtype="float64"
    )
    sample, up, ours = numpy_grads(cfg, loss)
    expected = unrolled_state_grad_norms(cfg, sample, up)
    assert set(ours.norm_per_step) == set(expected)
    for key, norms in expected.items():
        np.testing.assert_allclose(ours.norm_per_step[key], norms, rtol=1e-10, atol=1e-13, err_msg=str(key))


def test_first_last_ratio_and_gradient_norms() -> None:
    cfg = RunConfig(cell="lstm", proj_size=2, hidden_size=4, batch=2, dtype="float64")
    _, _, g = numpy_grads(cfg)
    norms = backward.gradient_norms(g)
    assert list(norms) == [*cfg.parameter_shapes(), "input", "h_0", "c_0"]
    assert norms["weight_hr_l0"] == pytest.approx(np.linalg.norm(g.params["weight_hr_l0"]))
    assert norms["input"] == pytest.approx(np.linalg.norm(g.input.ravel()))
    assert backward.first_last_ratio(np.array([1e-6, 3.0, 2.0])) == pytest.approx(5e-7)
    assert backward.first_last_ratio(np.array([1.0, 0.0])) is None
    # a reverse direction's backprop enters at t=0 and reaches t=L-1 last
    assert backward.first_last_ratio(np.array([1e-6, 3.0, 2.0]), reverse=True) == pytest.approx(2e6)
    assert backward.first_last_ratio(np.array([0.0, 3.0]), reverse=True) is None


def test_loss_last_backward_direction_says_no_gradient_enters_instead_of_a_ratio_of_zero() -> None:
    """--loss last feeds the backward direction only at t=L-1, its first step: nothing enters at t=0."""
    from rnn_cli.views import grad as grad_view

    cfg = RunConfig(bidirectional=True, seq_len=4, dtype="float64")
    sample = draw(cfg)
    g = backward.gradients(cfg, sample.params, sample.x, sample.h_0, sample.c_0, draw_upstream(cfg, "last", sample))
    bwd, fwd = g.norm_per_step[0, "backward"], g.norm_per_step[0, "forward"]
    assert bwd[0] == 0 and bwd[-1] > 0
    assert g.first_last[0, "backward"] is None
    assert g.first_last[0, "forward"] == pytest.approx(fwd[0] / fwd[-1])  # from t=L-1 (enters) to t=0
    assert "no gradient" in grad_view.ratio_line(bwd, "backward", None, 4)


# ---- random configurations ----------------------------------------------------------------


def grad_configs():
    """Small float64 configurations (batched or not, packed or not) for the BPTT property."""
    return run_configs(dtype=st.just("float64"), size=6, steps=6)


@settings(max_examples=settings.default.max_examples // 2)
@given(cfg=grad_configs(), loss=st.sampled_from(["sum", "last"]))
def test_random_configurations_match_torch_autograd(cfg: RunConfig, loss: str) -> None:
    sample, upstream, ours = numpy_grads(cfg, loss)
    assert_same_gradients(ours, torch_gradients(cfg, sample, upstream, CPU))


# ---- the upstream draw ----------------------------------------------------------------------


def test_drawing_the_upstream_changes_no_forward_number() -> None:
    """The sample is what the documented draw order gives, and G continues the same stream."""
    cfg = RunConfig(cell="lstm", h0="random", batch=2, seq_len=4, hidden_size=3, input_size=2, dtype="float64", seed=7)
    sample = draw(cfg)
    before = {n: a.copy() for n, a in sample.params.items()}
    up = draw_upstream(cfg, "sum", sample)
    assert draw_upstream(cfg, "sum", sample).output.tolist() == up.output.tolist()  # sample's state not consumed
    assert draw_upstream(cfg, "sum").output.tolist() == up.output.tolist()  # without a sample: same G

    rng = np.random.default_rng(7)  # the documented order: parameters, input, h_0, c_0, then G
    k = 1 / np.sqrt(3)
    for name, shape in cfg.parameter_shapes().items():
        np.testing.assert_array_equal(sample.params[name], rng.uniform(-k, k, shape))
        np.testing.assert_array_equal(sample.params[name], before[name])
    np.testing.assert_array_equal(sample.x, rng.standard_normal((4, 2, 2)))
    np.testing.assert_array_equal(sample.h_0, rng.standard_normal((1, 2, 3)))
    np.testing.assert_array_equal(sample.c_0, rng.standard_normal((1, 2, 3)))
    np.testing.assert_array_equal(up.output, rng.standard_normal((4, 2, 3)))
    np.testing.assert_array_equal(up.h_n, rng.standard_normal((1, 2, 3)))
    np.testing.assert_array_equal(up.c_n, rng.standard_normal((1, 2, 3)))


def test_upstream_is_zero_where_the_loss_does_not_look() -> None:
    cfg = RunConfig(cell="lstm", batch=3, seq_len=6, lengths=(6, 2, 4), bidirectional=True)
    up = draw_upstream(cfg, "sum")
    assert up.output.dtype == np.float32
    up64 = up.astype(np.float64)  # compare's float64 reference must see the very same G
    assert up64.c_n.dtype == np.float64 and np.array_equal(up64.c_n, up.c_n) and up64.loss == "sum"
    assert np.all(up.output[~step_mask(cfg)[:, :, 0]] == 0)
    assert np.all(up.output[step_mask(cfg)[:, :, 0]] != 0)
    last = draw_upstream(cfg, "last")
    nonzero = np.argwhere(np.any(last.output != 0, axis=2))  # (t, n) pairs
    assert sorted(map(tuple, nonzero.tolist())) == [(1, 1), (3, 2), (5, 0)]
    assert not last.h_n.any() and not last.c_n.any()
    with pytest.raises(RnnCliError, match="--loss"):
        draw_upstream(cfg, "mean")


# ---- JSON, --save arrays, the view ----------------------------------------------------------


def test_grad_document_shapes_values_and_nulls() -> None:
    cfg = RunConfig(cell="gru", batch=2, batch_first=True, bidirectional=True, seq_len=3, hidden_size=2, dtype="float64")
    _, _, g = numpy_grads(cfg, "last")
    doc = grad_document(cfg, g, with_values=True)
    assert list(doc["gradients"]) == [*cfg.parameter_shapes(), "input", "h_0"]
    assert doc["gradients"]["input"]["shape"] == [2, 3, 5]  # (N, L, H_in): batch_first
    assert doc["gradients"]["input"]["values"][1][2] == g.input[2, 1].tolist()
    assert [(e["layer"], e["direction"]) for e in doc["grad_norm_per_step"]] == [(0, "forward"), (0, "backward")]
    assert doc["loss"] == {"kind": "last", "value": g.loss}
    assert "values" not in grad_document(cfg, g, with_values=False)["gradients"]["h_0"]

    g.params["bias_hh_l0"][0] = np.nan
    g.norm_per_step[(0, "forward")][1] = np.inf
    bad = json.loads(json.dumps(grad_document(cfg, g, with_values=True), allow_nan=False))
    assert bad["gradients"]["bias_hh_l0"]["values"][0] is None
    assert bad["grad_norm_per_step"][0]["norms"][1] is None


def test_saved_arrays_are_enough_to_recompute_the_gradients() -> None:
    """From the saved upstream (user layout) alone, torch autograd gives the saved gradients."""
    cfg = RunConfig(cell="lstm", batch=2, batch_first=True, lengths=(2, 3), seq_len=3, hidden_size=3, proj_size=2, dtype="float64", h0="random")
    sample, up, g = numpy_grads(cfg)
    saved = grad_arrays(cfg, g, up.user_layout(cfg))
    assert sorted(saved) == sorted(
        [f"grad_{n}" for n in cfg.parameter_shapes()] + ["grad_input", "grad_h_0", "grad_c_0", "upstream_output", "upstream_h_n", "upstream_c_n"]
    )
    shapes = cfg.shapes()
    for name in ("input", "h_0", "c_0"):
        assert saved[f"grad_{name}"].shape == shapes[name]
    for name in ("output", "h_n", "c_n"):
        assert saved[f"upstream_{name}"].shape == shapes[name]
    # recompute with plain torch: nothing from rnn_cli but the saved arrays and the sample
    module = torch.nn.LSTM(5, 3, batch_first=True, proj_size=2, dtype=torch.float64)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(sample.params[name]))
    x = torch.from_numpy(sample.x.transpose(1, 0, 2).copy()).requires_grad_()
    h_0 = torch.from_numpy(sample.h_0.copy()).requires_grad_()
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([2, 3]), batch_first=True, enforce_sorted=False)
    out, (h_n, c_n) = module(packed, (h_0, torch.from_numpy(sample.c_0)))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=3)
    loss = (out * torch.from_numpy(saved["upstream_output"])).sum() + (h_n * torch.from_numpy(saved["upstream_h_n"])).sum()
    (loss + (c_n * torch.from_numpy(saved["upstream_c_n"])).sum()).backward()
    np.testing.assert_allclose(saved["grad_input"], x.grad.numpy(), atol=ATOL)
    np.testing.assert_allclose(saved["grad_h_0"], h_0.grad.numpy(), atol=ATOL)
    np.testing.assert_allclose(saved["grad_weight_hr_l0"], module.weight_hr_l0.grad.numpy(), atol=ATOL)
    np.testing.assert_allclose(from_user_layout(cfg, saved["grad_input"]), g.input, atol=0)


def test_bar_is_log_scale_with_a_fixed_number_of_characters_per_decade() -> None:
    assert bar(2.0, 2.0, ascii_only=True) == "#" * BAR_WIDTH
    per_decade = BAR_WIDTH / DECADES
    assert len(bar(2e-4, 2.0, ascii_only=True)) == round(BAR_WIDTH - 4 * per_decade)
    assert bar(1e-300, 2.0, ascii_only=True) == "#"  # far below the scale: still visible
    assert bar(0.0, 2.0, ascii_only=False) == bar(math.nan, 2.0, ascii_only=False) == ""
    assert bar(2.0, 2.0, ascii_only=False) == "█" * BAR_WIDTH


@pytest.mark.parametrize("terminal", [True, False])
def test_view_fits_80_columns_and_is_ascii_when_piped(terminal: bool) -> None:
    cfg = RunConfig(cell="rnn", seq_len=50, hidden_size=16, batch=2, dtype="float64")
    _, _, g = numpy_grads(cfg, "last")
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=terminal, color_system=None)
    for r in grad_renderables(console, cfg, g, precision=4):
        console.print(r)
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 80
    assert out.isascii() != terminal  # terminals get block characters, pipes ASCII
    norms = g.norm_per_step[(0, "forward")]
    assert f"fade, t=0 (backprop ends) / t=49 (backprop enters): {norms[0] / norms[-1]:.3e}" in out
    assert len(re.findall(r"^t=\d+ ", out, flags=re.M)) == 50
    for name in cfg.parameter_shapes():
        assert name in out


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scenario", ["lstm_issue_example", "gru_batch_first_lengths_no_bias"])
def test_cuda_autograd_matches_numpy_bptt(scenario: str) -> None:
    """cuDNN's float64 backward, packed, against the numpy BPTT (the float32/TF32 tolerances are compare's)."""
    cfg = RunConfig(dtype="float64", seq_len=10, hidden_size=5, input_size=4, device="cuda", **SCENARIOS[scenario])
    sample, upstream, ours = numpy_grads(cfg)
    assert_same_gradients(ours, torch_gradients(cfg, sample, upstream, torch.device("cuda"), tf32=False), atol=1e-9)
