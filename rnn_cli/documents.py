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
from rnn_cli.core.config import RunConfig
from rnn_cli.core.result import RunResult
from rnn_cli.core.sample import Provenance


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


def settings(cfg: RunConfig, provenance: Provenance) -> dict:
    """A document's `config`: cfg's options and, where RunConfig's h0 stands, where the sample's
    numbers came from under the README's names: h0 (zeros, random, file), input (seed, file),
    weights (seed, or the checkpoint as given: PATH[:PREFIX])."""
    out: dict = {}
    for key, value in cfg.to_dict().items():
        if key == "h0":
            out.update(h0=provenance.h_0, input=provenance.input, weights=provenance.weights)
        else:
            out[key] = value
    return out


def config_dict(result: RunResult) -> dict:
    d = settings(result.cfg, result.provenance)
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
        "cost": cost_document(result),
        **run_sections(result, with_values),
    }


def cost_document(result: RunResult) -> dict:
    """--show cost as JSON (rnn_cli.core.cost), always in manual, torch and compare: per layer and
    direction and in total; with --grad, the bytes the backward really kept, measured."""
    from rnn_cli.core.cost import cost, saved_bytes_source

    c = cost(result.cfg)
    keys = ("params", "param_bytes", "macs", "flops", "activation_bytes")
    grads = result.gradients
    return {
        "dtype": c.dtype,
        "sequence_steps": c.sequence_steps,
        "elementwise_per_step": c.elementwise_per_step,
        "per_direction": [{"layer": p.layer, "direction": p.direction, **{k: getattr(p, k) for k in keys}}
                          for p in c.parts],
        "total": {k: getattr(c.total, k) for k in keys},
        "grad_saved_bytes": None if grads is None else grads.saved_bytes,
        "grad_saved_bytes_source": None if grads is None else saved_bytes_source(result.implementation),
    }


def run_sections(result: RunResult, with_values: bool) -> dict:
    """What the flags added to a run: recipes, padding_effect (--no-pack), the --grad fragment."""
    out: dict = {}
    if result.recipes is not None:
        out["recipes"] = recipes_document(result.recipes)
        cfg = result.cfg
        out["recipes_judged_on"] = "unpacked run (--no-pack), against the packed run's truth" if (
            cfg.lengths is not None and not cfg.pack) else "this run"
    if result.padding_effect is not None:
        out["padding_effect"] = padding_document(result.padding_effect)
    if result.gradients is not None:
        out.update(grad_document(result.cfg, result.gradients, with_values))
    return out


def compare_document(cmp, with_values: bool) -> dict:
    doc = run_document(cmp.torch, "compare", with_values)
    del doc["h_n_sources"]
    doc["tolerance"] = {"atol": cmp.tolerance.atol, "rtol": cmp.tolerance.rtol, "source": cmp.tolerance.why}
    doc["results"] = [check_document(c) for c in cmp.checks]
    doc["ok"] = cmp.ok
    return doc


def check_document(c) -> dict:
    """One compare.TensorCheck: compare's `results` entries and convert's `checks` (there,
    torch is the converted nn module and the reference the source in its own runtime)."""
    return {
        "tensor": c.name,
        "torch_shape": list(c.torch_shape),
        "reference_shape": list(c.reference_shape),
        "max_abs_diff": finite(c.max_abs_diff),
        "max_rel_diff": finite(c.max_rel_diff),
        "atol": c.tolerance.atol,
        "rtol": c.tolerance.rtol,
        "margin": finite(c.margin),  # max(|torch - ref| - (atol + rtol*|ref|)): <= 0 passes
        "nonfinite_agree": c.nonfinite_agree,  # the same NaN/±Inf at the same place on both sides
        "nonfinite_mismatch": c.nonfinite_mismatch,  # NaN/Inf on one side only
        "ok": c.ok,
    }


def _torch_device(bench) -> str:
    """The device torch ran on last (CUDA when it ran there), else the first row's."""
    return next((t.device for t in reversed(bench.timings) if t.name == "torch"), bench.timings[0].device)


