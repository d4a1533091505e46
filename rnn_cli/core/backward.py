"""Backpropagation through time written out in numpy: the gradients of `--grad`.

The loss is a fixed linear function of what the forward returns, with upstream gradients
G drawn from the seed after everything the forward draws (`draw_upstream`):

    --loss sum   L = sum(output * G_out) + sum(h_n * G_h) (+ sum(c_n * G_c) for LSTM)
                 G_out is zero at padded positions; every path gets a gradient.
    --loss last  L = sum_n output[T_n, n, :] . G_last[n],  T_n = lengths[n] - 1 (or L - 1)
                 G_out is non-zero only at t = T_n; G_h and G_c are zero.

So dL/doutput = G_out, dL/dh_n = G_h, dL/dc_n = G_c, and BPTT carries them back through
every step, direction and layer to the parameters, the input and h_0 (c_0).

Each cell has a forward step that returns what its backward needs (a cache) and a
backward step; their docstrings hold the equations. The forward here is recorded
separately from manual.py on purpose (manual.py is tuned for speed and keeps nothing);
tests check that both give the same output.

Packed lengths: at a padded step t of sequence n the state is carried unchanged
(state_t = state_{t-1}) and output_t is zero, so the state's gradient passes through
unchanged and no upstream arrives from the output.

numpy only: this module must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from rnn_cli.core import layout
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import step_mask
from rnn_cli.core.loss import Upstream, loss_value

DIRECTIONS = ("forward", "backward")

State = tuple[np.ndarray, ...]  # (h,) or (h, c), each (N, features)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def tanh_grad(y: np.ndarray) -> np.ndarray:
    """d tanh(a) / da = 1 - tanh(a)^2, from y = tanh(a): every cell's tanh goes through here."""
    return 1.0 - y * y


# ---- one layer-direction's parameters, in torch's layout -------------------------------------


@dataclass(frozen=True)
class CellParams:
    weight_ih: np.ndarray  # (G*H_cell, H_in of this layer)
    weight_hh: np.ndarray  # (G*H_cell, H_out)
    bias_ih: np.ndarray | None  # (G*H_cell,)
    bias_hh: np.ndarray | None  # (G*H_cell,)
    weight_hr: np.ndarray | None  # (proj_size, H_cell), LSTM with proj_size only
    relu: bool = False


def suffix(layer: int, direction: int) -> str:
    return layout.suffix(layer, direction)


def cell_params(cfg: RunConfig, params: dict[str, np.ndarray], layer: int, direction: int) -> CellParams:
    sfx = suffix(layer, direction)
    return CellParams(
        weight_ih=params[f"weight_ih_{sfx}"],
        weight_hh=params[f"weight_hh_{sfx}"],
        bias_ih=params.get(f"bias_ih_{sfx}") if cfg.bias else None,
        bias_hh=params.get(f"bias_hh_{sfx}") if cfg.bias else None,
        weight_hr=params.get(f"weight_hr_{sfx}") if cfg.proj_size else None,
        relu=cfg.nonlinearity == "relu",
    )


