"""One way out for every command: --save's .npz and --export-svg written first (all or none),
then the --json document or the human view on stdout; output flags checked before anything runs.
"""

import os
import sys
from typing import Any, Callable, Optional

from rnn_cli.errors import RnnCliError


def emit(
    out: Any,  # an Output group: .json, .export_svg
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
    writes = list(files)  # other outputs, (path, flag, writer): --save-onnx
    if save is not None and arrays is not None:
        from rnn_cli.formats.save import npz_writer

        writes.insert(0, (save, "--save", npz_writer(*arrays())))
    if save is not None and writes:
        from rnn_cli.formats.save import writes_to_stdout

        if writes_to_stdout(save):
            _write_all(writes)
            return
    if out.json:
        _write_all(writes)
        from rnn_cli import documents

        documents.write_document(document(documents), sys.stdout)  # array by array: the whole text never exists
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    import io

    from rich.console import Console

    from rnn_cli.views.tables import stdout_width

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
    _write_all(writes)  # both files or neither
    sys.stdout.write(console.file.getvalue())
    sys.stdout.flush()


def _write_all(writes: list) -> None:
    """rnn_cli.formats.save.write_all, imported only when there is a file to write."""
    if writes:
        from rnn_cli.formats.save import write_all

        write_all(writes)


def check_output(flags: Any) -> None:
    """Refuse output flags that cannot all be honoured, before anything runs."""
    if flags.json and flags.export_svg is not None:
        raise RnnCliError("--export-svg records the human output; it cannot be combined with --json")
    save = getattr(flags, "save", None)  # manual, torch, compare and onnx
    save_onnx = getattr(flags, "save_onnx", None)
    if save is None and flags.export_svg is None and save_onnx is None:
        return
    from rnn_cli.formats.save import check_paths, refuse_outputs_over_inputs, writes_to_stdout

    outputs = {"--save": save, "--export-svg": flags.export_svg, "--save-onnx": save_onnx}
    refuse_outputs_over_inputs({k: v for k, v in outputs.items() if v is not None}, inputs_read(flags))
    if save is None and flags.export_svg is None:
        return
    check_paths(save, flags.export_svg)
    if save is not None and writes_to_stdout(save):
        if flags.json:
            raise RnnCliError(f"--save {save} and --json both write stdout; pick one")
        if flags.export_svg is not None:
            raise RnnCliError(f"--save {save} is stdout: --export-svg records a human view that is not printed")


def inputs_read(flags: Any) -> dict[str, str]:
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


def run_arrays(result, extra: Optional[dict] = None) -> tuple[dict, dict]:
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