def bench_document(bench) -> dict:
    """bench --json: the same numbers as the table, milliseconds and GFLOP/s."""
    from rnn_cli.core.bench import FLOP_FORMULA, SPREAD_LIMIT

    return {
        "command": "bench",
        "versions": {**versions(), **bench.versions},
        "config": {**settings(bench.cfg, bench.provenance), "device": _torch_device(bench)},  # the one used, not "auto"
        "grad": bench.grad,
        "repeat": bench.repeat,
        "warmup": bench.warmup,
        "flops": bench.flops,
        "flop_formula": FLOP_FORMULA,
        "threads": {
            "torch": bench.threads.torch,
            "numpy": bench.threads.numpy,
            "numpy_source": bench.threads.numpy_source,
            "blas": bench.threads.blas,
            "blas_env": list(bench.threads.blas_env),
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
                "gflops": bench.gflops(t),
                "relative_speed": bench.relative_speed(t),
                "times_ms": [s * 1e3 for s in t.times_s],
                "spread": t.spread,
                "busy": t.busy,
            }
            for t in bench.timings
        ],
        "not_timed": [{"implementation": n.name, "device": n.device, "status": n.status, "reason": n.reason}
                      for n in bench.not_timed],
        "notes": bench.notes,
        "spread_limit": SPREAD_LIMIT,
    }


# ---- the sections of --grad, the recipes, inspect and onnx --------------------------------


def recipes_document(rows) -> list[dict]:
    """One entry per recipe: correct only where right on this run and on the control draw;
    coincidence: equal on this run only (control_max_abs_diff says by how much it is not)."""
    return [
        {
            "expression": r.expression,
            "shape": list(r.shape),
            "correct": r.correct,
            "max_abs_diff": finite(r.max_abs_diff),
            "target": r.target,
            "target_text": r.meaning,
            "coincidence": r.coincidence,
            "control_max_abs_diff": finite(r.control_max_abs_diff),
            "control": r.control,
            "note": r.note,
        }
        for r in rows
    ]


def padding_document(rows) -> list[dict]:
    return [
        {"sequence": r.sequence, "direction": r.direction, "tensor": r.tensor, "max_abs_diff": finite(r.max_abs_diff)}
        for r in rows
    ]


def grad_document(cfg: RunConfig, grads, with_values: bool) -> dict:
    """The --json fragment: gradients (name -> shape, values), grad_norm_per_step, loss.

    grad_norm_per_step is [] when the gradients come without per-step norms (torch).
    """
    gradients = {}
    from rnn_cli.formats.grad_export import user_layout_gradients

    for name, a in user_layout_gradients(cfg, grads).items():
        entry: dict = {"shape": list(a.shape)}
        if with_values:
            entry["values"] = values(a)
        gradients[name] = entry
    per_step = [
        {"layer": layer, "direction": direction, "norms": [finite(float(v)) for v in norms]}
        for (layer, direction), norms in (grads.norm_per_step or {}).items()
    ]
    return {
        "gradients": gradients,
        "grad_norm_per_step": per_step,
        "loss": {"kind": grads.loss_kind, "value": finite(grads.loss)},
    }


def inspect_document(report, differences: list[str] | None = None) -> dict:
    """inspect --json (stable keys, plain JSON types); `differences` with --against."""
    loaded, o = report.loaded, report.other
    return {
        "command": "inspect",
        "versions": versions(),
        "file": loaded.path,
        "format": loaded.format,
        "nesting": loaded.nesting,
        "notes": list(loaded.notes),
        "modules": [_module_document(r) for r in report.modules],
        "other_tensors": {
            "count": o.count,
            "elements": o.elements,
            "largest": [{"prefix": p, "elements": n} for p, n in o.largest],
        },
        "problems": len(report.problems),
        "differences": differences,
    }


def _module_document(r) -> dict:
    from rnn_cli.formats.diagnose import code_of

    m = r.module
    return {
        "prefix": m.prefix,
        "kind": m.kind,
        "constructor": r.constructor,
        "config": {
            "input_size": m.input_size,
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "bidirectional": m.bidirectional,
            "bias": m.bias,
            "proj_size": m.proj_size,
        },
        "dtype": m.dtype,
        "num_parameters": m.num_parameters,
        "unknowns": dict(m.unknowns),
        "parameters": [{"name": n, "shape": list(s), "dtype": d} for n, s, d in r.parameters],
        "shapes": {k: list(v) for k, v in r.shapes.items()},
        "layouts": dict(r.layouts),
        "problems": [{"keys": list(p.keys), "message": p.message, "code": code_of(p)} for p in m.problems],
        "source": m.source,
        "source_names": dict(m.source_names),
        "candidate": m.candidate,
        "declared": dict(m.declared),
        "expressible": m.expressible,
        "not_expressible": [dict(r) for r in m.not_expressible],
        **({"node": m.node, "path": m.path, "states": [dict(s) for s in m.states]} if m.source == "onnx" else {}),
    }


