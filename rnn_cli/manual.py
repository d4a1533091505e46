"""The memory cell written out in numpy: the reference implementation of rnn-cli.

For every layer k and direction d, as PyTorch documents them (torch.nn.RNN, LSTM, GRU):

    rnn   h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)        (or relu)

    lstm  i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)           gates stacked (i, f, g, o)
          f = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
          g =    tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
          o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
          c_t = f * c_{t-1} + i * g
          h_t = o * tanh(c_t)                     (then h_t W_hr^T when proj_size > 0)

    gru   r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)           gates stacked (r, z, n)
          z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
          n =    tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
          h_t = (1 - z) * n + z * h_{t-1}

Layer k > 0 reads the output of layer k-1, both directions concatenated. The backward
direction runs from the last step down to t = 0. h_n[k*D + d] is the state direction d of
layer k ends in. With `lengths`, a sequence's state stops changing after its last real
step (so its backward direction starts there) and its outputs past it are zero: what
pack_padded_sequence and pad_packed_sequence give in torch.

Two things are arranged for speed, neither changes the equations:
- x_t W_ih^T + b_ih does not depend on the state, so it is computed for all L steps of a
  layer in one matrix product before the loop over time;
- the two directions of a bidirectional layer take their steps together: at step s the
  forward direction is at t = s and the backward one at t = L-1-s, and every array in
  the cells carries a leading direction axis D, so one batched product serves both.

numpy only: this module must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from rnn_cli import layout
from rnn_cli.config import RunConfig
from rnn_cli.sample import Sample, draw, step_mask

# Called after every step of the loop over time with (layer, steps done in that layer).
Progress = Callable[[int, int], None]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), accurate in relative terms across the whole range.

    With e = exp(-|z|), which never overflows: 1 / (1 + e) for z >= 0 and e / (1 + e) for
    z < 0 (the same value, written so that small results keep their relative precision).
    """
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


def transposed(w: np.ndarray) -> np.ndarray:
    """W^T for each weight of a stack (D, rows, cols), stored contiguously: numpy's matmul
    hands a stack of contiguous matrices to BLAS, a stack of transposed views it does not
    (measured: 40x slower for (1, 32, 256) @ (1, 256, 256))."""
    return np.ascontiguousarray(np.swapaxes(w, -1, -2))


# ---- one function per cell: one step of every direction at once ------------------------
# x_proj: x_t W_ih^T + b_ih (D, N, G*H_cell); h, c: (D, N, H_out), (D, N, H_cell);
# weights stacked over directions and stored transposed: W_hh_T (D, H_out, G*H_cell),
# W_hr_T (D, H_cell, proj_size); b_hh (D, 1, G*H_cell) or None.


def rnn_cell(x_proj, h, W_hh_T, b_hh, nonlinearity: str):
    """h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""
    z = x_proj + h @ W_hh_T  # (D, N, H)
    if b_hh is not None:
        z = z + b_hh
    return np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)


def lstm_cell(x_proj, h, c, W_hh_T, b_hh, W_hr_T):
    """i, f, g, o gates; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t), projected by W_hr."""
    gates = x_proj + h @ W_hh_T  # (D, N, 4*H_cell)
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = np.split(gates, 4, axis=-1)  # torch's order
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c = f * c + i * g  # (D, N, H_cell)
    h = o * np.tanh(c)  # (D, N, H_cell)
    if W_hr_T is not None:
        h = h @ W_hr_T  # (D, N, proj_size)
    return h, c


def gru_cell(x_proj, h, W_hh_T, b_hh):
    """r, z, n gates; n = tanh(x_n + r * (h W_hn^T + b_hn)); h_t = (1 - z) * n + z * h_{t-1}."""
    h_proj = h @ W_hh_T  # (D, N, 3*H)
    if b_hh is not None:
        h_proj = h_proj + b_hh
    x_r, x_z, x_n = np.split(x_proj, 3, axis=-1)
    h_r, h_z, h_n = np.split(h_proj, 3, axis=-1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


# ---- the loop over time, directions and layers ----------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class Layer:
    """One layer's weights, stacked over its D directions, matrices stored transposed."""

    W_ih_T: np.ndarray  # (D, H_in of this layer, G*H_cell)
    W_hh_T: np.ndarray  # (D, H_out, G*H_cell)
    b_ih: Optional[np.ndarray]  # (D, 1, G*H_cell)
    b_hh: Optional[np.ndarray]  # (D, 1, G*H_cell)
    W_hr_T: Optional[np.ndarray]  # (D, H_cell, proj_size)

    @classmethod
    def of(cls, cfg: RunConfig, params: dict[str, np.ndarray], layer: int) -> "Layer":
        suffixes = [layout.suffix(layer, d) for d in range(cfg.D)]

        def stack(name: str) -> Optional[np.ndarray]:
            if f"{name}_{suffixes[0]}" not in params:
                return None
            return np.stack([params[f"{name}_{s}"] for s in suffixes])  # (D, ...)

        def bias(name: str) -> Optional[np.ndarray]:
            b = stack(name)
            return None if b is None else b[:, None, :]  # (D, 1, G*H_cell)

        W_hr = stack("weight_hr")
        return cls(
            W_ih_T=transposed(stack("weight_ih")),
            W_hh_T=transposed(stack("weight_hh")),
            b_ih=bias("bias_ih"),
            b_hh=bias("bias_hh"),
            W_hr_T=None if W_hr is None else transposed(W_hr),
        )


