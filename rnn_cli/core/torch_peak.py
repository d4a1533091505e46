"""What torch_run.run and torch_grad.torch_gradients hold at their peak: the torch side of
the memory guard (guard.estimate_bytes asks these functions).

They sit here, not at the end of torch_run.py and torch_grad.py, because those two import
torch at their top and the guard must answer before torch is imported (under `ulimit -v` it
refuses a torch run whose import cannot fit). Each term names what ATen allocates in the
code it models; tests/test_memory_calibration.py measures each against the real peak.
Stdlib only.
"""

from __future__ import annotations

from rnn_cli.core.config import ITEMSIZE, RunConfig


def _rows(cfg: RunConfig) -> int:
    """Rows of one direction's work: L*N, or sum(lengths) when packed (padding is not run)."""
    return sum(cfg.lengths) if cfg.packed else cfg.seq_len * cfg.N


def layer_elements(cfg: RunConfig, input_size: int) -> int:
    """One layer of ATen's CPU forward, per direction: the input projection (rows, G*H_cell),
    the step outputs and their stack (rows, H_out) each (an LSTM with projection also keeps its
    unprojected states, H_cell); the backward direction also reverses its input and its output;
    then the directions' concatenation. A float32 LSTM without projection or packing runs in
    oneDNN instead: its workspace is about 2x the output (measured: 0.63 of the peak when a
    packed LSTM was counted so)."""
    D, G, Hc, Ho = cfg.D, cfg.gates, cfg.hidden_size, cfg.H_out
    rows = _rows(cfg)
    S = rows * Ho  # one direction's output
    if cfg.cell == "lstm" and cfg.dtype == "float32" and cfg.proj_size == 0 and not cfg.packed:
        per_direction = 2 * S
    else:  # linear_ih over every step, then the step outputs and at::stack of them, and in RNN's
        # and GRU's cells up to one more output's worth (measured: 103 MiB held where these came
        # to 78, rnn L=100 N=512 H=128; at other sizes 79: a freed block reused or not; a packed
        # LSTM stayed below the count without it)
        per_direction = rows * (G * Hc + (Hc if cfg.proj_size else 0) + (2 if cfg.cell == "lstm" else 3) * Ho)
    if D == 1:
        return per_direction
    return per_direction + S + rows * input_size + 4 * S  # fw output, reversed input; bw, its flip, the cat


def forward_bytes(cfg: RunConfig, keep_layers: bool = False) -> int:
    """torch_run.run at its peak beyond the sample: the module's parameters, then the largest
    of the full forward (layer k reads layer k-1's output; packed: the sorted and packed input
    beside it, then the packed output beside the padded one) and, with keep_layers, lower_layer_outputs' reruns
    (the full output, the lower outputs kept so far, one layer)."""
    out = cfg.seq_len * cfg.N * cfg.D * cfg.H_out  # (L, N, D*H_out)
    top = cfg.num_layers - 1
    forward = layer_elements(cfg, cfg.layer_input_size(top)) + (out if top else 0)
    phases = []
    if cfg.packed:  # pack_padded_sequence's sorted copy of the input and the packed input; after
        # the layers, the packed output and pad_packed_sequence's padded one
        rows = sum(cfg.lengths)
        forward += cfg.seq_len * cfg.N * cfg.input_size + rows * cfg.input_size + (0 if top else out)
        phases.append(rows * cfg.D * cfg.H_out + out)
    phases.append(forward)
    if keep_layers and top:
        phases.append(out + (top - 1) * out + layer_elements(cfg, cfg.layer_input_size(top - 1)))
    return ITEMSIZE[cfg.dtype] * (cfg.num_parameters() + max(phases))


def grad_bytes(cfg: RunConfig) -> int:
    """torch_grad.torch_gradients at its peak beyond the sample and the upstream gradients:
    autograd's saved tensors, per layer, direction and step: the cell's inputs and gates
    (x_t, h_{t-1}, c_{t-1}, the G*H_cell gates, tanh(c_t)) and, in ATen's cells, the gates'
    activations once more; the forward's output and the gradients flowing back (one layer's
    at a time); the parameters and their gradients; the upstream gradients G (drawn in float64
    by loss.draw_upstream, then rounded)."""
    G, Hc = cfg.gates, cfg.hidden_size
    out = cfg.seq_len * cfg.N * cfg.D * cfg.H_out
    per_step = cfg.layer_input_size(0) + 2 * cfg.H_out + (G + 3) * Hc
    saved = cfg.num_layers * cfg.D * cfg.seq_len * cfg.N * per_step
    factor = 1.85 if cfg.cell == "lstm" else 1.65  # measured: 1.7 and 1.5 came to 0.94-0.98 of the peak's growth
    return ITEMSIZE[cfg.dtype] * (int(saved * factor) + 2 * cfg.num_parameters() + out)
