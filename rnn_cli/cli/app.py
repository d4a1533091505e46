"""Typer app: flags -> RunConfig -> core (manual, torch, compare, bench) -> views / documents.

Nothing else happens here. Every bad input ends as one line on stderr and exit status 2
(RnnCliError from the core, usage errors from the click that typer vendors); compare's mismatch is exit 1.
torch is imported only inside the commands that run it, so --help and manual start fast.
"""

import contextlib
import copy
import dataclasses
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Optional, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import types as typer_types

from rnn_cli import __version__
from rnn_cli.core.config import SECTION_NAMES, RunConfig, View, check_memory, default_show, parse_show
from rnn_cli.errors import RnnCliError
from rnn_cli.printable import printable
from rnn_cli.cli.help_format import WholeWordsContext, command_rows, example_lines

PROG = "rnn-cli"


def _note(message: str) -> None:
    """One line on stderr that is not an error (the run goes on)."""
    sys.stderr.write(f"{PROG}: {printable(message)}\n")
    sys.stderr.flush()


def _error_line(message: str) -> None:
    text = printable(" ".join(str(message).split()))  # always one line, no escape sequences from files
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


_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def _ascii_int(value: Any, param: Any = None, ctx: Any = None) -> Any:
    """click's int, ASCII digits only: Python's int() also takes '５', '٨', '1_6' and ' 8 ',
    which no user means as a number on a command line."""
    if isinstance(value, str) and not _ASCII_INT.fullmatch(value):
        typer_types.INT.fail(f"{value!r} is not a valid integer.", param, ctx)
    return _click_int(value, param, ctx)


_click_int = typer_types.INT.convert
typer_types.INT.convert = _ascii_int  # every int option of every command (typer maps int to this one instance)


def out_of_memory(e: BaseException) -> str:
    detail = str(e).splitlines()[-1].strip() if str(e).strip() else ""
    return f"out of memory{': ' + detail if detail else ''}; reduce --hidden-size, --seq-len, --batch or --layers"


class _Interrupted(BaseException):
    """Ctrl-C carried past typer, which turns KeyboardInterrupt into a silent exit 130."""


class OneLineErrorGroup(TyperGroup):
    """Runs the app and turns every expected failure into one stderr line and an exit code.
    KeyboardInterrupt and MemoryError go on to rnn_cli.cli.entry, which reports them at any moment.
    Its -h lists each command with its whole one-line description (click cuts it to `...`)."""

    context_class = WholeWordsContext

    def format_commands(self, ctx, formatter) -> None:
        rows = command_rows(self, ctx)
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
        except _Interrupted:  # Ctrl-C: rnn_cli.cli.entry prints the one line and exits 130
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
# Each group is a dataclass whose fields carry their typer.Option (and -h panel). A command's
# flags are a dataclass that inherits the groups it takes, `class TorchFlags(Network, Output,
# RunOutput, TF32, Grad)`; typer reads the options from that class's constructor, and the
# command receives one instance: it reads `flags.hidden_size`, never a string key.


def _opt(panel: str, *names: str, **kwargs: Any) -> Any:
    """typer.Option listed under `panel` in -h."""
    kwargs.setdefault("show_default", "help" not in kwargs or "[default" not in kwargs["help"])
    kwargs.setdefault("case_sensitive", False)  # choices: --cell LSTM is --cell lstm
    return typer.Option(*names, rich_help_panel=panel, **kwargs)


# The groups are keyword-only dataclasses (a command's positional arguments may follow the
# groups' defaulted fields), made once from the parsed flags and only read after that.
# Every generated method is start-up time, measured: frozen (a __setattr__ and __delattr__
# per class) cost 4 ms over the 15 classes, so they are not frozen; no equality or repr
# (never used); and each has a docstring (without one, dataclass formats the constructor's
# signature into __doc__).
options = dataclass(kw_only=True, eq=False, repr=False)


class GroupedHelpCommand(TyperCommand):
    """-h in plain click help (start-up stays low): one section per option group (each option's
    rich_help_panel), then the command's examples as written."""

    context_class = WholeWordsContext
    examples: tuple[str, ...] = ()
    help_order: list[str] = []  # the flags' fields, group by group in the order the command lists them

    def format_options(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list] = {}
        order = {name: i for i, name in enumerate(self.help_order)}
        for param in sorted(self.get_params(ctx), key=lambda p: order.get(p.name, len(order))):
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
            for line in example_lines(self.examples, formatter.width, indent="  "):
                formatter.write(line + "\n")


