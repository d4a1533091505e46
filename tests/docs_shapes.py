"""The PyTorch documentation's shape formulas, written out once for every test.

From the nn.RNN / nn.LSTM / nn.GRU docs, with D = 2 if bidirectional else 1 and
H_out = proj_size if proj_size > 0 else hidden_size (H_cell = hidden_size):

    input   (L, N, H_in), (N, L, H_in) when batch_first, (L, H_in) unbatched
    output  (L, N, D*H_out), (N, L, D*H_out) when batch_first, (L, D*H_out) unbatched
    h_0/h_n (D*num_layers, N, H_out), (D*num_layers, H_out) unbatched; never batch_first
    c_0/c_n (D*num_layers, N, H_cell), (D*num_layers, H_cell) unbatched; never batch_first
    packed output .data (sum(lengths), D*H_out), .batch_sizes (max(lengths),)
    weight_ih_l[k] (G*H_cell, H_in) for k = 0, else (G*H_cell, D*H_out); weight_hh_l[k]
    (G*H_cell, H_out); bias_ih/bias_hh (G*H_cell,); weight_hr_l[k] (proj_size, H_cell);
    G = 1 (rnn), 4 (lstm: i, f, g, o), 3 (gru: r, z, n); suffix _reverse for direction 1.

Reads only a config's plain fields, never its shape methods: these are the oracle.
"""

from __future__ import annotations


def documented_shapes(cfg) -> dict[str, tuple[int, ...]]:
    L, H_in, H_cell = cfg.seq_len, cfg.input_size, cfg.hidden_size
    D = 2 if cfg.bidirectional else 1
    H_out = cfg.proj_size if cfg.proj_size > 0 else H_cell
    DL = D * cfg.num_layers
    if cfg.batch is None:  # unbatched: no N anywhere, batch_first irrelevant

        def seq(f):
            return (L, f)

        def state(f):
            return (DL, f)
    else:
        N = cfg.batch

        def seq(f):
            return (N, L, f) if cfg.batch_first else (L, N, f)

        def state(f):
            return (DL, N, f)  # batch_first never applies to states

    out = {"input": seq(H_in), "h_0": state(H_out)}
    if cfg.cell == "lstm":
        out["c_0"] = state(H_cell)
    out["output"] = seq(D * H_out)
    out["h_n"] = state(H_out)
    if cfg.cell == "lstm":
        out["c_n"] = state(H_cell)
    if cfg.lengths is not None:
        out["packed_data"] = (sum(cfg.lengths), D * H_out)
        out["batch_sizes"] = (max(cfg.lengths),)
    return out


def documented_parameter_shapes(cfg) -> dict[str, tuple[int, ...]]:
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cfg.cell]
    D = 2 if cfg.bidirectional else 1
    H = cfg.hidden_size
    H_out = cfg.proj_size if cfg.proj_size > 0 else H
    shapes = {}
    for k in range(cfg.num_layers):
        for suffix in ("", "_reverse")[:D]:
            shapes[f"weight_ih_l{k}{suffix}"] = (G * H, cfg.input_size if k == 0 else D * H_out)
            shapes[f"weight_hh_l{k}{suffix}"] = (G * H, H_out)
            if cfg.bias:
                shapes[f"bias_ih_l{k}{suffix}"] = (G * H,)
                shapes[f"bias_hh_l{k}{suffix}"] = (G * H,)
            if cfg.proj_size > 0:
                shapes[f"weight_hr_l{k}{suffix}"] = (cfg.proj_size, H)
    return shapes
