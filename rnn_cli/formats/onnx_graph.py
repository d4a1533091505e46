"""ONNX graphs read as data: parsing with bounds, walking every subgraph, folding constants,
and following a state value to the graph input or output it comes from or goes to.

Nothing in the file runs here except the constant subexpressions that feed a recurrent node's
W, R, B, P, sequence_lens (a whitelist of shape and indexing operators over initializers and
Constant nodes), evaluated by onnx.reference.ReferenceEvaluator on a graph made of those
nodes alone, after their output sizes are bounded by the file's size.

Paths name a node by where it sits: `/` + the node's name (its leading `/` dropped; unnamed
nodes are `OpType_index`, the index in their own graph), and a node inside a subgraph is
`<path of the control-flow node>/<attribute name>/<node>`: `/If_0/then_branch/LSTM_3`,
`/rnn/LSTM` (torch's exporter names its nodes `/rnn/LSTM` already), `/Loop_2/body/GRU_0`;
a GRAPHS attribute adds `[k]`. A path met twice in one graph gets `#index`.

Selections: `state[0]` is slot 0 of the first axis (a Gather of index 0, a Split or Slice one
slot long, squeezed or not), `h_0[0:2]` slots 0 and 1.

onnx is imported here (the `onnx` extra); rnn_cli.formats.checkpoint imports this lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from math import prod

import numpy as np
import onnx
from onnx import numpy_helper

from rnn_cli.formats import safe_read
from rnn_cli.printable import printable

RECURRENT = ("LSTM", "GRU", "RNN")
MAX_DEPTH = 16  # subgraphs inside subgraphs (protobuf refuses about 30: 3 messages per level)
MAX_HOPS = 256  # nodes followed from one value to its constant leaves or its graph input
FOLDABLE = {"Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Concat", "Slice", "Gather",
            "Split", "Flatten", "Constant"}
PASS_THROUGH = {"Identity", "Cast", "Squeeze", "Unsqueeze"}  # the same slots, another shape or dtype


@dataclass
class Scope:
    """One graph: the main graph, or a subgraph (If branch, Loop/Scan body) of `owner`."""

    graph: "onnx.GraphProto"
    prefix: str  # "" for the main graph, "/If_0/then_branch" for a branch
    parent: "Scope | None" = None
    owner: "onnx.NodeProto | None" = None
    depth: int = 0
    producers: dict = field(default_factory=dict)  # value -> (node, output index)
    consumers: dict = field(default_factory=dict)  # value -> [node, ...]
    initializers: dict = field(default_factory=dict)  # name -> TensorProto
    inputs: dict = field(default_factory=dict)  # name -> ValueInfoProto (not initializers)
    outputs: list = field(default_factory=list)  # output names in order

    def __post_init__(self) -> None:
        g = self.graph
        self.initializers = {t.name: t for t in g.initializer}
        self.inputs = {i.name: i for i in g.input if i.name not in self.initializers}
        self.outputs = [o.name for o in g.output]
        for node in g.node:
            for k, out in enumerate(node.output):
                if out:
                    self.producers[out] = (node, k)
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def lookup(self, name: str):
        """(scope, "node" | "init" | "input", what) where `name` is defined, outer scopes included."""
        s = self
        while s is not None:
            if name in s.producers:
                return s, "node", s.producers[name]
            if name in s.initializers:
                return s, "init", s.initializers[name]
            if name in s.inputs:
                return s, "input", s.inputs[name]
            s = s.parent
        return None, "unknown", None


@dataclass
class Found:
    node: "onnx.NodeProto"
    scope: Scope
    path: str


def load(src: safe_read.Source) -> "onnx.ModelProto":
    """The model, parsed from the file's bytes (never its external data files)."""
    with src.open() as f:
        data = f.read()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError, or its recursion limit
        raise src.error(f"is not an ONNX model (protobuf: {printable(str(e)) or type(e).__name__})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise src.error("is not an ONNX model (no graph nodes); a truncated or empty file?")
    return model


def label(node, index: int) -> str:
    return node.name.lstrip("/") or f"{node.op_type}_{index}"


def walk(model, src: safe_read.Source) -> tuple[Scope, list[Found]]:
    """Every LSTM/GRU/RNN node of the default domain, in every subgraph, with its path."""
    main = Scope(model.graph, "")
    found: list[Found] = []
    stack = [main]
    while stack:
        scope = stack.pop()
        seen: set[str] = set()
        for i, node in enumerate(scope.graph.node):
            path = f"{scope.prefix}/{label(node, i)}"
            path = path if path not in seen else f"{path}#{i}"
            seen.add(path)
            if node.op_type in RECURRENT and node.domain in ("", "ai.onnx"):
                found.append(Found(node, scope, path))
            for attr in node.attribute:
                graphs = [(attr.name, attr.g)] if attr.type == onnx.AttributeProto.GRAPH else \
                    [(f"{attr.name}[{k}]", g) for k, g in enumerate(attr.graphs)]
                for name, g in graphs:
                    if scope.depth + 1 > MAX_DEPTH:
                        raise src.error(f"nests subgraphs more than {MAX_DEPTH} deep (at {printable(path)})")
                    stack.append(Scope(g, f"{path}/{name}", scope, node, scope.depth + 1))
    found.sort(key=lambda f: _order(main, f))
    return main, found


def _order(main: Scope, f: Found) -> tuple:
    """Nodes in the order a reader meets them: by graph position, outer graphs first."""
    keys = []
    scope, node = f.scope, f.node
    while scope is not None:
        keys.append(list(scope.graph.node).index(node) if node is not None else 0)
        node, scope = scope.owner, scope.parent
    return tuple(reversed(keys))


def check_tensor(t, src: safe_read.Source, what: str) -> None:
    """A TensorProto's declared size against the file, before numpy sees it."""
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise src.error(f"{printable(what)} declares a negative dimension {tuple(dims)}")
    n = prod(dims)
    if t.data_location != onnx.TensorProto.EXTERNAL and n > src.size:  # an element takes a byte at least
        raise src.error(f"{printable(what)} declares shape {tuple(dims)} = {n:,} elements, "
                        f"more than the {src.size:,} bytes the file holds")


def tensor_array(t, src: safe_read.Source, what: str) -> np.ndarray:
    """The array of a TensorProto, its size checked first; external data (torch's exporter writes
    `model.onnx.data` beside the file) read from a file in the same folder, within its size."""
    check_tensor(t, src, what)
    if t.data_location != onnx.TensorProto.EXTERNAL:
        return numpy_helper.to_array(t)
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if not location or os.path.basename(location) != location or location in (".", ".."):
        raise src.error(f"{printable(what)} names external data {printable(location)!r}: "
                        "rnn-cli reads external data only from a file beside the model")
    data = safe_read.source(os.path.join(os.path.dirname(src.path), location))
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
    offset, nbytes = int(info.get("offset", 0) or 0), prod(int(d) for d in t.dims) * dtype.itemsize
    if offset < 0 or offset + nbytes > data.size or int(info.get("length", nbytes) or nbytes) != nbytes:
        raise src.error(f"{printable(what)} declares {nbytes:,} bytes at offset {offset:,} of {printable(location)}, "
                        f"which holds {data.size:,}")
    with data.open() as f:
        f.seek(offset)
        raw = f.read(nbytes)
    return np.frombuffer(raw, dtype=dtype).reshape([int(d) for d in t.dims]).copy()


class Constants:
    """Values that are constant: initializers, Constant nodes, and FOLDABLE nodes over them."""

    def __init__(self, model, src: safe_read.Source) -> None:
        self.src = src
        self.opsets = list(model.opset_import)
        self.cache: dict[tuple[int, str], np.ndarray | None] = {}
        self.leaves: set[str] = set()  # initializers read (for inspect's "other tensors")

    def value(self, scope: Scope, name: str) -> np.ndarray | None:
        """The array `name` holds whatever the inputs, or None when it depends on them."""
        if not name:
            return None
        key = (id(scope.graph), name)
        if key not in self.cache:
            self.cache[key] = self._fold(scope, name)
        return self.cache[key]

    def _fold(self, scope: Scope, name: str) -> np.ndarray | None:
        leaves: dict[str, np.ndarray] = {}
        nodes: list = []
        if not self._collect(scope, name, leaves, nodes, set()):
            return None
        if not nodes:
            return leaves[name]
        self._check_sizes(leaves, nodes)
        from onnx.reference import ReferenceEvaluator

        graph = onnx.helper.make_graph(
            nodes, "constants", [], [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)],
            [numpy_helper.from_array(a, n) for n, a in leaves.items()])
        model = onnx.helper.make_model(graph, opset_imports=self.opsets)
        try:
            with safe_read.quiet_libraries():
                return np.asarray(ReferenceEvaluator(model).run(None, {})[0])
        except Exception as e:
            raise self.src.error(f"the constants feeding {printable(name)} cannot be evaluated "
                                 f"({type(e).__name__}: {printable(str(e).splitlines()[0] if str(e) else '')})") from None

    def _collect(self, scope, name, leaves, nodes, seen) -> bool:
        """Post-order: the FOLDABLE nodes computing `name` into `nodes`, initializers into `leaves`."""
        if name in seen or name in leaves:
            return True
        if len(seen) > MAX_HOPS:
            return False
        seen.add(name)
        where, kind, what = scope.lookup(name)
        if kind == "init":
            leaves[name] = tensor_array(what, self.src, f"initializer {name}")
            self.leaves.add(name)
            return True
        if kind != "node" or what[0].op_type not in FOLDABLE or what[0].domain not in ("", "ai.onnx"):
            return False
        node = what[0]
        value = [a for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR]
        if node.op_type == "Constant" and value:
            leaves[name] = tensor_array(value[0].t, self.src, f"Constant {node.name or name}")
            return True
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                check_tensor(attr.t, self.src, f"{node.op_type} {node.name or name}")
        if not all(self._collect(where, i, leaves, nodes, seen) for i in node.input if i):
            return False
        if node not in nodes:
            nodes.append(node)
        return True

    def _check_sizes(self, leaves, nodes) -> None:
        """Upper bounds of every folded value (Concat sums, Gather multiplies) against the file."""
        size = {n: int(a.size) for n, a in leaves.items()}
        for node in nodes:
            ins = [size.get(i, 0) for i in node.input if i]
            if node.op_type == "Concat":
                bound = sum(ins)
            elif node.op_type == "Gather":
                bound = prod(ins[:2]) if len(ins) >= 2 else 0
            elif node.op_type == "Constant":  # value_floats, value_ints...: already in memory
                bound = max(1, sum(len(a.floats) + len(a.ints) for a in node.attribute))
            else:
                bound = ins[0] if ins else 0
            if bound > self.src.size:
                raise self.src.error(f"a constant expression ({printable(node.op_type)} {printable(node.name)}) "
                                     f"would hold up to {bound:,} elements, more than the file's {self.src.size:,} bytes justify")
            for out in node.output:
                size[out] = bound


