"""What to run -> the RunConfig and the Sample a run takes.

A Request holds RunConfig's fields as the user gave them (None where not given: a default, the
checkpoint or the input file decides) and where the numbers come from: the seeded draw, a
checkpoint's module (PATH[:PREFIX]), the user's `.npy` input and h_0/c_0. prepare() reads the
files, reconciles them with the fields (a field that contradicts the checkpoint is refused,
naming both) and returns the RunConfig and the Sample, the Sample saying where its numbers came
from (sample.Provenance). The CLI's flag classes only parse flags into a Request.

Why here, between the edge and the formats: reading a checkpoint or an `.npy` is the file
formats' job (rnn_cli.formats judges every file before reading it), and the numeric core
(rnn_cli.core) reads no files; this module uses both and neither uses it, so anything (the
CLI, a test, a script) can drive the core from files without the CLI.

numpy is imported only when a file is read or a sample made (the flags-only path is imported
before the memory guard, and -h never imports it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from rnn_cli.core.config import RunConfig
from rnn_cli.errors import RnnCliError

if TYPE_CHECKING:
    import numpy as np

    from rnn_cli.core.sample import Sample
    from rnn_cli.formats.checkpoint import RecurrentModule

# What the flags default to when neither they nor a file say (bench sets its own sizes first).
DEFAULTS = {"cell": "rnn", "input_size": 5, "hidden_size": 8, "num_layers": 1, "proj_size": 0, "dtype": "float32"}
STATES = ("zeros", "random")  # --h0 values that are drawn, not read


@dataclass(frozen=True)
class Request:
    """What to run: RunConfig's fields as given (None: not given) and the numbers' sources."""

    # the network: None where not given (the checkpoint's, else DEFAULTS)
    cell: Optional[str] = None
    input_size: Optional[int] = None
    hidden_size: Optional[int] = None
    num_layers: Optional[int] = None
    bidirectional: bool = False
    bias: bool = True
    proj_size: Optional[int] = None
    nonlinearity: Optional[str] = None
    dtype: Optional[str] = None
    # the input's shape and the run: seq_len / batch None: --input's, else from lengths, else 10 / 1
    seq_len: Optional[int] = None
    batch: Optional[int] = None
    unbatched: bool = False
    batch_first: bool = False
    lengths: Optional[tuple[int, ...]] = None
    pack: bool = True
    seed: int = 0
    device: str = "cpu"
    # where the numbers come from
    params: Optional[str] = None  # None: drawn from the seed; else a checkpoint, PATH[:PREFIX]
    input: Optional[str | os.PathLike] = None  # None: drawn; else PATH.npy in the layout the fields describe
    h0: str = "zeros"  # zeros, random (drawn), or PATH.npy
    c0: Optional[str | os.PathLike] = None  # LSTM: PATH.npy (with h0 PATH.npy)

    @property
    def reads_files(self) -> bool:
        return self.params is not None or self.input is not None or self.h0 not in STATES


@dataclass(frozen=True)
class Prepared:
    """A run's configuration and numbers. sample None: every number is the seeded draw, made
    when the run starts (after the memory guard has judged cfg); drawn() makes it."""

    cfg: RunConfig
    sample: Optional["Sample"] = None
    notes: tuple[str, ...] = ()  # what the user should know about how a file was read (stderr)

    def drawn(self) -> "Sample":
        from rnn_cli.core.sample import draw

        return self.sample if self.sample is not None else draw(self.cfg)


def prepare(request: Request) -> Prepared:
    """The RunConfig and Sample that `request` describes; RnnCliError when a file is unreadable
    or contradicts the fields."""
    if not request.reads_files:
        return Prepared(config(request))
    module = path = None
    notes: tuple[str, ...] = ()
    if request.params is not None:
        module, path, request, notes = _module(request)
    x = None if request.input is None else _input(request, module)
    shape = {} if x is None else {"seq_len": x.shape[0], "batch": None if request.unbatched else x.shape[1]}
    if module is not None:
        from rnn_cli.formats.checkpoint import to_run_config

        cfg, params = to_run_config(module, _given(request), path, **_run_fields(request, **shape))
    else:
        cfg, params = config(request, input_size=None if x is None else x.shape[2], **shape), None
    return Prepared(cfg, _sample(request, cfg, params, x), notes)


def config(request: Request, input_size: int | None = None, **shape) -> RunConfig:
    """The network the fields describe, DEFAULTS where not given; input_size from --input."""
    given = {name: getattr(request, name) for name in DEFAULTS}
    network = {name: DEFAULTS[name] if value is None else value for name, value in given.items()}
    if input_size is not None:
        network["input_size"] = input_size
    return RunConfig(**network, bidirectional=request.bidirectional, bias=request.bias,
                     **_run_fields(request, **shape))


def _run_fields(request: Request, seq_len: int | None = None, batch: int | None = None) -> dict:
    """RunConfig's fields that no checkpoint knows: the input's shape, the layout, the draw."""
    return {
        "batch_first": request.batch_first,
        "nonlinearity": request.nonlinearity,
        "seq_len": seq_len if seq_len is not None else _seq_len(request),
        "batch": None if request.unbatched else (batch if batch is not None else _batch(request)),
        "lengths": request.lengths,
        "pack": request.pack,
        "h0": request.h0 if request.h0 in STATES else "zeros",  # from a file: nothing drawn (the provenance says file)
        "seed": request.seed,
        "device": request.device,
    }


def _seq_len(request: Request) -> int:
    """seq_len, else max(lengths) (what pad_packed_sequence gives), else 10."""
    if request.seq_len is not None:
        return request.seq_len
    return max(max(request.lengths), 1) if request.lengths is not None else 10


def _batch(request: Request) -> int:
    """batch, else one per lengths value, else 1."""
    if request.batch is not None:
        return request.batch
    return len(request.lengths) if request.lengths is not None else 1


def _given(request: Request):
    """The shape-defining fields the user gave, for checkpoint.to_run_config to check."""
    from rnn_cli.formats.checkpoint import Flags

    return Flags(cell=request.cell, input_size=request.input_size, hidden_size=request.hidden_size,
                 num_layers=request.num_layers, bidirectional=True if request.bidirectional else None,
                 bias=False if not request.bias else None, proj_size=request.proj_size, dtype=request.dtype)


def _module(request: Request) -> tuple["RecurrentModule", str, Request, tuple[str, ...]]:
    """The checkpoint's module, its file, the request with what the file states adopted, and notes.

    What a TorchScript archive states beyond the shapes is how the module runs: its
    nonlinearity (a request that contradicts it is refused) and batch_first=True. Renamed
    weights: a note says which keys became which torch names."""
    from rnn_cli.formats import checkpoint

    path, prefix = checkpoint.parse_params_arg(request.params)
    module = checkpoint.select_module(checkpoint.inspect_file(path, batch=1), prefix)
    if request.nonlinearity is not None and module.kind not in ("RNN", "RNNCell"):
        raise RnnCliError(f"--nonlinearity applies to nn.RNN only; {module.name} in {path} is an nn.{module.kind}")
    notes = ()
    if module.candidate:
        mapped = ", ".join(f"{key} -> {name}" for name, key in module.source_names.items())
        notes = (f"--params: {module.name} is renamed weights, mapped by their shapes "
                 f"in torch's gate order: {mapped}",)
    said = module.declared
    if "nonlinearity" in said:
        if request.nonlinearity not in (None, said["nonlinearity"]):
            raise RnnCliError(f"--nonlinearity {request.nonlinearity} but {module.name} in {Path(path).name} "
                              f"has nonlinearity {said['nonlinearity']}")
        request = replace(request, nonlinearity=said["nonlinearity"])
    if said.get("batch_first"):
        request = replace(request, batch_first=True)
    return module, path, request, notes


def _input(request: Request, module: "RecurrentModule | None") -> "np.ndarray":
    """--input as (L, N, H_in), checked against the sizes given or the module's."""
    from rnn_cli.formats.user_arrays import load_input

    return load_input(
        request.input,
        batch_first=request.batch_first,
        unbatched=request.unbatched,
        input_size=module.input_size if module is not None else request.input_size,
        seq_len=request.seq_len,
        batch=request.batch,
    )


