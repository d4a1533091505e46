"""The new commands and flags as a user types them (issues 13-16): inspect, --params/--input/--h0,
--grad/--loss, the recipes and --no-pack, onnx.

Module-level behaviour is tested in test_checkpoint.py, test_grad.py, test_recipes.py and
test_onnx.py; here it is what reaches the terminal: exit codes, the lines a person reads, JSON
keys, --save contents, one stderr line per error. Expected numbers come from torch modules built
in the test (run on the arrays the command saved or was given), never from rnn-cli's output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from rnn_cli.cli.app import app

runner = CliRunner()

# Not a terminal, 80 columns, nothing forcing colour on.
PLAIN_ENV = {"COLUMNS": "80", "LINES": "50", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}

# The checkpoint: nn.LSTM(80, 256, num_layers=2, bidirectional=True, proj_size=64) and
# nn.GRUCell(64, 32), each inside nn.Sequential-style containers.
LSTM_PREFIX = "encoder.0.lstm"
CELL_PREFIX = "decoder.1"
L, N = 6, 2  # the test's own input: (L, N, H_in) = (6, 2, 80)


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], env=PLAIN_ENV)


def flat(text: str) -> str:
    return " ".join(text.split())


def one_error_line(res, code: int = 2) -> str:
    """An expected failure: exit `code`, nothing on stdout, exactly one `rnn-cli: error:` line on stderr."""
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr, res.exception)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnn-cli: error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def ok(res, code: int = 0) -> str:
    assert res.exit_code == code, (res.exit_code, res.stderr, res.exception)
    assert res.stderr == ""
    return res.stdout


def doc(*args: str, code: int = 0) -> dict:
    return json.loads(ok(invoke(*args, "--json"), code))


def values(document: dict, name: str) -> np.ndarray:
    return np.asarray(document["tensors"][name]["values"], dtype=np.float64)


def load_saved(module: nn.Module, saved) -> nn.Module:
    """module with the parameters of an rnn-cli --save file (torch's names), checked by shape."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            assert tuple(saved[name].shape) == tuple(p.shape), name
            p.copy_(torch.from_numpy(np.asarray(saved[name])))
    return module


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(80, 256, num_layers=2, bidirectional=True, proj_size=64)
        self.norm = nn.LayerNorm(128)


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(Encoder())
        self.decoder = nn.Sequential(nn.Linear(128, 64), nn.GRUCell(64, 32))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """model.pt (state_dict), whole.pt (pickled module), broken.pt (weight_ih_l1_reverse deleted),
    unidir.pt (the _reverse keys gone), x.npy (L, N, 80) and the model itself."""
    torch.manual_seed(0)
    model = Model().eval()
    d = tmp_path_factory.mktemp("ckpt")
    sd = model.state_dict()
    torch.save(sd, d / "model.pt")
    torch.save(model, d / "whole.pt")
    torch.save({k: v for k, v in sd.items() if k != f"{LSTM_PREFIX}.weight_ih_l1_reverse"}, d / "broken.pt")
    torch.save({k: v for k, v in sd.items() if "_reverse" not in k}, d / "unidir.pt")
    x = np.random.default_rng(1).standard_normal((L, N, 80)).astype(np.float32)  # (L, N, H_in)
    np.save(d / "x.npy", x)
    np.save(d / "x_bf.npy", np.ascontiguousarray(x.transpose(1, 0, 2)))  # (N, L, H_in)
    np.save(d / "h_wrong.npy", np.zeros((N, 64), np.float32))  # (N, H_out): the layer axis forgotten
    return {"dir": d, "model": model, "x": x}


# ---- issue 13: inspect ---------------------------------------------------------------------------


def test_inspect_shows_both_modules_their_constructors_diagram_and_state_shapes(ckpt):
    """Bugs caught: a constructor that cannot rebuild the module (proj_size, num_layers or
    bidirectional mis-inferred, a cell read as a layer); h_0 sized H_cell instead of H_out with a
    projection; c_0 sized H_out; the batch flag ignored; a container's module missed."""
    out = ok(invoke("inspect", ckpt["dir"] / "model.pt", "--batch", "32"))
    lines = out.splitlines()
    # the exact constructors, as Python to paste: one line where it fits 80 columns, else one
    # argument per line (issue 21: a terminal would break the long line inside an argument)
    assert "nn.GRUCell(input_size=64, hidden_size=32)" in lines
    start = lines.index("nn.LSTM(")
    block = lines[start : lines.index(")", start) + 1]
    assert max(len(line) for line in block) <= 80
    assert re.sub(r",?\s*\)$", ")", re.sub(r"\(\s*", "(", " ".join(line.strip() for line in block))) == (
        "nn.LSTM(input_size=80, hidden_size=256, num_layers=2, bidirectional=True, proj_size=64)")
    assert f"{LSTM_PREFIX}:" in lines and f"{CELL_PREFIX}:" in lines
    # h_0 (D*num_layers, N, H_out) = (2*2, 32, proj_size=64); c_0 (D*num_layers, N, H_cell) = (4, 32, 256)
    assert re.search(r"^ h_0\s+\(4, 32, 64\)\s+\(D\*num_layers, N, H_out\)", out, re.M)
    assert re.search(r"^ c_0\s+\(4, 32, 256\)\s+\(D\*num_layers, N, H_cell\)", out, re.M)
    assert re.search(r"^ output\s+\(10, 32, 128\)", out, re.M)  # (L, N, D*H_out), L = the default 10
    # the shape-flow diagram: both layers, both directions, layer 1 fed D*H_out = 128 features
    assert "Shape flow" in out
    assert re.search(r"layer 1\s+-> forward", out) and "<- backward" in out
    assert "128 features (D*H_out)" in out
    # GRUCell: (N, H_in) in, (N, H_out) out
    assert re.search(r"^ input\s+\(32, 64\)", out, re.M) and re.search(r"^ h'\s+\(32, 32\)", out, re.M)
    # what a state_dict cannot tell, said plainly
    assert re.search(r"^not in the file: batch_first", out, re.M)
    # the other tensors (Linear, LayerNorm) summarised, not listed as modules
    assert "other tensors: 4" in out and "decoder.0:" not in lines


def test_inspect_json_recovers_the_constructor_arguments_and_parameter_names(ckpt):
    """Bugs caught: a JSON key renamed or dropped (scripts read them); parameters out of torch's
    order or missing (load_state_dict order); inferred config not what the test's module used."""
    d = doc("inspect", ckpt["dir"] / "model.pt")
    assert {"command", "file", "format", "nesting", "modules", "other_tensors", "problems", "differences"} <= set(d)
    assert d["command"] == "inspect" and d["format"] == "torch" and d["problems"] == 0
    mods = {m["prefix"]: m for m in d["modules"]}
    assert set(mods) == {LSTM_PREFIX, CELL_PREFIX}
    for m in mods.values():
        assert {"kind", "constructor", "config", "dtype", "num_parameters", "unknowns", "parameters", "shapes", "problems"} <= set(m)
    lstm = ckpt["model"].encoder[0].lstm
    cell = ckpt["model"].decoder[1]
    want = {"input_size": lstm.input_size, "hidden_size": lstm.hidden_size, "num_layers": lstm.num_layers,
            "bidirectional": lstm.bidirectional, "bias": lstm.bias, "proj_size": lstm.proj_size}  # fmt: skip
    assert {k: mods[LSTM_PREFIX]["config"][k] for k in want} == want
    assert mods[LSTM_PREFIX]["kind"] == "LSTM" and mods[CELL_PREFIX]["kind"] == "GRUCell"
    assert [p["name"] for p in mods[LSTM_PREFIX]["parameters"]] == [n for n, _ in lstm.named_parameters()]
    assert [p["shape"] for p in mods[LSTM_PREFIX]["parameters"]] == [list(p.shape) for p in lstm.parameters()]
    assert mods[LSTM_PREFIX]["num_parameters"] == sum(p.numel() for p in lstm.parameters())
    assert mods[CELL_PREFIX]["num_parameters"] == sum(p.numel() for p in cell.parameters())
    assert mods[LSTM_PREFIX]["shapes"]["h_0"] == [4, 1, 64] and mods[LSTM_PREFIX]["shapes"]["c_0"] == [4, 1, 256]
    assert "batch_first" in mods[LSTM_PREFIX]["unknowns"]


def test_inspect_names_a_deleted_reverse_key_and_exits_1(ckpt):
    """Bug caught: a damaged file read as a smaller (unidirectional) module without a word, or
    the problem found but exit 0 (scripts take 0 as 'fine')."""
    res = invoke("inspect", ckpt["dir"] / "broken.pt")
    assert res.exit_code == 1, (res.stdout, res.stderr)
    problem = [line for line in res.stdout.splitlines() if line.startswith("problem:")]
    assert len(problem) == 1
    assert "weight_ih_l1_reverse" in problem[0] and "missing" in problem[0] and LSTM_PREFIX in problem[0]
    d = doc("inspect", ckpt["dir"] / "broken.pt", code=1)
    keys = [k for m in d["modules"] for p in m["problems"] for k in p["keys"]]
    assert keys == [f"{LSTM_PREFIX}.weight_ih_l1_reverse"]


def test_inspect_refuses_a_pickled_whole_module(ckpt):
    """Bug caught: torch.load(weights_only=False) on a user's file (runs code from it), or a
    traceback instead of the one line that says what to do."""
    line = one_error_line(invoke("inspect", ckpt["dir"] / "whole.pt"))
    assert "would run code" in line and "state_dict()" in line


def test_inspect_against_explains_differences_with_exit_1_and_identical_files_exit_0(ckpt):
    """Bugs caught: differences printed but exit 0; any --against exiting 1 (identical files too)."""
    res = invoke("inspect", ckpt["dir"] / "model.pt", "--against", ckpt["dir"] / "unidir.pt")
    assert res.exit_code == 1, (res.stdout, res.stderr)
    assert f"- {LSTM_PREFIX}: checkpoint A is bidirectional (has weight_ih_l0_reverse), B is not: bidirectional=True" in flat(res.stdout)
    same = invoke("inspect", ckpt["dir"] / "model.pt", ckpt["dir"] / "model.pt")  # CHECKPOINT2 form
    assert same.exit_code == 0, (same.stdout, same.stderr)
    assert "load_state_dict would accept either" in flat(same.stdout)


# ---- issue 13: --params, --input, --h0 ----------------------------------------------------------


def test_compare_params_with_prefix_and_input_passes_on_the_real_lstm(ckpt):
    """Bug caught: the numpy reference and torch disagreeing on real weights (proj_size 64 with
    hidden_size 256, layer 1 taking 128 inputs), or the prefix not selecting the module."""
    d = doc("compare", "--params", f"{ckpt['dir'] / 'model.pt'}:{LSTM_PREFIX}", "--input", ckpt["dir"] / "x.npy")
    assert d["ok"] is True
    assert {r["tensor"] for r in d["results"]} >= {"output", "h_n", "c_n"}
    assert d["config"]["hidden_size"] == 256 and d["config"]["proj_size"] == 64


@pytest.mark.parametrize("layout", ["time_major", "batch_first"])
def test_torch_params_input_reproduces_the_users_own_module(ckpt, layout):
    """Bugs caught: weights loaded into the wrong slots, a batch-first file read as time-major
    (L and N swapped), output not returned in the user's layout, h_n transposed with it."""
    lstm = ckpt["model"].encoder[0].lstm
    with torch.no_grad():
        output, (h_n, c_n) = lstm(torch.from_numpy(ckpt["x"]))  # (L, N, D*H_out), (D*num_layers, N, H_out)
    args = ["torch", "--params", f"{ckpt['dir'] / 'model.pt'}:{LSTM_PREFIX}"]
    if layout == "batch_first":
        args += ["--input", ckpt["dir"] / "x_bf.npy", "--batch-first"]
        output = output.transpose(0, 1)  # (N, L, D*H_out); h_n never batch-first
    else:
        args += ["--input", ckpt["dir"] / "x.npy"]
    d = doc(*args)
    np.testing.assert_allclose(values(d, "output"), output.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(values(d, "h_n"), h_n.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(values(d, "c_n"), c_n.numpy(), atol=1e-5, rtol=0)


def test_the_screen_says_the_input_came_from_the_users_file(ckpt):
    """Bug caught (found here, fixed in views/config): with --input the Shapes table called the
    user's own array "random, drawn from the seed", and nothing in --json said where it came from."""
    args = ("torch", "--params", f"{ckpt['dir'] / 'model.pt'}:{LSTM_PREFIX}", "--input", ckpt["dir"] / "x.npy")
    out = ok(invoke(*args, "--show", "shapes"))
    row = next(line for line in out.splitlines() if line.startswith(" input "))
    assert "from --input" in row and "random" not in row
    assert doc(*args, "--no-values")["config"]["input"] == "file"
    assert doc("torch", "--no-values")["config"]["input"] == "seed"


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """f/m.pt (an nn.LSTM(3, 4, bidirectional) under the prefix lstm), f/x.npy (L=4, N=2, H_in=3),
    f/h0.npy and f/c0.npy (D*num_layers=2, N=2, 4): small enough for every command."""
    torch.manual_seed(2)
    holder = nn.Module()
    holder.lstm = nn.LSTM(3, 4, bidirectional=True)
    d = tmp_path_factory.mktemp("small")
    (d / "f").mkdir()
    torch.save(holder.state_dict(), d / "f" / "m.pt")
    rng = np.random.default_rng(4)
    for name, shape in (("x", (4, 2, 3)), ("h0", (2, 2, 4)), ("c0", (2, 2, 4))):
        np.save(d / "f" / f"{name}.npy", rng.standard_normal(shape).astype(np.float32))
    return d


_ONNX_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "onnxscript"))


@pytest.mark.parametrize("command", [("manual",), ("torch",), ("compare",), ("bench", "--repeat", "1", "--warmup", "0"),
                                     pytest.param(("onnx",), marks=pytest.mark.skipif(
                                         not _ONNX_EXTRA, reason="needs the onnx extra (onnx, onnxruntime, onnxscript)"))],
                         ids=lambda c: c[0])
def test_every_command_says_its_numbers_came_from_the_users_files(small_files, command, monkeypatch):
    """Bug caught: where the numbers came from read from the run's configuration, not from the
    sample it ran on: the header saying `seed 0` (no weights, no files) for a run on --params,
    --input and --h0/--c0, or --json's config saying h0 zeros (what the configuration draws for a
    state given in a file: nothing) and input/weights seed. Every command that shows a header and
    writes a config: manual, torch, compare, bench, onnx."""
    monkeypatch.chdir(small_files)  # relative paths: the header names them as given
    args = (*command, "--params", "f/m.pt:lstm", "--input", "f/x.npy", "--h0", "f/h0.npy", "--c0", "f/c0.npy")
    screen = flat(ok(invoke(*args), 0))
    assert " weights f/m.pt:lstm, input from --input, h_0 from --h0" in screen
    assert "from --h0, seed" not in screen  # nothing was drawn from the seed
    config = doc(*args)["config"]
    keys = list(config)
    assert keys[keys.index("pack"):keys.index("seed") + 1] == ["pack", "h0", "input", "weights", "seed"]
    assert (config["h0"], config["input"], config["weights"]) == ("file", "file", "f/m.pt:lstm")
    if command[0] == "manual":
        shapes = flat(ok(invoke(*args, "--show", "shapes")))
        assert "initial hidden state (from --h0/--c0)" in shapes and "initial cell state (from --h0/--c0)" in shapes
        only_h0 = ("manual", "--cell", "lstm", "--batch", "2", "--bidirectional", "--hidden-size", "4",
                   "--h0", "f/h0.npy", "--c0", "f/c0.npy")
        assert "float32, h_0 from --h0, seed 0" in flat(ok(invoke(*only_h0)))
        assert [doc(*only_h0)["config"][k] for k in ("h0", "input", "weights")] == ["file", "seed", "seed"]


def test_a_flag_contradicting_the_checkpoint_names_both(ckpt):
    """Bug caught: the flag silently winning (a random 8-unit layer run instead of the user's)."""
    line = one_error_line(
        invoke("torch", "--params", f"{ckpt['dir'] / 'model.pt'}:{LSTM_PREFIX}", "--hidden-size", "8")
    )
    assert "--hidden-size 8" in line and "hidden_size 256" in line and LSTM_PREFIX in line


def test_params_without_prefix_on_two_modules_lists_them(ckpt):
    """Bug caught: the first module picked silently when the file has several."""
    line = one_error_line(invoke("manual", "--params", ckpt["dir"] / "model.pt"))
    assert LSTM_PREFIX in line and CELL_PREFIX in line


def test_h0_of_the_wrong_shape_says_what_the_module_wants(ckpt):
    """Bug caught: a broadcasting or reshape that accepts (N, H_out) for (D*num_layers, N, H_out)."""
    line = one_error_line(
        invoke("torch", "--params", f"{ckpt['dir'] / 'model.pt'}:{LSTM_PREFIX}", "--input", ckpt["dir"] / "x.npy",
               "--h0", ckpt["dir"] / "h_wrong.npy")  # fmt: skip
    )
    assert f"({N}, 64)" in line  # what arrived
    assert f"(4, {N}, 64)" in line and "(D*num_layers, N, H_out)" in line  # what nn.LSTM wants


_NPZ_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from rnn_cli.cli.app import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = app(sys.argv[1:], standalone_mode=False)
    print(json.dumps({"code": code, "torch": "torch" in sys.modules, "doc": json.loads(out.getvalue())}))
    """
)


def test_manual_params_npz_never_imports_torch_and_reproduces_the_module(tmp_path):
    """Bugs caught: `import torch` on manual's --params path for a numpy file (slow start, and
    breaks where torch is not installed); the numpy forward wrong on a checkpoint's GRU."""
    torch.manual_seed(3)
    gru = nn.GRU(4, 6, bidirectional=True).eval()
    np.savez(tmp_path / "gru.npz", **{f"rnn.{k}": v.numpy() for k, v in gru.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((5, 3, 4)).astype(np.float32)  # (L, N, H_in)
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        output, h_n = gru(torch.from_numpy(x))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(__file__)), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _NPZ_PROBE, "manual", "--params", str(tmp_path / "gru.npz"), "--input",
         str(tmp_path / "x.npy"), "--json"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["code"] == 0
    assert seen["torch"] is False
    np.testing.assert_allclose(values(seen["doc"], "output"), output.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(values(seen["doc"], "h_n"), h_n.numpy(), atol=1e-5, rtol=0)


# ---- issue 14: --grad ----------------------------------------------------------------------------


GRAD_ARGS = ("--grad", "--cell", "lstm", "--layers", "2", "--bidirectional", "--proj-size", "3",
             "--lengths", "10,7,3", "--batch", "3")  # fmt: skip


def test_compare_grad_lists_every_parameters_gradient_and_passes():
    """Bugs caught: a parameter's gradient left out of the comparison (weight_hr_*, a _reverse one),
    a missing input/h_0/c_0 gradient, a mismatch in packed bidirectional projected BPTT, a table
    row wider than 80 columns or dropped."""
    names = [n for n, _ in nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3).named_parameters()]
    want = [f"grad_{n}" for n in names] + ["grad_input", "grad_h_0", "grad_c_0"]
    d = doc("compare", *GRAD_ARGS)
    assert d["ok"] is True
    got = [r["tensor"] for r in d["results"]]
    assert [t for t in got if t.startswith("grad_")] == want
    assert all(r["ok"] for r in d["results"])
    screen = ok(invoke("compare", *GRAD_ARGS))
    for name in want:
        assert re.search(rf"^ {name}\s+\(.*\)\s+\S+\s+\S+\s+pass\s*$", screen, re.M), name
    assert max(len(line) for line in screen.splitlines()) <= 80


def test_manual_grad_loss_last_chart_matches_autograd_step_by_step(tmp_path):
    """Bugs caught: chart rows missing or out of order; ||dL/dh_t|| that is not the total derivative
    (the direct term only, or one step off); a ratio line that does not say first over last."""
    out = ok(invoke("manual", "--grad", "--loss", "last", "--seq-len", "50", "--save", tmp_path / "run.npz"))
    rows = re.findall(r"^t=(\d+)\s+#*\s+(\d\.\d+e[+-]\d+)$", out, re.M)
    assert [int(t) for t, _ in rows] == list(range(50))
    shown = np.array([float(v) for _, v in rows])
    ratio = re.search(r"^fade, t=0 \(backprop ends\) / t=49 \(backprop enters\): (\S+)$", out, re.M)
    assert ratio is not None
    # Independent: the tanh recurrence written out in torch (float64), dL/dh_t by autograd.
    saved = np.load(tmp_path / "run.npz")
    f64 = lambda name: torch.from_numpy(np.asarray(saved[name], dtype=np.float64))  # noqa: E731
    W_ih, W_hh, b_ih, b_hh = (f64(n) for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    x, h = f64("input").requires_grad_(), f64("h_0")[0]  # (L, N, H_in), (N, H_out)
    hs = []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)  # (N, H_out)
        h.retain_grad()
        hs.append(h)
    upstream = f64("upstream_output")  # (L, N, H_out), zero except at the last step
    assert torch.count_nonzero(upstream[:-1]) == 0
    (hs[-1] * upstream[-1]).sum().backward()
    norms = np.array([h.grad.norm().item() for h in hs])
    np.testing.assert_allclose(shown, norms, rtol=2e-3)  # 4 significant digits shown
    assert float(ratio.group(1)) == pytest.approx(norms[0] / norms[-1], rel=2e-3)


def test_bench_grad_json_has_manual_and_torch_cpu_rows():
    """Bugs caught: --grad dropped by bench (forward timed alone) or a row missing."""
    d = doc("bench", "--grad", "--repeat", "1", "--warmup", "0")
    assert d["grad"] == "sum"
    rows = {(r["implementation"], r["device"]) for r in d["results"]}
    assert {("manual", "cpu"), ("torch", "cpu")} <= rows


def test_torch_grad_save_is_enough_to_recompute_every_gradient(tmp_path):
    """Bugs caught: upstream gradients saved in another layout than the tensors they multiply
    (batch_first), a grad_* array under the wrong name, a gradient that does not belong to the
    loss the saved upstream defines."""
    path = tmp_path / "run.npz"
    ok(invoke("torch", "--grad", "--cell", "lstm", "--layers", "2", "--bidirectional", "--proj-size", "2",
              "--batch-first", "--seq-len", "6", "--lengths", "6,4,2", "--no-values", "--save", path))  # fmt: skip
    saved = np.load(path)
    t = lambda name: torch.from_numpy(np.asarray(saved[name]))  # noqa: E731
    lstm = load_saved(nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=2, batch_first=True), saved)
    x = t("input").requires_grad_()  # (N, L, H_in)
    h_0, c_0 = t("h_0").requires_grad_(), t("c_0").requires_grad_()  # (D*num_layers, N, H_out), (.., H_cell)
    assert tuple(x.shape) == (3, 6, 5)
    packed = nn.utils.rnn.pack_padded_sequence(x, [6, 4, 2], batch_first=True, enforce_sorted=False)
    out_packed, (h_n, c_n) = lstm(packed, (h_0, c_0))
    output, _ = nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=6)  # (N, L, D*H_out)
    loss = (output * t("upstream_output")).sum() + (h_n * t("upstream_h_n")).sum() + (c_n * t("upstream_c_n")).sum()
    loss.backward()
    for name, p in lstm.named_parameters():
        np.testing.assert_allclose(saved[f"grad_{name}"], p.grad.numpy(), atol=1e-5, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(saved["grad_input"], x.grad.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(saved["grad_h_0"], h_0.grad.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(saved["grad_c_0"], c_0.grad.numpy(), atol=1e-5, rtol=1e-5)


# ---- issue 15: recipes and --no-pack -------------------------------------------------------------

RECIPE_ARGS = ("torch", "--cell", "lstm", "--layers", "2", "--bidirectional", "--lengths", "10,7,3", "--batch", "3")


def _packed_run(module: nn.Module, x: torch.Tensor, lengths: list[int], pack: bool = True):
    """output (L, N, D*H_out) and h_n of `module` on x, packed or straight through the padding."""
    with torch.no_grad():
        if not pack:
            output, state = module(x)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            out_packed, state = module(packed)
            output, _ = nn.utils.rnn.pad_packed_sequence(out_packed, total_length=x.shape[0])
    h_n = state[0] if isinstance(state, tuple) else state
    return output, h_n


def test_recipes_json_amounts_come_from_the_runs_own_tensors(tmp_path):
    """Bugs caught: a wrong recipe reported equal (string compare, or compared with itself), the
    truth taken from output[-1] (padding) instead of each sequence's last real step, the
    amount of a wrong recipe not max |recipe - truth|."""
    d = doc(*RECIPE_ARGS, "--save", tmp_path / "run.npz")
    keys = {"expression", "shape", "correct", "max_abs_diff", "target", "target_text", "coincidence",
            "control_max_abs_diff", "control", "note"}
    assert d["recipes"] and all(set(r) == keys for r in d["recipes"])
    rec = {r["expression"]: r for r in d["recipes"]}
    saved = np.load(tmp_path / "run.npz")
    lstm = load_saved(nn.LSTM(5, 8, num_layers=2, bidirectional=True), saved)
    lengths = [10, 7, 3]
    output, h_n = _packed_run(lstm, torch.from_numpy(saved["input"]), lengths)
    H, last = 8, torch.tensor(lengths) - 1
    fwd_truth = output[last, torch.arange(3), :H]  # definition: forward final state = last real step
    bwd_truth = output[0, :, H:]  # backward final state = step 0
    truth = torch.cat((fwd_truth, bwd_truth), dim=1)  # (N, 2*H_out)
    amount = lambda a, b: (a - b).abs().max().item()  # noqa: E731
    # wrong where the issue says, by how much
    assert rec["h_n[-1]"]["correct"] is False
    assert rec["h_n[-1]"]["max_abs_diff"] == pytest.approx(amount(h_n[-1], fwd_truth), abs=1e-6)
    assert rec["output[-1]"]["correct"] is False
    assert rec["output[-1]"]["max_abs_diff"] == pytest.approx(amount(output[-1], truth), abs=1e-6)
    assert rec["output[-1]"]["max_abs_diff"] > 1e-3 and rec["h_n[-1]"]["max_abs_diff"] > 1e-3
    # the correct forms equal
    for expr in ("torch.cat((h_n[-2], h_n[-1]), dim=1)", "h_n.view(num_layers, D, N, H_out)[-1]",
                 "output[lengths - 1, torch.arange(N)]"):  # fmt: skip
        assert rec[expr]["correct"] is True and rec[expr]["max_abs_diff"] <= 1e-6, expr
    assert amount(torch.cat((h_n[-2], h_n[-1]), dim=1), truth) <= 1e-6  # the test's own truth agrees
    assert rec["h_n.view(N, -1)"]["correct"] is False and rec["h_n.view(N, -1)"]["shape"] == [3, 4 * 8]

    # What a person sees by default: the summary, with the same amounts (2 significant digits).
    screen = flat(ok(invoke(*RECIPE_ARGS)))
    assert f"h_n[-1] WRONG is the backward one ({amount(h_n[-1], fwd_truth):.2g} off)" in screen
    assert f"output[-1] WRONG {amount(output[-1], truth):.2g} off" in screen
    assert "forward final state: h_n[-2] ok;" in screen
    assert "both concatenated: torch.cat((h_n[-2], h_n[-1]), dim=1) ok;" in screen
    assert "output at last real step: output[lengths - 1, torch.arange(N)] ok" in screen

    # --show recipes: the whole table, every expression of the document in it
    table = ok(invoke(*RECIPE_ARGS, "--show", "recipes"))
    assert "Taking the final state" in table
    for r in d["recipes"]:
        assert r["expression"] in table, r["expression"]
    assert table.count("WRONG") == sum(not r["correct"] and not r["coincidence"] for r in d["recipes"])


def test_recipes_right_where_they_happen_to_be_right():
    """Bug caught: recipes marked wrong by their text rather than by evaluation: on one
    unidirectional layer without padding, output[-1] IS h_n[-1]."""
    rec = {r["expression"]: r for r in doc("torch", "--cell", "gru", "--batch", "2")["recipes"]}
    assert rec["output[-1]"]["correct"] is True and rec["output[-1]"]["max_abs_diff"] <= 1e-7
    assert rec["h_n[-1]"]["correct"] is True


def test_no_pack_padding_effect_is_the_unpacked_runs_distance_from_the_packed_one(tmp_path):
    """Bugs caught: padding_effect rows with direction or sequence swapped, the unpacked run
    packed after all (all zeros), the backward direction's effect missed."""
    d = doc("torch", "--lengths", "10,7,3", "--batch", "3", "--bidirectional", "--no-pack", "--save", tmp_path / "r.npz")
    assert all(set(e) == {"sequence", "direction", "tensor", "max_abs_diff"} for e in d["padding_effect"])
    saved = np.load(tmp_path / "r.npz")
    rnn = load_saved(nn.RNN(5, 8, bidirectional=True), saved)
    x, lengths, H = torch.from_numpy(saved["input"]), [10, 7, 3], 8
    out_p, h_p = _packed_run(rnn, x, lengths)
    out_u, h_u = _packed_run(rnn, x, lengths, pack=False)
    expected = {}
    for b, length in enumerate(lengths):
        for k, direction in enumerate(("forward", "backward")):
            expected[(b, direction, f"h_n[{k}]")] = (h_p[k, b] - h_u[k, b]).abs().max().item()
            half = slice(k * H, (k + 1) * H)
            expected[(b, direction, "output at last real step")] = (
                (out_p[length - 1, b, half] - out_u[length - 1, b, half]).abs().max().item()
            )
    got = {(e["sequence"], e["direction"], e["tensor"]): e["max_abs_diff"] for e in d["padding_effect"]}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    # the pattern: h_n differs for the shorter sequences only, in both directions
    for k, direction in enumerate(("forward", "backward")):
        assert [got[(b, direction, f"h_n[{k}]")] > 1e-6 for b in range(3)] == [False, True, True]


def test_no_pack_on_full_lengths_changes_nothing_and_compare_accepts_it():
    """Bugs caught: --no-pack running something other than the same module on the same input;
    compare refusing --no-pack; --no-pack without --lengths silently ignored."""
    d = doc("torch", "--lengths", "10,10,10", "--batch", "3", "--bidirectional", "--no-pack")
    assert len(d["padding_effect"]) == 12  # 3 sequences x 2 directions x (h_n, last real output)
    assert all(e["max_abs_diff"] <= 1e-6 for e in d["padding_effect"])
    ok(invoke("compare", "--no-pack", "--lengths", "10,7,3", "--batch", "3", "--bidirectional", "--no-values"))
    line = one_error_line(invoke("torch", "--bidirectional", "--no-pack"))
    assert "--no-pack" in line and "--lengths" in line


# ---- issue 16: onnx (each run exports and runs onnxruntime: ~1-4 s, kept to four) ---------------


def test_onnx_lstm_two_layers_shows_nodes_weights_gate_mapping_and_reshape():
    """Bugs caught: one node per stack instead of per layer; W of layer 1 sized H_in instead of
    D*H_out; the gate mapping in torch's order (ONNX's o block is torch rows 3H:4H); the added
    Transpose/Reshape not shown."""
    pytest.importorskip("onnxruntime")
    out = ok(invoke("onnx", "--cell", "lstm", "--layers", "2", "--bidirectional"))
    assert len(re.findall(r"^ LSTM [01]\s+hidden_size", out, re.M)) == 2
    G, H, H_in = 4, 8, 5
    assert re.search(rf"^\s+W\s+\(2, {G * H}, {H_in}\)\s*$", out, re.M)  # layer 0: (D, 4*H, H_in)
    assert re.search(rf"^\s+W\s+\(2, {G * H}, {2 * H}\)\s*$", out, re.M)  # layer 1: (D, 4*H, D*H_out)
    assert "ONNX i, o, f, c" in out
    # ONNX block 1 (o) <- torch block 3 (o): rows H:2H of W[0] are weight_ih_l0 rows 3H:4H
    assert re.search(rf"W\[0\] {H}:{2 * H}\s+weight_ih_l0 {3 * H}:{4 * H}\s+o\s+yes", out)
    assert "Transpose perm=(0, 2, 1, 3)" in out and "Reshape" in out
    assert out.rstrip().endswith("the mapping is exact.")


def test_onnx_packed_gru_names_the_exporter_shows_sequence_lens_and_saves_a_loadable_model(tmp_path):
    """Bugs caught: packed input exported without sequence_lens (padding run through), the
    exporter used not said, --save-onnx writing nothing or a file onnx cannot read."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    out = ok(invoke("onnx", "--cell", "gru", "--bidirectional", "--lengths", "10,7,3", "--batch", "3", "--save-onnx", path))
    assert re.search(r"exported with (torchscript|dynamo)", out)
    assert re.search(r"^\s+sequence_lens\s+\(", out, re.M)
    assert re.search(r"^ lengths\s+input\s+\(3,\) int64", out, re.M)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    grus = [n for n in model.graph.node if n.op_type == "GRU"]
    assert len(grus) == 1 and grus[0].input[4]  # input 4 of ONNX's GRU is sequence_lens


def test_onnx_json_keys():
    """Bug caught: a key of the documented JSON renamed or missing."""
    pytest.importorskip("onnxruntime")
    d = doc("onnx", "--cell", "gru")
    assert {"command", "config", "exporter", "nodes", "initializers", "inputs", "outputs", "mapping", "results", "ok"} <= set(d)
    assert d["ok"] is True and d["exporter"]["used"] in ("dynamo", "torchscript")
    assert [n["op"] for n in d["nodes"]] == ["GRU"]


def test_onnx_proj_size_is_one_line_exit_2():
    """Bug caught: an exporter's traceback, or a graph without weight_hr reported as a match."""
    pytest.importorskip("onnxruntime")
    line = one_error_line(invoke("onnx", "--cell", "lstm", "--proj-size", "3"))
    assert "proj" in line.lower()


# ---- --grad with the user's files ------------------------------------------------------------------


def test_grad_with_the_users_input_and_state_draws_the_same_upstream_as_the_seeded_run(tmp_path):
    """Bugs caught: --grad with --input, --h0 PATH or --params crashed (the sample made from files
    carried no generator state to draw the upstream gradients from); an upstream that changes
    with which file was given. The upstream depends on the seed and the shapes alone."""
    x = np.random.default_rng(5).standard_normal((6, 2, 3)).astype(np.float32)  # (L, N, H_in)
    h = np.random.default_rng(6).standard_normal((1, 2, 4)).astype(np.float32)  # (D*num_layers, N, H_out)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "h.npy", h)
    shape = ("--cell", "gru", "--hidden-size", "4", "--input-size", "3", "--seq-len", "6", "--batch", "2")
    ok(invoke("torch", "--grad", *shape, "--save", tmp_path / "seeded.npz"))
    ok(invoke("torch", "--grad", "--cell", "gru", "--hidden-size", "4", "--input", tmp_path / "x.npy",
              "--h0", tmp_path / "h.npy", "--save", tmp_path / "files.npz"))  # fmt: skip
    seeded, files = np.load(tmp_path / "seeded.npz"), np.load(tmp_path / "files.npz")
    np.testing.assert_array_equal(files["input"], x)
    np.testing.assert_array_equal(files["h_0"], h)
    for name in ("upstream_output", "upstream_h_n"):
        np.testing.assert_array_equal(files[name], seeded[name])
    # and the gradients are those of the user's data: dL/dh_0 by autograd of a GRU built here
    gru = nn.GRU(3, 4)
    with torch.no_grad():
        for n, p in gru.named_parameters():
            p.copy_(torch.from_numpy(files[n]))
    h0 = torch.from_numpy(h).requires_grad_()
    out, h_n = gru(torch.from_numpy(x), h0)
    ((out * torch.from_numpy(files["upstream_output"])).sum() + (h_n * torch.from_numpy(files["upstream_h_n"])).sum()).backward()
    np.testing.assert_allclose(files["grad_h_0"], h0.grad.numpy(), atol=1e-6, rtol=1e-5)


def test_compare_grad_on_a_checkpoint_passes(ckpt):
    d = doc("compare", "--grad", "--params", f"{ckpt['dir'] / 'model.pt'}:{LSTM_PREFIX}", "--input", ckpt["dir"] / "x.npy")
    assert d["ok"] is True and any(r["tensor"] == "grad_weight_hr_l1_reverse" for r in d["results"])
