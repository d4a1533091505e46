"""Reading ONNX files (issue 24): every LSTM/GRU/RNN node, mapped to torch's layout.

Files are built with the real tools: torch.onnx.export (TorchScript-based and dynamo) for what
torch exports, onnx.helper for what it never writes (nodes in If branches fed by a stacked
`state` input, GRU linear_before_reset=0, peepholes, layout=1, a lone reverse node, clip...).
Expected values come from torch modules (the exported module itself, or one loaded with the
mapped state_dict) and from onnxruntime running the original file, never from rnn-cli's numpy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")  # the onnx extra; CI installs it
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rnn_cli.formats import onnx_read, safe_read  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def _read(path):
    return onnx_read.read_modules(safe_read.source(path))[1]


def _ort(path, feeds: dict) -> list[np.ndarray]:
    """onnxruntime on the original file: the source's own answer."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def _reference(path, feeds: dict) -> list[np.ndarray]:
    """onnx's reference evaluator on the original file, where onnxruntime refuses (layout=1)."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(str(path)).run(None, feeds)


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
        assert m.declared["nonlinearity"] == "relu" and m.declared["attributes"]["activations"] == ["Relu"]
    h, c = (hx if isinstance(hx, tuple) else (hx, None))
    got = onnx_read.forward(path, m, x.numpy(), h.numpy(), None if c is None else c.numpy())
    for key, want in zip(("output", "h_n", "c_n"), expected):
        np.testing.assert_allclose(got[key], want.numpy(), atol=1e-5, err_msg=key)
    roles = {s["role"]: s.get("from", s.get("to")) for s in m.states}
    assert roles["initial_h"] == "h_0"  # a stack's per-layer Slices of h_0, merged back
    assert roles["Y_h"] is not None


def test_stack_without_a_given_state_is_one_module_starting_from_zeros(tmp_path):
    """torch's exporter, called without h_0, sizes each layer's zero state from Shape() of the
    previous layer's output: that output then has two readers. Bugs caught: the stack split in
    two (a link read only when it has one reader), and the zero state shown as untraced."""
    torch.manual_seed(0)
    rnn = torch.nn.GRU(4, 3, num_layers=2)
    path = tmp_path / "z.onnx"
    x = torch.randn(5, 2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Wrap(rnn).eval(), (x, None), path, dynamo=False, input_names=["x"])
    (m,) = _read(path)
    assert (m.kind, m.num_layers) == ("GRU", 2)
    assert m.states[0] == {"role": "initial_h", "torch": "h_0", "from": None, "value": None, "shape": None,
                           "constant": "zeros (shape at run time)"}
    with torch.no_grad():
        out, h_n = rnn(x)
    got = onnx_read.forward(path, m, x.numpy())
    np.testing.assert_allclose(got["output"], out.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["h_n"], h_n.numpy(), atol=1e-5)


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


def if_model(path, H=128, state_in_main=None):
    """docs/examples/make-examples.py's vad_model: x (N, H), state (2, N, H), use_a -> out, stateN,
    an LSTMCell step with its own weights in each branch of an If (one model per sample rate)."""
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "docs" / "examples" / "make-examples.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    make.vad_model(path, H, state_in_main)


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
        assert f"ONNX LSTM node {path} (hidden_size=128): one step: an LSTMCell(128, 128)-equivalent layer" in out
        assert (f"graph input state (2, N, 128): state[0] -> h_0 of LSTM {path} (LSTMCell 128->128), "
                "state[1] -> c_0") in out
        assert f"graph output stateN (2, N, 128): h_n -> stateN[0] of LSTM {path}" in out
    doc = json.loads(_rnn_cli("inspect", if_file, "--json", check_rc=0).stdout)
    for m in doc["modules"]:
        assert {"source", "source_names", "expressible", "not_expressible", "node", "path", "states"} <= set(m)
        assert m["source"] == "onnx" and m["expressible"] and m["not_expressible"] == []
        assert m["source_names"]["weight_ih"] == "W[0] rows 0:128 (i), 256:384 (f), 384:512 (c), 128:256 (o)"
        assert m["states"][0]["from"] == "state[0]" and m["states"][1]["from"] == "state[1]"


# ---- what torch never exports: ONNX graphs made with onnx.helper ---------------------------------

G_OF = {"LSTM": 4, "GRU": 3, "RNN": 1}


def node_model(path, op="LSTM", H=3, H_in=4, direction="forward", layout=0, P=None, name="", **attrs):
    """One recurrent node with W, R, B (and P) as initializers; X and the states are graph inputs
    (layout=1: batch first). Returns the ONNX-order arrays."""
    rng = np.random.default_rng(3)
    D, G = (2 if direction == "bidirectional" else 1), G_OF[op]
    arrays = {"W": rng.standard_normal((D, G * H, H_in)), "R": rng.standard_normal((D, G * H, H)),
              "B": rng.standard_normal((D, 2 * G * H))}
    if P is not None:
        arrays["P"] = P
    arrays = {k: (0.5 * v).astype(np.float32) for k, v in arrays.items()}
    x_dims, h_dims = (["N", "L", H_in], ["N", D, H]) if layout else (["L", "N", H_in], [D, "N", H])
    ins = ["X", "W", "R", "B", "", "h0"] + (["c0", "P" if P is not None else ""] if op == "LSTM" else [])
    node = helper.make_node(op, [i for i in ins if i or ins.index(i) < len(ins) - 1] if P is None else ins,
                            ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else []), name=name, hidden_size=H,
                            direction=direction, layout=layout, **attrs)
    value = (lambda n, dims: helper.make_tensor_value_info(n, TensorProto.FLOAT, dims))
    inputs = [value("X", x_dims), value("h0", h_dims)] + ([value("c0", h_dims)] if op == "LSTM" else [])
    outputs = [value("Y", None), value("Y_h", None)] + ([value("Y_c", None)] if op == "LSTM" else [])
    graph = helper.make_graph([node], "g", inputs, outputs, [numpy_helper.from_array(a, k) for k, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, path)
    return arrays


def _feeds(op, D=1, layout=0, L=5, N=2, H=3, H_in=4):
    """Time-major x and torch-layout states, and the same in the node's own layout for onnxruntime."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((L, N, H_in)).astype(np.float32)
    h = rng.standard_normal((D, N, H)).astype(np.float32)
    c = rng.standard_normal((D, N, H)).astype(np.float32)
    t = (lambda a: a.transpose(1, 0, 2)) if layout else (lambda a: a)
    feeds = {"X": t(x), "h0": t(h)} | ({"c0": t(c)} if op == "LSTM" else {})
    return x, h, (c if op == "LSTM" else None), feeds


