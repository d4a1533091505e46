"""`--save PATH.npz`: what the file holds, read back with np.load(path, allow_pickle=False).

Parameter names and shapes come from a torch module built here; tensor values are checked
against the --json document of the same run (a separate view of the same result); lengths
and batch_sizes against the flags and a count by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "80", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}


def invoke(*args: str):
    return runner.invoke(app, list(args), env=ENV)


def save_and_json(tmp_path, *args: str, name: str = "run.npz") -> tuple[dict[str, np.ndarray], dict, dict]:
    """Run once with --save and --json: (arrays from the file, config from the file, the JSON document)."""
    path = tmp_path / name
    res = invoke(*args, "--save", str(path), "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    with np.load(path, allow_pickle=False) as npz:  # no pickled objects anywhere in the file
        arrays = {k: npz[k] for k in npz.files}
    config = json.loads(str(arrays.pop("config")[()]))
    return arrays, config, doc


def torch_named_shapes(cls: str, **kwargs) -> dict[str, tuple[int, ...]]:
    import torch
    module = getattr(torch.nn, cls)(**kwargs)
    return {n: tuple(p.shape) for n, p in module.named_parameters()}


SCENARIOS = {
    "rnn-bidir-2-layers": (
        ["--layers", "2", "--bidirectional", "--h0", "random"],
        ("RNN", dict(input_size=5, hidden_size=8, num_layers=2, bidirectional=True)),
        {"input", "h_0", "output", "h_n"},
    ),
    "lstm-proj": (
        ["--cell", "lstm", "--proj-size", "3", "--layers", "2", "--batch-first", "--batch", "2"],
        ("LSTM", dict(input_size=5, hidden_size=8, num_layers=2, proj_size=3, batch_first=True)),
        {"input", "h_0", "c_0", "output", "h_n", "c_n"},
    ),
    "gru-lengths": (
        ["--cell", "gru", "--lengths", "4,1,3", "--batch", "3", "--seq-len", "4", "--no-bias"],
        ("GRU", dict(input_size=5, hidden_size=8, bias=False)),
        {"input", "h_0", "output", "h_n", "lengths", "batch_sizes"},
    ),
    "rnn-unbatched-float64": (
        ["--unbatched", "--dtype", "float64"],
        ("RNN", dict(input_size=5, hidden_size=8)),
        {"input", "h_0", "output", "h_n"},
    ),
}


@pytest.mark.parametrize("command", ["manual", "torch"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_round_trip(tmp_path, command, scenario):
    flags, (cls, kwargs), tensors = SCENARIOS[scenario]
    arrays, config, doc = save_and_json(tmp_path, command, *flags)
    params = torch_named_shapes(cls, **kwargs)

    assert set(arrays) == tensors | set(params), set(arrays) ^ (tensors | set(params))
    for name, shape in params.items():
        assert arrays[name].shape == shape, name
        assert arrays[name].dtype == np.dtype(doc["config"]["dtype"]), name
    for p in doc["parameters"]:
        assert arrays[p["name"]].size == p["numel"]

    # the saved values are the --json values of the same run
    for name in tensors - {"lengths"}:
        entry = doc["tensors"][name]
        assert list(arrays[name].shape) == entry["shape"], name
        np.testing.assert_array_equal(arrays[name], np.asarray(entry["values"], dtype=arrays[name].dtype), err_msg=name)
    if "lengths" in tensors:
        lengths = [4, 1, 3]
        assert arrays["lengths"].tolist() == lengths
        assert arrays["batch_sizes"].tolist() == [sum(1 for n in lengths if n > t) for t in range(max(lengths))]

    # config: a JSON string with every resolved option, the same as the document's
    assert config == doc["config"]
    assert config["cell"] == cls.lower()
    assert config["hidden_size"] == 8 and config["device"] == "cpu"


def test_saved_numbers_are_the_run_and_the_seed_decides_them(tmp_path):
    a, _, _ = save_and_json(tmp_path, "manual", "--seed", "5", name="a.npz")
    b, _, _ = save_and_json(tmp_path, "torch", "--seed", "5", name="b.npz")
    c, _, _ = save_and_json(tmp_path, "manual", "--seed", "6", name="c.npz")
    for name in ("input", "h_0", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # one seeded draw
    np.testing.assert_allclose(a["output"], b["output"], rtol=0, atol=1e-5)
    assert not np.array_equal(a["weight_ih_l0"], c["weight_ih_l0"])
    # parameters follow torch's initialisation U(-1/sqrt(H), 1/sqrt(H)), H = 8
    bound = 1 / np.sqrt(8)
    assert all(np.abs(a[k]).max() <= bound for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0"))


def test_saved_parameters_reproduce_the_saved_output_in_torch(tmp_path):
    """The file is self-contained: load its weights into nn.RNN, run its input, get its output."""
    import torch
    arrays, config, _ = save_and_json(tmp_path, "manual", "--layers", "2", "--bidirectional", "--h0", "random")
    rnn = torch.nn.RNN(config["input_size"], config["hidden_size"], num_layers=config["num_layers"],
                       bidirectional=config["bidirectional"])  # fmt: skip
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(arrays[name]))
        output, h_n = rnn(torch.from_numpy(arrays["input"]), torch.from_numpy(arrays["h_0"]))
    np.testing.assert_allclose(output.numpy(), arrays["output"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), arrays["h_n"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("flags, extra", [([], set()), (["--cell", "lstm", "--lengths", "3,2", "--batch", "2", "--seq-len", "3"], {"c_n", "batch_sizes"})])
def test_compare_save_holds_the_reference_tensors(tmp_path, flags, extra):
    arrays, config, doc = save_and_json(tmp_path, "compare", *flags)
    compared = {r["tensor"] for r in doc["results"]}
    assert {"output", "h_n"} | extra <= compared
    for name in compared:
        ref = arrays[f"reference_{name}"]
        assert ref.shape == arrays[name].shape, name
        if name != "batch_sizes":
            assert ref.dtype == np.float64, name  # the numpy reference runs in float64
        np.testing.assert_allclose(arrays[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)
    assert config == doc["config"]
    for name in ("input", "h_0", "weight_ih_l0"):
        assert name in arrays


def test_save_without_json_prints_the_human_view_and_writes_the_file(tmp_path):
    path = tmp_path / "human.npz"
    res = invoke("torch", "--save", str(path), "--no-values")
    assert res.exit_code == 0, res.stderr
    assert "Shapes" in res.stdout
    with np.load(path, allow_pickle=False) as npz:
        assert {"input", "h_0", "output", "h_n", "config"} <= set(npz.files)


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "run.npz"
    path.write_bytes(b"old contents")
    res = invoke("manual", "--save", str(path), "--seed", "9")
    assert res.exit_code == 0, res.stderr
    with np.load(path, allow_pickle=False) as npz:
        assert json.loads(str(npz["config"][()]))["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]  # no temporary left beside it


def test_failed_run_writes_no_file(tmp_path):
    path = tmp_path / "run.npz"
    res = invoke("manual", "--save", str(path), "--layers", "0")
    assert res.exit_code == 2
    assert list(tmp_path.iterdir()) == []
