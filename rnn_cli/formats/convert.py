"""rnn-cli convert SRC[:PREFIX] DST: one recurrent module's weights in torch's layout, proved.

What is written: the state_dict of the nn module the constructor line builds, its keys exactly
that module's (cells: weight_ih, weight_hh, bias_ih, bias_hh; nn.RNN/LSTM/GRU: torch's
_flat_weights_names order, from rnn_cli.core.layout), in the source's dtype (float32 or float64;
float16/bfloat16 are read as float32), by DST's suffix:
    .pt            torch.save of an OrderedDict of tensors: nn.X(...).load_state_dict(torch.load(DST))
    .safetensors   written here by hand: 8-byte little-endian header length, JSON header
                   (dtype, shape, data_offsets; padded with spaces to 8 bytes), raw little-endian data
    .npz           np.savez of the arrays under the same keys (nothing else in it)

The proof: the seeded draw (rnn_cli.core.sample: --seed, --batch, --seq-len, --h0) goes through
  - the source, in its own runtime: ONNX and Keras files through the reader's `forward`
    (SOURCE_RUNTIMES: onnxruntime, Keras); torch, safetensors, npz, TorchScript and renamed
    weights through torch's own nn module loaded with the file's tensors under the file's own
    names (a TorchScript archive's tensors: its code is never run);
  - the converted module: nn.X built from the constructor arguments, load_state_dict(strict=True)
    of the very bytes DST receives, read back as a user would (torch.load for .pt);
and every tensor is held to compare's rule and tolerance (rnn_cli.core.compare.check_tensor).
DST is written only when every tensor passes; otherwise nothing is written.

A layer no nn module computes (module.not_expressible) is measured instead: the source against
the nearest nn module, nothing written.

numpy at import; torch inside the functions that run it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_cli.core import layout
from rnn_cli.core.compare import TensorCheck, check_tensor, overridden
from rnn_cli.core.config import RunConfig
from rnn_cli.core.guard import check_memory
from rnn_cli.core.tolerance import Tolerance, default_tolerance
from rnn_cli.core.sample import draw
from rnn_cli.errors import RnnCliError
from rnn_cli.formats import checkpoint, safe_read, save
from rnn_cli.formats.checkpoint import RecurrentModule
from rnn_cli.printable import printable

# Sources whose own runtime is not torch: format -> the reader module whose
# `forward(path, module, x, h_0, c_0) -> {"output", "h_n"[, "c_n"]}` runs it (imported when used).
SOURCE_RUNTIMES = {"onnx": "rnn_cli.formats.onnx_read", "keras": "rnn_cli.formats.keras_read"}
RUNTIME_PACKAGES = {"onnx": "onnxruntime", "keras": "keras"}  # what the proof names as the source's runtime
WRITTEN_AS = {".pt": "torch.save of a state_dict", ".safetensors": "safetensors", ".npz": "np.savez"}
COMPARED = ("output", "h_n", "c_n")
# numpy dtype -> safetensors' name (safe_read's table, read the other way; bfloat16 is never written)
ST_NAMES = {np.dtype(v): k for k, v in safe_read.ST_DTYPES.items() if k not in ("BF16", "U16")}


@dataclass(frozen=True)
class Proof:
    """The seeded run both sides take: the draw of rnn_cli.core.sample, and compare's tolerance."""

    seed: int = 0
    batch: int = 2  # N > 1: a runtime that mixes up the batch and time axes cannot pass
    seq_len: int = 10
    h0: str = "random"  # random: the initial states' mapping is proved too; zeros: the source's own default
    atol: float | None = None
    rtol: float | None = None


@dataclass(eq=False)  # holds arrays
class Conversion:
    path: str  # SRC's file
    format: str  # torch, safetensors, npz, torchscript, onnx, keras
    module: RecurrentModule
    constructor: str  # the nn module's constructor line
    mapping: dict[str, str]  # torch name -> the file's own name
    state_dict: dict[str, np.ndarray]  # torch's names, the nn module's order
    dst: str
    data: bytes | None  # what DST receives; None when the module is not expressible
    proof: Proof
    runtime: str  # what ran the source
    converted: str  # what ran the converted module
    tolerance: Tolerance
    checks: list[TensorCheck]
    notes: list[str] = field(default_factory=list)
    unmeasured: str | None = None  # why the source could not run (its runtime is not installed)

    @property
    def expressible(self) -> bool:
        return self.module.expressible

    @property
    def ok(self) -> bool:
        return self.expressible and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def written(self) -> str | None:
        """DST once it is written: only when every tensor passed (the CLI writes it then)."""
        return self.dst if self.ok else None

    @property
    def dst_suffix(self) -> str:
        return Path(self.dst).suffix.lower()

    @property
    def max_abs_diff(self) -> float | None:
        diffs = [c.max_abs_diff for c in self.checks if c.max_abs_diff is not None]
        return max(diffs) if diffs else None