@options
class Network:
    """The layer and its input: the constructor's arguments, the shapes, where weights, input and h_0 come from."""

    cell: Annotated[Optional[Literal["rnn", "lstm", "gru"]], _opt("Network", "--cell", help="nn.RNN, nn.LSTM or nn.GRU. [default: rnn]")] = None
    input_size: Annotated[Optional[int], _opt("Network", "--input-size", metavar="INT", help="H_in: features per step. [default: 5; bench: 64]")] = None
    hidden_size: Annotated[Optional[int], _opt("Network", "--hidden-size", metavar="INT", help="H_cell: hidden state size (H_out unless --proj-size). [default: 8; bench: 128]")] = None
    layers: Annotated[Optional[int], _opt("Network", "--layers", "--num-layers", metavar="INT", help="num_layers: stacked layers. [default: 1]")] = None
    bidirectional: Annotated[bool, _opt("Network", "--bidirectional", help="D = 2: a backward direction too.")] = False
    nonlinearity: Annotated[Optional[Literal["tanh", "relu"]], _opt("Network", "--nonlinearity", help="rnn only. [default: tanh]")] = None
    no_bias: Annotated[bool, _opt("Network", "--no-bias", help="bias=False.")] = False
    proj_size: Annotated[Optional[int], _opt("Network", "--proj-size", metavar="INT", help="lstm only: project h to this size. [default: 0]")] = None
    seq_len: Annotated[Optional[int], _opt("Input", "--seq-len", metavar="INT", help="L: time steps. [default: max(--lengths), else 10 (bench: 100), or --input's]")] = None
    batch: Annotated[Optional[int], _opt("Input", "--batch", metavar="INT", help="N: sequences in the batch. [default: one per --lengths, else 1 (bench: 32), or --input's]")] = None
    unbatched: Annotated[bool, _opt("Input", "--unbatched", help="2-D input (L, H_in), as nn.RNN accepts.")] = False
    batch_first: Annotated[bool, _opt("Input", "--batch-first", help="batch_first=True: input and output (N, L, ...); never h_n.")] = False
    lengths: Annotated[Optional[str], _opt("Input", "--lengths", metavar="N,N,...", help="Real length of each sequence: packed sequences.")] = None
    no_pack: Annotated[bool, _opt("Input", "--no-pack", help="With --lengths: run the padded batch unpacked and show what the padding changes.")] = False
    h0: Annotated[str, _opt("Input", "--h0", metavar="zeros|random|PATH.npy", help="Initial hidden (and cell) state.")] = "zeros"
    c0: Annotated[Optional[Path], _opt("Input", "--c0", metavar="PATH.npy", help="lstm: initial cell state from a file.")] = None
    params: Annotated[Optional[str], _opt("Network", "--params", metavar="PATH[:PREFIX]", help="Weights of a recurrent module in a checkpoint (.pt/.pth/.bin/.ckpt read with torch, weights only; .safetensors; .npz; TorchScript .jit/.pt read as data).")] = None
    input: Annotated[Optional[Path], _opt("Input", "--input", metavar="PATH.npy", help="Your own input, in the layout the flags describe.")] = None
    seed: Annotated[int, _opt("Input", "--seed", metavar="INT", help="Same seed, same weights, inputs and numbers.")] = 0
    dtype: Annotated[Optional[Literal["float32", "float64"]], _opt("Run", "--dtype", help="[default: float32, or the checkpoint's]")] = None
    device: Annotated[str, _opt("Run", "--device", metavar="cpu|cuda|cuda:N|auto", help="Where torch runs (auto: CUDA when available).")] = "cpu"

    def __post_init__(self) -> None:
        if self.h0.lower() in ("zeros", "random"):  # choices are case-insensitive; a path is not
            self.h0 = self.h0.lower()

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
            seq_len=seq_len if seq_len is not None else self._seq_len(),
            batch=None if self.unbatched else (batch if batch is not None else self._batch()),
            lengths=None if self.lengths is None else _parse_lengths(self.lengths),
            pack=not self.no_pack,
            h0=self.h0 if self.h0 in ("zeros", "random") else "file",
            input="seed" if self.input is None else "file",
            weights=self.params or "seed",
            seed=self.seed,
            device=self.device,
        )

    def _seq_len(self) -> int:
        """--seq-len, else max(--lengths) (what pad_packed_sequence gives), else 10."""
        if self.seq_len is not None:
            return self.seq_len
        return max(max(_parse_lengths(self.lengths)), 1) if self.lengths is not None else 10

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
        from rnn_cli.formats import checkpoint  # numpy; torch only to read a .pt file

        x = None
        module = None
        if self.params is not None:
            path, prefix = checkpoint.parse_params_arg(self.params)
            module = checkpoint.select_module(checkpoint.inspect_file(path, batch=1), prefix)
            if self.nonlinearity is not None and module.kind not in ("RNN", "RNNCell"):
                raise RnnCliError(f"--nonlinearity applies to nn.RNN only; {module.name} in {path} is an nn.{module.kind}")
            self._adopt(module, path)
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

    def _adopt(self, module, path: str) -> None:
        """What a TorchScript archive states beyond the shapes is how the module runs: its
        nonlinearity (a flag that contradicts it is refused) and batch_first=True. Renamed
        weights: say which keys became which torch names (stderr)."""
        said = module.declared
        if module.candidate:
            mapped = ", ".join(f"{key} -> {name}" for name, key in module.source_names.items())
            _note(f"--params: {module.name} is renamed weights, mapped by their shapes "
                  f"in torch's gate order: {mapped}")
        if "nonlinearity" in said:
            if self.nonlinearity not in (None, said["nonlinearity"]):
                raise RnnCliError(f"--nonlinearity {self.nonlinearity} but {module.name} in {Path(path).name} "
                                  f"has nonlinearity {said['nonlinearity']}")
            self.nonlinearity = said["nonlinearity"]
        if said.get("batch_first"):
            self.batch_first = True


