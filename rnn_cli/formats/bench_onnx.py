"""bench's onnxruntime rows: the layer as `rnn-cli onnx` exports it, run by onnxruntime.

The module is exported from the same sample and weights as the other rows
(rnn_cli.formats.onnx_export.export with torch's TorchScript-based exporter first: measured here at
3.3 s for a process's first export and 0.8 s after it, against dynamo's 7.6 s and 1.4 s,
for an LSTM with H_in 64 and H 256, one LSTM node either way; auto when it fails or writes
a wrong graph), loaded into one InferenceSession per execution provider (CPU, and CUDA when
torch's CUDA row runs and onnxruntime has the provider) with as many intra-op threads as
torch uses, and run once: a row is timed only when its output, h_n (c_n) match torch's CPU
forward within compare's tolerances; otherwise it says mismatch. Timed like every row
(timing.measure: warm-up, then repeat); session.run returns numpy arrays, so a CUDA row
includes the copies to and from the device.

onnx and onnxruntime are the optional `onnx` extra: without them there are no rows, one
line says how to add them. Nothing here runs for --grad (onnxruntime has no backward).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Optional

from rnn_cli.core.config import RunConfig
from rnn_cli.core.timing import Implementation, cpu_time
from rnn_cli.errors import RnnCliError

NAME = "onnxruntime"
INSTALL = "onnxruntime: not installed; add it with pip install 'rnn-cli[onnx]'"


@dataclass(frozen=True)
class NotTimed:
    """A row that could not be timed and why: 'mismatch' (checked against torch) or 'failed'."""

    name: str
    device: str
    status: str  # "mismatch" or "failed"
    reason: str  # one line


def _missing_extra() -> bool:
    from rnn_cli.formats import onnx_check

    try:
        onnx_check._require_extra()  # what `rnn-cli onnx` needs: onnx, onnxruntime, onnxscript
    except RnnCliError:
        return True
    return False


def _providers(cfg: RunConfig, torch_devices: list[str]) -> list[tuple[str, str]]:
    """(device, execution provider): the CPU, and CUDA when bench runs a torch CUDA row."""
    import onnxruntime as ort

    out = [("cpu", "CPUExecutionProvider")]
    cuda = [d for d in torch_devices if d.startswith("cuda")]
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        out.append((cuda[0], "CUDAExecutionProvider"))
    return out


def _export(cfg: RunConfig, sample):
    from rnn_cli.formats import onnx_export

    cpu = replace(cfg, device="cpu")  # the export runs on the CPU whatever --device says
    try:
        return onnx_export.export(cpu, sample, exporter="torchscript")
    except RnnCliError:
        return onnx_export.export(cpu, sample, exporter="auto")


def _mismatch(cfg: RunConfig, got: dict, want: dict, on_cuda: bool) -> Optional[str]:
    """None when every output is within compare's tolerance of torch's, else why not."""
    from rnn_cli.core.compare import check_tensor, default_tolerance

    tol = default_tolerance(cfg.dtype, on_cuda=on_cuda, tf32=True if on_cuda else None)
    for name, ref in want.items():
        check = check_tensor(name, got[name], ref, tol)
        if not check.ok:
            off = "shape differs" if check.max_abs_diff is None else f"off by {check.max_abs_diff:.3g}"
            return f"{name} {off} from torch's (tolerance atol {tol.atol:g}, rtol {tol.rtol:g})"
    return None


def implementations(cfg: RunConfig, sample, threads: Optional[int], torch_devices: list[str]):
    """(implementations to time, rows not timed, notes) for onnxruntime. Everything that
    can go wrong (no extra, export, session, mismatch) becomes a note or a row, never an error."""
    from rnn_cli.formats import onnx_check

    if _missing_extra():
        return [], [], [INSTALL]
    import numpy as np
    import onnxruntime as ort

    try:
        with onnx_check.quiet():
            exported = _export(cfg, sample)
    except RnnCliError as e:
        return [], [NotTimed(NAME, "cpu", "failed", f"export: {e}")], []
    feeds = onnx_check.export_inputs(cfg, sample)
    wanted = {name: feeds[name] for name in exported.input_names}
    want = onnx_check.torch_cpu_outputs(cfg, sample)
    impls, skipped = [], []
    for device, provider in _providers(cfg, torch_devices):
        try:
            with onnx_check.quiet():
                session = onnx_check._session(exported.model.SerializeToString(), provider, threads)
                results = session.run(None, wanted)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            reason = " ".join(str(e).split()).split("Status Message:")[-1].strip()
            skipped.append(NotTimed(NAME, device, "failed", reason[:200]))
            continue
        got = dict(zip(exported.output_names, (np.asarray(r) for r in results)))
        problem = _mismatch(cfg, got, want, on_cuda=device != "cpu")
        if problem is not None:
            skipped.append(NotTimed(NAME, device, "mismatch", problem))
            continue
        impls.append(
            Implementation(
                name=NAME,
                device=device,
                backend=f"onnxruntime {ort.__version__} {provider}, {exported.exporter_used} export",
                forward=lambda session=session: session.run(None, wanted),
                context=nullcontext,
                time_once=cpu_time,
            )
        )
    return impls, skipped, []
