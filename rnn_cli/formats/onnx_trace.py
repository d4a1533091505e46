"""Where a recurrent node's initial state comes from, found by running the graph with marked
values, for the paths onnx_graph.trace_back cannot follow statically (an If in the way,
arithmetic that leaves values unchanged).

Each float graph input is filled with its own run of distinct integers (exact in float32),
the node's initial_h / initial_c is observed, and its values name the input and the slots of
axis 0 they were taken from. A node inside If branches is observed by inlining its branches
into the main graph (a copy in memory; the file is not changed), so that every branch runs
whatever the condition; Loop and Scan bodies are not followed (their inputs exist only
per iteration). Nodes that the value does not depend on are left out before anything runs.
Unknown dimensions are given size 1, integer inputs zeros; operators whose output size comes
from values (Expand, ConstantOfShape, Tile...), random ones and loops are never run; anything
that fails leaves `from` None.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnn_cli.formats import onnx_graph, safe_read

MAX_MARKS = 2**24  # distinct integers float32 holds exactly
# operators whose output size comes from values (a crafted shape could ask for any amount of
# memory), that draw random numbers, or that loop: a probe holding one of them is not run
NOT_RUN = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot", "Loop", "Scan",
           "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
ROLE_INPUT = {"initial_h": 5, "initial_c": 6}


def trace_states(model, units, modules, src: safe_read.Source) -> list[str]:
    """Fill in `from` where the static trace left None; returns the notes to show."""
    traced = 0
    for unit, m in zip(units, modules):
        for entry in m.states:
            if entry.get("role") not in ROLE_INPUT or entry.get("from") is not None or "constant" in entry:
                continue
            f = unit[entry.get("layer", 0)].found
            got = observe(model, f.scope, f.node.input[ROLE_INPUT[entry["role"]]], src)
            if got is None:
                continue
            name, picks, info = got
            entry.update({"from": name + "".join(onnx_graph.slot_text(a, b) for a, b in picks), "value": name,
                          "shape": onnx_graph.shape_text(info), "traced_by": "onnxruntime"})
            traced += 1
    if not traced:
        return []
    return [f"{traced} state(s) traced by running the graph's nodes before them in onnxruntime on marked inputs"]


def observe(model, scope, name: str, src: safe_read.Source):
    """(graph input, [(start, stop)], its ValueInfo) whose slots `name` holds, or None."""
    flat = _flat_model(model, scope, name, src)
    if flat is None:
        return None
    probe, inputs = flat
    feeds, ranges = {}, {}
    start = 1
    for info in inputs:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in info.type.tensor_type.shape.dim]
        size = int(np.prod(dims, dtype=np.int64))
        if dtype.kind == "f" and start + size < MAX_MARKS:
            feeds[info.name] = (start + np.arange(size)).reshape(dims).astype(dtype)
            ranges[info.name] = (start, size, dims, info)
            start += size
        else:
            feeds[info.name] = np.zeros(dims, dtype)
    from rnn_cli.formats.onnx_check import _session, quiet

    try:
        with quiet():
            (value,) = _session(probe.SerializeToString()).run([name], feeds)
    except Exception:
        return None
    return _match(np.asarray(value, dtype=np.float64).ravel(), ranges)


def _match(values: np.ndarray, ranges: dict):
    """The input and axis-0 slots a run of marked values was cut from; None when it is not one."""
    for name, (start, size, dims, info) in ranges.items():
        if not values.size or values.min() < start or values.max() >= start + size:
            continue
        slot = size // dims[0] if dims and dims[0] else size
        first = int(values[0] - start)
        want = start + first + np.arange(values.size)
        if not np.array_equal(values, want) or first % slot or values.size % slot:
            return None
        a, b = first // slot, (first + values.size) // slot
        return name, ([] if (a, b) == (0, dims[0] if dims else 1) else [(a, b)]), info
    return None


def _flat_model(model, scope, name: str, src: safe_read.Source):
    """The main graph with the If branches around `scope` inlined, cut to what `name` needs;
    None when a Loop/Scan body is in the way."""
    chain = []
    while scope.parent is not None:
        if scope.owner.op_type != "If":
            return None
        chain.append(scope)
        scope = scope.parent
    graphs = [scope.graph] + [s.graph for s in reversed(chain)]
    nodes = [n for g in graphs for n in g.node]
    producers = {o: n for n in nodes for o in n.output if o}
    inits = {t.name: t for g in graphs for t in g.initializer}
    needed, seen, todo = set(), set(), [name]
    while todo:
        v = todo.pop()
        if v in seen or not v:
            continue
        seen.add(v)
        n = producers.get(v)
        if n is not None and id(n) not in needed:
            needed.add(id(n))
            todo += list(n.input) + _captured(n)
    kept = [n for n in nodes if id(n) in needed]
    if not _safe(kept):
        return None
    inputs = [i for i in scope.graph.input if i.name in seen and i.name not in inits]
    tensors = [numpy_helper.from_array(onnx_graph.tensor_array(t, src, f"initializer {t.name}"), t.name)
               for t in inits.values() if t.name in seen]
    graph = helper.make_graph(kept, "probe", inputs, [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)], tensors)  # states are float
    probe = helper.make_model(graph, opset_imports=list(model.opset_import), functions=list(model.functions))
    probe.ir_version = model.ir_version
    return probe, inputs


def _safe(nodes) -> bool:
    """Standard operators only, none of NOT_RUN, in subgraphs too."""
    for n in nodes:
        if n.domain not in ("", "ai.onnx") or n.op_type in NOT_RUN:
            return False
        for attr in n.attribute:
            if not _safe([m for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs) for m in g.node]):
                return False
    return True


def _captured(node) -> list[str]:
    """Every value the subgraphs of a control-flow node read (outer ones among them)."""
    out = []
    for attr in node.attribute:
        for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
            for n in g.node:
                out += list(n.input) + _captured(n)
    return out