def _run_fields() -> list[str]:
    """RunConfig's fields that a checkpoint cannot know (all but checkpoint.Flags'): from the flags."""
    from rnn_cli.formats.checkpoint import Flags

    known = {f.name for f in dataclasses.fields(Flags)}
    return [f.name for f in dataclasses.fields(RunConfig) if f.name not in known]


@options
class Output:
    """Where the answer goes: JSON or the human view (and its SVG)."""

    json: Annotated[bool, _opt("Output", "--json", help="One JSON document on stdout and nothing else (always complete).")] = False
    export_svg: Annotated[Optional[str], _opt("Output", "--export-svg", metavar="PATH.svg", help="Also save what was printed as SVG.")] = None


@options
class RunOutput:
    """What manual, torch and compare show and save (bench has none of it)."""

    save: Annotated[Optional[str], _opt("Output", "--save", metavar="PATH.npz", help="Save tensors, parameters and config (atomic).")] = None
    show: Annotated[Optional[str], _opt("Output", "--show", metavar="SECTION,...", help="Sections to draw: " + ", ".join(SECTION_NAMES) + ", or all. [default: diagram,shapes,sources,values, and recipes, padding, grad where they apply (compare: diagram)]")] = None
    brief: Annotated[bool, _opt("Output", "--brief", help="One line per tensor: name, shape, layout.")] = False
    no_values: Annotated[bool, _opt("Output", "--no-values", help="No values section (and no values in --json).")] = False
    precision: Annotated[int, _opt("Output", "--precision", metavar="INT", help="Digits in value tables.")] = 4
    batch_index: Annotated[int, _opt("Output", "--batch-index", metavar="INT", help="Batch element shown in value tables.")] = 0
    no_diagram: Annotated[bool, _opt("Output", "--no-diagram", help="No diagram section.")] = False
    no_heatmap: Annotated[bool, _opt("Output", "--no-heatmap", help="Plain numbers in value tables, no colour scale.")] = False

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
            compact=self.show is None and not json,
            brief=self.brief,
        )


@options
class TF32:
    """cuDNN's TF32 (CUDA, float32)."""

    no_tf32: Annotated[bool, _opt("Run", "--no-tf32", help="Forbid TF32 in cuDNN's float32 kernels (CUDA).")] = False


@options
class Tolerances:
    """How close torch must come to the reference."""

    atol: Annotated[Optional[float], _opt("Comparison", "--atol", metavar="FLOAT", help="Absolute tolerance. [default: by dtype and device]")] = None
    rtol: Annotated[Optional[float], _opt("Comparison", "--rtol", metavar="FLOAT", help="Relative tolerance. [default: by dtype and device]")] = None

    def check_tolerances(self) -> None:
        for flag, value in (("atol", self.atol), ("rtol", self.rtol)):
            if value is not None and not (value >= 0 and value != float("inf")):
                raise RnnCliError(f"--{flag} must be a finite number >= 0, got {value}")


