"""rnn-cli convert SRC[:PREFIX] DST (issue 24): the written file, its proof, its refusals.

Source files are made here with the real tools (torch.save, np.savez, safetensors, torch.jit.script
/ trace + torch.jit.save). What is expected is written out in the tests: each converted file is
loaded with load_state_dict(strict=True) into an nn module built here from known constructor
arguments, and its forward must equal torch's forward of the original module built here. The
ONNX-like sources are a fake reader plus a runtime written here in numpy from the ONNX operator's
documented GRU equations (both linear_before_reset values): an independent implementation that
convert's proof must agree with, or tell apart.
"""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rnn_cli.cli.app import app  # noqa: E402
from rnn_cli.formats import checkpoint  # noqa: E402
from rnn_cli.formats import convert as convert_mod  # noqa: E402


def cli(*args):
    return CliRunner().invoke(app, ["convert", *map(str, args)], env={"COLUMNS": "100"})


def forward(m, x, hx=None):
    """torch's own forward of a module on x; a cell runs step by step (its h at each step)."""
    with torch.no_grad():
        if not isinstance(m, (nn.RNNCellBase,)):
            out, state = m(x, hx)
            return [out, *(state if isinstance(state, tuple) else (state,))]
        h, steps = hx, []
        for t in range(x.shape[0]):
            h = m(x[t], h)
            steps.append(h[0] if isinstance(h, tuple) else h)
        return [torch.stack(steps), *(h if isinstance(h, tuple) else (h,))]


def assert_same_forward(original, converted, x, hx=None):
    for a, b in zip(forward(original, x, hx), forward(converted, x, hx)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
    assert forward(original, x, hx)[0].abs().max() > 0.05  # a real output, not zeros on both sides


# ---- sources made with the real tools --------------------------------------------------------


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 7, num_layers=2, batch_first=True, dropout=0.2)

    def forward(self, x):
        return self.rnn(x)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.cell = nn.RNNCell(14, 3, nonlinearity="relu")
        self.head = nn.Linear(7, 2)

    def forward(self, x):
        y, h = self.encoder(x)
        return y, self.cell(torch.cat([y[:, -1], y[:, 0]], dim=1))


def _save_torch(path, sd):
    torch.save(sd, path)


def _save_npz(path, sd):
    np.savez(path, **{k: v.numpy() for k, v in sd.items()})


def _save_safetensors(path, sd):
    pytest.importorskip("safetensors.torch").save_file({k: v.contiguous() for k, v in sd.items()}, path)


