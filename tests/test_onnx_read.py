"""Reading ONNX files (issue 24): every LSTM/GRU/RNN node, mapped to torch's layout.

Files are built with the real tools: torch.onnx.export (TorchScript-based and dynamo) for what
torch exports, onnx.helper for what it never writes (nodes in If branches fed by a stacked
`state` input, GRU linear_before_reset=0, peepholes, layout=1, a lone reverse node, clip...).
Expected values come from torch modules (the exported module itself, or one loaded with the
mapped state_dict) and from onnxruntime running the original file, never from rnn-cli's numpy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime")  # the onnx extra; CI installs it
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rnn_cli.errors import RnnCliError  # noqa: E402
from rnn_cli.formats import onnx_read, safe_read  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def _read(path):
    return onnx_read.read_modules(safe_read.source(path))[1]


def _ort(path, feeds: dict) -> list[np.ndarray]:
    """onnxruntime on the original file: the source's own answer."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def _rnn_cli(*args, check_rc=None):
    r = subprocess.run([sys.executable, "-m", "rnn_cli", *map(str, args)], capture_output=True,
                       text=True, env=ENV, timeout=300)
    if check_rc is not None:
        assert r.returncode == check_rc, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r


# ---- files torch's exporters write ------------------------------------------------------------


class _Wrap(torch.nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h):
        return self.rnn(x, h)


def _export(rnn, path, dynamo=False):
    """torch.onnx.export of `rnn` with an explicit state; returns (x, hx, torch's own outputs)."""
    torch.manual_seed(1)
    D = 2 if rnn.bidirectional else 1
    h = torch.randn(rnn.num_layers * D, 2, rnn.hidden_size)
    hx = (h, torch.randn_like(h)) if isinstance(rnn, torch.nn.LSTM) else h
    x = torch.randn(5, 2, rnn.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(_Wrap(rnn).eval(), (x, hx), path, dynamo=True, verbose=False, input_names=["x", "h_0", "c_0"])
        else:
            torch.onnx.export(_Wrap(rnn).eval(), (x, hx), path, dynamo=False, input_names=["x", "h_0", "c_0"])
    with torch.no_grad():
        out, state = rnn(x, hx)
    return x, hx, (out, *(state if isinstance(state, tuple) else (state,)))


EXPORTS = {
    "lstm": lambda: torch.nn.LSTM(4, 3),
    "gru-bi": lambda: torch.nn.GRU(4, 3, bidirectional=True),
    "rnn-relu": lambda: torch.nn.RNN(4, 3, nonlinearity="relu"),
    "lstm-2-bi": lambda: torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True),
    "gru-3": lambda: torch.nn.GRU(4, 3, num_layers=3),
}


@pytest.mark.parametrize("name", EXPORTS)
def test_torch_exports_map_back_to_the_exported_state_dict(name, tmp_path):
    """Bugs caught: a gate permutation applied the wrong way (i,o,f,c read as torch's order), B's
    halves swapped, reverse weights under forward names, a stack read as separate modules, layer
    names off by one; and forward() returning another layout than torch's. Expected: the exported
    module's own state_dict and its own outputs. (Planted: to_torch -> torch_to in _params: fails.)"""
    torch.manual_seed(0)
    rnn = EXPORTS[name]()
    path = tmp_path / "m.onnx"
    x, hx, expected = _export(rnn, path)
    (m,) = _read(path)
    assert (m.kind, m.num_layers, m.bidirectional, m.bias) == (type(rnn).__name__, rnn.num_layers, rnn.bidirectional, True)
    assert m.expressible and m.source == "onnx"
    state = {k: v.numpy() for k, v in rnn.state_dict().items()}
    assert list(m.params) == list(state)
    for k, v in state.items():
        np.testing.assert_array_equal(m.params[k], v, err_msg=k)
    if name == "rnn-relu":
        assert m.declared == {"nonlinearity": "relu"}
    h, c = (hx if isinstance(hx, tuple) else (hx, None))
    got = onnx_read.forward(path, m, x.numpy(), h.numpy(), None if c is None else c.numpy())
    for key, want in zip(("output", "h_n", "c_n"), expected):
        np.testing.assert_allclose(got[key], want.numpy(), atol=1e-5, err_msg=key)
    roles = {s["role"]: s.get("from", s.get("to")) for s in m.states}
    assert roles["initial_h"] == "h_0"  # a stack's per-layer Slices of h_0, merged back
    assert roles["Y_h"] is not None


