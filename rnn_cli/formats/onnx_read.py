"""ONNX files (`.onnx`, the onnx extra): every LSTM/GRU/RNN node mapped to torch's layout.

read_modules(src) is what rnn_cli.formats.checkpoint.inspect_file calls for a `.onnx` file;
forward(path, module, x, h_0, c_0) runs a module's node(s) in onnxruntime (the source's own
runtime, for `convert`'s proof). The graph is read as data (rnn_cli.formats.onnx_graph): only
the constant subexpressions of W, R, B, P are evaluated; onnxruntime runs the file's graph only
to trace a state through control flow (onnx_trace) and in forward().

Mapping, per node and direction d (ONNX operators LSTM/GRU/RNN, layout 0):
    W [D, G*H, H_in] -> weight_ih_l{k}[_reverse]   gate blocks reordered by rnn_cli.core.layout
    R [D, G*H, H]    -> weight_hh_l{k}[_reverse]
    B [D, 2*G*H]     -> bias_ih (first G*H) and bias_hh (last G*H); no B: bias=False (zeros)
A node that reads the previous node's Y through the exporter's Transpose/Reshape/Squeeze is
its next layer (one nn.LSTM(num_layers=...)); a forward node whose X is Unsqueezed on the time
axis (one step) is a cell: LSTMCell's weight_ih, weight_hh, bias_ih, bias_hh.
What no nn module computes is listed in not_expressible (codes below); such a module still
carries the nearest torch parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from rnn_cli.core import layout
from rnn_cli.core.config import shape_str
from rnn_cli.formats import onnx_graph, safe_read
from rnn_cli.formats.checkpoint import Loaded, Problem, RecurrentModule
from rnn_cli.formats.onnx_graph import Constants, Found
from rnn_cli.printable import printable

INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
CONSTANT_INPUTS = ("W", "R", "B", "P", "sequence_lens")
DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"), "RNN": ("tanh",)}
TORCH_STATE = {"initial_h": "h_0", "initial_c": "c_0", "Y_h": "h_n", "Y_c": "c_n"}
STACK_LINKS = ("Transpose", "Reshape", "Squeeze", "Identity")


@dataclass
class NodeRead:
    found: Found
    attrs: dict
    arrays: dict  # W, R, B, P, sequence_lens -> array; absent inputs left out
    runtime: list  # inputs given but not constant (W computed from the graph's inputs...)

    @property
    def op(self) -> str:
        return self.found.node.op_type

    @property
    def cell(self) -> str:
        return self.op.lower()

    @property
    def direction(self) -> str:
        return str(self.attrs.get("direction", "forward"))

    @property
    def D(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def H(self) -> int:
        R = self.arrays.get("R")
        return int(self.attrs.get("hidden_size", R.shape[-1] if R is not None and R.ndim == 3 else 0))


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def _read_node(consts: Constants, f: Found) -> NodeRead:
    arrays, runtime = {}, []
    for i, name in enumerate(f.node.input[: len(INPUTS)]):
        role = INPUTS[i]
        if not name or role not in CONSTANT_INPUTS:
            continue
        value = consts.value(f.scope, name)
        if value is None:
            runtime.append(role)
        else:
            arrays[role] = value
    return NodeRead(f, _attrs(f.node), arrays, runtime)


def _node_problems(n: NodeRead) -> list[str]:
    """Why the node's weights cannot be mapped: computed at run time, or shapes that disagree."""
    where = f"{n.op} {n.found.path}"
    bad = [r for r in n.runtime if r in ("W", "R", "B", "P")]
    if bad:
        return [f"{where}: {', '.join(bad)} computed from the graph's inputs at run time, not constants"]
    if "W" not in n.arrays or "R" not in n.arrays:
        return [f"{where}: has no W or R input"]
    G, H, D = layout.num_gates(n.cell), n.H, n.D
    W = n.arrays["W"]
    want = {"W": (D, G * H, W.shape[-1] if W.ndim == 3 else 0), "R": (D, G * H, H), "B": (D, 2 * G * H), "P": (D, 3 * H)}
    out = [f"{where}: {k} has shape {shape_str(n.arrays[k].shape)}, expected {shape_str(s)} "
           f"(direction {n.direction}, hidden_size {H})" for k, s in want.items()
           if k in n.arrays and tuple(n.arrays[k].shape) != s]
    if H <= 0 or W.ndim != 3:
        out.append(f"{where}: hidden_size {H} and W {shape_str(W.shape)} describe no layer")
    return out


