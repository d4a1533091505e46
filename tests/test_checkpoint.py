"""Issue 13's core: reading real modules' checkpoints, diagnosing damaged ones, running them.

Expected values come from torch itself: the constructor arguments the test used, the
modules' own attributes, module(x), and load_state_dict's own verdicts.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

from rnn_cli import inputs
from rnn_cli.formats import checkpoint as ck
from rnn_cli.formats import user_arrays
from rnn_cli.core import manual
from rnn_cli.views.inspect import inspect_renderables
from rnn_cli.documents import inspect_document
from rnn_cli.errors import RnnCliError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def save(state: dict, path, fmt: str) -> str:
    """Write a flat state_dict as torch / safetensors / npz."""
    path = str(path) + {"torch": ".pt", "safetensors": ".safetensors", "npz": ".npz"}[fmt]
    if fmt == "torch":
        torch.save(state, path)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    return path


def only(path, prefix=None) -> ck.RecurrentModule:
    return ck.select_module(ck.inspect_file(path), prefix)


MODULES = {
    "lstm": lambda: nn.LSTM(3, 4),
    "lstm_proj_bidirectional": lambda: nn.LSTM(6, 8, num_layers=2, bidirectional=True, proj_size=3),
    "gru_bidirectional": lambda: nn.GRU(5, 7, num_layers=2, bidirectional=True),
    "rnn_relu_no_bias_3_layers": lambda: nn.RNN(4, 6, num_layers=3, nonlinearity="relu", bias=False),
    "rnn_cell": lambda: nn.RNNCell(3, 5),
    "lstm_cell": lambda: nn.LSTMCell(3, 5),
    "gru_cell_no_bias": lambda: nn.GRUCell(3, 5, bias=False),
}


def torch_args(m: nn.Module) -> dict:
    """What the test's own module says its constructor arguments were."""
    if isinstance(m, nn.RNNCellBase):
        return {"kind": type(m).__name__, "input_size": m.input_size, "hidden_size": m.hidden_size, "bias": m.bias}
    return {"kind": type(m).__name__, "input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional, "bias": m.bias, "proj_size": m.proj_size}


@pytest.mark.parametrize("fmt", ["torch", "safetensors", "npz"])
@pytest.mark.parametrize("scenario", list(MODULES))
def test_inspect_recovers_the_constructor_arguments(tmp_path, scenario, fmt):
    m = MODULES[scenario]()
    found = only(save(m.state_dict(), tmp_path / "m", fmt))
    want = torch_args(m)
    assert {k: getattr(found, k) for k in want} == want
    assert found.prefix == "" and found.problems == []
    assert found.num_parameters == sum(p.numel() for p in m.parameters())
    # the line rebuilds a module whose state_dict loads strictly
    rebuilt = eval(ck.constructor_line(found), {"nn": nn})
    rebuilt.load_state_dict(m.state_dict(), strict=True)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(80, 256, num_layers=2, bidirectional=True, proj_size=64)
        self.cell = nn.GRUCell(64, 32)
        self.head = nn.Linear(32, 10)


def test_issue_example_sequential_lstm_with_projection_and_gru_cell(tmp_path):
    model = nn.Sequential(Encoder())
    path = save(model.state_dict(), tmp_path / "model", "torch")
    report = ck.inspect_file(path, batch=32)
    lines = {r.module.prefix: r.constructor for r in report.modules}
    assert lines == {
        "0.lstm": "nn.LSTM(input_size=80, hidden_size=256, num_layers=2, bidirectional=True, proj_size=64)",
        "0.cell": "nn.GRUCell(input_size=64, hidden_size=32)",
    }
    lstm = report.modules[0]
    # torch's docs: h_0 (D*num_layers, N, H_out), c_0 (D*num_layers, N, H_cell)
    assert lstm.shapes["h_0"] == (2 * 2, 32, 64) and lstm.shapes["c_0"] == (4, 32, 256)
    assert set(lstm.module.unknowns) == {"batch_first", "dropout"}
    assert report.other.count == 2 and report.other.largest == [("0.head", 32 * 10 + 10)]


@pytest.mark.parametrize(
    "wrap, prefix, nesting",
    [
        ("plain", "enc.rnn", None),
        ("data_parallel", "enc.rnn", "module."),
        ("lightning", "model.enc.rnn", "state_dict"),
        ("lightning_data_parallel", "enc.rnn", "state_dict/module."),
        ("model_state_dict", "enc.rnn", "model_state_dict"),
    ],
)
def test_weights_are_found_wherever_training_scripts_nest_them(tmp_path, wrap, prefix, nesting):
    enc = nn.Module()
    enc.rnn = nn.RNN(3, 4, nonlinearity="relu")
    holder = nn.Sequential()
    holder.add_module("enc", enc)
    sd = holder.state_dict()
    dp = {"module." + k: v for k, v in sd.items()}
    obj = {
        "plain": sd,
        "data_parallel": dp,
        "lightning": {"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 3,
                      "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(12, 3)}}}]},
        "lightning_data_parallel": {"state_dict": dp, "epoch": 3},
        "model_state_dict": {"model_state_dict": sd, "optimizer_state_dict": {"state": {}}, "epoch": 7},
    }[wrap]
    path = tmp_path / "m.ckpt"
    torch.save(obj, path)
    report = ck.inspect_file(path)
    assert report.loaded.nesting == nesting
    assert [r.module.prefix for r in report.modules] == [prefix]
    assert report.modules[0].module.kind == "RNN"


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_precision_is_read_as_float32_and_said(tmp_path, fmt, dtype):
    m = nn.GRU(3, 4).to(dtype)
    report = ck.inspect_file(save(m.state_dict(), tmp_path / "m", fmt))
    module = report.modules[0].module
    assert module.dtype == "float32"
    for name, p in m.named_parameters():  # exactly torch's own widening
        np.testing.assert_array_equal(module.params[name], p.detach().float().numpy())
    assert report.loaded.notes == [f"{str(dtype).removeprefix('torch.')} tensors converted to float32"]


# ---- running the checkpoint on the user's input -------------------------------------------


RUNS = {
    "lstm_proj_bidirectional": lambda: nn.LSTM(6, 8, num_layers=2, bidirectional=True, proj_size=3, batch_first=True),
    "gru_bidirectional": lambda: nn.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True),
    "rnn_relu": lambda: nn.RNN(4, 6, num_layers=2, nonlinearity="relu", batch_first=True),
}


@pytest.mark.parametrize("scenario", list(RUNS))
def test_manual_forward_on_checkpoint_and_input_reproduces_module_of_x(tmp_path, scenario):
    torch.manual_seed(0)
    m = RUNS[scenario]().double().eval()
    path = save(m.state_dict(), tmp_path / "m", "safetensors")
    x = torch.randn(3, 5, m.input_size, dtype=torch.float64)  # (N, L, H_in): batch_first
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        want, _ = m(x)

    module = only(path)
    x_tm = user_arrays.load_input(tmp_path / "x.npy", batch_first=True, input_size=module.input_size)  # (L, N, H_in)
    L, N, _ = x_tm.shape
    nonlinearity = "relu" if scenario == "rnn_relu" else None
    cfg, params = ck.to_run_config(module, ck.Flags(), path, batch_first=True, seq_len=L, batch=N, nonlinearity=nonlinearity)
    assert cfg.dtype == "float64"  # the parameters' own
    sample = inputs.make_sample(cfg, params, x_tm)
    fwd = manual.forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0)
    np.testing.assert_allclose(fwd.output.transpose(1, 0, 2), want.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_torch_run_on_checkpoint_with_user_h0_c0_reproduces_module_of_x(tmp_path):
    from rnn_cli.core import torch_run

    torch.manual_seed(1)
    m = nn.LSTM(4, 6, num_layers=2, proj_size=2).eval()
    path = save(m.state_dict(), tmp_path / "m", "torch")
    x, h_0, c_0 = torch.randn(7, 3, 4), torch.randn(2, 3, 2), torch.randn(2, 3, 6)
    for name, t in (("x", x), ("h0", h_0), ("c0", c_0)):
        np.save(tmp_path / f"{name}.npy", t.numpy())
    with torch.no_grad():
        want, (h_n, c_n) = m(x, (h_0, c_0))

    module = only(path)
    x_tm = user_arrays.load_input(tmp_path / "x.npy")
    cfg, params = ck.to_run_config(module, ck.Flags(), path, seq_len=x_tm.shape[0], batch=x_tm.shape[1])
    sample = inputs.make_sample(cfg, params, x_tm, user_arrays.load_state(tmp_path / "h0.npy", "h_0", cfg),
                            user_arrays.load_state(tmp_path / "c0.npy", "c_0", cfg))
    result = torch_run.run(cfg, sample, keep_layers=False)
    np.testing.assert_allclose(result.tensors["output"], want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.tensors["h_n"], h_n.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.tensors["c_n"], c_n.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["RNNCell", "GRUCell", "LSTMCell"])
def test_a_cell_runs_as_the_one_layer_module_stepping_it(tmp_path, cell):
    torch.manual_seed(2)
    m = getattr(nn, cell)(3, 4).double()
    path = save(m.state_dict(), tmp_path / "m", "npz")
    x = torch.randn(5, 2, 3, dtype=torch.float64)  # (L, N, H_in)
    state = None
    steps = []
    with torch.no_grad():
        for x_t in x:  # the user's own loop over time
            state = m(x_t, state)
            steps.append(state[0] if isinstance(state, tuple) else state)
    cfg, params = ck.to_run_config(only(path), ck.Flags(), path, seq_len=5, batch=2)
    sample = inputs.make_sample(cfg, params, x.numpy())
    fwd = manual.forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0)
    np.testing.assert_allclose(fwd.output, torch.stack(steps).numpy(), rtol=1e-10, atol=1e-10)


