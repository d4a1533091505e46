"""compare: the same parameters, input and h_0 through torch and through the numpy
reference (float64), tensor by tensor. Returns a result; prints nothing.

A tensor passes when every element satisfies |torch - ref| <= atol + rtol * |ref|
(numpy.isclose's rule; relative error alone is meaningless near zero outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.core.result import RunResult
from rnn_cli.core.sample import Sample, draw
from rnn_cli.core.tolerance import EXACT, Tolerance, default_tolerance  # noqa: F401 - compare's table, imported from here too

COMPARED = ("output", "h_n", "c_n", "batch_sizes")


@dataclass(frozen=True)
class TensorCheck:
    name: str
    torch_shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    max_abs_diff: float | None  # None when the shapes differ
    max_rel_diff: float | None
    ok: bool
    tolerance: Tolerance | None = None  # the one this tensor was held to
    # The rule that decided `ok`, read off the worst element: max(|torch - ref| - (atol + rtol*|ref|)).
    # <= 0: every element is within tolerance; > 0: by how much the worst one is not; NaN when
    # a NaN is involved; None when nothing was compared (shapes differ, or no elements).
    margin: float | None = None
    # Non-finite elements: the same NaN (or the same ±Inf) at the same place on both sides counts
    # as agreement (the reference says the run should give NaN there); on one side only, a mismatch.
    nonfinite_agree: int = 0
    nonfinite_mismatch: int = 0


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
    """|got - ref| <= atol + rtol*|ref| element by element, in float64; also the largest
    absolute and relative differences and the worst margin. Arrays are reused in place:
    compare's largest tensors are checked beside both runs (guard.estimate_bytes)."""
    if got.shape != ref.shape:
        return TensorCheck(name, got.shape, ref.shape, None, None, False, tol)
    if got.size == 0:
        return TensorCheck(name, got.shape, ref.shape, 0.0, 0.0, True, tol, 0.0)
    scale = np.abs(ref, dtype=np.float64)  # |ref|
    with np.errstate(invalid="ignore"):  # inf - inf
        diff = np.subtract(got, ref, dtype=np.float64)
    np.abs(diff, out=diff)  # |got - ref|
    agree = mismatch = 0
    if not np.isfinite(diff).all():
        same = (np.isnan(got) & np.isnan(ref)) | (np.isinf(got) & (got == ref))  # (L, N, ...) bools
        agree = int(same.sum())
        diff[same] = 0.0  # agreement: no difference, judged by atol alone
        scale[same] = 0.0
        mismatch = int((~np.isfinite(diff)).sum())
    max_diff = float(np.max(diff))
    # Relative error only over elements above the absolute floor (|ref| > atol): near-zero
    # references make |diff|/|ref| meaningless, and atol is what judges them.
    with np.errstate(invalid="ignore"):  # inf / inf where one side is inf: NaN, a mismatch
        rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > tol.atol)
    max_rel = float(np.max(rel))
    del rel
    with np.errstate(over="ignore", invalid="ignore"):  # --rtol 1e308 * |ref| may be inf: nothing exceeds it
        scale *= tol.rtol
        scale += tol.atol  # the bound atol + rtol*|ref|
        diff -= scale  # the margin of every element; NaN stays NaN
    margin = float(np.max(diff))  # NaN propagates
    ok = bool(margin <= 0)  # NaN on one side anywhere fails
    return TensorCheck(name, got.shape, ref.shape, max_diff, max_rel, ok, tol, margin, agree, mismatch)


def overridden(tol: Tolerance, atol: float | None, rtol: float | None) -> Tolerance:
    """tol with --atol / --rtol in place of its parts, each saying where it came from."""
    if atol is None and rtol is None:
        return tol
    why = "; ".join(
        f"{name}: {'--' + name if given is not None else 'default (' + tol.why + ')'}"
        for name, given in (("atol", atol), ("rtol", rtol))
    )
    return Tolerance(tol.atol if atol is None else atol, tol.rtol if rtol is None else rtol, why)


def grad_terms(cfg: RunConfig, name: str) -> tuple[int, str]:
    """(how many terms are summed into the gradient `name`, the formula in PyTorch's symbols).

    A parameter's gradient sums one product per real step and sequence (L*N, or
    sum(lengths) when packed); the input's and h_0's (c_0's) gradients come through the
    steps that reach them, at most L of one layer-direction.
    """
    if name in ("input", "h_0", "c_0"):
        return cfg.seq_len, "L"
    if cfg.packed:
        return sum(cfg.lengths), "sum(lengths)"
    return cfg.seq_len * cfg.N, "L*N"


