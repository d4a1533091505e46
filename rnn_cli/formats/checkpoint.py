"""Your own model: read a checkpoint's recurrent modules, explain them, run them. `inspect_file`
is here; the parts, by concern, are beside it and their names stay importable from here:
- rnn_cli.formats.checkpoint_read: the file's tensors (Loaded, load_tensors), never running code
  from the file: .pt/.pth/.bin/.ckpt through torch.load(weights_only=True), .safetensors and
  .npz read by hand, TorchScript archives read as data; every file judged by
  rnn_cli.formats.safe_read first (what the path is, sizes against the file and the memory limit);
- rnn_cli.formats.recurrent: which tensors make which module (RecurrentModule), its problems, and
  the constructor that rebuilds it;
- rnn_cli.formats.choose: --params PATH[:PREFIX], one module and the RunConfig that runs it;
- rnn_cli.formats.checkpoint_diff: how two checkpoints' modules differ (--against).
Formats whose reader finds modules itself (ONNX, Keras) plug in through MODULE_READERS.

This module imports numpy only (torch lazily, for torch files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.errors import RnnCliError
from rnn_cli.formats import safe_read
from rnn_cli.printable import printable

# The parts, by concern; their names stay importable from here (other readers and the tests use them).
from rnn_cli.formats.checkpoint_read import (  # noqa: F401
    FORMATS, NESTING_KEYS, TORCH_SUFFIXES, Loaded, _read_torch, _to_float32_if_half, _unnest, load_tensors,
)
from rnn_cli.formats.checkpoint_diff import compare_checkpoints  # noqa: F401
from rnn_cli.formats.choose import FLAG_OF, Flags, parse_params_arg, select_module, to_run_config  # noqa: F401
from rnn_cli.formats.recurrent import (  # noqa: F401
    CELL_OF, GATES, OtherTensors, Problem, RecurrentModule, _cell, _dtype_problems, _main_dtype,
    _unknowns, constructor_args, constructor_line, find_modules, other_tensors,
)

# Formats whose reader finds the recurrent modules itself (graph nodes, Keras layers) and hands
# them over in torch's layout: format -> (module, the extra it needs). Each module has
# `read_modules(src: safe_read.Source) -> tuple[Loaded, list[RecurrentModule]]`.
MODULE_READERS = {"onnx": ("rnn_cli.formats.onnx_read", "onnx"), "keras": ("rnn_cli.formats.keras_read", "keras")}


@dataclass
class ModuleReport:
    module: RecurrentModule
    constructor: str
    parameters: list[tuple[str, tuple[int, ...], str]]  # (name, shape, dtype)
    cfg: RunConfig | None  # for the shape-flow diagram; None for cells and broken modules
    shapes: dict[str, tuple[int, ...]]  # input, h_0 (c_0), output (h_n) for --batch / --seq-len / --batch-first
    layouts: dict[str, str]  # the same in the docs' symbols


@dataclass
class Inspection:
    loaded: Loaded
    modules: list[ModuleReport]
    other: OtherTensors

    @property
    def problems(self) -> list[Problem]:
        return [p for m in self.modules for p in m.module.problems]


def inspect_file(path: str | os.PathLike, batch: int | None = 1, seq_len: int = 10, batch_first: bool = False,
                 nonlinearity: str | None = None) -> Inspection:
    """Read and describe a checkpoint. RnnCliError when unreadable or without a recurrent module
    (the message lists the largest tensor prefixes seen). Problems are in the result: exit 1."""
    reader = _module_reader(path)
    if reader is not None:  # ONNX, Keras: the reader finds the modules and maps them to torch's layout
        loaded, modules = reader.read_modules(safe_read.source(Path(path)))
    else:
        loaded = load_tensors(path)
        modules = find_modules(loaded.tensors)
        modules += _renamed_modules(loaded.tensors, modules)
        _add_file_facts(loaded, modules)
    other = other_tensors(loaded.tensors, modules)
    if not modules:
        seen = ", ".join(f"{p} ({n:,} elements)" for p, n in other.largest) or "no numeric tensors at all"
        raise RnnCliError(f"{loaded.path}: no recurrent module (nn.RNN/LSTM/GRU or a cell) found; largest tensors: {seen}")
    reports = []
    for m in modules:
        cfg = None
        shapes: dict[str, tuple[int, ...]] = {}
        layouts: dict[str, str] = {}
        broken = any(not p.runnable for p in m.problems)
        if m.kind and m.is_cell and not broken:  # one step: input (N, H_in), h (N, H_out)
            shapes = _cell_shapes(m, batch)
            lead = "" if batch is None else "N, "
            layouts = {k: f"({lead}{'H_in' if k == 'input' else 'H_out'})" for k in shapes}
        elif m.kind and not broken:
            cfg = _shape_config(m, batch, seq_len, batch_first or m.declared.get("batch_first", False),
                                nonlinearity or m.declared.get("nonlinearity"))  # a TorchScript archive states them
            shapes, layouts = cfg.shapes(), cfg.layouts()
        params = [(n, tuple(a.shape), str(a.dtype)) for n, a in m.params.items()]
        reports.append(ModuleReport(m, constructor_line(m), params, cfg, shapes, layouts))
    return Inspection(loaded, reports, other)


def _module_reader(path: str | os.PathLike):
    """The reader module of a format that finds modules itself, imported; None for the others.
    Without the extra the format needs: one line saying which."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt not in MODULE_READERS:
        return None
    name, extra = MODULE_READERS[fmt]
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RnnCliError(f"{printable(str(path))}: reading {fmt} files needs the {extra} extra "
                          f"(pip install 'rnn-cli[{extra}]'; missing: {printable(e.name or str(e))})") from None