@options
class Grad:
    """The backward pass and its loss."""

    grad: Annotated[bool, _opt("Gradients", "--grad", help="Also the backward pass: gradients through time of a seeded loss.")] = False
    loss: Annotated[Literal["sum", "last"], _opt("Gradients", "--loss", help="sum: every output (real steps) and final state times seeded weights; last: the output at each sequence's last real step.")] = "sum"

    @property
    def loss_or_none(self) -> Optional[str]:
        return self.loss if self.grad else None


@options
class Timing:
    """bench's runs."""

    repeat: Annotated[int, _opt("Timing", "--repeat", metavar="INT", help="Timed runs per implementation.")] = 20
    warmup: Annotated[int, _opt("Timing", "--warmup", metavar="INT", help="Untimed runs first.")] = 3

    def check_timing(self) -> None:
        if not 1 <= self.repeat <= 100_000:
            raise RnnCliError(f"--repeat must be between 1 and 100000, got {self.repeat}")
        if not 0 <= self.warmup <= 10_000:
            raise RnnCliError(f"--warmup must be between 0 and 10000, got {self.warmup}")


@options
class InspectOptions:
    """inspect's second checkpoint and the shapes it reports."""

    against: Annotated[Optional[Path], _opt("Inspect", "--against", metavar="PATH", help="A second checkpoint: explain how its recurrent modules differ.")] = None
    batch: Annotated[Optional[int], _opt("Inspect", "--batch", metavar="INT", help="N for the shapes shown. [default: 1]")] = None
    seq_len: Annotated[int, _opt("Inspect", "--seq-len", metavar="INT", help="L for the shapes shown.")] = 10
    unbatched: Annotated[bool, _opt("Inspect", "--unbatched", help="Shapes for 2-D (unbatched) input.")] = False
    batch_first: Annotated[bool, _opt("Inspect", "--batch-first", help="A state_dict cannot tell: shapes as with batch_first=True.")] = False
    nonlinearity: Annotated[Optional[Literal["tanh", "relu"]], _opt("Inspect", "--nonlinearity", help="A state_dict cannot tell an nn.RNN's: say it.")] = None


@options
class OnnxOptions:
    """The export."""

    exporter: Annotated[Literal["auto", "dynamo", "torchscript"], _opt("ONNX", "--exporter", help="torch.onnx.export(dynamo=True/False); auto: the one that works here.")] = "auto"
    opset: Annotated[Optional[int], _opt("ONNX", "--opset", metavar="INT", help="ONNX opset version. [default: the exporter's]")] = None
    save_onnx: Annotated[Optional[str], _opt("ONNX", "--save-onnx", metavar="PATH.onnx", help="Keep the exported model.")] = None
    save: Annotated[Optional[str], _opt("Output", "--save", metavar="PATH.npz", help="Save input, h_0 (c_0), torch's and onnxruntime's outputs and config (atomic).")] = None


F = TypeVar("F")


def command(name: str, flags: type[F]) -> Callable:
    """Register fn(flags: F) as the command `name`. Its options are F's fields: typer reads them
    from the signature of F's constructor, which the dataclass wrote from the fields; its help
    is F's docstring, and -h ends with F.examples."""

    def decorator(fn: Callable[[F], Optional[int]]) -> Callable[[F], Optional[int]]:
        def callback(**values: Any) -> None:
            code = fn(flags(**values))
            if code:
                raise typer.Exit(code)

        callback.__signature__ = inspect.signature(flags)  # type: ignore[attr-defined]
        callback.__name__ = name
        # The groups' fields, group by group as the class lists them (the dataclass orders
        # them from the last base to the first). A field declared by two groups would leave
        # one of them silently unused: refused here, at import.
        help_order = [n for cls in flags.__mro__ for n in inspect.get_annotations(cls) if n != "examples"]
        shared = sorted({n for n in help_order if help_order.count(n) > 1})
        assert not shared, f"{flags.__name__}: {shared} declared by two of its groups"
        examples = getattr(flags, "examples", ())
        cls = type(f"{name.title()}Command", (GroupedHelpCommand,), {"examples": examples, "help_order": help_order})
        app.command(name, help=flags.__doc__, cls=cls)(callback)
        return fn

    return decorator


