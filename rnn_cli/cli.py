"""Typer app: flags -> RunConfig -> core (manual, torch, compare, bench) -> render.

Nothing else happens here. Every bad input ends as one line on stderr and exit status 2
(RnnCliError from the core, usage errors from the click that typer vendors); compare's mismatch is exit 1.
torch is imported only inside the commands that run it, so --help and manual start fast.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

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


class _Interrupted(BaseException):
    """Ctrl-C carried past typer, which turns KeyboardInterrupt into a silent exit 130."""


class OneLineErrorGroup(TyperGroup):
    """Runs the app and turns every expected failure into one stderr line and an exit code.
    KeyboardInterrupt and MemoryError go on to rnn_cli.entry, which reports them at any moment."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None

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
        except typer.Abort:
            _error_line("aborted")
            code = 130
        except _Interrupted:  # Ctrl-C: rnn_cli.entry prints the one line and exits 130
            raise KeyboardInterrupt from None
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


# ---- the options, declared once and shared by every command ----------------------------



# name -> (type, default, typer.Option)
OPTIONS: dict[str, tuple[Any, Any, Any]] = {
    "cell": (Literal["rnn", "lstm", "gru"], "rnn", typer.Option("--cell", help="nn.RNN, nn.LSTM or nn.GRU.")),
    "input_size": (int, 5, typer.Option("--input-size", metavar="INT", help="H_in: features per step.")),
    "hidden_size": (int, 8, typer.Option("--hidden-size", metavar="INT", help="H_cell: hidden state size (H_out unless --proj-size).")),
    "layers": (int, 1, typer.Option("--layers", metavar="INT", help="num_layers: stacked layers.")),
    "bidirectional": (bool, False, typer.Option("--bidirectional", help="D = 2: a backward direction too.")),
    "nonlinearity": (Optional[Literal["tanh", "relu"]], None, typer.Option("--nonlinearity", help="rnn only. [default: tanh]", show_default=False)),
    "no_bias": (bool, False, typer.Option("--no-bias", help="bias=False.")),
    "proj_size": (int, 0, typer.Option("--proj-size", metavar="INT", help="lstm only: project h to this size.")),
    "seq_len": (int, 10, typer.Option("--seq-len", metavar="INT", help="L: time steps.")),
    "batch": (Optional[int], None, typer.Option("--batch", metavar="INT", help="N: sequences in the batch. [default: 1]", show_default=False)),
    "unbatched": (bool, False, typer.Option("--unbatched", help="2-D input (L, H_in), as nn.RNN accepts.")),
    "batch_first": (bool, False, typer.Option("--batch-first", help="batch_first=True: input and output (N, L, ...); never h_n.")),
    "lengths": (Optional[str], None, typer.Option("--lengths", metavar="N,N,...", help="Real length of each sequence: packed sequences.")),
    "h0": (Literal["zeros", "random"], "zeros", typer.Option("--h0", help="Initial hidden (and cell) state.")),
    "seed": (int, 0, typer.Option("--seed", metavar="INT", help="Same seed, same weights, inputs and numbers.")),
    "dtype": (Literal["float32", "float64"], "float32", typer.Option("--dtype")),
    "device": (str, "cpu", typer.Option("--device", metavar="cpu|cuda|cuda:N|auto", help="Where torch runs (auto: CUDA when available).")),
    "json": (bool, False, typer.Option("--json", help="One JSON document on stdout and nothing else.")),
    "save": (Optional[Path], None, typer.Option("--save", metavar="PATH.npz", help="Save tensors, parameters and config (atomic).")),
    "no_values": (bool, False, typer.Option("--no-values", help="Shapes and parameters only.")),
    "precision": (int, 4, typer.Option("--precision", metavar="INT", help="Digits in value tables.")),
    "batch_index": (int, 0, typer.Option("--batch-index", metavar="INT", help="Batch element shown in value tables.")),
    "no_diagram": (bool, False, typer.Option("--no-diagram", help="Hide the shape-flow diagram.")),
    "no_heatmap": (bool, False, typer.Option("--no-heatmap", help="Plain numbers in value tables, no colour scale.")),
    "export_svg": (Optional[Path], None, typer.Option("--export-svg", metavar="PATH.svg", help="Also save what was printed as SVG.")),
}
TF32_OPTION = {
    "no_tf32": (bool, False, typer.Option("--no-tf32", help="Forbid TF32 in cuDNN's float32 kernels (CUDA).")),
}
TOLERANCE_OPTIONS = {
    "atol": (Optional[float], None, typer.Option("--atol", metavar="FLOAT", help="Absolute tolerance. [default: by dtype and device]", show_default=False)),
    "rtol": (Optional[float], None, typer.Option("--rtol", metavar="FLOAT", help="Relative tolerance. [default: by dtype and device]", show_default=False)),
}
BENCH_OPTIONS = {
    "repeat": (int, 20, typer.Option("--repeat", metavar="INT", help="Timed runs per implementation.")),
    "warmup": (int, 3, typer.Option("--warmup", metavar="INT", help="Untimed runs first.")),
}
RUN_ONLY = ("save", "no_values", "precision", "batch_index", "no_heatmap", "no_diagram")  # views bench lacks