def _sample(request: Request, cfg: RunConfig, params: dict | None, x: "np.ndarray | None") -> "Sample":
    from rnn_cli.formats.user_arrays import load_state

    h_0 = load_state(request.h0, "h_0", cfg) if request.h0 not in STATES else None
    c_0 = load_state(request.c0, "c_0", cfg) if request.c0 is not None else None
    return make_sample(cfg, params, x, h_0, c_0, weights=request.params)


def make_sample(cfg: RunConfig, params: dict | None = None, x: "np.ndarray | None" = None,
                h_0: "np.ndarray | None" = None, c_0: "np.ndarray | None" = None,
                weights: str | None = None) -> "Sample":
    """The Sample manual.run / torch_run.run / compare take: the checkpoint's parameters, the
    user's x (L, N, H_in) / h_0 / c_0 where given, the seeded draw (--seed, --h0) elsewhere;
    its provenance says which (`weights`: the checkpoint as given, PATH[:PREFIX]).
    The draw is always made, once, so the generator's state after it (where --grad draws its
    upstream gradients) depends on the seed and the shapes alone, never on which file was given."""
    from rnn_cli.core.sample import Provenance, Sample, draw
    from rnn_cli.formats.user_arrays import fits

    drawn = draw(cfg)
    provenance = Provenance(
        weights="seed" if params is None else (weights or "file"),
        input="seed" if x is None else "file",
        h_0=drawn.provenance.h_0 if h_0 is None else "file",
    )
    return Sample(
        params=drawn.params if params is None else params,
        x=drawn.x if x is None else fits(x, cfg.dtype, "--input"),
        h_0=drawn.h_0 if h_0 is None else h_0,
        c_0=(drawn.c_0 if c_0 is None else c_0) if cfg.has_c else None,
        rng_state=drawn.rng_state,
        provenance=provenance,
    )
