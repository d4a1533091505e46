"""Models from other frameworks, first slice: TorchScript archives and renamed weights.

Files are made here with the real tools (torch.jit.script / trace + torch.jit.save, np.savez);
expected constructor arguments are written out in the tests and expected numbers come from
the scripted/traced module's own forward or from torch's nn.GRU, never from rnn-cli.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from rnn_cli.formats import renamed  # noqa: E402
from rnn_cli.formats import torchscript
from rnn_cli.errors import RnnCliError  # noqa: E402
from rnn_cli.printable import printable  # noqa: E402

GRU_ARGS = dict(input_size=5, hidden_size=8, num_layers=2, batch_first=True, dropout=0.25, bidirectional=True)
GRU_LINE = "nn.GRU(input_size=5, hidden_size=8, num_layers=2, batch_first=True, dropout=0.25, bidirectional=True)"


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(5, 5)
        self.rnn = nn.GRU(**GRU_ARGS)

    def forward(self, x):
        return self.rnn(x)  # (output, h_n)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.cell = nn.RNNCell(16, 3, nonlinearity="relu")
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        y, h = self.encoder(x)
        return y, h, self.cell(y[:, -1])


def rnn_cli(*args, check=True):
    out = subprocess.run([sys.executable, "-m", "rnn_cli", *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """A scripted and a traced Model saved with torch.jit.save, an input, and each one's own
    forward on it (eval mode: the GRU's dropout is off, as in rnn-cli's runs)."""
    d = tmp_path_factory.mktemp("jit")
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(2, 7, 5)  # batch_first: (N, L, H_in)
    np.save(d / "x.npy", x.numpy())
    out = {"dir": d}
    for how, make in (("scripted", lambda: torch.jit.script(model)), ("traced", lambda: torch.jit.trace(model, x))):
        m = make()
        torch.jit.save(m, d / f"{how}.jit")
        with torch.no_grad():
            y, h, _ = m(x)  # the archive's module, run by torch itself
        out[how] = (d / f"{how}.jit", y.numpy(), h.numpy())
    torch.jit.save(torch.jit.script(model), d / "scripted.pt")  # the same archive under torch.save's suffix
    return out


@pytest.mark.parametrize("how", ["scripted", "traced"])
def test_inspect_lists_the_gru_in_a_submodule_with_its_exact_constructor(archives, how):
    path = archives[how][0]
    doc = json.loads(rnn_cli("inspect", path, "--json").stdout)
    assert doc["format"] == "torchscript"
    mods = {m["prefix"]: m for m in doc["modules"]}
    gru = mods["encoder.rnn"]
    assert gru["kind"] == "GRU" and gru["constructor"] == GRU_LINE
    assert gru["source"] == "torchscript"
    assert gru["declared"]["batch_first"] is True and gru["declared"]["dropout"] == 0.25
    assert "batch_first" not in gru["unknowns"] and "dropout" not in gru["unknowns"]
    assert gru["shapes"]["input"] == [1, 10, 5]  # batch_first from the archive: (N, L, H_in)
    assert gru["source_names"]["weight_ih_l1_reverse"] == "encoder.rnn.weight_ih_l1_reverse"
    assert doc["problems"] == 0
    # a cell that is never called in forward: traced code states nothing, scripted code does
    cell = mods["cell"]
    if how == "scripted":
        assert cell["constructor"] == "nn.RNNCell(input_size=16, hidden_size=3, nonlinearity='relu')"
    else:
        assert cell["kind"] == "RNNCell" and "nonlinearity" not in cell["declared"]
    # the Linear layers are other tensors, by their qualified names
    assert {p["prefix"] for p in doc["other_tensors"]["largest"]} == {"encoder.embed", "head"}


@pytest.mark.parametrize("how", ["scripted", "traced"])
def test_params_runs_the_archives_gru_as_its_own_forward_does(archives, how):
    path, y, h = archives[how]
    d = archives["dir"]
    save = d / f"{how}-run.npz"
    rnn_cli("torch", "--params", f"{path}:encoder.rnn", "--input", d / "x.npy", "--save", save, "--no-values")
    got = np.load(save)
    assert got["output"].shape == y.shape == (2, 7, 16)  # (N, L, D*H_out): batch_first from the archive
    np.testing.assert_allclose(got["output"], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["h_n"], h, rtol=1e-5, atol=1e-6)
    assert np.abs(y).max() > 0.05


def test_a_pt_suffix_torchscript_archive_is_read_as_one(archives):
    doc = json.loads(rnn_cli("inspect", archives["dir"] / "scripted.pt", "--json").stdout)
    assert doc["format"] == "torchscript"
    assert {m["prefix"] for m in doc["modules"]} == {"encoder.rnn", "cell"}


# ---- nothing from the archive runs ------------------------------------------------------------


class Hook(nn.Module):
    """A module whose TorchScript __setstate__ prints a marker: torch.jit.load runs it."""

    def __init__(self):
        super().__init__()
        self.x = 1

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.x, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[int, bool]):
        print("MARKER-RAN")
        self.x = state[0]
        self.training = state[1]


class Hooked(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4)
        self.hook = Hook()

    def forward(self, x):
        return self.hook(self.rnn(x)[0])


def test_inspect_runs_no_code_that_torch_jit_load_would_run(tmp_path):
    path = tmp_path / "hooked.pt"
    torch.jit.save(torch.jit.script(Hooked()), path)
    loaded = subprocess.run([sys.executable, "-c", f"import torch; torch.jit.load({str(path)!r})"],
                            capture_output=True, text=True, timeout=120)
    assert "MARKER-RAN" in loaded.stdout  # the archive does run code when torch loads it
    out = rnn_cli("inspect", path)
    assert "MARKER-RAN" not in out.stdout + out.stderr
    assert "nn.GRU(input_size=3, hidden_size=4)" in out.stdout
    out = rnn_cli("torch", "--params", f"{path}:rnn", "--no-values")
    assert "MARKER-RAN" not in out.stdout + out.stderr


def _with_data_pkl(src, dst, data: bytes) -> None:
    """A copy of archive `src` whose data.pkl is replaced by `data`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, data if info.filename.endswith("/data.pkl") else zin.read(info))


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # unpickling calls os.system: what a malicious data.pkl does
        import os

        return (os.system, (f"touch {self.path}",))