NOT_EXPRESSIBLE = [
    ("GRU", {}, None, "linear_before_reset_0"),  # ONNX's default GRU
    ("LSTM", {}, "ones", "peepholes"),
    ("LSTM", {"clip": 0.5}, None, "clip"),
    ("LSTM", {"input_forget": 1}, None, "input_forget"),
    ("LSTM", {"activations": ["Sigmoid", "Tanh", "Relu"]}, None, "activations"),
    ("RNN", {"direction": "reverse"}, None, "lone_reverse"),
]


@pytest.mark.parametrize("op, attrs, P, code", NOT_EXPRESSIBLE, ids=[c[3] for c in NOT_EXPRESSIBLE])
def test_what_no_nn_module_computes_is_named_and_still_runs(op, attrs, P, code, tmp_path):
    """Bugs caught: an ONNX default GRU (linear_before_reset=0), peepholes, clip, input_forget,
    other activations or a lone reverse node passed off as an nn module (a wrong answer with no
    warning); forward() dropping the node's attributes or P (then it would equal the nearest nn
    module, not the file). Expected: onnxruntime on the original file. (Planted: forward() kept
    only hidden_size and direction: the clip, input_forget and activations cases failed;
    clip's test dropped from _not_expressible: its case failed.)"""
    path = tmp_path / "n.onnx"
    node_model(path, op, P=np.ones((1, 9), np.float32) if P == "ones" else None, **attrs)
    (m,) = _read(path)
    assert [r["code"] for r in m.not_expressible] == [code] and not m.expressible
    assert set(m.params) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}  # the nearest module's
    x, h, c, feeds = _feeds(op)
    Y, Y_h = _ort(path, feeds)[:2]
    got = onnx_read.forward(path, m, x, h, c)
    np.testing.assert_allclose(got["output"], Y[:, 0], atol=1e-6)
    np.testing.assert_allclose(got["h_n"], Y_h, atol=1e-6)


