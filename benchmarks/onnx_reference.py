"""ONNX's own numpy reference (onnx.reference.ReferenceEvaluator) as a peer of rnn-cli's.

`model(cfg, params)` builds the ONNX graph of a torch RNN/LSTM/GRU stack with onnx.helper:
one recurrent node per layer (direction "forward" or "bidirectional", GRU with
linear_before_reset=1 as torch computes it), its W, R, B mapped
from the same torch parameters rnn-cli runs (rnn_cli.formats.onnx_describe.onnx_weights: the gate
blocks reordered into ONNX's order) and stored as initializers, and between layers the
Transpose(0, 2, 1, 3) + Reshape that turns Y [L, D, N, H] into torch's (L, N, D*H).
Inputs X [L, N, H_in] and initial_h (initial_c) [D*num_layers, N, H]; outputs output
(L, N, D*H) and h_n (c_n) as torch returns them, time-major.

`Peer(cfg, sample)` holds a ReferenceEvaluator on that model and the feeds: `.forward()`
is one run, `.check(expected)` compares its outputs with another implementation's.
Not for --lengths, proj_size (ONNX's LSTM has no projection) or relu (onnx.reference's
RNN knows only Tanh, Sigmoid and Affine): the benchmark's cases have none of them.
"""

from __future__ import annotations

import numpy as np

OPS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def model(cfg, params: dict[str, np.ndarray]):
    from onnx import TensorProto, helper, numpy_helper

    from rnn_cli.formats.onnx_describe import onnx_weights

    if cfg.proj_size or cfg.packed or (cfg.cell == "rnn" and cfg.nonlinearity != "tanh"):
        raise ValueError("the ONNX reference peer covers neither proj_size, --lengths nor relu")
    elem = TensorProto.FLOAT if cfg.dtype == "float32" else TensorProto.DOUBLE
    D, H, K = cfg.D, cfg.hidden_size, cfg.num_layers
    direction = "bidirectional" if cfg.bidirectional else "forward"
    nodes, inits = [], [numpy_helper.from_array(np.array([0, 0, D * H], np.int64), "flat_shape")]
    states: dict[str, list[str]] = {"h_n": [], "c_n": []}
    layer_in = "X"
    for k in range(K):
        weights = onnx_weights(cfg, params, k)  # W (D, G*H, H_in_k), R (D, G*H, H), B (D, 2*G*H)
        for name, value in weights.items():
            inits.append(numpy_helper.from_array(value, f"{name}_{k}"))
        inits += [numpy_helper.from_array(np.array([k * D], np.int64), f"rows_{k}_start"),
                  numpy_helper.from_array(np.array([(k + 1) * D], np.int64), f"rows_{k}_end")]
        for state in ("h", "c") if cfg.has_c else ("h",):  # this layer's rows of initial_h / initial_c
            nodes.append(helper.make_node("Slice", [f"initial_{state}", f"rows_{k}_start", f"rows_{k}_end"],
                                          [f"{state}0_{k}"]))
        inputs = [layer_in, f"W_{k}", f"R_{k}", f"B_{k}" if cfg.bias else "", "", f"h0_{k}"]
        outputs = [f"Y_{k}", f"Y_h_{k}"]
        attrs: dict = {"hidden_size": H, "direction": direction}
        if cfg.cell == "lstm":
            inputs.append(f"c0_{k}")
            outputs.append(f"Y_c_{k}")
        elif cfg.cell == "gru":
            attrs["linear_before_reset"] = 1  # torch: r * (W_hn h + b_hn)
        nodes.append(helper.make_node(OPS[cfg.cell], inputs, outputs, **attrs))
        nodes.append(helper.make_node("Transpose", [f"Y_{k}"], [f"Y_t_{k}"], perm=[0, 2, 1, 3]))  # [L, N, D, H]
        layer_in = "output" if k == K - 1 else f"out_{k}"
        nodes.append(helper.make_node("Reshape", [f"Y_t_{k}", "flat_shape"], [layer_in]))  # (L, N, D*H)
        states["h_n"].append(f"Y_h_{k}")
        states["c_n"].append(f"Y_c_{k}")
    names = ["h_n", "c_n"] if cfg.has_c else ["h_n"]
    for name in names:
        nodes.append(helper.make_node("Concat", states[name], [name], axis=0))
    L, N = cfg.seq_len, cfg.N
    graph_inputs = [helper.make_tensor_value_info("X", elem, [L, N, cfg.input_size]),
                    helper.make_tensor_value_info("initial_h", elem, [D * K, N, H])]
    if cfg.has_c:
        graph_inputs.append(helper.make_tensor_value_info("initial_c", elem, [D * K, N, H]))
    graph_outputs = [helper.make_tensor_value_info(n, elem, None) for n in ["output", *names]]
    graph = helper.make_graph(nodes, "rnn_cli_peer", graph_inputs, graph_outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


class Peer:
    """onnx.reference.ReferenceEvaluator on model(cfg, sample.params), fed the sample."""

    def __init__(self, cfg, sample) -> None:
        from onnx.reference import ReferenceEvaluator

        self.evaluator = ReferenceEvaluator(model(cfg, sample.params))
        self.feeds = {"X": sample.x, "initial_h": sample.h_0}
        if cfg.has_c:
            self.feeds["initial_c"] = sample.c_0

    def forward(self) -> list[np.ndarray]:
        """One forward: [output (L, N, D*H), h_n (D*num_layers, N, H)(, c_n)]."""
        with np.errstate(over="ignore"):  # its sigmoid, 1 / (1 + exp(-x)), overflows for x << 0
            return self.evaluator.run(None, self.feeds)

    def check(self, expected: list[np.ndarray], atol: float, rtol: float) -> float:
        """Largest |ONNX reference - expected| over output, h_n (c_n); raises ValueError
        when any element is off by more than atol + rtol * |expected|."""
        worst = 0.0
        for got, want in zip(self.forward(), expected):
            if got.shape != want.shape:
                raise ValueError(f"the ONNX reference gave shape {got.shape}, expected {want.shape}")
            diff = np.abs(got.astype(np.float64) - want)
            worst = max(worst, float(diff.max()))
            if not np.all(diff <= atol + rtol * np.abs(want)):
                raise ValueError(f"the ONNX reference is {float(diff.max()):.3g} off the expected output")
        return worst