# ---- where a state comes from and goes ---------------------------------------------------------


def ints(consts: Constants, scope: Scope, node, position: int, attr: str) -> list[int] | None:
    """An integer list given as input `position` (opset 13+) or attribute `attr` (before)."""
    if len(node.input) > position and node.input[position]:
        v = consts.value(scope, node.input[position])
        return None if v is None else [int(x) for x in np.ravel(v)]
    a = next((a for a in node.attribute if a.name == attr), None)
    return None if a is None else list(a.ints) or ([int(a.i)] if a.type == onnx.AttributeProto.INT else [])


def _attr_int(node, name: str, default: int) -> int:
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else int(a.i)


def slot_text(start: int, stop: int) -> str:
    return f"[{start}]" if stop == start + 1 else f"[{start}:{stop}]"


def trace_back(consts: Constants, scope: Scope, name: str) -> tuple[str, list] | None:
    """(graph input, [(start, stop), ...]) that `name` holds, statically: ("state", [(0, 1)]) for
    state[0], slots of axis 0 picked in the order applied; None when the path crosses anything but
    PASS_THROUGH and Gather/Slice/Split on axis 0 (or reaches a subgraph's own inputs)."""
    picks: list[tuple[int, int]] = []
    for _ in range(MAX_HOPS):
        where, kind, what = scope.lookup(name)
        if kind == "input":
            return (name, list(reversed(picks))) if where.parent is None else None
        if kind != "node":
            return None
        node, k = what
        op, scope = node.op_type, where
        pick = _pick(consts, scope, node, k) if op not in PASS_THROUGH else ()
        if pick is None:
            return None
        if pick:
            picks.append(pick)
        name = node.input[0]
    return None


