"""Typer app: flags -> RunConfig -> core (manual, torch, compare, bench) -> views / documents.

Nothing else happens here. Every bad input ends as one line on stderr and exit status 2
(RnnCliError from the core, usage errors from the click that typer vendors); compare's mismatch is exit 1.
torch is imported only inside the commands that run it, so --help and manual start fast.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, get_type_hints

import typer
from typer.core import TyperGroup

from rnn_cli import __version__
from rnn_cli.config import RunConfig, check_memory
from rnn_cli.errors import RnnCliError

PROG = "rnn-cli"


def _error_line(message: str) -> None:
    text = " ".join(str(message).split())  # always one line
    sys.stderr.write(f"{PROG}: error: {text}\n")
    sys.stderr.flush()


# What typer's validation (pydantic, from typer 0.29) says about a value it cannot parse,
# said plainly with the value, and the same words for click's own types (older typer).
_PARSE_ERRORS = {"int_parsing": "{input!r} is not an integer", "float_parsing": "{input!r} is not a number"}
_CLICK_WORDING = {
    " is not a valid int.": " is not an integer",
    " is not a valid integer.": " is not an integer",
    " is not a valid float.": " is not a number",
}


def _usage_message(e: Exception) -> str:
    """click's usage message in the same words whatever typer version parsed the flags:
    `Invalid value for '--hidden-size': 'abc' is not an integer`."""
    message = e.format_message()  # type: ignore[attr-defined]
    try:
        first = e.__cause__.errors()[0]  # type: ignore[union-attr]
        wording = _PARSE_ERRORS.get(first["type"])
        if wording is not None:
            return message.replace(first["msg"], wording.format(input=first["input"]))
        if first["type"] == "value_error":
            return message.replace("Value error, ", "", 1)
    except (AttributeError, IndexError, KeyError, TypeError):
        pass
    for theirs, ours in _CLICK_WORDING.items():
        if message.endswith(theirs):
            return message[: -len(theirs)] + ours
    return message


def out_of_memory(e: BaseException) -> str:
    detail = str(e).splitlines()[-1].strip() if str(e).strip() else ""
    return f"out of memory{': ' + detail if detail else ''}; reduce --hidden-size, --seq-len, --batch or --layers"


class OneLineErrorGroup(TyperGroup):
    """Runs the app and turns every expected failure into one stderr line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any):
        try:
            rv = super().main(
                args=args, prog_name=prog_name or PROG, complete_var=complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else 0
        except RnnCliError as e:
            _error_line(str(e))
            code = 2
        except typer.TyperException as e:  # click's usage errors (typer vendors click)
            ctx = getattr(e, "ctx", None)
            if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
                sys.stdout.write(ctx.get_help() + "\n")
                code = 0
            else:
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                _error_line(_usage_message(e) + hint)
                code = e.exit_code
        except MemoryError as e:  # past the guard's estimate, or under a limit it could not see
            _error_line(out_of_memory(e))
            code = 2
        except RuntimeError as e:  # torch's allocators say it this way
            if "can't allocate memory" not in str(e) and type(e).__name__ != "OutOfMemoryError":
                raise
            _error_line(out_of_memory(e))
            code = 2
        except typer.Abort:
            _error_line("aborted")
            code = 130
        except KeyboardInterrupt:
            _error_line("interrupted")
            code = 130
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as a Unix filter does.
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the flush at exit
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrorGroup,
    name=PROG,
    help="See and check what recurrent layers do: shapes, states and values, numpy vs torch.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports rich.markdown, rich.syntax (pygments) and
    # rich.traceback, ~140 ms that would double --help's start-up (issue 5, target 1).
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """See and check what recurrent layers do: shapes, states and values, numpy vs torch."""


# ---- the options: declared once, as typed groups -----------------------------------------
# Each group is a frozen dataclass whose fields carry their typer.Option. A command names the
# groups it takes (`@command(..., Network, Output)`) and receives one instance of each, so a
# command reads `net.hidden_size`, never a string key.


def _opt(*names: str, **kwargs: Any) -> Any:
    kwargs.setdefault("show_default", "help" not in kwargs or "[default" not in kwargs["help"])
    return typer.Option(*names, **kwargs)


@dataclass(frozen=True)
class Network:
    cell: Annotated[Literal["rnn", "lstm", "gru"], _opt("--cell", help="nn.RNN, nn.LSTM or nn.GRU.")] = "rnn"
    input_size: Annotated[int, _opt("--input-size", metavar="INT", help="H_in: features per step.")] = 5
    hidden_size: Annotated[int, _opt("--hidden-size", metavar="INT", help="H_cell: hidden state size (H_out unless --proj-size).")] = 8
    layers: Annotated[int, _opt("--layers", metavar="INT", help="num_layers: stacked layers.")] = 1
    bidirectional: Annotated[bool, _opt("--bidirectional", help="D = 2: a backward direction too.")] = False
    nonlinearity: Annotated[Optional[Literal["tanh", "relu"]], _opt("--nonlinearity", help="rnn only. [default: tanh]")] = None
    no_bias: Annotated[bool, _opt("--no-bias", help="bias=False.")] = False
    proj_size: Annotated[int, _opt("--proj-size", metavar="INT", help="lstm only: project h to this size.")] = 0
    seq_len: Annotated[int, _opt("--seq-len", metavar="INT", help="L: time steps.")] = 10
    batch: Annotated[Optional[int], _opt("--batch", metavar="INT", help="N: sequences in the batch. [default: 1]")] = None
    unbatched: Annotated[bool, _opt("--unbatched", help="2-D input (L, H_in), as nn.RNN accepts.")] = False
    batch_first: Annotated[bool, _opt("--batch-first", help="batch_first=True: input and output (N, L, ...); never h_n.")] = False
    lengths: Annotated[Optional[str], _opt("--lengths", metavar="N,N,...", help="Real length of each sequence: packed sequences.")] = None
    h0: Annotated[Literal["zeros", "random"], _opt("--h0", help="Initial hidden (and cell) state.")] = "zeros"
    seed: Annotated[int, _opt("--seed", metavar="INT", help="Same seed, same weights, inputs and numbers.")] = 0
    dtype: Annotated[Literal["float32", "float64"], _opt("--dtype")] = "float32"
    device: Annotated[str, _opt("--device", metavar="cpu|cuda|cuda:N|auto", help="Where torch runs (auto: CUDA when available).")] = "cpu"

    def config(self) -> RunConfig:
        if self.unbatched and self.batch is not None:
            raise RnnCliError("--batch and --unbatched conflict: unbatched input has no batch dimension")
        if self.cell != "rnn" and self.nonlinearity is not None:
            raise RnnCliError(f"--nonlinearity applies to --cell rnn only; {self.cell} has fixed activations")
        return RunConfig(
            cell=self.cell,
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.layers,
            bidirectional=self.bidirectional,
            batch_first=self.batch_first,
            nonlinearity=self.nonlinearity,
            bias=not self.no_bias,
            proj_size=self.proj_size,
            seq_len=self.seq_len,
            batch=None if self.unbatched else (1 if self.batch is None else self.batch),
            lengths=None if self.lengths is None else _parse_lengths(self.lengths),
            h0=self.h0,
            seed=self.seed,
            dtype=self.dtype,
            device=self.device,
        )


@dataclass(frozen=True)
class Output:
    json: Annotated[bool, _opt("--json", help="One JSON document on stdout and nothing else.")] = False
    export_svg: Annotated[Optional[Path], _opt("--export-svg", metavar="PATH.svg", help="Also save what was printed as SVG.")] = None


@dataclass(frozen=True)
class RunOutput:
    """What manual, torch and compare show and save (bench has none of it)."""

    save: Annotated[Optional[Path], _opt("--save", metavar="PATH.npz", help="Save tensors, parameters and config (atomic).")] = None
    no_values: Annotated[bool, _opt("--no-values", help="Shapes and parameters only.")] = False
    precision: Annotated[int, _opt("--precision", metavar="INT", help="Digits in value tables.")] = 4
    batch_index: Annotated[int, _opt("--batch-index", metavar="INT", help="Batch element shown in value tables.")] = 0
    no_diagram: Annotated[bool, _opt("--no-diagram", help="Hide the shape-flow diagram.")] = False
    no_heatmap: Annotated[bool, _opt("--no-heatmap", help="Plain numbers in value tables, no colour scale.")] = False

    def view(self, cfg: RunConfig):
        from rnn_cli.views import View

        if not 0 <= self.precision <= 12:
            raise RnnCliError(f"--precision must be between 0 and 12, got {self.precision}")
        if cfg.unbatched and self.batch_index != 0:
            raise RnnCliError(f"--batch-index must be 0 with --unbatched (one sequence), got {self.batch_index}")
        if not 0 <= self.batch_index < cfg.N:
            raise RnnCliError(f"--batch-index must be between 0 and {cfg.N - 1} (--batch {cfg.N}), got {self.batch_index}")
        return View(
            values=not self.no_values,
            precision=self.precision,
            batch_index=self.batch_index,
            diagram=not self.no_diagram,
            heatmap=not self.no_heatmap,
        )


@dataclass(frozen=True)
class TF32:
    no_tf32: Annotated[bool, _opt("--no-tf32", help="Forbid TF32 in cuDNN's float32 kernels (CUDA).")] = False


@dataclass(frozen=True)
class Tolerances:
    atol: Annotated[Optional[float], _opt("--atol", metavar="FLOAT", help="Absolute tolerance. [default: by dtype and device]")] = None
    rtol: Annotated[Optional[float], _opt("--rtol", metavar="FLOAT", help="Relative tolerance. [default: by dtype and device]")] = None

    def check(self) -> None:
        for flag, value in (("atol", self.atol), ("rtol", self.rtol)):
            if value is not None and not (value >= 0 and value != float("inf")):
                raise RnnCliError(f"--{flag} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class Timing:
    repeat: Annotated[int, _opt("--repeat", metavar="INT", help="Timed runs per implementation.")] = 20
    warmup: Annotated[int, _opt("--warmup", metavar="INT", help="Untimed runs first.")] = 3

    def check(self) -> None:
        if not 1 <= self.repeat <= 100_000:
            raise RnnCliError(f"--repeat must be between 1 and 100000, got {self.repeat}")
        if not 0 <= self.warmup <= 10_000:
            raise RnnCliError(f"--warmup must be between 0 and 10000, got {self.warmup}")


def command(name: str, help: str, *groups: type) -> Callable:
    """Register fn(*instances of groups) as the command `name` whose flags are the groups' fields.

    typer reads a command's flags from its signature; this one signature, made from the
    dataclasses' annotated fields, is the only place they are listed."""

    def decorator(fn: Callable[..., Optional[int]]) -> Callable:
        owner: dict[str, type] = {}
        params = []
        for group in groups:
            hints = get_type_hints(group, include_extras=True)
            for f in dataclasses.fields(group):
                owner[f.name] = group
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]))

        def callback(**flags: Any) -> None:
            parts = [group(**{k: v for k, v in flags.items() if owner[k] is group}) for group in groups]
            code = fn(*parts)
            if code:
                raise typer.Exit(code)

        callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        callback.__name__ = name
        app.command(name, help=help)(callback)
        return fn

    return decorator


