"""The edges the core's tests did not reach: each test here failed with a bug that a review
planted and no other test noticed. Expected values come from torch (autograd, packed runs,
float64 modules, module attributes), onnxruntime, or formulas worked out in the test, never
from the code under test. Runs are in-process (CliRunner), files in tmp_path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from typer.testing import CliRunner

from rnn_cli.formats import checkpoint as ck
from rnn_cli.cli.app import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.stdout


def module_from(saved, cell: str, input_size: int, hidden_size: int, dtype=torch.float64, **kwargs) -> nn.Module:
    """A torch module holding the weights a --save file holds, in `dtype`."""
    m = CLASS[cell](input_size, hidden_size, **kwargs).to(dtype)
    m.load_state_dict({n: torch.tensor(saved[n], dtype=dtype) for n, _ in m.named_parameters()}, strict=True)
    return m


def padded_mask(lengths, seq_len: int) -> np.ndarray:
    """(L, N) True at real steps, from the lengths alone."""
    return np.arange(seq_len)[:, None] < np.asarray(lengths)[None, :]


# ---- --grad --no-pack: the loss looks at real steps only ---------------------------------------


def test_no_pack_grad_gives_padded_steps_no_upstream_gradient(tmp_path):
    """Bug caught: under --no-pack the upstream G_out was drawn on padded steps too, against
    the README (compare hands the same G to both sides, so compare could not see it)."""
    lengths, L = (5, 2, 4), 5
    path = tmp_path / "g.npz"
    invoke("manual", "--grad", "--no-pack", "--cell", "gru", "--bidirectional", "--lengths", "5,2,4", "--batch", "3",
           "--seq-len", str(L), "--hidden-size", "3", "--dtype", "float64", "--save", str(path))
    saved = dict(np.load(path))
    real = padded_mask(lengths, L)  # (L, N)
    assert np.all(saved["upstream_output"][~real] == 0) and np.all(saved["upstream_output"][real] != 0)
    # torch autograd of the loss over real steps only, the mask made here
    m = module_from(saved, "gru", 5, 3, bidirectional=True)
    x = torch.tensor(saved["input"], requires_grad=True)
    out, h_n = m(x, torch.tensor(saved["h_0"]))  # padded batch straight through: --no-pack
    G_out = torch.tensor(saved["upstream_output"]) * torch.tensor(real)[:, :, None]
    (out * G_out).sum().add((h_n * torch.tensor(saved["upstream_h_n"])).sum()).backward()
    for n, p in m.named_parameters():
        np.testing.assert_allclose(saved[f"grad_{n}"], p.grad.numpy(), atol=1e-10, err_msg=n)
    np.testing.assert_allclose(saved["grad_input"], x.grad.numpy(), atol=1e-10)


# ---- checkpoints: a missing middle layer, a partial module. prefix -----------------------------


def test_a_missing_middle_layer_keeps_the_highest_layer_and_checks_it(tmp_path):
    """Bug caught: num_layers taken from the count of layers (2) instead of the highest index
    + 1 (3): l2 was then never shape-checked."""
    sd = dict(nn.LSTM(4, 6, num_layers=3).state_dict())
    for k in [k for k in sd if "_l1" in k]:
        del sd[k]
    sd["weight_hh_l2"] = sd["weight_hh_l2"][:, :5]  # damaged as well: it must be looked at
    path = tmp_path / "m.pt"
    torch.save(sd, path)
    (report,) = ck.inspect_file(path).modules
    m = report.module
    # torch needs num_layers=3 for a key named weight_ih_l2 to exist at all
    assert m.num_layers == 3 and (m.kind, m.input_size, m.hidden_size) == ("LSTM", 4, 6)
    by_key = {k: p.message for p in m.problems for k in p.keys}
    assert "has layers l0, l2 but no l1" in by_key["weight_ih_l0"]
    assert "weight_hh_l2" in by_key and "(24, 5)" in by_key["weight_hh_l2"]


def test_module_prefix_is_stripped_only_when_every_key_has_it(tmp_path):
    """Bug caught: `module.` stripped when any key had it: the other tensors were listed as
    `ight` and `as` (7 characters cut from `head.weight`, `head.bias`)."""
    gru, head = nn.GRU(3, 4), nn.Linear(4, 2)
    sd = {f"module.rnn.{k}": v for k, v in gru.state_dict().items()}
    sd.update({f"head.{k}": v for k, v in head.state_dict().items()})
    torch.save(sd, tmp_path / "partial.pt")
    doc = json.loads(invoke("inspect", str(tmp_path / "partial.pt"), "--json"))
    assert doc["nesting"] is None
    assert [m["prefix"] for m in doc["modules"]] == ["module.rnn"]
    assert doc["other_tensors"]["largest"] == [{"prefix": "head", "elements": 4 * 2 + 2}]
    # every key prefixed (DataParallel): stripped, and said
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "whole.pt")
    doc = json.loads(invoke("inspect", str(tmp_path / "whole.pt"), "--json"))
    assert doc["nesting"] == "module." and [m["prefix"] for m in doc["modules"]] == ["module.rnn"]


# ---- --no-pack's padding effect: h_n[layer * D + direction] -----------------------------------


@pytest.mark.parametrize("layers", [2, 3])
def test_padding_effect_rows_are_the_slices_they_name(tmp_path, layers):
    """Bug caught: h_n[layer + d] read instead of h_n[layer * D + d]: with 2+ layers,
    rows labelled h_n[2], h_n[3] showed layer 0's numbers."""
    lengths, L, H = (5, 2, 4), 5, 3
    path = tmp_path / "run.npz"
    doc = json.loads(invoke("torch", "--layers", str(layers), "--bidirectional", "--lengths", "5,2,4", "--batch", "3",
                            "--seq-len", str(L), "--hidden-size", str(H), "--no-pack", "--json", "--save", str(path)))
    saved = dict(np.load(path))
    m = module_from(saved, "rnn", 5, H, dtype=torch.float32, num_layers=layers, bidirectional=True)
    x, h_0 = torch.tensor(saved["input"]), torch.tensor(saved["h_0"])
    with torch.no_grad():
        out_u, h_u = m(x, h_0)
        packed, h_p = m(pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False), h_0)
        out_p, _ = pad_packed_sequence(packed, total_length=L)
    want = {}
    for k in range(2 * layers):
        for n in range(3):
            want[(f"h_n[{k}]", n)] = float((h_u[k, n] - h_p[k, n]).abs().max())
    for d, direction in enumerate(("forward", "backward")):
        for n, length in enumerate(lengths):
            cols = slice(d * H, (d + 1) * H)
            want[("output at last real step", n, direction)] = float((out_u[length - 1, n, cols] - out_p[length - 1, n, cols]).abs().max())
    rows = doc["padding_effect"]
    assert len(rows) == 2 * layers * 3 + 2 * 3
    for r in rows:
        k = (r["tensor"], r["sequence"]) + ((r["direction"],) if r["tensor"].startswith("output") else ())
        assert r["max_abs_diff"] == pytest.approx(want[k], abs=1e-6), r
    assert {r["tensor"] for r in rows} >= {f"h_n[{k}]" for k in range(2 * layers)}
    assert max(want[(f"h_n[{2 * layers - 2}]", 1)], want[(f"h_n[{2 * layers - 1}]", 1)]) > 1e-3  # padding matters


