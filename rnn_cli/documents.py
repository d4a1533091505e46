"""The --json documents: plain dicts built from results. Imports neither rich nor typer,
so `--json` never pays for them. Computes nothing new: every number comes from a result.

Non-finite numbers become null, so every document is valid JSON.
"""

from __future__ import annotations

import math
import platform
import sys

import numpy as np

from rnn_cli import __version__
from rnn_cli.result import RunResult


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def values(a: np.ndarray):
    """Nested lists; NaN and infinities become null so the document stays valid JSON."""
    if a.dtype.kind in "iu" or np.isfinite(a).all():
        return a.tolist()
    return np.where(np.isfinite(a), a, None).tolist()


def versions() -> dict[str, str | None]:
    """What produced the document: rnn-cli, numpy, torch when this run imported it, python."""
    torch = sys.modules.get("torch")
    return {
        "rnn_cli": __version__,
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None) if torch is not None else None,
        "python": platform.python_version(),
    }


def config_dict(result: RunResult) -> dict:
    d = result.cfg.to_dict()
    d["device"] = result.device
    d["tf32"] = result.tf32
    return d


def _sources(result: RunResult) -> list[dict]:
    return [
        {
            "state": s.state,
            "index": s.index,
            "layer": s.layer,
            "direction": s.direction,
            "equals": s.expression,
            "steps": list(s.steps),
            "returned": s.returned,
            "max_abs_diff": finite(s.max_abs_diff),
            "ok": s.ok,
        }
        for s in result.sources
    ]


def run_document(result: RunResult, command: str, with_values: bool) -> dict:
    cfg = result.cfg
    layouts = cfg.layouts()
    tensors = {}
    for name, shape in result.shapes().items():
        entry: dict = {"shape": list(shape), "layout": layouts[name]}
        if name in result.tensors and (with_values or name == "batch_sizes"):
            entry["values"] = values(result.tensors[name])
        tensors[name] = entry
    return {
        "command": command,
        "versions": versions(),
        "config": config_dict(result),
        "tensors": tensors,
        "parameters": [{"name": n, "shape": list(p.shape), "numel": int(p.size)} for n, p in result.params.items()],
        "num_parameters": int(sum(p.size for p in result.params.values())),
        "h_n_sources": _sources(result),
    }


def compare_document(cmp, with_values: bool) -> dict:
    doc = run_document(cmp.torch, "compare", with_values)
    del doc["h_n_sources"]
    doc["tolerance"] = {"atol": cmp.tolerance.atol, "rtol": cmp.tolerance.rtol, "source": cmp.tolerance.why}
    doc["results"] = [
        {
            "tensor": c.name,
            "torch_shape": list(c.torch_shape),
            "reference_shape": list(c.reference_shape),
            "max_abs_diff": finite(c.max_abs_diff),
            "max_rel_diff": finite(c.max_rel_diff),
            "atol": c.tolerance.atol,
            "rtol": c.tolerance.rtol,
            "margin": finite(c.margin),  # max(|torch - ref| - (atol + rtol*|ref|)): <= 0 passes
            "ok": c.ok,
        }
        for c in cmp.checks
    ]
    doc["ok"] = cmp.ok
    return doc


def bench_document(bench) -> dict:
    """bench --json: the same numbers as the table, milliseconds and GFLOP/s."""
    from rnn_cli.bench import FLOP_FORMULA, relative_speed

    return {
        "command": "bench",
        "versions": {**versions(), **bench.versions},
        "config": bench.cfg.to_dict(),
        "repeat": bench.repeat,
        "warmup": bench.warmup,
        "flops": bench.flops,
        "flop_formula": FLOP_FORMULA,
        "threads": {
            "torch": bench.threads.torch,
            "numpy": bench.threads.numpy,
            "numpy_source": bench.threads.numpy_source,
            "blas": bench.threads.blas,
        },
        "results": [
            {
                "implementation": t.name,
                "device": t.device,
                "dtype": t.dtype,
                "backend": t.backend,
                "tf32": t.tf32,
                "median_ms": t.median_s * 1e3,
                "min_ms": t.min_s * 1e3,
                "max_ms": t.max_s * 1e3,
                "gflops": t.gflops(bench.flops),
                "relative_speed": relative_speed(bench, t),
                "times_ms": [s * 1e3 for s in t.times_s],
            }
            for t in bench.timings
        ],
    }