def _parse_lengths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RnnCliError(f"--lengths must be comma-separated integers such as 10,7,3, got {text!r}") from None


# ---- one way out: save, then JSON or the human view (and its SVG) ----------------------


def emit(
    out: Output,
    document: Callable[[], dict],
    show: Callable[[Any], None],
    title: str,
    save: Optional[Path] = None,
    arrays: Optional[Callable[[], tuple[dict, dict]]] = None,
) -> None:
    """Write --save's .npz first; then one JSON document, or the human view (recorded for
    --export-svg, whose file is written before anything reaches stdout)."""
    if save is not None and arrays is not None:
        from rnn_cli.save import save_npz

        save_npz(save, *arrays())
    if out.json:
        from rnn_cli.documents import write_document

        write_document(document(), sys.stdout)  # array by array: the whole text never exists
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    from rich.console import Console

    console = Console(record=out.export_svg is not None, highlight=False)
    show(console)
    if out.export_svg is not None:
        from rnn_cli.save import write_atomic

        write_atomic(out.export_svg, console.export_svg(title=title).encode("utf-8"), "--export-svg")


def _check_output(out: Output, run_out: Optional[RunOutput] = None) -> None:
    if out.json and out.export_svg is not None:
        raise RnnCliError("--export-svg records the human output; it cannot be combined with --json")
    from rnn_cli.save import check_writable

    for flag, path in (("--save", run_out.save if run_out else None), ("--export-svg", out.export_svg)):
        if path is not None:
            check_writable(path, flag)


