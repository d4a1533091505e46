"""The flags, declared once as typed option groups: each group is a dataclass whose fields
carry their typer.Option (and -h panel). A command's flags are a dataclass that inherits the
groups it takes (rnn_cli.cli.commands: `class TorchFlags(Network, Output, RunOutput, TF32,
Grad)`); typer reads the options from that class's constructor, and the command receives one
instance: it reads `flags.hidden_size`, never a string key.
The groups only parse and check flags against each other: Network hands what to run over to
rnn_cli.inputs as a Request, which reads the files and makes the RunConfig and Sample.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from rnn_cli.cli.registry import ASCII_INT, note
from rnn_cli.core.config import SECTION_NAMES, RunConfig, View, default_show, parse_show
from rnn_cli.errors import RnnCliError

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
            note("batch_first has no effect on 2-D (unbatched) input")
        check_batch(self.batch, self.unbatched)
        if self.cell not in (None, "rnn") and self.nonlinearity is not None:
            raise RnnCliError(f"--nonlinearity applies to --cell rnn only; {self.cell} has fixed activations")
        if self.h0 not in ("zeros", "random") and not self.h0.lower().endswith(".npy"):
            raise RnnCliError(f"--h0 must be zeros, random or a .npy file (np.save), got {self.h0!r}")
        if self.c0 is not None and self.h0 in ("zeros", "random"):
            raise RnnCliError("--c0 needs --h0 PATH.npy too: the initial state comes from files or from --h0 zeros|random")

    def request(self):
        """What to run, as rnn_cli.inputs takes it: the flags checked against each other, parsed."""
        from rnn_cli.inputs import Request

        self._checks()
        return Request(
            cell=self.cell, input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.layers,
            bidirectional=self.bidirectional, bias=not self.no_bias, proj_size=self.proj_size,
            nonlinearity=self.nonlinearity, dtype=self.dtype, seq_len=self.seq_len, batch=self.batch,
            unbatched=self.unbatched, batch_first=self.batch_first,
            lengths=None if self.lengths is None else parse_lengths(self.lengths), pack=not self.no_pack,
            seed=self.seed, device=self.device, params=self.params, input=self.input, h0=self.h0, c0=self.c0,
        )

    def prepare(self):
        """(RunConfig, Sample or None): rnn_cli.inputs reads the checkpoint (--params), the
        user's input and state (--input, --h0/--c0 PATH.npy); None: the seeded draw, made
        when the run starts. What it noticed while reading goes to stderr."""
        from rnn_cli import inputs

        prepared = inputs.prepare(self.request())
        for line in prepared.notes:
            note(line)
        return prepared.cfg, prepared.sample


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



def check_batch(batch: Optional[int], unbatched: bool) -> None:
    if batch is not None and batch < 1:  # inspect took --batch 0 as 1
        raise RnnCliError(f"--batch must be a positive integer, got {batch}")
    if unbatched and batch is not None:
        raise RnnCliError("--batch and --unbatched conflict: unbatched input has no batch dimension")


def parse_lengths(text: str) -> tuple[int, ...]:
    try:
        if not all(ASCII_INT.fullmatch(part) for part in text.split(",")):
            raise ValueError(text)
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RnnCliError(f"--lengths must be comma-separated integers such as 10,7,3, got {text!r}") from None
