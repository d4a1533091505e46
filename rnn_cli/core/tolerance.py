"""compare's tolerance table: how close a run must come to the float64 reference, by dtype,
device and TF32. compare (rnn_cli.core.compare re-exports it), the h_n source checks
(rnn_cli.core.sources), onnx and bench use this one table. Its own module beside compare,
because the h_n check that runs attach to every result needs it, and compare runs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    why: str  # where each part came from: the default's reason, or --atol / --rtol


EXACT = Tolerance(0.0, 0.0, "integers: exact")  # batch_sizes counts sequences


def default_tolerance(dtype: str, on_cuda: bool, tf32: bool | None) -> Tolerance:
    """The tolerance table: compare, the h_n source checks, onnx and bench all use it.
    Defaults sized from what each backend is measured to reach against float64, with
    headroom for larger sizes: CPU float32 ~1e-6; on an H100, cuDNN float32 up to 1.1e-5
    without TF32 and 8.2e-4 with it (benchmarks/gpu-h100/cuda-compare.md); float64 ~1e-15."""
    if dtype == "float64":
        return Tolerance(1e-10, 1e-10, "float64")
    if not on_cuda:
        return Tolerance(1e-5, 1e-5, "float32, CPU")
    if tf32:
        return Tolerance(5e-3, 5e-3, "float32, cuDNN with TF32")
    return Tolerance(1e-4, 1e-4, "float32, cuDNN without TF32")
