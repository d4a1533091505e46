"""Your own model: read a checkpoint's recurrent modules, explain them, run them.

Reading never runs code from the file:
- .pt / .pth / .bin / .ckpt: torch.load(map_location="cpu", weights_only=True), torch
  imported inside the one function that needs it;
- .safetensors: read by hand in rnn_cli.formats.safe_read, the header checked against the file first (no torch);
- .npz: each member's .npy header checked, then read (rnn_cli.formats.safe_read; never pickle).
Every file is judged by rnn_cli.formats.safe_read before it is read (what the path is, FIFOs as
streams, sizes against the file and the memory limit), and layer indices are bounded by the
number of tensors the file holds before any per-layer bookkeeping.

Recognised modules, by their parameter names (torch/nn/modules/rnn.py):
    nn.RNN / nn.LSTM / nn.GRU   weight_ih_l{k}[_reverse], weight_hh_l{k}[_reverse],
                                bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse], weight_hr_l{k}[_reverse]
    nn.RNNCell / LSTMCell / GRUCell   weight_ih, weight_hh, bias_ih, bias_hh

This module imports numpy only (torch lazily, for torch files).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_cli.formats import diagnose
from rnn_cli.core import layout
from rnn_cli.core.config import TORCH_CLASS, RunConfig, shape_str
from rnn_cli.formats import safe_read
from rnn_cli.errors import RnnCliError
from rnn_cli.printable import printable
from rnn_cli.formats.torch_read import read_torch as _read_torch
from rnn_cli.core.sample import Sample, draw

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
FORMATS = {**{s: "torch" for s in TORCH_SUFFIXES}, ".safetensors": "safetensors", ".npz": "npz", ".jit": "torchscript",
           ".onnx": "onnx", ".keras": "keras", ".h5": "keras"}
# Formats whose reader finds the recurrent modules itself (graph nodes, Keras layers) and hands
# them over in torch's layout: format -> (module, the extra it needs). Each module has
# `read_modules(src: safe_read.Source) -> tuple[Loaded, list[RecurrentModule]]`.
MODULE_READERS = {"onnx": ("rnn_cli.formats.onnx_read", "onnx"), "keras": ("rnn_cli.formats.keras_read", "keras")}
# Keys a training script nests its weights under, tried in this order.
NESTING_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights")
GATES = diagnose.GATES  # G -> kind
CELL_OF = layout.CELL_OF  # class name -> cell
FLAG_OF = {  # RunConfig field -> the CLI flag that sets it
    "cell": "--cell",
    "input_size": "--input-size",
    "hidden_size": "--hidden-size",
    "num_layers": "--layers",
    "bidirectional": "--bidirectional",
    "bias": "--no-bias",
    "proj_size": "--proj-size",
}

_LAYERED = layout.LAYERED_KEY
_CELL = layout.CELL_KEY


# ---- reading ------------------------------------------------------------------------------


@dataclass
class Loaded:
    path: str
    format: str  # torch, safetensors, npz
    tensors: dict[str, np.ndarray]  # full dotted keys (nesting removed) -> arrays
    nesting: str | None  # e.g. "state_dict", "model/module." ; None: a plain state_dict
    notes: list[str] = field(default_factory=list)  # conversions made while reading
    declared: dict = field(default_factory=dict)  # TorchScript: module prefix -> torchscript.Declared


def load_tensors(path: str | os.PathLike) -> Loaded:
    """Every numeric tensor of the file, by full key, without running code from the file and
    without allocating more than the file justifies (rnn_cli.formats.safe_read judges it first)."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise RnnCliError(f"{printable(str(p))}: unknown checkpoint format {printable(p.suffix)!r}; "
                          f"rnn-cli reads {', '.join(FORMATS)}")
    src = safe_read.source(p)
    notes: list[str] = []
    with safe_read.quiet_libraries():
        try:
            if fmt in ("torch", "torchscript"):
                from rnn_cli.formats import torchscript  # numpy only: the archive is read, never run

                if torchscript.is_archive(src):
                    archive = torchscript.read(src)
                    tensors = {k: _to_float32_if_half(k, v, notes) for k, v in archive.tensors.items()}
                    return Loaded(str(p), "torchscript", tensors, None, notes, archive.declared)
            if fmt == "torchscript":
                raise src.error("is not a TorchScript archive (a zip with data.pkl and code/, as torch.jit.save writes)")
            if fmt == "torch":
                obj = _read_torch(src, notes)
            elif fmt == "safetensors":
                obj = safe_read.read_safetensors(src, notes)
            else:
                obj = safe_read.read_npz(src)
            tensors, nesting = _unnest(obj)
        except MemoryError as e:
            raise safe_read.reading_out_of_memory(src.label, e) from None
        except RecursionError:  # a crafted pickle: dicts nested thousands deep
            raise src.error("nests its contents too deeply to be a checkpoint") from None
    safe_read.check_layer_indices(src.label, list(tensors), _layer_of)
    tensors = {k: _to_float32_if_half(k, v, notes) for k, v in tensors.items()}
    return Loaded(path=str(p), format=fmt, tensors=tensors, nesting=nesting, notes=notes)


def _layer_of(key: str) -> int | None:
    """weight_ih_l3_reverse -> 3; None for keys that name no layer (digits beyond any file: huge)."""
    m = _LAYERED.match(key)
    if m is None:
        return None
    digits = m.group("layer")
    return int(digits) if len(digits) <= 18 else 10**18


