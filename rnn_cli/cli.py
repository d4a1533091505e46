"""Typer app: flags -> RunConfig -> core (manual, torch, compare, bench) -> views / documents.

Nothing else happens here. Every bad input ends as one line on stderr and exit status 2
(RnnCliError from the core, usage errors from the click that typer vendors); compare's mismatch is exit 1.
torch is imported only inside the commands that run it, so --help and manual start fast.
"""

import dataclasses
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from rnn_cli import __version__
from rnn_cli.config import SECTION_NAMES, RunConfig, View, check_memory, default_show, parse_show
from rnn_cli.errors import RnnCliError

PROG = "rnn-cli"


def _note(message: str) -> None:
    """One line on stderr that is not an error (the run goes on)."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _error_line(message: str) -> None:
    text = " ".join(str(message).split())  # always one line
    sys.stderr.write(f"{PROG}: error: {text}\n")
    sys.stderr.flush()


# click's words for a value it cannot parse, said plainly: `'abc' is not an integer`.
_CLICK_WORDING = {
    " is not a valid int.": " is not an integer",
    " is not a valid integer.": " is not an integer",
    " is not a valid float.": " is not a number",
}


def _usage_message(e: Exception) -> str:
    """click's usage message: `Invalid value for '--hidden-size': 'abc' is not an integer`."""
    message = e.format_message()  # type: ignore[attr-defined]
    for theirs, ours in _CLICK_WORDING.items():
        if message.endswith(theirs):
            return message[: -len(theirs)] + ours
    return message


def out_of_memory(e: BaseException) -> str:
    detail = str(e).splitlines()[-1].strip() if str(e).strip() else ""
    return f"out of memory{': ' + detail if detail else ''}; reduce --hidden-size, --seq-len, --batch or --layers"


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
    add_completion=True,  # --install-completion / --show-completion; typer imports its shell code only then
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports rich.markdown, rich.syntax (pygments) and
    # rich.traceback, ~140 ms that would double --help's start-up.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """See and check what recurrent layers do: shapes, states and values, numpy vs torch."""


# ---- the options: declared once, as typed groups -----------------------------------------
# Each group is a frozen dataclass whose fields carry their typer.Option. A command names the
# groups it takes (`@command(..., Network, Output)`) and receives one instance of each, so a
# command reads `net.hidden_size`, never a string key.


def _opt(*names: str, **kwargs: Any) -> Any:
    kwargs.setdefault("show_default", "help" not in kwargs or "[default" not in kwargs["help"])
    kwargs.setdefault("case_sensitive", False)  # choices: --cell LSTM is --cell lstm
    return typer.Option(*names, **kwargs)


