"""Issue 24, Keras: .keras, legacy .h5 and .weights.h5 files read without Keras, mapped to torch's
layout, and proved on numbers.

Every file here is written by real Keras (3, torch backend) in tmp_path, its weights set to random
values first (Keras initialises biases to zeros and would hide a bias mapped to the wrong gate).
Expected values come from Keras itself: the model or layer object that was saved, run on the same
input and states. The torch side is an nn module built from inspect's constructor arguments and
loaded with inspect's parameters: agreement is the proof that the mapping (transpose, gate
permutation, biases) is right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")  # the keras extra; CI installs it
keras = pytest.importorskip("keras")

from typer.testing import CliRunner  # noqa: E402

from rnn_cli.cli.app import app  # noqa: E402
from rnn_cli.errors import RnnCliError  # noqa: E402
from rnn_cli.formats import checkpoint as ck  # noqa: E402
from rnn_cli.formats import keras_read  # noqa: E402

L_, H_IN = 7, 5  # sequence length and input width of every model here
N_ = 3
FORMATS = ("keras", "h5", "weights.h5")


def cli(*args: str):
    r = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr.splitlines()


# ---- the models, built and saved once ----------------------------------------------------------


def _layers():
    """case -> a function that builds (model, [(prefix, layer object), ...]) on input (N, L, H_in)."""
    K = keras.layers
    rs = dict(return_sequences=True, return_state=True)

    def single(make, prefix):
        def build():
            inp = keras.Input((L_, H_IN))
            layer = make()
            return keras.Model(inp, layer(inp)), [(prefix, layer)]
        return build

    def stacked():
        inp = keras.Input((L_, H_IN))
        a, b = K.LSTM(6, name="lstm_a", **rs), K.GRU(5, name="gru_b", **rs)
        ya = a(inp)
        encoder = keras.Model(inp, [*ya, *b(ya[0])], name="encoder")
        outer_in = keras.Input((L_, H_IN))
        return keras.Model(outer_in, encoder(outer_in)), [("encoder/lstm_a", a), ("encoder/gru_b", b)]

    def no_bias():
        inp = keras.Input((L_, H_IN))
        a, b = K.LSTM(8, use_bias=False, name="lstm_nb", **rs), K.GRU(6, use_bias=False, name="gru_nb", **rs)
        ya = a(inp)
        return keras.Model(inp, [*ya, *b(ya[0])]), [("lstm_nb", a), ("gru_nb", b)]

    def odd():
        inp = keras.Input((L_, H_IN))
        a = K.LSTM(4, activation="relu", name="lstm_relu", **rs)
        b = K.SimpleRNN(3, go_backwards=True, name="backwards", **rs)
        return keras.Model(inp, [*a(inp), *b(inp)]), [("lstm_relu", a), ("backwards", b)]

    return {
        "lstm": single(lambda: K.LSTM(8, name="lstm", **rs), "lstm"),
        "gru": single(lambda: K.GRU(6, name="gru", **rs), "gru"),
        "gru_before": single(lambda: K.GRU(6, reset_after=False, name="gru_before", **rs), "gru_before"),
        "rnn_tanh": single(lambda: K.SimpleRNN(4, name="rnn", **rs), "rnn"),
        "rnn_relu": single(lambda: K.SimpleRNN(4, activation="relu", name="rnn_relu", **rs), "rnn_relu"),
        "bi_concat": single(lambda: K.Bidirectional(K.LSTM(8, **rs), name="bidirectional"), "bidirectional"),
        "bi_sum": single(lambda: K.Bidirectional(K.LSTM(8, **rs), merge_mode="sum", name="bi_sum"), "bi_sum"),
        "stacked": stacked,
        "no_bias": no_bias,
        "odd": odd,
    }


EXPRESSIBLE = ["lstm", "gru", "rnn_tanh", "rnn_relu", "bi_concat", "stacked", "no_bias"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """case -> (model, [(prefix, layer)], {format: path}); every weight random, every file real Keras'."""
    import warnings

    root = tmp_path_factory.mktemp("keras")
    rng = np.random.default_rng(0)
    out = {}
    for case, build in _layers().items():
        keras.utils.set_random_seed(0)
        model, layers = build()
        for _, layer in layers:
            layer.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in layer.get_weights()])
        paths = {fmt: str(root / f"{case}.{fmt}") for fmt in FORMATS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras calls .h5 legacy
            model.save(paths["keras"])
            model.save(paths["h5"])
            model.save_weights(paths["weights.h5"])
        out[case] = (model, layers, paths)
    return out


def x_and_states(D: int, H: int, seed: int = 1, H_in: int = H_IN):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_, L_, H_in)).astype(np.float32)  # Keras: batch first
    h0 = (0.5 * rng.standard_normal((D, N_, H))).astype(np.float32)  # torch's (D*num_layers, N, H)
    c0 = (0.5 * rng.standard_normal((D, N_, H))).astype(np.float32)
    return x, h0, c0