def command(name: str, help: str, options: dict[str, tuple[Any, Any, Any]]) -> Callable:
    """Register fn(opts: dict) as a command whose flags are `options`, declared once above."""

    def decorator(fn: Callable[[dict], Optional[int]]) -> Callable:
        params = [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[typ, option])
            for key, (typ, default, option) in options.items()
        ]

        def callback(**opts: Any) -> None:
            code = fn(opts)
            if code:
                raise typer.Exit(code)

        callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        callback.__doc__ = help
        callback.__name__ = name
        app.command(name, help=help)(callback)
        return fn

    return decorator


# ---- flags -> config and output choices -----------------------------------------------------


def _parse_lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RnnCliError(f"--lengths must be comma-separated integers such as 10,7,3, got {text!r}") from None
    return values


def build_config(o: dict) -> RunConfig:
    if o["unbatched"] and o["batch"] is not None:
        raise RnnCliError("--batch and --unbatched conflict: unbatched input has no batch dimension")
    cell = o["cell"]
    nonlinearity = o["nonlinearity"]
    if cell != "rnn" and nonlinearity is not None:
        raise RnnCliError(f"--nonlinearity applies to --cell rnn only; {cell} has fixed activations")
    return RunConfig(
        cell=cell,
        input_size=o["input_size"],
        hidden_size=o["hidden_size"],
        num_layers=o["layers"],
        bidirectional=o["bidirectional"],
        batch_first=o["batch_first"],
        nonlinearity=nonlinearity,
        bias=not o["no_bias"],
        proj_size=o["proj_size"],
        seq_len=o["seq_len"],
        batch=None if o["unbatched"] else (1 if o["batch"] is None else o["batch"]),
        lengths=None if o["lengths"] is None else _parse_lengths(o["lengths"]),
        h0=o["h0"],
        seed=o["seed"],
        dtype=o["dtype"],
        device=o["device"],
    )


@dataclass(frozen=True)
class Output:
    json: bool
    save: Optional[Path]
    export_svg: Optional[Path]
    view: Any  # render.View


def build_output(o: dict, cfg: RunConfig) -> Output:
    from rnn_cli.render import View

    if o["json"] and o["export_svg"] is not None:
        raise RnnCliError("--export-svg records the human output; it cannot be combined with --json")
    precision = o.get("precision", 4)
    if not 0 <= precision <= 12:
        raise RnnCliError(f"--precision must be between 0 and 12, got {precision}")
    batch_index = o.get("batch_index", 0)
    if cfg.unbatched and batch_index != 0:
        raise RnnCliError(f"--batch-index must be 0 with --unbatched (one sequence), got {batch_index}")
    if not 0 <= batch_index < cfg.N:
        raise RnnCliError(f"--batch-index must be between 0 and {cfg.N - 1} (--batch {cfg.N}), got {batch_index}")
    for flag, path in (("--save", o.get("save")), ("--export-svg", o["export_svg"])):
        if path is not None:
            from rnn_cli.save import check_writable

            check_writable(path, flag)
    view = View(
        values=not o.get("no_values", False),
        precision=precision,
        batch_index=batch_index,
        diagram=not o.get("no_diagram", False),
        heatmap=not o.get("no_heatmap", False),
    )
    return Output(json=o["json"], save=o.get("save"), export_svg=o["export_svg"], view=view)


def _console(out: Output):
    from rich.console import Console

    return Console(record=out.export_svg is not None, highlight=False)