def test_dynamo_stack_is_one_module(tmp_path):
    """torch's dynamo exporter names nodes node_LSTM_99 and links layers through Transpose +
    Reshape with a shared shape initializer. Bug caught: a stack split into two 1-layer modules
    (the second with input_size 2*H) when the link is not recognised."""
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True)
    path = tmp_path / "d.onnx"
    x, hx, expected = _export(rnn, path, dynamo=True)
    (m,) = _read(path)
    assert (m.num_layers, m.bidirectional, m.input_size) == (2, True, 4)
    got = onnx_read.forward(path, m, x.numpy(), hx[0].numpy(), hx[1].numpy())
    np.testing.assert_allclose(got["output"], expected[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["c_n"], expected[2].numpy(), atol=1e-5)


# ---- the published-model shape: LSTMCell steps inside both branches of an If ------------------


def _const(name, a):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(a), name + "_t"))


def _branch(p: str, H: int, rng) -> tuple[onnx.GraphProto, dict]:
    """One If branch as a published model writes an nn.LSTMCell step: h, c = state[0], state[1]
    (Gather), X = Unsqueeze(x), W/R/B = Unsqueeze(Constant), LSTM, Squeeze, Concat -> stateN."""
    W = rng.standard_normal((4 * H, H)).astype(np.float32) * 0.2
    R = rng.standard_normal((4 * H, H)).astype(np.float32) * 0.2
    B = rng.standard_normal(8 * H).astype(np.float32) * 0.2
    nodes = [_const(p + "zero", np.int64(0)), _const(p + "one", np.int64(1)), _const(p + "ax", np.array([0], np.int64)),
             _const(p + "W2", W), _const(p + "R2", R), _const(p + "B1", B),
             helper.make_node("Gather", ["state", p + "zero"], [p + "h"]),
             helper.make_node("Gather", ["state", p + "one"], [p + "c"]),
             helper.make_node("Unsqueeze", [p + "h", p + "ax"], [p + "h0"]),
             helper.make_node("Unsqueeze", [p + "c", p + "ax"], [p + "c0"]),
             helper.make_node("Unsqueeze", ["x", p + "ax"], [p + "X"]),
             helper.make_node("Unsqueeze", [p + "W2", p + "ax"], [p + "W"]),
             helper.make_node("Unsqueeze", [p + "R2", p + "ax"], [p + "R"]),
             helper.make_node("Unsqueeze", [p + "B1", p + "ax"], [p + "B"]),
             helper.make_node("LSTM", [p + "X", p + "W", p + "R", p + "B", "", p + "h0", p + "c0"],
                              [p + "Y", p + "Yh", p + "Yc"], hidden_size=H),
             helper.make_node("Squeeze", [p + "Yh", p + "ax"], [p + "h1"]),
             helper.make_node("Squeeze", [p + "Yc", p + "ax"], [p + "c1"]),
             helper.make_node("Unsqueeze", [p + "h1", p + "ax"], [p + "hh"]),
             helper.make_node("Unsqueeze", [p + "c1", p + "ax"], [p + "cc"]),
             helper.make_node("Concat", [p + "hh", p + "cc"], [p + "st"], axis=0),
             helper.make_node("Identity", [p + "h1"], [p + "out"])]
    outs = [helper.make_tensor_value_info(p + "out", TensorProto.FLOAT, None),
            helper.make_tensor_value_info(p + "st", TensorProto.FLOAT, None)]
    return helper.make_graph(nodes, p + "branch", [], outs), {"W": W, "R": R, "B": B}


