"""rnn-cli convert from the files people download (issue 24's done-when): a Keras file and an
ONNX graph, each converted to torch's layout and proved against the source's own runtime.

Expected values come from the source tools, never from rnn-cli: the written .pt is loaded with
load_state_dict(strict=True) into an nn module built here, and its forward must equal Keras'
own forward of the layer (Keras on the torch backend) or torch's forward of the module that was
exported to ONNX. What no nn module computes (Keras GRU(reset_after=False), ONNX GRU with
linear_before_reset=0) is refused with the measured difference and nothing written.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rnn_cli.cli.app import app  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "docs", "examples")


def convert(*args):
    return CliRunner().invoke(app, ["convert", *map(str, args)], env={"COLUMNS": "100"})


def test_keras_bidirectional_lstm_becomes_a_state_dict_nn_lstm_loads_and_computes_as_keras(tmp_path):
    """The issue's done-when. Bugs caught: the backward layer's weights under _l0 and the
    forward's under _l0_reverse (planted: caught), a kernel not transposed, keys nn.LSTM refuses
    (load_state_dict strict), or a proof that passes what Keras computes differently. (Keras'
    LSTM gate order i, f, c, o is torch's i, f, g, o: GRU's permutation is test_keras_read's.)"""
    pytest.importorskip("h5py")
    keras = pytest.importorskip("keras")
    src = os.path.join(EXAMPLES, "tagger.keras")
    dst = tmp_path / "bidirectional.pt"
    r = convert(f"{src}:bidirectional", dst)
    assert r.exit_code == 0, r.output
    assert "OK" in r.output
    lstm = nn.LSTM(5, 8, bidirectional=True, batch_first=True)
    lstm.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    x = np.random.default_rng(3).standard_normal((2, 6, 5)).astype(np.float32)
    layer = keras.saving.load_model(src).get_layer("bidirectional")
    expected = np.asarray(keras.ops.convert_to_numpy(layer(x)))  # (N, L, 2*8): Keras' own forward
    with torch.no_grad():
        got = lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expected).max() > 0.05


def test_keras_gru_reset_after_false_is_refused_with_the_measured_difference(tmp_path):
    """Bug caught: a GRU(reset_after=False) written as nn.GRU weights (no nn.GRU computes it), or
    refused without measuring how far the nearest nn.GRU lands from Keras' own forward."""
    pytest.importorskip("h5py")
    pytest.importorskip("keras")
    dst = tmp_path / "gru.pt"
    r = convert(f"{os.path.join(EXAMPLES, 'tagger.keras')}:gru", dst)
    assert r.exit_code == 1, r.output
    assert "differs by up to" in " ".join(r.output.split()) and "reset" in r.output
    assert not dst.exists()


def _exported_lstm(path):
    torch.manual_seed(0)
    m = nn.LSTM(4, 6, num_layers=2, bidirectional=True).eval()
    x = torch.randn(5, 3, 4)
    torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y", "h", "c"])
    return m, x


def test_onnx_export_of_a_stacked_lstm_converts_back_to_the_module_that_was_exported(tmp_path):
    """Bugs caught: ONNX's i, o, f, c blocks not put back in torch's order, B not split into
    bias_ih/bias_hh, the second node not read as layer 1, or the reverse direction swapped."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    src, dst = tmp_path / "lstm.onnx", tmp_path / "lstm.pt"
    original, x = _exported_lstm(src)
    r = convert(src, dst)
    assert r.exit_code == 0, r.output
    back = nn.LSTM(4, 6, num_layers=2, bidirectional=True).eval()
    back.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    with torch.no_grad():
        for a, b in zip(original(x)[0:1] + original(x)[1], back(x)[0:1] + back(x)[1]):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)


def test_onnx_gru_with_linear_before_reset_0_is_refused_with_the_measured_difference(tmp_path):
    """Bug caught: ONNX's default GRU (reset gate applied before R_h) written as nn.GRU weights."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    H, I = 5, 3
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("W", (1, 3 * H, I)), ("R", (1, 3 * H, H)), ("B", (1, 6 * H)))]
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=H, linear_before_reset=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["L", "N", I])],
                              [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    src, dst = tmp_path / "gru.onnx", tmp_path / "gru.pt"
    onnx.save(model, str(src))
    r = convert(src, dst)
    assert r.exit_code == 1, r.output
    assert "differs by up to" in " ".join(r.output.split()) and "linear_before_reset" in r.output
    assert not dst.exists()