def test_a_flag_that_contradicts_the_checkpoint_names_both(tmp_path):
    holder = nn.Module()
    holder.encoder = nn.Module()
    holder.encoder.lstm = nn.LSTM(5, 16)
    path = save(holder.state_dict(), tmp_path / "model", "torch")
    module = only(path)
    with pytest.raises(RnnCliError, match=r"^--hidden-size 8 but encoder\.lstm in model\.pt has hidden_size 16$"):
        ck.to_run_config(module, ck.Flags(hidden_size=8), path)
    with pytest.raises(RnnCliError, match=r"^--cell gru but encoder\.lstm in model\.pt has cell lstm$"):
        ck.to_run_config(module, ck.Flags(cell="gru"), path)
    cfg, _ = ck.to_run_config(module, ck.Flags(hidden_size=16, dtype="float64"), path)  # agreeing flags are fine
    assert cfg.dtype == "float64"


def test_params_prefix_is_needed_only_when_the_file_has_several_modules(tmp_path):
    path = save(nn.Sequential(Encoder()).state_dict(), tmp_path / "two:modules", "torch")  # ':' in the name
    assert ck.parse_params_arg(path) == (path, None)
    assert ck.parse_params_arg(path + ":0.cell") == (path, "0.cell")
    report = ck.inspect_file(path)
    assert ck.select_module(report, "0.cell").kind == "GRUCell"
    with pytest.raises(RnnCliError, match=r"2 recurrent modules.*0\.lstm \(LSTM\), 0\.cell \(GRUCell\)"):
        ck.select_module(report, None)
    with pytest.raises(RnnCliError, match=r"no recurrent module 'lstm'; the file has: 0\.lstm"):
        ck.select_module(report, "lstm")


