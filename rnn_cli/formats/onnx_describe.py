"""What the exporter made of the module: the ONNX graph described (each recurrent node's
attributes, inputs and outputs with their shapes, the other nodes) and the gate mapping,
each ONNX weight block against the torch rows it must equal.

What changes on the way (ONNX operator spec, opset 14+):
    Y    [seq_length, num_directions, batch_size, hidden_size]   (layout = 0)
         torch's output is (L, N, D*H_out): the exporter adds Transpose(perm 0,2,1,3) + Reshape
    Y_h  [num_directions, batch_size, hidden_size]  one node per layer; h_n concatenates them
    W    [num_directions, G*hidden_size, input_size]   weight_ih_l{k}, weight_ih_l{k}_reverse
    R    [num_directions, G*hidden_size, hidden_size]  weight_hh_l{k}, ...
    B    [num_directions, 2*G*hidden_size]             bias_ih_l{k} then bias_hh_l{k}
    gates, ONNX vs torch:  LSTM i, o, f, c  vs  i, f, g, o;   GRU z, r, h  vs  r, z, n
    packed sequences become the node's sequence_lens input.

numpy at import; onnx only inside the functions that read a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rnn_cli.core import layout
from rnn_cli.core.config import RunConfig

RECURRENT_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}

# ONNX's gate blocks, in ONNX's order, and the torch block each one is taken from.
ONNX_GATES: dict[str, tuple[str, ...]] = {c: layout.gate_names(c, "onnx") or ("",) for c in layout.CELLS}
TORCH_GATES: dict[str, tuple[str, ...]] = {c: layout.gate_names(c, "torch") or ("",) for c in layout.CELLS}
ONNX_FROM_TORCH: dict[str, tuple[int, ...]] = {c: layout.order_from_torch(c, "onnx") for c in layout.CELLS}

NODE_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
NODE_OUTPUTS = ("Y", "Y_h", "Y_c")


def model_opset(model) -> int:
    """The opset of the default (ai.onnx) domain the model was written for."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


# ---- the graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple  # ints, or strings for symbolic dimensions; () when unknown
    dtype: str


@dataclass(frozen=True)
class RecurrentNode:
    index: int  # 0, 1, ...: one per layer, in graph order
    name: str
    op: str  # LSTM | GRU | RNN
    attributes: dict[str, Any]  # direction, hidden_size, layout, activations, linear_before_reset, ...
    inputs: dict[str, TensorInfo | None]  # X, W, R, B, sequence_lens, initial_h, initial_c (None: not given)
    outputs: dict[str, TensorInfo | None]  # Y, Y_h, Y_c
    after_Y: tuple[str, ...]  # the chain of nodes that reads Y: "Transpose perm=(0, 2, 1, 3) -> (10, 1, 2, 8)", ...


@dataclass(frozen=True)
class Graph:
    opset: int
    recurrent: list[RecurrentNode]
    nodes: list[str]  # every other node's op_type, in graph order (Constant nodes left out)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    initializers: list[TensorInfo]

    def node_counts(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for op in self.nodes:
            counts[op] = counts.get(op, 0) + 1
        return list(counts.items())


def _dims(type_proto) -> tuple:
    if not type_proto.tensor_type.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in type_proto.tensor_type.shape.dim)