def test_lone_reverse_carries_the_nearest_forward_parameters(tmp_path):
    """A lone reverse node is the forward module run on the reversed sequence: the mapped
    parameters must make nn.LSTM do exactly that. Bug caught: reverse weights left in ONNX order
    or named _reverse in a one-direction module."""
    path = tmp_path / "r.onnx"
    node_model(path, "LSTM", direction="reverse")
    (m,) = _read(path)
    lstm = torch.nn.LSTM(4, 3)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in m.params.items()})
    x, h, c, feeds = _feeds("LSTM")
    Y, Y_h, Y_c = _ort(path, feeds)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(torch.from_numpy(x[::-1].copy()), (torch.from_numpy(h), torch.from_numpy(c)))
    np.testing.assert_allclose(out.numpy()[::-1], Y[:, 0], atol=1e-5)
    np.testing.assert_allclose(c_n.numpy(), Y_c, atol=1e-5)


EXPRESSIBLE = [
    ("GRU", {"linear_before_reset": 1}, None, 0, "forward"),
    ("LSTM", {}, "zeros", 0, "forward"),  # all-zero peepholes change nothing
    ("LSTM", {}, None, 1, "bidirectional"),  # batch first
    ("RNN", {"activations": ["Relu", "Relu"]}, None, 0, "bidirectional"),
    ("GRU", {"linear_before_reset": 1}, None, 1, "forward"),
]


@pytest.mark.parametrize("op, attrs, P, layout, direction", EXPRESSIBLE)
def test_helper_graphs_torch_can_run_match_onnxruntime(op, attrs, P, layout, direction, tmp_path):
    """Bugs caught: a GRU's linear_before_reset=1 refused, zero peepholes refused, layout=1 read as
    time-major (states transposed), bidirectional Relu RNNs not mapped to nonlinearity='relu'.
    Expected: onnxruntime (layout=1: onnx's reference evaluator) on the file against torch's module built from the constructor line the
    reader states, loaded with its mapped state_dict. (Planted: layout ignored in forward(): the
    layout=1 cases failed.)"""
    path = tmp_path / "e.onnx"
    D = 2 if direction == "bidirectional" else 1
    node_model(path, op, layout=layout, direction=direction, P=np.zeros((D, 9), np.float32) if P else None, **attrs)
    (m,) = _read(path)
    assert m.expressible, m.not_expressible
    kwargs = {"bidirectional": D == 2, "batch_first": bool(layout)}
    if op == "RNN":
        kwargs["nonlinearity"] = m.declared["nonlinearity"]
    assert m.declared.get("batch_first", False) == bool(layout)
    rnn = getattr(torch.nn, op)(4, 3, **kwargs)
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in m.params.items()})
    x, h, c, feeds = _feeds(op, D=D, layout=layout)
    want = _ort(path, feeds) if not layout else _reference(path, feeds)
    with torch.no_grad():
        xt = torch.from_numpy(x.transpose(1, 0, 2).copy() if layout else x)
        state = (torch.from_numpy(h), torch.from_numpy(c)) if op == "LSTM" else torch.from_numpy(h)
        out, h_n = rnn(xt, state)
        h_n = h_n[0] if op == "LSTM" else h_n
    Y = want[0].transpose(1, 0, 2, 3) if layout else want[0].transpose(0, 2, 1, 3)  # (N, L, D, H) / (L, D, N, H) -> (L, N, D, H)
    torch_out = out.numpy().transpose(1, 0, 2) if layout else out.numpy()
    L, N = x.shape[:2]
    np.testing.assert_allclose(torch_out, Y.reshape(L, N, -1), atol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), want[1].transpose(1, 0, 2) if layout else want[1], atol=1e-5)
    got = onnx_read.forward(path, m, x, h, c)
    np.testing.assert_allclose(got["output"], torch_out, atol=1e-5)