def _run_arrays(result, extra: Optional[dict] = None) -> tuple[dict, dict]:
    """What --save keeps of a run: its tensors, lengths, parameters (and `extra`), and its config."""
    import numpy as np

    from rnn_cli.documents import config_dict

    arrays = dict(result.tensors)
    if result.cfg.lengths is not None:
        arrays["lengths"] = np.asarray(result.cfg.lengths, dtype=np.int64)
    arrays.update(result.params)
    arrays.update(extra or {})
    return arrays, config_dict(result)


def _finish_run(result, name: str, out: Output, run_out: RunOutput, view) -> None:
    from rnn_cli import documents, views

    emit(
        out,
        document=lambda: documents.run_document(result, name, with_values=view.values),
        show=lambda console: views.show_run(console, result, name, view),
        title=f"rnn-cli {name}",
        save=run_out.save,
        arrays=lambda: _run_arrays(result),
    )


# ---- the commands -------------------------------------------------------------------------


@command(
    "manual",
    "The memory cell written out in numpy (CPU, no torch): output, h_n and where h_n comes from.",
    Network, Output, RunOutput,
)
def manual_command(net: Network, out: Output, run_out: RunOutput) -> None:
    cfg = net.config()
    if cfg.device.startswith("cuda"):
        raise RnnCliError(
            f"--device {cfg.device}: manual is numpy on the CPU; use 'rnn-cli torch' or 'rnn-cli compare' for CUDA"
        )
    view = run_out.view(cfg)
    _check_output(out, run_out)
    check_memory(cfg, "manual", out.json, view.values)
    from rnn_cli import manual

    _finish_run(manual.run(cfg, keep_layers=view.values), "manual", out, run_out, view)