class GroupedHelpCommand(TyperCommand):
    """-h in plain click help (start-up stays low): one section per option group (each option's
    rich_help_panel), then the command's examples as written."""

    examples: tuple[str, ...] = ()

    def format_options(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Other", []).append(record)
        for title, records in panels.items():
            with formatter.section(title):
                formatter.write_dl(records)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        if self.examples:
            formatter.write_paragraph()
            formatter.write("Examples:\n")
            for example in self.examples:
                formatter.write(f"  {example}\n")


@dataclass(frozen=True)
class Network:
    cell: Annotated[Optional[Literal["rnn", "lstm", "gru"]], _opt("--cell", help="nn.RNN, nn.LSTM or nn.GRU. [default: rnn]")] = None
    input_size: Annotated[Optional[int], _opt("--input-size", metavar="INT", help="H_in: features per step. [default: 5]")] = None
    hidden_size: Annotated[Optional[int], _opt("--hidden-size", metavar="INT", help="H_cell: hidden state size (H_out unless --proj-size). [default: 8]")] = None
    layers: Annotated[Optional[int], _opt("--layers", "--num-layers", metavar="INT", help="num_layers: stacked layers. [default: 1]")] = None
    bidirectional: Annotated[bool, _opt("--bidirectional", help="D = 2: a backward direction too.")] = False
    nonlinearity: Annotated[Optional[Literal["tanh", "relu"]], _opt("--nonlinearity", help="rnn only. [default: tanh]")] = None
    no_bias: Annotated[bool, _opt("--no-bias", help="bias=False.")] = False
    proj_size: Annotated[Optional[int], _opt("--proj-size", metavar="INT", help="lstm only: project h to this size. [default: 0]")] = None
    seq_len: Annotated[Optional[int], _opt("--seq-len", rich_help_panel="Input", metavar="INT", help="L: time steps. [default: 10, or --input's]")] = None
    batch: Annotated[Optional[int], _opt("--batch", rich_help_panel="Input", metavar="INT", help="N: sequences in the batch. [default: one per --lengths, else 1, or --input's]")] = None
    unbatched: Annotated[bool, _opt("--unbatched", rich_help_panel="Input", help="2-D input (L, H_in), as nn.RNN accepts.")] = False
    batch_first: Annotated[bool, _opt("--batch-first", rich_help_panel="Input", help="batch_first=True: input and output (N, L, ...); never h_n.")] = False
    lengths: Annotated[Optional[str], _opt("--lengths", rich_help_panel="Input", metavar="N,N,...", help="Real length of each sequence: packed sequences.")] = None
    no_pack: Annotated[bool, _opt("--no-pack", rich_help_panel="Input", help="With --lengths: run the padded batch unpacked and show what the padding changes.")] = False
    h0: Annotated[str, _opt("--h0", rich_help_panel="Input", metavar="zeros|random|PATH.npy", help="Initial hidden (and cell) state.")] = "zeros"
    c0: Annotated[Optional[Path], _opt("--c0", rich_help_panel="Input", metavar="PATH.npy", help="lstm: initial cell state from a file.")] = None
    params: Annotated[Optional[str], _opt("--params", rich_help_panel="Network", metavar="PATH[:PREFIX]", help="Weights of a recurrent module in a checkpoint (.pt/.pth/.bin/.ckpt read with torch, weights only; .safetensors; .npz).")] = None
    input: Annotated[Optional[Path], _opt("--input", rich_help_panel="Input", metavar="PATH.npy", help="Your own input, in the layout the flags describe.")] = None
    seed: Annotated[int, _opt("--seed", rich_help_panel="Input", metavar="INT", help="Same seed, same weights, inputs and numbers.")] = 0
    dtype: Annotated[Optional[Literal["float32", "float64"]], _opt("--dtype", rich_help_panel="Run", help="[default: float32, or the checkpoint's]")] = None
    device: Annotated[str, _opt("--device", rich_help_panel="Run", metavar="cpu|cuda|cuda:N|auto", help="Where torch runs (auto: CUDA when available).")] = "cpu"

    def __post_init__(self) -> None:
        if self.h0.lower() in ("zeros", "random"):  # choices are case-insensitive; a path is not
            object.__setattr__(self, "h0", self.h0.lower())

    def _checks(self) -> None:
        if self.batch_first and self.unbatched:
            _note("batch_first has no effect on 2-D (unbatched) input")
        _check_batch(self.batch, self.unbatched)
        if self.cell not in (None, "rnn") and self.nonlinearity is not None:
            raise RnnCliError(f"--nonlinearity applies to --cell rnn only; {self.cell} has fixed activations")
        if self.h0 not in ("zeros", "random") and not self.h0.lower().endswith(".npy"):
            raise RnnCliError(f"--h0 must be zeros, random or a .npy file (np.save), got {self.h0!r}")
        if self.c0 is not None and self.h0 in ("zeros", "random"):
            raise RnnCliError("--c0 needs --h0 PATH.npy too: the initial state comes from files or from --h0 zeros|random")

    def config(self) -> RunConfig:
        """The flags alone: no checkpoint, no input file."""
        self._checks()
        return self._from_flags()

    def _from_flags(self, input_size: int | None = None, **shape) -> RunConfig:
        """The network the flags describe (defaults where not given); input_size from --input."""
        return self._config(
            **shape,
            cell=self.cell or "rnn",
            input_size=input_size or (5 if self.input_size is None else self.input_size),
            hidden_size=8 if self.hidden_size is None else self.hidden_size,
            num_layers=1 if self.layers is None else self.layers,
            bidirectional=self.bidirectional,
            bias=not self.no_bias,
            proj_size=self.proj_size or 0,
            dtype=self.dtype or "float32",
        )

    def _config(self, seq_len: int | None = None, batch: int | None = None, **network) -> RunConfig:
        return RunConfig(
            **network,
            batch_first=self.batch_first,
            nonlinearity=self.nonlinearity,
            seq_len=seq_len if seq_len is not None else (10 if self.seq_len is None else self.seq_len),
            batch=None if self.unbatched else (batch if batch is not None else self._batch()),
            lengths=None if self.lengths is None else _parse_lengths(self.lengths),
            pack=not self.no_pack,
            h0=self.h0 if self.h0 in ("zeros", "random") else "file",
            input="seed" if self.input is None else "file",
            weights=self.params or "seed",
            seed=self.seed,
            device=self.device,
        )

    def _batch(self) -> int:
        """--batch, else one per --lengths value, else 1."""
        if self.batch is not None:
            return self.batch
        return len(_parse_lengths(self.lengths)) if self.lengths is not None else 1

    def prepare(self):
        """(RunConfig, Sample or None): the flags, a checkpoint's weights (--params), the
        user's input and state (--input, --h0/--c0 PATH.npy); None: the seeded draw."""
        own_state = self.h0 not in ("zeros", "random")
        if self.params is None and self.input is None and not own_state:
            return self.config(), None
        self._checks()
        from rnn_cli import checkpoint  # numpy; torch only to read a .pt file

        x = None
        module = None
        if self.params is not None:
            path, prefix = checkpoint.parse_params_arg(self.params)
            module = checkpoint.select_module(checkpoint.inspect_file(path, batch=1), prefix)
            if self.nonlinearity is not None and module.kind not in ("RNN", "RNNCell"):
                raise RnnCliError(f"--nonlinearity applies to nn.RNN only; {module.name} in {path} is an nn.{module.kind}")
        if self.input is not None:
            x = checkpoint.load_input(
                self.input,
                batch_first=self.batch_first,
                unbatched=self.unbatched,
                input_size=module.input_size if module is not None else self.input_size,
                seq_len=self.seq_len,
                batch=self.batch,
            )  # (L, N, H_in)
        shape = {} if x is None else {"seq_len": x.shape[0], "batch": None if self.unbatched else x.shape[1]}
        if module is not None:
            flags = checkpoint.Flags(
                cell=self.cell,
                input_size=self.input_size,
                hidden_size=self.hidden_size,
                num_layers=self.layers,
                bidirectional=True if self.bidirectional else None,
                bias=False if self.no_bias else None,
                proj_size=self.proj_size,
                dtype=self.dtype,
            )
            base = self._config(**shape, cell="rnn")  # the run-time fields, checked once
            cfg, params = checkpoint.to_run_config(
                module, flags, path, **{k: getattr(base, k) for k in _run_fields()}
            )
        else:
            cfg, params = self._from_flags(input_size=None if x is None else x.shape[2], **shape), None
        h_0 = checkpoint.load_state(self.h0, "h_0", cfg) if own_state else None
        c_0 = checkpoint.load_state(self.c0, "c_0", cfg) if self.c0 is not None else None
        return cfg, checkpoint.make_sample(cfg, params, x, h_0, c_0)


def _run_fields() -> list[str]:
    """RunConfig's fields that a checkpoint cannot know (all but checkpoint.Flags'): from the flags."""
    from rnn_cli.checkpoint import Flags

    known = {f.name for f in dataclasses.fields(Flags)}
    return [f.name for f in dataclasses.fields(RunConfig) if f.name not in known]


@dataclass(frozen=True)
class Output:
    json: Annotated[bool, _opt("--json", help="One JSON document on stdout and nothing else (always complete).")] = False
    export_svg: Annotated[Optional[str], _opt("--export-svg", metavar="PATH.svg", help="Also save what was printed as SVG.")] = None


@dataclass(frozen=True)
class RunOutput:
    """What manual, torch and compare show and save (bench has none of it)."""

    save: Annotated[Optional[str], _opt("--save", metavar="PATH.npz", help="Save tensors, parameters and config (atomic).")] = None
    show: Annotated[Optional[str], _opt("--show", metavar="SECTION,...", help="Sections to draw: " + ", ".join(SECTION_NAMES) + ", or all. [default: diagram,shapes,sources,values, and recipes, padding, grad where they apply (compare: diagram)]")] = None
    brief: Annotated[bool, _opt("--brief", help="One line per tensor: name, shape, layout.")] = False
    no_values: Annotated[bool, _opt("--no-values", help="No values section (and no values in --json).")] = False
    precision: Annotated[int, _opt("--precision", metavar="INT", help="Digits in value tables.")] = 4
    batch_index: Annotated[int, _opt("--batch-index", metavar="INT", help="Batch element shown in value tables.")] = 0
    no_diagram: Annotated[bool, _opt("--no-diagram", help="No diagram section.")] = False
    no_heatmap: Annotated[bool, _opt("--no-heatmap", help="Plain numbers in value tables, no colour scale.")] = False

    def view(self, cfg: RunConfig, command: str, json: bool = False):
        
        if not 0 <= self.precision <= 12:
            raise RnnCliError(f"--precision must be between 0 and 12, got {self.precision}")
        if cfg.unbatched and self.batch_index != 0:
            raise RnnCliError(f"--batch-index must be 0 with --unbatched (one sequence), got {self.batch_index}")
        if not 0 <= self.batch_index < cfg.N:
            raise RnnCliError(f"--batch-index must be between 0 and {cfg.N - 1} (--batch {cfg.N}), got {self.batch_index}")
        if json:  # --json is always complete: every section's data, values unless --no-values
            show = frozenset(SECTION_NAMES)
        elif self.show is not None:
            show = parse_show(self.show)
        else:
            show = default_show(command)
        show -= {"values"} if self.no_values else set()
        show -= {"diagram"} if self.no_diagram else set()
        return View(
            show=show,
            precision=self.precision,
            batch_index=self.batch_index,
            heatmap=not self.no_heatmap,
            compact=self.show is None,
            brief=self.brief,
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
class Grad:
    grad: Annotated[bool, _opt("--grad", help="Also the backward pass: gradients through time of a seeded loss.")] = False
    loss: Annotated[Literal["sum", "last"], _opt("--loss", help="sum: every output (real steps) and final state times seeded weights; last: the output at each sequence's last real step.")] = "sum"

    @property
    def loss_or_none(self) -> Optional[str]:
        return self.loss if self.grad else None


@dataclass(frozen=True)
class Timing:
    repeat: Annotated[int, _opt("--repeat", metavar="INT", help="Timed runs per implementation.")] = 20
    warmup: Annotated[int, _opt("--warmup", metavar="INT", help="Untimed runs first.")] = 3

    def check(self) -> None:
        if not 1 <= self.repeat <= 100_000:
            raise RnnCliError(f"--repeat must be between 1 and 100000, got {self.repeat}")
        if not 0 <= self.warmup <= 10_000:
            raise RnnCliError(f"--warmup must be between 0 and 10000, got {self.warmup}")


PANELS = {"Network": "Network", "Output": "Output", "RunOutput": "Output", "TF32": "Run", "Tolerances": "Comparison", "Timing": "Timing", "Grad": "Gradients", "InspectFlags": "Inspect", "OnnxFlags": "ONNX"}


def command(name: str, help: str, *groups: type, arguments: Optional[dict] = None, examples: tuple[str, ...] = ()) -> Callable:
    """Register fn(*instances of groups, **arguments) as the command `name` whose flags are the
    groups' fields (and whose positional arguments are `arguments`: name -> (type, typer.Argument)).

    typer reads a command's flags from its signature; this one signature, made from the
    dataclasses' annotated fields, is the only place they are listed."""

    def decorator(fn: Callable[..., Optional[int]]) -> Callable:
        owner: dict[str, type] = {}
        params = []
        for arg, (typ, spec, default) in (arguments or {}).items():
            params.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[typ, spec]))
        for group in groups:
            for f in dataclasses.fields(group):  # f.type: the Annotated[type, typer.Option] itself
                owner[f.name] = group
                info = f.type.__metadata__[0]
                info.rich_help_panel = info.rich_help_panel or PANELS[group.__name__]  # -h's section
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type))

        def callback(**flags: Any) -> None:
            parts = [group(**{k: v for k, v in flags.items() if owner.get(k) is group}) for group in groups]
            code = fn(*parts, **{k: v for k, v in flags.items() if k not in owner})
            if code:
                raise typer.Exit(code)

        callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        callback.__name__ = name
        cls = type(f"{name.title()}Command", (GroupedHelpCommand,), {"examples": examples})
        app.command(name, help=help, cls=cls)(callback)
        return fn

    return decorator