# name -> (the original module, its constructor arguments written out, how the file is saved,
#          the file's name, the PREFIX); every file holds one other tensor beside the module
CASES = {
    "torch-lstm-bidirectional-proj": (lambda: nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3),
                                      dict(input_size=5, hidden_size=8, num_layers=2, bidirectional=True, proj_size=3),
                                      _save_torch, "m.pt", "enc.rnn"),
    "npz-gru-2-layers": (lambda: nn.GRU(4, 6, num_layers=2), dict(input_size=4, hidden_size=6, num_layers=2),
                         _save_npz, "m.npz", "gru"),
    "safetensors-rnn-no-bias": (lambda: nn.RNN(3, 5, bias=False), dict(input_size=3, hidden_size=5, bias=False),
                                _save_safetensors, "m.safetensors", "rnn"),
    "torch-lstmcell": (lambda: nn.LSTMCell(4, 6), dict(input_size=4, hidden_size=6), _save_torch, "m.pt", "dec.cell"),
    "npz-grucell": (lambda: nn.GRUCell(3, 4), dict(input_size=3, hidden_size=4), _save_npz, "m.npz", "cell"),
    "safetensors-rnncell-no-bias": (lambda: nn.RNNCell(3, 4, bias=False), dict(input_size=3, hidden_size=4, bias=False),
                                    _save_safetensors, "m.safetensors", "c"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_written_pt_loads_strictly_and_computes_what_the_original_computes(tmp_path, case):
    """Catches: keys that are not exactly the nn module's (a prefix left on, _l0 added to a cell's
    names, a missing bias, weight_hr dropped), weights under the wrong key (layers or directions
    swapped), and a file torch.load cannot read back."""
    make, args, save_file, name, prefix = CASES[case]
    torch.manual_seed(3)
    original = make().eval()
    sd = {f"{prefix}.{k}": v for k, v in original.state_dict().items()}
    sd["head.weight"] = torch.ones(2, 3)
    save_file(tmp_path / name, sd)
    res = cli(f"{tmp_path / name}:{prefix}", tmp_path / "out.pt")
    assert res.exit_code == 0, res.stdout + res.stderr
    converted = type(original)(**args)
    written = torch.load(tmp_path / "out.pt", weights_only=True)
    assert list(written) == list(converted.state_dict())  # exactly its keys, in its order
    converted.load_state_dict(written, strict=True)
    L, N = 6, 3
    x = torch.randn(L, N, args["input_size"])
    cell = isinstance(original, nn.RNNCellBase)
    H_out = args.get("proj_size") or args["hidden_size"]
    h = torch.randn(1, N, args["hidden_size"])[0] if cell else torch.randn(args.get("num_layers", 1) * (1 + args.get("bidirectional", False)), N, H_out)
    if isinstance(original, nn.LSTM):
        h = (h, torch.randn(h.shape[0], N, args["hidden_size"]))
    elif isinstance(original, nn.LSTMCell):
        h = (h, torch.randn(N, args["hidden_size"]))
    assert_same_forward(original, converted, x, h)
    assert "OK: the converted module computes what the source computes" in res.stdout


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    d = tmp_path_factory.mktemp("jit")
    torch.manual_seed(4)
    model = Model().eval()
    x = torch.randn(2, 6, 5)
    torch.jit.save(torch.jit.script(model), d / "scripted.jit")
    torch.jit.save(torch.jit.trace(model, x), d / "traced.jit")
    return d, model


@pytest.mark.parametrize("how", ["scripted", "traced"])
def test_a_torchscript_archives_gru_converts_to_its_own_constructor(archives, how, tmp_path):
    """Catches: the archive's batch_first or dropout lost on the way (the written state_dict must
    load into the module the archive declares, and compute what the scripted model's GRU computes
    on batch-first input), and any code of the archive run (torch.jit.load is never called)."""
    d, model = archives
    res = cli(f"{d / f'{how}.jit'}:encoder.rnn", tmp_path / "rnn.pt", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["constructor"] == "nn.GRU(input_size=5, hidden_size=7, num_layers=2, batch_first=True, dropout=0.2)"
    assert doc["format"] == "torchscript" and "archive's tensors" in doc["proof"]["source_runtime"]
    converted = nn.GRU(5, 7, num_layers=2, batch_first=True, dropout=0.2).eval()
    converted.load_state_dict(torch.load(tmp_path / "rnn.pt", weights_only=True), strict=True)
    assert_same_forward(model.encoder.rnn, converted, torch.randn(3, 4, 5), torch.randn(2, 3, 7))


def test_a_scripted_relu_cell_keeps_its_nonlinearity(archives, tmp_path):
    """Catches: the RNNCell's nonlinearity='relu' (stated by the archive, not by the weights)
    dropped: a tanh cell would differ from the original."""
    d, model = archives
    res = cli(f"{d / 'scripted.jit'}:cell", tmp_path / "cell.npz", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["constructor"] == "nn.RNNCell(input_size=14, hidden_size=3, nonlinearity='relu')"
    converted = nn.RNNCell(14, 3, nonlinearity="relu")
    converted.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(tmp_path / "cell.npz").items()}, strict=True)
    assert_same_forward(model.cell, converted, torch.randn(5, 2, 14), torch.randn(2, 3))


def test_renamed_weights_convert_to_the_cell_their_shapes_make(tmp_path):
    """Catches: renamed keys (enc_w_ih, ...) mapped to the wrong torch names (w_ih <-> w_hh cannot
    load at all; b_ih <-> b_hh loads and computes something else), and the mapping left out of
    what is shown."""
    torch.manual_seed(5)
    original = nn.GRUCell(6, 4)
    sd = {k: v.numpy() for k, v in original.state_dict().items()}
    np.savez(tmp_path / "port.npz", enc_w_ih=sd["weight_ih"], enc_w_hh=sd["weight_hh"], enc_b_ih=sd["bias_ih"],
             enc_b_hh=sd["bias_hh"], out_w=np.ones((2, 4), np.float32))
    res = cli(f"{tmp_path / 'port.npz'}:enc", tmp_path / "enc.pt")
    assert res.exit_code == 0, res.stderr
    for key, name in (("enc_w_ih", "weight_ih"), ("enc_b_hh", "bias_hh")):
        assert any(name in line and "<-" in line and key in line for line in res.stdout.splitlines())
    converted = nn.GRUCell(6, 4)
    converted.load_state_dict(torch.load(tmp_path / "enc.pt", weights_only=True), strict=True)
    assert_same_forward(original, converted, torch.randn(5, 3, 6), torch.randn(3, 4))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_safetensors_and_npz_are_read_by_their_own_libraries(tmp_path, suffix):
    """Catches: a hand-written safetensors header the safetensors package refuses (offsets,
    dtype names, alignment) or bytes in the wrong order, and an .npz with anything beside the
    module's keys (np.load's dict would not load strictly)."""
    torch.manual_seed(6)
    original = nn.LSTM(3, 4, bidirectional=True)
    torch.save({f"lstm.{k}": v for k, v in original.state_dict().items()}, tmp_path / "m.pt")
    res = cli(f"{tmp_path / 'm.pt'}:lstm", tmp_path / f"out{suffix}")
    assert res.exit_code == 0, res.stderr
    if suffix == ".npz":
        written = {k: torch.from_numpy(v) for k, v in np.load(tmp_path / "out.npz", allow_pickle=False).items()}
    else:
        written = pytest.importorskip("safetensors.torch").load_file(tmp_path / "out.safetensors")
    converted = nn.LSTM(3, 4, bidirectional=True)
    assert set(written) == set(converted.state_dict())
    converted.load_state_dict(written, strict=True)
    assert_same_forward(original, converted, torch.randn(4, 2, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4)))