# ---- JSON values: compare, onnx, inspect, grad ------------------------------------------------


def test_compare_json_differences_are_the_ones_computed_here(tmp_path):
    """Bug caught: max_rel_diff held max_abs_diff (tests checked keys and >= 0 only)."""
    path = tmp_path / "run.npz"
    doc = json.loads(invoke("compare", "--cell", "gru", "--batch", "2", "--seq-len", "6", "--hidden-size", "3",
                            "--json", "--save", str(path)))
    saved = dict(np.load(path))
    atol = doc["tolerance"]["atol"]
    m32 = module_from(saved, "gru", 5, 3, dtype=torch.float32)
    m64 = module_from(saved, "gru", 5, 3, dtype=torch.float64)  # the float64 reference, by torch
    with torch.no_grad():
        got = dict(zip(("output", "h_n"), m32(torch.tensor(saved["input"], dtype=torch.float32))))
        ref = dict(zip(("output", "h_n"), m64(torch.tensor(saved["input"], dtype=torch.float64))))
    results = {r["tensor"]: r for r in doc["results"]}
    for name in ("output", "h_n"):
        diff = (got[name].double() - ref[name]).abs().numpy()
        scale = ref[name].abs().numpy()
        rel = np.max(np.where(scale > atol, diff / np.where(scale > atol, scale, 1), 0))
        assert results[name]["max_abs_diff"] == pytest.approx(diff.max(), rel=1e-6)
        assert results[name]["max_rel_diff"] == pytest.approx(rel, rel=1e-6)
        assert results[name]["torch_shape"] == results[name]["reference_shape"] == list(got[name].shape)
    assert results["output"]["max_rel_diff"] != pytest.approx(results["output"]["max_abs_diff"], rel=1e-3)