def _flatten(obj, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fiub":  # rnn-cli's --save also stores `config` as text: skipped
            out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def _unnest(obj) -> tuple[dict[str, np.ndarray], str | None]:
    """Descend through state_dict / model / ... keys to the weights, then strip a common
    `module.` (DataParallel) prefix. Returns (tensors, nesting path or None)."""
    path: list[str] = []
    while isinstance(obj, dict):
        inner = next((k for k in NESTING_KEYS if isinstance(obj.get(k), dict) and _has_tensors(obj[k])), None)
        if inner is None:
            break
        path.append(inner)
        obj = obj[inner]
    tensors: dict[str, np.ndarray] = {}
    _flatten(obj, "", tensors)
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
        path.append("module.")
    return tensors, ("/".join(path) or None)


def _has_tensors(obj) -> bool:
    if isinstance(obj, np.ndarray):
        return True
    if isinstance(obj, dict):
        return any(_has_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_tensors(v) for v in obj)
    return False


def _to_float32_if_half(key: str, a: np.ndarray, notes: list[str]) -> np.ndarray:
    # bfloat16 arrives as numpy's dtype only where ml_dtypes (an onnx dependency) is loaded
    half = "float16" if a.dtype == np.float16 else "bfloat16" if a.dtype.name == "bfloat16" else None
    if half is None:
        return a
    note = f"{half} tensors converted to float32"
    if note not in notes:
        notes.append(note)
    return a.astype(np.float32)


# ---- recognising modules ----------------------------------------------------------------


Problem = diagnose.Problem  # defined beside the problem codes: diagnose.py builds problems too (no import circle)


@dataclass
class RecurrentModule:
    prefix: str  # "" for a module saved on its own
    kind: str | None  # RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell; None: gate count matches no cell
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    proj_size: int
    dtype: str
    params: dict[str, np.ndarray]  # names without the prefix, in the file's order
    unknowns: dict[str, str]  # what a state_dict cannot tell -> why it matters
    problems: list[Problem]
    source: str = "torch"  # the file's format: torch, safetensors, npz, torchscript
    source_names: dict[str, str] = field(default_factory=dict)  # torch name -> the file's own key
    declared: dict = field(default_factory=dict)  # arguments the file states beyond shapes (TorchScript)
    candidate: bool = False  # renamed weights, read by their shapes alone (renamed.py)
    # False when no nn module computes exactly this layer (ONNX GRU linear_before_reset=0, Keras
    # GRU reset_after=False, peepholes, clip, other activations...): each reason {code, detail}.
    not_expressible: list[dict] = field(default_factory=list)
    node: str | None = None  # ONNX: the node's name
    path: str | None = None  # ONNX: the graph path to the node (subgraphs of If/Loop/Scan included)
    states: list[dict] = field(default_factory=list)  # ONNX: [{"role": "initial_h", "from": "state[0]" or None}, ...]

    @property
    def expressible(self) -> bool:
        return not self.not_expressible

    @property
    def num_parameters(self) -> int:
        return sum(int(a.size) for a in self.params.values())

    @property
    def is_cell(self) -> bool:
        return bool(self.kind) and self.kind.endswith("Cell")

    @property
    def name(self) -> str:
        return self.prefix or "(top level)"

    def key(self, name: str) -> str:
        if name in self.source_names:
            return self.source_names[name]
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass(frozen=True)
class OtherTensors:
    count: int
    elements: int
    largest: list[tuple[str, int]]  # (prefix, elements), largest first


def find_modules(tensors: dict[str, np.ndarray]) -> list[RecurrentModule]:
    """Every recurrent module among the tensors, grouped by prefix, in the file's order."""
    groups: dict[tuple[str, bool], dict[str, np.ndarray]] = {}
    for key, a in tensors.items():
        m = _LAYERED.match(key) or _CELL.match(key)
        if m is None:
            continue
        layered = m.re is _LAYERED
        groups.setdefault((m.group("prefix") or "", layered), {})[m.group("name")] = a
    modules = []
    for (prefix, layered), params in groups.items():
        if not layered and (prefix, True) in groups:
            continue  # cell-style names beside layer names: the layered module reports them
        modules.append(_layered(prefix, params) if layered else _cell(prefix, params))
    return modules


def other_tensors(tensors: dict[str, np.ndarray], modules: list[RecurrentModule], top: int = 5) -> OtherTensors:
    taken = {m.key(n) for m in modules for n in m.params}
    by_prefix: Counter[str] = Counter()
    count = elements = 0
    for key, a in tensors.items():
        if key in taken:
            continue
        count += 1
        elements += int(a.size)
        by_prefix[key.rpartition(".")[0] or key] += int(a.size)
    return OtherTensors(count, elements, by_prefix.most_common(top))


_infer_gates = diagnose.infer_gates


def _layered(prefix: str, params: dict[str, np.ndarray]) -> RecurrentModule:
    key = (lambda n: f"{prefix}.{n}" if prefix else n)
    name = prefix or "(top level)"
    problems: list[Problem] = []
    slots = {_slot(n) for n in params}
    layers = sorted({k for k, _ in slots})
    num_layers = layers[-1] + 1
    bidirectional = any(rev for _, rev in slots)
    D = 2 if bidirectional else 1
    # sizes: what most layer-directions agree on (rnn_cli/formats/diagnose.py), not the first key read
    candidates, own = diagnose.readings(params)
    for n in params:
        if n.startswith(("weight_hh_", "weight_hr_")) and params[n].ndim != 2:  # no size to read off a 0-d or 3-d one
            problems.append(Problem((key(n),), f"{name}: {n} has shape {shape_str(params[n].shape)}: "
                                    "a weight must have 2 dimensions"))
    hh_name = next((n for n in params if n.startswith("weight_hh_") and params[n].ndim == 2), None)
    if not any(n.startswith("weight_hh_") for n in params):
        problems.append(Problem(tuple(key(n) for n in params), f"{name}: no weight_hh_l* at all: the hidden size cannot be inferred"))
    elif hh_name is not None and not candidates:
        problems.append(Problem((key(hh_name),), (
            f"{name}: {hh_name} has shape {shape_str(params[hh_name].shape)}: its rows are not 1, 3 or 4 "
            "times its columns, so it matches no cell (RNN, GRU, LSTM)")))
    best = candidates[0] if candidates else None
    G, H, proj, input_size = (best.G, best.H, best.proj, best.input_size) if best else (None, 0, 0, 0)
    if best is None:  # no cell: input_size as layer 0 gives it, for the report
        ih0 = params.get("weight_ih_l0", params.get("weight_ih_l0_reverse"))
        input_size = int(ih0.shape[1]) if ih0 is not None and ih0.ndim == 2 else 0
    bias = any(n.startswith("bias_") for n in params)
    kind = GATES.get(G) if G else None
    missing_layers = [k for k in range(num_layers) if k not in layers]
    if missing_layers:
        neighbours = {k - 1 for k in missing_layers} | {k + 1 for k in missing_layers}
        keys = tuple(key(n) for n in params if _slot(n)[0] in neighbours)
        have = ", ".join(f"l{k}" for k in layers)
        problems.append(Problem(keys, (
            f"{name}: has layers {have} but no {', '.join(f'l{k}' for k in missing_layers)}: "
            "a layer's weights were removed or renamed; the file is damaged or was edited")))
    for k in layers:
        for d in range(D):
            if (k, bool(d)) not in slots:
                twin = "forward" if d else "backward (_reverse)"
                has = [key(n) for n in params if _slot(n)[0] == k]
                problems.append(Problem(tuple(has), (
                    f"{name}: layer {k} has {twin} weights but no {'backward (_reverse)' if d else 'forward'} twin "
                    f"while other layers are bidirectional: the file is damaged or was edited")))
    if kind is not None and H > 0:
        def check(r: diagnose.Reading) -> list[Problem]:
            return _check_shapes(name, key, params, GATES[r.G], r.input_size, r.H, r.proj, num_layers, D, bias, slots)

        flat = {p.keys for p in problems if p.message.endswith("a weight must have 2 dimensions")}
        problems += [p for p in diagnose.diagnose(name, candidates, own, check) if p.keys not in flat]
    problems += _dtype_problems(name, key, params) + _nonfinite_problems(name, key, params)
    return RecurrentModule(
        prefix=prefix, kind=kind, input_size=input_size, hidden_size=H, num_layers=num_layers,
        bidirectional=bidirectional, bias=bias, proj_size=proj, dtype=_main_dtype(params),
        params=params, unknowns=_unknowns(kind), problems=problems,
    )


def _slot(name: str) -> tuple[int, bool]:
    """weight_ih_l1_reverse -> (1, True): the layer and whether it is the backward direction."""
    m = _LAYERED.match(name)
    return int(m.group("layer")), bool(m.group("rev"))


def _check_shapes(name, key, params, kind, input_size, H, proj, num_layers, D, bias, slots) -> list[Problem]:
    """Every parameter against what torch would build with the inferred arguments."""
    problems = []
    cell = CELL_OF[kind]
    try:
        cfg = RunConfig(cell=cell, input_size=max(input_size, 1), hidden_size=H, num_layers=num_layers,
                        bidirectional=D == 2, bias=bias, proj_size=proj)
    except RnnCliError as e:
        return [Problem(tuple(key(n) for n in params), f"{name}: inferred arguments are impossible: {e}")]
    expected = cfg.parameter_shapes()
    H_out = cfg.H_out
    partial_bias = []
    for n, shape in expected.items():
        k, rev = _slot(n)
        if (k, rev) not in slots:
            continue  # whole layer or direction missing: reported above
        direction = "backward direction" if rev else "forward direction"
        if n not in params:
            if n.startswith("bias_"):
                partial_bias.append(key(n))
                continue
            there = [o for o in params if _slot(o) == (k, rev)]
            what = {"weight_ih": "input weights", "weight_hh": "recurrent weights", "weight_hr": "projection weights"}[n[:9]]
            problems.append(Problem((key(n),), (
                f"{name}: {n} is missing but {there[0]} is there: layer {k}'s {direction} has no {what}; "
                "the file is damaged or was edited")))
            continue
        got = params[n].shape
        if got == shape:
            continue
        if flipped := diagnose.transposed(n, name, got, shape):
            problems.append(Problem((key(n),), flipped, code="transposed"))
        elif n.startswith("weight_ih_") and k > 0 and got[:1] == shape[:1]:
            problems.append(Problem((key(n),), (
                f"{name}: {n} takes {got[1]} inputs but layer {k - 1} outputs D*H_out = {D}*{H_out} = {D * H_out}: "
                "layer input widths do not chain")))
        else:
            problems.append(Problem((key(n),), (
                f"{name}: {n} has shape {shape_str(got)} but an nn.{kind} with these arguments "
                f"({', '.join(f'{k}={v!r}' for k, v in cfg.constructor_kwargs().items())}) has {shape_str(shape)}")))
    if partial_bias:
        problems.append(Problem(tuple(partial_bias), (
            f"{name}: biases on some layers only: {', '.join(k.rpartition('.')[2] for k in partial_bias)} "
            "missing while other layers have theirs; torch's bias= applies to every layer")))
    return problems


def _cell(prefix: str, params: dict[str, np.ndarray]) -> RecurrentModule:
    key = (lambda n: f"{prefix}.{n}" if prefix else n)
    name = prefix or "(top level)"
    problems: list[Problem] = []
    hh, ih = params.get("weight_hh"), params.get("weight_ih")
    G, H = (None, 0) if hh is None or hh.ndim != 2 else _infer_gates(hh.shape, None)
    kind = GATES[G] + "Cell" if G else None
    if hh is None:
        problems.append(Problem(tuple(key(n) for n in params), f"{name}: weight_hh is missing: the hidden size cannot be inferred"))
    elif G is None:
        problems.append(Problem((key("weight_hh"),), (
            f"{name}: weight_hh has shape {shape_str(hh.shape)}: its rows are not 1, 3 or 4 times its columns, "
            "so it matches no cell (RNNCell, GRUCell, LSTMCell)")))
    if ih is None:
        there = next(iter(params))
        problems.append(Problem((key("weight_ih"),), (
            f"{name}: weight_ih is missing but {there} is there: the cell has no input weights; "
            "the file is damaged or was edited")))
    input_size = int(ih.shape[1]) if ih is not None and ih.ndim == 2 else 0
    flipped = G and ih is not None and ih.ndim == 2 and diagnose.transposed(
        "weight_ih", name, ih.shape, (G * H, int(ih.shape[0])))
    if ih is not None and ih.ndim != 2:
        problems.append(Problem((key("weight_ih"),), f"{name}: weight_ih has shape {shape_str(ih.shape)}: "
                                "a weight must have 2 dimensions"))
    elif flipped:
        input_size = int(ih.shape[0])
        problems.append(Problem((key("weight_ih"),), flipped, code="transposed"))
    elif G and ih is not None and ih.shape[0] != G * H:
        problems.append(Problem((key("weight_ih"),), (
            f"{name}: weight_ih has {ih.shape[0]} rows but weight_hh has {G * H}: both must be G*hidden_size")))
    has_bias = [n for n in ("bias_ih", "bias_hh") if n in params]
    if len(has_bias) == 1:
        lacking = "bias_hh" if has_bias[0] == "bias_ih" else "bias_ih"
        problems.append(Problem((key(lacking),), (
            f"{name}: {has_bias[0]} is there but {lacking} is missing: torch's bias= gives both or neither")))
    for n in has_bias:
        if G and params[n].shape != (G * H,):
            problems.append(Problem((key(n),), f"{name}: {n} has shape {shape_str(params[n].shape)}, expected {shape_str((G * H,))}"))
    problems += _dtype_problems(name, key, params) + _nonfinite_problems(name, key, params)
    return RecurrentModule(
        prefix=prefix, kind=kind, input_size=input_size, hidden_size=H, num_layers=1, bidirectional=False,
        bias=bool(has_bias), proj_size=0, dtype=_main_dtype(params), params=params,
        unknowns=_unknowns(kind), problems=problems,
    )


def _main_dtype(params: dict[str, np.ndarray]) -> str:
    return Counter(str(a.dtype) for a in params.values()).most_common(1)[0][0]


def _dtype_problems(name, key, params) -> list[Problem]:
    dtypes = Counter(str(a.dtype) for a in params.values())
    if len(dtypes) < 2:
        return []
    main = dtypes.most_common(1)[0][0]
    odd = [n for n, a in params.items() if str(a.dtype) != main]
    return [Problem(tuple(key(n) for n in odd), (
        f"{name}: mixed dtypes: most parameters are {main} but "
        + ", ".join(f"{n} is {params[n].dtype}" for n in odd[:4]) + (" ..." if len(odd) > 4 else "")
        + "; load_state_dict would cast them, a training run would not have produced this"))]


def _nonfinite_problems(name, key, params) -> list[Problem]:
    """NaN or Inf among the weights: every output they touch would be NaN/Inf."""
    bad = [n for n, a in params.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if not bad:
        return []
    what = ", ".join(f"{n} ({int(np.isnan(params[n]).sum()):,} NaN, {int(np.isinf(params[n]).sum()):,} Inf)"
                     for n in bad[:4]) + (" ..." if len(bad) > 4 else "")
    return [Problem(tuple(key(n) for n in bad), f"{name}: non-finite weights: {what}; "
                    "every output they reach will be NaN or Inf", runnable=True)]


def _unknowns(kind: str | None) -> dict[str, str]:
    out = {}
    if kind in ("RNN", "RNNCell"):
        out["nonlinearity"] = "tanh or relu is not stored in a state_dict (--nonlinearity; default tanh)"
    if kind in ("RNN", "LSTM", "GRU"):
        out["batch_first"] = "a layout choice, not stored in a state_dict (--batch-first)"
        out["dropout"] = "applies in training only, not stored in a state_dict (no effect on inference)"
    return out


# ---- describing -------------------------------------------------------------------------


def constructor_args(module: RecurrentModule) -> dict:
    """The arguments that rebuild the module, in the order its constructor lists them (for
    nn.RNN/LSTM/GRU: RunConfig.constructor_kwargs, the code view's own)."""
    args: dict = {"input_size": module.input_size, "hidden_size": module.hidden_size}
    said = module.declared  # what a TorchScript archive states beyond the shapes
    if not module.is_cell:
        try:
            args = RunConfig(cell=CELL_OF[module.kind], input_size=module.input_size, hidden_size=module.hidden_size,
                             num_layers=module.num_layers, bidirectional=module.bidirectional, bias=module.bias,
                             proj_size=module.proj_size, batch_first=said.get("batch_first", False),
                             nonlinearity=said.get("nonlinearity")).constructor_kwargs()
            if said.get("dropout"):  # torch's order: ..., batch_first, dropout, bidirectional, proj_size
                order = [*(k for k in args if k not in ("bidirectional", "proj_size")), "dropout", "bidirectional", "proj_size"]
                args = {k: ({**args, "dropout": said["dropout"]})[k] for k in order if k in args or k == "dropout"}
            return args
        except RnnCliError:  # a damaged file: sizes no module can have; say what was read
            args.update(num_layers=module.num_layers, bidirectional=module.bidirectional, proj_size=module.proj_size)
    if not module.bias:
        args["bias"] = False
    if said.get("nonlinearity", "tanh") != "tanh":
        args["nonlinearity"] = said["nonlinearity"]
    return args


def constructor_line(module: RecurrentModule) -> str:
    """nn.LSTM(input_size=80, hidden_size=256, num_layers=2, bidirectional=True, proj_size=64)."""
    if module.kind is None:
        return "(no torch module has these shapes)"
    args = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in constructor_args(module).items())
    return f"nn.{module.kind}({args})"


@dataclass
class ModuleReport:
    module: RecurrentModule
    constructor: str
    parameters: list[tuple[str, tuple[int, ...], str]]  # (name, shape, dtype)
    cfg: RunConfig | None  # for the shape-flow diagram; None for cells and broken modules
    shapes: dict[str, tuple[int, ...]]  # input, h_0 (c_0), output (h_n) for --batch / --seq-len / --batch-first
    layouts: dict[str, str]  # the same in the docs' symbols


@dataclass
class Inspection:
    loaded: Loaded
    modules: list[ModuleReport]
    other: OtherTensors

    @property
    def problems(self) -> list[Problem]:
        return [p for m in self.modules for p in m.module.problems]


def inspect_file(path: str | os.PathLike, batch: int | None = 1, seq_len: int = 10, batch_first: bool = False,
                 nonlinearity: str | None = None) -> Inspection:
    """Read and describe a checkpoint. RnnCliError when unreadable or without a recurrent module
    (the message lists the largest tensor prefixes seen). Problems are in the result: exit 1."""
    reader = _module_reader(path)
    if reader is not None:  # ONNX, Keras: the reader finds the modules and maps them to torch's layout
        loaded, modules = reader.read_modules(safe_read.source(Path(path)))
    else:
        loaded = load_tensors(path)
        modules = find_modules(loaded.tensors)
        modules += _renamed_modules(loaded.tensors, modules)
        _add_file_facts(loaded, modules)
    other = other_tensors(loaded.tensors, modules)
    if not modules:
        seen = ", ".join(f"{p} ({n:,} elements)" for p, n in other.largest) or "no numeric tensors at all"
        raise RnnCliError(f"{loaded.path}: no recurrent module (nn.RNN/LSTM/GRU or a cell) found; largest tensors: {seen}")
    reports = []
    for m in modules:
        cfg = None
        shapes: dict[str, tuple[int, ...]] = {}
        layouts: dict[str, str] = {}
        broken = any(not p.runnable for p in m.problems)
        if m.kind and m.is_cell and not broken:  # one step: input (N, H_in), h (N, H_out)
            shapes = _cell_shapes(m, batch)
            lead = "" if batch is None else "N, "
            layouts = {k: f"({lead}{'H_in' if k == 'input' else 'H_out'})" for k in shapes}
        elif m.kind and not broken:
            cfg = _shape_config(m, batch, seq_len, batch_first or m.declared.get("batch_first", False),
                                nonlinearity or m.declared.get("nonlinearity"))  # a TorchScript archive states them
            shapes, layouts = cfg.shapes(), cfg.layouts()
        params = [(n, tuple(a.shape), str(a.dtype)) for n, a in m.params.items()]
        reports.append(ModuleReport(m, constructor_line(m), params, cfg, shapes, layouts))
    return Inspection(loaded, reports, other)


def _module_reader(path: str | os.PathLike):
    """The reader module of a format that finds modules itself, imported; None for the others.
    Without the extra the format needs: one line saying which."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt not in MODULE_READERS:
        return None
    name, extra = MODULE_READERS[fmt]
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RnnCliError(f"{printable(str(path))}: reading {fmt} files needs the {extra} extra "
                          f"(pip install 'rnn-cli[{extra}]'; missing: {printable(e.name or str(e))})") from None


def _renamed_modules(tensors: dict[str, np.ndarray], modules: list[RecurrentModule]) -> list[RecurrentModule]:
    """Cells stored under other names (enc_w_ih, W_hh, kernel...): renamed.py finds the groups
    whose shapes make one cell; _cell checks them as it checks torch's own names."""
    from rnn_cli.formats import renamed

    taken = {m.key(n) for m in modules for n in m.params}
    out = []
    for group in renamed.find_groups({k: v.shape for k, v in tensors.items() if k not in taken}):
        m = _cell(group.prefix, {n: tensors[k] for n, k in group.keys.items()})
        m.source_names, m.candidate = dict(group.keys), True
        m.problems += [Problem(tuple(group.keys.values()), p) for p in group.problems]
        out.append(m)
    return out


def _add_file_facts(loaded: Loaded, modules: list[RecurrentModule]) -> None:
    """Each module's source format and the file's own key of each parameter; for TorchScript,
    the constructor arguments the archive states (checked against the shapes)."""
    from rnn_cli.formats import torchscript

    for m in modules:
        m.source = loaded.format
        m.source_names = m.source_names or {n: (f"{m.prefix}.{n}" if m.prefix else n) for n in m.params}
        d = loaded.declared.get(m.prefix)
        if d is None:
            continue
        inferred = {"input_size": m.input_size, "hidden_size": m.hidden_size, "bias": m.bias}
        if not m.is_cell:
            inferred.update(num_layers=m.num_layers, bidirectional=m.bidirectional, proj_size=m.proj_size)
        m.declared, problems = torchscript.reconcile(d, m.kind, inferred)
        m.problems += [Problem(tuple(m.key(n) for n in m.params), f"{m.name}: {p}") for p in problems]
        for name in m.declared:
            m.unknowns.pop(name, None)


def _shape_config(m: RecurrentModule, batch, seq_len, batch_first, nonlinearity) -> RunConfig:
    return RunConfig(
        cell=CELL_OF[m.kind], input_size=m.input_size, hidden_size=m.hidden_size,
        num_layers=m.num_layers, bidirectional=m.bidirectional, bias=m.bias, proj_size=m.proj_size,
        batch_first=batch_first, nonlinearity=nonlinearity, seq_len=seq_len, batch=batch,
    )


def _cell_shapes(m: RecurrentModule, batch: int | None) -> dict[str, tuple[int, ...]]:
    lead = () if batch is None else (batch,)
    out = {"input": (*lead, m.input_size), "h": (*lead, m.hidden_size)}
    if m.kind == "LSTMCell":
        out["c"] = (*lead, m.hidden_size)
    out["h'"] = (*lead, m.hidden_size)
    if m.kind == "LSTMCell":
        out["c'"] = (*lead, m.hidden_size)
    return out


# ---- choosing and running one module --------------------------------------------------------


def parse_params_arg(text: str) -> tuple[str, str | None]:
    """--params PATH[:PREFIX]. A path that exists whole wins; else split on the last ':' if
    what is left of it is a file; else the whole text is the path (and fails to load)."""
    if os.path.isfile(text) or ":" not in text:
        return text, None
    left, _, right = text.rpartition(":")
    if os.path.isfile(left):
        return left, right
    return text, None


def select_module(inspection: Inspection, prefix: str | None) -> RecurrentModule:
    modules = [r.module for r in inspection.modules]
    names = ", ".join(f"{m.name} ({m.kind or 'unrecognised'})" for m in modules)
    path = inspection.loaded.path
    if prefix is None:
        if len(modules) == 1:
            return modules[0]
        raise RnnCliError(f"--params {path}: {len(modules)} recurrent modules; pick one with {path}:PREFIX from: {names}")
    for m in modules:
        if m.prefix == prefix or (prefix in ("", "(top level)") and m.prefix == "") or (m.node and m.node == prefix):
            return m
    raise RnnCliError(f"--params {path}:{prefix}: no recurrent module {prefix!r}; the file has: {names}")


@dataclass(frozen=True)
class Flags:
    """The shape-defining flags the user gave explicitly; None where not given."""

    cell: str | None = None  # rnn, lstm, gru
    input_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    bidirectional: bool | None = None  # True only when --bidirectional was given
    bias: bool | None = None  # False only when --no-bias was given
    proj_size: int | None = None
    dtype: str | None = None  # float32 / float64; None: the parameters' own


def to_run_config(module: RecurrentModule, flags: Flags = Flags(), path: str = "the checkpoint",
                  **run_kwargs) -> tuple[RunConfig, dict[str, np.ndarray]]:
    """RunConfig and parameters (torch's names and order, prefix stripped, in cfg.dtype) that run
    `module`. run_kwargs are RunConfig's other fields, passed through as the flags give them
    (nonlinearity, batch_first, seq_len, batch, lengths, h0, seed, device).

    A cell runs as the one-layer nn.RNN/LSTM/GRU with the same weights (renamed weight_ih ->
    weight_ih_l0, ...): that module applies the cell at each step of the sequence.
    """
    blocking = [p for p in module.problems if not p.runnable]
    if module.kind is None or blocking:
        first = blocking[0].message if blocking else "unrecognised"
        raise RnnCliError(f"--params {path}: {module.name} cannot be run: {first} (rnn-cli inspect {path} lists all)")
    if not module.expressible:  # torch has no module that computes this layer
        why = "; ".join(r["detail"] for r in module.not_expressible)
        raise RnnCliError(f"--params {path}: {printable(module.name)} is not an nn module torch can run: {why}")
    inferred = {
        "cell": CELL_OF[module.kind], "input_size": module.input_size, "hidden_size": module.hidden_size,
        "num_layers": module.num_layers, "bidirectional": module.bidirectional, "bias": module.bias,
        "proj_size": module.proj_size,
    }
    for name, have in inferred.items():
        given = getattr(flags, name)
        if given is not None and given != have:
            flag = FLAG_OF[name]
            shown = flag if isinstance(given, bool) else f"{flag} {given}"
            raise RnnCliError(f"{shown} but {module.name} in {Path(path).name} has {name} {_word(have)}")
    dtype = flags.dtype or (module.dtype if module.dtype in ("float32", "float64") else "float32")
    cfg = RunConfig(**inferred, dtype=dtype, **run_kwargs)
    np_dtype = np.dtype(dtype)
    rename = (lambda n: n + "_l0") if module.is_cell else (lambda n: n)
    own = {rename(n): a for n, a in module.params.items()}
    params = {}
    for n, shape in cfg.parameter_shapes().items():
        a = own[n]
        assert a.shape == shape, f"{n}: expected {shape}, got {a.shape}"
        params[n] = np.ascontiguousarray(a, dtype=np_dtype)
    return cfg, params


def _word(v) -> str:
    return str(v) if not isinstance(v, bool) else ("True" if v else "False")


# ---- the user's own input and state -----------------------------------------------------------


def _load_npy(path: str | os.PathLike, flag: str) -> np.ndarray:
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise RnnCliError(f"{flag} {printable(str(p))}: expected a .npy file (np.save(PATH, array))")
    src = safe_read.source(p, flag)
    with safe_read.quiet_libraries():
        a = safe_read.read_npy(src)
    if a.dtype.kind not in "fiu":
        raise src.error(f"holds {a.dtype} values; expected real numbers")
    return a


def _fits(a: np.ndarray, dtype: str, what: str) -> np.ndarray:
    """`a` in the run's dtype; values that dtype cannot represent (1e308 in float32) are refused
    in one line rather than turned into inf with numpy's overflow warnings."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if a.dtype.kind == "f" and out.dtype != a.dtype:
        lost = np.isfinite(a) & ~np.isfinite(out)
        if lost.any():
            big = float(np.max(np.abs(a[lost])))
            limit = float(np.finfo(out.dtype).max)
            raise RnnCliError(f"{what} holds {big:.6g}, beyond {dtype}'s range (±{limit:.4g}): "
                              + ("use --dtype float64" if dtype != "float64" else "rescale the input"))
    return out


def load_input(path: str | os.PathLike, *, batch_first: bool = False, unbatched: bool = False,
               input_size: int | None = None, seq_len: int | None = None, batch: int | None = None) -> np.ndarray:
    """--input PATH.npy in the user's layout -> (L, N, H_in) time-major. seq_len / batch are
    checked only when the user gave them (else the array decides)."""
    x = _load_npy(path, "--input")
    if 0 in x.shape:
        raise RnnCliError(f"--input has shape {shape_str(x.shape)}: every dimension must be at least 1")
    s = shape_str(x.shape)
    if unbatched:
        if x.ndim != 2:
            raise RnnCliError(f"--input has shape {s}: with --unbatched it must be (L, H_in)"
                              + ("; drop --unbatched for batched input" if x.ndim == 3 else ""))
        L, H_in = x.shape
        N = None
        x = x[:, None, :]  # (L, 1, H_in)
        reading = f"with --unbatched that is L={L}, H_in={H_in}"
    else:
        if x.ndim != 3:
            hint = "; 2-D input (L, H_in) needs --unbatched" if x.ndim == 2 else ""
            raise RnnCliError(f"--input has shape {s}: expected {'(N, L, H_in)' if batch_first else '(L, N, H_in)'}{hint}")
        if batch_first:
            N, L, H_in = x.shape
            x = x.transpose(1, 0, 2)  # (L, N, H_in)
        else:
            L, N, H_in = x.shape
        reading = f"with --batch-first {'on' if batch_first else 'off'} that is L={L}, N={N}, H_in={H_in}"
    swapped = not unbatched and (batch is None or batch == L) and (seq_len is None or seq_len == N)
    fix = f"; did you mean {'no --batch-first' if batch_first else '--batch-first'}?" if swapped else ""
    if input_size is not None and H_in != input_size:
        raise RnnCliError(f"--input has shape {s}: {reading}, but the module takes input_size={input_size} features per step")
    if batch is not None and N is not None and N != batch:
        raise RnnCliError(f"--input has shape {s}: {reading}, but --batch is {batch}{fix}")
    if seq_len is not None and L != seq_len:
        raise RnnCliError(f"--input has shape {s}: {reading}, but --seq-len is {seq_len}{fix}")
    return np.ascontiguousarray(x)


def load_state(path: str | os.PathLike, name: str, cfg: RunConfig) -> np.ndarray:
    """--h0 / --c0 PATH.npy in the user's layout -> (D*num_layers, N, F); `name` is h_0 or c_0."""
    flag = "--h0" if name == "h_0" else "--c0"
    if name == "c_0" and not cfg.has_c:
        raise RnnCliError(f"--c0 applies to LSTMs only; this module is an nn.{TORCH_CLASS[cfg.cell]}")
    a = _load_npy(path, flag)
    want = cfg.shapes()[name]
    if a.shape != want:
        raise RnnCliError(f"{name} has shape {shape_str(a.shape)}, the module wants {cfg.layouts()[name]} = {shape_str(want)}")
    a = a[:, None, :] if cfg.unbatched else a  # (D*num_layers, N, F)
    return _fits(a, cfg.dtype, flag)


def make_sample(cfg: RunConfig, params: dict[str, np.ndarray] | None = None, x: np.ndarray | None = None,
                h_0: np.ndarray | None = None, c_0: np.ndarray | None = None) -> Sample:
    """The Sample manual.run / torch_run.run / compare take: the checkpoint's parameters, the
    user's x (L, N, H_in) / h_0 / c_0 where given, the seeded draw (--seed, --h0) elsewhere.
    The draw is always made, once, so the generator's state after it (where --grad draws its
    upstream gradients) depends on the seed and the shapes alone, never on which file was given."""
    drawn = draw(cfg)
    return Sample(
        params=drawn.params if params is None else params,
        x=drawn.x if x is None else _fits(x, cfg.dtype, "--input"),
        h_0=drawn.h_0 if h_0 is None else h_0,
        c_0=(drawn.c_0 if c_0 is None else c_0) if cfg.has_c else None,
        rng_state=drawn.rng_state,
    )


# ---- two checkpoints ------------------------------------------------------------------------


def compare_checkpoints(a: Inspection, b: Inspection) -> list[str]:
    """Differences between the recurrent modules of A and B, as load_state_dict would fail on
    loading A into a module built like B, each with the constructor argument that fixes it."""
    out = []
    ma = {r.module.prefix: r.module for r in a.modules}
    mb = {r.module.prefix: r.module for r in b.modules}
    for p in ma.keys() - mb.keys():
        out.append(f"{ma[p].name}: only in checkpoint A ({constructor_line(ma[p])}): Unexpected key(s) when loaded into B's model")
    for p in mb.keys() - ma.keys():
        out.append(f"{mb[p].name}: only in checkpoint B ({constructor_line(mb[p])}): Missing key(s) when loading A")
    for p in [p for p in ma if p in mb]:
        # different constructor arguments, else (same arguments) keys one file lacks
        out += _module_differences(ma[p], mb[p]) or _key_differences(ma[p], mb[p])
    return out


def _key_differences(x: RecurrentModule, y: RecurrentModule) -> list[str]:
    """Keys one module has and the other lacks: strict load_state_dict fails on them."""
    out = []
    if y.params.keys() - x.params.keys():
        missing = ", ".join(sorted(y.params.keys() - x.params.keys()))
        out.append(f"{x.name}: checkpoint A lacks {missing}: Missing key(s) when loaded into B's model")
    if x.params.keys() - y.params.keys():
        missing = ", ".join(sorted(x.params.keys() - y.params.keys()))
        out.append(f"{y.name}: checkpoint B lacks {missing}: Unexpected key(s) when A is loaded into B's model")
    return out


def _module_differences(x: RecurrentModule, y: RecurrentModule) -> list[str]:
    n = x.name
    if x.kind != y.kind:
        return [f"{n}: checkpoint A is an nn.{x.kind}, B an nn.{y.kind} (different gate counts: size mismatch for "
                f"weight_hh): build {constructor_line(x)}"]
    out = []
    first = "weight_ih" if x.is_cell else "weight_ih_l0"
    hh = "weight_hh" if x.is_cell else "weight_hh_l0"
    if x.input_size != y.input_size:
        out.append(f"{n}: size mismatch for {first}: A has {shape_str(x.params[first].shape)}, B "
                   f"{shape_str(y.params[first].shape)}: input_size={x.input_size}")
    if x.hidden_size != y.hidden_size:
        out.append(f"{n}: size mismatch for {hh}: A has {shape_str(x.params[hh].shape)}, B "
                   f"{shape_str(y.params[hh].shape)}: hidden_size={x.hidden_size}")
    if x.num_layers != y.num_layers:
        more, extra = ("A", f"weight_ih_l{y.num_layers}") if x.num_layers > y.num_layers else ("B", f"weight_ih_l{x.num_layers}")
        out.append(f"{n}: checkpoint A has {x.num_layers} layer(s), B {y.num_layers} ({more} has {extra}): num_layers={x.num_layers}")
    if x.bidirectional != y.bidirectional:
        has, lacks = "bidirectional (has weight_ih_l0_reverse)", "not"
        a_is, b_is = (has, lacks) if x.bidirectional else ("not bidirectional", "bidirectional (has weight_ih_l0_reverse)")
        out.append(f"{n}: checkpoint A is {a_is}, B is {b_is}: bidirectional={x.bidirectional}")
    if x.bias != y.bias:
        out.append(f"{n}: checkpoint A has {'biases' if x.bias else 'no biases'}, B {'has biases' if y.bias else 'has none'}: bias={x.bias}")
    if x.proj_size != y.proj_size:
        out.append(f"{n}: checkpoint A has proj_size {x.proj_size}"
                   + (" (weight_hr_l0)" if x.proj_size else "") + f", B {y.proj_size}: proj_size={x.proj_size}")
    return out
