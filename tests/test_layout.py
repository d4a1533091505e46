"""layout.py: the gate orders and parameter names of each framework, and the permutations
between torch's order and the others, checked against the frameworks themselves.

The orders below are written out here from each framework's documentation, not read from
layout.py: torch's nn.LSTM/nn.GRU docs (weight_ih_l[k] = W_ii|W_if|W_ig|W_io, W_ir|W_iz|W_in),
the ONNX operator spec (W = W[iofc], W[zrh]), Keras' LSTMCell/GRUCell (kernel split i, f, c, o
and z, r, h), cuDNN's cudnnGetRNNLinLayerMatrixParams (LSTM linLayerID 0 input, 1 forget,
2 new memory, 3 output; GRU 0 reset, 1 update, 2 new memory).
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_cli.core import layout

DOCUMENTED = {
    ("torch", "lstm"): ("i", "f", "g", "o"),
    ("torch", "gru"): ("r", "z", "n"),
    ("onnx", "lstm"): ("i", "o", "f", "c"),
    ("onnx", "gru"): ("z", "r", "h"),
    ("keras", "lstm"): ("i", "f", "c", "o"),
    ("keras", "gru"): ("z", "r", "h"),
    ("cudnn", "lstm"): ("i", "f", "c'", "o"),
    ("cudnn", "gru"): ("r", "z", "h'"),
}
# the same gate under each framework's name: torch's g is ONNX's/Keras' c and cuDNN's c' (new memory)
ROLE = {"i": "input", "f": "forget", "g": "cell", "c": "cell", "c'": "cell", "o": "output",
        "r": "reset", "z": "update", "n": "new", "h": "new", "h'": "new"}


def torch_index(cell: str, name: str) -> int:
    """Where the gate `name` (any framework's) sits in torch's order."""
    return [ROLE[t] for t in DOCUMENTED["torch", cell]].index(ROLE[name])


@pytest.mark.parametrize(("framework", "cell"), list(DOCUMENTED))
def test_gate_names_are_the_documented_ones(framework, cell):
    assert layout.gate_names(cell, framework) == DOCUMENTED[framework, cell]


@pytest.mark.parametrize(("framework", "cell"), [k for k in DOCUMENTED if k[0] in ("onnx", "keras")])
def test_order_from_torch_puts_each_gate_where_the_framework_wants_it(framework, cell):
    want = tuple(torch_index(cell, g) for g in DOCUMENTED[framework, cell])
    assert layout.order_from_torch(cell, framework) == want


def test_cudnn_keeps_torchs_order_and_rnn_has_one_block():
    assert layout.order_from_torch("lstm", "cudnn") == (0, 1, 2, 3)
    assert layout.order_from_torch("gru", "cudnn") == (0, 1, 2)
    assert layout.gate_names("rnn") == () and layout.num_gates("rnn") == 1
    assert (layout.num_gates("lstm"), layout.num_gates("gru")) == (4, 3)


@pytest.mark.parametrize("framework", layout.FRAMEWORKS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_permutation_moves_whole_blocks_and_inverts(framework, cell):
    G, H = layout.num_gates(cell), 3
    a = np.arange(G * H * 2).reshape(G * H, 2)  # block k holds rows k*H..k*H+H-1
    moved = layout.torch_to(a, cell, framework)
    for slot, name in enumerate(DOCUMENTED[framework, cell]):
        k = torch_index(cell, name)
        np.testing.assert_array_equal(moved[slot * H : (slot + 1) * H], a[k * H : (k + 1) * H])
    np.testing.assert_array_equal(layout.to_torch(moved, cell, framework), a)
    # along another axis (Keras' kernels are (H_in, G*H))
    np.testing.assert_array_equal(layout.torch_to(a.T, cell, framework, axis=1), moved.T)


def test_parameter_names_and_parser():
    assert layout.param_name("weight_ih", 0) == "weight_ih_l0"
    assert layout.param_name("bias_hh", 2, True) == "bias_hh_l2_reverse"
    assert layout.param_name("weight_hh") == "weight_hh"
    assert layout.parse_name("weight_hr_l11_reverse") == layout.ParamName("weight_hr", 11, True)
    assert layout.parse_name("bias_ih") == layout.ParamName("bias_ih", None, False)
    for bad in ("weight_ih_l", "weight_hr", "weight_ih_l0_rev", "lstm.weight_ih_l0", "weight_xx_l0", "bias_ih_l0x"):
        assert layout.parse_name(bad) is None, bad
    assert layout.with_layer("weight_hh_l3_reverse", 0) == "weight_hh_l0_reverse"
    m = layout.LAYERED_KEY.match("encoder.rnn.bias_ih_l1_reverse")
    assert (m.group("prefix"), m.group("name"), m.group("layer"), m.group("rev")) == ("encoder.rnn", "bias_ih_l1_reverse", "1", "_reverse")


def test_layered_names_are_torchs_own():
    torch = pytest.importorskip("torch")
    for kwargs in ({"num_layers": 2, "bidirectional": True, "proj_size": 2}, {"num_layers": 3, "bias": False}):
        m = torch.nn.LSTM(4, 5, **kwargs)
        ours = [n for n, *_ in layout.layered_names(m.num_layers, 2 if m.bidirectional else 1, m.bias, m.proj_size > 0)]
        assert ours == m._flat_weights_names


# ---- the permutations on numbers: onnxruntime and a Keras cell written from Keras' source ----


def _torch_module(cell: str, bidirectional: bool, dtype: str = "float64"):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    m = cls(5, 4, bidirectional=bidirectional).to(getattr(torch, dtype))
    x = torch.randn(6, 3, 5, dtype=getattr(torch, dtype))
    with torch.no_grad():
        y, _ = m(x)
    return m, x.numpy(), y.numpy()


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_onnx_permutation_reproduces_torch_in_onnxruntime(cell, bidirectional):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    m, x, y_torch = _torch_module(cell, bidirectional, "float32")  # onnxruntime's LSTM: float32 only
    p = {n: t.detach().numpy() for n, t in m.named_parameters()}
    sfx = ["l0", "l0_reverse"][: 2 if bidirectional else 1]
    W = np.stack([layout.torch_to(p[f"weight_ih_{s}"], cell, "onnx") for s in sfx])
    R = np.stack([layout.torch_to(p[f"weight_hh_{s}"], cell, "onnx") for s in sfx])
    B = np.stack([np.concatenate([layout.torch_to(p[f"bias_ih_{s}"], cell, "onnx"),
                                  layout.torch_to(p[f"bias_hh_{s}"], cell, "onnx")]) for s in sfx])
    attrs = {"hidden_size": 4, "direction": "bidirectional" if bidirectional else "forward"}
    if cell == "gru":
        attrs["linear_before_reset"] = 1  # nn.GRU's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    node = helper.make_node(cell.upper(), ["X", "W", "R", "B"], ["Y"], **attrs)
    D = len(sfx)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [6, D, 3, 4])],
        [numpy_helper.from_array(a, n) for n, a in (("W", W), ("R", R), ("B", B))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (Y,) = sess.run(None, {"X": x})  # (L, D, N, H)
    y_ort = Y.transpose(0, 2, 1, 3).reshape(6, 3, D * 4)  # torch's (L, N, D*H)
    np.testing.assert_allclose(y_ort, y_torch, rtol=1e-5, atol=1e-6)
    assert np.abs(y_torch).max() > 0.1  # not a comparison of near-zeros


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _keras_lstm(x, kernel, recurrent_kernel, bias):
    """keras.layers.LSTMCell.call: z = x @ kernel + h @ recurrent_kernel + bias, split in 4:
    i = σ(z0), f = σ(z1), c = f c + i tanh(z2), o = σ(z3), h = o tanh(c)."""
    H = recurrent_kernel.shape[0]
    h = c = np.zeros((x.shape[1], H))
    out = []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out)


def _keras_gru(x, kernel, recurrent_kernel, bias):
    """keras.layers.GRUCell.call with reset_after=True: bias (2, 3H) = input and recurrent
    bias; matrix_x = x @ kernel + b0, matrix_inner = h @ recurrent_kernel + b1, each split
    z, r, h; z = σ(x_z + inner_z), r = σ(x_r + inner_r), hh = tanh(x_h + r inner_h),
    h = z h + (1 - z) hh."""
    H = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[1], H))
    out = []
    for x_t in x:
        mx, mi = x_t @ kernel + bias[0], h @ recurrent_kernel + bias[1]
        z = _sigmoid(mx[:, :H] + mi[:, :H])
        r = _sigmoid(mx[:, H : 2 * H] + mi[:, H : 2 * H])
        hh = np.tanh(mx[:, 2 * H :] + r * mi[:, 2 * H :])
        h = z * h + (1 - z) * hh
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keras_permutation_reproduces_torch_in_keras_equations(cell):
    m, x, y_torch = _torch_module(cell, False)
    p = {n: t.detach().numpy() for n, t in m.named_parameters()}
    kernel = layout.torch_to(p["weight_ih_l0"], cell, "keras").T  # Keras stores (H_in, G*H)
    recurrent = layout.torch_to(p["weight_hh_l0"], cell, "keras").T
    b_ih, b_hh = (layout.torch_to(p[n], cell, "keras") for n in ("bias_ih_l0", "bias_hh_l0"))
    if cell == "lstm":
        y = _keras_lstm(x, kernel, recurrent, b_ih + b_hh)  # Keras' one LSTM bias
    else:
        y = _keras_gru(x, kernel, recurrent, np.stack([b_ih, b_hh]))
    np.testing.assert_allclose(y, y_torch, rtol=1e-10, atol=1e-12)
