"""rnn-cli onnx: export the torch module to ONNX, show what the exporter made of it, run
it in onnxruntime and check it against torch and the float64 numpy reference.

What changes on the way (ONNX operator spec, opset 14+):
    Y    [seq_length, num_directions, batch_size, hidden_size]   (layout = 0)
         torch's output is (L, N, D*H_out): the exporter adds Transpose(perm 0,2,1,3) + Reshape
    Y_h  [num_directions, batch_size, hidden_size]  one node per layer; h_n concatenates them
    W    [num_directions, G*hidden_size, input_size]   weight_ih_l{k}, weight_ih_l{k}_reverse
    R    [num_directions, G*hidden_size, hidden_size]  weight_hh_l{k}, ...
    B    [num_directions, 2*G*hidden_size]             bias_ih_l{k} then bias_hh_l{k}
    gates, ONNX vs torch:  LSTM i, o, f, c  vs  i, f, g, o;   GRU z, r, h  vs  r, z, n
    packed sequences become the node's sequence_lens input.

torch, onnx, onnxscript and onnxruntime are optional (the `onnx` extra) and imported
only inside the functions here; nothing else in rnn-cli imports this module eagerly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from rnn_cli.core import layout
from rnn_cli.core.compare import TensorCheck, Tolerance, check_tensor, default_tolerance, upcast
from rnn_cli.core.config import RunConfig
from rnn_cli.errors import RnnCliError
from rnn_cli.core.sample import Sample, state_to_user_layout, to_user_layout

MISSING_EXTRA = "rnn-cli onnx needs the onnx extra: pip install 'rnn-cli[onnx]'"
EXPORTERS = ("dynamo", "torchscript", "auto")
RECURRENT_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}

# ONNX's gate blocks, in ONNX's order, and the torch block each one is taken from.
ONNX_GATES: dict[str, tuple[str, ...]] = {c: layout.gate_names(c, "onnx") or ("",) for c in layout.CELLS}
TORCH_GATES: dict[str, tuple[str, ...]] = {c: layout.gate_names(c, "torch") or ("",) for c in layout.CELLS}
ONNX_FROM_TORCH: dict[str, tuple[int, ...]] = {c: layout.order_from_torch(c, "onnx") for c in layout.CELLS}

NODE_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
NODE_OUTPUTS = ("Y", "Y_h", "Y_c")


def _require_extra() -> None:
    """One line naming the extra when onnx, onnxscript or onnxruntime is missing."""
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise RnnCliError(MISSING_EXTRA) from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow everything the exporters and onnxruntime say: Python prints and warnings,
    logging, and what their C++ code writes straight to file descriptors 1 and 2. The
    --json document must be the only thing on stdout."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {}
    with tempfile.TemporaryFile() as sink:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved[fd] = os.dup(fd)
                os.dup2(sink.fileno(), fd)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield
        finally:
            for fd, old in saved.items():
                os.dup2(old, fd)
                os.close(old)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


# ---- export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    model: Any  # onnx.ModelProto
    exporter_used: str  # "dynamo" | "torchscript"
    why: str  # why this exporter: asked for, or auto's reason
    fallback_reason: str | None  # why auto's first choice was not used
    opset: int
    input_names: tuple[str, ...]  # the graph's inputs, in order: input, h_0[, c_0][, lengths]
    output_names: tuple[str, ...]  # output, h_n[, c_n]


def io_names(cfg: RunConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    inputs = ("input", "h_0") + (("c_0",) if cfg.has_c else ()) + (("lengths",) if cfg.lengths is not None else ())
    outputs = ("output", "h_n") + (("c_n",) if cfg.has_c else ())
    return inputs, outputs


def _wrapper(cfg: RunConfig, module):
    """module wrapped to take (input, h_0[, c_0][, lengths]) and return (output, h_n[, c_n]),
    packing with pack_padded_sequence / pad_packed_sequence when cfg.lengths is set."""
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Exportable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = module

        def forward(self, *inputs):
            x, h_0 = inputs[0], inputs[1]
            hx = (h_0, inputs[2]) if cfg.has_c else h_0
            if cfg.lengths is None:
                output, state = self.rnn(x, hx)
            else:
                lengths = inputs[-1]
                packed = pack_padded_sequence(x, lengths, batch_first=cfg.batch_first, enforce_sorted=False)
                packed_out, state = self.rnn(packed, hx)
                output, _ = pad_packed_sequence(packed_out, batch_first=cfg.batch_first, total_length=cfg.seq_len)
            return (output,) + (state if isinstance(state, tuple) else (state,))

    return Exportable().eval()


def export_inputs(cfg: RunConfig, sample: Sample) -> dict[str, np.ndarray]:
    """The graph's inputs in the user's layout, by name: what torch and onnxruntime both get."""
    feeds = {"input": to_user_layout(cfg, sample.x), "h_0": state_to_user_layout(cfg, sample.h_0)}
    if sample.c_0 is not None:
        feeds["c_0"] = state_to_user_layout(cfg, sample.c_0)
    if cfg.lengths is not None:
        feeds["lengths"] = np.asarray(cfg.lengths, dtype=np.int64)
    return feeds


def _reason(exc: BaseException) -> str:
    """The innermost cause's first line, without colour codes: one line for the user."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(inner)).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    text = re.split(r"\s+\[Caused by| Please feel free", text)[0]  # torchscript's boilerplate tail
    text = f"{type(inner).__name__}: {text}" if text else type(inner).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _export_once(cfg: RunConfig, sample: Sample, exporter: str, opset: int | None):
    import onnx
    import torch

    from rnn_cli.core import torch_run

    module, _, _ = torch_run.prepare(cfg, sample, torch.device("cpu"))
    wrapped = _wrapper(cfg, module)
    input_names, output_names = io_names(cfg)
    args = tuple(torch.from_numpy(a) for a in export_inputs(cfg, sample).values())
    kwargs: dict = {"input_names": list(input_names), "output_names": list(output_names)}
    if opset is not None:
        kwargs["opset_version"] = opset
    with quiet():
        if exporter == "dynamo":
            program = torch.onnx.export(wrapped, args, dynamo=True, verbose=False, **kwargs)
            model = program.model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(wrapped, args, buffer, dynamo=False, **kwargs)
            model = onnx.load_from_string(buffer.getvalue())
    return model


