"""What a recurrent layer costs: parameters, multiply-accumulates, FLOPs and the activations
a training step keeps for backpropagation through time, per layer and direction.

Pure arithmetic on a RunConfig (no numpy, no torch, no rich): the views, the JSON documents
and bench's GFLOP/s all read these numbers, so there is one definition of work.

The counting rules (also in the README, "What it costs"), in PyTorch's symbols:

    G       gates stacked in each weight: rnn 1, lstm 4, gru 3
    H_in_k  inputs of layer k: H_in for k = 0, D*H_out above it
    P       proj_size (lstm only; 0 otherwise)
    N_t     sequences still running at step t: N without --lengths (1 unbatched); with
            --lengths and packing, the number of lengths > t (PackedSequence.batch_sizes);
            N at every one of the L steps under --no-pack (the padding is computed too)
    S       sequence-steps of one layer-direction: sum over t of N_t

    macs    per layer-direction: S * (G*H_cell*H_in_k + G*H_cell*H_out + H_cell*P)
            (input projection, recurrent product, projection: every weight element of the
            three matrices is used once per sequence-step; biases are not products)
    flops   2 * macs + S * (element-wise operations of one step, ELEMENTWISE below)
    activation_bytes
            S * (values kept per sequence-step, KEPT below) * itemsize, plus h_0 (and c_0)
            per sequence: what backpropagation through time reads again
"""

from __future__ import annotations

from dataclasses import dataclass

from rnn_cli.core.config import ITEMSIZE, RunConfig

# Element-wise operations of one step of one sequence, in multiples of H_cell, following
# PyTorch's documented equations. Each sigmoid, tanh or relu counts as one operation.
#   sum      adding the input product to the recurrent one (per gate row)
#   bias     adding b_ih and b_hh (only with bias=True)
#   act      the gate nonlinearities
#   cell     the state update
ELEMENTWISE: dict[str, dict[str, int]] = {
    # h' = act(W_ih x + b_ih + W_hh h + b_hh)
    "rnn": {"sum": 1, "bias": 2, "act": 1, "cell": 0},
    # i,f,o = sigmoid(.), g = tanh(.);  c' = f*c + i*g  (2 mul, 1 add);  h' = o * tanh(c')  (1 tanh, 1 mul)
    "lstm": {"sum": 4, "bias": 8, "act": 4, "cell": 5},
    # r,z = sigmoid(.);  n = tanh(W_in x + b_in + r*(W_hn h + b_hn))  (1 mul, its add is in sum);
    # h' = (1-z)*n + z*h  (1 sub, 2 mul, 1 add)
    "gru": {"sum": 3, "bias": 6, "act": 3, "cell": 5},
}

# Values one sequence-step keeps for the backward, beyond the layer input x_t (H_in_k) and
# the new hidden state h_t (H_out), in multiples of H_cell (see activation_elements).
#   rnn   nothing more: act' is read from h_t
#   lstm  i, f, g, o, c_t, tanh(c_t); with proj_size also o*tanh(c_t) before the projection
#   gru   r, z, n, and W_hn h + b_hn (the reset gate's gradient needs it)
KEPT = {"rnn": 0, "lstm": 6, "gru": 4}


def elementwise_per_step(cfg: RunConfig) -> int:
    """Element-wise operations of one step of one sequence in one layer-direction."""
    ops = ELEMENTWISE[cfg.cell]
    per_cell = ops["sum"] + (ops["bias"] if cfg.bias else 0) + ops["act"] + ops["cell"]
    return per_cell * cfg.hidden_size


def sequence_steps(cfg: RunConfig) -> int:
    """S = sum over t of N_t: the steps actually computed, per layer and direction."""
    if cfg.packed:
        return sum(cfg.lengths)  # sum_t of #{n : lengths[n] > t}
    return cfg.N * cfg.seq_len  # every step of every sequence (padding too under --no-pack)


def step_macs(cfg: RunConfig, layer: int) -> int:
    """Multiply-accumulates of one step of one sequence in one direction of `layer`."""
    G, H = cfg.gates, cfg.hidden_size
    return G * H * cfg.layer_input_size(layer) + G * H * cfg.H_out + H * cfg.proj_size


def layer_parameters(cfg: RunConfig, layer: int) -> int:
    """Parameters of one direction of `layer`: W_ih, W_hh, b_ih, b_hh, W_hr."""
    G, H = cfg.gates, cfg.hidden_size
    return step_macs(cfg, layer) + (2 * G * H if cfg.bias else 0)


def activation_elements(cfg: RunConfig, layer: int) -> int:
    """Values one direction of `layer` keeps for the backward: per sequence-step x_t, h_t and
    the cell's own (KEPT), plus h_0 (c_0) per sequence. A layer's input is counted in each
    direction that reads it (no sharing assumed)."""
    H = cfg.hidden_size
    extra = KEPT[cfg.cell] + (1 if cfg.proj_size else 0)
    per_step = cfg.layer_input_size(layer) + cfg.H_out + extra * H
    initial = cfg.N * (cfg.H_out + (H if cfg.has_c else 0))
    return sequence_steps(cfg) * per_step + initial


@dataclass(frozen=True)
class Part:
    """The cost of one layer-direction, or of the whole module (layer and direction None)."""

    layer: int | None
    direction: str | None  # "forward" / "backward"
    params: int
    param_bytes: int
    macs: int
    flops: int
    activation_bytes: int


@dataclass(frozen=True)
class Cost:
    dtype: str
    sequence_steps: int  # S, the same for every layer-direction
    elementwise_per_step: int  # per sequence-step and layer-direction
    parts: tuple[Part, ...]  # one per layer and direction, torch's order
    total: Part


def cost(cfg: RunConfig) -> Cost:
    """Every count for cfg, per layer and direction and in total."""
    item = ITEMSIZE[cfg.dtype]
    S, ew = sequence_steps(cfg), elementwise_per_step(cfg)
    parts = []
    for layer in range(cfg.num_layers):
        params, macs = layer_parameters(cfg, layer), S * step_macs(cfg, layer)
        for d in range(cfg.D):
            parts.append(Part(layer, ("forward", "backward")[d], params, params * item, macs,
                              2 * macs + S * ew, item * activation_elements(cfg, layer)))
    total = Part(None, None, *(sum(getattr(p, f) for p in parts)
                               for f in ("params", "param_bytes", "macs", "flops", "activation_bytes")))
    return Cost(cfg.dtype, S, ew, tuple(parts), total)


def forward_flops(cfg: RunConfig) -> int:
    """The whole forward's FLOPs (what bench divides by its time)."""
    return cost(cfg).total.flops


def saved_bytes_source(implementation: str) -> str:
    """How --grad's kept bytes were measured, for the view and the JSON."""
    if implementation == "manual":
        return "numpy BPTT: the recorded forward's per-step caches"
    return "torch autograd's saved tensors, parameters excluded"