def run_layer(
    cfg: RunConfig,
    w: Layer,
    x: np.ndarray,
    h_0: np.ndarray,
    c_0: Optional[np.ndarray],
    mask: Optional[np.ndarray],
    progress: Optional[Callable[[int], None]] = None,
):
    """One layer, every direction: x (L, N, H_in) -> output (L, N, D*H_out), h_n, c_n (D, N, .).

    mask (L, N) is True at real steps: elsewhere the state is carried over unchanged.
    """
    L, N, _ = x.shape
    D = cfg.D
    x_proj = x.reshape(L * N, -1) @ w.W_ih_T  # (D, L*N, G*H_cell): all steps in one product
    if w.b_ih is not None:
        x_proj += w.b_ih
    x_proj = x_proj.reshape(D, L, N, -1)  # (D, L, N, G*H_cell)
    out = np.zeros((D, L, N, cfg.H_out), x.dtype)  # (D, L, N, H_out)
    h, c = h_0, c_0  # (D, N, H_out), (D, N, H_cell)
    directions = np.arange(D)
    for s in range(L):
        t = np.array([s, L - 1 - s][:D])  # the step each direction is at
        x_t = x_proj[directions, t]  # (D, N, G*H_cell)
        if cfg.cell == "rnn":
            h_new, c_new = rnn_cell(x_t, h, w.W_hh_T, w.b_hh, cfg.nonlinearity), None
        elif cfg.cell == "lstm":
            h_new, c_new = lstm_cell(x_t, h, c, w.W_hh_T, w.b_hh, w.W_hr_T)
        else:
            h_new, c_new = gru_cell(x_t, h, w.W_hh_T, w.b_hh), None
        if mask is not None:
            real = mask[t][:, :, None]  # (D, N, 1)
            h_new = np.where(real, h_new, h)
            c_new = None if c is None else np.where(real, c_new, c)
            out[directions, t] = np.where(real, h_new, 0)  # zero past a sequence's end
        else:
            out[directions, t] = h_new
        h, c = h_new, c_new
        if progress is not None:
            progress(s + 1)
    output = np.concatenate(list(out), axis=-1)  # (L, N, D*H_out)
    return output, h, c


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class Forward:
    output: np.ndarray  # (L, N, D*H_out)
    h_n: np.ndarray  # (D*num_layers, N, H_out)
    c_n: Optional[np.ndarray]  # (D*num_layers, N, H_cell)
    layer_outputs: list[np.ndarray]  # outputs of layers 0..num_layers-2, (L, N, D*H_out) each


def forward(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    h_0: np.ndarray,
    c_0: Optional[np.ndarray] = None,
    keep_layers: bool = False,
    progress: Optional[Progress] = None,
) -> Forward:
    """Time-major forward: x (L, N, H_in), h_0 (D*num_layers, N, H_out) -> Forward.

    Computes in x's dtype. `keep_layers` keeps the lower layers' outputs (to show where
    h_n's lower-layer slices come from); otherwise each is dropped once the next layer has
    read it.
    """
    L, N, H_in = x.shape  # time-major
    D = cfg.D
    mask = step_mask(cfg)[:, :, 0] if cfg.packed else None  # (L, N)
    h_n, c_n, layer_outputs = [], [], []
    layer_in = x
    for k in range(cfg.num_layers):
        rows = slice(k * D, (k + 1) * D)  # this layer's slots in h_0, c_0, h_n, c_n
        on_step = None if progress is None else (lambda done, k=k: progress(k, done))
        output, h, c = run_layer(
            cfg, Layer.of(cfg, params, k), layer_in, h_0[rows], None if c_0 is None else c_0[rows], mask, on_step
        )
        h_n.append(h)
        c_n.append(c)
        if keep_layers and k < cfg.num_layers - 1:
            layer_outputs.append(output)
        layer_in = output
    return Forward(
        output=layer_in,
        h_n=np.concatenate(h_n),  # (D*num_layers, N, H_out)
        c_n=np.concatenate(c_n) if cfg.has_c else None,  # (D*num_layers, N, H_cell)
        layer_outputs=layer_outputs,
    )


def run(cfg: RunConfig, sample: Sample | None = None, keep_layers: bool = True, progress: Optional[Progress] = None):
    """Draw (or take) the seeded sample, run the numpy forward, return a RunResult."""
    from rnn_cli.result import RunResult

    sample = sample if sample is not None else draw(cfg)
    fwd = forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0, keep_layers=keep_layers, progress=progress)
    return RunResult.from_time_major(
        cfg,
        implementation="manual",
        device="cpu",
        sample=sample,
        output=fwd.output,
        h_n=fwd.h_n,
        c_n=fwd.c_n,
        layer_outputs=fwd.layer_outputs,
    )
