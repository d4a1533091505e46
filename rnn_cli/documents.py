"""The --json documents: plain dicts built from results. Imports neither rich nor typer,
so `--json` never pays for them. Computes nothing new: every number comes from a result.

Non-finite numbers become null, so every document is valid JSON. A run's tensors stay
numpy arrays in the document until write_document writes them a piece at a time: the
text of json.dumps over nested lists costs ~90 bytes per number (a Python float, its
list slot and its text), 10-20x the array itself (benchmarks/MEMORY.md).
"""

from __future__ import annotations

import json
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


# Elements turned into text per json.dumps call: ~6 MiB of temporaries, whatever the array.
CHUNK = 1 << 16


def write_document(doc, file) -> None:
    """Write json.dumps(doc, allow_nan=False) to `file`, byte for byte, numpy arrays
    included (as values(a) would give them), without the whole text ever existing: arrays
    are written CHUNK elements at a time, everything else as json.dumps writes it."""
    for piece in _pieces(doc):
        file.write(piece)


def _pieces(obj):
    if isinstance(obj, np.ndarray):
        yield from _array_pieces(obj)
    elif isinstance(obj, dict):
        yield "{"
        for i, (key, value) in enumerate(obj.items()):
            yield (", " if i else "") + json.dumps(key) + ": "
            yield from _pieces(value)
        yield "}"
    elif isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple, np.ndarray)) for v in obj):
        yield "["
        for i, value in enumerate(obj):
            if i:
                yield ", "
            yield from _pieces(value)
        yield "]"
    else:
        yield json.dumps(obj, allow_nan=False)


def _array_pieces(a: np.ndarray):
    """json.dumps(values(a)) in pieces: sub-arrays along the first axis, or slices of a long row."""
    if a.size <= CHUNK or a.ndim == 0:
        yield json.dumps(values(a), allow_nan=False)
        return
    yield "["
    if a.ndim == 1:
        for start in range(0, len(a), CHUNK):
            yield (", " if start else "") + json.dumps(values(a[start : start + CHUNK]), allow_nan=False)[1:-1]
    else:
        for i in range(len(a)):
            if i:
                yield ", "
            yield from _array_pieces(a[i])
    yield "]"


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
    """The --json document of a run; its tensors' values are numpy arrays: see write_document."""
    cfg = result.cfg
    layouts = cfg.layouts()
    tensors = {}
    for name, shape in result.shapes().items():
        entry: dict = {"shape": list(shape), "layout": layouts[name]}
        if name in result.tensors and (with_values or name == "batch_sizes"):
            entry["values"] = result.tensors[name]  # written by write_document
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