def test_float64_weights_stay_float64(tmp_path):
    """Catches: float64 weights rounded to float32 on the way (the converted module would differ
    from the original by float32 rounding)."""
    torch.manual_seed(7)
    original = nn.GRU(3, 4, dtype=torch.float64)
    torch.save(original.state_dict(), tmp_path / "m.pt")
    assert cli(tmp_path / "m.pt", tmp_path / "out.pt").exit_code == 0
    written = torch.load(tmp_path / "out.pt", weights_only=True)
    assert {v.dtype for v in written.values()} == {torch.float64}
    assert all(torch.equal(written[k], v) for k, v in original.state_dict().items())


# ---- refusals: nothing written -----------------------------------------------------------------


@pytest.fixture
def lstm_pt(tmp_path):
    torch.manual_seed(8)
    path = tmp_path / "m.pt"
    torch.save({f"enc.{k}": v for k, v in nn.LSTM(3, 4).state_dict().items()}, path)
    return path


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "dot path"])
def test_dst_that_is_src_is_refused_and_nothing_is_written(lstm_pt, tmp_path, how):
    """Catches: convert replacing its own source (the converted file has other keys than the
    source, so SRC would be destroyed): by its path, through a link, a hard link, or ./."""
    d = tmp_path
    dst = {"same path": lstm_pt, "symlink": d / "link.pt", "hard link": d / "hard.pt",
           "dot path": f"{d}/./m.pt"}[how]
    if how == "symlink":
        os.symlink(lstm_pt, dst)
    elif how == "hard link":
        os.link(lstm_pt, dst)
    before, listing = lstm_pt.read_bytes(), sorted(os.listdir(d))
    res = cli(f"{lstm_pt}:enc", dst)
    assert res.exit_code == 2
    assert "is the same file as SRC" in res.stderr and len(res.stderr.splitlines()) == 1
    assert lstm_pt.read_bytes() == before and sorted(os.listdir(d)) == listing