def test_params_runs_a_node_by_path_or_name_and_refuses_what_torch_cannot_compute(tmp_path):
    """--params model.onnx:PATH (and the node's own name) runs the node in rnn-cli; a GRU with
    linear_before_reset=0 is refused in one line naming why. Bugs caught: the path shown by
    inspect not accepted by --params; a non-expressible node run as nn.GRU silently."""
    ok, bad = tmp_path / "ok.onnx", tmp_path / "bad.onnx"
    node_model(ok, "LSTM", name="enc/lstm")
    node_model(bad, "GRU", name="g")
    for spec in (f"{ok}:/enc/lstm", f"{ok}:enc/lstm", str(ok)):
        doc = json.loads(_rnn_cli("torch", "--params", spec, "--json", check_rc=0).stdout)
        assert doc["config"]["cell"] == "lstm" and doc["config"]["hidden_size"] == 3
    r = _rnn_cli("torch", "--params", f"{bad}:/g", check_rc=2)
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and "linear_before_reset=0" in r.stderr


# ---- hostile files --------------------------------------------------------------------------------


def _one_line_exit_2(path, *words):
    r = _rnn_cli("inspect", path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    return r.stderr


def test_truncated_file_is_one_line(if_file, tmp_path):
    """Bug caught: protobuf's DecodeError (or an empty graph read as 'no module') as a traceback."""
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(if_file.read_bytes()[: if_file.stat().st_size // 2])
    _one_line_exit_2(cut, "cut.onnx")


def test_huge_declared_tensor_in_a_tiny_file_is_refused_before_allocation(tmp_path):
    """W declares 10**10 x 10**10 elements with 4 bytes of data. Bug caught: numpy asked for the
    declared size (MemoryError or an abort) instead of a line naming the mismatch."""
    path = tmp_path / "huge.onnx"
    node_model(path, "LSTM")
    model = onnx.load(path)
    w = next(t for t in model.graph.initializer if t.name == "W")
    del w.dims[:]
    w.dims.extend([1, 10**10, 10**10])
    w.raw_data = b"\0" * 4
    onnx.save(model, path)
    _one_line_exit_2(path, "declares shape", "elements")


def test_constant_expression_that_multiplies_data_is_refused(tmp_path):
    """W = Concat of one 1000-element constant 5000 times: the fold's bound (sums for Concat) is
    checked against the file before onnx's evaluator allocates. Bug caught: evaluating it."""
    path = tmp_path / "concat.onnx"
    node_model(path, "LSTM")
    model = onnx.load(path)
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 1000), np.float32), "piece"))
    model.graph.node.insert(0, helper.make_node("Concat", ["piece"] * 5000, ["big"], axis=0))
    model.graph.node[1].input[1] = "big"
    onnx.save(model, path)
    _one_line_exit_2(path, "constant expression")


def test_external_data_outside_the_folder_is_refused(tmp_path):
    """An initializer whose external data is '../secret': never opened. Bug caught: reading files
    the model names (onnx.load would follow the location)."""
    path = tmp_path / "ext.onnx"
    node_model(path, "LSTM")
    model = onnx.load(path)
    w = next(t for t in model.graph.initializer if t.name == "W")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="../secret")
    onnx.save(model, path)
    _one_line_exit_2(path, "external data", "beside the model")


