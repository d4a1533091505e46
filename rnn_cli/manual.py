"""The memory cell written out in numpy: the reference implementation of rnn-cli.

For every layer k and direction d, following PyTorch's documented equations:

    rnn   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    lstm  i, f, g, o = split(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)     # gate order (i, f, g, o)
          c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
          h_t = sigmoid(o) * tanh(c_t)            (then h_t W_hr^T when proj_size > 0)
    gru   r, z, n are stacked in that order inside each weight
          r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
          z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
          n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
          h_t = (1 - z) * n + z * h_{t-1}

Layer k > 0 reads the (both-direction) output of layer k-1; the backward direction runs
from its last real step down to t = 0. h_n[k*D + d] is the state direction d of layer k
ends in. With `lengths`, a sequence's state stops changing after its last real step and
its outputs are zero past it (what pack_padded_sequence gives in torch).

How the loop is arranged for speed (the equations above are what it computes):
- the input projection of all L steps, x W_ih^T plus every bias that sits outside a
  gate's nonlinearity, is one matrix product per layer and direction;
- each step is one small product h_{t-1} W_hh^T plus in-place element-wise updates, written
  straight into the preallocated output, so a step allocates nothing;
- sigmoid and tanh work in place. On large arrays they are computed from np.exp,
  sigmoid(z) = 1 / (1 + exp(-z)) and tanh(z) = 2 / (1 + exp(-2z)) - 1, because numpy's exp
  is vectorised and up to twice as fast as its tanh (float64 most of all); on small ones,
  where each numpy call's fixed cost dominates, from a single np.tanh;
- the LSTM's gate rows are regrouped (i, f, o, g) when the weights are prepared, so the
  three sigmoid gates are one contiguous block and take one call per operation.

numpy only: this module must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnn_cli.config import RunConfig, num_gates
from rnn_cli.sample import Sample, draw, state_to_user_layout, step_mask, to_user_layout

State = tuple[np.ndarray, ...]  # (h,) or (h, c), each (N, features)


@dataclass(frozen=True)
class Weights:
    """One layer-direction's weights, prepared for the loop (see the module docstring)."""

    ih_T: np.ndarray  # (H_in of this layer, G*H_cell)
    x_bias: np.ndarray | None  # (G*H_cell,): the biases added to the input projection
    hh_T: np.ndarray  # (H_out, G*H_cell)
    b_hn: np.ndarray | None  # (H_cell,): GRU's b_hn, which sits inside r * (...)
    hr_T: np.ndarray | None  # (H_cell, proj_size): LSTM projection
    relu: bool


# Below this many elements a numpy call's fixed cost dominates and np.tanh (one call) wins;
# above it the exp forms win because numpy's exp is vectorised and its tanh often is not.
SMALL = 2048


def sigmoid_(z: np.ndarray) -> np.ndarray:
    """In place: sigmoid(z) = 1 / (1 + exp(-z)) = (1 + tanh(z/2)) / 2."""
    if z.size <= SMALL:
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
        return z
    np.negative(z, out=z)
    np.exp(z, out=z)  # may overflow to inf, which gives exactly 0
    z += 1.0
    return np.reciprocal(z, out=z)


