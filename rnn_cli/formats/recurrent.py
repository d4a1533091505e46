"""Recognising recurrent modules among a checkpoint's tensors, by their parameter names
(torch/nn/modules/rnn.py), and what each one is:
    nn.RNN / nn.LSTM / nn.GRU   weight_ih_l{k}[_reverse], weight_hh_l{k}[_reverse],
                                bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse], weight_hr_l{k}[_reverse]
    nn.RNNCell / LSTMCell / GRUCell   weight_ih, weight_hh, bias_ih, bias_hh
Sizes are read off what most layer-directions agree on (rnn_cli.formats.diagnose); every
parameter is checked against what torch would build, and what does not fit is a Problem.
Also the constructor call that rebuilds a module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from rnn_cli.core import layout
from rnn_cli.core.config import RunConfig, shape_str
from rnn_cli.errors import RnnCliError
from rnn_cli.formats import diagnose

Problem = diagnose.Problem  # defined beside the problem codes: diagnose.py builds problems too (no import circle)
GATES = diagnose.GATES  # G -> kind
CELL_OF = layout.CELL_OF  # class name -> cell
_LAYERED = layout.LAYERED_KEY
_CELL = layout.CELL_KEY


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
        ih0 = params.get(layout.param_name("weight_ih", 0), params.get(layout.param_name("weight_ih", 0, reverse=True)))
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
    problems += _dtype_problems(name, key, params) + nonfinite_problems(name, key, params)
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
    problems += _dtype_problems(name, key, params) + nonfinite_problems(name, key, params)
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


def nonfinite_problems(name, key, params) -> list[Problem]:
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