def test_input_shapes_are_explained(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((32, 10, 80), np.float32))
    with pytest.raises(RnnCliError, match=r"^--input has shape \(32, 10, 80\): with --batch-first off that is "
                       r"L=32, N=10, H_in=80, but --batch is 32; did you mean --batch-first\?$"):
        user_arrays.load_input(tmp_path / "x.npy", batch=32)
    with pytest.raises(RnnCliError, match=r"the module takes input_size=40"):
        user_arrays.load_input(tmp_path / "x.npy", input_size=40)
    with pytest.raises(RnnCliError, match=r"2-D input \(L, H_in\) needs --unbatched"):
        np.save(tmp_path / "u.npy", np.zeros((10, 80)))
        user_arrays.load_input(tmp_path / "u.npy")
    assert user_arrays.load_input(tmp_path / "x.npy", batch_first=True, batch=32).shape == (10, 32, 80)  # (L, N, H_in)
    assert user_arrays.load_input(tmp_path / "u.npy", unbatched=True).shape == (10, 1, 80)


def test_h0_shape_is_explained_in_the_docs_symbols(tmp_path):
    path = save(nn.LSTM(80, 256, num_layers=2, bidirectional=True).state_dict(), tmp_path / "m", "npz")
    cfg, _ = ck.to_run_config(only(path), ck.Flags(), path, batch=32)
    np.save(tmp_path / "h.npy", np.zeros((32, 256), np.float32))
    with pytest.raises(RnnCliError, match=r"^h_0 has shape \(32, 256\), the module wants "
                       r"\(D\*num_layers, N, H_out\) = \(4, 32, 256\)$"):
        user_arrays.load_state(tmp_path / "h.npy", "h_0", cfg)