@command(
    "torch",
    "torch.nn.RNN / LSTM / GRU built from the same flags, run in inference mode on --device.",
    Network, Output, RunOutput, TF32,
)
def torch_command(net: Network, out: Output, run_out: RunOutput, tf32: TF32) -> None:
    cfg = net.config()
    view = run_out.view(cfg)
    _check_output(out, run_out)
    check_memory(cfg, "torch", out.json, view.values)
    from rnn_cli import torch_run

    result = torch_run.run(cfg, keep_layers=view.values, tf32=not tf32.no_tf32)
    _finish_run(result, "torch", out, run_out, view)


@command(
    "compare",
    "Same weights and inputs through torch and the numpy reference (float64); exit 1 on mismatch.",
    Network, Output, RunOutput, TF32, Tolerances,
)
def compare_command(net: Network, out: Output, run_out: RunOutput, tf32: TF32, tol: Tolerances) -> int:
    cfg = net.config()
    view = run_out.view(cfg)
    _check_output(out, run_out)
    tol.check()
    check_memory(cfg, "compare", out.json, view.values)
    from rnn_cli import compare, documents, views

    cmp = compare.run(cfg, atol=tol.atol, rtol=tol.rtol, tf32=not tf32.no_tf32)
    reference = {f"reference_{c.name}": cmp.reference.tensors[c.name] for c in cmp.checks}
    emit(
        out,
        document=lambda: documents.compare_document(cmp, with_values=view.values),
        show=lambda console: views.show_compare(console, cmp, view),
        title="rnn-cli compare",
        save=run_out.save,
        arrays=lambda: _run_arrays(cmp.torch, reference),
    )
    return 0 if cmp.ok else 1


@command(
    "bench",
    "Time the forward of each implementation here: numpy, torch CPU, torch CUDA.",
    Network, Output, TF32, Timing,
)
def bench_command(net: Network, out: Output, tf32: TF32, timing: Timing) -> None:
    cfg = net.config()
    _check_output(out)
    timing.check()
    check_memory(cfg, "bench", out.json, values=False)
    from rich.console import Console

    from rnn_cli import bench, documents, views

    progress = views.LazyProgress(Console(stderr=True))
    try:
        result = bench.run(cfg, repeat=timing.repeat, warmup=timing.warmup, tf32=not tf32.no_tf32, on_run=progress)
    finally:
        progress.close()
    emit(
        out,
        document=lambda: documents.bench_document(result),
        show=lambda console: views.show_bench(console, result),
        title="rnn-cli bench",
    )


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