def _linear(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x W^T + b."""
    y = x @ W.T
    return y if b is None else y + b


def _linear_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, grads: dict, w: str, b: str | None) -> np.ndarray:
    """y = x W^T + b:  dW += dy^T x;  db += sum_n dy;  returns dx = dy W."""
    grads[w] += dy.T @ x
    if b is not None and b in grads:
        grads[b] += dy.sum(axis=0)
    return dy @ W


# ---- one forward step and one backward step per cell ----------------------------------------


def rnn_step(x_t: np.ndarray, state: State, p: CellParams) -> tuple[State, tuple]:
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  act = tanh or relu."""
    (h,) = state
    a = _linear(x_t, p.weight_ih, p.bias_ih) + _linear(h, p.weight_hh, p.bias_hh)  # (N, H)
    h_t = np.maximum(a, 0) if p.relu else np.tanh(a)
    return (h_t,), (x_t, h, h_t)


def rnn_step_backward(d_state: State, cache: tuple, p: CellParams, grads: dict) -> tuple[np.ndarray, State]:
    """da = dh_t * act'(a),  act' = 1 - h_t^2 (tanh) or [a > 0] (relu);
    dW_ih += da^T x_t, dW_hh += da^T h_{t-1}, db_ih = db_hh += sum_n da;
    dx_t = da W_ih,  dh_{t-1} = da W_hh."""
    (dh_t,) = d_state
    x_t, h, h_t = cache
    da = dh_t * ((h_t > 0) if p.relu else tanh_grad(h_t))  # (N, H)
    dx = _linear_backward(da, x_t, p.weight_ih, grads, "weight_ih", "bias_ih")
    dh = _linear_backward(da, h, p.weight_hh, grads, "weight_hh", "bias_hh")
    return dx, (dh,)


def lstm_step(x_t: np.ndarray, state: State, p: CellParams) -> tuple[State, tuple]:
    """i, f, g, o = split(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)   (torch's gate order)
    i, f, o = sigmoid(.);  g = tanh(.)
    c_t = f * c_{t-1} + i * g
    m_t = o * tanh(c_t);   h_t = m_t W_hr^T with proj_size, else h_t = m_t."""
    h, c = state
    a = _linear(x_t, p.weight_ih, p.bias_ih) + _linear(h, p.weight_hh, p.bias_hh)  # (N, 4H)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_t = f * c + i * g  # (N, H_cell)
    tanh_c = np.tanh(c_t)
    m_t = o * tanh_c  # (N, H_cell)
    h_t = m_t if p.weight_hr is None else m_t @ p.weight_hr.T  # (N, H_out)
    return (h_t, c_t), (x_t, h, c, i, f, g, o, tanh_c, m_t)


def lstm_step_backward(d_state: State, cache: tuple, p: CellParams, grads: dict) -> tuple[np.ndarray, State]:
    """dm = dh_t W_hr (dW_hr += dh_t^T m_t) with proj_size, else dm = dh_t;
    do = dm * tanh(c_t);  dc = dc_t + dm * o * (1 - tanh(c_t)^2)
    di = dc * g;  df = dc * c_{t-1};  dg = dc * i;  dc_{t-1} = dc * f
    da = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]   (through the activations)
    then as the RNN: dW_ih += da^T x_t, dW_hh += da^T h_{t-1}, dx_t = da W_ih, dh_{t-1} = da W_hh."""
    dh_t, dc_t = d_state
    x_t, h, c, i, f, g, o, tanh_c, m_t = cache
    if p.weight_hr is None:
        dm = dh_t
    else:
        grads["weight_hr"] += dh_t.T @ m_t
        dm = dh_t @ p.weight_hr  # (N, H_cell)
    do = dm * tanh_c
    dc = dc_t + dm * o * tanh_grad(tanh_c)
    di, df, dg, dc_prev = dc * g, dc * c, dc * i, dc * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * tanh_grad(g), do * o * (1 - o)], axis=1)  # (N, 4H)
    dx = _linear_backward(da, x_t, p.weight_ih, grads, "weight_ih", "bias_ih")
    dh = _linear_backward(da, h, p.weight_hh, grads, "weight_hh", "bias_hh")
    return dx, (dh, dc_prev)


