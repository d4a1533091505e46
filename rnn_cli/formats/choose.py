"""--params PATH[:PREFIX]: choosing one recurrent module of a checkpoint and the RunConfig and
parameters that run it, with the shape-defining flags the user gave checked against it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.errors import RnnCliError
from rnn_cli.formats.recurrent import CELL_OF, RecurrentModule
from rnn_cli.printable import printable

FLAG_OF = {  # RunConfig field -> the CLI flag that sets it
    "cell": "--cell",
    "input_size": "--input-size",
    "hidden_size": "--hidden-size",
    "num_layers": "--layers",
    "bidirectional": "--bidirectional",
    "bias": "--no-bias",
    "proj_size": "--proj-size",
}


def parse_params_arg(text: str) -> tuple[str, str | None]:
    """--params PATH[:PREFIX]. A path that exists whole wins; else split on the last ':' if
    what is left of it is a file; else the whole text is the path (and fails to load)."""
    if os.path.isfile(text) or ":" not in text:
        return text, None
    left, _, right = text.rpartition(":")
    if os.path.isfile(left):
        return left, right
    return text, None


def select_module(inspection, prefix: str | None) -> RecurrentModule:
    """The module PREFIX names in a checkpoint.Inspection; without PREFIX, its only one."""
    modules = [r.module for r in inspection.modules]
    names = ", ".join(f"{m.name} ({m.kind or 'unrecognised'})" for m in modules)
    path = inspection.loaded.path
    if prefix is None:
        if len(modules) == 1:
            return modules[0]
        raise RnnCliError(f"--params {path}: {len(modules)} recurrent modules; pick one with {path}:PREFIX from: {names}")
    for m in modules:
        if m.prefix == prefix or (prefix in ("", "(top level)") and m.prefix == "") or (m.node and m.node == prefix):
            return m
    raise RnnCliError(f"--params {path}:{prefix}: no recurrent module {prefix!r}; the file has: {names}")


@dataclass(frozen=True)
class Flags:
    """The shape-defining flags the user gave explicitly; None where not given."""

    cell: str | None = None  # rnn, lstm, gru
    input_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    bidirectional: bool | None = None  # True only when --bidirectional was given
    bias: bool | None = None  # False only when --no-bias was given
    proj_size: int | None = None
    dtype: str | None = None  # float32 / float64; None: the parameters' own


def to_run_config(module: RecurrentModule, flags: Flags = Flags(), path: str = "the checkpoint",
                  **run_kwargs) -> tuple[RunConfig, dict[str, np.ndarray]]:
    """RunConfig and parameters (torch's names and order, prefix stripped, in cfg.dtype) that run
    `module`. run_kwargs are RunConfig's other fields, passed through as the flags give them
    (nonlinearity, batch_first, seq_len, batch, lengths, h0, seed, device).

    A cell runs as the one-layer nn.RNN/LSTM/GRU with the same weights (renamed weight_ih ->
    weight_ih_l0, ...): that module applies the cell at each step of the sequence.
    """
    blocking = [p for p in module.problems if not p.runnable]
    if module.kind is None or blocking:
        first = blocking[0].message if blocking else "unrecognised"
        raise RnnCliError(f"--params {path}: {module.name} cannot be run: {first} (rnn-cli inspect {path} lists all)")
    if not module.expressible:  # torch has no module that computes this layer
        why = "; ".join(r["detail"] for r in module.not_expressible)
        raise RnnCliError(f"--params {path}: {printable(module.name)} is not an nn module torch can run: {why}")
    inferred = {
        "cell": CELL_OF[module.kind], "input_size": module.input_size, "hidden_size": module.hidden_size,
        "num_layers": module.num_layers, "bidirectional": module.bidirectional, "bias": module.bias,
        "proj_size": module.proj_size,
    }
    for name, have in inferred.items():
        given = getattr(flags, name)
        if given is not None and given != have:
            flag = FLAG_OF[name]
            shown = flag if isinstance(given, bool) else f"{flag} {given}"
            raise RnnCliError(f"{shown} but {module.name} in {Path(path).name} has {name} {_word(have)}")
    dtype = flags.dtype or (module.dtype if module.dtype in ("float32", "float64") else "float32")
    cfg = RunConfig(**inferred, dtype=dtype, **run_kwargs)
    np_dtype = np.dtype(dtype)
    rename = (lambda n: n + "_l0") if module.is_cell else (lambda n: n)
    own = {rename(n): a for n, a in module.params.items()}
    params = {}
    for n, shape in cfg.parameter_shapes().items():
        a = own[n]
        assert a.shape == shape, f"{n}: expected {shape}, got {a.shape}"
        params[n] = np.ascontiguousarray(a, dtype=np_dtype)
    return cfg, params


def _word(v) -> str:
    return str(v) if not isinstance(v, bool) else ("True" if v else "False")