def _check_batch(batch: Optional[int], unbatched: bool) -> None:
    if batch is not None and batch < 1:  # inspect took --batch 0 as 1
        raise RnnCliError(f"--batch must be a positive integer, got {batch}")
    if unbatched and batch is not None:
        raise RnnCliError("--batch and --unbatched conflict: unbatched input has no batch dimension")


def _parse_lengths(text: str) -> tuple[int, ...]:
    try:
        if not all(_ASCII_INT.fullmatch(part) for part in text.split(",")):
            raise ValueError(text)
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RnnCliError(f"--lengths must be comma-separated integers such as 10,7,3, got {text!r}") from None


# ---- one way out: save, then JSON or the human view (and its SVG) ----------------------


def emit(
    out: Output,
    document: Callable[[Any], dict],
    show: Callable[[Any], None],
    title: str,
    save: Optional[str] = None,
    arrays: Optional[Callable[[], tuple[dict, dict]]] = None,
    files: tuple = (),
) -> None:
    """Write the files first (--save's .npz and the human view rendered in memory and recorded
    for --export-svg, all or none: rnn_cli.formats.save.write_all), and only then stdout: a run whose
    file fails prints nothing and leaves every old file as it was.
    A --save that is stdout itself (`--save /dev/stdout | ...`) is all that stdout gets.
    document(rnn_cli.documents) makes the --json document; the module is imported only then."""
    from rnn_cli.formats.save import npz_writer, write_all, writes_to_stdout

    writes = [] if save is None or arrays is None else [(save, "--save", npz_writer(*arrays()))]
    writes += list(files)  # other outputs, (path, flag, writer): --save-onnx
    if save is not None and writes and writes_to_stdout(save):
        write_all(writes)
        return
    if out.json:
        write_all(writes)
        from rnn_cli import documents

        documents.write_document(document(documents), sys.stdout)  # array by array: the whole text never exists
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    import io

    from rich.console import Console

    from rnn_cli.views.screen import stdout_width

    real = Console()  # rich's own answers for stdout (FORCE_COLOR, NO_COLOR, TTY_COMPATIBLE, isatty)

    class Buffer(io.StringIO):  # stdout's encoding: rich draws ASCII boxes for a non-UTF-8 one
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"

    console = Console(
        file=Buffer(),
        record=out.export_svg is not None,
        highlight=False,
        width=stdout_width(real.is_terminal, os.environ) or real.width,
        force_terminal=real.is_terminal,
        color_system=real.color_system,
        no_color=real.no_color,
    )
    show(console)
    if out.export_svg is not None:
        svg = console.export_svg(title=title).encode("utf-8")
        writes.append((out.export_svg, "--export-svg", lambda f: f.write(svg)))
    write_all(writes)  # both files or neither
    sys.stdout.write(console.file.getvalue())
    sys.stdout.flush()


def _check_output(flags: Output) -> None:
    """Refuse output flags that cannot all be honoured, before anything runs."""
    if flags.json and flags.export_svg is not None:
        raise RnnCliError("--export-svg records the human output; it cannot be combined with --json")
    save = getattr(flags, "save", None)  # manual, torch, compare and onnx
    save_onnx = getattr(flags, "save_onnx", None)
    if save is None and flags.export_svg is None and save_onnx is None:
        return
    from rnn_cli.formats.save import check_paths, refuse_outputs_over_inputs, writes_to_stdout

    outputs = {"--save": save, "--export-svg": flags.export_svg, "--save-onnx": save_onnx}
    refuse_outputs_over_inputs({k: v for k, v in outputs.items() if v is not None}, _inputs(flags))
    if save is None and flags.export_svg is None:
        return
    check_paths(save, flags.export_svg)
    if save is not None and writes_to_stdout(save):
        if flags.json:
            raise RnnCliError(f"--save {save} and --json both write stdout; pick one")
        if flags.export_svg is not None:
            raise RnnCliError(f"--save {save} is stdout: --export-svg records a human view that is not printed")