# ---- damaged and refused files ----------------------------------------------------------------


def damaged(tmp_path, edit) -> list[str]:
    holder = nn.Module()
    holder.encoder = nn.Module()
    holder.encoder.lstm = nn.LSTM(5, 4, num_layers=3, bidirectional=True)
    sd = dict(holder.state_dict())
    edit(sd)
    return [p.message for p in ck.inspect_file(save(sd, tmp_path / "m", "torch")).problems]


def test_deleted_key_is_named_with_what_it_means(tmp_path):
    problems = damaged(tmp_path, lambda sd: sd.pop("encoder.lstm.weight_ih_l1_reverse"))
    assert problems == [
        "encoder.lstm: weight_ih_l1_reverse is missing but weight_hh_l1_reverse is there: layer 1's backward "
        "direction has no input weights; the file is damaged or was edited"
    ]


def test_layer_without_reverse_twin(tmp_path):
    def drop(sd):
        for k in [k for k in sd if k.endswith("_l2_reverse")]:
            del sd[k]

    (problem,) = damaged(tmp_path, drop)
    assert "layer 2 has forward weights but no backward (_reverse) twin" in problem


def test_missing_middle_layer(tmp_path):
    def drop(sd):
        for k in [k for k in sd if "_l1" in k]:
            del sd[k]

    problems = damaged(tmp_path, drop)
    assert len(problems) == 1 and "has layers l0, l2 but no l1" in problems[0]


def test_input_width_that_does_not_chain(tmp_path):
    def narrow(sd):
        sd["encoder.lstm.weight_ih_l1"] = sd["encoder.lstm.weight_ih_l1"][:, :5]

    (problem,) = damaged(tmp_path, narrow)
    assert problem.startswith("encoder.lstm: weight_ih_l1 takes 5 inputs but layer 0 outputs D*H_out = 2*4 = 8")


def test_input_width_that_does_not_chain_with_projection(tmp_path):
    sd = dict(nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=2).state_dict())
    sd["weight_ih_l1"] = sd["weight_ih_l1"][:, :3]  # layer 1 takes D*H_out = 2*proj_size = 4 inputs
    (problem,) = [p.message for p in ck.inspect_file(save(sd, tmp_path / "m", "npz")).problems]
    assert problem.startswith("(top level): weight_ih_l1 takes 3 inputs but layer 0 outputs D*H_out = 2*2 = 4")


