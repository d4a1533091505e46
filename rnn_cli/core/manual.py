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

One thing is arranged for speed, and it does not change the equations: the terms that do
not depend on the state, x_t W_ih^T + b_ih + b_hh (for GRU's n gate, x_t W_in^T + b_in
alone: b_hn sits inside r * (...)), are computed for many steps in one matrix product (all
L steps of a layer at most sizes; blocks of 4 MiB for large ones: projected_steps). Inside
the loop each step is one small product and a few element-wise calls on 2-D arrays
(N, features), written straight into the layer's output; their count, not the arithmetic,
is what a step costs at small sizes.

numpy only: this module must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from rnn_cli.core import layout
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Sample, draw, step_mask

# Called after every step of the loop over time with (layer, steps done in that layer).
Progress = Callable[[int, int], None]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), accurate in relative terms wherever the result is a normal float.

    exp(-z), 1 + e and 1 / (.) each round once, relative to their own size, so small results
    keep their digits too. For z below about -88.7 (float32; -709.8 in float64) exp(-z)
    overflows to inf and the result is 0: the true value, under 1e-38 (1e-308), is below
    the dtype's normal range there. That overflow is expected, so it is not warned about.
    """
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


# ---- one function per cell: one step of one direction ---------------------------------------
# x_proj: the step's terms that do not depend on the state (N, G*H_cell); h, c: (N, H_out),
# (N, H_cell); weights stored transposed: W_hh_T (H_out, G*H_cell), W_hr_T (H_cell, proj_size).


def rnn_cell(x_proj, h, W_hh_T, nonlinearity: str):
    """h_t = tanh(x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T);  x_proj = x_t W_ih^T + b_ih + b_hh."""
    z = x_proj + h @ W_hh_T  # (N, H)
    return np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)


def lstm_cell(x_proj, h, c, W_hh_T, W_hr_T):
    """i, f, g, o gates; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t), projected by W_hr.
    x_proj = x_t W_ih^T + b_ih + b_hh, all four gates."""
    H = c.shape[-1]  # H_cell
    gates = x_proj + h @ W_hh_T  # (N, 4*H_cell), torch's order i, f, g, o
    sig = sigmoid(gates)  # one call for i, f and o (its g block is not used): fewer calls per step
    i, f, o = sig[:, :H], sig[:, H : 2 * H], sig[:, 3 * H :]
    g = np.tanh(gates[:, 2 * H : 3 * H])
    c = f * c + i * g  # (N, H_cell)
    h = o * np.tanh(c)  # (N, H_cell)
    if W_hr_T is not None:
        h = h @ W_hr_T  # (N, proj_size)
    return h, c


def gru_cell(x_proj, h, W_hh_T, b_hn):
    """r, z, n gates; n = tanh(x_n + r * (h W_hn^T + b_hn)); h_t = (1 - z) * n + z * h_{t-1}.
    x_proj = x_t W_ih^T + b_ih + [b_hr, b_hz, 0]: b_hn stays inside r * (...)."""
    H = h.shape[-1]
    h_proj = h @ W_hh_T  # (N, 3*H): h W_hr^T, h W_hz^T, h W_hn^T
    r_z = sigmoid(x_proj[:, : 2 * H] + h_proj[:, : 2 * H])  # r and z side by side: one call for both
    r, z = r_z[:, :H], r_z[:, H:]
    n = np.tanh(x_proj[:, 2 * H :] + r * (h_proj[:, 2 * H :] + b_hn))
    return (1 - z) * n + z * h


# ---- the loop over time, directions and layers ----------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class Direction:
    """One direction of one layer: torch's weights as the products use them, transposed (the
    two used at every step stored contiguously: 10% faster at N=1 than a transposed view),
    and the biases that can be added before the loop, summed."""

    W_ih_T: np.ndarray  # (H_in of this layer, G*H_cell), a view: used once per layer
    W_hh_T: np.ndarray  # (H_out, G*H_cell)
    b: np.ndarray  # (G*H_cell,): b_ih + b_hh; for GRU b_ih + [b_hr, b_hz, 0]; zeros without bias
    b_hn: Optional[np.ndarray]  # (H,): GRU's b_hn, zeros without bias; None for rnn, lstm
    W_hr_T: Optional[np.ndarray]  # (H_cell, proj_size)

    @classmethod
    def of(cls, cfg: RunConfig, params: dict[str, np.ndarray], layer: int, direction: int) -> "Direction":
        sfx = layout.suffix(layer, direction)
        W_ih, W_hh, W_hr = params[f"weight_ih_{sfx}"], params[f"weight_hh_{sfx}"], params.get(f"weight_hr_{sfx}")
        zeros = np.zeros(W_ih.shape[0], W_ih.dtype)  # bias=False: adding zeros changes nothing
        b_ih, b_hh = params.get(f"bias_ih_{sfx}", zeros), params.get(f"bias_hh_{sfx}", zeros)
        b, b_hn = b_ih + b_hh, None
        if cfg.cell == "gru":
            H = cfg.hidden_size
            b = np.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])
            b_hn = b_hh[2 * H :]
        W_hr_T = None if W_hr is None else np.ascontiguousarray(W_hr.T)
        return cls(W_ih.T, np.ascontiguousarray(W_hh.T), b, b_hn, W_hr_T)


# x_proj is computed for as many steps at a time as fit in this many bytes (at least one step,
# all L at most sizes): one product per block into one buffer reused for the next block. One
# product for all L steps of a large layer (64 x 200 x 2048 float32: 105 MB) wrote a fresh
# array that BLAS's threads first had to fault in, and each step read its rows back from memory.
BLOCK_BYTES = 4 << 20


def projected_steps(x: np.ndarray, w: Direction, reverse: bool):
    """(t, x_t W_ih^T + b) for every step of x (L, N, H_in) in the direction's order, t = 0..L-1
    or L-1..0; the second is (N, G*H_cell), a view into a buffer that the next block overwrites."""
    L, N, H_in = x.shape
    GH = w.W_ih_T.shape[1]  # G*H_cell
    k = max(1, min(L, BLOCK_BYTES // (N * GH * x.itemsize)))  # steps per block
    buffer = np.empty((k * N, GH), x.dtype)
    starts = range(0, L, k)
    for t0 in reversed(starts) if reverse else starts:
        n = min(k, L - t0)  # steps in this block, t0..t0+n-1
        block = buffer[: n * N]
        np.matmul(x[t0 : t0 + n].reshape(n * N, H_in), w.W_ih_T, out=block)
        block += w.b
        rows = block.reshape(n, N, GH)
        for t in reversed(range(t0, t0 + n)) if reverse else range(t0, t0 + n):
            yield t, rows[t - t0]


def run_layer(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    layer: int,
    x: np.ndarray,
    h_0: np.ndarray,
    c_0: Optional[np.ndarray],
    mask: Optional[np.ndarray],
    progress: Optional[Callable[[int], None]] = None,
):
    """One layer, every direction: x (L, N, H_in) -> output (L, N, D*H_out), h_n, c_n (D, N, .).

    mask (L, N, 1) is True at real steps: elsewhere the state is carried over unchanged and
    the output is zero. At step s the forward direction is at t = s, the backward one at
    t = L-1-s; direction d writes its h_t into its own columns of the output.
    """
    (L, N, _), D, H_out = x.shape, cfg.D, cfg.H_out  # x (L, N, H_in)
    dirs = [Direction.of(cfg, params, layer, d) for d in range(D)]
    steps = [projected_steps(x, w, reverse=d == 1) for d, w in enumerate(dirs)]  # (t, x_proj_t)
    output = (np.empty if mask is None else np.zeros)((L, N, D * H_out), x.dtype)
    out = [output[:, :, d * H_out : (d + 1) * H_out] for d in range(D)]  # (L, N, H_out) views
    h = list(h_0)  # D states (N, H_out)
    c = [None] * D if c_0 is None else list(c_0)  # D states (N, H_cell)
    for s in range(L):
        for d, w in enumerate(dirs):
            t, x_proj = next(steps[d])  # t = s forward, L-1-s backward
            if cfg.cell == "rnn":
                h_t, c_t = rnn_cell(x_proj, h[d], w.W_hh_T, cfg.nonlinearity), None
            elif cfg.cell == "lstm":
                h_t, c_t = lstm_cell(x_proj, h[d], c[d], w.W_hh_T, w.W_hr_T)
            else:
                h_t, c_t = gru_cell(x_proj, h[d], w.W_hh_T, w.b_hn), None
            if mask is not None:  # past a sequence's end: keep the state, leave the output zero
                h_t = np.where(mask[t], h_t, h[d])
                c_t = None if c_t is None else np.where(mask[t], c_t, c[d])
                np.copyto(out[d][t], h_t, where=mask[t])
            else:
                out[d][t] = h_t
            h[d], c[d] = h_t, c_t
        if progress is not None:
            progress(s + 1)
    return output, np.stack(h), None if c_0 is None else np.stack(c)


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
    D = cfg.D
    mask = step_mask(cfg) if cfg.packed else None  # (L, N, 1)
    h_n, c_n, layer_outputs = [], [], []
    layer_in = x
    for k in range(cfg.num_layers):
        rows = slice(k * D, (k + 1) * D)  # this layer's slots in h_0, c_0, h_n, c_n
        on_step = None if progress is None else (lambda done, k=k: progress(k, done))
        c_0k = None if c_0 is None else c_0[rows]
        output, h, c = run_layer(cfg, params, k, layer_in, h_0[rows], c_0k, mask, on_step)
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
    from rnn_cli.core.result import RunResult

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


# ---- memory: what forward() allocates at its peak (the guard asks; tests/test_memory_calibration.py measures) ----


def peak_bytes(cfg: RunConfig, keep_layers: bool = False) -> int:
    """Bytes forward() holds at its peak beyond its inputs (the sample), for the memory guard.

    The peak is in the top layer's run_layer (the lower outputs alive are most there):
    - x_proj: per direction one buffer of k steps' x_t W_ih^T + b (k N, G*H_cell), k as
      projected_steps chooses it (BLOCK_BYTES), and the (k N, H_in) copy of x's block that
      reshape makes when x is not contiguous;
    - output: (L, N, D*H_out), beside them;
    - the lower layers' outputs (L, N, D*H_out): all of them with keep_layers, else the one
      the top layer reads;
    - one step's arrays: the gates (N, G*H_cell) and a few (N, H_cell), per direction;
    - the layer's Direction.of: W_hh^T (and W_hr^T) copied contiguous, the summed bias.
    """
    from rnn_cli.core.config import ITEMSIZE

    LN, D, GH = cfg.seq_len * cfg.N, cfg.D, cfg.gates * cfg.hidden_size
    item = ITEMSIZE[cfg.dtype]
    k = max(1, min(cfg.seq_len, BLOCK_BYTES // (cfg.N * GH * item)))  # steps per block, as projected_steps
    x_proj = D * k * cfg.N * (GH + max(cfg.input_size, D * cfg.H_out))
    output = LN * D * cfg.H_out
    top = cfg.num_layers - 1
    lower = top if keep_layers else min(top, 1)
    step = 4 * D * cfg.N * GH
    weights = D * (GH * (cfg.H_out + 1) + cfg.hidden_size * cfg.proj_size)
    return item * (lower * output + x_proj + output + step + weights)