def _renamed_modules(tensors: dict[str, np.ndarray], modules: list[RecurrentModule]) -> list[RecurrentModule]:
    """Cells stored under other names (enc_w_ih, W_hh, kernel...): renamed.py finds the groups
    whose shapes make one cell; _cell checks them as it checks torch's own names."""
    from rnn_cli.formats import renamed

    taken = {m.key(n) for m in modules for n in m.params}
    out = []
    for group in renamed.find_groups({k: v.shape for k, v in tensors.items() if k not in taken}):
        m = _cell(group.prefix, {n: tensors[k] for n, k in group.keys.items()})
        m.source_names, m.candidate = dict(group.keys), True
        m.problems += [Problem(tuple(group.keys.values()), p) for p in group.problems]
        out.append(m)
    return out


def _add_file_facts(loaded: Loaded, modules: list[RecurrentModule]) -> None:
    """Each module's source format and the file's own key of each parameter; for TorchScript,
    the constructor arguments the archive states (checked against the shapes)."""
    from rnn_cli.formats import torchscript

    for m in modules:
        m.source = loaded.format
        m.source_names = m.source_names or {n: (f"{m.prefix}.{n}" if m.prefix else n) for n in m.params}
        d = loaded.declared.get(m.prefix)
        if d is None:
            continue
        inferred = {"input_size": m.input_size, "hidden_size": m.hidden_size, "bias": m.bias}
        if not m.is_cell:
            inferred.update(num_layers=m.num_layers, bidirectional=m.bidirectional, proj_size=m.proj_size)
        m.declared, problems = torchscript.reconcile(d, m.kind, inferred)
        m.problems += [Problem(tuple(m.key(n) for n in m.params), f"{m.name}: {p}") for p in problems]
        for name in m.declared:
            m.unknowns.pop(name, None)


def _shape_config(m: RecurrentModule, batch, seq_len, batch_first, nonlinearity) -> RunConfig:
    return RunConfig(
        cell=CELL_OF[m.kind], input_size=m.input_size, hidden_size=m.hidden_size,
        num_layers=m.num_layers, bidirectional=m.bidirectional, bias=m.bias, proj_size=m.proj_size,
        batch_first=batch_first, nonlinearity=nonlinearity, seq_len=seq_len, batch=batch,
    )


def _cell_shapes(m: RecurrentModule, batch: int | None) -> dict[str, tuple[int, ...]]:
    lead = () if batch is None else (batch,)
    out = {"input": (*lead, m.input_size), "h": (*lead, m.hidden_size)}
    if m.kind == "LSTMCell":
        out["c"] = (*lead, m.hidden_size)
    out["h'"] = (*lead, m.hidden_size)
    if m.kind == "LSTMCell":
        out["c'"] = (*lead, m.hidden_size)
    return out
