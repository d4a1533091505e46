"""The commands: each one's flags (a dataclass made of the option groups it takes, listed in the
order -h shows them; its docstring is the command's help) and what it does with them:
flags -> RunConfig and Sample (rnn_cli.inputs) -> the core -> views / documents (emit).
torch is imported only inside the commands that run it, so --help and manual start fast.
"""

import contextlib
from pathlib import Path
from typing import Annotated, ClassVar, Optional

import typer

from rnn_cli.cli.options import (
    TF32, Grad, InspectOptions, Network, OnnxOptions, Output, RunOutput, Timing, Tolerances, check_batch, options,
)
from rnn_cli.cli.output import check_output, emit, run_arrays
from rnn_cli.cli.registry import command
from rnn_cli.core.config import View
from rnn_cli.core.guard import check_memory
from rnn_cli.errors import RnnCliError


def _finish_run(result, name: str, flags: "ManualFlags | TorchFlags", view: View) -> None:
    def show(console) -> None:
        from rnn_cli.views.run import show_run  # rich: only for the human view

        show_run(console, result, name, view)

    emit(
        flags,
        document=lambda docs: docs.run_document(result, name, with_values=view.values),
        show=show,
        title=f"rnn-cli {name}",
        save=flags.save,
        arrays=lambda: run_arrays(result),
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
    check_output(flags)
    if isinstance(flags, Tolerances):
        flags.check_tolerances()
    check_memory(cfg, command, flags.json, view.values, grad=flags.grad)
    return cfg, sample, view


def _progress():
    """A progress bar on stderr for long numpy loops (only on a terminal)."""
    from rnn_cli.views.progress import LazyProgress

    from rich.console import Console

    return LazyProgress(Console(stderr=True), after_s=2.0)


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
        from rnn_cli.views.compare import show_compare

        show_compare(console, cmp, view)

    emit(
        flags,
        document=lambda docs: docs.compare_document(cmp, with_values=view.values),
        show=show,
        title="rnn-cli compare",
        save=flags.save,
        arrays=lambda: run_arrays(cmp.torch, reference),
    )
    return 0 if cmp.ok else 1


@command("bench", BenchFlags)
def bench_command(flags: BenchFlags) -> None:
    flags.use_bench_sizes()
    cfg, sample = flags.prepare()
    check_output(flags)
    flags.check_timing()
    check_memory(cfg, "bench", flags.json, values=False, grad=flags.grad)
    from rich.console import Console

    from rnn_cli.core import bench
    from rnn_cli.views.bench import show_bench
    from rnn_cli.views.progress import LazyProgress

    progress = LazyProgress(Console(stderr=True))
    try:
        result = bench.run(cfg, repeat=flags.repeat, warmup=flags.warmup, tf32=not flags.no_tf32, on_run=progress,
                           sample=sample, grad=flags.loss_or_none)
    finally:
        progress.close()
    emit(
        flags,
        document=lambda docs: docs.bench_document(result),
        show=lambda console: show_bench(console, result),
        title="rnn-cli bench",
    )


@command("inspect", InspectFlags)
def inspect_command(flags: InspectFlags) -> int:
    check_batch(flags.batch, flags.unbatched)
    if flags.other is not None and flags.against is not None:
        raise RnnCliError("give the second checkpoint once: as CHECKPOINT2 or as --against, not both")
    check_output(flags)
    from rnn_cli.formats import checkpoint

    batch = None if flags.unbatched else (flags.batch or 1)
    read = lambda p: checkpoint.inspect_file(p, batch, flags.seq_len, flags.batch_first, flags.nonlinearity)  # noqa: E731
    report = read(flags.path)
    against = flags.other or flags.against
    differences = None if against is None else checkpoint.compare_checkpoints(report, read(against))

    def show(console) -> None:
        from rnn_cli.views.inspect import differences_renderables, inspect_renderables
        from rnn_cli.views.fit import print_parts

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
    check_output(flags)
    if flags.save_onnx is not None:
        from rnn_cli.formats.save import check_writable

        check_writable(flags.save_onnx, "--save-onnx")
    check_memory(cfg, "onnx", flags.json, values=False)  # torch, onnxruntime and the reference
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
        from rnn_cli.documents import settings

        config = settings(cfg, report.provenance)
        return saved, {**config, "exporter": report.exported.exporter_used, "opset": report.exported.opset}

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