def _check_batch(batch: Optional[int], unbatched: bool) -> None:
    if unbatched and batch is not None:
        raise RnnCliError("--batch and --unbatched conflict: unbatched input has no batch dimension")


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
    save: Optional[str] = None,
    arrays: Optional[Callable[[], tuple[dict, dict]]] = None,
) -> None:
    """Write the files first (--save's .npz, then the human view rendered in memory and
    recorded for --export-svg), and only then stdout: a run whose file fails prints nothing.
    A --save that is stdout itself (`--save /dev/stdout | ...`) is all that stdout gets."""
    if save is not None and arrays is not None:
        from rnn_cli.save import save_npz, writes_to_stdout

        save_npz(save, *arrays())
        if writes_to_stdout(save):
            return
    if out.json:
        from rnn_cli.documents import write_document

        write_document(document(), sys.stdout)  # array by array: the whole text never exists
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    import io
    import os

    from rich.console import Console

    from rnn_cli.views import stdout_width

    real = Console()  # rich's own answers for stdout (FORCE_COLOR, NO_COLOR, TTY_COMPATIBLE, isatty)
    console = Console(
        file=io.StringIO(),
        record=out.export_svg is not None,
        highlight=False,
        width=stdout_width(real.is_terminal, os.environ) or real.width,
        force_terminal=real.is_terminal,
        color_system=real.color_system,
        no_color=real.no_color,
    )
    show(console)
    if out.export_svg is not None:
        from rnn_cli.save import write_atomic

        write_atomic(out.export_svg, console.export_svg(title=title).encode("utf-8"), "--export-svg")
    sys.stdout.write(console.file.getvalue())
    sys.stdout.flush()


