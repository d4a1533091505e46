"""The --json document of manual, torch and compare (issue 2's machine output, with issue 3's
--cell/--proj-size and issue 4's --lengths additions).

Expected shapes come from the PyTorch documentation's formulas, parameter names, shapes and
totals from torch modules built here, batch_sizes from the lengths by counting, and
manual-vs-torch agreement from running both commands.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "80", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}

TOP_KEYS = {"command", "config", "tensors", "parameters", "num_parameters"}
COMPARE_KEYS = {"results", "ok"}
CONFIG_KEYS = {
    "cell", "input_size", "hidden_size", "num_layers", "bidirectional", "batch_first", "nonlinearity",
    "bias", "proj_size", "seq_len", "batch", "lengths", "h0", "seed", "dtype", "device",
}  # fmt: skip
RESULT_KEYS = {"tensor", "torch_shape", "reference_shape", "max_abs_diff", "max_rel_diff", "atol", "rtol", "ok"}


def _reject_constant(name: str):
    raise AssertionError(f"{name} in the JSON document: not valid JSON")


def run_json(*args: str) -> dict:
    """Invoke with --json; assert stdout is exactly one JSON document and nothing else."""
    res = runner.invoke(app, [*args, "--json"], env=ENV)
    assert res.exit_code == 0, (res.exit_code, res.stderr)
    assert res.stderr == ""
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    text = res.stdout
    doc, end = decoder.raw_decode(text, 0 if not text[:1].isspace() else len(text) - len(text.lstrip()))
    assert text[end:].strip() == "", f"more than one JSON document on stdout: {text[end:end + 80]!r}"
    assert text.endswith("\n")
    assert isinstance(doc, dict)
    return doc


# A scenario: flags, and what the PyTorch docs say it must give.
class Case:
    def __init__(self, flags, *, L=10, N=1, H_in=5, H=8, layers=1, D=1, proj=0, cell="rnn", lengths=None,
                 batch_first=False, unbatched=False):  # fmt: skip
        self.flags, self.L, self.N, self.H_in, self.H = flags, L, N, H_in, H
        self.layers, self.D, self.proj, self.cell, self.lengths = layers, D, proj, cell, lengths
        self.batch_first, self.unbatched = batch_first, unbatched

    @property
    def H_out(self) -> int:
        return self.proj or self.H

    def shapes(self) -> dict[str, tuple[int, ...]]:
        L, N, DL = self.L, self.N, self.D * self.layers

        def seq(f):
            return (L, f) if self.unbatched else ((N, L, f) if self.batch_first else (L, N, f))

        def state(f):
            return (DL, f) if self.unbatched else (DL, N, f)

        out = {"input": seq(self.H_in), "h_0": state(self.H_out), "output": seq(self.D * self.H_out),
               "h_n": state(self.H_out)}  # fmt: skip
        if self.cell == "lstm":
            out["c_0"] = out["c_n"] = state(self.H)
        if self.lengths:
            out["packed_data"] = (sum(self.lengths), self.D * self.H_out)
            out["batch_sizes"] = (max(self.lengths),)
        return out

    def torch_module(self):
        import torch
        kwargs = dict(input_size=self.H_in, hidden_size=self.H, num_layers=self.layers,
                      bidirectional=self.D == 2, batch_first=self.batch_first)  # fmt: skip
        if self.proj:
            kwargs["proj_size"] = self.proj
        if "--no-bias" in self.flags:
            kwargs["bias"] = False
        return getattr(torch.nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[self.cell])(**kwargs)


CASES = {
    "defaults": Case([]),
    "bidir-2-layers": Case(["--layers", "2", "--bidirectional"], layers=2, D=2),
    "batch-first": Case(["--batch-first", "--batch", "3", "--seq-len", "4"], N=3, L=4, batch_first=True),
    "unbatched-relu-nobias": Case(["--unbatched", "--nonlinearity", "relu", "--no-bias", "--hidden-size", "6"],
                                  H=6, unbatched=True),  # fmt: skip
    "lstm-proj": Case(["--cell", "lstm", "--layers", "2", "--bidirectional", "--proj-size", "3", "--h0", "random"],
                      cell="lstm", layers=2, D=2, proj=3),  # fmt: skip
    "gru-3-layers": Case(["--cell", "gru", "--layers", "3", "--input-size", "2"], cell="gru", layers=3, H_in=2),
    "lengths": Case(["--lengths", "5,2", "--batch", "2", "--seq-len", "5"], L=5, N=2, lengths=[5, 2]),
    "lstm-lengths-bidir": Case(
        ["--cell", "lstm", "--lengths", "3,7,1", "--batch", "3", "--seq-len", "7", "--bidirectional", "--batch-first"],
        cell="lstm", L=7, N=3, D=2, lengths=[3, 7, 1], batch_first=True,
    ),  # fmt: skip
}


def check_schema(doc: dict, command: str, case: Case, values: bool = True) -> None:
    assert TOP_KEYS <= set(doc), set(doc)
    if command == "compare":
        assert COMPARE_KEYS <= set(doc)
    assert doc["command"] == command

    cfg = doc["config"]
    assert CONFIG_KEYS <= set(cfg), CONFIG_KEYS - set(cfg)
    assert cfg["cell"] == case.cell
    assert (cfg["input_size"], cfg["hidden_size"], cfg["num_layers"]) == (case.H_in, case.H, case.layers)
    assert cfg["bidirectional"] is (case.D == 2)
    assert cfg["batch_first"] is case.batch_first
    assert cfg["bias"] is ("--no-bias" not in case.flags)
    assert cfg["proj_size"] == case.proj
    assert cfg["seq_len"] == case.L
    assert cfg["batch"] == (None if case.unbatched else case.N)
    assert cfg["lengths"] == case.lengths
    assert cfg["h0"] == ("random" if "random" in case.flags else "zeros")
    assert cfg["nonlinearity"] == (
        None if case.cell != "rnn" else ("relu" if "relu" in case.flags else "tanh")
    )
    assert cfg["seed"] == 0 and cfg["dtype"] == "float32"
    assert cfg["device"] == "cpu"  # the device used (the default asks for cpu)

    tensors = doc["tensors"]
    expected = case.shapes()
    assert set(tensors) == set(expected)
    for name, shape in expected.items():
        entry = tensors[name]
        assert entry["shape"] == list(shape), name
        assert isinstance(entry["layout"], str) and entry["layout"].startswith("("), name
        if name == "packed_data" or (not values and name != "batch_sizes"):
            assert "values" not in entry, name  # batch_sizes is metadata: its values stay under --no-values
        else:
            arr = np.asarray(entry["values"], dtype=float)
            assert arr.shape == shape, (name, arr.shape, shape)
            assert np.isfinite(arr).all()

    module = case.torch_module()
    own = [(n, list(p.shape), p.numel()) for n, p in module.named_parameters()]
    assert [(p["name"], p["shape"], p["numel"]) for p in doc["parameters"]] == own
    assert doc["num_parameters"] == sum(p.numel() for p in module.parameters())
    assert isinstance(doc["num_parameters"], int)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_schema(command, name):
    case = CASES[name]
    check_schema(run_json(command, *case.flags), command, case)


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_no_values_leaves_shapes_only(command):
    case = CASES["lstm-lengths-bidir"]
    check_schema(run_json(command, *case.flags, "--no-values"), command, case, values=False)


def test_layouts_use_the_docs_symbols():
    t = run_json("torch", "--cell", "lstm", "--batch-first")["tensors"]
    assert t["input"]["layout"] == "(N, L, H_in)"
    assert t["output"]["layout"] == "(N, L, D*H_out)"
    assert t["h_0"]["layout"] == t["h_n"]["layout"] == "(D*num_layers, N, H_out)"  # never batch_first
    assert t["c_n"]["layout"] == "(D*num_layers, N, H_cell)"
    plain = run_json("manual")["tensors"]
    assert plain["input"]["layout"] == "(L, N, H_in)" and plain["output"]["layout"] == "(L, N, D*H_out)"
    unbatched = run_json("manual", "--unbatched")["tensors"]
    assert unbatched["input"]["layout"] == "(L, H_in)" and unbatched["h_n"]["layout"] == "(D*num_layers, H_out)"


def test_packed_lengths_done_when():
    # issue 4: `rnn-cli torch --lengths 5,2 --batch 2 --seq-len 5` -> packed data (7, 8), batch_sizes [2, 2, 1, 1, 1]
    lengths = [5, 2]
    doc = run_json("torch", "--lengths", "5,2", "--batch", "2", "--seq-len", "5")
    t = doc["tensors"]
    assert t["packed_data"]["shape"] == [sum(lengths), 8] == [7, 8]
    counted = [sum(1 for n in lengths if n > step) for step in range(max(lengths))]  # still running at each step
    assert t["batch_sizes"]["values"] == counted == [2, 2, 1, 1, 1]
    assert t["batch_sizes"]["shape"] == [5]
    # output is zero past each length (pad_packed_sequence's padding), h_n is taken at the last real step
    out = np.asarray(t["output"]["values"])  # (L, N, H)
    assert np.all(out[2:, 1] == 0) and np.all(out[:, 0] != 0)
    h_n = np.asarray(t["h_n"]["values"])  # (1, N, H)
    np.testing.assert_array_equal(h_n[0, 1], out[1, 1])
    np.testing.assert_array_equal(h_n[0, 0], out[4, 0])


@pytest.mark.parametrize("command", ["manual", "compare"])
def test_packed_lengths_in_manual_and_compare(command):
    doc = run_json(command, "--lengths", "5,2", "--batch", "2", "--seq-len", "5")
    assert doc["config"]["lengths"] == [5, 2]
    assert doc["tensors"]["packed_data"]["shape"] == [7, 8]
    assert doc["tensors"]["batch_sizes"]["values"] == [2, 2, 1, 1, 1]


@pytest.mark.parametrize("name", ["defaults", "lstm-proj", "lstm-lengths-bidir"])
def test_compare_results(name):
    case = CASES[name]
    doc = run_json("compare", *case.flags)
    results = doc["results"]
    compared = {r["tensor"] for r in results}
    assert {"output", "h_n"} <= compared
    if case.cell == "lstm":
        assert "c_n" in compared
    for r in results:
        assert RESULT_KEYS <= set(r), set(r)
        assert r["torch_shape"] == r["reference_shape"] == doc["tensors"][r["tensor"]]["shape"]
        assert r["ok"] is True
        scale = float(np.max(np.abs(doc["tensors"][r["tensor"]]["values"])))  # torch's values ~ the reference's
        assert 0 <= r["max_abs_diff"] <= r["atol"] + r["rtol"] * scale * 1.001
        assert r["max_rel_diff"] >= 0
        assert math.isfinite(r["atol"]) and math.isfinite(r["rtol"])
    assert doc["ok"] is True


def test_compare_ok_false_is_still_one_document():
    res = runner.invoke(app, ["compare", "--atol", "0", "--rtol", "0", "--json"], env=ENV)
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False
    assert all(r["atol"] == 0 and r["rtol"] == 0 for r in doc["results"])
    assert any(r["ok"] is False and r["max_abs_diff"] > 0 for r in doc["results"])


def test_unbatched_has_null_batch():
    doc = run_json("manual", "--unbatched")
    assert doc["config"]["batch"] is None
    assert doc["tensors"]["input"]["shape"] == [10, 5]


def test_dtype_and_seed_are_reported():
    cfg = run_json("manual", "--dtype", "float64", "--seed", "42")["config"]
    assert cfg["dtype"] == "float64" and cfg["seed"] == 42


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_same_seed_same_document(command):
    flags = [command, "--layers", "2", "--bidirectional", "--h0", "random", "--seed", "3"]
    assert run_json(*flags) == run_json(*flags)


def test_another_seed_other_numbers():
    a = run_json("manual", "--seed", "1")["tensors"]
    b = run_json("manual", "--seed", "2")["tensors"]
    for name in ("input", "output", "h_n"):
        assert a[name]["values"] != b[name]["values"]


@pytest.mark.parametrize("name", ["defaults", "bidir-2-layers", "batch-first", "unbatched-relu-nobias",
                                  "lstm-proj", "gru-3-layers", "lstm-lengths-bidir"])  # fmt: skip
def test_manual_and_torch_agree(name):
    flags = CASES[name].flags
    m = run_json("manual", *flags)
    t = run_json("torch", *flags)
    assert m["config"] == t["config"]
    assert m["parameters"] == t["parameters"]
    assert set(m["tensors"]) == set(t["tensors"])
    for key, entry in m["tensors"].items():
        assert entry["shape"] == t["tensors"][key]["shape"], key
        if "values" not in entry:
            continue
        a, b = np.asarray(entry["values"], dtype=float), np.asarray(t["tensors"][key]["values"], dtype=float)
        if key in ("input", "h_0", "c_0", "batch_sizes"):
            np.testing.assert_array_equal(a, b, err_msg=f"{key}: one seeded draw should give the same numbers")
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_config_device_is_the_device_used_not_the_one_asked(command):
    import torch
    used = run_json(command, "--device", "auto", "--no-values")["config"]["device"]
    if command == "manual" or not torch.cuda.is_available():
        assert used == "cpu"
    else:
        assert used.startswith("cuda:")  # auto resolved to a concrete CUDA device