def _not_expressible(n: NodeRead) -> tuple[list[dict], dict]:
    """{code, detail} for each thing nn.RNN/LSTM/GRU cannot compute; and what the file states
    that torch's constructor takes (batch_first for layout=1, nonlinearity='relu')."""
    out = []
    declared: dict = {"attributes": {k: v for k, v in n.attrs.items() if isinstance(v, (int, float, str, list))}}

    def no(code: str, detail: str) -> None:
        out.append({"code": code, "detail": detail})

    if n.attrs.get("layout", 0) == 1:
        declared["batch_first"] = True
    if n.direction == "reverse":
        no("lone_reverse", "a lone direction='reverse' node reads the sequence backwards only; nn modules "
           "run forwards, or both ways with bidirectional=True")
    acts = [str(a).lower() for a in n.attrs.get("activations", [])]
    default = DEFAULT_ACTIVATIONS[n.op]
    groups = {tuple(acts[i: i + len(default)]) for i in range(0, len(acts), len(default))}
    if n.op == "RNN" and groups == {("relu",)}:
        declared["nonlinearity"] = "relu"
    elif acts and groups != {default}:
        no("activations", f"activations {', '.join(n.attrs['activations'])}; nn.{n.op} uses "
           f"{', '.join(a.capitalize() for a in default)}")
    if "clip" in n.attrs:
        no("clip", f"clip={n.attrs['clip']:g} clips the gates' inputs; nn.{n.op} does not clip")
    if n.attrs.get("input_forget", 0):
        no("input_forget", "input_forget=1 couples the input and forget gates (f = 1 - i); nn.LSTM has both")
    P = n.arrays.get("P")
    if P is not None and np.any(P != 0):
        no("peepholes", "peephole weights P (the cell state feeds the gates); nn.LSTM has none")
    if n.op == "GRU" and not n.attrs.get("linear_before_reset", 0):
        no("linear_before_reset_0", "linear_before_reset=0: the reset gate multiplies h before R; nn.GRU "
           "applies it after (r * (R h + Rb)), a different function")
    return out, declared


def _rows(cell: str, H: int, offset: int) -> str:
    """The ONNX rows of torch's gates, in torch's order: `0:8 (i), 16:24 (f), 24:32 (c), 8:16 (o)`."""
    if cell == "rnn":
        return f"{offset}:{offset + H}"
    order, names = layout.order_from_torch(cell, "onnx"), layout.gate_names(cell, "onnx")
    slots = [order.index(k) for k in range(len(order))]
    return ", ".join(f"{offset + j * H}:{offset + (j + 1) * H} ({names[j]})" for j in slots)


def _params(n: NodeRead, layer: int | None, tag: str) -> tuple[dict, dict]:
    """torch's parameters of one node (layer None: a cell's names) and the file's name for each."""
    params, names = {}, {}
    G, H = layout.num_gates(n.cell), n.H
    for d in range(n.D):
        def put(kind: str, a: np.ndarray, text: str) -> None:
            name = layout.param_name(kind, layer, d == 1)
            params[name] = np.ascontiguousarray(layout.to_torch(a, n.cell, "onnx"))
            names[name] = tag + text

        rows = f" rows {_rows(n.cell, H, 0)}" if n.cell != "rnn" else ""
        put("weight_ih", n.arrays["W"][d], f"W[{d}]{rows}")
        put("weight_hh", n.arrays["R"][d], f"R[{d}]{rows}")
        if "B" in n.arrays:
            put("bias_ih", n.arrays["B"][d][: G * H], f"B[{d}] {_rows(n.cell, H, 0)}")
            put("bias_hh", n.arrays["B"][d][G * H:], f"B[{d}] {_rows(n.cell, H, G * H)}")
    return params, names


def _previous_layer(n: NodeRead, by_y: dict) -> NodeRead | None:
    """The node whose Y reaches n's X through the exporter's Transpose/Reshape/Squeeze alone."""
    scope, name = n.found.scope, n.found.node.input[0]
    for _ in range(8):
        users = [u for u in scope.consumers.get(name, []) if u.op_type != "Shape"]  # the zero state's shape
        if len(users) != 1 or name not in scope.producers:
            return None
        node, k = scope.producers[name]
        if node.op_type in onnx_graph.RECURRENT:
            return by_y.get((id(scope.graph), name)) if k == 0 else None
        if node.op_type not in STACK_LINKS:
            return None
        name = node.input[0]
    return None


