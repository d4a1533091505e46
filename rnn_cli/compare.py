"""compare: the same parameters, input and h_0 through torch and through the numpy
reference (float64), tensor by tensor. Returns a result; prints nothing.

A tensor passes when every element satisfies |torch - ref| <= atol + rtol * |ref|
(numpy.isclose's rule; relative error alone is meaningless near zero outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rnn_cli import manual
from rnn_cli.config import RunConfig
from rnn_cli.result import RunResult
from rnn_cli.sample import Sample, draw

COMPARED = ("output", "h_n", "c_n", "batch_sizes")


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    why: str  # where each part came from: the default's reason, or --atol / --rtol


EXACT = Tolerance(0.0, 0.0, "integers: exact")  # batch_sizes counts sequences


def default_tolerance(dtype: str, on_cuda: bool, tf32: bool | None) -> Tolerance:
    """Defaults sized from what each backend is measured to reach against float64, with
    headroom for larger sizes: CPU float32 ~1e-6; on an H100, cuDNN float32 up to 1.1e-5
    without TF32 and 8.2e-4 with it (benchmarks/gpu-h100/cuda-compare.md); float64 ~1e-15."""
    if dtype == "float64":
        return Tolerance(1e-10, 1e-10, "float64")
    if not on_cuda:
        return Tolerance(1e-5, 1e-5, "float32, CPU")
    if tf32:
        return Tolerance(5e-3, 5e-3, "float32, cuDNN with TF32")
    return Tolerance(1e-4, 1e-4, "float32, cuDNN without TF32")


@dataclass(frozen=True)
class TensorCheck:
    name: str
    torch_shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    max_abs_diff: float | None  # None when the shapes differ
    max_rel_diff: float | None
    ok: bool
    tolerance: Tolerance | None = None  # the one this tensor was held to


@dataclass
class CompareResult:
    torch: RunResult
    reference: RunResult
    tolerance: Tolerance
    checks: list[TensorCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def check_tensor(name: str, got: np.ndarray, ref: np.ndarray, tol: Tolerance) -> TensorCheck:
    if got.shape != ref.shape:
        return TensorCheck(name, got.shape, ref.shape, None, None, False, tol)
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(got64 - ref64)
    if diff.size == 0:
        return TensorCheck(name, got.shape, ref.shape, 0.0, 0.0, True, tol)
    scale = np.abs(ref64)
    # Relative error only over elements above the absolute floor (|ref| > atol): near-zero
    # references make |diff|/|ref| meaningless, and atol is what judges them.
    where = scale > tol.atol
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=where)
    with np.errstate(over="ignore"):  # a huge tolerance's margin is inf: every finite diff passes
        ok = bool(np.all(diff <= tol.atol + tol.rtol * scale))  # NaN anywhere fails
    return TensorCheck(name, got.shape, ref.shape, float(np.max(diff)), float(np.max(rel)), ok, tol)


def upcast(sample: Sample) -> Sample:
    """The same numbers in float64: the reference starts from bit-identical values."""
    f64 = np.float64
    return Sample(
        params={k: v.astype(f64) for k, v in sample.params.items()},
        x=sample.x.astype(f64),
        h_0=sample.h_0.astype(f64),
        c_0=None if sample.c_0 is None else sample.c_0.astype(f64),
    )


def run(
    cfg: RunConfig,
    atol: float | None = None,
    rtol: float | None = None,
    tf32: bool = True,
    keep_layers: bool = False,
) -> CompareResult:
    from rnn_cli import torch_run

    sample = draw(cfg)
    got = torch_run.run(cfg, sample, keep_layers=keep_layers, tf32=tf32)
    reference = manual.run(replace(cfg, dtype="float64"), upcast(sample), keep_layers=keep_layers)
    tol = default_tolerance(cfg.dtype, got.device.startswith("cuda"), got.tf32)
    if atol is not None or rtol is not None:
        why = "; ".join(
            f"{name}: {'--' + name if given is not None else 'default (' + tol.why + ')'}"
            for name, given in (("atol", atol), ("rtol", rtol))
        )
        tol = Tolerance(tol.atol if atol is None else atol, tol.rtol if rtol is None else rtol, why)
    checks = [
        check_tensor(name, got.tensors[name], reference.tensors[name], EXACT if name == "batch_sizes" else tol)
        for name in COMPARED
        if name in reference.tensors
    ]
    return CompareResult(torch=got, reference=reference, tolerance=tol, checks=checks)