def _inputs(flags: Any) -> dict[str, str]:
    """Every file the run reads, by the flag (or argument) that names it."""
    found = {"--input": getattr(flags, "input", None), "--c0": getattr(flags, "c0", None),
             "CHECKPOINT": getattr(flags, "path", None), "CHECKPOINT2": getattr(flags, "other", None),
             "--against": getattr(flags, "against", None)}
    h0 = getattr(flags, "h0", "zeros")
    if h0 not in ("zeros", "random"):
        found["--h0"] = h0
    if getattr(flags, "params", None) is not None:
        from rnn_cli.formats.checkpoint import parse_params_arg

        found["--params"] = parse_params_arg(flags.params)[0]
    return {k: os.fspath(v) for k, v in found.items() if v is not None}


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
        from rnn_cli.formats.grad_export import grad_arrays

        arrays.update(grad_arrays(result.cfg, result.gradients, result.upstream.user_layout(result.cfg)))
    arrays.update(extra or {})
    return arrays, config_dict(result)


def _finish_run(result, name: str, flags: "ManualFlags | TorchFlags", view: View) -> None:
    def show(console) -> None:
        from rnn_cli.views.screen import show_run  # rich: only for the human view

        show_run(console, result, name, view)

    emit(
        flags,
        document=lambda docs: docs.run_document(result, name, with_values=view.values),
        show=show,
        title=f"rnn-cli {name}",
        save=flags.save,
        arrays=lambda: _run_arrays(result),
    )


def _prepare_run(flags: "ManualFlags | TorchFlags | CompareFlags", command: str):
    """(RunConfig, Sample or None, View) for manual, torch and compare: every flag checked,
    and the memory the run needs, before anything runs."""
    cfg, sample = flags.prepare()
    if command == "manual" and cfg.device.startswith("cuda"):
        raise RnnCliError(
            f"--device {cfg.device}: manual is numpy on the CPU; use 'rnn-cli torch' or 'rnn-cli compare' for CUDA"
        )
    view = flags.view(cfg, command, flags.json)
    _check_output(flags)
    if isinstance(flags, Tolerances):
        flags.check_tolerances()
    check_memory(cfg, command, flags.json, view.values, grad=flags.grad)
    return cfg, sample, view


def _progress():
    """A progress bar on stderr for long numpy loops (only on a terminal)."""
    from rnn_cli.views.screen import LazyProgress

    from rich.console import Console

    return LazyProgress(Console(stderr=True), after_s=2.0)


# ---- the commands -------------------------------------------------------------------------
# Each command's flags: one dataclass made of the groups it takes, listed in the order -h
# shows them; its docstring is the command's help. The command receives one instance:
# flags.hidden_size, flags.json, flags.save.


@options
class ManualFlags(Network, Output, RunOutput, Grad):
    """The memory cell written out in numpy (CPU; torch only to read a .pt checkpoint): output, h_n and where h_n comes from."""

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli manual --layers 2 --bidirectional",
        "rnn-cli manual --cell gru --show all",
        "rnn-cli manual --cell lstm --brief",
        "rnn-cli manual --grad --loss last --seq-len 50",
    )


@options
class TorchFlags(Network, Output, RunOutput, TF32, Grad):
    """torch.nn.RNN / LSTM / GRU built from the same flags, run in inference mode on --device."""

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli torch --layers 2 --bidirectional",
        "rnn-cli torch --cell lstm --proj-size 3 --show shapes,code",
        "rnn-cli torch --lengths 10,7,3 --bidirectional --no-pack",
    )


@options
class CompareFlags(Network, Output, RunOutput, TF32, Tolerances, Grad):
    """Same weights and inputs through torch and the numpy reference (float64); exit 1 on mismatch."""

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli compare --cell lstm --layers 2",
        "rnn-cli compare --device cuda --no-tf32",
        "rnn-cli compare --grad --cell lstm --bidirectional --lengths 10,7,3",
    )


@options
class BenchFlags(Network, Output, TF32, Timing, Grad):
    """Time the forward (with --grad: forward and backward) of each implementation here: numpy, torch CPU, torch CUDA, onnxruntime."""

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli bench --cell lstm",
        "rnn-cli bench --cell lstm --hidden-size 256 --batch 32 --seq-len 50",
        "rnn-cli bench --grad --json",
    )

    def use_bench_sizes(self) -> None:
        """The sizes left unset, from bench.DEFAULT_SIZES rather than the other commands' toy
        (whose forward takes microseconds: timer noise); a checkpoint, --input or --lengths
        still decide what they decide."""
        from rnn_cli.core.bench import DEFAULT_SIZES

        known = {
            "input_size": self.params is not None,
            "hidden_size": self.params is not None,
            "seq_len": self.input is not None or self.lengths is not None,
            "batch": self.input is not None or self.lengths is not None or self.unbatched,
        }
        for name, value in DEFAULT_SIZES.items():
            if getattr(self, name) is None and not known[name]:
                setattr(self, name, value)