def test_biases_on_some_layers_only(tmp_path):
    def drop(sd):
        for k in [k for k in sd if k.startswith("encoder.lstm.bias_") and "_l1" in k]:
            del sd[k]

    (problem,) = damaged(tmp_path, drop)
    assert "biases on some layers only: bias_ih_l1, bias_hh_l1, bias_ih_l1_reverse, bias_hh_l1_reverse missing" in problem


def test_gate_count_that_matches_no_cell(tmp_path):
    sd = {"rnn.weight_ih_l0": torch.zeros(16, 3), "rnn.weight_hh_l0": torch.zeros(16, 8)}  # 2 gates
    (r,) = ck.inspect_file(save(sd, tmp_path / "m", "npz")).modules
    assert r.module.kind is None
    assert "weight_hh_l0 has shape (16, 8)" in r.module.problems[0].message and "matches no cell" in r.module.problems[0].message


def test_weight_of_the_wrong_rank_is_a_problem_not_a_crash(tmp_path):
    sd = {"rnn.weight_ih_l0": torch.zeros(8, 3), "rnn.weight_hh_l0": torch.zeros(64)}
    (r,) = ck.inspect_file(save(sd, tmp_path / "m", "npz")).modules
    assert [p.message for p in r.module.problems] == [
        "rnn: weight_hh_l0 has shape (64,): a weight must have 2 dimensions"]


def test_mixed_dtypes(tmp_path):
    def widen(sd):
        sd["encoder.lstm.weight_hh_l0"] = sd["encoder.lstm.weight_hh_l0"].double()

    (problem,) = damaged(tmp_path, widen)
    assert "mixed dtypes: most parameters are float32 but weight_hh_l0 is float64" in problem


def test_damaged_module_cannot_be_run(tmp_path):
    sd = dict(nn.GRU(3, 4, num_layers=2).state_dict())
    del sd["weight_hh_l1"]
    path = save(sd, tmp_path / "m", "torch")
    with pytest.raises(RnnCliError, match=r"cannot be run: .*weight_hh_l1 is missing"):
        ck.to_run_config(only(path), ck.Flags(), path)


def test_whole_pickled_module_is_refused_without_running_it(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(nn.LSTM(3, 4), path)
    with pytest.raises(RnnCliError, match=r"would run code from the file; save the weights with "
                       r"torch\.save\(model\.state_dict\(\), PATH\)$"):
        ck.load_tensors(path)


def test_no_recurrent_module_lists_the_largest_tensors(tmp_path):
    path = save(nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 2)).state_dict(), tmp_path / "mlp", "torch")
    with pytest.raises(RnnCliError, match=r"no recurrent module .* largest tensors: 0 \(220 elements\), 1 \(42 elements\)$"):
        ck.inspect_file(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(RnnCliError, match=r"unknown checkpoint format '\.tflite'"):
        ck.load_tensors(tmp_path / "m.tflite")
    with pytest.raises(RnnCliError, match=r"no such file"):
        ck.load_tensors(tmp_path / "m.pt")


# ---- two checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a_kwargs, b_kwargs, fix",
    [
        ({"bidirectional": True}, {}, "checkpoint A is bidirectional (has weight_ih_l0_reverse), B is not: bidirectional=True"),
        ({"hidden_size": 6}, {}, "hidden_size=6"),
        ({"input_size": 7}, {}, "input_size=7"),
        ({"num_layers": 2}, {}, "num_layers=2"),
        ({"bias": False}, {}, "bias=False"),
        ({"proj_size": 2}, {}, "proj_size=2"),
    ],
    ids=["bidirectional", "hidden_size", "input_size", "num_layers", "bias", "proj_size"],
)
def test_against_explains_what_load_state_dict_refuses(tmp_path, a_kwargs, b_kwargs, fix):
    base = {"input_size": 3, "hidden_size": 4}

    def model(kw):
        holder = nn.Module()
        holder.encoder = nn.Module()
        holder.encoder.lstm = nn.LSTM(**{**base, **kw})
        return holder

    a, b = model(a_kwargs), model(b_kwargs)
    with pytest.raises(RuntimeError):  # torch agrees they differ
        b.load_state_dict(a.state_dict())
    diffs = ck.compare_checkpoints(ck.inspect_file(save(a.state_dict(), tmp_path / "a", "torch")),
                                   ck.inspect_file(save(b.state_dict(), tmp_path / "b", "torch")))
    assert len(diffs) == 1 and diffs[0].startswith("encoder.lstm: ") and diffs[0].endswith(fix)
    model({**b_kwargs, **a_kwargs}).load_state_dict(a.state_dict())  # the fix is enough