@pytest.mark.parametrize("dst", ["out.h5", "out.onnx", "out", "out.pt.bak"])
def test_an_unknown_dst_suffix_is_refused_before_anything_runs(lstm_pt, tmp_path, dst):
    """Catches: a DST written in a format its name does not say (torch.save bytes in out.h5)."""
    res = cli(f"{lstm_pt}:enc", tmp_path / dst)
    assert res.exit_code == 2 and "unknown suffix" in res.stderr and ".safetensors" in res.stderr
    assert not (tmp_path / dst).exists() and sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_several_modules_without_prefix_ask_for_one(tmp_path):
    sd = {f"a.{k}": v for k, v in nn.GRU(2, 3).state_dict().items()}
    sd.update({f"b.{k}": v for k, v in nn.RNN(2, 3).state_dict().items()})
    torch.save(sd, tmp_path / "two.pt")
    res = cli(tmp_path / "two.pt", tmp_path / "out.pt")
    assert res.exit_code == 2 and "pick one with" in res.stderr and res.stderr.startswith("rnn-cli: error: SRC ")
    assert not (tmp_path / "out.pt").exists()


def test_a_planted_gate_permutation_is_caught_and_nothing_is_written(lstm_pt, tmp_path, monkeypatch):
    """Catches: a converter that writes the LSTM's gate blocks in another framework's order (here
    ONNX's i, o, f, c, permuted in this test, not with layout.py) under the right keys: the file
    loads strictly, but the proof runs the source from the file's own tensors, so output, h_n and
    c_n differ: exit 1, and an existing DST is left as it was."""
    real = convert_mod.state_dict

    def planted(module):
        sd = real(module)
        w = sd["weight_ih_l0"]
        H = w.shape[0] // 4
        i, f, g, o = (w[k * H:(k + 1) * H] for k in range(4))
        sd["weight_ih_l0"] = np.concatenate([i, o, f, g])
        return sd

    monkeypatch.setattr(convert_mod, "state_dict", planted)
    (tmp_path / "out.pt").write_bytes(b"old")
    res = cli(f"{lstm_pt}:enc", tmp_path / "out.pt", "--json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["written"] is None
    assert {c["tensor"]: c["ok"] for c in doc["checks"]} == {"output": False, "h_n": False, "c_n": False}
    assert (tmp_path / "out.pt").read_bytes() == b"old"
    human = cli(f"{lstm_pt}:enc", tmp_path / "out.pt")
    assert human.exit_code == 1 and "MISMATCH" in human.stdout and "FAIL" in human.stdout


# ---- a source with a runtime of its own: a fake ONNX reader and numpy runtime ------------------


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def onnx_gru(W, R, B, x, h, linear_before_reset):
    """The ONNX operator GRU, one forward direction, written from its documentation: gates z, r, h
    stacked in W (3H, H_in), R (3H, H), B = [Wb, Rb] (6H,);
      z = sigmoid(x Wz' + h Rz' + Wbz + Rbz),  r = sigmoid(x Wr' + h Rr' + Wbr + Rbr)
      linear_before_reset=0: n = tanh(x Wh' + (r * h) Rh' + Rbh + Wbh)
      linear_before_reset=1: n = tanh(x Wh' + r * (h Rh' + Rbh) + Wbh)
      h = (1 - z) * n + z * h.
    x (L, N, H_in), h (N, H) -> output (L, N, H), h_n (N, H), in float64."""
    H = R.shape[1]
    Wz, Wr, Wh = W[:H], W[H:2 * H], W[2 * H:]
    Rz, Rr, Rh = R[:H], R[H:2 * H], R[2 * H:]
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = (B[k * H:(k + 1) * H] for k in range(6))
    steps = []
    for xt in x:
        z = _sigmoid(xt @ Wz.T + h @ Rz.T + Wbz + Rbz)
        r = _sigmoid(xt @ Wr.T + h @ Rr.T + Wbr + Rbr)
        if linear_before_reset:
            n = np.tanh(xt @ Wh.T + r * (h @ Rh.T + Rbh) + Wbh)
        else:
            n = np.tanh(xt @ Wh.T + (r * h) @ Rh.T + Rbh + Wbh)
        h = (1 - z) * n + z * h
        steps.append(h)
    return np.stack(steps), h


def _zrh_to_rzn(a):
    H = a.shape[0] // 3
    return np.concatenate([a[H:2 * H], a[:H], a[2 * H:]])


def _fake_runtime(calls: list, permute: bool = True):
    """A reader (read_modules) and runtime (forward) for `.onnx` files that are really .npz of
    W, R, B, linear_before_reset: the reader maps them to torch's GRU layout (z, r, h -> r, z, n),
    or, with permute=False, hands them over unpermuted (a reader's bug)."""
    mod = types.ModuleType("fake_onnx_runtime")

    def read_modules(src):
        f = np.load(src.path)
        W, R, B, lbr = f["W"], f["R"], f["B"], int(f["lbr"])
        H = R.shape[1]
        fix = _zrh_to_rzn if permute else (lambda a: a)
        params = {"weight_ih_l0": fix(W), "weight_hh_l0": fix(R), "bias_ih_l0": fix(B[:3 * H]), "bias_hh_l0": fix(B[3 * H:])}
        reasons = [] if lbr else [{"code": "linear_before_reset_0", "detail": "ONNX GRU with linear_before_reset=0"}]
        m = checkpoint.RecurrentModule(
            prefix="/rnn/GRU", kind="GRU", input_size=W.shape[1], hidden_size=H, num_layers=1, bidirectional=False,
            bias=True, proj_size=0, dtype="float32", params=params, unknowns={}, problems=[], source="onnx",
            source_names={n: f"{n} <- onnx" for n in params}, not_expressible=reasons, node="/rnn/GRU")
        return checkpoint.Loaded(src.path, "onnx", {"W": W, "R": R, "B": B}, None), [m]

    def forward(path, module, x, h_0, c_0):
        f = np.load(path)
        calls.append((x.copy(), None if h_0 is None else h_0.copy()))
        h = np.zeros((x.shape[1], f["R"].shape[1])) if h_0 is None else h_0[0].astype(np.float64)
        out, h_n = onnx_gru(f["W"].astype(np.float64), f["R"].astype(np.float64), f["B"].astype(np.float64),
                            x.astype(np.float64), h, int(f["lbr"]))
        return {"output": out.astype(np.float32), "h_n": h_n[None].astype(np.float32)}

    mod.read_modules, mod.forward = read_modules, forward
    return mod


@pytest.fixture
def fake_onnx(tmp_path, monkeypatch):
    """`make(lbr, permute)` -> the path of an `.onnx` file read by the fake reader; the runtime's calls."""
    calls: list = []

    def make(lbr: int, permute: bool = True, no_recurrent_candidate: bool = False):
        mod = _fake_runtime(calls, permute)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
        monkeypatch.setitem(checkpoint.MODULE_READERS, "onnx", (mod.__name__, "onnx"))
        monkeypatch.setitem(convert_mod.SOURCE_RUNTIMES, "onnx", mod.__name__)
        monkeypatch.setitem(convert_mod.RUNTIME_PACKAGES, "onnx", "numpy")
        rng = np.random.default_rng(9)
        H, H_in = 5, 4
        W = rng.uniform(-0.6, 0.6, (3 * H, H_in)).astype(np.float32)
        R = rng.uniform(-0.6, 0.6, (3 * H, H)).astype(np.float32)
        B = rng.uniform(-0.6, 0.6, (6 * H,)).astype(np.float32)
        if no_recurrent_candidate:  # Rh = 0 and Rbh = 0: where the reset gate applies makes no difference
            R[2 * H:], B[5 * H:] = 0, 0
        path = tmp_path / f"gru{lbr}.onnx"
        with open(path, "wb") as f:
            np.savez(f, W=W, R=R, B=B, lbr=np.array(lbr))
        return path

    return make, calls


def test_a_source_with_its_own_runtime_is_proved_against_it_and_written(fake_onnx, tmp_path):
    """Catches: convert not calling the source's own runtime (SOURCE_RUNTIMES), states handed
    over in another layout than torch's (D*num_layers, N, H), and a written file that does not
    compute what the ONNX equations (linear_before_reset=1, written here in numpy) compute."""
    make, calls = fake_onnx
    path = make(lbr=1)
    res = cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt", "--json")
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["written"] == str(tmp_path / "gru.pt") and doc["not_expressible"] == []
    assert doc["proof"]["source_runtime"].startswith("numpy ") and doc["mapping"]["weight_ih_l0"] == "weight_ih_l0 <- onnx"
    x, h_0 = calls[-1]
    assert x.shape == (10, 2, 4) and h_0.shape == (1, 2, 5) and np.abs(h_0).max() > 0.1  # --h0 random by default
    converted = nn.GRU(4, 5)
    converted.load_state_dict(torch.load(tmp_path / "gru.pt", weights_only=True), strict=True)
    f = np.load(path)
    xs = np.random.default_rng(1).standard_normal((7, 3, 4))
    hs = np.random.default_rng(2).standard_normal((3, 5))
    want, _ = onnx_gru(f["W"].astype(np.float64), f["R"].astype(np.float64), f["B"].astype(np.float64), xs, hs, 1)
    with torch.no_grad():
        got, _ = converted(torch.from_numpy(xs).float(), torch.from_numpy(hs[None]).float())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt", "--h0", "zeros").exit_code == 0
    assert calls[-1][1] is None  # zeros: the source's own default state


def test_a_reader_that_forgets_the_gate_permutation_is_caught(fake_onnx, tmp_path):
    """Catches: a reader handing over ONNX's z, r, h blocks as torch's r, z, n (the bug of keras
    issue 8720 and of hand-written loaders): the source's runtime computes the real GRU, the nn
    module another one, so the proof fails, exit 1, nothing written."""
    make, _ = fake_onnx
    path = make(lbr=1, permute=False)
    res = cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt")
    assert res.exit_code == 1 and "MISMATCH" in res.stdout
    assert not (tmp_path / "gru.pt").exists()


def test_a_layer_no_nn_module_computes_is_measured_and_not_written(fake_onnx, tmp_path):
    """Catches: an ONNX GRU with linear_before_reset=0 (not nn.GRU's function) written as if it
    were one, or refused without saying by how much nn.GRU differs. The difference is checked
    here against torch's nn.GRU run by the test on the inputs the runtime was given."""
    make, calls = fake_onnx
    path = make(lbr=0)
    res = cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt", "--json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["written"] is None and doc["ok"] is False
    assert doc["not_expressible"] == [{"code": "linear_before_reset_0", "detail": "ONNX GRU with linear_before_reset=0"}]
    x, h_0 = calls[-1]
    f = np.load(path)
    H = 5
    gru = nn.GRU(4, H)
    with torch.no_grad():
        for name, a in (("weight_ih_l0", f["W"]), ("weight_hh_l0", f["R"]), ("bias_ih_l0", f["B"][:3 * H]), ("bias_hh_l0", f["B"][3 * H:])):
            getattr(gru, name).copy_(torch.from_numpy(_zrh_to_rzn(a)))
        torch_out, _ = gru(torch.from_numpy(x), torch.from_numpy(h_0))
    ref, _ = onnx_gru(*(f[k].astype(np.float64) for k in ("W", "R", "B")), x.astype(np.float64), h_0[0].astype(np.float64), 0)
    diff = float(np.abs(torch_out.numpy() - ref).max())
    assert diff > 0.01  # a different function, not rounding
    (out_check,) = [c for c in doc["checks"] if c["tensor"] == "output"]
    assert out_check["max_abs_diff"] == pytest.approx(diff, rel=1e-4)
    human = cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt")
    assert human.exit_code == 1
    line = " ".join(human.stdout.split())
    assert f"ONNX GRU with linear_before_reset=0: nn.GRU differs by up to {diff:.2g} on a seeded input" in line
    assert "no exact conversion exists" in line and "nothing written" in line
    assert not (tmp_path / "gru.pt").exists()


def test_a_layer_no_nn_module_computes_is_refused_even_where_the_seeded_input_agrees(fake_onnx, tmp_path):
    """Catches: a conversion judged by the numbers alone: with Rh = 0 and Rbh = 0 the two GRU
    functions coincide on every input, yet the layer is declared not expressible (a clip that no
    value reaches is the real-world case): exit 1, nothing written, and the line says it agreed."""
    make, _ = fake_onnx
    path = make(lbr=0, no_recurrent_candidate=True)
    res = cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt")
    assert res.exit_code == 1 and not (tmp_path / "gru.pt").exists()
    assert "nn.GRU happens to agree within tolerance" in " ".join(res.stdout.split())
    assert "FAIL" not in res.stdout


# ---- the JSON document ---------------------------------------------------------------------------


def test_json_keys_and_checks_are_compares(lstm_pt, tmp_path):
    """Catches: a renamed or missing key of the document issue 24 names, and per-tensor checks
    shaped differently from compare's `results` entries (one schema for one check)."""
    res = cli(f"{lstm_pt}:enc", tmp_path / "out.pt", "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert {"source", "prefix", "constructor", "written", "mapping", "checks", "ok", "not_expressible"} <= set(doc)
    assert doc["source"] == str(lstm_pt) and doc["prefix"] == "enc" and doc["constructor"] == "nn.LSTM(input_size=3, hidden_size=4)"
    assert doc["written"] == str(tmp_path / "out.pt") and doc["ok"] is True and doc["not_expressible"] == []
    assert doc["mapping"] == {n: f"enc.{n}" for n in nn.LSTM(3, 4).state_dict()}
    compare = CliRunner().invoke(app, ["compare", "--cell", "lstm", "--json", "--no-values"])
    results = json.loads(compare.stdout)["results"]
    assert [set(c) for c in doc["checks"]] == [set(results[0])] * 3
    assert [c["tensor"] for c in doc["checks"]] == ["output", "h_n", "c_n"]


def test_half_precision_weights_are_written_as_the_float32_they_were_read_as(tmp_path):
    """Catches: float16 weights written as something else than their exact float32 values, or
    the conversion made silently (the note must say it)."""
    torch.manual_seed(10)
    half = nn.GRU(3, 4).half()
    torch.save(half.state_dict(), tmp_path / "h.pt")
    res = cli(tmp_path / "h.pt", tmp_path / "out.pt")
    assert res.exit_code == 0, res.stderr
    assert "note: float16 tensors converted to float32" in res.stdout
    written = torch.load(tmp_path / "out.pt", weights_only=True)
    assert all(written[k].dtype == torch.float32 and torch.equal(written[k], v.float()) for k, v in half.state_dict().items())


def test_an_svg_of_the_view_cannot_be_dst_nor_come_with_json(lstm_pt, tmp_path):
    """Catches: --export-svg replacing the converted file (both are written together), or a
    --json run that would record a view it never prints."""
    res = cli(f"{lstm_pt}:enc", tmp_path / "out.pt", "--export-svg", tmp_path / "out.pt")
    assert res.exit_code == 2 and "same file" in res.stderr and not (tmp_path / "out.pt").exists()
    res = cli(f"{lstm_pt}:enc", tmp_path / "out.pt", "--export-svg", tmp_path / "v.svg", "--json")
    assert res.exit_code == 2 and not (tmp_path / "out.pt").exists() and not (tmp_path / "v.svg").exists()
    res = cli(f"{lstm_pt}:enc", tmp_path / "out.pt", "--export-svg", tmp_path / "v.svg")
    assert res.exit_code == 0 and (tmp_path / "out.pt").exists() and b"<svg" in (tmp_path / "v.svg").read_bytes()


def test_without_the_sources_runtime_a_layer_no_nn_module_computes_is_still_refused(fake_onnx, tmp_path, monkeypatch):
    """Catches: a missing optional runtime (keras, onnxruntime) turning the refusal of a
    non-expressible layer into a crash or an exit 2, or an expressible one converted unproved."""
    make, _ = fake_onnx
    path = make(lbr=0)
    mod = sys.modules["fake_onnx_runtime"]

    def no_runtime(*args):
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(mod, "forward", no_runtime)
    res = cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt", "--json")
    assert res.exit_code == 1 and not (tmp_path / "gru.pt").exists()
    doc = json.loads(res.stdout)
    assert doc["unmeasured"] == "onnxruntime is not installed" and doc["checks"] == [] and doc["ok"] is False
    line = " ".join(cli(f"{path}:/rnn/GRU", tmp_path / "gru.pt").stdout.split())
    assert "nn.GRU computes another function (not measured: onnxruntime is not installed); no exact conversion exists" in line
    expressible = make(lbr=1)
    monkeypatch.setattr(sys.modules["fake_onnx_runtime"], "forward", no_runtime)
    res = cli(f"{expressible}:/rnn/GRU", tmp_path / "gru.pt")
    assert res.exit_code == 2 and "onnxruntime is not installed" in res.stderr and not (tmp_path / "gru.pt").exists()