def gru_step(x_t: np.ndarray, state: State, p: CellParams) -> tuple[State, tuple]:
    """x_r, x_z, x_n = split(x_t W_ih^T + b_ih);  h_r, h_z, h_n = split(h_{t-1} W_hh^T + b_hh)
    r = sigmoid(x_r + h_r);  z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)          (b_hn sits inside r * (...))
    h_t = (1 - z) * n + z * h_{t-1}"""
    (h,) = state
    x_r, x_z, x_n = np.split(_linear(x_t, p.weight_ih, p.bias_ih), 3, axis=1)  # (N, H) each
    h_r, h_z, h_n = np.split(_linear(h, p.weight_hh, p.bias_hh), 3, axis=1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    h_t = (1 - z) * n + z * h
    return (h_t,), (x_t, h, r, z, n, h_n)


def gru_step_backward(d_state: State, cache: tuple, p: CellParams, grads: dict) -> tuple[np.ndarray, State]:
    """dn = dh_t (1 - z);  dz = dh_t (h_{t-1} - n);  dh_{t-1} = dh_t z  (+ through the gates)
    da_n = dn (1 - n^2);  dr = da_n * h_n;  dh_n = da_n * r
    da_r = dr r(1-r);  da_z = dz z(1-z)
    input side  d[x_r, x_z, x_n] = [da_r, da_z, da_n]:     dW_ih, db_ih, dx_t = (.) W_ih
    hidden side d[h_r, h_z, h_n] = [da_r, da_z, da_n * r]: dW_hh, db_hh, dh_{t-1} += (.) W_hh"""
    (dh_t,) = d_state
    x_t, h, r, z, n, h_n = cache
    dn = dh_t * (1 - z)
    dz = dh_t * (h - n)
    da_n = dn * tanh_grad(n)
    da_r = da_n * h_n * r * (1 - r)
    da_z = dz * z * (1 - z)
    dx = _linear_backward(np.concatenate([da_r, da_z, da_n], axis=1), x_t, p.weight_ih, grads, "weight_ih", "bias_ih")
    d_hidden = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (N, 3H)
    dh = dh_t * z + _linear_backward(d_hidden, h, p.weight_hh, grads, "weight_hh", "bias_hh")
    return dx, (dh,)


Step = Callable[[np.ndarray, State, CellParams], tuple[State, tuple]]
StepBackward = Callable[[State, tuple, CellParams, dict], tuple[np.ndarray, State]]
CELLS: dict[str, tuple[Step, StepBackward]] = {
    "rnn": (rnn_step, rnn_step_backward),
    "lstm": (lstm_step, lstm_step_backward),
    "gru": (gru_step, gru_step_backward),
}


# ---- the recorded forward: every step's cache, every layer's input ---------------------------


@dataclass
class Direction:
    """One layer-direction's recorded forward."""

    params: CellParams
    caches: list  # caches[t] for time index t (not processing order)
    reverse: bool


@dataclass
class Recording:
    output: np.ndarray  # (L, N, D*H_out)
    h_n: np.ndarray  # (D*num_layers, N, H_out)
    c_n: np.ndarray | None  # (D*num_layers, N, H_cell)
    directions: list[list[Direction]]  # [layer][direction]


def _time_order(L: int, reverse: bool) -> range:
    return range(L - 1, -1, -1) if reverse else range(L)


def record_forward(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, h_0: np.ndarray, c_0: np.ndarray | None = None
) -> Recording:
    """The forward of manual.forward, keeping each step's cache for the backward.

    x (L, N, H_in) time-major; h_0 (D*num_layers, N, H_out); c_0 (D*num_layers, N, H_cell).
    With lengths, a padded step keeps the old state and its output is zero.
    """
    L, N, _ = x.shape
    D, H_out = cfg.D, cfg.H_out
    step, _ = CELLS[cfg.cell]
    mask = step_mask(cfg) if cfg.packed else None  # (L, N, 1)
    h_n = np.empty((D * cfg.num_layers, N, H_out), x.dtype)
    c_n = np.empty((D * cfg.num_layers, N, cfg.hidden_size), x.dtype) if cfg.has_c else None
    layers: list[list[Direction]] = []
    layer_in = x
    for layer in range(cfg.num_layers):
        out = np.zeros((L, N, D * H_out), x.dtype)  # (L, N, D*H_out)
        recorded = []
        for d in range(D):
            k = layer * D + d
            p = cell_params(cfg, params, layer, d)
            state: State = (h_0[k],) if c_0 is None else (h_0[k], c_0[k])
            caches: list = [None] * L
            for t in _time_order(L, bool(d)):
                new, caches[t] = step(layer_in[t], state, p)
                if mask is not None:  # padded: keep the old state
                    new = tuple(np.where(mask[t], a, b) for a, b in zip(new, state))
                    out[t, :, d * H_out : (d + 1) * H_out] = new[0] * mask[t]
                else:
                    out[t, :, d * H_out : (d + 1) * H_out] = new[0]
                state = new
            h_n[k] = state[0]
            if c_n is not None:
                c_n[k] = state[1]
            recorded.append(Direction(params=p, caches=caches, reverse=bool(d)))
        layers.append(recorded)
        layer_in = out
    return Recording(output=layer_in, h_n=h_n, c_n=c_n, directions=layers)


# ---- the backward: through time, directions and layers ---------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class Gradients:
    params: dict[str, np.ndarray]  # dL/d(parameter), torch's names and order
    input: np.ndarray  # (L, N, H_in) time-major
    h_0: np.ndarray  # (D*num_layers, N, H_out)
    c_0: np.ndarray | None  # (D*num_layers, N, H_cell), LSTM only
    norm_per_step: dict[tuple[int, str], np.ndarray] | None  # (layer, "forward"/"backward") -> (L,) ||dL/dh_t||
    loss: float
    loss_kind: str = "sum"  # the Upstream's loss: "sum" or "last"
    saved_bytes: int | None = None  # measured: bytes the forward kept for this backward (saved_bytes())
    # Computed here, drawn by the views; on first use, not when made, so that bench --grad
    # does not time them.

    @cached_property
    def norms(self) -> dict[str, float]:
        """||dL/d(name)|| for every tensor above."""
        return gradient_norms(self)

    @cached_property
    def first_last(self) -> dict[tuple[int, str], float | None]:
        """For each layer-direction of norm_per_step, how much the gradient fades along the
        direction's own time: ||dL/dh_t|| at the step backprop reaches last over the step where
        it enters (forward: t=0 over t=L-1; backward: t=L-1 over t=0). None: nothing enters."""
        return {key: first_last_ratio(n, key[1] == "backward") for key, n in (self.norm_per_step or {}).items()}


def gradient_norms(grads: Gradients) -> dict[str, float]:
    """||dL/d(name)|| (Frobenius, in float64) for every parameter, then input, h_0 (c_0)."""
    arrays = dict(grads.params, input=grads.input, h_0=grads.h_0)
    if grads.c_0 is not None:
        arrays["c_0"] = grads.c_0
    return {name: float(np.sqrt(np.sum(np.square(a, dtype=np.float64)))) for name, a in arrays.items()}


def first_last_ratio(norms: np.ndarray, reverse: bool = False) -> float | None:
    """||dL/dh|| where backprop reaches last / where it enters, for one layer-direction's (L,)
    norms: t=0 / t=L-1 for a forward direction, t=L-1 / t=0 for a reverse one (its
    backprop runs from t=0 up). None when no gradient enters."""
    entered, reached = (norms[0], norms[-1]) if reverse else (norms[-1], norms[0])
    return None if float(entered) == 0 else float(reached) / float(entered)


def _direction_backward(
    cfg: RunConfig, rec: Direction, d_out: np.ndarray, d_final: State, mask: np.ndarray | None, grads: dict
) -> tuple[np.ndarray, State, np.ndarray]:
    """BPTT over one layer-direction.

    d_out (L, N, H_out): dL/d(this direction's output at t); d_final: dL/d(final state).
    Walks the steps in the opposite order of the forward. Returns dL/d(layer input)
    (L, N, H_in of this layer), dL/d(initial state), and (L,) ||dL/dh_t||, where h_t is the
    state after step t and its gradient comes from output_t and from the steps after it.
    """
    _, step_backward = CELLS[cfg.cell]
    L = d_out.shape[0]
    d_in = np.empty((L,) + rec.caches[0][0].shape, d_out.dtype)  # caches start with x_t
    norms = np.empty(L)
    d_state = tuple(d_final)
    for t in _time_order(L, not rec.reverse):
        m = None if mask is None else mask[t]  # (N, 1)
        dh_t = d_state[0] + (d_out[t] if m is None else d_out[t] * m)  # (N, H_out)
        norms[t] = np.sqrt(np.sum(dh_t * dh_t, dtype=np.float64))
        d_new = (dh_t,) + d_state[1:]
        if m is None:
            d_in[t], d_state = step_backward(d_new, rec.caches[t], rec.params, grads)
        else:  # state_t = where(m, cell(state_{t-1}), state_{t-1})
            d_in[t], d_prev = step_backward(tuple(g * m for g in d_new), rec.caches[t], rec.params, grads)
            d_state = tuple(dp + np.where(m, 0, g) for dp, g in zip(d_prev, d_new))
    return d_in, d_state, norms


def backward_through_time(cfg: RunConfig, rec: Recording, upstream: Upstream) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """From the top layer down: (param grads, dL/dinput, dL/dh_0, dL/dc_0, norms)."""
    D, H_out = cfg.D, cfg.H_out
    mask = step_mask(cfg) if cfg.packed else None
    d_h0 = np.zeros_like(upstream.h_n)
    d_c0 = None if upstream.c_n is None else np.zeros_like(upstream.c_n)
    param_grads: dict[str, np.ndarray] = {}
    norms: dict[tuple[int, str], np.ndarray] = {}
    d_layer_out = upstream.output  # (L, N, D*H_out)
    for layer in range(cfg.num_layers - 1, -1, -1):
        d_layer_in = None
        for d, recorded in enumerate(rec.directions[layer]):
            k = layer * D + d
            p = recorded.params
            grads = {"weight_ih": np.zeros_like(p.weight_ih), "weight_hh": np.zeros_like(p.weight_hh)}
            if p.bias_ih is not None:
                grads["bias_ih"], grads["bias_hh"] = np.zeros_like(p.bias_ih), np.zeros_like(p.bias_hh)
            if p.weight_hr is not None:
                grads["weight_hr"] = np.zeros_like(p.weight_hr)
            d_final = (upstream.h_n[k],) if d_c0 is None else (upstream.h_n[k], upstream.c_n[k])
            d_out = d_layer_out[:, :, d * H_out : (d + 1) * H_out]  # (L, N, H_out)
            d_in, d_start, norms[(layer, DIRECTIONS[d])] = _direction_backward(cfg, recorded, d_out, d_final, mask, grads)
            d_layer_in = d_in if d_layer_in is None else d_layer_in + d_in
            d_h0[k] = d_start[0]
            if d_c0 is not None:
                d_c0[k] = d_start[1]
            for short, g in grads.items():
                param_grads[f"{short}_{suffix(layer, d)}"] = g
        d_layer_out = d_layer_in  # the layer below's output feeds this layer's input
    ordered = {name: param_grads[name] for name in cfg.parameter_shapes()}
    return ordered, d_layer_out, d_h0, d_c0, norms


def saved_bytes(rec: Recording) -> int:
    """Bytes of the arrays the recorded forward keeps for the backward (every step's cache),
    each memory region counted once: h_{t-1} of one step is h_t of the step before."""
    regions = {}
    for layer in rec.directions:
        for direction in layer:
            for cache in direction.caches:
                for a in cache or ():
                    regions[(a.__array_interface__["data"][0], a.nbytes)] = a.nbytes
    return sum(regions.values())


def gradients(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    h_0: np.ndarray,
    c_0: np.ndarray | None,
    upstream: Upstream,
) -> Gradients:
    """dL/d(every parameter, input, h_0, c_0) by BPTT, in x's dtype (time-major x, as manual.forward)."""
    with np.errstate(over="ignore"):
        rec = record_forward(cfg, params, x, h_0, c_0)
    param_grads, d_x, d_h0, d_c0, norms = backward_through_time(cfg, rec, upstream)
    return Gradients(
        saved_bytes=saved_bytes(rec),
        params=param_grads,
        input=d_x,
        h_0=d_h0,
        c_0=d_c0,
        norm_per_step=norms,
        loss=loss_value(upstream, rec.output, rec.h_n, rec.c_n),
        loss_kind=upstream.loss,
    )


# ---- memory: what --grad's numpy side allocates (the guard asks; tests/test_memory_calibration.py measures) ----


def peak_bytes(cfg: RunConfig) -> int:
    """Bytes draw_upstream() and gradients() hold at their peak beyond the sample (and beyond
    the forward's result, which the caller keeps), for the memory guard.

    - every step's cache, kept by record_forward for the backward, per layer and direction,
      in (N, .) arrays: rnn h_t; lstm i, f, g, o, c_t, tanh(c_t), m_t (and h_t = m_t W_hr^T
      with proj_size); gru r, z, n, h_t and h_{t-1} W_hh^T + b_hh (N, 3*H_cell), which
      the cached view h_n keeps whole; with lengths, np.where's carried state (h, and c);
    - every layer's output (L, N, D*H_out): the layer above's x_t are views of it;
    - G_out, the upstream (L, N, D*H_out) (drawn in float64 first, then rounded);
    - going down, one layer's dL/d(input) per direction (L, N, H_in of the layer) and, with
      two directions, their sum, beside the dL/d(output) the layer above handed down;
    - the parameter gradients, and at the end the loss's product output * G_out;
    - the allocator's holes: each step frees its temporaries (an LSTM's pre-activation
      (N, 4*H_cell)) between arrays it keeps, and glibc does not give back memory inside its
      heap (measured: 33 MiB above numpy's own count for an LSTM, L=50, N=512, H=64).
    """
    from rnn_cli.core.config import ITEMSIZE

    L, N, D, H, layers = cfg.seq_len, cfg.N, cfg.D, cfg.hidden_size, cfg.num_layers
    per_step = {"rnn": H, "lstm": 7 * H + cfg.proj_size, "gru": 7 * H}[cfg.cell]
    if cfg.packed:
        per_step += cfg.H_out + (H if cfg.has_c else 0)
    holes = 4 * H if cfg.cell == "lstm" else 2 * H  # measured: about 4.5 H (lstm), 1.4 H (gru)
    caches = layers * D * L * N * (per_step + holes)
    output = L * N * D * cfg.H_out
    first = (output if layers > 1 else 0) + (2 * D - 1) * L * N * cfg.input_size  # layer 0's dL/dx
    upper = ((output if layers > 2 else 0) + (2 * D - 1) * output) if layers > 1 else 0  # layer 1's
    held = caches + (layers + 2) * output + max(first, upper) + 2 * cfg.num_parameters()
    return max(ITEMSIZE[cfg.dtype] * held, (ITEMSIZE[cfg.dtype] + 8) * output)