def _problem(cfg: RunConfig, model) -> str | None:
    """Why an exported graph cannot stand for the module, or None. Checks each recurrent
    node against the configuration: ONNX's LSTM has no projection, so an exporter that
    writes one anyway (hidden_size = proj_size) has dropped weight_hr."""
    graph = describe(model)
    if cfg.proj_size and not graph.recurrent:
        return None  # decomposed into MatMul/...: onnxruntime's compare will judge it
    for node in graph.recurrent:
        hidden = node.attributes.get("hidden_size")
        if node.op != RECURRENT_OPS[cfg.cell] or hidden != cfg.hidden_size:
            w_shape = _w_shape(model, node)
            note = "; ONNX's LSTM has no projection (weight_hr is dropped)" if cfg.proj_size else ""
            return f"it wrote a {node.op} node with hidden_size {hidden}{w_shape}, not {cfg.hidden_size}{note}"
    return None


def _w_shape(model, node) -> str:
    """` and W (1, 12, 5)`: from the graph's shape information, else from the constant that
    holds W (dynamo's graphs leave it out), else that it is not stated (never an empty `()`)."""
    w = node.inputs.get("W")
    if w is None:
        return ""
    shape = tuple(w.shape or ())
    if not shape or any(not isinstance(d, int) for d in shape):
        value = constant_values(model).get(w.name)
        shape = tuple(value.shape) if value is not None else ()
    return f" and W {layout.shape_str(shape)}" if shape else " and W of a shape the graph does not state"