def _stacks(nodes: list[NodeRead]) -> list[list[NodeRead]]:
    units: list[list[NodeRead]] = []
    unit_of: dict[int, list[NodeRead]] = {}
    by_y = {(id(n.found.scope.graph), n.found.node.output[0]): n for n in nodes if n.found.node.output}
    for n in nodes:
        prev = _previous_layer(n, by_y)
        unit = unit_of.get(id(prev)) if prev is not None else None
        if unit is not None and unit[-1] is prev and _stackable(prev, n):
            unit.append(n)
        else:
            unit = [n]
            units.append(unit)
        unit_of[id(n)] = unit
    return units


def _stackable(a: NodeRead, b: NodeRead) -> bool:
    same = a.op == b.op and a.direction == b.direction != "reverse" and a.H == b.H
    plain = not _node_problems(a) and not _node_problems(b) and not _not_expressible(a)[0] and not _not_expressible(b)[0]
    return (same and plain and a.attrs.get("layout", 0) == b.attrs.get("layout", 0) == 0
            and ("B" in a.arrays) == ("B" in b.arrays) and b.arrays["W"].shape[-1] == a.D * a.H)


def _one_step(n: NodeRead, consts: Constants) -> bool:
    """X Unsqueezed on the time axis (or declared one step long): the node runs one cell step."""
    scope, name = n.found.scope, n.found.node.input[0]
    time_axis = 1 if n.attrs.get("layout", 0) == 1 else 0
    where, kind, what = scope.lookup(name)
    if kind == "node" and what[0].op_type == "Unsqueeze":
        return onnx_graph.ints(consts, where, what[0], 1, "axes") == [time_axis]
    if kind == "input":
        dims = what.type.tensor_type.shape.dim
        return len(dims) == 3 and dims[time_axis].HasField("dim_value") and dims[time_axis].dim_value == 1
    return False


def _module(unit: list[NodeRead], consts: Constants) -> RecurrentModule:
    first = unit[0]
    problems = [p for n in unit for p in _node_problems(n)]
    not_expressible, declared = _not_expressible(first)
    is_cell = len(unit) == 1 and first.direction == "forward" and not problems and _one_step(first, consts)
    params, names = {}, {}
    if not problems:
        for k, n in enumerate(unit):
            p, nm = _params(n, None if is_cell else k, f"{n.found.path}: " if len(unit) > 1 else "")
            params.update(p)
            names.update(nm)
    W = first.arrays.get("W")
    unknowns = {}
    if "sequence_lens" in first.runtime:
        unknowns["sequence_lens"] = "the node takes sequence lengths from the graph (padded batches: --lengths)"
    return RecurrentModule(
        prefix=first.found.path, kind=first.op + ("Cell" if is_cell else ""),
        input_size=int(W.shape[-1]) if W is not None and W.ndim == 3 else 0, hidden_size=first.H,
        num_layers=len(unit), bidirectional=first.D == 2, bias="B" in first.arrays, proj_size=0,
        dtype=str(W.dtype) if W is not None else "float32", params=params, unknowns=unknowns,
        problems=[Problem((first.found.path,), p) for p in problems], source="onnx", source_names=names,
        declared=declared, not_expressible=not_expressible, node=first.found.node.name, path=first.found.path,
        states=_states(unit, consts),
    )


def _states(unit: list[NodeRead], consts: Constants) -> list[dict]:
    """Per node (layer k): initial_h/initial_c -> the graph input and slots they are read from,
    Y_h/Y_c -> the graph output and slots they are written to; merged over a stack's layers
    when the layers read consecutive slots of one value."""
    entries = []
    for k, n in enumerate(unit):
        node, scope = n.found.node, n.found.scope
        for role, index in (("initial_h", 5), ("initial_c", 6), ("Y_h", 1), ("Y_c", 2)):
            names = node.input if role.startswith("initial") else node.output
            if (role.endswith("_c") and n.op != "LSTM") or len(names) <= index or not names[index]:
                continue
            if role.startswith("initial"):
                every = [onnx_graph.trace_back(consts, scope, names[index])]
            else:  # Y_h may reach several outputs (out and stateN[0]): one entry each
                every = [(v, [pick] if pick else []) for v, pick in onnx_graph.trace_forward(consts, scope, names[index], n.D)] or [None]
            fixed = None
            if role.startswith("initial") and every == [None]:
                fixed = _constant_words(consts.value(scope, names[index])) or onnx_graph.run_time_zeros(consts, scope, names[index])
            entries += [{"role": role, "layer": k, "traced": t, "scope": scope, "width": n.D, "constant": fixed}
                        for t in every]
    if len(unit) > 1:
        entries = _merge_layers(entries, len(unit))
    return [_state_entry(e, len(unit)) for e in entries]


