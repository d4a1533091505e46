"""inspect's diagnoses blame the broken key: sizes come from what most keys agree on
(rnn_cli/formats/diagnose.py), a matrix stored transposed is called transposed, a layer of another
size is the one blamed, and a tie says that both readings are possible. Damaged files are
made here from real torch modules; the truth is the module the test built.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from rnn_cli.formats import checkpoint as ck
from rnn_cli.cli.app import app
from rnn_cli.formats.diagnose import code_of


def inspect(sd: dict, tmp_path) -> ck.RecurrentModule:
    path = tmp_path / "m.pt"
    torch.save(sd, path)
    (report,) = ck.inspect_file(path).modules
    return report.module


def with_layer(sd: dict, layer: int, other: nn.Module) -> dict:
    """sd with one layer's keys replaced by `other`'s layer 0 (a layer built with other sizes)."""
    out = dict(sd)
    for k, v in other.state_dict().items():
        out[k.replace("_l0", f"_l{layer}")] = v
    return out


def test_a_transposed_input_matrix_is_called_transposed_and_its_twin_left_alone(tmp_path):
    """The issue's file: inspect read input_size=20 from the transposed weight_ih_l0 and
    blamed the intact weight_ih_l0_reverse."""
    m = nn.LSTM(6, 5, bidirectional=True)
    sd = dict(m.state_dict())
    sd["weight_ih_l0"] = sd["weight_ih_l0"].T.contiguous()
    found = inspect(sd, tmp_path)
    assert (found.input_size, found.hidden_size, found.kind) == (m.input_size, m.hidden_size, "LSTM")
    (problem,) = found.problems
    assert problem.keys == ("weight_ih_l0",) and code_of(problem) == "transposed"
    assert "weight_ih_l0: transposed (6, 20) where (20, 6) is expected" in problem.message


@pytest.mark.parametrize("name", ["weight_hh_l1", "weight_ih_l0"])
def test_a_transposed_matrix_of_a_one_direction_module(tmp_path, name):
    sd = dict(nn.GRU(7, 4, num_layers=2).state_dict())
    want = tuple(sd[name].shape)
    sd[name] = sd[name].T.contiguous()
    found = inspect(sd, tmp_path)
    assert (found.input_size, found.hidden_size, found.kind) == (7, 4, "GRU")
    (problem,) = found.problems
    assert problem.keys == (name,) and code_of(problem) == "transposed"
    assert f"{name}: transposed ({want[1]}, {want[0]}) where ({want[0]}, {want[1]}) is expected" in problem.message


def test_a_transposed_cell_input_matrix(tmp_path):
    sd = dict(nn.LSTMCell(6, 5).state_dict())
    sd["weight_ih"] = sd["weight_ih"].T.contiguous()
    found = inspect(sd, tmp_path)
    assert (found.input_size, found.hidden_size) == (6, 5)
    (problem,) = found.problems
    assert code_of(problem) == "transposed" and "weight_ih: transposed (6, 20) where (20, 6) is expected" in problem.message


def test_the_layer_of_another_hidden_size_is_blamed_not_the_healthy_ones(tmp_path):
    """The issue's other file: layer 0 of a 3-layer LSTM has the wrong hidden size; inspect
    took layer 0 as the reference and reported 16 problems on the two healthy layers."""
    m = nn.LSTM(6, 8, num_layers=3)
    sd = with_layer(m.state_dict(), 0, nn.LSTM(6, 7))
    found = inspect(sd, tmp_path)
    assert (found.input_size, found.hidden_size, found.num_layers) == (6, 8, 3)
    blamed = {k for p in found.problems for k in p.keys}
    assert blamed == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    (problem,) = found.problems
    assert code_of(problem) == "hidden_mismatch"
    assert "layer 0 reads as hidden_size=7 where 2 of 3 layer-directions agree on hidden_size=8" in problem.message


def test_a_backward_direction_of_another_size_is_blamed(tmp_path):
    sd = dict(nn.GRU(4, 6, num_layers=2, bidirectional=True).state_dict())
    for k, v in nn.GRU(12, 5).state_dict().items():
        sd[k.replace("_l0", "_l1_reverse")] = v
    found = inspect(sd, tmp_path)
    assert found.hidden_size == 6
    assert {k for p in found.problems for k in p.keys} == {f"{n}_l1_reverse" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert "layer 1 (backward) reads as hidden_size=5" in found.problems[0].message


def test_two_equally_likely_readings_are_both_said(tmp_path):
    sd = with_layer(nn.LSTM(6, 8, num_layers=2).state_dict(), 1, nn.LSTM(8, 10))
    found = inspect(sd, tmp_path)
    (problem,) = found.problems
    assert code_of(problem) == "ambiguous" and "both are possible" in problem.message
    assert "hidden_size=8 (weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1 wrong)" in problem.message
    assert "hidden_size=10 (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_ih_l1 wrong)" in problem.message
    with pytest.raises(Exception, match="cannot be run"):
        ck.to_run_config(found)


def test_json_problems_keep_their_keys_and_add_a_code(tmp_path):
    base = dict(nn.LSTM(5, 4, num_layers=3, bidirectional=True).state_dict())
    cases = {
        "missing_key": lambda sd: sd.pop("weight_ih_l1_reverse"),
        "layer_gap": lambda sd: [sd.pop(k) for k in [k for k in sd if "_l1" in k]],
        "missing_reverse": lambda sd: [sd.pop(k) for k in [k for k in sd if k.endswith("_l2_reverse")]],
        "input_width": lambda sd: sd.update(weight_ih_l1=sd["weight_ih_l1"][:, :5]),
        "transposed": lambda sd: sd.update(weight_hh_l2=sd["weight_hh_l2"].T.contiguous()),
        "partial_bias": lambda sd: [sd.pop(k) for k in [k for k in sd if k.startswith("bias_") and "_l1" in k]],
        "mixed_dtype": lambda sd: sd.update(weight_hh_l0=sd["weight_hh_l0"].double()),
    }
    for code, damage in cases.items():
        sd = dict(base)
        damage(sd)
        torch.save(sd, tmp_path / f"{code}.pt")
        doc = json.loads(CliRunner().invoke(app, ["inspect", str(tmp_path / f"{code}.pt"), "--json"]).stdout)
        (problem,) = doc["modules"][0]["problems"]
        assert set(problem) == {"keys", "message", "code"} and problem["code"] == code, (code, problem)
