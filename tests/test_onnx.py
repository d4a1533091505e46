"""rnn-cli onnx's core: export, graph description, gate mapping, onnxruntime checks.

Expected values come from ONNX's operator spec written out by hand here (gate blocks
i, o, f, c and z, r, h; Y [L, D, N, H]) and from torch run directly, never from
onnx_export itself. Exports are slow (dynamo ~1 s), so each configuration is exported
once per module.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")  # the onnx extra; CI installs it
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from rich.console import Console  # noqa: E402

from rnn_cli.formats import onnx_check  # noqa: E402
from rnn_cli.formats import onnx_export as ox  # noqa: E402
from rnn_cli import documents  # noqa: E402
from rnn_cli.views import onnx as onnx_view
from rnn_cli.core.config import RunConfig  # noqa: E402
from rnn_cli.errors import RnnCliError  # noqa: E402
from rnn_cli.core.sample import draw  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LSTM_2_BI = RunConfig(cell="lstm", num_layers=2, bidirectional=True)
GRU_PACKED = RunConfig(cell="gru", bidirectional=True, lengths=(10, 7, 3), batch=3)


def _report(cfg: RunConfig, exporter: str = "auto") -> ox.OnnxReport:
    return ox.report(cfg, draw(cfg), exporter)


@pytest.fixture(scope="module")
def lstm_2_bi(one_torch_thread):
    return _report(LSTM_2_BI)


@pytest.fixture(scope="module")
def gru_packed(one_torch_thread):
    return _report(GRU_PACKED)


def _initializer(model, name: str) -> np.ndarray:
    """A tensor of the graph by name, read with onnx's own API (initializer or Constant)."""
    for init in model.graph.initializer:
        if init.name == name:
            return onnx.numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return onnx.numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


def _torch_outputs(cfg: RunConfig) -> list[np.ndarray]:
    """torch itself, run here without onnx_export: (output, h_n[, c_n]) in the user's layout."""
    from rnn_cli.core import torch_run

    sample = draw(cfg)
    module, x, hx = torch_run.prepare(cfg, sample, torch.device("cpu"))
    with torch.inference_mode():
        output, state, _ = torch_run.forward(cfg, module, x, hx)
    return [t.numpy() for t in (output,) + (state if isinstance(state, tuple) else (state,))]


def _ort(model, cfg: RunConfig) -> list[np.ndarray]:
    """onnxruntime run here directly on the user-layout inputs."""
    import onnxruntime as ort

    sample = draw(cfg)
    feeds = [sample.x if not cfg.batch_first else sample.x.transpose(1, 0, 2), sample.h_0]
    if cfg.unbatched:
        feeds = [sample.x[:, 0], sample.h_0[:, 0]]
    if sample.c_0 is not None:
        feeds.append(sample.c_0[:, 0] if cfg.unbatched else sample.c_0)
    if cfg.lengths is not None:
        feeds.append(np.asarray(cfg.lengths, np.int64))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: a for i, a in zip(session.get_inputs(), feeds)})


# ---- the issue's two done-when cases ----------------------------------------------------------


def test_stacked_bidirectional_lstm_is_two_lstm_nodes_with_the_issues_shapes(lstm_2_bi):
    nodes = lstm_2_bi.graph.recurrent
    assert [n.op for n in nodes] == ["LSTM", "LSTM"]
    # W [num_directions, 4*hidden_size, input_size]: layer 1 reads both directions, 2*8 = 16
    assert [n.inputs["W"].shape for n in nodes] == [(2, 32, 5), (2, 32, 16)]
    assert [n.inputs["R"].shape for n in nodes] == [(2, 32, 8), (2, 32, 8)]
    assert [n.inputs["B"].shape for n in nodes] == [(2, 64), (2, 64)]
    assert all(n.attributes["direction"] == "bidirectional" and n.attributes["hidden_size"] == 8 for n in nodes)
    assert nodes[0].inputs["initial_c"].shape == (2, 1, 8)
    # Y [L, D, N, H] -> Transpose(0, 2, 1, 3) -> [L, N, D, H] -> Reshape -> (L, N, D*H_out)
    assert nodes[1].after_Y[0].startswith("Transpose perm=(0, 2, 1, 3) -> (10, 1, 2, 8)")
    assert nodes[1].after_Y[1] == "Reshape -> (10, 1, 16)"
    assert [(i.name, i.shape) for i in lstm_2_bi.graph.outputs] == [
        ("output", (10, 1, 16)), ("h_n", (4, 1, 8)), ("c_n", (4, 1, 8))
    ]
    assert lstm_2_bi.ok


