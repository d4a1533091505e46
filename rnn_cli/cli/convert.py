"""rnn-cli convert SRC[:PREFIX] DST: the command's flags and function (the work: formats/convert.py).

Registered with rnn_cli.cli.app.command; app.py imports this module so that main() finds it.
"""

import os
from typing import Annotated, ClassVar, Literal

import typer

from rnn_cli.cli.options import Output, Tolerances, _opt, options
from rnn_cli.cli.output import emit
from rnn_cli.cli.registry import command
from rnn_cli.errors import RnnCliError


@options
class ProofOptions:
    """The seeded run that proves a conversion (the draw of manual, torch and compare)."""

    seed: Annotated[int, _opt("Proof", "--seed", metavar="INT", help="Same seed, same input and states.")] = 0
    batch: Annotated[int, _opt("Proof", "--batch", metavar="INT", help="N: sequences in the proof's input.")] = 2
    seq_len: Annotated[int, _opt("Proof", "--seq-len", metavar="INT", help="L: time steps of the proof's input.")] = 10
    h0: Annotated[Literal["zeros", "random"], _opt("Proof", "--h0", help="Initial hidden (and cell) state: random proves the states' mapping too; zeros is the source's own default.")] = "random"


@options
class ConvertFlags(Output, ProofOptions, Tolerances):
    """Write one recurrent module as a torch state_dict (.pt, .safetensors, .npz), proved on a seeded input against the source's own runtime. Exit 1 on a mismatch (nothing written)."""

    src: Annotated[str, typer.Argument(metavar="SRC[:PREFIX]", rich_help_panel="Arguments", help="A file inspect reads, and the module's PREFIX as inspect names it (needed when the file has several).")]
    dst: Annotated[str, typer.Argument(metavar="DST", rich_help_panel="Arguments", help="DST.pt (torch.save of the state_dict), DST.safetensors or DST.npz; written only when the proof passes, all or nothing (an existing file is replaced atomically, never when it is SRC).")]

    examples: ClassVar[tuple[str, ...]] = (
        "rnn-cli convert docs/examples/encoder.jit:encoder.rnn encoder-rnn.pt",
        "rnn-cli convert docs/examples/port.npz:enc enc.safetensors --json",
        "rnn-cli convert model.onnx:/decoder/rnn/LSTM decoder.pt --seed 1 --h0 zeros",
    )


def _check_svg(flags: ConvertFlags) -> None:
    """--export-svg: never with --json, never DST's or SRC's file."""
    if flags.export_svg is None:
        return
    if flags.json:
        raise RnnCliError("--export-svg records the human output; it cannot be combined with --json")
    from rnn_cli.formats import save
    from rnn_cli.formats.checkpoint import parse_params_arg

    if os.path.realpath(flags.export_svg) == os.path.realpath(flags.dst):
        raise RnnCliError(f"--export-svg {flags.export_svg} and DST {flags.dst} are the same file: give two paths")
    save.refuse_outputs_over_inputs({"--export-svg": flags.export_svg}, {"SRC": parse_params_arg(flags.src)[0]})
    save.check_writable(flags.export_svg, "--export-svg")


@command("convert", ConvertFlags)
def convert_command(flags: ConvertFlags) -> int:
    flags.check_tolerances()
    _check_svg(flags)
    from rnn_cli.formats import convert

    proof = convert.Proof(seed=flags.seed, batch=flags.batch, seq_len=flags.seq_len, h0=flags.h0,
                          atol=flags.atol, rtol=flags.rtol)
    conv = convert.convert(flags.src, flags.dst, proof, json_out=flags.json)
    data = conv.data
    files = ((flags.dst, "DST", lambda f: f.write(data)),) if conv.ok else ()  # with the SVG: all or none

    def show(console) -> None:
        from rnn_cli.views.convert import show_convert

        show_convert(console, conv)

    emit(flags, document=lambda docs: docs.convert_document(conv), show=show, title="rnn-cli convert", files=files)
    return 0 if conv.ok else 1