def grad_tolerance(cfg: RunConfig, name: str, base: Tolerance) -> Tolerance:
    """The CPU forward tolerance of cfg's dtype times sqrt(terms summed into the gradient):
    rounding errors of a sum of K terms grow like sqrt(K) (measured on the CPU:
    benchmarks/GRAD_TOLERANCE.md, where the worst float32 error of torch's own gradients stays
    below 0.12 * sqrt(K) forward tolerances and a wrong derivative is off by far more).
    Never below `base`, the forward's tolerance on the device used: on CUDA the gradients are
    not measured, so a looser forward tolerance (cuDNN, TF32) stays as it is, not multiplied."""
    terms, formula = grad_terms(cfg, name)
    scale = float(np.sqrt(max(terms, 1)))
    cpu = default_tolerance(cfg.dtype, False, None)
    atol, rtol = max(base.atol, cpu.atol * scale), max(base.rtol, cpu.rtol * scale)
    if (atol, rtol) == (base.atol, base.rtol):
        return base
    return Tolerance(atol, rtol, f"{cpu.why}, x sqrt({formula} = {terms})")


def upcast(sample: Sample) -> Sample:
    """The same numbers in float64: the reference starts from bit-identical values."""
    f64 = np.float64
    return Sample(
        params={k: v.astype(f64) for k, v in sample.params.items()},
        x=sample.x.astype(f64),
        h_0=sample.h_0.astype(f64),
        c_0=None if sample.c_0 is None else sample.c_0.astype(f64),
        rng_state=sample.rng_state,
        provenance=sample.provenance,
    )


def run(
    cfg: RunConfig,
    atol: float | None = None,
    rtol: float | None = None,
    tf32: bool = True,
    keep_layers: bool = False,
    sample: Sample | None = None,
    grad: str | None = None,
    extras=None,
) -> CompareResult:
    """torch on cfg.device against the float64 numpy reference on the same sample; with
    `grad` (a loss), also every gradient (grad_<parameter>, grad_input, grad_h_0, grad_c_0)."""
    from rnn_cli.core import runs

    sample = sample if sample is not None else draw(cfg)
    ref_cfg, ref_sample = replace(cfg, dtype="float64"), upcast(sample)
    extras = replace(extras or runs.Extras(), grad=grad)  # recipes/padding: --show, --json
    got = runs.run("torch", cfg, sample, extras, keep_layers, tf32)
    reference = runs.run("manual", ref_cfg, ref_sample, runs.Extras(), keep_layers)
    if grad is not None:  # the reference takes the very upstream torch took, in float64
        grads, upstream = runs.gradients("manual", ref_cfg, ref_sample, grad, upstream=got.upstream.astype(np.float64))
        reference = replace(reference, gradients=grads, upstream=upstream)
    base = default_tolerance(cfg.dtype, got.device.startswith("cuda"), got.tf32)
    tol = overridden(base, atol, rtol)
    checks = [
        check_tensor(name, got.tensors[name], reference.tensors[name], EXACT if name == "batch_sizes" else tol)
        for name in COMPARED
        if name in reference.tensors
    ]
    if grad is not None:
        from rnn_cli.formats.grad_export import user_layout_gradients  # in the user's layout, like the tensors

        theirs, ours = user_layout_gradients(cfg, got.gradients), user_layout_gradients(cfg, reference.gradients)
        checks += [
            check_tensor(f"grad_{name}", theirs[name], ours[name], overridden(grad_tolerance(cfg, name, base), atol, rtol))
            for name in ours
        ]
    return CompareResult(torch=got, reference=reference, tolerance=tol, checks=checks)


# ---- memory: what run() holds at its peak (the guard asks; tests/test_memory_calibration.py measures) ----


def peak_bytes(cfg: RunConfig, grad: bool = False) -> int:
    """Bytes run() holds at its peak beyond the sample, for the memory guard, phase by phase:
    torch's run (runs.peak_bytes); its result (the output) beside the float64 upcast of the
    sample and the float64 reference's forward (manual.peak_bytes); with grad, torch's
    gradients (torch_peak.grad_bytes), then beside them the reference's (backward.peak_bytes,
    with the upstream upcast); last, check_tensor on the largest tensor: |ref|, |diff|, the
    relative error (float64 each) and a mask, beside both results."""
    from rnn_cli.core import backward, manual, runs, torch_peak
    from rnn_cli.core.config import ITEMSIZE, sample_bytes

    item, ref = ITEMSIZE[cfg.dtype], replace(cfg, dtype="float64")
    out = cfg.seq_len * cfg.N * cfg.D * cfg.H_out  # (L, N, D*H_out) elements
    torch_kept = item * out
    reference = sample_bytes(ref)  # upcast(sample), alive to the end
    phases = [runs.peak_bytes("torch", cfg, keep_layers=False), torch_kept + reference + manual.peak_bytes(ref)]
    checked = out
    kept = torch_kept + reference + 8 * out  # both results
    if grad:
        phases.append(kept + torch_peak.grad_bytes(cfg))
        kept += sample_bytes(cfg)  # torch's gradients: one per parameter, input and state
        phases.append(kept + backward.peak_bytes(ref) + 8 * out)
        kept += sample_bytes(ref)
        checked = max(out, cfg.seq_len * cfg.N * cfg.input_size, cfg.num_parameters())
    phases.append(kept + (3 * 8 + 1) * checked)
    return max(phases)