def test_packed_gru_gets_sequence_lens_and_says_which_exporter(gru_packed):
    (node,) = gru_packed.graph.recurrent
    assert node.op == "GRU" and node.inputs["sequence_lens"] is not None
    assert node.attributes["linear_before_reset"] == 1  # torch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    assert gru_packed.exported.exporter_used == "torchscript"
    assert "torchscript" in gru_packed.exported.why and "pack_padded_sequence" in gru_packed.exported.why
    assert [i.name for i in gru_packed.graph.inputs] == ["input", "h_0", "lengths"]
    assert gru_packed.ok


def test_packed_input_with_dynamo_is_one_line_naming_the_exporter():
    with pytest.raises(RnnCliError) as err:
        ox.export(GRU_PACKED, draw(GRU_PACKED), "dynamo")
    message = str(err.value)
    assert message.startswith("--exporter dynamo: dynamo failed (") and "\n" not in message


# ---- the gate mapping, against a permutation written out by hand ------------------------------


def test_lstm_initializers_are_torchs_gates_in_i_o_f_c_order(lstm_2_bi):
    params, H = draw(LSTM_2_BI).params, 8
    for layer, node in enumerate(lstm_2_bi.graph.recurrent):
        W = _initializer(lstm_2_bi.exported.model, node.inputs["W"].name)
        R = _initializer(lstm_2_bi.exported.model, node.inputs["R"].name)
        B = _initializer(lstm_2_bi.exported.model, node.inputs["B"].name)
        for d, sfx in enumerate((f"l{layer}", f"l{layer}_reverse")):
            for onnx_w, name in ((W[d], "weight_ih"), (R[d], "weight_hh")):
                w = params[f"{name}_{sfx}"]  # torch: i, f, g, o
                i, f, g, o = w[0:H], w[H : 2 * H], w[2 * H : 3 * H], w[3 * H : 4 * H]
                np.testing.assert_array_equal(onnx_w, np.concatenate([i, o, f, g]))
            b_ih, b_hh = params[f"bias_ih_{sfx}"], params[f"bias_hh_{sfx}"]
            for half, b in enumerate((b_ih, b_hh)):
                i, f, g, o = b[0:H], b[H : 2 * H], b[2 * H : 3 * H], b[3 * H : 4 * H]
                np.testing.assert_array_equal(B[d, half * 4 * H : (half + 1) * 4 * H], np.concatenate([i, o, f, g]))


def test_mapping_rows_name_the_right_torch_rows(lstm_2_bi, gru_packed):
    texts = {r.text for r in lstm_2_bi.mapping}
    assert "W[0] rows 8:16 = weight_ih_l0 rows 24:32 (o)" in texts  # the issue's example
    assert "W[1] rows 24:32 = weight_ih_l1_reverse rows 16:24 (c)" in texts
    assert "B[0] rows 40:48 = bias_hh_l0 rows 24:32 (o)" in texts  # R's bias sits after W's
    assert len(lstm_2_bi.mapping) == 2 * 2 * 4 * 4  # layers * directions * (W, R, b_ih, b_hh) * gates
    assert all(r.equal for r in lstm_2_bi.mapping)
    gru = {r.text for r in gru_packed.mapping}
    assert {"W[0] rows 0:8 = weight_ih_l0 rows 8:16 (z)", "W[0] rows 8:16 = weight_ih_l0 rows 0:8 (r)"} <= gru


def test_gru_initializer_is_z_r_h(gru_packed):
    params, H = draw(GRU_PACKED).params, 8
    node = gru_packed.graph.recurrent[0]
    W = _initializer(gru_packed.exported.model, node.inputs["W"].name)
    w = params["weight_ih_l0_reverse"]  # torch: r, z, n
    np.testing.assert_array_equal(W[1], np.concatenate([w[H : 2 * H], w[0:H], w[2 * H :]]))


def test_mapping_catches_an_initializer_with_swapped_gates(lstm_2_bi):
    """A graph whose W has f and o swapped (a wrong exporter) must show NO and fail in onnxruntime."""
    model = onnx.ModelProto()
    model.CopyFrom(lstm_2_bi.exported.model)
    name = lstm_2_bi.graph.recurrent[0].inputs["W"].name
    for init in model.graph.initializer:
        if init.name == name:
            W = onnx.numpy_helper.to_array(init).copy()
            W[:, 8:16], W[:, 16:24] = W[:, 16:24].copy(), W[:, 8:16].copy()
            init.CopyFrom(onnx.numpy_helper.from_array(W, name))
    rows = ox.mapping(LSTM_2_BI, draw(LSTM_2_BI).params, model)
    bad = {r.text for r in rows if r.equal is False}
    assert "W[0] rows 8:16 = weight_ih_l0 rows 24:32 (o)" in bad and len(bad) == 4  # o and f, both directions
    assert not ox.run_onnxruntime(model, LSTM_2_BI, draw(LSTM_2_BI)).ok