def _dtype_name(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "?"


def constant_values(model) -> dict[str, np.ndarray]:
    """Every value the graph holds as a constant, by name: initializers, Constant nodes'
    outputs, and Identity nodes that pass either on."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _shapes(model) -> dict[str, TensorInfo]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a nicety: without it, shapes come from constants alone
        inferred = model
    g = inferred.graph
    infos = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        infos[vi.name] = TensorInfo(vi.name, _dims(vi.type), _dtype_name(vi.type.tensor_type.elem_type))
    for name, value in constant_values(model).items():
        infos[name] = TensorInfo(name, tuple(value.shape), value.dtype.name)
    return infos


def _attr(a) -> Any:
    import onnx

    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def describe(model) -> Graph:
    """The recurrent nodes with their attributes and W/R/B/... shapes, the other nodes,
    and the graph's inputs and outputs with their shapes."""
    g = model.graph
    infos = _shapes(model)
    consumers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    recurrent, others = [], []
    for node in g.node:
        if node.op_type in RECURRENT_OPS.values():
            attributes = {a.name: _attr(a) for a in node.attribute}

            def info(name: str) -> TensorInfo | None:
                return (infos.get(name) or TensorInfo(name, (), "?")) if name else None

            inputs = {key: info(node.input[i]) if i < len(node.input) else None for i, key in enumerate(NODE_INPUTS)}
            outputs = {key: info(node.output[i]) if i < len(node.output) else None for i, key in enumerate(NODE_OUTPUTS)}
            if node.op_type != "LSTM":
                inputs.pop("initial_c"), inputs.pop("P"), outputs.pop("Y_c")
            chain, value = [], node.output[0] if node.output else ""
            while value and len(consumers.get(value, [])) == 1 and len(chain) < 4:
                nxt = consumers[value][0]
                if nxt.op_type in RECURRENT_OPS.values():  # the next layer's node reads it as X
                    chain.append(f"{nxt.op_type} {nxt.name or ''} (next layer)".replace("  ", " "))
                    break
                perm = next((_attr(a) for a in nxt.attribute if a.name == "perm"), None)
                value = nxt.output[0]
                shape = infos[value].shape if value in infos else ()
                text = nxt.op_type + (f" perm={tuple(perm)}" if perm is not None else "")
                chain.append(text + (f" -> {layout.shape_str(shape)}" if shape else ""))
            recurrent.append(
                RecurrentNode(len(recurrent), node.name, node.op_type, attributes, inputs, outputs, tuple(chain))
            )
        elif node.op_type != "Constant":
            others.append(node.op_type)
    inputs = [infos.get(i.name) or TensorInfo(i.name, _dims(i.type), "?") for i in g.input]
    inputs = [i for i in inputs if i.name not in {init.name for init in g.initializer}]
    outputs = [infos.get(o.name) or TensorInfo(o.name, _dims(o.type), "?") for o in g.output]
    initializers = [infos[init.name] for init in g.initializer]
    return Graph(model_opset(model), recurrent, others, inputs, outputs, initializers)


# ---- the gate mapping -------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingRow:
    node: int  # recurrent node index = layer
    direction: int  # ONNX's num_directions slot: 0 forward, 1 reverse
    tensor: str  # W | R | B
    rows: tuple[int, int]  # rows [start, stop) of tensor[direction]
    gate: str  # ONNX's gate name (i, o, f, c / z, r, h / "" for RNN)
    torch_param: str  # weight_ih_l0_reverse, ...
    torch_rows: tuple[int, int]
    torch_gate: str  # torch's gate name (i, f, g, o / r, z, n)
    equal: bool | None  # np.array_equal with the exported initializer; None when it was not found

    @property
    def text(self) -> str:
        gate = f" ({self.gate})" if self.gate else ""
        return (
            f"{self.tensor}[{self.direction}] rows {self.rows[0]}:{self.rows[1]} = "
            f"{self.torch_param} rows {self.torch_rows[0]}:{self.torch_rows[1]}{gate}"
        )


def onnx_weights(cfg: RunConfig, params: dict[str, np.ndarray], layer: int) -> dict[str, np.ndarray]:
    """ONNX's W, R (and B when cfg.bias) for one layer, built from torch's parameters:
    the gate blocks reordered into ONNX's order, directions stacked on a new first axis,
    B = [bias_ih, bias_hh] reordered the same way."""
    def regate(a: np.ndarray) -> np.ndarray:  # (G*H, ...) torch order -> ONNX order
        return layout.torch_to(a, cfg.cell, "onnx")

    out: dict[str, list] = {"W": [], "R": [], "B": []}
    for d in range(cfg.D):
        sfx = layout.suffix(layer, d)
        out["W"].append(regate(params[f"weight_ih_{sfx}"]))  # (G*H, H_in of this layer)
        out["R"].append(regate(params[f"weight_hh_{sfx}"]))  # (G*H, H)
        if cfg.bias:
            out["B"].append(np.concatenate([regate(params[f"bias_ih_{sfx}"]), regate(params[f"bias_hh_{sfx}"])]))
    return {k: np.stack(v) for k, v in out.items() if v}  # W (D, G*H, H_in), R (D, G*H, H), B (D, 2*G*H)


def mapping(cfg: RunConfig, params: dict[str, np.ndarray], model) -> list[MappingRow]:
    """For each recurrent node and direction: which rows of which torch parameter became
    which gate block of W, R, B, and whether the exported initializer holds exactly them."""
    graph = describe(model)
    values = constant_values(model)
    H, G = cfg.hidden_size, cfg.gates
    rows: list[MappingRow] = []
    for node in graph.recurrent:
        layer = node.index
        built = onnx_weights(cfg, params, layer)
        for d in range(cfg.D):
            sfx = layout.suffix(layer, d)
            for tensor, torch_name, offset in (("W", "weight_ih", 0), ("R", "weight_hh", 0), ("B", "bias_ih", 0), ("B", "bias_hh", G * H)):
                if tensor == "B" and not cfg.bias:
                    continue
                source = node.inputs.get(tensor)
                exported = values.get(source.name) if source is not None else None
                for slot, k in enumerate(ONNX_FROM_TORCH[cfg.cell]):
                    start = offset + slot * H
                    ours = built[tensor][d, start : start + H]
                    equal = None
                    if exported is not None and exported.shape == built[tensor].shape:
                        equal = bool(np.array_equal(exported[d, start : start + H], ours))
                    elif exported is not None:
                        equal = False
                    rows.append(
                        MappingRow(
                            node=node.index,
                            direction=d,
                            tensor=tensor,
                            rows=(start, start + H),
                            gate=ONNX_GATES[cfg.cell][slot],
                            torch_param=f"{torch_name}_{sfx}",
                            torch_rows=(k * H, (k + 1) * H),
                            torch_gate=TORCH_GATES[cfg.cell][k],
                            equal=equal,
                        )
                    )
    return rows