# ---- what may be written where ---------------------------------------------------------------


def check_destination(src_path: str, dst: str) -> str:
    """DST's suffix (.pt, .safetensors, .npz), after refusing, before anything is read: an
    unknown suffix, a path that cannot be written, and DST that is SRC (links and hard links)."""
    suffix = Path(dst).suffix.lower()
    if suffix not in WRITTEN_AS:
        raise RnnCliError(f"DST {printable(dst)}: unknown suffix {printable(suffix or '(none)')!r}; "
                          f"convert writes {', '.join(WRITTEN_AS)}")
    save.refuse_outputs_over_inputs({"DST": dst}, {"SRC": src_path})
    save.check_writable(dst, "DST")
    if save.writes_to_stdout(dst):  # the view or the JSON goes there too
        raise RnnCliError(f"DST {printable(dst)} is stdout: give a file path")
    return suffix


# ---- the state_dict and its bytes -------------------------------------------------------------


def run_dtype(module: RecurrentModule) -> str:
    """The source's own float dtype (float16 and bfloat16 arrive as float32); float32 otherwise."""
    return module.dtype if module.dtype in ("float32", "float64") else "float32"


def torch_names(module: RecurrentModule) -> list[str]:
    """The nn module's state_dict keys, in its order (layout.py spells them)."""
    if module.is_cell:
        return [n for n in layout.CELL_PARAMS if module.bias or not n.startswith("bias_")]
    D = 2 if module.bidirectional else 1
    return [name for name, *_ in layout.layered_names(module.num_layers, D, module.bias, module.proj_size > 0)]


def state_dict(module: RecurrentModule) -> dict[str, np.ndarray]:
    """The module's parameters (already in torch's layout: the readers map them) under the nn
    module's keys, in its order, contiguous, in run_dtype."""
    dtype = np.dtype(run_dtype(module))
    return {n: np.ascontiguousarray(module.params[n], dtype=dtype) for n in torch_names(module)}


def safetensors_bytes(state: dict[str, np.ndarray]) -> bytes:
    """The safetensors format: u64 little-endian header length, the JSON header (padded with
    spaces to a multiple of 8, as the safetensors package pads it), then each tensor's raw
    little-endian bytes, back to back in the header's order."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, a in state.items():
        header[name] = {"dtype": ST_NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    body = b"".join(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for a in state.values())
    return len(text).to_bytes(8, "little") + text + body


def serialize(state: dict[str, np.ndarray], suffix: str) -> bytes:
    """What DST receives, whole (the proof reads these very bytes back)."""
    buf = io.BytesIO()
    if suffix == ".pt":
        import collections

        import torch

        torch.save(collections.OrderedDict((n, torch.from_numpy(a.copy())) for n, a in state.items()), buf)
    elif suffix == ".npz":
        np.savez(buf, **state)
    else:
        return safetensors_bytes(state)
    return buf.getvalue()


def read_back(data: bytes, suffix: str, dst: str):
    """The bytes as a user reads DST: torch.load(weights_only=True) for .pt, rnn-cli's own
    readers (header checked first) for .safetensors and .npz; a dict of torch tensors."""
    import torch

    if suffix == ".pt":
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    src = safe_read.Source(f"DST {dst}", dst, len(data), data)
    arrays = safe_read.read_npz(src) if suffix == ".npz" else safe_read.read_safetensors(src, [])
    return {n: torch.from_numpy(a) for n, a in arrays.items()}


# ---- running both sides ----------------------------------------------------------------------


def nn_module(module: RecurrentModule, dtype: str):
    """nn.X(**constructor_args) as the constructor line writes it, in eval mode (dropout off)."""
    import warnings

    from torch import nn

    from rnn_cli.core.torch_run import TORCH_DTYPES

    with warnings.catch_warnings():  # dropout with num_layers=1 warns; it is off in eval mode anyway
        warnings.simplefilter("ignore", UserWarning)
        m = getattr(nn, module.kind)(**checkpoint.constructor_args(module), dtype=TORCH_DTYPES[dtype])
    return m.eval()


def run_nn(m, module: RecurrentModule, x: np.ndarray, h_0: np.ndarray, c_0: np.ndarray | None) -> dict[str, np.ndarray]:
    """torch's forward of `m` on time-major x (L, N, H_in) and states (D*num_layers, N, H):
    {output (L, N, D*H_out), h_n, [c_n]} time-major. A cell runs step by step over the L steps
    (output: its h at every step); batch_first modules get (N, L, H_in) and give it back."""
    import torch

    from rnn_cli.core.torch_run import quiet_onednn

    lstm = module.kind in ("LSTM", "LSTMCell")
    X, h, c = torch.from_numpy(x), torch.from_numpy(h_0), None if c_0 is None else torch.from_numpy(c_0)
    with torch.inference_mode(), quiet_onednn():
        if module.is_cell:
            h, c, steps = h[0], None if c is None else c[0], []
            for t in range(X.shape[0]):
                if lstm:
                    h, c = m(X[t], (h, c))
                else:
                    h = m(X[t], h)
                steps.append(h)
            output, h_n, c_n = torch.stack(steps), h[None], None if c is None else c[None]
        else:
            first = bool(getattr(m, "batch_first", False))
            out, state = m(X.transpose(0, 1) if first else X, (h, c) if lstm else h)
            output = out.transpose(0, 1) if first else out
            h_n, c_n = state if lstm else (state, None)
    got = {"output": output.numpy(), "h_n": h_n.numpy()}
    if c_n is not None:
        got["c_n"] = c_n.numpy()
    return got


def _torch_source(inspection: checkpoint.Inspection, module: RecurrentModule, dtype: str):
    """The source run by torch: its nn module loaded (strict) with the file's tensors, each
    looked up under the file's own key for the name torch gives that parameter."""
    import torch

    m = nn_module(module, dtype)
    tensors = inspection.loaded.tensors
    own = {n: torch.from_numpy(np.asarray(tensors[module.key(n)], dtype=dtype)) for n in m.state_dict()}
    m.load_state_dict(own, strict=True)
    if module.candidate:
        what = "the renamed tensors, as inspect maps them"
    elif module.source == "torchscript":
        what = "the archive's tensors"
    else:
        what = "the file's own tensors"
    said = f"torch's nn.{module.kind} with {what}"
    return (lambda x, h_0, c_0: run_nn(m, module, x, h_0, c_0)), said


