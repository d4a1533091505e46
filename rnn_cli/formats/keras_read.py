"""Keras' recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional) as torch modules: inspect and
--params read .keras, legacy .h5 and .weights.h5 files (keras_files.py reads them as data), and
`forward` runs a layer in Keras itself, the source's own runtime for `convert`'s proof.

Keras -> torch, per direction (gate orders and permutations: rnn_cli.core.layout):
    kernel (H_in, G*H)          -> weight_ih_l0 = kernel.T, gate blocks permuted to torch's order
    recurrent_kernel (H, G*H)   -> weight_hh_l0 likewise
    LSTM / SimpleRNN bias (G*H) -> bias_ih_l0 (permuted), bias_hh_l0 = 0 (Keras has one bias)
    GRU bias (2, 3H)            -> bias_ih_l0 = bias[0], bias_hh_l0 = bias[1] (reset_after=True)
    Bidirectional               -> *_l0 from the forward layer, *_l0_reverse from the backward one
Keras layers are batch-first: each module states batch_first=True. Stacked Keras layers are
separate modules, each named by its layer path (`encoder/lstm`).

What no nn module computes (not_expressible, with the nearest torch parameters kept so that
`convert` can measure the difference): GRU(reset_after=False), activations other than tanh and
sigmoid (SimpleRNN relu is nonlinearity="relu"), Bidirectional merge modes other than concat,
and a lone go_backwards layer. numpy, h5py and json only; Keras is imported inside `forward`.
"""

from __future__ import annotations

import os

import numpy as np

from rnn_cli.core import layout
from rnn_cli.errors import RnnCliError
from rnn_cli.formats import keras_files, safe_read
from rnn_cli.formats.checkpoint import Loaded, Problem, RecurrentModule
from rnn_cli.formats.recurrent import nonfinite_problems
from rnn_cli.formats.keras_files import Direction, Layer
from rnn_cli.printable import printable

CELL_OF = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}  # Keras class -> rnn-cli's cell
CLASS_OF = {v: k for k, v in CELL_OF.items()}
GATED = {"lstm", "gru"}
# The config keys shown as `declared`: how the layer runs (dropout is training-only, left out)
SHOWN = ("units", "activation", "recurrent_activation", "use_bias", "reset_after", "return_sequences",
         "return_state", "go_backwards", "stateful", "unroll")


def read_modules(src: safe_read.Source) -> tuple[Loaded, list[RecurrentModule]]:
    """Every recurrent layer of the file as a RecurrentModule in torch's layout."""
    kf = keras_files.read(src)
    with np.errstate(all="ignore"):
        modules = [_module(layer) for layer in kf.layers]
    if not modules:
        seen = ", ".join(kf.others[:8]) + (" ..." if len(kf.others) > 8 else "") or "none"
        raise src.error(f"no recurrent layer (LSTM, GRU, SimpleRNN, Bidirectional) found in this {kf.kind} file; "
                        f"layers: {seen}")
    return Loaded(src.path, "keras", {}, None, kf.notes), modules


# ---- one layer -> one module ----------------------------------------------------------------