def tanh_(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh(z) into `out` (default: in place); for large arrays as 2 / (1 + exp(-2z)) - 1."""
    out = z if out is None else out
    if z.size <= SMALL:
        return np.tanh(z, out=out)
    np.multiply(z, -2.0, out=out)
    np.exp(out, out=out)  # may overflow to inf, which gives exactly -1
    out += 1.0
    np.divide(2.0, out, out=out)
    out -= 1.0
    return out


def _row_order(cell: str, H: int) -> np.ndarray:
    """Row order that turns torch's stacked gates into the loop's layout."""
    if cell == "lstm":  # torch stacks (i, f, g, o); the loop wants the sigmoid gates together: (i, f, o, g)
        return np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]
    return np.arange(num_gates(cell) * H)  # rnn, gru (r, z, n): as torch stacks them


def prepare_weights(cfg: RunConfig, params: dict[str, np.ndarray], layer: int, direction: int) -> Weights:
    sfx = f"l{layer}" + ("_reverse" if direction else "")
    H = cfg.hidden_size
    order = _row_order(cfg.cell, H)
    dtype = params[f"weight_ih_{sfx}"].dtype

    def rows(name: str) -> np.ndarray:
        return params[name][order]

    x_bias = b_hn = None
    if cfg.bias:
        b_ih, b_hh = rows(f"bias_ih_{sfx}"), rows(f"bias_hh_{sfx}")
        if cfg.cell == "gru":  # b_hr, b_hz join the input side; b_hn must stay inside r * (...)
            x_bias = b_ih + np.r_[b_hh[: 2 * H], np.zeros(H, dtype)]
            b_hn = b_hh[2 * H :]
        else:
            x_bias = b_ih + b_hh
    hr = params.get(f"weight_hr_{sfx}") if cfg.proj_size else None
    return Weights(
        ih_T=np.ascontiguousarray(rows(f"weight_ih_{sfx}").T),
        x_bias=x_bias,
        hh_T=np.ascontiguousarray(rows(f"weight_hh_{sfx}").T),
        b_hn=b_hn,
        hr_T=None if hr is None else np.ascontiguousarray(hr.T),
        relu=cfg.nonlinearity == "relu",
    )


# ---- one function per cell: (x_t projected, state) -> new state, written into h_out --------


def rnn_cell(xp_t: np.ndarray, state: State, w: Weights, h_out: np.ndarray, scratch: dict) -> State:
    """h_t = act(x_t W_ih^T + b_ih + b_hh  +  h_{t-1} W_hh^T)."""
    (h,) = state
    np.matmul(h, w.hh_T, out=h_out)  # (N, H)
    h_out += xp_t
    if w.relu:
        np.maximum(h_out, 0, out=h_out)
    else:
        tanh_(h_out)
    return (h_out,)


def lstm_cell(xp_t: np.ndarray, state: State, w: Weights, h_out: np.ndarray, scratch: dict) -> State:
    """c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)  (then projected by W_hr)."""
    h, c = state
    H = c.shape[-1]
    gates = np.matmul(h, w.hh_T, out=scratch["gates"])  # (N, 4H): i, f, o, g
    gates += xp_t
    sigmoid_(gates[:, : 3 * H])  # i, f, o
    tanh_(gates[:, 3 * H :])  # g
    i, f, o, g = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    c_new = np.multiply(f, c, out=scratch["c"][0])  # (N, H_cell)
    g *= i
    c_new += g
    scratch["c"].reverse()  # two buffers take turns holding c_{t-1} and c_t
    if w.hr_T is None:
        tanh_(c_new, out=h_out)
        h_out *= o
    else:
        m = tanh_(c_new, out=scratch["m"])
        m *= o
        np.matmul(m, w.hr_T, out=h_out)  # (N, proj_size)
    return h_out, c_new


def gru_cell(xp_t: np.ndarray, state: State, w: Weights, h_out: np.ndarray, scratch: dict) -> State:
    """r, z = sigmoid(...);  n = tanh(x_n + r * (h W_hn^T + b_hn));  h_t = (1 - z) * n + z * h."""
    (h,) = state
    H = h.shape[-1]
    gh = np.matmul(h, w.hh_T, out=scratch["gates"])  # (N, 3H): W_hr h, W_hz h, W_hn h
    rz, n = gh[:, : 2 * H], gh[:, 2 * H :]
    rz += xp_t[:, : 2 * H]
    sigmoid_(rz)  # r, z
    r, z = rz[:, :H], rz[:, H:]
    if w.b_hn is not None:
        n += w.b_hn
    n *= r
    n += xp_t[:, 2 * H :]
    tanh_(n)
    # (1 - z) * n + z * h  ==  n + z * (h - n)
    np.subtract(h, n, out=h_out)
    h_out *= z
    h_out += n
    return (h_out,)


CELLS: dict[str, Callable[..., State]] = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}


# ---- the loop over time, directions and layers ----------------------------------------


def run_direction(
    cfg: RunConfig,
    xp: np.ndarray,
    state: State,
    w: Weights,
    out: np.ndarray,
    reverse: bool,
    mask: np.ndarray | None,
) -> State:
    """Run one direction of one layer over time, writing h_t into `out` (L, N, H_out).

    With a mask (L, N, 1), padded steps keep the old state, so the backward direction of a
    sequence starts at its own last real step and the final state is the one there.
    Returns copies of the final state.
    """
    cell = CELLS[cfg.cell]
    L, N = xp.shape[:2]
    dtype = xp.dtype
    scratch = {"gates": np.empty((N, xp.shape[2]), dtype)}
    if cfg.has_c:
        scratch["c"] = [np.empty((N, cfg.hidden_size), dtype) for _ in range(2)]
        scratch["m"] = np.empty((N, cfg.hidden_size), dtype)
    with np.errstate(over="ignore"):  # exp(-z) -> inf is how sigmoid and tanh reach 0 and -1
        for t in range(L - 1, -1, -1) if reverse else range(L):
            new = cell(xp[t], state, w, out[t], scratch)
            if mask is not None:
                keep = ~mask[t]  # (N, 1): sequences already past their end
                for a, b in zip(new, state):
                    np.copyto(a, b, where=keep)
            state = new
    final = tuple(s.copy() for s in state)
    if mask is not None:
        out *= mask  # outputs past a sequence's end are zero, as pad_packed_sequence gives
    return final


@dataclass(frozen=True)
class Forward:
    output: np.ndarray  # (L, N, D*H_out)
    h_n: np.ndarray  # (D*num_layers, N, H_out)
    c_n: np.ndarray | None  # (D*num_layers, N, H_cell)
    layer_outputs: list[np.ndarray]  # outputs of layers 0..num_layers-2, (L, N, D*H_out) each


def forward(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    h_0: np.ndarray,
    c_0: np.ndarray | None = None,
    keep_layers: bool = False,
) -> Forward:
    """Time-major forward: x (L, N, H_in), h_0 (D*num_layers, N, H_out) -> Forward.

    Computes in x's dtype. `keep_layers` keeps the lower layers' outputs (for showing
    where h_n's lower-layer slices come from); otherwise a layer's output is released as
    soon as the next layer has consumed it.
    """
    L, N, _ = x.shape
    D, H_out, dtype = cfg.D, cfg.H_out, x.dtype
    mask = step_mask(cfg) if cfg.lengths is not None else None
    h_n = np.empty((D * cfg.num_layers, N, H_out), dtype)
    c_n = np.empty((D * cfg.num_layers, N, cfg.hidden_size), dtype) if cfg.has_c else None
    layer_outputs: list[np.ndarray] = []
    layer_in = x
    for layer in range(cfg.num_layers):
        out = np.empty((L, N, D * H_out), dtype)  # (L, N, D*H_out)
        for d in range(D):
            k = layer * D + d
            w = prepare_weights(cfg, params, layer, d)
            xp = layer_in.reshape(L * N, -1) @ w.ih_T  # all L steps in one product
            xp = xp.reshape(L, N, -1)  # (L, N, G*H_cell)
            if w.x_bias is not None:
                xp += w.x_bias
            state: State = (h_0[k],) if c_0 is None else (h_0[k], c_0[k])
            final = run_direction(cfg, xp, state, w, out[:, :, d * H_out : (d + 1) * H_out], bool(d), mask)
            h_n[k] = final[0]
            if c_n is not None:
                c_n[k] = final[1]
            del xp  # one layer-direction's projection at a time
        if keep_layers and layer < cfg.num_layers - 1:
            layer_outputs.append(out)
        layer_in = out
    return Forward(output=layer_in, h_n=h_n, c_n=c_n, layer_outputs=layer_outputs)


def run(cfg: RunConfig, sample: Sample | None = None, keep_layers: bool = True):
    """Draw (or take) the seeded sample, run the numpy forward, return a RunResult."""
    from rnn_cli.result import RunResult

    sample = sample if sample is not None else draw(cfg)
    fwd = forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0, keep_layers=keep_layers)
    tensors = {"input": to_user_layout(cfg, sample.x), "h_0": state_to_user_layout(cfg, sample.h_0)}
    if sample.c_0 is not None:
        tensors["c_0"] = state_to_user_layout(cfg, sample.c_0)
    tensors["output"] = to_user_layout(cfg, fwd.output)
    tensors["h_n"] = state_to_user_layout(cfg, fwd.h_n)
    if fwd.c_n is not None:
        tensors["c_n"] = state_to_user_layout(cfg, fwd.c_n)
    if cfg.lengths is not None:
        tensors["batch_sizes"] = np.asarray(cfg.batch_sizes(), dtype=np.int64)
    return RunResult(
        cfg=cfg,
        implementation="manual",
        device="cpu",
        tensors=tensors,
        params=sample.params,
        layer_outputs=fwd.layer_outputs,
        packed_data_shape=(sum(cfg.lengths), cfg.D * cfg.H_out) if cfg.lengths is not None else None,
    )