def _print_json(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
    sys.stdout.flush()


def _export_svg(console, out: Output, title: str) -> None:
    if out.export_svg is None:
        return
    from rnn_cli.save import write_atomic

    svg = console.export_svg(title=title)
    write_atomic(out.export_svg, svg.encode("utf-8"), "--export-svg")


def _save_run(out: Output, result, extra: Optional[dict] = None) -> None:
    if out.save is None:
        return
    from rnn_cli.render import config_dict
    from rnn_cli.save import save_npz

    arrays = dict(result.tensors)
    if result.cfg.lengths is not None:
        import numpy as np

        arrays["lengths"] = np.asarray(result.cfg.lengths, dtype=np.int64)
    arrays.update(result.params)
    arrays.update(extra or {})
    save_npz(out.save, arrays, config_dict(result))


def _finish_run(result, command_name: str, out: Output) -> None:
    from rnn_cli import render

    _save_run(out, result)
    if out.json:
        _print_json(render.run_document(result, command_name, values=out.view.values))
        return
    console = _console(out)
    render.show_run(console, result, command_name, out.view)
    _export_svg(console, out, f"rnn-cli {command_name}")


# ---- the commands -------------------------------------------------------------------------

RUN_OPTIONS = OPTIONS


@command(
    "manual",
    "The memory cell written out in numpy (CPU, no torch): output, h_n and where h_n comes from.",
    RUN_OPTIONS,
)
def manual_command(o: dict) -> None:
    cfg = build_config(o)
    if cfg.device.startswith("cuda"):
        raise RnnCliError(
            f"--device {cfg.device}: manual is numpy on the CPU; use 'rnn-cli torch' or 'rnn-cli compare' for CUDA"
        )
    out = build_output(o, cfg)
    check_memory(cfg)
    from rnn_cli import manual

    _finish_run(manual.run(cfg, keep_layers=out.view.values), "manual", out)


@command(
    "torch",
    "torch.nn.RNN / LSTM / GRU built from the same flags, run in inference mode on --device.",
    {**RUN_OPTIONS, **TF32_OPTION},
)
def torch_command(o: dict) -> None:
    cfg = build_config(o)
    out = build_output(o, cfg)
    check_memory(cfg, copies=2)
    from rnn_cli import torch_run

    result = torch_run.run(cfg, keep_layers=out.view.values, tf32=not o["no_tf32"])
    _finish_run(result, "torch", out)


@command(
    "compare",
    "Same weights and inputs through torch and the numpy reference (float64); exit 1 on mismatch.",
    {**RUN_OPTIONS, **TF32_OPTION, **TOLERANCE_OPTIONS},
)
def compare_command(o: dict) -> int:
    cfg = build_config(o)
    out = build_output(o, cfg)
    for flag in ("atol", "rtol"):
        value = o[flag]
        if value is not None and not (value >= 0 and value != float("inf")):
            raise RnnCliError(f"--{flag} must be a finite number >= 0, got {value}")
    check_memory(cfg, copies=4)
    from rnn_cli import compare, render

    cmp = compare.run(cfg, atol=o["atol"], rtol=o["rtol"], tf32=not o["no_tf32"])
    reference = {f"reference_{c.name}": cmp.reference.tensors[c.name] for c in cmp.checks}
    _save_run(out, cmp.torch, reference)
    if out.json:
        _print_json(render.compare_document(cmp, values=out.view.values))
    else:
        console = _console(out)
        render.show_compare(console, cmp, out.view)
        _export_svg(console, out, "rnn-cli compare")
    return 0 if cmp.ok else 1


@command(
    "bench",
    "Time the forward of each implementation here: numpy, torch CPU, torch CUDA.",
    {**{k: v for k, v in OPTIONS.items() if k not in RUN_ONLY}, **TF32_OPTION, **BENCH_OPTIONS},
)
def bench_command(o: dict) -> None:
    cfg = build_config(o)
    out = build_output(o, cfg)
    if not 1 <= o["repeat"] <= 100_000:
        raise RnnCliError(f"--repeat must be between 1 and 100000, got {o['repeat']}")
    if not 0 <= o["warmup"] <= 10_000:
        raise RnnCliError(f"--warmup must be between 0 and 10000, got {o['warmup']}")
    check_memory(cfg, copies=3)
    from rich.console import Console

    from rnn_cli import bench

    console = _console(out)
    results = bench.run(
        cfg, repeat=o["repeat"], warmup=o["warmup"], tf32=not o["no_tf32"], progress_console=Console(stderr=True)
    )
    if out.json:
        _print_json(bench.document(cfg, results))
        return
    bench.show(console, cfg, results, out.view)
    _export_svg(console, out, "rnn-cli bench")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