def _cell_by_shapes(arrays: dict[str, np.ndarray]) -> str | None:
    R = arrays.get("recurrent_kernel")
    if R is None or R.ndim != 2 or R.shape[0] == 0 or R.shape[1] % R.shape[0]:
        return None
    return {1: "rnn", 3: "gru", 4: "lstm"}.get(R.shape[1] // R.shape[0])


def _setting(cfg: dict | None, key: str, default):
    return default if cfg is None else cfg.get(key, default)


def _module(layer: Layer) -> RecurrentModule:
    name = layer.prefix
    cell = CELL_OF.get(layer.cls or "") or _cell_by_shapes(layer.directions[0].arrays)
    params: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    sizes = set()
    for d, direction in enumerate(layer.directions):
        got = _direction(cell, d, direction, params, sources, problems)
        if got is not None:
            sizes.add(got)
    if cell is None and not problems:
        problems.append(f"{name}: recurrent_kernel's columns are not 1, 3 or 4 times its rows: no LSTM, GRU or SimpleRNN")
    if len(sizes) > 1:
        problems.append(f"{name}: the forward and backward layers differ in (input, units, bias) {sorted(sizes)}: "
                        "one nn module has one size for both directions")
    H_in, H, bias = next(iter(sizes)) if len(sizes) == 1 else (0, 0, False)
    keys = tuple(sources.get(n, n) for n in params) or (name,)
    found = [Problem(keys, p) for p in problems]
    if params and not problems:
        found += nonfinite_problems(name, lambda n: sources.get(n, n), params)
    declared, unknowns = _declared(layer, cell, bias)
    dtype = next((str(a.dtype) for a in params.values()), "float32")
    return RecurrentModule(
        prefix=name, kind=layout.TORCH_CLASS[cell] if cell and not problems else None, input_size=H_in, hidden_size=H,
        num_layers=1, bidirectional=layer.bidirectional, bias=bias, proj_size=0, dtype=dtype, params=params,
        unknowns=unknowns, problems=found, source="keras", source_names=sources, declared=declared,
        not_expressible=_not_expressible(layer, cell, params) if cell and not problems else [],
    )


def _direction(cell: str | None, d: int, direction: Direction, params: dict, sources: dict,
               problems: list[str]) -> tuple[int, int, bool] | None:
    """One direction's arrays mapped to torch's names into `params`/`sources`; (H_in, H, bias),
    or None with the reason in `problems`."""
    a, cfg = direction.arrays, direction.config
    where = "/".join(direction.names)
    if "kernel" not in a or "recurrent_kernel" not in a:
        problems.append(f"{where}: no kernel and recurrent_kernel in the file: the weights are missing")
        return None
    if cell is None:
        return None
    K, R, b = a["kernel"], a["recurrent_kernel"], a.get("bias")
    G = layout.num_gates(cell)
    H = R.shape[0] if R.ndim == 2 else 0
    if K.ndim != 2 or R.ndim != 2 or R.shape != (H, G * H) or K.shape[1] != G * H or H == 0:
        problems.append(f"{where}: kernel {layout.shape_str(K.shape)} and recurrent_kernel {layout.shape_str(R.shape)} "
                        f"are not (H_in, {G}*H) and (H, {G}*H) as a Keras {CLASS_OF[cell]} stores them")
        return None
    units = _setting(cfg, "units", H)
    if units != H:
        problems.append(f"{where}: the config says units={printable(str(units))} but recurrent_kernel is {layout.shape_str(R.shape)}")
        return None
    two = cell == "gru" and b is not None and b.ndim == 2
    if b is not None and b.shape not in ((G * H,), (2, G * H) if cell == "gru" else (G * H,)):
        problems.append(f"{where}: bias has shape {layout.shape_str(b.shape)}; a Keras {CLASS_OF[cell]} with {H} units has "
                        + ("(3*H,) or (2, 3*H)" if cell == "gru" else f"({G}*H,)"))
        return None
    gates = lambda x, axis=0: layout.to_torch(x, cell, "keras", axis)  # noqa: E731
    n = lambda kind: layout.param_name(kind, 0, d)  # noqa: E731
    params[n("weight_ih")] = np.ascontiguousarray(gates(K.T))
    sources[n("weight_ih")] = _blocks(f"{where}/kernel", cell, H, "[:, {a}:{b}].T")
    params[n("weight_hh")] = np.ascontiguousarray(gates(R.T))
    sources[n("weight_hh")] = _blocks(f"{where}/recurrent_kernel", cell, H, "[:, {a}:{b}].T")
    if b is not None:
        params[n("bias_ih")] = np.ascontiguousarray(gates(b[0] if two else b))
        sources[n("bias_ih")] = _blocks(f"{where}/bias", cell, H, "[0, {a}:{b}]" if two else "[{a}:{b}]")
        params[n("bias_hh")] = np.ascontiguousarray(gates(b[1])) if two else np.zeros(G * H, dtype=b.dtype)
        sources[n("bias_hh")] = (_blocks(f"{where}/bias", cell, H, "[1, {a}:{b}]") if two
                                 else f"zeros (a Keras {CLASS_OF[cell]}{'(reset_after=False)' if cell == 'gru' else ''} has one bias)")
    return int(K.shape[0]), H, b is not None


def _blocks(src: str, cell: str, H: int, form: str) -> str:
    """`lstm/kernel[:, 0:8].T (i), [:, 8:16].T (f), ...`: where each torch gate block comes from,
    in torch's order, with Keras' letter for the gate."""
    if cell == "rnn":
        return src + (".T" if form.endswith(".T") else "")
    order = layout.order_from_torch(cell, "keras")  # keras slot -> torch gate index
    letters = layout.gate_names(cell, "keras")
    parts = []
    for t in range(len(order)):
        k = order.index(t)
        parts.append(("" if t else src) + form.format(a=k * H, b=(k + 1) * H) + f" ({letters[k]})")
    return ", ".join(parts)


def _plain(value):
    """A config value as declared shows it: JSON scalars as they are, anything else as short text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else printable(str(value))[:80]


def _declared(layer: Layer, cell: str | None, bias: bool) -> tuple[dict, dict[str, str]]:
    """What the file says about how the layer runs, and what a weights-only file cannot tell."""
    cfg = layer.directions[0].config
    cls = layer.cls or CLASS_OF.get(cell or "", "?")
    declared: dict = {"batch_first": True, "layer": f"Bidirectional({cls})" if layer.bidirectional else cls}
    unknowns: dict[str, str] = {}
    if cfg is None:
        why = "a .weights.h5 holds weights only (the model's code has the config)"
        if cell in GATED:
            unknowns["activation"] = f"{why}: tanh and sigmoid gates assumed"
        if cell == "rnn":
            unknowns["nonlinearity"] = f"{why}: tanh assumed (--nonlinearity relu for activation='relu')"
        if cell == "gru" and not bias:
            unknowns["reset_after"] = f"{why}, and without a bias its shape cannot tell: True (nn.GRU's) assumed"
        if layer.bidirectional:
            unknowns["merge_mode"] = f"{why}: concat assumed (nn's bidirectional output)"
        else:
            unknowns["go_backwards"] = f"{why}: False assumed"
        return declared, unknowns
    declared.update({k: _plain(cfg[k]) for k in SHOWN if k in cfg})
    if layer.bidirectional:
        declared["merge_mode"] = _plain(_setting(layer.config, "merge_mode", "concat"))
    if cell == "rnn" and cfg.get("activation", "tanh") in ("tanh", "relu"):
        declared["nonlinearity"] = cfg.get("activation", "tanh")
    return declared, unknowns


def _not_expressible(layer: Layer, cell: str, params: dict) -> list[dict]:
    out = []
    configs = [d.config for d in layer.directions]
    if cell == "gru" and any(_reset_after(d) is False for d in layer.directions):
        out.append({"code": "reset_after_false", "detail": (
            "Keras GRU(reset_after=False) applies the reset gate before the recurrent kernel, (r * h) @ U_h; "
            "nn.GRU applies it after, r * (W_hn h + b_hn): no nn.GRU computes it")})
    acts = []
    for cfg in configs:
        act, rec = _setting(cfg, "activation", "tanh"), _setting(cfg, "recurrent_activation", "sigmoid")
        if act != "tanh" and not (cell == "rnn" and act == "relu"):
            acts.append(f"activation={_plain(act)!r}")
        if cell in GATED and rec != "sigmoid":
            acts.append(f"recurrent_activation={_plain(rec)!r}")
    if acts:
        allowed = "tanh or relu" if cell == "rnn" else "tanh with sigmoid gates"
        out.append({"code": "activations", "detail": f"{', '.join(dict.fromkeys(acts))}: nn.{layout.TORCH_CLASS[cell]} "
                    f"computes {allowed} only"})
    if layer.bidirectional and _setting(layer.config, "merge_mode", "concat") != "concat":
        mode = _plain(_setting(layer.config, "merge_mode", "concat"))
        out.append({"code": "merge_mode", "detail": f"Bidirectional merge_mode={mode!r}: a bidirectional nn module "
                    "concatenates the two directions (merge_mode='concat')"})
    backwards = [bool(_setting(c, "go_backwards", d == 1)) for d, c in enumerate(configs)]  # weights only: as Keras builds it
    if backwards != ([False, True] if layer.bidirectional else [False]):
        out.append({"code": "go_backwards", "detail": "go_backwards=True on its own: the layer reads the sequence "
                    "from its end and returns its outputs in that order; no nn module does (flip the input instead)"})
    return out


def _reset_after(direction: Direction) -> bool | None:
    """GRU's reset_after: the config's, else what the bias' shape says ((2, 3H): True), else None."""
    if direction.config is not None:
        return bool(direction.config.get("reset_after", True))
    b = direction.arrays.get("bias")
    return None if b is None else b.ndim == 2


# ---- running the layer in Keras -------------------------------------------------------------


def forward(path, module: RecurrentModule, x: np.ndarray, h_0: np.ndarray | None = None,
            c_0: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The file's layer run by Keras itself (the torch backend), with the file's own arrays:
    x (L, N, H_in) time-major, h_0 / c_0 in torch's layout (D, N, H) or None for zeros ->
    {"output": (L, N, D*H) ("output" as Keras returns it for merge modes other than concat, and in
    reverse time order for a lone go_backwards layer), "h_n": (D, N, H), "c_n" for an LSTM}.
    The layer is built from the config's settings (never from the file's config objects as such)
    with return_sequences and return_state on, and its weights set from the file's arrays."""
    keras = _import_keras()
    src = safe_read.source(path)
    layer = next((la for la in keras_files.read(src).layers if la.prefix == module.prefix), None)
    if layer is None:
        raise src.error(f"has no Keras recurrent layer '{printable(module.prefix)}'")
    cell = CELL_OF.get(layer.cls or "") or module.kind and layout.CELL_OF[module.kind]
    built = _build(keras, layer, cell, module)
    L, N, _ = x.shape
    built.build((N, L, x.shape[2]))
    weights = [d.arrays[k] for d in layer.directions for k in keras_files.VARS if k in d.arrays]
    have = [tuple(w.shape) for w in built.get_weights()]
    if have != [w.shape for w in weights]:
        raise src.error(f"{printable(module.prefix)}: Keras builds weights {have} for this layer but the file holds "
                        f"{[w.shape for w in weights]}")
    built.set_weights(weights)
    states = None
    if h_0 is not None or c_0 is not None:
        D, H = len(layer.directions), module.hidden_size
        h = np.zeros((D, N, H), np.float32) if h_0 is None else h_0
        c = np.zeros((D, N, H), np.float32) if c_0 is None else c_0
        states = [keras.ops.convert_to_tensor(s[d]) for d in range(D) for s in ((h, c) if cell == "lstm" else (h,))]
    outs = built(keras.ops.convert_to_tensor(np.ascontiguousarray(x.transpose(1, 0, 2))), initial_state=states)
    outs = [np.asarray(keras.ops.convert_to_numpy(o)) for o in outs]
    if layer.bidirectional and _setting(layer.config, "merge_mode", "concat") is None:
        outs = [np.concatenate(outs[:2], axis=-1), *outs[2:]]  # merge_mode=None: the two outputs, listed
    y, finals = outs[0], outs[1:]
    per = 2 if cell == "lstm" else 1
    out = {"output": np.ascontiguousarray(y.transpose(1, 0, 2)), "h_n": np.stack(finals[0::per])}
    if cell == "lstm":
        out["c_n"] = np.stack(finals[1::per])
    return out


def _import_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # the proof runs on the torch backend
    try:
        import keras
    except ImportError as e:
        raise RnnCliError("running a Keras layer needs the keras extra (pip install 'rnn-cli[keras]'; "
                          f"missing: {printable(getattr(e, 'name', None) or str(e))})") from None
    return keras


def _activation(value, default: str) -> str:
    """A config's activation, by name only (a serialized object is never handed to Keras)."""
    value = default if value is None else value
    if not isinstance(value, str) or not value.replace("_", "").isalnum():
        raise RnnCliError(f"the layer's activation {printable(str(value))[:60]} is not a Keras activation name; "
                          "rnn-cli runs named activations only")
    return value


def _build(keras, layer: Layer, cell: str, module: RecurrentModule):
    """A fresh Keras layer with the file's settings; cfg None (weights only): what was assumed."""
    def one(direction: Direction, backwards: bool):
        cfg = direction.config or {}
        kwargs = dict(units=module.hidden_size, activation=_activation(cfg.get("activation"), "tanh"),
                      use_bias=module.bias, return_sequences=True, return_state=True, go_backwards=backwards)
        if cell in GATED:
            kwargs["recurrent_activation"] = _activation(cfg.get("recurrent_activation"), "sigmoid")
        if cell == "gru":
            kwargs["reset_after"] = _reset_after(direction) is not False
        return getattr(keras.layers, CLASS_OF[cell])(**kwargs)

    if not layer.bidirectional:
        return one(layer.directions[0], bool(_setting(layer.directions[0].config, "go_backwards", False)))
    mode = _setting(layer.config, "merge_mode", "concat")
    if mode not in ("concat", "sum", "mul", "ave", None):
        raise RnnCliError(f"Bidirectional merge_mode {printable(str(mode))[:40]} is not one Keras knows")
    fwd = one(layer.directions[0], bool(_setting(layer.directions[0].config, "go_backwards", False)))
    back = one(layer.directions[1], bool(_setting(layer.directions[1].config, "go_backwards", True)))
    return keras.layers.Bidirectional(fwd, merge_mode=mode, backward_layer=back)