def opset_range(exporter: str) -> tuple[int, int]:
    """The opsets the installed exporter(s) can write and the installed onnx knows: torch's own
    bounds (torch.onnx._constants), the torchscript exporter's lower ceiling, onnx's newest."""
    import onnx.defs
    from torch.onnx import _constants as c

    low = getattr(c, "ONNX_MIN_OPSET", 7)
    high = min(getattr(c, "ONNX_MAX_OPSET", onnx.defs.onnx_opset_version()), onnx.defs.onnx_opset_version())
    if exporter == "torchscript":
        high = min(high, getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", high))
    return low, high


def check_opset(opset: int | None, exporter: str) -> None:
    """--opset outside what the exporter supports is refused (it was silently replaced)."""
    if opset is None:
        return
    low, high = opset_range(exporter)
    if not low <= opset <= high:
        import torch

        which = "the torchscript exporter" if exporter == "torchscript" else "torch.onnx"
        raise RnnCliError(f"--opset {opset}: {which} of torch {torch.__version__} writes opsets {low} to {high}")


def export(
    cfg: RunConfig,
    sample: Sample,
    exporter: str = "auto",
    opset: int | None = None,
    path: Path | None = None,
) -> Exported:
    """Export the module (the packing wrapper included with cfg.lengths) to ONNX.

    auto tries dynamo first for unpacked input and torchscript first for packed input
    (torch.export cannot trace pack_padded_sequence's data-dependent batch sizes), and
    takes the other when the first fails, writes a wrong graph, or unrolls the recurrence
    into MatMul/Add nodes where the other keeps one recurrent node per layer.
    Failure: RnnCliError, one line naming the exporter(s) and the reason.
    """
    _require_extra()
    if exporter not in EXPORTERS:
        raise RnnCliError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if cfg.device != "cpu" and cfg.device != "auto":
        raise RnnCliError(f"--device {cfg.device}: rnn-cli onnx exports from and runs on the CPU; use --device cpu")
    check_opset(opset, exporter)
    if exporter == "auto":
        order = ("torchscript", "dynamo") if cfg.lengths is not None else ("dynamo", "torchscript")
    else:
        order = (exporter,)
    failures: list[str] = []
    unrolled = None  # a working graph without a recurrent node, kept in case nothing better comes
    for name in order:
        try:
            model = _export_once(cfg, sample, name, opset)
        except Exception as e:  # the exporters raise anything from torch.export to SymbolicValueError
            failures.append(f"{name} failed ({_reason(e)})")
            continue
        problem = _problem(cfg, model)
        if problem is not None:
            failures.append(f"{name} wrote a graph that does not match the module: {problem}")
            continue
        if exporter == "auto" and not describe(model).recurrent and name != order[-1]:
            failures.append(f"{name} unrolled the recurrence into MatMul/Add nodes (no {RECURRENT_OPS[cfg.cell]} node)")
            unrolled = (name, model)
            continue
        break
    else:
        if unrolled is None:
            raise RnnCliError(f"--exporter {exporter}: " + "; ".join(failures))
        name, model = unrolled
    if exporter != "auto":
        why = f"--exporter {exporter}"
    elif not failures:
        why = (
            "auto: packed input (--lengths), torchscript first: torch.export cannot trace pack_padded_sequence"
            if cfg.lengths is not None
            else "auto: dynamo first, the exporter torch recommends"
        )
    else:
        why = f"auto: {name}, after " + "; ".join(failures)
    fallback = "; ".join(failures) if failures else None
    input_names = tuple(i.name for i in model.graph.input)
    output_names = tuple(o.name for o in model.graph.output)
    exported = Exported(model, name, why, fallback, _opset(model), input_names, output_names)
    if path is not None:
        from rnn_cli.formats.save import write_atomic

        write_atomic(path, model.SerializeToString(), "--save-onnx")
    return exported


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


# ---- describe ---------------------------------------------------------------------------------


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
    return Graph(_opset(model), recurrent, others, inputs, outputs, initializers)


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


# ---- onnxruntime and the checks ---------------------------------------------------------------


@dataclass
class OnnxRun:
    outputs: dict[str, np.ndarray]  # onnxruntime's output, h_n[, c_n], in torch's (the user's) layout
    torch_outputs: dict[str, np.ndarray]
    tolerance: Tolerance
    vs_torch: list[TensorCheck]
    vs_reference: list[TensorCheck]  # the float64 numpy reference
    y_checks: list[TensorCheck] = field(default_factory=list)  # each node's Y, Y_h[, Y_c] vs the reference rebuilt in ONNX's layout
    batch_order: list[int] = field(default_factory=list)  # batch index n of the user's input at each batch slot inside the nodes

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.vs_torch + self.vs_reference + self.y_checks)


def onnx_states(cfg: RunConfig, fwd, layer: int) -> dict[str, np.ndarray]:
    """ONNX's Y [L, D, N, H], Y_h [D, N, H] (and Y_c) for one layer, rebuilt from the
    reference's time-major per-layer output (L, N, D*H_out) and its h_n / c_n."""
    layer_out = fwd.layer_outputs[layer] if layer < cfg.num_layers - 1 else fwd.output  # (L, N, D*H_out)
    L, N, _ = layer_out.shape
    Y = layer_out.reshape(L, N, cfg.D, cfg.H_out).transpose(0, 2, 1, 3)  # (L, D, N, H_out)
    rows = slice(layer * cfg.D, (layer + 1) * cfg.D)
    states = {"Y": Y, "Y_h": fwd.h_n[rows]}  # (D, N, H_out)
    if fwd.c_n is not None:
        states["Y_c"] = fwd.c_n[rows]  # (D, N, H_cell)
    return states


def _session(model_bytes: bytes, provider: str = "CPUExecutionProvider", threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes, options, providers=[provider])