def _check_output(out: Output, run_out: Optional[RunOutput] = None) -> None:
    """Refuse output flags that cannot all be honoured, before anything runs."""
    if out.json and out.export_svg is not None:
        raise RnnCliError("--export-svg records the human output; it cannot be combined with --json")
    from rnn_cli.save import check_paths, writes_to_stdout

    save = run_out.save if run_out else None
    check_paths(save, out.export_svg)
    if save is not None and writes_to_stdout(save):
        if out.json:
            raise RnnCliError(f"--save {save} and --json both write stdout; pick one")
        if out.export_svg is not None:
            raise RnnCliError(f"--save {save} is stdout: --export-svg records a human view that is not printed")


def _run_arrays(result, extra: Optional[dict] = None) -> tuple[dict, dict]:
    """What --save keeps of a run: its tensors, lengths, parameters, with --grad the gradients
    and the upstream gradients that define the loss (and `extra`), and its config."""
    import numpy as np

    from rnn_cli.documents import config_dict

    arrays = dict(result.tensors)
    if result.cfg.lengths is not None:
        arrays["lengths"] = np.asarray(result.cfg.lengths, dtype=np.int64)
    arrays.update(result.params)
    if result.gradients is not None:
        from rnn_cli.grad_export import grad_arrays

        arrays.update(grad_arrays(result.cfg, result.gradients, result.upstream.user_layout(result.cfg)))
    arrays.update(extra or {})
    return arrays, config_dict(result)


