"""Write the README's example files, the same bytes of weights on every run.

    python docs/examples/make-examples.py   # writes model.pt, x.npy, broken.pt, pickled.pt here

model.pt    state_dict of nn.Sequential(nn.LSTM(8, 16, num_layers=2, bidirectional=True,
            proj_size=4), nn.GRUCell(4, 6)) with torch.manual_seed(0): what `rnn-cli inspect`
            and `--params docs/examples/model.pt:0` read
x.npy       input for that LSTM, (L, N, H_in) = (6, 2, 8), time-major, float32
broken.pt   model.pt without 0.weight_ih_l1_reverse: what a damaged checkpoint looks like
pickled.pt  torch.save(model[1]), a whole module pickled: what rnn-cli refuses to load
encoder.jit torch.jit.save(torch.jit.script(Speller())): a TorchScript archive with an nn.GRU
            in a submodule, read by `rnn-cli inspect` without running its code
port.npz    a GRU(8, 16) kept in torch's layout under a port's own names (enc_w_ih, ...)
vad.onnx    an ONNX graph (onnx.helper) with an LSTMCell(16, 16) step in each branch of an If,
            fed by one graph input `state` (2, N, 16) holding h and c
tagger.keras  a Keras Sequential: Bidirectional(LSTM(8)) on 5 features, then GRU(4,
            reset_after=False), weights from numpy's Generator seeded 0; written only where
            keras is installed (the keras extra), with KERAS_BACKEND=torch (set here): the other
            files need no Keras. The zip's metadata.json holds the date it was saved.

    python docs/examples/make-examples.py encoder.jit port.npz   # only these
"""

import sys

from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4),
        nn.GRUCell(4, 6),
    )


def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 2, 8)).astype(np.float32)  # (L, N, H_in)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 16, num_layers=2, batch_first=True, dropout=0.1)

    def forward(self, x):
        return self.rnn(x)[0]


class Speller(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = nn.LSTMCell(16, 16)
        self.out = nn.Linear(16, 30)

    def forward(self, x):
        h, _ = self.decoder(self.encoder(x)[:, -1])
        return self.out(h)


def torchscript() -> None:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Speller().eval()), HERE / "encoder.jit")


def port() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(8, 16).state_dict()
    names = {"weight_ih_l0": "enc_w_ih", "weight_hh_l0": "enc_w_hh", "bias_ih_l0": "enc_b_ih", "bias_hh_l0": "enc_b_hh"}
    arrays = {names[k]: v.numpy() for k, v in gru.items()}
    arrays["out_w"] = np.random.default_rng(0).standard_normal((30, 16)).astype(np.float32)
    np.savez(HERE / "port.npz", **arrays)


def _const(name, a):
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(a), name + "_t"))


def _branch(p: str, H: int, rng):
    """One If branch as a published model writes an nn.LSTMCell step: h, c = state[0], state[1]
    (Gather), X = Unsqueeze(x), W/R/B = Unsqueeze(Constant), LSTM, Squeeze, Concat -> stateN.
    (torch's exporter writes nn.LSTMCell as Gemm nodes, not as an LSTM node.)"""
    from onnx import TensorProto, helper

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
    return helper.make_graph(nodes, p + "branch", [], outs)


def vad_model(path, H=16, state_in_main=None) -> None:
    """x (N, H), state (2, N, H), use_a (bool) -> out (N, H), stateN (2, N, H): an LSTMCell step
    with its own weights in each branch of an If (one model per sample rate), as published voice
    activity detectors ship it. state_in_main: main-graph nodes that make `state` from `state_in`."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    then_g, else_g = _branch("a_", H, rng), _branch("b_", H, rng)
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




def tagger() -> None:
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((None, 5)),
        layers.Bidirectional(layers.LSTM(8, return_sequences=True), name="bidirectional"),
        layers.GRU(4, reset_after=False, name="gru"),
    ], name="tagger")
    rng = np.random.default_rng(0)
    for layer in model.layers:  # random biases too: Keras starts them at zero
        layer.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in layer.get_weights()])
    model.save(HERE / "tagger.keras")


def main() -> None:
    only = {"encoder.jit": torchscript, "port.npz": port, "vad.onnx": lambda: vad_model(HERE / "vad.onnx"),
            "tagger.keras": tagger}
    if sys.argv[1:]:
        for name in sys.argv[1:]:
            only[name]()
        return
    torchscript()
    port()
    vad_model(HERE / "vad.onnx")
    try:
        tagger()
    except ImportError as e:
        print(f"tagger.keras not written: {e} (pip install -e '.[keras]')", file=sys.stderr)
    m = model()
    state = m.state_dict()
    torch.save(state, HERE / "model.pt")
    np.save(HERE / "x.npy", x())
    broken = {k: v for k, v in state.items() if k != "0.weight_ih_l1_reverse"}
    torch.save(broken, HERE / "broken.pt")
    torch.save(m[1], HERE / "pickled.pt")  # the GRUCell itself, not its state_dict


if __name__ == "__main__":
    main()
