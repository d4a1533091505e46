"""Running the exported graph in onnxruntime and checking it: against torch and against the
float64 numpy reference (compare's tolerance rules), and each recurrent node's Y, Y_h[, Y_c]
against the reference rebuilt in ONNX's layout. Also what the exporter and onnxruntime share:
the graph's input and output names, its inputs from a sample, and `quiet`, which keeps their
messages off stdout and stderr.

torch, onnx, onnxscript and onnxruntime are optional (the `onnx` extra) and imported only
inside the functions here.
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
from typing import Iterator

import numpy as np

from rnn_cli.core.compare import TensorCheck, Tolerance, check_tensor, default_tolerance, upcast
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Sample, state_to_user_layout, to_user_layout
from rnn_cli.errors import RnnCliError
from rnn_cli.formats.onnx_describe import Graph, describe

MISSING_EXTRA = "rnn-cli onnx needs the onnx extra: pip install 'rnn-cli[onnx]'"


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


# ---- the graph's inputs and outputs ----------------------------------------------------------


def io_names(cfg: RunConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    inputs = ("input", "h_0") + (("c_0",) if cfg.has_c else ()) + (("lengths",) if cfg.lengths is not None else ())
    outputs = ("output", "h_n") + (("c_n",) if cfg.has_c else ())
    return inputs, outputs


def export_inputs(cfg: RunConfig, sample: Sample) -> dict[str, np.ndarray]:
    """The graph's inputs in the user's layout, by name: what torch and onnxruntime both get."""
    feeds = {"input": to_user_layout(cfg, sample.x), "h_0": state_to_user_layout(cfg, sample.h_0)}
    if sample.c_0 is not None:
        feeds["c_0"] = state_to_user_layout(cfg, sample.c_0)
    if cfg.lengths is not None:
        feeds["lengths"] = np.asarray(cfg.lengths, dtype=np.int64)
    return feeds


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