def test_a_data_pkl_calling_any_other_global_is_refused_and_nothing_runs(archives, tmp_path):
    marker = tmp_path / "marker"
    evil = pickle.dumps(_Touch(marker), protocol=2)
    pickle.loads(evil)  # the crafted pickle is live: a plain unpickler runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError, match="refused global (posix|os|nt).system"):
        torchscript.unpickle(evil)
    for module, name in (("builtins", "eval"), ("torch", "load"), ("torch._utils", "_rebuild_parameter"), ("__torch__", "x y")):
        with pytest.raises(pickle.UnpicklingError, match="refused global"):
            torchscript.unpickle(f"\x80\x02c{module}\n{name}\n.".encode("latin-1"))
    bad = tmp_path / "evil.jit"
    _with_data_pkl(archives["scripted"][0], bad, evil)
    out = rnn_cli("inspect", bad, check=False)
    assert out.returncode == 2 and "refused global" in out.stderr and "nothing from the archive was run" in out.stderr
    assert not marker.exists()


def _patched(src, dst, old: bytes, new: bytes) -> None:
    with zipfile.ZipFile(src) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    assert data.count(old) == 1
    _with_data_pkl(src, dst, data.replace(old, new))


def test_tensor_sizes_are_checked_against_the_zip_entries_before_allocating(archives, tmp_path):
    src = archives["scripted"][0]  # first tensor: encoder.embed.weight, storage '0' of 25 floats
    # a storage that claims 10**9 floats where data/0 holds 100 bytes
    big = tmp_path / "big.jit"
    _patched(src, big, b"X\x03\x00\x00\x00cpuq\x0cK\x19", b"X\x03\x00\x00\x00cpuq\x0cJ" + (10**9).to_bytes(4, "little"))
    out = rnn_cli("inspect", big, check=False)
    assert out.returncode == 2 and "holds 100 bytes, its tensor needs 4,000,000,000" in out.stderr
    # a view (5, 5000) on a 25-element storage
    wide = tmp_path / "wide.jit"
    _patched(src, wide, b"K\x00(K\x05K\x05t(K\x05K\x01t", b"K\x00(K\x05M\x88\x13t(K\x05K\x01t")
    out = rnn_cli("inspect", wide, check=False)
    assert out.returncode == 2 and "reaches beyond its storage of 25 elements" in out.stderr