def _pick(consts: Constants, scope: Scope, node, k: int) -> tuple[int, int] | None:
    """The slots of axis 0 a Gather/Slice/Split keeps; None for anything else."""
    op = node.op_type
    if op == "Gather" and _attr_int(node, "axis", 0) == 0:
        idx = consts.value(scope, node.input[1])
        if idx is None or idx.size != 1 or int(idx.ravel()[0]) < 0:
            return None
        return int(idx.ravel()[0]), int(idx.ravel()[0]) + 1
    if op == "Slice":
        starts, ends = ints(consts, scope, node, 1, "starts"), ints(consts, scope, node, 2, "ends")
        axes, steps = ints(consts, scope, node, 3, "axes") or [0], ints(consts, scope, node, 4, "steps") or [1]
        if not starts or not ends or axes != [0] or steps != [1] or starts[0] < 0 or ends[0] < 0:
            return None
        stop = ends[0] if ends[0] < 2**31 else _dim0(scope, node.input[0])  # INT_MAX: to the end
        return None if stop is None else (starts[0], stop)
    if op == "Split" and _attr_int(node, "axis", 0) == 0:
        sizes = ints(consts, scope, node, 1, "split")
        if not sizes:
            sizes = [1] * len(node.output)  # equal parts: a state split into its slots
            if _dim0(scope, node.input[0]) not in (None, len(node.output)):
                return None
        return sum(sizes[:k]), sum(sizes[: k + 1])
    return None