def _merge_layers(entries: list[dict], L: int) -> list[dict]:
    out = []
    for role in ("initial_h", "initial_c", "Y_h", "Y_c"):
        mine = [e for e in entries if e["role"] == role]
        if not mine:
            continue
        D = mine[0]["width"]
        whole = [(0, L * D)]
        slots = [e["traced"] and e["traced"][1] for e in mine]
        one_value = len({e["traced"] and e["traced"][0] for e in mine}) == 1 and mine[0]["traced"]
        if len(mine) == L and one_value and slots == [[(k * D, (k + 1) * D)] for k in range(L)]:
            out.append({**mine[0], "layer": None, "traced": (mine[0]["traced"][0], whole)})
        elif len(mine) == L and mine[0]["constant"] and all(e["constant"] == mine[0]["constant"] for e in mine):
            out.append({**mine[0], "layer": None})  # every layer starts from zeros
        else:
            out += mine
    return out


def _state_entry(e: dict, layers: int) -> dict:
    """{"role", "torch", "from" (initial_*) or "to" (Y_*), "value", "shape"[, "layer"]}: the
    selection in words (state[0]); slots covering the whole declared value are left out."""
    traced, scope = e["traced"], e["scope"]
    info = onnx_graph.input_info(scope, traced[0]) if traced else None
    text = None
    if traced:
        picks = traced[1]
        declared = _declared_dim0(info)
        if len(picks) == 1 and picks[0][0] == 0 and declared == picks[0][1]:
            picks = []  # all of it: h_0, not h_0[0:1]
        text = traced[0] + "".join(onnx_graph.slot_text(a, b) for a, b in picks)
    out = {"role": e["role"], "torch": TORCH_STATE[e["role"]],
           ("from" if e["role"].startswith("initial") else "to"): text,
           "value": traced[0] if traced else None, "shape": onnx_graph.shape_text(info) if info is not None else None}
    if e["layer"] is not None and layers > 1:
        out["layer"] = e["layer"]
    if e.get("constant"):
        out["constant"] = e["constant"]
    return out


def _constant_words(a) -> str | None:
    """An initial state the file fixes: `zeros (1, 1, 3)` or `values (1, 1, 3)` (not an input)."""
    if a is None:
        return None
    return f"{'zeros' if not np.any(a) else 'values'} {shape_str(a.shape)}"


def _declared_dim0(info) -> int | None:
    if info is None:
        return None
    dims = info.type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None


def _other_tensors(main, consts: Constants, src: safe_read.Source) -> dict[str, np.ndarray]:
    """The main graph's initializers that feed no recurrent node: inspect's "other tensors"."""
    out = {}
    for name, t in main.initializers.items():
        if name in consts.leaves:
            continue
        a = onnx_graph.tensor_array(t, src, f"initializer {name}")
        if a.dtype.kind in "fiub":
            out[name] = a
    return out


def _read(src: safe_read.Source):
    """(model, constants, units of nodes, modules); one line for a file that is no ONNX model."""
    try:
        with safe_read.quiet_libraries():
            model = onnx_graph.load(src)
            main, found = onnx_graph.walk(model, src)
            consts = Constants(model, src)
            units = _stacks([_read_node(consts, f) for f in found])
            modules = [_module(u, consts) for u in units]
            tensors = _other_tensors(main, consts, src)
    except MemoryError as e:
        raise safe_read.reading_out_of_memory(src.label, e) from None
    except RecursionError:
        raise src.error("nests its graphs too deeply to be read") from None
    return model, consts, units, modules, tensors


def read_modules(src: safe_read.Source) -> tuple[Loaded, list[RecurrentModule]]:
    model, consts, units, modules, tensors = _read(src)
    from rnn_cli.formats import onnx_trace

    traced = []
    if any(s.get("from", "") is None and "constant" not in s for m in modules for s in m.states):
        with safe_read.quiet_libraries():
            traced = onnx_trace.trace_states(model, units, modules, src)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x) or "an unnamed producer"
    notes = [f"ONNX model (opset {opset}) from {printable(producer)}: read as data, W/R/B folded from its constants"]
    notes += traced
    return Loaded(src.path, "onnx", tensors, None, notes), modules


# ---- running a module's node(s) in onnxruntime ------------------------------------------------

OPSET = 14  # LSTM/GRU/RNN as of opset 14 (layout); later versions add types only