def test_against_names_a_key_one_file_lacks(tmp_path):
    """Bug caught: same constructor arguments but a deleted key was reported as 'load_state_dict
    would accept either', which strict loading does not."""
    a = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    damaged = {k: v for k, v in a.state_dict().items() if k != "weight_ih_l1_reverse"}
    with pytest.raises(RuntimeError, match="weight_ih_l1_reverse"):  # torch agrees
        nn.LSTM(3, 4, num_layers=2, bidirectional=True).load_state_dict(damaged)
    diffs = ck.compare_checkpoints(ck.inspect_file(save(a.state_dict(), tmp_path / "a", "torch")),
                                   ck.inspect_file(save(damaged, tmp_path / "b", "torch")))
    assert diffs and "weight_ih_l1_reverse" in diffs[0]


# ---- no torch for numpy formats; the views -----------------------------------------------------


def test_npz_and_safetensors_are_read_without_importing_torch(tmp_path):
    sd = nn.GRU(3, 4).state_dict()
    paths = [save(sd, tmp_path / "m", "npz"), save(sd, tmp_path / "m", "safetensors")]
    code = ("import sys; from rnn_cli.formats import checkpoint as ck; "
            f"kinds = [ck.inspect_file(p).modules[0].module.kind for p in {paths!r}]; "
            "assert kinds == ['GRU', 'GRU'], kinds; assert 'torch' not in sys.modules, 'torch imported'")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_document_and_view(tmp_path):
    sd = dict(nn.Sequential(Encoder()).state_dict())
    del sd["0.lstm.weight_ih_l1_reverse"]
    report = ck.inspect_file(save(sd, tmp_path / "m", "npz"))
    doc = json.loads(json.dumps(inspect_document(report)))
    lstm, cell = doc["modules"]
    assert lstm["config"] == {"input_size": 80, "hidden_size": 256, "num_layers": 2, "bidirectional": True,
                              "bias": True, "proj_size": 64}
    assert lstm["problems"][0]["keys"] == ["0.lstm.weight_ih_l1_reverse"]
    assert lstm["shapes"] == {}  # a damaged module has no shapes to promise
    assert cell["shapes"]["h"] == [1, 32] and doc["problems"] == 1
    console = Console(file=io.StringIO(), width=100)
    for r in inspect_renderables(console, report):
        console.print(r)
    text = console.file.getvalue()
    assert "nn.GRUCell(input_size=64, hidden_size=32)" in text
    assert "problem: 0.lstm: weight_ih_l1_reverse is missing" in text


def test_bfloat16_safetensors_are_read_when_numpy_knows_bfloat16(tmp_path):
    """Bug caught: with ml_dtypes loaded (onnx imports it), safetensors.numpy hands back numpy
    bfloat16 arrays (kind 'V'), which were dropped as non-numeric: 'no recurrent module'."""
    pytest.importorskip("ml_dtypes")  # installed with the onnx extra; importing registers bfloat16 with numpy

    m = nn.GRU(3, 4).to(torch.bfloat16)
    report = ck.inspect_file(save(m.state_dict(), tmp_path / "m", "safetensors"))
    module = report.modules[0].module
    assert module.kind == "GRU" and module.dtype == "float32"
    np.testing.assert_array_equal(module.params["weight_hh_l0"], m.weight_hh_l0.detach().float().numpy())
    assert report.loaded.notes == ["bfloat16 tensors converted to float32"]