def test_a_zip_that_is_no_torchscript_archive_is_refused_as_jit(tmp_path):
    p = tmp_path / "x.jit"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x/data.pkl", b"")
    with pytest.raises(RnnCliError, match="not a TorchScript archive"):
        from rnn_cli.formats.checkpoint import load_tensors

        load_tensors(p)


# ---- renamed weights --------------------------------------------------------------------------


def test_roles_of_renamed_keys():
    assert renamed.role("enc_w_ih") == ("enc", "weight_ih")
    assert renamed.role("enc_b_hh") == ("enc", "bias_hh")
    assert renamed.role("W_hh") == ("", "weight_hh")
    assert renamed.role("model.rnn.recurrent_kernel") == ("model.rnn", "weight_hh")
    assert renamed.role("model.rnn.kernel") == ("model.rnn", "weight_ih")
    assert renamed.role("fc.weight") is None and renamed.role("enc_proj") is None


def test_groups_need_two_weights_that_make_a_cell():
    G = {"a_w_ih": (12, 5), "a_w_hh": (12, 4), "a_b_ih": (12,), "a_b_hh": (12,),  # GRU 5 -> 4
         "b_w_ih": (7, 5), "b_w_hh": (7, 3),  # 7 rows: no cell
         "c_kernel": (5, 16), "c_recurrent_kernel": (4, 16),  # Keras-style, transposed
         "d_w_ih": (8, 2)}  # no recurrent weight
    groups = {g.prefix: g for g in renamed.find_groups(G)}
    assert set(groups) == {"a", "c"}
    assert groups["a"].cell == "gru" and groups["a"].keys == {"weight_ih": "a_w_ih", "weight_hh": "a_w_hh",
                                                              "bias_ih": "a_b_ih", "bias_hh": "a_b_hh"}
    assert not groups["a"].problems
    assert "transposed" in groups["c"].problems[0]
    dup = renamed.find_groups({"e_w_ih": (12, 5), "e_wx": (12, 5), "e_w_hh": (12, 4)})
    assert "e_w_ih and e_wx all read as weight_ih" in dup[0].problems[0]


@pytest.fixture
def renamed_npz(tmp_path):
    torch.manual_seed(1)
    gru = nn.GRU(6, 4)  # the reference: torch's own GRU with these weights
    sd = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    path = tmp_path / "port.npz"
    np.savez(path, enc_w_ih=sd["weight_ih_l0"], enc_w_hh=sd["weight_hh_l0"], enc_b_ih=sd["bias_ih_l0"],
             enc_b_hh=sd["bias_hh_l0"], out_proj=np.ones((3, 4), np.float32))
    return gru, path


def test_inspect_reports_renamed_weights_as_a_candidate_cell(renamed_npz):
    _, path = renamed_npz
    doc = json.loads(rnn_cli("inspect", path, "--json").stdout)
    (m,) = doc["modules"]
    assert (m["prefix"], m["kind"], m["candidate"], m["source"]) == ("enc", "GRUCell", True, "npz")
    assert m["config"]["input_size"] == 6 and m["config"]["hidden_size"] == 4
    assert m["source_names"] == {"weight_ih": "enc_w_ih", "weight_hh": "enc_w_hh", "bias_ih": "enc_b_ih", "bias_hh": "enc_b_hh"}
    assert [p["name"] for p in m["parameters"]] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert doc["other_tensors"]["count"] == 1 and doc["other_tensors"]["largest"][0]["prefix"] == "out_proj"
    screen = rnn_cli("inspect", path).stdout
    assert "candidate by shapes: renamed weights" in screen and "enc_w_ih -> weight_ih" in screen


def test_params_runs_renamed_weights_as_torchs_gru_and_says_the_mapping(renamed_npz, tmp_path):
    gru, path = renamed_npz
    x = torch.randn(5, 2, 6)
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        y, h = gru(x)
    out = rnn_cli("torch", "--params", f"{path}:enc", "--input", tmp_path / "x.npy", "--save", tmp_path / "o.npz", "--no-values")
    assert "enc_w_ih -> weight_ih, enc_w_hh -> weight_hh, enc_b_ih -> bias_ih, enc_b_hh -> bias_hh" in out.stderr
    got = np.load(tmp_path / "o.npz")
    np.testing.assert_allclose(got["output"], y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["h_n"], h.numpy(), rtol=1e-5, atol=1e-6)


# ---- strings from files reach the terminal escaped; JSON says where each module came from ---