def _finish_run(result, name: str, out: Output, run_out: RunOutput, view: View) -> None:
    from rnn_cli import documents

    def show(console) -> None:
        from rnn_cli.views import show_run  # rich: only for the human view

        show_run(console, result, name, view)


    emit(
        out,
        document=lambda: documents.run_document(result, name, with_values=view.values),
        show=show,
        title=f"rnn-cli {name}",
        save=run_out.save,
        arrays=lambda: _run_arrays(result),
    )


def _progress():
    """A progress bar on stderr for long numpy loops (only on a terminal)."""
    from rnn_cli.views import LazyProgress

    from rich.console import Console

    return LazyProgress(Console(stderr=True), after_s=2.0)


# ---- the commands -------------------------------------------------------------------------


@command(
    "manual",
    "The memory cell written out in numpy (CPU; torch only to read a .pt checkpoint): output, h_n and where h_n comes from.",
    Network, Output, RunOutput, Grad,
    examples=("rnn-cli manual --layers 2 --bidirectional", "rnn-cli manual --cell gru --show all", "rnn-cli manual --cell lstm --brief",
              "rnn-cli manual --grad --loss last --seq-len 50"),
)
def manual_command(net: Network, out: Output, run_out: RunOutput, grad: Grad) -> None:
    cfg, sample = net.prepare()
    if cfg.device.startswith("cuda"):
        raise RnnCliError(
            f"--device {cfg.device}: manual is numpy on the CPU; use 'rnn-cli torch' or 'rnn-cli compare' for CUDA"
        )
    view = run_out.view(cfg, "manual", out.json)
    _check_output(out, run_out)
    check_memory(cfg, "manual", out.json, view.values, grad=grad.grad)
    from rnn_cli import runs

    progress = None if out.json else _progress()
    try:
        result = runs.run("manual", cfg, sample, runs.Extras.shown(view, grad.loss_or_none),
                          keep_layers=view.keep_layers, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    _finish_run(result, "manual", out, run_out, view)


@command(
    "torch",
    "torch.nn.RNN / LSTM / GRU built from the same flags, run in inference mode on --device.",
    Network, Output, RunOutput, TF32, Grad,
    examples=("rnn-cli torch --layers 2 --bidirectional", "rnn-cli torch --cell lstm --proj-size 3 --show shapes,code",
              "rnn-cli torch --lengths 10,7,3 --bidirectional --no-pack"),
)
def torch_command(net: Network, out: Output, run_out: RunOutput, tf32: TF32, grad: Grad) -> None:
    cfg, sample = net.prepare()
    view = run_out.view(cfg, "torch", out.json)
    _check_output(out, run_out)
    check_memory(cfg, "torch", out.json, view.values, grad=grad.grad)
    from rnn_cli import runs

    extras = runs.Extras.shown(view, grad.loss_or_none)
    result = runs.run("torch", cfg, sample, extras, keep_layers=view.keep_layers, tf32=not tf32.no_tf32)
    _finish_run(result, "torch", out, run_out, view)


@command(
    "compare",
    "Same weights and inputs through torch and the numpy reference (float64); exit 1 on mismatch.",
    Network, Output, RunOutput, TF32, Tolerances, Grad,
    examples=("rnn-cli compare --cell lstm --layers 2", "rnn-cli compare --device cuda --no-tf32",
              "rnn-cli compare --grad --cell lstm --bidirectional --lengths 10,7,3"),
)
def compare_command(net: Network, out: Output, run_out: RunOutput, tf32: TF32, tol: Tolerances, grad: Grad) -> int:
    cfg, sample = net.prepare()
    view = run_out.view(cfg, "compare", out.json)
    _check_output(out, run_out)
    tol.check()
    check_memory(cfg, "compare", out.json, view.values, grad=grad.grad)
    from rnn_cli import compare, documents, runs

    keep_layers = view.keep_layers and not out.json  # compare's document has no h_n sources
    cmp = compare.run(cfg, atol=tol.atol, rtol=tol.rtol, tf32=not tf32.no_tf32, keep_layers=keep_layers,
                      sample=sample, grad=grad.loss_or_none, extras=runs.Extras.shown(view))
    reference = {f"reference_{name}": cmp.reference.tensors[name] for name in compare.COMPARED if name in cmp.reference.tensors}
    if cmp.reference.gradients is not None:  # the float64 reference's gradients beside torch's
        from rnn_cli.grad_export import user_layout_gradients

        grads = user_layout_gradients(cfg, cmp.reference.gradients)
        reference.update({f"reference_grad_{name}": a for name, a in grads.items()})

    def show(console) -> None:
        from rnn_cli.views import show_compare

        show_compare(console, cmp, view)

    emit(
        out,
        document=lambda: documents.compare_document(cmp, with_values=view.values),
        show=show,
        title="rnn-cli compare",
        save=run_out.save,
        arrays=lambda: _run_arrays(cmp.torch, reference),
    )
    return 0 if cmp.ok else 1


@command(
    "bench",
    "Time the forward (with --grad: forward and backward) of each implementation here: numpy, torch CPU, torch CUDA.",
    Network, Output, TF32, Timing, Grad,
    examples=("rnn-cli bench --seq-len 100 --hidden-size 256", "rnn-cli bench --grad --json"),
)
def bench_command(net: Network, out: Output, tf32: TF32, timing: Timing, grad: Grad) -> None:
    cfg, sample = net.prepare()
    _check_output(out)
    timing.check()
    check_memory(cfg, "bench", out.json, values=False, grad=grad.grad)
    from rich.console import Console

    from rnn_cli import bench, documents, views

    progress = views.LazyProgress(Console(stderr=True))
    try:
        result = bench.run(cfg, repeat=timing.repeat, warmup=timing.warmup, tf32=not tf32.no_tf32, on_run=progress,
                           sample=sample, grad=grad.loss_or_none)
    finally:
        progress.close()
    emit(
        out,
        document=lambda: documents.bench_document(result),
        show=lambda console: views.show_bench(console, result),
        title="rnn-cli bench",
    )


@dataclass(frozen=True)
class InspectFlags:
    against: Annotated[Optional[Path], _opt("--against", metavar="PATH", help="A second checkpoint: explain how its recurrent modules differ.")] = None
    batch: Annotated[Optional[int], _opt("--batch", metavar="INT", help="N for the shapes shown. [default: 1]")] = None
    seq_len: Annotated[int, _opt("--seq-len", metavar="INT", help="L for the shapes shown.")] = 10
    unbatched: Annotated[bool, _opt("--unbatched", help="Shapes for 2-D (unbatched) input.")] = False
    batch_first: Annotated[bool, _opt("--batch-first", help="A state_dict cannot tell: shapes as with batch_first=True.")] = False
    nonlinearity: Annotated[Optional[Literal["tanh", "relu"]], _opt("--nonlinearity", help="A state_dict cannot tell an nn.RNN's: say it.")] = None


@command(
    "inspect",
    "Read a checkpoint's recurrent layers (weights only, never code): constructor, shapes, problems. Exit 1 on problems.",
    Output, InspectFlags,
    arguments={
        "path": (Path, typer.Argument(metavar="CHECKPOINT", help=".pt/.pth/.bin/.ckpt (torch.save, read weights-only), .safetensors or .npz."), inspect.Parameter.empty),
        "other": (Optional[Path], typer.Argument(metavar="[CHECKPOINT2]", help="Same as --against.", show_default=False), None),
    },
)
def inspect_command(out: Output, flags: InspectFlags, path: Path, other: Optional[Path] = None) -> int:
    _check_batch(flags.batch, flags.unbatched)
    if other is not None and flags.against is not None:
        raise RnnCliError("give the second checkpoint once: as CHECKPOINT2 or as --against, not both")
    _check_output(out)
    from rnn_cli import checkpoint, documents

    batch = None if flags.unbatched else (flags.batch or 1)
    read = lambda p: checkpoint.inspect_file(p, batch, flags.seq_len, flags.batch_first, flags.nonlinearity)  # noqa: E731
    report = read(path)
    against = other or flags.against
    differences = None if against is None else checkpoint.compare_checkpoints(report, read(against))

    def show(console) -> None:
        from rnn_cli.checkpoint_view import differences_renderables, inspect_renderables
        from rnn_cli.views import print_parts

        parts = inspect_renderables(console, report)
        if differences is not None:
            parts += differences_renderables(console, path, against, differences)
        print_parts(console, parts)

    emit(out, document=lambda: documents.inspect_document(report, differences), show=show, title="rnn-cli inspect")
    return 1 if report.problems or differences else 0


@dataclass(frozen=True)
class OnnxFlags:
    exporter: Annotated[Literal["auto", "dynamo", "torchscript"], _opt("--exporter", help="torch.onnx.export(dynamo=True/False); auto: the one that works here.")] = "auto"
    opset: Annotated[Optional[int], _opt("--opset", metavar="INT", help="ONNX opset version. [default: the exporter's]")] = None
    save_onnx: Annotated[Optional[str], _opt("--save-onnx", metavar="PATH.onnx", help="Keep the exported model.")] = None


@command(
    "onnx",
    "Export the layer to ONNX, show what the exporter made of it, run it in onnxruntime and check it (needs rnn-cli[onnx]).",
    Network, Output, OnnxFlags,
)
def onnx_command(net: Network, out: Output, flags: OnnxFlags) -> int:
    cfg, sample = net.prepare()
    if not cfg.pack and cfg.lengths is not None:
        raise RnnCliError("--no-pack: rnn-cli onnx exports the module as run on packed sequences; drop --no-pack "
                          "(or drop --lengths to export the plain module)")
    _check_output(out)
    if flags.save_onnx is not None:
        from rnn_cli.save import check_writable

        check_writable(flags.save_onnx, "--save-onnx")
    check_memory(cfg, "compare", out.json, values=False)  # torch, onnxruntime and the reference
    from rnn_cli import documents, onnx_export
    from rnn_cli.sample import draw

    report = onnx_export.report(cfg, sample if sample is not None else draw(cfg), flags.exporter, flags.opset, flags.save_onnx)

    def show(console) -> None:
        from rnn_cli.onnx_view import show_onnx

        show_onnx(console, report)

    emit(out, document=lambda: documents.onnx_document(report), show=show, title="rnn-cli onnx")
    return 0 if report.ok else 1


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