def torch_cpu_outputs(cfg: RunConfig, sample: Sample) -> dict[str, np.ndarray]:
    """torch's output, h_n[, c_n] on the CPU for the sample, in the user's layout, by name."""
    import torch

    from rnn_cli.core import torch_run

    module, x, hx = torch_run.prepare(cfg, sample, torch.device("cpu"))
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output, state, _ = torch_run.forward(cfg, module, x, hx)
    states = state if isinstance(state, tuple) else (state,)
    return dict(zip(io_names(cfg)[1], (t.numpy() for t in (output,) + states)))


def _ort_run(model, feeds: dict[str, np.ndarray], cfg: RunConfig) -> list[np.ndarray]:
    try:
        with quiet():
            session = _session(model.SerializeToString())
            wanted = {i.name: feeds[i.name] for i in session.get_inputs()}
            return session.run(None, wanted)
    except Exception as e:
        message = re.sub(r"\s+", " ", str(e)).strip()
        status = message.split("Status Message:")[-1].strip()
        if cfg.dtype == "float64":
            raise RnnCliError(f"--dtype float64: onnxruntime cannot run this graph ({status}); use --dtype float32") from None
        raise RnnCliError(f"onnxruntime could not run the exported graph: {status}") from None


def with_node_outputs(model, graph: Graph):
    """A copy of the model whose outputs also include every recurrent node's Y, Y_h[, Y_c]
    and the first node's X (which tells the batch order inside the graph)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    elem = model.graph.input[0].type.tensor_type.elem_type
    present = {o.name for o in copy.graph.output}
    for node in graph.recurrent:
        infos = list(node.outputs.values()) + ([node.inputs["X"]] if node.index == 0 else [])
        for info in infos:
            if info is not None and info.name not in present:
                copy.graph.output.append(onnx.helper.make_tensor_value_info(info.name, elem, None))
                present.add(info.name)
    return copy


def node_batch_order(cfg: RunConfig, graph: Graph, by_name: dict[str, np.ndarray], sample: Sample) -> list[int]:
    """Which of the user's sequences sits at each batch slot of the recurrent nodes.

    With --lengths the exporters sort the batch by length (TopK + Gather, as
    pack_padded_sequence does with enforce_sorted=False) before the first node, so the
    nodes' batch axis is a permutation of the user's. Found by matching the first node's
    X, column by column, against the input exactly; identity when nothing is sorted."""
    N = cfg.N
    identity = list(range(N))
    if not graph.recurrent or graph.recurrent[0].inputs["X"] is None:
        return identity
    X = by_name.get(graph.recurrent[0].inputs["X"].name)
    if X is None:
        return identity
    if graph.recurrent[0].attributes.get("layout", 0) == 1:
        X = X.transpose(1, 0, 2)  # [N, L, H_in] -> [L, N, H_in]
    if X.shape != sample.x.shape:
        return identity
    order = []
    for j in range(N):
        match = [n for n in range(N) if np.array_equal(X[:, j], sample.x[:, n])]
        order.append(match[0] if match else j)
    return order


def run_onnxruntime(model, cfg: RunConfig, sample: Sample) -> OnnxRun:
    """Run the exported model in onnxruntime on the sample; compare output, h_n[, c_n] with
    torch and with the float64 reference (compare's tolerance rules), and each recurrent
    node's Y, Y_h[, Y_c] with the reference rebuilt in ONNX's layout."""
    _require_extra()
    from rnn_cli.core import manual

    graph = describe(model)
    feeds = export_inputs(cfg, sample)
    probe = with_node_outputs(model, graph)
    results = _ort_run(probe, feeds, cfg)
    by_name = dict(zip((o.name for o in probe.graph.output), results))
    _, output_names = io_names(cfg)
    got = dict(zip(output_names, results[: len(output_names)]))

    torch_outputs = torch_cpu_outputs(cfg, sample)

    ref64 = upcast(sample)
    fwd = manual.forward(replace(cfg, dtype="float64"), ref64.params, ref64.x, ref64.h_0, ref64.c_0, keep_layers=True)
    reference = {"output": to_user_layout(cfg, fwd.output), "h_n": state_to_user_layout(cfg, fwd.h_n)}
    if fwd.c_n is not None:
        reference["c_n"] = state_to_user_layout(cfg, fwd.c_n)

    tol = default_tolerance(cfg.dtype, on_cuda=False, tf32=None)
    vs_torch = [check_tensor(n, got[n], torch_outputs[n], tol) for n in output_names]
    vs_reference = [check_tensor(n, got[n], reference[n], tol) for n in output_names]
    order = node_batch_order(cfg, graph, by_name, sample)
    y_checks = []
    for node in graph.recurrent:
        expected = onnx_states(cfg, fwd, node.index)
        for key, want in expected.items():
            want = want[:, :, order] if key == "Y" else want[:, order]  # the graph's batch order
            info = node.outputs.get(key)
            if info is None or info.name not in by_name:
                continue
            have = by_name[info.name]
            if key == "Y" and node.attributes.get("layout", 0) == 1:  # [N, L, D, H]
                have = have.transpose(1, 2, 0, 3)
            elif key != "Y" and node.attributes.get("layout", 0) == 1:  # [N, D, H]
                have = have.transpose(1, 0, 2)
            y_checks.append(check_tensor(f"{node.op} {node.index} {key}", have, want, tol))
    return OnnxRun(got, torch_outputs, tol, vs_torch, vs_reference, y_checks, order)


# ---- everything `rnn-cli onnx` shows ----------------------------------------------------------


@dataclass
class OnnxReport:
    cfg: RunConfig
    exported: Exported
    graph: Graph
    mapping: list[MappingRow]
    run: OnnxRun
    torch_shapes: dict[str, tuple[int, ...]]  # cfg.shapes(): what torch takes and returns

    @property
    def ok(self) -> bool:
        return self.run.ok and all(r.equal is not False for r in self.mapping)


def report(cfg: RunConfig, sample: Sample, exporter: str = "auto", opset: int | None = None, path: Path | None = None,
           progress: Callable[[str], None] | None = None) -> OnnxReport:
    """Export, describe, map and run: what `rnn-cli onnx` calls. progress(text) names each step."""
    step = progress or (lambda text: None)
    step(f"exporting with torch.onnx ({exporter})")
    exported = export(cfg, sample, exporter, opset, path)
    step(f"exported with {exported.exporter_used}; mapping the weights")
    graph = describe(exported.model)
    rows = mapping(cfg, sample.params, exported.model)
    step("running onnxruntime and the float64 reference")
    ran = run_onnxruntime(exported.model, cfg, sample)
    return OnnxReport(cfg, exported, graph, rows, ran, cfg.shapes())


# ---- memory: what report() holds at its peak (the guard asks; tests/test_memory_calibration.py measures) ----


def session_bytes(cfg: RunConfig) -> int:
    """What an onnxruntime session holds after one run of the graph: its arena keeps what the
    recurrent nodes allocated (the input projection of every step (L, N, G*H_cell) per
    direction, Y (L, D, N, H_out) and its copy out), grown in powers of two: up to twice that."""
    from rnn_cli.core.config import ITEMSIZE

    LN = cfg.seq_len * cfg.N
    return 2 * ITEMSIZE[cfg.dtype] * (cfg.D * LN * cfg.gates * cfg.hidden_size + 2 * LN * cfg.D * cfg.H_out)


def peak_bytes(cfg: RunConfig) -> int:
    """Bytes report() holds at its peak beyond the sample, for the memory guard: the export
    (torch's module and one traced forward, torch_peak.forward_bytes, beside the ModelProto,
    its bytes and onnxruntime's copy of the weights); onnxruntime's run (session_bytes) and its
    results, kept to the end (with_node_outputs: every node's Y (L, N, D*H_out) and the first
    node's X (L, N, H_in)); beside them torch's output (torch_cpu_outputs), then the float64
    reference with every layer's output (manual.peak_bytes, keep_layers) (measured: as if the
    session's arena were still held, 0.89 of the peak without it), then the checks: the
    batch-ordered copy of a node's Y and check_tensor's |ref|, |diff|, relative error and mask."""
    from rnn_cli.core import manual, torch_peak
    from rnn_cli.core.config import ITEMSIZE, sample_bytes

    item, ref = ITEMSIZE[cfg.dtype], replace(cfg, dtype="float64")
    LN, out = cfg.seq_len * cfg.N, cfg.seq_len * cfg.N * cfg.D * cfg.H_out
    weights = 3 * item * cfg.num_parameters()
    ort = item * (cfg.num_layers * out + LN * cfg.input_size)
    kept = ort + item * out + sample_bytes(ref)
    phases = [
        weights + torch_peak.forward_bytes(cfg),
        weights + session_bytes(cfg) + ort,
        ort + torch_peak.forward_bytes(cfg),
        kept + session_bytes(cfg) + manual.peak_bytes(ref, keep_layers=True),
        kept + 8 * cfg.num_layers * out + (8 + 3 * 8 + 1) * out,
    ]
    return max(phases)
