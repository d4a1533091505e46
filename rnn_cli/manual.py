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

Speed comes from the arrangement, not from tricks: the input projection of all L steps is
one matrix product per layer and direction, the output is preallocated and written in
place, and each step does one small product plus element-wise updates.

numpy only: this module must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnn_cli.config import RunConfig
from rnn_cli.sample import Sample, draw, state_to_user_layout, step_mask, to_user_layout

State = tuple[np.ndarray, ...]  # (h,) or (h, c), each (N, features)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place logistic sigmoid, as 0.5 * tanh(x / 2) + 0.5: no overflow for large |x|."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


@dataclass(frozen=True)
class Weights:
    """One layer-direction's weights, laid out for the recurrence."""

    hh_T: np.ndarray  # (H_out, G*H_cell): W_hh^T
    b_hh: np.ndarray | None  # (G*H_cell,), GRU only: it sits inside r * (...)
    hr_T: np.ndarray | None  # (H_cell, H_out): W_hr^T, LSTM with proj_size only
    relu: bool


# ---- one function per cell: (x_t projected, state) -> new state ------------------------


def rnn_cell(xp_t: np.ndarray, state: State, w: Weights) -> State:
    (h,) = state
    z = h @ w.hh_T  # (N, H)
    z += xp_t  # x_t W_ih^T + b_ih + b_hh were added for all steps at once
    return (np.maximum(z, 0, out=z) if w.relu else np.tanh(z, out=z),)


def lstm_cell(xp_t: np.ndarray, state: State, w: Weights) -> State:
    h, c = state
    H = c.shape[-1]
    gates = h @ w.hh_T  # (N, 4*H_cell)
    gates += xp_t
    sigmoid_(gates[:, : 2 * H])  # i, f
    sigmoid_(gates[:, 3 * H :])  # o
    i, f, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 3 * H :]
    g = np.tanh(gates[:, 2 * H : 3 * H])
    c_new = f * c  # (N, H_cell)
    g *= i
    c_new += g
    h_new = np.tanh(c_new)
    h_new *= o  # (N, H_cell)
    if w.hr_T is not None:
        h_new = h_new @ w.hr_T  # (N, proj_size)
    return h_new, c_new


def gru_cell(xp_t: np.ndarray, state: State, w: Weights) -> State:
    (h,) = state
    H = h.shape[-1]
    gh = h @ w.hh_T  # (N, 3*H): W_hr h, W_hz h, W_hn h
    if w.b_hh is not None:
        gh += w.b_hh
    rz = xp_t[:, : 2 * H] + gh[:, : 2 * H]
    sigmoid_(rz)
    r, z = rz[:, :H], rz[:, H:]
    n = gh[:, 2 * H :] * r
    n += xp_t[:, 2 * H :]
    np.tanh(n, out=n)
    # h_t = (1 - z) * n + z * h  ==  n + z * (h - n)
    h_new = h - n
    h_new *= z
    h_new += n
    return (h_new,)


CELLS: dict[str, Callable[[np.ndarray, State, Weights], State]] = {
    "rnn": rnn_cell,
    "lstm": lstm_cell,
    "gru": gru_cell,
}


# ---- the loop over time, directions and layers ----------------------------------------


def run_direction(
    cell: Callable[[np.ndarray, State, Weights], State],
    xp: np.ndarray,
    state: State,
    w: Weights,
    out: np.ndarray,
    reverse: bool,
    mask: np.ndarray | None,
) -> State:
    """Run one direction of one layer over time, writing h_t into `out` (L, N, H_out).

    With a mask (L, N, 1), padded steps keep the old state, so the backward direction
    of a sequence starts at its own last real step and h_n is its state there.
    """
    L = xp.shape[0]
    for t in range(L - 1, -1, -1) if reverse else range(L):
        new = cell(xp[t], state, w)
        if mask is not None:
            new = tuple(np.where(mask[t], a, b) for a, b in zip(new, state))
        out[t] = new[0]
        state = new
    if mask is not None:
        out *= mask  # outputs past a sequence's end are zero, as pad_packed_sequence gives
    return state


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
    cell = CELLS[cfg.cell]
    mask = step_mask(cfg) if cfg.lengths is not None else None
    h_n = np.empty((D * cfg.num_layers, N, H_out), dtype)
    c_n = np.empty((D * cfg.num_layers, N, cfg.hidden_size), dtype) if cfg.has_c else None
    layer_outputs: list[np.ndarray] = []
    layer_in = x
    for layer in range(cfg.num_layers):
        out = np.empty((L, N, D * H_out), dtype)  # (L, N, D*H_out)
        for d in range(D):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            k = layer * D + d
            W_ih = params[f"weight_ih_{sfx}"]  # (G*H_cell, H_in of this layer)
            xp = layer_in.reshape(L * N, -1) @ W_ih.T  # all steps in one product
            xp = xp.reshape(L, N, -1)  # (L, N, G*H_cell)
            b_hh = None
            if cfg.bias:
                xp += params[f"bias_ih_{sfx}"]
                if cfg.cell == "gru":
                    b_hh = params[f"bias_hh_{sfx}"]
                else:
                    xp += params[f"bias_hh_{sfx}"]
            w = Weights(
                hh_T=np.ascontiguousarray(params[f"weight_hh_{sfx}"].T),  # (H_out, G*H_cell)
                b_hh=b_hh,
                hr_T=np.ascontiguousarray(params[f"weight_hr_{sfx}"].T) if cfg.proj_size else None,
                relu=cfg.nonlinearity == "relu",
            )
            state: State = (h_0[k],) if c_0 is None else (h_0[k], c_0[k])
            final = run_direction(cell, xp, state, w, out[:, :, d * H_out : (d + 1) * H_out], bool(d), mask)
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