def test_node_name_with_escape_characters_is_shown_escaped(tmp_path):
    """Bug caught: a node name's ESC ] ... BEL (a terminal title change) printed raw; JSON keeps it
    exact. (Planted: inspect's _text without printable: failed.)"""
    path = tmp_path / "esc.onnx"
    evil = "rnn\x1b]0;pwned\x07"
    node_model(path, "LSTM", name=evil)
    r = _rnn_cli("inspect", path, check_rc=0)
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "rnn\\x1b]0;pwned\\x07" in r.stdout
    doc = json.loads(_rnn_cli("inspect", path, "--json", check_rc=0).stdout)
    assert doc["modules"][0]["node"] == evil and doc["modules"][0]["path"] == "/" + evil


def test_subgraphs_nested_too_deep_are_one_line(tmp_path):
    """Ifs nested 20 deep (within protobuf's limit): refused by the walk's bound in one line.
    Bug caught: a walk without a depth bound (unbounded recursion on a crafted file)."""
    path = tmp_path / "deep.onnx"
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Constant", [], ["y"], value_float=1.0)], "leaf", [], [out])
    leaf = g
    for _ in range(20):  # the else branch stays a leaf: the file grows linearly
        g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=g, else_branch=leaf)], "g", [], [out])
    g.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    _one_line_exit_2(path, "deep.onnx", "more than 16 deep")


def test_without_the_onnx_extra_one_line_names_it(if_file):
    """Bug caught: an ImportError traceback when onnx is not installed. onnx is hidden from a
    child process by a None entry in sys.modules (import onnx then raises ImportError)."""
    code = ("import sys; sys.modules['onnx'] = None; sys.argv = ['rnn-cli', 'inspect', sys.argv[1]]\n"
            "from rnn_cli.cli.entry import main; main()")
    r = subprocess.run([sys.executable, "-c", code, str(if_file)], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "onnx extra" in r.stderr


def test_state_through_arithmetic_and_an_if_is_traced_by_marked_values(tmp_path):
    """The state reaches the branches as If(...) of Add(state_in, 0): no static path. Bug caught:
    `from` left None (or a wrong slot) where onnxruntime on marked inputs can tell state_in[0] /
    state_in[1]. The expected slots are how the file was built."""
    path = tmp_path / "m.onnx"
    zero = numpy_helper.from_array(np.zeros((1, 1, 128), np.float32), "zero_t")
    value = helper.make_tensor_value_info
    pick = (lambda name: helper.make_graph([helper.make_node("Identity", ["summed"], [name])], name, [],
                                           [value(name, TensorProto.FLOAT, None)]))
    main = [helper.make_node("Constant", [], ["zero"], value=zero),
            helper.make_node("Add", ["state_in", "zero"], ["summed"]),
            helper.make_node("If", ["use_a"], ["state"], then_branch=pick("s1"), else_branch=pick("s2"))]
    if_model(path, state_in_main=main)
    for m in _read(path):
        initial = [s for s in m.states if s["role"].startswith("initial")]
        assert [(s["from"], s.get("traced_by")) for s in initial] == [("state_in[0]", "onnxruntime"), ("state_in[1]", "onnxruntime")]
    out = _rnn_cli("inspect", path, check_rc=0).stdout
    assert "graph input state_in (2, N, 128): state_in[0] -> h_0 of LSTM /If_3/then_branch/LSTM_14" in out


def test_readme_example_is_what_make_examples_writes(tmp_path):
    """docs/examples/vad.onnx (the README's ONNX output) is what make-examples.py's vad_model
    writes. Bug caught: a README block made from a file no script can make again."""
    if_model(tmp_path / "vad.onnx", H=16)
    assert (tmp_path / "vad.onnx").read_bytes() == (ROOT / "docs" / "examples" / "vad.onnx").read_bytes()