def _runtime_source(path: str, module: RecurrentModule, zeros: bool):
    """The source run by its own runtime: the reader's forward (onnxruntime, Keras)."""
    import importlib
    from importlib import metadata

    name = SOURCE_RUNTIMES[module.source]
    try:
        runtime = importlib.import_module(name)
    except ImportError as e:
        raise RnnCliError(f"{printable(path)}: proving a conversion from {module.source} runs the source in its own "
                          f"runtime, which is not installed here (missing: {printable(e.name or str(e))})") from None
    package = RUNTIME_PACKAGES.get(module.source, module.source)
    try:
        said = f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        said = f"{package} (version unknown)"

    def forward(x, h_0, c_0):  # --h0 zeros: None, the source's own default state
        return runtime.forward(path, module, x, None if zeros else h_0, None if zeros else c_0)

    return forward, f"{said} ({name}.forward)"


def source_runtime(inspection: checkpoint.Inspection, module: RecurrentModule, dtype: str, zeros: bool = False):
    """(forward(x, h_0, c_0) -> time-major tensors, what runs it); `zeros`: the states are
    zeros (--h0 zeros), which a runtime of its own is given as None."""
    if module.source in SOURCE_RUNTIMES:
        return _runtime_source(inspection.loaded.path, module, zeros)
    if module.source in ("torch", "safetensors", "npz", "torchscript"):
        return _torch_source(inspection, module, dtype)
    raise RnnCliError(f"{printable(inspection.loaded.path)}: no runtime known for {printable(module.source)} files")


# ---- convert ----------------------------------------------------------------------------------


def pick(text: str) -> tuple[checkpoint.Inspection, RecurrentModule]:
    """SRC[:PREFIX] -> the file read and the one module chosen, as --params chooses it."""
    path, prefix = checkpoint.parse_params_arg(text)
    inspection = checkpoint.inspect_file(path, batch=1)
    try:
        module = checkpoint.select_module(inspection, prefix)
    except RnnCliError as e:  # its words name --params; here the file is SRC
        raise RnnCliError(str(e).replace("--params ", "SRC ", 1)) from None
    blocking = [p for p in module.problems if not p.runnable]
    if module.kind is None or blocking:
        first = blocking[0].message if blocking else "its shapes match no torch module"
        raise RnnCliError(f"SRC {printable(path)}: {printable(module.name)} cannot be converted: {printable(first)} "
                          f"(rnn-cli inspect {printable(path)} lists every problem)")
    return inspection, module