def if_model(path, H=128, state_in_main=None):
    """x (N, H), state (2, N, H), use_a (bool) -> out (N, H), stateN (2, N, H); an LSTMCell step
    with its own weights in each branch (one model per sample rate)."""
    rng = np.random.default_rng(0)
    then_g, then_w = _branch("a_", H, rng)
    else_g, else_w = _branch("b_", H, rng)
    nodes = list(state_in_main or []) + [helper.make_node("If", ["use_a"], ["out", "stateN"], then_branch=then_g, else_branch=else_g)]
    graph = helper.make_graph(
        nodes, "vad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", H]),
         helper.make_tensor_value_info("state_in" if state_in_main else "state", TensorProto.FLOAT, [2, "N", H]),
         helper.make_tensor_value_info("use_a", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", H]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "N", H])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return then_w, else_w


@pytest.fixture(scope="module")
def if_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("if") / "m.onnx"
    if_model(path)
    return path


def test_if_branches_are_lstmcells_matching_onnxruntime(if_file):
    """Bugs caught: If subgraphs not walked, W/R/B left unread because they are Unsqueezed
    Constants, a cell read as nn.LSTM, the mapped weights wrong. Expected: onnxruntime running
    the file on each branch against torch's nn.LSTMCell loaded with the mapped state_dict."""
    mods = _read(if_file)
    assert [m.path for m in mods] == ["/If_0/then_branch/LSTM_14", "/If_0/else_branch/LSTM_14"]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    state = rng.standard_normal((2, 3, 128)).astype(np.float32)
    for m, use_a in zip(mods, (True, False)):
        assert (m.kind, m.input_size, m.hidden_size) == ("LSTMCell", 128, 128)
        cell = torch.nn.LSTMCell(128, 128)
        cell.load_state_dict({k: torch.from_numpy(v) for k, v in m.params.items()})
        with torch.no_grad():
            h1, c1 = cell(torch.from_numpy(x), (torch.from_numpy(state[0]), torch.from_numpy(state[1])))
        out, state_n = _ort(if_file, {"x": x, "state": state, "use_a": np.array(use_a)})
        np.testing.assert_allclose(h1.numpy(), out, atol=1e-5)
        np.testing.assert_allclose(c1.numpy(), state_n[1], atol=1e-5)
        got = onnx_read.forward(if_file, m, x[None], state[:1], state[1:])
        np.testing.assert_allclose(got["h_n"][0], out, atol=1e-6)
        assert m.states == [
            {"role": "initial_h", "torch": "h_0", "from": "state[0]", "value": "state", "shape": "(2, N, 128)"},
            {"role": "initial_c", "torch": "c_0", "from": "state[1]", "value": "state", "shape": "(2, N, 128)"},
            {"role": "Y_h", "torch": "h_n", "to": "out", "value": "out", "shape": "(N, 128)"},  # squeezed
            {"role": "Y_h", "torch": "h_n", "to": "stateN[0]", "value": "stateN", "shape": "(2, N, 128)"},
            {"role": "Y_c", "torch": "c_n", "to": "stateN[1]", "value": "stateN", "shape": "(2, N, 128)"},
        ]


def test_inspect_cli_lists_both_branches_with_their_states(if_file):
    """Issue 24's first done-when, through the CLI. Bugs caught: a branch's node missing from the
    listing, the cell not called LSTMCell(128, 128)-equivalent, state slots swapped or not shown;
    --json without the ONNX keys."""
    out = _rnn_cli("inspect", if_file, check_rc=0).stdout
    for branch in ("then_branch", "else_branch"):
        path = f"/If_0/{branch}/LSTM_14"
        assert f"ONNX LSTM node {path}: one step: an LSTMCell(128, 128)-equivalent layer" in out
        assert (f"graph input state (2, N, 128): state[0] -> h_0 of LSTM {path} (LSTMCell 128->128), "
                "state[1] -> c_0") in out
        assert f"graph output stateN (2, N, 128): h_n -> stateN[0] of LSTM {path}" in out
    doc = json.loads(_rnn_cli("inspect", if_file, "--json", check_rc=0).stdout)
    for m in doc["modules"]:
        assert {"source", "source_names", "expressible", "not_expressible", "node", "path", "states"} <= set(m)
        assert m["source"] == "onnx" and m["expressible"] and m["not_expressible"] == []
        assert m["source_names"]["weight_ih"] == "W[0] rows 0:128 (i), 256:384 (f), 384:512 (c), 128:256 (o)"
        assert m["states"][0]["from"] == "state[0]" and m["states"][1]["from"] == "state[1]"