@options
class InspectFlags(Output, InspectOptions):
    """Read a checkpoint's recurrent layers (weights only, never code): constructor, shapes, problems. Exit 1 on problems."""

    path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", rich_help_panel="Arguments", help=".pt/.pth/.bin/.ckpt (torch.save, read weights-only), .safetensors, .npz, or a TorchScript archive (.jit/.pt, read as data).")]
    other: Annotated[Optional[Path], typer.Argument(metavar="[CHECKPOINT2]", rich_help_panel="Arguments", help="Same as --against.", show_default=False)] = None

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli inspect docs/examples/model.pt",
        "rnn-cli inspect docs/examples/model.pt --json",
        "rnn-cli inspect docs/examples/model.pt docs/examples/broken.pt",
    )


@options
class OnnxFlags(Network, Output, OnnxOptions):
    """Export the layer to ONNX, show what the exporter made of it, run it in onnxruntime and check it (needs rnn-cli[onnx])."""

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli onnx --cell lstm --layers 2 --bidirectional",
        "rnn-cli onnx --cell gru --lengths 10,7,3 --save-onnx gru.onnx",
        "rnn-cli onnx --exporter dynamo --save run.npz",
    )


@command("manual", ManualFlags)
def manual_command(flags: ManualFlags) -> None:
    cfg, sample, view = _prepare_run(flags, "manual")
    from rnn_cli.core import runs

    progress = None if flags.json else _progress()
    try:
        result = runs.run("manual", cfg, sample, runs.Extras.shown(view, cfg, flags.loss_or_none),
                          keep_layers=view.keep_layers, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    _finish_run(result, "manual", flags, view)


@command("torch", TorchFlags)
def torch_command(flags: TorchFlags) -> None:
    cfg, sample, view = _prepare_run(flags, "torch")
    from rnn_cli.core import runs

    extras = runs.Extras.shown(view, cfg, flags.loss_or_none)
    result = runs.run("torch", cfg, sample, extras, keep_layers=view.keep_layers, tf32=not flags.no_tf32)
    _finish_run(result, "torch", flags, view)


@command("compare", CompareFlags)
def compare_command(flags: CompareFlags) -> int:
    cfg, sample, view = _prepare_run(flags, "compare")
    from rnn_cli.core import compare
    from rnn_cli.core import runs

    keep_layers = view.keep_layers and not flags.json  # compare's document has no h_n sources
    cmp = compare.run(cfg, atol=flags.atol, rtol=flags.rtol, tf32=not flags.no_tf32, keep_layers=keep_layers,
                      sample=sample, grad=flags.loss_or_none, extras=runs.Extras.shown(view, cfg))
    reference = {f"reference_{name}": cmp.reference.tensors[name] for name in compare.COMPARED if name in cmp.reference.tensors}
    if cmp.reference.gradients is not None:  # the float64 reference's gradients beside torch's
        from rnn_cli.formats.grad_export import user_layout_gradients

        grads = user_layout_gradients(cfg, cmp.reference.gradients)
        reference.update({f"reference_grad_{name}": a for name, a in grads.items()})

    def show(console) -> None:
        from rnn_cli.views.screen import show_compare

        show_compare(console, cmp, view)

    emit(
        flags,
        document=lambda docs: docs.compare_document(cmp, with_values=view.values),
        show=show,
        title="rnn-cli compare",
        save=flags.save,
        arrays=lambda: _run_arrays(cmp.torch, reference),
    )
    return 0 if cmp.ok else 1


@command("bench", BenchFlags)
def bench_command(flags: BenchFlags) -> None:
    flags.use_bench_sizes()
    cfg, sample = flags.prepare()
    _check_output(flags)
    flags.check_timing()
    check_memory(cfg, "bench", flags.json, values=False, grad=flags.grad)
    from rich.console import Console

    from rnn_cli.core import bench
    from rnn_cli.views import screen as views

    progress = views.LazyProgress(Console(stderr=True))
    try:
        result = bench.run(cfg, repeat=flags.repeat, warmup=flags.warmup, tf32=not flags.no_tf32, on_run=progress,
                           sample=sample, grad=flags.loss_or_none)
    finally:
        progress.close()
    emit(
        flags,
        document=lambda docs: docs.bench_document(result),
        show=lambda console: views.show_bench(console, result),
        title="rnn-cli bench",
    )


@command("inspect", InspectFlags)
def inspect_command(flags: InspectFlags) -> int:
    _check_batch(flags.batch, flags.unbatched)
    if flags.other is not None and flags.against is not None:
        raise RnnCliError("give the second checkpoint once: as CHECKPOINT2 or as --against, not both")
    _check_output(flags)
    from rnn_cli.formats import checkpoint

    batch = None if flags.unbatched else (flags.batch or 1)
    read = lambda p: checkpoint.inspect_file(p, batch, flags.seq_len, flags.batch_first, flags.nonlinearity)  # noqa: E731
    report = read(flags.path)
    against = flags.other or flags.against
    differences = None if against is None else checkpoint.compare_checkpoints(report, read(against))

    def show(console) -> None:
        from rnn_cli.views.inspect import differences_renderables, inspect_renderables
        from rnn_cli.views.screen import print_parts

        parts = inspect_renderables(console, report)
        if differences is not None:
            parts += differences_renderables(console, flags.path, against, differences)
        print_parts(console, parts)

    emit(flags, document=lambda docs: docs.inspect_document(report, differences), show=show, title="rnn-cli inspect")
    return 1 if report.problems or differences else 0


@command("onnx", OnnxFlags)
def onnx_command(flags: OnnxFlags) -> int:
    cfg, sample = flags.prepare()
    if not cfg.pack and cfg.lengths is not None:
        raise RnnCliError("--no-pack: rnn-cli onnx exports the module as run on packed sequences; drop --no-pack "
                          "(or drop --lengths to export the plain module)")
    _check_output(flags)
    if flags.save_onnx is not None:
        from rnn_cli.formats.save import check_writable

        check_writable(flags.save_onnx, "--save-onnx")
    check_memory(cfg, "compare", flags.json, values=False)  # torch, onnxruntime and the reference
    from rnn_cli.formats import onnx_export
    from rnn_cli.core.sample import draw

    sample = sample if sample is not None else draw(cfg)
    with _status("rnn-cli onnx: exporting") as stage:  # seconds of export with nothing on the screen otherwise
        report = onnx_export.report(cfg, sample, flags.exporter, flags.opset, progress=stage)
    files = ()
    if flags.save_onnx is not None:  # written with the other outputs: all or none
        model = report.exported.model.SerializeToString()
        files = ((flags.save_onnx, "--save-onnx", lambda f: f.write(model)),)

    def show(console) -> None:
        from rnn_cli.views.onnx import show_onnx

        show_onnx(console, report)

    def arrays() -> tuple[dict, dict]:
        saved = dict(onnx_export.export_inputs(cfg, sample))  # input, h_0[, c_0][, lengths]: the user's layout
        saved.update({f"torch_{name}": a for name, a in report.run.torch_outputs.items()})
        saved.update({f"onnxruntime_{name}": a for name, a in report.run.outputs.items()})
        return saved, {**cfg.to_dict(), "exporter": report.exported.exporter_used, "opset": report.exported.opset}

    emit(flags, document=lambda docs: docs.onnx_document(report), show=show, title="rnn-cli onnx",
         save=flags.save, arrays=arrays, files=files)
    return 0 if report.ok else 1


@contextlib.contextmanager
def _status(first: str):
    """A transient line on stderr while a long step runs, only on a terminal (cleared after);
    yields a function that names the next step."""
    from rich.console import Console

    err = Console(stderr=True)
    if not err.is_terminal:
        yield lambda text: None
        return
    with err.status(first, spinner="line") as status:
        yield lambda text: status.update(f"rnn-cli onnx: {text}")


from rnn_cli.cli import convert as _convert  # noqa: E402,F401 - registers `rnn-cli convert`, kept in its own module


def main(argv: Optional[list[str]] = None) -> None:
    """The console script. When the first argument names a command, only that command is
    built: typer otherwise makes every command's click options before parsing (start-up)."""
    args = sys.argv[1:] if argv is None else argv
    invoked = [c for c in app.registered_commands if args and c.name == args[0]]
    if invoked and f"_{PROG.upper().replace('-', '_')}_COMPLETE" not in os.environ:  # not shell completion
        one = copy.copy(app)  # the same app with one command; app itself keeps all six
        one.registered_commands = invoked
        one(argv, prog_name=PROG)  # argv None: click reads sys.argv itself (and expands globs on Windows)
    else:
        app(argv, prog_name=PROG)


if __name__ == "__main__":  # pragma: no cover
    main()
