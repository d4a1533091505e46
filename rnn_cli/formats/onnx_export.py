"""rnn-cli onnx: export the torch module to ONNX (this module), show what the exporter made
of it (onnx_describe.py), run it in onnxruntime and check it against torch and the float64
numpy reference (onnx_check.py). `report` does all three.

torch, onnx, onnxscript and onnxruntime are optional (the `onnx` extra) and imported
only inside the functions here; nothing else in rnn-cli imports this module eagerly.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from rnn_cli.core import layout
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Provenance, Sample
from rnn_cli.errors import RnnCliError
from rnn_cli.formats.onnx_check import OnnxRun, _require_extra, export_inputs, io_names, quiet, run_onnxruntime
from rnn_cli.formats.onnx_describe import RECURRENT_OPS, Graph, MappingRow, constant_values, describe, mapping, model_opset

EXPORTERS = ("dynamo", "torchscript", "auto")


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


def _check_request(cfg: RunConfig, exporter: str, opset: int | None) -> None:
    """The extra installed, a known exporter, the CPU, an opset the exporter writes."""
    _require_extra()
    if exporter not in EXPORTERS:
        raise RnnCliError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if cfg.device != "cpu" and cfg.device != "auto":
        raise RnnCliError(f"--device {cfg.device}: rnn-cli onnx exports from and runs on the CPU; use --device cpu")
    check_opset(opset, exporter)


def _first_good(cfg: RunConfig, sample: Sample, exporter: str, opset: int | None, order: tuple[str, ...]):
    """(exporter used, model, why each one before it was not taken): the first exporter in
    `order` whose graph matches the module and, for auto, keeps a recurrent node (an
    unrolled graph is taken only when nothing better comes)."""
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
        return name, model, failures
    if unrolled is None:
        raise RnnCliError(f"--exporter {exporter}: " + "; ".join(failures))
    return *unrolled, failures


def _why(cfg: RunConfig, exporter: str, name: str, failures: list[str]) -> str:
    """Why this exporter: asked for, auto's first choice and its reason, or auto's fallback."""
    if exporter != "auto":
        return f"--exporter {exporter}"
    if failures:
        return f"auto: {name}, after " + "; ".join(failures)
    if cfg.lengths is not None:
        return "auto: packed input (--lengths), torchscript first: torch.export cannot trace pack_padded_sequence"
    return "auto: dynamo first, the exporter torch recommends"


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
    _check_request(cfg, exporter, opset)
    if exporter == "auto":
        order = ("torchscript", "dynamo") if cfg.lengths is not None else ("dynamo", "torchscript")
    else:
        order = (exporter,)
    name, model, failures = _first_good(cfg, sample, exporter, opset, order)
    fallback = "; ".join(failures) if failures else None
    input_names = tuple(i.name for i in model.graph.input)
    output_names = tuple(o.name for o in model.graph.output)
    exported = Exported(model, name, _why(cfg, exporter, name, failures), fallback, model_opset(model), input_names,
                        output_names)
    if path is not None:
        from rnn_cli.formats.save import write_atomic

        write_atomic(path, model.SerializeToString(), "--save-onnx")
    return exported


# ---- everything `rnn-cli onnx` shows ----------------------------------------------------------


@dataclass
class OnnxReport:
    cfg: RunConfig
    provenance: Provenance  # where the exported run's numbers came from (seed or the user's files)
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
    return OnnxReport(cfg, sample.provenance, exported, graph, rows, ran, cfg.shapes())


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