def test_onnx_json_expected_shape_is_the_references():
    """Bug caught: onnx's JSON expected_shape held the ONNX output's shape; they differ only
    when a check fails, so a made-up failing check is what shows it."""
    from rnn_cli.core.compare import TensorCheck
    from rnn_cli.documents import _check
    from rnn_cli.core.tolerance import Tolerance

    failing = TensorCheck("output", (10, 1, 16), (10, 1, 8), None, None, False, Tolerance(1e-5, 1e-5, "test"))
    doc = _check(failing, "torch")
    assert (doc["shape"], doc["expected_shape"], doc["ok"]) == ([10, 1, 16], [10, 1, 8], False)


def test_onnx_json_differences_are_the_ones_onnxruntime_gives(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model, path = tmp_path / "m.onnx", tmp_path / "run.npz"
    doc = json.loads(invoke("onnx", "--cell", "gru", "--seq-len", "4", "--hidden-size", "3", "--json",
                            "--save-onnx", str(model)))
    invoke("torch", "--cell", "gru", "--seq-len", "4", "--hidden-size", "3", "--save", str(path))  # same seed, same run
    saved = dict(np.load(path))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = {i.name: saved[i.name].astype(np.float32) for i in session.get_inputs()}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    results = {(r["tensor"], r["against"]): r for r in doc["results"]}
    for name in ("output", "h_n"):
        r = results[(name, "torch")]
        assert r["shape"] == r["expected_shape"] == list(saved[name].shape)
        assert r["max_abs_diff"] == pytest.approx(float(np.max(np.abs(outputs[name] - saved[name]))), rel=1e-6, abs=1e-12)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_inspect_json_values_are_the_modules_own(tmp_path):
    m = nn.LSTM(6, 8, num_layers=2, bidirectional=True, proj_size=3)
    head = nn.Linear(6, 2)
    torch.save({**{f"rnn.{k}": v for k, v in m.state_dict().items()}, **{f"head.{k}": v for k, v in head.state_dict().items()}},
               tmp_path / "m.pt")
    doc = json.loads(invoke("inspect", str(tmp_path / "m.pt"), "--json", "--batch", "2", "--seq-len", "7"))
    (mod,) = doc["modules"]
    assert mod["config"] == {"input_size": m.input_size, "hidden_size": m.hidden_size, "num_layers": m.num_layers,
                             "bidirectional": m.bidirectional, "bias": m.bias, "proj_size": m.proj_size}
    assert mod["num_parameters"] == sum(p.numel() for p in m.parameters())
    assert [(p["name"], p["shape"]) for p in mod["parameters"]] == [(n, list(p.shape)) for n, p in m.named_parameters()]
    with torch.no_grad():
        out, (h_n, c_n) = m(torch.zeros(7, 2, 6))
    assert {k: mod["shapes"][k] for k in ("output", "h_n", "c_n")} == {
        "output": list(out.shape), "h_n": list(h_n.shape), "c_n": list(c_n.shape)}
    assert doc["other_tensors"] == {"count": 2, "elements": 6 * 2 + 2, "largest": [{"prefix": "head", "elements": 14}]}
    assert doc["problems"] == 0 and mod["problems"] == []


def test_grad_json_values_are_torch_autograds(tmp_path):
    path = tmp_path / "g.npz"
    doc = json.loads(invoke("manual", "--grad", "--json", "--cell", "lstm", "--layers", "2", "--bidirectional", "--batch",
                            "2", "--seq-len", "4", "--hidden-size", "3", "--dtype", "float64", "--save", str(path)))
    saved = dict(np.load(path))
    m = module_from(saved, "lstm", 5, 3, num_layers=2, bidirectional=True)
    x = torch.tensor(saved["input"], requires_grad=True)
    out, (h_n, c_n) = m(x)
    loss = sum((t * torch.tensor(saved[f"upstream_{n}"])).sum() for n, t in (("output", out), ("h_n", h_n), ("c_n", c_n)))
    loss.backward()
    assert doc["loss"]["value"] == pytest.approx(float(loss.detach()), abs=1e-10)
    grads = doc["gradients"]
    for n, p in m.named_parameters():
        np.testing.assert_allclose(np.array(grads[n]["values"]), p.grad.numpy(), atol=1e-10, err_msg=n)
    np.testing.assert_allclose(np.array(grads["input"]["values"]), x.grad.numpy(), atol=1e-10)