def sample_config(module: RecurrentModule, proof: Proof) -> RunConfig:
    """The RunConfig whose seeded draw both sides take (a cell: its one-layer module's shapes)."""
    return RunConfig(cell=layout.CELL_OF[module.kind], input_size=module.input_size, hidden_size=module.hidden_size,
                     num_layers=module.num_layers, bidirectional=module.bidirectional, bias=module.bias,
                     proj_size=module.proj_size, nonlinearity=module.declared.get("nonlinearity"),
                     seq_len=proof.seq_len, batch=proof.batch, h0=proof.h0, seed=proof.seed, dtype=run_dtype(module))


def convert(text: str, dst: str, proof: Proof = Proof(), json_out: bool = False) -> Conversion:
    """Read SRC[:PREFIX], build DST's bytes and prove them; writes nothing (the CLI writes
    `data` when `ok`). RnnCliError (exit 2) for what cannot be tried at all."""
    src_path, _ = checkpoint.parse_params_arg(text)
    suffix = check_destination(src_path, dst)
    inspection, module = pick(text)
    dtype = run_dtype(module)
    cfg = sample_config(module, proof)
    check_memory(cfg, "compare", json_out, values=False)  # two forwards of this size, as compare runs
    drawn = draw(cfg)
    tol = overridden(default_tolerance(dtype, False, None), proof.atol, proof.rtol)
    state = state_dict(module)
    source, runtime = source_runtime(inspection, module, dtype, zeros=proof.h0 == "zeros")
    want, unmeasured = _run_source(source, drawn, module)
    m = nn_module(module, dtype)
    if module.expressible:
        data = serialize(state, suffix)
        m.load_state_dict(read_back(data, suffix, dst), strict=True)
        converted = f"the converted nn.{module.kind}, load_state_dict(strict=True) of DST by {_reader(suffix)}"
    else:
        import torch

        data = None
        m.load_state_dict({n: torch.from_numpy(a) for n, a in state.items()}, strict=True)
        converted = f"the nearest nn.{module.kind}, with the source's weights"
    got = run_nn(m, module, drawn.x, drawn.h_0, drawn.c_0)
    checks = [check_tensor(n, got[n], np.asarray(want.get(n, np.zeros(0))), tol) for n in COMPARED if n in got and want]
    mapping = {n: module.key(n) for n in state}
    return Conversion(path=inspection.loaded.path, format=inspection.loaded.format, module=module,
                      constructor=checkpoint.constructor_line(module), mapping=mapping, state_dict=state, dst=dst,
                      data=data, proof=proof, runtime=runtime, converted=converted, tolerance=tol, checks=checks,
                      notes=list(inspection.loaded.notes), unmeasured=unmeasured)


def _run_source(source, drawn, module: RecurrentModule) -> tuple[dict, str | None]:
    """The source's tensors on the draw; where its runtime is not installed, a layer that is not
    expressible is still refused (unmeasured, with the reason), an expressible one cannot be proved."""
    try:
        return source(drawn.x, drawn.h_0, drawn.c_0), None
    except ImportError as e:
        missing = f"{printable(e.name or str(e))} is not installed"
        if module.expressible:
            raise RnnCliError(f"SRC: proving the conversion runs the source in its own runtime, and {missing}") from None
        return {}, missing


def _reader(suffix: str) -> str:
    return {".pt": "torch.load", ".npz": "rnn-cli's .npz reader", ".safetensors": "rnn-cli's safetensors reader"}[suffix]


def not_expressible_line(conv: Conversion) -> str:
    """One line: what torch cannot compute, and by how much the nearest nn module differs (on
    a seeded input it may happen to agree: a clip no value reaches; it is still another function)."""
    m = conv.module
    why = printable("; ".join(r.get("detail") or r.get("code", "") for r in m.not_expressible))
    diff, p = conv.max_abs_diff, conv.proof
    if diff is None:
        return f"{printable(m.name)}: {why}: nn.{m.kind} computes another function (not measured: {conv.unmeasured}); no exact conversion exists"
    by = (f"happens to agree within tolerance (up to {diff:.2g}) but computes another function"
          if all(c.ok for c in conv.checks) else f"differs by up to {diff:.2g}")
    return (f"{printable(m.name)}: {why}: nn.{m.kind} {by} on a seeded input "
            f"(seed {p.seed}, N={p.batch}, L={p.seq_len}); no exact conversion exists")


def usage_lines(conv: Conversion) -> list[str]:
    """How to load DST into the module, in Python."""
    line = conv.constructor.replace("nn.", "torch.nn.", 1)
    dst = repr(os.fspath(conv.dst))
    load = {".pt": f"torch.load({dst})",
            ".npz": f"{{k: torch.from_numpy(v) for k, v in numpy.load({dst}).items()}}",
            ".safetensors": f"safetensors.torch.load_file({dst})"}[conv.dst_suffix]
    return [f"m = {line}", f"m.load_state_dict({load})"]