def test_control_characters_in_keys_are_escaped_on_screen(tmp_path):
    assert printable("enc\x1b[2J\u202e") == "enc\\x1b[2J\\u202e"
    assert printable("encoder.rnn") == "encoder.rnn"
    path = tmp_path / "esc.npz"
    np.savez(path, **{"a\x1b[31m_w_ih": np.zeros((12, 5), np.float32), "a\x1b[31m_w_hh": np.zeros((12, 4), np.float32),
                      "x\x07.weight": np.zeros(3, np.float32)})
    out = rnn_cli("inspect", path)
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "a\\x1b[31m:" in out.stdout and "x\\x07 (3)" in out.stdout


@pytest.mark.parametrize("fmt", ["torch", "safetensors", "npz"])
def test_json_names_the_source_of_each_module(tmp_path, fmt):
    sd = {f"rnn.{k}": v for k, v in nn.LSTM(3, 2).state_dict().items()}
    if fmt == "torch":
        path = tmp_path / "m.pt"
        torch.save(sd, path)
    elif fmt == "safetensors":
        st = pytest.importorskip("safetensors.torch")
        path = tmp_path / "m.safetensors"
        st.save_file(sd, path)
    else:
        path = tmp_path / "m.npz"
        np.savez(path, **{k: v.numpy() for k, v in sd.items()})
    (m,) = json.loads(rnn_cli("inspect", path, "--json").stdout)["modules"]
    assert m["source"] == fmt and m["candidate"] is False and m["declared"] == {}
    assert m["source_names"]["weight_ih_l0"] == "rnn.weight_ih_l0"


def test_many_views_of_one_storage_cannot_amplify_the_allocation(archives, tmp_path, monkeypatch):
    """A data.pkl that points 20,000 distinct tensors at one 384-float storage (data/10:
    encoder.rnn.weight_ih_l1) would make 30 MB of copies from a 1 MB file: refused."""
    import types
    from collections import OrderedDict

    fake = types.ModuleType("__torch__")

    class M:  # pickled as GLOBAL '__torch__ M', as torch.jit.save writes modules
        pass

    M.__module__, M.__qualname__ = "__torch__", "M"
    fake.M = M
    monkeypatch.setitem(sys.modules, "__torch__", fake)
    storage = object()

    class Ref:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (storage, 0, (384,), (1,), False, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "FloatStorage", "10", "cpu", 384) if obj is storage else None

    root = M()
    root.__dict__.update({f"t{i}": Ref() for i in range(20_000)})
    buf = __import__("io").BytesIO()
    Pickler(buf, protocol=2).dump(root)
    bad = tmp_path / "views.jit"
    _with_data_pkl(archives["scripted"][0], bad, buf.getvalue())
    out = rnn_cli("inspect", bad, check=False)
    assert out.returncode == 2 and "add up to more bytes than the file holds" in out.stderr


def test_code_literals_are_parsed_never_evaluated():
    assert torchscript.literal("True") is True and torchscript.literal("2") == 2
    assert torchscript.literal("0.10000000000000001") == 0.1 and torchscript.literal("0.") == 0.0
    assert torchscript.literal('"RNN_RELU"') == "RNN_RELU"
    for text in ("__import__('os').system('x')", "1 + 1", "self.x", '"a" * 10**9', "[1, 2]"):
        assert torchscript.literal(text) is None, text
    # a traced call's trailing literals, padded and packed forms
    padded = torchscript._split_args("x, [hx, cx], _0, True, 2, 0.25, False, True, True")
    assert torchscript._traced_args("lstm", padded) == {"bias": True, "num_layers": 2, "dropout": 0.25,
                                                         "bidirectional": True, "batch_first": True}
    packed = torchscript._split_args("input, batch_sizes, hx, _21, False, 1, 0., False, False")
    assert torchscript._traced_args("rnn_relu", packed) == {"bias": False, "num_layers": 1, "dropout": 0.0,
                                                            "bidirectional": False, "nonlinearity": "relu"}


def test_error_lines_quote_a_files_keys_escaped(tmp_path):
    path = tmp_path / "none.npz"
    np.savez(path, **{"evil\x1b]0;pwned\x07.weight": np.zeros(3, np.float32)})
    out = rnn_cli("inspect", path, check=False)
    assert out.returncode == 2 and "no recurrent module" in out.stderr
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr and "evil\\x1b]0;pwned\\x07" in out.stderr