def _info(info) -> dict | None:
    if info is None:
        return None
    return {"name": info.name, "shape": list(info.shape), "dtype": info.dtype}


def _check(c, against: str) -> dict:
    return {
        "tensor": c.name,
        "against": against,
        "shape": list(c.torch_shape),
        "expected_shape": list(c.reference_shape),
        "max_abs_diff": finite(c.max_abs_diff),
        "max_rel_diff": finite(c.max_rel_diff),
        "atol": c.tolerance.atol,
        "rtol": c.tolerance.rtol,
        "ok": c.ok,
    }


def onnx_document(report) -> dict:
    """The --json fragment: exporter, nodes, initializer shapes, mapping, compare results, ok."""
    exported, graph, run = report.exported, report.graph, report.run
    return {
        "command": "onnx",
        "versions": versions(),
        "config": settings(report.cfg, report.provenance),
        "exporter": {
            "used": exported.exporter_used,
            "why": exported.why,
            "fallback_reason": exported.fallback_reason,
            "opset": exported.opset,
        },
        "nodes": [
            {
                "index": n.index,
                "name": n.name,
                "op": n.op,
                "attributes": n.attributes,
                "inputs": {k: _info(v) for k, v in n.inputs.items()},
                "outputs": {k: _info(v) for k, v in n.outputs.items()},
                "after_Y": list(n.after_Y),
            }
            for n in graph.recurrent
        ],
        "other_nodes": [{"op": op, "count": count} for op, count in graph.node_counts()],
        "initializers": [_info(i) for i in graph.initializers],
        "inputs": [_info(i) for i in graph.inputs],
        "outputs": [_info(o) for o in graph.outputs],
        "torch_shapes": {k: list(v) for k, v in report.torch_shapes.items()},
        "batch_order": list(run.batch_order),
        "mapping": [
            {
                "node": r.node,
                "direction": r.direction,
                "tensor": r.tensor,
                "rows": list(r.rows),
                "gate": r.gate,
                "torch_param": r.torch_param,
                "torch_rows": list(r.torch_rows),
                "torch_gate": r.torch_gate,
                "equal": r.equal,
                "text": r.text,
            }
            for r in report.mapping
        ],
        "tolerance": {"atol": run.tolerance.atol, "rtol": run.tolerance.rtol, "source": run.tolerance.why},
        "results": [_check(c, "torch") for c in run.vs_torch]
        + [_check(c, "reference") for c in run.vs_reference]
        + [_check(c, "reference, ONNX layout") for c in run.y_checks],
        "ok": report.ok,
    }


def convert_document(conv) -> dict:
    """convert --json: the module, the key mapping, the proof's checks, and where DST went
    (`written` null when nothing was written: a mismatch, or a layer no nn module computes)."""
    p = conv.proof
    return {
        "command": "convert",
        "versions": versions(),
        "source": conv.path,
        "format": conv.format,
        "prefix": conv.module.prefix,
        "constructor": conv.constructor,
        "written": conv.written,
        "mapping": dict(conv.mapping),
        "proof": {"seed": p.seed, "batch": p.batch, "seq_len": p.seq_len, "h0": p.h0,
                  "source_runtime": conv.runtime, "converted": conv.converted},
        "tolerance": {"atol": conv.tolerance.atol, "rtol": conv.tolerance.rtol, "source": conv.tolerance.why},
        "checks": [check_document(c) for c in conv.checks],
        "ok": conv.ok,
        "not_expressible": [dict(r) for r in conv.module.not_expressible],
        "unmeasured": conv.unmeasured,  # why the source could not run, where it could not (null: it ran)
        "notes": list(conv.notes),
    }