def run_time_zeros(consts: Constants, scope: Scope, name: str) -> str | None:
    """`zeros (shape at run time)` for Expand of constant zeros or ConstantOfShape of zero (the
    exporters' default state, sized from the input's batch); None otherwise."""
    for _ in range(MAX_HOPS):
        where, kind, what = scope.lookup(name)
        if kind != "node":
            return None
        node, scope = what[0], where
        if node.op_type in PASS_THROUGH:
            name = node.input[0]
            continue
        if node.op_type == "Expand":
            fill = consts.value(scope, node.input[0])
        elif node.op_type == "ConstantOfShape":
            value = [a.t for a in node.attribute if a.name == "value"]
            fill = numpy_helper.to_array(value[0]) if value and prod(value[0].dims) <= 1 else np.zeros(1)
        else:
            return None
        return "zeros (shape at run time)" if fill is not None and not np.any(fill) else None
    return None


def _dim0(scope: Scope, name: str) -> int | None:
    """The first dimension of a graph input as declared, or of an Unsqueeze(axes=[0]) output."""
    where, kind, what = scope.lookup(name)
    if kind == "input":
        dims = what.type.tensor_type.shape.dim
        return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None
    return None


def trace_forward(consts: Constants, scope: Scope, name: str, width: int) -> list[tuple[str, tuple[int, int] | None]]:
    """Every (graph output, (start, stop) on its axis 0, or None: all of it) that receives `name`
    (`width` slots on axis 0), statically through PASS_THROUGH and Concat on axis 0, and out of
    If branches into the If's outputs. A Squeeze of axis 0 drops the slot axis, an Unsqueeze of
    axis 0 makes a new one."""
    found, todo, hops = [], [(scope, name, 0, width, False)], 0
    while todo and hops < MAX_HOPS:
        scope, name, start, width, squeezed = todo.pop(0)
        hops += 1
        if name in scope.outputs:
            if scope.parent is None:
                found.append((name, None if squeezed else (start, start + width)))
            elif scope.owner.op_type == "If":
                todo.append((scope.parent, scope.owner.output[scope.outputs.index(name)], start, width, squeezed))
        for node in scope.consumers.get(name, []):
            axes = ints(consts, scope, node, 1, "axes") if node.op_type in ("Squeeze", "Unsqueeze") else None
            if node.op_type == "Unsqueeze" and axes == [0]:
                todo.append((scope, node.output[0], 0, 1, False))
            elif node.op_type == "Squeeze" and axes == [0] and width == 1 and not squeezed:
                todo.append((scope, node.output[0], 0, 1, True))
            elif node.op_type in ("Identity", "Cast"):
                todo.append((scope, node.output[0], start, width, squeezed))
            elif node.op_type == "Concat" and _attr_int(node, "axis", 0) == 0 and not squeezed:
                before = list(node.input)[: list(node.input).index(name)]
                widths = [_width(consts, scope, b) for b in before]
                if None not in widths:
                    todo.append((scope, node.output[0], start + sum(widths), width, False))
    return found


def _width(consts: Constants, scope: Scope, name: str) -> int | None:
    """Slots on axis 0 of a value feeding a Concat: Unsqueeze(axes=[0]) -> 1, a recurrent node's
    Y_h/Y_c -> num_directions, a graph input as declared."""
    where, kind, what = scope.lookup(name)
    if kind != "node":
        return _dim0(scope, name)
    node, k = what
    if node.op_type == "Unsqueeze" and ints(consts, where, node, 1, "axes") == [0]:
        return 1
    if node.op_type in RECURRENT and k in (1, 2):
        return 2 if direction(node) == "bidirectional" else 1
    if node.op_type in PASS_THROUGH - {"Unsqueeze", "Squeeze"}:
        return _width(consts, where, node.input[0])
    return None


def direction(node) -> str:
    a = next((a for a in node.attribute if a.name == "direction"), None)
    return a.s.decode("utf-8", "replace") if a is not None else "forward"


def shape_text(info) -> str:
    """A graph input's or output's declared shape: (2, N, 128); ? for a dimension it leaves open."""
    dims = info.type.tensor_type.shape.dim
    parts = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def input_info(scope: Scope, name: str):
    s = scope
    while s.parent is not None:
        s = s.parent
    return s.inputs.get(name) or next((o for o in s.graph.output if o.name == name), None)