def keras_run(layer, x, h0, c0, lstm: bool):
    """The saved Keras layer itself, with initial states: (output (N, L, F), h_n (D, N, H), c_n)."""
    D = h0.shape[0]
    states = [s[d] for d in range(D) for s in ((h0, c0) if lstm else (h0,))]
    outs = [keras.ops.convert_to_numpy(o) for o in layer(x, initial_state=states)]
    per = 2 if lstm else 1
    return outs[0], np.stack(outs[1::per]), (np.stack(outs[2::per]) if lstm else None)


def torch_module(m: ck.RecurrentModule):
    """An nn module built from inspect's constructor arguments, loaded with inspect's parameters
    (strict load_state_dict: the keys must be exactly the module's)."""
    net = getattr(torch.nn, m.kind)(**ck.constructor_args(m))
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in m.params.items()})
    return net


def modules(path) -> dict[str, ck.RecurrentModule]:
    return {r.module.prefix: r.module for r in ck.inspect_file(path).modules}


# ---- the numerical proof -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", EXPRESSIBLE)
def test_torch_module_built_from_inspect_computes_what_keras_computes(saved, case, fmt):
    """Bugs: a kernel not transposed, a gate block in Keras' order (GRU z, r swapped), LSTM's one
    bias split wrongly, GRU's (2, 3H) bias rows swapped, Bidirectional's directions swapped, a
    nested layer read from another layer's weights (the `layers/<snake_case>_k` counting), or a
    legacy .h5 weight matched to the wrong layer. The nn module must reproduce the saved Keras
    layer's output, h_n and c_n from random initial states."""
    model, layers, paths = saved[case]
    found = modules(paths[fmt])
    assert set(found) == {p for p, _ in layers}
    for prefix, layer in layers:
        m = found[prefix]
        assert m.expressible and not m.problems, (m.not_expressible, m.problems)
        if fmt == "weights.h5" and case == "rnn_relu":
            assert "nonlinearity" in m.unknowns  # a weights file cannot say relu: tanh assumed
            continue
        D = 2 if m.bidirectional else 1
        x, h0, c0 = x_and_states(D, m.hidden_size, H_in=m.input_size)
        lstm = m.kind == "LSTM"
        want_y, want_h, want_c = keras_run(layer, x, h0, c0, lstm)
        net = torch_module(m)
        with torch.no_grad():
            hx = (torch.from_numpy(h0), torch.from_numpy(c0)) if lstm else torch.from_numpy(h0)
            y, hn = net(torch.from_numpy(x), hx)
        h, c = hn if lstm else (hn, None)
        np.testing.assert_allclose(y.numpy(), want_y, atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(h.numpy(), want_h, atol=2e-5, rtol=1e-5)
        if lstm:
            np.testing.assert_allclose(c.numpy(), want_c, atol=2e-5, rtol=1e-5)


def test_the_whole_model_of_a_nested_file_agrees_with_the_torch_modules_chained(saved):
    """Bug: prefixes that name the wrong layers of a nested model. keras' own model(x) (loaded
    back from the .keras file by Keras) against the two torch modules run one after the other."""
    _, layers, paths = saved["stacked"]
    loaded = keras.saving.load_model(paths["keras"])
    x, _, _ = x_and_states(1, 6)
    want = [keras.ops.convert_to_numpy(o) for o in loaded(x)]  # [y_a, h_a, c_a, y_b, h_b]
    found = modules(paths["keras"])
    with torch.no_grad():
        y_a, (h_a, c_a) = torch_module(found["encoder/lstm_a"])(torch.from_numpy(x))
        y_b, h_b = torch_module(found["encoder/gru_b"])(y_a)
    for got, ref in zip((y_a, h_a[0], c_a[0], y_b, h_b[0]), want):
        np.testing.assert_allclose(got.numpy(), ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", ["lstm", "gru", "gru_before", "rnn_relu", "bi_concat", "bi_sum", "odd"])
def test_forward_is_keras_running_the_files_layer(saved, case, fmt):
    """Bugs in the proof runtime itself: output not put back time-major, h_0 / c_0 handed to the
    wrong direction or state slot, the backward layer built forwards, reset_after or the
    activation not carried over, the weights of another layer set. keras_read.forward (Keras
    rebuilding the layer from the file) must equal the saved layer object run on the same data."""
    _, layers, paths = saved[case]
    found = modules(paths[fmt])
    for prefix, layer in layers:
        m = found[prefix]
        if fmt == "weights.h5" and case in ("rnn_relu", "odd", "bi_sum"):
            assert m.unknowns.keys() & {"nonlinearity", "go_backwards", "merge_mode"}
            continue  # a weights file cannot say relu, go_backwards or merge_mode: Keras' defaults are assumed
        D = 2 if m.bidirectional else 1
        x, h0, c0 = x_and_states(D, m.hidden_size, seed=2, H_in=m.input_size)
        lstm = m.kind == "LSTM"
        got = keras_read.forward(paths[fmt], m, x.transpose(1, 0, 2), h0, c0 if lstm else None)
        want_y, want_h, want_c = keras_run(layer, x, h0, c0, lstm)
        np.testing.assert_allclose(got["output"], want_y.transpose(1, 0, 2), atol=1e-6)
        np.testing.assert_allclose(got["h_n"], want_h, atol=1e-6)
        assert ("c_n" in got) == lstm
        if lstm:
            np.testing.assert_allclose(got["c_n"], want_c, atol=1e-6)


# ---- what inspect says ---------------------------------------------------------------------------


def test_constructor_lines_and_sources(saved):
    """Bugs: a wrong constructor argument (hidden size from the kernel's G*H columns, bias=False
    lost, relu not carried to nonlinearity, batch_first missing for batch-first Keras), and a
    source name that points at the wrong gate columns."""
    want = {
        "lstm": {"lstm": "nn.LSTM(input_size=5, hidden_size=8, batch_first=True)"},
        "gru_before": {"gru_before": "nn.GRU(input_size=5, hidden_size=6, batch_first=True)"},
        "rnn_relu": {"rnn_relu": "nn.RNN(input_size=5, hidden_size=4, nonlinearity='relu', batch_first=True)"},
        "bi_concat": {"bidirectional": "nn.LSTM(input_size=5, hidden_size=8, batch_first=True, bidirectional=True)"},
        "stacked": {"encoder/lstm_a": "nn.LSTM(input_size=5, hidden_size=6, batch_first=True)",
                    "encoder/gru_b": "nn.GRU(input_size=6, hidden_size=5, batch_first=True)"},
        "no_bias": {"lstm_nb": "nn.LSTM(input_size=5, hidden_size=8, bias=False, batch_first=True)",
                    "gru_nb": "nn.GRU(input_size=8, hidden_size=6, bias=False, batch_first=True)"},
    }
    for case, lines in want.items():
        got = {r.module.prefix: r.constructor for r in ck.inspect_file(saved[case][2]["keras"]).modules}
        assert got == lines, case
    gru = modules(saved["gru"][2]["keras"])["gru"]
    # torch's r, z, n are Keras' blocks 1, 0, 2 (z, r, h); the second bias row is bias_hh
    assert gru.source_names["weight_ih_l0"] == "gru/kernel[:, 6:12].T (r), [:, 0:6].T (z), [:, 12:18].T (h)"
    assert gru.source_names["bias_hh_l0"] == "gru/bias[1, 6:12] (r), [1, 0:6] (z), [1, 12:18] (h)"
    assert gru.source == "keras" and gru.declared["reset_after"] is True and gru.declared["batch_first"] is True


def test_what_no_nn_module_computes_is_named_with_the_nearest_parameters_kept(saved):
    """Bugs: a GRU(reset_after=False), a relu LSTM, a sum-merged Bidirectional or a lone
    go_backwards layer reported as an nn module (then --params would run something else and
    call it the file's layer), or their parameters dropped (convert measures against them)."""
    codes = {}
    for case in ("gru_before", "bi_sum", "odd"):
        for prefix, m in modules(saved[case][2]["keras"]).items():
            codes[prefix] = [r["code"] for r in m.not_expressible]
            assert m.params and m.kind
    assert codes == {"gru_before": ["reset_after_false"], "bi_sum": ["merge_mode"],
                     "lstm_relu": ["activations"], "backwards": ["go_backwards"]}
    before = modules(saved["gru_before"][2]["weights.h5"])["gru_before"]  # a weights file: its (3H,) bias says so
    assert [r["code"] for r in before.not_expressible] == ["reset_after_false"]
    assert not before.params["bias_hh_l0"].any() and before.params["bias_ih_l0"].any()


def test_the_screen_says_which_keras_columns_make_each_torch_gate(saved):
    """Bug: the screen naming the gates in Keras' order where torch's is meant (a reader who
    permutes by it gets z and r swapped). GRU(6): torch's r, z, n are Keras' columns 6:12, 0:6, 12:18."""
    code, out, err = cli("inspect", saved["gru"][2]["keras"])
    assert code == 0, err
    assert "torch's r, z, n = Keras' r, z, h = columns 6:12, 0:6, 12:18" in out
    assert "bias_hh_l0 <- bias[1]" in out and "weight_ih_l0 <- kernel.T" in out


def test_json_carries_source_names_and_expressibility(saved):
    """Bug: the Keras facts lost on the way to inspect's JSON (another program reads them)."""
    code, out, err = cli("inspect", saved["gru_before"][2]["keras"], "--json")
    assert code == 0, err
    (m,) = json.loads(out)["modules"]
    assert m["source"] == "keras" and m["expressible"] is False
    assert m["not_expressible"][0]["code"] == "reset_after_false"
    assert m["source_names"]["bias_hh_l0"].startswith("zeros")


# ---- --params ------------------------------------------------------------------------------------


def test_params_runs_a_bidirectional_keras_layer_as_keras_does(saved, tmp_path):
    """Bug: --params m.keras:bidirectional reading the input time-major (Keras is batch-first) or
    running other weights. rnn-cli torch on the Keras model's own input reproduces its output."""
    model, layers, paths = saved["bi_concat"]
    x, _, _ = x_and_states(2, 8, seed=3)
    np.save(tmp_path / "x.npy", x)  # (N, L, H_in), as Keras takes it
    code, out, err = cli("torch", "--params", f"{paths['keras']}:bidirectional", "--input", str(tmp_path / "x.npy"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    want = [keras.ops.convert_to_numpy(o) for o in model(x)]  # [output, h_f, c_f, h_b, c_b]
    np.testing.assert_allclose(np.array(doc["tensors"]["output"]["values"]), want[0], atol=2e-5)
    np.testing.assert_allclose(np.array(doc["tensors"]["h_n"]["values"]), np.stack([want[1], want[3]]), atol=2e-5)


def test_params_refuses_a_gru_with_reset_after_false_in_one_line(saved):
    """Bug: running the nearest nn.GRU as if it were the file's layer."""
    code, out, err = cli("torch", "--params", f"{saved['gru_before'][2]['keras']}:gru_before")
    assert code == 2 and out == ""
    assert len(err) == 1 and "reset_after" in err[0] and "Traceback" not in err[0], err


# ---- hostile files -------------------------------------------------------------------------------


def _rezip(src: str, dst, edit) -> str:
    """A copy of a .keras zip with its members passed through edit(name, bytes) -> bytes or None."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for info in z.infolist():
            data = edit(info.filename, z.read(info))
            if data is not None:
                out.writestr(info.filename, data)
    return str(dst)


def test_a_cut_off_keras_zip_is_one_line(saved, tmp_path):
    """Bug: zipfile's or h5py's exception as a traceback on a download that stopped early."""
    data = open(saved["lstm"][2]["keras"], "rb").read()
    for cut in (len(data) // 2, len(data) - 30, 100):
        p = tmp_path / f"cut{cut}.keras"
        p.write_bytes(data[:cut])
        code, out, err = cli("inspect", str(p))
        assert code == 2 and len(err) == 1 and "Traceback" not in "".join(err), (cut, err)


def test_a_keras_zip_without_config_is_one_line(saved, tmp_path):
    """Bug: a KeyError on a zip that is not a Keras model."""
    p = _rezip(saved["lstm"][2]["keras"], tmp_path / "noconfig.keras", lambda n, b: None if n == "config.json" else b)
    code, _, err = cli("inspect", p)
    assert code == 2 and len(err) == 1 and "config.json" in err[0], err


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_a_huge_declared_dataset_in_a_small_file_is_refused_before_reading(tmp_path, compression):
    """Bug: h5py allocating a dataset's declared shape (80 MiB and 16 TiB, never written: chunked storage
    holds nothing) for a file of a few kilobytes; compressed, more than deflate can expand to.
    Refused from the declared size, in one line."""
    import h5py

    p = tmp_path / "huge.weights.h5"
    with h5py.File(p, "w") as f:
        v = f.create_group("layers/lstm/cell/vars")
        v.create_dataset("0", shape=(5, 4 * 2**20), dtype="f4", chunks=(1, 1024), compression=compression)
        v.create_dataset("1", shape=(2**20, 4 * 2**20), dtype="f4", chunks=(1, 1024))
    assert p.stat().st_size < 100_000
    code, _, err = cli("inspect", str(p))
    assert code == 2 and len(err) == 1 and "declares" in err[0], err
    assert ("stores 0 bytes" if compression is None else "from 0 compressed bytes") in err[0], err


def _crafted(path, kind: str) -> None:
    """A .weights.h5 whose LSTM kernel is something Keras never writes."""
    import h5py

    with h5py.File(path, "w") as f:
        v = f.create_group("layers/lstm/cell/vars")
        v.create_dataset("1", data=np.zeros((2, 8), "f4"))
        if kind == "external link":  # h5py would open another file to follow it
            v["0"] = h5py.ExternalLink(str(path) + ".other", "/x")
        elif kind == "external storage":  # the data bytes live in another file
            v.create_dataset("0", shape=(3, 8), dtype="f4", external=[(str(path) + ".raw", 0, 96)])
        elif kind == "strings":
            v.create_dataset("0", data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype())


@pytest.mark.parametrize("kind,words", [("external link", "link"), ("external storage", "other files"),
                                        ("strings", "holds object values")])
def test_weights_that_are_not_plain_floats_in_this_file_are_refused(tmp_path, kind, words):
    """Bugs: following a link or external storage out of the file (reading whatever path the file
    names), or reading an object dtype dataset as weights."""
    p = tmp_path / "crafted.weights.h5"
    _crafted(p, kind)
    code, _, err = cli("inspect", str(p))
    assert code == 2 and len(err) == 1 and words in err[0], err


def test_a_config_nested_beyond_any_model_is_one_line(tmp_path):
    """Bug: a RecursionError traceback from json on a config.json of 100,000 nested lists."""
    p = tmp_path / "deep.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", "[" * 100_000 + "]" * 100_000)
        z.writestr("model.weights.h5", b"")
    code, _, err = cli("inspect", str(p))
    assert code == 2 and len(err) == 1 and "too deeply" in err[0], err


def test_an_escape_in_a_layer_name_is_shown_escaped(saved, tmp_path):
    """Bug: a layer name from the file printed raw: it could retitle or clear the terminal."""
    evil = "\x1b]0;pwned\x07\x1b[2Jlstm"

    def rename(name, data):
        if name != "config.json":
            return data
        return json.dumps(json.loads(data), ensure_ascii=False).replace('"name": "lstm"', json.dumps({"name": evil})[1:-1]).encode()

    p = _rezip(saved["lstm"][2]["keras"], tmp_path / "evil.keras", rename)
    code, out, err = cli("inspect", p)
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b]0;pwned" in out
    code, out, _ = cli("inspect", p, "--json")
    assert json.loads(out)["modules"][0]["prefix"] == evil  # JSON keeps the exact string


def test_reading_never_imports_keras(saved):
    """Bug: the reader importing Keras (seconds of start-up, and TensorFlow where that is Keras'
    backend) to read what h5py and json read. Keras is the proof runtime only."""
    code = ("import sys; from rnn_cli.formats import checkpoint as ck; "
            f"[ck.inspect_file(p) for p in {list(saved['bi_concat'][2].values())!r}]; "
            "assert not {'keras', 'tensorflow'} & set(sys.modules), 'keras imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_without_h5py_inspect_names_the_keras_extra(saved):
    """Bug: an ImportError traceback where the user needs `pip install 'rnn-cli[keras]'`."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'h5py' or name.startswith('h5py.'): raise ImportError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rnn_cli.cli.entry import main\n"
        f"sys.argv = ['rnn-cli', 'inspect', {saved['lstm'][2]['keras']!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "keras extra" in lines[0] and "rnn-cli[keras]" in lines[0] and "h5py" in lines[0]


def test_forward_without_keras_names_the_keras_extra(monkeypatch, saved):
    """Bug: convert's proof dying with an ImportError where one line should say what to install."""
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` raises ImportError
    m = modules(saved["lstm"][2]["keras"])["lstm"]
    with pytest.raises(RnnCliError, match=r"keras extra .*rnn-cli\[keras\]"):
        keras_read.forward(saved["lstm"][2]["keras"], m, np.zeros((L_, 1, H_IN), np.float32), None, None)