# ---- onnxruntime: against torch, and Y rebuilt from the reference ----------------------------


def test_onnxruntime_reproduces_torch(lstm_2_bi, gru_packed):
    for report in (lstm_2_bi, gru_packed):
        for got, want in zip(_ort(report.exported.model, report.cfg), _torch_outputs(report.cfg)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_each_nodes_y_is_the_references_layer_output_in_onnx_layout(lstm_2_bi):
    names = [c.name for c in lstm_2_bi.run.y_checks]
    assert names == ["LSTM 0 Y", "LSTM 0 Y_h", "LSTM 0 Y_c", "LSTM 1 Y", "LSTM 1 Y_h", "LSTM 1 Y_c"]
    assert [c.torch_shape for c in lstm_2_bi.run.y_checks[:2]] == [(10, 2, 1, 8), (2, 1, 8)]
    assert all(c.ok for c in lstm_2_bi.run.y_checks)


def test_onnx_states_rebuilds_y_by_the_spec():
    """Y[t, d, n, :] is direction d's h_t of sequence n: columns d*H:(d+1)*H of output[t, n]."""
    from rnn_cli.core.manual import Forward

    L, N, D, H = 3, 2, 2, 4
    cfg = RunConfig(cell="gru", hidden_size=H, bidirectional=True, batch=N, seq_len=L)
    output = np.arange(L * N * D * H, dtype=float).reshape(L, N, D * H)
    fwd = Forward(output, np.zeros((D, N, H)), None, [])
    Y = onnx_check.onnx_states(cfg, fwd, 0)["Y"]
    assert Y.shape == (L, D, N, H)
    for t, d, n in np.ndindex(L, D, N):
        np.testing.assert_array_equal(Y[t, d, n], output[t, n, d * H : (d + 1) * H])


def test_packed_unsorted_batch_first_lstm_matches_through_the_sorted_batch():
    """The graph sorts sequences by length before the LSTM node; its Y is checked in that order."""
    cfg = RunConfig(cell="lstm", batch_first=True, batch=3, lengths=(3, 10, 6))
    report = _report(cfg)
    assert report.run.batch_order == [1, 2, 0]  # longest first
    assert report.ok
    for got, want in zip(_ort(report.exported.model, cfg), _torch_outputs(cfg)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- configurations the exporters treat differently ------------------------------------------


@pytest.mark.parametrize("nonlinearity, activation", [("relu", "Relu"), ("tanh", "Tanh")])
def test_rnn_keeps_its_activation_and_auto_avoids_the_unrolled_graph(nonlinearity, activation):
    cfg = RunConfig(cell="rnn", nonlinearity=nonlinearity)
    report = _report(cfg)
    (node,) = report.graph.recurrent
    assert node.op == "RNN" and node.attributes.get("activations", ["Tanh"]) == [activation]
    # dynamo writes MatMul/Add/<act> per step; auto says so and takes torchscript
    assert report.exported.exporter_used == "torchscript"
    assert "unrolled" in report.exported.fallback_reason
    assert report.ok


def test_rnn_with_dynamo_asked_for_is_unrolled_and_still_checked():
    """--exporter dynamo --cell rnn: no RNN node to map, but onnxruntime still runs and is checked."""
    cfg = RunConfig(cell="rnn", num_layers=2)
    report = _report(cfg, "dynamo")
    assert report.graph.recurrent == [] and report.mapping == []
    assert dict(report.graph.node_counts())["Tanh"] == cfg.seq_len * cfg.num_layers  # one per step and layer
    assert [c.name for c in report.run.vs_torch] == ["output", "h_n"] and report.ok
    buffer = io.StringIO()
    onnx_view.show_onnx(Console(file=buffer, width=80, force_terminal=False), report)
    assert "No RNN node, so no gate mapping" in buffer.getvalue()


def test_opset_is_passed_to_the_exporter():
    cfg = RunConfig(cell="gru")
    assert ox.export(cfg, draw(cfg), "torchscript", opset=14).opset == 14


def test_proj_size_is_refused_in_one_line_by_both_exporters():
    """ONNX's LSTM has no projection: torchscript refuses; dynamo writes an LSTM node with
    hidden_size = proj_size and truncated W, which rnn-cli must not pass off as the module."""
    cfg = RunConfig(cell="lstm", proj_size=3)
    with pytest.raises(RnnCliError) as err:
        ox.export(cfg, draw(cfg), "auto")
    message = str(err.value)
    assert "\n" not in message and "no projection" in message
    assert "dynamo wrote a graph that does not match" in message and "torchscript failed" in message


def test_batch_first_and_unbatched_keep_the_users_layout_at_the_graph_edges():
    for cfg, shapes in (
        (RunConfig(cell="gru", batch_first=True, batch=2), {"input": (2, 10, 5), "output": (2, 10, 8)}),
        (RunConfig(cell="gru", batch=None), {"input": (10, 5), "output": (10, 8), "h_n": (1, 8)}),
    ):
        report = _report(cfg)
        edges = {i.name: i.shape for i in report.graph.inputs + report.graph.outputs}
        assert {k: edges[k] for k in shapes} == shapes
        assert report.graph.recurrent[0].inputs["X"].shape[:2] == (10, 1 if cfg.unbatched else 2)  # time-major inside
        assert report.ok


def test_float64_exports_exactly_but_onnxruntime_refuses_in_one_line():
    cfg = RunConfig(cell="gru", dtype="float64")
    sample = draw(cfg)
    exported = ox.export(cfg, sample, "auto")
    W = _initializer(exported.model, ox.describe(exported.model).recurrent[0].inputs["W"].name)
    assert W.dtype == np.float64
    assert all(r.equal for r in ox.mapping(cfg, sample.params, exported.model))
    with pytest.raises(RnnCliError, match=r"^--dtype float64: onnxruntime cannot run this graph .*GRU"):
        ox.run_onnxruntime(exported.model, cfg, sample)


def test_no_bias_means_no_b_input_and_no_b_rows():
    cfg = RunConfig(cell="lstm", bias=False)
    report = _report(cfg)
    assert report.graph.recurrent[0].inputs["B"] is None
    assert {r.tensor for r in report.mapping} == {"W", "R"} and report.ok


# ---- quiet, optional, saved -------------------------------------------------------------------


def test_exporters_print_nothing(capfd):
    """--json needs a clean stdout: torchscript's C++ shape warnings (packed LSTM) and
    torch.export's failure dump (dynamo on packed input) must not reach either stream."""
    cfg = RunConfig(cell="lstm", batch=2, lengths=(4, 10))
    ox.export(cfg, draw(cfg), "torchscript")
    with pytest.raises(RnnCliError):
        ox.export(cfg, draw(cfg), "dynamo")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(RnnCliError) as err:
        ox.export(LSTM_2_BI, draw(LSTM_2_BI), "auto")
    assert str(err.value) == "rnn-cli onnx needs the onnx extra: pip install 'rnn-cli[onnx]'"


def test_save_onnx_writes_a_loadable_model(tmp_path):
    cfg = RunConfig(cell="gru")
    path = tmp_path / "gru.onnx"
    ox.export(cfg, draw(cfg), "torchscript", path=path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node if n.op_type == "GRU"] == ["GRU"]


def test_rest_of_rnn_cli_never_imports_onnx():
    code = (
        "import sys\n"
        "from rnn_cli.core import manual, compare\nfrom rnn_cli.views import run\nfrom rnn_cli import documents\nfrom rnn_cli.cli import app\n"
        "from rnn_cli.core.config import RunConfig\n"
        "from rnn_cli.core.sample import draw\n"
        "cfg = RunConfig(cell='lstm'); s = draw(cfg)\n"
        "manual.forward(cfg, s.params, s.x, s.h_0, s.c_0)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'onnxscript')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- the views --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 60, 40])
def test_view_fits_ascii_columns_and_shows_the_story(lstm_2_bi, width):
    # Bug (60, 40): tables printed without fit(), so rich cut cells to "weight_ih_l0 16:…" and "5.96e…".
    buffer = io.StringIO()
    onnx_view.show_onnx(Console(file=buffer, width=width, force_terminal=False), lstm_2_bi)
    text = buffer.getvalue()
    assert text.isascii() and max(len(line) for line in text.splitlines()) <= width
    words = " ".join(text.split())  # a narrow console may break a line between two words, never inside one
    for expected in ("(2, 32, 5)", "(2, 32, 16)", "Transpose perm=(0, 2, 1, 3)", "weight_ih_l0 24:32", "c = torch g", "OK:"):
        assert expected in words
    assert "FAIL" not in text and "MISMATCH" not in text


def test_document_is_json_with_nodes_mapping_and_results(gru_packed):
    doc = json.loads(json.dumps(documents.onnx_document(gru_packed)))
    assert doc["exporter"]["used"] == "torchscript" and doc["ok"] is True
    assert doc["nodes"][0]["inputs"]["W"]["shape"] == [2, 24, 5]
    assert doc["nodes"][0]["inputs"]["sequence_lens"] is not None
    assert {"tensor": "W", "rows": [0, 8], "torch_param": "weight_ih_l0", "torch_rows": [8, 16]}.items() <= doc["mapping"][0].items()
    assert [(r["tensor"], r["against"]) for r in doc["results"][:4]] == [
        ("output", "torch"), ("h_n", "torch"), ("output", "reference"), ("h_n", "reference")
    ]