def forward(path, module: RecurrentModule, x: np.ndarray, h_0: np.ndarray | None = None,
            c_0: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The module's node(s), exactly as the file has them (attributes, peepholes, clip...; a
    batch-first node (layout=1), which onnxruntime does not run, as its time-major twin), run by
    onnxruntime on x (L, N, H_in) time-major and h_0/c_0 in torch's layout (num_layers*D, N, H)
    or None for zeros. Returns output (L, N, D*H), h_n (and c_n for an LSTM) in torch's layout."""
    from rnn_cli.errors import RnnCliError

    src = safe_read.source(Path(path))
    _, _, units, _, _ = _read(src)
    unit = next((u for u in units if u[0].found.path == module.path), None)
    if unit is None:
        raise RnnCliError(f"{printable(str(path))}: no recurrent node at {printable(str(module.path))}")
    model, feeds = _unit_model(unit, x, h_0, c_0)
    from rnn_cli.formats.onnx_check import _session, quiet

    try:
        with quiet():
            got = dict(zip(("Y", "Y_h", "Y_c"), _session(model.SerializeToString()).run(None, feeds)))
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise RnnCliError(f"onnxruntime could not run {printable(str(module.path))}: {printable(first_line)}") from None
    L, N = x.shape[:2]
    out = {"output": np.ascontiguousarray(got["Y"].transpose(0, 2, 1, 3).reshape(L, N, -1))}  # (L, D, N, H) ->
    out.update({name: got[key] for key, name in (("Y_h", "h_n"), ("Y_c", "c_n")) if key in got})
    return out


def _unit_model(unit: list[NodeRead], x, h_0, c_0):
    """A model of the node(s) alone with their folded constants; per layer, ONNX's Y_h/Y_c are
    joined by Concat into (num_layers*D, N, H) as torch's h_n."""
    from onnx import helper, numpy_helper

    from rnn_cli.errors import RnnCliError

    first = unit[0]
    D, H, lstm = first.D, first.H, first.op == "LSTM"
    dtype = np.float64 if first.arrays["W"].dtype == np.float64 else np.float32
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    L, N, H_in = x.shape
    want = (len(unit) * D, N, H)
    if H_in != first.arrays["W"].shape[-1]:
        raise RnnCliError(f"x has shape {shape_str(x.shape)}, the node takes {first.arrays['W'].shape[-1]} features")
    states = {"h": h_0, "c": c_0 if lstm else None}
    for key, a in states.items():
        if a is not None and a.shape != want:
            raise RnnCliError(f"{key}_0 has shape {shape_str(a.shape)}, the node(s) want {shape_str(want)}")
    feeds = {"X": np.ascontiguousarray(x.astype(dtype))}
    nodes, inits = [], []
    x_name = "X"
    for k, n in enumerate(unit):
        names = {}
        for role in ("W", "R", "B", "P"):
            if role in n.arrays:
                names[role] = f"{role}{k}"
                inits.append(numpy_helper.from_array(n.arrays[role].astype(dtype), names[role]))
        for key in ("h", "c") if lstm else ("h",):
            s = states[key]
            s = np.zeros((D, N, H), dtype) if s is None else s[k * D:(k + 1) * D].astype(dtype)
            feeds[f"{key}{k}"] = np.ascontiguousarray(s)
        inputs = [x_name, names["W"], names["R"], names.get("B", ""), "", f"h{k}", f"c{k}" if lstm else "", names.get("P", "")]
        node = onnx.NodeProto()
        node.CopyFrom(n.found.node)
        node.name = f"layer{k}"
        kept = [a for a in node.attribute if a.name != "layout"]  # onnxruntime runs layout 0 only:
        del node.attribute[:], node.input[:], node.output[:]  # batch-first is transposed outside
        node.attribute.extend(kept)
        node.input.extend(inputs[: 8 if "P" in names else 7 if lstm else 6])
        node.output.extend([f"Y{k}", f"Y_h{k}"] + ([f"Y_c{k}"] if lstm else []))
        nodes.append(node)
        if k + 1 < len(unit):  # the exporter's link: (L, D, N, H) -> (L, N, D*H)
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"shape{k}"))
            nodes += [helper.make_node("Transpose", [f"Y{k}"], [f"T{k}"], perm=[0, 2, 1, 3]),
                      helper.make_node("Reshape", [f"T{k}", f"shape{k}"], [f"X{k + 1}"])]
            x_name = f"X{k + 1}"
    last = len(unit) - 1
    for key in ("Y_h", "Y_c") if lstm else ("Y_h",):
        nodes.append(helper.make_node("Concat", [f"{key}{k}" for k in range(len(unit))], [key], axis=0))
    nodes.append(helper.make_node("Identity", [f"Y{last}"], ["Y"]))
    value = (lambda name: helper.make_tensor_value_info(name, elem, None))
    graph = helper.make_graph(nodes, "unit", [value(n) for n in feeds], [value("Y"), value("Y_h")] + ([value("Y_c")] if lstm else []), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model, feeds
